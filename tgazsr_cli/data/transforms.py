"""Image transforms of spec §3, §6: RGB, resize (and centre crop), ToTensor; no normalisation or augmentation.

The model normalises inside (architecture: [0, 1] pixels in), so tensors stay in [0, 1] and attacks work in
pixel space. A dataset file's resize mode resizes with torchvision's default (bilinear, antialiased), as the
TGA-ZSR reference's `Resize` does; a protocol may ask for other sizes and bicubic (data/views.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision import transforms as T

from tgazsr_cli.data.specs import RESIZE_MODES
from tgazsr_cli.data.views import Preprocessing
from tgazsr_cli.errors import UsageError, did_you_mean


class ToRGB:
    """Convert any PIL mode (L, P, RGBA, CMYK, I;16) to RGB; a picklable class for DataLoader workers."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image if image.mode == "RGB" else image.convert("RGB")

    def __repr__(self) -> str:
        return "ToRGB()"


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
    return transform_for(Preprocessing.of_resize_mode(resize_mode), image_size)


def transform_for(preprocessing: Preprocessing, image_size: int) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> FloatTensor [3, H, W] in [0, 1] as `preprocessing` says, its sizes scaled to `image_size`.

    At native resolution only ToTensor runs: the model resizes inside (ClipClassifier.resize_inside).
    """
    if preprocessing.native_resolution:
        return T.Compose([ToRGB(), T.ToTensor()])
    steps = preprocessing.scaled(image_size)
    resize = list(steps.resize) if isinstance(steps.resize, tuple) else steps.resize
    mode = T.InterpolationMode.BICUBIC if steps.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    chain: list[Callable] = [ToRGB(), T.Resize(resize, interpolation=mode, antialias=steps.antialias)]
    if steps.crop is not None:
        chain.append(T.CenterCrop(steps.crop))
    chain.append(T.ToTensor())
    return T.Compose(chain)
