"""Checkpoints carry a CRC-32 per tensor: a flipped byte inside a tensor is a one-line error naming the file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from tests.test_checkpoint import header_document, metadata, small_state
from tgazsr_cli.checkpoints.checkpoint import load_checkpoint, save_checkpoint
from tgazsr_cli.cli.app import main
from tgazsr_cli.errors import UsageError
from tgazsr_cli.runtime.atomic import atomic_save_tensors
from tgazsr_cli.runtime.digest import tensor_digest
from tgazsr_cli.weights.files import checkpoint_model_state


def flip_byte_of(path: Path, key: str, offset: int = 0) -> None:
    """Invert one byte of tensor `key`'s data, leaving the header (and so the file size) as it was."""
    raw = bytearray(path.read_bytes())
    (header_size,) = struct.unpack("<Q", raw[:8])
    start, _ = json.loads(raw[8:8 + header_size])[key]["data_offsets"]
    raw[8 + header_size + start + offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_every_tensor_is_written_with_its_digest(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", model_state=small_state(), metadata=metadata(),
                           optimizer_state={"state": {0: {"momentum_buffer": torch.ones(2)}}, "param_groups": []})
    digests = header_document(path)["digests"]
    assert set(digests) == {"model.w", "model.b", "optim.state.0.momentum_buffer"}
    assert digests["model.w"] == tensor_digest(small_state()["w"]) != digests["model.b"]
    assert load_checkpoint(path).metadata.extra == {"note": "ü"}  # the digests are the container's, not metadata


@pytest.mark.parametrize("key", ["model.w", "model.b"])
def test_a_flipped_byte_is_an_error_naming_the_file_and_tensor(tmp_path: Path, key: str) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", model_state=small_state(), metadata=metadata())
    flip_byte_of(path, key, offset=5)
    with pytest.raises(UsageError, match=rf"'{path}' is corrupt: tensor '{key}' differs"):
        load_checkpoint(path)
    with pytest.raises(UsageError, match="is corrupt"):
        checkpoint_model_state(path)  # the reader of shipped weights checks too
    assert not torch.equal(load_checkpoint(path, verify=False).model_state[key.removeprefix("model.")],
                           small_state()[key.removeprefix("model.")])


def test_checkpoints_written_before_digests_still_load(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", model_state=small_state(), metadata=metadata())
    document = header_document(path)
    del document["digests"]
    tensors = {f"model.{k}": v for k, v in small_state().items()}
    atomic_save_tensors(path, tensors, {"tgazsr": json.dumps(document)})
    assert torch.equal(load_checkpoint(path).model_state["w"], small_state()["w"])


def test_eval_of_a_rotten_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--recipe", "tiny", "--max-steps", "1", "-o", str(tmp_path / "run")]) == 0
    final = tmp_path / "run" / "final.safetensors"
    flip_byte_of(final, "model.visual.proj")
    capsys.readouterr()
    assert main(["eval", "-c", str(final), "--limit", "8", "--eps", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"'{final}' is corrupt: tensor 'model.visual.proj' differs" in err[0]


def test_no_verify_skips_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--recipe", "tiny", "--max-steps", "1", "-o", str(tmp_path / "run")]) == 0
    final = tmp_path / "run" / "final.safetensors"
    flip_byte_of(final, "model.visual.proj")
    assert main(["eval", "-c", str(final), "--limit", "8", "--eps", "0", "--no-verify"]) == 0
