"""What the defence registry holds: every test-time defence by name, declared without importing torch.

A defence wraps a `ClipClassifier` ([0, 1] images in, logits out) and returns a module with the same contract
(`defences/base.py`). A built-in defence is declared here by its listing facts, its typed settings and where its
factory lives ("module:function", called as `factory(classifier, options, seed)`); the module is imported the
first time the defence is built, so checking `--defence` and its settings stays torch-free.

An evaluation with a defence reports two views of every attack (`VIEWS`):
- `non-adaptive`: the attack is crafted on the undefended model and the defended model classifies the result;
- `adaptive`: the attack runs through the defence (BPDA where a step is not differentiable, EOT over its
  randomness); see `defences/adaptive.py` and docs/defences.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from tgazsr_cli.config.fields import Bounds, NonNegative, NonNegativeInt, Positive, build_section
from tgazsr_cli.errors import unknown_name
from tgazsr_cli.runtime.registry import load_target

if TYPE_CHECKING:
    from torch import nn

NO_DEFENCE = "none"
VIEWS = ("non-adaptive", "adaptive")
Radius = Annotated[float, Bounds(ge=0, le=64, unit="1/255")]


@dataclass(frozen=True)
class TTCOptions:
    """TTC's settings; defaults are the authors' (Sxing2/CLIP-Test-time-Counterattacks, code/
    test_time_counterattack.py at 793fbff, lines given in defences/ttc.py)."""

    eps: Radius = 4.0  # --ttc_eps 4 (/255), line 55
    steps: NonNegativeInt = 2  # --ttc_numsteps 2, line 56 (0: random noise only, lines 89-90)
    step_size: Positive = 1.0  # --ttc_stepsize 1 (/255), line 57
    tau_thres: NonNegative = 0.2  # --tau_thres 0.2, line 53
    beta: NonNegative = 2.0  # --beta 2, line 54


@dataclass(frozen=True)
class NoiseOptions:
    """The random-noise baseline (TTC with 0 steps, the authors' "RN", lines 89-90): uniform noise in +-eps."""

    eps: Radius = 4.0


@dataclass(frozen=True)
class NoOptions:
    """A defence without settings."""


@dataclass(frozen=True)
class DefenceEntry:
    """A registered defence: its factory (or "module:function", imported on first use) and listing facts."""

    name: str
    target: str | Any
    help: str
    options: type = NoOptions
    randomized: bool = False  # draws randomness at test time: the adaptive view averages gradients (EOT)
    _loaded: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def factory(self) -> Any:
        if not self._loaded:
            self._loaded.append(load_target(self.target))
        return self._loaded[0]

    def settings(self, values: dict[str, Any] | None = None) -> Any:
        """The typed options from a mapping (recipe `eval.defence_options`); unknown keys and bad values are
        usage errors."""
        return build_section(self.options, dict(values or {}), "eval.defence_options.")

    def build(self, classifier: nn.Module, values: dict[str, Any] | None = None, seed: int = 0) -> nn.Module:
        return self.factory(classifier, self.settings(values), seed)


DEFENCES: dict[str, DefenceEntry] = {}


def register_defence(name: str, factory: str | Any, help: str, *, options: type = NoOptions,
                     randomized: bool = False) -> DefenceEntry:
    """Add a defence (once per name); `factory(classifier, options, seed)` returns the defended module."""
    if name in DEFENCES or name == NO_DEFENCE:
        raise ValueError(f"defence '{name}' is already registered")
    entry = DefenceEntry(name, factory, help, options, randomized)
    DEFENCES[name] = entry
    return entry


def get_defence(name: str) -> DefenceEntry:
    if name not in DEFENCES:
        raise unknown_name("defence", name, [NO_DEFENCE, *DEFENCES])
    return DEFENCES[name]


def check_defence(name: str, values: dict[str, Any] | None = None) -> None:
    """A usage error unless `name` is 'none' or a registered defence whose options `values` are valid."""
    if name == NO_DEFENCE:
        if values:
            raise _options_without_defence()
        return
    get_defence(name).settings(values)


def _options_without_defence() -> Exception:
    from tgazsr_cli.errors import UsageError

    return UsageError("eval.defence_options are given but eval.defence is none; name the defence (--defence)")


_HERE = "tgazsr_cli.defences"
register_defence("ttc", f"{_HERE}.ttc:build", "Test-Time Counterattacks (Xing et al., CVPR 2025): a 2-step "
                 "PGD away from the image's own embedding, used where the embedding barely moves under random "
                 "noise (tau test)", options=TTCOptions, randomized=True)
register_defence("noise", f"{_HERE}.noise:build", "random-noise baseline: uniform noise in +-eps/255 before "
                 "classifying (TTC with 0 steps, the authors' RN)", options=NoiseOptions, randomized=True)
register_defence("identity", f"{_HERE}.base:build_identity", "no change to the input: a control (both views "
                 "then equal the undefended evaluation)")
