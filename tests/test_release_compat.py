"""Files written by tgazsr 0.1.0 keep working: its checkpoints load and its recipes (the `loss:` layout) resolve."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import yaml

from tgazsr_cli import load_recipe  # the public loader: the method's options checked and filled in
from tgazsr_cli.checkpoints import checkpoint as ckpt
from tgazsr_cli.checkpoints.loading import load_model
from tgazsr_cli.checkpoints.metadata import METADATA_SCHEMA, read_metadata
from tgazsr_cli.checkpoints.run_dir import FINAL_NAME, finished_step
from tgazsr_cli.config import recipe_from_dict
from tgazsr_cli.config.legacy import LegacyLayoutWarning
from tgazsr_cli.errors import UsageError
from tgazsr_cli.methods import resolve_method_options
from tgazsr_cli.runtime.atomic import read_header

RELEASE = Path(__file__).parent / "fixtures" / "release-0.1.0"


def test_release_checkpoint_metadata_reads_as_the_typed_record() -> None:
    path = RELEASE / "final.safetensors"
    document = json.loads(read_header(path)["tgazsr"])
    assert document.get("schema") is None  # written before the schema field existed
    state = ckpt.load_checkpoint(path)
    info = state.metadata
    assert info == read_metadata(path)  # one reader: the header alone gives the same record
    assert (info.kind, info.method, info.model_name, info.step) == ("model", "tga-zsr", "tgazsr-tiny", 2)
    assert (info.skipped_steps, info.skipped_images, info.schema) == (0, 0, METADATA_SCHEMA)
    assert "scheduler" not in info.extra and info.activation == "gelu"
    assert info.recipe["loss"]["alpha"] == 0.08  # the recipe is kept as it was written


def test_release_checkpoint_loads_as_a_model_and_its_original(tmp_path: Path) -> None:
    run = tmp_path / "old-run"
    run.mkdir()
    shutil.copy(RELEASE / "final.safetensors", run / FINAL_NAME)
    assert finished_step(run) == 2  # the run directory reads its final checkpoint through the same reader
    loaded = load_model(checkpoint=str(run))
    assert loaded.label == "old-run (tga-zsr)"
    loaded.classifier.set_classes(["a", "b"], ["a photo of a {}."])
    import torch

    logits = loaded.classifier(torch.rand(2, 3, 28, 28))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_release_recipe_resolves_to_the_same_settings() -> None:
    old = yaml.safe_load((RELEASE / "recipe.yaml").read_text())
    with pytest.warns(LegacyLayoutWarning):
        recipe = resolve_method_options(recipe_from_dict(old))
    assert recipe.method == "tga-zsr"
    assert recipe.method_options == {"alpha": 0.08, "beta": 0.05, "distance": "l2", "attention_norm": "token-axis",
                                     "upsample": True}
    assert recipe.optim.max_steps == 2 and recipe.attack.eps == 4


@pytest.mark.parametrize(("method", "expected"), [
    ("tecoa", {}),  # 0.1 forced alpha = beta = 0 for TeCoA: its loss section meant nothing
    ("fare", {"attack_momentum": 0.9}),  # other methods ignored the section
    ("comp-tga", {"alpha": 0.1, "beta": 0.07}),
])
def test_release_loss_section_keeps_only_what_the_method_used(method: str, expected: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegacyLayoutWarning)
        recipe = load_recipe(None, [f"method={method}", "loss.alpha=0.1", "loss.beta=0.07"])
    assert {k: v for k, v in recipe.method_options.items() if k in expected} == expected
    assert set(recipe.method_options) >= set(expected)


def test_release_visual_attention_is_the_vision_tga_method() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegacyLayoutWarning)
        recipe = load_recipe(None, ["loss.attention=visual", "loss.alpha=0.3"])
        assert recipe.method == "vision-tga" and recipe.method_options["alpha"] == 0.3
        with pytest.raises(UsageError, match="applies to tga-zsr only"):
            load_recipe(None, ["method=tecoa", "loss.attention=visual"])


def test_method_names_are_case_insensitive() -> None:
    assert load_recipe(None, ["method=TGA-ZSR"]).method == "tga-zsr"
    with pytest.raises(UsageError, match="did you mean 'tecoa'"):
        load_recipe(None, ["method=tecao"])
