"""Data layer (spec §3, §6, §8.10): source formats, class names, splits, subsets, transforms, broken images.

All data is generated here: small coloured shapes (red circle, blue square, green triangle) whose colour tells
the class, so a test can check that each decoded tensor carries the right label. No network: the hub is
put offline and the `datasets` cache points into tmp_path.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image, ImageDraw

from tgazsr_cli.data import (
    DatasetSpec,
    SplitSpec,
    build_transform,
    collate_skip_broken,
    discover_shipped,
    get_dataset_spec,
    list_datasets,
    load_image_dataset,
    register_dataset,
    register_shipped,
    seeded_subset,
    unregister_dataset,
    wnid_names,
)
from tgazsr_cli.data.classnames import WNID_FILE, readable_classname
from tgazsr_cli.errors import RuntimeFailure, UsageError

FOLDERS = ["blue-square", "green_triangle", "red_circle"]  # sorted: label order of an image folder
NAMES = ["blue square", "green triangle", "red circle"]
COLOURS = {0: (20, 40, 230), 1: (30, 200, 40), 2: (230, 30, 20)}  # class -> RGB
PER_CLASS = 4
SIZE = 32
# three real Tiny-ImageNet classes (sorted wnid order = class index 0, 81, 107 of 200)
WNIDS = {"n01443537": 0, "n02917067": 1, "n03444034": 2}  # wnid -> shape/colour class used for its images


def shape_image(cls: int, i: int) -> Image.Image:
    """A non-square white image with one big coloured shape covering the centre; size varies with `i`."""
    width, height = 40 + 4 * i, 36
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    box = (4, 2, width - 4, height - 2)
    if cls == 0:
        draw.rectangle(box, fill=COLOURS[0])
    elif cls == 1:
        draw.polygon([(width // 2, 0), (0, height - 1), (width - 1, height - 1)], fill=COLOURS[1])
        draw.rectangle((width // 4, height // 3, 3 * width // 4, height - 1), fill=COLOURS[1])
    else:
        draw.ellipse(box, fill=COLOURS[2])
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def colour_class(tensor: torch.Tensor) -> int:
    """Which class a decoded tensor shows, from the colour of its centre."""
    h, w = tensor.shape[1] // 2, tensor.shape[2] // 2
    rgb = tensor[:, h - 2: h + 2, w - 2: w + 2].mean(dim=(1, 2))
    return {2: 0, 1: 1, 0: 2}[int(rgb.argmax())]  # blue -> 0, green -> 1, red -> 2


def examples() -> list[tuple[Image.Image, int, str]]:
    """(image, label, file name) in image-folder order: by class folder, then file name."""
    return [(shape_image(c, i), c, f"{FOLDERS[c]}/{i}.png") for c in range(3) for i in range(PER_CLASS)]


def write_folder(root: Path) -> Path:
    for image, _label, name in examples():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / name)
    return root


def arrow_table(with_metadata: bool) -> pa.Table:
    """Parquet content as HF writes it: image struct {bytes, path}, int64 label (+ ClassLabel metadata)."""
    rows = examples()
    table = pa.table({
        "image": [{"bytes": png_bytes(img), "path": name} for img, _, name in rows],
        "label": pa.array([label for _, label, _ in rows], pa.int64()),
    })
    if with_metadata:
        features = {"image": {"_type": "Image"}, "label": {"names": FOLDERS, "_type": "ClassLabel"}}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    return table


def decoded(data) -> list[tuple[torch.Tensor, int]]:
    return [data.dataset[i] for i in range(len(data.dataset))]


pytestmark = pytest.mark.usefixtures("offline_hf")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "shapes")


# -- formats -------------------------------------------------------------------------------------------------

def test_image_folder_names_labels_and_tensors(folder: Path) -> None:
    data = load_image_dataset(str(folder), image_size=SIZE)
    assert data.classnames == NAMES  # folder names with _ and - turned into spaces
    assert data.templates == ["This is a photo of a {}"]
    assert data.name == "shapes" and data.source == str(folder) and data.num_skipped == 0
    assert len(data.dataset) == 3 * PER_CLASS
    for tensor, label in decoded(data):
        assert tensor.shape == (3, SIZE, SIZE) and tensor.dtype == torch.float32
        assert tensor.min() >= 0.0 and tensor.max() <= 1.0
        assert colour_class(tensor) == label
    assert [label for _, label in decoded(data)] == [0] * 4 + [1] * 4 + [2] * 4


def test_parquet_file_dir_saved_and_folder_give_identical_tensors(tmp_path: Path, folder: Path) -> None:
    pq.write_table(arrow_table(with_metadata=True), tmp_path / "shapes.parquet")
    parquet_dir = tmp_path / "pq" / "data"
    parquet_dir.mkdir(parents=True)
    pq.write_table(arrow_table(with_metadata=True), parquet_dir / "train-00000-of-00001.parquet")
    pq.write_table(arrow_table(with_metadata=True).slice(0, 3), parquet_dir / "valid-00000-of-00001.parquet")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=FOLDERS)})
    rows = examples()
    saved = datasets.Dataset.from_dict(
        {"image": [{"bytes": png_bytes(img), "path": None} for img, _, _ in rows],
         "label": [y for _, y, _ in rows]},
        features=features,
    )
    saved.save_to_disk(str(tmp_path / "saved"))

    reference = decoded(load_image_dataset(str(folder), image_size=SIZE))
    for source in (tmp_path / "shapes.parquet", tmp_path / "pq", tmp_path / "saved"):
        data = load_image_dataset(str(source), split="train", image_size=SIZE)
        assert data.classnames == NAMES, source
        items = decoded(data)
        assert len(items) == len(reference)
        for (a, la), (b, lb) in zip(items, reference, strict=True):
            assert la == lb and torch.equal(a, b), source
    valid = load_image_dataset(str(tmp_path / "pq"), split="test", image_size=SIZE)  # no test files: valid
    assert len(valid.dataset) == 3 and "split validation" in valid.source


def test_parquet_without_metadata_needs_class_names(tmp_path: Path) -> None:
    pq.write_table(arrow_table(with_metadata=False), tmp_path / "train.parquet")
    with pytest.raises(UsageError, match=r"classnames\.txt"):
        load_image_dataset(str(tmp_path / "train.parquet"))
    (tmp_path / "classnames.txt").write_text("blue square\ngreen triangle\nred circle\n")
    data = load_image_dataset(str(tmp_path / "train.parquet"), image_size=SIZE)
    assert data.classnames == NAMES
    assert all(colour_class(t) == y for t, y in decoded(data))


def test_save_to_disk_dict_split_resolution(tmp_path: Path) -> None:
    rows = examples()
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=FOLDERS)})
    part = {"image": [png_bytes(img) for img, _, _ in rows], "label": [y for _, y, _ in rows]}
    train = datasets.Dataset.from_dict(part, features=features)
    both = datasets.DatasetDict({"train": train, "validation": train.select(range(5))})
    both.save_to_disk(str(tmp_path / "dd"))
    assert len(load_image_dataset(str(tmp_path / "dd"), split="train", image_size=SIZE).dataset) == 12
    for split in ("val", "valid", "test"):  # test falls back to the validation split
        data = load_image_dataset(str(tmp_path / "dd"), split=split, image_size=SIZE)
        assert len(data.dataset) == 5 and data.split == split and "split validation" in data.source
    with pytest.raises(UsageError, match="no split 'holdout'; available: train, validation"):
        load_image_dataset(str(tmp_path / "dd"), split="holdout")


def test_unlabelled_split_is_refused(tmp_path: Path) -> None:
    table = arrow_table(with_metadata=True)
    table = table.set_column(1, "label", pa.array([-1] * table.num_rows, pa.int64()))
    pq.write_table(table, tmp_path / "test.parquet")
    with pytest.raises(UsageError, match="unlabelled"):
        load_image_dataset(str(tmp_path / "test.parquet"))


# -- Tiny-ImageNet -------------------------------------------------------------------------------------------

def write_tiny_imagenet(root: Path, *, missing_val: bool = False) -> Path:
    """The original tiny-imagenet-200 layout with three of its classes."""
    (root / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    annotations = []
    for wnid, cls in WNIDS.items():
        images = root / "train" / wnid / "images"
        images.mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(3):
            shape_image(cls, i).save(images / f"{wnid}_{i}.JPEG", format="PNG")
    val = root / "val" / "images"
    val.mkdir(parents=True)
    for k, wnid in enumerate(["n03444034", "n01443537", "n02917067", "n01443537"]):
        shape_image(WNIDS[wnid], k).save(val / f"val_{k}.JPEG", format="PNG")
        annotations.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t10\t10")
    if missing_val:
        annotations.append("val_99.JPEG\tn01443537\t0\t0\t10\t10")
    (root / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    (root / "test" / "images").mkdir(parents=True)
    shape_image(0, 0).save(root / "test" / "images" / "test_0.JPEG", format="PNG")
    return root


def test_tinyimagenet_original_layout_with_wnid_names(tmp_path: Path) -> None:
    root = write_tiny_imagenet(tmp_path / "tiny-imagenet-200", missing_val=True)
    all_names = list(wnid_names().values())
    index = {wnid: list(wnid_names()).index(wnid) for wnid in WNIDS}
    assert index == {"n01443537": 0, "n02917067": 81, "n03444034": 107}
    colour_of = {index[wnid]: cls for wnid, cls in WNIDS.items()}

    train = load_image_dataset("tinyimagenet", split="train", data_dir=str(root), image_size=SIZE)
    assert train.classnames == all_names and len(train.classnames) == 200
    assert train.templates == ["This is a photo of a {}"]
    assert len(train.dataset) == 9
    assert sorted({y for _, y in decoded(train)}) == [0, 81, 107]
    assert all(colour_class(t) == colour_of[y] for t, y in decoded(train))

    for data_dir in (root, root / "val"):
        test = load_image_dataset("tinyimagenet", split="test", data_dir=str(data_dir), image_size=SIZE)
        assert [y for _, y in decoded(test)] == [107, 0, 81, 0]  # labelled from val_annotations.txt
        assert all(colour_class(t) == colour_of[y] for t, y in decoded(test))
        assert test.num_skipped == 1 and "val_annotations.txt" in test.source
        assert test.name == "tinyimagenet" and test.split == "test"

    plain = load_image_dataset(str(root / "val"), image_size=SIZE)  # not registered: wnids still mapped
    assert plain.classnames == ["goldfish", "bullet train", "go kart"]
    shown = [plain.classnames[y] for _, y in decoded(plain)]
    assert shown == ["go kart", "goldfish", "bullet train", "goldfish"]
    with pytest.raises(UsageError, match="unlabelled"):
        load_image_dataset(str(root), split="test")  # test/images has no labels


def test_tinyimagenet_hub_parquet_copy_matches_original_folder(tmp_path: Path) -> None:
    root = write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=list(wnid_names()))})
    folder_val = load_image_dataset("tinyimagenet", split="test", data_dir=str(root), image_size=SIZE)
    val_files = sorted((root / "val" / "images").iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    wnids = ["n03444034", "n01443537", "n02917067", "n01443537"]
    copy = tmp_path / "hub-copy" / "data"
    copy.mkdir(parents=True)
    datasets.Dataset.from_dict(
        {"image": [{"bytes": p.read_bytes(), "path": p.name} for p in val_files],
         "label": [list(wnid_names()).index(w) for w in wnids]},
        features=features,
    ).to_parquet(str(copy / "valid-00000-of-00001-70d52db3c749a935.parquet"))
    datasets.Dataset.from_dict({"image": [], "label": []}, features=features).to_parquet(
        str(copy / "train-00000-of-00001-1359597a978bc4fa.parquet"))
    hub_val = load_image_dataset("tinyimagenet", split="test", data_dir=str(copy.parent), image_size=SIZE)
    assert hub_val.classnames == folder_val.classnames
    for (a, la), (b, lb) in zip(decoded(hub_val), decoded(folder_val), strict=True):
        assert la == lb and torch.equal(a, b)


def test_wnid_file_has_200_unique_clean_entries() -> None:
    table = wnid_names()
    assert len(table) == 200 and len(set(table.values())) == 200
    assert list(table) == sorted(table) and all(w.startswith("n") and len(w) == 9 for w in table)
    lines = [ln for ln in WNID_FILE.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 200
    assert table["n01443537"] == "goldfish" and table["n03444034"] == "go kart"
    assert table["n02988304"] == "cd player"  # spec §3: lower-cased
    assert table["n03992509"] == "potter's wheel"
    assert all(name == name.lower() and not set("_-/") & set(name) for name in table.values())
    assert get_dataset_spec("tinyimagenet").classnames == tuple(table.values())
    assert readable_classname("n12267677") == "acorn" and readable_classname("sea_slug-x") == "sea slug x"


def test_registered_spec_fixes_label_order_by_name(folder: Path) -> None:
    order = ("red circle", "green triangle", "blue square")  # not the folder's sorted order
    register_dataset(DatasetSpec(name="shapes-test", classnames=order, templates=("a {} shape",),
                                 resize_mode="resize", hub_id=None, splits={}, description="test",
                                 local_path=str(folder)))
    try:
        data = load_image_dataset("shapes-test", image_size=SIZE)
        assert data.classnames == list(order) and data.templates == ["a {} shape"]
        colour_to_name = {0: "blue square", 1: "green triangle", 2: "red circle"}
        assert all(data.classnames[y] == colour_to_name[colour_class(t)] for t, y in decoded(data))
        override = load_image_dataset("shapes-test", image_size=SIZE, templates=["itap of a {}"])
        assert override.templates == ["itap of a {}"]
    finally:
        unregister_dataset("shapes-test")


# -- errors --------------------------------------------------------------------------------------------------

def test_hub_unreachable_gives_runtime_failure_naming_the_hub_id() -> None:
    with pytest.raises(RuntimeFailure) as caught:
        load_image_dataset("tinyimagenet", split="test")
    message = str(caught.value)
    assert "'zh-plus/tiny-imagenet'" in message and "--data-dir" in message
    assert "val_annotations.txt" in message  # the expected local layout
    assert "offline" in message and "\n" not in message and caught.value.exit_code == 1
    with pytest.raises(RuntimeFailure, match="'someone/some-set'"):
        load_image_dataset("hf:someone/some-set")


def test_hub_connection_error_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def no_network(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'zh-plus/tiny-imagenet' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    monkeypatch.setattr("tgazsr_cli.data.sources.hub.unreachable_reason", lambda url=None: None)  # probe answered
    with pytest.raises(RuntimeFailure, match=r"could not load 'zh-plus/tiny-imagenet'.*LocalEntryNotFound"):
        load_image_dataset("tinyimagenet", split="train")


def test_hub_source_with_local_copy(tmp_path: Path) -> None:
    pq.write_table(arrow_table(with_metadata=True), tmp_path / "train.parquet")
    data = load_image_dataset("hf:org/shapes", data_dir=str(tmp_path), image_size=SIZE)
    assert data.name == "org/shapes" and data.classnames == NAMES and len(data.dataset) == 12
    with pytest.raises(UsageError, match="hf:ORG/NAME"):
        load_image_dataset("hf:not-a-hub-id")


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UsageError, match="did you mean 'tinyimagenet'") as caught:
        load_image_dataset("tinyimagenett")
    assert caught.value.exit_code == 2 and "hf:ORG/NAME" in str(caught.value)
    with pytest.raises(UsageError, match="did you mean 'tinyimagenet'"):
        get_dataset_spec("tiny-imagenet")
    assert "tinyimagenet" in list_datasets()


def test_missing_paths_are_clear(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="does not exist"):
        load_image_dataset(str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeFailure, match=r"--data-dir for tinyimagenet .* does not exist.*imagenet-200"):
        load_image_dataset("tinyimagenet", data_dir=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeFailure, match="found no parquet files, saved dataset or images"):
        load_image_dataset(str(tmp_path / "empty"))


def test_bad_arguments_are_usage_errors(folder: Path) -> None:
    with pytest.raises(UsageError, match="did you mean 'resize_crop'"):
        load_image_dataset(str(folder), resize_mode="resize-crop")
    with pytest.raises(UsageError, match="positive"):
        load_image_dataset(str(folder), limit=0)
    with pytest.raises(UsageError, match=re.escape("'{}'")):
        load_image_dataset(str(folder), templates=["no placeholder"])


# -- subsets, transforms, broken images ----------------------------------------------------------------------

def test_limit_is_a_seeded_subset(folder: Path) -> None:
    first = load_image_dataset(str(folder), limit=5, seed=0, image_size=SIZE)
    again = load_image_dataset(str(folder), limit=5, seed=0, image_size=SIZE)
    other = load_image_dataset(str(folder), limit=5, seed=1, image_size=SIZE)
    assert len(first.dataset) == 5 and "random subset of 5 of 12 (seed 0)" in first.source
    for (a, la), (b, lb) in zip(decoded(first), decoded(again), strict=True):
        assert la == lb and torch.equal(a, b)
    assert seeded_subset(12, 5, 0) != seeded_subset(12, 5, 1)
    assert [y for _, y in decoded(other)] == [i // PER_CLASS for i in seeded_subset(12, 5, 1)]
    picked = seeded_subset(1000, 50, 3)
    assert picked == sorted(set(picked)) and len(picked) == 50 and picked == seeded_subset(1000, 50, 3)
    whole = load_image_dataset(str(folder), limit=100, image_size=SIZE)
    assert len(whole.dataset) == 12 and whole.source == str(folder)


def test_transform_resize_modes() -> None:
    image = Image.new("RGB", (256, 256), (0, 255, 0))
    ImageDraw.Draw(image).rectangle((16, 16, 239, 239), fill=(255, 0, 0))  # 16-px green border, red inside
    crop = build_transform(224, "resize_crop")(image)
    full = build_transform(224, "resize")(image)
    assert crop.shape == full.shape == (3, 224, 224)
    assert crop[1].max() == 0.0 and crop[0].min() == 1.0  # Resize(256) + CenterCrop(224) removes the border
    assert full[1, 0, 112] > 0.9 and full[0, 112, 112] == 1.0  # plain resize keeps it
    wide = build_transform(32, "resize_crop")(Image.new("L", (90, 45), 128))  # grey, non-square
    assert wide.shape == (3, 32, 32) and torch.allclose(wide, torch.full_like(wide, 128 / 255))
    squashed = build_transform(48, "resize")(Image.new("RGBA", (30, 70), (10, 20, 30, 0)))
    assert squashed.shape == (3, 48, 48) and squashed.min() >= 0.0 and squashed.max() <= 1.0
    with pytest.raises(UsageError):
        build_transform(0, "resize")


def test_broken_images_are_skipped_and_counted(folder: Path) -> None:
    (folder / "red_circle" / "9-garbage.png").write_bytes(b"this is not an image")
    truncated = png_bytes(shape_image(2, 0))
    (folder / "red_circle" / "9-truncated.png").write_bytes(truncated[: len(truncated) // 2])
    data = load_image_dataset(str(folder), image_size=SIZE)
    assert len(data.dataset) == 14
    broken = [i for i in range(len(data.dataset)) if data.dataset[i] is None]
    assert len(broken) == 2
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(data.dataset, batch_size=5, num_workers=workers,
                                             collate_fn=collate_skip_broken)
        batches = list(loader)
        assert sum(dropped for _, _, dropped in batches) == 2
        assert sum(len(labels) for _, labels, _ in batches) == 12
        assert all(images.shape[1:] == (3, SIZE, SIZE) for images, _, _ in batches)


def test_collate_targets_and_empty_batches() -> None:
    image = torch.zeros(3, 4, 4)
    images, targets, dropped = collate_skip_broken([(image, (1, 7)), None, (image, (0, 9))])
    assert images.shape == (2, 3, 4, 4) and targets.tolist() == [[1, 7], [0, 9]] and dropped == 1
    images, targets, dropped = collate_skip_broken([(image, 2), (image, 0)])
    assert targets.tolist() == [2, 0] and targets.dtype == torch.long and dropped == 0
    images, targets, dropped = collate_skip_broken([None, None])
    assert images.numel() == 0 and targets.numel() == 0 and dropped == 2


# -- shipped datasets ----------------------------------------------------------------------------------------

def write_shipped(root: Path, name: str = "toy-shapes") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    manifest = {"name": name, "description": "coloured shapes", "classnames": NAMES,
                "templates": ["a photo of a {}."], "resize_mode": "resize", "license": "CC0",
                "provenance": "tests"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    pq.write_table(arrow_table(with_metadata=False), folder / "train.parquet")
    pq.write_table(arrow_table(with_metadata=False).slice(0, 6), folder / "test.parquet")
    return folder


def test_shipped_datasets_are_discovered_and_registered(tmp_path: Path) -> None:
    root = tmp_path / "builtin"
    write_shipped(root)
    specs = discover_shipped(root)
    assert [s.name for s in specs] == ["toy-shapes"]
    spec = specs[0]
    assert spec.classnames == tuple(NAMES) and spec.resize_mode == "resize" and spec.hub_id is None
    assert spec.splits == {"test": SplitSpec("test"), "train": SplitSpec("train")} and spec.extra["license"] == "CC0"
    assert register_shipped(root) == ["toy-shapes"]
    try:
        assert "toy-shapes" in list_datasets()
        test = load_image_dataset("toy-shapes", split="test", image_size=SIZE)
        assert len(test.dataset) == 6 and test.templates == ["a photo of a {}."] and test.name == "toy-shapes"
        assert all(colour_class(t) == y for t, y in decoded(test))
        assert len(load_image_dataset("toy-shapes", split="train", image_size=SIZE).dataset) == 12
    finally:
        unregister_dataset("toy-shapes")


def test_broken_shipped_manifest_warns_or_raises(tmp_path: Path) -> None:
    root = tmp_path / "builtin"
    folder = write_shipped(root, "broken-set")
    (folder / "manifest.json").write_text(json.dumps({"name": "broken-set", "templates": ["{}"]}))
    with pytest.warns(UserWarning, match="classnames"):
        assert register_shipped(root) == []
    with pytest.raises(UsageError, match="'classnames' is required"):
        register_shipped(root, strict=True)
    assert "broken-set" not in list_datasets()


def test_listing_names_does_not_import_datasets() -> None:
    code = ("import sys, tgazsr_cli.data as d; d.list_datasets(); d.get_dataset_spec('tinyimagenet'); "
            "print('datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
