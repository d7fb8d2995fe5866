"""The learning-rate rule of the mini-world benchmark: best harmonic mean of clean and robust on validation."""

from __future__ import annotations

import pytest

from tgazsr_cli.engine.lr_rule import grid_run_name, lr_choices, lr_rule_markdown


def record(model: str, clean: float, robust: float, dataset: str = "emoji-seen", attack: str = "pgd") -> dict:
    return {"model": model, "dataset": dataset, "attack": attack, "clean_accuracy": clean, "robust_accuracy": robust}


def test_each_method_keeps_the_learning_rate_with_the_best_harmonic_mean() -> None:
    records = [
        record(grid_run_name("tecoa", 1e-4), 50.0, 20.0),   # harmonic 28.57
        record(grid_run_name("tecoa", 3e-4), 52.0, 25.0),   # 33.77
        record(grid_run_name("tecoa", 1e-3), 40.0, 30.0),   # 34.29: less clean, but the best trade-off
        record(grid_run_name("fare", 1e-4), 60.0, 10.0),
        record(grid_run_name("fare", 1e-3), 10.0, 60.0),    # the same harmonic mean: the smaller rate wins
        record(grid_run_name("fare", 3e-4), 90.0, 1.0),
        record("tecoa-s0", 99.0, 99.0),                      # not a grid run
        record(grid_run_name("tecoa", 1e-2), 99.0, 99.0, dataset="emoji-unseen"),  # not the validation set
        record(grid_run_name("tecoa", 1e-2), 99.0, 99.0, attack="cw"),
    ]
    choices = {c.method: c for c in lr_choices(records, attack="pgd", dataset="emoji-seen")}
    assert sorted(choices) == ["fare", "tecoa"]
    assert [c.lr for c in choices["tecoa"].candidates] == [1e-4, 3e-4, 1e-3]
    assert choices["tecoa"].best.lr == 1e-3
    assert choices["tecoa"].best.harmonic == pytest.approx(2 * 40 * 30 / 70)
    assert choices["fare"].best.lr == 1e-4
    table = lr_rule_markdown(list(choices.values()), "validation")
    assert "| tecoa | 50.0 / 20.0 / 28.6 | 52.0 / 25.0 / 33.8 | **40.0 / 30.0 / 34.3** | 0.001 |" in table


def test_grid_run_names_read_back_with_any_learning_rate_spelling() -> None:
    for lr in (3e-4, 1e-3, 2.5e-5, 0.01):
        choice, = lr_choices([record(grid_run_name("tga-zsr-lora", lr), 1.0, 1.0)], attack="pgd", dataset="emoji-seen")
        assert (choice.method, choice.best.lr) == ("tga-zsr-lora", lr)
