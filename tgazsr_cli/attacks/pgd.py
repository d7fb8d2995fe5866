"""L-inf PGD (Madry et al. 2018) in pixel space, with CE or CW-margin loss (spec §5).

Random start, fixed step, last iterate. Gradients are taken with respect to the input only
(no parameter gradient is ever built) and the loss is summed over the batch in fp32, so that
tiny per-sample gradients neither underflow nor depend on the batch size (spec §8.9);
`threat.loss_reduction="mean"` divides it by the batch size, as references with a batch-mean CE do.

Restarts (`threat.restarts`): restart 0 is the single-restart attack; restart r > 0 runs again from a
fresh random start, only on the points no earlier restart misclassified, and a point takes the first
restart's iterate that misclassifies it. A point survives only if it survives every restart; one that
no restart breaks keeps restart 0's iterate.
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
Objective = Callable[[torch.Tensor], torch.Tensor]
# (model, batch loss, labels of the attacked rows) -> the scalar to ascend; the adaptive view of a defence
# passes its EOT objective (defences/adaptive.py)
ObjectiveOf = Callable[[nn.Module, LossFn, torch.Tensor], Objective]


def cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, reduction="sum")


def cw_margin_sum(logits: torch.Tensor, labels: torch.Tensor, kappa: float = CW_KAPPA) -> torch.Tensor:
    """-sum relu(z_y - max_{j != y} z_j + kappa): ascending it pushes the true logit below the runner-up."""
    logits = logits.float()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return -F.relu(true - others.amax(dim=1) + kappa).sum()


def maximize(
    objective: Objective,
    images: torch.Tensor,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
    momentum: float = 0.0,
    restart: int = 0,
) -> torch.Tensor:
    """L-inf PGD ascent on any scalar `objective(perturbed images)`, last iterate.

    With `momentum` > 0 the step follows v = sign(momentum * v + sign(grad)), the velocity being
    re-normalised every step as in FARE's inner attack (spec §4): it differs from plain PGD only
    where a gradient is exactly zero, where the last direction is kept. 0 gives plain PGD.
    `restart` picks the random start's stream; a restart after the first always starts at random
    (from the clean image it would only repeat the first).
    """
    images = images.detach()
    eps, step = threat.eps_pixels, threat.step_pixels
    randomised = threat.random_start or restart > 0
    delta = random_start(images, eps, threat.seed, sample_ids, restart) if randomised else torch.zeros_like(images)
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


def plain_objective(model: nn.Module, loss_fn: LossFn, labels: torch.Tensor) -> Objective:
    return lambda points: loss_fn(model(points), labels)


def reduced(objective: Objective, reduction: str) -> Objective:
    """The batch loss as summed, or divided by the batch size ("mean": the references' batch-mean CE)."""
    if reduction == "sum":
        return objective
    return lambda points: objective(points) / max(len(points), 1)


def misclassified(model: nn.Module, points: torch.Tensor, labels: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
    """The restart's verdict, in the precision the attack ran in (one draw for a randomised model)."""
    with torch.no_grad(), autocast_for(points.device, threat.precision):
        return model(points).argmax(dim=1) != labels


def pgd_restarts(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
    loss_fn: LossFn = cross_entropy_sum,
    objective_of: ObjectiveOf = plain_objective,
) -> torch.Tensor:
    """`threat.restarts` PGD runs (see the module docstring). One restart costs no extra forward pass."""
    images = images.detach()

    def run(rows: torch.Tensor | None, restart: int) -> torch.Tensor:
        ids = sample_ids if rows is None or sample_ids is None else sample_ids[rows.to(sample_ids.device)]
        points, targets = (images, labels) if rows is None else (images[rows], labels[rows])
        objective = reduced(objective_of(model, loss_fn, targets), threat.loss_reduction)
        return maximize(objective, points, threat, ids, restart=restart)

    adversarial = run(None, 0)
    if threat.restarts == 1 or threat.eps == 0 or len(images) == 0:
        return adversarial
    robust = ~misclassified(model, adversarial, labels, threat)
    for restart in range(1, threat.restarts):
        rows = robust.nonzero().squeeze(1)
        if len(rows) == 0:  # every point broken: nothing left to restart
            break
        attempt = run(rows, restart)
        fooled = misclassified(model, attempt, labels[rows], threat)
        adversarial[rows[fooled]] = attempt[fooled]
        robust[rows[fooled]] = False
    return adversarial


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
        return pgd_restarts(model, images, labels, threat, sample_ids, loss_fn)


pgd_ce = partial(pgd, loss_fn=cross_entropy_sum)  # registered as "pgd" (attacks/registry.py)
pgd_cw = partial(pgd, loss_fn=cw_margin_sum)  # registered as "cw"
