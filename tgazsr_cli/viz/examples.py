"""Write adversarial examples to disk for inspection: PNGs, one tensor file, and the predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tgazsr_cli.attacks import ThreatModel, resolve_attack
from tgazsr_cli.data import ImageClassificationData
from tgazsr_cli.models.classifier import ClipClassifier
from tgazsr_cli.runtime.atomic import atomic_save_tensors


@dataclass
class AttackSummary:
    num_examples: int
    clean_correct: int
    adversarial_correct: int
    max_perturbation: float  # in /255, measured on the saved float tensors
    tensor_file: Path
    predictions_file: Path


MIN_PNG_SIDE = 224  # small images (28x28 MNIST-like) are enlarged so that a viewer shows their pixels
LEGEND_HEIGHT = 48  # the strip under a difference image: a black-to-white ramp and what its ends mean
RAMP_HEIGHT = 10
LEGEND_TEXT = (200, 200, 200)  # light grey: readable on the black strip, never mistaken for the ramp's white


def enlarged(image: torch.Tensor) -> Any:
    """A [0, 1] CHW image as a PIL picture, enlarged by a whole factor (nearest neighbour: every pixel stays a
    square of one value) until its short side is at least MIN_PNG_SIDE."""
    from PIL import Image

    array = (image.clamp(0, 1).permute(1, 2, 0) * 255).round().to(torch.uint8).cpu().numpy()
    picture = Image.fromarray(array)
    factor = -(-MIN_PNG_SIDE // min(picture.size))  # ceil
    if factor > 1:
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)
    return picture


def save_png(image: torch.Tensor, path: Path) -> None:
    """A [0, 1] CHW image as an enlarged PNG (`enlarged`); the tensor file keeps the exact values."""
    enlarged(image).save(path)


def difference_caption(peak: float) -> str:
    """What the difference picture shows; `peak` is the largest change in [0, 1] units."""
    if peak <= 0:
        return "|adversarial - clean| per channel: no pixel changed (all black)"
    return (f"|adversarial - clean| per channel, stretched: black is no change, white the largest change "
            f"({peak * 255:.3g}/255)")


def with_legend(picture: Any, peak: float) -> Any:
    """`picture` above a strip with a black-to-white ramp labelled 0 and the largest change, and a caption
    saying that white is the largest change: without it, a stretched picture reads as a large perturbation."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("RGB", (picture.width, picture.height + LEGEND_HEIGHT))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    left, right, top = 8, picture.width - 9, picture.height + 5
    for x in range(left, right + 1):
        level = round(255 * (x - left) / (right - left))
        draw.line([(x, top), (x, top + RAMP_HEIGHT - 1)], fill=(level, level, level))
    draw.rectangle([left - 1, top - 1, right + 1, top + RAMP_HEIGHT], outline=(110, 110, 110))
    try:
        font: Any = ImageFont.load_default(size=11)
    except (TypeError, ImportError, OSError):  # a Pillow without FreeType: its small bitmap font
        font = ImageFont.load_default()
    labels = top + RAMP_HEIGHT + 2
    draw.text((left, labels), "0", fill=LEGEND_TEXT, font=font)
    draw.text((right, labels), f"{peak * 255:.3g}/255", fill=LEGEND_TEXT, font=font, anchor="ra")
    meaning = "white: the largest change" if peak > 0 else "no pixel changed"
    draw.text((picture.width // 2, labels + 14), meaning, fill=LEGEND_TEXT, font=font, anchor="ma")
    return canvas


def save_example_pngs(clean: torch.Tensor, adversarial: torch.Tensor, out_dir: Path, index: int) -> None:
    """NNNN-clean.png, NNNN-adversarial.png and NNNN-difference.png: |adversarial - clean| per channel,
    stretched so that the largest change is full white (an eps of 1/255 is invisible otherwise), above a legend
    strip saying so; the PNG's Description text holds the same caption."""
    from PIL.PngImagePlugin import PngInfo

    save_png(clean, out_dir / f"{index:04d}-clean.png")
    save_png(adversarial, out_dir / f"{index:04d}-adversarial.png")
    difference = (adversarial - clean).abs()
    peak = float(difference.max())
    info = PngInfo()
    info.add_text("Description", difference_caption(peak))
    picture = with_legend(enlarged(difference / peak if peak > 0 else difference), peak)
    picture.save(out_dir / f"{index:04d}-difference.png", pnginfo=info)


def attack_and_save(
    model: ClipClassifier,
    data: ImageClassificationData,
    out_dir: Path,
    *,
    attack: str,
    threat: ThreatModel,
    num_examples: int | None = None,
    indices: list[int] | None = None,
    batch_size: int = 64,
) -> AttackSummary:
    """Attack the examples at `indices` (else the first `num_examples`) of `data` with an attack or suite and
    save what came out; undecodable images are left out."""
    attack_fn = resolve_attack(attack)
    model.set_classes(data.classnames, data.templates)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    if indices is None:
        indices = list(range(min(num_examples or len(data.dataset), len(data.dataset))))
    items = [data.dataset[i] for i in indices]
    items = [item for item in items if item is not None]
    images = torch.stack([item[0] for item in items])
    labels = torch.tensor([int(item[1]) for item in items])
    device = model.mean.device
    adversarial = torch.cat([
        attack_fn(model, images[i : i + batch_size].to(device), labels[i : i + batch_size].to(device), threat,
                  torch.arange(i, min(i + batch_size, len(items))))
        for i in range(0, len(items), batch_size)
    ]).cpu()
    with torch.no_grad():
        clean_pred = model(images.to(device)).argmax(1).cpu()
        adv_pred = model(adversarial.to(device)).argmax(1).cpu()
    tensor_file = out_dir / "adversarial.safetensors"
    atomic_save_tensors(tensor_file, {"clean": images, "adversarial": adversarial, "labels": labels,
                                      "clean_pred": clean_pred, "adversarial_pred": adv_pred},
                        {"threat": json.dumps(threat.describe()), "attack": attack, "dataset": data.name})
    records = []
    for i, (label, clean, adv) in enumerate(zip(labels.tolist(), clean_pred.tolist(), adv_pred.tolist(), strict=True)):
        save_example_pngs(images[i], adversarial[i], out_dir, i)
        records.append({"index": i, "label": data.classnames[label], "clean_prediction": data.classnames[clean],
                        "adversarial_prediction": data.classnames[adv]})
    predictions_file = out_dir / "predictions.json"
    predictions_file.write_text(json.dumps({"attack": attack, "threat": threat.describe(), "dataset": data.name,
                                            "examples": records}, indent=2))
    return AttackSummary(
        num_examples=len(items),
        clean_correct=int((clean_pred == labels).sum()),
        adversarial_correct=int((adv_pred == labels).sum()),
        max_perturbation=float((adversarial - images).abs().max() * 255),
        tensor_file=tensor_file,
        predictions_file=predictions_file,
    )
