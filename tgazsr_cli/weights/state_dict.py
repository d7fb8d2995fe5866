"""Whether a state dict fits a model: one line naming what differs, before `load_state_dict` fails at length."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tgazsr_cli.errors import UsageError


def check_compatible(model_state: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """UsageError naming a few missing, unexpected and mis-shaped keys when the architectures differ.

    `expected` maps each key to a tensor or a shape (a model's `state_dict()`, or shapes alone)."""

    def shape(value: Any) -> tuple[int, ...]:
        return tuple(value.shape) if hasattr(value, "shape") else tuple(value)

    missing = [k for k in expected if k not in model_state]
    unexpected = [k for k in model_state if k not in expected]
    mismatched = [f"{k} {shape(model_state[k])} vs expected {shape(v)}" for k, v in expected.items()
                  if k in model_state and shape(model_state[k]) != shape(v)]
    parts = [f"{len(items)} {label} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})"
             for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                  ("shape mismatches", mismatched)) if items]
    if parts:
        raise UsageError("checkpoint is for a different architecture: " + ", ".join(parts))
