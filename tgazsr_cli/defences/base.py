"""The torch side every defence shares: a module wrapping a `ClipClassifier` ([0, 1] images in, logits out).

A defence is an input transformation followed by the classifier: `forward(x) = classifier(purify(x))`. `purify`
returns images in [0, 1] and is written for the adaptive attack: differentiable where the defence is, and
straight-through (BPDA, Athalye et al. 2018: the backward pass of a non-differentiable step is the identity)
where it is not. Randomness comes from the defence's own generator, seeded at construction (`reseed`), so a
defended evaluation is reproducible; the classifier runs in eval mode inside and gets its mode back after.
"""

from __future__ import annotations

import torch
from torch import nn

from tgazsr_cli.attacks.base import eval_mode


class Defence(nn.Module):
    """A defended classifier: `forward(images)` are the logits of the classifier on `purify(images)`."""

    name = "defence"
    randomized = False

    def __init__(self, classifier: nn.Module, seed: int = 0) -> None:
        super().__init__()
        self.classifier = classifier
        self.generator = torch.Generator(device="cpu")
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the defence's random stream (the same seed gives the same outputs)."""
        self.generator.manual_seed(int(seed))

    def uniform(self, like: torch.Tensor) -> torch.Tensor:
        """U[0, 1) noise shaped like `like`, drawn on the CPU from the defence's generator (device-independent)."""
        return torch.rand(like.shape, generator=self.generator).to(device=like.device, dtype=like.dtype)

    def purify(self, images: torch.Tensor) -> torch.Tensor:
        return images

    @property
    def mean(self) -> torch.Tensor:  # the device and dtype probes callers use on a ClipClassifier
        return self.classifier.mean

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with eval_mode(self.classifier):
            return self.classifier(self.purify(images))


class IdentityDefence(Defence):
    """No change to the input: a control for the two views and the adaptive machinery."""

    name = "identity"


def build_identity(classifier: nn.Module, options: object, seed: int = 0) -> Defence:
    return IdentityDefence(classifier, seed)
