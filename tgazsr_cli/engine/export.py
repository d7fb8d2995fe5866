"""Checkpoints as open_clip folders that any open_clip user can load, without tgazsr."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tgazsr_cli.engine.atomic import atomic_save_tensors, atomic_write, check_json
from tgazsr_cli.engine.checkpoint import Checkpoint
from tgazsr_cli.engine.errors import RuntimeFailure, UsageError


def export_open_clip(
    checkpoint_or_state: Checkpoint | Mapping[str, torch.Tensor],
    *,
    model_cfg: Mapping[str, Any],
    preprocess_cfg: Mapping[str, Any],
    out_dir: Path | str,
) -> Path:
    """An open_clip `local-dir:` folder (open_clip_config.json + open_clip_model.safetensors) for any user."""
    if not {"vision_cfg", "text_cfg"} <= set(model_cfg):
        raise UsageError("model_cfg needs 'vision_cfg' and 'text_cfg' for open_clip to rebuild the model")
    config = {"model_cfg": dict(model_cfg), "preprocess_cfg": dict(preprocess_cfg)}
    check_json(config, "export config")
    state = checkpoint_or_state
    if isinstance(state, Checkpoint):
        state = state.model_state
    out = Path(out_dir)
    atomic_save_tensors(out / "open_clip_model.safetensors", state, {"format": "pt"})
    text = json.dumps(config, indent=2) + "\n"
    try:
        atomic_write(out / "open_clip_config.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {out / 'open_clip_config.json'}: {exc.strerror or exc}") from exc
    return out


def export_checkpoint(checkpoint: Path, out_dir: Path) -> tuple[Path, Path]:
    """(the checkpoint file read, the folder written): a run directory or checkpoint as an open_clip folder."""
    from tgazsr_cli.engine.checkpoint import checkpoint_in, load_checkpoint

    path = checkpoint_in(checkpoint)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"output folder {out_dir} is not empty")
    state = load_checkpoint(path)
    info = state.info
    return path, export_open_clip(state, model_cfg=info.model_cfg, preprocess_cfg=info.preprocess_cfg,
                                  out_dir=out_dir)
