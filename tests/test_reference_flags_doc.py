"""docs/reference-flags.md names only datasets, attacks, suites and recipes that exist."""

from __future__ import annotations

import re
from pathlib import Path

from tgazsr_cli.attacks import ATTACKS, SUITES
from tgazsr_cli.config import RECIPES_DIR
from tgazsr_cli.data import list_datasets
from tgazsr_cli.evaluation.suites import dataset_suites

DOC = (Path(__file__).parents[1] / "docs" / "reference-flags.md").read_text(encoding="utf-8")


def test_every_named_dataset_attack_suite_and_recipe_exists() -> None:
    datasets = set(re.findall(r"→ `([a-z0-9-]+)`", DOC))
    assert {"cifar10", "stl10", "pets", "aircraft", "cars", "imagenet-a"} <= datasets
    assert datasets <= set(list_datasets()), datasets - set(list_datasets())
    suites = set(re.findall(r"--suite ([a-z0-9-]+)", DOC))
    assert {"zs16", "paper-aa"} <= suites and suites <= set(SUITES) | set(dataset_suites())
    attacks = set(re.findall(r"--attack ([a-z0-9-]+)", DOC))
    assert "cw" in attacks and attacks <= set(ATTACKS) | set(SUITES)
    for recipe in re.findall(r"--recipe (paper/[a-z0-9-]+)", DOC):
        assert (RECIPES_DIR / f"{recipe}.yaml").is_file(), recipe
    assert "at the time of writing" not in DOC.lower() and "not registered" not in DOC
