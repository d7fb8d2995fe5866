"""DDP training on 2 CPU processes (gloo) equals 1-process training; sharding helpers count exactly."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.helpers import make_image_folder
from tgazsr_cli.checkpoints.checkpoint import load_checkpoint
from tgazsr_cli.config import load_recipe
from tgazsr_cli.errors import UsageError
from tgazsr_cli.runtime import distributed as dist
from tgazsr_cli.training.loop import Trainer
from tgazsr_cli.training.outcomes import TrainingInterrupted

WORLD = 2
STEPS = 6


def recipe_for(data_dir: Path, *extra: str):
    # global batch 8: 4 images per rank under DDP; 3 epochs of 4 batches
    return load_recipe("tiny", [f"data.dataset={data_dir}", f"optim.max_steps={STEPS}", "train.save_every=2",
                                "data.batch_size=8", "optim.epochs=3", *extra])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker(rank: int, port: int, data_dir: str, out: str) -> None:
    """One torchrun-like rank: collectives, a straight run, and an interrupted-then-resumed run."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    dist.init_from_env(torch.device("cpu"))
    try:
        assert dist.is_distributed() and dist.rank() == rank and dist.world_size() == WORLD
        assert dist.is_main_process() == (rank == 0)
        shard = dist.shard_indices(11, dist.rank(), dist.world_size())
        # exact sums: how many items in all, their index total, and one per rank
        assert dist.all_reduce_sum([len(shard), sum(shard), 1]) == [11, sum(range(11)), WORLD]
        assert dist.all_reduce_sum([2**40 + rank]) == [2**41 + 1]  # int64, no float rounding

        root, recipe = Path(out), recipe_for(Path(data_dir))
        Trainer(recipe, root / "ddp").run()
        # a loss summed over the batch would be divided by the world size under DDP: refused
        try:
            Trainer(recipe_for(Path(data_dir), "method=pmg-aft"), root / "pmg")
            raise AssertionError("pmg-aft was accepted under DDP")
        except UsageError as exc:
            assert "cannot train on 2 processes" in str(exc)

        original = Trainer.train_step

        def stop_at_four(self: Trainer, images: torch.Tensor, labels: torch.Tensor):
            if self.step == 4:
                raise KeyboardInterrupt
            return original(self, images, labels)

        Trainer.train_step = stop_at_four  # type: ignore[method-assign]
        try:
            Trainer(recipe, root / "resumed").run()
            raise AssertionError("the run was not interrupted")
        except TrainingInterrupted:
            pass
        finally:
            Trainer.train_step = original  # type: ignore[method-assign]
        torch.manual_seed(1000 + rank)  # resume must restore the RNG state on every rank
        result = Trainer(recipe, root / "resumed").run(resume=True)
        assert result.steps == STEPS
    finally:
        dist.shutdown()


def visual_weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_checkpoint(path).model_state.items() if k.startswith("visual.")}


@pytest.mark.slow
def test_two_process_ddp_equals_one_process_and_resumes_exactly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_image_folder(data, per_class=8, size=32)
    single = Trainer(recipe_for(data), tmp_path / "single").run()
    mp.spawn(worker, args=(free_port(), str(data), str(tmp_path)), nprocs=WORLD, join=True)

    expected = visual_weights(single.final_checkpoint)
    start = Trainer(recipe_for(data), tmp_path / "untrained").model.clip.visual.state_dict()
    ddp = visual_weights(tmp_path / "ddp" / "final.safetensors")
    moved = max((expected[k] - start[k.removeprefix("visual.")]).abs().max().item() for k in expected)
    assert moved > 1e-4, "training did not change the weights; the comparison would prove nothing"
    for key, value in expected.items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-5, msg=key)
    # same process count: the resumed DDP run is bit-identical to the uninterrupted one
    for key, value in visual_weights(tmp_path / "resumed" / "final.safetensors").items():
        assert torch.equal(value, ddp[key]), key
    # rank 0 alone wrote the run directory: one metrics line per step, checkpoints rotated as in 1 process
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) == STEPS
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == \
        sorted(p.name for p in (tmp_path / "single" / "checkpoints").iterdir())


@pytest.mark.parametrize("num_items", [0, 1, 7, 8, 1001])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shard_indices_cover_every_index_once(num_items: int, world: int) -> None:
    shards = [dist.shard_indices(num_items, r, world) for r in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(num_items))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_helpers_are_the_identity_without_torchrun() -> None:
    assert not dist.is_distributed() and dist.rank() == 0 and dist.world_size() == 1 and dist.is_main_process()
    assert dist.all_reduce_sum([3, 0, 2**40]) == [3, 0, 2**40]
    assert dist.run_on_main(lambda: 5) == 5
    with pytest.raises(UsageError, match="not in"):
        dist.shard_indices(4, 2, 2)


def test_global_batch_must_split_evenly_over_processes() -> None:
    assert dist.per_rank_batch_size(128, 8) == 16
    with pytest.raises(UsageError, match="not divisible by the 3 processes"):
        dist.per_rank_batch_size(128, 3)
