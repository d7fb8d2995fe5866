"""Which device to run on."""

from __future__ import annotations

import torch

from tgazsr_cli.errors import UsageError


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
