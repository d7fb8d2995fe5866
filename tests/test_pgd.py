"""L-inf PGD: stays in the eps-ball and [0, 1], lowers accuracy, touches no parameter gradient."""

from __future__ import annotations

import pytest
import torch

from tgazsr_cli.attacks import ThreatModel, get_attack
from tgazsr_cli.attacks.pgd import cw_margin_sum
from tgazsr_cli.errors import UsageError


def own_predictions(model, images):
    with torch.no_grad():
        return model(images).argmax(1)


@pytest.mark.parametrize("name", ["pgd", "cw"])
def test_attack_respects_the_threat_model_and_lowers_accuracy(tiny_model, batch, name) -> None:
    images, _ = batch
    labels = own_predictions(tiny_model, images)  # clean accuracy 100% by construction
    threat = ThreatModel(eps=8, steps=10, step_size=2)
    adversarial = get_attack(name)(tiny_model, images, labels, threat, torch.arange(len(images)))
    assert (adversarial - images).abs().max() <= 8 / 255 + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (own_predictions(tiny_model, adversarial) == labels).float().mean() < 1.0


def test_attack_builds_no_parameter_gradients_and_restores_mode(tiny_model, batch) -> None:
    images, labels = batch
    tiny_model.train()
    get_attack("pgd")(tiny_model, images, labels, ThreatModel(eps=1, steps=2, step_size=1))
    assert all(p.grad is None for p in tiny_model.parameters())
    assert tiny_model.training


def test_same_seed_same_result_and_batch_split_invariance(tiny_model, batch) -> None:
    images, labels = batch
    threat = ThreatModel(eps=4, steps=3, step_size=1, seed=7)
    ids = torch.arange(len(images))
    whole = get_attack("pgd")(tiny_model, images, labels, threat, ids)
    again = get_attack("pgd")(tiny_model, images, labels, threat, ids)
    assert torch.equal(whole, again)
    halves = torch.cat([get_attack("pgd")(tiny_model, images[:3], labels[:3], threat, ids[:3]),
                        get_attack("pgd")(tiny_model, images[3:], labels[3:], threat, ids[3:])])
    torch.testing.assert_close(halves, whole, atol=1e-6, rtol=0)


def test_zero_steps_is_the_random_start_only(tiny_model, batch) -> None:
    images, labels = batch
    out = get_attack("pgd")(tiny_model, images, labels, ThreatModel(eps=2, steps=0, step_size=1, random_start=False))
    assert torch.equal(out, images)


def test_cw_margin_formula() -> None:
    logits = torch.tensor([[5.0, 1.0, 3.0], [0.0, 2.0, 1.0]])
    labels = torch.tensor([0, 0])
    # row 0: 5 - 3 + 50 = 52 ; row 1: 0 - 2 + 50 = 48
    assert cw_margin_sum(logits, labels).item() == pytest.approx(-(52 + 48))
    assert cw_margin_sum(logits, labels, kappa=0).item() == pytest.approx(-2.0)


@pytest.mark.parametrize("kwargs", [{"eps": 255}, {"eps": -1}, {"steps": -2}, {"step_size": 0},
                                    {"precision": "fp8"}, {"loss_reduction": "max"}])
def test_threat_model_rejects_bad_values(kwargs) -> None:
    with pytest.raises(UsageError):
        ThreatModel(**kwargs)


@pytest.mark.parametrize("name", ["pgd", "cw"])
def test_mean_and_sum_reductions_give_the_same_images_in_fp32(tiny_model, name) -> None:
    """The sign of a gradient does not see its scale: dividing by a batch of 8 (a power of two, so exactly) changes
    nothing in fp32 except where a gradient entry is exactly zero (none here)."""
    images = torch.rand(8, 3, 28, 28, generator=torch.Generator().manual_seed(2))
    labels = own_predictions(tiny_model, images)
    ids = torch.arange(8)
    results = {reduction: get_attack(name)(tiny_model, images, labels, ThreatModel(
        eps=2, steps=5, step_size=0.5, restarts=2, loss_reduction=reduction), ids) for reduction in ("sum", "mean")}
    assert torch.equal(results["sum"], results["mean"])
    assert ThreatModel(loss_reduction="mean").describe()["loss_reduction"] == "mean"
    assert ThreatModel().loss_reduction == "sum"  # the honest default (see attacks/threat.py)


def test_unknown_attack_suggests_a_name() -> None:
    with pytest.raises(UsageError, match="did you mean 'pgd'"):
        get_attack("pgdd")
