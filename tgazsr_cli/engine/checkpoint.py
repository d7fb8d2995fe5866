"""Checkpoints: one safetensors file with the model, optional optimiser and RNG state, and JSON metadata.

Layout: tensors `model.<key>` (the whole open_clip model, both towers), `optim.state.<idx>.<name>` and
`rng.<...>`; the safetensors header metadata key "tgazsr" holds one JSON document with everything else.
Writes are atomic (temporary sibling, fsync, rename, fsync of the folder), so a kill mid-save never leaves a
partial file under the final name. Nothing here unpickles: pickled weights from elsewhere are read with
`torch.load(weights_only=True)` only, and whatever that refuses stays refused.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata as dist
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tgazsr_cli.engine.errors import RuntimeFailure, UsageError

FORMAT, FORMAT_VERSION, METADATA_KEY = "tgazsr-checkpoint", 1, "tgazsr"
KINDS = ("training", "model")
MODEL, OPTIM, RNG = "model.", "optim.", "rng."
DEFAULT_PATTERN = "step-*.safetensors"
CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "vision_encoder_state_dict")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


@dataclass
class Checkpoint:
    """A loaded checkpoint; `metadata` is the decoded "tgazsr" JSON, model keys carry no "model." prefix."""

    path: Path
    metadata: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    rng_state: dict[str, Any] | None


def checkpoint_name(step: int) -> str:
    """Zero-padded so that names sort in step order in any file browser."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return f"step-{step:08d}.safetensors"


def library_versions() -> dict[str, str]:
    """Recorded so that a result can be traced to the code that produced it."""
    versions = {"python": platform.python_version()}
    for key, package in (("tgazsr", "tgazsr"), ("torch", "torch"), ("open_clip", "open_clip_torch"),
                         ("safetensors", "safetensors")):
        try:
            versions[key] = dist.version(package)
        except dist.PackageNotFoundError:
            versions[key] = "unknown"
    return versions


# -- JSON and tensor hygiene --------------------------------------------------------------------------------
def _check_json(value: Any, where: str) -> None:
    """Reject what JSON cannot hold or would corrupt (objects, NaN, non-string keys), naming where it is.

    Tuples are allowed and come back as lists (torch accepts list `betas` in param_groups).
    """
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"checkpoint {where} is {value}, which JSON cannot hold")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(f"checkpoint {where} has a non-string key {key!r} (JSON keys are strings)")
            _check_json(item, f"{where}[{key!r}]")
        return
    raise UsageError(f"checkpoint {where} is a {type(value).__name__}, which is not JSON-serialisable")


def _owned(tensors: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, one storage each: safetensors refuses shared storage (tied weights) and strides."""
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise UsageError(f"cannot save '{key}': a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().cpu()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen or not tensor.is_contiguous():
            tensor = tensor.contiguous().clone()
            pointer = tensor.untyped_storage().data_ptr()
        seen.add(pointer)
        out[key] = tensor
    return out


# -- optimiser and RNG state <-> tensors + JSON ------------------------------------------------------------
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


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy (when installed), torch CPU and every CUDA device: all a resumed run draws from."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    try:
        import numpy as np
    except ImportError:  # numpy is optional at run time
        return state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = {"kind": str(kind), "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)}
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Undo capture_rng_state; CUDA states are restored for the devices both runs have."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if torch.cuda.is_available():
        for device, cuda_state in enumerate(state.get("cuda", [])[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device)
    if "numpy" in state:
        try:
            import numpy as np
        except ImportError:
            return
        saved = state["numpy"]
        np.random.set_state((saved["kind"], saved["keys"].numpy().astype("uint32"), saved["pos"],
                             saved["has_gauss"], saved["cached"]))


def _split_rng(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {f"{RNG}torch": state["torch"]}
    tensors.update({f"{RNG}cuda.{i}": s for i, s in enumerate(state.get("cuda", []))})
    meta: dict[str, Any] = {"python": state["python"], "cuda_devices": len(state.get("cuda", []))}
    if "numpy" in state:
        tensors[f"{RNG}numpy.keys"] = state["numpy"]["keys"]
        meta["numpy"] = {k: v for k, v in state["numpy"].items() if k != "keys"}
    return tensors, meta


def _join_rng(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
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
    """Make the rename itself durable; some filesystems cannot open folders, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Any) -> Path:
    """Call `write(tmp)` for a hidden sibling, fsync it, rename it over `path`; no partial file survives."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_save_tensors(path: Path | str, tensors: Mapping[str, Any], metadata: dict[str, str]) -> Path:
    """safetensors file written atomically; RuntimeFailure when the disk says no."""
    try:
        return _atomic_write(Path(path), lambda tmp: save_file(_owned(tensors), str(tmp), metadata=metadata))
    except (OSError, SafetensorError) as exc:
        raise RuntimeFailure(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def save_checkpoint(
    path: Path | str,
    *,
    model_state: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
    optimizer_state: Mapping[str, Any] | None = None,
    rng_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write one checkpoint atomically; metadata that JSON cannot hold is a UsageError before any write.

    "format", "format_version", "optimizer" and "rng" in the metadata are set here; "versions" is filled in
    when the caller gives none.
    """
    meta = {**metadata, "format": FORMAT, "format_version": FORMAT_VERSION}
    meta.setdefault("versions", library_versions())
    if "kind" in meta and meta["kind"] not in KINDS:
        raise UsageError(f"checkpoint kind must be one of {', '.join(KINDS)}, not {meta['kind']!r}")
    tensors: dict[str, Any] = {f"{MODEL}{k}": v for k, v in model_state.items()}
    meta["optimizer"] = meta["rng"] = None
    if optimizer_state is not None:
        optim_tensors, meta["optimizer"] = _split_optimizer(optimizer_state)
        tensors.update(optim_tensors)
    if rng_state is not None:
        rng_tensors, meta["rng"] = _split_rng(rng_state)
        tensors.update(rng_tensors)
    _check_json(meta, "metadata")
    return atomic_save_tensors(path, tensors, {METADATA_KEY: json.dumps(meta, allow_nan=False)})


# -- reading ------------------------------------------------------------------------------------------------
def _header(path: Path) -> dict[str, str]:
    """The safetensors header metadata; truncation shows here because the header fixes the file size."""
    if not path.exists():
        raise UsageError(f"checkpoint '{path}' does not exist")
    if not path.is_file():
        raise UsageError(f"checkpoint '{path}' is not a file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except SafetensorError as exc:
        reason = _first_line(exc)
        raise UsageError(f"'{path}' is not a valid safetensors file, or is truncated ({reason})") from None
    except OSError as exc:
        raise RuntimeFailure(f"cannot read '{path}': {exc.strerror or exc}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on the CPU."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a mapping
    except (SafetensorError, RuntimeError) as exc:
        raise UsageError(f"'{path}' is corrupt: {_first_line(exc)}") from None
    except OSError as exc:
        raise RuntimeFailure(f"cannot read '{path}': {exc.strerror or exc}") from exc


def read_metadata(path: Path | str) -> dict[str, Any]:
    """The checkpoint's metadata from the header alone (no tensor data is read)."""
    path = Path(path)
    raw = _header(path).get(METADATA_KEY)
    if raw is None:
        raise UsageError(f"'{path}' is a safetensors file but not a tgazsr checkpoint "
                         f"(no '{METADATA_KEY}' metadata)")
    try:
        meta = json.loads(raw)
    except ValueError:
        raise UsageError(f"'{path}' has corrupt tgazsr metadata (not JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UsageError(f"'{path}' is not a tgazsr checkpoint (unexpected metadata format)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UsageError(f"'{path}' has checkpoint format_version {version!r}; this tgazsr reads up to "
                         f"{FORMAT_VERSION} (upgrade tgazsr)")
    return meta


def load_checkpoint(path: Path | str, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Everything in a checkpoint; RNG tensors stay on the CPU, where torch requires them."""
    path = Path(path)
    meta = read_metadata(path)
    tensors = _read_tensors(path)
    device = torch.device(map_location)

    def part(prefix: str, move: bool) -> dict[str, torch.Tensor]:
        found = {k: v for k, v in tensors.items() if k.startswith(prefix)}
        return {k: v.to(device) for k, v in found.items()} if move and device.type != "cpu" else found

    model = {k.removeprefix(MODEL): v for k, v in part(MODEL, True).items()}
    if not model:
        raise UsageError(f"'{path}' holds no model weights")
    try:
        optimizer = _join_optimizer(part(OPTIM, True), meta["optimizer"]) if meta.get("optimizer") else None
        rng = _join_rng(part(RNG, False), meta["rng"]) if meta.get("rng") else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = _first_line(exc)
        raise UsageError(f"'{path}' has corrupt optimiser or RNG state ({reason})") from None
    return Checkpoint(path=path, metadata=meta, model_state=model, optimizer_state=optimizer, rng_state=rng)


# -- run folders --------------------------------------------------------------------------------------------
def _step_of(path: Path) -> int | None:
    """The last number in the file name; names without one are not step checkpoints."""
    numbers = re.findall(r"\d+", path.name.removesuffix(".safetensors"))
    return int(numbers[-1]) if numbers else None


def step_checkpoints(directory: Path | str, pattern: str = DEFAULT_PATTERN) -> list[Path]:
    """Files matching `pattern` that carry a step number, oldest step first (temporary files excluded)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob(pattern)
             if p.is_file() and not p.name.startswith(".") and _step_of(p) is not None]
    return sorted(found, key=lambda p: (_step_of(p), p.name))


def _is_valid(path: Path) -> bool:
    try:
        read_metadata(path)
    except (UsageError, RuntimeFailure):
        return False
    return True


def latest_checkpoint(directory: Path | str, pattern: str = DEFAULT_PATTERN) -> Path | None:
    """The newest checkpoint whose header reads back; a corrupt newest file falls back to the one before."""
    return next((p for p in reversed(step_checkpoints(directory, pattern)) if _is_valid(p)), None)


def rotate_checkpoints(
    directory: Path | str, pattern: str = DEFAULT_PATTERN, keep_last: int = 3
) -> list[Path]:
    """Keep the newest `keep_last` valid checkpoints and delete older files; returns the kept ones.

    Only valid files count towards `keep_last`, so a corrupt newest file can never cost the last good one;
    corrupt files newer than the kept ones are left for inspection.
    """
    if keep_last < 1:
        raise UsageError(f"keep_last must be at least 1, got {keep_last}")
    found = step_checkpoints(directory, pattern)
    kept = [p for p in found if _is_valid(p)][-keep_last:]
    if not kept:
        return []
    for path in found[: found.index(kept[0])]:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise RuntimeFailure(f"cannot delete old checkpoint {path}: {exc.strerror or exc}") from exc
    return kept


def check_compatible(model_state: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """UsageError naming a few missing, unexpected and mis-shaped keys when the architectures differ."""

    def shape(value: Any) -> tuple[int, ...]:
        return tuple(value.shape) if hasattr(value, "shape") else tuple(value)

    missing = [k for k in expected if k not in model_state]
    unexpected = [k for k in model_state if k not in expected]
    mismatched = [f"{k} {shape(model_state[k])} vs expected {shape(v)}" for k, v in expected.items()
                  if k in model_state and shape(model_state[k]) != shape(v)]
    parts = [f"{len(items)} {label} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})"
             for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                  ("shape mismatches", mismatched)) if items]
    if parts:
        raise UsageError("checkpoint is for a different architecture: " + ", ".join(parts))


# -- interoperability ---------------------------------------------------------------------------------------
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
    _check_json(config, "export config")
    state = checkpoint_or_state
    if isinstance(state, Checkpoint):
        state = state.model_state
    out = Path(out_dir)
    atomic_save_tensors(out / "open_clip_model.safetensors", state, {"format": "pt"})
    text = json.dumps(config, indent=2) + "\n"
    try:
        _atomic_write(out / "open_clip_config.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {out / 'open_clip_config.json'}: {exc.strerror or exc}") from exc
    return out


def _looks_like_safetensors(path: Path) -> bool:
    """An 8-byte header length followed by a JSON object: how safetensors files begin, whatever the suffix."""
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
    except OSError as exc:
        raise RuntimeFailure(f"cannot read '{path}': {exc.strerror or exc}") from exc
    return len(head) == 9 and head[8:9] == b"{"


def _torch_load_weights_only(path: Path) -> Any:
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
        return _read_tensors(path)
    return _torch_load_weights_only(path)


def load_foreign_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Weights from elsewhere: safetensors, or a pickle read with weights_only=True (never anything else)."""
    path = Path(path)
    if path.is_file() and (path.suffix == ".safetensors" or _looks_like_safetensors(path)) \
            and METADATA_KEY in _header(path):
        return load_checkpoint(path).model_state
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
