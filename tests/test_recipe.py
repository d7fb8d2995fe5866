"""Recipes: paper defaults, layering, and one-line errors that name the offending key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgazsr_cli import load_recipe  # the public loader: the method's options checked and filled in
from tgazsr_cli.config import Recipe, find_recipe
from tgazsr_cli.errors import UsageError


def test_defaults_are_the_papers_tga_zsr_row() -> None:
    recipe = load_recipe(None)
    options = recipe.method_options
    assert (recipe.method, options["alpha"], options["beta"], options["distance"]) == ("tga-zsr", 0.08, 0.05, "l2")
    recipe = Recipe()
    assert (recipe.attack.eps, recipe.attack.steps, recipe.attack.step_size) == (1.0, 2, 1.0)
    assert (recipe.optim.name, recipe.optim.lr, recipe.optim.momentum) == ("sgd", 1e-4, 0.9)
    assert (recipe.optim.warmup_steps, recipe.optim.epochs, recipe.data.batch_size) == (1000, 10, 128)
    assert recipe.data.templates == ["This is a photo of a {}"]


def test_paper_recipes_resolve_and_tecoa_extends_tga() -> None:
    tga = load_recipe("paper/tga-zsr-vitb32-tinyimagenet")
    tecoa = load_recipe("tecoa-vitb32-tinyimagenet")
    assert tga.model.name == "ViT-B-32" and tga.model.pretrained == "openai"
    assert tecoa.method == "tecoa" and tecoa.optim.lr == 1e-5
    assert tecoa.method_options == {}  # TeCoA has no attention terms, hence no options to inherit
    assert tecoa.data.dataset == tga.data.dataset == "tinyimagenet"


def test_layering_file_then_set_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("method_options:\n  alpha: 0.5\noptim:\n  lr: 1e-3\n")
    recipe = load_recipe(str(path), ["method_options.alpha=0.2", 'data.templates=["a {}", "b {}"]'],
                         {"optim.lr": 0.01})
    assert recipe.method_options["alpha"] == 0.2
    assert recipe.optim.lr == 0.01  # YAML's "1e-3" string is read as a float, then the flag wins
    assert recipe.data.templates == ["a {}", "b {}"]


@pytest.mark.parametrize(("override", "message"), [
    ("loss.alfa=0.1", "unknown recipe key 'loss.alfa' (did you mean 'alpha'?)"),
    ("method_options.alfa=0.1", "unknown recipe key 'method_options.alfa' (did you mean 'alpha'?)"),
    ("method_options.distance=kl", "recipe key 'method_options.distance' must be one of l2, cos, l1"),
    ("optim.lr=.nan", "recipe key 'optim.lr' must be a finite number"),
    ("method_options.alpha=.inf", "recipe key 'method_options.alpha' must be a finite number"),
    ("optim.lr=fast", "recipe key 'optim.lr' must be float"),
    ("loss.distance=kl", "recipe key 'method_options.distance' must be one of l2, cos, l1"),
    ("data.batch_size=0", "recipe key 'data.batch_size' must be > 0"),
    ("attack.eps=255", "units of 1/255"),
    ("lossalpha", "must look like key=value"),
    ("data.batch_size=2.5", "must be int"),
    ("train.compile=fast", "recipe key 'train.compile' must be one of off, default, reduce-overhead, max-autotune"),
])
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        load_recipe(None, [override])
    assert message in str(info.value)


@pytest.mark.parametrize(("override", "mode"), [
    ("train.compile=true", "default"), ("train.compile=false", "off"), ("train.compile=off", "off"),
    ("train.compile=reduce-overhead", "reduce-overhead"), ("train.compile=max-autotune", "max-autotune"),
])
def test_compile_takes_a_mode_and_the_old_booleans(override: str, mode: str) -> None:
    assert load_recipe(None, [override]).train.compile == mode
    assert load_recipe(None, ["data.cache=off"]).data.cache == "off"  # YAML reads the word off as false


def test_unknown_recipe_name_suggests_one() -> None:
    with pytest.raises(UsageError, match="did you mean"):
        find_recipe("paper/tga-zsr-vitb32-tinyimagent")


def test_recipe_that_extends_itself_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(UsageError, match="extends itself"):
        load_recipe(str(tmp_path / "a.yaml"))


def test_recipe_yaml_round_trip() -> None:
    recipe = load_recipe(None, ["method_options.beta=0.01"])
    again = load_recipe(None, [f"method_options.beta={recipe.method_options['beta']}"])
    assert again.to_dict() == recipe.to_dict()
    assert "beta: 0.01" in recipe.to_yaml()
