"""The dataset table of the 16 zero-shot datasets and ImageNet-A/O/R (spec §6): class lists, prompts, splits,
resize modes, sources, the shipped data files, the zs16 eval recipe and the errors for data that is not there.

Expected values come from the paper's evaluation code (TGA-ZSR utils.py and replace/datasets/*.py) as spec §6
summarises it; no network is used (the hub is put offline).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tgazsr_cli.config import load_recipe
from tgazsr_cli.data import get_dataset_spec, list_datasets, load_image_dataset
from tgazsr_cli.data.catalog import ENV_PATH, dataset_files, read_yaml
from tgazsr_cli.data.classnames import CLASSNAMES_DIR, DATASETS_DIR, imagenet_wnids, read_lines
from tgazsr_cli.data.specs import ALL_SPLITS, DatasetSpec, SplitSpec
from tgazsr_cli.errors import RuntimeFailure, UsageError

PAPER_ORDER = ["tinyimagenet", "cifar10", "cifar100", "stl10", "sun397", "food101", "pets", "flowers102", "dtd",
               "eurosat", "aircraft", "imagenet", "caltech101", "caltech256", "cars", "pcam"]
CLASS_COUNTS = {"tinyimagenet": 200, "cifar10": 10, "cifar100": 100, "stl10": 10, "sun397": 397, "food101": 101,
                "pets": 37, "flowers102": 102, "dtd": 47, "eurosat": 10, "aircraft": 100, "imagenet": 1000,
                "caltech101": 101, "caltech256": 257, "cars": 196, "pcam": 2,
                "imagenet-a": 200, "imagenet-o": 200, "imagenet-r": 200}
WHOLE_SET = {"sun397", "eurosat", "caltech101", "caltech256", "imagenet-a", "imagenet-o", "imagenet-r"}
ROOT = Path(__file__).resolve().parents[1]
# every registered spec as the Python table (specs.py, zeroshot_specs.py) and the shipped manifests gave it before
# the dataset files existed; written once from that code (lists over 40 items as count + sha256 of the lines)
SNAPSHOT = Path(__file__).with_name("data") / "dataset_specs_snapshot.json"


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
            assert spec.splits["test"].source == ALL_SPLITS and spec.hub_id is None, name
        elif name not in {"tinyimagenet", "imagenet"}:
            assert spec.splits["test"].source == "test" and spec.hub_id, name
        assert isinstance(spec.splits["test"].size, int) and spec.splits["test"].size > 0, name
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
        path = CLASSNAMES_DIR / f"{name}.txt"
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# "), f"{path} must say where its list comes from"
        assert len(read_lines(path)) == CLASS_COUNTS[name]
    registered = set(list_datasets())
    files = dataset_files(DATASETS_DIR)
    assert {path.stem for path in files} == set(CLASS_COUNTS)  # one file per dataset, named after it
    for path in files:
        raw = read_yaml(path)
        assert raw["name"] == path.stem and path.stem in registered
        assert raw["templates"] and all("{}" in template for template in raw["templates"]), path
        assert str(path) == get_dataset_spec(path.stem).defined_in


def _packed(values: tuple[str, ...] | list[str]) -> list[str] | dict[str, object]:
    """A list as the snapshot stores it: as it is up to 40 items, else count, sha256, first and last item."""
    values = list(values)
    if len(values) <= 40:
        return values
    digest = hashlib.sha256("\n".join(values).encode()).hexdigest()
    return {"count": len(values), "sha256": digest, "first": values[0], "last": values[-1]}


def test_dataset_files_give_exactly_the_specs_the_python_table_gave() -> None:
    from tgazsr_cli.data import BUILTIN_ROOT, wnid_names

    snapshot = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert sorted(snapshot["specs"]) == sorted(name for name in list_datasets())
    for name, old in snapshot["specs"].items():
        spec = get_dataset_spec(name)
        new = {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)}
        new["splits"] = {split: entry.source for split, entry in spec.splits.items()}
        if spec.local_path is not None:
            new["local_path"] = Path(spec.local_path).relative_to(BUILTIN_ROOT.parent).as_posix()
        new = {key: _packed(value) if isinstance(value, tuple) else value for key, value in new.items()}
        assert {key: new[key] for key in old} == old, name
    assert _packed(list(wnid_names())) == snapshot["tinyimagenet_wnids"]
    assert _packed(list(wnid_names().values())) == snapshot["tinyimagenet_names"]
    assert _packed(imagenet_wnids()) == snapshot["imagenet_wnids"]


def test_split_sizes_are_numbers_in_the_spec() -> None:
    tiny, imagenet = get_dataset_spec("tinyimagenet"), get_dataset_spec("imagenet")
    assert (tiny.split_size("train"), tiny.split_size("test"), tiny.split_size("val")) == (100_000, 10_000, 10_000)
    assert tiny.splits["test"].source == tiny.source_split("valid") == "valid"
    assert imagenet.split_size("test") == 50_000 and get_dataset_spec("sun397").split_size("all") == 108_754
    assert get_dataset_spec("cifar10").split_size("train") is None  # not stated: no number made up
    assert get_dataset_spec("emoji-seen").split_size("validation") == 600  # shipped: manifest num_val
    assert get_dataset_spec("cifar10").source_split("holdout") == "holdout"  # unmapped names pass through


# -- datasets added from $TGAZSR_DATASET_PATH ----------------------------------------------------------------

TOY_YAML = """\
# a dataset that lives outside the package
name: toy-colours
description: Two colours drawn in tests; test 4
sources:
  local: pictures            # relative to this file
  layout: "pictures/test/<colour>/*.png; or {generic}"
splits:
  test: {size: 4, aliases: [eval]}
preprocessing:
  resize_mode: resize
classnames: [red, blue]      # label order: red 0, blue 1 (the folders sort the other way)
templates: ["a {} square", "something {}"]
license: CC0
"""


def write_toy_dataset(folder: Path) -> Path:
    """`folder/toy-colours.yaml` and the image folder it names: 2 red and 2 blue 12x12 squares."""
    for colour, rgb in (("red", (230, 20, 20)), ("blue", (20, 20, 230))):
        (folder / "pictures" / "test" / colour).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (12 + i, 12), rgb).save(folder / "pictures" / "test" / colour / f"{i}.png")
    (folder / "toy-colours.yaml").write_text(TOY_YAML, encoding="utf-8")
    return folder / "toy-colours.yaml"


def test_a_dataset_file_on_the_dataset_path_is_listed_loaded_and_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_toy_dataset(tmp_path / "mine")
    assert "toy-colours" not in list_datasets()
    monkeypatch.setenv(ENV_PATH, os.pathsep.join([str(tmp_path / "not-there"), str(tmp_path / "mine")]))
    assert "toy-colours" in list_datasets()
    spec = get_dataset_spec("toy-colours")
    assert spec.classnames == ("red", "blue") and spec.resize_mode == "resize" and spec.extra == {"license": "CC0"}
    assert spec.split_size("test") == spec.split_size("eval") == 4 and spec.defined_in == str(path)
    assert spec.local_path == str(tmp_path / "mine" / "pictures") and spec.hub_id is None
    assert spec.layout_hint.startswith("pictures/test/<colour>/*.png; or a folder of parquet files")
    data = load_image_dataset("toy-colours", split="test", image_size=8)
    assert data.classnames == ["red", "blue"] and data.templates == ["a {} square", "something {}"]
    items = [data.dataset[i] for i in range(len(data.dataset))]
    assert [label for _, label in items] == [1, 1, 0, 0]  # blue/ sorts first, but blue is class 1
    assert all((image[0].mean() > image[2].mean()) == (label == 0) for image, label in items)

    env = {**os.environ, ENV_PATH: str(tmp_path / "mine"), "COLUMNS": "200"}
    shown = subprocess.run([sys.executable, "-m", "tgazsr_cli", "datasets"], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=120, check=True).stdout
    assert "toy-colours" in shown and "Two colours drawn in tests" in shown and "cifar10" in shown

    monkeypatch.delenv(ENV_PATH)
    assert "toy-colours" not in list_datasets()  # the table follows the variable


def test_broken_or_clashing_dataset_files_are_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_toy_dataset(tmp_path)
    (tmp_path / "typo.yaml").write_text("name: typo\nclassnames: [a, b]\ntemplate: ['{}']\n")
    (tmp_path / "clash.yaml").write_text("name: cifar10\nclassnames: [a, b]\n")
    monkeypatch.setenv(ENV_PATH, str(tmp_path))
    with pytest.warns(UserWarning) as caught:
        names = list_datasets()
    messages = " | ".join(str(w.message) for w in caught)
    assert "unknown field 'template'" in messages and "did you mean 'templates'" in messages
    assert "'cifar10' is already registered" in messages
    assert "toy-colours" in names and "typo" not in names
    assert get_dataset_spec("cifar10").hub_id == "uoft-cs/cifar10"  # the package's entry is untouched


@pytest.mark.parametrize(("text", "message"), [
    ("classnames: [a, b]\nsplits: {test: {size: many}}\n", "size must be a whole number"),
    ("classnames: [a, b]\nsplits: {test: {whole: true, hub_split: test}}\n", "drop hub_split"),
    ("classnames: [a, b]\npreprocessing: {resize_mode: squash}\n", "resize_mode must be one of"),
    ("classnames: [a, b]\ntemplates: ['no slot']\n", "needs '{}'"),
    ("classnames: [a, b]\nclass_keys: [only-one]\n", "1 class keys for 2 class names"),
    ("description: no classes\n", "'classnames' is required"),
    ("classnames: missing.txt\n", "cannot read"),
    ("classnames: [a, b\n", "not valid YAML"),
])
def test_dataset_file_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    from tgazsr_cli.data import spec_from_yaml

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        spec_from_yaml(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_the_documented_example_is_a_valid_dataset_file(tmp_path: Path) -> None:
    from tgazsr_cli.data import spec_from_yaml

    docs = (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")
    example = docs.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "flowers-mine.yaml").write_text(example)
    spec = spec_from_yaml(tmp_path / "flowers-mine.yaml")
    assert spec.name == "flowers-mine" and len(spec.classnames) == 5 and spec.split_size("val") == 500
    assert spec.local_path == str(tmp_path / "flowers")


def test_a_keyed_class_file_gives_names_and_class_keys(tmp_path: Path) -> None:
    from tgazsr_cli.data import spec_from_yaml

    (tmp_path / "names.txt").write_text("# where the list comes from\nFolderA\tthe first class\nFolderB\tsecond\n")
    path = tmp_path / "keyed.yaml"
    path.write_text("classnames: names.txt\nclass_keys: names.txt\nsplits: {test: {whole: true}}\n")
    spec = spec_from_yaml(path)
    assert spec.name == "keyed" and spec.classnames == ("the first class", "second")
    assert spec.class_keys == ("FolderA", "FolderB") and spec.splits["test"].source == ALL_SPLITS
    assert spec.templates == ("This is a photo of a {}",) and spec.resize_mode == "resize_crop"
    plain = DatasetSpec(name="plain", classnames=("a", "b"), templates=("{}",), resize_mode="resize", hub_id=None,
                        splits={"test": "valid"}, description="")  # type: ignore[dict-item]
    assert plain.source_split("test") == "valid" and plain.split_size("test") is None  # a string: the source name
    assert plain.splits == {"test": SplitSpec("valid")}


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
