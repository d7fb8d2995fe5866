"""Sharded evaluation under torchrun: two CPU processes (gloo) each evaluate half of the dataset and sum exact
counts (accuracy, top-5, per class, calibration bins), and the result equals the 1-process evaluation, record for
record."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tgazsr_cli.cli.app import main

pytestmark = pytest.mark.slow  # subprocesses / minutes of training: `make test-fast` skips it

EVAL_ARGS = ["eval", "--model", "tgazsr-mini", "--pretrained", "tgazsr:mini-clip", "--datasets", "digits", "--limit",
             "22", "--attack", "pgd", "--suite", "paper-aa", "--eps", "2", "--steps", "4",
             "--step-size", "1", "--batch-size", "4", "--workers", "0", "--no-sanity", "--json", "--device", "cpu"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_processes_give_exactly_the_one_process_counts(capsys: pytest.CaptureFixture[str]) -> None:
    args = EVAL_ARGS  # the shipped mini CLIP on 22 shipped digits: 11 per rank
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), "-m", "tgazsr_cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=Path.cwd())
    assert done.returncode == 0, done.stderr[-2000:]
    sharded = json.loads(done.stdout)
    assert main(args) == 0
    single = json.loads(capsys.readouterr().out)
    keys = ("attack", "num_examples", "clean_correct", "robust_correct")
    assert [[r[k] for k in keys] for r in sharded] == [[r[k] for k in keys] for r in single]
    assert [r["extra"]["robust_after"] for r in sharded if r["attack"] == "paper-aa"] == \
        [r["extra"]["robust_after"] for r in single if r["attack"] == "paper-aa"]
    assert sharded[0]["num_examples"] == 22 and sharded[0]["extra"]["processes"] == 2
    assert sharded[0]["clean_correct"] > sharded[0]["robust_correct"] > 0  # something to count on both sides
    # top-5 and per-class counts (CLIP_benchmark's acc5, mean per-class recall) sum exactly too
    counts = ("clean_top5_correct", "robust_top5_correct", "class_counts", "clean_per_class", "robust_per_class",
              "clean_mean_per_class_recall", "robust_mean_per_class_recall")
    assert [[r[k] for k in counts] for r in sharded] == [[r[k] for k in counts] for r in single]
    assert sum(sharded[0]["class_counts"]) == 22
    for ranks, one in zip(sharded, single, strict=True):  # and the calibration bins (ECE)
        for key in ("clean_bins", "robust_bins"):
            assert ranks[key]["count"] == one[key]["count"] and ranks[key]["correct"] == one[key]["correct"]
            # fp32: the ranks' batches hold other images, which moves a confidence by ~1e-6
            assert ranks[key]["confidence_sum"] == pytest.approx(one[key]["confidence_sum"], abs=1e-4)
        assert ranks["robust_ece"] == pytest.approx(one["robust_ece"], abs=1e-3)
