"""A checkpoint as plain open_clip weights: a LoRA run's step checkpoint gets its adapters merged.

The model is rebuilt from the checkpoint's own metadata (no weights loaded), then `models.lora.merge_adapters`
merges the adapters the checkpoint's recipe describes into it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tgazsr_cli.checkpoints.checkpoint import Checkpoint, load_checkpoint
from tgazsr_cli.checkpoints.metadata import CheckpointMetadata
from tgazsr_cli.config import LoraConfig, build_section
from tgazsr_cli.models.building import ModelSpec, build_clip
from tgazsr_cli.models.lora import has_adapters, merge_adapters


def model_spec(info: CheckpointMetadata) -> ModelSpec:
    """The spec a checkpoint's model is rebuilt from: what its metadata recorded."""
    return ModelSpec(info.model_name, info.pretrained, info.model_cfg, info.preprocess_cfg)


def plain_checkpoint(checkpoint: Checkpoint) -> Checkpoint:
    """A checkpoint whose model weights plain open_clip loads: adapters, if any, merged into the image tower
    (and the optimiser state, which belongs to the adapters, dropped)."""
    if not has_adapters(checkpoint.model_state):
        return checkpoint
    info = checkpoint.metadata
    settings = build_section(LoraConfig, dict(info.recipe.get("lora") or {}), "lora.")
    clip = build_clip(model_spec(info), load_weights=False)
    merged = merge_adapters(clip, checkpoint.model_state, settings)
    return dataclasses.replace(checkpoint, model_state=merged, optimizer_state=None)


def load_plain_checkpoint(path: Path | str, *, verify: bool = True) -> Checkpoint:
    """`load_checkpoint`, then `plain_checkpoint`: a checkpoint to evaluate, export or start from."""
    return plain_checkpoint(load_checkpoint(path, verify=verify))
