"""Local copies: where one lies under ``--data-dir``, opening it through the registered layout readers, whole sets.

Opening: the readers of `sources/` are tried in priority order and the first whose probe claims the path opens
it; a spec whose split is "all" (`specs.ALL_SPLITS`, spec §6: SUN397, EuroSAT, Caltech-101/256 are scored on
all their images) reads every split of the copy and concatenates them, so a copy that happens to be divided
still yields the whole set.

Finding: a copy is looked for as ``ROOT/<name>`` and under the folder names its downloads unpack to
(`DatasetSpec.folder_names`, plus the hub repository's own name, e.g. ``tiny-imagenet-200``, ``wds_cifar10``,
``101_ObjectCategories``, torchvision's ``cifar-10-batches-py``). A folder found that way which holds the download
folder itself (``ROOT/caltech101/101_ObjectCategories``, torchvision's ``ROOT/eurosat/2750``,
``ROOT/cifar10/cifar-10-batches-py``, ``ROOT/dtd/dtd``) is entered one level.
Folders that hold datasets rather than being one give a did-you-mean (`holds_datasets`).
"""

from __future__ import annotations

import os
from pathlib import Path

from tgazsr_cli.data.sources.base import OpenedSource, reader_for
from tgazsr_cli.data.sources.folders import VAL_ANNOTATIONS, is_image_file
from tgazsr_cli.data.sources.saved import SAVED_MARKERS
from tgazsr_cli.data.sources.sun397 import is_sun397_root
from tgazsr_cli.data.sources.torchvision_roots import is_torchvision_copy
from tgazsr_cli.data.sources.webdataset import TAR_SUFFIX
from tgazsr_cli.data.specs import ALL_SPLITS, LOCAL_LAYOUTS, DatasetSpec, get_dataset_spec, is_registered, list_datasets
from tgazsr_cli.data.splits import canonical_split
from tgazsr_cli.errors import RuntimeFailure, UsageError


class LocalCopyMissing(RuntimeFailure):
    """Nothing readable at a local path (it does not exist, or holds no data)."""


# -- opening -------------------------------------------------------------------------------------------------

def open_local(
    path: Path, split: str, *, layout_hint: str = LOCAL_LAYOUTS, what: str = "path",
) -> OpenedSource:
    """Open one split of whatever lies at `path` with the first registered reader that recognises it."""
    path = path.expanduser()
    if not path.exists():
        raise LocalCopyMissing(f"{what} {path} does not exist; put the data there ({layout_hint})")
    reader = reader_for(path)
    if reader is not None:
        return reader.open(path, split)
    if path.is_file():
        raise UsageError(f"{path} is not a .parquet file; give a parquet file or a folder ({layout_hint})")
    raise LocalCopyMissing(f"found no parquet files, saved dataset or images in {path} (nor .tar shards); "
                           f"expected {layout_hint}")


def local_splits(path: Path) -> list[str]:
    """The split names a local copy is divided into; empty when it is one undivided set."""
    reader = reader_for(path) if path.exists() else None
    return reader.splits(path) if reader is not None else []


def open_whole(path: Path, *, layout_hint: str = LOCAL_LAYOUTS, what: str = "path") -> OpenedSource:
    """All examples of the local copy at `path`, every split concatenated."""
    import datasets

    path = path.expanduser()
    splits = local_splits(path)
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


# -- finding under --data-dir ---------------------------------------------------------------------------------

def usual_folders(spec: DatasetSpec) -> tuple[str, ...]:
    """The folder names a copy of `spec` may have: its name, its download names, its hub repository's name."""
    names = [spec.name, *spec.folder_names]
    if spec.hub_id is not None:
        names.append(spec.hub_id.rsplit("/", 1)[-1])
    return tuple(dict.fromkeys(names))


def candidate_paths(name: str, root: str | Path) -> list[Path]:
    """Where `find_local_copy` looks for dataset `name` under `root`, in order."""
    root = Path(root).expanduser()
    return [root / folder for folder in usual_folders(get_dataset_spec(name))]


def _enter(path: Path, spec: DatasetSpec) -> Path:
    """`path`, or the download folder inside it when it holds one (ROOT/caltech101/101_ObjectCategories)."""
    for folder in spec.folder_names:
        if (path / folder).is_dir():
            return path / folder
    return path


def find_local_copy(name: str, data_dir: str | None) -> str | None:
    """The copy of registered dataset `name` in the folder `data_dir`, or None (then the hub is the source).

    Found: ``data_dir`` itself when its own name is one of the dataset's usual folder names, else the first of
    `candidate_paths` that exists; either is entered one level when it holds the download folder itself.
    None when `data_dir` is None, `name` is not registered, or no such folder exists.
    """
    if data_dir is None or not is_registered(name):
        return None
    spec = get_dataset_spec(name)
    root = Path(data_dir).expanduser()
    if root.name in usual_folders(spec) and root.exists():
        return str(_enter(root, spec))
    for path in candidate_paths(name, root):
        if path.exists():
            return str(_enter(path, spec))
    return None


def looked_at(name: str, root: str | Path) -> str:
    """'looked for A, B, C' for an error message."""
    return "looked for " + ", ".join(str(path) for path in candidate_paths(name, root))


def _folder_owners() -> dict[str, str]:
    """Usual folder name -> registered dataset, over the whole table."""
    owners: dict[str, str] = {}
    for name in list_datasets():
        for folder in usual_folders(get_dataset_spec(name)):
            owners.setdefault(folder, name)
    return owners


def _holds_images(folder: Path) -> bool:
    """True when image files lie directly in `folder` (a class folder, not a dataset)."""
    try:
        return any(is_image_file(entry.name) for entry in os.scandir(folder) if entry.is_file())
    except OSError:
        return False


def is_copy_itself(folder: Path) -> bool:
    """True when `folder` is one dataset by its own layout: saved-dataset markers, parquet or .tar files, split
    folders (train/, test/ ...), Tiny-ImageNet's val annotations, the SUN397 archive or a torchvision folder."""
    if not folder.is_dir():
        return True
    markers = (*SAVED_MARKERS, VAL_ANNOTATIONS)
    if any((folder / marker).is_file() for marker in markers) or is_sun397_root(folder):
        return True
    if is_torchvision_copy(folder):
        return True
    for entry in folder.iterdir():
        if entry.is_file() and entry.suffix.lower() in (".parquet", TAR_SUFFIX):
            return True
        if entry.is_dir() and canonical_split(entry.name) is not None:
            return True
    return False


MAX_SCANNED = 20  # a folder with more sub-folders is a set of class folders: not looked into further


def _sub_folders(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:  # d_type: no stat per entry, cheap on big folders
            return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def holds_datasets(folder: Path, depth: int = 2) -> dict[Path, str]:
    """Sub-folders of `folder` (down to `depth` levels) named like a registered dataset's copy -> that dataset.

    A sub-folder with images directly inside is a class folder (an image folder may have a class 'cars'), so
    it never counts; nor does anything when `folder` holds images itself. Only folders with at most
    MAX_SCANNED sub-folders are looked into below the first level (so an ImageNet folder costs one listing).
    """
    if not folder.is_dir() or _holds_images(folder):
        return {}
    owners, found = _folder_owners(), {}
    level = [folder]
    for _ in range(depth):
        below = []
        for parent in level:
            children = _sub_folders(parent)
            for child in children:
                if child.name in owners and not _holds_images(child):
                    found[child] = owners[child.name]
                elif len(children) <= MAX_SCANNED:
                    below.append(child)
        if found:
            return found
        level = below
    return found


def datasets_hint(folder: Path, *, wanted: str | None = None) -> str:
    """'; it holds X (dataset x): did you mean ...?' for a folder that holds datasets' copies, else ''.

    `wanted`: the dataset --data-dir was given for (None: the folder was given as the dataset itself).
    """
    found = holds_datasets(folder)
    if not found:
        return ""
    listed = ", ".join(f"{path} ({name})" for path, name in list(found.items())[:4])
    if wanted is None:
        path, name = next(iter(found.items()))
        return f"; it holds {listed}: did you mean --datasets {path} (or --datasets {name} --data-dir {path.parent})?"
    mine = [path for path, name in found.items() if name == wanted]
    if mine:
        return f"; it holds {listed}: did you mean --data-dir {mine[0].parent}?"
    return (f"; it holds copies of other datasets ({listed}): put the {wanted} copy there under one of the names "
            "looked for, or give the copy itself as --data-dir")
