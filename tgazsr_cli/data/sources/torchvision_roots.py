"""Torchvision's download folders (``cifar-10-batches-py``, ``stl10_binary``, ``food-101`` ...), read by
torchvision's own dataset classes with ``download=False``.

Users of the TeCoA / TGA-ZSR / AGFT / UCAT code keep the folders torchvision unpacked. Their pickles, binary
arrays, ``.mat`` and split files are read by torchvision, the well-kept reader of these formats, never here.
Torchvision finds a copy as ``root/<its folder>``, so a copy is recognised by that folder's name and a few
marker files, and opened with ``root`` = the folder's parent.

Label order: torchvision's ``classes`` are mapped onto the registered dataset's class order explicitly (by the
names, cleaned as the dataset's class-name file says), and a copy whose class set differs is refused in one
line: a label never silently stands for another class. The table carries the dataset's own class names.

Images: the array formats (CIFAR, STL-10) are stored as uncompressed BMP bytes, pixels exactly as torchvision
returns them; the file formats keep their image paths, decoded later like an image folder's.

Integrity: the files torchvision reads must exist; their md5 sums are not checked. The sums guard a download
(torchvision checks them even with ``download=False``); a damaged file still fails when torchvision reads it,
and hashing STL-10's 2.6 GB ``unlabeled_X.bin`` to read its test split would cost more than the read.

Read: cifar10, cifar100, stl10, food101, pets, dtd (partition 1), aircraft (variants), flowers102, cars.
Not read here: PCAM (torchvision needs h5py, not a dependency), Country211 (not a registered dataset), and
EuroSAT, Caltech-101/256 and SUN397, whose torchvision folders are plain image folders that the ``folders``
and ``sun397`` readers already read.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgazsr_cli.data.classnames import match_key
from tgazsr_cli.data.sources.base import LocalManifest, OpenedSource, Reader, first_line, register_reader
from tgazsr_cli.data.specs import DatasetSpec, get_dataset_spec
from tgazsr_cli.data.splits import resolve_split
from tgazsr_cli.errors import RuntimeFailure, TgazsrError, UsageError


@dataclass
class Listed:
    """One split as torchvision lists it: image values (`datasets.Image` structs), its labels, its classes."""

    images: list[dict[str, Any]]
    labels: list[int]
    classes: list[str] | None  # torchvision's names in its label order; None: the format has no names
    skipped: int = 0  # listed image files that are not on disk


@dataclass(frozen=True)
class TorchvisionLayout:
    """One torchvision dataset class and the folder it reads."""

    dataset: str  # the registered dataset whose class order the labels are mapped onto
    torchvision_class: str
    folder: tuple[str, ...]  # the folder(s) torchvision expects under its root (DTD nests dtd/dtd)
    markers: tuple[str, ...]  # paths inside the folder that every copy has
    splits: dict[str, str]  # our split name -> torchvision's split argument (disjoint splits only)
    read: Callable[[Path, str], Listed]  # (torchvision root, torchvision split) -> that split
    rename: Callable[[str], str] = field(default=lambda name: name)  # torchvision's name -> the spec's name
    needs: str | None = None  # a module torchvision needs for this format and we do not depend on
    required: tuple[str, ...] = ()  # the files torchvision checks before reading any split (named when missing)


# -- reading through torchvision -----------------------------------------------------------------------------

def _without_md5(files: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """A torchvision file list with the md5 sums removed (`check_integrity(path, None)`: existence only)."""
    return [[entry[0], None] for entry in files]


def _bmp(data: Any) -> list[dict[str, Any]]:
    """Every image of an array dataset, as torchvision's `__getitem__` gives it (STL-10's transposition
    included), encoded losslessly; BMP rather than PNG: 5-10x faster to write, and these are 32-96 px images."""
    values = []
    for index in range(len(data)):
        image, _ = data[index]
        buffer = io.BytesIO()
        image.save(buffer, format="BMP")
        values.append({"bytes": buffer.getvalue(), "path": None})
    return values


def _cifar(class_name: str) -> Callable[[Path, str], Listed]:
    def read(root: Path, split: str) -> Listed:
        from torchvision import datasets as tv

        base = getattr(tv, class_name)
        present = type(class_name, (base,), {"train_list": _without_md5(base.train_list),
                                             "test_list": _without_md5(base.test_list),
                                             "meta": {**base.meta, "md5": None}})
        data = present(str(root), train=split == "train", download=False)
        return Listed(_bmp(data), [int(y) for y in data.targets], [str(c) for c in data.classes])
    return read


def _stl10(root: Path, split: str) -> Listed:
    from torchvision.datasets import STL10

    present = type("STL10", (STL10,), {"train_list": _without_md5(STL10.train_list),
                                       "test_list": _without_md5(STL10.test_list)})
    data = present(str(root), split=split, download=False)
    if getattr(data, "classes", None) is None:  # torchvision reads the names only when the file is there
        raise UsageError(f"{root / STL10.base_folder / STL10.class_names_file} is missing; the labels cannot be "
                         "checked against the class names without it")
    return Listed(_bmp(data), [int(y) for y in data.labels], [str(c) for c in data.classes])


def _paths(files: Sequence[Any], labels: Sequence[Any]) -> Listed:
    """Image paths (undecoded) and labels; listed files that are missing are dropped and counted."""
    kept = [(Path(file), int(label)) for file, label in zip(files, labels, strict=True) if Path(file).is_file()]
    return Listed([{"bytes": None, "path": str(file)} for file, _ in kept], [label for _, label in kept],
                  None, skipped=len(files) - len(kept))


def _listing(data: Any, *attributes: str) -> list[Any]:
    """The file lists a torchvision class keeps (no public accessor: `__getitem__` would decode every image)."""
    try:
        return [getattr(data, name) for name in attributes]
    except AttributeError as error:
        import torchvision

        raise RuntimeFailure(f"torchvision {torchvision.__version__}'s {type(data).__name__} no longer lists its "
                             f"files as {', '.join(attributes)}: {first_line(error)}") from error


def _files(class_name: str, files: str, *, named: bool = True, md5_free: str | None = None,
           **options: Any) -> Callable[[Path, str], Listed]:
    """A reader for a torchvision class that lists image files (`files`, `_labels`) and, when `named`, classes.

    `md5_free`: the class attribute holding `{key: (file, md5)}` whose sums are dropped (Flowers-102's .mat files).
    """
    def read(root: Path, split: str) -> Listed:
        from torchvision import datasets as tv

        cls = getattr(tv, class_name)
        if md5_free is not None:
            table = {key: (entry[0], None) for key, entry in getattr(cls, md5_free).items()}
            cls = type(class_name, (cls,), {md5_free: table})
        data = cls(str(root), split=split, download=False, **options)
        listed = _paths(*_listing(data, files, "_labels"))
        listed.classes = [str(c) for c in data.classes] if named else None
        return listed
    return read


def _cars(root: Path, split: str) -> Listed:
    from torchvision.datasets import StanfordCars

    data = StanfordCars(str(root), split=split, download=False)
    (samples,) = _listing(data, "_samples")
    listed = _paths([file for file, _ in samples], [label for _, label in samples])
    listed.classes = [str(c) for c in data.classes]
    return listed


def _boeing(name: str) -> str:
    """TGA-ZSR's aircraft names: 'Boeing ' before the variants that start with 7 (707-320 ...)."""
    return f"Boeing {name}" if name.startswith("7") else name


LAYOUTS: tuple[TorchvisionLayout, ...] = (
    TorchvisionLayout("cifar10", "CIFAR10", ("cifar-10-batches-py",), ("batches.meta",),
                      {"train": "train", "test": "test"}, _cifar("CIFAR10"),
                      required=(*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")),
    TorchvisionLayout("cifar100", "CIFAR100", ("cifar-100-python",), ("meta",),
                      {"train": "train", "test": "test"}, _cifar("CIFAR100"), required=("train", "test")),
    TorchvisionLayout("stl10", "STL10", ("stl10_binary",), ("test_X.bin",),
                      {"train": "train", "test": "test"}, _stl10,
                      required=("train_X.bin", "train_y.bin", "unlabeled_X.bin", "test_y.bin")),
    TorchvisionLayout("food101", "Food101", ("food-101",), ("images", "meta/test.json"),
                      {"train": "train", "test": "test"}, _files("Food101", "_image_files")),
    TorchvisionLayout("pets", "OxfordIIITPet", ("oxford-iiit-pet",), ("images", "annotations/test.txt"),
                      {"train": "trainval", "test": "test"},
                      _files("OxfordIIITPet", "_images", target_types="category")),
    TorchvisionLayout("dtd", "DTD", ("dtd", "dtd"), ("images", "labels/test1.txt"),
                      {"train": "train", "validation": "val", "test": "test"},
                      _files("DTD", "_image_files", partition=1)),
    TorchvisionLayout("aircraft", "FGVCAircraft", ("fgvc-aircraft-2013b",), ("data/variants.txt", "data/images"),
                      {"train": "train", "validation": "val", "test": "test"},
                      _files("FGVCAircraft", "_image_files", annotation_level="variant"), rename=_boeing),
    # imagelabels.mat holds numbers 1..102 in the order of the dataset's list: there are no names to compare
    TorchvisionLayout("flowers102", "Flowers102", ("flowers-102",), ("jpg", "imagelabels.mat", "setid.mat"),
                      {"train": "train", "validation": "val", "test": "test"},
                      _files("Flowers102", "_image_files", named=False, md5_free="_file_dict"), needs="scipy"),
    # the spec's names are cars_meta.mat's without the year (last 5 characters), 7 of them twice
    TorchvisionLayout("cars", "StanfordCars", ("stanford_cars",), ("devkit/cars_meta.mat",),
                      {"train": "train", "test": "test"}, _cars, rename=lambda name: name[:-5], needs="scipy"),
)


# -- label order ---------------------------------------------------------------------------------------------

def _some(names: Sequence[str]) -> str:
    return ", ".join(names[:5]) + ("..." if len(names) > 5 else "")


def spec_order(classes: Sequence[str] | None, layout: TorchvisionLayout, spec: DatasetSpec, where: str) -> list[int]:
    """Torchvision label -> the spec's label; UsageError (one line) when the class sets differ.

    Names are compared as `match_key` makes them (case, '_' and '-' ignored) after the layout's renaming.
    Names the spec lists twice (cars) cannot say which is which: such copies must list them in the spec's order.
    """
    wanted = [match_key(name) for name in spec.classnames]
    if classes is None:  # numbered classes only, in the spec's order (labels past its classes are refused)
        return list(range(len(wanted)))
    found = [match_key(layout.rename(name)) for name in classes]
    extra = [name for name, key in zip(classes, found, strict=True) if key not in wanted]
    missing = [name for name, key in zip(spec.classnames, wanted, strict=True) if key not in found]
    if extra or missing or sorted(found) != sorted(wanted):
        raise UsageError(
            f"{where}: torchvision's {layout.torchvision_class} classes differ from dataset '{spec.name}' "
            f"(torchvision lists {len(classes)}, the dataset {len(wanted)}; not in the dataset: "
            f"{_some(extra) or 'none'}; missing: {_some(missing) or 'none'})")
    if len(set(wanted)) == len(wanted):
        index = {key: i for i, key in enumerate(wanted)}
        return [index[key] for key in found]
    if found != wanted:
        raise UsageError(f"{where}: torchvision's {layout.torchvision_class} lists the classes in another order "
                         f"than dataset '{spec.name}', and some names occur twice: the labels cannot be mapped")
    return list(range(len(wanted)))


# -- the reader ----------------------------------------------------------------------------------------------

def layout_of(path: Path) -> TorchvisionLayout | None:
    """The torchvision layout `path` has: its name is torchvision's folder and the marker paths exist."""
    parts = path.absolute().parts  # a relative 'dtd' inside ROOT/dtd still ends in dtd/dtd
    for layout in LAYOUTS:
        if parts[-len(layout.folder):] == layout.folder and all((path / m).exists() for m in layout.markers):
            return layout
    return None


def is_torchvision_copy(path: Path) -> bool:
    """True for a folder torchvision reads (`layout_of`)."""
    return path.is_dir() and layout_of(path) is not None


def _read(layout: TorchvisionLayout, path: Path, split: str, where: str) -> Listed:
    if layout.needs is not None and importlib.util.find_spec(layout.needs) is None:
        raise RuntimeFailure(f"{where}: torchvision needs {layout.needs} to read this copy; "
                             f"pip install {layout.needs}")
    try:
        return layout.read(path.absolute().parents[len(layout.folder) - 1], split)
    except TgazsrError:
        raise
    except Exception as error:  # torchvision raises RuntimeError, OSError, pickle and scipy errors for bad files
        missing = [name for name in (*layout.markers, *layout.required) if not (path / name).exists()]
        if missing:  # torchvision's own line would suggest download=True
            raise RuntimeFailure(f"{where}: missing {', '.join(missing)} (torchvision checks every file of the "
                                 "download, whatever the split)") from error
        raise RuntimeFailure(f"torchvision could not read {where}: {first_line(error)}") from error


def open_torchvision(path: Path, split: str) -> OpenedSource:
    """One split of a torchvision folder, labelled in the registered dataset's class order."""
    import datasets

    layout = layout_of(path)
    if layout is None:
        raise RuntimeFailure(f"{path} is not a folder torchvision reads")
    chosen = resolve_split(split, layout.splits, where=str(path))
    where = f"{path} (torchvision {layout.torchvision_class}, split {layout.splits[chosen]})"
    listed = _read(layout, path, layout.splits[chosen], where)
    spec = get_dataset_spec(layout.dataset)
    mapping = spec_order(listed.classes, layout, spec, where)
    bad = sorted({label for label in listed.labels if not 0 <= label < len(mapping)})
    if bad:
        raise UsageError(f"{where}: labels {_some([str(b) for b in bad])} are outside the {len(mapping)} classes "
                         f"of dataset '{spec.name}'")
    names = list(spec.classnames)
    # names the spec lists twice (cars) cannot be a ClassLabel: plain integers, the names come with the manifest
    label = datasets.ClassLabel(names=names) if len(set(names)) == len(names) else datasets.Value("int64")
    features = datasets.Features({"image": datasets.Image(decode=False), "label": label})
    table = datasets.Dataset.from_dict(
        {"image": listed.images, "label": [mapping[y] for y in listed.labels]}, features=features)
    manifest = LocalManifest(path=path, name=spec.name, classnames=spec.classnames, templates=spec.templates,
                             resize_mode=spec.resize_mode, description=spec.description)
    return OpenedSource(table=table, description=where, split=chosen, name=spec.name, base_dir=path,
                        skipped=listed.skipped, manifest=manifest)


def torchvision_splits(path: Path) -> list[str]:
    """Our names of the disjoint splits torchvision reads from this folder."""
    layout = layout_of(path) if path.is_dir() else None
    return list(layout.splits) if layout is not None else []


register_reader(Reader("torchvision", is_torchvision_copy, open_torchvision, torchvision_splits, priority=15,
                       description="a torchvision download folder (cifar-10-batches-py, stl10_binary, food-101 ...)"))
