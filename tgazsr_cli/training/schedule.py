"""Learning-rate schedule of the reference (spec §3): linear warm-up, then half-cosine to zero."""

from __future__ import annotations

import math


def learning_rate(step: int, base_lr: float, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    """Learning rate for optimiser step `step` (0-based), set before that step is taken.

    Warm-up: lr * (step + 1) / warmup_steps for step < warmup_steps. Then cosine decays from lr at
    the end of warm-up to 0 at `total_steps`; "constant" keeps lr after warm-up.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1 + math.cos(math.pi * progress)) * base_lr
