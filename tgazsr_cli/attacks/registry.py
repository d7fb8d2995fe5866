"""What the attack registry holds: every attack and attack suite by name, declared without importing torch.

A built-in attack is declared here by its listing facts and where its function lives ("module:function"); the
module is imported the first time the attack runs, so `tgazsr attacks` and every usage error stay torch-free.
Code outside the package (a plugin, a notebook) registers a function directly with `register_attack`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tgazsr_cli.errors import unknown_name
from tgazsr_cli.runtime.registry import import_plugins, load_target

if TYPE_CHECKING:
    import torch
    from torch import nn

    from tgazsr_cli.attacks.threat import ThreatModel


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
    """A registered attack: its function (or "module:function", imported on first use) and listing facts."""

    name: str
    target: str | Attack
    help: str
    min_classes: int = 2  # fewest classes its loss is defined for; a suite skips it (and says so) below that
    _loaded: list[Attack] = field(default_factory=list, init=False, repr=False, compare=False)  # the imported run

    @property
    def run(self) -> Attack:
        if not self._loaded:
            self._loaded.append(load_target(self.target))
        return self._loaded[0]

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threat: ThreatModel,
                 sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.run(model, images, labels, threat, sample_ids)


ATTACKS: dict[str, AttackEntry] = {}


def register_attack(name: str, run: str | Attack, help: str, *, min_classes: int = 2) -> AttackEntry:
    """Add an attack (once per name); `run` has the `Attack` signature, or is "module:function" naming one."""
    if name in ATTACKS:
        raise ValueError(f"attack '{name}' is already registered")
    entry = AttackEntry(name, run, help, min_classes)
    ATTACKS[name] = entry
    return entry


def all_attacks() -> dict[str, AttackEntry]:
    """Every registered attack by name, plugins included."""
    import_plugins()
    return ATTACKS


def get_attack(name: str) -> AttackEntry:
    import_plugins()
    if name not in ATTACKS:
        raise unknown_name("attack", name, ATTACKS)
    return ATTACKS[name]


_HERE = "tgazsr_cli.attacks"
register_attack("pgd", f"{_HERE}.pgd:pgd_ce",
                "L-inf PGD on the cross-entropy over all class prompts (the paper's PGD-100)")
register_attack("cw", f"{_HERE}.pgd:pgd_cw",
                "L-inf PGD on the CW margin loss, kappa 50 (CW_KAPPA; the paper's 'CW' rows)")
register_attack("apgd-ce", f"{_HERE}.apgd:apgd_ce",
                "APGD on the cross-entropy (Croce & Hein 2020), step size adapted, best point kept")
register_attack("apgd-dlr", f"{_HERE}.apgd:apgd_dlr",
                "APGD on the DLR loss (Croce & Hein 2020), invariant to logit shift and scale", min_classes=3)
register_attack("apgd-t", f"{_HERE}.apgd:apgd_targeted",
                "targeted APGD on the targeted DLR loss over the top-9 (DEFAULT_TARGETS) other classes", min_classes=4)
register_attack("fab-t", f"{_HERE}.fab:fab_targeted",
                "targeted FAB (Croce & Hein 2020) over the top-9 (DEFAULT_TARGETS) other classes, minimal L-inf "
                "perturbation kept if within eps")
register_attack("square", f"{_HERE}.square:square",
                "Square Attack (Andriushchenko et al. 2020): gradient-free random search on the margin, query "
                "budget = steps")

SuiteStep = tuple[str, dict[str, Any]]

SUITES: dict[str, tuple[SuiteStep, ...]] = {
    # The paper's headline numbers (spec §5): PGD-100, step 1/255, random start, last iterate.
    "paper-pgd": (("pgd", {"steps": 100, "step_size": 1.0, "restarts": 1, "random_start": True}),),
    # The reference code's reduced AutoAttack: version 'standard' with attacks_to_run = apgd-ce, apgd-dlr.
    "paper-aa": (
        ("apgd-ce", {"steps": 100, "restarts": 1, "random_start": True}),
        ("apgd-dlr", {"steps": 100, "restarts": 1, "random_start": True}),
    ),
    # Standard AutoAttack: APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries).
    "autoattack": (
        ("apgd-ce", {"steps": 100, "restarts": 1, "random_start": True}),
        ("apgd-t", {"steps": 100, "restarts": 1, "random_start": True}),
        ("fab-t", {"steps": 100, "restarts": 1}),
        ("square", {"steps": 5000, "restarts": 1}),
    ),
}

SUITE_HELP: dict[str, str] = {
    "paper-pgd": "PGD-100, step 1/255 (the TGA-ZSR paper's evaluation)",
    "paper-aa": "APGD-CE + APGD-DLR, 100 iterations each (the reference code's reduced AutoAttack)",
    "autoattack": "standard AutoAttack: APGD-CE, APGD-T, FAB-T, Square-5000, each on the still-robust points",
}


def get_suite(name: str) -> tuple[SuiteStep, ...]:
    if name not in SUITES:
        raise unknown_name("attack suite", name, SUITES)
    return SUITES[name]


def check_attack_or_suite(name: str) -> None:
    """A usage error unless `name` is a registered attack or suite (no torch needed)."""
    import_plugins()
    if name not in ATTACKS and name not in SUITES:
        raise unknown_name("attack or attack suite", name, [*ATTACKS, *SUITES])


def check_attack_names(names: list[str]) -> list[str]:
    """The names in order without repeats, each a registered attack or suite (else a usage error)."""
    for name in names:
        check_attack_or_suite(name)
    return list(dict.fromkeys(names))

