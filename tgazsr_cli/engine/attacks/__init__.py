"""Attack registry: one module per attack, registered by name on import (spec §5)."""

from tgazsr_cli.engine.attacks import pgd as _pgd  # noqa: F401  (registers pgd, cw)
from tgazsr_cli.engine.attacks.base import (
    ATTACK_HELP,
    ATTACKS,
    PRECISIONS,
    Attack,
    ThreatModel,
    eval_mode,
    get_attack,
    register_attack,
)

__all__ = [
    "ATTACKS",
    "ATTACK_HELP",
    "PRECISIONS",
    "Attack",
    "ThreatModel",
    "eval_mode",
    "get_attack",
    "register_attack",
]
