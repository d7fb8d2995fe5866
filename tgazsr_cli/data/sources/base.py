"""What every reader hands back (`OpenedSource`, `LocalManifest`) and the registry of on-disk layout readers.

A reader is one module of this package that calls `register_reader` at import: a name, a `detect(path)` probe,
`open(path, split)` giving one split as a `datasets.Dataset`, and `splits(path)` listing the splits a copy is
divided into (for whole-set evaluation). `local.py` tries the registered readers in `priority` order; every
module of the package is imported the first time the registry is used, so a new layout is one new module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgazsr_cli.data.splits import split_of_path
from tgazsr_cli.errors import UsageError

if TYPE_CHECKING:
    import datasets

MANIFEST = "manifest.json"
CLASSNAMES_TXT = "classnames.txt"


@dataclass
class LocalManifest:
    """Facts found beside local files: a `manifest.json` (shipped layout) or a `classnames.txt`."""

    path: Path
    name: str | None = None
    classnames: tuple[str, ...] | None = None
    templates: tuple[str, ...] | None = None
    resize_mode: str | None = None
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # file stem (train, val, test) -> examples, num_<stem>


@dataclass
class OpenedSource:
    """One split of one source, opened through the `datasets` library."""

    table: datasets.Dataset
    description: str  # hub id or path, and the split actually read
    split: str  # the split's name at the source
    name: str  # default dataset name for records
    base_dir: Path | None = None  # relative image paths are resolved against it
    skipped: int = 0  # examples dropped while listing files (e.g. a listed image that is missing)
    manifest: LocalManifest | None = None


def first_line(error: BaseException, limit: int = 200) -> str:
    """A short one-line reason from an exception."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def name_of(path: Path) -> str:
    """A record name from a path: the file stem, or its folder's name for stems like 'test'."""
    stem = path.stem if path.is_file() else path.name
    return path.parent.name if path.is_file() and split_of_path(Path(stem)) else stem


def _strings(value: Any, key: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{path}: '{key}' must be a non-empty list of strings")
    return tuple(value)


def read_manifest(folder: Path) -> LocalManifest | None:
    """The manifest.json or classnames.txt in `folder`, or None when there is neither."""
    path = folder / MANIFEST
    if path.is_file():
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UsageError(f"{path} is not valid JSON: {error}") from error
        if not isinstance(raw, dict):
            raise UsageError(f"{path}: expected a JSON object")
        return LocalManifest(
            path=path,
            name=str(raw["name"]) if raw.get("name") else None,
            classnames=_strings(raw["classnames"], "classnames", path) if "classnames" in raw else None,
            templates=_strings(raw["templates"], "templates", path) if "templates" in raw else None,
            resize_mode=str(raw["resize_mode"]) if raw.get("resize_mode") else None,
            description=str(raw.get("description", "")),
            extra={k: str(raw[k]) for k in ("license", "provenance") if k in raw},
            sizes={k[len("num_"):]: v for k, v in raw.items()
                   if k.startswith("num_") and isinstance(v, int) and not isinstance(v, bool)},
        )
    path = folder / CLASSNAMES_TXT
    if path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
        return LocalManifest(path=path, classnames=_strings(names, "classnames", path))
    return None


def no_splits(path: Path) -> list[str]:
    """The `splits` of a layout that is never divided (one set)."""
    return []


@dataclass(frozen=True)
class Reader:
    """One on-disk layout: how to recognise it, open one split of it and list its splits."""

    name: str
    detect: Callable[[Path], bool]  # True when `path` (a file or folder that exists) has this layout
    open: Callable[[Path, str], OpenedSource]  # (path, split name) -> that split
    splits: Callable[[Path], list[str]] = no_splits  # the split names a copy is divided into; [] when undivided
    priority: int = 50  # lower is tried first: specific layouts before the catch-all image folder
    description: str = ""  # one line saying what a copy in this layout looks like


_READERS: dict[str, Reader] = {}
_imported = False


def register_reader(reader: Reader, *, replace: bool = False) -> Reader:
    """Add a layout reader; a name is registered once unless `replace`."""
    if reader.name in _READERS and not replace:
        raise ValueError(f"reader '{reader.name}' is already registered")
    _READERS[reader.name] = reader
    return reader


def unregister_reader(name: str) -> None:
    """Remove a reader (tests, plugins); unknown names are ignored."""
    _READERS.pop(name, None)


def readers() -> list[Reader]:
    """Every registered reader, in the order they are tried; the first call imports every reader module."""
    global _imported
    if not _imported:
        import tgazsr_cli.data.sources as package
        from tgazsr_cli.runtime.registry import import_members

        _imported = True  # set first: a reader module that looks at the registry does not recurse
        try:
            import_members(package.__name__, package.__path__)
        except BaseException:
            _imported = False
            raise
    return sorted(_READERS.values(), key=lambda reader: (reader.priority, reader.name))


def reader_for(path: Path) -> Reader | None:
    """The first reader whose probe claims `path`, or None."""
    return next((reader for reader in readers() if reader.detect(path)), None)
