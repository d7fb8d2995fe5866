"""`tgazsr train`: adversarial fine-tuning from a recipe, flags and `--set` overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from tgazsr_cli.cli import options as opt
from tgazsr_cli.cli.console import console, make_progress

if TYPE_CHECKING:
    from tgazsr_cli.api.train import TrainPlan
    from tgazsr_cli.training.outcomes import TrainResult

RECIPE_HELP = "Recipe YAML file or built-in name (see `tgazsr recipes`); defaults are the paper's TGA-ZSR row."
Int = Annotated[int | None, typer.Option()]


def train(
    recipe: Annotated[str | None, typer.Option("--recipe", "-r", help=RECIPE_HELP)] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a recipe key: key=value.")
                         ] = None,
    method: Annotated[str | None, typer.Option(help="Training method (`tgazsr methods`).")] = None,
    dataset: Annotated[str | None, typer.Option(
        help="Training dataset: registered name, hf:ORG/NAME, a local path, or a+b to combine.")] = None,
    data_dir: opt.DataDir = None,
    model: opt.Model = None,
    pretrained: opt.Pretrained = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Run directory (default runs/METHOD-DATA-TIME).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this directory from its last checkpoint.")
                      ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (train.seed).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (optim.epochs).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimiser steps (optim.max_steps).")
                         ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (data.batch_size).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (optim.lr).")] = None,
    train_eps: Annotated[float | None, typer.Option(help="Training attack eps in /255 (attack.eps).")] = None,
    train_steps: Annotated[int | None, typer.Option(help="Training attack PGD steps (attack.steps).")] = None,
    train_step_size: Annotated[float | None, typer.Option(
        help="Training attack step size in /255 (attack.step_size).")] = None,
    trainable: Annotated[str | None, typer.Option(
        help="Which image-tower parameters train: full, last-K (its last K tensors), first-K (the patch embedding and "
             "the first K blocks) or lora (train.trainable).")
                         ] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 or bf16 autocast (losses stay fp32).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    workers: Annotated[int | None, typer.Option(help="Data loader workers (data.num_workers).")] = None,
    threads: opt.Threads = None,
    print_config: Annotated[bool, opt.flag("--print-config", help="Print the resolved recipe and exit.")
                            ] = False,
) -> None:
    """Adversarially fine-tune a CLIP image tower (TGA-ZSR by default) and write safetensors checkpoints.

    Settings resolve as: built-in defaults < --recipe file < --set key=value < explicit flags. A method's own
    settings go through --set method_options.KEY=VALUE (`--print-config --method NAME` lists them).
    """
    from tgazsr_cli.api.train import TrainRequest, plan_training

    flags = {
        "method": method, "data.dataset": dataset, "data.data_dir": data_dir, "model.name": model,
        "model.pretrained": pretrained, "train.seed": seed, "optim.epochs": epochs, "optim.max_steps": max_steps,
        "data.batch_size": batch_size, "optim.lr": lr, "attack.eps": train_eps, "attack.steps": train_steps,
        "attack.step_size": train_step_size, "train.trainable": trainable, "train.precision": precision,
        "train.device": device, "data.num_workers": workers, "train.threads": threads,
    }
    plan = plan_training(TrainRequest(recipe, list(overrides or []), flags, output, resume))
    if print_config:
        typer.echo(plan.recipe.to_yaml(), nl=False)
        return
    if plan.complete_at is not None:
        console.print(f"{plan.run_dir} is complete (final checkpoint at step {plan.complete_at}); nothing to do")
        return

    from tgazsr_cli.api.train import world_description
    from tgazsr_cli.checkpoints.run_dir import hold_run_lock

    processes = world_description()  # also reads srun's variables, so RANK below is this process's rank
    # locked before the model loads, so a second trainer of this run stops at once (rank 0 holds it)
    with hold_run_lock(plan.run_dir, main=int(os.environ.get("RANK", "0")) == 0, log=warn):
        result = train_locked(plan, processes)
    if result is None:
        return  # ranks other than 0 under torchrun
    parts = "  ".join(f"{k} {v:.4g}" for k, v in result.last_parts.items()) or "(no step logged)"
    console.print(f"done: {result.steps} steps in {result.seconds:.1f} s; last step: {parts}")
    if result.skipped_steps or result.skipped_images:
        console.print(f"[yellow]skipped[/yellow] {result.skipped_steps} non-finite steps, "
                      f"{result.skipped_images} undecodable images")
    console.print(f"model checkpoint: {result.final_checkpoint}")


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {escape(message)}")


def train_locked(plan: TrainPlan, processes: str) -> TrainResult | None:
    """Run the plan; Ctrl-C ends with one line saying what was kept, exit 130; SIGTERM / SIGUSR1 (a scheduler's
    stop) with a resumable checkpoint of the finished step, exit 128 + the signal's number (143 for SIGTERM)."""
    from tgazsr_cli.api.train import run_training
    from tgazsr_cli.training.outcomes import TrainingInterrupted, TrainingPreempted

    console.print(f"[bold]{plan.recipe.method}[/bold] on {plan.recipe.data.dataset} → {plan.run_dir}{processes}")
    resume = f"continue with `tgazsr train --resume {plan.run_dir}`"
    try:
        with make_progress() as progress:
            return run_training(plan, progress)
    except TrainingInterrupted as exc:
        if exc.saved:
            console.print(f"[yellow]interrupted[/yellow]: resumable checkpoint written to {exc.checkpoint}; {resume}")
        else:
            console.print(f"[yellow]interrupted again while saving[/yellow]: {kept(exc.checkpoint, exc.step, resume)}")
        raise typer.Exit(130) from None
    except TrainingPreempted as exc:
        console.print(f"[yellow]preempted[/yellow] by {exc.signal_name} at step {exc.step}: resumable checkpoint "
                      f"written to {exc.checkpoint}; {resume}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:  # outside the loop (loading, the final save): say what the disk holds
        from tgazsr_cli.checkpoints.metadata import read_metadata
        from tgazsr_cli.checkpoints.run_dir import CHECKPOINT_DIR, latest_checkpoint

        latest = latest_checkpoint(plan.run_dir / CHECKPOINT_DIR)
        step = read_metadata(latest).step if latest is not None else None
        console.print(f"[yellow]interrupted[/yellow]: {kept(latest, step, resume)}")
        raise typer.Exit(130) from None


def kept(checkpoint: Path | None, step: int | None, resume: str) -> str:
    if checkpoint is None:
        return "no checkpoint had been written yet, so there is nothing to resume"
    return f"the last complete checkpoint, step {step}, is kept ({checkpoint}); {resume}"
