"""TTC, Test-Time Counterattacks (Xing, Moschoglou, Kotsia, Koniusz, Gritsenko; CVPR 2025), as the authors' code
does it: repository Sxing2/CLIP-Test-time-Counterattacks, file code/test_time_counterattack.py, read at commit
793fbff69cd7b63881e761e9a73a38e76b3ce5bf (the file last changed in f0f3eb0); "L" below are its lines.

Defaults (`TTCOptions`, run by the authors' TTC.sh with the same values):
- eps 4/255 (`--ttc_eps 4`, L55; divided by 255 at L354), the L-inf budget of the counterattack;
- 2 steps (`--ttc_numsteps 2`, L56), step size 1/255 (`--ttc_stepsize 1`, L57; /255 at L353);
- tau threshold 0.2 (`--tau_thres 0.2`, L53), beta 2 (`--beta 2`, L54).

The counterattack on images X (`tau_thres_weighted_counterattacks`, L68-159):
1. delta_0 ~ U[-eps, eps] (L75-76), clipped so that X + delta_0 stays in [0, 1] (L86; clamp of attacks.py:9-11).
   With 0 steps delta_0 is the answer (L89-90: random noise, the "RN" baseline; `defences/noise.py`).
2. tau = ||f(X + delta_0) - f(X)|| / ||f(X)|| on the unnormalised image embeddings f (L102-106, L115-117): how
   much the embedding moves under the random noise. (For fine-tuned checkpoints the authors take tau from the
   original CLIP's image tower, L92 and L367-371; here it always comes from the wrapped model.)
3. `steps` times: ascend the summed squared distance sum ||f(X + delta) - f(X)||^2 (L121-122) by a signed step of
   `step_size`, clip to the eps-ball (L128) and to the box (L133); every iterate delta_0..delta_K is kept
   (L108-109, L135).
4. Weights over the iterates (L139-150): s = sign(tau_thres - tau) (L119). Where s > 0 (the embedding hardly
   moves under noise: "falsely stable", the sign of an adversarial image) w_k = exp(beta k) / sum_j exp(beta j),
   favouring the last iterates; elsewhere w = (1, 0, ..., 0), i.e. only the random noise delta_0 (L146-149).
5. The defended input is X + sum_k w_k delta_k (L152); the model classifies it (L223-235 for clean images,
   L264-275 for attacked ones).

Differences, all deliberate: fp32 throughout (the authors' evaluation runs under fp16 autocast, L210); no resize to
224 (the images already have the model's input size; func.py:14-18 interpolates); the result is clamped to
[0, 1] (a convex combination of in-box points, so only float rounding is removed); the noise comes from the
defence's seeded generator.

For the adaptive attack: the steps use sign(gradient), whose derivative is zero almost everywhere, and the tau
test selects weights by a sign; neither carries a useful gradient, so `purify` is straight-through (BPDA) on the
counterattack: forward X + Delta(X), backward the identity. The noise makes TTC randomised: EOT applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tgazsr_cli.attacks.base import eval_mode
from tgazsr_cli.defences.base import Defence
from tgazsr_cli.defences.registry import TTCOptions


@dataclass
class Counterattack:
    """What one counterattack did, per image: the perturbation, tau, whether the counterattack was used."""

    delta: torch.Tensor  # [B, C, H, W], the weighted sum of the iterates
    tau: torch.Tensor  # [B], ||f(X + delta_0) - f(X)|| / ||f(X)||; nan with 0 steps
    attacked: torch.Tensor  # [B] bool, tau < tau_thres: the counterattack's iterates are weighted in
    weights: torch.Tensor  # [B, steps + 1]


def step_weights(sign: torch.Tensor, steps: int, beta: float) -> torch.Tensor:
    """L139-150: softmax(beta * k) over the iterates k = 0..steps where sign > 0, else all weight on k = 0."""
    k = torch.arange(steps + 1, device=sign.device, dtype=torch.float32).unsqueeze(0).expand(len(sign), -1)
    soft = torch.exp(sign.view(-1, 1).float() * k * beta)
    soft = soft / soft.sum(dim=1, keepdim=True)
    hard = torch.zeros_like(soft)
    hard[:, 0] = 1.0
    return torch.where(sign.unsqueeze(1) > 0, soft, hard)


def counterattack(model: nn.Module, images: torch.Tensor, noise: torch.Tensor,
                  options: TTCOptions = TTCOptions()) -> Counterattack:
    """The authors' counterattack of [0, 1] `images`; `noise` is U[0, 1) shaped like them (it makes delta_0)."""
    x = images.detach().float()
    eps, alpha = options.eps / 255.0, options.step_size / 255.0
    n = len(x)
    if eps <= 0:  # L72-73
        zero = torch.zeros_like(x)
        return Counterattack(zero, torch.full((n,), float("nan")), torch.zeros(n, dtype=torch.bool),
                             torch.ones(n, 1))
    delta = (2 * noise.to(x) - 1) * eps  # L76
    delta = torch.max(torch.min(delta, 1 - x), -x)  # L86
    if options.steps == 0:  # L89-90
        return Counterattack(delta, torch.full((n,), float("nan")), torch.zeros(n, dtype=torch.bool),
                             torch.ones(n, 1))
    iterates = [delta.clone()]
    with torch.enable_grad(), eval_mode(model):
        with torch.no_grad():
            reference = model.encode_image(x).float()  # L102-106
        for step in range(options.steps):
            delta.requires_grad_(True)
            moved = model.encode_image(x + delta).float()
            if step == 0:  # L115-117
                tau = ((moved - reference).norm(dim=-1) / reference.norm(dim=-1)).detach()
            loss = ((moved - reference) ** 2).sum(1).sum()  # L121
            (grad,) = torch.autograd.grad(loss, delta)  # L122
            stepped = torch.clamp(delta.detach() + alpha * grad.sign(), min=-eps, max=eps)  # L128
            delta = torch.max(torch.min(stepped, 1 - x), -x)  # L133
            iterates.append(delta.clone())  # L135
    sign = (options.tau_thres - tau).sign()  # L119
    weights = step_weights(sign, options.steps, options.beta)
    stacked = torch.stack(iterates, dim=1)  # L137
    combined = (weights.view(n, options.steps + 1, 1, 1, 1).to(stacked) * stacked).sum(dim=1)  # L152
    return Counterattack(combined.detach(), tau, sign > 0, weights)


class TTCDefence(Defence):
    name = "ttc"
    randomized = True

    def __init__(self, classifier: nn.Module, options: TTCOptions = TTCOptions(), seed: int = 0) -> None:
        super().__init__(classifier, seed)
        self.options = options
        self.last: Counterattack | None = None  # the last forward's counterattack (for inspection and tests)

    def purify(self, images: torch.Tensor) -> torch.Tensor:
        self.last = counterattack(self.classifier, images, self.uniform(images), self.options)
        countered = (images.detach() + self.last.delta.to(images.dtype)).clamp(0, 1)
        return images + (countered - images.detach())  # BPDA: forward the counterattacked image, backward identity


def build(classifier: nn.Module, options: TTCOptions, seed: int = 0) -> Defence:
    return TTCDefence(classifier, options, seed)
