"""`load_image_dataset`: any source name -> an `ImageClassificationData` ready for a DataLoader (spec §3, §6).

Sources: a registered name (hub id, shipped folder, or a local copy given with `data_dir`); ``hf:ORG/NAME``;
a local path (any layout a reader of `sources/` recognises: parquet, save_to_disk, webdataset shards, image
folders, the original tiny-imagenet-200 folder ...). Each is opened into one `datasets.Dataset` split
(`sources/hub.py`, or `local.py` through the readers); from there one code path finds the columns, fixes class
names and label order, takes the seeded subset and wraps it for torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from tgazsr_cli.data.dataset import HFImageDataset
from tgazsr_cli.data.labels import (
    check_labels,
    drop_labels,
    excluded_labels,
    label_names,
    prepare_table,
    resolve_for_spec,
)
from tgazsr_cli.data.local import (
    LocalCopyMissing,
    datasets_hint,
    find_local_copy,
    is_copy_itself,
    looked_at,
    open_local,
    open_whole,
)
from tgazsr_cli.data.reading import renamed_classes, select_examples, shard_sizes
from tgazsr_cli.data.sources.base import LocalManifest, OpenedSource
from tgazsr_cli.data.sources.hub import open_hub, parse_hub_source
from tgazsr_cli.data.specs import ALL_SPLITS, DEFAULT_TEMPLATES, DatasetSpec, is_registered, list_datasets
from tgazsr_cli.data.transforms import build_transform, check_transform_args, transform_for
from tgazsr_cli.data.views import DatasetView, Selection
from tgazsr_cli.errors import RuntimeFailure, UsageError, unknown_name

if TYPE_CHECKING:
    import datasets


@dataclass
class ImageClassificationData:
    """A labelled image split with the class names and prompt templates that zero-shot needs."""

    dataset: torch.utils.data.Dataset  # items: (FloatTensor [3,H,W] in [0,1], int label), None when broken
    classnames: list[str]
    templates: list[str]
    name: str
    split: str
    source: str  # human-readable: hub id / path actually read, split, subset
    num_skipped: int = 0  # examples dropped while listing the source (see dataset.py for decode failures)
    class_templates: list[list[str]] | None = None  # per-class prompts when datasets are mixed (combined.py)
    # native resolution (a protocol's CIFAR/STL): (interpolation, antialias) the model resizes with, inside
    resize_inside: tuple[str, bool] | None = None

    def labels(self) -> list[int]:
        """Every example's label; without decoding images when the dataset can say (undecodable ones: -1)."""
        if hasattr(self.dataset, "all_labels"):
            return self.dataset.all_labels()
        items = (self.dataset[i] for i in range(len(self.dataset)))  # type: ignore[arg-type]
        return [int(item[1]) if item is not None else -1 for item in items]


def _looks_like_path(source: str) -> bool:
    return (os.sep in source or "/" in source or source.startswith((".", "~"))
            or source.lower().endswith(".parquet") or os.path.exists(source))


def quiet_datasets() -> None:
    """The `datasets` library's own progress bars would interleave with ours: keep them off."""
    import datasets

    datasets.disable_progress_bars()


def _open_data_dir(spec: DatasetSpec, data_dir: str, local: Callable[..., OpenedSource]) -> OpenedSource:
    """The copy of `spec` given with --data-dir: a folder under it with a usual name (localcopy), else itself."""
    found = find_local_copy(spec.name, data_dir)
    what = f"--data-dir for {spec.name}"
    if found is not None:
        return local(Path(found), layout_hint=spec.layout_hint, what=what)
    root = Path(data_dir).expanduser()
    others = datasets_hint(root, wanted=spec.name)
    if others:  # a folder of other datasets' copies: reading it as this one would mix them up
        raise LocalCopyMissing(f"{what}: {root} holds no copy of {spec.name} ({looked_at(spec.name, root)}){others}")
    try:
        return local(root, layout_hint=spec.layout_hint, what=what)
    except LocalCopyMissing as error:
        raise LocalCopyMissing(f"{error}; {looked_at(spec.name, root)}") from None


def _open_registered(
    spec: DatasetSpec, split: str, data_dir: str | None, data_root: str | None,
) -> OpenedSource:
    wanted = spec.source_split(split)
    local = open_whole if wanted == ALL_SPLITS else partial(open_local, split=wanted)
    if data_dir is None and data_root is not None:  # a root of copies: this one's, if there, else as without
        data_dir = find_local_copy(spec.name, data_root)
    missing = f"; no copy under --data-dir either ({looked_at(spec.name, data_root)})" if data_root else ""
    if data_dir is not None:
        return _open_data_dir(spec, data_dir, local)
    if spec.local_path is not None:
        return local(Path(spec.local_path), layout_hint=spec.layout_hint, what=f"shipped folder of {spec.name}")
    if spec.hub_id is not None:
        try:
            return open_hub(spec.hub_id, wanted, name=spec.name, layout_hint=spec.layout_hint)
        except RuntimeFailure as error:
            raise RuntimeFailure(f"{error}{missing}") from error.__cause__
    raise RuntimeFailure(f"dataset '{spec.name}' has no hub id; pass a copy with --data-dir DIR "
                         f"({spec.layout_hint}){missing}")


def _refuse_parent_folder(path: Path) -> None:
    """A path that holds dataset folders rather than being one would be read as one odd dataset: say so."""
    hint = datasets_hint(path.expanduser())
    if hint and not is_copy_itself(path.expanduser()):
        raise UsageError(f"{path} is not a dataset folder{hint}")


def open_source(
    source: str, split: str, data_dir: str | None, data_root: str | None = None, hub: tuple[str, str] | None = None,
) -> tuple[OpenedSource, DatasetSpec | None]:
    """Find and open the split that `source` names (no decoding yet); `hub` = (id, split) of another hub copy
    of a registered dataset than its file's (a protocol's), read when no local copy is given."""
    quiet_datasets()
    from tgazsr_cli.data.specs import SplitSpec, get_dataset_spec

    if is_registered(source):
        spec = get_dataset_spec(source)
        if hub is not None:
            spec = replace(spec, hub_id=hub[0], splits={**spec.splits, split: SplitSpec(hub[1])})
        opened = _open_registered(spec, split, data_dir, data_root)
        opened.name = spec.name
        return opened, spec
    if source.startswith("hf:"):
        hub_id, config = parse_hub_source(source)
        if data_dir is not None:
            opened = open_local(Path(data_dir), split, what=f"--data-dir for {hub_id}")
            opened.name = hub_id
            return opened, None
        return open_hub(hub_id, split, config=config, name=hub_id), None
    if _looks_like_path(source):
        if data_dir is not None:
            raise UsageError("--data-dir is for registered and hf: datasets; give the path as the dataset")
        _refuse_parent_folder(Path(source))
        return open_local(Path(source), split), None
    error = unknown_name("dataset", source, list_datasets())
    raise UsageError(f"{error}; or give a local path or hf:ORG/NAME")


def _read_labels(table: datasets.Dataset, label_column: str, where: str) -> np.ndarray:
    column = table.with_format("arrow")[label_column]
    if column.null_count:
        raise UsageError(f"{where}: {column.null_count} examples have no label")
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def _dataset_defaults(
    spec: DatasetSpec | None, manifest: LocalManifest | None,
) -> tuple[tuple[str, ...] | None, tuple[str, ...], str]:
    """(class names or None, templates, resize mode) from the spec, else a local manifest, else defaults."""
    if spec is not None:
        return spec.classnames, spec.templates, spec.resize_mode
    if manifest is not None:
        mode = manifest.resize_mode or "resize_crop"
        return manifest.classnames, manifest.templates or DEFAULT_TEMPLATES, mode
    return None, DEFAULT_TEMPLATES, "resize_crop"


def load_image_dataset(
    source: str,
    *,
    split: str = "train",
    image_size: int = 224,
    data_dir: str | None = None,
    data_root: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    templates: list[str] | None = None,
    resize_mode: str | None = None,
    view: DatasetView | None = None,
) -> ImageClassificationData:
    """Open `source`'s `split` as tensors of `image_size` with class names and prompt templates (spec §6).

    `data_dir` is the dataset's local copy, or a folder holding it under a usual name (`find_local_copy`);
    `data_root` is a folder of copies of several datasets: this one's is used when there, else the source is
    as without (the hub). `limit` keeps a seeded random subset of that many examples (same seed, same
    subset) and says so in `source`. `templates` / `resize_mode` override the dataset's own (default
    "This is a photo of a {}", resize_crop). `view` is a protocol's reading of a registered dataset (data/views.py):
    its class names, templates, merged classes, preprocessing, selection and hub copy replace the file's own;
    with a selection, `limit` keeps the first `limit` examples of it.
    """
    view = view or DatasetView()
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UsageError(f"limit must be a positive number of examples, got {limit!r}")
    if templates is not None and (not templates or any("{}" not in t for t in templates)):
        raise UsageError("every prompt template needs a '{}' for the class name")
    check_transform_args(image_size, resize_mode or "resize_crop")
    hub = (view.hub, view.hub_split or split) if view.hub else None
    opened, spec = open_source(source, split, data_dir, data_root, hub=hub)
    spec_names, own_templates, own_mode = _dataset_defaults(spec, opened.manifest)
    mode = resize_mode or own_mode
    check_transform_args(image_size, mode)
    where = opened.description
    shards = shard_sizes(opened.table)  # before prepare_table keeps only the image and label columns
    table, image_column, label_column = prepare_table(opened.table, where)
    source_names = label_names(table.features, label_column)
    table = drop_labels(table, label_column, excluded_labels(source_names, spec))  # e.g. BACKGROUND_Google
    classnames, label_map = resolve_for_spec(source_names, spec, spec_names, where)
    labels = _read_labels(table, label_column, where)
    check_labels(labels, len(source_names) if source_names is not None else len(classnames), where)
    if view.merge_classes or view.classnames:
        classnames, label_map = renamed_classes(classnames, label_map, view, where)
    selection = view.selection or (Selection("seeded", limit, seed) if limit is not None else Selection())
    indices, chosen = select_examples(table, image_column, selection, limit if view.selection else None, shards)
    description = where + (f", {chosen}" if chosen else "")
    if indices is not None:
        table = table.select(indices)
    transform = (transform_for(view.preprocessing, image_size) if view.preprocessing
                 else build_transform(image_size, mode))
    dataset = HFImageDataset(table, image_column, label_column, transform, label_map=label_map,
                             base_dir=opened.base_dir)
    manifest_name = opened.manifest.name if opened.manifest is not None else None
    name = opened.name if spec is not None or not manifest_name else manifest_name
    inside = view.preprocessing if view.preprocessing and view.preprocessing.native_resolution else None
    return ImageClassificationData(dataset=dataset, classnames=classnames,
                                   templates=list(templates or view.templates or own_templates), name=name,
                                   split=split, source=description, num_skipped=opened.skipped,
                                   resize_inside=(inside.interpolation, inside.antialias) if inside else None)
