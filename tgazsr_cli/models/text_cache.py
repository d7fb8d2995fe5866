"""Class text features cached on disk per (text tower, class names, templates).

Encoding the prompts of ImageNet's 1000 classes, or of all 16 evaluation datasets, takes a noticeable time
on every `tgazsr eval`; the features depend only on the text tower's weights, the class names and the
templates, so they are stored under a key made of a fingerprint of each. The text tower's fingerprint hashes
its parameter values, so fine-tuned or re-trained text towers never share entries by accident.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from tgazsr_cli.runtime.atomic import atomic_save_tensors

IMAGE_PREFIX = "visual."
FEATURES_KEY = "features"


def default_cache_dir() -> Path:
    """$TGAZSR_CACHE, else $XDG_CACHE_HOME/tgazsr, else ~/.cache/tgazsr; text features live in text-features/."""
    root = os.environ.get("TGAZSR_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tgazsr"
    return Path(root) / "text-features"


def text_tower_fingerprint(clip: nn.Module, model_cfg: dict) -> str:
    """sha256 over the text tower's parameter and buffer values and the text config (tokenizer length)."""
    digest = hashlib.sha256(json.dumps(model_cfg.get("text_cfg", {}), sort_keys=True).encode())
    for name, tensor in sorted(clip.state_dict().items()):
        if name.startswith(IMAGE_PREFIX):
            continue
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def prompt_set_key(classnames: Sequence[str], templates: Sequence[str]) -> str:
    payload = json.dumps({"classnames": list(classnames), "templates": list(templates)}, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class TextFeatureCache:
    """Files `<dir>/<tower fingerprint>/<prompt-set key>.safetensors`, written atomically."""

    def __init__(self, directory: Path, tower_fingerprint: str) -> None:
        self.folder = directory / tower_fingerprint
        self.hits = self.misses = 0

    def path(self, classnames: Sequence[str], templates: Sequence[str]) -> Path:
        return self.folder / f"{prompt_set_key(classnames, templates)}.safetensors"

    def load(self, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor | None:
        path = self.path(classnames, templates)
        try:
            features = load_file(str(path))[FEATURES_KEY]
        except (OSError, SafetensorError, KeyError):
            self.misses += 1
            return None  # absent or unreadable: recompute (and rewrite) rather than fail an evaluation
        if features.shape[0] != len(classnames):
            self.misses += 1
            return None
        self.hits += 1
        return features

    def store(self, classnames: Sequence[str], templates: Sequence[str], features: torch.Tensor) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_save_tensors(self.path(classnames, templates), {FEATURES_KEY: features.detach().cpu().contiguous()},
                                {"classes": str(len(classnames)), "templates": json.dumps(list(templates))})
        except OSError:
            pass  # a read-only cache only costs time
