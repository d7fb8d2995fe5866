"""Recipe YAML: a key given twice is a one-line usage error naming it and both lines; safe loading only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tgazsr_cli.config import load_recipe
from tgazsr_cli.config.loading import DuplicateKey, safe_load_unique
from tgazsr_cli.errors import UsageError


def refused(path: Path) -> str:
    with pytest.raises(UsageError) as caught:
        load_recipe(str(path))
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    return str(caught.value)


def test_a_top_level_duplicate_names_the_key_and_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("method: tga-zsr\noptim:\n  lr: 1e-3\ndata:\n  batch_size: 8\noptim:\n  lr: 1e-2\n")
    assert refused(path) == f"recipe '{path.resolve()}': key 'optim' appears twice (lines 2 and 6); keep one"


def test_a_nested_duplicate_names_its_dotted_path(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  weight_decay: 0.1\n\n  lr: 1e-2\n")
    assert "key 'optim.lr' appears twice (lines 2 and 5)" in refused(path)
    deeper = tmp_path / "deep.yaml"
    deeper.write_text("method_options:\n  alpha: 0.1\ndata:\n  templates: ['a {}']\n  batch_size: 4\n"
                      "  batch_size: 8\n")
    assert "key 'data.batch_size' appears twice (lines 5 and 6)" in refused(deeper)


def test_duplicates_inside_lists_and_flow_mappings_are_found() -> None:
    with pytest.raises(DuplicateKey) as caught:
        safe_load_unique("suite:\n  - name: a\n    eps: 1\n  - {name: b, eps: 2, eps: 4}\n")
    assert (caught.value.key, caught.value.first, caught.value.second) == ("suite[1].eps", 4, 4)


def test_a_duplicate_in_a_parent_recipe_is_found_through_extends(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("train:\n  seed: 1\n  seed: 2\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\noptim:\n  lr: 0.5\n")
    message = refused(tmp_path / "child.yaml")
    assert "base.yaml': key 'train.seed' appears twice (lines 2 and 3)" in message


def test_the_same_key_in_different_sections_and_merge_overrides_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  batch_size: 4\neval:\n  batch_size: 6\noptim:\n  lr: 0.25\n")
    recipe = load_recipe(str(path))
    assert (recipe.data.batch_size, recipe.eval.batch_size, recipe.optim.lr) == (4, 6, 0.25)
    assert safe_load_unique("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 5\n")["other"] == {"x": 5, "y": 2}
    assert safe_load_unique("") is None and safe_load_unique("a: 1") == {"a": 1}


def test_set_overrides_still_apply_over_a_file_and_refuse_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  lr: 1e-3\ndata:\n  batch_size: 8\n")
    recipe = load_recipe(str(path), ["optim.lr=0.02", "data.batch_size=16", 'data.templates=["a {}", "b {}"]'])
    assert (recipe.optim.lr, recipe.data.batch_size, recipe.data.templates) == (0.02, 16, ["a {}", "b {}"])
    with pytest.raises(UsageError, match=r"override 'optim=\{lr: 1, lr: 2\}': key 'lr' appears twice") as caught:
        load_recipe(str(path), ["optim={lr: 1, lr: 2}"])
    assert caught.value.exit_code == 2


def test_loading_stays_safe() -> None:
    with pytest.raises(yaml.YAMLError):  # a Python object tag is refused, never constructed
        safe_load_unique("x: !!python/object/apply:os.system ['echo unsafe']\n")


def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  lr: 1e-2\n")
    result = subprocess.run([sys.executable, "-m", "tgazsr_cli", "train", "-r", str(path), "--print-config"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: recipe '{path.resolve()}': key 'optim.lr' appears twice (lines 2 and 3); keep one"]


def test_a_dataset_file_with_a_key_twice_is_refused_naming_the_key(tmp_path: Path) -> None:
    from tgazsr_cli.data.catalog import spec_from_yaml

    path = tmp_path / "twice.yaml"
    path.write_text("name: twice\nclassnames: [a, b]\ntemplates: ['{}']\nclassnames: [c, d]\n")
    with pytest.raises(UsageError, match=r"key 'classnames' appears twice \(lines 2 and 4\)"):
        spec_from_yaml(path)
