"""The text-guided attention map of spec §2, checked against hand-computed values."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tgazsr_cli.models.attention import minmax_per_image, normalize_tokens, text_guided_attention


def hand_map(tokens: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Spec §2 written out loop by loop, for one image: normalise per channel across all tokens."""
    n_tokens, dim = tokens.shape
    normed = torch.empty_like(tokens)
    for channel in range(dim):
        column = tokens[:, channel]
        normed[:, channel] = column / column.pow(2).sum().sqrt()
    scores = torch.tensor([float(normed[i] @ text) for i in range(1, n_tokens)])
    return (scores - scores.min()) / (scores.max() - scores.min())


def test_map_matches_hand_computation_at_grid_resolution() -> None:
    torch.manual_seed(0)
    tokens = torch.randn(3, 1 + 4, 8)
    text = F.normalize(torch.randn(3, 8), dim=-1)
    maps = text_guided_attention(tokens, text, grid=(2, 2), output_size=None)
    for i in range(3):
        torch.testing.assert_close(maps[i], hand_map(tokens[i], text[i]))


def test_small_worked_example() -> None:
    # Two channels, CLS + 2x1 patches. Channel norms across tokens: ch0 sqrt(1+4+0)=sqrt5, ch1 sqrt(0+1+9)=sqrt10.
    tokens = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]]])
    text = torch.tensor([[1.0, 0.0]])
    maps = text_guided_attention(tokens, text, grid=(2, 1), output_size=None)
    # scores: patch0 = 2/sqrt5 ~ 0.894, patch1 = 0 -> min-max gives [1, 0]
    torch.testing.assert_close(maps, torch.tensor([[1.0, 0.0]]))


def test_token_axis_differs_from_per_token_normalisation() -> None:
    torch.manual_seed(1)
    tokens = torch.randn(2, 5, 6)
    text = F.normalize(torch.randn(2, 6), dim=-1)
    token_axis = text_guided_attention(tokens, text, (2, 2), None, "token-axis")
    per_token = text_guided_attention(tokens, text, (2, 2), None, "per-token")
    assert not torch.allclose(token_axis, per_token)
    torch.testing.assert_close(normalize_tokens(tokens, "per-token").norm(dim=-1), torch.ones(2, 5))
    torch.testing.assert_close(normalize_tokens(tokens, "token-axis").norm(dim=1), torch.ones(2, 6))


def test_upsampling_is_bilinear_to_the_requested_size() -> None:
    torch.manual_seed(2)
    tokens = torch.randn(2, 1 + 9, 4)
    text = F.normalize(torch.randn(2, 4), dim=-1)
    small = text_guided_attention(tokens, text, (3, 3), None)
    big = text_guided_attention(tokens, text, (3, 3), (12, 12))
    assert big.shape == (2, 144)
    expected = F.interpolate(small.view(2, 1, 3, 3), size=(12, 12), mode="bilinear", align_corners=False)
    torch.testing.assert_close(big, expected.flatten(1))
    assert big.min() >= 0 and big.max() <= 1


def test_flat_map_gives_zeros_and_finite_gradient() -> None:
    scores = torch.full((2, 9), 0.3, requires_grad=True)
    out = minmax_per_image(scores)
    assert torch.equal(out, torch.zeros(2, 9))
    out.sum().backward()
    assert torch.isfinite(scores.grad).all()
    # a flat image (identical patch tokens) through the whole map
    tokens = torch.ones(1, 5, 3, requires_grad=True)
    maps = text_guided_attention(tokens, torch.tensor([[1.0, 0.0, 0.0]]), (2, 2), (8, 8))
    maps.sum().backward()
    assert torch.isfinite(maps).all() and torch.isfinite(tokens.grad).all()


def test_model_tokens_give_maps_of_input_size(tiny_model, batch) -> None:
    from tgazsr_cli.models.attention import attention_for_labels

    images, labels = batch
    tokens = tiny_model.encode_image_tokens(images)
    assert tokens.shape == (6, 50, 32)
    torch.testing.assert_close(tokens[:, 0], tiny_model.encode_image(images))
    maps = attention_for_labels(tiny_model, tokens, labels)
    assert maps.shape == (6, 28 * 28)
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    grid_maps = attention_for_labels(tiny_model, tokens, labels, upsample=False)
    assert grid_maps.shape == (6, 49)
    torch.testing.assert_close(grid_maps.amax(dim=1), torch.ones(6))
    torch.testing.assert_close(grid_maps.amin(dim=1), torch.zeros(6))
