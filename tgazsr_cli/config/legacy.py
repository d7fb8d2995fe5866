"""Recipes written by earlier releases: 0.1's shared `loss:` section and the separate `optim.last_num_ft`.

Release 0.1 wrote `loss: {alpha, beta, distance, attention, attention_norm, upsample}` into every recipe and
methods read what applied to them (TeCoA forced alpha = beta = 0; other methods ignored the section). Now each
method's settings live in its own `method_options`, so an old section is moved there, key by key, and only
the keys the method declares are kept: exactly what the old release used. `loss.attention: visual` named
the Grad-CAM variant, which is the method `vision-tga`. `optim.last_num_ft: k` said what `train.trainable`
now says on its own (`last-k` with its k, e.g. `last-4`); 0 meant the whole tower.
"""

from __future__ import annotations

import warnings
from typing import Any

from tgazsr_cli.errors import UsageError, did_you_mean

LEGACY_LOSS_KEYS = ("alpha", "beta", "distance", "attention", "attention_norm", "upsample")
ATTENTION_METHODS = {"text": None, "visual": "vision-tga"}  # reference `--atten_methods`


class LegacyLayoutWarning(UserWarning):
    """A recipe in the 0.1 layout was read (and is saved in the new one)."""


def fold_last_num_ft(data: dict[str, Any]) -> dict[str, Any]:
    """`optim.last_num_ft: k` (with `train.trainable` full or last-k) read as `train.trainable: last-k`."""
    optim = data.get("optim")
    if not isinstance(optim, dict) or "last_num_ft" not in optim:
        if isinstance(data.get("train"), dict) and data["train"].get("trainable") == "last-k":
            raise UsageError("train.trainable=last-k needs its k: write last-4 (the image tower's last 4 tensors)")
        return data
    optim = dict(optim)
    last_k = optim.pop("last_num_ft")
    train = dict(data.get("train") or {})
    mode = train.get("trainable", "full")
    if not isinstance(last_k, int) or isinstance(last_k, bool) or last_k < 0:
        raise UsageError(f"recipe key 'optim.last_num_ft' must be an int >= 0, got {last_k!r}")
    if last_k == 0:
        if mode == "last-k":
            raise UsageError("train.trainable=last-k needs optim.last_num_ft > 0 (how many image-tower tensors); "
                             "write train.trainable=last-4 instead")
    elif mode in ("full", "last-k"):
        train["trainable"] = f"last-{last_k}"
    else:
        raise UsageError(f"train.trainable={mode} conflicts with optim.last_num_ft={last_k}; set one of them")
    return {**data, "optim": optim, "train": train}


def upgrade_legacy_layout(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(recipe data in today's keys, the 0.1 `loss:` settings as candidate method options)."""
    data = fold_last_num_ft(data)
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
