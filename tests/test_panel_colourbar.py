"""The attention panel explains its colours: a colour bar from 0 (dark blue) to 1 (dark red) at its right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tgazsr_cli.viz.attention_panel import PanelRow, draw_panel


def test_panel_has_a_colour_bar_beside_the_maps(tmp_path: Path) -> None:
    image = torch.full((3, 28, 28), 0.5)
    heat = torch.linspace(0, 1, 28).repeat(28, 1)
    row = PanelRow("original", image, image, heat, heat, "a", "b", "a")
    path = draw_panel([row], tmp_path / "panel.png")
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    strip, maps = pixels[:, int(pixels.shape[1] * 0.93):], pixels[:, : int(pixels.shape[1] * 0.9)]

    def has(area: np.ndarray, colour: tuple[int, int, int]) -> bool:
        return bool((np.abs(area - np.array(colour)).sum(axis=2) <= 6).any())

    # jet at 0 and 1, unblended: only the bar shows them (the maps are drawn half transparent over the image)
    assert has(strip, (0, 0, 128)) and has(strip, (128, 0, 0))
    assert not has(maps, (0, 0, 128)) and not has(maps, (128, 0, 0))
