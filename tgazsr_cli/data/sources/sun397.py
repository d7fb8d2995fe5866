"""The original SUN397 archive layout (spec §6: SUN397 is scored on all ~108.7k images, no split).

``SUN397/ClassName.txt`` lists the classes as ``/a/apartment_building/outdoor``; the images lie in
``SUN397/a/apartment_building/outdoor/sun_*.jpg``. A class is the image's folder path without the leading letter
folder, as in torchvision's and TGA-ZSR's SUN397 loaders; the class-label names use spaces for ``_`` and ``/``
so they match the registered spec's names (``apartment building outdoor``).
"""

from __future__ import annotations

from pathlib import Path

from tgazsr_cli.data.sources.base import OpenedSource, Reader, register_reader
from tgazsr_cli.data.sources.folders import is_image_file
from tgazsr_cli.errors import UsageError

CLASS_LIST = "ClassName.txt"


def is_sun397_root(path: Path) -> bool:
    """True for a folder holding SUN397's ClassName.txt."""
    return path.is_dir() and (path / CLASS_LIST).is_file()


def _label_name(raw: str) -> str:
    return raw.strip().strip("/").split("/", 1)[-1].replace("_", " ").replace("/", " ")


def open_sun397(root: Path, split: str = "all") -> OpenedSource:
    """Every image of a SUN397 folder, labelled by ClassName.txt order (the archive has no splits)."""
    import datasets

    classes = [line.strip() for line in (root / CLASS_LIST).read_text(encoding="utf-8").splitlines() if line.strip()]
    index = {c.strip("/").split("/", 1)[-1]: i for i, c in enumerate(classes)}
    paths, labels = [], []
    for image in sorted(root.rglob("*")):
        relative = image.relative_to(root)
        if not image.is_file() or not is_image_file(image) or len(relative.parts) < 3:
            continue
        key = "/".join(relative.parts[1:-1])
        if key not in index:
            raise UsageError(f"{image}: folder '{key}' is not a class of {root / CLASS_LIST}")
        paths.append(str(image))
        labels.append(index[key])
    if not paths:
        raise UsageError(f"no images under the class folders of {root} (expected {root}/a/abbey/sun_*.jpg)")
    features = datasets.Features({"image": datasets.Image(decode=False),
                                  "label": datasets.ClassLabel(names=[_label_name(c) for c in classes])})
    table = datasets.Dataset.from_dict(
        {"image": [{"bytes": None, "path": p} for p in paths], "label": labels}, features=features)
    return OpenedSource(table=table, description=f"{root} labelled by {CLASS_LIST}", split="all",
                        name=root.name, base_dir=root)


register_reader(Reader("sun397", is_sun397_root, open_sun397, priority=40,
                       description="the SUN397 archive folder (ClassName.txt + a/abbey/sun_*.jpg), one set"))
