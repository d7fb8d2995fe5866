"""The dataset table: one `DatasetSpec` per registered name (architecture: "a dataset is one spec entry").

A spec says where the data lives (a hub id and/or a shipped folder), how its splits are called there, its
class names in label order, its prompt templates and its resize mode (spec §6 transform column).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tgazsr_cli.data.classfiles import read_classnames
from tgazsr_cli.data.names import wnid_names
from tgazsr_cli.errors import UsageError, unknown_name

RESIZE_MODES = ("resize_crop", "resize")
ALL_SPLITS = "all"  # a spec's split value meaning "the whole set": all local splits concatenated
DEFAULT_TEMPLATES = ("This is a photo of a {}",)  # spec §3/§6: TGA-ZSR's prompt for most datasets
LOCAL_LAYOUTS = (
    "a folder of parquet files as on the hub, a single .parquet file, a datasets save_to_disk folder, "
    "webdataset .tar shards, or an image folder DIR/<class>/*.jpg"
)


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset. `splits` maps our split names (train/test/val) to the source's names;
    the source name "all" means every split of a local copy concatenated (whole-set evaluation, spec §6)."""

    name: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    resize_mode: str
    hub_id: str | None
    splits: dict[str, str]
    description: str
    local_path: str | None = None  # a shipped folder read through the local parquet path
    layout_hint: str = LOCAL_LAYOUTS  # what a local copy given with --data-dir may look like
    extra: dict[str, str] = field(default_factory=dict)  # manifest facts (license, provenance)
    exclude_classes: tuple[str, ...] = ()  # source class names whose examples are dropped (not real classes)
    class_keys: tuple[str, ...] = ()  # raw source names (e.g. wnids) in label order, when they differ from names
    # folder names the downloads unpack to, looked for under --data-dir ROOT besides ROOT/<name> (localcopy.py)
    folder_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise UsageError(f"dataset '{self.name}': resize_mode must be one of {', '.join(RESIZE_MODES)}, "
                             f"got '{self.resize_mode}'")
        if not self.templates or any("{}" not in t for t in self.templates):
            raise UsageError(f"dataset '{self.name}': every prompt template needs '{{}}' for the class name")
        if not self.classnames:
            raise UsageError(f"dataset '{self.name}': no class names")


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add `spec` to the table; a name is registered once unless `replace`."""
    if spec.name in _REGISTRY and not replace:
        raise UsageError(f"dataset '{spec.name}' is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_dataset(name: str) -> None:
    """Remove a name from the table (tests, plugins); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def list_datasets() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(_REGISTRY)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec of a registered name; UsageError with a did-you-mean otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("dataset", name, _REGISTRY) from None


def is_registered(name: str) -> bool:
    """True when `name` is in the table."""
    return name in _REGISTRY


TINYIMAGENET = register_dataset(DatasetSpec(
    name="tinyimagenet",
    classnames=tuple(wnid_names().values()),
    templates=DEFAULT_TEMPLATES,
    resize_mode="resize_crop",
    hub_id="zh-plus/tiny-imagenet",
    splits={"train": "train", "test": "valid", "val": "valid", "valid": "valid", "validation": "valid"},
    description="Tiny-ImageNet, 200 classes, 64x64: train 100k (TGA-ZSR's training set), valid 10k (eval)",
    layout_hint=("the hub's parquet files (train-*.parquet, valid-*.parquet), the original tiny-imagenet-200 "
                 "folder (train/<wnid>/images, val/images + val_annotations.txt), or DIR/<wnid>/*.JPEG"),
    folder_names=("tiny-imagenet-200", "tiny-imagenet"),  # the original zip; a download of the hub copy
))


IMAGENET = register_dataset(DatasetSpec(
    name="imagenet",
    classnames=read_classnames("imagenet"),  # OpenAI's curated names (classnames/imagenet.txt)
    templates=DEFAULT_TEMPLATES,
    resize_mode="resize_crop",
    hub_id="ILSVRC/imagenet-1k",
    splits={"train": "train", "test": "validation", "val": "validation", "valid": "validation",
            "validation": "validation"},
    description="ImageNet-1k (gated on the hub: accept its terms and log in), train 1.28M, validation 50k",
    layout_hint=("the hub's parquet files (data/train-*.parquet, data/validation-*.parquet) or "
                 "DIR/<wnid>/*.JPEG in class-index (sorted wnid) order"),
    folder_names=("imagenet-1k", "imagenet1k", "wds_imagenet1k"),
))
