"""Small real image data generated on the fly, and an in-process CLI runner."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

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
