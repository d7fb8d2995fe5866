"""Checkpoints: exact round trips, atomic writes, refusal of bad and unsafe files, open_clip export."""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import safetensors.torch
import torch
from safetensors.torch import save_file

from tgazsr_cli.checkpoints import checkpoint as ckpt
from tgazsr_cli.checkpoints import export
from tgazsr_cli.checkpoints.metadata import CheckpointMetadata, read_metadata
from tgazsr_cli.checkpoints.rng import capture_rng_state, restore_rng_state
from tgazsr_cli.checkpoints.run_dir import checkpoint_name, latest_checkpoint, rotate_checkpoints
from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.runtime import atomic
from tgazsr_cli.weights import files as weights_file
from tgazsr_cli.weights.state_dict import check_compatible

CONFIG_DIR = Path(ckpt.__file__).parents[1] / "models" / "configs"
TINY_CFG: dict[str, Any] = json.loads((CONFIG_DIR / "tgazsr-tiny.json").read_text())
PREPROCESS = {"mean": [0.48, 0.46, 0.41], "std": [0.27, 0.26, 0.28], "interpolation": "bicubic",
              "resize_mode": "shortest"}


def tiny_clip(seed: int = 0) -> torch.nn.Module:
    open_clip.add_model_config(CONFIG_DIR / "tgazsr-tiny.json")
    torch.manual_seed(seed)
    return open_clip.create_model("tgazsr-tiny").eval()


@pytest.fixture(scope="module")
def clip() -> torch.nn.Module:
    return tiny_clip()


def metadata(step: int = 7, kind: str = "training") -> CheckpointMetadata:
    return CheckpointMetadata(kind=kind, method="tga-zsr", recipe={"optim": {"lr": 1e-5, "betas": [0.9, 0.99]}},
                              model_name="tgazsr-tiny", pretrained=None, model_cfg=TINY_CFG,
                              preprocess_cfg=PREPROCESS, step=step, epoch=1, extra={"note": "ü"})


def header_document(path: Path) -> dict[str, Any]:
    """The raw JSON document in a checkpoint's header, as a reader of the file format sees it."""
    return json.loads(atomic.read_header(path)["tgazsr"])


def save_step(directory: Path, step: int, state: dict[str, torch.Tensor]) -> Path:
    path = directory / checkpoint_name(step)
    return ckpt.save_checkpoint(path, model_state=state, metadata=metadata(step))


def small_state() -> dict[str, torch.Tensor]:
    return {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(3)}


# -- round trips ---------------------------------------------------------------------------------------------
def test_checkpoint_name_sorts_by_step() -> None:
    assert checkpoint_name(123) == "step-00000123.safetensors"


def test_round_trip_is_bitwise_exact(clip: torch.nn.Module, tmp_path: Path) -> None:
    state = clip.state_dict()
    meta = metadata()
    path = ckpt.save_checkpoint(tmp_path / "a.safetensors", model_state=state, metadata=meta)
    loaded = ckpt.load_checkpoint(path)
    assert loaded.path == path and loaded.optimizer_state is None and loaded.rng_state is None
    assert loaded.model_state.keys() == state.keys()
    for key, tensor in state.items():
        assert loaded.model_state[key].dtype == tensor.dtype
        assert torch.equal(loaded.model_state[key], tensor), key
    assert isinstance(loaded.metadata, CheckpointMetadata) and loaded.metadata == meta
    document = header_document(path)
    assert document["format"] == "tgazsr-checkpoint" and document["format_version"] == 1
    assert {k: document[k] for k in meta.to_dict()} == meta.to_dict()
    assert set(loaded.metadata.versions) >= {"tgazsr", "torch", "open_clip", "safetensors", "python"}
    assert read_metadata(path) == loaded.metadata


def test_metadata_must_be_typed_and_of_a_known_kind(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="CheckpointMetadata"):
        ckpt.save_checkpoint(tmp_path / "d.safetensors", model_state=small_state(),
                             metadata=metadata().to_dict())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="kind must be one of training, model"):
        ckpt.save_checkpoint(tmp_path / "k.safetensors", model_state=small_state(), metadata=metadata(kind="best"))
    assert not list(tmp_path.iterdir())


def test_schema_1_documents_upgrade_and_newer_schemas_are_refused(tmp_path: Path) -> None:
    old = {**metadata().to_dict(), "format": "tgazsr-checkpoint", "format_version": 1, "optimizer": None,
           "rng": None, "scheduler": {"name": "cosine", "step": 7}, "extra": {"skipped_steps": 2, "note": "ü"}}
    del old["schema"], old["skipped_steps"], old["skipped_images"]
    old["future_field"] = 1
    path = tmp_path / "v1.safetensors"
    save_file({"model.w": torch.zeros(1)}, str(path), metadata={"tgazsr": json.dumps(old)})
    info = read_metadata(path)
    assert (info.skipped_steps, info.skipped_images, info.schema) == (2, 0, 2)
    assert info.extra == {"note": "ü", "future_field": 1} and info.step == 7
    assert ckpt.load_checkpoint(path).metadata == info
    newer = {**old, "schema": 99}
    save_file({"model.w": torch.zeros(1)}, str(path), metadata={"tgazsr": json.dumps(newer)})
    with pytest.raises(UsageError, match=r"metadata schema 99.*upgrade tgazsr"):
        read_metadata(path)
    assert latest_checkpoint(tmp_path, "v1.safetensors") is None  # unreadable metadata: not resumable


def test_shared_strided_and_bf16_tensors_are_saved(tmp_path: Path) -> None:
    tied = torch.randn(4, 3)
    state = {"embed": tied, "head": tied, "view": tied.t(), "half": torch.randn(5).bfloat16()}
    path = ckpt.save_checkpoint(tmp_path / "t.safetensors", model_state=state, metadata=metadata())
    loaded = ckpt.load_checkpoint(path)
    for key, tensor in state.items():
        assert torch.equal(loaded.model_state[key], tensor) and loaded.model_state[key].dtype == tensor.dtype


@pytest.mark.parametrize("bad, where", [
    ({"extra": {"path": Path("x")}}, "PosixPath"),
    ({"extra": {"loss": float("nan")}}, "nan"),
    ({"extra": {1: "a"}}, "non-string key"),
    ({"recipe": {"lr": torch.tensor(1.0)}}, "Tensor"),
])
def test_metadata_json_cannot_hold_is_rejected_before_writing(tmp_path: Path, bad: dict, where: str) -> None:
    path = tmp_path / "bad.safetensors"
    with pytest.raises(UsageError, match=where) as info:
        ckpt.save_checkpoint(path, model_state=small_state(), metadata=dataclasses.replace(metadata(), **bad))
    assert "metadata[" in str(info.value)
    assert not list(tmp_path.iterdir())


def train_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        inputs = torch.randn(8, 4, generator=generator)
        optimizer.zero_grad()
        model(inputs).square().mean().backward()
        optimizer.step()


@pytest.mark.parametrize("make_optimizer", [
    lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True),
    lambda params: torch.optim.AdamW(params, lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1),
], ids=["sgd-momentum", "adamw"])
def test_optimizer_round_trip_gives_identical_next_step(tmp_path: Path, make_optimizer: Callable) -> None:
    torch.manual_seed(0)
    original = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    optimizer = make_optimizer(original.parameters())
    train_steps(original, optimizer, steps=3, seed=1)
    path = ckpt.save_checkpoint(tmp_path / "o.safetensors", model_state=original.state_dict(), metadata=metadata(),
                                optimizer_state=optimizer.state_dict())
    torch.manual_seed(99)
    resumed = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    resumed_optimizer = make_optimizer(resumed.parameters())
    loaded = ckpt.load_checkpoint(path)
    resumed.load_state_dict(loaded.model_state)
    resumed_optimizer.load_state_dict(loaded.optimizer_state)
    train_steps(original, optimizer, steps=2, seed=2)
    train_steps(resumed, resumed_optimizer, steps=2, seed=2)
    for a, b in zip(original.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def draw() -> tuple[Any, ...]:
    return torch.rand(5), [random.random() for _ in range(3)], random.gauss(0, 1), np.random.rand(4)


def test_rng_round_trip_reproduces_the_same_numbers(tmp_path: Path) -> None:
    random.gauss(0, 1)  # leaves a cached Gaussian in python's state, which must survive too
    np.random.standard_normal()
    path = ckpt.save_checkpoint(tmp_path / "r.safetensors", model_state=small_state(), metadata=metadata(),
                                rng_state=capture_rng_state())
    expected = draw()
    draw()
    restore_rng_state(ckpt.load_checkpoint(path).rng_state)
    again = draw()
    assert torch.equal(expected[0], again[0]) and expected[1:3] == again[1:3]
    assert np.array_equal(expected[3], again[3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_map_location_and_cuda_rng_round_trip(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 2).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(3, 4, device="cuda")).sum().backward()
    optimizer.step()
    path = ckpt.save_checkpoint(tmp_path / "g.safetensors", model_state=model.state_dict(), metadata=metadata(),
                                optimizer_state=optimizer.state_dict(), rng_state=capture_rng_state())
    expected = torch.rand(4, device="cuda")
    loaded = ckpt.load_checkpoint(path, map_location="cuda")
    assert all(v.is_cuda for v in loaded.model_state.values())
    optimizer.load_state_dict(loaded.optimizer_state)
    restore_rng_state(loaded.rng_state)
    assert torch.equal(torch.rand(4, device="cuda"), expected)


# -- atomic writes -------------------------------------------------------------------------------------------
def assert_intact(path: Path, state: dict[str, torch.Tensor]) -> None:
    loaded = ckpt.load_checkpoint(path)
    assert all(torch.equal(loaded.model_state[k], v) for k, v in state.items())
    assert [p.name for p in path.parent.iterdir()] == [path.name], "a temporary file was left behind"


def test_failed_rename_keeps_previous_file_and_leaves_no_temp(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = ckpt.save_checkpoint(tmp_path / "c.safetensors", model_state=small_state(), metadata=metadata())

    def no_space(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", no_space)
    with pytest.raises(RuntimeFailure, match="No space left"):
        ckpt.save_checkpoint(path, model_state={"w": torch.zeros(2)}, metadata=metadata())
    monkeypatch.undo()
    assert_intact(path, small_state())


def test_crash_mid_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ckpt.save_checkpoint(tmp_path / "c.safetensors", model_state=small_state(), metadata=metadata())

    def half_written(tensors: dict, filename: str, metadata: dict) -> None:
        Path(filename).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
        raise KeyboardInterrupt  # Ctrl-C lands in the middle of the write

    monkeypatch.setattr(safetensors.torch, "save_file", half_written)  # runtime.atomic imports it when writing
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(path, model_state={"w": torch.zeros(2)}, metadata=metadata())
    monkeypatch.undo()
    assert_intact(path, small_state())


KILLER = textwrap.dedent("""
    import sys, torch
    from tgazsr_cli.checkpoints import checkpoint as ckpt
    from tgazsr_cli.checkpoints.metadata import CheckpointMetadata
    def meta(n):
        return CheckpointMetadata(kind="model", method="tga-zsr", model_name="tgazsr-tiny", model_cfg={}, step=n)
    path = sys.argv[1]
    ckpt.save_checkpoint(path, model_state={"w": torch.zeros(1)}, metadata=meta(0))
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        ckpt.save_checkpoint(path, model_state={"w": torch.full((500_000,), float(n))}, metadata=meta(n))
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.slow
def test_sigkill_during_saves_leaves_a_loadable_file(tmp_path: Path) -> None:
    path = tmp_path / "k.safetensors"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen([sys.executable, "-c", KILLER, str(path)], stdout=subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        time.sleep(0.4)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    loaded = ckpt.load_checkpoint(path)
    assert torch.all(loaded.model_state["w"] == loaded.metadata.step)


# -- bad input -----------------------------------------------------------------------------------------------
def foreign_safetensors(path: Path) -> None:
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})


def newer_format(path: Path) -> None:
    save_file({"model.w": torch.zeros(1)}, str(path),
              metadata={"tgazsr": json.dumps({"format": "tgazsr-checkpoint", "format_version": 99})})


def truncated(path: Path) -> None:
    ckpt.save_checkpoint(path, model_state=small_state(), metadata=metadata())
    path.write_bytes(path.read_bytes()[:-7])


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "is not a file"),
    (truncated, "truncated"),
    (lambda p: p.write_bytes(os.urandom(3000)), "not a valid safetensors file"),
    (lambda p: p.write_bytes(b""), "not a valid safetensors file"),
    (foreign_safetensors, "not a tgazsr checkpoint"),
    (lambda p: save_file({"w": torch.zeros(1)}, str(p), metadata={"tgazsr": "{oops"}), "corrupt tgazsr"),
    (newer_format, "upgrade tgazsr"),
], ids=["missing", "directory", "truncated", "random-bytes", "empty", "foreign", "bad-json", "newer-format"])
def test_bad_files_give_one_line_usage_errors(tmp_path: Path, make: Callable[[Path], Any],
                                              message: str) -> None:
    path = tmp_path / "x.safetensors"
    make(path)
    for read in (ckpt.load_checkpoint, read_metadata):
        with pytest.raises(UsageError, match=message) as info:
            read(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


# -- run folders ---------------------------------------------------------------------------------------------
def test_latest_checkpoint_skips_a_corrupt_newest_file(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "nowhere") is None
    assert latest_checkpoint(tmp_path) is None
    for step in (1, 2, 10):
        save_step(tmp_path, step, small_state())
    assert latest_checkpoint(tmp_path) == tmp_path / checkpoint_name(10)
    truncated(tmp_path / checkpoint_name(10))
    (tmp_path / checkpoint_name(11)).write_bytes(os.urandom(100))
    (tmp_path / f".{checkpoint_name(12)}.123.ab.tmp").write_bytes(b"half")
    assert latest_checkpoint(tmp_path) == tmp_path / checkpoint_name(2)


def test_rotation_keeps_the_last_k_by_step_number(tmp_path: Path) -> None:
    for step in (5, 100, 20, 3, 40):
        save_step(tmp_path, step, small_state())
    (tmp_path / "final.safetensors").write_bytes(b"not a step file")
    kept = rotate_checkpoints(tmp_path, keep_last=2)
    assert kept == [tmp_path / checkpoint_name(40), tmp_path / checkpoint_name(100)]
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert remaining == sorted([*(p.name for p in kept), "final.safetensors"])
    with pytest.raises(UsageError, match="keep_last"):
        rotate_checkpoints(tmp_path, keep_last=0)


def test_rotation_never_deletes_the_last_valid_file_for_a_corrupt_one(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        save_step(tmp_path, step, small_state())
    truncated(tmp_path / checkpoint_name(3))
    assert rotate_checkpoints(tmp_path, keep_last=1) == [tmp_path / checkpoint_name(2)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint_name(2), checkpoint_name(3)]


def test_rotation_with_another_pattern(tmp_path: Path) -> None:
    for epoch in range(4):
        ckpt.save_checkpoint(tmp_path / f"epoch-{epoch}.safetensors", model_state=small_state(), metadata=metadata())
    save_step(tmp_path, 1, small_state())
    kept = rotate_checkpoints(tmp_path, pattern="epoch-*.safetensors", keep_last=1)
    assert kept == [tmp_path / "epoch-3.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-3.safetensors", checkpoint_name(1)]


# -- architecture and interoperability -----------------------------------------------------------------------
def test_check_compatible_names_what_differs(clip: torch.nn.Module) -> None:
    state = clip.state_dict()
    check_compatible(state, state)
    check_compatible(state, {k: tuple(v.shape) for k, v in state.items()})
    other_cfg = {**TINY_CFG, "vision_cfg": {**TINY_CFG["vision_cfg"], "width": 48, "layers": 1}}
    other = open_clip.CLIP(**other_cfg).state_dict()
    with pytest.raises(UsageError, match="different architecture") as info:
        check_compatible(other, state)
    text = str(info.value)
    assert "missing keys (visual.transformer.resblocks.1." in text and "shape mismatches (" in text
    assert "\n" not in text


def outputs(model: Any, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Embeddings and zero-shot logits: what an open_clip user gets from the model."""
    image, text = model.encode_image(images, normalize=True), model.encode_text(tokens, normalize=True)
    return image, text, model.logit_scale.exp() * image @ text.T


def test_export_loads_in_plain_open_clip_with_identical_outputs(clip: torch.nn.Module,
                                                                tmp_path: Path) -> None:
    saved = ckpt.save_checkpoint(tmp_path / "m.safetensors", model_state=clip.state_dict(),
                                 metadata=metadata(kind="model"))
    loaded = ckpt.load_checkpoint(saved)
    out = export.export_open_clip(loaded, model_cfg=loaded.metadata.model_cfg,
                                  preprocess_cfg=loaded.metadata.preprocess_cfg, out_dir=tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    exported = open_clip.create_model("local-dir:" + str(out)).eval()
    rebuilt = open_clip.CLIP(**loaded.metadata.model_cfg).eval()
    rebuilt.load_state_dict(loaded.model_state)
    images = torch.rand(3, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    tokens = torch.randint(0, 49408, (4, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = outputs(clip, images, tokens)
        for model in (exported, rebuilt):
            got = outputs(model, images, tokens)
            assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert exported.visual.preprocess_cfg["mean"] == PREPROCESS["mean"]


def test_export_refuses_an_incomplete_model_cfg(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="vision_cfg"):
        export.export_open_clip(small_state(), model_cfg={"embed_dim": 3}, preprocess_cfg={}, out_dir=tmp_path)


@pytest.mark.parametrize("name, wrap", [
    ("plain.pt", lambda s: s),
    ("ddp.pth", lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}, "epoch": 3}),
    ("nested.pth.tar", lambda s: {"model": {"state_dict": s}}),
    ("vision.bin", lambda s: {"vision_encoder_state_dict": s}),
])
def test_foreign_pickled_state_dicts_load(clip: torch.nn.Module, tmp_path: Path, name: str,
                                          wrap: Callable) -> None:
    state = clip.state_dict()
    torch.save(wrap(state), tmp_path / name)
    loaded = weights_file.load_foreign_state_dict(tmp_path / name)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())


def test_foreign_safetensors_and_our_own_checkpoints_load(tmp_path: Path) -> None:
    save_file(small_state(), str(tmp_path / "f.safetensors"))
    ckpt.save_checkpoint(tmp_path / "ours.safetensors", model_state=small_state(), metadata=metadata())
    for name in ("f.safetensors", "ours.safetensors"):
        loaded = weights_file.load_foreign_state_dict(tmp_path / name)
        assert all(torch.equal(loaded[k], v) for k, v in small_state().items()) and len(loaded) == 2


class Booby:
    """Unpickling this would create a file: the payload weights_only must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return builtins.open, (str(self.marker), "w")


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if writer == "torch":
        torch.save({"weight": torch.zeros(2), "trap": Booby(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"weight": [0.0], "trap": Booby(marker)}, protocol=2))
    with pytest.raises(UsageError, match="refuses to unpickle arbitrary objects") as info:
        weights_file.load_foreign_state_dict(path)
    assert "GLOBAL io.open" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_foreign_files_that_are_not_state_dicts(tmp_path: Path) -> None:
    (tmp_path / "noise.pt").write_bytes(os.urandom(500))
    torch.save({"weight": torch.zeros(1), "epoch": 3}, tmp_path / "mixed.pt")
    with pytest.raises(UsageError):
        weights_file.load_foreign_state_dict(tmp_path / "noise.pt")
    with pytest.raises(UsageError, match="'epoch' is not a named tensor"):
        weights_file.load_foreign_state_dict(tmp_path / "mixed.pt")
    with pytest.raises(UsageError, match="does not exist"):
        weights_file.load_foreign_state_dict(tmp_path / "missing.pt")
