"""Square Attack, L-inf (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient
black-box adversarial attack via random search", ECCV 2020), written from the paper's Algorithm 1.

Score-based random search on the margin z_y - max_{j != y} z_j; it never takes a gradient, so it is the
member of an ensemble that still works when gradients are masked. Start: vertical stripes of +-eps
per column and channel. Each query changes one random square window to +-eps per channel; the change
is kept when it lowers the margin. The square's area is a share p of the image, p_init halved at the
paper's schedule (iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of 10000, rescaled to the
query budget). The query budget is `threat.steps`. Each sample draws its windows and signs from its
own seeded generator and stops once misclassified, so results do not depend on the batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tgazsr_cli.attacks.apgd import sample_generators, sample_ids_or_positions, seeded_uniform
from tgazsr_cli.attacks.base import autocast_for, eval_mode
from tgazsr_cli.attacks.threat import ThreatModel

P_INIT = 0.8  # AutoAttack's standard L-inf value
HALVING_POINTS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # of 10000 iterations (paper §3)
SIGN_TRIES = 4  # redraws of the window's signs when a draw would leave the image unchanged
CHUNK = 100  # iterations of random draws generated at once per sample
CHANGE_TOL = 1e-7


def square_fraction(p_init: float, iteration: int, n_queries: int) -> float:
    """The share p of pixels in the square at `iteration`, halved at the paper's points (rescaled)."""
    scaled = int(iteration / max(n_queries, 1) * 10000)
    return p_init / 2 ** sum(scaled > point for point in HALVING_POINTS)


def square_side(p: float, height: int, width: int) -> int:
    return min(max(round(math.sqrt(p * height * width)), 1), height, width)


def margins(model: nn.Module, points: torch.Tensor, labels: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
    """z_y - max_{j != y} z_j in fp32 (negative means misclassified)."""
    with torch.no_grad(), autocast_for(points.device, threat.precision):
        logits = model(points)
    logits = logits.float()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return true - others


def _window_masks(draws: torch.Tensor, side: int, height: int, width: int) -> torch.Tensor:
    """[n, 1, H, W] masks of one side x side window per sample, top-left corner from U[0, 1) draws."""
    top = (draws[:, 0] * (height - side + 1)).floor().long().clamp(max=height - side)
    left = (draws[:, 1] * (width - side + 1)).floor().long().clamp(max=width - side)
    rows = torch.arange(height, device=draws.device)[None, :]
    cols = torch.arange(width, device=draws.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def _proposal(images: torch.Tensor, best: torch.Tensor, draws: torch.Tensor, side: int, eps: float) -> torch.Tensor:
    """best with one window set to +-eps per channel, using the first sign draw that changes something."""
    n, channels, height, width = images.shape
    mask = _window_masks(draws, side, height, width)
    signs = torch.where(draws[:, 2:].view(n, SIGN_TRIES, channels) > 0.5, 1.0, -1.0).to(images.dtype)
    proposal = best
    settled = torch.zeros(n, dtype=torch.bool, device=images.device)
    for attempt in range(SIGN_TRIES):
        candidate = torch.where(mask, (images + eps * signs[:, attempt, :, None, None]).clamp(0, 1), best)
        changed = (candidate - best).abs().flatten(1).amax(dim=1) > CHANGE_TOL
        take = changed & ~settled
        proposal = torch.where(take.view(-1, 1, 1, 1), candidate, proposal)
        settled |= changed
    return proposal


def square_run(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    threat: ThreatModel,
    generators: list[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Square Attack run with `threat.steps` queries: the lowest-margin point per sample and its margin."""
    _, channels, height, width = images.shape
    eps, n_queries = threat.eps_pixels, threat.steps
    stripes = seeded_uniform((channels, 1, width), generators, images.device)
    best = (images + eps * torch.where(stripes > 0.5, 1.0, -1.0)).clamp(0, 1)
    margin = margins(model, best, labels, threat)
    draws = torch.empty(0)
    for iteration in range(n_queries - 1):
        if iteration % CHUNK == 0:
            draws = seeded_uniform((CHUNK, 2 + SIGN_TRIES * channels), generators, images.device)
        active = (margin >= 0).nonzero().squeeze(1)
        if len(active) == 0:
            break
        side = square_side(square_fraction(P_INIT, iteration, n_queries), height, width)
        proposal = _proposal(images[active], best[active], draws[active, iteration % CHUNK], side, eps)
        new_margin = margins(model, proposal, labels[active], threat)
        improved = new_margin < margin[active]
        best[active[improved]] = proposal[improved]
        margin[active[improved]] = new_margin[improved]
    return best, margin


def square(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    threat: ThreatModel,
    sample_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Lowest-margin points found by `threat.restarts` Square runs, each only on points still robust."""
    images = images.detach()
    if threat.eps == 0 or threat.steps == 0 or len(images) == 0:
        return images.clone()
    ids = sample_ids_or_positions(sample_ids, len(images))
    best = images.clone()
    margin = torch.full((len(images),), float("inf"), device=images.device)
    with eval_mode(model):
        for restart in range(threat.restarts):
            rows = (margin >= 0).nonzero().squeeze(1)
            if len(rows) == 0:
                break
            generators = sample_generators(threat.seed, f"square/restart{restart}", [ids[i] for i in rows.tolist()])
            found, found_margin = square_run(model, images[rows], labels[rows], threat, generators)
            better = found_margin < margin[rows]
            best[rows[better]] = found[better]
            margin[rows[better]] = found_margin[better]
    return best
