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
    uses_restarts: bool = True  # False: `threat.restarts` changes nothing (restarts_note says why)
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
SUITE_MEMBERS: dict[str, AttackEntry] = {}  # attacks only suites run: the official AutoAttack's, one per attack


def register_attack(name: str, run: str | Attack, help: str, *, min_classes: int = 2,
                    uses_restarts: bool = True) -> AttackEntry:
    """Add an attack (once per name); `run` has the `Attack` signature, or is "module:function" naming one.
    Pass `uses_restarts=False` for an attack that ignores `threat.restarts`, so listings and records say so."""
    if name in ATTACKS or name in SUITE_MEMBERS:
        raise ValueError(f"attack '{name}' is already registered")
    entry = AttackEntry(name, run, help, min_classes, uses_restarts)
    ATTACKS[name] = entry
    return entry


def _register_member(name: str, run: str, help: str, *, min_classes: int = 2, uses_restarts: bool = True) -> None:
    """An attack that runs only inside suites (not listed or accepted as an attack of its own)."""
    SUITE_MEMBERS[name] = AttackEntry(name, run, help, min_classes, uses_restarts)


def all_attacks() -> dict[str, AttackEntry]:
    """Every registered attack by name, plugins included."""
    import_plugins()
    return ATTACKS


def get_attack(name: str) -> AttackEntry:
    """A registered attack, or a suite-only member (what a suite step names)."""
    import_plugins()
    if name in SUITE_MEMBERS:
        return SUITE_MEMBERS[name]
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


# The official AutoAttack (fra31/auto-attack, PyPI `pyautoattack`, imported only when run: attacks/official.py),
# one member per attack of its run_standard_evaluation loop, so its suites keep our per-member records.
_register_member("official-apgd-ce", f"{_HERE}.official:official_apgd_ce", "official APGD-CE")
_register_member("official-apgd-dlr", f"{_HERE}.official:official_apgd_dlr", "official APGD-DLR", min_classes=3)
_register_member("official-apgd-t", f"{_HERE}.official:official_apgd_t",
                 "official APGD-T over the top-9 other classes (fewer when the model has fewer)", min_classes=4)
_register_member("official-fab-t", f"{_HERE}.official:official_fab_t",
                 "official FAB-T over the top-9 other classes; restarts ignored (AutoAttack runs FAB-T with 1)",
                 uses_restarts=False)
_register_member("official-square", f"{_HERE}.official:official_square", "official Square, query budget = steps")
_register_member("official-apgd-ce-rand", f"{_HERE}.official:official_apgd_ce_rand",
                 "official APGD-CE of version 'rand' (EOT over 20 draws per gradient)")
_register_member("official-apgd-dlr-rand", f"{_HERE}.official:official_apgd_dlr_rand",
                 "official APGD-DLR of version 'rand' (EOT over 20 draws per gradient)", min_classes=3)

# What `threat.restarts` means per attack (`restarts_note`): every attack runs later restarts only on the
# points no earlier one broke, and restart 0 is the single-restart attack.
RESTART_NOTES: dict[str, str] = {
    "pgd": "random starts, each keyed by (seed, sample id, restart); a point keeps the first restart that "
           "misclassifies it (restart 0 starts at random only with random_start, later ones always do)",
    "apgd-ce": "APGD runs from random starts; a point keeps a success, else the highest loss",
    "apgd-t": "APGD runs per target class, from random starts",
    "fab-t": "FAB runs per target class: the first from the clean image, later ones from random points at "
             "radius min(eps, smallest norm found) / 2",
    "square": "Square runs of `steps` queries each, with fresh random draws",
    "official-apgd-ce": "the official APGD's n_restarts (one global RNG stream seeded by seed)",
    "official-apgd-t": "the official APGD-T's n_restarts per target class",
    "official-fab-t": "ignored: the official AutoAttack sets FAB-T's n_restarts to 1",
    "official-square": "the official Square's n_restarts",
}
RESTART_NOTES["cw"] = RESTART_NOTES["pgd"]
RESTART_NOTES["apgd-dlr"] = RESTART_NOTES["apgd-ce"]
RESTART_NOTES["official-apgd-dlr"] = RESTART_NOTES["official-apgd-ce-rand"] = \
    RESTART_NOTES["official-apgd-dlr-rand"] = RESTART_NOTES["official-apgd-ce"]

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
    # The official code's version='standard' (pyautoattack autoattack.py, _set_version): the same four attacks.
    "autoattack-official": (
        ("official-apgd-ce", {"steps": 100, "restarts": 1}),
        ("official-apgd-t", {"steps": 100, "restarts": 1}),
        ("official-fab-t", {"steps": 100, "restarts": 1}),
        ("official-square", {"steps": 5000, "restarts": 1}),
    ),
    # RobustVLM's evaluation (chs20/RobustVLM@7de10ee2, CLIP_eval/clip_robustbench.py:149,289-291): version
    # 'custom' (no set_version: autoattack/autoattack.py:70-71), attacks_to_run ['apgd-ce', 'apgd-t'], APGD-CE
    # with its constructor's 5 restarts (autoattack.py:34), APGD-T with 1 restart (autoattack.py:47) over 9
    # targets (autopgd_base.py:596), 100 iterations (autoattack.py:15), eps 4/255 (clip_robustbench.py:38,94).
    "autoattack-official-custom": (
        ("official-apgd-ce", {"steps": 100, "restarts": 5}),
        ("official-apgd-t", {"steps": 100, "restarts": 1}),
    ),
    # The official version='rand' for randomised defences: APGD-CE, APGD-DLR, 1 restart, EOT over 20 draws.
    "autoattack-official-rand": (
        ("official-apgd-ce-rand", {"steps": 100, "restarts": 1}),
        ("official-apgd-dlr-rand", {"steps": 100, "restarts": 1}),
    ),
}

_OFFICIAL = "the official AutoAttack code (pip install \"tgazsr[autoattack]\"), fp32"
SUITE_HELP: dict[str, str] = {
    "paper-pgd": "PGD-100, step 1/255 (the TGA-ZSR paper's evaluation)",
    "paper-aa": "APGD-CE + APGD-DLR, 100 iterations each (the reference code's reduced AutoAttack)",
    "autoattack": "standard AutoAttack: APGD-CE, APGD-T, FAB-T, Square-5000, each on the still-robust points",
    "autoattack-official": f"version 'standard' of {_OFFICIAL}: APGD-CE, APGD-T, FAB-T, Square-5000",
    "autoattack-official-custom": f"RobustVLM's AutoAttack, {_OFFICIAL}: APGD-CE with 5 restarts, then APGD-T "
                                  "(run it with --eps 4)",
    "autoattack-official-rand": f"version 'rand' of {_OFFICIAL}, for randomised defences: APGD-CE, APGD-DLR, "
                                "EOT over 20 draws",
}


def get_suite(name: str) -> tuple[SuiteStep, ...]:
    if name not in SUITES:
        raise unknown_name("attack suite", name, SUITES)
    return SUITES[name]


def restarts_note(name: str) -> str:
    """What `threat.restarts` means for an attack, suite member or suite (torch-free, for listings and docs)."""
    if name in SUITES:
        members = ", ".join(f"{member} {overrides.get('restarts', 1)}" for member, overrides in get_suite(name))
        return f"set per member by the suite, --restarts ignored: {members}"
    entry = get_attack(name)
    if name in RESTART_NOTES:
        return RESTART_NOTES[name]
    return "restarts: defined by the attack" if entry.uses_restarts else "ignored"


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
