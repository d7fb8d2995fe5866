"""Progress reporting without a terminal: the engine calls these hooks, the CLI draws Rich bars."""

from __future__ import annotations

from typing import Any, Protocol


class ProgressTask(Protocol):
    def advance(self, steps: int = 1, **info: Any) -> None: ...

    def close(self) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None, completed: int = 0) -> ProgressTask: ...

    def log(self, message: str) -> None: ...


class _SilentTask:
    def advance(self, steps: int = 1, **info: Any) -> None:
        pass

    def close(self) -> None:
        pass


class SilentProgress:
    """The default for library use: reports nothing."""

    def task(self, description: str, total: int | None, completed: int = 0) -> ProgressTask:
        return _SilentTask()

    def log(self, message: str) -> None:
        pass
