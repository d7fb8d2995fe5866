"""Validation during training (train.eval_every): clean and PGD robust accuracy of a fixed, seeded subset.

The subset is `train.eval_images` images of `train.eval_set` (default: the training dataset, its validation
split, else its test split), drawn once with train.seed; the attack is PGD with the recipe's `eval` threat model
(eps, steps, step_size, precision, seed). A point counts as robust when it is classified correctly clean and
under attack, as in `tgazsr eval`.

A validation leaves the training exactly as it was: the RNG state (Python, NumPy, torch CPU and CUDA), each
module's train/eval mode and the model's class text features are restored afterwards, and PGD takes gradients
with respect to the input only. So a run with validation trains the same weights as one without, and a resume
stays bit-identical.

Under torchrun every rank validates its contiguous shard of the subset and the integer counts are summed, so
every rank gets the same numbers at the same step (no rank waits on another's whole validation).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from tgazsr_cli.attacks import ThreatModel, resolve_attack
from tgazsr_cli.checkpoints.rng import capture_rng_state, restore_rng_state
from tgazsr_cli.config import Recipe
from tgazsr_cli.data import ImageClassificationData, collate_skip_broken, load_image_dataset
from tgazsr_cli.data.combined import is_combined
from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.models.classifier import ClipClassifier
from tgazsr_cli.runtime import distributed as dist

BEST_NAME = "best.safetensors"  # RUN/best.safetensors: the model (only) of the best validation so far
VAL_KEYS = ("val_clean", "val_robust", "val_harmonic")


def eval_interval(setting: str, batches_per_epoch: int) -> int:
    """Optimiser steps between validations: N, one epoch's steps for `epoch`, 0 for off."""
    if setting == "off":
        return 0
    return batches_per_epoch if setting == "epoch" else int(setting)


def harmonic_mean(clean: float, robust: float) -> float:
    return 0.0 if clean + robust <= 0 else 2 * clean * robust / (clean + robust)


def load_validation_data(recipe: Recipe, image_size: int) -> ImageClassificationData:
    """The seeded validation subset: train.eval_set's eval_split, else its validation split, else its test split."""
    settings = recipe.train
    own = settings.eval_set is None
    source = recipe.data.dataset if own else settings.eval_set
    if own and is_combined(source):
        raise UsageError(f"train.eval_every: the training data {source} mixes datasets; name one with train.eval_set")
    splits = [settings.eval_split] if settings.eval_split else ["validation", "test"]
    for position, split in enumerate(splits):
        try:
            return load_image_dataset(
                source, split=split, image_size=image_size, limit=settings.eval_images, seed=settings.seed,
                data_dir=recipe.data.data_dir if own else None, data_root=None if own else recipe.eval.data_dir,
                templates=recipe.data.templates if own else None,
            )
        except (UsageError, RuntimeFailure) as error:
            if position == len(splits) - 1:
                raise type(error)(f"train.eval_set: {error}") from None
    raise AssertionError("unreachable")


class Validation:
    """When to validate, the validation itself and the best value so far (for RUN/best.safetensors)."""

    def __init__(self, recipe: Recipe, image_size: int, batches_per_epoch: int) -> None:
        self.recipe = recipe
        self.interval = eval_interval(recipe.train.eval_every, batches_per_epoch)
        self.data = load_validation_data(recipe, image_size) if self.interval else None
        ev = recipe.eval
        self.threat = ThreatModel(eps=ev.eps, steps=ev.steps, step_size=ev.step_size, precision=ev.precision,
                                  seed=ev.seed)
        self.best = -math.inf

    def due(self, step: int) -> bool:
        return self.interval > 0 and step % self.interval == 0

    def resume_best(self, metrics_path: Path, step: int) -> None:
        """The best value logged up to `step` (a resumed run keeps RUN/best.safetensors unless it is beaten)."""
        if not metrics_path.is_file():
            return
        key = self.recipe.train.best_metric
        for line in metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                logged = json.loads(line)
            except ValueError:
                continue
            if isinstance(logged, dict) and key in logged and logged.get("step", step + 1) <= step:
                self.best = max(self.best, float(logged[key]))

    def improved(self, values: dict[str, float]) -> bool:
        """Whether `values` beat the best so far (strictly; the first validation always does); records it."""
        value = values[self.recipe.train.best_metric]
        if value > self.best:
            self.best = value
            return True
        return False

    def run(self, model: ClipClassifier) -> dict[str, float]:
        """Validate `model` (on every rank, each its shard) and leave the training state as it was."""
        rng = capture_rng_state()
        modes = {module: module.training for module in model.modules()}
        text_features, classnames = model.text_features, model.classnames
        started = time.monotonic()
        try:
            model.eval()
            clean, robust, total = self.count(model)
        finally:
            model.text_features, model.classnames = text_features, classnames
            for module, mode in modes.items():
                module.training = mode
            restore_rng_state(rng)
        clean_acc, robust_acc = 100.0 * clean / max(1, total), 100.0 * robust / max(1, total)
        return {"val_clean": clean_acc, "val_robust": robust_acc, "val_harmonic": harmonic_mean(clean_acc, robust_acc),
                "val_images": float(total), "val_seconds": round(time.monotonic() - started, 3)}

    def count(self, model: ClipClassifier) -> tuple[int, int, int]:
        """Clean-correct, robust-correct and decoded images of the subset, summed over ranks."""
        data = self.data
        assert data is not None
        model.set_classes(data.classnames, data.templates)
        threat, device = self.threat, model.mean.device
        attack = resolve_attack("pgd") if threat.eps > 0 and threat.steps > 0 else None
        shard = dist.shard_indices(len(data.dataset), dist.rank(), dist.world_size())  # type: ignore[arg-type]
        clean = robust = total = 0
        batch_size = self.recipe.eval.batch_size
        for start in range(0, len(shard), batch_size):
            indices = shard[start:start + batch_size]
            items = [data.dataset[i] for i in indices]
            ids = torch.tensor([i for i, item in zip(indices, items, strict=True) if item is not None])
            images, labels, _ = collate_skip_broken(items)
            if images.numel() == 0:
                continue
            images, labels = images.to(device), labels.to(device)
            with torch.no_grad():
                hit = model(images).argmax(dim=1) == labels
            keep = hit.nonzero().squeeze(1)
            clean, total = clean + int(hit.sum()), total + len(labels)
            if attack is None:
                robust += int(hit.sum())
            elif len(keep):
                adversarial = attack(model, images[keep], labels[keep], threat, ids[keep.cpu()])
                with torch.no_grad():
                    robust += int((model(adversarial).argmax(dim=1) == labels[keep]).sum())
        clean, robust, total = dist.all_reduce_sum([clean, robust, total])
        return clean, robust, total


def validation_for(recipe: Recipe, image_size: int, batches_per_epoch: int) -> Validation | None:
    """The run's Validation, or None when train.eval_every is off."""
    return Validation(recipe, image_size, batches_per_epoch) if eval_interval(recipe.train.eval_every, 1) else None


def describe(values: dict[str, Any]) -> str:
    """A progress line: `validation: clean 61.2%, robust 30.4% (1000 images, 12.3 s)`."""
    return (f"validation: clean {values['val_clean']:.1f}%, robust {values['val_robust']:.1f}% "
            f"({int(values['val_images'])} images, {values['val_seconds']:.1f} s)")
