"""Vision-based attention variant of TGA-ZSR (paper Table 5; spec §3): Grad-CAM maps instead of text-guided ones.

By default the Grad-CAM maps are differentiable, so L_AR and L_AMC really train the model.
`method_options.detach_attention: true` reproduces the reference, whose numpy Grad-CAM is detached
and so trains with CE only (its Table 5 numbers match the CE-only ablation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tgazsr_cli.config.fields import NonNegative
from tgazsr_cli.methods.base import LossOutput, TrainingMethod, register_method
from tgazsr_cli.methods.tga_zsr import Distance

if TYPE_CHECKING:
    import torch


@dataclass
class VisionTgaOptions:
    alpha: NonNegative = 0.08  # weight of L_AR, as TGA-ZSR's
    beta: NonNegative = 0.05  # weight of L_AMC
    distance: Distance = "l2"
    upsample: bool = True  # compare maps at input resolution
    detach_attention: bool = False  # true: the reference's detached numpy Grad-CAM (trains with CE only)


@register_method
class VisionTga(TrainingMethod):
    name = "vision-tga"
    description = "TGA-ZSR with Grad-CAM (vision-based) attention maps instead of text-guided ones"
    source = "Yu, Zhang & Xu, NeurIPS 2024, Table 5 (--atten_methods visual)"
    Options = VisionTgaOptions

    def setup(self) -> None:
        super().setup()
        self.teacher = self.model.frozen_image_copy()

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        import torch

        from tgazsr_cli.attacks.pgd import pgd
        from tgazsr_cli.methods.losses import attention_distance, zero_shot_cross_entropy
        from tgazsr_cli.models.attention import gradcam_attention

        settings = self.options
        differentiable = not self.options.detach_attention
        adversarial = pgd(self.model, images, labels, self.train_threat)
        batch = len(images)
        text = self.model.text_features[labels]
        maps, embeddings = gradcam_attention(self.model, torch.cat([adversarial, images]), text,
                                             create_graph=differentiable, upsample=settings.upsample)
        assert self.teacher is not None
        target, _ = gradcam_attention(self.teacher, images, text, create_graph=False, upsample=settings.upsample)
        ce = zero_shot_cross_entropy(self.model.logits_from_embedding(embeddings[:batch]), labels)
        refinement = attention_distance(maps[:batch], target, settings.distance)
        constraint = attention_distance(maps[batch:], target, settings.distance)
        total = ce + settings.alpha * refinement + settings.beta * constraint
        return LossOutput(total, {"ce": ce.detach(), "attention_refinement": refinement.detach(),
                                  "attention_constraint": constraint.detach(), "total": total.detach()})
