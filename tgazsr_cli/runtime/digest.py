"""Digests of tensor bytes: written with a checkpoint, checked when it is read, so bit rot is an error.

safetensors checks a file's header and size, not its data: a flipped byte inside a tensor loads silently.
CRC-32 per tensor (zlib, several GB/s) catches flipped, zeroed and swapped bytes and names the tensor; it is
a check against corruption, not against tampering. zlib releases the GIL while it hashes, so the tensors of a
checkpoint are hashed on several threads.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from tgazsr_cli.errors import UsageError

if TYPE_CHECKING:
    import torch

ALGORITHM = "crc32"


def tensor_digest(tensor: torch.Tensor) -> str:
    """CRC-32 of the tensor's bytes as stored (CPU, contiguous, native byte order), as 8 hex digits."""
    import torch

    raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    return f"{zlib.crc32(memoryview(raw)):08x}"


def tensor_digests(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    workers = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if workers < 2 or len(tensors) < 2:
        return {key: tensor_digest(tensor) for key, tensor in tensors.items()}
    with ThreadPoolExecutor(workers) as pool:
        return dict(zip(tensors, pool.map(tensor_digest, tensors.values()), strict=True))


def verify_digests(path: Path, tensors: Mapping[str, torch.Tensor], expected: Mapping[str, str]) -> None:
    """UsageError naming the file and the first tensor whose bytes differ from what was written."""
    found = tensor_digests({key: tensor for key, tensor in tensors.items() if key in expected})
    for key, digest in found.items():
        if digest != expected[key]:
            raise UsageError(f"'{path}' is corrupt: tensor '{key}' differs from what was written "
                             f"({ALGORITHM} mismatch); use an earlier checkpoint or a fresh copy")
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise UsageError(f"'{path}' is corrupt: tensor '{missing[0]}' is missing")
