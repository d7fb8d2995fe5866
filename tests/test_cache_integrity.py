"""Decoded cache integrity: a damaged array or sidecar is found on reuse, warned about once and rebuilt."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.test_decoded_cache import counting_decoder
from tgazsr_cli.data import decoded_cache, load_image_dataset
from tgazsr_cli.data.cached import apply_decoded_cache, cached_training_data, ensure_cache
from tgazsr_cli.errors import RuntimeFailure

SIZE, COUNT = 28, 24


@pytest.fixture
def data():
    return load_image_dataset("shapes", split="train", image_size=SIZE, limit=COUNT, seed=2)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per image decoded: a rebuild decodes all of them again, a reuse none."""
    return counting_decoder(monkeypatch)


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The arrays hashed by this process (build and verification both go through array_digest)."""
    calls: list[Path] = []
    real = decoded_cache.array_digest

    def counted(path: Path, *args, **kwargs):
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(decoded_cache, "array_digest", counted)
    decoded_cache.forget_verified()
    yield calls
    decoded_cache.forget_verified()


def build(data, folder: Path):
    return ensure_cache(data, folder, storage_size=None, image_size=SIZE, limit=COUNT, seed=2)


def reuse_in_a_new_process(data, folder: Path):
    """What the next run sees: nothing verified yet in its process."""
    decoded_cache.forget_verified()
    return build(data, folder)


def test_an_intact_cache_is_verified_once_and_reused_without_rebuilding(tmp_path: Path, data, decodes: list[int],
                                                                        hashed: list[Path]) -> None:
    first = build(data, tmp_path)
    assert first.built and len(decodes) == COUNT and len(hashed) == 1  # hashed once, while it was written
    sidecar = tmp_path / f"{first.key}.json"
    times = (first.path.stat().st_mtime_ns, sidecar.stat().st_mtime_ns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        again = build(data, tmp_path)  # same process: the array was checked when it was written
        assert not again.built and len(hashed) == 1
        fresh = reuse_in_a_new_process(data, tmp_path)
    assert not fresh.built and fresh.key == first.key and len(hashed) == 2  # checked once in the new process
    assert len(decodes) == COUNT  # nothing decoded again
    assert (first.path.stat().st_mtime_ns, sidecar.stat().st_mtime_ns) == times  # neither file rewritten
    info = json.loads(sidecar.read_text())
    assert info["format_version"] == 2 and len(info["labels_digest"]) == 32
    assert info["array_digest"]["size"] == first.path.stat().st_size and len(info["array_digest"]["blocks"]) == 1


def test_inverted_images_in_the_array_are_found_and_the_cache_is_rebuilt(tmp_path: Path, data, decodes: list[int],
                                                                         hashed: list[Path]) -> None:
    first = build(data, tmp_path)
    fresh_decode = np.load(first.path).copy()
    array = np.load(first.path, mmap_mode="r+")
    array[: COUNT // 2] = 255 - array[: COUNT // 2]  # the damage: half the images inverted in place
    array.flush()
    del array
    with pytest.warns(UserWarning, match=r"decoded cache .*\.npy is damaged: its array does not match") as caught:
        rebuilt = reuse_in_a_new_process(data, tmp_path)
    assert len(caught) == 1 and str(caught[0].message).count("\n") == 0  # one warning, one line
    assert rebuilt.built and rebuilt.key == first.key and len(decodes) == 2 * COUNT
    np.testing.assert_array_equal(np.load(rebuilt.path), fresh_decode)  # the rebuilt data is a fresh decode
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not reuse_in_a_new_process(data, tmp_path).built  # and it is intact again


def test_one_flipped_byte_is_found_and_its_block_named(tmp_path: Path, data, hashed: list[Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoded_cache, "DIGEST_BLOCK", 4096)  # several blocks in a small array
    first = build(data, tmp_path)
    size = first.path.stat().st_size
    blocks = -(-size // 4096)
    offset = size - 5000  # inside the second-to-last or last block, past the .npy header
    with open(first.path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))
    info = json.loads((tmp_path / f"{first.key}.json").read_text())
    decoded_cache.forget_verified()
    problem = decoded_cache.verify_cache(tmp_path, first.key, info)
    assert problem == f"its array does not match its digest (block {offset // 4096 + 1} of {blocks})"
    assert len(info["array_digest"]["blocks"]) == blocks > 2


def test_shifted_labels_in_the_sidecar_are_found_and_the_cache_is_rebuilt(tmp_path: Path, data,
                                                                          decodes: list[int],
                                                                          hashed: list[Path]) -> None:
    first = build(data, tmp_path)
    sidecar = tmp_path / f"{first.key}.json"
    info = json.loads(sidecar.read_text())
    right = list(info["labels"])
    classes = len(info["classnames"])
    info["labels"] = [(label + 1) % classes for label in right]  # every label shifted, still valid classes
    sidecar.write_text(json.dumps(info))
    fresh_decode = np.load(first.path).copy()
    with pytest.warns(UserWarning, match="its labels do not match their digest") as caught:
        rebuilt = reuse_in_a_new_process(data, tmp_path)
    assert len(caught) == 1 and rebuilt.built and len(decodes) == 2 * COUNT
    assert json.loads(sidecar.read_text())["labels"] == right == [data.dataset[i][1] for i in range(COUNT)]
    np.testing.assert_array_equal(np.load(rebuilt.path), fresh_decode)
    cached, _, _ = cached_training_data(data, rebuilt, mode="disk", device=torch.device("cpu"))
    assert [item[1] for item in cached.dataset.__getitems__(list(range(COUNT)))] == right


def test_an_unreadable_sidecar_is_rebuilt_with_a_warning(tmp_path: Path, data, hashed: list[Path]) -> None:
    first = build(data, tmp_path)
    (tmp_path / f"{first.key}.json").write_text('{"key": "trunc')
    with pytest.warns(UserWarning, match="its files cannot be read") as caught:
        assert build(data, tmp_path).built
    assert len(caught) == 1


def test_labels_changed_after_the_check_are_a_one_line_error(tmp_path: Path, data, hashed: list[Path]) -> None:
    cache = build(data, tmp_path)
    sidecar = tmp_path / f"{cache.key}.json"
    info = json.loads(sidecar.read_text())
    info["labels"][0] = (info["labels"][0] + 1) % len(info["classnames"])
    sidecar.write_text(json.dumps(info))
    with pytest.raises(RuntimeFailure, match="changed while in use") as caught:
        cached_training_data(data, cache, mode="disk", device=torch.device("cpu"))
    assert caught.value.exit_code == 1 and "\n" not in str(caught.value)


def test_training_log_says_rebuilt_after_damage(tmp_path: Path, data, hashed: list[Path]) -> None:
    """The trainer's step (`data.cache=disk`): after damage it logs 'built', never 'reused'."""
    recipe = SimpleNamespace(
        data=SimpleNamespace(cache_dir=str(tmp_path), cache_size=None, limit=COUNT, num_workers=0, cache="disk"),
        train=SimpleNamespace(seed=2))
    lines: list[str] = []

    def step() -> None:
        decoded_cache.forget_verified()
        apply_decoded_cache(data, recipe, SIZE, torch.device("cpu"), lines.append, lambda fn: fn())

    step()
    step()
    assert "(built: 24 images" in lines[0] and "(reused: 24 images" in lines[1]
    path = next(tmp_path.glob("*.npy"))
    array = np.load(path, mmap_mode="r+")
    array[: COUNT // 2] = 255 - array[: COUNT // 2]
    array.flush()
    del array
    with pytest.warns(UserWarning, match="damaged"):
        step()
    assert "(built: 24 images" in lines[2]
