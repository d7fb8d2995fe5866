"""How a training run ended: its result, or the interruption or preemption that stopped it with a checkpoint."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainResult:
    run_dir: Path
    final_checkpoint: Path
    steps: int
    last_parts: dict[str, float]
    skipped_steps: int
    skipped_images: int
    seconds: float


class TrainingInterrupted(Exception):
    """Ctrl-C during training: `saved` when a resumable checkpoint of this step was written; a second Ctrl-C
    during that save leaves `checkpoint` the last complete one on disk (at `step`), or None when there is none."""

    def __init__(self, checkpoint: Path | None, *, step: int | None = None, saved: bool = True) -> None:
        if saved:
            text = f"interrupted; resumable checkpoint at {checkpoint}"
        elif checkpoint is None:
            text = "interrupted again while saving; no checkpoint had been written yet"
        else:
            text = f"interrupted again while saving; the last complete checkpoint, step {step}, is kept"
        super().__init__(text)
        self.checkpoint, self.step, self.saved = checkpoint, step, saved


class TrainingPreempted(Exception):
    """SIGTERM or SIGUSR1 (a scheduler's stop or its warning): the step in flight was finished, every rank
    agreed to stop there, and a resumable checkpoint of that step was written."""

    def __init__(self, checkpoint: Path, *, step: int, signal_name: str) -> None:
        super().__init__(f"preempted by {signal_name} at step {step}; resumable checkpoint at {checkpoint}")
        self.checkpoint, self.step, self.signal_name = checkpoint, step, signal_name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a process killed by it reports (143 for SIGTERM)."""
        return 128 + int(getattr(signal, self.signal_name))
