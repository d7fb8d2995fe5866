"""Human output goes to stderr through Rich; machine-readable results go to stdout or files."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def printable(text: str) -> str:
    """A file name whose bytes are not UTF-8 (POSIX allows them; Python keeps them as surrogates) shown with
    \\xff escapes: a strict stream would otherwise raise UnicodeEncodeError in place of the message."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Terminal(Console):
    """Rich's console whose printed strings are always encodable (see `printable`)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)


console = Terminal(stderr=True, highlight=False, soft_wrap=True)
stdout = Terminal(highlight=False, soft_wrap=True)


class RichTask:
    def __init__(self, progress: Progress, task_id: int) -> None:
        self.progress = progress
        self.task_id = task_id

    def advance(self, steps: int = 1, **info: Any) -> None:
        text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
        self.progress.update(self.task_id, advance=steps, info=text)

    def close(self) -> None:
        self.progress.stop_task(self.task_id)


class RichProgress:
    """The engine's Progress hooks drawn as Rich progress bars on stderr."""

    def __init__(self) -> None:
        self.bars = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False,
        )

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.bars.tasks:  # no bar drawn: Progress.stop would print an empty line (before an error, say)
            self.bars.live.stop()
            return
        self.bars.stop()

    def task(self, description: str, total: int | None, completed: int = 0) -> RichTask:
        return RichTask(self.bars, self.bars.add_task(description, total=total, completed=completed, info=""))

    def log(self, message: str) -> None:
        self.bars.console.print(message)


PLAIN_EVERY_SECONDS = 30.0  # without a terminal: a progress line at least this often...
PLAIN_EVERY_FRACTION = 0.05  # ...and every 5% of a task


class PlainTask:
    """One progress line every few percent or seconds, for logs (nohup, SLURM) where bars never show."""

    def __init__(self, log: Any, description: str, total: int | None, completed: int) -> None:
        self.log, self.description, self.total, self.done = log, description, total, completed
        self.started = self.last = time.monotonic()
        self.every = max(1, int((total or 0) * PLAIN_EVERY_FRACTION))
        self.last_done = completed

    def advance(self, steps: int = 1, **info: Any) -> None:
        self.done += steps
        now = time.monotonic()
        if self.done - self.last_done >= self.every or now - self.last >= PLAIN_EVERY_SECONDS or \
                self.done == self.total:
            self.last, self.last_done = now, self.done
            of = f"/{self.total}" if self.total else ""
            text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
            self.log(f"{self.description}: {self.done}{of} ({now - self.started:.0f} s) {text}".rstrip())

    def close(self) -> None:
        pass


class PlainProgress:
    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def task(self, description: str, total: int | None, completed: int = 0) -> PlainTask:
        return PlainTask(self.log, description, total, completed)

    def log(self, message: str) -> None:
        console.print(message, markup=False, highlight=False)


@contextlib.contextmanager
def make_progress() -> Iterator[Any]:
    """Rich bars on a terminal, plain lines otherwise, nothing on ranks other than 0 under torchrun."""
    from tgazsr_cli.runtime.progress import SilentProgress

    if int(os.environ.get("RANK", "0")) != 0:
        yield SilentProgress()
    elif console.is_terminal:
        with RichProgress() as progress:
            yield progress
    else:
        with PlainProgress() as progress:
            yield progress
