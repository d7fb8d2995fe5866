"""Hub repositories of webdataset shards (CLIP_benchmark's clip-benchmark/wds_*), offline from a pre-filled hub cache.

A split of ONE shard (``test/0.tar`` beside ``test/nshards.txt``) is the case `datasets` gets wrong on its own: it
picks the builder by the most common extension (one .tar against one .txt) and reads the shard as text. Every test
goes through `load_image_dataset("hf:...")` / `open_hub` with HF_HUB_OFFLINE set and the repository in the hub
cache, in the layout huggingface_hub writes (datasets--ORG--NAME/{blobs,snapshots,refs}).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.hubcache import use_offline_cache
from tests.test_data_formats import colour_of, encoded, items, picture, write_tar
from tgazsr_cli.data import DatasetSpec, SplitSpec, load_image_dataset, register_dataset, unregister_dataset
from tgazsr_cli.data.sources.hub import open_hub
from tgazsr_cli.data.sources.webdataset import is_webdataset_listing
from tgazsr_cli.errors import RuntimeFailure, UsageError

pytestmark = pytest.mark.usefixtures("offline_hf")
SIZE = 24
COLOURS = ["red", "green", "blue"]  # classnames.txt: label i is drawn in test_data_formats.PALETTE[i]
ONE_SHARD = "test-org/wds_vtab-colours"
SHARDED = "test-org/wds_colours"


def fill_dataset_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """Every file below `folder` (subfolders kept) as the `main` revision of dataset repository `repo_id`."""
    repo = cache / ("datasets--" + repo_id.replace("/", "--"))
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    commit = hashlib.sha1(b"".join(str(p.relative_to(folder)).encode() + p.read_bytes() for p in files)).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for path in files:
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def shard(labels: list[int], start: int, fmt: str) -> list[tuple[str, bytes]]:
    """Members `<key>.cls` + `<key>.<fmt>`; example k shows the colour of its label."""
    members = []
    for k, label in enumerate(labels, start):
        image = encoded(picture(label, k), "WEBP" if fmt == "webp" else "PNG")
        members += [(f"s{k:05d}.cls", f"{label}\n".encode()), (f"s{k:05d}.{fmt}", image)]
    return members


def clip_benchmark_files(folder: Path, shards: dict[str, list[list[int]]], fmt: str) -> None:
    """A clip-benchmark/wds_* repository: <split>/<i>.tar, <split>/nshards.txt and the zero-shot text files."""
    start = 0
    for split, labels_per_shard in shards.items():
        for i, labels in enumerate(labels_per_shard):
            write_tar(folder / split / f"{i}.tar", shard(labels, start, fmt))
            start += len(labels)
        (folder / split / "nshards.txt").write_text(f"{len(labels_per_shard)}\n")
    (folder / "classnames.txt").write_text("\n".join(COLOURS) + "\n")
    (folder / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n")
    (folder / ".gitattributes").write_text("*.tar filter=lfs diff=lfs merge=lfs -text\n")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    clip_benchmark_files(tmp_path / "one", {"test": [[0, 1, 2, 1, 0]]}, "webp")
    clip_benchmark_files(tmp_path / "many", {"test": [[2, 2, 0], [1, 0]], "train": [[1, 2]]}, "png")
    fill_dataset_cache(cache, ONE_SHARD, tmp_path / "one")
    fill_dataset_cache(cache, SHARDED, tmp_path / "many")
    use_offline_cache(cache, monkeypatch)
    return cache


def labels_and_colours(data) -> tuple[list[int], list[int]]:
    got = items(data)
    assert all(tensor.shape == (3, SIZE, SIZE) for tensor, _ in got)
    return [label for _, label in got], [colour_of(tensor) for tensor, _ in got]


def test_a_split_of_one_shard_loads_as_labelled_images(hub_cache: Path) -> None:
    data = load_image_dataset(f"hf:{ONE_SHARD}", split="test", image_size=SIZE)
    assert labels_and_colours(data) == ([0, 1, 2, 1, 0], [0, 1, 2, 1, 0])  # .webp decoded, .cls as the label
    assert data.classnames == COLOURS and data.name == ONE_SHARD  # the repository's classnames.txt
    assert data.source.startswith(f"hf:{ONE_SHARD} split test")
    opened = open_hub(ONE_SHARD, "test")
    assert sorted(opened.table.column_names) == ["__key__", "__url__", "cls", "webp"]


def test_several_shards_and_splits_still_load(hub_cache: Path) -> None:
    test = load_image_dataset(f"hf:{SHARDED}", split="test", image_size=SIZE)
    assert labels_and_colours(test) == ([2, 2, 0, 1, 0], [2, 2, 0, 1, 0])
    train = load_image_dataset(f"hf:{SHARDED}", split="train", image_size=SIZE)
    assert labels_and_colours(train) == ([1, 2], [1, 2]) and train.classnames == COLOURS
    assert len(open_hub(SHARDED, "all").table) == 7  # a whole-set split: every shard of the repository


def test_a_registered_dataset_on_such_a_repository(hub_cache: Path) -> None:
    spec = DatasetSpec(name="hub-colours", classnames=("ruby", "leaf", "sky"), templates=("a {} colour",),
                       resize_mode="resize", hub_id=ONE_SHARD, splits={"test": SplitSpec("test", 5)},
                       description="test")
    register_dataset(spec)
    try:
        data = load_image_dataset("hub-colours", split="test", image_size=SIZE)
    finally:
        unregister_dataset("hub-colours")
    assert data.classnames == ["ruby", "leaf", "sky"] and data.templates == ["a {} colour"]  # the spec's own
    assert labels_and_colours(data)[0] == [0, 1, 2, 1, 0]


def test_a_missing_split_or_repository_is_one_clear_error(hub_cache: Path) -> None:
    with pytest.raises(UsageError, match=f"hub dataset '{ONE_SHARD}' has no split 'train'; available: test"):
        load_image_dataset(f"hf:{ONE_SHARD}", split="train", image_size=SIZE)
    with pytest.raises(RuntimeFailure, match=r"could not load 'test-org/absent'.*offline"):
        load_image_dataset("hf:test-org/absent", split="test", image_size=SIZE)


@pytest.mark.parametrize(("names", "expected"), [
    (["test/0.tar", "test/nshards.txt", "classnames.txt", "zeroshot_classification_templates.txt"], True),
    (["test/0.tar", "test/1.tar", "test/nshards.txt", ".gitattributes", "README.md"], True),
    (["plain_text/test-00000-of-00001.parquet", "README.md"], False),
    (["data/images.tar", "data/metadata.csv"], False),  # another layout: `datasets` decides
    (["README.md", "classnames.txt"], False),
])
def test_webdataset_listing(names: list[str], expected: bool) -> None:
    assert is_webdataset_listing(names) is expected


def test_datasets_alone_reads_the_one_shard_split_as_text(tmp_path: Path) -> None:
    """Why the builder is named: `datasets` infers it per split from the files (as for a hub repository)."""
    import datasets
    from datasets.load import infer_module_for_data_files_list

    assert infer_module_for_data_files_list(["test/0.tar", "test/nshards.txt"])[0] == "text"
    assert infer_module_for_data_files_list(["test/0.tar", "test/1.tar", "test/nshards.txt"])[0] == "webdataset"
    clip_benchmark_files(tmp_path / "one", {"test": [[0, 1]]}, "webp")
    guessed = datasets.load_dataset(str(tmp_path / "one"), split="test", cache_dir=str(tmp_path / "cache"))
    assert guessed.column_names == ["text"]
