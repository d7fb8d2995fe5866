"""Several-seed tables: runs NAME-sK group into one row with the mean and sample standard deviation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgazsr_cli.analysis.seeds import group_name, ranking, seed_markdown, seed_plot, seed_table


def record(model: str, dataset: str, clean: float, robust: float) -> dict:
    return {"model": model, "dataset": dataset, "attack": "pgd", "clean_accuracy": clean, "robust_accuracy": robust,
            "num_examples": 100, "threat": {"eps": 2.0, "steps": 10, "step_size": 1.0, "restarts": 1,
                                            "random_start": True, "precision": "fp32", "seed": 0},
            "batch_size": 100}


RECORDS = [record("original (tgazsr-mini, w)", "a", 50, 5), record("original (tgazsr-mini, w)", "b", 40, 3),
           record("tecoa-s0", "a", 40, 30), record("tecoa-s0", "b", 30, 10),
           record("tecoa-s1", "a", 44, 34), record("tecoa-s1", "b", 34, 14),
           record("tga-zsr-s0 (tga-zsr)", "a", 46, 31), record("tga-zsr-s0 (tga-zsr)", "b", 36, 12)]


def test_seeded_runs_group_by_name() -> None:
    assert [group_name(m) for m in ("tecoa-s0", "tga-zsr-s12 (tga-zsr)", "original (x, y)")] == \
        ["tecoa", "tga-zsr", "original (x, y)"]


def test_mean_and_sample_std_per_cell_and_of_the_average() -> None:
    datasets, table = seed_table(RECORDS, "pgd")
    assert datasets == ["a", "b"]
    clean, robust = table["tecoa"]["a"]
    assert (clean.mean, robust.mean, robust.n) == (42.0, 32.0, 2)
    assert robust.std == pytest.approx(2 ** 0.5 * 2)  # stdev of 30 and 34
    average_clean, average_robust = table["tecoa"]["average"]
    assert (average_clean.mean, average_robust.mean) == (37.0, 22.0)  # runs average 20 and 24
    assert table["original (tgazsr-mini, w)"]["b"][1].std == 0.0


def test_ranking_and_rendering(tmp_path: Path) -> None:
    assert [group for group, _, _ in ranking(RECORDS, "pgd")] == ["tecoa", "tga-zsr", "original (tgazsr-mini, w)"]
    text = seed_markdown(RECORDS, "pgd")
    assert "| tecoa | 2 | 32.0 ± 2.8 | 12.0 ± 2.8 | 22.0 ± 2.8 |" in text
    assert "| tga-zsr | 1 | 31.0 | 12.0 | 21.5 |" in text
    assert seed_plot(RECORDS, "pgd", tmp_path / "s.png").stat().st_size > 0
