"""The random-noise baseline: uniform noise in [-eps, eps] (clipped to the [0, 1] box) added before classifying.

This is TTC with 0 counterattack steps, the authors' "RN" row (Sxing2/CLIP-Test-time-Counterattacks, code/
test_time_counterattack.py at 793fbff, lines 75-76 draw `delta.uniform_(-epsilon, epsilon)`, line 86 clips it to
the box, lines 89-90 return it when `attack_iters == 0`). It is randomised and differentiable: the noise does not
depend on the input, so the adaptive attack's gradient is exact and EOT averages it over noise draws.
"""

from __future__ import annotations

import torch
from torch import nn

from tgazsr_cli.defences.base import Defence
from tgazsr_cli.defences.registry import NoiseOptions


class NoiseDefence(Defence):
    name = "noise"
    randomized = True

    def __init__(self, classifier: nn.Module, eps: float = NoiseOptions.eps, seed: int = 0) -> None:
        super().__init__(classifier, seed)
        self.options = NoiseOptions(eps)
        self.eps = eps / 255.0

    def purify(self, images: torch.Tensor) -> torch.Tensor:
        delta = (2 * self.uniform(images) - 1) * self.eps
        return (images + delta).clamp(0, 1)


def build(classifier: nn.Module, options: NoiseOptions, seed: int = 0) -> Defence:
    return NoiseDefence(classifier, options.eps, seed)
