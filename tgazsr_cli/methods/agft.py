"""AGFT (Cui, Guan, Xiong & Zhang, CVPR 2026, arXiv 2603.29410): alignment-guided fine-tuning.

The frozen model's class probabilities on the clean image, at a lowered ("calibrated") temperature,
replace the one-hot label: with c = cos(f(x), T) over all class prompts,

    q = softmax(scale_ratio * s * c_ori(x)),   loss = mean_i CE(s * c_tar(x_a)_i, q_i),

s = `logit_scale` (the training logit scale, not the model's 100) and x_a PGD against the same
soft-target CE at scale s. Followed from the authors' code, `YuboCui/AGFT` at 0031a8f:
train.py:104-118 (teacher targets under no_grad at scale_ratio * logit_scale_train, attack on those
targets, CE with probability targets), clip_model.py:75-77 and 220-226 (the training scale is used in
"train" mode, which the training-time attack also runs in: train.py:213), attacks/pgd.py:55-78 (batch-mean
CE, random start, sign steps) and main.py:24 (defaults logit_scale 100, scale_ratio 1; the README's
training command, README.md:39, uses 180 and 0.4, which the recipes set). The paper's body could not be
read here (only its abstract), so no paper-vs-code difference is claimed; `attack_targets` is an ablation.

Two implementation differences with no option, as for every method here (spec §11): the attack takes
gradients with respect to the input only, and its loss is summed (its sign steps do not change). The cosines
are computed in fp32 with autocast off (`losses.cosine_scores`) and the soft targets and CEs after them stay fp32, so
a bf16 run (train.precision: bf16) scores the bf16 encoder's embeddings exactly as an fp32 run would score
the same embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tgazsr_cli.config.fields import Positive
from tgazsr_cli.methods.base import LossOutput, TrainingMethod, register_method

if TYPE_CHECKING:
    import torch



@dataclass
class AgftOptions:
    logit_scale: Positive = 100.0  # main.py:24 "logit_scale": 100 (README.md:39 trains with 180)
    scale_ratio: Positive = 1.0  # main.py:24 "scale_ratio": 1 (README.md:39 trains with 0.4)
    # What the training attack maximises: "soft" = the CE against the teacher's soft targets, as
    # train.py:113-115 passes them to PGD; "labels" = the CE against the hard labels (TeCoA's attack).
    attack_targets: Literal["soft", "labels"] = "soft"


@register_method
class Agft(TrainingMethod):
    name = "agft"
    description = "Adversarial CE against the frozen model's temperature-calibrated soft predictions"
    source = "Cui et al., CVPR 2026 (YuboCui/AGFT train.py:104-118)"
    Options = AgftOptions

    def setup(self) -> None:
        super().setup()
        self.teacher = self.model.frozen_image_copy()

    def soft_targets(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        from tgazsr_cli.methods.losses import cosine_scores

        assert self.teacher is not None
        scale = self.options.scale_ratio * self.options.logit_scale
        with torch.no_grad():
            return (scale * cosine_scores(self.teacher, images)).softmax(dim=1)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        import torch.nn.functional as F

        from tgazsr_cli.attacks.base import eval_mode
        from tgazsr_cli.attacks.pgd import maximize
        from tgazsr_cli.methods.losses import cosine_scores, soft_cross_entropy

        scale = self.options.logit_scale
        targets = self.soft_targets(images)
        attack_targets = targets if self.options.attack_targets == "soft" else labels

        def objective(perturbed: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(scale * cosine_scores(self.model, perturbed), attack_targets, reduction="sum")

        with eval_mode(self.model):
            adversarial = maximize(objective, images, self.train_threat)
        logits = scale * cosine_scores(self.model, adversarial)
        loss = soft_cross_entropy(logits, targets)
        agreement = (logits.argmax(1) == targets.argmax(1)).float().mean()
        return LossOutput(loss, {"soft_ce": loss.detach(), "teacher_agreement": agreement.detach()})
