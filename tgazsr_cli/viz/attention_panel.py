"""Attention panels: an image and its text-guided attention map, clean and adversarial, per model."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tgazsr_cli.attacks import ThreatModel, get_attack
from tgazsr_cli.errors import UsageError
from tgazsr_cli.models.attention import AttentionNorm, attention_for_labels
from tgazsr_cli.models.classifier import ClipClassifier

CAPTION_WIDTH = 30  # characters per title line: a quarter of the panel's width at font size 9


def read_image(path: Path, transform: Callable) -> torch.Tensor:
    """An image file as a [3, H, W] tensor in [0, 1], or a one-line error if it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            return transform(picture.convert("RGB"))
    except FileNotFoundError:
        raise UsageError(f"image '{path}' does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"cannot decode image '{path}': {exc}") from None


@dataclass
class PanelRow:
    """What one model saw: predictions and maps for the clean and the adversarial image."""

    name: str
    clean_image: torch.Tensor
    adversarial_image: torch.Tensor
    clean_map: torch.Tensor
    adversarial_map: torch.Tensor
    clean_prediction: str
    adversarial_prediction: str
    map_class: str
    map_shift: float = 0.0  # L2 distance between the clean and the adversarial map (the loss's L_AR distance)


def attention_row(
    name: str,
    model: ClipClassifier,
    image: torch.Tensor,
    classnames: list[str],
    templates: list[str],
    *,
    label: int | None,
    attack: str,
    threat: ThreatModel,
    norm: AttentionNorm = "token-axis",
) -> PanelRow:
    """Attack `image` against `model` and compute both attention maps towards the true (or predicted) class."""
    model.set_classes(classnames, templates)
    model.eval()
    device = model.mean.device
    clean = image.unsqueeze(0).to(device)
    with torch.no_grad():
        clean_pred = int(model(clean).argmax(1))
    target = torch.tensor([clean_pred if label is None else label], device=device)
    adversarial = get_attack(attack)(model, clean, target, threat, torch.zeros(1, dtype=torch.long))
    with torch.no_grad():
        adv_pred = int(model(adversarial).argmax(1))
        maps = attention_for_labels(model, model.encode_image_tokens(torch.cat([clean, adversarial])),
                                    target.repeat(2), norm)
    size = model.image_size
    maps = maps.view(2, size, size).cpu()
    return PanelRow(name, clean[0].cpu(), adversarial[0].cpu(), maps[0], maps[1],
                    classnames[clean_pred], classnames[adv_pred], classnames[int(target)],
                    float((maps[0] - maps[1]).flatten().norm()))


def draw_panel(rows: list[PanelRow], out_path: Path, title: str = "") -> Path:
    """One row per model: image, its attention, adversarial image, its attention (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 4, figsize=(10.6, 2.9 * len(rows) + 0.4), squeeze=False)
    heat_image = None  # what the colour bar explains: every map is drawn on the same 0..1 scale
    for axis_row, row in zip(axes, rows, strict=True):
        panels = [
            (row.clean_image, None, f"clean → {row.clean_prediction}"),
            (row.clean_image, row.clean_map, f"attention to '{row.map_class}'"),
            (row.adversarial_image, None, f"adversarial → {row.adversarial_prediction}"),
            (row.adversarial_image, row.adversarial_map, f"attention to '{row.map_class}'"),
        ]
        for axis, (picture, heat, caption) in zip(axis_row, panels, strict=True):
            axis.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy())
            if heat is not None:
                heat_image = axis.imshow(heat.numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axis.set_title(textwrap.fill(caption, CAPTION_WIDTH), fontsize=9)  # long class names wrap
            axis.set_xticks([])
            axis.set_yticks([])
        axis_row[0].set_ylabel(textwrap.fill(row.name, 2 * CAPTION_WIDTH), fontsize=9)
        axis_row[3].set_xlabel(f"map moved by {row.map_shift:.3f} (L2)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.93, 1))  # the right strip holds the colour bar
    if heat_image is not None:
        bar = fig.colorbar(heat_image, cax=fig.add_axes((0.94, 0.12, 0.012, 0.76)))
        bar.solids.set_alpha(1)
        bar.set_label("attention (normalised: 0 least, 1 most)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
