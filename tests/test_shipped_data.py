"""The shipped mini datasets: intact files, the promised sizes, and loadable through the public API."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from tgazsr_cli.data import BUILTIN_ROOT, list_datasets, load_image_dataset

SHIPPED = {"fashion-mnist-a": (3000, 1000, 5), "fashion-mnist-b": (3000, 1000, 5), "digits": (1258, 539, 10),
           "shapes": (2250, 900, 9)}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_dataset_is_intact_and_loads(name: str) -> None:
    folder = BUILTIN_ROOT / name
    manifest = json.loads((folder / "manifest.json").read_text())
    for file, digest in manifest["sha256"].items():
        assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest
    assert (folder / "LICENSE").is_file() and manifest["license"] and manifest["provenance"]
    train_size, test_size, classes = SHIPPED[name]
    assert name in list_datasets()
    test = load_image_dataset(name, split="test", image_size=28)
    assert len(test.dataset) == test_size and len(test.classnames) == classes
    assert len(load_image_dataset(name, split="train", image_size=28).dataset) == train_size
    image, label = test.dataset[test_size - 1]
    assert image.shape == (3, 28, 28) and image.min() >= 0 and image.max() <= 1 and 0 <= label < classes
    labels = torch.tensor([test.dataset.label(i) for i in range(test_size)])
    assert torch.bincount(labels, minlength=classes).min() > 0


def test_total_shipped_size_stays_small() -> None:
    total = sum(p.stat().st_size for p in BUILTIN_ROOT.rglob("*") if p.is_file())
    assert total < 26 * 1024 * 1024  # the mini world (emoji, Symbola) is about 17 MB of it
