"""Test-time defences (one module each) and the attacks that see them (`adaptive.py`).

The registry (`defences/registry.py`) names every defence and its typed settings without importing torch; a
defence module is imported when the defence is built. `docs/defences.md` says what each view measures.
"""

from __future__ import annotations

from tgazsr_cli.defences.registry import (
    DEFENCES,
    NO_DEFENCE,
    VIEWS,
    DefenceEntry,
    NoiseOptions,
    TTCOptions,
    check_defence,
    get_defence,
    register_defence,
)
from tgazsr_cli.runtime.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {  # these import torch: loaded on first use
    "Defence": ".base",
    "robust_under": ".adaptive",
    "adaptive_attack": ".adaptive",
})

__all__ = [
    "DEFENCES",
    "NO_DEFENCE",
    "VIEWS",
    "Defence",
    "DefenceEntry",
    "NoiseOptions",
    "TTCOptions",
    "adaptive_attack",
    "check_defence",
    "get_defence",
    "register_defence",
    "robust_under",
]
