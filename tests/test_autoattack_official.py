"""The official AutoAttack suites: listed without torch, one-line error without the package, our suites' records,
a clean stdout, and (slow) our `autoattack` never weaker than the official code on the shipped mini CLIP."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn

from tgazsr_cli.attacks import SUITE_HELP, SUITES, ThreatModel, check_attack_or_suite
from tgazsr_cli.attacks.suites import run_suite_detailed
from tgazsr_cli.errors import UsageError

pytestmark = pytest.mark.usefixtures("one_thread")

OFFICIAL = ("autoattack-official", "autoattack-official-custom", "autoattack-official-rand")


def require_official() -> None:
    """These tests must not silently pass without the official code (the `test` extra installs it)."""
    try:
        import pyautoattack  # noqa: F401
    except ImportError:
        pytest.fail('pyautoattack is required: pip install "tgazsr[autoattack]"')


def small(suite: str, steps: int = 3, queries: int = 30) -> tuple:
    return tuple((name, {**overrides, "steps": queries if name.endswith("square") else steps})
                 for name, overrides in SUITES[suite])


def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images).argmax(dim=1)


@pytest.fixture
def data(tiny_model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.rand(8, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    return images, predict(tiny_model, images), torch.arange(8)


def test_the_official_suites_are_listed_and_say_what_they_run() -> None:
    for name in OFFICIAL:
        check_attack_or_suite(name)
        assert "official AutoAttack" in SUITE_HELP[name] and 'pip install "tgazsr[autoattack]"' in SUITE_HELP[name]
    assert [m for m, _ in SUITES["autoattack-official"]] == [f"official-{m}" for m, _ in SUITES["autoattack"]]
    assert SUITES["autoattack-official-custom"] == (("official-apgd-ce", {"steps": 100, "restarts": 5}),
                                                    ("official-apgd-t", {"steps": 100, "restarts": 1}))
    assert [m for m, _ in SUITES["autoattack-official-rand"]] == ["official-apgd-ce-rand", "official-apgd-dlr-rand"]


def test_without_the_package_the_error_is_one_line(tiny_model, data, monkeypatch) -> None:
    images, labels, ids = data
    monkeypatch.setitem(sys.modules, "pyautoattack", None)  # `import pyautoattack` now raises ImportError
    with pytest.raises(UsageError) as caught:
        run_suite_detailed(tiny_model, images, labels, "autoattack-official", ThreatModel(eps=1.0), ids)
    message = str(caught.value)
    assert "\n" not in message and 'pip install "tgazsr[autoattack]"' in message


def test_an_official_suite_keeps_our_records_and_stdout_clean(tiny_model, data, monkeypatch, capfd) -> None:
    require_official()
    images, labels, ids = data
    labels[0] = (labels[0] + 1) % 4  # one clean mistake
    monkeypatch.setitem(SUITES, "autoattack-official", small("autoattack-official"))
    state = torch.random.get_rng_state()
    result = run_suite_detailed(tiny_model, images, labels, "autoattack-official", ThreatModel(eps=2.0, seed=1), ids)
    assert torch.equal(torch.random.get_rng_state(), state)  # the official seeding does not leak out
    assert capfd.readouterr().out == ""  # nothing on stdout, where --json goes
    members = [name for name, _ in SUITES["autoattack-official"]]
    assert list(result.robust) == ["clean", *members]
    previous = result.robust["clean"]
    for name in members:
        assert not (result.robust[name] & ~previous).any()
        previous = result.robust[name]
    assert torch.equal(predict(tiny_model, result.adversarial) == labels, result.robust[members[-1]])
    assert (result.adversarial - images).abs().max() <= 2 / 255 + 1e-6
    assert result.broken_by[0] == "clean"


def test_members_the_model_has_too_few_classes_for_are_skipped_and_said_to_be() -> None:
    require_official()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    images = torch.rand(6, 3, 2, 2)
    labels = predict(model, images)
    result = run_suite_detailed(model, images, labels, "autoattack-official-custom", ThreatModel(eps=1.0),
                                torch.arange(6))
    assert result.skipped == {"official-apgd-t": "needs at least 4 classes, got 3"}
    assert torch.equal(result.robust["official-apgd-t"], result.robust["official-apgd-ce"])


def test_the_official_code_refuses_other_precisions(tiny_model, data) -> None:
    images, labels, ids = data
    with pytest.raises(UsageError, match="runs in fp32"):
        run_suite_detailed(tiny_model, images, labels, "autoattack-official", ThreatModel(eps=1.0, precision="bf16"),
                           ids)


@pytest.mark.slow
def test_ours_is_never_weaker_than_the_official_autoattack() -> None:
    """Shipped mini CLIP on the first 32 digits test images, eps 2/255, seed 0, fp32, full budgets: our robust count
    <= the official one + ceil(n / 100). Run with -s to see both robust accuracies."""
    require_official()
    from tgazsr_cli.data import load_image_dataset
    from tgazsr_cli.models.classifier import load_classifier

    model = load_classifier("tgazsr-mini", "tgazsr:mini-clip").eval()
    data = load_image_dataset("digits", split="test", image_size=model.image_size, limit=32, seed=0)
    model.set_classes(data.classnames, data.templates)
    n = len(data.dataset)  # type: ignore[arg-type]
    images = torch.stack([data.dataset[i][0] for i in range(n)])
    labels = torch.tensor([data.dataset[i][1] for i in range(n)])
    threat = ThreatModel(eps=2.0, seed=0)
    robust = {}
    for suite in ("autoattack", "autoattack-official"):
        result = run_suite_detailed(model, images, labels, suite, threat, torch.arange(n))
        robust[suite] = int(list(result.robust.values())[-1].sum())
        after = {member: int(mask.sum()) for member, mask in result.robust.items()}
        print(f"\n{suite}: robust accuracy {robust[suite]}/{n} = {100 * robust[suite] / n:.1f}% "
              f"(eps 2/255, tgazsr-mini on digits; robust after each member: {after})")
    assert robust["autoattack"] <= robust["autoattack-official"] + math.ceil(n / 100)
    assert robust["autoattack"] < int((predict(model, images) == labels).sum())  # the attacks did something
