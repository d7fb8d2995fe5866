"""Where a run's numbers go: `metrics.jsonl` always, TensorBoard and Weights & Biases on request (train.report_to).

Every reporter gets the same `(step, values)` calls from the trainer: the loss parts and learning rate at each
log, `images_per_s` beside them, and the validation numbers (`val_*`) when a validation runs. Only rank 0
reports; the other ranks get `Reporters([])`. `metrics.jsonl` leaves out the wall-clock keys (`TIMING_KEYS`), so
that a resumed run's file stays equal to an unbroken run's.

The optional packages are checked by `check_report_to` before a model is loaded: a missing one is a one-line
UsageError naming the extra that installs it.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tgazsr_cli.errors import UsageError

TENSORBOARD_DIR = "tensorboard"  # RUN/tensorboard/: the event files
WANDB_ID_FILE = "wandb-id.txt"  # RUN/wandb-id.txt: the W&B run id, so a resume continues the same W&B run
TIMING_KEYS = frozenset({"images_per_s", "val_seconds"})  # wall-clock numbers: reported, but kept out of metrics.jsonl
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}  # name: (module, extra)


class Reporter(Protocol):
    def log(self, step: int, values: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


def check_report_to(names: Sequence[str]) -> None:
    """Each reporter's package imports, or a one-line UsageError naming the extra that installs it."""
    for name in names:
        module, extra = _PACKAGES[name]
        try:
            importlib.import_module(module)
        except ImportError:
            raise UsageError(f"train.report_to={name} needs the '{module}' package: "
                             f"pip install 'tgazsr[{extra}]' (or pip install {module})") from None


class JsonlReporter:
    """One JSON line per call in RUN/metrics.jsonl (`{"step": s, ...}`), flushed at once."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8")

    def log(self, step: int, values: Mapping[str, float]) -> None:
        kept = {key: value for key, value in values.items() if key not in TIMING_KEYS}
        self.file.write(json.dumps({"step": step, **kept}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class TensorBoardReporter:
    """Scalars under RUN/tensorboard/, one tag per key. A resume purges the events after its step, as the
    trainer drops those metrics.jsonl lines, so a curve has each step once."""

    def __init__(self, run_dir: Path, resume_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = resume_step + 1 if resume_step is not None else None
        self.writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=purge)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbReporter:
    """One W&B run per run directory (its id kept in RUN/wandb-id.txt, so a resume continues it). The mode is
    W&B's own: `WANDB_MODE=offline` writes under RUN/wandb/ for a later `wandb sync`; the project is
    $WANDB_PROJECT, else `tgazsr`."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        import wandb

        id_file = run_dir / WANDB_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else ""
        if not run_id:
            run_id = wandb.util.generate_id()
            id_file.write_text(run_id + "\n")
        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "tgazsr"), name=run_dir.name, id=run_id,
                              resume="allow", dir=str(run_dir), config=config)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log(dict(values), step=step)

    def close(self) -> None:
        self.run.finish()


class Reporters:
    """All of a run's reporters behind one `log` / `close`."""

    def __init__(self, reporters: list[Reporter]) -> None:
        self.reporters = reporters

    def log(self, step: int, values: Mapping[str, float]) -> None:
        for reporter in self.reporters:
            reporter.log(step, values)

    def close(self) -> None:
        reporters, self.reporters = self.reporters, []  # closing twice (error paths) is harmless
        for reporter in reporters:
            reporter.close()


def open_reporters(run_dir: Path, metrics_path: Path, names: Sequence[str], *, config: dict[str, Any],
                   resume_step: int | None, main: bool) -> Reporters:
    """metrics.jsonl plus the recipe's train.report_to, on rank 0 (`main`); nothing on the other ranks."""
    if not main:
        return Reporters([])
    reporters: list[Reporter] = [JsonlReporter(metrics_path)]
    for name in dict.fromkeys(names):
        reporters.append(TensorBoardReporter(run_dir, resume_step) if name == "tensorboard"
                         else WandbReporter(run_dir, config))
    return Reporters(reporters)
