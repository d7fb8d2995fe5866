"""Contrastive pre-training of a CLIP from scratch on labelled images (builds the shipped mini CLIP).

Both towers and the temperature train. Each step pairs the batch's images with one prompt per
class (a template drawn at random from that class's dataset), the text tower encoding them with
gradient, and takes the image-to-text cross-entropy over all classes plus the text-to-image
cross-entropy over the batch images of each class present: a CLIP objective whose positives are
grouped by class, so duplicate classes in a batch are not pushed apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from tgazsr_cli.config.fields import Bounds, NonNegativeInt
from tgazsr_cli.methods.base import LossOutput, TrainingMethod, register_method

if TYPE_CHECKING:
    import torch
    from torch import nn


MAX_LOGIT_SCALE = 100.0


@dataclass
class PretrainOptions:
    text_to_image_weight: Annotated[float, Bounds(ge=0, le=1)] = 0.5
    # 0: every class's prompt each step; N: the batch's classes plus random others up to N (sampled negatives,
    # so that a thousand-class pre-training set does not pay for a thousand text-tower passes a step)
    prompts_per_step: NonNegativeInt = 0


@register_method
class ClipPretrain(TrainingMethod):
    name = "clip-pretrain"
    description = "Pre-train both towers contrastively on labelled images with random prompt templates"
    source = "tgazsr (after Radford et al., 2021); builds the shipped mini CLIP"
    not_shardable = "its contrastive loss uses the other images of the batch as negatives"
    Options = PretrainOptions

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.model.clip.parameters())

    def prompts(self, generator: torch.Generator | None = None, classes: list[int] | None = None) -> list[str]:
        import torch

        names = self.model.classnames
        per_class = self.class_templates or [self.recipe.data.templates] * len(names)
        chosen = range(len(names)) if classes is None else classes
        picks = [int(torch.randint(len(per_class[c]), (1,), generator=generator)) for c in chosen]
        return [per_class[c][pick].format(names[c]) for c, pick in zip(chosen, picks, strict=True)]

    def step_classes(self, labels: torch.Tensor) -> torch.Tensor | None:
        """The classes whose prompts this step encodes (sorted), or None for all of them."""
        import torch

        total, wanted = len(self.model.classnames), self.options.prompts_per_step
        if wanted <= 0 or wanted >= total:
            return None
        present = labels.unique().cpu()
        others = torch.ones(total, dtype=torch.bool)
        others[present] = False
        pool = others.nonzero().squeeze(1)
        extra = pool[torch.randperm(len(pool))[: max(0, wanted - len(present))]]
        return torch.cat([present, extra]).sort().values

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        import torch
        import torch.nn.functional as F

        clip = self.model.clip
        classes = self.step_classes(labels)
        if classes is None:
            prompts = self.prompts()
        else:
            prompts = self.prompts(classes=classes.tolist())
            labels = torch.searchsorted(classes.to(labels.device), labels)  # label -> its column among `classes`
        tokens = self.model.tokenizer(prompts).to(images.device)
        text = F.normalize(clip.encode_text(tokens).float(), dim=-1)
        image = F.normalize(self.model.encode_image(images).float(), dim=-1)
        scale = clip.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
        logits = scale * image @ text.t()  # [batch, classes]
        image_to_text = F.cross_entropy(logits, labels)
        present = labels.unique()
        positives = (labels[None, :] == present[:, None]).float()  # [present classes, batch]
        text_logits = logits.t()[present]
        text_to_image = -(positives * F.log_softmax(text_logits, dim=1)).sum(1).div(positives.sum(1)).mean()
        weight = self.options.text_to_image_weight
        total = (1 - weight) * image_to_text + weight * text_to_image
        return LossOutput(total, {"image_to_text": image_to_text.detach(), "text_to_image": text_to_image.detach(),
                                  "temperature": 1 / scale.detach(), "total": total.detach()})
