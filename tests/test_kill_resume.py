"""A training process killed with SIGKILL mid-run and resumed ends with the weights of an uninterrupted run."""

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

from tests.helpers import make_image_folder
from tgazsr_cli.checkpoints.checkpoint import load_checkpoint
from tgazsr_cli.checkpoints.run_dir import step_checkpoints

pytestmark = pytest.mark.slow  # subprocesses / minutes of training: `make test-fast` skips it

STEPS = 16


def train_command(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tgazsr_cli", "train", "--recipe", "tiny", "--dataset", str(data),
            "--output", str(out), "--set", f"optim.max_steps={STEPS}", "--set", "train.save_every=2",
            "--set", "data.batch_size=8", "--set", "optim.epochs=10", "--set", "train.deterministic=true"]


def run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **ENV})
    assert result.returncode == 0, result.stderr[-2000:]


ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only")
def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_image_folder(data, per_class=8, size=32)
    run(train_command(data, tmp_path / "straight"))

    killed = tmp_path / "killed"
    process = subprocess.Popen(train_command(data, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, **ENV})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        saved = step_checkpoints(killed / "checkpoints")
        if saved and int(saved[-1].stem.split("-")[1]) >= 6:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training finished before it could be killed; raise STEPS"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "final.safetensors").exists()

    run([sys.executable, "-m", "tgazsr_cli", "train", "--resume", str(killed)])
    expected = load_checkpoint(tmp_path / "straight" / "final.safetensors")
    resumed = load_checkpoint(killed / "final.safetensors")
    assert resumed.metadata.step == expected.metadata.step == STEPS
    for key, value in expected.model_state.items():
        assert torch.equal(resumed.model_state[key], value), key
    # what the kill left is gone: the steps past the checkpoint are logged once, the lock released
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))
    assert not (killed / ".lock").exists() and not list((killed / "checkpoints").glob(".*.tmp"))
