"""The dataset table: `DatasetSpec` / `SplitSpec` and the registry of specs by name (filled by catalog.py).

A spec says where the data lives (a hub id and/or a local folder), how its splits are called there and how big
they are, its class names in label order, its prompt templates and its resize mode (spec §6 transform column).
Specs are written as data files (`datasets/<name>.yaml`, shipped `builtin/<name>/manifest.json`); this module
only holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tgazsr_cli.errors import UsageError, unknown_name

RESIZE_MODES = ("resize_crop", "resize")
ALL_SPLITS = "all"  # a split's source name meaning "the whole set": all local splits concatenated
DEFAULT_TEMPLATES = ("This is a photo of a {}",)  # spec §3/§6: TGA-ZSR's prompt for most datasets
LOCAL_LAYOUTS = (
    "a folder of parquet files as on the hub, a single .parquet file, a datasets save_to_disk folder, "
    "webdataset .tar shards, or an image folder DIR/<class>/*.jpg"
)
# what `{generic}` in a dataset file's layout hint stands for: the layouts any dataset's copy may have
GENERIC_LAYOUTS = ("a folder of parquet files, a datasets save_to_disk folder, webdataset .tar shards "
                   "(<key>.cls + <key>.jpg/.webp), or an image folder DIR/<class>/*.jpg")


@dataclass(frozen=True)
class SplitSpec:
    """One of our splits: its name at the source (hub split / local split, `ALL_SPLITS` = every split of a local
    copy concatenated) and its number of examples when known."""

    source: str
    size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset. `splits` maps our split names (train/test/val and aliases) to a `SplitSpec`
    (a plain string given instead is taken as the source name: `{"test": "valid"}`)."""

    name: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    resize_mode: str
    hub_id: str | None
    splits: dict[str, SplitSpec]
    description: str
    local_path: str | None = None  # a folder holding the data (shipped, or named by a dataset file)
    layout_hint: str = LOCAL_LAYOUTS  # what a local copy given with --data-dir may look like
    extra: dict[str, str] = field(default_factory=dict)  # manifest facts (license, provenance)
    exclude_classes: tuple[str, ...] = ()  # source class names whose examples are dropped (not real classes)
    class_keys: tuple[str, ...] = ()  # raw source names (e.g. wnids) in label order, when they differ from names
    # folder names the downloads unpack to, looked for under --data-dir ROOT besides ROOT/<name> (local.py)
    folder_names: tuple[str, ...] = ()
    defined_in: str | None = field(default=None, compare=False)  # the data file the spec was read from

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise UsageError(f"dataset '{self.name}': resize_mode must be one of {', '.join(RESIZE_MODES)}, "
                             f"got '{self.resize_mode}'")
        if not self.templates or any("{}" not in t for t in self.templates):
            raise UsageError(f"dataset '{self.name}': every prompt template needs '{{}}' for the class name")
        if not self.classnames:
            raise UsageError(f"dataset '{self.name}': no class names")
        if self.class_keys and len(self.class_keys) != len(self.classnames):
            raise UsageError(f"dataset '{self.name}': {len(self.class_keys)} class keys for "
                             f"{len(self.classnames)} class names")
        splits = {name: split if isinstance(split, SplitSpec) else SplitSpec(str(split))
                  for name, split in self.splits.items()}
        object.__setattr__(self, "splits", splits)  # frozen: set once, here

    def source_split(self, split: str) -> str:
        """The name at the source of our `split` (the name itself when the spec does not map it)."""
        entry = self.splits.get(split)
        return entry.source if entry is not None else split

    def split_size(self, split: str) -> int | None:
        """The number of examples of `split` as the spec states it, or None when it does not."""
        entry = self.splits.get(split)
        return entry.size if entry is not None else None


_REGISTRY: dict[str, DatasetSpec] = {}
_LOOKUP_HOOKS: list[Callable[[], None]] = []  # run before each lookup (catalog.py: $TGAZSR_DATASET_PATH)
_in_hook = False


def add_lookup_hook(hook: Callable[[], None]) -> None:
    """Run `hook` before every lookup of the table (it may register or unregister specs)."""
    if hook not in _LOOKUP_HOOKS:
        _LOOKUP_HOOKS.append(hook)


def _refresh() -> None:
    global _in_hook
    if _in_hook:
        return
    _in_hook = True
    try:
        for hook in _LOOKUP_HOOKS:
            hook()
    finally:
        _in_hook = False


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add `spec` to the table; a name is registered once unless `replace`."""
    if spec.name in _REGISTRY and not replace:
        where = f" (by {_REGISTRY[spec.name].defined_in})" if _REGISTRY[spec.name].defined_in else ""
        raise UsageError(f"dataset '{spec.name}' is already registered{where}")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_dataset(name: str) -> None:
    """Remove a name from the table (tests, plugins); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def list_datasets() -> list[str]:
    """The registered dataset names, sorted."""
    _refresh()
    return sorted(_REGISTRY)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec of a registered name; UsageError with a did-you-mean otherwise."""
    _refresh()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("dataset", name, _REGISTRY) from None


def is_registered(name: str) -> bool:
    """True when `name` is in the table."""
    _refresh()
    return name in _REGISTRY
