"""`tgazsr export`: a checkpoint as an open_clip folder (`local-dir:`), or a folder ready for the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tgazsr_cli.cli.console import console


def export(
    checkpoint: Annotated[Path, typer.Argument(help="A tgazsr checkpoint file or run directory.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Folder to write (open_clip `local-dir:` layout).")] = None,
    hub_dir: Annotated[Path | None, typer.Option(
        help="Folder ready to upload to the Hugging Face hub: open_clip files plus a model card README.md.")] = None,
) -> None:
    """Export a checkpoint as an open_clip folder that plain open_clip loads (`local-dir:` or, uploaded, `hf-hub:`)."""
    from tgazsr_cli.checkpoints.export import check_export_folder, export_checkpoint
    from tgazsr_cli.checkpoints.run_dir import checkpoint_in

    folder = check_export_folder(output, hub_dir, checkpoint)  # before torch is imported
    checkpoint_in(checkpoint)  # a missing checkpoint too

    path, folder = export_checkpoint(checkpoint, folder, model_card=hub_dir is not None)
    console.print(f"exported {path} → {folder}; load with open_clip.create_model('local-dir:{folder}')")
