"""Run directories: `recipe.yaml`, `metrics.jsonl`, `checkpoints/step-*.safetensors` and `final.safetensors`.

An existing, non-empty run directory is only ever continued (`--resume`), never overwritten; a finished run
(its final checkpoint at the planned last step) is left as it is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tgazsr_cli.checkpoints import checkpoint as ckpt
from tgazsr_cli.config.recipe import Recipe, recipe_from_dict
from tgazsr_cli.errors import UsageError

RECIPE_FILE = "recipe.yaml"


def default_run_dir(recipe: Recipe, root: Path = Path("runs")) -> Path:
    """runs/METHOD-DATASET-TIME."""
    dataset = Path(recipe.data.dataset).name or "data"
    return root / f"{recipe.method}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """The checks of `prepare_run_dir` without creating anything: before a model is loaded."""
    if resume:
        if not run_dir.is_dir():
            raise UsageError(f"cannot resume: run directory {run_dir} does not exist")
        return
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UsageError(f"run directory {run_dir} already exists; pass --resume to continue it or choose another")
    existing = next(parent for parent in [run_dir, *run_dir.parents] if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UsageError(f"cannot write to run directory {run_dir}: {existing} is not a writable folder")


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """Create the run directory; an existing, non-empty one is only ever continued, never overwritten."""
    check_run_dir(run_dir, resume)
    if resume:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to run directory {run_dir}: {exc.strerror}") from exc


def recipe_of_run(run_dir: Path) -> Recipe:
    """The resolved recipe a run was started with (for --resume)."""
    import yaml

    path = Path(run_dir) / RECIPE_FILE
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a tgazsr run directory (no {RECIPE_FILE})")
    return recipe_from_dict(yaml.safe_load(path.read_text()) or {})


def finished_step(run_dir: Path) -> int | None:
    """The step of a finished run's final checkpoint, or None when the run is not finished."""
    final = Path(run_dir) / ckpt.FINAL_NAME
    if not final.is_file():
        return None
    info = ckpt.CheckpointMetadata.from_dict(ckpt.read_metadata(final), f"'{final}'")
    return info.step if info.total_steps and info.step >= info.total_steps else None
