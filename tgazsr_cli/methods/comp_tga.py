"""Comp-TGA (Yu et al., TPAMI 2026; spec §2): the text-guided map times one minus the map of a negated prompt.

The complementary map down-weights regions that also match "This is not a photo of a {class}", and
is used wherever TGA-ZSR uses its map; defaults alpha 0.10, beta 0.07 (its recipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from tgazsr_cli.config.fields import Check
from tgazsr_cli.methods.base import register_method
from tgazsr_cli.methods.tga_zsr import TgaZsr, TgaZsrOptions

if TYPE_CHECKING:
    import torch


def _needs_placeholder(template: str) -> str | None:
    return None if "{}" in template else "needs '{}' for the class name"


@dataclass
class CompTgaOptions(TgaZsrOptions):
    negative_template: Annotated[str, Check(_needs_placeholder)] = "This is not a photo of a {}"


@register_method
class CompTga(TgaZsr):
    name = "comp-tga"
    description = "TGA-ZSR with complementary maps: text map x (1 - map of 'This is not a photo of a {}')"
    source = "Yu, Zhang & Xu, TPAMI 2026 (arXiv 2603.18598), Comp-TGA.py"
    Options = CompTgaOptions

    def setup(self) -> None:
        super().setup()
        self.negative_text = self.model.class_text_features(self.model.classnames, [self.options.negative_template])

    def attention(self, model, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from tgazsr_cli.models.attention import text_guided_attention

        settings = self.options
        size = (model.image_size, model.image_size) if settings.upsample else None
        positive = super().attention(model, tokens, labels)
        negative = text_guided_attention(tokens, self.negative_text[labels], model.patch_grid, size,
                                         settings.attention_norm)
        return positive * (1 - negative)
