"""Shared fixtures: a tiny open_clip model with seeded random weights, built offline."""

from __future__ import annotations

import pytest
import torch

from tgazsr_cli.models.classifier import ClipClassifier, load_classifier

CLASSNAMES = ["red circle", "blue square", "green triangle", "yellow star"]
TEMPLATES = ["a photo of a {}."]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory):
    """An image folder of 4 generated shape classes, 8 images each (CLI and run tests train on it)."""
    from tests.helpers import make_image_folder

    root = tmp_path_factory.mktemp("shapes")
    make_image_folder(root, per_class=8, size=32)
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Two OpenMP threads on a shared 2-core box can run 40x slower than one: modules of many small attacks use
    this (`pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_model() -> ClipClassifier:
    torch.manual_seed(0)
    model = load_classifier("tgazsr-tiny")
    model.set_classes(CLASSNAMES, TEMPLATES)
    return model


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(6, 3, 28, 28, generator=generator)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    return images, labels


@pytest.fixture(autouse=True, scope="session")
def _private_text_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Evaluations in tests cache text features in a temporary folder, never in the user's ~/.cache."""
    import os

    os.environ["TGAZSR_CACHE"] = str(tmp_path_factory.mktemp("tgazsr-cache"))


@pytest.fixture
def offline_hf(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network for `datasets` / the hub, and `datasets`' cache inside tmp_path (data-layer tests use it)."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def predict(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images).argmax(dim=1)


@pytest.fixture(scope="module")
def toy_cnn() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A small ReLU CNN that memorised random labels: far less linear than the tiny CLIP, so attacks differ and
    where an attack starts matters."""
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    images, labels = torch.rand(64, 3, 16, 16), torch.randint(0, 10, (64,))
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))
    optimiser = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(100):
        loss = F.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval().requires_grad_(False)
    keep = predict(model, images) == labels
    return model, images[keep][:40], labels[keep][:40]
