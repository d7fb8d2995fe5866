"""Attacks (spec §5): one module per attack, the torch-free threat model, named suites and sanity checks.

The registry (`attacks/registry.py`) names every attack and suite, and the suite-only members that run the official
AutoAttack (attacks/official.py), without importing torch; the functions that need torch (`run_suite`,
`resolve_attack`, `sanity_checks`, `eval_mode`) are imported on first use. Modules in $TGAZSR_PLUGIN_PATH may
register more attacks (imported on the first lookup).
"""

from __future__ import annotations

from tgazsr_cli.attacks.registry import (
    ATTACKS,
    SUITE_HELP,
    SUITE_MEMBERS,
    SUITES,
    Attack,
    AttackEntry,
    all_attacks,
    check_attack_names,
    check_attack_or_suite,
    get_attack,
    get_suite,
    register_attack,
    restarts_note,
)
from tgazsr_cli.attacks.threat import PRECISIONS, ThreatModel
from tgazsr_cli.runtime.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {  # these import torch: loaded on first use
    "eval_mode": ".base",
    "run_suite": ".suites",
    "resolve_attack": ".suites",
    "sanity_checks": ".sanity",
})


__all__ = [
    "ATTACKS",
    "PRECISIONS",
    "SUITES",
    "SUITE_HELP",
    "SUITE_MEMBERS",
    "Attack",
    "AttackEntry",
    "ThreatModel",
    "all_attacks",
    "check_attack_names",
    "check_attack_or_suite",
    "eval_mode",
    "get_attack",
    "get_suite",
    "register_attack",
    "resolve_attack",
    "restarts_note",
    "run_suite",
    "sanity_checks",
]
