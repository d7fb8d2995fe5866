"""Multi-process training and evaluation under torchrun or srun (DistributedDataParallel).

torchrun starts one process per GPU and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT (srun's tasks get them from SLURM's variables: runtime.launch); `init_from_env` joins that
process group (nccl on CUDA, gloo on CPU). Without those
variables (or with WORLD_SIZE=1) every helper here is the identity, so single-process code paths
stay exactly as they were.

Equivalence with one process: the trainer splits every global batch into equal contiguous shards,
one per rank. The losses are batch means, and DDP averages gradients over ranks, so the mean of
the per-rank means of equal shards is the global mean and the update matches 1-process training.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from tgazsr_cli.errors import RuntimeFailure, TgazsrError, UsageError
from tgazsr_cli.runtime.launch import adopt_slurm_env

T = TypeVar("T")


# -- who am I ----------------------------------------------------------------------------------
def launched_distributed() -> bool:
    """True when torchrun, or srun (runtime.launch), asked for more than one process."""
    adopt_slurm_env()
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


# -- set up and tear down ----------------------------------------------------------------------
def init_from_env(device: torch.device, timeout_minutes: float = 30.0) -> torch.device:
    """Join torchrun's process group if launched by it; the device this rank must use.

    On CUDA each rank takes the GPU of its LOCAL_RANK (any index in the requested device is
    ignored, since torchrun assigns the GPUs). Calling it again is harmless.
    """
    if not launched_distributed():
        return device
    if device.type == "cuda":
        if local_rank() >= torch.cuda.device_count():
            raise UsageError(f"LOCAL_RANK {local_rank()} but only {torch.cuda.device_count()} GPUs are visible")
        torch.cuda.set_device(local_rank())
        device = torch.device("cuda", local_rank())
    if not dist.is_available():
        raise RuntimeFailure("this torch build has no torch.distributed; cannot train with WORLD_SIZE > 1")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeFailure(f"could not join the {backend} process group: {first}") from exc
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# -- collectives -------------------------------------------------------------------------------
def _comm_device() -> torch.device:
    # nccl only moves CUDA tensors; gloo works on CPU tensors
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: list[int]) -> list[int]:
    """Exact integer sums over ranks (int64); the identity when not distributed."""
    if not is_distributed():
        return [int(v) for v in values]
    tensor = torch.tensor([int(v) for v in values], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return [int(v) for v in tensor.tolist()]


def all_reduce_mean(values: list[float]) -> list[float]:
    """Means over ranks in float64 (for logging the loss parts of the whole global batch)."""
    if not is_distributed():
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return [float(v) / world_size() for v in tensor.tolist()]


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(value: T) -> T:
    """Rank 0's `value` on every rank (a picklable object)."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0, device=_comm_device())
    return holder[0]


def run_on_main(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only and hand its result, or its error, to every rank.

    Without this an error on rank 0 (say, a run directory that already exists) would leave the
    other ranks waiting in the next collective until the timeout.
    """
    if not is_distributed():
        return fn()
    outcome: tuple[str, Any] = ("ok", None)
    if is_main_process():
        try:
            outcome = ("ok", fn())
        except TgazsrError as exc:
            outcome = (type(exc).__name__, str(exc))
        except Exception as exc:  # any other failure still has to reach the other ranks
            outcome = ("RuntimeFailure", f"{type(exc).__name__}: {exc}")
    kind, value = broadcast_object(outcome)
    if kind == "ok":
        return value
    raise (UsageError if kind == "UsageError" else RuntimeFailure)(value)


# -- data sharding -----------------------------------------------------------------------------
def shard_indices(num_items: int, rank: int, world_size: int) -> list[int]:
    """The contiguous block of range(num_items) that `rank` owns; every index lands on exactly one rank.

    The first num_items % world_size ranks get one item more, so shards differ by at most one.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"rank {rank} is not in [0, {world_size})")
    if num_items < 0:
        raise UsageError(f"number of items must be >= 0, got {num_items}")
    base, extra = divmod(num_items, world_size)
    start = rank * base + min(rank, extra)
    return list(range(start, start + base + (1 if rank < extra else 0)))


def per_rank_batch_size(global_batch: int, processes: int) -> int:
    """The recipe's batch size is the global batch; it must split evenly over the processes."""
    if global_batch % processes:
        raise UsageError(f"batch size {global_batch} is not divisible by the {processes} processes; "
                         f"choose a multiple of {processes}")
    return global_batch // processes


def shard_of_batch(batch: list[int]) -> list[int]:
    """This rank's contiguous slice of a global batch of dataset indices."""
    size = len(batch) // world_size()
    return batch[rank() * size : (rank() + 1) * size]


# -- training ----------------------------------------------------------------------------------
class LossModule(nn.Module):
    """The module DDP wraps: its forward is the method's training loss.

    Only the trainable classifier is a submodule, so DDP syncs exactly its trainable parameters;
    the method (with its frozen teacher) is a plain attribute and stays outside DDP. Attacks inside
    the loss use the unwrapped classifier and take gradients with respect to the input only, which
    never fires DDP's gradient hooks.
    """

    def __init__(self, method: Any) -> None:
        super().__init__()
        self.classifier = method.model
        self.method = method

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        output = self.method.loss(images, labels)
        return output.total, output.parts


def wrap_for_training(module: nn.Module, device: torch.device) -> nn.Module:
    """DDP around `module` when distributed, else `module` itself."""
    if not is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    # buffers (normalisation constants, cached text features) never change: no per-step broadcast
    # (the option was renamed in newer torch; the old name still works there, with a warning)
    renamed = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = {"forward_sync_buffers" if renamed else "broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=device_ids, **no_sync)


@contextlib.contextmanager
def shared_noise_stream(images: torch.Tensor) -> Iterator[None]:
    """Keep the global RNG stream of every rank identical to that of one process.

    The training attack's random start draws one uniform number per input pixel from the global
    RNG. One process draws them for the whole global batch; here each rank draws, and throws
    away, the noise of the shards before its own, lets the step draw its own shard's noise, and
    then draws the noise of the shards after it. On the CPU generator consecutive draws are one
    stream, so each rank gets exactly its slice of the single-process noise; on CUDA the ranks
    get distinct noise and all end a step with the same RNG state (needed for exact resume).
    """
    if not is_distributed():
        yield
        return
    for _ in range(rank()):
        torch.rand_like(images)
    yield
    for _ in range(world_size() - rank() - 1):
        torch.rand_like(images)


# -- device-side collectives (queued on the stream; no host sync under nccl) ------------------------
def all_ranks_true(flag: torch.Tensor) -> torch.Tensor:
    """A 0-d bool that is True only where `flag` is True on every rank; `flag` itself in one process."""
    if not is_distributed():
        return flag
    value = flag.to(torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value.bool()


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The mean over ranks of a tensor on this rank's device; `values` itself in one process."""
    if not is_distributed():
        return values
    total = values.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / world_size()
