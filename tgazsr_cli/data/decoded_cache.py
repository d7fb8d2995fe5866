"""A dataset decoded once into a uint8 array file; later epochs and runs read it without decoding (`data.cache`).

Two storage kinds, both `[N, S, S, 3]` uint8 in a `.npy` file read through a memory map:
- exact (`data.cache_size: null`, the default): today's PIL transform (resize + centre crop, spec §3) is applied
  at build time and its output stored; the batch transform on the device is only `/ 255`, so the tensors the
  model sees are bit-identical to the uncached path (the paper setting stays reproducible).
- native (`data.cache_size: S`): images stored as S x S centre squares (Tiny-ImageNet's 64 x 64 JPEGs as they
  are, 25x smaller than 224 x 224); resize and centre crop run on the device in torch (bilinear, antialiased,
  rounded to the uint8 grid like PIL's output). Not bit-identical to PIL: see `NATIVE_TOLERANCE`.

Files live in `<cache dir>/decoded/<key>.npy` with a `<key>.json` sidecar (labels, class names, broken images,
key inputs, digests of the array and of the labels). The key hashes the source's fingerprint (its Arrow files
or image files: path, size, mtime), split, subset (limit, seed) and storage kind and size. The array is written
to a temporary file and renamed, then the sidecar is renamed into place: a cache is only ever seen complete.
Images that cannot be decoded are counted at build time and stay `None` items, so `data.on_broken` skips or
fails exactly as without the cache.

The key says which source a cache was built from, not that its bytes are still what was built: a flipped block
on disk or an edited sidecar would train on bad data. So the sidecar keeps a sha256 per 32 MiB block of the
array (blocks hashed in parallel threads; hashlib frees the GIL) and one of the labels, and `verify_cache`
checks both the first time a process reuses a cache: 0.3 s for 3,000 exact 224 px images (451 MB, in the
page cache, one core), a read that also warms the page cache the first epoch reads from anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from tgazsr_cli.data.dataset import HFImageDataset, decode_image
from tgazsr_cli.data.loading import ImageClassificationData
from tgazsr_cli.errors import UsageError

FORMAT_VERSION = 2  # 2: the sidecar holds digests (caches of version 1 have none, so they are rebuilt)
MODES = ("off", "disk", "device")
# native storage + device resize vs the PIL path, in [0, 1] units (tests/test_decoded_cache.py): at most one
# uint8 level (PIL's fixed-point filter vs torch's float one, both rounded to uint8), about 20% of the values
NATIVE_TOLERANCE = 1 / 255 + 1e-6


def default_cache_root() -> Path:
    """$TGAZSR_CACHE, else $XDG_CACHE_HOME/tgazsr, else ~/.cache/tgazsr (as the text-feature cache); + decoded/."""
    root = os.environ.get("TGAZSR_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tgazsr"
    return Path(root) / "decoded"


@dataclass(frozen=True)
class Geometry:
    """What the device does to a stored [S, S] image: resize to `resize` (h, w) if set, then crop `crop`."""

    resize: tuple[int, int] | None
    crop: int | None


def pil_geometry(transform: Any, storage_size: int) -> Geometry:
    """The Resize / CenterCrop of today's transform (transforms.build_transform), re-done on a stored square."""
    steps = getattr(transform, "transforms", None) or []
    resize = next((s for s in steps if isinstance(s, T.Resize)), None)
    crop = next((s for s in steps if isinstance(s, T.CenterCrop)), None)
    if resize is None:
        raise UsageError("data.cache_size needs the standard resize transform; use data.cache_size=null")
    size = resize.size if isinstance(resize.size, int) else tuple(resize.size)
    if isinstance(size, (list, tuple)) and len(size) == 1:
        size = size[0]
    target = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return Geometry(None if target == (storage_size, storage_size) else target,
                    int(crop.size[0]) if crop is not None else None)


def to_model_input(batch: torch.Tensor, geometry: Geometry | None) -> torch.Tensor:
    """uint8 [B, S, S, 3] (on the device) -> float [B, 3, s, s] in [0, 1], as the PIL path's ToTensor gives."""
    images = batch.permute(0, 3, 1, 2).float().div_(255)
    if geometry is None:
        return images.contiguous()
    if geometry.resize is not None:
        images = torch.nn.functional.interpolate(images, size=geometry.resize, mode="bilinear", antialias=True,
                                                 align_corners=False)
        images = images.mul_(255).round_().clamp_(0, 255).div_(255)  # PIL resizes into uint8
    if geometry.crop is not None:
        height, width = images.shape[-2:]
        top, left = round((height - geometry.crop) / 2.0), round((width - geometry.crop) / 2.0)  # as CenterCrop
        images = images[..., top : top + geometry.crop, left : left + geometry.crop]
    return images.contiguous()


# -- fingerprint and key ------------------------------------------------------------------------------
def _stat(path: str) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return f"{path}:missing"
    return f"{path}:{info.st_size}:{info.st_mtime_ns}"


def source_fingerprint(data: ImageClassificationData) -> str:
    """sha256 over what the images and labels are read from, without decoding anything."""
    dataset = checked_dataset(data)
    table = dataset.table
    digest = hashlib.sha256(json.dumps({
        "name": data.name, "split": data.split, "source": data.source, "size": len(dataset),
        "classnames": data.classnames, "label_map": dataset.label_map,
    }, sort_keys=True).encode())
    files = sorted(entry["filename"] for entry in table.cache_files)
    for name in files:  # Arrow files (parquet, hub, save_to_disk): their identity covers the rows' content
        digest.update(_stat(name).encode())
    arrow = table.with_format("arrow")
    digest.update(np.ascontiguousarray(labels_of(dataset)).tobytes())
    if not files:  # an in-memory table (image folders): paths and their files, or the bytes themselves
        for value in arrow[dataset.image_column].to_pylist():
            if isinstance(value, dict) and not value.get("bytes") and value.get("path"):
                path = Path(value["path"])
                if not path.is_absolute() and dataset.base_dir is not None and not path.exists():
                    path = dataset.base_dir / path
                digest.update(_stat(str(path)).encode())
            else:
                raw = value.get("bytes") if isinstance(value, dict) else value
                digest.update(raw if isinstance(raw, bytes) else repr(raw).encode())
    return digest.hexdigest()[:32]


def cache_key(fingerprint: str, storage_size: int | None, image_size: int, limit: int | None, seed: int) -> str:
    payload = {"version": FORMAT_VERSION, "source": fingerprint, "storage": "native" if storage_size else "exact",
               "storage_size": storage_size, "image_size": image_size, "limit": limit, "seed": seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def checked_dataset(data: ImageClassificationData) -> HFImageDataset:
    if not isinstance(data.dataset, HFImageDataset):
        raise UsageError(f"data.cache works on one dataset read by the data layer, not on {data.name!r} "
                         "(a combined a+b dataset or a custom one); set data.cache=off")
    return data.dataset


def labels_of(dataset: HFImageDataset) -> np.ndarray:
    raw = np.asarray(dataset.table.with_format("arrow")[dataset.label_column].to_numpy(zero_copy_only=False),
                     dtype=np.int64)
    return np.asarray(dataset.label_map, dtype=np.int64)[raw] if dataset.label_map is not None else raw


# -- build --------------------------------------------------------------------------------------------
class _Prepare(torch.utils.data.Dataset):
    """Item i -> (i, uint8 [S, S, 3] array or None when the image cannot be decoded)."""

    def __init__(self, dataset: HFImageDataset, storage: Callable[[Image.Image], np.ndarray]) -> None:
        self.dataset, self.storage = dataset, storage

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None]:
        row = self.dataset.table[int(index)]
        try:
            return index, self.storage(decode_image(row[self.dataset.image_column], self.dataset.base_dir))
        except Exception:  # as HFImageDataset: a broken image is counted, never fatal here
            return index, None


class ExactStorage:
    """Today's full PIL transform, stored as uint8 (ToTensor is x / 255, so x * 255 rounds back exactly)."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> np.ndarray:
        tensor = self.transform(image)
        return (tensor * 255).round_().to(torch.uint8).permute(1, 2, 0).numpy()


class NativeStorage:
    """An S x S centre square (short side resized to S by PIL first if needed); `resize` squashes instead."""

    def __init__(self, size: int, squash: bool) -> None:
        self.size, self.squash = size, squash

    def __call__(self, image: Image.Image) -> np.ndarray:
        image = image if image.mode == "RGB" else image.convert("RGB")
        if self.squash:
            steps = [T.Resize((self.size, self.size))]
        else:
            steps = [T.Resize(self.size), T.CenterCrop(self.size)] if min(image.size) != self.size \
                else [T.CenterCrop(self.size)]
        for step in steps:
            image = step(image)
        return np.asarray(image, dtype=np.uint8)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def build_cache(data: ImageClassificationData, folder: Path, key: str, storage: Callable, size: int,
                workers: int = 0, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Decode every image into `<key>.npy` and write `<key>.json`; both appear only once complete."""
    dataset = checked_dataset(data)
    folder.mkdir(parents=True, exist_ok=True)
    final, sidecar = folder / f"{key}.npy", folder / f"{key}.json"
    temporary = folder / f".{key}.{os.getpid()}.npy.tmp"
    broken: list[int] = []
    try:
        array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(len(dataset), size, size, 3))
        loader = torch.utils.data.DataLoader(_Prepare(dataset, storage), batch_size=64, num_workers=workers,
                                             collate_fn=list, generator=torch.Generator())  # not the global RNG
        for batch in loader:
            for index, image in batch:
                if image is None or image.shape != (size, size, 3):
                    broken.append(int(index))
                else:
                    array[index] = image
            if progress is not None:
                progress(len(batch))
        array.flush()
        del array
        _fsync(temporary)
        digest = array_digest(temporary)  # read back from the page cache: cheap next to decoding
        os.replace(temporary, final)
        info = {"key": key, "format_version": FORMAT_VERSION, "num_images": len(dataset), "storage_size": size,
                "labels": labels_of(dataset).tolist(), "classnames": list(data.classnames), "broken": broken,
                "name": data.name, "split": data.split, "source": data.source, "array_digest": digest}
        info["labels_digest"] = labels_digest(info)
        partial = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(info), encoding="utf-8")
        os.replace(partial, sidecar)
        _VERIFIED.add(_identity(final, digest))  # just written from this process: no need to hash it again
        return info
    finally:
        for leftover in (temporary, sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")):
            leftover.unlink(missing_ok=True)


# -- integrity ----------------------------------------------------------------------------------------
DIGEST_BLOCK = 32 << 20  # bytes per array digest: blocks are hashed in parallel and a mismatch names one
_READ_CHUNK = 4 << 20
_VERIFIED: set[tuple[Any, ...]] = set()  # arrays checked by this process (path, inode, size, mtime, digests)


def _block_digest(path: Path, start: int, length: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:  # one handle per thread: no shared file position
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(_READ_CHUNK, length))
            if not chunk:
                break
            digest.update(chunk)
            length -= len(chunk)
    return digest.hexdigest()[:32]


def array_digest(path: Path, block: int | None = None) -> dict[str, Any]:
    """sha256 of each `block` (default DIGEST_BLOCK) bytes of the file (the whole .npy, header included)."""
    block = block or DIGEST_BLOCK
    size = path.stat().st_size
    starts = range(0, size, block) if size else range(1)
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1, len(starts)))) as pool:
        blocks = list(pool.map(lambda start: _block_digest(path, start, min(block, size - start)), starts))
    return {"algorithm": "sha256", "block_bytes": block, "size": size, "blocks": blocks}


def labels_digest(info: dict[str, Any]) -> str:
    """sha256 of what the items' labels come from: labels, broken indices and class names."""
    payload = [info.get("labels"), info.get("broken"), info.get("classnames")]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:32]


def _identity(path: Path, expected: Any) -> tuple[Any, ...]:
    info = os.stat(path)
    return (str(path.resolve()), info.st_ino, info.st_size, info.st_mtime_ns, json.dumps(expected, sort_keys=True))


def forget_verified() -> None:
    """Check every cache again on its next reuse, as a new process would (tests, long-lived sessions)."""
    _VERIFIED.clear()


def verify_cache(folder: Path, key: str, info: dict[str, Any]) -> str | None:
    """What does not match its digest ("its labels do not match their digest", ...), or None when all match.

    The labels are checked every time (microseconds); the array once per process and file version.
    """
    if info.get("labels_digest") != labels_digest(info):
        return "its labels do not match their digest"
    expected = info.get("array_digest")
    if not isinstance(expected, dict) or not isinstance(expected.get("block_bytes"), int) \
            or expected["block_bytes"] <= 0:
        return "its array has no digest"
    path = folder / f"{key}.npy"
    identity = _identity(path, expected)
    if identity in _VERIFIED:
        return None
    actual = array_digest(path, expected["block_bytes"])
    if actual["size"] != expected.get("size"):
        return f"its array has {actual['size']} bytes, not {expected.get('size')}"
    wanted = expected.get("blocks") or []
    bad = [index for index, digest in enumerate(actual["blocks"]) if index >= len(wanted) or wanted[index] != digest]
    if bad or len(wanted) != len(actual["blocks"]):
        where = f"block {bad[0] + 1} of {len(actual['blocks'])}" if bad else "its block count"
        return f"its array does not match its digest ({where})"
    _VERIFIED.add(identity)
    return None


def read_sidecar(folder: Path, key: str) -> dict[str, Any] | None:
    """The sidecar of a complete cache, or None (absent, unreadable, or its array has the wrong size)."""
    try:
        info = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        array = np.load(folder / f"{key}.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    size = info.get("storage_size")
    if info.get("key") != key or array.shape != (info.get("num_images"), size, size, 3):
        return None
    return info
