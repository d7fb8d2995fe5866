"""Decoded-dataset cache: built once and reused, same labels and images, atomic, keyed by the source."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import make_image_folder
from tgazsr_cli.config import load_recipe
from tgazsr_cli.data import decoded_cache, load_image_dataset
from tgazsr_cli.data.cached import cached_training_data, ensure_cache
from tgazsr_cli.data.decoded_cache import NATIVE_TOLERANCE
from tgazsr_cli.training.loop import Trainer

CPU = torch.device("cpu")


def tiny_imagenet_folder(root: Path, classes: int = 3, per_class: int = 5) -> Path:
    """train/<wnid>/images/*.JPEG at 64 x 64, textured so that resampling differences show."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    for c in range(classes):
        folder = root / "train" / f"n{c:08d}" / "images"
        folder.mkdir(parents=True)
        for i in range(per_class):
            base = np.stack([np.sin(xx / (3 + c + i)), np.cos(yy / (4 + i)), np.sin((xx + yy) / 7)], -1) * 100 + 128
            pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"n{c:08d}_{i}.JPEG", quality=90)
    return root


def counting_decoder(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = decoded_cache.decode_image

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(decoded_cache, "decode_image", counted)
    return calls


def batch_of(data, transform, indices: list[int]) -> tuple[torch.Tensor, list[int]]:
    items = data.dataset.__getitems__(indices)
    return transform(torch.stack([item[0] for item in items])), [item[1] for item in items]


def test_exact_cache_is_built_once_reused_and_equals_the_pil_path(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_image_dataset("shapes", split="train", image_size=28, limit=40, seed=1)
    calls = counting_decoder(monkeypatch)
    first = ensure_cache(data, tmp_path, storage_size=None, image_size=28, limit=40, seed=1)
    assert first.built and len(calls) == 40 and first.num_images == 40 and first.broken == 0
    again = ensure_cache(data, tmp_path, storage_size=None, image_size=28, limit=40, seed=1)
    assert not again.built and len(calls) == 40 and again.key == first.key  # no decoding the second time
    indices = list(range(40))
    expected = torch.stack([data.dataset[i][0] for i in indices])
    labels = [data.dataset[i][1] for i in indices]
    for mode in ("disk", "device"):
        cached, transform, used = cached_training_data(data, again, mode=mode, device=CPU)
        images, cached_labels = batch_of(cached, transform, indices)
        assert used == mode and cached_labels == labels
        assert torch.equal(images, expected)  # bit-identical: the paper setting is unchanged
    assert len(calls) == 40


@pytest.mark.parametrize("image_size", [224, 32])
def test_native_cache_resized_on_the_device_is_within_one_level_of_pil(tmp_path: Path, image_size: int) -> None:
    root = tiny_imagenet_folder(tmp_path / "tiny")
    data = load_image_dataset(str(root), split="train", image_size=image_size)
    cache = ensure_cache(data, tmp_path / "cache", storage_size=64, image_size=image_size, limit=None, seed=0)
    assert cache.native and os.path.getsize(cache.path) < 15 * 64 * 64 * 3 + 1024  # stored at 64 x 64
    cached, transform, _ = cached_training_data(data, cache, mode="disk", device=CPU)
    indices = list(range(15))
    images, _ = batch_of(cached, transform, indices)
    expected = torch.stack([data.dataset[i][0] for i in indices])
    assert images.shape == expected.shape == (15, 3, image_size, image_size)
    difference = (images - expected).abs()
    assert difference.max() <= NATIVE_TOLERANCE  # one uint8 level at most (PIL fixed point vs torch float)
    assert difference.mean() < 0.35 / 255


def test_a_failed_build_leaves_no_cache_file_and_the_next_build_succeeds(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_image_dataset("shapes", split="train", image_size=28, limit=20, seed=0)
    real = decoded_cache.decode_image
    calls: list[int] = []

    def fails_halfway(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt  # a kill in the middle of the build: not an image error, it propagates
        return real(*args, **kwargs)

    monkeypatch.setattr(decoded_cache, "decode_image", fails_halfway)
    with pytest.raises(KeyboardInterrupt):
        ensure_cache(data, tmp_path, storage_size=None, image_size=28, limit=20, seed=0)
    assert list(tmp_path.iterdir()) == []  # neither a partial array nor a sidecar (nor a temporary file)
    monkeypatch.setattr(decoded_cache, "decode_image", real)
    cache = ensure_cache(data, tmp_path, storage_size=None, image_size=28, limit=20, seed=0)
    assert cache.built and sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".npy"]


def test_the_key_changes_with_the_source_the_subset_and_the_storage(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    make_image_folder(root, per_class=3, size=32)
    data = load_image_dataset(str(root), image_size=28)
    key = ensure_cache(data, tmp_path / "c", storage_size=None, image_size=28, limit=None, seed=0).key
    assert ensure_cache(data, tmp_path / "c", storage_size=32, image_size=28, limit=None, seed=0).key != key
    subset = load_image_dataset(str(root), image_size=28, limit=5, seed=3)
    assert ensure_cache(subset, tmp_path / "c", storage_size=None, image_size=28, limit=5, seed=3).key != key
    image = root / "red_circle" / "0.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(image)
    os.utime(image, ns=(1, 1))  # rewritten in place: same path, new content and time
    changed = ensure_cache(load_image_dataset(str(root), image_size=28), tmp_path / "c", storage_size=None,
                           image_size=28, limit=None, seed=0)
    assert changed.key != key and changed.built


def test_broken_images_are_counted_at_build_time_and_skipped_in_training(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_image_folder(root, per_class=4, size=32)
    (root / "red_circle" / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    data = load_image_dataset(str(root), image_size=28)
    cache = ensure_cache(data, tmp_path / "c", storage_size=None, image_size=28, limit=None, seed=0)
    assert cache.broken == 1 and cache.num_images == 17
    cached, _, _ = cached_training_data(data, cache, mode="disk", device=CPU)
    items = cached.dataset.__getitems__(list(range(17)))
    assert sum(item is None for item in items) == 1


def recipe_for(root: Path, cache_dir: Path, *extra: str):
    return load_recipe("tiny", [f"data.dataset={root}", "optim.max_steps=4", "data.batch_size=8",
                                "train.save_every=100", f"data.cache_dir={cache_dir}", *extra])


@pytest.mark.parametrize("mode", ["disk", "device"])
def test_training_from_the_cache_gives_the_same_loss(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "data"
    make_image_folder(root, per_class=8, size=32)
    plain = Trainer(recipe_for(root, tmp_path / "cache"), tmp_path / "plain").run()
    cached_trainer = Trainer(recipe_for(root, tmp_path / "cache", f"data.cache={mode}"), tmp_path / "cached")
    assert cached_trainer.batch_transform is not None and "decoded cache" in cached_trainer.data.source
    cached = cached_trainer.run()
    assert cached.steps == plain.steps == 4 and set(cached.last_parts) == set(plain.last_parts)
    for name, value in plain.last_parts.items():
        assert cached.last_parts[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
