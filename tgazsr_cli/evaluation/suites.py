"""What `tgazsr eval --suite NAME` names: an attack suite (`paper-pgd`, `paper-aa`, `autoattack`) or a dataset
suite, an eval recipe under recipes/eval/ (e.g. `zs16`, the paper's 16 datasets) whose `eval.datasets` it uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tgazsr_cli.attacks import SUITES
from tgazsr_cli.config import RECIPES_DIR, load_recipe
from tgazsr_cli.errors import unknown_name

DATASET_SUITES_DIR = RECIPES_DIR / "eval"


def dataset_suites() -> dict[str, str]:
    """Dataset-suite name -> recipe path, from recipes/eval/*.yaml."""
    if not DATASET_SUITES_DIR.is_dir():
        return {}
    return {path.stem: str(path) for path in sorted(DATASET_SUITES_DIR.glob("*.yaml"))}


@dataclass
class ResolvedSuites:
    attack_suites: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)


def resolve_suites(names: list[str]) -> ResolvedSuites:
    """Sort `--suite` values into attack suites and the datasets of dataset suites (in order, no repeats)."""
    resolved = ResolvedSuites()
    known = dataset_suites()
    for name in names:
        if name in SUITES:
            resolved.attack_suites.append(name)
        elif name in known:
            for dataset in load_recipe(known[name]).eval.datasets:
                if dataset not in resolved.datasets:
                    resolved.datasets.append(dataset)
        else:
            raise unknown_name("suite (attack suite or recipes/eval dataset suite)", name, [*SUITES, *known])
    return resolved
