"""Training-step bookkeeping that stays on the device: loss-part sums, the finite flag, masked updates.

Reading a CUDA tensor on the host (`.item()`, `bool(t)`, `.tolist()`) waits for every queued kernel, so a
step that reads its loss cannot run ahead of the GPU. Here every step only queues work: the loss parts
are summed on the device, a non-finite loss or gradient sets a device flag, and the optimiser update of
such a step is masked on the device. `StepStats.read` moves everything to the host in one transfer; the
trainer calls it once per logging interval (and before each checkpoint), which is where a non-finite step
is reported.

Masking uses the `found_inf` input of torch's fused SGD / AdamW kernels, the mechanism `torch.amp.GradScaler`
uses to skip a step without a sync: when the flag is set, the kernel leaves parameters, momentum and Adam
moments untouched and AdamW's step count is put back, so a skipped step leaves no trace in the optimiser.
Where fused kernels are not available (parameters off CPU/CUDA) the flag is read on the host each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

LOSS, GRADIENT = 1, 2  # why the first bad step was bad


def fused_supported(params: list[torch.nn.Parameter]) -> bool:
    """Fused SGD/AdamW kernels exist for floating-point parameters on CPU and CUDA."""
    return bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def keep_fused(optimizer: torch.optim.Optimizer) -> None:
    """After `load_state_dict` of a checkpoint written by a non-fused optimiser: back to fused kernels.

    The loaded param_groups carry the old `fused` flag; fused kernels also need AdamW's step count as a
    float32 tensor on the parameter's device.
    """
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = True, None
        for param in group["params"]:
            step = optimizer.state.get(param, {}).get("step")
            if step is not None:
                # a copy: load_state_dict may hand over the very tensor of the state it was given
                optimizer.state[param]["step"] = torch.as_tensor(step).to(param.device, torch.float32, copy=True)


def masked_step(optimizer: torch.optim.Optimizer, ok: torch.Tensor) -> None:
    """`optimizer.step()` that changes nothing (parameters or optimiser state) when the 0-d bool `ok` is False."""
    fused = all(group.get("fused") for group in optimizer.param_groups)
    if not fused:
        if bool(ok):  # the one per-step sync that remains without fused kernels
            optimizer.step()
        return
    for group in optimizer.param_groups:
        if isinstance(optimizer, torch.optim.SGD) and group["momentum"]:
            for param in group["params"]:
                # fused SGD's first step would leave an uninitialised buffer if it were skipped; a zero buffer
                # gives exactly the first-step update (buf = grad, dampening 0) when it is not
                optimizer.state[param].setdefault("momentum_buffer", torch.zeros_like(param))
    optimizer.found_inf = (~ok).float()  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf  # type: ignore[attr-defined]


def grads_finite(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """A 0-d bool on the device: every gradient entry is finite (a NaN/inf anywhere makes the norm non-finite)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.ones((), dtype=torch.bool, device=params[0].device if params else "cpu")
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: foreach norms, few kernels
        return torch.isfinite(torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False))
    return torch.isfinite(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads]).sum())


@dataclass
class Snapshot:
    """What one `StepStats.read` brought to the host."""

    parts: dict[str, float]  # mean of each loss part over the interval's good steps ({} if there were none)
    good_steps: int
    skipped_steps: int  # since the stats were created
    first_bad_step: int | None  # the optimiser step (0-based, as `Trainer.step` counts) of the first bad step
    first_bad_kind: int  # LOSS or GRADIENT
    first_bad_loss: float


@dataclass
class StepStats:
    """Device-side accumulators; `record` queues work only, `read` is the one host transfer."""

    device: torch.device
    start_step: int = 0
    stop_on_bad: bool = True  # stop policy: after a bad step every later update is masked too
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        zeros = {"dtype": torch.float64, "device": self.device}  # exact step numbers
        self.sums: torch.Tensor | None = None
        self.good = torch.zeros((), **zeros)
        self.skipped = torch.zeros((), **zeros)
        self.step = torch.full((), float(self.start_step), **zeros)  # counted here: no host-to-device copy
        self.bad_step = torch.full((), -1.0, **zeros)
        self.bad_kind = torch.zeros((), **zeros)
        self.bad_loss = torch.zeros((), **zeros)
        self.pending = 0  # steps recorded since the last read (a host count: no sync to know it)

    def ok_to_update(self, loss_ok: torch.Tensor, grad_ok: torch.Tensor) -> torch.Tensor:
        """The flag the update is masked with: this step is finite (and, under stop, no earlier one was bad)."""
        ok = loss_ok & grad_ok
        return ok & (self.bad_step < 0) if self.stop_on_bad else ok

    def record(self, parts: dict[str, torch.Tensor], loss: torch.Tensor, loss_ok: torch.Tensor,
               grad_ok: torch.Tensor) -> None:
        """Add one step: its parts when it was good, else its place in the bad-step record."""
        ok = loss_ok & grad_ok
        if not self.names:
            self.names = list(parts)
        values = torch.stack([parts[name].detach().double().reshape(()) for name in self.names])
        values = torch.where(ok, values, torch.zeros_like(values))  # NaN parts must not poison the sums
        self.sums = values if self.sums is None else self.sums + values
        self.good += ok
        self.skipped += ~ok
        first = ~ok & (self.bad_step < 0)
        self.bad_step = torch.where(first, self.step, self.bad_step)
        self.bad_kind = torch.where(first, torch.where(loss_ok, GRADIENT, LOSS), self.bad_kind)
        self.bad_loss = torch.where(first, loss.detach().double(), self.bad_loss)
        self.step += 1
        self.pending += 1

    def read(self, reduce_parts=None) -> Snapshot:
        """One device-to-host transfer; the part sums start again (the bad-step record and counts stay).

        `reduce_parts` (e.g. a mean over DDP ranks, on the device) is applied to the part means first.
        """
        sums = self.sums if self.sums is not None else torch.zeros(0, dtype=torch.float64, device=self.device)
        means = sums / self.good.clamp(min=1)
        if reduce_parts is not None and means.numel():
            means = reduce_parts(means)
        packed = torch.cat([means, torch.stack([self.good, self.skipped, self.bad_step, self.bad_kind,
                                                self.bad_loss])]).tolist()
        *values, good, skipped, bad_step, bad_kind, bad_loss = packed
        self.sums, self.good, self.pending = None, torch.zeros_like(self.good), 0
        parts = dict(zip(self.names, values, strict=True)) if good else {}
        return Snapshot(parts, int(good), int(skipped), int(bad_step) if bad_step >= 0 else None, int(bad_kind),
                        bad_loss)
