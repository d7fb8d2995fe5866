"""Training data path throughput, images/s per CPU core: today's PIL path vs the decoded cache, side by side.

Generates a Tiny-ImageNet-layout folder (`train/<wnid>/images/*.JPEG`, 64 x 64) in a temporary directory,
then feeds one shuffled epoch through a DataLoader exactly as the trainer does (its batch sampler, its
collate) in each of these ways:
- today: PIL decode + resize + centre crop -> float32 [3, s, s] per image, in the loader;
- cached, native S (`data.cache=disk data.cache_size=S`): uint8 S x S rows from the memory-mapped file; the
  resize + crop then run on the training device (here: timed separately on this CPU, as an upper bound);
- cached, exact (`data.cache=disk`): uint8 s x s rows of today's transform output (bit-identical input);
- cached, device (`data.cache=device`): the loader only hands out indices; the gather runs on the device.

Cores: the loader's worker processes (`--workers`), or the one main process when it is 0; torch threads per
process are `--threads` (set OMP_NUM_THREADS to the same). The one-time cache build (a decode pass) is shown too.

    OMP_NUM_THREADS=1 python bench/data_path.py --images 2000 --workers 0 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from tgazsr_cli.data import collate_skip_broken, load_image_dataset
from tgazsr_cli.data.cached import cached_training_data, ensure_cache
from tgazsr_cli.training.setup import epoch_batches

TARGET, TARGET_CORES = 3000, 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="JPEGs to generate (200 classes at most)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=224, help="model input side (resize 256, crop 224)")
    parser.add_argument("--storage", type=int, default=64, help="native cache side (Tiny-ImageNet: 64)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    return parser.parse_args(argv)


def generate(root: Path, count: int) -> None:
    """Textured 64 x 64 JPEGs (quality 90, like Tiny-ImageNet's ~2 KB files) in train/<wnid>/images/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    classes = min(200, max(2, count // 10))
    yy, xx = np.mgrid[0:64, 0:64]
    for i in range(count):
        wnid = f"n{i % classes:08d}"
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True, exist_ok=True)
        phase = rng.uniform(2, 9, 3)
        base = np.stack([np.sin(xx / phase[0]), np.cos(yy / phase[1]), np.sin((xx + yy) / phase[2])], -1) * 90 + 128
        pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG", quality=90)


def loader(dataset: torch.utils.data.Dataset, args: argparse.Namespace) -> torch.utils.data.DataLoader:
    """As `Trainer.loader`: the seeded epoch batches, the skip-broken collate, `--workers` workers."""
    batches = epoch_batches(len(dataset), args.batch, 0, 0)
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=args.workers,
                                       collate_fn=collate_skip_broken, generator=torch.Generator().manual_seed(0))


def timed_epoch(dataset: torch.utils.data.Dataset, args: argparse.Namespace,
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[float, float, tuple]:
    """(images/s of the loader alone, images/s with `transform` applied here too, shape of a model batch)."""
    started, images, shape = time.perf_counter(), 0, ()
    transform_seconds = 0.0
    for batch, _labels, _dropped in loader(dataset, args):
        images += len(_labels)
        if transform is not None:
            before = time.perf_counter()
            batch = transform(batch)
            transform_seconds += time.perf_counter() - before
        shape = tuple(batch.shape)
    total = time.perf_counter() - started
    return images / (total - transform_seconds), images / total, shape


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cores = max(1, args.workers)
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "tiny-imagenet-200"
        generate(root, args.images)
        data = load_image_dataset(str(root), split="train", image_size=args.image_size)
        print(f"Data path: {len(data.dataset)} generated 64x64 JPEGs (Tiny-ImageNet layout), batch {args.batch}, "
              f"model input {args.image_size} px (resize {round(args.image_size * 256 / 224)} + centre crop), "
              f"{args.workers} loader workers, {args.threads} torch thread(s) per process -> {cores} core(s)",
              flush=True)
        today, _, shape = timed_epoch(data.dataset, args)
        rows.append(("today: PIL decode+resize+crop -> float32", today, f"{shape} float32"))

        cache_dir = Path(scratch) / "cache"
        started = time.perf_counter()
        native = ensure_cache(data, cache_dir, storage_size=args.storage, image_size=args.image_size, limit=None,
                              seed=0, workers=args.workers)
        build_rate = native.num_images / (time.perf_counter() - started)
        size_mib = native.path.stat().st_size / 2**20
        rows.append((f"cache build, native {args.storage} (one-time decode)", build_rate, f"{size_mib:.1f} MiB"))
        cached, transform, _ = cached_training_data(data, native, mode="disk", device=torch.device("cpu"))
        host, with_resize, shape = timed_epoch(cached.dataset, args, transform)
        rows.append((f"cached disk, native {args.storage}: uint8 batches", host, "host work on a GPU machine"))
        rows.append((f"  + resize/crop to {args.image_size} on this CPU", with_resize, f"{shape} (device work here)"))

        exact = ensure_cache(data, cache_dir, storage_size=None, image_size=args.image_size, limit=None, seed=0,
                             workers=args.workers)
        cached, transform, _ = cached_training_data(data, exact, mode="disk", device=torch.device("cpu"))
        exact_host, _, _ = timed_epoch(cached.dataset, args)
        rows.append((f"cached disk, exact {args.image_size}: uint8 batches", exact_host,
                     f"{exact.path.stat().st_size / 2**20:.1f} MiB, bit-identical input"))
        cached, transform, _ = cached_training_data(data, native, mode="device", device=torch.device("cpu"))
        device_host, _, _ = timed_epoch(cached.dataset, args)
        rows.append(("cached device: index batches", device_host, "gather + resize on the device"))

    print(f"  {'':46} {'images/s':>10} {'per core':>10}")
    for name, rate, note in rows:
        print(f"  {name:46} {rate:10.0f} {rate / cores:10.0f}  {note}")
    per_core = host / cores
    print(f"  ratio, cached native disk / today (host work per core): {host / today:.1f}x; "
          f"exact: {exact_host / today:.1f}x")
    needed = TARGET / per_core
    print(f"  target {TARGET} images/s with <= {TARGET_CORES} cores: the cached native path needs {needed:.2f} "
          f"core(s) at this per-core rate -> {'met' if needed <= TARGET_CORES else 'NOT met'} (extrapolated "
          f"from {cores} core(s); the device-side resize is not part of it); today's path needs "
          f"{TARGET / (today / cores):.1f} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
