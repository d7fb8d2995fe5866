"""TGA-ZSR (spec §3) and TeCoA, which is the same objective without the attention terms.

Loss = CE(adversarial) + alpha * L_AR + beta * L_AMC, where L_AR pulls the fine-tuned model's
attention on adversarial images towards the frozen model's attention on the clean images, and
L_AMC does the same for clean images. One forward of the trainable model covers adversarial and
clean images together; the teacher runs under no_grad (spec §9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tgazsr_cli.config.fields import NonNegative
from tgazsr_cli.methods.base import LossOutput, TrainingMethod, register_method

if TYPE_CHECKING:
    import torch

Distance = Literal["l2", "cos", "l1"]  # --Distance_metric
AttentionNorm = Literal["token-axis", "per-token"]  # token-axis: the reference's normalisation (spec §2)


@dataclass
class TgaZsrOptions:
    """spec §3; the reference's flags in brackets."""

    alpha: NonNegative = 0.08  # weight of L_AR, adversarial attention refinement (--Alpha)
    beta: NonNegative = 0.05  # weight of L_AMC, attention-based model constraint (--Beta)
    distance: Distance = "l2"
    attention_norm: AttentionNorm = "token-axis"
    upsample: bool = True  # compare maps at input resolution, as the reference does (spec §8.8)


@register_method
class TgaZsr(TrainingMethod):
    name = "tga-zsr"
    description = "Text-guided attention: adversarial CE + attention refinement (L_AR) + model constraint (L_AMC)"
    source = "Yu, Zhang & Xu, NeurIPS 2024 (arXiv 2410.21802)"
    Options = TgaZsrOptions

    def setup(self) -> None:
        super().setup()
        if self.options.alpha or self.options.beta:
            self.model.require_patch_tokens()
            self.teacher = self.model.frozen_image_copy()

    def attention(self, model, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from tgazsr_cli.models.attention import attention_for_labels

        return attention_for_labels(model, tokens, labels, self.options.attention_norm, self.options.upsample)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        import torch

        from tgazsr_cli.attacks.pgd import pgd
        from tgazsr_cli.methods.losses import attention_distance, zero_shot_cross_entropy

        settings = self.options
        adversarial = pgd(self.model, images, labels, self.train_threat)
        batch = images.shape[0]
        if not (settings.alpha or settings.beta):
            logits = self.model(adversarial)
            ce = zero_shot_cross_entropy(logits, labels)
            return LossOutput(ce, {"ce": ce.detach()})

        inputs = torch.cat([adversarial, images]) if settings.beta else adversarial
        tokens = self.model.encode_image_tokens(inputs)
        ce = zero_shot_cross_entropy(self.model.logits_from_embedding(tokens[:batch, 0]), labels)
        assert self.teacher is not None
        with torch.no_grad():
            target = self.attention(self.teacher, self.teacher.encode_image_tokens(images), labels)
        parts = {"ce": ce.detach()}
        total = ce
        if settings.alpha:
            refinement = attention_distance(self.attention(self.model, tokens[:batch], labels), target,
                                            settings.distance)
            total = total + settings.alpha * refinement
            parts["attention_refinement"] = refinement.detach()
        if settings.beta:
            constraint = attention_distance(self.attention(self.model, tokens[batch:], labels), target,
                                            settings.distance)
            total = total + settings.beta * constraint
            parts["attention_constraint"] = constraint.detach()
        parts["total"] = total.detach()
        return LossOutput(total, parts)


@register_method
class TeCoA(TrainingMethod):
    name = "tecoa"
    description = "Adversarial fine-tuning with CE over all class prompts (TGA-ZSR with alpha = beta = 0)"
    source = "Mao et al., ICLR 2023; run as in the TGA-ZSR authors' main.sh (lr 1e-5)"

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        from tgazsr_cli.attacks.pgd import pgd
        from tgazsr_cli.methods.losses import zero_shot_cross_entropy

        ce = zero_shot_cross_entropy(self.model(pgd(self.model, images, labels, self.train_threat)), labels)
        return LossOutput(ce, {"ce": ce.detach()})
