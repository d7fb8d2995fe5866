"""Each loss term against its formula on fixed tensors (spec §3)."""

from __future__ import annotations

import math

import pytest
import torch

from tgazsr_cli.methods.losses import attention_distance, zero_shot_cross_entropy

A = torch.tensor([[0.0, 1.0, 0.5, 0.5], [1.0, 1.0, 0.0, 0.0]])
B = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 1.0, 0.0, 1.0]])


def test_l2_is_the_batch_mean_of_plain_euclidean_norms() -> None:
    # row 0: diff (0,1,0,0) -> 1; row 1: diff (1,0,0,-1) -> sqrt 2
    assert attention_distance(A, B, "l2").item() == pytest.approx((1 + math.sqrt(2)) / 2)


def test_cos_is_one_minus_cosine_averaged() -> None:
    cos0 = (0 * 0 + 1 * 0 + 0.25 + 0.25) / (math.sqrt(1.5) * math.sqrt(0.5))
    cos1 = 1.0 / (math.sqrt(2) * math.sqrt(2))
    assert attention_distance(A, B, "cos").item() == pytest.approx(((1 - cos0) + (1 - cos1)) / 2)


def test_l1_is_the_elementwise_mean() -> None:
    assert attention_distance(A, B, "l1").item() == pytest.approx(3 / 8)


def test_identical_maps_have_zero_distance_and_finite_gradient() -> None:
    maps = A.clone().requires_grad_(True)
    for metric in ("l2", "cos", "l1"):
        loss = attention_distance(maps, A, metric)
        assert loss.item() == pytest.approx(0.0, abs=1e-7)
        (grad,) = torch.autograd.grad(loss, maps)
        assert torch.isfinite(grad).all()


def test_unknown_distance_is_rejected() -> None:
    with pytest.raises(ValueError, match="l2"):
        attention_distance(A, B, "kl")  # type: ignore[arg-type]


def test_zero_shot_cross_entropy_matches_log_softmax() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 1])
    log_p = torch.log_softmax(logits, dim=1)
    expected = -(log_p[0, 0] + log_p[1, 1]) / 2
    assert zero_shot_cross_entropy(logits, labels).item() == pytest.approx(expected.item())
