"""Contrastive pre-training of a CLIP from scratch on labelled images (builds the shipped mini CLIP).

Both towers and the temperature train. Each step pairs the batch's images with one prompt per
class (a template drawn at random from that class's dataset), the text tower encoding them with
gradient, and takes the image-to-text cross-entropy over all classes plus the text-to-image
cross-entropy over the batch images of each class present: a CLIP objective whose positives are
grouped by class, so duplicate classes in a batch are not pushed apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tgazsr_cli.engine.methods.base import LossOutput, TrainingMethod, register_method

MAX_LOGIT_SCALE = 100.0


@dataclass
class PretrainOptions:
    text_to_image_weight: float = 0.5


@register_method
class ClipPretrain(TrainingMethod):
    name = "clip-pretrain"
    description = "Pre-train both towers contrastively on labelled images with random prompt templates"
    source = "tgazsr (after Radford et al., 2021); builds the shipped mini CLIP"
    not_shardable = "its contrastive loss uses the other images of the batch as negatives"
    Options = PretrainOptions

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.model.clip.parameters())

    def prompts(self, generator: torch.Generator | None = None) -> list[str]:
        names = self.model.classnames
        per_class = self.class_templates or [self.recipe.data.templates] * len(names)
        picks = [int(torch.randint(len(t), (1,), generator=generator)) for t in per_class]
        return [templates[pick].format(name) for name, templates, pick in zip(names, per_class, picks, strict=True)]

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        clip = self.model.clip
        tokens = self.model.tokenizer(self.prompts()).to(images.device)
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
