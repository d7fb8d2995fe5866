"""Attacks that see the defence: the two views of `defences/registry.py` (`VIEWS`) for one attack or suite.

- `non-adaptive` (TTC's own protocol): the attack is crafted on the undefended classifier; the defended model
  classifies the result.
- `adaptive`: the attack runs on the defended model. Gradients flow through the defence where it is
  differentiable and straight through (BPDA) where it is not (each defence's `purify`); for a randomised
  defence every gradient is the mean over `samples` independent draws of the defence (EOT, Athalye et al.
  2018): PGD/CW ascend the mean loss over the draws, APGD (CE, DLR, targeted DLR) averages the input gradients
  of `samples` forward/backward passes as AutoAttack's `eot_iter` does. Attacks without a gradient average
  here (fab-t, square, plugins) run on the defended model as they are (BPDA gradients, one draw each).
  The `autoattack` suite becomes AutoAttack's `version='rand'` for a randomised defence: APGD-CE then APGD-DLR,
  100 iterations, 1 restart, with EOT.

In both views a point is robust when the defended model classifies it correctly clean and under attack (the
caller attacks only the defended-clean-correct points); with a randomised defence each verdict is one draw.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tgazsr_cli.attacks import SUITES, ThreatModel, get_attack, get_suite, resolve_attack
from tgazsr_cli.attacks.apgd import (
    PerSampleLoss,
    RunResult,
    apgd_restarts,
    apgd_targeted,
    ce_loss,
    dlr_loss,
    make_objective,
    require_classes,
    sample_ids_or_positions,
)
from tgazsr_cli.attacks.base import autocast_for, eval_mode
from tgazsr_cli.attacks.pgd import cross_entropy_sum, cw_margin_sum, pgd_restarts
from tgazsr_cli.errors import RuntimeFailure

BOX_TOL = 1e-6
RAND_SUITE: tuple[tuple[str, dict[str, Any]], ...] = (  # AutoAttack version='rand' (eot_iter 20, 1 restart)
    ("apgd-ce", {"steps": 100, "restarts": 1, "random_start": True}),
    ("apgd-dlr", {"steps": 100, "restarts": 1, "random_start": True}),
)
PGD_LOSSES = {"pgd": cross_entropy_sum, "cw": cw_margin_sum}
APGD_LOSSES = {"apgd-ce": ce_loss, "apgd-dlr": dlr_loss}
EOT_ATTACKS = (*PGD_LOSSES, *APGD_LOSSES, "apgd-t")  # the attacks whose gradients EOT averages


@dataclass
class ViewOutcome:
    """Per point: robust under the view and the defended logits that verdict came from (the adversarial image's,
    for a suite the one that broke the point, else its last member's); for suites the robust count after each
    member and the members skipped."""

    robust: torch.Tensor
    logits: torch.Tensor
    after_member: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def eot_samples_for(defended: nn.Module, samples: int) -> int:
    """EOT draws: `samples` for a randomised defence, 1 for a deterministic one (nothing to average)."""
    return samples if getattr(defended, "randomized", False) else 1


def suite_steps(name: str, view: str, randomized: bool) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The members a suite runs in `view`: AutoAttack's rand version for `autoattack` on a randomised defence."""
    if view == "adaptive" and randomized and name == "autoattack":
        return RAND_SUITE
    return get_suite(name)


# ---------------------------------------------------------------------------------------------------
# EOT gradients


def eot_loss(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], labels: torch.Tensor,
             samples: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> the mean over `samples` draws of loss_fn(model(x)); its gradient is the mean of the draws' gradients."""

    def objective(points: torch.Tensor) -> torch.Tensor:
        total = loss_fn(model(points), labels)
        for _ in range(samples - 1):
            total = total + loss_fn(model(points), labels)
        return total / samples if samples > 1 else total

    return objective


def eot_objective(model: nn.Module, labels: torch.Tensor, loss_fn: PerSampleLoss, threat: ThreatModel,
                  samples: int) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """APGD's objective (per-sample loss, input gradient, misclassified) with the loss and the gradient averaged
    over `samples` forward/backward passes (AutoAttack's eot_iter; the verdict is the last draw's, as there)."""
    if samples == 1:
        return make_objective(model, labels, loss_fn, threat)

    def objective(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        points = points.detach()
        losses = grads = logits = None
        for _ in range(samples):
            x = points.clone().requires_grad_(True)
            with autocast_for(points.device, threat.precision):
                logits = model(x)
            loss = loss_fn(logits.float(), labels)
            (grad,) = torch.autograd.grad(loss.sum(), x)
            losses = loss.detach() if losses is None else losses + loss.detach()
            grads = grad if grads is None else grads + grad
        assert losses is not None and grads is not None and logits is not None
        return losses / samples, grads / samples, logits.detach().argmax(dim=1) != labels

    return objective


def eot_pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threat: ThreatModel,
            sample_ids: torch.Tensor | None, loss_fn: Callable, samples: int) -> torch.Tensor:
    """PGD (attacks/pgd.py: the same random starts, steps, restarts and loss reduction) ascending the EOT mean
    loss."""
    with eval_mode(model):
        return pgd_restarts(model, images, labels, threat, sample_ids, loss_fn,
                            objective_of=functools.partial(eot_loss, samples=samples))


def _merge(into: RunResult, rows: torch.Tensor, new: RunResult, compare_loss: bool) -> None:
    """Keep, per sample, a success over a failure, then (if `compare_loss`) the higher loss (as attacks/apgd.py)."""
    take = new.fooled & ~into.fooled[rows]
    if compare_loss:
        take |= (new.fooled == into.fooled[rows]) & (new.losses > into.losses[rows])
    chosen = rows[take]
    into.points[chosen], into.losses[chosen], into.fooled[chosen] = new.points[take], new.losses[take], new.fooled[take]


def eot_apgd_restarts(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threat: ThreatModel,
                      ids: list[int], loss_fn: PerSampleLoss, stream: str, samples: int) -> RunResult:
    """attacks/apgd.py's restarts (same streams, so the same random starts) with the EOT objective."""
    return apgd_restarts(model, images, labels, threat, ids, loss_fn, stream,
                         objective_of=functools.partial(eot_objective, samples=samples))


def eot_apgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threat: ThreatModel,
             sample_ids: torch.Tensor | None, name: str, samples: int) -> torch.Tensor:
    """APGD-CE, APGD-DLR or APGD-T with EOT gradients (otherwise as attacks/apgd.py)."""
    images = images.detach()
    if threat.eps == 0 or len(images) == 0:
        return images.clone()
    ids = sample_ids_or_positions(sample_ids, len(images))
    with eval_mode(model):
        if name in APGD_LOSSES:
            if name == "apgd-dlr":
                require_classes(name, _num_classes(model, images[:1]), 3)
            return eot_apgd_restarts(model, images, labels, threat, ids, APGD_LOSSES[name], name, samples).points
    return apgd_targeted(model, images, labels, threat, sample_ids,
                         objective_of=functools.partial(eot_objective, samples=samples))


def _num_classes(model: nn.Module, probe: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(probe).shape[1])


def adaptive_attack(name: str, defended: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    threat: ThreatModel, sample_ids: torch.Tensor | None, samples: int) -> torch.Tensor:
    """Adversarial images of the registered attack `name` run through the defence (see the module docstring)."""
    if name in PGD_LOSSES:
        return eot_pgd(defended, images, labels, threat, sample_ids, PGD_LOSSES[name], samples)
    if name in (*APGD_LOSSES, "apgd-t"):
        return eot_apgd(defended, images, labels, threat, sample_ids, name, samples)
    return get_attack(name)(defended, images, labels, threat, sample_ids)


# ---------------------------------------------------------------------------------------------------
# The two views


def scores(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """fp32 logits, no gradient, eval mode."""
    with torch.no_grad(), eval_mode(model):
        return model(images).float()


def _check_threat(name: str, clean: torch.Tensor, adversarial: torch.Tensor, eps: float) -> None:
    outside = (adversarial - clean).abs().max() > eps + BOX_TOL if len(clean) else False
    if outside or adversarial.min() < -BOX_TOL or adversarial.max() > 1 + BOX_TOL:
        raise RuntimeFailure(f"attack '{name}' left the L-inf ball of {eps * 255:g}/255 or the [0, 1] box")


def adaptive_suite(defended: nn.Module, images: torch.Tensor, labels: torch.Tensor, suite: str, threat: ThreatModel,
                   ids: torch.Tensor, samples: int) -> ViewOutcome:
    """The suite's members in order on the defended model, each only on the points still robust."""
    logits = scores(defended, images)
    robust = torch.ones(len(images), dtype=torch.bool, device=images.device)  # the caller's clean-correct points
    outcome = ViewOutcome(robust, logits)
    num_classes = _num_classes(defended, images[:1]) if len(images) else 0
    for name, overrides in suite_steps(suite, "adaptive", getattr(defended, "randomized", False)):
        key = name if name not in outcome.after_member else f"{name}#{len(outcome.after_member) + 1}"
        needed = get_attack(name).min_classes
        rows = robust.nonzero().squeeze(1)
        if num_classes < needed:
            outcome.skipped[key] = f"needs at least {needed} classes, got {num_classes}"
        elif len(rows) and threat.eps > 0:
            member = dataclasses.replace(threat, **overrides)
            attacked = adaptive_attack(name, defended, images[rows], labels[rows], member,
                                       ids[rows.to(ids.device)], samples)
            _check_threat(name, images[rows], attacked, threat.eps_pixels)
            logits[rows] = scores(defended, attacked)
            robust[rows[logits[rows].argmax(dim=1) != labels[rows]]] = False
        outcome.after_member[key] = int(robust.sum())
    return outcome


def robust_under(view: str, name: str, model: nn.Module, defended: nn.Module, images: torch.Tensor,
                 labels: torch.Tensor, threat: ThreatModel, ids: torch.Tensor, eot_samples: int) -> ViewOutcome:
    """Which of the (defended-clean-correct) `images` stay correctly classified by `defended` under attack or
    suite `name` seen as `view`: crafted on `model` (non-adaptive) or through the defence (adaptive)."""
    if view == "non-adaptive":
        adversarial = resolve_attack(name)(model, images, labels, threat, ids)
    elif name in SUITES:
        return adaptive_suite(defended, images, labels, name, threat, ids, eot_samples_for(defended, eot_samples))
    else:
        adversarial = adaptive_attack(name, defended, images, labels, threat, ids,
                                      eot_samples_for(defended, eot_samples))
    logits = scores(defended, adversarial)
    return ViewOutcome(logits.argmax(dim=1) == labels, logits)


def gradient_note(member: str, samples: int) -> str:
    """How an adaptive attack's gradients go through the defence, for the record."""
    if member.startswith("official-") and member.endswith("-rand"):  # attacks/official.py: version rand
        return "EOT over 20 draws inside the official AutoAttack (eot_iter), BPDA through the defence"
    if member in EOT_ATTACKS and samples > 1:
        return f"EOT over {samples} draws, BPDA through the defence"
    return "through the defence (BPDA), one draw"


def view_facts(view: str, name: str, defended: nn.Module, eot_samples: int,
               options: dict[str, Any] | None) -> dict[str, Any]:
    """What a record says about how its attack saw the defence (the `extra` of evaluation records)."""
    settings = getattr(defended, "options", None)
    facts: dict[str, Any] = {
        "defence_options": dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else dict(options or {}),
        "defence_randomized": bool(getattr(defended, "randomized", False)),
    }
    if view == "adaptive":
        samples = eot_samples_for(defended, eot_samples)
        members = [member for member, _ in suite_steps(name, view, facts["defence_randomized"])] if name in SUITES \
            else [name]
        facts["eot_samples"] = samples
        facts["gradients"] = {member: gradient_note(member, samples) for member in members}
        if name in SUITES:
            facts["suite"] = [{"attack": member, **overrides}
                              for member, overrides in suite_steps(name, view, facts["defence_randomized"])]
            if name == "autoattack" and facts["defence_randomized"]:
                facts["suite_version"] = "rand"
    return facts
