"""Targeted FAB, L-inf (Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive
boundary attack", ICML 2020), written from the paper's description, restricted to an eps-ball.

FAB looks for the smallest perturbation that changes the decision. Each step linearises the boundary
between the true class y and the target t at the current iterate, projects both the iterate and the
clean image onto that hyperplane (L-inf projection intersected with the [0, 1] box), and moves to a
convex combination of the two projections, extrapolated by eta and pulled towards the clean image by
at most alpha_max. When an iterate is adversarial it is recorded if it is the smallest so far and then
pulled back towards the clean image by beta. Only a perturbation within eps is returned; a point
without one gets its clean image back. Everything is per sample.
"""

from __future__ import annotations

import torch
from torch import nn

from tgazsr_cli.attacks.apgd import (
    DEFAULT_TARGETS,
    clean_logits,
    linf_surface_start,
    ranked_targets,
    require_classes,
    sample_generators,
    sample_ids_or_positions,
)
from tgazsr_cli.attacks.base import autocast_for, eval_mode
from tgazsr_cli.attacks.threat import ThreatModel

ALPHA_MAX = 0.1  # paper §3: largest weight of the step from the clean image
ETA = 1.05  # paper §3: extrapolation past the linearised boundary
BETA = 0.9  # paper §3: backward step towards the clean image after a success
NORM_EPS = 1e-12


def linf_box_projection(points: torch.Tensor, weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per sample, the smallest-L-inf step d with values + <weights, d> = 0 and points + d in [0, 1].

    With radius r, the largest reachable change of <w, d> is G(r) = sum_i |w_i| min(r, room_i), where
    room_i is the distance to the box face in the useful direction. G is piecewise linear and
    increasing, so r solves G(r) = |value| between two sorted breakpoints. When even the box corner
    cannot reach the hyperplane, the step goes all the way to the box faces.
    """
    x = points.flatten(1).double()
    w = weights.flatten(1).double()
    v = values.double()
    direction = -torch.sign(v)[:, None] * torch.sign(w)
    room = torch.where(direction > 0, 1 - x, x) * direction.abs()
    magnitude = w.abs()
    order = room.argsort(dim=1)
    room_sorted, weight_sorted = room.gather(1, order), magnitude.gather(1, order)
    before_w = weight_sorted.cumsum(1) - weight_sorted
    before_wr = (weight_sorted * room_sorted).cumsum(1) - weight_sorted * room_sorted
    total = weight_sorted.sum(1, keepdim=True)
    reach = before_wr + room_sorted * (total - before_w)
    need = v.abs()[:, None]
    k = torch.searchsorted(reach.contiguous(), need.contiguous())
    feasible = k < x.shape[1]
    k = k.clamp(max=x.shape[1] - 1)
    radius = (need - before_wr.gather(1, k)) / (total - before_w.gather(1, k)).clamp_min(1e-300)
    radius = torch.where(feasible, radius, torch.full_like(radius, float("inf")))
    step = direction * torch.minimum(radius, room)
    return step.view_as(points).to(points.dtype)


def _linf(delta: torch.Tensor) -> torch.Tensor:
    return delta.flatten(1).abs().amax(dim=1)


def _rows(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *[1] * (like.dim() - 1))


class _Boundary:
    """The target-vs-true logit gap g = z_t - z_y, its input gradient, and the model's decision."""

    def __init__(self, model: nn.Module, labels: torch.Tensor, targets: torch.Tensor, threat: ThreatModel) -> None:
        self.model, self.labels, self.targets, self.threat = model, labels, targets, threat

    def gap_and_grad(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        points = points.detach().requires_grad_(True)
        with autocast_for(points.device, self.threat.precision):
            logits = self.model(points).float()
        gap = logits.gather(1, self.targets[:, None]).squeeze(1) - logits.gather(1, self.labels[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad(gap.sum(), points)
        return gap.detach(), grad.detach()

    def fooled(self, points: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast_for(points.device, self.threat.precision):
            return self.model(points).argmax(dim=1) != self.labels


def fab_run(
    boundary: _Boundary, images: torch.Tensor, start: torch.Tensor, n_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One FAB run from images + start: the smallest adversarial point found per sample and its L-inf norm."""
    current = (images + start).clamp(0, 1)
    best = images.clone()
    best_norm = torch.full((len(images),), float("inf"), device=images.device, dtype=images.dtype)
    for _ in range(n_iter):
        gap, grad = boundary.gap_and_grad(current)
        to_plane = linf_box_projection(current, grad, gap)
        gap_at_clean = gap + (grad * (images - current)).flatten(1).sum(dim=1)
        from_clean = linf_box_projection(images, grad, gap_at_clean)
        norm_current, norm_clean = _linf(to_plane) + NORM_EPS, _linf(from_clean) + NORM_EPS
        alpha = _rows((norm_current / (norm_current + norm_clean)).clamp(0, ALPHA_MAX), images)
        current = ((1 - alpha) * (current + ETA * to_plane) + alpha * (images + ETA * from_clean)).clamp(0, 1)
        fooled = boundary.fooled(current)
        norm = _linf(current - images)
        better = fooled & (norm < best_norm)
        best = torch.where(_rows(better, best), current, best)
        best_norm = torch.where(better, norm, best_norm)
        current = torch.where(_rows(fooled, current), images + BETA * (current - images), current)
    return best, best_norm


def fab_targeted(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
    n_targets: int = DEFAULT_TARGETS,
) -> torch.Tensor:
    """FAB-T: per target among the top-`n_targets` other classes, `threat.restarts` runs (the first from
    the clean image, later ones from random points at L-inf radius min(eps, best norm so far) / 2), each
    only on points without an adversarial example within eps yet."""
    images = images.detach()
    eps = threat.eps_pixels
    if eps == 0 or len(images) == 0:
        return images.clone()
    ids = sample_ids_or_positions(sample_ids, len(images))
    with eval_mode(model):
        logits = clean_logits(model, images, threat)
        require_classes("fab-t", logits.shape[1], 2)
        targets = ranked_targets(logits, labels, min(n_targets, logits.shape[1] - 1))
        best = images.clone()
        best_norm = torch.full((len(images),), float("inf"), device=images.device, dtype=images.dtype)
        best_norm[logits.argmax(dim=1) != labels] = 0.0  # already misclassified: the clean image is minimal
        for rank in range(targets.shape[1]):
            for restart in range(threat.restarts):
                rows = (best_norm > eps).nonzero().squeeze(1)
                if len(rows) == 0:
                    break
                start = torch.zeros_like(images[rows])
                if restart > 0:
                    generators = sample_generators(threat.seed, f"fab-t/target{rank}/restart{restart}",
                                                   [ids[i] for i in rows.tolist()])
                    start = linf_surface_start(images[rows], best_norm[rows].clamp(max=eps) / 2, generators)
                boundary = _Boundary(model, labels[rows], targets[rows, rank], threat)
                found, norm = fab_run(boundary, images[rows], start, threat.steps)
                better = norm < best_norm[rows]
                best[rows[better]] = found[better]
                best_norm[rows[better]] = norm[better]
        within = best_norm <= eps
        return torch.where(_rows(within, images), best, images).detach()
