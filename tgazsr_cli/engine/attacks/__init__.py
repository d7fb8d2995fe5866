"""Attack registry: one module per attack, registered by name on import (spec §5)."""

from tgazsr_cli.engine.attacks import apgd as _apgd  # noqa: F401  (registers apgd-ce, apgd-dlr, apgd-t)
from tgazsr_cli.engine.attacks import fab as _fab  # noqa: F401  (registers fab-t)
from tgazsr_cli.engine.attacks import pgd as _pgd  # noqa: F401  (registers pgd, cw)
from tgazsr_cli.engine.attacks import square as _square  # noqa: F401  (registers square)
from tgazsr_cli.engine.attacks.base import (
    ATTACKS,
    Attack,
    AttackEntry,
    ThreatModel,
    eval_mode,
    get_attack,
    register_attack,
)
from tgazsr_cli.engine.attacks.sanity import sanity_checks
from tgazsr_cli.engine.attacks.suites import SUITE_HELP, SUITES, get_suite, resolve_attack, run_suite
from tgazsr_cli.engine.threat import PRECISIONS

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
