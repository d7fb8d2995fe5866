"""Ctrl-C (a real SIGINT) mid-run, then --resume: every later step and the final weights equal an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tgazsr_cli.checkpoints.checkpoint import load_checkpoint
from tgazsr_cli.checkpoints.run_dir import step_checkpoints

STEPS = 30
ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_command(out: Path) -> list[str]:
    # save_every beyond the run: the only resumable checkpoint is the one Ctrl-C writes
    return [sys.executable, "-m", "tgazsr_cli", "train", "--recipe", "tiny", "--output", str(out),
            "--set", f"optim.max_steps={STEPS}", "--set", "train.save_every=1000", "--set", "train.log_every=1"]


def metrics(run_dir: Path) -> dict[int, dict[str, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {row["step"]: row for row in map(json.loads, lines)}


def run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **ENV})
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX-only")
def test_sigint_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    run(train_command(tmp_path / "straight"))
    expected_metrics = metrics(tmp_path / "straight")
    assert sorted(expected_metrics) == list(range(1, STEPS + 1))

    stopped = tmp_path / "stopped"
    # a shell's background jobs inherit SIGINT ignored (and Python then installs no handler): restore the default
    process = subprocess.Popen(train_command(stopped), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, **ENV},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    log = stopped / "metrics.jsonl"
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 12:
            break
        time.sleep(0.01)
    time.sleep(0.03)  # land inside the next step, after its attack has drawn random noise
    assert process.poll() is None, "training finished before it could be interrupted; raise STEPS"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    saved = step_checkpoints(stopped / "checkpoints")
    assert len(saved) == 1 and not (stopped / "final.safetensors").exists()
    stop_step = load_checkpoint(saved[0]).metadata.step
    assert 12 <= stop_step < STEPS

    run([sys.executable, "-m", "tgazsr_cli", "train", "--resume", str(stopped)])
    steps = [json.loads(line)["step"] for line in (stopped / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # each step logged once
    resumed_metrics = metrics(stopped)
    after = range(stop_step + 1, STEPS + 1)
    assert [resumed_metrics[step] for step in after] == [expected_metrics[step] for step in after]
    expected = load_checkpoint(tmp_path / "straight" / "final.safetensors")
    resumed = load_checkpoint(stopped / "final.safetensors")
    assert resumed.metadata.step == expected.metadata.step == STEPS
    for key, value in expected.model_state.items():
        assert torch.equal(resumed.model_state[key], value), key
