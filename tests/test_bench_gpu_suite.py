"""bench/gpu_suite.py: its CPU smoke mode runs end to end, and the suite projection reads every split size."""

from __future__ import annotations

import pytest

from bench import gpu_suite
from tgazsr_cli.config.recipe import find_recipe, load_recipe
from tgazsr_cli.data import get_dataset_spec


def test_every_suite_dataset_states_its_scored_split_size() -> None:
    names = load_recipe(str(find_recipe("eval/zs16"))).eval.datasets
    sizes = {name: gpu_suite.test_size(get_dataset_spec(name).description) for name in names}
    assert len(sizes) == 16 and sizes["cifar10"] == 10_000 and sizes["imagenet"] == 50_000
    assert sizes["sun397"] == 108_754 and sizes["tinyimagenet"] == 10_000
    with pytest.raises(ValueError, match="no split size"):
        gpu_suite.test_size("a dataset without numbers")


def test_tiny_run_prints_pgd_rates_and_the_projection(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_suite.main(["--tiny", "--device", "cpu", "--sections", "pgd,suite,transform"]) == 0
    out = capsys.readouterr().out
    assert "attack in bf16:" in out and "attack in fp32:" in out
    assert "344,128 test images" in out and out.count("target < 1 h") == 2
    assert "Decoded-cache batch transform on cpu" in out
