"""Finding the image and label columns of any `datasets.Dataset` (hub, parquet, save_to_disk, folder).

Image: an `Image` feature, else a {bytes, path} struct (parquet written without HF metadata) or a binary
column called image/img. Label: a `ClassLabel` (preferring label, fine_label...), else an integer column with
one of those names. The image column is cast to `Image(decode=False)` so decoding happens lazily per item.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tgazsr_cli.errors import UsageError

if TYPE_CHECKING:
    import datasets

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
