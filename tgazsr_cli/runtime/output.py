"""Output folders of `eval` and `attack`: checked before any work, never silently overwritten or mixed.

A folder that already holds files is refused unless `force`; then the files this command writes (its
`owned` patterns) are removed first, so new results never sit next to stale ones. Other files are left alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tgazsr_cli.errors import RuntimeFailure, UsageError


@dataclass
class OutputFolder:
    path: Path
    owned: tuple[str, ...]  # glob patterns of the files the command writes
    force: bool = False
    created: bool = False

    def validate(self) -> None:
        """The usage errors of `check`, without touching anything: for a request checked before any work."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise UsageError(f"output {path} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not self.force:
            raise UsageError(f"output folder {path} is not empty; choose another or pass --force to replace "
                             "its results")
        existing = next(parent for parent in (path, *path.parents) if parent.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise UsageError(f"output folder {path} is not writable" if existing == path else
                             f"cannot create output folder {path}: {existing} is not a writable folder")

    def check(self) -> None:
        """Fail before any work when results could not be written, or would overwrite earlier ones; then make
        the folder ready (earlier results of this command removed with `force`)."""
        self.validate()
        path = self.path
        if path.is_dir() and any(path.iterdir()):
            self.remove_owned()
        self.created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create output folder {path}: {exc.strerror}") from None
        if not os.access(path, os.W_OK):
            raise UsageError(f"output folder {path} is not writable")

    def remove_owned(self) -> None:
        for pattern in self.owned:
            for stale in self.path.glob(pattern):
                try:
                    stale.unlink()
                except OSError as exc:
                    raise RuntimeFailure(f"cannot replace {stale}: {exc.strerror or exc}") from exc

    def discard_if_empty(self) -> bool:
        """After an interruption: remove the folder if this run created it and nothing was written."""
        if self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()
            return True
        return False
