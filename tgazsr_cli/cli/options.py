"""Options that several commands share, defined once: the threat model, precision, device, output, flags."""

from __future__ import annotations

from typing import Annotated, Any

import typer


def flag(*names: str, help: str, **settings: Any) -> Any:
    """A boolean flag (for `Annotated`, or as a default) whose help line shows no `<bool>` type: a flag takes no
    value. `settings` go to typer.Option (callback, is_eager, ...)."""
    return typer.Option(*names, help=help, metavar="", **settings)


# The attack's threat model (eps and step size in /255, as the paper writes them).
Eps = Annotated[float, typer.Option(help="L-inf radius in /255.")]
OptionalEps = Annotated[float | None, typer.Option("--eps", help="L-inf radius in /255 (0 = clean only).")]
Steps = Annotated[int, typer.Option(help="Attack iterations (the paper: 100).")]
OptionalSteps = Annotated[int | None, typer.Option("--steps", help="Attack iterations (the paper: 100).")]
StepSize = Annotated[float, typer.Option(help="Attack step size in /255.")]
OptionalStepSize = Annotated[float | None, typer.Option("--step-size", help="Attack step size in /255.")]
Restarts = Annotated[int, typer.Option(min=1, help="Random restarts per attack (suites set their own).")]
AttackPrecision = Annotated[str, typer.Option(help="Forward precision during the attack: fp32, bf16 or fp16.")]
OptionalAttackPrecision = Annotated[str | None, typer.Option(
    "--attack-precision", help="Forward precision during the attack: fp32, bf16 or fp16.")]
Seed = Annotated[int, typer.Option(help="Seed of the attack's random start (and of example subsets).")]

# Where it runs and what it reads.
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
CheckpointPath = Annotated[str | None, typer.Option("--checkpoint", "-c", help="tgazsr checkpoint or run directory.")]
Model = Annotated[str | None, typer.Option(
    help="An open_clip model: name (ViT-B-32), hf-hub:ORG/NAME or local-dir:PATH.")]
Pretrained = Annotated[str | None, typer.Option(
    help="With --model: pretrained tag (openai), tgazsr:NAME, a weights file, or BASE+FILE.")]
DataDir = Annotated[str | None, typer.Option(
    help="Local copy of the dataset (folder, parquet, save_to_disk, tar shards).")]
Force = Annotated[bool, flag("--force", help="Replace the results already in the output folder.")]
NoVerify = Annotated[bool, flag("--no-verify", help="Skip checking checkpoint tensors against their digests "
                                "(saves about a tenth of the load time of a large checkpoint).")]
# torch's CPU threads (runtime/threads.py); None: not given, so a recipe's value or the automatic rule applies
Threads = Annotated[int | None, typer.Option(
    min=0, help="torch's CPU threads on a CPU run; 0 or not given: OMP_NUM_THREADS if set, else the cores free "
                "for this run.")]
