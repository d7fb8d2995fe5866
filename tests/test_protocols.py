"""Evaluation protocols as data files: reading and checking them, `tgazsr protocols`, and `tgazsr eval --protocol`
reading a dataset as the protocol says (class names, merged classes, templates, preprocessing, selection,
native resolution resized inside the model) and scoring as it says (attack, as-published scoring)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tgazsr_cli.cli.app import main
from tgazsr_cli.data import load_image_dataset
from tgazsr_cli.data.reading import renamed_classes, seeded_subset
from tgazsr_cli.data.transforms import build_transform, transform_for
from tgazsr_cli.data.views import DatasetView, Preprocessing, Selection
from tgazsr_cli.errors import UsageError
from tgazsr_cli.protocols import list_protocols, load_protocol

SHIPPED = ["agft", "clip-benchmark", "robustvlm", "tga-zsr"]
MINI = ["--model", "tgazsr-mini", "--pretrained", "tgazsr:mini-clip", "--workers", "0", "--no-sanity",
        "--device", "cpu"]


def write_protocol(folder: Path, body: str) -> Path:
    path = folder / "mine.yaml"
    path.write_text(body)
    return path


PROTOCOL = """
name: mine
description: two readings of the shipped digits
reference: {repository: example/reference, commit: 0123456789abcdef0123456789abcdef01234567}
reproduces: ["a table"]
attack: {name: pgd, eps: 2, steps: 2, step_size: 1, source: "eval.py:10"}
scoring: {precision: fp32, loss_reduction: sum, robust_counting: clean-and-robust}
as_published: {precision: bf16, loss_reduction: mean, robust_counting: all, batch_size: 5, source: "eval.py:20",
               why: "a test"}
defaults:
  templates: ["a picture of the digit {}."]
  preprocessing: {resize: 224, interpolation: bicubic, crop: 224}
datasets:
  digits:
    selection: {mode: seeded, count: 12, seed: 4}
    clean_selection: {mode: seeded, count: 7, seed: 4}
    source: "data.py:1"
  digits-native:
    dataset: digits
    classnames: [nought, one, two, three, four, five, six, seven, eight, nine]
    preprocessing: {native_resolution: true}
    selection: {mode: seeded, count: 12, seed: 4}
"""


def test_the_four_published_protocols_ship_and_each_reads() -> None:
    assert list_protocols() == SHIPPED
    for name in SHIPPED:
        protocol = load_protocol(name)
        assert protocol.name == name and protocol.datasets and len(protocol.reference.get("commit", "")) == 40
        for entry in protocol.datasets.values():
            assert entry.classnames and entry.templates and all("{}" in t for t in entry.templates)


def test_a_protocol_file_resolves_every_fact(tmp_path: Path) -> None:
    protocol = load_protocol(str(write_protocol(tmp_path, PROTOCOL)))
    digits, native = protocol.datasets["digits"], protocol.datasets["digits-native"]
    assert digits.dataset == native.dataset == "digits" and digits.split == "test"
    assert digits.classnames[0] == "zero" and native.classnames[0] == "nought"  # the dataset file's, or its own
    assert digits.templates == ("a picture of the digit {}.",)
    assert digits.preprocessing == Preprocessing(resize=224, interpolation="bicubic", crop=224)
    assert native.preprocessing.native_resolution and native.preprocessing.interpolation == "bicubic"
    assert digits.selection == Selection("seeded", 12, 4)
    assert protocol.attack.name == "pgd" and protocol.attack.eps == 2 and protocol.scoring.precision == "fp32"
    published = load_protocol(str(tmp_path / "mine.yaml"), as_published=True)
    assert (published.scoring.precision, published.scoring.loss_reduction, published.scoring.robust_counting) == (
        "bf16", "mean", "all")
    as_json = published.to_dict()
    assert as_json["applied"] == "as-published" and as_json["datasets"]["digits"]["num_classes"] == 10


@pytest.mark.parametrize(("change", "message"), [
    (("attack: {name: pgd,", "attack: {name: pdg,"), "unknown attack"),
    (("  digits:\n    selection", "  digitz:\n    selection"), "unknown dataset 'digitz'"),
    (("classnames: [nought, one,", "classnames: [one,"), "9 names for the 10 classes of digits"),
    (("interpolation: bicubic", "interpolation: lanczos"), "interpolation must be one of bilinear, bicubic"),
    (("{mode: seeded, count: 7, seed: 4}\n    source", "{mode: stream}\n    source"),
     "a stream selection needs a positive count"),
    (("scoring: {precision: fp32,", "scoring: {precison: fp32,"), "unknown field 'precison'"),
])
def test_a_mistake_in_a_protocol_file_is_one_line_naming_the_field(tmp_path: Path, change: tuple[str, str],
                                                                   message: str) -> None:
    assert change[0] in PROTOCOL
    with pytest.raises(UsageError, match=message):
        load_protocol(str(write_protocol(tmp_path, PROTOCOL.replace(*change))))


def test_protocols_command_lists_and_prints_the_resolved_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocols"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in SHIPPED)
    assert main(["protocols", "agft", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "agft" and printed["applied"] == "default"
    assert set(printed["datasets"]["cifar10"]) >= {"classnames", "templates", "split", "preprocessing", "selection"}
    assert main(["protocols", "agtf"]) == 2
    assert "did you mean 'agft'" in capsys.readouterr().err


def test_merged_classes_fold_labels_and_take_the_protocols_names() -> None:
    view = DatasetView(classnames=("person", "leopard", "bike"), merge_classes={"Faces_easy": "Faces"})
    names, mapping = renamed_classes(["faces", "faces easy", "leopards", "motorbikes"], None, view, "caltech")
    assert names == ["person", "leopard", "bike"] and mapping == [0, 0, 1, 2]
    names, mapping = renamed_classes(["faces", "faces easy", "leopards", "motorbikes"], [3, 2, 1, 0], view, "x")
    assert mapping == [2, 1, 0, 0]  # composed with the dataset's own source->label map
    with pytest.raises(UsageError, match="the protocol names 2 classes, the dataset has 3 after merging"):
        renamed_classes(["faces", "faces easy", "leopards", "motorbikes"], None,
                        DatasetView(classnames=("a", "b"), merge_classes={"faces easy": "faces"}), "x")


def test_preprocessing_scales_to_the_model_and_matches_the_dataset_files_transform() -> None:
    image = Image.new("RGB", (50, 40), (10, 200, 30))
    for mode in ("resize_crop", "resize"):
        expected = build_transform(28, mode)(image)
        assert torch.equal(transform_for(Preprocessing.of_resize_mode(mode), 28)(image), expected)
    bicubic = transform_for(Preprocessing(resize=224, interpolation="bicubic", crop=224), 28)(image)
    assert bicubic.shape == (3, 28, 28)
    native = transform_for(Preprocessing(native_resolution=True), 28)(image)
    assert native.shape == (3, 40, 50)  # the image's own pixels: the model resizes inside


def test_the_model_resizes_native_images_inside_with_the_protocols_interpolation(tiny_model: torch.nn.Module) -> None:
    model = tiny_model
    size = model.image_size
    images = torch.rand(2, 3, 11, 13, generator=torch.Generator().manual_seed(0))
    resized = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False, antialias=False)
    model.resize_inside = ("bicubic", False)
    try:
        with torch.no_grad():
            assert torch.allclose(model(images), model(resized), atol=1e-6)
        gradient = torch.autograd.grad(model(images.requires_grad_()).sum(), images)[0]
        assert gradient.shape == images.shape and gradient.abs().sum() > 0  # the attack sees native pixels
    finally:
        model.resize_inside = None


def test_a_views_selection_is_read_and_limit_narrows_it() -> None:
    view = DatasetView(selection=Selection("seeded", 30, 2))
    data = load_image_dataset("digits", split="test", image_size=28, view=view)
    assert len(data.dataset) == 30 and "random subset of 30 of 539 (seed 2)" in data.source
    narrowed = load_image_dataset("digits", split="test", image_size=28, view=view, limit=5)
    assert len(narrowed.dataset) == 5
    assert set(seeded_subset(539, 5, 2)) < set(seeded_subset(539, 30, 2))  # a seeded subset of the subset


def test_eval_under_a_protocol_scores_its_datasets_as_it_says(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = write_protocol(tmp_path, PROTOCOL)
    assert main(["eval", *MINI, "--protocol", str(path), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["dataset"] for r in records] == ["digits", "digits-native"]
    for record in records:
        assert record["protocol"] == "mine" and record["extra"]["protocol_scoring"] == "default"
        assert record["num_examples"] == 12 and record["attack"] == "pgd" and record["threat"]["eps"] == 2
        assert record["threat"]["loss_reduction"] == "sum" and "random subset of 12 of 539 (seed 4)" in record[
            "source"]
    assert main(["eval", *MINI, "--protocol", str(path), "--datasets", "digits", "--as-published", "--eps", "1",
                 "--json"]) == 0
    printed = capsys.readouterr()
    (record,) = json.loads(printed.out)
    assert "batch-mean attack loss, robust counted over all images, protocol mine (as published)" in " ".join(
        printed.err.split())  # the report's threat model says how it was scored
    assert record["extra"]["protocol_scoring"] == "as-published" and record["threat"]["eps"] == 1  # flags win
    assert record["threat"]["precision"] == "bf16" and record["threat"]["loss_reduction"] == "mean"
    assert record["robust_counting"] == "all" and record["batch_size"] == 5  # the reference's batch of the mean
    assert main(["eval", *MINI, "--protocol", str(path), "--eps", "0", "--json"]) == 0
    clean = json.loads(capsys.readouterr().out)  # a clean-only run scores the reference's clean images
    assert [(r["dataset"], r["attack"], r["num_examples"]) for r in clean] == [("digits", "none", 7),
                                                                              ("digits-native", "none", 12)]


def test_eval_protocol_usage_errors_come_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_protocol(tmp_path, PROTOCOL)
    assert main(["eval", *MINI, "--protocol", str(path), "--datasets", "cifar10"]) == 2
    assert "unknown dataset of protocol mine 'cifar10'" in capsys.readouterr().err
    assert main(["eval", *MINI, "--datasets", "digits", "--as-published"]) == 2
    assert "name one with --protocol" in capsys.readouterr().err
    assert main(["eval", *MINI, "--protocol", "robustvml"]) == 2
    assert "did you mean 'robustvlm'" in capsys.readouterr().err


def test_training_prompts_with_the_class_names_a_recipe_or_a_protocol_gives() -> None:
    import tgazsr_cli as tz
    from tgazsr_cli.training.setup import load_training_data, training_classnames

    names = [f"digit {n}" for n in range(10)]
    recipe = tz.load_recipe("tiny", ["data.dataset=digits", f"data.classnames={json.dumps(names)}"])
    assert load_training_data(recipe, 28).classnames == names
    agft = tz.load_recipe("imagenet/agft-vitb32-imagenet")
    ours = list(tz.load_protocol("tga-zsr").datasets["cifar10"].classnames)
    imagenet = training_classnames(agft, ["x"] * 1000)
    assert imagenet == list(load_protocol("agft").datasets["imagenet"].classnames) and imagenet[7] == "cock"
    with pytest.raises(UsageError, match=r"data\.classnames has 10 names; digits has 3 classes"):
        training_classnames(recipe, ours[:3])
    both = tz.load_recipe("tiny", ["data.classnames=[a]", "data.classnames_protocol=agft"])
    with pytest.raises(UsageError, match="keep one"):
        training_classnames(both, ["a"])


def test_a_stream_selection_follows_the_shards_of_a_webdataset_copy_in_number_order(tmp_path: Path) -> None:
    from tests.test_data_formats import write_tar
    from tests.test_hub_webdataset import shard
    from tgazsr_cli.data.selection import stream_indices

    copy = tmp_path / "wds_cifar10"
    for number in range(11):  # 10.tar after 2.tar, as webdataset's {0..10}.tar reads them
        write_tar(copy / "test" / f"{number}.tar", shard([(number + k) % 3 for k in range(3)], 3 * number, "png"))
    view = DatasetView(selection=Selection("stream", 10, 0))
    data = load_image_dataset("cifar10", split="test", image_size=28, data_dir=str(copy), view=view)
    assert "the first 10 of a shuffled stream of 33, 11 shards (seed 0)" in data.source
    expected = stream_indices(33, 10, 0, shards=[3] * 11)
    assert expected != stream_indices(33, 10, 0)  # the layout matters
    assert data.dataset.all_labels() == [(position // 3 + position % 3) % 3 for position in expected]


def test_shipped_protocols_read_local_copies_as_their_references(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_data_formats import cifar_copies, cifar_examples

    copies = cifar_copies(tmp_path)
    size = len(cifar_examples())
    quick = [*MINI, "--datasets", "cifar10", "--batch-size", "1", "--json"]  # native sizes differ: one at a time
    assert main(["eval", *quick, "--protocol", "agft", "--data-dir", str(copies["parquet"]), "--steps", "1"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["protocol"] == "agft" and record["num_examples"] == size and record["attack"] == "pgd"
    assert record["threat"]["steps"] == 1 and record["threat"]["eps"] == 1  # AGFT's eps, our quick budget
    assert main(["eval", *quick, "--protocol", "robustvlm", "--data-dir", str(copies["webdataset"]),
                 "--attack", "pgd", "--steps", "1"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert f"the first {size} of a shuffled stream of {size}, 2 shards (seed 0)" in record["source"]
    assert record["threat"]["eps"] == 2 and record["extra"]["clip_benchmark_name"] == "wds/vtab/cifar10"
    assert main(["eval", *quick, "--protocol", "robustvlm", "--data-dir", str(copies["webdataset"]),
                 "--eps", "0"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["attack"] == "none" and "shuffled stream" not in record["source"]  # the clean column: all images


def test_a_subset_selection_finds_its_images_by_file_name_without_reading_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    import tgazsr_cli.data.selection as selection
    from tgazsr_cli.data.reading import select_examples

    keys = selection.subset_keys("robustbench-imagenet-5000")[:3]
    monkeypatch.setattr(selection, "subset_keys", lambda name: keys)
    paths = ["extra.JPEG", *(key.replace("/", "_") for key in reversed(keys)), None]  # another layout, other order
    features = datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")})
    table = datasets.Dataset.from_dict({"image": [{"bytes": b"not an image", "path": p} for p in paths],
                                        "label": list(range(len(paths)))}, features=features)
    picked, chosen = select_examples(table, "image", Selection("subset", name="robustbench-imagenet-5000"), None)
    assert picked == [3, 2, 1] and chosen == "subset robustbench-imagenet-5000 (3 of 5)"  # in the list's order
    assert select_examples(table, "image", Selection("subset", name="robustbench-imagenet-5000"), 2)[0] == [3, 2]


def test_preprocessing_keys_a_protocol_leaves_out_are_the_dataset_files(tmp_path: Path) -> None:
    path = write_protocol(tmp_path, """
name: partial
datasets:
  cifar10: {preprocessing: {interpolation: bicubic}}
  caltech101: {}
""")
    protocol = load_protocol(str(path))
    assert protocol.datasets["cifar10"].preprocessing == Preprocessing(resize=(224, 224), interpolation="bicubic")
    assert protocol.datasets["caltech101"].preprocessing == Preprocessing(resize=256, crop=224)  # resize_crop
