"""The torch pieces every L-inf attack shares: eval mode, autocast, random start, projection."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch
from torch import nn

from tgazsr_cli.attacks.threat import Precision


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the attack in eval mode and give the model back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def autocast_for(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """Autocast for the forward pass only; losses are always taken in fp32 by the caller."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def noise_seed(seed: int, sample_id: int, restart: int = 0) -> int:
    """The seed of one image's random start: a pure function of (seed, sample id, restart index).

    Restart 0 keeps the historical formula, so single-restart results stay what they were; later restarts
    hash the triple (no two restarts or images share a stream)."""
    if restart == 0:
        return seed * 1_000_003 + sample_id
    digest = hashlib.blake2b(f"{seed}/pgd-restart{restart}/{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def random_start(
    images: torch.Tensor, eps: float, seed: int, sample_ids: torch.Tensor | None, restart: int = 0
) -> torch.Tensor:
    """Uniform noise in [-eps, eps], clipped so that images + noise stays in [0, 1].

    With `sample_ids` the noise of each image depends only on (seed, its id, `restart`), so a result does not
    depend on the evaluation batch size or order; without, it comes from torch's global RNG (training).
    """
    if sample_ids is None:
        noise = torch.rand_like(images)
    else:
        noise = torch.empty_like(images)
        generator = torch.Generator(device="cpu")
        for row, sample_id in enumerate(sample_ids.tolist()):
            generator.manual_seed(noise_seed(seed, int(sample_id), restart))
            noise[row] = torch.rand(images.shape[1:], generator=generator).to(images)
    delta = (2 * noise - 1) * eps
    return (images + delta).clamp(0, 1) - images


def project(images: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip a perturbation to the eps-ball and to the [0, 1] image box."""
    delta = delta.clamp(-eps, eps)
    return (images + delta).clamp(0, 1) - images
