"""The `tgazsr train` entry point: resolve the recipe and the run directory, then train (also under torchrun).

Settings resolve as: built-in defaults < recipe file < `--set key=value` < explicit flags; `--resume` takes the
run's saved recipe and nothing else. Every usage error is raised before torch or a model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgazsr_cli.checkpoints.run_dir import check_run_dir, default_run_dir, finished_step, recipe_of_run
from tgazsr_cli.config import Recipe, load_recipe
from tgazsr_cli.errors import UsageError
from tgazsr_cli.methods import resolve_method_options
from tgazsr_cli.runtime.progress import Progress


@dataclass
class TrainRequest:
    recipe: str | None = None  # a recipe file or built-in name
    overrides: list[str] = field(default_factory=list)  # `key=value`
    flags: dict[str, Any] = field(default_factory=dict)  # dotted recipe keys set by explicit flags (None: unset)
    output: Path | None = None
    resume: Path | None = None


@dataclass
class TrainPlan:
    """What a request resolves to, before anything heavy happens."""

    recipe: Recipe
    run_dir: Path
    resume: bool
    complete_at: int | None = None  # --resume of a run that already finished at this step


def plan_training(request: TrainRequest) -> TrainPlan:
    """The resolved recipe (its method's options checked, defaults filled in) and run directory; a finished run
    is recognised, not rewritten. Imports no torch: every usage error is raised here."""
    if request.resume is not None:
        given = request.recipe or request.overrides or any(v is not None for v in request.flags.values())
        if given or request.output is not None:
            raise UsageError("--resume continues a run with its saved recipe; drop the other settings")
        check_run_dir(request.resume, resume=True)
        recipe = resolve_method_options(recipe_of_run(request.resume))
        return TrainPlan(recipe, request.resume, True, finished_step(request.resume))
    recipe = resolve_method_options(load_recipe(request.recipe, request.overrides, request.flags))
    run_dir = request.output or default_run_dir(recipe)
    check_run_dir(run_dir, resume=False)
    return TrainPlan(recipe, run_dir, False)


def run_training(plan: TrainPlan, progress: Progress | None = None) -> Any:
    """Train `plan.recipe` into `plan.run_dir`: the trainer's TrainResult on rank 0, None on the other ranks.

    Under torchrun every rank joins the process group and uses rank 0's run directory; rank 0 alone writes it.
    Ctrl-C raises trainer.TrainingInterrupted after a resumable checkpoint was written.
    """
    from tgazsr_cli.runtime import distributed
    from tgazsr_cli.runtime.device import pick_device
    from tgazsr_cli.training.loop import Trainer

    distributed.init_from_env(pick_device(plan.recipe.train.device))
    try:
        run_dir = distributed.broadcast_object(plan.run_dir)
        main = distributed.is_main_process()
        result = Trainer(plan.recipe, run_dir, progress=progress if main else None).run(resume=plan.resume)
    finally:
        distributed.shutdown()
    return result if main else None


def world_description() -> str:
    """' (N processes)' under torchrun, else ''."""
    import os

    size = int(os.environ.get("WORLD_SIZE", "1"))
    return f" ({size} processes)" if size > 1 else ""
