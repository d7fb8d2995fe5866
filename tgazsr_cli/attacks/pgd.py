"""L-inf PGD (Madry et al. 2018) in pixel space, with CE or CW-margin loss (spec §5).

Random start, fixed step, last iterate. Gradients are taken with respect to the input only
(no parameter gradient is ever built) and the loss is summed over the batch in fp32, so that
tiny per-sample gradients neither underflow nor depend on the batch size (spec §8.9).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from tgazsr_cli.attacks.base import autocast_for, eval_mode, project, random_start
from tgazsr_cli.attacks.threat import ThreatModel

CW_KAPPA = 50.0  # spec §5: confidence margin of the reference's CW-loss PGD

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, reduction="sum")


def cw_margin_sum(logits: torch.Tensor, labels: torch.Tensor, kappa: float = CW_KAPPA) -> torch.Tensor:
    """-sum relu(z_y - max_{j != y} z_j + kappa): ascending it pushes the true logit below the runner-up."""
    logits = logits.float()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return -F.relu(true - others.amax(dim=1) + kappa).sum()


def maximize(
    objective: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
    momentum: float = 0.0,
) -> torch.Tensor:
    """L-inf PGD ascent on any scalar `objective(perturbed images)`, last iterate.

    With `momentum` > 0 the step follows v = sign(momentum * v + sign(grad)), the velocity being
    re-normalised every step as in FARE's inner attack (spec §4): it differs from plain PGD only
    where a gradient is exactly zero, where the last direction is kept. 0 gives plain PGD.
    """
    images = images.detach()
    eps, step = threat.eps_pixels, threat.step_pixels
    start = random_start(images, eps, threat.seed, sample_ids) if threat.random_start else None
    delta = torch.zeros_like(images) if start is None else start
    velocity = torch.zeros_like(images)
    for _ in range(threat.steps):
        delta.requires_grad_(True)
        with autocast_for(images.device, threat.precision):
            loss = objective(images + delta)
        (grad,) = torch.autograd.grad(loss.float(), delta)
        direction = grad.sign()
        if momentum:
            velocity = (momentum * velocity + direction).sign()
            direction = velocity
        delta = project(images, delta.detach() + step * direction, eps)
    return (images + delta).detach()


def pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
    loss_fn: LossFn = cross_entropy_sum,
) -> torch.Tensor:
    """Adversarial images for `model` (a [0, 1]-input classifier returning logits)."""
    with eval_mode(model):
        return maximize(lambda x: loss_fn(model(x), labels), images, threat, sample_ids)


pgd_ce = partial(pgd, loss_fn=cross_entropy_sum)  # registered as "pgd" (attacks/registry.py)
pgd_cw = partial(pgd, loss_fn=cw_margin_sum)  # registered as "cw"
