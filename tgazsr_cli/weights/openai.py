"""OpenAI's own CLIP weights in a local file, and the activation they need (QuickGELU, not GELU).

OpenAI trained CLIP with QuickGELU (x * sigmoid(1.702 x)); open_clip's plain configs (`ViT-B-32`) use GELU and
its `openai` tag switches to QuickGELU itself. A local file has no tag, so its layout is looked at instead, as
open_clip's own OpenAI loader (`open_clip/openai.py`, `factory.load_state_dict`) tells them apart:

- a TorchScript archive (a zip with `constants.pkl`, OpenAI's `ViT-B-32.pt` download): refused, since reading
  it means running its code (`torch.jit.load`); the error says how to turn it into a state dict once;
- a state dict holding OpenAI's extra entries `input_resolution`, `context_length` and `vocab_size` (what the
  archive's `state_dict()` gives): the model is switched to QuickGELU, with a warning.

Only the zip's small `data.pkl` record (the key names) is read for this, never the tensors, and nothing is
unpickled. The rule (docs/evaluation.md): the first weights in `--pretrained` decide the activation.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

from tgazsr_cli.errors import UsageError

OPENAI_ONLY_KEYS = ("input_resolution", "context_length", "vocab_size")  # entries open_clip drops on load
TORCHSCRIPT, OPENAI, OTHER = "torchscript", "openai", "other"


def _zip_kind(path: Path) -> str | None:
    """TORCHSCRIPT / OPENAI / OTHER for a torch zip file, None when `path` is no zip."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if any(name.rsplit("/", 1)[-1] == "constants.pkl" for name in names):
            return TORCHSCRIPT
        pickles = [name for name in names if name.rsplit("/", 1)[-1] == "data.pkl"]
        if not pickles:
            return OTHER
        keys = archive.read(pickles[0])  # key names appear as plain strings in the pickle
    return OPENAI if all(key.encode() in keys for key in OPENAI_ONLY_KEYS) else OTHER


def _has_openai_keys(names: Any) -> bool:
    return all(key in names for key in OPENAI_ONLY_KEYS)


def weights_kind(path: str | Path) -> str:
    """TORCHSCRIPT, OPENAI (an OpenAI state dict) or OTHER for the weights file at `path`."""
    path = Path(path).expanduser()
    kind = _zip_kind(path)
    if kind is not None:
        return kind
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return OPENAI if _has_openai_keys(set(handle.keys())) else OTHER
    except (SafetensorError, OSError, ValueError):
        pass
    from tgazsr_cli.weights.files import load_foreign_state_dict

    try:  # an old (non-zip) torch pickle: read with weights_only=True like every weights file
        return OPENAI if _has_openai_keys(load_foreign_state_dict(path)) else OTHER
    except UsageError:
        return OTHER  # the loader reports what is wrong with the file


def activation_for_file(
    model_cfg: dict[str, Any], model_name: str, path: str, *, base: bool, quick_model: str | None,
) -> dict[str, Any]:
    """`model_cfg`, with QuickGELU when `path` is the `base` weights and holds OpenAI's; UsageError for a
    TorchScript archive. `quick_model`: the QuickGELU variant of `model_name` open_clip has, if any."""
    kind = weights_kind(path)
    instead = f"--model {quick_model}" if quick_model else "a model config with quick_gelu: true"
    if kind == TORCHSCRIPT:
        raise UsageError(
            f"'{path}' is a TorchScript archive (OpenAI's own download format); tgazsr does not run the code in "
            f"archives. Save its weights once, from a Python you trust it in: python -c \"import torch; "
            f"torch.save(torch.jit.load('{path}').state_dict(), 'openai-state.pt')\" and pass --pretrained "
            f"openai-state.pt (QuickGELU is then set for you)"
            + (f", or use {instead} --pretrained openai" if quick_model else ""))
    if base and kind == OPENAI and not model_cfg.get("quick_gelu"):
        warnings.warn(f"'{path}' holds OpenAI's CLIP weights, trained with QuickGELU: running {model_name} with "
                      f"QuickGELU (as {instead} does); checkpoints record it", stacklevel=3)
        return {**model_cfg, "quick_gelu": True}
    return model_cfg
