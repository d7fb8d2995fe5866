"""Running the named attack suites (declared in attacks/registry.py) as an ensemble.

As in AutoAttack (Croce & Hein, ICML 2020), each attack runs only on the points that are clean-correct
and that no earlier attack has broken, and a point counts as robust only if every attack fails on it.
eps, precision and seed come from the caller's threat model; steps, step size and restarts come from
the suite, so a suite name alone says what was run.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from tgazsr_cli.attacks.base import eval_mode
from tgazsr_cli.attacks.registry import SUITES, Attack, check_attack_or_suite, get_attack, get_suite
from tgazsr_cli.attacks.threat import ThreatModel
from tgazsr_cli.errors import RuntimeFailure

BOX_TOL = 1e-6  # float slack allowed when checking that an attack kept to its threat model


@dataclass
class SuiteResult:
    """What a suite did. `robust` maps 'clean' and then each attack, in order, to the mask of points still
    correctly classified after it (cumulative); `broken_by` maps a broken point's batch position to the
    attack that broke it ('clean' when the clean image is already misclassified)."""

    adversarial: torch.Tensor
    robust: dict[str, torch.Tensor]
    broken_by: dict[int, str]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), eval_mode(model):
        return model(images).argmax(dim=1)


def _check_threat(name: str, clean: torch.Tensor, adversarial: torch.Tensor, eps: float) -> None:
    """The ensemble trusts no member: an attack that leaves the eps-ball or the box is a bug."""
    if adversarial.shape != clean.shape or not torch.isfinite(adversarial).all():
        raise RuntimeFailure(f"attack '{name}' returned malformed images")
    outside_ball = (adversarial - clean).abs().max() > eps + BOX_TOL
    if outside_ball or adversarial.min() < -BOX_TOL or adversarial.max() > 1 + BOX_TOL:
        raise RuntimeFailure(f"attack '{name}' left the L-inf ball of {eps * 255:g}/255 or the [0, 1] box")


def _skip_reason(name: str, num_classes: int) -> str | None:
    needed = get_attack(name).min_classes
    return f"needs at least {needed} classes, got {num_classes}" if num_classes < needed else None


def _mask_key(name: str, masks: dict[str, torch.Tensor]) -> str:
    key, copy = name, 2
    while key in masks:
        key, copy = f"{name}#{copy}", copy + 1
    return key


def run_suite_detailed(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    suite_name: str,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
) -> SuiteResult:
    """Run every attack of the suite in order, each only on points still robust (see module docstring)."""
    steps = get_suite(suite_name)
    images = images.detach()
    ids = torch.arange(len(images)) if sample_ids is None else sample_ids
    with torch.no_grad(), eval_mode(model):
        logits = model(images[:1]) if len(images) else None
    num_classes = int(logits.shape[1]) if logits is not None else 0
    robust = _predict(model, images) == labels if len(images) else torch.zeros(0, dtype=torch.bool)
    adversarial = images.clone()
    clean_misses = {i: "clean" for i in (~robust).nonzero().flatten().tolist()}
    result = SuiteResult(adversarial, {"clean": robust.clone()}, clean_misses)
    for name, overrides in steps:
        key = _mask_key(name, result.robust)
        reason = _skip_reason(name, num_classes)
        rows = robust.nonzero().squeeze(1)
        if reason is None and len(rows) and threat.eps > 0:
            started = time.monotonic()
            member = dataclasses.replace(threat, **overrides)
            attacked = get_attack(name)(model, images[rows], labels[rows], member, ids[rows.to(ids.device)])
            _check_threat(name, images[rows], attacked, threat.eps_pixels)
            broken = _predict(model, attacked) != labels[rows]
            adversarial[rows[broken]] = attacked[broken]
            robust[rows[broken]] = False
            result.broken_by.update({i: key for i in rows[broken].tolist()})
            result.seconds[key] = round(time.monotonic() - started, 3)
        elif reason is not None:
            result.skipped[key] = reason
        result.robust[key] = robust.clone()
    return result


def run_suite(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    suite_name: str,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(adversarial images, robust masks per attack). A broken point gets the image that broke it; a robust
    or clean-misclassified point gets its clean image back, as in AutoAttack. Robust accuracy is
    `masks[last attack].float().mean()`. `run_suite_detailed` also says which attack broke each point."""
    result = run_suite_detailed(model, images, labels, suite_name, threat, sample_ids)
    return result.adversarial, result.robust


def broken_by(masks: dict[str, torch.Tensor]) -> dict[int, str]:
    """From run_suite's masks: for each broken point, the first mask ('clean' or an attack) it is missing from."""
    found: dict[int, str] = {}
    for key, mask in masks.items():
        for index in (~mask).nonzero().flatten().tolist():
            found.setdefault(index, key)
    return found


def resolve_attack(name: str) -> Attack:
    """A registered attack, or a suite wrapped as one (its adversarial images: for each point the image that
    broke it, else the clean image)."""
    check_attack_or_suite(name)
    if name not in SUITES:
        return get_attack(name)

    def suite_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threat: ThreatModel,
                     sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        return run_suite(model, images, labels, name, threat, sample_ids)[0]

    return suite_attack
