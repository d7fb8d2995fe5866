"""Weights as other robust-CLIP projects publish them, mapped onto an open_clip model.

TeCoA, PMG-AFT and TGA-ZSR fine-tune the image tower of OpenAI's CLIP and save a `.pth.tar` dict such as
{"epoch", "state_dict": <visual prompter, often empty>, "vision_encoder_state_dict": <model.visual>,
"optimizer", ...}; others save a whole CLIP state dict, possibly under "state_dict"/"model" and with
DataParallel's "module." prefix. OpenAI's CLIP and open_clip's ViTs share parameter names, so every
candidate dict in the file is normalised (prefixes stripped, "visual." added to a bare image tower) and
scored by how many of the model's parameters it names (then: with the right shape); the best one wins.
Files are read with `weights_only=True` (weights_file.read_weights_file): nothing in them is executed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tgazsr_cli.errors import UsageError
from tgazsr_cli.weights.files import read_weights_file, strip_wrapper_prefixes

IMAGE_PREFIX = "visual."
MAX_DEPTH = 3  # how deep into nested dicts candidates are looked for


@dataclass
class PublishedWeights:
    state: dict[str, torch.Tensor]  # keys in the target model's layout, only the keys the file supplies
    towers: str  # "full" (image and text) or "image" (image tower only)
    source_key: str  # where in the file they were found, e.g. "vision_encoder_state_dict"


def _candidates(obj: Any, where: str = "", depth: int = 0) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    if not isinstance(obj, Mapping) or depth > MAX_DEPTH:
        return
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if tensors:
        yield where or "<top level>", tensors
    for key, value in obj.items():
        if isinstance(value, Mapping):
            yield from _candidates(value, f"{where}.{key}" if where else str(key), depth + 1)


def _layouts(state: dict[str, torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
    """The ways a candidate could map onto the model: as is, or as a bare image tower."""
    state = strip_wrapper_prefixes(state)
    yield state
    if not any(k.startswith(IMAGE_PREFIX) for k in state):
        yield {IMAGE_PREFIX + k: v for k, v in state.items()}


def _score(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """(names the model has, of those the ones with the model's shape): names first, so that a file of another
    size of the same architecture is reported as such rather than as unrelated."""
    names = [k for k in state if k in expected]
    return len(names), sum(1 for k in names if tuple(state[k].shape) == tuple(expected[k].shape))


def find_clip_weights(obj: Any, model: nn.Module, path: str = "file") -> PublishedWeights:
    """The candidate in `obj` that best fits `model`; it must cover the whole image tower."""
    expected = model.state_dict()
    image_keys = {k for k in expected if k.startswith(IMAGE_PREFIX)}
    best: tuple[tuple[int, int], str, dict[str, torch.Tensor]] | None = None
    for where, candidate in _candidates(obj):
        for layout in _layouts(candidate):
            score = _score(layout, expected)
            if best is None or score > best[0]:
                best = (score, where, layout)
    if best is None or best[0][0] == 0:
        raise UsageError(f"'{path}' holds no weights that fit this model (no parameter name matched)")
    _, where, layout = best
    state = {k: v for k, v in layout.items() if k in expected}
    missing_image = sorted(image_keys - state.keys())
    if missing_image:
        raise UsageError(f"'{path}' ({where}) lacks {len(missing_image)} image-tower parameters of this model, "
                         f"e.g. '{missing_image[0]}': a different architecture?")
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise UsageError(f"'{path}' ({where}): '{wrong[0]}' has shape {tuple(state[wrong[0]].shape)}, the model "
                         f"expects {tuple(expected[wrong[0]].shape)}: a different architecture?")
    towers = "full" if set(expected) <= state.keys() else "image"
    return PublishedWeights(state, towers, where)


def apply_weights(model: nn.Module, found: PublishedWeights) -> None:
    """Load what `found` supplies into `model`; the parameters it does not supply keep their values."""
    current = model.state_dict()
    model.load_state_dict({**current, **{k: v.to(current[k].dtype) for k, v in found.state.items()}})


def load_published(path: Path | str, model: nn.Module) -> PublishedWeights:
    """Read `path` safely and load what it supplies into `model`."""
    found = find_clip_weights(read_weights_file(path), model, str(path))
    apply_weights(model, found)
    return found
