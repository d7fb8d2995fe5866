"""--data-dir ROOT finds each dataset under the folder names its downloads unpack to (tiny-imagenet-200/,
wds_cifar10/, 101_ObjectCategories/ ...); a missing copy names the paths looked at; a parent folder gets a
did-you-mean. All data is generated here; the hub is offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_data import write_tiny_imagenet
from tests.test_data_formats import CIFAR_CLASSES, PER_CLASS, encoded, picture, write_tar
from tgazsr_cli.data import get_dataset_spec, list_datasets, load_image_dataset
from tgazsr_cli.data.local import candidate_paths, find_local_copy, usual_folders
from tgazsr_cli.errors import RuntimeFailure, UsageError

pytestmark = pytest.mark.usefixtures("offline_hf")
SIZE = 24


def write_wds_cifar10(folder: Path) -> list[int]:
    """A CLIP_benchmark-style webdataset copy (test/0.tar, integer .cls labels); returns the labels written."""
    members, labels = [], []
    rows = [(colour, name) for colour, name in enumerate(sorted(CIFAR_CLASSES)) for _ in range(PER_CLASS)]
    for k, (colour, name) in enumerate(rows):
        label = CIFAR_CLASSES[name]
        members += [(f"s{k:05d}.cls", str(label).encode()), (f"s{k:05d}.png", encoded(picture(colour, k)))]
        labels.append(label)
    write_tar(folder / "test" / "0.tar", members)
    (folder / "classnames.txt").write_text("\n".join(get_dataset_spec("cifar10").classnames) + "\n")
    return labels


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A download folder as a user has it: the original Tiny-ImageNet zip and a CLIP_benchmark webdataset."""
    write_tiny_imagenet(tmp_path / "downloads" / "tiny-imagenet-200")
    write_wds_cifar10(tmp_path / "downloads" / "wds_cifar10")
    return tmp_path / "downloads"


def labels_of(data) -> list[int]:
    return [data.dataset[i][1] for i in range(len(data.dataset))]


def test_every_spec_documents_its_usual_folder_names() -> None:
    assert usual_folders(get_dataset_spec("tinyimagenet"))[:3] == ("tinyimagenet", "tiny-imagenet-200",
                                                                   "tiny-imagenet")
    assert "wds_cifar10" in usual_folders(get_dataset_spec("cifar10"))
    assert "wds_vtab-pets" in usual_folders(get_dataset_spec("pets"))  # the hub repository's own name
    assert "101_ObjectCategories" in usual_folders(get_dataset_spec("caltech101"))
    assert "wds_sun397" not in usual_folders(get_dataset_spec("sun397"))  # a 15.8k subset, not the paper's set
    docs = (Path(__file__).parents[1] / "docs" / "datasets.md").read_text()
    for name in list_datasets():
        for folder in get_dataset_spec(name).folder_names:
            assert f"`{folder}`" in docs, (name, folder)


def test_root_with_the_download_names_serves_each_dataset(root: Path) -> None:
    tiny = load_image_dataset("tinyimagenet", split="test", data_dir=str(root), image_size=SIZE)
    assert labels_of(tiny) == [107, 0, 81, 0] and str(root / "tiny-imagenet-200") in tiny.source
    cifar = load_image_dataset("cifar10", split="test", data_dir=str(root), image_size=SIZE)
    assert labels_of(cifar) == [2] * PER_CLASS + [3] * PER_CLASS + [9] * PER_CLASS
    assert str(root / "wds_cifar10") in cifar.source
    # the same through data_root, the several-datasets form of --data-dir
    again = load_image_dataset("cifar10", split="test", data_root=str(root), image_size=SIZE)
    assert labels_of(again) == labels_of(cifar)


def test_find_local_copy_semantics(tmp_path: Path, root: Path) -> None:
    assert find_local_copy("tinyimagenet", None) is None
    assert find_local_copy("tinyimagenet", str(root)) == str(root / "tiny-imagenet-200")
    assert find_local_copy("tinyimagenet", str(root / "tiny-imagenet-200")) == str(root / "tiny-imagenet-200")
    assert find_local_copy("cifar100", str(root)) is None
    assert find_local_copy("not-a-dataset", str(root)) is None
    # torchvision's layout: ROOT/caltech101/101_ObjectCategories is entered one level
    (tmp_path / "tv" / "caltech101" / "101_ObjectCategories" / "ant").mkdir(parents=True)
    inner = tmp_path / "tv" / "caltech101" / "101_ObjectCategories"
    assert find_local_copy("caltech101", str(tmp_path / "tv")) == str(inner)
    assert find_local_copy("caltech101", str(tmp_path / "tv" / "caltech101")) == str(inner)
    assert candidate_paths("sun397", tmp_path) == [tmp_path / "sun397", tmp_path / "SUN397"]


def test_missing_copy_names_the_paths_looked_at(root: Path, tmp_path: Path) -> None:
    # a root of other datasets' copies is not read as this one: the error lists where it looked
    with pytest.raises(RuntimeFailure) as caught:
        load_image_dataset("sun397", data_dir=str(root))
    message = str(caught.value)
    assert f"looked for {root / 'sun397'}, {root / 'SUN397'}" in message and "\n" not in message
    assert "holds copies of other datasets" in message and str(root / "wds_cifar10") in message
    # --data-dir one level too high for the dataset asked for: a did-you-mean with the right folder
    with pytest.raises(RuntimeFailure, match=f"did you mean --data-dir {root}\\?"):
        load_image_dataset("tinyimagenet", split="test", data_dir=str(root.parent))
    # several datasets: a dataset without a copy under the root falls back to the hub; offline, both are named
    with pytest.raises(RuntimeFailure) as caught:
        load_image_dataset("cifar100", split="test", data_root=str(root))
    message = str(caught.value)
    assert "'uoft-cs/cifar100'" in message and str(root / "wds_cifar100") in message
    with pytest.raises(RuntimeFailure, match=r"has no hub id.*looked for .*SUN397"):
        load_image_dataset("sun397", data_root=str(root))
    # an empty folder given as the copy: the generic not-found line plus the usual names under it
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeFailure) as caught:
        load_image_dataset("eurosat", data_dir=str(tmp_path / "empty"))
    message = str(caught.value)
    assert "found no parquet files" in message and str(tmp_path / "empty" / "2750") in message


def test_parent_folder_of_a_dataset_gets_a_did_you_mean(root: Path) -> None:
    with pytest.raises(UsageError) as caught:
        load_image_dataset(str(root), split="test")
    message = str(caught.value)
    assert f"did you mean --datasets {root / 'tiny-imagenet-200'}" in message
    assert "(or --datasets tinyimagenet --data-dir" in message and "\n" not in message
    # one level further up: still found (downloads/ inside the folder given)
    with pytest.raises(UsageError, match="did you mean"):
        load_image_dataset(str(root.parent), split="test")


def test_image_folder_with_a_class_named_like_a_dataset_is_not_refused(tmp_path: Path) -> None:
    for name in ("cars", "pets"):  # class folders hold images directly: an image folder, not a root
        (tmp_path / "mine" / name).mkdir(parents=True)
        for k in range(2):
            picture(0, k).save(tmp_path / "mine" / name / f"{k}.png")
    data = load_image_dataset(str(tmp_path / "mine"), image_size=SIZE)
    assert data.classnames == ["cars", "pets"] and len(data.dataset) == 4


def test_tinyimagenet_style_folder_reads_words_txt_for_unknown_wnids(tmp_path: Path) -> None:
    root = write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    # two wnids outside the built-in 200, and the words.txt the original zip ships (every WordNet noun)
    for wnid in ("n01503061", "n02084071"):
        (root / "train" / wnid / "images").mkdir(parents=True)
        picture(0, 0).save(root / "train" / wnid / "images" / f"{wnid}_0.JPEG", format="PNG")
    (root / "words.txt").write_text("n00001740\tentity\nn01443537\tgoldfish, Carassius auratus\n"
                                    "n01503061\tbird\nn02084071\tdog, domestic dog, Canis familiaris\n")
    data = load_image_dataset(str(root), split="train", image_size=SIZE)
    # sorted wnid order; the built-in names stay, the others come from words.txt (first lemma), no raw wnids
    assert data.classnames == ["goldfish", "bird", "dog", "bullet train", "go kart"]
    without = tmp_path / "plain"
    (without / "n02084071").mkdir(parents=True)
    picture(0, 0).save(without / "n02084071" / "0.png")
    assert load_image_dataset(str(without), image_size=SIZE).classnames == ["n02084071"]  # nothing to read


def test_unlabelled_test_split_hints_at_val(tmp_path: Path) -> None:
    root = write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    with pytest.raises(UsageError, match=r"unlabelled images .*; evaluate a labelled split instead: --split val$"):
        load_image_dataset(str(root), split="test", image_size=SIZE)
    assert len(load_image_dataset(str(root), split="val", image_size=SIZE).dataset) == 4
