"""torch's CPU thread count: the automatic rule, what overrides it, and that the count reaches torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tgazsr_cli.runtime import threads
from tgazsr_cli.runtime.threads import CpuFacts, automatic_threads, choose_threads


@pytest.mark.parametrize(("facts", "expected"), [
    (CpuFacts(allowed=2, machine=2, load=0.1, running_others=0), 2),  # an idle machine: every core
    (CpuFacts(allowed=2, machine=2, load=3.2, running_others=1), 1),  # issue #25: other work on one of 2 cores
    (CpuFacts(allowed=8, machine=8, load=2.6, running_others=3), 5),  # 3 of 8 busy elsewhere
    (CpuFacts(allowed=2, machine=2, load=1.9, running_others=0), 2),  # a job that just ended: load lags
    (CpuFacts(allowed=2, machine=2, load=0.2, running_others=2), 2),  # a burst only: not sustained
    (CpuFacts(allowed=2, machine=2, load=9.0, running_others=9), 1),  # never below 1
    (CpuFacts(allowed=4, machine=64, load=60.0, running_others=50), 4),  # pinned cores are this job's own
    (CpuFacts(allowed=64, machine=64, quota=2.5, load=60.0, running_others=50), 2),  # a container's quota
    (CpuFacts(allowed=8, machine=8, load=0.0, running_others=0, processes=2), 4),  # torchrun's processes share
    (CpuFacts(allowed=2, machine=2, load=0.0, running_others=0, processes=4), 1),
    (CpuFacts(allowed=4, machine=4, load=3.0, running_others=None), 1),  # no running count: the load alone
])
def test_the_automatic_rule(facts: CpuFacts, expected: int) -> None:
    count, why = automatic_threads(facts)
    assert count == expected
    assert why.startswith("automatic: ")


def test_the_rule_reads_the_affinity_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    monkeypatch.setattr(threads, "machine_load", lambda: (15.0, 15))  # other cores' load is not this job's
    choice = choose_threads(0, environ={})
    assert choice.count == 3
    assert choice.reason.startswith("automatic: 3 cores available")
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # no affinity on this OS: every core
    monkeypatch.setattr(threads, "machine_load", lambda: (None, None))
    assert choose_threads(0, environ={}).count == 16


def test_local_world_size_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "allowed_cores", lambda: 8)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    monkeypatch.setattr(threads, "machine_load", lambda: (0.0, 0))
    assert choose_threads(0, environ={"LOCAL_WORLD_SIZE": "4"}).count == 2


def test_omp_num_threads_and_an_explicit_count_win() -> None:
    facts = CpuFacts(allowed=2, machine=2, load=0.0, running_others=0)
    assert choose_threads(0, {"OMP_NUM_THREADS": "1"}, facts).count == 1
    assert choose_threads(0, {"OMP_NUM_THREADS": "1"}, facts).reason == "set by OMP_NUM_THREADS"
    explicit = choose_threads(3, {"OMP_NUM_THREADS": "1"}, facts, setting="train.threads")
    assert (explicit.count, explicit.reason) == (3, "set by train.threads")
    for unusable in ("", "0", "two", "-1"):  # not a count: the rule decides
        assert choose_threads(0, {"OMP_NUM_THREADS": unusable}, facts).count == 2
    assert choose_threads(None, {}, facts).count == 2


def test_cgroup_quota_v2_and_v1(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert threads.cgroup_quota(tmp_path) == 2.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_quota(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # v1's unlimited
    assert threads.cgroup_quota(tmp_path) is None


def test_machine_load_leaves_out_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("3.10 2.00 1.00 4/300 12345\n")
    monkeypatch.setattr(threads, "own_running_threads", lambda: 2)  # e.g. this thread and a spinning one
    assert threads.machine_load(loadavg, samples=3, every=0) == (3.1, 2)
    assert threads.own_running_threads() >= 1  # the real one counts at least the thread asking


def test_a_gpu_run_keeps_torchs_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: pytest.fail("a GPU run changed the CPU threads"))
    assert threads.use_threads("cuda", 3) is None


# One fresh interpreter without OMP_NUM_THREADS: train and eval through the API with the model work stubbed out,
# each recording torch.get_num_threads() where the real work would start.
PROBE = """
import json, os, sys
from pathlib import Path
from types import SimpleNamespace
import torch
from tgazsr_cli.api import evaluate, train
from tgazsr_cli.runtime import threads
import tgazsr_cli.training.loop as loop

seen, logged = {}, []
progress = SimpleNamespace(log=logged.append, task=lambda description, total, completed=0: logged.append(description))

class Trainer:
    def __init__(self, recipe, run_dir, progress=None):
        self.progress = progress
    def run(self, resume=False):
        self.progress.task("train", 1)
        seen["train"] = torch.get_num_threads()

def evaluate_all(models, names, request, settings, attacks, threat, progress, protocol=None):
    progress.task("eval", 1)
    seen.setdefault("eval", []).append(torch.get_num_threads())
    return []

loop.Trainer = Trainer
evaluate.load_models = lambda request, device: []
evaluate.evaluate_all = evaluate_all
threads.cpu_facts = lambda environ: threads.CpuFacts(allowed=3, machine=3, load=0.0, running_others=0)

torch.set_num_threads(1)
plan = train.plan_training(train.TrainRequest(recipe="tiny", flags={"train.threads": 5, "train.device": "cpu"},
                                              output=Path(sys.argv[1]) / "run"))
train.run_training(plan, progress)
request = evaluate.EvalRequest(model="tgazsr-tiny", datasets=["shapes"], device="cpu")
evaluate.run_evaluation(request, progress)  # automatic: the 3 cores of the stubbed facts
os.environ["OMP_NUM_THREADS"] = "2"  # read by tgazsr at the run, not only by torch at import
evaluate.run_evaluation(request, progress)
print(json.dumps({"seen": seen, "logged": logged}))
"""


def test_the_applied_count_reaches_torch(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "LOCAL_WORLD_SIZE")}
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["seen"] == {"train": 5, "eval": [3, 2]}
    logged = result["logged"]  # each run says its count as its first task starts
    assert logged[:2] == ["CPU threads: 5 (set by train.threads)", "train"]
    assert logged[2].startswith("CPU threads: 3 (automatic: 3 cores available") and logged[3] == "eval"
    assert logged[4:] == ["CPU threads: 2 (set by OMP_NUM_THREADS)", "eval"]


def test_the_count_is_said_as_the_first_task_starts_not_before() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def task(self, description: str, total: int | None, completed: int = 0) -> Any:
            self.lines.append(f"task {description}")

        def log(self, message: str) -> None:
            self.lines.append(message)

    recorder = Recorder()
    progress = threads.announced(recorder, threads.ThreadChoice(2, "set by --threads"))
    assert progress is not None
    progress.log("resumed")  # a failure now would be the only other line: nothing said yet
    assert recorder.lines == ["resumed"]
    progress.task("train", 3)
    progress.task("eval", 3)
    assert recorder.lines == ["resumed", "CPU threads: 2 (set by --threads)", "task train", "task eval"]
    assert threads.announced(recorder, None) is recorder  # a GPU run: nothing to say
