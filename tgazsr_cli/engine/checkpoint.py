"""Checkpoints: one safetensors file with the model, optional optimiser and RNG state, and JSON metadata.

Files are written atomically (temporary file in the same folder, fsync, rename, fsync of the folder), so a
kill during a save never leaves a corrupt checkpoint under the final name. Nothing here unpickles: weights
from elsewhere in pickle form are read with `torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tgazsr_cli.engine.errors import RuntimeFailure, UsageError

FORMAT = "tgazsr-checkpoint"
METADATA_KEY = "tgazsr"
MODEL, OPTIM, RNG = "model.", "optim.", "rng."
STEP_PATTERN = re.compile(r"step-(\d+)\.safetensors$")
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".tar", ".ckpt")


@dataclass
class Checkpoint:
    path: Path
    metadata: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    rng_state: dict[str, Any] | None


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.safetensors"


# -- optimiser and RNG state <-> flat tensors + JSON ----------------------------------------------------
def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIM}state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.removeprefix(f"{OPTIM}state.").split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, entry in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy (when installed), torch CPU and every CUDA device's generator state."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    try:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached": float(cached)}
    except ImportError:  # numpy is optional at run time
        pass
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        saved = state["numpy"]
        np.random.set_state((saved["kind"], saved["keys"].numpy().astype("uint32"), saved["pos"],
                             saved["has_gauss"], saved["cached"]))


def _split_rng(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {f"{RNG}torch": state["torch"]}
    tensors.update({f"{RNG}cuda.{i}": s for i, s in enumerate(state["cuda"])})
    meta: dict[str, Any] = {"python": state["python"], "cuda_devices": len(state["cuda"])}
    if "numpy" in state:
        tensors[f"{RNG}numpy.keys"] = state["numpy"]["keys"]
        meta["numpy"] = {k: v for k, v in state["numpy"].items() if k != "keys"}
    return tensors, meta


def _join_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": meta["python"],
        "torch": tensors[f"{RNG}torch"],
        "cuda": [tensors[f"{RNG}cuda.{i}"] for i in range(meta.get("cuda_devices", 0))],
    }
    if "numpy" in meta:
        state["numpy"] = {**meta["numpy"], "keys": tensors[f"{RNG}numpy.keys"]}
    return state


# -- writing ------------------------------------------------------------------------------------------------
def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """safetensors `save_file` to a temporary sibling, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _own(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU tensor with its own storage (safetensors refuses shared or strided ones)."""
    return tensor.detach().to("cpu").contiguous().clone()


def save_checkpoint(
    path: Path | str,
    *,
    model_state: dict[str, torch.Tensor],
    metadata: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
    rng_state: dict[str, Any] | None = None,
) -> Path:
    """Write one checkpoint atomically; metadata must be JSON-serialisable."""
    tensors = {f"{MODEL}{k}": _own(v) for k, v in model_state.items()}
    meta = {"format": FORMAT, "format_version": 1, **metadata}
    if optimizer_state is not None:
        optim_tensors, meta["optimizer"] = _split_optimizer(optimizer_state)
        tensors.update({k: _own(v) for k, v in optim_tensors.items()})
    if rng_state is not None:
        rng_tensors, meta["rng"] = _split_rng(rng_state)
        tensors.update({k: _own(v) for k, v in rng_tensors.items()})
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise RuntimeFailure(f"checkpoint metadata is not JSON-serialisable: {exc}") from exc
    try:
        return atomic_save_tensors(Path(path), tensors, {METADATA_KEY: text})
    except OSError as exc:
        raise RuntimeFailure(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc


# -- reading ------------------------------------------------------------------------------------------------
def read_metadata(path: Path | str) -> dict[str, Any]:
    """The checkpoint's metadata from the header alone; UsageError for anything that is not ours."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint '{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UsageError(f"'{path}' is not a readable safetensors file (truncated or foreign?): {exc}") from exc
    if raw is None:
        raise UsageError(f"'{path}' is a safetensors file but not a tgazsr checkpoint (no '{METADATA_KEY}' metadata)")
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"'{path}' has corrupt tgazsr metadata") from exc
    if meta.get("format") != FORMAT:
        raise UsageError(f"'{path}' is not a tgazsr checkpoint (format {meta.get('format')!r})")
    return meta


def load_checkpoint(path: Path | str, *, map_location: str = "cpu") -> Checkpoint:
    path = Path(path)
    meta = read_metadata(path)
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt", device=map_location) as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors[key] = handle.get_tensor(key)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UsageError(f"'{path}' is corrupt: {exc}") from exc
    model = {k.removeprefix(MODEL): v for k, v in tensors.items() if k.startswith(MODEL)}
    optim = {k: v for k, v in tensors.items() if k.startswith(OPTIM)}
    rng = {k: v for k, v in tensors.items() if k.startswith(RNG)}
    return Checkpoint(
        path=path,
        metadata=meta,
        model_state=model,
        optimizer_state=_join_optimizer(optim, meta["optimizer"]) if "optimizer" in meta else None,
        rng_state=_join_rng(rng, meta["rng"]) if "rng" in meta else None,
    )


def _step_of(path: Path) -> int | None:
    match = STEP_PATTERN.search(path.name)
    return int(match.group(1)) if match else None


def step_checkpoints(directory: Path | str) -> list[Path]:
    """`step-*.safetensors` files of a folder, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _step_of(p) is not None]
    return sorted(found, key=lambda p: _step_of(p) or 0)


def latest_checkpoint(directory: Path | str) -> Path | None:
    """The newest checkpoint whose header reads back; a corrupt newest file falls back to the one before."""
    for path in reversed(step_checkpoints(directory)):
        try:
            read_metadata(path)
        except UsageError:
            continue
        return path
    return None


def rotate_checkpoints(directory: Path | str, keep_last: int = 3) -> list[Path]:
    """Delete all but the newest `keep_last` step checkpoints; returns the kept ones."""
    found = step_checkpoints(directory)
    keep = found[-keep_last:] if keep_last > 0 else []
    for path in found:
        if path not in keep:
            path.unlink(missing_ok=True)
    return keep


def check_compatible(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """UsageError naming a few missing, unexpected and mis-shaped keys when `state` is another architecture."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", mismatched)):
        if items:
            parts.append(f"{len(items)} {label} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})")
    raise UsageError("checkpoint is for a different architecture: " + "; ".join(parts))


# -- interoperability ---------------------------------------------------------------------------------------
def export_open_clip(
    checkpoint_or_state: Checkpoint | dict[str, torch.Tensor],
    *,
    model_cfg: dict[str, Any],
    preprocess_cfg: dict[str, Any],
    out_dir: Path | str,
) -> Path:
    """Write an open_clip `local-dir:` folder: open_clip_config.json + open_clip_model.safetensors."""
    state = checkpoint_or_state.model_state if isinstance(checkpoint_or_state, Checkpoint) else checkpoint_or_state
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
        (out / "open_clip_config.json").write_text(json.dumps(config, indent=2))
        atomic_save_tensors(out / "open_clip_model.safetensors", {k: _own(v) for k, v in state.items()}, {})
    except OSError as exc:
        raise RuntimeFailure(f"cannot write export folder {out}: {exc.strerror or exc}") from exc
    return out


CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "vision_encoder_state_dict")


def load_foreign_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Weights from elsewhere: safetensors, or a pickle read with weights_only=True (never anything else)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"weights file '{path}' does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise UsageError(f"'{path}' is not a readable safetensors file: {exc}") from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # weights_only raises UnpicklingError, RuntimeError, ... for unsafe content
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(
                f"'{path}' cannot be read safely: tgazsr refuses to unpickle arbitrary objects "
                f"(torch.load weights_only=True said: {first[:200]})"
            ) from None
    for key in CONTAINER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"'{path}' does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}
