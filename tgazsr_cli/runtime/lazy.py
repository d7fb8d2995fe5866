"""Names a package exports without importing their modules until first use (PEP 562 module `__getattr__`), so
that importing the package stays free of torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, modules: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `modules` maps each exported name to the module that defines it
    (relative to `package` when it starts with a dot)."""

    def __getattr__(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(modules[name], package), name)

    return __getattr__
