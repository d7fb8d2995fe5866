"""Local copies: parquet files, `save_to_disk` folders and image folders, opened through `datasets`.

Parquet goes through ``datasets.load_dataset("parquet", data_files=...)``, exactly the builder the hub's
parquet datasets use, so a downloaded copy and the hub share everything after the file lookup. Split names
come from the file paths (``train-0000.parquet``, ``valid/0000.parquet``, ``test.parquet``); files without
one form a single split.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tgazsr_cli.data.folders import WORDS_TXT, has_images, open_folder, words_names
from tgazsr_cli.data.hub import first_line
from tgazsr_cli.data.opened import LocalManifest, OpenedSource
from tgazsr_cli.data.shipped import read_manifest
from tgazsr_cli.data.specs import LOCAL_LAYOUTS
from tgazsr_cli.data.splits import resolve_split, split_of_path
from tgazsr_cli.data.sun397_folder import is_sun397_root, open_sun397
from tgazsr_cli.data.webdataset import TAR_SUFFIX, open_webdataset, tar_shards
from tgazsr_cli.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    import datasets

SAVED_MARKERS = ("dataset_dict.json", "state.json")


class LocalCopyMissing(RuntimeFailure):
    """Nothing readable at a local path (it does not exist, or holds no data)."""
_SINGLE = "train"  # the split name `datasets` gets for a source that has only one


def _name_of(path: Path) -> str:
    """A record name from a path: the file stem, or its folder's name for stems like 'test'."""
    stem = path.stem if path.is_file() else path.name
    return path.parent.name if path.is_file() and split_of_path(Path(stem)) else stem


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
        groups = group_parquet(path, sorted(path.rglob("*.parquet")))
        chosen = "all" if set(groups) == {""} else resolve_split(split, groups, where=str(path))
        files = groups["" if chosen == "all" else chosen]
    table = _load_parquet(files, _SINGLE if chosen == "all" else chosen, path)
    where = str(path) if chosen == "all" else f"{path} split {chosen}"
    return OpenedSource(table=table, description=where, split=chosen, name=_name_of(path), base_dir=root,
                        manifest=read_manifest(root))


def open_saved(path: Path, split: str) -> OpenedSource:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
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


def _words_manifest(opened: OpenedSource) -> LocalManifest | None:
    """Class names from a words.txt beside a folder of wnid classes the built-in table lacks (folders.py)."""
    folder = opened.base_dir
    names = words_names(folder, opened.table.features["label"].names) if folder is not None else None
    return LocalManifest(path=folder / WORDS_TXT, classnames=names) if names else None


def open_local(
    path: Path, split: str, *, layout_hint: str = LOCAL_LAYOUTS, what: str = "path",
) -> OpenedSource:
    """Open whatever lies at `path`: parquet, a save_to_disk folder, webdataset shards or an image folder."""
    path = path.expanduser()
    if not path.exists():
        raise LocalCopyMissing(f"{what} {path} does not exist; put the data there ({layout_hint})")
    if path.is_file():
        if path.suffix.lower() == ".parquet":
            return open_parquet(path, split)
        if path.suffix.lower() == TAR_SUFFIX:
            return open_webdataset(path, split)
        raise UsageError(f"{path} is not a .parquet file; give a parquet file or a folder ({layout_hint})")
    if any((path / marker).is_file() for marker in SAVED_MARKERS):
        return open_saved(path, split)
    if next(path.rglob("*.parquet"), None) is not None:
        return open_parquet(path, split)
    if tar_shards(path):
        return open_webdataset(path, split)
    if is_sun397_root(path):
        return open_sun397(path)
    if has_images(path):
        opened = open_folder(path, split, name=_name_of(path))
        opened.manifest = read_manifest(path) or _words_manifest(opened)
        return opened
    raise LocalCopyMissing(f"found no parquet files, saved dataset or images in {path} (nor .tar shards); "
                           f"expected {layout_hint}")
