"""Data layer (spec §3, §6): dataset table, loaders (hub, parquet, save_to_disk, image folders), transforms.

Public interface: `DatasetSpec`, `list_datasets`, `get_dataset_spec`, `ImageClassificationData`,
`load_image_dataset`, `build_transform`, `collate_skip_broken`. Importing this package fills the dataset table
from data files only; the loaders (torch, torchvision, `datasets`) are imported on first use, so listing
names stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from tgazsr_cli.data.names import readable_classname, wnid_names
from tgazsr_cli.data.shipped import BUILTIN_ROOT, discover_shipped, register_shipped
from tgazsr_cli.data.specs import (
    DEFAULT_TEMPLATES,
    RESIZE_MODES,
    DatasetSpec,
    get_dataset_spec,
    list_datasets,
    register_dataset,
    unregister_dataset,
)
from tgazsr_cli.data.zeroshot_specs import register_zeroshot_specs

register_zeroshot_specs()
register_shipped(BUILTIN_ROOT)

_LAZY = {  # name -> module that defines it, imported when the name is first used
    "HFImageDataset": "dataset",
    "collate_skip_broken": "dataset",
    "ImageClassificationData": "loading",
    "load_image_dataset": "loading",
    "seeded_subset": "loading",
    "build_transform": "transforms",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUILTIN_ROOT",
    "DEFAULT_TEMPLATES",
    "RESIZE_MODES",
    "DatasetSpec",
    "HFImageDataset",
    "ImageClassificationData",
    "build_transform",
    "collate_skip_broken",
    "discover_shipped",
    "get_dataset_spec",
    "list_datasets",
    "load_image_dataset",
    "readable_classname",
    "register_dataset",
    "register_shipped",
    "seeded_subset",
    "unregister_dataset",
    "wnid_names",
]
