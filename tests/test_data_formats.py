"""Local copies of the zero-shot datasets in every format the loader reads (spec §6): image folders, parquet,
save_to_disk, webdataset .tar shards (the clip-benchmark/wds_* layout), the SUN397 archive layout, wnid folders
for ImageNet-R, whole-set splits and Caltech-101's excluded background class.

All data is generated here: each class has its own colour, so a test can check that every decoded tensor carries
the right label. The hub is put offline and the `datasets` cache points into tmp_path.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import datasets
import pytest
import torch
from PIL import Image, ImageDraw

from tgazsr_cli.data import (
    DatasetSpec,
    SplitSpec,
    get_dataset_spec,
    load_image_dataset,
    register_dataset,
    unregister_dataset,
)
from tgazsr_cli.data.sources import OpenedSource, Reader, reader_for, readers, register_reader, unregister_reader
from tgazsr_cli.errors import RuntimeFailure, UsageError

SIZE = 24
PER_CLASS = 3
PALETTE = [(230, 30, 20), (30, 200, 40), (20, 40, 230)]  # red, green, blue


pytestmark = pytest.mark.usefixtures("offline_hf")


def picture(colour: int, i: int) -> Image.Image:
    """A non-square image with a big ellipse of palette colour `colour`; its size varies with `i`."""
    width, height = 40 + 3 * i, 30
    image = Image.new("RGB", (width, height), (250, 250, 250))
    ImageDraw.Draw(image).ellipse((2, 2, width - 2, height - 2), fill=PALETTE[colour])
    return image


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def colour_of(tensor: torch.Tensor) -> int:
    h, w = tensor.shape[1] // 2, tensor.shape[2] // 2
    return int(tensor[:, h - 1: h + 1, w - 1: w + 1].mean(dim=(1, 2)).argmax())


def items(data) -> list[tuple[torch.Tensor, int]]:
    return [data.dataset[i] for i in range(len(data.dataset))]


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


# CIFAR-10 classes used below: folder order bird, cat, truck = spec labels 2, 3, 9 (not the folder indices)
CIFAR_CLASSES = {"bird": 2, "cat": 3, "truck": 9}


def cifar_examples() -> list[tuple[Image.Image, int, str]]:
    """(image, CIFAR-10 label, class folder) in image-folder order (class folder, then file name)."""
    return [(picture(c, i), CIFAR_CLASSES[name], name)
            for c, name in enumerate(sorted(CIFAR_CLASSES)) for i in range(PER_CLASS)]


def cifar_copies(root: Path) -> dict[str, Path]:
    """The same CIFAR-10 test examples as an image folder, hub-style parquet, save_to_disk and webdataset."""
    rows = cifar_examples()
    folder = root / "folder"
    for k, (image, _label, name) in enumerate(rows):
        (folder / "test" / name).mkdir(parents=True, exist_ok=True)
        image.save(folder / "test" / name / f"{k:03d}.png")
    names = list(get_dataset_spec("cifar10").classnames)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    table = datasets.Dataset.from_dict({"img": [{"bytes": encoded(img), "path": None} for img, _, _ in rows],
                                        "label": [label for _, label, _ in rows]}, features=features)
    (root / "parquet" / "plain_text").mkdir(parents=True)
    table.to_parquet(str(root / "parquet" / "plain_text" / "test-00000-of-00001.parquet"))
    table.select(range(2)).to_parquet(str(root / "parquet" / "plain_text" / "train-00000-of-00001.parquet"))
    datasets.DatasetDict({"train": table.select(range(2)), "test": table}).save_to_disk(str(root / "saved"))
    members: list[tuple[str, bytes]] = []
    for k, (image, label, _name) in enumerate(rows):
        members += [(f"s{k:05d}.cls", str(label).encode()), (f"s{k:05d}.png", encoded(image))]
    write_tar(root / "wds" / "test" / "0.tar", members[:8])
    write_tar(root / "wds" / "test" / "1.tar", members[8:])
    write_tar(root / "wds" / "train" / "0.tar", members[:4])
    return {"folder": folder, "parquet": root / "parquet", "saved": root / "saved", "webdataset": root / "wds"}


def test_every_local_format_gives_the_same_examples(tmp_path: Path) -> None:
    copies = cifar_copies(tmp_path)
    loaded = {fmt: load_image_dataset("cifar10", split="test", data_dir=str(path), image_size=SIZE)
              for fmt, path in copies.items()}
    reference = items(loaded["folder"])
    assert [label for _, label in reference] == [2] * PER_CLASS + [3] * PER_CLASS + [9] * PER_CLASS
    colour_to_label = {c: CIFAR_CLASSES[name] for c, name in enumerate(sorted(CIFAR_CLASSES))}
    assert all(colour_to_label[colour_of(t)] == y for t, y in reference)
    for fmt, data in loaded.items():
        assert data.classnames == list(get_dataset_spec("cifar10").classnames), fmt
        assert data.templates == ["This is a photo of a {}"] and data.name == "cifar10", fmt
        got = items(data)
        assert len(got) == len(reference), fmt
        for (a, la), (b, lb) in zip(got, reference, strict=True):
            assert la == lb and torch.equal(a, b), fmt
    assert "split test" in loaded["webdataset"].source and "split test" in loaded["parquet"].source
    assert reference[0][0].shape == (3, SIZE, SIZE)  # plain resize of a non-square image (CIFAR: "resize")
    train = load_image_dataset("cifar10", split="train", data_dir=str(copies["webdataset"]), image_size=SIZE)
    assert [y for _, y in items(train)] == [2, 2]


def test_webdataset_hub_copy_with_classnames_file(tmp_path: Path) -> None:
    root = tmp_path / "wds_vtab-pets"
    members = []
    for k, label in enumerate([0, 36, 2, 0]):
        members += [(f"{k:06d}.cls", f"{label}\n".encode()), (f"{k:06d}.jpg", encoded(picture(k % 3, k), "JPEG"))]
    write_tar(root / "test" / "0.tar", members)
    (root / "classnames.txt").write_text("Abyssinian\n" + "\n".join(f"breed {i}" for i in range(1, 37)) + "\n")
    pets = load_image_dataset("pets", split="test", data_dir=str(root), image_size=SIZE)
    assert [y for _, y in items(pets)] == [0, 36, 2, 0]
    assert [colour_of(t) for t, _ in items(pets)] == [0, 1, 2, 0]
    assert pets.templates[0].format(pets.classnames[0]) == "A photo of a abyssinian, a type of pet."
    plain = load_image_dataset(str(root), split="test", image_size=SIZE)  # unregistered: classnames.txt names
    assert plain.classnames[:2] == ["Abyssinian", "breed 1"] and len(plain.dataset) == 4
    single = load_image_dataset("pets", data_dir=str(root / "test" / "0.tar"), image_size=SIZE)  # one shard
    assert [y for _, y in items(single)] == [0, 36, 2, 0]


def test_broken_shard_is_a_runtime_failure(tmp_path: Path) -> None:
    (tmp_path / "wds" / "test").mkdir(parents=True)
    (tmp_path / "wds" / "test" / "0.tar").write_bytes(b"this is not a tar archive" * 40)
    with pytest.raises(RuntimeFailure, match="could not read the webdataset shards") as caught:
        load_image_dataset("food101", split="test", data_dir=str(tmp_path / "wds"))
    assert "\n" not in str(caught.value)


def write_caltech(root: Path, split: str | None = None) -> Path:
    """101_ObjectCategories with the background folder and three real classes (labels 0, 1, 4)."""
    base = root / split if split else root
    for colour, name in enumerate(["Faces", "Faces_easy", "accordion"]):
        (base / name).mkdir(parents=True)
        for i in range(2):
            picture(colour, i).save(base / name / f"image_{i + 1:04d}.png")
    (base / "BACKGROUND_Google").mkdir()
    for i in range(3):
        picture(0, i).save(base / "BACKGROUND_Google" / f"image_{i + 1:04d}.png")
    return root


def test_caltech101_whole_set_without_background(tmp_path: Path) -> None:
    root = write_caltech(tmp_path / "101_ObjectCategories")
    data = load_image_dataset("caltech101", split="test", data_dir=str(root), image_size=SIZE)
    assert len(data.classnames) == 101 and data.classnames[:2] == ["faces", "faces easy"]
    got = items(data)
    assert [y for _, y in got] == [0, 0, 1, 1, 4, 4]  # BACKGROUND_Google's 3 images are dropped
    assert [colour_of(t) for t, _ in got] == [0, 0, 1, 1, 2, 2]
    divided = tmp_path / "divided"
    write_caltech(divided, "train")
    write_caltech(divided, "test")
    whole = load_image_dataset("caltech101", split="test", data_dir=str(divided), image_size=SIZE)
    assert [y for _, y in items(whole)] == [0, 0, 1, 1, 4, 4] * 2  # train + test: the whole set
    assert "whole set" in whole.source


def test_eurosat_saved_dict_is_read_whole(tmp_path: Path) -> None:
    raw = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake"]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=raw)})

    def part(labels: list[int]) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {"image": [encoded(picture(y % 3, i)) for i, y in enumerate(labels)], "label": labels},
            features=features)

    datasets.DatasetDict({"train": part([0, 1, 2]), "test": part([9, 8])}).save_to_disk(str(tmp_path / "eurosat"))
    data = load_image_dataset("eurosat", split="test", data_dir=str(tmp_path / "eurosat"), image_size=SIZE)
    assert [y for _, y in items(data)] == [0, 1, 2, 9, 8]
    assert data.templates[0].format(data.classnames[2]) == "A centered satellite photo of brushland or shrubland."
    assert data.split == "test" and "splits train+test" in data.source


def test_eurosat_divided_copy_with_different_classes_is_refused(tmp_path: Path) -> None:
    for split, names in (("train", ["AnnualCrop", "Forest"]), ("test", ["AnnualCrop"])):
        for name in names:
            (tmp_path / "euro" / split / name).mkdir(parents=True)
            picture(0, 0).save(tmp_path / "euro" / split / name / "0.png")
    with pytest.raises(UsageError, match="different columns or classes"):
        load_image_dataset("eurosat", split="test", data_dir=str(tmp_path / "euro"))
    train = load_image_dataset("eurosat", split="train", data_dir=str(tmp_path / "euro"), image_size=SIZE)
    assert [y for _, y in items(train)] == [0, 1]  # a partial copy is matched by EuroSAT's folder names


def test_sun397_archive_layout(tmp_path: Path) -> None:
    root = tmp_path / "SUN397"
    classes = {"/a/abbey": 0, "/a/apartment_building/outdoor": 8, "/y/youth_hostel": 396}
    (root).mkdir()
    (root / "ClassName.txt").write_text("\n".join(classes) + "\n")
    for colour, raw in enumerate(classes):
        folder = root / raw.strip("/")
        folder.mkdir(parents=True)
        for i in range(2):
            picture(colour, i).save(folder / f"sun_{colour}{i}.jpg", format="PNG")
    data = load_image_dataset("sun397", data_dir=str(root), image_size=SIZE)
    got = items(data)
    assert sorted(y for _, y in got) == [0, 0, 8, 8, 396, 396]
    assert all([0, 8, 396][colour_of(t)] == y for t, y in got)
    assert data.classnames[8] == "apartment building outdoor" and "ClassName.txt" in data.source
    (root / "a" / "not_a_class").mkdir()
    picture(0, 0).save(root / "a" / "not_a_class" / "sun_x.jpg", format="PNG")
    with pytest.raises(UsageError, match="not a class"):
        load_image_dataset("sun397", data_dir=str(root))


def test_imagenet_r_wnid_folders(tmp_path: Path) -> None:
    keys = get_dataset_spec("imagenet-r").class_keys
    chosen = {keys[0]: 0, keys[100]: 100, keys[199]: 199}
    for colour, wnid in enumerate(chosen):
        (tmp_path / "imagenet-r" / wnid).mkdir(parents=True)
        for i in range(2):
            picture(colour, i).save(tmp_path / "imagenet-r" / wnid / f"art_{i}.jpg", format="PNG")
    data = load_image_dataset("imagenet-r", data_dir=str(tmp_path / "imagenet-r"), image_size=SIZE)
    got = items(data)
    assert [y for _, y in got] == [0, 0, 100, 100, 199, 199]
    assert [colour_of(t) for t, _ in got] == [0, 0, 1, 1, 2, 2]
    assert data.classnames[0] == "goldfish" and len(data.classnames) == 200
    (tmp_path / "imagenet-r" / "n99999999").mkdir()
    picture(0, 0).save(tmp_path / "imagenet-r" / "n99999999" / "x.png")
    with pytest.raises(UsageError, match="n99999999"):
        load_image_dataset("imagenet-r", data_dir=str(tmp_path / "imagenet-r"))


def test_pcam_integer_labels_keep_the_fixed_prompts(tmp_path: Path) -> None:
    labels = [0, 1, 1, 0, 1]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    datasets.Dataset.from_dict({"image": [encoded(picture(y, i)) for i, y in enumerate(labels)], "label": labels},
                               features=features).to_parquet(str(tmp_path / "test.parquet"))
    data = load_image_dataset("pcam", split="test", data_dir=str(tmp_path / "test.parquet"), image_size=SIZE)
    assert [y for _, y in items(data)] == labels
    prompts = [t.format(c) for c in data.classnames for t in data.templates]
    assert prompts == ["Tthis is a photo of healthy lymph node tissue.", "This is a photo of lymph node tumor tissue."]
    subset = load_image_dataset("pcam", split="test", data_dir=str(tmp_path / "test.parquet"), limit=2, seed=3)
    assert len(subset.dataset) == 2 and "random subset of 2 of 5 (seed 3)" in subset.source


# -- the layout readers --------------------------------------------------------------------------------------

SHIPPED_READERS = ["builtin", "saved", "parquet", "webdataset", "sun397", "folders"]  # the order they are tried


def test_every_reader_module_registers_itself_on_first_use() -> None:
    code = ("import json, sys\nfrom tgazsr_cli.data.sources import readers\n"
            "loaded = lambda: sorted(m for m in sys.modules if m.startswith('tgazsr_cli.data.sources.'))\n"
            "before = loaded()\nnames = [reader.name for reader in readers()]\n"
            "print(json.dumps([before, names, loaded(), [m for m in ('torch', 'datasets') if m in sys.modules]]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    before, names, after, heavy = json.loads(done.stdout)
    folder = Path(__file__).parents[1] / "tgazsr_cli" / "data" / "sources"
    modules = sorted(f"tgazsr_cli.data.sources.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__")
    assert "tgazsr_cli.data.sources.sun397" not in before and after == modules  # every module, once used
    assert [name for name in names if name in SHIPPED_READERS] == SHIPPED_READERS
    assert heavy == []  # probing layouts imports neither torch nor `datasets`


def write_listed_images(folder: Path) -> list[int]:
    """A made-up layout: images side by side in one folder, labelled by a `labels.csv` (file,colour name)."""
    folder.mkdir(parents=True)
    rows, labels = ["file,label"], []
    for k, colour in enumerate([2, 0, 1, 0]):
        picture(colour, k).save(folder / f"img{k}.png")
        rows.append(f"img{k}.png,{['red', 'green', 'blue'][colour]}")
        labels.append(colour)
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return labels


def open_listed(path: Path, split: str) -> OpenedSource:
    """The reader of the made-up layout: one set, class names in the order of first appearance."""
    rows = [line.split(",") for line in (path / "labels.csv").read_text().splitlines()[1:] if line]
    names = ["red", "green", "blue"]
    features = datasets.Features({"image": datasets.Image(decode=False), "label": datasets.ClassLabel(names=names)})
    table = datasets.Dataset.from_dict({"image": [{"bytes": None, "path": str(path / f)} for f, _ in rows],
                                        "label": [names.index(label) for _, label in rows]}, features=features)
    return OpenedSource(table=table, description=f"{path} listed by labels.csv", split="all", name=path.name,
                        base_dir=path)


def test_a_new_layout_is_one_registered_reader(tmp_path: Path) -> None:
    folder = tmp_path / "listed"
    labels = write_listed_images(folder)
    assert reader_for(folder).name == "folders"  # loose images: no class folders, nothing to label them by
    with pytest.raises(RuntimeFailure, match="no images in class folders"):
        load_image_dataset(str(folder), image_size=SIZE)
    register_reader(Reader("csv-listed", lambda path: (path / "labels.csv").is_file(), open_listed, priority=1,
                           description="images beside a labels.csv (file,label)"))
    try:
        assert readers()[0].name == "csv-listed" and reader_for(folder).name == "csv-listed"
        with pytest.raises(ValueError, match="already registered"):
            register_reader(Reader("csv-listed", lambda path: False, open_listed))
        data = load_image_dataset(str(folder), image_size=SIZE)
        assert data.classnames == ["red", "green", "blue"] and "labels.csv" in data.source
        assert [y for _, y in items(data)] == labels and [colour_of(t) for t, _ in items(data)] == labels
        register_dataset(DatasetSpec(name="listed-colours", classnames=("blue", "green", "red"), templates=("{}",),
                                     resize_mode="resize", hub_id=None, splits={"test": SplitSpec("all", 4)},
                                     description="test", local_path=str(folder)))
        whole = load_image_dataset("listed-colours", split="test", image_size=SIZE)  # a registered whole set
        assert [y for _, y in items(whole)] == [2 - y for y in labels] and whole.split == "test"
    finally:
        unregister_reader("csv-listed")
        unregister_dataset("listed-colours")
    assert reader_for(folder).name == "folders"

