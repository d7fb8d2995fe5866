"""Several labelled datasets trained as one (`data.dataset: a+b+c`), e.g. to pre-train the mini CLIP.

Labels are offset so every class of every part keeps its own index; each class keeps its own
dataset's prompt templates (`class_templates`), since "a handwritten digit {}" should not describe a coat.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tgazsr_cli.data.loading import ImageClassificationData
from tgazsr_cli.errors import UsageError

SEPARATOR = "+"


class _OffsetLabels(torch.utils.data.Dataset):
    def __init__(self, dataset: torch.utils.data.Dataset, offset: int) -> None:
        self.dataset = dataset
        self.offset = offset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        item = self.dataset[index]
        return None if item is None else (item[0], int(item[1]) + self.offset)


def is_combined(source: str) -> bool:
    return SEPARATOR in source and not source.startswith(("hf:", "/", ".", "~"))


def combine(parts: list[ImageClassificationData]) -> ImageClassificationData:
    """One dataset whose classes are the parts' classes in order; class names must not collide."""
    classnames: list[str] = []
    class_templates: list[list[str]] = []
    datasets = []
    for part in parts:
        clash = set(classnames) & set(part.classnames)
        if clash:
            raise UsageError(f"cannot combine datasets: class names {sorted(clash)} appear in more than one part")
        datasets.append(_OffsetLabels(part.dataset, len(classnames)))
        classnames += part.classnames
        class_templates += [list(part.class_templates[i]) if part.class_templates else list(part.templates)
                            for i in range(len(part.classnames))]
    return ImageClassificationData(
        dataset=torch.utils.data.ConcatDataset(datasets),
        classnames=classnames,
        templates=list(parts[0].templates),
        name=SEPARATOR.join(p.name for p in parts),
        split=parts[0].split,
        source="; ".join(p.source for p in parts),
        num_skipped=sum(p.num_skipped for p in parts),
        class_templates=class_templates,
    )


def load_combined(
    source: str, loader: Callable[..., ImageClassificationData], **kwargs: object
) -> ImageClassificationData:
    """Load every `+`-separated part with `loader` (same split, size and seed) and combine them."""
    names = [name.strip() for name in source.split(SEPARATOR) if name.strip()]
    if kwargs.get("data_dir"):
        raise UsageError("data.data_dir names one local copy and cannot be used with a combined dataset")
    return combine([loader(name, **kwargs) for name in names])
