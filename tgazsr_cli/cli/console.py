"""Human output goes to stderr through Rich; machine-readable results go to stdout or files."""

from __future__ import annotations

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

console = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)


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
