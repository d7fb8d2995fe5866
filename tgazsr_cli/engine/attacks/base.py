"""Threat model, attack registry and the pieces every L-inf attack shares."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import torch
from torch import nn

from tgazsr_cli.engine.errors import UsageError, unknown_name

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
MAX_EPS = 64.0  # in /255: beyond this an "imperceptible" threat model is meaningless, likely a unit slip


@dataclass(frozen=True)
class ThreatModel:
    """An L-inf threat model. eps and step_size are in /255 units, as the paper writes them."""

    eps: float = 1.0
    steps: int = 100
    step_size: float = 1.0
    restarts: int = 1
    random_start: bool = True
    precision: Precision = "fp32"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.eps <= MAX_EPS:
            raise UsageError(f"eps must be in [0, {MAX_EPS:g}] (units of 1/255), got {self.eps:g}")
        if self.steps < 0 or self.steps > 10_000:
            raise UsageError(f"attack steps must be in [0, 10000], got {self.steps}")
        if not 0 < self.step_size <= MAX_EPS:
            raise UsageError(f"step size must be in (0, {MAX_EPS:g}] (units of 1/255), got {self.step_size:g}")
        if self.restarts < 1:
            raise UsageError(f"restarts must be >= 1, got {self.restarts}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"attack precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")

    @property
    def eps_pixels(self) -> float:
        return self.eps / 255.0

    @property
    def step_pixels(self) -> float:
        return self.step_size / 255.0

    def describe(self) -> dict[str, object]:
        return {**asdict(self), "norm": "Linf", "units": "1/255"}


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


ATTACKS: dict[str, Attack] = {}
ATTACK_HELP: dict[str, str] = {}


def register_attack(name: str, help_text: str) -> Callable[[Attack], Attack]:
    def decorate(attack: Attack) -> Attack:
        ATTACKS[name] = attack
        ATTACK_HELP[name] = help_text
        return attack

    return decorate


def get_attack(name: str) -> Attack:
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
