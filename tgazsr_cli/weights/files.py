"""Weights from elsewhere (open_clip, OpenAI, published robust-CLIP files): read without executing anything.

Pickled files are read with `torch.load(weights_only=True)` only, and whatever that refuses stays refused.
The model tensors of a tgazsr checkpoint (a safetensors file whose header holds CHECKPOINT_KEY, its model
tensors under MODEL_PREFIX) are weights too: shipped weights are such files. Reading its metadata, optimiser
and RNG state, and merging a LoRA run's adapters, is the job of the checkpoints package, a layer above.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.runtime.atomic import read_header, read_tensors
from tgazsr_cli.runtime.digest import verify_digests

if TYPE_CHECKING:
    import torch

CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "vision_encoder_state_dict")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
CHECKPOINT_KEY = "tgazsr"  # the safetensors header key of a tgazsr checkpoint's metadata document
MODEL_PREFIX = "model."  # a tgazsr checkpoint's model tensors: `model.<open_clip key>`


def _looks_like_safetensors(path: Path) -> bool:
    """An 8-byte header length followed by a JSON object: how safetensors files begin, whatever the suffix."""
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
    except OSError as exc:
        raise RuntimeFailure(f"cannot read '{path}': {exc.strerror or exc}") from exc
    return len(head) == 9 and head[8:9] == b"{"


def _torch_load_weights_only(path: Path) -> Any:
    import torch  # here, not at the top: the checkpoint format's constants above are read without torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise RuntimeFailure(f"cannot read '{path}': {exc.strerror or exc}") from exc
    except Exception as exc:  # weights_only raises UnpicklingError, RuntimeError, ... for unsafe content
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        hint = next((line for line in lines if "nsupported" in line or "GLOBAL" in line), lines[0])
        reason = hint.removeprefix("WeightsUnpickler error:").strip().split(". ")[0][:160]
        raise UsageError(f"'{path}' cannot be read safely: tgazsr refuses to unpickle arbitrary objects "
                         f"(torch.load weights_only=True said: {reason})") from None


def _unwrap(obj: Any) -> Any:
    """Training scripts nest the weights ({"state_dict": ...}, {"model": ...}); dig until none is left."""
    while isinstance(obj, dict):
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            return obj
        obj = inner
    return obj


def read_weights_file(path: Path | str) -> Any:
    """The raw content of a weights file: safetensors tensors, or a pickle read with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"weights file '{path}' does not exist")
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        return read_tensors(path)
    return _torch_load_weights_only(path)


def is_checkpoint_file(path: Path | str) -> bool:
    """Whether `path` is a tgazsr checkpoint (a safetensors file with tgazsr metadata); its header alone is read."""
    path = Path(path)
    if not path.is_file() or not (path.suffix == ".safetensors" or _looks_like_safetensors(path)):
        return False
    try:
        return CHECKPOINT_KEY in read_header(path)
    except UsageError:  # not a valid safetensors file: a weights reader says why
        return False


def checkpoint_model_state(path: Path | str) -> dict[str, torch.Tensor]:
    """The model tensors of a tgazsr checkpoint, keys without MODEL_PREFIX (LoRA adapters, if any, unmerged)."""
    path = Path(path)
    tensors = {k: v for k, v in read_tensors(path).items() if k.startswith(MODEL_PREFIX)}
    if not tensors:
        raise UsageError(f"'{path}' holds no model weights")
    try:
        digests = json.loads(read_header(path).get(CHECKPOINT_KEY, "{}")).get("digests") or {}
    except (ValueError, AttributeError):
        digests = {}  # an unreadable document is the checkpoint reader's error to report, not this one's
    verify_digests(path, tensors, {k: v for k, v in digests.items() if k.startswith(MODEL_PREFIX)})
    return {k.removeprefix(MODEL_PREFIX): v for k, v in tensors.items()}


def load_foreign_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Weights from elsewhere: safetensors, or a pickle read with weights_only=True (never anything else)."""
    import torch

    path = Path(path)
    if is_checkpoint_file(path):
        return checkpoint_model_state(path)
    state = _unwrap(read_weights_file(path))
    if not isinstance(state, dict) or not state:
        raise UsageError(f"'{path}' does not hold a state dict of tensors")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise UsageError(f"'{path}' does not hold a state dict of tensors ({bad[0]!r} is not a named tensor)")
    return strip_wrapper_prefixes(state)


def strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the key prefixes that wrappers add to every key (DDP's "module.", torch.compile's "_orig_mod."),
    however they are nested."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k.removeprefix(prefix): v for k, v in state.items()}
                stripped = True
    return state
