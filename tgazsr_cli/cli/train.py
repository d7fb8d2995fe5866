"""`tgazsr train` and `tgazsr export`."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import typer

from tgazsr_cli.cli.console import RichProgress, console

RECIPE_HELP = "Recipe YAML file or built-in name (see `tgazsr recipes`); defaults are the paper's TGA-ZSR row."


def train(
    recipe: str | None = typer.Option(None, "--recipe", "-r", help=RECIPE_HELP),
    overrides: list[str] | None = typer.Option(None, "--set", "-s", help="Override a recipe key: key=value."),
    method: str | None = typer.Option(None, help="Training method (`tgazsr methods`)."),
    dataset: str | None = typer.Option(None, help="Training dataset: registered name, hf:ORG/NAME or a local path."),
    data_dir: str | None = typer.Option(None, help="Local copy of the dataset (image folder, parquet, save_to_disk)."),
    model: str | None = typer.Option(None, help="open_clip model name, e.g. ViT-B-32 (`tgazsr models`)."),
    pretrained: str | None = typer.Option(None, help="open_clip pretrained tag (e.g. openai) or a weights file."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Run directory (default runs/METHOD-DATA-TIME)."),
    resume: Path | None = typer.Option(None, help="Continue the run in this directory from its last checkpoint."),
    seed: int | None = typer.Option(None, help="Random seed (recipe train.seed)."),
    epochs: int | None = typer.Option(None, help="Epochs (optim.epochs)."),
    max_steps: int | None = typer.Option(None, help="Stop after this many optimiser steps (optim.max_steps)."),
    batch_size: int | None = typer.Option(None, help="Batch size (data.batch_size)."),
    lr: float | None = typer.Option(None, help="Learning rate (optim.lr)."),
    alpha: float | None = typer.Option(None, help="Weight of the attention refinement loss L_AR (loss.alpha)."),
    beta: float | None = typer.Option(None, help="Weight of the attention constraint loss L_AMC (loss.beta)."),
    distance: str | None = typer.Option(None, help="Attention distance: l2, cos or l1 (loss.distance)."),
    attention_norm: str | None = typer.Option(None, help="token-axis (reference) or per-token (loss.attention_norm)."),
    train_eps: float | None = typer.Option(None, help="Training attack eps in /255 (attack.eps)."),
    train_steps: int | None = typer.Option(None, help="Training attack PGD steps (attack.steps)."),
    train_step_size: float | None = typer.Option(None, help="Training attack step size in /255 (attack.step_size)."),
    last_num_ft: int | None = typer.Option(None, help="Train only the last k image-tower tensors; 0 = all."),
    precision: str | None = typer.Option(None, help="fp32 or bf16 autocast (losses stay fp32)."),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N."),
    workers: int | None = typer.Option(None, help="Data loader workers (data.num_workers)."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved recipe and exit."),
) -> None:
    """Adversarially fine-tune a CLIP image tower (TGA-ZSR by default) and write safetensors checkpoints.

    Settings resolve as: built-in defaults < --recipe file < --set key=value < explicit flags.
    """
    from tgazsr_cli.engine.errors import UsageError
    from tgazsr_cli.engine.recipe import load_recipe

    flags: dict[str, Any] = {
        "method": method, "data.dataset": dataset, "data.data_dir": data_dir, "model.name": model,
        "model.pretrained": pretrained, "train.seed": seed, "optim.epochs": epochs, "optim.max_steps": max_steps,
        "data.batch_size": batch_size, "optim.lr": lr, "loss.alpha": alpha, "loss.beta": beta,
        "loss.distance": distance, "loss.attention_norm": attention_norm, "attack.eps": train_eps,
        "attack.steps": train_steps, "attack.step_size": train_step_size, "optim.last_num_ft": last_num_ft,
        "train.precision": precision, "train.device": device, "data.num_workers": workers,
    }
    if resume is not None:
        if recipe or overrides or any(v is not None for v in flags.values()):
            raise UsageError("--resume continues a run with its saved recipe; drop the other settings")
        from tgazsr_cli.engine.trainer import recipe_of_run

        resolved = recipe_of_run(resume)
        run_dir = resume
    else:
        resolved = load_recipe(recipe, overrides, flags)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dataset_name = Path(resolved.data.dataset).name or "data"
        run_dir = output or Path("runs") / f"{resolved.method}-{dataset_name}-{stamp}"
    from tgazsr_cli.engine.methods import get_method

    get_method(resolved.method)  # unknown names fail before any model is loaded
    if print_config:
        typer.echo(resolved.to_yaml(), nl=False)
        return

    from tgazsr_cli.engine import distributed
    from tgazsr_cli.engine.runinfo import pick_device
    from tgazsr_cli.engine.trainer import Trainer, TrainingInterrupted, prepare_run_dir

    # under torchrun: join the process group, and let every rank use rank 0's run directory
    distributed.init_from_env(pick_device(resolved.train.device))
    try:
        run_dir = distributed.broadcast_object(run_dir)
        main = distributed.is_main_process()
        if resume is None:
            distributed.run_on_main(lambda: prepare_run_dir(run_dir, resume=False))
        if main:
            processes = f" ({distributed.world_size()} processes)" if distributed.is_distributed() else ""
            console.print(f"[bold]{resolved.method}[/bold] on {resolved.data.dataset} → {run_dir}{processes}")
        with RichProgress() if main else contextlib.nullcontext() as progress:
            trainer = Trainer(resolved, run_dir, progress=progress)
            try:
                result = trainer.run(resume=resume is not None)
            except TrainingInterrupted as exc:
                if main:
                    console.print(f"[yellow]interrupted[/yellow]: resumable checkpoint written to {exc.checkpoint}; "
                                  f"continue with `tgazsr train --resume {run_dir}`")
                raise typer.Exit(130) from None
    finally:
        distributed.shutdown()
    if not main:
        return
    parts = "  ".join(f"{k} {v:.4g}" for k, v in result.last_parts.items())
    console.print(f"done: {result.steps} steps in {result.seconds:.1f} s; last step: {parts}")
    if result.skipped_steps or result.skipped_images:
        console.print(f"[yellow]skipped[/yellow] {result.skipped_steps} non-finite steps, "
                      f"{result.skipped_images} undecodable images")
    console.print(f"model checkpoint: {result.final_checkpoint}")


def export(
    checkpoint: Path = typer.Argument(..., help="A tgazsr checkpoint file or run directory."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Folder to write (open_clip `local-dir:` layout)."),
    hub_dir: Path | None = typer.Option(None, "--hub-dir", help="Folder ready to upload to the Hugging Face hub: "
                                        "open_clip files plus a model card README.md."),
) -> None:
    """Export a checkpoint as an open_clip `local-dir:` folder that plain open_clip loads."""
    from tgazsr_cli.engine import checkpoint as ckpt
    from tgazsr_cli.engine.checkpoint import checkpoint_in
    from tgazsr_cli.engine.errors import UsageError
    from tgazsr_cli.engine.export import export_hub_folder, export_open_clip
    from tgazsr_cli.engine.lora import plain_checkpoint

    if (output is None) == (hub_dir is None):
        raise UsageError("name one folder to write: --output DIR (open_clip) or --hub-dir DIR (with a model card)")
    path = checkpoint_in(checkpoint)
    state = plain_checkpoint(ckpt.load_checkpoint(path))  # a LoRA run's step checkpoint: adapters merged
    output = output or hub_dir
    if output.exists() and any(output.iterdir()):
        raise UsageError(f"output folder {output} is not empty")
    folder = export_hub_folder(state, output) if hub_dir else export_open_clip(
        state, model_cfg=state.info.model_cfg, preprocess_cfg=state.info.preprocess_cfg, out_dir=output)
    console.print(f"exported {path} → {folder}; load with open_clip.create_model('local-dir:{folder}')")
