"""FARE (Schlarmann et al., ICML 2024; spec §4): unsupervised adversarial fine-tuning.

loss = mean_i || f_tar(x_a)_i - f_ori(x)_i ||², unnormalised image embeddings, where the inner
attack maximises that same loss (labels unused) with FARE's momentum PGD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from tgazsr_cli.config.fields import Bounds
from tgazsr_cli.methods.base import LossOutput, TrainingMethod, register_method

if TYPE_CHECKING:
    import torch


@dataclass
class FareOptions:
    attack_momentum: Annotated[float, Bounds(ge=0, le=1)] = 0.9  # of the inner attack's gradient


@register_method
class Fare(TrainingMethod):
    name = "fare"
    description = "Unsupervised: keep adversarial image embeddings close to the frozen model's clean ones"
    source = "Schlarmann et al., ICML 2024 (RobustVLM adversarial_training_clip.py)"
    Options = FareOptions

    def setup(self) -> None:
        super().setup()
        self.teacher = self.model.frozen_image_copy()

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        import torch

        from tgazsr_cli.attacks.base import eval_mode
        from tgazsr_cli.attacks.pgd import maximize
        from tgazsr_cli.methods.losses import embedding_l2_squared

        assert self.teacher is not None
        with torch.no_grad():
            target = self.teacher.encode_image(images)
        batch = len(images)

        def objective(perturbed: torch.Tensor) -> torch.Tensor:
            # summed so per-image gradients do not shrink with the batch size
            return embedding_l2_squared(self.model.encode_image(perturbed), target) * batch

        with eval_mode(self.model):
            adversarial = maximize(objective, images, self.train_threat, momentum=self.options.attack_momentum)
        loss = embedding_l2_squared(self.model.encode_image(adversarial), target)
        return LossOutput(loss, {"embedding_l2": loss.detach()})
