"""Checkpoints: one safetensors file with the model, optional optimiser and RNG state, and typed metadata.

Layout: tensors `model.<key>` (the whole open_clip model, both towers), `optim.state.<idx>.<name>` and
`rng.<...>`; the safetensors header holds one JSON document, `CheckpointMetadata` plus the optimiser/RNG layout
(see `metadata`). Writes are atomic (see `runtime.atomic`). Nothing here unpickles.
Resumable checkpoints are `step-*.safetensors` files in a run folder (`run_dir`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tgazsr_cli.checkpoints.metadata import CheckpointMetadata, header_of, read_header_document
from tgazsr_cli.checkpoints.rng import RNG, join_rng, split_rng
from tgazsr_cli.errors import UsageError, first_line
from tgazsr_cli.runtime.atomic import atomic_save_tensors, read_tensors
from tgazsr_cli.runtime.digest import tensor_digests, verify_digests
from tgazsr_cli.weights.files import MODEL_PREFIX

MODEL, OPTIM = MODEL_PREFIX, "optim."


@dataclass
class Checkpoint:
    """A loaded checkpoint; model keys carry no "model." prefix."""

    path: Path
    metadata: CheckpointMetadata
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    rng_state: dict[str, Any] | None


# -- optimiser state <-> tensors + JSON ----------------------------------------------------------------------
def _split_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors become `optim.state.<idx>.<name>`; numbers and param_groups go to JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIM}state.{int(index)}.{name}"] = value
            else:
                scalars.setdefault(str(int(index)), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of _split_optimizer: a dict `optimizer.load_state_dict` accepts."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, _, name = key.removeprefix(f"{OPTIM}state.").partition(".")
        if not index.isdigit() or not name:
            raise ValueError(f"unexpected optimiser tensor '{key}'")
        state.setdefault(int(index), {})[name] = value
    for index, entry in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": dict(sorted(state.items())), "param_groups": meta["param_groups"]}


# -- writing and reading -------------------------------------------------------------------------------------
def save_checkpoint(
    path: Path | str,
    *,
    model_state: Mapping[str, torch.Tensor],
    metadata: CheckpointMetadata,
    optimizer_state: Mapping[str, Any] | None = None,
    rng_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write one checkpoint atomically; metadata that JSON cannot hold is a UsageError before any write."""
    if not isinstance(metadata, CheckpointMetadata):
        raise TypeError(f"metadata must be a CheckpointMetadata, not {type(metadata).__name__}")
    tensors: dict[str, Any] = {f"{MODEL}{k}": v for k, v in model_state.items()}
    layout: dict[str, Any] = {"optimizer": None, "rng": None}
    if optimizer_state is not None:
        optim_tensors, layout["optimizer"] = _split_optimizer(optimizer_state)
        tensors.update(optim_tensors)
    if rng_state is not None:
        rng_tensors, layout["rng"] = split_rng(rng_state)
        tensors.update(rng_tensors)
    layout["digests"] = tensor_digests(tensors)  # checked on every read: safetensors checks no tensor data
    return atomic_save_tensors(path, tensors, header_of(metadata, layout))


def load_checkpoint(path: Path | str, *, map_location: str | torch.device = "cpu", verify: bool = True) -> Checkpoint:
    """Everything in a checkpoint; RNG tensors stay on the CPU, where torch requires them. Each tensor is checked
    against the digest written with it (checkpoints written before digests have none); `verify=False` skips it."""
    path = Path(path)
    metadata, layout = read_header_document(path)
    tensors = read_tensors(path)
    if verify and layout.get("digests"):
        verify_digests(path, tensors, layout["digests"])
    device = torch.device(map_location)

    def part(prefix: str, move: bool) -> dict[str, torch.Tensor]:
        found = {k: v for k, v in tensors.items() if k.startswith(prefix)}
        return {k: v.to(device) for k, v in found.items()} if move and device.type != "cpu" else found

    model = {k.removeprefix(MODEL): v for k, v in part(MODEL, True).items()}
    if not model:
        raise UsageError(f"'{path}' holds no model weights")
    try:
        optimizer = _join_optimizer(part(OPTIM, True), layout["optimizer"]) if layout.get("optimizer") else None
        rng = join_rng(part(RNG, False), layout["rng"]) if layout.get("rng") else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = first_line(exc)
        raise UsageError(f"'{path}' has corrupt optimiser or RNG state ({reason})") from None
    return Checkpoint(path=path, metadata=metadata, model_state=model, optimizer_state=optimizer, rng_state=rng)
