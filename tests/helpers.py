"""Small real image data generated on the fly, and an in-process CLI runner."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

if TYPE_CHECKING:
    import torch

COLOURS = {"red": (220, 40, 40), "blue": (40, 70, 220), "green": (40, 180, 60), "yellow": (230, 210, 40)}


def draw_shape(shape: str, colour: tuple[int, int, int], size: int, offset: int) -> Image.Image:
    image = Image.new("RGB", (size, size), (245, 245, 240))
    draw = ImageDraw.Draw(image)
    box = (4 + offset, 4 + offset, size - 8 + offset, size - 8 + offset)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    else:
        draw.rectangle(box, fill=colour)
    return image


def make_image_folder(root: Path, per_class: int = 6, size: int = 32) -> list[str]:
    """root/<colour shape>/<i>.png for 4 classes; returns the class names in sorted (label) order."""
    classes = [("red", "circle"), ("blue", "square"), ("green", "circle"), ("yellow", "square")]
    names = []
    for colour, shape in classes:
        name = f"{colour} {shape}"
        folder = root / name.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape(shape, COLOURS[colour], size, i % 4).save(folder / f"{i}.png")
        names.append(name)
    return sorted(names)


@contextmanager
def during_step(step: int, event: Callable[[], None]) -> Iterator[None]:
    """Inside the block, `event()` happens as the trainer starts the step it is at `step` (before its attack):
    raising KeyboardInterrupt is Ctrl-C landing in that step; the real step is back after the block."""
    from tgazsr_cli.training.loop import Trainer

    real_step = Trainer.train_step

    def with_event(self: Trainer, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.step == step:
            event()
        return real_step(self, images, labels)

    Trainer.train_step = with_event  # type: ignore[method-assign]
    try:
        yield
    finally:
        Trainer.train_step = real_step  # type: ignore[method-assign]


def ctrl_c_at_step(step: int) -> contextlib.AbstractContextManager[None]:
    """Ctrl-C landing in the step the trainer starts at `step`."""

    def interrupt() -> None:
        raise KeyboardInterrupt

    return during_step(step, interrupt)


def quarter_means(values: list[float]) -> list[float]:
    size = len(values) // 4
    return [sum(values[i * size:(i + 1) * size]) / size for i in range(4)]


def assert_attention_refinement_falls(run_dir: Path, seed: int) -> None:
    """Every step logged; L_AR's last quarter below 0.93 x its early peak and CE's below 0.8 x its first."""
    import json

    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, len(lines) + 1)) and len(lines) >= 100
    refinement = quarter_means([line["attention_refinement"] for line in lines])
    ce = quarter_means([line["ce"] for line in lines])
    print(f"seed {seed}: L_AR quarter means {refinement}, CE quarter means {ce}")
    assert refinement[3] < 0.93 * max(refinement[:3]), refinement
    assert ce[3] < 0.8 * ce[0], ce
