"""A run folder is locked while a process trains in it: a second trainer is refused before loading anything,
a stale lock of a dead process is taken over, and a resume that could not write is refused up front."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ctrl_c_at_step
from tgazsr_cli.checkpoints.run_dir import LOCK_NAME, hold_run_lock, lock_run_dir
from tgazsr_cli.cli.app import main
from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.training import loop
from tgazsr_cli.training.outcomes import TrainingInterrupted

TRAIN = ["train", "--recipe", "tiny", "--set", "optim.max_steps=4", "--set", "train.save_every=2",
         "--set", "data.batch_size=8"]
HOST = socket.gethostname()

# a second process that holds a run folder's lock until its stdin closes
HOLDER = """
import sys
from pathlib import Path
from tgazsr_cli.checkpoints.run_dir import hold_run_lock
with hold_run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def interrupted_run(data_dir: Path, tmp_path: Path) -> Path:
    """A run stopped by Ctrl-C after 3 of its 4 steps: resumable."""
    run = tmp_path / "run"
    with ctrl_c_at_step(3):
        assert main([*TRAIN, "--dataset", str(data_dir), "--output", str(run)]) == 130
    return run


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of tmp_path/run."""
    (tmp_path / "run").mkdir(exist_ok=True)
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        yield process
    finally:
        if process.poll() is None:
            process.communicate(timeout=60)  # closes stdin: the holder leaves its `with` block


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # reaped: the pid names no process any more
    return process.pid


def write_lock(run: Path, pid: int, host: str = HOST) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host}) + "\n")


def no_model(*_: object, **__: object) -> None:
    raise AssertionError("a model was loaded")


def test_a_run_held_by_another_process_is_refused_before_any_model_loads(
        interrupted_run: Path, holder: subprocess.Popen[str], data_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = interrupted_run
    metrics = (run / "metrics.jsonl").read_text()
    with monkeypatch.context() as patch:
        patch.setattr(loop.Trainer, "__init__", no_model)
        capsys.readouterr()
        for args in (["train", "--resume", str(run)], [*TRAIN, "--dataset", str(data_dir), "--output", str(run)]):
            assert main(args) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "is in use by" in err[0] and f"process {holder.pid} on {HOST}" in err[0], err
        # the race the check above cannot see: taking the lock itself is refused too, naming the holder
        with pytest.raises(UsageError, match=f"in use by process {holder.pid} on "):
            lock_run_dir(run)
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == holder.pid  # the holder's lock is untouched
    assert (run / "metrics.jsonl").read_text() == metrics and not (run / "final.safetensors").exists()

    holder.communicate(timeout=60)
    assert holder.returncode == 0 and not (run / LOCK_NAME).exists()  # released on a normal exit
    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "final.safetensors").is_file() and not (run / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(interrupted_run: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pid = dead_pid()
    write_lock(interrupted_run, pid)  # as a SIGKILL leaves it
    capsys.readouterr()
    assert main(["train", "--resume", str(interrupted_run)]) == 0
    err = capsys.readouterr().err
    assert f"taking over the stale lock of {interrupted_run} from process {pid} on {HOST}, which is no longer " \
           "running" in err
    assert (interrupted_run / "final.safetensors").is_file() and not (interrupted_run / LOCK_NAME).exists()


def test_a_live_pid_that_holds_no_lock_is_stale_too(tmp_path: Path) -> None:
    # a reused pid: the process runs, but the kernel says nobody holds the file's lock
    write_lock(tmp_path / "run", os.getppid())
    said: list[str] = []
    with hold_run_lock(tmp_path / "run", log=said.append):
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert said == [f"taking over the stale lock of {tmp_path / 'run'} from process {os.getppid()} on {HOST}, "
                    "which still runs but no longer holds it"]


def test_a_lock_of_another_host_is_not_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_lock(run, 4242, host="some-other-node")
    before = (run / LOCK_NAME).read_text()
    with pytest.raises(UsageError, match=r"locked by process 4242 on some-other-node .* delete the lock file"):
        lock_run_dir(run)
    assert (run / LOCK_NAME).read_text() == before


def test_the_lock_is_held_while_training_and_released_however_the_run_ends(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tgazsr_cli.config import load_recipe

    recipe = load_recipe("tiny", [f"data.dataset={data_dir}", "optim.max_steps=3", "train.save_every=2",
                                  "data.batch_size=8"])
    real_step = loop.Trainer.train_step
    holders: list[int] = []

    def step(self: loop.Trainer, images: object, labels: object) -> object:
        holders.append(json.loads((self.run_dir / LOCK_NAME).read_text())["pid"])
        if self.run_dir.name == "fails" and self.step == 1:
            raise RuntimeFailure("boom")
        return real_step(self, images, labels)

    monkeypatch.setattr(loop.Trainer, "train_step", step)
    loop.Trainer(recipe, tmp_path / "ok").run()
    assert holders == [os.getpid()] * 3 and not (tmp_path / "ok" / LOCK_NAME).exists()
    with pytest.raises(RuntimeFailure, match="boom"):
        loop.Trainer(recipe, tmp_path / "fails").run()
    assert not (tmp_path / "fails" / LOCK_NAME).exists()
    with ctrl_c_at_step(1), pytest.raises(TrainingInterrupted):
        loop.Trainer(recipe, tmp_path / "stopped").run()
    assert not (tmp_path / "stopped" / LOCK_NAME).exists()
    assert (tmp_path / "stopped" / "checkpoints" / "step-00000001.safetensors").is_file()


def test_only_rank_0_takes_the_lock_and_holding_it_again_is_allowed(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    monkeypatch.setenv("RANK", "1")
    with hold_run_lock(run) as lock:
        assert lock is None and not run.exists()
    monkeypatch.setenv("RANK", "0")
    with hold_run_lock(run), hold_run_lock(run):  # the CLI locks before the trainer, which locks again
        pass
        assert (run / LOCK_NAME).is_file()
    assert not run.exists()  # it made the folder and nothing else was written: nothing is left behind


def test_a_new_run_that_fails_before_writing_leaves_no_folder(data_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "runs" / "new"
    seen: list[bool] = []

    def failing_load(self: loop.Trainer, *_: object, **__: object) -> None:
        seen.append((run / LOCK_NAME).is_file())  # locked before the model loads
        raise RuntimeFailure("no such weights")

    monkeypatch.setattr(loop.Trainer, "__init__", failing_load)
    assert main([*TRAIN, "--dataset", str(data_dir), "--output", str(run)]) == 1
    assert seen == [True] and not run.exists() and not run.parent.exists()


def test_resume_of_an_unwritable_run_is_refused_before_any_work(
        interrupted_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    real_access = os.access
    # root may write anywhere, so the refusal is shown by os.access's answer, which is what a user meets
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == interrupted_run and
                        mode & os.W_OK else real_access(path, mode, **kw))
    monkeypatch.setattr(loop.Trainer, "__init__", no_model)
    capsys.readouterr()
    assert main(["train", "--resume", str(interrupted_run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot resume {interrupted_run}: {interrupted_run} is not writable"]
    assert not (interrupted_run / LOCK_NAME).exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes to read-only folders")
def test_resume_of_a_read_only_checkpoint_folder_is_refused(interrupted_run: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    checkpoints = interrupted_run / "checkpoints"
    checkpoints.chmod(0o555)
    try:
        assert main(["train", "--resume", str(interrupted_run)]) == 2
    finally:
        checkpoints.chmod(0o755)
    assert f"{checkpoints} is not writable" in capsys.readouterr().err
