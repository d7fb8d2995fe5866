"""Data layer (spec §3, §6): the dataset table read from data files, source readers, loaders, transforms.

Public interface: `DatasetSpec`, `SplitSpec`, `list_datasets`, `get_dataset_spec`, `ImageClassificationData`,
`load_image_dataset`, `build_transform`, `collate_skip_broken`. A dataset is one data file: `datasets/<name>.yaml`
(or one in a `$TGAZSR_DATASET_PATH` folder, or a shipped `builtin/<name>/manifest.json`); importing this package
fills the table from those files only. The loaders (torch, torchvision, `datasets`) are imported on first use,
so listing names stays cheap.
"""

from __future__ import annotations

from tgazsr_cli.data.catalog import ENV_PATH, register_all, spec_from_yaml
from tgazsr_cli.data.classnames import readable_classname, wnid_names
from tgazsr_cli.data.sources.builtin import BUILTIN_ROOT, discover_shipped, register_shipped
from tgazsr_cli.data.specs import (
    DEFAULT_TEMPLATES,
    RESIZE_MODES,
    DatasetSpec,
    SplitSpec,
    get_dataset_spec,
    list_datasets,
    register_dataset,
    unregister_dataset,
)
from tgazsr_cli.runtime.lazy import lazy_exports

register_all()

__getattr__ = lazy_exports(__name__, {  # these import torch, torchvision or `datasets`: loaded on first use
    "HFImageDataset": ".dataset",
    "collate_skip_broken": ".dataset",
    "ImageClassificationData": ".loading",
    "load_image_dataset": ".loading",
    "seeded_subset": ".reading",
    "build_transform": ".transforms",
})


__all__ = [
    "BUILTIN_ROOT",
    "DEFAULT_TEMPLATES",
    "ENV_PATH",
    "RESIZE_MODES",
    "DatasetSpec",
    "HFImageDataset",
    "ImageClassificationData",
    "SplitSpec",
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
    "spec_from_yaml",
    "unregister_dataset",
    "wnid_names",
]
