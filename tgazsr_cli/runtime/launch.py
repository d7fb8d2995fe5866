"""Who launched this process: torchrun's variables, else SLURM's (`srun python -m tgazsr_cli ...`).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Under `srun` without torchrun each task
has SLURM_PROCID, SLURM_LOCALID and the step's task count instead; `adopt_slurm_env` writes torchrun's variables
from them (the first host of the job's node list as the master, a port derived from the job id unless
MASTER_PORT is set), so the rest of the code, and `torch.distributed`'s `env://` rendezvous, see one launcher.
Torch-free: it only reads and writes environment variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping

TORCHRUN_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
PORT_BASE, PORT_SPAN = 20000, 20000  # a job's default port: 20000-39999, from its id


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: 'gpu[003-005,010],cpu1' -> 'gpu003', 'node7' -> 'node7'."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise ValueError(f"cannot read SLURM node list {nodelist!r}")
    prefix, ranges = match.group(1), match.group(2)
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]  # keeps the zero padding: [003-005] starts at 003
    return prefix + first


def slurm_step(env: Mapping[str, str]) -> dict[str, str] | None:
    """torchrun's variables for a task of an `srun` step, or None when this is not one.

    Only a task of a job step counts (SLURM_STEP_ID is set): a batch script that runs python directly holds
    SLURM_NTASKS of its allocation but is one process, and must not wait for the others.
    """
    if "SLURM_PROCID" not in env or "SLURM_STEP_ID" not in env:
        return None
    tasks = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1"
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "127.0.0.1"
    job = int(re.sub(r"\D", "", env.get("SLURM_JOB_ID", "")) or 0)
    return {
        "RANK": env["SLURM_PROCID"],
        "WORLD_SIZE": tasks,
        "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
        "MASTER_ADDR": env.get("MASTER_ADDR") or first_host(nodelist),
        "MASTER_PORT": env.get("MASTER_PORT") or str(PORT_BASE + job % PORT_SPAN),
    }


def adopt_slurm_env(env: MutableMapping[str, str] | None = None) -> str:
    """Fill torchrun's variables from SLURM's when torchrun's are absent; which launcher was found:
    'torchrun', 'slurm' or 'none'. Calling it again changes nothing."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env and "RANK" in env:
        return "slurm" if env.get("TGAZSR_LAUNCHER") == "slurm" else "torchrun"
    step = slurm_step(env)
    if step is None:
        return "none"
    env.update(step)
    env["TGAZSR_LAUNCHER"] = "slurm"
    return "slurm"
