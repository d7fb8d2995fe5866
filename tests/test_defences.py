"""Test-time defences: the registry contract, TTC as its authors' code does it, and the two attack views."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tgazsr_cli.attacks import ThreatModel, get_attack
from tgazsr_cli.defences import DEFENCES, TTCOptions, get_defence
from tgazsr_cli.defences.adaptive import adaptive_attack, eot_loss, eot_objective, eot_samples_for, robust_under
from tgazsr_cli.defences.noise import NoiseDefence
from tgazsr_cli.defences.ttc import counterattack, step_weights
from tgazsr_cli.errors import UsageError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    x = torch.rand(4, 3, 28, 28, generator=generator)
    x[0, :, :4] = 0.0  # pixels on the box's edges: the defence must keep them inside
    x[1, :, :4] = 1.0
    return x


@pytest.mark.parametrize("name", sorted(DEFENCES))
def test_every_defence_keeps_the_box_restores_the_mode_and_is_seeded(name: str, tiny_model, images) -> None:
    entry = get_defence(name)
    defended = entry.build(tiny_model, seed=3)
    purified = defended.purify(images)
    assert purified.shape == images.shape and purified.min() >= 0 and purified.max() <= 1
    for training in (True, False):
        tiny_model.train(training)
        logits = defended(images)
        assert logits.shape == (4, 4) and torch.isfinite(logits).all()
        assert tiny_model.training is training
    tiny_model.eval()
    again = entry.build(tiny_model, seed=3)
    first = again(images)
    assert torch.equal(first, entry.build(tiny_model, seed=3)(images))
    again.reseed(3)
    assert torch.equal(first, again(images))
    assert defended.randomized is entry.randomized


def test_defence_names_and_settings_are_checked_without_torch(tmp_path: Path) -> None:
    code = ("import sys\nfrom tgazsr_cli.defences.registry import check_defence, get_defence\n"
            "check_defence('ttc', {'steps': 3, 'eps': 2})\n"
            "for bad in [('ttx', None), ('ttc', {'stepz': 1}), ('ttc', {'eps': -1}), ('none', {'eps': 1})]:\n"
            "    try:\n        check_defence(*bad)\n    except Exception as exc:\n        print(type(exc).__name__)\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert done.stdout.split() == ["UsageError"] * 4 + ["False"]
    assert get_defence("ttc").settings({"steps": 0}) == TTCOptions(steps=0)
    with pytest.raises(UsageError, match=r"did you mean|choose from"):
        get_defence("tcc")


# ------------------------------------------------------------------------------------------------
# TTC as the authors' code does it (code/test_time_counterattack.py at 793fbff)


class Affine(nn.Module):
    """A stand-in image tower: f(x) = scale * flatten(x) + offset (its embedding norm set by `offset`)."""

    def __init__(self, offset: float, scale: float = 1.0, dim: int = 3 * 8 * 8) -> None:
        super().__init__()
        self.offset, self.scale = offset, scale
        self.weight = nn.Parameter(torch.ones(1))  # a parameter that requires grad, as a real tower's do

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.scale * self.weight * images.flatten(1) + self.offset


def test_the_tau_test_picks_the_counterattack_for_falsely_stable_images_only() -> None:
    x = torch.full((2, 3, 8, 8), 0.5)
    noise = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    options = TTCOptions()
    # a huge offset: the embedding hardly moves under noise (tau << 0.2): counterattack, weights softmax(2k)
    stable = counterattack(Affine(offset=1000.0), x, noise, options)
    assert stable.attacked.all() and (stable.tau < options.tau_thres).all()
    expected = torch.softmax(torch.tensor([0.0, 2.0, 4.0]), dim=0)
    assert torch.allclose(stable.weights, expected.expand(2, 3), atol=1e-6)
    # tau = ||f(x + d0) - f(x)|| / ||f(x)|| = ||d0|| / ||x|| for f = identity: > 0.2 for a dark image
    dark = torch.full((2, 3, 8, 8), 0.01)
    moving = counterattack(Affine(offset=0.0), dark, noise, options)
    delta0 = torch.max(torch.min((2 * noise - 1) * 4 / 255, 1 - dark), -dark)
    tau = delta0.flatten(1).norm(dim=1) / dark.flatten(1).norm(dim=1)
    assert torch.allclose(moving.tau, tau, rtol=1e-5) and (tau > 0.2).all()
    assert not moving.attacked.any()
    assert torch.equal(moving.weights, torch.tensor([[1.0, 0.0, 0.0]] * 2))
    assert torch.allclose(moving.delta, delta0)  # only the random noise, as lines 146-149


def test_the_counterattack_iterates_and_weights_as_the_authors(images) -> None:
    x = images[:2, :, :8, :8]
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    eps, alpha = 4 / 255, 1 / 255
    result = counterattack(Affine(offset=1000.0, scale=0.5), x, noise, TTCOptions())
    # by hand: loss = sum ||0.5 d||^2, its gradient 0.5 d: the step is alpha * sign(d), clipped to eps and the box
    d0 = torch.max(torch.min((2 * noise - 1) * eps, 1 - x), -x)
    iterates = [d0]
    for _ in range(2):
        stepped = (iterates[-1] + alpha * iterates[-1].sign()).clamp(-eps, eps)
        iterates.append(torch.max(torch.min(stepped, 1 - x), -x))
    w = torch.softmax(torch.tensor([0.0, 2.0, 4.0]), dim=0)
    expected = sum(w[k] * iterates[k] for k in range(3))
    assert torch.allclose(result.delta, expected, atol=1e-7)
    assert result.delta.abs().max() <= eps + 1e-7
    assert (x + result.delta).min() >= -1e-7 and (x + result.delta).max() <= 1 + 1e-7


def test_the_counterattack_stays_in_its_budget_on_the_tiny_clip(tiny_model, images) -> None:
    defended = get_defence("ttc").build(tiny_model, {"eps": 2, "steps": 3}, seed=0)
    purified = defended.purify(images)
    assert (purified - images).abs().max() <= 2 / 255 + 1e-6
    assert defended.last is not None and defended.last.weights.shape == (4, 4)
    assert torch.allclose(step_weights(torch.tensor([1.0, -1.0, 0.0]), 1, 2.0),
                          torch.tensor([[1 / (1 + 2.718281828**2), 1 - 1 / (1 + 2.718281828**2)], [1, 0], [1, 0]]))


def test_ttc_is_straight_through_for_the_adaptive_attack(tiny_model, images) -> None:
    defended = get_defence("ttc").build(tiny_model, seed=0)
    x = images.clone().requires_grad_(True)
    out = defended.purify(x)
    (grad,) = torch.autograd.grad((out * torch.arange(out.numel()).view_as(out)).sum(), x)
    assert torch.equal(grad, torch.arange(out.numel()).view_as(out).float())  # identity backward (BPDA)


# ------------------------------------------------------------------------------------------------
# The adaptive view


@pytest.mark.parametrize("name", ["pgd", "cw", "apgd-ce", "apgd-dlr"])
def test_the_adaptive_attack_on_the_identity_defence_is_the_plain_attack(name: str, tiny_model, images) -> None:
    labels = tiny_model(images).argmax(dim=1)
    threat = ThreatModel(eps=4, steps=3, seed=2)
    ids = torch.arange(10, 14)
    identity = get_defence("identity").build(tiny_model)
    samples = eot_samples_for(identity, 20)
    assert samples == 1
    plain = get_attack(name)(tiny_model, images, labels, threat, ids)
    assert torch.equal(adaptive_attack(name, identity, images, labels, threat, ids, samples), plain)


def test_eot_gradient_is_the_mean_over_draws(tiny_model, images) -> None:
    labels = torch.tensor([0, 1, 2, 3])
    defended = NoiseDefence(tiny_model, eps=8, seed=7)
    x = images.clone().requires_grad_(True)
    (eot,) = torch.autograd.grad(eot_loss(defended, _ce_sum, labels, 2)(x), x)
    # by hand: the same two draws of the generator, one gradient each, averaged
    generator = torch.Generator().manual_seed(7)
    grads = []
    for _ in range(2):
        noise = (2 * torch.rand(images.shape, generator=generator) - 1) * 8 / 255
        point = images.clone().requires_grad_(True)
        loss = _ce_sum(tiny_model((point + noise).clamp(0, 1)), labels)
        grads.append(torch.autograd.grad(loss, point)[0])
    assert torch.allclose(eot, (grads[0] + grads[1]) / 2, atol=1e-6)
    assert not torch.allclose(grads[0], grads[1])
    # APGD's objective (per-sample losses, AutoAttack's eot_iter) averages the same way
    defended.reseed(7)
    _, apgd_grad, _ = eot_objective(defended, labels, lambda z, y: F.cross_entropy(z, y, reduction="none"),
                                    ThreatModel(), 2)(images)
    assert torch.allclose(apgd_grad, (grads[0] + grads[1]) / 2, atol=1e-6)


def _ce_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, reduction="sum")


def test_autoattack_through_a_randomised_defence_is_the_rand_version(tiny_model, images, monkeypatch) -> None:
    import tgazsr_cli.defences.adaptive as adaptive

    seen = []
    monkeypatch.setattr(adaptive, "adaptive_attack",
                        lambda name, defended, x, y, threat, ids, samples: seen.append((name, threat.steps, samples))
                        or x.clone())
    labels = tiny_model(images).argmax(dim=1)
    noise = get_defence("noise").build(tiny_model)
    outcome = robust_under("adaptive", "autoattack", tiny_model, noise, images, labels, ThreatModel(eps=1),
                           torch.arange(4), 20)
    assert seen == [("apgd-ce", 100, 20), ("apgd-dlr", 100, 20)]
    assert list(outcome.after_member) == ["apgd-ce", "apgd-dlr"]


# ------------------------------------------------------------------------------------------------
# The command


def test_eval_with_a_defence_reports_both_views(tmp_path: Path) -> None:
    from tgazsr_cli.cli.app import main

    out = tmp_path / "out"
    args = ["eval", "--model", "tgazsr-tiny", "--datasets", "shapes", "--limit", "16", "--eps", "4",
            "--steps", "2", "--defence", "ttc", "--eot-samples", "2", "--workers", "0", "--no-sanity", "-o", str(out)]
    assert main(args) == 0
    records = json.loads((out / "results.json").read_text())
    assert [(r["attack"], r["defence"], r["attack_view"]) for r in records] == [
        ("pgd", "ttc", "non-adaptive"), ("pgd", "ttc", "adaptive")]
    assert records[1]["extra"]["eot_samples"] == 2 and records[0]["extra"]["defence_options"]["steps"] == 2
    assert all(r["robust_correct"] <= r["clean_correct"] for r in records)
    report = (out / "results.md").read_text()
    assert "pgd (non-adaptive)" in report and "pgd (adaptive)" in report and "+ ttc" in report
    assert main([*args[:-2], "--defence", "ttx"]) == 2
    assert main([*args[:-2], "--defence-option", "stepz=2"]) == 2
