"""Applying a protocol's `DatasetView` to an opened split: merged and renamed classes, the selected examples.

`loading.load_image_dataset` calls these after the labels are resolved; they change which examples are read and
what their classes are called, never how an image is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tgazsr_cli.data.classnames import match_key
from tgazsr_cli.data.views import DatasetView, Selection
from tgazsr_cli.errors import UsageError

if TYPE_CHECKING:
    import datasets


def seeded_subset(size: int, limit: int, seed: int) -> list[int]:
    """`limit` distinct indices of range(size), a pure function of (size, limit, seed), sorted."""
    keys = np.random.default_rng(seed).random(size)  # PCG64's random() stream is stable across numpy versions
    return sorted(np.argsort(keys, kind="stable")[:limit].tolist())


def renamed_classes(
    classnames: Sequence[str], label_map: Sequence[int] | None, view: DatasetView, where: str,
) -> tuple[list[str], list[int] | None]:
    """(class names, source->label map) after folding `view.merge_classes` and naming the classes
    `view.classnames` (which are in the dataset's label order, merged classes left out)."""
    index = {match_key(name): i for i, name in enumerate(classnames)}
    folded: dict[int, int] = {}
    for merged, into in view.merge_classes.items():
        for name in (merged, into):
            if match_key(name) not in index:
                raise UsageError(f"{where}: merge_classes names '{name}', which is not a class of this dataset")
        folded[index[match_key(merged)]] = index[match_key(into)]
    kept = [i for i in range(len(classnames)) if i not in folded]
    position = {old: new for new, old in enumerate(kept)}
    target = [position[folded.get(i, i)] for i in range(len(classnames))]
    names = [classnames[i] for i in kept]
    if view.classnames is not None:
        if len(view.classnames) != len(names):
            raise UsageError(f"{where}: the protocol names {len(view.classnames)} classes, the dataset has "
                             f"{len(names)}" + (" after merging" if folded else ""))
        names = list(view.classnames)
    if not folded:
        return names, None if label_map is None else list(label_map)
    source = range(len(classnames)) if label_map is None else label_map
    return names, [target[label] if label >= 0 else label for label in source]


def image_paths(table: datasets.Dataset, image_column: str) -> list[str | None]:
    """The file name each example's image came from, where the copy keeps one (None where it does not)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.with_format("arrow")[image_column]
    if pa.types.is_struct(column.type):  # {bytes, path}: read the names only, never the image bytes
        if column.type.get_field_index("path") < 0:
            return [None] * len(column)
        return pc.struct_field(column, "path").to_pylist()
    return [value if isinstance(value, str) else None for value in column.to_pylist()]


def shard_sizes(table: datasets.Dataset) -> list[int] | None:
    """Examples per shard, in order, of a table read from webdataset shards (its `__url__` column); else None."""
    if "__url__" not in table.column_names:
        return None
    urls = table.with_format("arrow")["__url__"].to_pylist()
    sizes: list[int] = []
    for position, url in enumerate(urls):
        if position and url == urls[position - 1]:
            sizes[-1] += 1
        else:
            sizes.append(1)
    return sizes


def select_examples(
    table: datasets.Dataset, image_column: str, selection: Selection, limit: int | None,
    shards: list[int] | None = None,
) -> tuple[list[int] | None, str]:
    """(positions to read in this order, or None for all; how they were chosen, for the record's source).

    `limit` (a quick look at a protocol) keeps the first `limit` of the selected examples; with `all`, a seeded
    random subset of that many. `shards`: the examples per shard of a webdataset copy, which the reference's
    shuffled stream deals to its loader workers (one shard when unknown).
    """
    size = len(table)
    if selection.mode == "all" and limit is not None:
        selection = Selection("seeded", limit, selection.seed)
        limit = None
    wanted = min(n for n in (selection.count, limit, size) if n is not None)
    if selection.mode == "all" or (selection.mode == "seeded" and wanted >= size):
        return None, ""
    if selection.mode == "seeded":
        chosen = f"random subset of {wanted} of {size} (seed {selection.seed})"
        return seeded_subset(size, wanted, selection.seed), chosen
    from tgazsr_cli.data.selection import match_subset, stream_indices, subset_keys  # the references' orders

    if selection.mode == "stream":
        layout = shards if shards is not None and sum(shards) == size else None
        picked = stream_indices(size, wanted, selection.seed, shards=layout)
        held = f", {len(layout)} shards" if layout and len(layout) > 1 else ""
        return picked, f"the first {len(picked)} of a shuffled stream of {size}{held} (seed {selection.seed})"
    assert selection.name is not None  # Selection checks that a subset is named
    picked = match_subset(image_paths(table, image_column), subset_keys(selection.name))
    if limit is not None:
        picked = picked[:limit]
    return picked, f"subset {selection.name} ({len(picked)} of {size})"
