"""Torchvision's download folders as --data-dir copies (issue #22): each written here, a handful of images, in the
exact on-disk format torchvision reads (CIFAR pickles, STL-10 binaries, split lists, .mat files), then loaded
through `load_image_dataset`. Checked: the folder is found under ROOT, labels follow our dataset's class order
whatever torchvision's order, class names are ours, pixels are the stored ones, a differing class set fails in
one line. The md5 sums torchvision keeps cannot match generated files: loading must not need them.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tgazsr_cli.data import get_dataset_spec, load_image_dataset
from tgazsr_cli.data.local import find_local_copy
from tgazsr_cli.data.sources import reader_for
from tgazsr_cli.errors import RuntimeFailure, UsageError

pytestmark = pytest.mark.usefixtures("offline_hf")


def raw_names(dataset: str) -> list[str]:
    """The dataset's class names as the download spells them ('aquarium fish' -> 'aquarium_fish')."""
    return [name.replace(" ", "_") for name in get_dataset_spec(dataset).classnames]


def pixels(count: int, size: int, seed: int) -> np.ndarray:
    """`count` random HWC uint8 images (not symmetric: a transposed read would show)."""
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def loaded(data) -> tuple[list[int], np.ndarray]:
    """(labels, HWC uint8 pixels) of every item of a loaded split."""
    items = [data.dataset[i] for i in range(len(data.dataset))]
    images = np.stack([(t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for t, _ in items])
    return [label for _, label in items], images


def dump(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """CIFAR's `data` array: one row per image, the red plane, then green, then blue (3072 bytes at 32x32)."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


# -- CIFAR-10 ------------------------------------------------------------------------------------------------

def write_cifar10(root: Path, label_names: list[str], labels: list[int]) -> np.ndarray:
    """ROOT/cifar-10-batches-py as the archive holds it; the test batch gets `labels`; returns its images."""
    folder = root / "cifar-10-batches-py"
    for number in range(1, 6):
        train = pixels(2, 32, number)
        dump(folder / f"data_batch_{number}", {"batch_label": f"training batch {number} of 5", "labels": [0, 1],
                                               "data": cifar_rows(train), "filenames": ["a.png", "b.png"]})
    images = pixels(len(labels), 32, 0)
    dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": labels, "data": cifar_rows(images),
                                 "filenames": [f"{i}.png" for i in range(len(labels))]})
    dump(folder / "batches.meta", {"num_cases_per_batch": 10000, "label_names": label_names, "num_vis": 3072})
    return images


def test_cifar10_folder_under_data_dir(tmp_path: Path) -> None:
    images = write_cifar10(tmp_path, raw_names("cifar10"), [3, 0, 9, 3, 5])
    assert find_local_copy("cifar10", str(tmp_path)) == str(tmp_path / "cifar-10-batches-py")
    data = load_image_dataset("cifar10", split="test", data_dir=str(tmp_path), image_size=32)
    labels, seen = loaded(data)
    assert labels == [3, 0, 9, 3, 5] and np.array_equal(seen, images)
    assert data.classnames == list(get_dataset_spec("cifar10").classnames)
    assert "torchvision CIFAR10" in data.source and data.name == "cifar10"
    train = load_image_dataset("cifar10", split="train", data_dir=str(tmp_path), image_size=32)
    assert loaded(train)[0] == [0, 1] * 5 and np.array_equal(loaded(train)[1][:2], pixels(2, 32, 1))


def test_cifar10_labels_follow_our_class_order_not_torchvision_s(tmp_path: Path) -> None:
    ours = raw_names("cifar10")
    shuffled = ours[::-1]  # a batches.meta in another order: label k means shuffled[k]
    write_cifar10(tmp_path, shuffled, [0, 1, 9])
    data = load_image_dataset("cifar10", split="test", data_dir=str(tmp_path), image_size=32)
    assert loaded(data)[0] == [ours.index(shuffled[0]), ours.index(shuffled[1]), ours.index(shuffled[9])] == [9, 8, 0]


def test_cifar10_with_other_classes_fails_in_one_line(tmp_path: Path) -> None:
    names = raw_names("cifar10")
    names[2] = "parrot"
    write_cifar10(tmp_path, names, [0, 2])
    with pytest.raises(UsageError) as caught:
        load_image_dataset("cifar10", split="test", data_dir=str(tmp_path), image_size=32)
    message = str(caught.value)
    assert "classes differ from dataset 'cifar10'" in message and "parrot" in message and "bird" in message
    assert "\n" not in message


def test_cifar10_missing_batch_fails_in_one_line(tmp_path: Path) -> None:
    write_cifar10(tmp_path, raw_names("cifar10"), [1])
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()  # torchvision wants every batch
    with pytest.raises(RuntimeFailure) as caught:
        load_image_dataset("cifar10", split="test", data_dir=str(tmp_path), image_size=32)
    assert "missing data_batch_3" in str(caught.value) and "\n" not in str(caught.value)


# -- CIFAR-100 -----------------------------------------------------------------------------------------------

def test_cifar100_folder_inside_a_dataset_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cifar100" / "cifar-100-python"  # torchvision's root named after the dataset: entered
    names = raw_names("cifar100")
    assert "aquarium_fish" in names
    fine = [4, 99, 1, 50]
    images = pixels(len(fine), 32, 7)
    for split, rows, labels in (("train", pixels(3, 32, 8), [7, 8, 9]), ("test", images, fine)):
        dump(folder / split, {"filenames": ["x.png"] * len(labels), "batch_label": split, "fine_labels": labels,
                              "coarse_labels": [0] * len(labels), "data": cifar_rows(rows)})
    dump(folder / "meta", {"fine_label_names": names, "coarse_label_names": [f"super{i}" for i in range(20)]})
    data = load_image_dataset("cifar100", split="test", data_dir=str(tmp_path), image_size=32)
    labels, seen = loaded(data)
    assert labels == fine and np.array_equal(seen, images)
    assert data.classnames[1] == "aquarium fish" and len(data.classnames) == 100
    assert str(folder) in data.source


# -- STL-10 --------------------------------------------------------------------------------------------------

def stl_bytes(images: np.ndarray) -> bytes:
    """STL-10's X files: per image the red, green, blue planes, each stored column by column."""
    return images.transpose(0, 3, 2, 1).tobytes()


def write_stl10(root: Path, labels: list[int]) -> np.ndarray:
    """ROOT/stl10_binary as the archive holds it; labels are 0-based here, 1-based in the file."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    images = pixels(len(labels), 96, 3)
    (folder / "test_X.bin").write_bytes(stl_bytes(images))
    (folder / "test_y.bin").write_bytes(bytes(label + 1 for label in labels))
    (folder / "train_X.bin").write_bytes(stl_bytes(pixels(2, 96, 4)))
    (folder / "train_y.bin").write_bytes(bytes([1, 10]))
    (folder / "unlabeled_X.bin").write_bytes(stl_bytes(pixels(1, 96, 5)))
    (folder / "class_names.txt").write_text("\n".join(raw_names("stl10")) + "\n")
    return images


def test_stl10_binary_folder(tmp_path: Path) -> None:
    images = write_stl10(tmp_path, [0, 9, 4])
    data = load_image_dataset("stl10", split="test", data_dir=str(tmp_path), image_size=96)
    labels, seen = loaded(data)
    assert labels == [0, 9, 4] and np.array_equal(seen, images)  # the column-major planes read the right way up
    assert data.classnames == list(get_dataset_spec("stl10").classnames) == raw_names("stl10")
    assert loaded(load_image_dataset("stl10", split="train", data_dir=str(tmp_path), image_size=96))[0] == [0, 9]
    # the folder given as the dataset itself: named, labelled and prompted as the registered stl10
    direct = load_image_dataset(str(tmp_path / "stl10_binary"), split="test", image_size=96)
    assert direct.name == "stl10" and direct.classnames == data.classnames and loaded(direct)[0] == [0, 9, 4]
    assert direct.templates == list(get_dataset_spec("stl10").templates)


def test_stl10_without_class_names_fails_in_one_line(tmp_path: Path) -> None:
    write_stl10(tmp_path, [1])
    (tmp_path / "stl10_binary" / "class_names.txt").unlink()
    with pytest.raises(UsageError, match=r"class_names\.txt is missing") as caught:
        load_image_dataset("stl10", split="test", data_dir=str(tmp_path), image_size=96)
    assert "\n" not in str(caught.value)


# -- the file-listing formats --------------------------------------------------------------------------------

def save_picture(path: Path, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (index % 256, 40, 200)).save(path, format="PNG")  # PNG bytes under any name: lossless


def red_of(data) -> list[int]:
    return [int(v) for v in loaded(data)[1][:, 0, 0, 0]]


def test_food101_test_split_from_meta_json(tmp_path: Path) -> None:
    base = tmp_path / "food-101"
    names = raw_names("food101")
    listed = {name: [] for name in names}
    for label in (5, 0, 100):  # torchvision labels by the sorted meta keys, as our list is
        listed[names[label]].append(f"{names[label]}/{label}")
        save_picture(base / "images" / names[label] / f"{label}.jpg", label)
    save_picture(base / "images" / names[1] / "9.jpg", 1)  # a train image: not in test.json
    (base / "meta").mkdir()
    (base / "meta" / "test.json").write_text(json.dumps(listed))
    (base / "meta" / "train.json").write_text(json.dumps({name: [] for name in names}))
    data = load_image_dataset("food101", split="test", data_dir=str(tmp_path), image_size=8)
    assert sorted(loaded(data)[0]) == [0, 5, 100] and red_of(data) == loaded(data)[0]


def test_dtd_partition_1_inside_torchvision_s_dtd_dtd(tmp_path: Path) -> None:
    data_folder = tmp_path / "dtd" / "dtd"
    lines = []
    for label, name in enumerate(raw_names("dtd")):  # torchvision's classes: those its test1.txt lists
        save_picture(data_folder / "images" / name / f"{name}_0001.jpg", label)
        lines.append(f"{name}/{name}_0001.jpg")
    (data_folder / "labels").mkdir()
    (data_folder / "labels" / "test1.txt").write_text("\n".join(lines) + "\n")
    assert find_local_copy("dtd", str(tmp_path)) == str(data_folder)
    data = load_image_dataset("dtd", split="test", data_dir=str(tmp_path), image_size=8)
    assert loaded(data)[0] == list(range(47)) and red_of(data) == list(range(47))
    # a test1.txt that lists fewer classes: torchvision's class list is then another set, refused
    (data_folder / "labels" / "test1.txt").write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(UsageError, match="classes differ from dataset 'dtd'"):
        load_image_dataset("dtd", split="test", data_dir=str(tmp_path), image_size=8)


def test_pets_and_aircraft(tmp_path: Path) -> None:
    base = tmp_path / "oxford-iiit-pet"
    rows = []
    for label, name in enumerate(raw_names("pets")):
        image_id = f"{name}_{label}"
        save_picture(base / "images" / f"{image_id}.jpg", label)
        rows.append(f"{image_id} {label + 1} 1 1")
    (base / "annotations").mkdir()
    (base / "annotations" / "test.txt").write_text("\n".join(rows) + "\n")
    pets = load_image_dataset("pets", split="test", data_dir=str(tmp_path), image_size=8)
    assert loaded(pets)[0] == list(range(37)) and red_of(pets) == list(range(37))

    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    variants = [name.removeprefix("boeing ") for name in get_dataset_spec("aircraft").classnames]
    (data / "variants.txt").write_text("\n".join(variants) + "\n")  # '707-320': 'Boeing ' is our prefix
    (data / "images_variant_test.txt").write_text(f"0001 {variants[0]}\n0002 {variants[99]}\n0003 {variants[40]}\n")
    for number, label in ((1, 0), (2, 99), (3, 40)):
        save_picture(data / "images" / f"{number:04d}.jpg", label)
    aircraft = load_image_dataset("aircraft", split="test", data_dir=str(tmp_path), image_size=8)
    assert loaded(aircraft)[0] == [0, 99, 40] and aircraft.classnames[0] == "boeing 707-320"


def test_flowers102_and_cars_mat_files(tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    base = tmp_path / "flowers-102"
    labels = [101, 0, 7, 7]  # image_00001 ... image_00004
    for number, label in enumerate(labels, 1):
        save_picture(base / "jpg" / f"image_{number:05d}.jpg", label)
    scipy_io.savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8) + 1})
    scipy_io.savemat(base / "setid.mat", {"trnid": np.array([[3, 4]]), "valid": np.array([[3, 4]]),
                                          "tstid": np.array([[1, 2, 4]])})
    flowers = load_image_dataset("flowers102", split="test", data_dir=str(tmp_path), image_size=8)
    assert loaded(flowers)[0] == [101, 0, 7] and red_of(flowers) == [101, 0, 7]

    base = tmp_path / "stanford_cars"
    names = list(get_dataset_spec("cars").classnames)
    assert len(set(names)) < len(names)  # 7 names twice: mapped by position, checked name by name
    (base / "devkit").mkdir(parents=True)
    scipy_io.savemat(base / "devkit" / "cars_meta.mat",
                     {"class_names": np.array([[f"{name.title()} 2012" for name in names]], dtype=object)})
    annotations = np.array([[("00001.jpg", 196), ("00002.jpg", 1)]], dtype=[("fname", object), ("class", object)])
    scipy_io.savemat(base / "cars_test_annos_withlabels.mat", {"annotations": annotations})
    save_picture(base / "cars_test" / "00001.jpg", 195)
    save_picture(base / "cars_test" / "00002.jpg", 0)
    cars = load_image_dataset("cars", split="test", data_dir=str(tmp_path), image_size=8)
    assert loaded(cars)[0] == [195, 0] and cars.classnames == names and red_of(cars) == [195, 0]


def test_probing_needs_the_folder_name_and_its_files(tmp_path: Path) -> None:
    write_cifar10(tmp_path, raw_names("cifar10"), [1])
    assert reader_for(tmp_path / "cifar-10-batches-py").name == "torchvision"
    renamed = tmp_path / "my-cifar"
    (tmp_path / "cifar-10-batches-py").rename(renamed)  # torchvision finds it only under its own name
    assert reader_for(renamed) is None or reader_for(renamed).name != "torchvision"
    (tmp_path / "food-101").mkdir()  # the name without the files: not claimed
    assert reader_for(tmp_path / "food-101") is None
