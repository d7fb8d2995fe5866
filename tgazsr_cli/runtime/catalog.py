"""What the method and attack registries hold, read from their modules' source without importing them.

`tgazsr methods` and `tgazsr attacks` should answer in about the time `--help` does, but importing a registry
imports torch (2.5 s here). The facts a listing shows are literals in each module: a registered method class's
`name`, `description` and `source`, and each `register_attack("name", run, "help", min_classes=k)` call; so
they are read with `ast`. tests/test_registries.py checks that this reading equals the imported registries.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tgazsr_cli.runtime.registry import NOT_MEMBERS
from tgazsr_cli.runtime.resources import package_path


@dataclass(frozen=True)
class Declared:
    name: str
    help: str
    source: str = ""
    min_classes: int = 2


def _modules(package: str) -> list[tuple[Path, ast.Module]]:
    folder = package_path(package)
    paths = sorted(p for p in folder.glob("*.py") if not p.stem.startswith("_") and p.stem not in NOT_MEMBERS)
    return [(path, ast.parse(path.read_text(encoding="utf-8"), str(path))) for path in paths]


def _literal(node: ast.AST | None) -> object:
    return ast.literal_eval(node) if node is not None else None


def declared_methods() -> list[Declared]:
    """Every `@register_method` class: (name, description, source), sorted by name."""
    found = []
    for _, module in _modules("methods"):
        for node in module.body:
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(d, ast.Name) and d.id == "register_method" for d in node.decorator_list):
                facts = {target.id: _literal(item.value) for item in node.body if isinstance(item, ast.Assign)
                         for target in item.targets if isinstance(target, ast.Name)
                         and target.id in ("name", "description", "source")}
                found.append(Declared(str(facts["name"]), str(facts.get("description", "")),
                                      str(facts.get("source", ""))))
    return sorted(found, key=lambda d: d.name)


def declared_attacks() -> list[Declared]:
    """Every module-level `register_attack(...)` call: (name, help, fewest classes), sorted by name."""
    found = []
    for _, module in _modules("attacks"):
        for node in module.body:
            call = node.value if isinstance(node, ast.Expr) else None
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "register_attack":
                keywords = {k.arg: _literal(k.value) for k in call.keywords}
                found.append(Declared(str(_literal(call.args[0])), str(_literal(call.args[2])),
                                      min_classes=int(keywords.get("min_classes", 2))))  # type: ignore[arg-type]
    return sorted(found, key=lambda d: d.name)


def declared_suites() -> dict[str, str]:
    """The attack suites' one-line help (`SUITE_HELP` in attacks/suites.py)."""
    module = ast.parse(package_path("attacks", "suites.py").read_text(encoding="utf-8"))
    for node in module.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "SUITE_HELP":
            return dict(_literal(node.value))  # type: ignore[arg-type]
    return {}
