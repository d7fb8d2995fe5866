"""Attack registry: one module per attack, registered by name on import (spec §5); every module of this
package is imported here, so a new attack is one new module."""

from tgazsr_cli.attacks.base import (
    ATTACKS,
    Attack,
    AttackEntry,
    ThreatModel,
    eval_mode,
    get_attack,
    register_attack,
)
from tgazsr_cli.attacks.sanity import sanity_checks
from tgazsr_cli.attacks.suites import SUITE_HELP, SUITES, get_suite, resolve_attack, run_suite
from tgazsr_cli.attacks.threat import PRECISIONS
from tgazsr_cli.runtime.registry import import_members

__all__ = [
    "ATTACKS",
    "PRECISIONS",
    "SUITES",
    "SUITE_HELP",
    "Attack",
    "AttackEntry",
    "ThreatModel",
    "eval_mode",
    "get_attack",
    "get_suite",
    "register_attack",
    "resolve_attack",
    "run_suite",
    "sanity_checks",
]

MEMBER_MODULES = import_members(__name__, __path__)
