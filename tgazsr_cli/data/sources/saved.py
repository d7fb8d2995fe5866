"""Folders written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` (split names: the DatasetDict keys)."""

from __future__ import annotations

import json
from pathlib import Path

from tgazsr_cli.data.sources.base import OpenedSource, Reader, first_line, read_manifest, register_reader
from tgazsr_cli.data.splits import resolve_split
from tgazsr_cli.errors import RuntimeFailure

DICT_MARKER = "dataset_dict.json"
SAVED_MARKERS = (DICT_MARKER, "state.json")


def is_saved(path: Path) -> bool:
    """A folder with the marker file `save_to_disk` writes."""
    return path.is_dir() and any((path / marker).is_file() for marker in SAVED_MARKERS)


def open_saved(path: Path, split: str) -> OpenedSource:
    """One split of a saved DatasetDict, or a saved Dataset as it is."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:
        raise RuntimeFailure(f"could not read the saved dataset in {path}: {first_line(error)}") from error
    if isinstance(loaded, datasets.DatasetDict):
        chosen = resolve_split(split, loaded.keys(), where=str(path))
        table, where = loaded[chosen], f"{path} split {chosen}"
    else:
        chosen, table, where = "all", loaded, str(path)
    return OpenedSource(table=table, description=where, split=chosen, name=path.name, base_dir=path,
                        manifest=read_manifest(path))


def saved_splits(path: Path) -> list[str]:
    """The DatasetDict's split names; [] for a saved single Dataset."""
    if not (path / DICT_MARKER).is_file():
        return []
    return list(json.loads((path / DICT_MARKER).read_text(encoding="utf-8")).get("splits", []))


register_reader(Reader("saved", is_saved, open_saved, saved_splits, priority=10,
                       description="a folder written by Dataset.save_to_disk / DatasetDict.save_to_disk"))
