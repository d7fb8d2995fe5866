"""Registries fill themselves: every module of a registry package is imported once, and importing a module
registers what it defines; folders named in $TGAZSR_PLUGIN_PATH add modules from outside the package."""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tgazsr_cli.errors import UsageError, first_line

NOT_MEMBERS = ("base", "losses")  # shared machinery of a registry package, not registrations
PLUGIN_PATH_ENV = "TGAZSR_PLUGIN_PATH"
_plugins_seen: set[Path] = set()
_plugin_path_done: list[str] = []  # the $TGAZSR_PLUGIN_PATH value whose folders were imported


def import_members(package: str, path: Iterable[str]) -> list[str]:
    """Import every module of `package` (its `__path__`) except the shared ones; their names, sorted."""
    names = sorted(info.name for info in pkgutil.iter_modules(list(path))
                   if not info.name.startswith("_") and info.name not in NOT_MEMBERS)
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


def load_target(target: str | Any) -> Any:
    """What a registry entry names: a callable as it is, or "package.module:name" imported on first use (so a
    registry can list its entries without importing the modules that compute, and torch with them)."""
    if callable(target):
        return target
    module, _, name = str(target).partition(":")
    return getattr(importlib.import_module(module), name)


def plugin_folders() -> list[Path]:
    """The folders of $TGAZSR_PLUGIN_PATH (os.pathsep-separated), in order."""
    return [Path(part).expanduser() for part in os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep) if part]


def import_plugins() -> list[Path]:
    """Import every `*.py` module of the plugin folders once (a plugin registers methods or attacks as the
    package's own modules do); the modules imported by this call. Registries call it on first lookup."""
    if _plugin_path_done == [os.environ.get(PLUGIN_PATH_ENV, "")]:
        return []
    _plugin_path_done[:] = [os.environ.get(PLUGIN_PATH_ENV, "")]
    imported = []
    for folder in plugin_folders():
        if not folder.is_dir():
            raise UsageError(f"{PLUGIN_PATH_ENV} names '{folder}', which is not a folder")
        for path in sorted(folder.glob("*.py")):
            key = path.resolve()
            if key in _plugins_seen:
                continue
            _plugins_seen.add(key)  # before running it: a plugin may import a registry that imports plugins
            spec = importlib.util.spec_from_file_location(f"tgazsr_plugins.{path.stem}", path)
            if spec is None or spec.loader is None:
                raise UsageError(f"cannot import plugin {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise UsageError(f"plugin {path} failed to load: {first_line(exc)}") from exc
            imported.append(path)
    return imported
