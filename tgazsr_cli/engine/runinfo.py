"""Facts about the running environment that results and checkpoints record."""

from __future__ import annotations

import platform
from importlib import metadata

import torch

from tgazsr_cli.engine.errors import UsageError


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("tgazsr", "torch", "open_clip_torch", "safetensors", "datasets"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def pick_device(requested: str = "auto") -> torch.device:
    """`auto` takes the GPU when there is one; an explicit CUDA request without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise UsageError(f"unknown device '{requested}' (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device '{requested}' requested but no CUDA GPU is available")
    return device
