"""Recipes: the typed schema (`recipe`), one coercer for every setting (`fields`), reading files and `--set`
(`loading`), the reader of earlier layouts (`legacy`). Imports neither torch nor the training methods."""

from tgazsr_cli.config.fields import build_section
from tgazsr_cli.config.loading import RECIPES_DIR, find_recipe, list_recipes, load_recipe, recipe_from_dict
from tgazsr_cli.config.recipe import (
    AttackConfig,
    DataConfig,
    EvalConfig,
    LoraConfig,
    ModelConfig,
    OptimConfig,
    Recipe,
    TrainConfig,
)

__all__ = [
    "RECIPES_DIR",
    "AttackConfig",
    "DataConfig",
    "EvalConfig",
    "LoraConfig",
    "ModelConfig",
    "OptimConfig",
    "Recipe",
    "TrainConfig",
    "build_section",
    "find_recipe",
    "list_recipes",
    "load_recipe",
    "recipe_from_dict",
]
