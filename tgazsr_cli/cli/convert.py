"""`tgazsr convert`: published weights (OpenAI-CLIP layout `.pt`/`.pth`/`.pth.tar`, open_clip files) to a tgazsr
safetensors checkpoint that `eval`, `attack`, `visualize-attention` and `export` read like any other."""

from __future__ import annotations

from pathlib import Path

import typer

from tgazsr_cli.cli.console import console


def convert(
    model: str = typer.Option("ViT-B-32", help="open_clip architecture the weights belong to."),
    pretrained: str = typer.Option(..., help="Weights: a file, a tag, or BASE+FILE (e.g. openai+tecoa.pth.tar)."),
    output: Path = typer.Option(..., "--output", "-o", help="The .safetensors checkpoint to write."),
    logit_scale: float = typer.Option(100.0, min=0.0, help="Logit scale stored for zero-shot logits."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
) -> None:
    """Convert published robust-CLIP weights into a tgazsr checkpoint (read with weights_only=True)."""
    from tgazsr_cli.engine import checkpoint as ckpt
    from tgazsr_cli.engine.errors import UsageError
    from tgazsr_cli.engine.model import load_classifier

    if output.suffix != ".safetensors":
        raise UsageError(f"output '{output}' must end in .safetensors")
    if output.exists() and not force:
        raise UsageError(f"output '{output}' exists; pass --force to overwrite it")
    if not output.parent.is_dir():
        raise UsageError(f"output folder '{output.parent}' does not exist")
    classifier = load_classifier(model, pretrained, logit_scale=logit_scale)
    spec = classifier.spec
    metadata = {"kind": "model", "method": "converted", "model_name": spec.name, "pretrained": spec.pretrained,
                "model_cfg": spec.model_cfg, "preprocess_cfg": spec.preprocess_cfg, "logit_scale": logit_scale,
                "source": {"pretrained": pretrained}}
    ckpt.save_checkpoint(output, model_state=classifier.clip.state_dict(), metadata=metadata)
    console.print(f"wrote {output} ({spec.name}, weights {pretrained}); evaluate it with "
                  f"`tgazsr eval --checkpoint {output}`")
