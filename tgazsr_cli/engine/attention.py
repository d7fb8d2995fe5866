"""Text-guided attention maps (spec §2): pure functions of image tokens and one text vector per image."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

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
