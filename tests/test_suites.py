"""Attack suites: later attacks only see still-robust points, masks and records agree with the model."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from tgazsr_cli.attacks import ATTACKS, SUITES, ThreatModel, get_attack, get_suite, run_suite
from tgazsr_cli.attacks.registry import SUITE_MEMBERS
from tgazsr_cli.attacks.suites import broken_by, run_suite_detailed
from tgazsr_cli.errors import RuntimeFailure, UsageError

pytestmark = pytest.mark.usefixtures("one_thread")


def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images).argmax(dim=1)


@pytest.fixture
def data(tiny_model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """16 images, labels = the model's own predictions except two clean mistakes, ids 100..115."""
    images = torch.rand(16, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    labels = predict(tiny_model, images)
    labels[:2] = (labels[:2] + 1) % 4
    return images, labels, torch.arange(100, 116)


@pytest.fixture
def spies(monkeypatch) -> list[tuple[str, list[int], ThreatModel]]:
    """Wrap every registered attack to record (name, sample ids it was given, its threat model)."""
    calls: list[tuple[str, list[int], ThreatModel]] = []
    for name, attack in list(ATTACKS.items()):
        def spy(model, images, labels, threat, sample_ids=None, _name=name, _attack=attack):
            calls.append((_name, sample_ids.tolist(), threat))
            return _attack(model, images, labels, threat, sample_ids)
        monkeypatch.setitem(ATTACKS, name, dataclasses.replace(attack, target=spy))
    return calls


def small(suite: str, queries: int = 40, steps: int = 5) -> tuple:
    """The suite's attacks and order with small budgets, for CPU tests."""
    return tuple((name, {**overrides, "steps": queries if name == "square" else steps})
                 for name, overrides in SUITES[suite])


def test_suites_are_what_their_names_say() -> None:
    assert [name for name, _ in get_suite("paper-pgd")] == ["pgd"]
    assert get_suite("paper-pgd")[0][1] | {"steps": 100, "step_size": 1.0} == get_suite("paper-pgd")[0][1]
    assert [name for name, _ in get_suite("paper-aa")] == ["apgd-ce", "apgd-dlr"]
    assert [name for name, _ in get_suite("autoattack")] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert dict(get_suite("autoattack"))["square"]["steps"] == 5000
    assert all(overrides.get("steps") == 100 for name, overrides in get_suite("autoattack") if name != "square")
    for suite in SUITES.values():
        for name, overrides in suite:
            assert name in ATTACKS or name in SUITE_MEMBERS  # official AutoAttack members run only in suites
            ThreatModel(**overrides)  # every override is a valid threat-model field and value


def test_unknown_suite_suggests_a_name() -> None:
    with pytest.raises(UsageError, match="did you mean 'autoattack'"):
        get_suite("autoatack")


def test_later_attacks_only_see_points_still_robust(tiny_model, data, spies, monkeypatch) -> None:
    images, labels, ids = data
    monkeypatch.setitem(SUITES, "autoattack", small("autoattack"))
    threat = ThreatModel(eps=1.0, seed=2)
    result = run_suite_detailed(tiny_model, images, labels, "autoattack", threat, ids)
    names = ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert [call[0] for call in spies] == [name for name in names if name in result.seconds]  # in order, once
    assert list(result.robust) == ["clean", *names]
    previous = result.robust["clean"]
    for name in names:
        given = [ids_ for called, ids_, _ in spies if called == name]
        if previous.any():
            assert given == [ids[previous].tolist()]  # exactly the still-robust points, once
            assert spies[[c[0] for c in spies].index(name)][2].eps == threat.eps
        else:
            assert given == []
        assert not (result.robust[name] & ~previous).any()  # masks only ever shrink
        previous = result.robust[name]
    assert result.robust["clean"].sum() == 14
    assert result.robust["apgd-ce"].sum() < 14  # the first attack broke something, so the filter is exercised


def test_masks_adversarial_images_and_records_agree(tiny_model, data, monkeypatch) -> None:
    images, labels, ids = data
    monkeypatch.setitem(SUITES, "paper-aa", small("paper-aa"))
    threat = ThreatModel(eps=1.0)
    result = run_suite_detailed(tiny_model, images, labels, "paper-aa", threat, ids)
    adversarial, masks = run_suite(tiny_model, images, labels, "paper-aa", threat, ids)
    torch.testing.assert_close(adversarial, result.adversarial, atol=0, rtol=0)
    final = masks["apgd-dlr"]
    assert torch.equal(predict(tiny_model, adversarial) == labels, final)  # robust iff still correct
    assert torch.equal(adversarial[final], images[final])  # robust points get their clean image back
    assert (adversarial - images).abs().max() <= 1 / 255 + 1e-6
    assert broken_by(masks) == result.broken_by
    assert set(result.broken_by) == set((~final).nonzero().flatten().tolist())
    assert {result.broken_by[0], result.broken_by[1]} == {"clean"}
    assert set(result.broken_by.values()) <= {"clean", "apgd-ce", "apgd-dlr"}


def test_paper_pgd_is_pgd_100_on_the_clean_correct_points(tiny_model, data) -> None:
    images, labels, ids = data
    threat = ThreatModel(eps=1.0, steps=7, step_size=3.0, seed=4)  # steps and step size come from the suite
    _, masks = run_suite(tiny_model, images, labels, "paper-pgd", threat, ids)
    keep = predict(tiny_model, images) == labels
    direct = get_attack("pgd")(tiny_model, images[keep], labels[keep],
                               ThreatModel(eps=1.0, steps=100, step_size=1.0, seed=4), ids[keep])
    expected = keep.clone()
    expected[keep] = predict(tiny_model, direct) == labels[keep]
    assert torch.equal(masks["pgd"], expected)


def test_attacks_whose_loss_needs_more_classes_are_skipped_and_said_to_be() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    images = torch.rand(6, 3, 2, 2)
    labels = predict(model, images)
    result = run_suite_detailed(model, images, labels, "paper-aa", ThreatModel(eps=1.0), torch.arange(6))
    assert "apgd-dlr" in result.skipped and "apgd-ce" not in result.skipped
    assert torch.equal(result.robust["apgd-dlr"], result.robust["apgd-ce"])


def test_zero_eps_attacks_nothing(tiny_model, data, spies) -> None:
    images, labels, ids = data
    adversarial, masks = run_suite(tiny_model, images, labels, "paper-aa", ThreatModel(eps=0.0), ids)
    assert spies == []
    assert torch.equal(adversarial, images)
    assert all(torch.equal(mask, masks["clean"]) for mask in masks.values())


def test_an_attack_that_leaves_the_ball_is_caught(tiny_model, data, monkeypatch) -> None:
    images, labels, ids = data
    monkeypatch.setitem(ATTACKS, "pgd", dataclasses.replace(
        ATTACKS["pgd"], target=lambda model, x, y, threat, sample_ids=None: (x + 0.5).clamp(0, 1)))
    with pytest.raises(RuntimeFailure, match="left the L-inf ball"):
        run_suite(tiny_model, images, labels, "paper-pgd", ThreatModel(eps=1.0), ids)


def test_suite_restores_the_model_mode(tiny_model, data, monkeypatch) -> None:
    images, labels, ids = data
    monkeypatch.setitem(SUITES, "paper-aa", small("paper-aa", steps=2))
    tiny_model.train()
    run_suite(tiny_model, images, labels, "paper-aa", ThreatModel(eps=1.0), ids)
    assert tiny_model.training
