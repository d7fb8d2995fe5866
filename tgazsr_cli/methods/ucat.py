"""UCAT (Lu, Tao, Zhang, Qiu, Yang & Zhao, ICML 2026, arXiv 2512.12997): uncertainty-calibrated AFT.

Cosine scores c = cos(f(x), T) are read as Dirichlet concentrations a = 1e-6 + exp((c + 1) / t),
t = `target_concentration`, and the adversarial Dirichlet is pulled towards the frozen model's clean
one with the reverse KL (adversarial first), next to TeCoA's CE:

    loss = CE(s * c_tar(x_a), y) + lambda * mean_i KL(Dir(a_tar(x_a)_i) || Dir(a_ori(x)_i)),
    lambda = tau / exp(softplus(2 / t)),

s the model's logit scale (100) and x_a TeCoA's PGD on the CE. Followed from the authors' code,
`VivienLu/UCAT` at e3bea1d, main.py:353-355 (lambda from tau and t; the scores are logits / exp(logit
scale), i.e. cosines), 378-380 (PGD on the CE, attacks.py:18-61), 389-401 (concentrations, the KL
against the frozen model on the clean image, the total), defaults at 40-56 (batch 128, epochs 10, lr 1e-4,
wd 0, warmup 1000, momentum 0.9, train eps 1, 2 steps, step 1; test 1/255, 100 steps), 92 (t = 0.07) and
96 (tau = 1e5); README.md:93 ("Training") and main.sh:22 use batch 256, which the recipes set.
The published repository does not run as is (main.py:22 and :28 import `attention_map` and `dpn_losses`, which
it does not contain; `models/prompters.py` is there); the parts above are complete without them.

Options where our code can differ from theirs, each defaulting to theirs: `kl_weight` (set lambda
directly), `kl_target` (main.py:392 also computes the fine-tuned model's clean scores, used only for a
logged accuracy at main.py:413; "clean" aligns to those instead of the frozen model's). The paper's body
could not be read here, so no paper-vs-code difference is claimed. As for every method here (spec §11) the
attack takes gradients with respect to the input only; the reference's attack also accumulates them into the
weights' .grad (attacks.py:47). The cosines are computed in fp32 with autocast off (losses.cosine_scores) and the CE,
concentrations and KL after them stay fp32, so a bf16 run scores the bf16 encoder's embeddings exactly as an
fp32 run would score the same embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tgazsr_cli.config.fields import NonNegative, Positive
from tgazsr_cli.methods.base import LossOutput, TrainingMethod, register_method

if TYPE_CHECKING:
    import torch


@dataclass
class UcatOptions:
    target_concentration: Positive = 0.07  # main.py:92 --target_concentration (README and main.sh: 0.07)
    tau: NonNegative = 1e5  # main.py:96 --tau
    kl_weight: NonNegative | None = None  # None: tau / exp(softplus(2 / target_concentration)), main.py:354-355
    # the frozen model on the clean image (main.py:394-397) | "clean": the fine-tuned model's own clean scores
    kl_target: Literal["frozen-clean", "clean"] = "frozen-clean"

    @property
    def weight(self) -> float:
        if self.kl_weight is not None:
            return self.kl_weight
        x = 2 / self.target_concentration
        softplus = x + math.log1p(math.exp(-x))  # log(1 + e^x), overflow-free for the large x of small t
        return self.tau / math.exp(softplus)


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
        import torch

        from tgazsr_cli.attacks.pgd import pgd
        from tgazsr_cli.methods.losses import concentrations, cosine_scores, dirichlet_kl, zero_shot_cross_entropy

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
