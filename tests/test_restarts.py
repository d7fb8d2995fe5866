"""`threat.restarts` for every registered attack and suite member: more forward passes where restarts mean something,
never a higher robust accuracy, the same forward passes where they are ignored, and records that say what ran."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from tests.conftest import CLASSNAMES, TEMPLATES, predict
from tests.test_evaluation import TensorDataset
from tgazsr_cli.attacks import ATTACKS, SUITES, ThreatModel, get_attack
from tgazsr_cli.attacks.registry import SUITE_MEMBERS, restarts_note
from tgazsr_cli.attacks.suites import run_suite_detailed
from tgazsr_cli.data import ImageClassificationData
from tgazsr_cli.evaluation.robust_accuracy import evaluate_attacks

pytestmark = pytest.mark.usefixtures("one_thread")

# the rand members differ from theirs only in EOT draws (20 forward passes per step: slow, and nothing new here)
EVERY_ATTACK = sorted([*ATTACKS, *(name for name in SUITE_MEMBERS if not name.endswith("-rand"))])
EPS = 0.25  # small enough that restart 0 leaves most points robust, so later restarts have work to do
OFFICIAL_INSTALL = 'pip install "tgazsr[autoattack]"'


def threat_for(name: str, restarts: int) -> ThreatModel:
    return ThreatModel(eps=EPS, steps=40 if name.endswith("square") else 4, step_size=EPS / 2, seed=3,
                       restarts=restarts)


@contextmanager
def counting(model: nn.Module) -> Iterator[list[int]]:
    """Counts the model's forward calls (batched: one call however many images it sees)."""
    calls = [0]
    handle = model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


@pytest.fixture
def points(tiny_model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.rand(8, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    return images, predict(tiny_model, images), torch.arange(8)


@pytest.mark.parametrize("name", EVERY_ATTACK)
def test_restarts_add_forward_passes_and_never_raise_robust_accuracy(tiny_model, points, name: str) -> None:
    if name.startswith("official-"):
        try:
            import pyautoattack  # noqa: F401
        except ImportError:  # the comparison must not silently pass without the official code
            pytest.fail(f"pyautoattack is required for the official members: {OFFICIAL_INSTALL}")
    images, labels, ids = points
    attack = get_attack(name)
    robust, calls = {}, {}
    for restarts in (1, 3):
        with counting(tiny_model) as count:
            adversarial = attack(tiny_model, images, labels, threat_for(name, restarts), ids)
        calls[restarts] = count[0]
        robust[restarts] = predict(tiny_model, adversarial) == labels
    print(f"{name}: forward calls {calls[1]} (1 restart) -> {calls[3]} (3 restarts), "
          f"robust {int(robust[1].sum())} -> {int(robust[3].sum())} of {len(labels)}")
    assert robust[1].any(), "restart 0 broke every point: nothing left for later restarts to show"
    assert not (robust[3] & ~robust[1]).any()  # robust with 3 restarts is a subset of robust with 1
    if attack.uses_restarts:
        assert calls[3] > calls[1]
    else:
        assert calls[3] == calls[1]
        assert restarts_note(name).startswith("ignored")


def test_restart_zero_is_the_single_restart_attack(tiny_model, points) -> None:
    """Restarts only ever replace a robust point's image by one that breaks it."""
    images, labels, ids = points
    one = get_attack("pgd")(tiny_model, images, labels, threat_for("pgd", 1), ids)
    three = get_attack("pgd")(tiny_model, images, labels, threat_for("pgd", 3), ids)
    same = predict(tiny_model, three) == labels
    assert torch.equal(three[same], one[same])


def test_restart_starts_do_not_depend_on_the_batch(tiny_model, points) -> None:
    """Each restart's random start is keyed by (seed, sample id, restart): halves of the batch agree with it."""
    images, labels, ids = points
    threat = threat_for("pgd", 3)
    whole = get_attack("pgd")(tiny_model, images, labels, threat, ids)
    halves = torch.cat([get_attack("pgd")(tiny_model, images[:3], labels[:3], threat, ids[:3]),
                        get_attack("pgd")(tiny_model, images[3:], labels[3:], threat, ids[3:])])
    torch.testing.assert_close(halves, whole, atol=1e-5, rtol=0)


def test_every_attack_and_suite_says_what_restarts_mean() -> None:
    for name in [*ATTACKS, *SUITE_MEMBERS, *SUITES]:
        assert restarts_note(name)
    assert restarts_note("autoattack-official-custom").endswith("official-apgd-ce 5, official-apgd-t 1")
    assert not SUITE_MEMBERS["official-fab-t"].uses_restarts
    assert all(entry.uses_restarts for entry in ATTACKS.values())


def test_suites_set_their_own_restarts(tiny_model, points, monkeypatch) -> None:
    """A suite's members run with the suite's restarts, whatever the caller's threat model says."""
    images, labels, ids = points
    monkeypatch.setitem(SUITES, "paper-pgd", (("pgd", {"steps": 4, "step_size": 0.5, "restarts": 1}),))
    calls = {}
    for restarts in (1, 3):
        with counting(tiny_model) as count:
            run_suite_detailed(tiny_model, images, labels, "paper-pgd", threat_for("pgd", restarts), ids)
        calls[restarts] = count[0]
    assert calls[1] == calls[3]
    assert "--restarts ignored" in restarts_note("paper-pgd")




def test_records_say_what_ran(tiny_model, points, monkeypatch) -> None:
    """The record's threat model is the one the attack was given; a suite's members carry their own restarts."""
    images, labels, _ = points
    seen: dict[str, list[ThreatModel]] = {}
    for name in ("pgd", "apgd-ce"):
        entry = ATTACKS[name]

        def spy(model, x, y, threat, sample_ids=None, _name=name, _entry=entry):
            seen.setdefault(_name, []).append(threat)
            return _entry.run(model, x, y, threat, sample_ids)

        monkeypatch.setitem(ATTACKS, name, dataclasses.replace(entry, target=spy))
    monkeypatch.setitem(SUITES, "paper-aa", (("apgd-ce", {"steps": 3, "restarts": 2}),))
    data = ImageClassificationData(TensorDataset(images, labels), list(CLASSNAMES), list(TEMPLATES), "toy", "test",
                                   "in-memory")
    threat = ThreatModel(eps=EPS, steps=3, step_size=EPS / 2, restarts=3, loss_reduction="mean")
    records = {r.attack: r.to_dict() for r in evaluate_attacks(tiny_model, data, model_label="tiny",
                                                               attacks=["pgd", "paper-aa"], threat=threat,
                                                               batch_size=8, num_workers=0, sanity=False)}
    assert records["pgd"]["threat"] == threat.describe()
    assert records["pgd"]["threat"]["restarts"] == 3 and records["pgd"]["threat"]["loss_reduction"] == "mean"
    assert [t.restarts for t in seen["pgd"]] == [3] and seen["pgd"][0] == threat
    assert records["paper-aa"]["extra"]["suite"] == [{"attack": "apgd-ce", "steps": 3, "restarts": 2}]
    assert [t.restarts for t in seen["apgd-ce"]] == [2]


def test_fp16_records_say_which_reduction_ran(tiny_model, points) -> None:
    """Under fp16 autocast a batch-mean CE's per-sample gradients can underflow; the record says what ran."""
    images, labels, _ = points
    data = ImageClassificationData(TensorDataset(images, labels), list(CLASSNAMES), list(TEMPLATES), "toy", "test",
                                   "in-memory")
    for reduction in ("sum", "mean"):
        threat = ThreatModel(eps=EPS, steps=2, step_size=EPS / 2, precision="fp16", loss_reduction=reduction)
        (record,) = evaluate_attacks(tiny_model, data, model_label="tiny", attacks=["pgd"], threat=threat,
                                     batch_size=8, num_workers=0, sanity=False)
        assert record.to_dict()["threat"] | {"precision": "fp16", "loss_reduction": reduction} == \
            record.to_dict()["threat"]




@pytest.mark.parametrize("name", ["pgd", "cw"])
def test_later_restarts_break_points_restart_zero_missed(toy_cnn, name: str) -> None:
    """Measured: 40 points, eps 12/255, 5 steps of 3/255: pgd 16 -> 13 robust, cw 20 -> 12 with 3 restarts."""
    model, images, labels = toy_cnn
    robust = {}
    for restarts in (1, 3):
        threat = ThreatModel(eps=12.0, steps=5, step_size=3.0, seed=0, restarts=restarts)
        adversarial = get_attack(name)(model, images, labels, threat, torch.arange(len(images)))
        robust[restarts] = predict(model, adversarial) == labels
    assert robust[3].sum() < robust[1].sum()
    assert not (robust[3] & ~robust[1]).any()
