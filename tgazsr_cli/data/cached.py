"""Training from a decoded cache (`data.cache: disk | device`): datasets over the array and the batch transform.

`disk`: DataLoader items are uint8 [S, S, 3] rows read from the memory-mapped file (the page cache keeps a
dataset that fits in RAM there after the first epoch). `device`: the whole array is copied to the training
device once and items are only indices, gathered on the device. Either way the trainer moves the uint8
batch (4x smaller than float32, and S x S instead of 224 x 224 for native storage) to the device and
calls `batch_transform` there.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tgazsr_cli.data.decoded_cache import (
    ExactStorage,
    Geometry,
    NativeStorage,
    build_cache,
    cache_key,
    checked_dataset,
    default_cache_root,
    labels_digest,
    pil_geometry,
    read_sidecar,
    source_fingerprint,
    to_model_input,
    verify_cache,
)
from tgazsr_cli.data.loading import ImageClassificationData
from tgazsr_cli.errors import RuntimeFailure, UsageError

DEVICE_SHARE = 0.5  # device mode only when the array takes at most this share of the free GPU memory


class DecodedImages(torch.utils.data.Dataset):
    """Items (uint8 [S, S, 3], label), or (index, label) with `indices_only`; None for an image broken at build."""

    def __init__(self, path: Path, labels: Sequence[int], broken: Sequence[int], indices_only: bool = False) -> None:
        self.path, self.labels, self.broken = path, list(labels), frozenset(broken)
        self.indices_only = indices_only
        self._array: np.ndarray | None = None  # opened lazily, once per DataLoader worker

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}

    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int] | None]:
        """A whole batch in one read of the memory map (the DataLoader calls this when it exists)."""
        indices = [int(i) for i in indices]
        if self.indices_only:
            return [None if i in self.broken else (torch.tensor(i), self.labels[i]) for i in indices]
        rows = torch.from_numpy(np.ascontiguousarray(self.array()[indices]))
        return [None if i in self.broken else (rows[k], self.labels[i]) for k, i in enumerate(indices)]


@dataclass
class CacheInfo:
    key: str
    path: Path
    num_images: int
    broken: int
    built: bool  # decoded now (False: an existing cache was reused)
    storage_size: int
    native: bool  # S x S squares that the device still resizes and crops (else: the exact model input)


def ensure_cache(data: ImageClassificationData, folder: Path, *, storage_size: int | None, image_size: int,
                 limit: int | None, seed: int, workers: int = 0) -> CacheInfo:
    """Find the cache of `data` and check it against its digests, or decode it into one now."""
    dataset = checked_dataset(data)
    key = cache_key(source_fingerprint(data), storage_size, image_size, limit, seed)
    info, built = read_sidecar(folder, key), False
    problem = verify_cache(folder, key, info) if info is not None else None
    if info is None and (folder / f"{key}.json").is_file():
        problem = "its files cannot be read"  # a sidecar is written last: the cache was complete once
    if problem is not None:  # rebuilt rather than fatal: the source is there to decode again
        warnings.warn(f"decoded cache {folder / key}.npy is damaged: {problem}; rebuilding it", stacklevel=2)
        info = None
    if info is None:
        steps = getattr(dataset.transform, "transforms", [])
        squash = not any(type(step).__name__ == "CenterCrop" for step in steps)  # resize mode (CIFAR, STL)
        storage = NativeStorage(storage_size, squash) if storage_size else ExactStorage(dataset.transform)
        info = build_cache(data, folder, key, storage, storage_size or image_size, workers)
        built = True
    return CacheInfo(key, folder / f"{key}.npy", info["num_images"], len(info["broken"]), built,
                     info["storage_size"], native=storage_size is not None)


def cached_training_data(
    data: ImageClassificationData, cache: CacheInfo, *, mode: str, device: torch.device,
) -> tuple[ImageClassificationData, Callable[[torch.Tensor], torch.Tensor], str]:
    """(data whose items come from the cache, the on-device batch transform, the mode actually used)."""
    info = read_sidecar(cache.path.parent, cache.key)
    if info is None or info.get("labels_digest") != labels_digest(info):  # ensure_cache checked it just now
        raise RuntimeFailure(f"decoded cache {cache.path} changed while in use; run again to rebuild it")
    geometry: Geometry | None = None
    if cache.native:
        geometry = pil_geometry(checked_dataset(data).transform, cache.storage_size)
    nbytes = cache.num_images * cache.storage_size**2 * 3
    if mode == "device" and device.type == "cuda" and nbytes > DEVICE_SHARE * torch.cuda.mem_get_info(device)[0]:
        mode = "disk"  # does not fit: read from the memory map instead
    dataset = DecodedImages(cache.path, info["labels"], info["broken"], indices_only=mode == "device")
    if mode == "device":
        images = torch.from_numpy(np.load(cache.path)).to(device)
        transform = partial(_gather_then_transform, images, geometry)
    else:
        transform = partial(to_model_input, geometry=geometry)
    source = f"{data.source}; decoded cache {cache.path.name} ({mode})"
    return replace(data, dataset=dataset, source=source), transform, mode


def _gather_then_transform(images: torch.Tensor, geometry: Geometry | None, indices: torch.Tensor) -> torch.Tensor:
    return to_model_input(images[indices.to(images.device)], geometry)


def apply_decoded_cache(
    data: ImageClassificationData, recipe: Any, image_size: int, device: torch.device,
    log: Callable[[str], None], run_on_main: Callable[[Callable[[], CacheInfo]], CacheInfo],
) -> tuple[ImageClassificationData, Callable[[torch.Tensor], torch.Tensor]]:
    """The trainer's `data.cache` step: build (on rank 0) or reuse the cache, then read from it."""
    settings = recipe.data
    folder = Path(settings.cache_dir).expanduser() if settings.cache_dir else default_cache_root()

    def find_or_build() -> CacheInfo:
        try:
            return ensure_cache(data, folder, storage_size=settings.cache_size, image_size=image_size,
                                limit=settings.limit, seed=recipe.train.seed, workers=settings.num_workers)
        except OSError as exc:
            raise UsageError(f"cannot write the decoded cache in {folder}: {exc.strerror or exc}; "
                             "set data.cache_dir to a writable folder or data.cache=off") from exc

    cache = run_on_main(find_or_build)
    cached, transform, mode = cached_training_data(data, cache, mode=settings.cache, device=device)
    storage = f"native {cache.storage_size} px" if cache.native else "exact"
    log(f"decoded cache {cache.path} ({'built' if cache.built else 'reused'}: {cache.num_images} images, "
        f"{cache.broken} that cannot be decoded, {storage}, {mode})")
    return cached, transform
