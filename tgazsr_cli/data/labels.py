"""Columns and label order of one opened split: image/label columns, class names, spec-driven label maps.

Columns: the image column is an `Image` feature, else a {bytes, path} struct (parquet written without HF
metadata) or a binary column called image/img; the label column is a `ClassLabel` (preferring label,
fine_label...), else an integer column with one of those names. Images stay undecoded until an item is read.

Label order: a registered dataset fixes the class order (its spec's class names); a source that carries names
(ClassLabel, folder names, wnids) is remapped onto that order by name, so a hub copy, a parquet copy and a
reorganised folder give the same label for the same class. A source without a spec keeps its own order and
names. Two needs go beyond matching names: ImageNet-A/O/R folders are named by WordNet id while the spec's prompt
names are words, so a spec can list the raw keys (`DatasetSpec.class_keys`) a source may use; and Caltech-101's
``BACKGROUND_Google`` folder is not a class, so a spec can list class names whose examples are dropped
(`DatasetSpec.exclude_classes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tgazsr_cli.data.classnames import match_key, readable_classnames
from tgazsr_cli.data.specs import DatasetSpec
from tgazsr_cli.errors import UsageError

if TYPE_CHECKING:
    import datasets

# -- columns -------------------------------------------------------------------------------------------------

IMAGE_NAMES = ("image", "img", "images", "picture", "jpg", "png")
LABEL_NAMES = ("label", "labels", "fine_label", "target", "class", "cls", "category")
_INT_TYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})


def _is_image_feature(feature: Any) -> bool:
    import datasets

    if isinstance(feature, datasets.Image):
        return True
    return isinstance(feature, dict) and {"bytes", "path"} <= set(feature)


def _preferred(names: list[str], preferred: tuple[str, ...]) -> str | None:
    for wanted in preferred:
        for name in names:
            if name.lower() == wanted:
                return name
    return names[0] if names else None


def find_image_column(features: datasets.Features, where: str) -> str:
    """The column holding the images."""
    import datasets

    images = [name for name, feature in features.items() if _is_image_feature(feature)]
    if not images:
        raw_types = ("binary", "large_binary", "string")
        images = [name for name, feature in features.items() if name.lower() in IMAGE_NAMES
                  and isinstance(feature, datasets.Value) and feature.dtype in raw_types]
    column = _preferred(images, IMAGE_NAMES)
    if column is None:
        raise UsageError(f"{where} has no image column (columns: {', '.join(features)})")
    return column


def find_label_column(features: datasets.Features, where: str) -> str:
    """The column holding integer class labels, a ClassLabel if there is one."""
    import datasets

    class_labels = [name for name, feature in features.items() if isinstance(feature, datasets.ClassLabel)]
    column = _preferred(class_labels, LABEL_NAMES)
    if column is None:
        ints = [name for name, feature in features.items() if name.lower() in LABEL_NAMES
                and isinstance(feature, datasets.Value) and feature.dtype in _INT_TYPES]
        column = _preferred(ints, LABEL_NAMES)
    if column is None:
        raise UsageError(f"{where} has no class-label column (columns: {', '.join(features)})")
    return column


def label_names(features: datasets.Features, label_column: str) -> list[str] | None:
    """The ClassLabel names of the label column, or None for a plain integer column."""
    import datasets

    feature = features[label_column]
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def prepare_table(table: datasets.Dataset, where: str) -> tuple[datasets.Dataset, str, str]:
    """Keep only the image and label columns, images undecoded: (table, image column, label column)."""
    import datasets

    image_column = find_image_column(table.features, where)
    label_column = find_label_column(table.features, where)
    table = table.select_columns([image_column, label_column])
    feature = table.features[image_column]
    if not (isinstance(feature, datasets.Image) and not feature.decode):
        try:
            table = table.cast_column(image_column, datasets.Image(decode=False))
        except Exception as error:  # an unusual struct or string column: decode it as it is
            if not isinstance(feature, (dict, datasets.Value)):
                raise UsageError(f"{where}: column '{image_column}' is not images: {error}") from error
    return table, image_column, label_column


# -- label order ---------------------------------------------------------------------------------------------

def remap_by_name(source_names: Sequence[str], target_names: Sequence[str], where: str) -> list[int] | None:
    """Source label index -> target index when every source name is a target class; None = keep indices.

    Names that do not all match are accepted only when the counts agree (same order assumed, e.g. a manifest
    with prettier names than the parquet's ClassLabel).
    """
    target_index = {match_key(name): i for i, name in enumerate(target_names)}
    mapped = [target_index.get(match_key(name)) for name in source_names]
    if all(m is not None for m in mapped):
        return None if mapped == list(range(len(source_names))) else [int(m) for m in mapped]  # type: ignore[arg-type]
    if len(source_names) == len(target_names):
        return None
    unknown = [name for name, m in zip(source_names, mapped, strict=True) if m is None]
    raise UsageError(f"{where}: class names {', '.join(unknown[:5])}{'...' if len(unknown) > 5 else ''} "
                     f"are not among the dataset's {len(target_names)} classes")


def resolve_classnames(
    source_names: Sequence[str] | None, spec_names: Sequence[str] | None, where: str,
) -> tuple[list[str], list[int] | None]:
    """(class names in label order, source->target label map or None)."""
    if spec_names:
        if source_names is None:
            return list(spec_names), None
        return list(spec_names), remap_by_name(source_names, spec_names, where)
    if source_names is None:
        raise UsageError(f"{where} has integer labels but no class names; put a classnames.txt "
                         "(one name a line, in label order) or a manifest.json beside it")
    return readable_classnames(source_names), None


def check_labels(labels: np.ndarray, num_source_classes: int, where: str) -> None:
    """UsageError for unlabelled (negative / missing) or out-of-range labels."""
    if labels.size == 0:
        raise UsageError(f"{where} is empty")
    if labels.min() < 0:
        raise UsageError(f"{where} has unlabelled examples (label {int(labels.min())}); use a labelled split")
    if labels.max() >= num_source_classes:
        raise UsageError(f"{where} has label {int(labels.max())} but only {num_source_classes} class names")


def excluded_labels(source_names: Sequence[str] | None, spec: DatasetSpec | None) -> list[int]:
    """Source label indices whose class the spec excludes."""
    if spec is None or not spec.exclude_classes or source_names is None:
        return []
    excluded = {match_key(name) for name in spec.exclude_classes}
    return [i for i, name in enumerate(source_names) if match_key(name) in excluded]


def drop_labels(table: datasets.Dataset, label_column: str, labels: list[int]) -> datasets.Dataset:
    """`table` without the examples labelled with one of `labels`."""
    if not labels:
        return table
    dropped = set(labels)
    return table.filter(lambda batch: [label not in dropped for label in batch], input_columns=[label_column],
                        batched=True)


def resolve_for_spec(
    source_names: Sequence[str] | None, spec: DatasetSpec | None, spec_names: Sequence[str] | None, where: str,
) -> tuple[list[str], list[int] | None]:
    """(class names in label order, source->spec label map or None), honouring class keys and exclusions."""
    if spec is None or source_names is None or not (spec.class_keys or spec.exclude_classes):
        return resolve_classnames(source_names, spec_names, where)
    skipped = set(excluded_labels(source_names, spec))
    kept = [i for i in range(len(source_names)) if i not in skipped]
    kept_names = [source_names[i] for i in kept]
    key_index = {key: i for i, key in enumerate(spec.class_keys)}
    if key_index and all(name in key_index for name in kept_names):
        targets: list[int] | None = [key_index[name] for name in kept_names]
    else:
        _, targets = resolve_classnames(kept_names, spec_names, where)
    targets = targets if targets is not None else list(range(len(kept)))
    full = [-1] * len(source_names)  # excluded labels never reach the dataset (dropped above)
    for source, target in zip(kept, targets, strict=True):
        full[source] = target
    return list(spec.classnames), (None if full == list(range(len(full))) else full)
