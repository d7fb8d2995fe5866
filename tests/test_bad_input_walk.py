"""A walk over bad inputs a new user hits: every one ends in a single line with no exception class name in it,
and the right exit code."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from tgazsr_cli.cli.app import main

CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b")


class Executes:
    """What an attacker puts in a pickle: an object whose unpickling runs code."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo unpickled",))


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": {"embed_dim": 16, "vision_cfg": {"image_size": 16, "layers": 1, "width": 64, "patch_size": 8},
                      "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 64, "heads": 1, "layers": 1}},
        "preprocess_cfg": {}}))
    torch.save({"x": Executes()}, pickled / "open_clip_pytorch_model.bin")
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 16}}))
    (tmp_path / "odd\udcffname").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "x.png")  # a file name that is not UTF-8 (bytes 0xff), as POSIX allows
    return tmp_path


TINY = ["--model", "tgazsr-tiny"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["eval", "--model", "local-dir:pickled", "--datasets", "digits", "--limit", "4"], 2,
     "holds pickled weights with more than tensors in them"),
    (["eval", "--model", "local-dir:incomplete", "--datasets", "digits", "--limit", "4"], 2,
     "incomplete open_clip_config.json"),
    (["eval", *TINY, "--datasets", "odd\udcffname", "--limit", "4"], 1, "found no parquet files"),
    (["visualize-attention", "odd\udcffname/x.png", *TINY, "--classes", "a,b"], 2, "does not exist"),
    (["visualize-attention", "x.png", *TINY, "--classes", "a,b", "-o", "odd\udcffname/panel.txt"], 2,
     "must be a picture file"),
    (["attack", "-d", "digits", *TINY, "-o", "odd\udcffname/../odd\udcffname"], 0, ""),
    (["train", "--recipe", "tiny", "--dataset", "odd\udcffname/none", "-o", "run"], 2,
     "dataset path odd\\xffname/none does not exist"),
])
def test_each_bad_input_is_one_plain_line(args: list[str], code: int, message: str, place: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    if code == 0:  # an output folder named in non-UTF-8 bytes is an ordinary folder
        args = [*args, "-n", "2", "--eps", "1", "--steps", "1"]
        (place / "odd\udcffname" / "keep").write_text("")
        args[args.index("-o") + 1] = "odd\udcffname/out"
    assert main(args) == code
    err = capsys.readouterr().err.strip()
    if code == 0:
        assert any((place / "odd\udcffname" / "out").glob("*-adversarial.png"))
        return
    assert len(err.splitlines()) == 1 and message in err, err
    assert not CLASS_NAME.search(err), err
    assert "unpickled" not in err
