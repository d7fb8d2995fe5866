"""Image folders, including the original Tiny-ImageNet download (spec §6, §8.10: "val must be reorganised").

Layouts read, with class = the first folder under the split root:
- ``root/<class>/**/*.jpg`` (torchvision's ImageFolder; also tiny-imagenet-200's ``train/<wnid>/images/``);
- ``root/<split>/<class>/...`` where <split> is train / val / valid / validation / test;
- a folder with ``val_annotations.txt`` (``file<TAB>wnid<TAB>box...``) and ``images/``: the original
  Tiny-ImageNet val split, labelled from the annotations without moving any file.

Files are listed here and turned into a `datasets.Dataset` (image paths, ClassLabel); `datasets`' own
"imagefolder" builder is not used because it labels by the immediate parent folder (``images``) and reads
split names into class folders such as ``bullet_train`` or ``test_tube``, silently dropping other classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tgazsr_cli.data.classnames import clean_classname, is_wnid, readable_classname, wnid_names
from tgazsr_cli.data.sources.base import LocalManifest, OpenedSource, Reader, name_of, read_manifest, register_reader
from tgazsr_cli.data.splits import canonical_split, resolve_split
from tgazsr_cli.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    import datasets

WORDS_TXT = "words.txt"  # Tiny-ImageNet's `wnid<TAB>lemma, lemma, ...` table of every WordNet noun
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
VAL_ANNOTATIONS = "val_annotations.txt"


def is_image_file(path: Path | str) -> bool:
    """True for a file name with a known image extension."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def _walk_images(folder: Path) -> list[Path]:
    found = []
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [Path(directory, f) for f in sorted(files) if is_image_file(f) and not f.startswith(".")]
    return found


def has_images(folder: Path) -> bool:
    """True when any image file lies under `folder`."""
    for _directory, subdirs, files in os.walk(folder, followlinks=True):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        if any(is_image_file(f) for f in files):
            return True
    return False


def split_folders(root: Path) -> dict[str, Path]:
    """Sub-folders of `root` named like a split (train, val, test...) that hold images."""
    return {
        child.name: child for child in sorted(root.iterdir())
        if child.is_dir() and canonical_split(child.name) is not None and has_images(child)
    }


def list_class_folders(root: Path) -> tuple[list[Path], list[str]]:
    """Image paths under `root/<class>/` and their class folder names."""
    paths, labels = [], []
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            found = _walk_images(child)
            paths += found
            labels += [child.name] * len(found)
    return paths, labels


def list_val_annotations(folder: Path) -> tuple[list[Path], list[str], int]:
    """Tiny-ImageNet's original val folder: (image paths, wnids, number of listed images that are missing)."""
    images = folder / "images" if (folder / "images").is_dir() else folder
    paths, labels, missing = [], [], 0
    for number, line in enumerate((folder / VAL_ANNOTATIONS).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise UsageError(f"{folder / VAL_ANNOTATIONS}:{number}: expected 'file<TAB>wnid', got {line!r}")
        path = images / fields[0]
        if path.is_file():
            paths.append(path)
            labels.append(fields[1])
        else:
            missing += 1
    return paths, labels, missing


def words_names(folder: Path, labels: Sequence[str]) -> tuple[str, ...] | None:
    """Prompt names for class folders named by wnids outside the built-in 200, from a Tiny-ImageNet-style
    words.txt in `folder` or up to two levels above it (val/images/ -> val/ -> the dataset root).

    The first lemma, cleaned as the built-in table is (`classnames.py`); None when every wnid is built in or there is
    no words.txt, so such folders keep the curated names.
    """
    unknown = {label for label in labels if is_wnid(label) and label not in wnid_names()}
    path = next((p / WORDS_TXT for p in (folder, *list(folder.parents)[:2]) if (p / WORDS_TXT).is_file()), None)
    if not unknown or path is None:
        return None
    words: dict[str, str] = {}
    with path.open(encoding="utf-8") as table:
        for line in table:
            wnid, _, lemmas = line.partition("\t")
            if wnid in unknown and lemmas.strip():
                words[wnid] = clean_classname(lemmas.split(",")[0].replace("/", " ")).lower()
    return tuple(words.get(label) or readable_classname(label) for label in labels)


def _to_table(paths: list[Path], labels: list[str]) -> datasets.Dataset:
    """Image paths (undecoded) and a ClassLabel over the sorted class folder names."""
    import datasets

    classes = sorted(set(labels))  # sorted folder names: the class order of torchvision's ImageFolder
    index = {name: i for i, name in enumerate(classes)}
    features = datasets.Features({"image": datasets.Image(decode=False),
                                  "label": datasets.ClassLabel(names=classes)})
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": None, "path": str(p)} for p in paths], "label": [index[y] for y in labels]},
        features=features,
    )


def _is_labelled(folder: Path) -> bool:
    """True for a split folder with val annotations or class folders (not just an images/ folder)."""
    return (folder / VAL_ANNOTATIONS).is_file() or any(
        child.is_dir() and child.name != "images" and not child.name.startswith(".") for child in folder.iterdir())


def open_folder(root: Path, split: str, *, name: str) -> OpenedSource:
    """One split of an image folder (any layout above) as an `OpenedSource`."""
    folder, chosen, splits = root, "all", {}
    if not (root / VAL_ANNOTATIONS).is_file():
        splits = split_folders(root)
        if splits:
            chosen = resolve_split(split, splits, where=str(root))
            folder = splits[chosen]
    skipped = 0
    if (folder / VAL_ANNOTATIONS).is_file():
        paths, labels, skipped = list_val_annotations(folder)
        how = f"{folder} labelled by {VAL_ANNOTATIONS}"
    else:
        paths, labels = list_class_folders(folder)
        how = str(folder)
    if not paths:
        raise RuntimeFailure(f"no images in class folders under {folder}; expected {folder}/<class>/*.jpg")
    if set(labels) == {"images"}:
        # Tiny-ImageNet's test split has no labels: point at the split that has them
        labelled = sorted((name for name, path in splits.items() if path != folder and _is_labelled(path)),
                          key=lambda name: canonical_split(name) != "validation")  # val before train
        hint = f"; evaluate a labelled split instead: --split {labelled[0]}" if labelled else ""
        raise UsageError(f"{folder} holds unlabelled images (no class folders, no {VAL_ANNOTATIONS}){hint}")
    return OpenedSource(table=_to_table(paths, labels), description=how, split=chosen, name=name,
                        base_dir=folder, skipped=skipped)


def open_image_folder(path: Path, split: str) -> OpenedSource:
    """`open_folder`, with class names from a manifest / classnames.txt beside it, else from a words.txt."""
    opened = open_folder(path, split, name=name_of(path))
    opened.manifest = read_manifest(path) or _words_manifest(opened)
    return opened


def _words_manifest(opened: OpenedSource) -> LocalManifest | None:
    """Class names from a words.txt beside a folder of wnid classes the built-in table lacks."""
    folder = opened.base_dir
    names = words_names(folder, opened.table.features["label"].names) if folder is not None else None
    return LocalManifest(path=folder / WORDS_TXT, classnames=names) if names else None


def folder_splits(path: Path) -> list[str]:
    """The split folders (train/, test/ ...) holding images."""
    return list(split_folders(path)) if path.is_dir() else []


def is_image_folder(path: Path) -> bool:
    """A folder with an image file anywhere below it (the catch-all layout, tried last)."""
    return path.is_dir() and has_images(path)


register_reader(Reader("folders", is_image_folder, open_image_folder, folder_splits, priority=90,
                       description="an image folder DIR/<class>/*.jpg, or DIR/<split>/<class>/*.jpg"))
