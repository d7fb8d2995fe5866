"""Parquet files: one ``.parquet`` file, or a folder of them split by file name (the hub's own layout).

Parquet goes through ``datasets.load_dataset("parquet", data_files=...)``, exactly the builder the hub's
parquet datasets use, so a downloaded copy and the hub share everything after the file lookup. Split names
come from the file paths (``train-0000.parquet``, ``valid/0000.parquet``, ``test.parquet``); files without
one form a single split.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tgazsr_cli.data.sources.base import OpenedSource, Reader, first_line, name_of, read_manifest, register_reader
from tgazsr_cli.data.splits import resolve_split, split_of_path
from tgazsr_cli.errors import RuntimeFailure

if TYPE_CHECKING:
    import datasets

SUFFIX = ".parquet"
_SINGLE = "train"  # the split name `datasets` gets for a source that has only one


def parquet_files(path: Path) -> list[Path]:
    """The parquet files at `path`: the file itself, or every one below a folder, sorted."""
    if path.is_file():
        return [path] if path.suffix.lower() == SUFFIX else []
    return sorted(path.rglob(f"*{SUFFIX}"))


def group_parquet(root: Path, files: list[Path]) -> dict[str, list[Path]]:
    """Parquet files by the split named in their path below `root`: {"": files} when no file names a split,
    else canonical split -> files (files naming none count as train)."""
    groups: dict[str, list[Path]] = {}
    for file in files:
        groups.setdefault(split_of_path(file.relative_to(root)) or "", []).append(file)
    if set(groups) == {""}:
        return groups
    unnamed = groups.pop("", [])
    if unnamed:
        groups.setdefault("train", []).extend(unnamed)
    return groups


def _load_parquet(files: list[Path], split_key: str, where: Path) -> datasets.Dataset:
    import datasets

    try:
        data_files = {split_key: [str(f) for f in files]}
        return datasets.load_dataset("parquet", data_files=data_files, split=split_key)
    except Exception as error:  # arrow / datasets raise many types for unreadable files
        raise RuntimeFailure(f"could not read parquet data in {where}: {first_line(error)}") from error


def open_parquet(path: Path, split: str) -> OpenedSource:
    """A .parquet file (one split) or a folder of parquet files (split by file name)."""
    if path.is_file():
        files, chosen, root = [path], "all", path.parent
    else:
        root = path
        groups = group_parquet(path, parquet_files(path))
        chosen = "all" if set(groups) == {""} else resolve_split(split, groups, where=str(path))
        files = groups["" if chosen == "all" else chosen]
    table = _load_parquet(files, _SINGLE if chosen == "all" else chosen, path)
    where = str(path) if chosen == "all" else f"{path} split {chosen}"
    return OpenedSource(table=table, description=where, split=chosen, name=name_of(path), base_dir=root,
                        manifest=read_manifest(root))


def parquet_splits(path: Path) -> list[str]:
    """The splits the file names divide a parquet folder into; [] for one file or undivided files."""
    if not path.is_dir():
        return []
    return [name for name in group_parquet(path, parquet_files(path)) if name]


def is_parquet(path: Path) -> bool:
    """A .parquet file, or a folder with a parquet file anywhere below it."""
    if path.is_file():
        return path.suffix.lower() == SUFFIX
    return next(path.rglob(f"*{SUFFIX}"), None) is not None


register_reader(Reader("parquet", is_parquet, open_parquet, parquet_splits, priority=20,
                       description="*.parquet files as on the hub, or one .parquet file"))
