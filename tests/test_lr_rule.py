"""The learning-rate rules of the mini-world benchmark, read from an evaluation of the grid runs."""

from __future__ import annotations

import pytest

from tgazsr_cli.analysis.lr_rule import (
    gentlest_lr,
    grid_run_name,
    lr_choices,
    lr_rule_markdown,
    original_accuracy,
)
from tgazsr_cli.errors import UsageError


def record(model: str, clean: float, robust: float, dataset: str = "emoji-seen", attack: str = "pgd") -> dict:
    return {"model": model, "dataset": dataset, "attack": attack, "clean_accuracy": clean, "robust_accuracy": robust}


GRID = [
    record("original (tgazsr-mini, tgazsr:mini-world-clip)", 48.0, 10.0),
    record(grid_run_name("tecoa", 1e-4), 50.0, 20.0),   # +10, harmonic 28.57
    record(grid_run_name("tecoa", 3e-4), 52.0, 25.0),   # +15: meets the bar; harmonic 33.77
    record(grid_run_name("tecoa", 1e-3), 40.0, 30.0),   # harmonic 34.29: the best trade-off on this split
    record(grid_run_name("tga-zsr", 1e-4), 50.0, 24.9),
    record(grid_run_name("tga-zsr", 3e-4), 50.0, 24.0),  # +14: misses the bar
    record(grid_run_name("tga-zsr", 1e-3), 50.0, 26.0),  # +16
    record(grid_run_name("fare", 1e-4), 60.0, 10.0),
    record(grid_run_name("fare", 1e-3), 10.0, 60.0),    # the same harmonic mean as 1e-4: the smaller rate wins
    record("tecoa-s0", 99.0, 99.0),                      # not a grid run
    record(grid_run_name("tecoa", 1e-2), 99.0, 99.0, dataset="emoji-unseen"),  # not the validation set
    record(grid_run_name("tecoa", 1e-2), 99.0, 99.0, attack="cw"),
]


def test_the_protocol_rule_takes_the_gentlest_rate_at_which_every_anchor_gains_enough() -> None:
    choices = lr_choices(GRID, attack="pgd", dataset="emoji-seen")
    original = original_accuracy(GRID, attack="pgd", dataset="emoji-seen")
    assert (original.clean, original.robust) == (48.0, 10.0)
    assert gentlest_lr(choices, ["tecoa"], original, gain=15) == 3e-4
    assert gentlest_lr(choices, ["tecoa", "tga-zsr"], original, gain=15) == 1e-3
    assert gentlest_lr(choices, ["tecoa", "tga-zsr"], original, gain=25) is None
    with pytest.raises(UsageError, match="no runs of ucat"):
        gentlest_lr(choices, ["tecoa", "ucat"], original, gain=15)
    with pytest.raises(UsageError, match="--original"):
        original_accuracy(GRID[1:], attack="pgd", dataset="emoji-seen")


def test_the_harmonic_mean_rule_is_reported_per_method() -> None:
    choices = {c.method: c for c in lr_choices(GRID, attack="pgd", dataset="emoji-seen")}
    assert sorted(choices) == ["fare", "tecoa", "tga-zsr"]
    assert [c.lr for c in choices["tecoa"].candidates] == [1e-4, 3e-4, 1e-3]
    assert choices["tecoa"].best.lr == 1e-3
    assert choices["tecoa"].best.harmonic == pytest.approx(2 * 40 * 30 / 70)
    assert choices["fare"].best.lr == 1e-4
    original = original_accuracy(GRID, attack="pgd", dataset="emoji-seen")
    table = lr_rule_markdown(list(choices.values()), original, 3e-4, "validation")
    tecoa_row = ("| tecoa | 50.0 / 20.0 (+10.0) / 28.6 | **52.0 / 25.0 (+15.0) / 33.8** | "
                 "40.0 / 30.0 (+20.0) / 34.3 | 0.001 |")
    assert tecoa_row in table
    assert "| fare | 60.0 / 10.0 (+0.0) / 17.1 |  | 10.0 / 60.0 (+50.0) / 17.1 | 0.0001 |" in table  # a tie


def test_grid_run_names_read_back_with_any_learning_rate_spelling() -> None:
    for lr in (3e-4, 1e-3, 2.5e-5, 0.01):
        choice, = lr_choices([record(grid_run_name("tga-zsr-lora", lr), 1.0, 1.0)], attack="pgd", dataset="emoji-seen")
        assert (choice.method, choice.best.lr) == ("tga-zsr-lora", lr)
