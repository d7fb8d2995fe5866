"""Data layer (spec §3, §6): dataset table, loaders (hub, parquet, save_to_disk, image folders), transforms.

Public interface: `DatasetSpec`, `list_datasets`, `get_dataset_spec`, `ImageClassificationData`,
`load_image_dataset`, `build_transform`, `collate_skip_broken`. The `datasets` library is imported only when
something is loaded, so listing names stays cheap.
"""

from __future__ import annotations

from tgazsr_cli.engine.data.dataset import HFImageDataset, collate_skip_broken
from tgazsr_cli.engine.data.loading import ImageClassificationData, load_image_dataset, seeded_subset
from tgazsr_cli.engine.data.names import readable_classname, wnid_names
from tgazsr_cli.engine.data.shipped import BUILTIN_ROOT, discover_shipped, register_shipped
from tgazsr_cli.engine.data.specs import (
    DEFAULT_TEMPLATES,
    RESIZE_MODES,
    DatasetSpec,
    get_dataset_spec,
    list_datasets,
    register_dataset,
    unregister_dataset,
)
from tgazsr_cli.engine.data.transforms import build_transform
from tgazsr_cli.engine.data.zeroshot_specs import register_zeroshot_specs

register_zeroshot_specs()
register_shipped(BUILTIN_ROOT)

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
