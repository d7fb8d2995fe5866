"""The dataset table of the 16 zero-shot datasets and ImageNet-A/O/R (spec §6): class lists, prompts, splits,
resize modes, sources, the shipped data files, the zs16 eval recipe and the errors for data that is not there.

Expected values come from the paper's evaluation code (TGA-ZSR utils.py and replace/datasets/*.py) as spec §6
summarises it; no network is used (the hub is put offline).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tgazsr_cli.config.recipe import load_recipe
from tgazsr_cli.data import get_dataset_spec, list_datasets, load_image_dataset
from tgazsr_cli.data.classfiles import TEMPLATES_FILE, imagenet_wnids, read_lines
from tgazsr_cli.data.names import CLASSNAMES_DIR
from tgazsr_cli.data.specs import ALL_SPLITS
from tgazsr_cli.errors import RuntimeFailure, UsageError

PAPER_ORDER = ["tinyimagenet", "cifar10", "cifar100", "stl10", "sun397", "food101", "pets", "flowers102", "dtd",
               "eurosat", "aircraft", "imagenet", "caltech101", "caltech256", "cars", "pcam"]
CLASS_COUNTS = {"tinyimagenet": 200, "cifar10": 10, "cifar100": 100, "stl10": 10, "sun397": 397, "food101": 101,
                "pets": 37, "flowers102": 102, "dtd": 47, "eurosat": 10, "aircraft": 100, "imagenet": 1000,
                "caltech101": 101, "caltech256": 257, "cars": 196, "pcam": 2,
                "imagenet-a": 200, "imagenet-o": 200, "imagenet-r": 200}
WHOLE_SET = {"sun397", "eurosat", "caltech101", "caltech256", "imagenet-a", "imagenet-o", "imagenet-r"}


pytestmark = pytest.mark.usefixtures("offline_hf")


def test_every_paper_dataset_is_registered_with_the_paper_class_count() -> None:
    assert set(CLASS_COUNTS) <= set(list_datasets())
    counts = {name: len(get_dataset_spec(name).classnames) for name in CLASS_COUNTS}
    assert counts == CLASS_COUNTS


@pytest.mark.parametrize(("name", "index", "expected"), [
    ("cifar10", 0, "airplane"), ("cifar10", 9, "truck"),
    ("cifar100", 1, "aquarium fish"), ("cifar100", 58, "pickup truck"), ("cifar100", 99, "worm"),
    ("stl10", 7, "monkey"),
    ("sun397", 0, "abbey"), ("sun397", 8, "apartment building outdoor"), ("sun397", 396, "youth hostel"),
    ("sun397", 392, "wine cellar barrel storage"),
    ("food101", 0, "apple pie"), ("food101", 100, "waffles"),
    ("pets", 0, "abyssinian"), ("pets", 2, "american pit bull terrier"), ("pets", 36, "yorkshire terrier"),
    ("flowers102", 0, "pink primrose"), ("flowers102", 1, "hard leaved pocket orchid"),
    ("flowers102", 11, "colts foot"), ("flowers102", 59, "pink yellow dahlia?"), ("flowers102", 87, "cyclamen"),
    ("dtd", 30, "polka dotted"), ("dtd", 46, "zigzagged"),
    ("eurosat", 0, "annual crop land"), ("eurosat", 2, "brushland or shrubland"), ("eurosat", 9, "a sea or a lake"),
    ("aircraft", 0, "boeing 707-320"), ("aircraft", 20, "boeing 777-300"), ("aircraft", 21, "a300b4"),
    ("aircraft", 41, "boeing 717"), ("aircraft", 72, "f-16a/b"), ("aircraft", 73, "f/a-18"),
    ("caltech101", 0, "faces"), ("caltech101", 1, "faces easy"), ("caltech101", 4, "accordion"),
    ("caltech101", 100, "yin yang"),
    ("caltech256", 0, "ak47"), ("caltech256", 1, "american flag"), ("caltech256", 14, "bonsai"),
    ("caltech256", 252, "faces easy"), ("caltech256", 256, "clutter"),
    ("cars", 0, "am general hummer suv"), ("cars", 3, "acura tl type s"), ("cars", 195, "smart fortwo convertible"),
    ("pcam", 0, "Tthis is a photo of healthy lymph node tissue."),
    ("pcam", 1, "This is a photo of lymph node tumor tissue."),
    ("imagenet-a", 0, "stingray"), ("imagenet-r", 0, "goldfish"), ("imagenet-o", 0, "goldfish"),
])
def test_known_class_names_at_known_indices(name: str, index: int, expected: str) -> None:
    assert get_dataset_spec(name).classnames[index] == expected


@pytest.mark.parametrize(("name", "index", "prompt"), [
    ("cifar10", 0, "This is a photo of a airplane"),
    ("sun397", 8, "This is a photo of a apartment building outdoor"),
    ("caltech101", 1, "This is a photo of a faces easy"),
    ("food101", 0, "A photo of apple pie, a type of food."),
    ("pets", 0, "A photo of a abyssinian, a type of pet."),  # the reference lower-cases the breed
    ("flowers102", 0, "A photo of a pink primrose, a type of flower."),
    ("dtd", 0, "A surface with a banded texture."),
    ("eurosat", 1, "A centered satellite photo of a forest."),
    ("aircraft", 0, "A photo of a boeing 707-320, a type of aircraft."),
    ("caltech256", 0, "A photo of a ak47."),
    ("cars", 0, "A photo of a am general hummer suv."),
    ("pcam", 0, "Tthis is a photo of healthy lymph node tissue."),
    ("imagenet-a", 0, "This is a photo of a stingray"),
])
def test_prompts_are_formatted_as_the_reference_does(name: str, index: int, prompt: str) -> None:
    spec = get_dataset_spec(name)
    assert len(spec.templates) == 1
    assert spec.templates[0].format(spec.classnames[index]) == prompt


def test_resize_modes_splits_and_sources() -> None:
    for name in CLASS_COUNTS:
        spec = get_dataset_spec(name)
        assert spec.resize_mode == ("resize" if name in {"cifar10", "cifar100", "stl10"} else "resize_crop"), name
        if name in WHOLE_SET:
            assert spec.splits["test"] == ALL_SPLITS and spec.hub_id is None, name
        elif name not in {"tinyimagenet", "imagenet"}:
            assert spec.splits["test"] == "test" and spec.hub_id, name
        assert "--data-dir" not in spec.layout_hint and spec.layout_hint, name
    assert get_dataset_spec("food101").hub_id == "clip-benchmark/wds_food101"
    assert get_dataset_spec("pcam").hub_id == "clip-benchmark/wds_vtab-pcam"
    assert get_dataset_spec("cifar100").hub_id == "uoft-cs/cifar100"
    assert get_dataset_spec("caltech101").exclude_classes == ("BACKGROUND_Google",)
    assert get_dataset_spec("imagenet-r").class_keys[0] == "n01443537"


def test_class_names_are_unique_except_the_reference_duplicates() -> None:
    expected = {"cars": 7, "imagenet": 2}  # cars: year stripped (2012 vs 2007 ...); OpenAI's ImageNet list
    for name in CLASS_COUNTS:
        names = get_dataset_spec(name).classnames
        assert len(names) - len(set(names)) == expected.get(name, 0), name
        assert all(n == n.strip() and n for n in names), name
    cars = get_dataset_spec("cars").classnames
    assert cars[22] == cars[23] == "audi s4 sedan"


def test_imagenet_subsets_follow_the_imagenet_class_list() -> None:
    imagenet = get_dataset_spec("imagenet").classnames
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids) and wnids[1] == "n01443537"
    for name in ("imagenet-a", "imagenet-o", "imagenet-r"):
        spec = get_dataset_spec(name)
        assert len(spec.class_keys) == 200 and list(spec.class_keys) == sorted(spec.class_keys)
        assert spec.classnames == tuple(imagenet[wnids.index(w)] for w in spec.class_keys)
    assert "n01443537" not in get_dataset_spec("imagenet-a").class_keys  # ImageNet-A has no goldfish


def test_shipped_data_files_are_clean() -> None:
    for name in CLASS_COUNTS:
        if name in {"tinyimagenet", "imagenet"} or name.startswith("imagenet-"):
            continue
        path = CLASSNAMES_DIR / f"{name}.txt"
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# "), f"{path} must say where its list comes from"
        assert len(read_lines(path)) == CLASS_COUNTS[name]
    registered = set(list_datasets())
    for line in TEMPLATES_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, template = line.split("\t")
            assert name in registered and "{}" in template


def test_zs16_recipe_lists_the_paper_datasets_in_column_order() -> None:
    recipe = load_recipe("eval/zs16")
    assert recipe.eval.datasets == PAPER_ORDER
    assert (recipe.eval.eps, recipe.eval.steps, recipe.eval.step_size) == (1.0, 100, 1.0)
    assert recipe.description and recipe.eval.split == "test"
    assert all(name in list_datasets() for name in recipe.eval.datasets)


# -- errors --------------------------------------------------------------------------------------------------

def test_unknown_names_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="did you mean 'cifar100'") as caught:
        load_image_dataset("cifar1000")
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="did you mean 'imagenet-r'"):
        get_dataset_spec("imagenet_r")


@pytest.mark.parametrize("name", ["sun397", "eurosat", "caltech101", "caltech256", "imagenet-a"])
def test_local_only_dataset_without_a_copy_says_where_to_put_it(name: str) -> None:
    with pytest.raises(RuntimeFailure) as caught:
        load_image_dataset(name, split="test")
    message = str(caught.value)
    assert f"'{name}'" in message and "--data-dir DIR" in message
    assert get_dataset_spec(name).layout_hint in message and "\n" not in message
    assert caught.value.exit_code == 1


@pytest.mark.parametrize(("name", "hub_id"), [("cifar10", "uoft-cs/cifar10"), ("pets", "clip-benchmark/wds_vtab-pets"),
                                              ("cars", "clip-benchmark/wds_cars")])
def test_unreachable_hub_dataset_names_the_hub_id_and_the_local_layout(name: str, hub_id: str) -> None:
    with pytest.raises(RuntimeFailure) as caught:
        load_image_dataset(name, split="test")
    message = str(caught.value)
    assert f"'{hub_id}'" in message and "--data-dir DIR" in message and "offline" in message
    assert "test/*.tar" in message or "test-*.parquet" in message
    assert "\n" not in message


def test_missing_local_copy_is_a_runtime_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match=r"--data-dir for caltech101 .* does not exist; put the data there "
                                             r"\(the 101_ObjectCategories folder"):
        load_image_dataset("caltech101", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeFailure, match=r"--data-dir for food101 .* does not exist"):
        load_image_dataset("food101", split="test", data_dir=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeFailure, match="found no parquet files, saved dataset or images"):
        load_image_dataset("eurosat", data_dir=str(tmp_path / "empty"))
