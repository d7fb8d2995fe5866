"""Checks that an evaluation can be trusted, after AutoAttack's flags (Croce & Hein, ICML 2020, §5) and the
gradient-masking signs of Athalye, Carlini & Wagner ("Obfuscated gradients give a false sense of
security", ICML 2018). Each check returns a plain-language warning; an empty list means none fired.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from tgazsr_cli.attacks.base import autocast_for, eval_mode
from tgazsr_cli.attacks.registry import get_attack
from tgazsr_cli.attacks.threat import Precision, ThreatModel

ZERO_GRAD_SHARE = 0.5  # share of exactly-zero input-gradient entries above which masking is suspected
PROBABILITY_TOL = 1e-4
RANDOM_TOL = 1e-5
DEFAULT_THREAT = ThreatModel(eps=1.0, steps=20)
SQUARE_QUERIES = 500


def zero_gradient_warning(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                          threshold: float = ZERO_GRAD_SHARE, precision: Precision = "fp32") -> str | None:
    """Warn when many entries of the cross-entropy's input gradient are exactly zero, with the forward in the
    attack's precision (fp16 gradients underflow where fp32 ones do not)."""
    points = images.detach().clone().requires_grad_(True)
    with eval_mode(model):
        with autocast_for(points.device, precision):
            logits = model(points)
        loss = F.cross_entropy(logits.float(), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, points)
    zero = grad == 0
    share = zero.float().mean().item()
    all_zero = int(zero.flatten(1).all(dim=1).sum())
    if share > threshold or all_zero:
        return (f"{100 * share:.1f}% of input-gradient entries are exactly zero in {precision} ({all_zero}/"
                f"{len(images)} images with an all-zero gradient): gradient masking (or underflow) is likely and "
                "gradient attacks will overestimate robustness; use fp32 attacks and trust the black-box attack "
                "(square) or the autoattack suite")
    return None


def probability_warning(logits: torch.Tensor) -> str | None:
    """Warn when outputs look like probabilities (rows in [0, 1] summing to 1) instead of logits."""
    logits = logits.float()
    in_range = bool(((logits >= 0) & (logits <= 1)).all())
    sums_to_one = bool(torch.allclose(logits.sum(dim=1), torch.ones(len(logits), device=logits.device),
                                      atol=PROBABILITY_TOL))
    if in_range and sums_to_one:
        return ("the model's outputs look like probabilities (rows in [0, 1] summing to 1): attacks expect logits, "
                "and a softmax in front flattens the cross-entropy's gradient")
    return None


def randomness_warning(first: torch.Tensor, second: torch.Tensor) -> str | None:
    """Warn when two eval-mode forwards of the same input differ."""
    if not torch.allclose(first.float(), second.float(), rtol=RANDOM_TOL, atol=RANDOM_TOL):
        gap = (first.float() - second.float()).abs().max().item()
        return (f"two forwards of the same input differ (by up to {gap:.3g}): the model is randomised, so use "
                "expectation-over-transformation attacks; the numbers here are not a robustness guarantee")
    return None


def black_box_warning(gradient_robust: torch.Tensor, black_box_robust: torch.Tensor) -> str | None:
    """Warn when the black-box attack breaks points that the gradient attacks left robust."""
    missed = int((gradient_robust & ~black_box_robust).sum())
    if missed:
        return (f"the black-box attack broke {missed} of {int(gradient_robust.sum())} points that the gradient "
                "attack left robust: a sign of gradient masking; report the autoattack suite")
    return None


def mode_warnings(entered_training: bool, after: dict[str, bool]) -> list[str]:
    """Warn about a model handed over in train mode, and about any attack that changed the mode."""
    found = []
    if entered_training:
        found.append("the model is in train mode: dropout or batch-norm statistics make attacks and accuracy "
                     "random; call model.eval() before evaluating")
    for name, training in after.items():
        if training != entered_training:
            state = "train" if training else "eval"
            found.append(f"attack '{name}' left the model in {state} mode")
    return found


def _robust_after(name: str, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threat: ThreatModel,
                  ids: torch.Tensor) -> torch.Tensor:
    adversarial = get_attack(name)(model, images, labels, threat, ids)
    with torch.no_grad(), eval_mode(model):
        return model(adversarial).argmax(dim=1) == labels


def sanity_checks(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    threat: ThreatModel = DEFAULT_THREAT,
    gradient_attack: str = "apgd-ce",
    square_queries: int = SQUARE_QUERIES,
    zero_grad_share: float = ZERO_GRAD_SHARE,
) -> list[str]:
    """Run all checks on one batch; returns warnings (empty when nothing looks wrong).

    Besides forward and gradient inspections it runs `gradient_attack` and `square` (with
    `square_queries` queries) under `threat`, on the clean-correct points, to compare them.
    """
    images = images.detach()
    warnings: list[str] = []
    entered_training = model.training
    with torch.no_grad(), eval_mode(model):
        first, second = model(images), model(images)
        switched = any(module.training for module in model.modules())
    if switched:
        warnings.append("the model puts itself (or a submodule) in train mode when called, so attacks cannot keep "
                        "it in eval mode; fix its forward")
    for warning in (probability_warning(first), randomness_warning(first, second),
                    zero_gradient_warning(model, images, labels, zero_grad_share, threat.precision)):
        if warning:
            warnings.append(warning)
    correct = first.argmax(dim=1) == labels
    ids = torch.arange(len(images))[correct.cpu()]
    after: dict[str, bool] = {}
    if correct.any() and threat.eps > 0:
        subset, targets = images[correct], labels[correct]
        gradient_robust = _robust_after(gradient_attack, model, subset, targets, threat, ids)
        after[gradient_attack] = model.training
        square_threat = dataclasses.replace(threat, steps=square_queries)
        square_robust = _robust_after("square", model, subset, targets, square_threat, ids)
        after["square"] = model.training
        warning = black_box_warning(gradient_robust, square_robust)
        if warning:
            warnings.append(warning)
    warnings.extend(mode_warnings(entered_training, after))
    return warnings
