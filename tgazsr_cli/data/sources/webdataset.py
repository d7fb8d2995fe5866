"""Local WebDataset shards: ``*.tar`` with ``<key>.cls`` + ``<key>.jpg/.webp/.png`` members (spec §6 sources).

E.g. a download of a ``clip-benchmark/wds_*`` hub dataset. The shards are read with the `datasets` library's own
"webdataset" builder, the one that serves those hub datasets, so a local copy and the hub share everything after
the file lookup. Split names come from the paths (``test/0.tar``, ``train-000.tar``); shards without one form a
single split. The builder decodes ``.cls`` to an integer column ``cls``; class names come from the registered spec
(or a ``classnames.txt`` beside the shards).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, TypeVar

from tgazsr_cli.data.sources.base import OpenedSource, Reader, first_line, read_manifest, register_reader
from tgazsr_cli.data.splits import resolve_split, split_of_path
from tgazsr_cli.errors import RuntimeFailure

if TYPE_CHECKING:
    import datasets

TAR_SUFFIX = ".tar"
# Files that may sit beside the shards of a webdataset hub repository (nshards.txt, classnames.txt,
# zeroshot_classification_templates.txt, README.md, .gitattributes): any other data file means another layout.
SIDE_SUFFIXES = frozenset({"", ".txt", ".md", ".json", ".yaml", ".yml"})
P = TypeVar("P", bound=PurePath)


def tar_shards(path: Path) -> list[Path]:
    """The ``.tar`` shards at `path` (the file itself, or every shard below a folder), sorted."""
    if path.is_file():
        return [path] if path.suffix.lower() == TAR_SUFFIX else []
    return sorted(p for p in path.rglob(f"*{TAR_SUFFIX}") if p.is_file() and not p.name.startswith("."))


def shard_order(shard: PurePath) -> list[int | str]:
    """Numbered shards in number order (`2.tar` before `10.tar`), as webdataset's `{0..N}.tar` braces read them,
    which is also the order a protocol's shuffled stream assumes (data/selection.py)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", shard.as_posix())]


def group_shards(root: PurePath, shards: list[P]) -> dict[str, list[P]]:
    """Shards by the split named in their path below `root` ({"": shards} when none names one), in number order."""
    groups: dict[str, list[P]] = {}
    for shard in sorted(shards, key=shard_order):
        groups.setdefault(split_of_path(shard.relative_to(root)) or "", []).append(shard)
    if set(groups) != {""}:
        unnamed = groups.pop("", [])
        if unnamed:
            groups.setdefault("train", []).extend(unnamed)
    return groups


def is_webdataset_listing(names: Sequence[str]) -> bool:
    """True when a repository's files (relative POSIX names) are .tar shards and only side files beside them.

    The `datasets` library picks a builder by the most common extension within a split, so a split of one
    ``0.tar`` beside ``nshards.txt`` would open as text: such a repository needs the "webdataset" builder named.
    """
    paths = [PurePosixPath(name) for name in names]
    shards = [p for p in paths if p.suffix.lower() == TAR_SUFFIX]
    return bool(shards) and all(p in shards or p.suffix.lower() in SIDE_SUFFIXES for p in paths)


def load_shards(shards: Sequence[PurePath], key: str, where: str | Path) -> datasets.Dataset:
    """The `datasets` "webdataset" builder over `shards` (local files) as one split named `key`."""
    import datasets

    try:
        return datasets.load_dataset("webdataset", data_files={key: [str(s) for s in shards]}, split=key)
    except Exception as error:  # tarfile / arrow / datasets raise many types for unreadable shards
        raise RuntimeFailure(f"could not read the webdataset shards in {where}: {first_line(error)}") from error


def open_webdataset(path: Path, split: str) -> OpenedSource:
    """One split of local WebDataset shards as an `OpenedSource`."""
    root = path.parent if path.is_file() else path
    groups = group_shards(root, tar_shards(path))
    if not groups:
        raise RuntimeFailure(f"no .tar shards in {path}")
    chosen = "all" if set(groups) == {""} else resolve_split(split, groups, where=str(path))
    table = load_shards(groups["" if chosen == "all" else chosen], "train" if chosen == "all" else chosen, path)
    where = str(path) if chosen == "all" else f"{path} split {chosen}"
    return OpenedSource(table=table, description=where, split=chosen, name=root.name, base_dir=root,
                        manifest=read_manifest(root))


def webdataset_splits(path: Path) -> list[str]:
    """The splits the shard paths divide a folder into; [] for one shard or undivided shards."""
    if not path.is_dir():
        return []
    return [name for name in group_shards(path, tar_shards(path)) if name]


def is_webdataset(path: Path) -> bool:
    """A .tar shard, or a folder with shards below it."""
    return bool(tar_shards(path))


register_reader(Reader("webdataset", is_webdataset, open_webdataset, webdataset_splits, priority=30,
                       description="webdataset .tar shards (<key>.cls + <key>.jpg/.webp/.png), e.g. wds_* copies"))
