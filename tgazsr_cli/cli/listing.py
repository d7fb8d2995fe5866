"""Commands that list what tgazsr knows: methods, attacks, datasets, models, recipes."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tgazsr_cli.cli import options as opt
from tgazsr_cli.cli.console import stdout


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A Rich table on a terminal; elsewhere (a pipe, a file) tab-separated lines, header first, never cut."""
    if not stdout.is_terminal:
        for row in [columns, *rows]:
            typer.echo("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row))
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    stdout.print(table)


def methods() -> None:
    """List the training methods with their source."""
    from tgazsr_cli.methods import all_methods  # method modules import torch only where they compute

    table("methods", ["name", "description", "source"],
           [[name, cls.description, cls.source] for name, cls in sorted(all_methods().items())])


def attacks() -> None:
    """List the attacks and the attack suites, and what --restarts does for each."""
    from tgazsr_cli.attacks import SUITE_HELP, all_attacks  # the registry imports no attack module

    rows = [[name, "attack", "used" if entry.uses_restarts else "ignored", entry.help]
            for name, entry in sorted(all_attacks().items())]
    rows += [[name, "suite", "set by the suite", text] for name, text in SUITE_HELP.items()]
    table("attacks", ["name", "kind", "--restarts", "description"], rows)


def datasets() -> None:
    """List the registered datasets (any local folder or hf:ORG/NAME works too)."""
    from tgazsr_cli.data import get_dataset_spec, list_datasets

    rows = []
    for name in list_datasets():
        spec = get_dataset_spec(name)
        source = spec.hub_id or ("shipped" if spec.local_path else "local only (--data-dir)")
        rows.append([name, str(len(spec.classnames)), source, spec.description])
    table("datasets", ["name", "classes", "source", "description"], rows)


def models(
    pretrained: Annotated[bool, opt.flag("--pretrained", help="Also list each model's pretrained tags.")] = False,
) -> None:
    """List the open_clip model names (including tgazsr-tiny and tgazsr-mini).

    Names come from open_clip's config files, without importing torch; --pretrained imports open_clip (seconds).
    """
    if not pretrained:
        table("models", ["name"], [[name] for name in model_names()])
        return
    import open_clip

    from tgazsr_cli.models.building import register_builtin_configs

    register_builtin_configs()
    table("models", ["name", "pretrained tags"],
           [[name, ", ".join(open_clip.list_pretrained_tags_by_model(name))] for name in open_clip.list_models()])


def _natural_key(name: str) -> list[int | str]:
    """open_clip's order of model names (factory._natural_key): numbers compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def model_names() -> list[str]:
    """open_clip.list_models() plus tgazsr's configs, read as open_clip reads them (every `*.json` with embed_dim,
    vision_cfg and text_cfg) from its `model_configs/` folder, found without importing open_clip (and torch)."""
    from tgazsr_cli.runtime.resources import package_path

    spec = importlib.util.find_spec("open_clip")
    folders = [Path(where) / "model_configs" for where in (spec.submodule_search_locations or [])] if spec else []
    names = set()
    for folder in [*folders, package_path("models", "configs")]:
        for path in folder.glob("*.json"):
            try:
                config = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(config, dict) and {"embed_dim", "vision_cfg", "text_cfg"} <= set(config):
                names.add(path.stem)
    return sorted(names, key=_natural_key)


def recipes() -> None:
    """List the built-in recipes."""
    import yaml

    from tgazsr_cli.config import RECIPES_DIR

    rows = []
    for path in sorted(RECIPES_DIR.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        rows.append([path.relative_to(RECIPES_DIR).with_suffix("").as_posix(), str(data.get("description", ""))])
    table("recipes", ["name", "description"], rows)
