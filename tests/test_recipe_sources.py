"""Recipe settings against the authors' code they come from: each row names the recipe, the key, the value
in the source and the source as "repo/path:line" (commits: YuboCui/AGFT 0031a8f, VivienLu/UCAT e3bea1d,
chs20/RobustVLM 7de10ee). A row failing means a recipe drifted from its source, or the source was misread."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tgazsr_cli.config import build_section, load_recipe
from tgazsr_cli.methods import get_method

AGFT, UCAT, FARE = "YuboCui/AGFT", "VivienLu/UCAT", "chs20/RobustVLM"
AGFT_SETS = frozenset({"caltech101", "caltech256", "cifar10", "cifar100", "dtd", "eurosat", "aircraft", "flowers102",
                       "food101", "imagenet", "pets", "pcam", "cars", "stl10", "sun397"})
UCAT_SETS = AGFT_SETS | {"tinyimagenet"}
# CLIP_benchmark/benchmark/datasets.txt:1-12 (imagenet_sketch, line 13, is not in the dataset table) + ImageNet
FARE_SETS = frozenset({"imagenet", "cifar10", "stl10", "cifar100", "cars", "caltech101", "pets", "flowers102", "dtd",
                       "eurosat", "aircraft", "pcam", "imagenet-r"})

P2 = ["imagenet/tecoa-vitb32-imagenet", "imagenet/pmg-aft-vitb32-imagenet", "imagenet/tga-zsr-vitb32-imagenet",
      "imagenet/agft-vitb32-imagenet", "imagenet/ucat-vitb32-imagenet"]
P2_ROWS = [
    ("data.dataset", "imagenet", f"{AGFT}/main.py:43"),
    ("data.batch_size", 256, f"{AGFT}/README.md:39 (2 processes) x main.py:37 (128)"),
    ("attack.eps", 1.0, f"{AGFT}/main.py:71"),
    ("attack.step_size", 1.0, f"{AGFT}/main.py:72"),
    ("attack.steps", 2, f"{AGFT}/main.py:73"),
    ("eval.eps", 1.0, f"{AGFT}/main.py:98"),
    ("eval.step_size", 1.0, f"{AGFT}/main.py:99"),
    ("eval.steps", 20, f"{AGFT}/main.py:100"),
    ("eval.datasets", AGFT_SETS, f"{AGFT}/main.py:47-67"),
]
P3_ROWS = [
    ("model.name", "ViT-L-14", f"{FARE}/README.md:282"),
    ("model.pretrained", "openai", f"{FARE}/README.md:282"),
    ("data.dataset", "imagenet", f"{FARE}/README.md:282"),
    ("data.templates", ["This is a photo of a {}"], f"{FARE}/train/adversarial_training_clip.py:151-152"),
    ("data.batch_size", 128, f"{FARE}/README.md:282"),
    ("optim.max_steps", 20000, f"{FARE}/README.md:282"),
    ("optim.warmup_steps", 1400, f"{FARE}/README.md:282"),
    ("optim.name", "adamw", f"{FARE}/README.md:282"),
    ("optim.lr", 1e-5, f"{FARE}/README.md:282"),
    ("optim.weight_decay", 1e-4, f"{FARE}/README.md:282"),
    ("optim.schedule", "cosine", f"{FARE}/train/adversarial_training_clip.py:211"),
    ("attack.steps", 10, f"{FARE}/README.md:282"),
    ("attack.step_size", 1.0, f"{FARE}/README.md:282"),
    ("method_options.attack_momentum", 0.9, f"{FARE}/train/pgd_train.py:17"),
    ("eval.attack", "autoattack", f"{FARE}/CLIP_benchmark/bash/run_benchmark_adv.sh:14"),
    ("eval.limit", 1000, f"{FARE}/CLIP_benchmark/bash/run_benchmark_adv.sh:8"),
    ("eval.batch_size", 50, f"{FARE}/CLIP_benchmark/bash/run_benchmark_adv.sh:15"),
    ("eval.datasets", FARE_SETS, f"{FARE}/CLIP_benchmark/benchmark/datasets.txt:1-12, README.md:290"),
]

ROWS: list[tuple[str, str, Any, str]] = [
    # AGFT at the paper's protocol: the authors' README training run
    ("paper/agft-vitb32-tinyimagenet", "method_options.logit_scale", 180.0, f"{AGFT}/README.md:39"),
    ("paper/agft-vitb32-tinyimagenet", "method_options.scale_ratio", 0.4, f"{AGFT}/README.md:39"),
    ("paper/agft-vitb32-tinyimagenet", "optim.lr", 4e-4, f"{AGFT}/README.md:39"),
    ("paper/agft-vitb32-tinyimagenet", "data.batch_size", 256, f"{AGFT}/README.md:39 x main.py:37"),
    ("paper/agft-vitb32-tinyimagenet", "optim.name", "sgd", f"{AGFT}/main.py:110"),
    ("paper/agft-vitb32-tinyimagenet", "optim.momentum", 0.9, f"{AGFT}/main.py:112"),
    ("paper/agft-vitb32-tinyimagenet", "optim.weight_decay", 0.0, f"{AGFT}/main.py:114"),
    ("paper/agft-vitb32-tinyimagenet", "optim.warmup_steps", 1000, f"{AGFT}/main.py:115"),
    ("paper/agft-vitb32-tinyimagenet", "optim.epochs", 10, f"{AGFT}/main.py:103"),
    ("paper/agft-vitb32-tinyimagenet", "model.name", "ViT-B-32", f"{AGFT}/main.py:31"),
    ("paper/agft-vitb32-tinyimagenet", "data.templates", ["This is a photo of a {}."], f"{AGFT}/clip_dataset.py:472"),
    # AGFT's own protocol
    ("imagenet/agft-vitb32-imagenet", "data.templates", ["This is a photo of a {}."], f"{AGFT}/clip_dataset.py:337"),
    ("imagenet/agft-vitb32-imagenet", "optim.epochs", 10, f"{AGFT}/main.py:103"),
    ("imagenet/agft-vitb32-imagenet", "optim.lr", 4e-4, f"{AGFT}/README.md:39"),
    ("imagenet/tecoa-vitb32-imagenet", "optim.lr", 1e-5, f"{AGFT}/README.md:47"),
    ("imagenet/tecoa-vitb32-imagenet", "optim.epochs", 10, f"{AGFT}/main.py:103"),
    ("imagenet/tga-zsr-vitb32-imagenet", "optim.epochs", 10, f"{AGFT}/main.py:103"),
    ("imagenet/pmg-aft-vitb32-imagenet", "optim.epochs", 10, f"{AGFT}/main.py:103"),
    ("eval/zs15", "eval.datasets", AGFT_SETS, f"{AGFT}/main.py:47-67"),
    ("eval/zs15", "eval.steps", 20, f"{AGFT}/main.py:100"),
    # UCAT: its own protocol is the paper's
    ("paper/ucat-vitb32-tinyimagenet", "method_options.target_concentration", 0.07, f"{UCAT}/main.py:92"),
    ("paper/ucat-vitb32-tinyimagenet", "method_options.tau", 1e5, f"{UCAT}/main.py:96"),
    ("paper/ucat-vitb32-tinyimagenet", "data.batch_size", 256, f"{UCAT}/main.sh:22"),
    ("paper/ucat-vitb32-tinyimagenet", "data.dataset", "tinyimagenet", f"{UCAT}/main.py:69"),
    ("paper/ucat-vitb32-tinyimagenet", "data.templates", ["This is a photo of a {}"], f"{UCAT}/main.py:226"),
    ("paper/ucat-vitb32-tinyimagenet", "optim.lr", 1e-4, f"{UCAT}/main.py:45"),
    ("paper/ucat-vitb32-tinyimagenet", "optim.epochs", 10, f"{UCAT}/main.py:41"),
    ("paper/ucat-vitb32-tinyimagenet", "optim.weight_decay", 0.0, f"{UCAT}/main.py:46"),
    ("paper/ucat-vitb32-tinyimagenet", "optim.warmup_steps", 1000, f"{UCAT}/main.py:47"),
    ("paper/ucat-vitb32-tinyimagenet", "optim.momentum", 0.9, f"{UCAT}/main.py:48"),
    ("paper/ucat-vitb32-tinyimagenet", "optim.name", "sgd", f"{UCAT}/main.py:182"),
    ("paper/ucat-vitb32-tinyimagenet", "attack.eps", 1.0, f"{UCAT}/main.py:51"),
    ("paper/ucat-vitb32-tinyimagenet", "attack.steps", 2, f"{UCAT}/main.py:52"),
    ("paper/ucat-vitb32-tinyimagenet", "attack.step_size", 1.0, f"{UCAT}/main.py:53"),
    ("paper/ucat-vitb32-tinyimagenet", "eval.eps", 1.0, f"{UCAT}/main.py:54"),
    ("paper/ucat-vitb32-tinyimagenet", "eval.steps", 100, f"{UCAT}/main.py:55"),
    ("paper/ucat-vitb32-tinyimagenet", "eval.step_size", 1.0, f"{UCAT}/main.py:56"),
    ("eval/zs16", "eval.datasets", UCAT_SETS, f"{UCAT}/main.py:235-236"),
    # FARE's own protocol (P3) at 4/255 and 2/255
    *[("imagenet/fare-vitl14-imagenet-eps4", key, value, source) for key, value, source in P3_ROWS],
    ("imagenet/fare-vitl14-imagenet-eps4", "attack.eps", 4.0, f"{FARE}/README.md:282"),
    *[("imagenet/fare-vitl14-imagenet-eps2", key, value, source) for key, value, source in P3_ROWS],
    ("imagenet/fare-vitl14-imagenet-eps2", "attack.eps", 2.0, f"{FARE}/README.md:284"),
    ("imagenet/fare-vitl14-imagenet-eps2", "eval.eps", 2.0, f"{FARE}/CLIP_benchmark/bash/run_benchmark_adv.sh:6"),
    # the ImageNet-trained protocol (P2), as AGFT's code runs every method in it
    *[(recipe, key, value, source) for recipe in P2 for key, value, source in P2_ROWS],
]

METHOD_DEFAULTS: list[tuple[str, str, Any, str]] = [
    ("agft", "logit_scale", 100.0, f"{AGFT}/main.py:24"),
    ("agft", "scale_ratio", 1.0, f"{AGFT}/main.py:24"),
    ("agft", "attack_targets", "soft", f"{AGFT}/train.py:113-115"),
    ("ucat", "target_concentration", 0.07, f"{UCAT}/main.py:92"),
    ("ucat", "tau", 1e5, f"{UCAT}/main.py:96"),
    ("ucat", "kl_weight", None, f"{UCAT}/main.py:354-355 (derived from tau)"),
    ("ucat", "kl_target", "frozen-clean", f"{UCAT}/main.py:394-397"),
]


def lookup(recipe_name: str, key: str) -> Any:
    node: Any = load_recipe(recipe_name).to_dict()
    for part in key.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize(("recipe", "key", "expected", "source"), ROWS,
                         ids=[f"{r}:{k}" for r, k, _, _ in ROWS])
def test_recipe_value_matches_its_source(recipe: str, key: str, expected: Any, source: str) -> None:
    value = lookup(recipe, key)
    if isinstance(expected, frozenset):  # a dataset list: same sets, order is the table's
        value = frozenset(value)
    elif isinstance(expected, float):
        value = pytest.approx(value, rel=1e-12)
    assert value == expected, f"{recipe} {key} = {value!r}, but {source} says {expected!r}"


@pytest.mark.parametrize(("method", "option", "expected", "source"), METHOD_DEFAULTS,
                         ids=[f"{m}.{o}" for m, o, _, _ in METHOD_DEFAULTS])
def test_method_default_matches_its_source(method: str, option: str, expected: Any, source: str) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(get_method(method).Options)}
    assert defaults[option] == expected, f"{method}.{option} default {defaults[option]!r}, {source} says {expected!r}"


@pytest.mark.parametrize("recipe", sorted({r for r, _, _, _ in ROWS} | {"mini/agft", "mini/ucat"}))
def test_sourced_recipes_build_their_method_options(recipe: str) -> None:
    loaded = load_recipe(recipe)
    options = build_section(get_method(loaded.method).Options, loaded.method_options, "method_options.")
    assert dataclasses.asdict(options).keys() >= loaded.method_options.keys()


def test_ucat_weight_from_the_paper_recipe_is_tau_over_exp_softplus() -> None:
    loaded = load_recipe("paper/ucat-vitb32-tinyimagenet")
    options = build_section(get_method("ucat").Options, loaded.method_options, "method_options.")
    assert options.weight == pytest.approx(3.9047e-8, rel=1e-4)  # 1e5 / exp(softplus(2 / 0.07))


@pytest.mark.parametrize(("method", "options", "message"), [
    ("agft", {"attack_targets": "hard"}, "recipe key 'method_options.attack_targets' must be one of soft, labels"),
    ("agft", {"scale_ratio": 0}, "must be > 0"),
    ("ucat", {"kl_target": "teacher"}, "recipe key 'method_options.kl_target' must be one of frozen-clean, clean"),
    ("ucat", {"target_concentration": -0.1}, "recipe key 'method_options.target_concentration' must be > 0"),
])
def test_bad_method_options_are_one_line_usage_errors(method: str, options: dict[str, Any], message: str) -> None:
    from tgazsr_cli.errors import UsageError

    with pytest.raises(UsageError, match=message):
        build_section(get_method(method).Options, options, "method_options.")
