"""bench/gpu_suite.py: its CPU smoke mode runs end to end, and the suite projection reads every split size
from the dataset table (numbers in the dataset files, not prose)."""

from __future__ import annotations

import pytest

from bench import gpu_suite
from tgazsr_cli.config import find_recipe, load_recipe
from tgazsr_cli.data import DatasetSpec, SplitSpec, get_dataset_spec


def test_every_suite_dataset_states_its_scored_split_size() -> None:
    names = load_recipe(str(find_recipe("eval/zs16"))).eval.datasets
    sizes = {name: gpu_suite.test_size(get_dataset_spec(name)) for name in names}
    assert len(sizes) == 16 and sizes["cifar10"] == 10_000 and sizes["imagenet"] == 50_000
    assert sizes["sun397"] == 108_754 and sizes["tinyimagenet"] == 10_000
    unsized = DatasetSpec(name="unsized", classnames=("a", "b"), templates=("{}",), resize_mode="resize",
                          hub_id=None, splits={"test": SplitSpec("test")}, description="a dataset without numbers")
    with pytest.raises(ValueError, match="no split size"):
        gpu_suite.test_size(unsized)


def test_tiny_run_prints_pgd_rates_and_the_projection(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_suite.main(["--tiny", "--device", "cpu", "--sections", "pgd,suite,transform"]) == 0
    out = capsys.readouterr().out
    assert "attack in bf16:" in out and "attack in fp32:" in out
    assert "344,128 test images" in out and out.count("target < 1 h") == 2
    assert "Decoded-cache batch transform on cpu" in out
