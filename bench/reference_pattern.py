"""The reference TGA-ZSR training step's computation pattern (method spec §3, §5, §9), for benchmarking.

Written from the method spec, not copied: it computes the same loss and the same update as our
engine, but the way the authors' script does it:

* every batch and every attack step tokenises all class prompts and runs the frozen text tower
  again, with a gradient graph (no caching, no no_grad);
* each attack step back-propagates into every parameter (`loss.backward()`), not just the input;
* the adversarial batch is encoded twice (once for the logits, once for the attention map), and
  the clean batch once more for the target's clean map;
* the frozen model is a full deep copy (text tower included) that runs with gradient graphs.

Two deliberate differences keep the result comparable with our engine, and cost nothing: the
random start is drawn as our PGD draws it (same RNG use), and parameter gradients left by the
attack are cleared before the real backward (the reference leaks them into the update, spec §11).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tgazsr_cli.models.classifier import ClipClassifier


@dataclass
class ReferenceSettings:
    eps: float = 1 / 255
    step_size: float = 1 / 255
    steps: int = 2
    alpha: float = 0.08
    beta: float = 0.05
    logit_scale: float = 100.0
    precision: str = "fp32"  # fp32 | bf16 (autocast over the whole step, as the reference's fp16 AMP)


class ReferenceStep:
    """One optimiser step of TGA-ZSR done the reference's way, on a ClipClassifier's open_clip model."""

    def __init__(self, classifier: ClipClassifier, prompts: list[str], settings: ReferenceSettings,
                 optimizer: torch.optim.Optimizer) -> None:
        self.classifier = classifier
        self.clip = classifier.clip
        self.frozen = copy.deepcopy(classifier.clip)  # whole model, graphs built for it every step
        self.prompts = prompts
        self.settings = settings
        self.optimizer = optimizer
        self.device = classifier.mean.device

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.settings.precision == "bf16")

    def text_features(self, clip: torch.nn.Module) -> torch.Tensor:
        """All class prompts, tokenised and encoded again (what the reference does on every call)."""
        tokens = self.classifier.tokenizer(self.prompts).to(self.device)
        return F.normalize(clip.encode_text(tokens).float(), dim=-1)

    def image_tokens(self, clip: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """[B, 1 + N, D]: ln_post and proj on every token (spec §1)."""
        visual = clip.visual
        x = visual._embeds(self.classifier.normalize(images))
        x = visual.transformer(x)
        if visual.final_ln_after_pool:
            tokens = torch.cat([visual.ln_post(x[:, :1]), x[:, 1:]], dim=1)
        else:
            tokens = visual.ln_post(x)
        return tokens @ visual.proj

    def logits(self, clip: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP forward with text: 100 * cos(image CLS, every class prompt), and the text features."""
        text = self.text_features(clip)
        image = F.normalize(self.image_tokens(clip, images)[:, 0].float(), dim=-1)
        return self.settings.logit_scale * image @ text.t(), text

    def attention(self, clip: torch.nn.Module, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Spec §2: token-axis normalisation, drop CLS, dot with the label's text, min-max, upsample 224."""
        tokens = F.normalize(self.image_tokens(clip, images).float(), dim=1)[:, 1:]
        scores = torch.einsum("bnd,bd->bn", tokens, text)
        low = scores.amin(dim=1, keepdim=True)
        maps = (scores - low) / (scores.amax(dim=1, keepdim=True) - low)
        side = round(maps.shape[1] ** 0.5)
        size = images.shape[-1]
        maps = F.interpolate(maps.view(-1, 1, side, side), size=(size, size), mode="bilinear", align_corners=False)
        return maps.flatten(1)

    def attack(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        settings = self.settings
        delta = (2 * torch.rand_like(images) - 1) * settings.eps  # the same draw as our PGD's random start
        delta = (images + delta).clamp(0, 1) - images
        for _ in range(settings.steps):
            delta.requires_grad_(True)
            with self.autocast():
                logits, _ = self.logits(self.clip, images + delta)
            loss = F.cross_entropy(logits.float(), labels)
            loss.backward()  # into delta AND every model parameter, as the reference does
            grad = delta.grad.detach()
            delta = (delta.detach() + settings.step_size * grad.sign()).clamp(-settings.eps, settings.eps)
            delta = (images + delta).clamp(0, 1) - images
        return (images + delta).detach()

    def step(self, images: torch.Tensor, labels: torch.Tensor, lr: float) -> float:
        settings = self.settings
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        self.clip.eval()
        adversarial = self.attack(images, labels)
        self.clip.train()
        self.optimizer.zero_grad(set_to_none=True)  # drop the attack's leaked gradients (see module doc)
        with self.autocast():
            logits, text = self.logits(self.clip, adversarial)  # text encoded again, with a graph
            label_text = text[labels]
            adv_map = self.attention(self.clip, adversarial, label_text)  # adversarial batch encoded again
            clean_map = self.attention(self.clip, images, label_text)
            frozen_map = self.attention(self.frozen, images, label_text)  # frozen model, graph and all
        ce = F.cross_entropy(logits.float(), labels)
        refinement = torch.linalg.vector_norm(adv_map.float() - frozen_map.float(), dim=1).mean()
        constraint = torch.linalg.vector_norm(clean_map.float() - frozen_map.float(), dim=1).mean()
        total = ce + settings.alpha * refinement + settings.beta * constraint
        total.backward()
        self.optimizer.step()
        return total.item()
