"""SIGTERM and SIGUSR1 (a scheduler's stop and its warning): the step in flight finishes, a resumable checkpoint
of it is written, the exit says "preempted", and --resume ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import during_step
from tests.test_interrupt_resume import ENV, STEPS, metrics, run, train_command
from tests.test_trainer import recipe_for, visual_state
from tgazsr_cli.checkpoints.checkpoint import load_checkpoint
from tgazsr_cli.checkpoints.run_dir import RECIPE_FILE, step_checkpoints
from tgazsr_cli.runtime.signals import stop_on_signals
from tgazsr_cli.training.loop import Trainer
from tgazsr_cli.training.outcomes import TrainingPreempted

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def signal_during_step(step: int, number: int) -> contextlib.AbstractContextManager[None]:
    """The process sends itself `number` in the middle of the step that starts at `step`."""
    return during_step(step, lambda: os.kill(os.getpid(), number))


def test_the_handlers_only_record_and_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)  # the first signal is the one reported
        assert stop.requested and stop.signal_name == "SIGUSR1"
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_finishes_the_step_then_resume_is_exact(data_dir: Path, tmp_path: Path, number: int) -> None:
    straight = Trainer(recipe_for(data_dir), tmp_path / "straight")
    straight.run()
    expected = visual_state(straight)

    stopped = Trainer(recipe_for(data_dir), tmp_path / "stopped")
    with signal_during_step(2, number), pytest.raises(TrainingPreempted) as info:
        stopped.run()
    assert info.value.step == 3  # the step in flight was finished, not abandoned
    assert info.value.checkpoint.name == "step-00000003.safetensors"
    assert info.value.exit_code == 128 + number and info.value.signal_name == signal.Signals(number).name

    torch.manual_seed(999)
    resumed = Trainer(recipe_for(data_dir), tmp_path / "stopped")
    assert resumed.run(resume=True).steps == 6
    for key, value in visual_state(resumed).items():
        assert torch.equal(value, expected[key]), key
    steps = [json.loads(line)["step"] for line in (tmp_path / "stopped" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))


def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_at_step_0(data_dir: Path,
                                                                             tmp_path: Path) -> None:
    run_dir = tmp_path / "early"
    run_dir.mkdir()
    (run_dir / RECIPE_FILE).write_text(recipe_for(data_dir).to_yaml())  # what a run writes before step 1
    (run_dir / "metrics.jsonl").write_text("")
    logged: list[str] = []
    trainer = Trainer(recipe_for(data_dir), run_dir)
    trainer.progress.log = logged.append  # type: ignore[method-assign]
    assert trainer.run(resume=True).steps == 6
    assert any("starting its recipe from step 0" in line for line in logged)


@pytest.mark.slow
def test_sigterm_to_the_cli_mid_epoch_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    run(train_command(tmp_path / "straight"))
    expected_metrics = metrics(tmp_path / "straight")
    stopped = tmp_path / "stopped"
    process = subprocess.Popen(train_command(stopped), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **ENV})
    deadline, log = time.monotonic() + 240, stopped / "metrics.jsonl"
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 12:
            break
        time.sleep(0.01)
    assert process.poll() is None, "training finished before it could be stopped; raise STEPS"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143 and "preempted by SIGTERM at step" in err
    (saved,) = step_checkpoints(stopped / "checkpoints")
    stop_step = load_checkpoint(saved).metadata.step
    assert 12 <= stop_step < STEPS

    run([sys.executable, "-m", "tgazsr_cli", "train", "--resume", str(stopped)])
    assert sorted(metrics(stopped)) == list(range(1, STEPS + 1))
    after = range(stop_step + 1, STEPS + 1)
    assert [metrics(stopped)[step] for step in after] == [expected_metrics[step] for step in after]
    expected = load_checkpoint(tmp_path / "straight" / "final.safetensors")
    for key, value in load_checkpoint(stopped / "final.safetensors").model_state.items():
        assert torch.equal(value, expected.model_state[key]), key
