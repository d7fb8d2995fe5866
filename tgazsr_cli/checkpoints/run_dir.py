"""Run directories: `recipe.yaml`, `metrics.jsonl`, `checkpoints/step-*.safetensors` and `final.safetensors`.

An existing, non-empty run directory is only ever continued (`--resume`), never overwritten; a finished run
(its final checkpoint at the planned last step) is left as it is.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tgazsr_cli.checkpoints.metadata import read_metadata
from tgazsr_cli.config import Recipe, recipe_from_dict
from tgazsr_cli.errors import RuntimeFailure, UsageError

RECIPE_FILE = "recipe.yaml"
FINAL_NAME = "final.safetensors"  # a run's model-only checkpoint, for eval, attack and export
CHECKPOINT_DIR = "checkpoints"  # a run's resumable checkpoints
DEFAULT_PATTERN = "step-*.safetensors"


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
    final = Path(run_dir) / FINAL_NAME
    if not final.is_file():
        return None
    info = read_metadata(final)
    return info.step if info.total_steps and info.step >= info.total_steps else None


def checkpoint_in(path: Path) -> Path:
    """A run directory resolves to its final checkpoint, else its newest valid training checkpoint."""
    if path.is_dir():
        final = path / FINAL_NAME
        if final.is_file():
            return final
        latest = latest_checkpoint(path / CHECKPOINT_DIR)
        if latest is None:
            raise UsageError(f"no checkpoint in {path} (expected {FINAL_NAME} or {CHECKPOINT_DIR}/step-*.safetensors)")
        return latest
    if not path.is_file():
        raise UsageError(f"checkpoint '{path}' does not exist")
    if path.suffix != ".safetensors":
        raise UsageError(f"'{path}' is not a tgazsr checkpoint; evaluate published weights with --model ViT-B-32 "
                         f"--pretrained openai+{path}, or convert them once with `tgazsr convert`")
    return path


def checkpoint_name(step: int) -> str:
    """Zero-padded so that names sort in step order in any file browser."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return f"step-{step:08d}.safetensors"


def _step_of(path: Path) -> int | None:
    """The last number in the file name; names without one are not step checkpoints."""
    numbers = re.findall(r"\d+", path.name.removesuffix(".safetensors"))
    return int(numbers[-1]) if numbers else None


def step_checkpoints(directory: Path | str, pattern: str = DEFAULT_PATTERN) -> list[Path]:
    """Files matching `pattern` that carry a step number, oldest step first (temporary files excluded)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob(pattern)
             if p.is_file() and not p.name.startswith(".") and _step_of(p) is not None]
    return sorted(found, key=lambda p: (_step_of(p), p.name))


def _is_valid(path: Path) -> bool:
    try:
        read_metadata(path)
    except (UsageError, RuntimeFailure):
        return False
    return True


def latest_checkpoint(directory: Path | str, pattern: str = DEFAULT_PATTERN) -> Path | None:
    """The newest checkpoint whose header reads back; a corrupt newest file falls back to the one before."""
    return next((p for p in reversed(step_checkpoints(directory, pattern)) if _is_valid(p)), None)


def rotate_checkpoints(
    directory: Path | str, pattern: str = DEFAULT_PATTERN, keep_last: int = 3
) -> list[Path]:
    """Keep the newest `keep_last` valid checkpoints and delete older files; returns the kept ones.

    Only valid files count towards `keep_last`, so a corrupt newest file can never cost the last good one;
    corrupt files newer than the kept ones are left for inspection.
    """
    if keep_last < 1:
        raise UsageError(f"keep_last must be at least 1, got {keep_last}")
    found = step_checkpoints(directory, pattern)
    kept = [p for p in found if _is_valid(p)][-keep_last:]
    if not kept:
        return []
    for path in found[: found.index(kept[0])]:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise RuntimeFailure(f"cannot delete old checkpoint {path}: {exc.strerror or exc}") from exc
    return kept
