"""Loss terms shared by the training methods (spec §3-§4); every term returns an fp32 scalar."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Distance = Literal["l2", "cos", "l1"]
DISTANCES: tuple[str, ...] = ("l2", "cos", "l1")


def attention_distance(maps: torch.Tensor, targets: torch.Tensor, metric: Distance = "l2") -> torch.Tensor:
    """Distance between flattened attention maps [B, P] (spec §3 `--Distance_metric`).

    l2: batch mean of the plain (not squared) Euclidean norm of each map difference;
    cos: batch mean of 1 - cosine similarity; l1: mean absolute difference over batch x pixels.
    """
    maps, targets = maps.float(), targets.float()
    if metric == "l2":
        return torch.linalg.vector_norm(maps - targets, dim=1).mean()
    if metric == "cos":
        return (1 - F.cosine_similarity(maps, targets, dim=1)).mean()
    if metric == "l1":
        return (maps - targets).abs().mean()
    raise ValueError(f"unknown distance '{metric}'; choose from {', '.join(DISTANCES)}")


def zero_shot_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Batch-mean cross-entropy of zero-shot logits over all class prompts (TeCoA's L_CE)."""
    return F.cross_entropy(logits.float(), labels)
