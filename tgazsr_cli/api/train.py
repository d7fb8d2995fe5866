"""The `tgazsr train` entry point: resolve the recipe and the run directory, then train (also under torchrun).

Settings resolve as: built-in defaults < recipe file < `--set key=value` < explicit flags; `--resume` takes the
run's saved recipe and nothing else. Every usage error is raised before torch or a model is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgazsr_cli.checkpoints.run_dir import check_run_dir, default_run_dir, finished_step, recipe_of_run
from tgazsr_cli.config import Recipe, load_recipe
from tgazsr_cli.errors import UsageError, unknown_name
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
        check_dataset_name(recipe.data.dataset)
        return TrainPlan(recipe, request.resume, True, finished_step(request.resume))
    recipe = resolve_method_options(load_recipe(request.recipe, request.overrides, request.flags))
    check_dataset_name(recipe.data.dataset)  # before a run folder is named or a model built
    check_dataset_path(recipe.data.dataset)
    run_dir = request.output or default_run_dir(recipe)
    check_run_dir(run_dir, resume=False)
    check_not_in_data(run_dir, recipe)
    return TrainPlan(recipe, run_dir, False)


def check_dataset_name(source: str) -> None:
    """An unknown dataset name is a usage error here, without torch: a registered name, hf:ORG/NAME or a path
    passes (the loader reads it later); in `a+b` each part is checked. The same tests as data.loading's
    `open_source` and data.combined's `is_combined`, which import torch."""
    from tgazsr_cli.data import list_datasets
    from tgazsr_cli.data.specs import is_registered

    if source.startswith("hf:") or is_registered(source):
        return
    if "+" in source and not source.startswith(("/", ".", "~")):
        for part in (name.strip() for name in source.split("+")):
            if part:
                check_dataset_name(part)
        return
    looks_like_path = (os.sep in source or "/" in source or source.startswith((".", "~"))
                       or source.lower().endswith(".parquet") or os.path.exists(source))
    if not looks_like_path:
        raise UsageError(f"{unknown_name('dataset', source, list_datasets())}; or give a local path or hf:ORG/NAME")


def check_dataset_path(source: str) -> None:
    """A training dataset given as a path must exist (a registered name, `hf:` or `a+b` is the loader's to find)."""
    from tgazsr_cli.data.specs import is_registered

    if source.startswith("hf:") or is_registered(source) or ("+" in source and not os.path.exists(source)):
        return
    if not os.path.exists(os.path.expanduser(source)):
        raise UsageError(f"dataset path {source} does not exist")


def check_not_in_data(run_dir: Path, recipe: Recipe) -> None:
    """A run folder in (or equal to) the training data's folder would be read back as data, or overwrite it."""
    for data in (recipe.data.dataset, recipe.data.data_dir):
        if data and not data.startswith("hf:") and os.path.exists(os.path.expanduser(data)):
            folder = Path(data).expanduser().resolve()
            if run_dir.resolve() == folder or folder in run_dir.resolve().parents:
                raise UsageError(f"run directory {run_dir} is inside the training data {data}; choose another")


def run_training(plan: TrainPlan, progress: Progress | None = None) -> Any:
    """Train `plan.recipe` into `plan.run_dir`: the trainer's TrainResult on rank 0, None on the other ranks.

    Under torchrun every rank joins the process group and uses rank 0's run directory; rank 0 alone writes it.
    A CPU run sets torch's threads first (runtime/threads.py); `progress` says how many as the first step starts.
    Ctrl-C raises training.outcomes.TrainingInterrupted (a resumable checkpoint of the step was written, unless a
    second Ctrl-C cut that save short); SIGTERM / SIGUSR1 raise TrainingPreempted after finishing the step.
    """
    from tgazsr_cli.runtime import distributed
    from tgazsr_cli.runtime.device import pick_device
    from tgazsr_cli.runtime.threads import announced, use_threads
    from tgazsr_cli.training.loop import Trainer

    device = distributed.init_from_env(pick_device(plan.recipe.train.device))
    try:
        run_dir = distributed.broadcast_object(plan.run_dir)
        main = distributed.is_main_process()
        threads = use_threads(device, plan.recipe.train.threads, "train.threads")
        result = Trainer(plan.recipe, run_dir, progress=announced(progress, threads) if main else None
                         ).run(resume=plan.resume)
    finally:
        distributed.shutdown()
    return result if main else None


def world_description() -> str:
    """' (N processes)' under torchrun, else ''."""
    import os

    from tgazsr_cli.runtime.launch import adopt_slurm_env

    launcher = adopt_slurm_env()
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return f" ({size} processes{', srun' if launcher == 'slurm' else ''})" if size > 1 else ""
