"""Zero-shot clean and robust accuracy of one model on one dataset (spec §6).

A point counts as robust when the model classifies it correctly both clean and under attack, so
robust accuracy can never exceed clean accuracy; only clean-correct points are attacked, which
gives the same number for less work. Each image's random start depends only on (seed, its index),
and the attack loss is summed per sample, so results do not depend on the batch size.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from tgazsr_cli.engine.attacks import ThreatModel, get_attack
from tgazsr_cli.engine.data import ImageClassificationData, collate_skip_broken
from tgazsr_cli.engine.model import ClipClassifier
from tgazsr_cli.engine.progress import Progress, SilentProgress


@dataclass
class EvalRecord:
    """One flat result record: a model on a dataset under one attack."""

    model: str
    dataset: str
    split: str
    attack: str
    num_examples: int
    clean_correct: int
    robust_correct: int
    threat: dict[str, Any]
    batch_size: int
    source: str
    skipped_images: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def clean_accuracy(self) -> float:
        return 100.0 * self.clean_correct / max(1, self.num_examples)

    @property
    def robust_accuracy(self) -> float:
        return 100.0 * self.robust_correct / max(1, self.num_examples)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean_accuracy": self.clean_accuracy, "robust_accuracy": self.robust_accuracy}


class _IndexedDataset(torch.utils.data.Dataset):
    """Adds each example's index, which seeds its attack's random start."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        item = self.dataset[index]
        return None if item is None else (item[0], (item[1], index))


def _split_targets(targets: torch.Tensor | list) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = torch.as_tensor(targets).view(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def evaluate(
    model: ClipClassifier,
    data: ImageClassificationData,
    *,
    model_label: str,
    attack: str = "pgd",
    threat: ThreatModel | None = None,
    batch_size: int = 256,
    num_workers: int = 2,
    templates: list[str] | None = None,
    progress: Progress | None = None,
) -> EvalRecord:
    """Clean and robust top-1 accuracy of `model` on `data` (whole split, or its recorded subset)."""
    threat = threat or ThreatModel()
    progress = progress or SilentProgress()
    attack_fn = get_attack(attack) if threat.eps > 0 and threat.steps > 0 else None
    device = model.mean.device
    model.set_classes(data.classnames, templates or data.templates)
    model.eval()
    loader = torch.utils.data.DataLoader(
        _IndexedDataset(data.dataset), batch_size=batch_size, shuffle=False, num_workers=num_workers,
        collate_fn=collate_skip_broken,
    )
    clean_correct = robust_correct = total = skipped = 0
    started = time.monotonic()
    task = progress.task(f"{data.name} ({attack if attack_fn else 'clean'})", len(data.dataset))
    for images, targets, dropped in loader:
        skipped += dropped
        if images.numel() == 0:
            continue
        labels, indices = _split_targets(targets)
        images, labels = images.to(device), labels.to(device)
        with torch.no_grad():
            clean_hit = model(images).argmax(dim=1) == labels
        robust_hit = clean_hit.clone()
        if attack_fn is not None and clean_hit.any():
            keep = clean_hit.nonzero().squeeze(1)
            adversarial = attack_fn(model, images[keep], labels[keep], threat, indices[keep.cpu()])
            with torch.no_grad():
                robust_hit[keep] = model(adversarial).argmax(dim=1) == labels[keep]
        clean_correct += int(clean_hit.sum())
        robust_correct += int(robust_hit.sum())
        total += len(labels)
        task.advance(len(labels) + dropped, clean=100 * clean_correct / total, robust=100 * robust_correct / total)
    task.close()
    return EvalRecord(
        model=model_label, dataset=data.name, split=data.split, attack=attack if attack_fn else "none",
        num_examples=total, clean_correct=clean_correct, robust_correct=robust_correct,
        threat=threat.describe(), batch_size=batch_size, source=data.source, skipped_images=skipped,
        seconds=round(time.monotonic() - started, 3),
    )
