"""Commands that list what tgazsr knows: methods, attacks, datasets, models, recipes."""

from __future__ import annotations

import typer
from rich.table import Table

from tgazsr_cli.cli.console import stdout


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    stdout.print(table)


def methods() -> None:
    """List the training methods with their source."""
    from tgazsr_cli.methods import all_methods  # method modules import torch only where they compute

    _table("methods", ["name", "description", "source"],
           [[name, cls.description, cls.source] for name, cls in sorted(all_methods().items())])


def attacks() -> None:
    """List the attacks and the attack suites."""
    from tgazsr_cli.attacks import SUITE_HELP, all_attacks  # the registry imports no attack module

    rows = [[name, "attack", entry.help] for name, entry in sorted(all_attacks().items())]
    rows += [[name, "suite", text] for name, text in SUITE_HELP.items()]
    _table("attacks", ["name", "kind", "description"], rows)


def datasets() -> None:
    """List the registered datasets (any local folder or hf:ORG/NAME works too)."""
    from tgazsr_cli.data import get_dataset_spec, list_datasets

    rows = []
    for name in list_datasets():
        spec = get_dataset_spec(name)
        source = spec.hub_id or ("shipped" if spec.local_path else "local only (--data-dir)")
        rows.append([name, str(len(spec.classnames)), source, spec.description])
    _table("datasets", ["name", "classes", "source", "description"], rows)


def models(
    pretrained: bool = typer.Option(False, help="Also list each model's pretrained tags."),
) -> None:
    """List the open_clip model names (including tgazsr-tiny and tgazsr-mini)."""
    import open_clip

    from tgazsr_cli.models.building import register_builtin_configs

    register_builtin_configs()
    rows = [[name, ", ".join(open_clip.list_pretrained_tags_by_model(name)) if pretrained else ""]
            for name in open_clip.list_models()]
    _table("models", ["name", "pretrained tags" if pretrained else ""], rows)


def recipes() -> None:
    """List the built-in recipes."""
    import yaml

    from tgazsr_cli.config import RECIPES_DIR

    rows = []
    for path in sorted(RECIPES_DIR.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        rows.append([path.relative_to(RECIPES_DIR).with_suffix("").as_posix(), str(data.get("description", ""))])
    _table("recipes", ["name", "description"], rows)
