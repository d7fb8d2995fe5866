"""Whole-set evaluation (spec §6: SUN397, EuroSAT, Caltech-101, Caltech-256 are scored on all their images).

A spec whose split is "all" (`specs.ALL_SPLITS`) reads every split of a local copy and concatenates them, so a
copy that happens to be divided (a save_to_disk DatasetDict, train/test parquet or shards, train/ and test/
image folders) still yields the whole set; an undivided copy is read as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from tgazsr_cli.data.folders import split_folders
from tgazsr_cli.data.local import SAVED_MARKERS, group_parquet, open_local
from tgazsr_cli.data.opened import OpenedSource
from tgazsr_cli.data.specs import ALL_SPLITS, LOCAL_LAYOUTS
from tgazsr_cli.data.sun397_folder import is_sun397_root
from tgazsr_cli.data.webdataset import group_shards, tar_shards
from tgazsr_cli.errors import UsageError


def local_splits(path: Path) -> list[str]:
    """The split names a local copy is divided into; empty when it is one undivided set."""
    if not path.is_dir() or is_sun397_root(path):
        return []
    if (path / "dataset_dict.json").is_file():
        return list(json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", []))
    if any((path / marker).is_file() for marker in SAVED_MARKERS):
        return []
    for files, group in ((sorted(path.rglob("*.parquet")), group_parquet), (tar_shards(path), group_shards)):
        if files:
            return [name for name in group(path, files) if name]
    return list(split_folders(path))


def open_whole(path: Path, *, layout_hint: str = LOCAL_LAYOUTS, what: str = "path") -> OpenedSource:
    """All examples of the local copy at `path`, every split concatenated."""
    import datasets

    path = path.expanduser()
    splits = local_splits(path) if path.exists() else []
    if len(splits) <= 1:
        opened = open_local(path, splits[0] if splits else ALL_SPLITS, layout_hint=layout_hint, what=what)
        opened.split = ALL_SPLITS
        return opened
    parts = [open_local(path, split, layout_hint=layout_hint, what=what) for split in splits]
    if any(part.table.features != parts[0].table.features for part in parts):
        raise UsageError(f"the splits {', '.join(splits)} of {path} have different columns or classes; "
                         "put all images in one copy to evaluate the whole set")
    table = datasets.concatenate_datasets([part.table for part in parts])
    return OpenedSource(table=table, description=f"{path} splits {'+'.join(splits)} (whole set)",
                        split=ALL_SPLITS, name=parts[0].name, base_dir=parts[0].base_dir,
                        skipped=sum(part.skipped for part in parts), manifest=parts[0].manifest)
