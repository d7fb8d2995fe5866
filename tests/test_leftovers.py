"""What a killed run leaves behind is cleared on resume: temporary files of a save the kill cut short, and the
metrics lines of steps after the checkpoint, which the resumed run trains and logs again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ctrl_c_at_step
from tgazsr_cli.checkpoints.run_dir import trim_metrics
from tgazsr_cli.cli.app import main
from tgazsr_cli.config import load_recipe
from tgazsr_cli.runtime.atomic import atomic_write, stale_temp_files
from tgazsr_cli.training.loop import Trainer

TRAIN = ["train", "--recipe", "tiny", "--set", "optim.max_steps=4", "--set", "train.save_every=2",
         "--set", "data.batch_size=8"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the trainer catches it, so no interrupt checkpoint is written."""


def recipe_for(data_dir: Path):
    return load_recipe("tiny", [f"data.dataset={data_dir}", "optim.max_steps=6", "train.save_every=2",
                                "data.batch_size=8", "optim.epochs=3", "train.log_every=1"])


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def metrics_lines(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_removes_temporary_files_of_killed_saves_but_not_of_live_writers(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    with ctrl_c_at_step(3):
        assert main([*TRAIN, "--dataset", str(data_dir), "--output", str(run)]) == 130
    dead = dead_pid()
    killed = [run / "checkpoints" / f".step-00000004.safetensors.{dead}.0a1b2c3d.tmp",
              run / f".final.safetensors.{dead}.deadbeef.tmp"]
    for path in killed:
        path.write_bytes(b"half a checkpoint")
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live = run / "checkpoints" / f".step-00000004.safetensors.{writer.pid}.00ff00ff.tmp"
        live.write_bytes(b"still being written")
        other = run / "checkpoints" / ".notes.tmp"  # not a name atomic_write makes: never ours to delete
        other.write_text("mine")
        assert stale_temp_files(run / "checkpoints") == [killed[0]]
        capsys.readouterr()
        assert main(["train", "--resume", str(run)]) == 0
        assert "removed 2 unfinished file(s) of a save that was killed" in capsys.readouterr().err
        assert not any(path.exists() for path in killed)
        assert live.read_bytes() == b"still being written" and other.read_text() == "mine"
        assert (run / "final.safetensors").is_file()
    finally:
        writer.kill()
        writer.wait()


def test_atomic_write_names_its_temporary_files_as_the_cleanup_expects(tmp_path: Path) -> None:
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_text("x")

    atomic_write(tmp_path / "a.safetensors", write)
    from tgazsr_cli.runtime.atomic import TEMP_NAME

    match = TEMP_NAME.match(seen[0].name)
    assert match is not None and match["name"] == "a.safetensors" and int(match["pid"]) > 0


def test_a_resume_after_a_kill_logs_every_step_once(data_dir: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    Trainer(recipe_for(data_dir), straight).run()
    expected = metrics_lines(straight)
    assert [line["step"] for line in expected] == [1, 2, 3, 4, 5, 6]

    killed = tmp_path / "killed"
    trainer = Trainer(recipe_for(data_dir), killed)
    real_save = trainer.save

    def save(sync: bool = True, rng_state: object = None) -> Path:
        if not sync:  # the interrupt save, which a killed process never gets to
            raise Killed
        return real_save(sync, rng_state)

    trainer.save = save  # type: ignore[method-assign]
    with ctrl_c_at_step(5), pytest.raises(Killed):  # the kill lands in step 6, after checkpoint 4
        trainer.run()
    with (killed / "metrics.jsonl").open("a") as log:
        log.write('{"step": 6, "ce": 1.')  # a line the kill cut short
    logged = (killed / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in logged[:-1]] == [1, 2, 3, 4, 5]  # step 5 is past checkpoint 4

    resumed = Trainer(recipe_for(data_dir), killed)
    assert resumed.run(resume=True).steps == 6
    assert metrics_lines(killed) == expected  # each step once, and the retrained ones as an unbroken run logs them


def test_trim_metrics_drops_later_steps_and_a_cut_line_only(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\nnot json, kept\n{"step": 3}\n{"step": 4, "ce"')
    assert trim_metrics(tmp_path, 2) == 2
    assert path.read_text() == '{"step": 1}\n{"step": 2}\nnot json, kept\n'
    before = path.stat().st_mtime_ns
    assert trim_metrics(tmp_path, 2) == 0 and path.stat().st_mtime_ns == before  # nothing to drop: untouched
    assert trim_metrics(tmp_path / "no-run", 5) == 0
