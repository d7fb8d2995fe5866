"""Ctrl-C says what it kept: a second Ctrl-C during the interrupt save keeps the last complete checkpoint, and an
interrupted eval writes the results of the datasets it finished, marked partial."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ctrl_c_at_step, make_image_folder
from tgazsr_cli.cli.app import main

TRAIN = ["train", "--recipe", "tiny", "--set", "optim.max_steps=6", "--set", "optim.epochs=3",
         "--set", "train.save_every=2", "--set", "data.batch_size=8"]


def ctrl_c_again_while_saving(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """The save of the checkpoint at `step` writes part of its file, then a second Ctrl-C lands."""
    import safetensors.torch

    real_save = safetensors.torch.save_file

    def save_file(tensors: Any, filename: str, metadata: Any = None) -> None:
        if f"step-{step:08d}" in filename:
            Path(filename).write_bytes(b"half a checkpoint")
            raise KeyboardInterrupt
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


def interrupted_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "interrupted" in line]


def test_a_second_ctrl_c_during_the_save_keeps_the_last_checkpoint(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    kept = run / "checkpoints" / "step-00000002.safetensors"
    ctrl_c_again_while_saving(monkeypatch, 3)
    capsys.readouterr()
    with ctrl_c_at_step(3):
        assert main([*TRAIN, "--dataset", str(data_dir), "--output", str(run)]) == 130
    err = capsys.readouterr().err
    assert interrupted_lines(err) == [
        f"interrupted again while saving: the last complete checkpoint, step 2, is kept ({kept}); continue with "
        f"`tgazsr train --resume {run}`"]
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == [kept.name]  # no half file
    monkeypatch.undo()
    assert main(["train", "--resume", str(run)]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # step 3 was logged, lost with its checkpoint, trained and logged again


def test_a_second_ctrl_c_before_any_checkpoint_says_nothing_can_be_resumed(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ctrl_c_again_while_saving(monkeypatch, 1)
    capsys.readouterr()
    with ctrl_c_at_step(1):
        assert main([*TRAIN, "--dataset", str(data_dir), "--output", str(tmp_path / "run")]) == 130
    assert interrupted_lines(capsys.readouterr().err) == [
        "interrupted again while saving: no checkpoint had been written yet, so there is nothing to resume"]


def test_ctrl_c_during_eval_keeps_the_datasets_already_finished(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tgazsr_cli.evaluation import robust_accuracy

    second = tmp_path / "second"
    make_image_folder(second, per_class=2, size=32)
    real = robust_accuracy.evaluate_sharded
    calls: list[int] = []

    def ctrl_c_on_the_second_dataset(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(robust_accuracy, "evaluate_sharded", ctrl_c_on_the_second_dataset)
    out = tmp_path / "eval"
    capsys.readouterr()
    assert main(["eval", "--model", "tgazsr-tiny", "-d", f"{data_dir},{second}", "--eps", "2", "--steps", "1",
                 "--no-sanity", "--workers", "0", "-o", str(out)]) == 130
    err = capsys.readouterr().err
    assert interrupted_lines(err)[-1] == (f"interrupted after 1 of 2 datasets; their results are in {out}/: "
                                          "results.json, results.md, results.csv (marked partial)")
    records = json.loads((out / "results.json").read_text())
    assert records and {r["dataset"] for r in records} == {data_dir.name}
    assert all(r["partial"] == "interrupted after 1 of 2 datasets" for r in records)
    assert (out / "results.md").read_text().startswith("**Partial results: interrupted after 1 of 2 datasets")
    assert data_dir.name in (out / "results.csv").read_text() and second.name not in (out / "results.csv").read_text()
    assert not (out / "tradeoff.png").exists()  # its averages would pass for the whole run's
