"""TGA-ZSR (spec §3) and TeCoA, which is the same objective without the attention terms.

Loss = CE(adversarial) + alpha * L_AR + beta * L_AMC, where L_AR pulls the fine-tuned model's
attention on adversarial images towards the frozen model's attention on the clean images, and
L_AMC does the same for clean images. One forward of the trainable model covers adversarial and
clean images together; the teacher runs under no_grad (spec §9).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tgazsr_cli.attacks.pgd import pgd
from tgazsr_cli.errors import UsageError
from tgazsr_cli.methods.base import LossOutput, TrainingMethod, register_method
from tgazsr_cli.methods.losses import DISTANCES, attention_distance, zero_shot_cross_entropy
from tgazsr_cli.models.attention import ATTENTION_NORMS, attention_for_labels


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"recipe key 'method_options.{key}' must be one of {', '.join(choices)}, got '{value}'")


def check_weight(key: str, value: float) -> None:
    if value < 0:
        raise UsageError(f"recipe key 'method_options.{key}' must be >= 0, got {value}")


@dataclass
class TgaZsrOptions:
    """spec §3; the reference's flags in brackets."""

    alpha: float = 0.08  # weight of L_AR, adversarial attention refinement (--Alpha)
    beta: float = 0.05  # weight of L_AMC, attention-based model constraint (--Beta)
    distance: str = "l2"  # l2 | cos | l1 (--Distance_metric)
    attention_norm: str = "token-axis"  # token-axis (the reference) | per-token
    upsample: bool = True  # compare maps at input resolution, as the reference does (spec §8.8)

    def __post_init__(self) -> None:
        check_weight("alpha", self.alpha)
        check_weight("beta", self.beta)
        check_choice("distance", self.distance, DISTANCES)
        check_choice("attention_norm", self.attention_norm, ATTENTION_NORMS)


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
        return attention_for_labels(model, tokens, labels, self.options.attention_norm, self.options.upsample)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
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
        ce = zero_shot_cross_entropy(self.model(pgd(self.model, images, labels, self.train_threat)), labels)
        return LossOutput(ce, {"ce": ce.detach()})
