"""Recipes from files: built-in names, YAML parsing, `extends:`, `--set key=value` overrides, explicit flags.

Settings resolve as: built-in defaults < recipe file < `--set` overrides < explicit flags. Nothing here imports
torch or knows the training methods. YAML is read with a safe loader that refuses a key given twice in one
mapping (plain YAML keeps the last one silently, so a stale `lr:` further down would win unseen).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tgazsr_cli.config.fields import build_section
from tgazsr_cli.config.legacy import upgrade_legacy_layout
from tgazsr_cli.config.recipe import Recipe
from tgazsr_cli.errors import UsageError, did_you_mean
from tgazsr_cli.runtime.resources import package_path

RECIPES_DIR = package_path("recipes")  # inside the package; the top-level recipes/ links here


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one YAML mapping: its dotted path and both (1-based) line numbers."""

    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(f"key '{key}' appears twice (lines {first} and {second})")
        self.key, self.first, self.second = key, first, second


def _find_duplicate(loader: yaml.SafeLoader, node: yaml.Node, path: str, seen: set[int]) -> None:
    """Raise DuplicateKey for the first key repeated in any mapping under `node` (depth first, in file order)."""
    if id(node) in seen:  # an alias of a node already walked (and a guard against recursive anchors)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: YAML lets later keys override a merge
                continue
            key = loader.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else None
            name = f"{path}.{key}" if path else str(key)
            line = key_node.start_mark.line + 1
            if key is not None and not isinstance(key, (list, dict)):
                if key in lines:
                    raise DuplicateKey(name, lines[key], line)
                lines[key] = line
            _find_duplicate(loader, value_node, name, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _find_duplicate(loader, item, f"{path}[{index}]", seen)


def safe_load_unique(text: str) -> Any:
    """yaml.safe_load that raises DuplicateKey for a key given twice in one mapping, at any depth."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _find_duplicate(loader, node, "", set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def find_recipe(name_or_path: str) -> Path:
    """A recipe file: a path, or a name under recipes/ (`tiny`, `paper/tga-zsr-vitb32-tinyimagenet`)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    stem = name_or_path.removesuffix(".yaml")
    candidates = sorted(RECIPES_DIR.rglob("*.yaml")) if RECIPES_DIR.is_dir() else []
    for candidate in candidates:
        relative = candidate.relative_to(RECIPES_DIR).with_suffix("").as_posix()
        if stem in (relative, candidate.stem):
            return candidate
    names = [c.relative_to(RECIPES_DIR).with_suffix("").as_posix() for c in candidates]
    raise UsageError(f"no recipe file or built-in recipe '{name_or_path}'{did_you_mean(stem, names)}")


def read_recipe_file(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Parse a recipe YAML safely; `extends: NAME` merges a parent recipe under this one."""
    path = path.resolve()
    if path in _seen:
        raise UsageError(f"recipe '{path}' extends itself through {' -> '.join(p.name for p in _seen)}")
    try:
        data = safe_load_unique(path.read_text(encoding="utf-8")) or {}
    except DuplicateKey as exc:
        raise UsageError(f"recipe '{path}': {exc}; keep one") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"recipe '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read recipe '{path}': {exc.strerror}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"recipe '{path}' must be a YAML mapping")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    local = path.parent / str(parent)
    parent_path = local if local.is_file() else find_recipe(str(parent))
    base = read_recipe_file(parent_path, (*_seen, path))
    if str(data.get("method", base.get("method", ""))).lower() != str(base.get("method", "")).lower():
        base.pop("method_options", None)  # another method's options: a recipe inherits the protocol, not those
    return deep_merge(base, data)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` with the value read as YAML (numbers, booleans, null, lists)."""
    if "=" not in text:
        raise UsageError(f"override '{text}' must look like key=value (e.g. method_options.alpha=0.08)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UsageError(f"override '{text}' has an empty key")
    try:
        value = safe_load_unique(raw) if raw.strip() else ""
    except DuplicateKey as exc:
        raise UsageError(f"override '{text}': {exc}") from exc
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"override '{'.'.join(path)}': '{part}' is not a section")
        node = child
    node[path[-1]] = value


def load_recipe(
    recipe: str | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> Recipe:
    """Defaults <- recipe file <- `--set key=value` overrides <- explicit flags (dotted keys)."""
    data = read_recipe_file(find_recipe(recipe)) if recipe else {}
    for text in overrides or []:
        apply_override(data, *parse_override(text))
    for key, value in (flags or {}).items():
        if value is not None:
            apply_override(data, key.split("."), value)
    return recipe_from_dict(data)


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """A validated recipe; settings of the 0.1 layout are read into today's keys (config.legacy)."""
    data, legacy_options = upgrade_legacy_layout(data)
    recipe = build_section(Recipe, data, "")
    recipe.legacy_options = legacy_options
    return recipe


def list_recipes() -> list[str]:
    """The built-in recipe names (`paper/tga-zsr-vitb32-tinyimagenet`, `eval/zs16`, `tiny`, ...)."""
    return sorted(p.relative_to(RECIPES_DIR).with_suffix("").as_posix() for p in RECIPES_DIR.rglob("*.yaml"))
