"""Image transforms of spec §3, §6: RGB, resize (and centre crop), ToTensor; no normalisation or augmentation.

The model normalises inside (architecture: [0, 1] pixels in), so tensors stay in [0, 1] and attacks work in
pixel space. Resizing uses torchvision's default (bilinear, antialiased), as the reference's `Resize` does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision import transforms as T

from tgazsr_cli.data.specs import RESIZE_MODES
from tgazsr_cli.errors import UsageError, did_you_mean


class ToRGB:
    """Convert any PIL mode (L, P, RGBA, CMYK, I;16) to RGB; a picklable class for DataLoader workers."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image if image.mode == "RGB" else image.convert("RGB")

    def __repr__(self) -> str:
        return "ToRGB()"


def resize_size(image_size: int, resize_mode: str) -> int | tuple[int, int]:
    """The Resize argument: the short side round(s*256/224) for resize_crop, (s, s) for resize."""
    return round(image_size * 256 / 224) if resize_mode == "resize_crop" else (image_size, image_size)


def check_transform_args(image_size: int, resize_mode: str) -> None:
    """UsageError for a non-positive size or an unknown resize mode."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise UsageError(f"image size must be a positive integer, got {image_size!r}")
    if resize_mode not in RESIZE_MODES:
        raise UsageError(f"unknown resize mode '{resize_mode}'{did_you_mean(resize_mode, RESIZE_MODES)}; "
                         f"choose from: {', '.join(RESIZE_MODES)}")


def build_transform(image_size: int, resize_mode: str) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> FloatTensor [3, s, s] in [0, 1].

    "resize_crop": Resize(round(s*256/224)) + CenterCrop(s) (Resize 256 + CenterCrop 224 at s=224, spec §3);
    "resize": Resize((s, s)) (CIFAR-10/100, STL-10 in spec §6).
    """
    check_transform_args(image_size, resize_mode)
    steps: list[Callable] = [ToRGB(), T.Resize(resize_size(image_size, resize_mode))]
    if resize_mode == "resize_crop":
        steps.append(T.CenterCrop(image_size))
    steps.append(T.ToTensor())
    return T.Compose(steps)
