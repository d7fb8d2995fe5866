"""`tgazsr convert`: published robust-CLIP weights to a tgazsr safetensors checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tgazsr_cli.cli import options as opt
from tgazsr_cli.cli.console import console


def convert(
    pretrained: Annotated[str, typer.Option(
        help="Weights: a file, a tag, or BASE+FILE (e.g. openai+tecoa.pth.tar).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .safetensors checkpoint to write.")],
    model: Annotated[str, typer.Option(help="open_clip architecture the weights belong to.")] = "ViT-B-32",
    logit_scale: Annotated[float, typer.Option(min=0.0, help="Logit scale stored for zero-shot logits.")] = 100.0,
    force: Annotated[bool, opt.flag("--force", help="Overwrite an existing output file.")] = False,
) -> None:
    """Convert published robust-CLIP weights into a tgazsr checkpoint (read with weights_only=True)."""
    from tgazsr_cli.api.convert import check_output

    check_output(output, force, pretrained)  # before torch is imported

    from tgazsr_cli.api.convert import convert_weights

    written = convert_weights(model, pretrained, output, logit_scale=logit_scale, force=force)
    console.print(f"wrote {written} ({model}, weights {pretrained}); evaluate it with "
                  f"`tgazsr eval --checkpoint {written}`")
