"""Registries fill themselves: every module of a registry package is imported once, and importing a module
registers what it defines. So adding a method or an attack is adding one module to its package."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

NOT_MEMBERS = ("base", "suites", "sanity", "threat", "losses")  # shared machinery, not registrations


def import_members(package: str, path: Iterable[str]) -> list[str]:
    """Import every module of `package` (its `__path__`) except the shared ones; their names, sorted."""
    names = sorted(info.name for info in pkgutil.iter_modules(list(path))
                   if not info.name.startswith("_") and info.name not in NOT_MEMBERS)
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
