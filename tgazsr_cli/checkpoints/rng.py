"""The random-number state a resumed run draws from (Python, NumPy, torch CPU and CUDA), and its checkpoint form:
tensors `rng.<...>` plus a JSON entry in the checkpoint's header document."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch

RNG = "rng."  # the tensor-name prefix in a checkpoint


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


def split_rng(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A captured state as (tensors `rng.<...>`, the JSON rest)."""
    tensors = {f"{RNG}torch": state["torch"]}
    tensors.update({f"{RNG}cuda.{i}": s for i, s in enumerate(state.get("cuda", []))})
    meta: dict[str, Any] = {"python": state["python"], "cuda_devices": len(state.get("cuda", []))}
    if "numpy" in state:
        tensors[f"{RNG}numpy.keys"] = state["numpy"]["keys"]
        meta["numpy"] = {k: v for k, v in state["numpy"].items() if k != "keys"}
    return tensors, meta


def join_rng(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of split_rng: a state restore_rng_state takes."""
    state: dict[str, Any] = {
        "python": meta["python"],
        "torch": tensors[f"{RNG}torch"],
        "cuda": [tensors[f"{RNG}cuda.{i}"] for i in range(meta.get("cuda_devices", 0))],
    }
    if "numpy" in meta:
        state["numpy"] = {**meta["numpy"], "keys": tensors[f"{RNG}numpy.keys"]}
    return state
