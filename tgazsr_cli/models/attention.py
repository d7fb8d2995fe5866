"""Text-guided attention maps (spec §2): pure functions of image tokens and one text vector per image."""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

AttentionNorm = Literal["token-axis", "per-token"]
ATTENTION_NORMS: tuple[str, ...] = ("token-axis", "per-token")


def normalize_tokens(tokens: torch.Tensor, mode: AttentionNorm = "token-axis") -> torch.Tensor:
    """L2-normalise image tokens [B, 1 + N, D] before scoring them against text.

    "token-axis" divides each channel by its norm across the tokens (CLS included), as the reference
    code does (spec §2 step 2); "per-token" is the textbook choice, each token a unit vector.
    """
    if mode == "token-axis":
        return F.normalize(tokens, dim=1)
    if mode == "per-token":
        return F.normalize(tokens, dim=-1)
    raise ValueError(f"unknown attention normalisation '{mode}'; choose from {', '.join(ATTENTION_NORMS)}")


def minmax_per_image(scores: torch.Tensor) -> torch.Tensor:
    """Rescale each row of [B, N] scores to [0, 1] (spec §2 step 4).

    A flat row (max == min) has no spatial information: it maps to all zeros instead of the
    reference's 0/0 = NaN, and the guarded denominator keeps its gradient finite too.
    """
    low = scores.amin(dim=1, keepdim=True)
    spread = scores.amax(dim=1, keepdim=True) - low
    safe_spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    return (scores - low) / safe_spread


def text_guided_attention(
    tokens: torch.Tensor,
    text: torch.Tensor,
    grid: tuple[int, int],
    output_size: tuple[int, int] | None,
    norm: AttentionNorm = "token-axis",
) -> torch.Tensor:
    """Attention map of each image towards its own text vector, flattened: [B, H * W].

    tokens: [B, 1 + N, D] final projected tokens, CLS first; text: [B, D] normalised text embedding
    of each image's ground-truth prompt; grid: the (h, w) patch grid with h * w = N; output_size:
    bilinear upsampling target (the input resolution in the paper), or None to keep the grid.
    """
    if tokens.shape[1] != 1 + grid[0] * grid[1]:
        raise ValueError(f"expected 1 + {grid[0]}x{grid[1]} tokens, got {tokens.shape[1]}")
    patches = normalize_tokens(tokens.float(), norm)[:, 1:]  # spec §2 step 3: drop CLS after normalising
    scores = torch.einsum("bnd,bd->bn", patches, text.float().to(patches.device))
    maps = minmax_per_image(scores).view(-1, 1, *grid)
    if output_size is not None and tuple(output_size) != tuple(grid):
        maps = F.interpolate(maps, size=output_size, mode="bilinear", align_corners=False)
    return maps.flatten(1)


def attention_for_labels(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    labels: torch.Tensor,
    norm: AttentionNorm = "token-axis",
    upsample: bool = True,
) -> torch.Tensor:
    """Text-guided maps of a ClipClassifier's tokens towards each image's class prompt feature."""
    size = (model.image_size, model.image_size) if upsample else None
    return text_guided_attention(tokens, model.text_features[labels], model.patch_grid, size, norm)


def gradcam_attention(
    model: torch.nn.Module,
    images: torch.Tensor,
    text: torch.Tensor,
    *,
    create_graph: bool,
    upsample: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vision-based (Grad-CAM) attention of the reference's `--atten_methods visual` (spec §3).

    Activations: the last block's ln_1 output over the patch tokens. Scores: 100 * cos(CLS, text of
    every image in the batch); each image's target is the row's argmax (its *predicted* in-batch text).
    Channel weights: spatial mean of the gradients; map = ReLU(weighted sum), resized, min-max.
    With `create_graph` the map is differentiable in the model's parameters (our default); the
    reference computes it detached in numpy, so its attention losses carry no gradient.
    Returns (maps [B, P], CLS embeddings [B, D]); the embeddings keep their graph for other losses.
    """
    block = model.visual.transformer.resblocks[-1]
    captured: dict[str, torch.Tensor] = {}

    def keep_activation(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        if not output.requires_grad:  # frozen model: make the activation a leaf to differentiate against
            output = output.detach().requires_grad_(True)
        captured["activation"] = output
        return output

    handle = block.ln_1.register_forward_hook(keep_activation)
    # Fused attention kernels have no double backward; the differentiable map needs the math kernel.
    kernel = sdpa_kernel([SDPBackend.MATH]) if create_graph else contextlib.nullcontext()
    try:
        with torch.enable_grad(), kernel:
            embeddings = model.encode_image(images)
            scores = 100 * F.normalize(embeddings.float(), dim=-1) @ text.float().t()
            chosen = scores.gather(1, scores.argmax(dim=1, keepdim=True).detach()).sum()
            activation = captured["activation"]
            # the graph is kept: the caller still backpropagates through the returned embeddings
            (gradient,) = torch.autograd.grad(chosen, activation, create_graph=create_graph, retain_graph=True)
    finally:
        handle.remove()
    patches, patch_gradient = activation[:, 1:].float(), gradient[:, 1:].float()
    weights = patch_gradient.mean(dim=1, keepdim=True)
    cam = F.relu((weights * patches).sum(dim=-1)).view(-1, 1, *model.patch_grid)
    if upsample:
        cam = F.interpolate(cam, size=(model.image_size, model.image_size), mode="bilinear", align_corners=False)
    maps = minmax_per_image(cam.flatten(1))
    return (maps if create_graph else maps.detach()), embeddings
