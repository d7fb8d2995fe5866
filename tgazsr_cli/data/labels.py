"""Class names and label order for one opened split (spec §3, §6 prompt column).

A registered dataset fixes the class order (its spec's class names); a source that carries names (ClassLabel,
folder names, wnids) is remapped onto that order by name, so a hub copy, a parquet copy and a reorganised
folder give the same label for the same class. A source without a spec keeps its own order and names.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tgazsr_cli.data.names import match_key, readable_classnames
from tgazsr_cli.errors import UsageError


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
