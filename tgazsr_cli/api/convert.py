"""`tgazsr convert`: published weights (OpenAI-layout `.pt`/`.pth`/`.pth.tar`, open_clip files) to a tgazsr
checkpoint that `eval`, `attack`, `visualize-attention` and `export` read like any other."""

from __future__ import annotations

from pathlib import Path

from tgazsr_cli.errors import UsageError


def check_output(output: Path, force: bool) -> None:
    if output.suffix != ".safetensors":
        raise UsageError(f"output '{output}' must end in .safetensors")
    if output.exists() and not force:
        raise UsageError(f"output '{output}' exists; pass --force to overwrite it")
    if not output.parent.is_dir():
        raise UsageError(f"output folder '{output.parent}' does not exist")


def convert_weights(model: str, pretrained: str, output: Path, *, logit_scale: float = 100.0,
                    force: bool = False) -> Path:
    """Load `pretrained` into `model` (read with weights_only=True) and write it as a model checkpoint."""
    from tgazsr_cli.checkpoints.checkpoint import save_checkpoint
    from tgazsr_cli.checkpoints.loading import load_pretrained_classifier
    from tgazsr_cli.checkpoints.metadata import CheckpointMetadata

    check_output(output, force)
    classifier = load_pretrained_classifier(model, pretrained, logit_scale=logit_scale)
    spec = classifier.spec
    metadata = CheckpointMetadata(
        kind="model", method="converted", model_name=spec.name, model_cfg=spec.model_cfg,
        pretrained=spec.pretrained, preprocess_cfg=spec.preprocess_cfg, logit_scale=logit_scale,
        extra={"source": {"pretrained": pretrained}})
    return save_checkpoint(output, model_state=classifier.clip.state_dict(), metadata=metadata)
