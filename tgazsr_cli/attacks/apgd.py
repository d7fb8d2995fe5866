"""Auto-PGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020), L-inf, written from the paper's Algorithm 1.

- `apgd-ce`: untargeted APGD on the cross-entropy.
- `apgd-dlr`: untargeted APGD on the Difference-of-Logits-Ratio loss (paper eq. 5).
- `apgd-t`: targeted APGD on the targeted DLR loss (paper eq. 6), one run per target class among the
  top-k other classes of the clean logits, each run only on the points no earlier run has broken.

Every per-sample quantity (step size, checkpoint conditions, best point, random start) belongs to
that sample alone: a point's result depends only on (seed, its id) and not on the batch around it.
Losses are taken in fp32 on the logits and summed, gradients are taken w.r.t. the input only.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from tgazsr_cli.attacks.base import autocast_for, eval_mode, project
from tgazsr_cli.attacks.threat import ThreatModel
from tgazsr_cli.errors import UsageError

MOMENTUM = 0.75  # paper §3.2: alpha
RHO = 0.75  # paper §3.2: share of successful steps below which the step size is halved
DLR_EPS = 1e-12
DEFAULT_TARGETS = 9  # AutoAttack's standard number of target classes for apgd-t and fab-t

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Objective = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


# ---------------------------------------------------------------------------------------------------
# Per-sample seeded randomness (shared by apgd, fab and square)


def _stream_seed(seed: int, stream: str, sample_id: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{stream}/{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def sample_ids_or_positions(sample_ids: torch.Tensor | None, n: int) -> list[int]:
    """The ids that seed each sample's randomness; without ids, a sample's batch position stands in."""
    return list(range(n)) if sample_ids is None else [int(i) for i in sample_ids.tolist()]


def sample_generators(seed: int, stream: str, ids: list[int]) -> list[torch.Generator]:
    """One CPU generator per sample, seeded by (seed, stream, sample id) only."""
    return [torch.Generator(device="cpu").manual_seed(_stream_seed(seed, stream, i)) for i in ids]


def seeded_uniform(
    shape: tuple[int, ...], generators: list[torch.Generator], device: torch.device
) -> torch.Tensor:
    """U[0, 1) noise of shape [len(generators), *shape], row i drawn from generator i."""
    rows = [torch.rand(shape, generator=g) for g in generators]
    return torch.stack(rows).to(device) if rows else torch.empty(0, *shape, device=device)


def linf_surface_start(images: torch.Tensor, radius: torch.Tensor | float, generators: list[torch.Generator]):
    """A random perturbation of L-inf norm `radius` (per sample), clipped to the [0, 1] box.

    As in APGD and FAB: t ~ U[-1, 1], scaled so that max |t| = radius.
    """
    t = 2 * seeded_uniform(tuple(images.shape[1:]), generators, images.device) - 1
    peak = t.flatten(1).abs().amax(dim=1).clamp_min(1e-12)
    radius = torch.as_tensor(radius, dtype=images.dtype, device=images.device).expand(len(images))
    delta = t * (radius / peak).view(-1, *[1] * (images.dim() - 1))
    return (images + delta).clamp(0, 1) - images


# ---------------------------------------------------------------------------------------------------
# Losses (per sample, fp32)


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, reduction="none")


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12), paper eq. 5 (pi sorts the logits, descending)."""
    logits = logits.float()
    top = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return -(true - others) / (top[:, 0] - top[:, 2] + DLR_EPS)


def targeted_dlr_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12), paper eq. 6; ascending it moves z_t above z_y."""
    logits = logits.float()
    top = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, labels[:, None]).squeeze(1)
    target = logits.gather(1, targets[:, None]).squeeze(1)
    return -(true - target) / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + DLR_EPS)


def require_classes(name: str, num_classes: int, needed: int) -> None:
    if num_classes < needed:
        raise UsageError(f"attack '{name}' needs at least {needed} classes, the model has {num_classes}")


def ranked_targets(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """[n, k] target classes: the other classes ordered by clean logit, highest first."""
    masked = logits.float().masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return masked.argsort(dim=1, descending=True)[:, :k]


# ---------------------------------------------------------------------------------------------------
# APGD core


def apgd_checkpoints(n_iter: int) -> list[int]:
    """Iterations w_j = ceil(p_j * n_iter) with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)."""
    points, previous, current = set(), 0.0, 0.22
    while current <= 1:
        points.add(math.ceil(round(current * n_iter, 9)))
        previous, current = current, current + max(current - previous - 0.03, 0.06)
    return sorted(p for p in points if 0 < p <= n_iter)


def make_objective(model: nn.Module, labels: torch.Tensor, loss_fn: PerSampleLoss, threat: ThreatModel) -> Objective:
    """x -> (per-sample fp32 loss, input gradient of the summed loss, misclassified mask)."""

    def objective(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        points = points.detach().requires_grad_(True)
        with autocast_for(points.device, threat.precision):
            logits = model(points)
        losses = loss_fn(logits.float(), labels)
        (grad,) = torch.autograd.grad(losses.sum(), points)
        return losses.detach(), grad.detach(), logits.detach().argmax(dim=1) != labels

    return objective


@dataclass
class RunResult:
    """Per sample: the returned point (misclassified if any iterate was, else highest-loss), its loss, success."""

    points: torch.Tensor
    losses: torch.Tensor
    fooled: torch.Tensor


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *[1] * (like.dim() - 1))


def apgd_run(objective: Objective, images: torch.Tensor, start: torch.Tensor, eps: float, n_iter: int) -> RunResult:
    """One APGD run (paper Algorithm 1) from images + start; every quantity is per sample."""

    def clip(points: torch.Tensor) -> torch.Tensor:
        return images + project(images, points - images, eps)

    current = images + start
    loss, grad, fooled = objective(current)
    best, best_loss, best_grad = current.clone(), loss.clone(), grad.clone()
    adv, adv_loss, found = current.clone(), loss.clone(), fooled.clone()
    previous = current
    step = torch.full_like(loss, 2 * eps)  # paper: eta^(0) = 2 eps
    increases = torch.zeros_like(loss)
    reduced = torch.zeros_like(fooled)
    best_at_check = best_loss.clone()
    checkpoints, last_check = set(apgd_checkpoints(n_iter)), 0
    for t in range(1, n_iter + 1):
        alpha = 1.0 if t == 1 else MOMENTUM
        z = clip(current + _rows(step, current) * grad.sign())
        previous, current = current, clip(current + alpha * (z - current) + (1 - alpha) * (current - previous))
        new_loss, grad, fooled = objective(current)
        increases += (new_loss > loss).float()
        loss = new_loss
        better_adv = fooled & (~found | (loss > adv_loss))
        adv = torch.where(_rows(better_adv, adv), current, adv)
        adv_loss, found = torch.where(better_adv, loss, adv_loss), found | fooled
        improved = loss > best_loss
        best = torch.where(_rows(improved, best), current, best)
        best_grad = torch.where(_rows(improved, best), grad, best_grad)
        best_loss = torch.where(improved, loss, best_loss)
        if t in checkpoints:
            halve = (increases < RHO * (t - last_check)) | (~reduced & (best_at_check >= best_loss))
            step = torch.where(halve, step / 2, step)
            current = torch.where(_rows(halve, current), best, current)  # restart from the best point
            grad = torch.where(_rows(halve, grad), best_grad, grad)
            loss = torch.where(halve, best_loss, loss)
            reduced, best_at_check, last_check = halve, best_loss.clone(), t
            increases.zero_()
    points = torch.where(_rows(found, adv), adv, best)
    return RunResult(points.detach(), torch.where(found, adv_loss, best_loss), found)


def _start(images: torch.Tensor, threat: ThreatModel, stream: str, ids: list[int], restart: int) -> torch.Tensor:
    """Restart 0 starts at random unless `random_start` is off; a later restart always does (from the clean
    image it would only repeat restart 0)."""
    if not threat.random_start and restart == 0:
        return torch.zeros_like(images)
    return linf_surface_start(images, threat.eps_pixels, sample_generators(threat.seed, stream, ids))


def _merge(into: RunResult, rows: torch.Tensor, new: RunResult, compare_loss: bool) -> None:
    """Keep, per sample, a success over a failure, then (if `compare_loss`) the higher loss."""
    old_fooled, old_loss = into.fooled[rows], into.losses[rows]
    take = new.fooled & ~old_fooled
    if compare_loss:
        take |= (new.fooled == old_fooled) & (new.losses > old_loss)
    chosen = rows[take]
    into.points[chosen] = new.points[take]
    into.losses[chosen] = new.losses[take]
    into.fooled[chosen] = new.fooled[take]


def apgd_restarts(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    threat: ThreatModel,
    ids: list[int],
    loss_fn: PerSampleLoss,
    stream: str,
    result: RunResult | None = None,
    objective_of: Callable[[nn.Module, torch.Tensor, PerSampleLoss, ThreatModel], Objective] | None = None,
    targets: torch.Tensor | None = None,
) -> RunResult:
    """`threat.restarts` APGD runs, each only on the points not broken yet: a point keeps a success over a failure,
    then the higher loss. `objective_of` builds the loss to maximise (default `make_objective`; the adaptive view
    of a defence passes its EOT objective). With `targets` (one per image) the loss is
    `loss_fn(logits, labels, targets=...)`, the targets following the rows each restart attacks."""
    objective_of = objective_of or make_objective
    for restart in range(threat.restarts):
        rows = torch.arange(len(images), device=images.device)
        if result is not None:
            rows = rows[~result.fooled]
        if len(rows) == 0:
            break
        sub_ids = [ids[i] for i in rows.tolist()]
        sub_images = images[rows]
        row_loss = loss_fn if targets is None else functools.partial(loss_fn, targets=targets[rows])
        objective = objective_of(model, labels[rows], row_loss, threat)
        start = _start(sub_images, threat, f"{stream}/restart{restart}", sub_ids, restart)
        run = apgd_run(objective, sub_images, start, threat.eps_pixels, threat.steps)
        if result is None:
            result = run
        else:
            _merge(result, rows, run, compare_loss=True)
    assert result is not None
    return result


def apgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
    loss: str = "ce",
) -> torch.Tensor:
    """Untargeted APGD on `loss` ('ce' or 'dlr'); returns misclassified points where found, else best-loss ones."""
    images = images.detach()
    if threat.eps == 0 or len(images) == 0:
        return images.clone()
    loss_fn = {"ce": ce_loss, "dlr": dlr_loss}[loss]
    ids = sample_ids_or_positions(sample_ids, len(images))
    with eval_mode(model):
        if loss == "dlr":
            require_classes("apgd-dlr", _num_classes(model, images[:1], threat), 3)
        return apgd_restarts(model, images, labels, threat, ids, loss_fn, f"apgd-{loss}").points


def _num_classes(model: nn.Module, probe: torch.Tensor, threat: ThreatModel) -> int:
    with torch.no_grad(), autocast_for(probe.device, threat.precision):
        return int(model(probe).shape[1])


def clean_logits(model: nn.Module, images: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
    with torch.no_grad(), autocast_for(images.device, threat.precision):
        return model(images).float()


def apgd_targeted(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
    n_targets: int = DEFAULT_TARGETS,
    objective_of: Callable[[nn.Module, torch.Tensor, PerSampleLoss, ThreatModel], Objective] | None = None,
) -> torch.Tensor:
    """APGD-T: targeted-DLR APGD against each of the top-`n_targets` other classes in turn (`objective_of`: as in
    `apgd_restarts`)."""
    images = images.detach()
    if threat.eps == 0 or len(images) == 0:
        return images.clone()
    ids = sample_ids_or_positions(sample_ids, len(images))
    with eval_mode(model):
        logits = clean_logits(model, images, threat)
        require_classes("apgd-t", logits.shape[1], 4)
        targets = ranked_targets(logits, labels, min(n_targets, logits.shape[1] - 1))
        result: RunResult | None = None
        for rank in range(targets.shape[1]):
            target = targets[:, rank]
            rows = torch.arange(len(images), device=images.device)
            if result is not None:
                rows = rows[~result.fooled]
            if len(rows) == 0:
                break
            sub_ids = [ids[i] for i in rows.tolist()]
            run = apgd_restarts(model, images[rows], labels[rows], threat, sub_ids, targeted_dlr_loss,
                                f"apgd-t/target{rank}", objective_of=objective_of, targets=target[rows])
            if result is None:
                result = run
            else:
                _merge(result, rows, run, compare_loss=False)
        assert result is not None
        return result.points


apgd_ce = partial(apgd, loss="ce")  # registered as "apgd-ce" (attacks/registry.py)
apgd_dlr = partial(apgd, loss="dlr")  # registered as "apgd-dlr"
