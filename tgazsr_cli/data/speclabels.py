"""Label order for registered specs with raw class keys or excluded classes (spec §6).

Two needs go beyond matching names (labels.py): ImageNet-A/O/R folders are named by WordNet id while the spec's
prompt names are words, so a spec can list the raw keys (`DatasetSpec.class_keys`) a source may use; and
Caltech-101's ``BACKGROUND_Google`` folder is not a class (the reference removes it), so a spec can list class
names whose examples are dropped (`DatasetSpec.exclude_classes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tgazsr_cli.data.labels import resolve_classnames
from tgazsr_cli.data.names import match_key
from tgazsr_cli.data.specs import DatasetSpec

if TYPE_CHECKING:
    import datasets


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
