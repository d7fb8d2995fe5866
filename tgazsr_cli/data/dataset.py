"""The torch view of an opened source: lazy decoding, label remapping, and skipping of broken images.

Broken images (design): each example is decoded in `__getitem__`, inside the DataLoader worker. An image that
cannot be decoded or transformed makes the item `None` instead of raising; `collate_skip_broken` drops the
`None` items of a batch and returns how many it dropped as the third element, so the trainer and evaluator
add up skips in the main process without any state shared between workers.
`ImageClassificationData.num_skipped` counts what was already dropped while the source was listed (e.g. a file
named in val_annotations.txt that does not exist).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

if TYPE_CHECKING:
    import datasets

Item = tuple[torch.Tensor, int]


def decode_image(value: Any, base_dir: Path | None = None) -> Image.Image:
    """An RGB PIL image from a `datasets` image value ({bytes, path} struct, raw bytes or a path string)."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
    elif isinstance(value, (bytes, bytearray)):
        data, path = value, None
    else:
        data, path = None, value
    if data:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    if not path:
        raise ValueError("example has neither image bytes nor a path")
    file = Path(path)
    if not file.is_absolute() and base_dir is not None and not file.exists():
        file = base_dir / file
    with Image.open(file) as image:
        return image.convert("RGB")


class HFImageDataset(torch.utils.data.Dataset):
    """Items `(FloatTensor [3,H,W] in [0,1], int label)`, or `None` for an image that cannot be decoded."""

    def __init__(
        self,
        table: datasets.Dataset,
        image_column: str,
        label_column: str,
        transform: Callable[[Image.Image], torch.Tensor],
        *,
        label_map: Sequence[int] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.table = table
        self.image_column = image_column
        self.label_column = label_column
        self.transform = transform
        self.label_map = list(label_map) if label_map is not None else None
        self.base_dir = base_dir

    def __len__(self) -> int:
        return len(self.table)

    def label(self, index: int) -> int:
        """The (remapped) label of one example, without decoding its image."""
        raw = int(self.table[int(index)][self.label_column])
        return self.label_map[raw] if self.label_map is not None else raw

    def all_labels(self) -> list[int]:
        """Every example's (remapped) label, read from the label column alone."""
        raw = [int(v) for v in self.table[self.label_column]]
        return [self.label_map[v] for v in raw] if self.label_map is not None else raw

    def __getitem__(self, index: int) -> Item | None:
        row = self.table[int(index)]
        raw = int(row[self.label_column])
        label = self.label_map[raw] if self.label_map is not None else raw
        try:
            tensor = self.transform(decode_image(row[self.image_column], self.base_dir))
        except Exception:  # any undecodable / truncated / bomb image: skipped and counted by the collate
            return None
        return tensor, label


def collate_skip_broken(
    batch: Sequence[tuple[torch.Tensor, Any] | None],
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack the decodable items of a batch: (images [B,3,H,W], targets, number of broken items dropped).

    Targets are `torch.tensor` of the items' second elements: [B] for int labels, [B, k] for k-tuples.
    An all-broken batch gives empty tensors (`images.numel() == 0`).
    """
    kept = [item for item in batch if item is not None]
    dropped = len(batch) - len(kept)
    if not kept:
        return torch.empty(0, 3, 0, 0), torch.empty(0, dtype=torch.long), dropped
    images = torch.stack([item[0] for item in kept])
    targets = torch.tensor([item[1] for item in kept], dtype=torch.long)
    return images, targets, dropped
