"""Outputs that could not be written, outputs that are inputs, wrong picture formats and unknown training datasets
are refused before any model is loaded: exit 2, one line (README, Failure behaviour)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tgazsr_cli.cli.app import main
from tgazsr_cli.errors import UsageError

TINY = ["--model", "tgazsr-tiny"]


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way a command loads a model or checkpoint records itself here and fails instead."""
    import tgazsr_cli.checkpoints.loading as loading
    import tgazsr_cli.checkpoints.plain as plain
    import tgazsr_cli.training.loop as loop

    called: list[str] = []

    def refuse(name: str) -> Any:
        def loader(*args: Any, **kwargs: Any) -> Any:
            called.append(name)
            raise AssertionError(f"{name} was called")
        return loader

    for module, name in ((loading, "load_model"), (loading, "load_pretrained_classifier"),
                         (loading, "load_tgazsr_checkpoint"), (plain, "load_plain_checkpoint"), (loop, "Trainer")):
        monkeypatch.setattr(module, name, refuse(name))
    return called


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with an image, a checkpoint-named file, a plain file, a folder named like a picture, and
    `locked/`, which os.access reports as not writable (these tests may run as root, who may write anywhere)."""
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (32, 32)).save("picture.png")
    Path("weights.safetensors").write_bytes(b"not read")
    Path("a-file").write_text("")
    Image.new("RGB", (8, 8)).save("earlier.png")  # a panel drawn before: kept unless --force
    Path("folder.png").mkdir()
    Path("locked").mkdir()
    real_access = os.access
    locked = (tmp_path / "locked").resolve()

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if mode & os.W_OK and Path(path).resolve() == locked:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    return tmp_path


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line of a refusal with exit code 2."""
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


VISUALIZE = ["visualize-attention", "picture.png", *TINY, "--classes", "a,b"]


@pytest.mark.parametrize(("args", "message"), [
    ([*VISUALIZE, "-o", "panel.txt"], "must be a picture file"),
    ([*VISUALIZE, "-o", "picture.png"], "is the input image"),
    ([*VISUALIZE, "-o", "locked/panel.png"], "is not writable"),
    ([*VISUALIZE, "-o", "a-file/panel.png"], "is not a folder"),
    ([*VISUALIZE, "-o", "folder.png"], "is a folder"),
    ([*VISUALIZE, "-o", "earlier.png"], "exists; pass --force to overwrite it"),
    (["visualize-attention", "missing.png", *TINY, "--classes", "a,b"], "does not exist"),
])
def test_visualize_attention(args: list[str], message: str, place: Path, loads: list[str],
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert message in refused(args, capsys)
    assert loads == []


@pytest.mark.parametrize(("args", "message"), [
    (["export", "weights.safetensors", "-o", "weights.safetensors"], "is the checkpoint being exported"),
    (["export", "weights.safetensors", "-o", "locked/out"], "locked is not a writable folder"),
    (["export", "weights.safetensors", "--hub-dir", "locked"], "is not writable"),
    (["export", "weights.safetensors", "-o", "a-file/out"], "a-file is not a writable folder"),
    (["export", "no-such.safetensors", "-o", "out"], "does not exist"),
])
def test_export(args: list[str], message: str, place: Path, loads: list[str],
                capsys: pytest.CaptureFixture[str]) -> None:
    assert message in refused(args, capsys)
    assert loads == [] and not Path("out").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["convert", "--pretrained", "weights.safetensors", "-o", "weights.safetensors", "--force"],
     "is the weights file being converted"),
    (["convert", "--pretrained", "openai+weights.safetensors", "-o", "weights.safetensors", "--force"],
     "is the weights file being converted"),
    (["convert", "--pretrained", "weights.safetensors", "-o", "locked/model.safetensors"], "is not writable"),
    (["convert", "--pretrained", "weights.safetensors", "-o", "model.txt"], "must end in .safetensors"),
    (["convert", "--pretrained", "weights.safetensors", "-o", "a-file/model.safetensors"], "is not a folder"),
])
def test_convert(args: list[str], message: str, place: Path, loads: list[str],
                 capsys: pytest.CaptureFixture[str]) -> None:
    assert message in refused(args, capsys)
    assert loads == [] and Path("weights.safetensors").read_bytes() == b"not read"


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "no-such-set"], "unknown dataset 'no-such-set'"),
    (["--dataset", "digits+no-such-set"], "unknown dataset 'no-such-set'"),
    (["--dataset", "digts"], "did you mean 'digits'"),
    (["-o", "locked/run"], "locked is not a writable folder"),
    (["-o", "a-file/run"], "a-file is not a writable folder"),
    (["--dataset", "data", "-o", "data/run"], "is inside the training data"),
])
def test_train(args: list[str], message: str, place: Path, loads: list[str],
               capsys: pytest.CaptureFixture[str]) -> None:
    (place / "data" / "cat").mkdir(parents=True)
    args = ["train", "--recipe", "tiny", *args] if "-o" in args else ["train", "--recipe", "tiny", *args, "-o", "run"]
    err = refused(args, capsys)
    assert message in err and "→" not in err  # no banner naming a run folder
    assert loads == [] and not Path("run").exists() and not Path("runs").exists()


def test_unknown_dataset_is_named_before_the_default_run_folder(place: Path, loads: list[str],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown dataset 'nope'" in refused(["train", "--recipe", "tiny", "--dataset", "nope"], capsys)
    assert not Path("runs").exists() and loads == []


def test_known_dataset_forms_pass_the_name_check(place: Path) -> None:
    from tgazsr_cli.api.train import check_dataset_name

    Path("data").mkdir()
    for source in ("digits", "hf:org/name", "./data", "data", "~/x", "a.parquet", "digits+shapes"):
        check_dataset_name(source)
    with pytest.raises(UsageError):
        check_dataset_name("digits+nope")


@pytest.mark.parametrize(("args", "message"), [
    (["-d", "no-such-set"], "unknown dataset 'no-such-set'"),
    (["-d", "digits", "-o", "locked/adv"], "locked is not a writable folder"),
    (["-d", "digits", "-o", "a-file"], "exists and is not a folder"),
])
def test_attack(args: list[str], message: str, place: Path, loads: list[str],
                capsys: pytest.CaptureFixture[str]) -> None:
    args = ["attack", *TINY, *args] if "-o" in args else ["attack", *TINY, *args, "-o", "adv"]
    assert message in refused(args, capsys)
    assert loads == [] and not Path("adv").exists()


def test_attack_failing_at_start_leaves_no_folder(place: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import tgazsr_cli.checkpoints.loading as loading

    def no_such_model(**kwargs: Any) -> Any:
        raise UsageError("unknown model 'ViT-B-99'")

    monkeypatch.setattr(loading, "load_model", no_such_model)
    assert "unknown model" in refused(["attack", "--model", "ViT-B-99", "-d", "digits", "-o", "adv"], capsys)
    assert not Path("adv").exists()
    # with --force, earlier results stay when the new attack could not start
    Path("adv").mkdir()
    Path("adv/predictions.json").write_text("{}")
    assert "unknown model" in refused(["attack", "--model", "ViT-B-99", "-d", "digits", "-o", "adv", "--force"],
                                      capsys)
    assert Path("adv/predictions.json").read_text() == "{}"


def test_attack_failing_before_its_first_file_removes_the_folder_it_made(
        place: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import tgazsr_cli.viz.examples as examples
    from tgazsr_cli.errors import RuntimeFailure

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeFailure("out of memory")

    monkeypatch.setattr(examples, "attack_and_save", fails)
    code = main(["attack", *TINY, "-d", "digits", "-n", "2", "--steps", "1", "-o", "adv"])
    assert code == 1 and "out of memory" in capsys.readouterr().err
    assert not Path("adv").exists()


# Every refusal above in one fresh interpreter: none of them even imports torch.
PROBE = """
import json, sys
from tgazsr_cli.cli.app import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps([codes, "torch" in sys.modules]))
"""


def test_no_refusal_imports_torch(tmp_path: Path) -> None:
    Image.new("RGB", (32, 32)).save(tmp_path / "picture.png")
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    (tmp_path / "a-file").write_text("")
    cases = [
        [*VISUALIZE, "-o", "panel.txt"], [*VISUALIZE, "-o", "picture.png"], [*VISUALIZE, "-o", "a-file/p.png"],
        ["export", "weights.safetensors", "-o", "weights.safetensors"], ["export", "weights.safetensors", "-o",
                                                                         "a-file/out"],
        ["convert", "--pretrained", "weights.safetensors", "-o", "weights.safetensors", "--force"],
        ["convert", "--pretrained", "weights.safetensors", "-o", "a-file/m.safetensors"],
        ["train", "--recipe", "tiny", "--dataset", "no-such-set", "-o", "run"],
        ["train", "--recipe", "tiny", "-o", "a-file/run"],
        ["attack", *TINY, "-d", "no-such-set"], ["attack", *TINY, "-d", "digits", "-o", "a-file"],
    ]
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cases)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, check=True)
    codes, imported_torch = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(cases) and not imported_torch
