"""UCAT (Lu, Tao, Zhang, Qiu, Yang & Zhao, ICML 2026, arXiv 2512.12997): uncertainty-calibrated AFT.

Cosine scores c = cos(f(x), T) are read as Dirichlet concentrations a = 1e-6 + exp((c + 1) / t),
t = `target_concentration`, and the adversarial Dirichlet is pulled towards the frozen model's clean
one with the reverse KL (adversarial first), next to TeCoA's CE:

    loss = CE(s * c_tar(x_a), y) + lambda * mean_i KL(Dir(a_tar(x_a)_i) || Dir(a_ori(x)_i)),
    lambda = tau / exp(softplus(2 / t)),

s the model's logit scale (100) and x_a TeCoA's PGD on the CE. Followed from the authors' code,
`VivienLu/UCAT` at e3bea1d, main.py: 353-355 (lambda from tau and t; the scores are logits / exp(logit
scale), i.e. cosines), 378-380 (PGD on the CE, attacks.py:18-61), 389-401 (concentrations, the KL
against the frozen model on the clean image, the total), defaults at 40-56 (batch 128, epochs 10, lr 1e-4,
wd 0, warmup 1000, momentum 0.9, train eps 1, 2 steps, step 1; test 1/255, 100 steps), 92 (t = 0.07) and
96 (tau = 1e5); README.md "Training" and main.sh use batch 256, which the recipes set.
The published repository does not run as is (main.py imports `attention_map`, `dpn_losses` and
`models.prompters`, which it does not contain); the parts above are complete without them.

Options where our code can differ from theirs, each defaulting to theirs: `kl_weight` (set lambda
directly), `kl_target` (main.py:392 also computes the fine-tuned model's clean scores but leaves them
unused; "clean" aligns to those instead of the frozen model's). The paper's body could not be read here,
so no paper-vs-code difference is claimed. As for every method here (spec §11) the attack takes gradients
with respect to the input only; the reference's attack also accumulates them into the weights' .grad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.distributions import Dirichlet, kl_divergence

from tgazsr_cli.attacks.pgd import pgd
from tgazsr_cli.errors import UsageError
from tgazsr_cli.methods.agft import cosine_scores
from tgazsr_cli.methods.base import LossOutput, TrainingMethod, register_method
from tgazsr_cli.methods.losses import zero_shot_cross_entropy

CONCENTRATION_FLOOR = 1e-6  # main.py:390 and 396
KL_TARGETS = ("frozen-clean", "clean")


@dataclass
class UcatOptions:
    target_concentration: float = 0.07  # main.py:92 --target_concentration (README and main.sh: 0.07)
    tau: float = 1e5  # main.py:96 --tau
    kl_weight: float | None = None  # None: tau / exp(softplus(2 / target_concentration)), main.py:354-355
    kl_target: str = "frozen-clean"  # frozen model on the clean image (main.py:394-397) | "clean": own clean

    def __post_init__(self) -> None:
        if self.target_concentration <= 0 or self.tau < 0:
            raise UsageError(f"method_options.target_concentration must be > 0 and tau >= 0, got "
                             f"{self.target_concentration:g} and {self.tau:g}")
        if self.kl_weight is not None and self.kl_weight < 0:
            raise UsageError(f"method_options.kl_weight must be >= 0 when set, got {self.kl_weight:g}")
        if self.kl_target not in KL_TARGETS:
            raise UsageError(f"method_options.kl_target must be one of {', '.join(KL_TARGETS)}, "
                             f"got '{self.kl_target}'")

    @property
    def weight(self) -> float:
        if self.kl_weight is not None:
            return self.kl_weight
        softplus = F.softplus(torch.tensor(2 / self.target_concentration, dtype=torch.float64)).item()
        return self.tau / math.exp(softplus)


def concentrations(cosines: torch.Tensor, temperature: float) -> torch.Tensor:
    """Dirichlet concentrations 1e-6 + exp((cos + 1) / t), fp32 (up to exp(2 / t), 2.6e12 at t = 0.07)."""
    return CONCENTRATION_FLOOR + torch.exp((cosines.float() + 1) / temperature)


def dirichlet_kl(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Batch mean of KL(Dir(alpha_i) || Dir(beta_i)) in closed form (torch.distributions)."""
    return kl_divergence(Dirichlet(alpha), Dirichlet(beta)).mean()


@register_method
class Ucat(TrainingMethod):
    name = "ucat"
    description = "Adversarial CE + reverse KL between Dirichlets read from adversarial and frozen clean scores"
    source = "Lu et al., ICML 2026 (VivienLu/UCAT main.py:353-401)"
    Options = UcatOptions

    def setup(self) -> None:
        super().setup()
        self.teacher = self.model.frozen_image_copy()

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        temperature = self.options.target_concentration
        adversarial = pgd(self.model, images, labels, self.train_threat)
        batch = len(images)
        if self.options.kl_target == "clean":
            scores = cosine_scores(self.model, torch.cat([adversarial, images]))
            adv_scores, reference = scores[:batch], scores[batch:]
        else:
            adv_scores = cosine_scores(self.model, adversarial)
            assert self.teacher is not None
            with torch.no_grad():
                reference = cosine_scores(self.teacher, images)
        ce = zero_shot_cross_entropy(self.model.logit_scale * adv_scores, labels)
        kl = dirichlet_kl(concentrations(adv_scores, temperature), concentrations(reference, temperature))
        total = ce + self.options.weight * kl
        return LossOutput(total, {"ce": ce.detach(), "dirichlet_kl": kl.detach(), "total": total.detach()})
