"""Recipes written by tgazsr 0.1, which kept TGA-ZSR's settings in a shared `loss:` section.

Release 0.1 wrote `loss: {alpha, beta, distance, attention, attention_norm, upsample}` into every recipe and
methods read what applied to them (TeCoA forced alpha = beta = 0; other methods ignored the section). Now each
method's settings live in its own `method_options`, so an old section is moved there, key by key, and only
the keys the method declares are kept: exactly what the old release used. `loss.attention: visual` named
the Grad-CAM variant, which is the method `vision-tga`.
"""

from __future__ import annotations

import warnings
from typing import Any

from tgazsr_cli.errors import UsageError, did_you_mean

LEGACY_LOSS_KEYS = ("alpha", "beta", "distance", "attention", "attention_norm", "upsample")
ATTENTION_METHODS = {"text": None, "visual": "vision-tga"}  # reference `--atten_methods`


class LegacyLayoutWarning(UserWarning):
    """A recipe in the 0.1 layout was read (and is saved in the new one)."""


def upgrade_legacy_layout(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(recipe data without `loss:`, the old section's settings as candidate method options)."""
    if "loss" not in data:
        return data, {}
    data = dict(data)
    loss = data.pop("loss") or {}
    if not isinstance(loss, dict):
        raise UsageError(f"recipe key 'loss' must be a mapping, got {loss!r}")
    for key in loss:
        if key not in LEGACY_LOSS_KEYS:
            raise UsageError(f"unknown recipe key 'loss.{key}'{did_you_mean(str(key), LEGACY_LOSS_KEYS)}")
    options = {k: v for k, v in loss.items() if k != "attention"}
    attention = loss.get("attention", "text")
    if attention not in ATTENTION_METHODS:
        raise UsageError(f"recipe key 'loss.attention' must be one of {', '.join(ATTENTION_METHODS)}, "
                         f"got '{attention}'")
    if ATTENTION_METHODS[attention]:
        method = str(data.get("method", "tga-zsr")).lower()
        if method not in ("tga-zsr", "vision-tga"):
            raise UsageError(f"loss.attention=visual applies to tga-zsr only, not to '{method}'")
        data["method"] = ATTENTION_METHODS[attention]
    warnings.warn("recipe section 'loss' (tgazsr 0.1 layout) is read as method_options; "
                  "write method_options.alpha=... instead", LegacyLayoutWarning, stacklevel=3)
    return data, options
