"""Shared fixtures: a tiny open_clip model with seeded random weights, built offline."""

from __future__ import annotations

import pytest
import torch

from tgazsr_cli.engine.model import ClipClassifier, load_classifier

CLASSNAMES = ["red circle", "blue square", "green triangle", "yellow star"]
TEMPLATES = ["a photo of a {}."]


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
