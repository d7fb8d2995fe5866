"""SIGTERM and SIGUSR1 as requests to stop at the next step boundary, as schedulers send them.

SLURM's `scancel`, its time limit and preemption, `docker stop` and Kubernetes send SIGTERM and kill the
process some seconds later; `sbatch --signal=USR1@300` warns with SIGUSR1 minutes before the end. Raising at
once (as Ctrl-C does) would abandon the step in flight; instead the handler records the request and the training
loop finishes the step, agrees with the other ranks, and writes a resumable checkpoint.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


@dataclass
class StopRequest:
    """The first stop signal received (its name), or None."""

    signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Within the block, SIGTERM and SIGUSR1 only set the request; the previous handlers come back after it.
    Signal handlers can only be set from the main thread: elsewhere the request is never set."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def record(number: int, _frame: FrameType | None) -> None:
        if request.signal_name is None:
            request.signal_name = signal.Signals(number).name

    names = [name for name in STOP_SIGNALS if hasattr(signal, name)]  # SIGUSR1 does not exist on Windows
    previous = {name: signal.signal(getattr(signal, name), record) for name in names}
    try:
        yield request
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
