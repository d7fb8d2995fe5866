"""FT-Clean and FT-Adv (spec §3, the reference's `FT.py`): in-batch CLIP contrastive fine-tuning.

The loss pairs each image with the prompt of its own label among the prompts of the batch's labels;
FT-Adv uses PGD images (the attack still maximises CE over all training classes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tgazsr_cli.methods.base import LossOutput, TrainingMethod, register_method

if TYPE_CHECKING:
    import torch


@register_method
class FtClean(TrainingMethod):
    name = "ft-clean"
    description = "Fine-tune the image tower with the in-batch CLIP contrastive loss on clean images"
    source = "TGA-ZSR authors' FT.py (--VPbaseline 1: no attack)"
    not_shardable = "its contrastive loss uses the other images of the batch as negatives"
    adversarial = False

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        from tgazsr_cli.attacks.pgd import pgd
        from tgazsr_cli.methods.losses import clip_contrastive

        if self.adversarial:
            images = pgd(self.model, images, labels, self.train_threat)
        contrastive = clip_contrastive(self.model.encode_image(images), self.model.text_features[labels],
                                       self.model.logit_scale)
        return LossOutput(contrastive, {"contrastive": contrastive.detach()})


@register_method
class FtAdv(FtClean):
    name = "ft-adv"
    description = "In-batch CLIP contrastive fine-tuning on PGD adversarial images"
    source = "TGA-ZSR authors' FT.py (--VPbaseline 0: PGD images)"
    adversarial = True
