"""`srun python -m tgazsr_cli ...`: SLURM's task variables form the process group when torchrun's are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.helpers import make_image_folder
from tests.test_distributed import free_port, recipe_for, visual_weights
from tgazsr_cli.runtime import distributed as dist
from tgazsr_cli.runtime.launch import adopt_slurm_env, first_host, slurm_step
from tgazsr_cli.training.loop import Trainer

STEP_ENV = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "2",
            "SLURM_JOB_NODELIST": "127.0.0.1"}


@pytest.mark.parametrize(("nodelist", "host"), [
    ("node7", "node7"), ("gpu[003-005,010]", "gpu003"), ("gpu[12,3]", "gpu12"), ("a[1-2],b[3]", "a1"),
    ("127.0.0.1", "127.0.0.1"),
])
def test_first_host_of_a_node_list(nodelist: str, host: str) -> None:
    assert first_host(nodelist) == host


def test_a_task_of_an_srun_step_becomes_a_torchrun_rank() -> None:
    env = {**STEP_ENV, "SLURM_PROCID": "1", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "gpu[003-004]"}
    assert adopt_slurm_env(env) == "slurm"
    assert {k: env[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")} == {
        "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu003", "MASTER_PORT": str(20000 + 4242)}
    assert adopt_slurm_env(env) == "slurm" and env["RANK"] == "1"  # a second call changes nothing


def test_torchrun_wins_and_a_batch_script_is_one_process() -> None:
    under_torchrun = {**STEP_ENV, "SLURM_PROCID": "0", "RANK": "3", "WORLD_SIZE": "8"}
    assert adopt_slurm_env(under_torchrun) == "torchrun" and under_torchrun["RANK"] == "3"  # srun torchrun ...
    batch = {k: v for k, v in STEP_ENV.items() if k != "SLURM_STEP_ID"} | {"SLURM_PROCID": "0"}
    assert slurm_step(batch) is None and adopt_slurm_env(batch) == "none" and "WORLD_SIZE" not in batch
    assert adopt_slurm_env({"SLURM_PROCID": "0", "SLURM_STEP_ID": "1"}) == "slurm"  # one task: a world of 1


def worker(task: int, port: int, data_dir: str, out: str) -> None:
    """One srun task: only SLURM's variables, as srun sets them."""
    torch.set_num_threads(1)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "TGAZSR_LAUNCHER"):
        os.environ.pop(key, None)
    os.environ.update(STEP_ENV, SLURM_PROCID=str(task), SLURM_LOCALID=str(task), MASTER_PORT=str(port))
    dist.init_from_env(torch.device("cpu"))
    try:
        assert dist.is_distributed() and dist.rank() == task and dist.world_size() == 2
        assert dist.all_reduce_sum([task + 1]) == [3]
        Trainer(recipe_for(Path(data_dir)), Path(out) / "srun").run()
    finally:
        dist.shutdown()


@pytest.mark.slow
def test_two_srun_tasks_train_like_one_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_image_folder(data, per_class=8, size=32)
    single = Trainer(recipe_for(data), tmp_path / "single").run()
    mp.spawn(worker, args=(free_port(), str(data), str(tmp_path)), nprocs=2, join=True)
    expected = visual_weights(single.final_checkpoint)
    for key, value in visual_weights(tmp_path / "srun" / "final.safetensors").items():
        torch.testing.assert_close(value, expected[key], rtol=1e-4, atol=1e-5, msg=key)
