"""How many threads torch's CPU kernels use: the cores free for this process, not every core of the machine.

torch's default, one thread per core, oversubscribes a machine that other work shares: an OpenMP parallel region
waits for its slowest thread, and a thread whose core is busy elsewhere keeps being descheduled. On 2 shared cores
14 mini-world training steps took 54.2 s with torch's 2 threads and 5.5 s with 1 (issue #25).

Which count a CPU run uses, first match wins:
1. an explicit count: `--threads N`, `train.threads` / `eval.threads` (N >= 1; 0 means automatic);
2. `OMP_NUM_THREADS`, when set to a positive whole number;
3. automatic: the cores this process may run on (its CPU affinity, else os.cpu_count(), capped by a cgroup CPU
   quota as `docker --cpus` sets one), less the cores other work keeps busy when the process may run on every
   core of the machine (a shared box; a process pinned to some cores, as a cluster job is, owns them), shared
   among the processes torchrun started on this machine (LOCAL_WORLD_SIZE), and at least 1. Busy cores are the
   smaller of the 1-minute load average and the tasks of other processes running now (/proc/loadavg, 10 looks
   over 0.2 s), rounded: work must be both sustained and current, so the tail of a job that just ended costs
   no thread. The rule ignores the model's size: a small model gains little from a second thread and loses at
   most that, while oversubscription cost 10x. The count can differ between runs on a busy machine, and CPU
   results can differ in the last bits with it: set `--threads` for bit-identical reruns.

The rule reads no torch; `use_threads` imports it to apply the count, and `announced` makes a run's progress
say it when the work starts.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tgazsr_cli.runtime.progress import Progress, ProgressTask

THREADS_ENV = "OMP_NUM_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")
LOADAVG = Path("/proc/loadavg")


@dataclass(frozen=True)
class CpuFacts:
    """What the automatic rule looks at, gathered once (`cpu_facts`) so that tests can give their own."""

    allowed: int  # cores this process may run on (its affinity mask)
    machine: int  # cores of the machine
    quota: float | None = None  # cgroup CPU quota in cores, None when unlimited
    load: float | None = None  # 1-minute load average of the machine
    running_others: int | None = None  # tasks of other processes running right now
    processes: int = 1  # processes of this job on this machine (torchrun's LOCAL_WORLD_SIZE)


@dataclass(frozen=True)
class ThreadChoice:
    count: int
    reason: str

    def describe(self) -> str:
        return f"CPU threads: {self.count} ({self.reason})"


def allowed_cores() -> int:
    """The cores this process may run on: its affinity mask where the OS has one, else every core."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cgroup_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in cores of this process's cgroup (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), None if unlimited."""
    try:
        parts = (root / "cpu.max").read_text().split()
        if parts and parts[0] != "max":
            return int(parts[0]) / int(parts[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def own_running_threads(tasks: Path = Path("/proc/self/task")) -> int:
    """This process's threads running now (this one included): torch's pool may still spin after a kernel."""
    running = 0
    for stat in tasks.glob("*/stat"):
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]  # after "(name)", which may hold spaces
        except (OSError, IndexError):
            continue
        running += state == "R"
    return max(1, running)


def machine_load(loadavg: Path = LOADAVG, samples: int = 10, every: float = 0.02
                 ) -> tuple[float | None, int | None]:
    """(1-minute load average, tasks running outside this process now: the mean of `samples` looks `every`
    seconds apart, rounded, as one look catches a busy process between two time slices); None where the OS
    does not say."""
    try:
        load, running = None, []
        for sample in range(samples):
            if sample:
                time.sleep(every)
            fields = loadavg.read_text().split()  # "1.20 0.80 0.50 RUNNING/TOTAL LASTPID"
            load = float(fields[0])
            running.append(max(0, int(fields[3].split("/")[0]) - own_running_threads()))
        return load, int(sum(running) / len(running) + 0.5)
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        pass
    try:
        return os.getloadavg()[0], None
    except (OSError, AttributeError):
        return None, None


def cpu_facts(environ: Mapping[str, str] = os.environ) -> CpuFacts:
    load, running = machine_load()
    try:
        processes = max(1, int(environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        processes = 1
    return CpuFacts(allowed_cores(), os.cpu_count() or 1, cgroup_quota(), load, running, processes)


def automatic_threads(facts: CpuFacts) -> tuple[int, str]:
    """(count, why) by the automatic rule of the module docstring."""
    cores = facts.allowed
    why = f"{cores} cores available"
    if facts.quota is not None and facts.quota < cores:
        cores = max(1, math.floor(facts.quota))
        why = f"a CPU quota of {facts.quota:g} cores"
    shared = facts.allowed >= facts.machine and facts.quota is None
    if shared and facts.load is not None:
        # busy elsewhere: sustained (load average) and current (running now); the smaller of the two
        busy = int(facts.load + 0.5)
        if facts.running_others is not None:
            busy = min(busy, facts.running_others)
        busy = min(busy, cores - 1)
        if busy > 0:
            cores -= busy
            why += f", {busy} busy with other work"
    if facts.processes > 1:
        cores //= facts.processes
        why += f", shared by {facts.processes} processes"
    return max(1, cores), f"automatic: {why}"


def env_threads(environ: Mapping[str, str]) -> int | None:
    """OMP_NUM_THREADS as a positive whole number, else None (unset or not a count: the rule decides)."""
    try:
        value = int(environ.get(THREADS_ENV, "").strip())
    except ValueError:
        return None
    return value if value > 0 else None


def choose_threads(requested: int | None = 0, environ: Mapping[str, str] = os.environ,
                   facts: CpuFacts | None = None, setting: str = "--threads") -> ThreadChoice:
    """The count a CPU run uses: `requested` (>= 1, named `setting` in the report), else OMP_NUM_THREADS, else
    the automatic rule."""
    if requested:
        return ThreadChoice(requested, f"set by {setting}")
    from_env = env_threads(environ)
    if from_env is not None:
        return ThreadChoice(from_env, f"set by {THREADS_ENV}")
    count, why = automatic_threads(facts or cpu_facts(environ))
    return ThreadChoice(count, f"{why}; --threads N or {THREADS_ENV} to choose")


def use_threads(device: Any, requested: int | None = 0, setting: str = "--threads") -> ThreadChoice | None:
    """Set torch's intra-op threads for a run on `device` (a torch.device or its name); `setting` names where an
    explicit count came from. A GPU run keeps torch's default (its CPU threads only feed the GPU): None."""
    import torch

    if torch.device(device).type != "cpu":
        return None
    choice = choose_threads(requested, setting=setting)
    if torch.get_num_threads() != choice.count:
        torch.set_num_threads(choice.count)
    return choice


class Announced:
    """`progress` that logs the thread choice once, as its first task starts: the run's start line, while a run
    that fails as it loads stays a one-line error."""

    def __init__(self, progress: Progress, message: str) -> None:
        self.progress = progress
        self.message: str | None = message

    def task(self, description: str, total: int | None, completed: int = 0) -> ProgressTask:
        if self.message is not None:
            self.progress.log(self.message)
            self.message = None
        return self.progress.task(description, total, completed)

    def log(self, message: str) -> None:
        self.progress.log(message)


def announced(progress: Progress | None, choice: ThreadChoice | None) -> Progress | None:
    """`progress` announcing `choice` (see Announced); as it is without a choice (a GPU run) or a progress."""
    if progress is None or choice is None:
        return progress
    return Announced(progress, choice.describe())
