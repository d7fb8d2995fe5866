"""Checkpoints: one safetensors file with the model, optional optimiser and RNG state, and typed metadata.

Layout: tensors `model.<key>` (the whole open_clip model, both towers), `optim.state.<idx>.<name>` and
`rng.<...>`; the safetensors header metadata key "tgazsr" holds one JSON document: `CheckpointMetadata`
plus the optimiser/RNG layout. Writes are atomic (see `atomic`). Nothing here unpickles.
A run directory holds `final.safetensors` (model only) and `checkpoints/step-*.safetensors` (resumable).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata as dist
from pathlib import Path
from typing import Any

import torch

from tgazsr_cli.errors import RuntimeFailure, UsageError, first_line
from tgazsr_cli.runtime.atomic import atomic_save_tensors, check_json, read_header, read_tensors

FORMAT, FORMAT_VERSION, METADATA_KEY = "tgazsr-checkpoint", 1, "tgazsr"
METADATA_SCHEMA = 2  # version of CheckpointMetadata's fields; a document without "schema" is version 1
KINDS = ("training", "model")
MODEL, OPTIM, RNG = "model.", "optim.", "rng."
DEFAULT_PATTERN = "step-*.safetensors"
FINAL_NAME = "final.safetensors"  # a run's model-only checkpoint, for eval, attack and export
CHECKPOINT_DIR = "checkpoints"  # a run's resumable checkpoints
LAYOUT_KEYS = ("format", "format_version", "optimizer", "rng")  # written by save_checkpoint itself


@dataclass
class CheckpointMetadata:
    """What a tgazsr checkpoint says about itself: enough to rebuild the model and to resume its run."""

    kind: str  # "training" (resumable: optimiser and RNG state inside) or "model"
    method: str  # the training method, or "converted" for `tgazsr convert`
    model_name: str
    model_cfg: dict[str, Any]
    pretrained: str | None = None
    preprocess_cfg: dict[str, Any] = field(default_factory=dict)
    logit_scale: float = 100.0
    recipe: dict[str, Any] = field(default_factory=dict)  # the resolved recipe (empty for converted files)
    classnames: list[str] = field(default_factory=list)
    step: int = 0
    epoch: int = 0
    total_steps: int = 0
    skipped_steps: int = 0
    skipped_images: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # free-form facts (e.g. the file a convert read)
    versions: dict[str, str] = field(default_factory=lambda: library_versions())  # of the writing process
    schema: int = METADATA_SCHEMA

    @property
    def activation(self) -> str:
        """The image and text towers' MLP activation: OpenAI's weights need QuickGELU."""
        return "quick_gelu" if self.model_cfg.get("quick_gelu") else "gelu"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "checkpoint") -> CheckpointMetadata:
        """Read any schema version this release knows; version 1 kept the skip counters under "extra"."""
        data = {k: v for k, v in data.items() if k not in LAYOUT_KEYS}
        schema = data.get("schema", 1)
        if not isinstance(schema, int) or schema > METADATA_SCHEMA:
            raise UsageError(f"{where} has metadata schema {schema!r}; this tgazsr reads up to {METADATA_SCHEMA} "
                             "(upgrade tgazsr)")
        if schema == 1:
            extra = dict(data.get("extra") or {})
            data.setdefault("skipped_steps", extra.pop("skipped_steps", 0))
            data.setdefault("skipped_images", extra.pop("skipped_images", 0))
            data.pop("scheduler", None)  # v1 repeated (schedule name, step): both are in the recipe and step
            data["extra"] = extra
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        missing = [n for n in ("kind", "method", "model_name", "model_cfg") if n not in data]
        if missing:
            raise UsageError(f"{where} metadata lacks {', '.join(missing)}")
        known = {k: v for k, v in data.items() if k in names}
        known["extra"] = {**known.get("extra", {}), **{k: data[k] for k in unknown}}  # kept, not lost
        known["schema"] = METADATA_SCHEMA
        return cls(**known)


@dataclass
class Checkpoint:
    """A loaded checkpoint; `metadata` is the decoded "tgazsr" JSON, model keys carry no "model." prefix."""

    path: Path
    metadata: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    rng_state: dict[str, Any] | None

    @property
    def info(self) -> CheckpointMetadata:
        """The metadata as the typed record (any schema version upgraded)."""
        return CheckpointMetadata.from_dict(self.metadata, f"'{self.path}'")


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
    check_json(meta, "metadata")
    return atomic_save_tensors(path, tensors, {METADATA_KEY: json.dumps(meta, allow_nan=False)})


# -- reading ------------------------------------------------------------------------------------------------
def read_metadata(path: Path | str) -> dict[str, Any]:
    """The checkpoint's metadata from the header alone (no tensor data is read)."""
    path = Path(path)
    raw = read_header(path).get(METADATA_KEY)
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
    tensors = read_tensors(path)
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
        reason = first_line(exc)
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




def checkpoint_in(path: Path) -> Path:
    """A run directory resolves to its final checkpoint, else its newest valid training checkpoint."""
    if path.is_dir():
        final = path / FINAL_NAME
        if final.is_file():
            return final
        latest = latest_checkpoint(path / CHECKPOINT_DIR)
        if latest is None:
            raise UsageError(f"no checkpoint in {path} (expected {FINAL_NAME} or {CHECKPOINT_DIR}/step-*.safetensors)")
        return latest
    if not path.is_file():
        raise UsageError(f"checkpoint '{path}' does not exist")
    if path.suffix != ".safetensors":
        raise UsageError(f"'{path}' is not a tgazsr checkpoint; evaluate published weights with --model ViT-B-32 "
                         f"--pretrained openai+{path}, or convert them once with `tgazsr convert`")
    return path
