"""Adversarial example PNGs: small images enlarged by whole-pixel blocks, plus an amplified difference image
above a legend strip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tgazsr_cli.viz.examples import LEGEND_HEIGHT, MIN_PNG_SIDE, save_example_pngs


def test_pngs_are_enlarged_nearest_with_an_amplified_difference(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(3, 28, 28, generator=generator)
    adversarial = clean.clone()
    adversarial[0, 3, 5] += 1 / 255  # one channel of one pixel changed by 1/255, another by 0.5/255
    adversarial[2, 10, 20] -= 0.5 / 255
    save_example_pngs(clean, adversarial, tmp_path, 7)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["0007-adversarial.png", "0007-clean.png", "0007-difference.png"]
    shown = np.asarray(Image.open(tmp_path / "0007-clean.png"))
    factor = -(-MIN_PNG_SIDE // 28)
    assert shown.shape == (28 * factor, 28 * factor, 3) and factor == 8
    # every source pixel is a factor x factor block of one value, equal to the rounded source value
    expected = (clean.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(shown, np.repeat(np.repeat(expected, factor, axis=0), factor, axis=1))
    with Image.open(tmp_path / "0007-difference.png") as picture:
        difference = np.asarray(picture)
        caption = picture.text["Description"]
    side = 28 * factor
    assert difference.shape == (side + LEGEND_HEIGHT, side, 3)  # the picture, then its legend strip
    picture_part = difference[:side]
    assert picture_part[3 * factor, 5 * factor, 0] == 255  # the largest change is full white
    assert picture_part[10 * factor, 20 * factor, 2] == 128  # half of it, half way
    assert int(picture_part.sum()) == 255 * factor**2 + 128 * factor**2  # nothing else changed
    assert "white the largest change (1/255)" in caption


def test_large_images_keep_their_size_and_no_change_gives_a_black_difference(tmp_path: Path) -> None:
    clean = torch.rand(3, 240, 260, generator=torch.Generator().manual_seed(1))
    save_example_pngs(clean, clean.clone(), tmp_path, 0)
    assert Image.open(tmp_path / "0000-clean.png").size == (260, 240)
    with Image.open(tmp_path / "0000-difference.png") as picture:
        assert picture.size == (260, 240 + LEGEND_HEIGHT)
        assert not np.asarray(picture)[:240].any()
        assert "no pixel changed" in picture.text["Description"]
