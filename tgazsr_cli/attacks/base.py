"""Threat model, attack registry and the pieces every L-inf attack shares."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from tgazsr_cli.attacks.threat import Precision, ThreatModel
from tgazsr_cli.errors import unknown_name


class Attack(Protocol):
    """An attack maps clean [0, 1] images to adversarial ones inside the threat model's eps-ball."""

    def __call__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        threat: ThreatModel,
        sample_ids: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class AttackEntry:
    """A registered attack: the function with what the listing and the suites need to know about it."""

    name: str
    run: Attack
    help: str
    min_classes: int = 2  # fewest classes its loss is defined for; a suite skips it (and says so) below that

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threat: ThreatModel,
                 sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.run(model, images, labels, threat, sample_ids)


ATTACKS: dict[str, AttackEntry] = {}


def register_attack(name: str, run: Attack, help: str, *, min_classes: int = 2) -> AttackEntry:
    """Add an attack to the registry (once per name); `run` has the `Attack` signature."""
    if name in ATTACKS:
        raise ValueError(f"attack '{name}' is already registered")
    entry = AttackEntry(name, run, help, min_classes)
    ATTACKS[name] = entry
    return entry


def get_attack(name: str) -> AttackEntry:
    if name not in ATTACKS:
        raise unknown_name("attack", name, ATTACKS)
    return ATTACKS[name]


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


def random_start(
    images: torch.Tensor, eps: float, seed: int, sample_ids: torch.Tensor | None
) -> torch.Tensor:
    """Uniform noise in [-eps, eps], clipped so that images + noise stays in [0, 1].

    With `sample_ids` the noise of each image depends only on (seed, its id), so a result does not
    depend on the evaluation batch size or order; without, it comes from torch's global RNG (training).
    """
    if sample_ids is None:
        noise = torch.rand_like(images)
    else:
        noise = torch.empty_like(images)
        generator = torch.Generator(device="cpu")
        for row, sample_id in enumerate(sample_ids.tolist()):
            generator.manual_seed(seed * 1_000_003 + int(sample_id))
            noise[row] = torch.rand(images.shape[1:], generator=generator).to(images)
    delta = (2 * noise - 1) * eps
    return (images + delta).clamp(0, 1) - images


def project(images: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Clip a perturbation to the eps-ball and to the [0, 1] image box."""
    delta = delta.clamp(-eps, eps)
    return (images + delta).clamp(0, 1) - images
