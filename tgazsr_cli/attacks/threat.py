"""The L-inf threat model, validated without importing torch (so a bad --eps fails at once)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from tgazsr_cli.errors import UsageError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
LossReduction = Literal["sum", "mean"]
LOSS_REDUCTIONS: tuple[str, ...] = ("sum", "mean")
MAX_EPS = 64.0  # in /255: beyond this an "imperceptible" threat model is meaningless, likely a unit slip


@dataclass(frozen=True)
class ThreatModel:
    """An L-inf threat model. eps and step_size are in /255 units, as the paper writes them.

    `restarts`: random starts per attack, each only on the points no earlier one broke (attacks/registry.py says
    what they mean per attack). `loss_reduction`: how pgd and cw reduce their loss over the batch before taking
    its gradient; "sum" keeps per-sample gradients at full size, "mean" reproduces references that take a
    batch-mean CE, whose tiny per-sample gradients underflow under fp16 autocast (a weaker attack). The other
    attacks follow their own references (per-sample losses, summed) and ignore it.
    """

    eps: float = 1.0
    steps: int = 100
    step_size: float = 1.0
    restarts: int = 1
    random_start: bool = True
    precision: Precision = "fp32"
    seed: int = 0
    loss_reduction: LossReduction = "sum"

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
        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise UsageError(f"attack loss reduction must be one of {', '.join(LOSS_REDUCTIONS)}, "
                             f"got '{self.loss_reduction}'")

    @property
    def eps_pixels(self) -> float:
        return self.eps / 255.0

    @property
    def step_pixels(self) -> float:
        return self.step_size / 255.0

    def describe(self) -> dict[str, object]:
        return {**asdict(self), "norm": "Linf", "units": "1/255"}
