"""PMG-AFT (Wang et al., CVPR 2024; spec §4): CE plus two KL terms guided by the pre-trained model.

loss = CE(z_tar(x_a), y) + w_ori * KL(p_ori(x_a) || p_tar(x_a)) + w_clean * KL(p_tar(x) || p_tar(x_a)),
KL summed over the batch as the reference's KLDivLoss(reduction="sum"). The frozen branch sees the
adversarial image; the clean branch is the trainable model on clean images, with gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tgazsr_cli.config.fields import NonNegative
from tgazsr_cli.methods.base import LossOutput, TrainingMethod, register_method

if TYPE_CHECKING:
    import torch


@dataclass
class PmgAftOptions:
    kl_original_weight: NonNegative = 1.0
    kl_clean_weight: NonNegative = 1.0
    # The reference re-normalises the scaled text embedding, so its logits are raw cosines
    # (temperature 1) in training and in its attacks; true reproduces that, false uses 100 * cos.
    raw_cosine_logits: bool = False


@register_method
class PmgAft(TrainingMethod):
    name = "pmg-aft"
    description = "Adversarial CE + KL to the frozen model on adversarial images + KL to own clean predictions"
    source = "Wang et al., CVPR 2024 (PMG_AFT.py)"
    not_shardable = "its KL terms are sums over the batch"
    Options = PmgAftOptions

    def setup(self) -> None:
        super().setup()
        if self.options.raw_cosine_logits:
            self.model.logit_scale = 1.0
        self.teacher = self.model.frozen_image_copy()
        self.teacher.logit_scale = self.model.logit_scale

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        import torch

        from tgazsr_cli.attacks.pgd import pgd
        from tgazsr_cli.methods.losses import kl_divergence_sum, zero_shot_cross_entropy

        adversarial = pgd(self.model, images, labels, self.train_threat)
        batch = len(images)
        logits = self.model(torch.cat([adversarial, images]))
        adv_logits, clean_logits = logits[:batch], logits[batch:]
        assert self.teacher is not None
        with torch.no_grad():
            original_logits = self.teacher(adversarial)
        ce = zero_shot_cross_entropy(adv_logits, labels)
        kl_original = kl_divergence_sum(original_logits, adv_logits)
        kl_clean = kl_divergence_sum(clean_logits, adv_logits)
        total = ce + self.options.kl_original_weight * kl_original + self.options.kl_clean_weight * kl_clean
        return LossOutput(total, {"ce": ce.detach(), "kl_original": kl_original.detach(),
                                  "kl_clean": kl_clean.detach(), "total": total.detach()})
