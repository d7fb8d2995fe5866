"""The training step never reads a tensor on the host; one read per logging interval; masked bad steps."""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers import make_image_folder
from tgazsr_cli.config import load_recipe
from tgazsr_cli.errors import RuntimeFailure
from tgazsr_cli.training.loop import Trainer
from tgazsr_cli.training.step_stats import keep_fused, masked_step

# every Tensor method that hands a value to Python (and so, on CUDA, waits for the device)
SYNCING = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__", "__array__")


class SyncCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        self.active = True
        for name in SYNCING:
            original = getattr(torch.Tensor, name)

            def counted(tensor: torch.Tensor, *args, _name: str = name, _original=original, **kwargs):
                if self.active:
                    self.calls.append(_name)
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.active = False
        try:
            yield
        finally:
            self.active = True


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_image_folder(root, per_class=4, size=32)
    return root


def recipe_for(data_dir: Path, *extra: str):
    return load_recipe("tiny", [f"data.dataset={data_dir}", "data.batch_size=4", "optim.epochs=4",
                                "optim.max_steps=8", "train.log_every=4", "train.save_every=1000", *extra])


@pytest.mark.parametrize("optim", ["sgd", "adamw"])
def test_a_step_does_not_sync_and_a_run_syncs_once_per_log(data_dir: Path, tmp_path: Path, optim: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(recipe_for(data_dir, f"optim.name={optim}"), tmp_path / "run")
    batches = list(itertools.islice(trainer.loader(0), 8))  # decoded first: the loader's host work is not the step's
    images, labels, _ = batches[0]
    counter = SyncCounter(monkeypatch)
    trainer.train_step(images, labels)
    assert counter.calls == [], counter.calls  # a step that is not logged: no sync at all

    trainer = Trainer(recipe_for(data_dir, f"optim.name={optim}"), tmp_path / "run2")
    monkeypatch.setattr(Trainer, "loader", lambda self, start: iter(batches[start:]))
    for name in ("save", "write_final"):  # writing a checkpoint copies weights to the host, by design
        original = getattr(Trainer, name)

        def unpaused(self: Trainer, *args, _original=original, **kwargs):
            with counter.paused():
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(Trainer, name, unpaused)
    reads = []
    original_read = trainer.stats.read
    monkeypatch.setattr(trainer.stats, "read", lambda *a: reads.append(len(counter.calls)) or original_read(*a))
    counter.calls.clear()
    result = trainer.run()
    assert result.steps == 8 and len(reads) == 2  # logged at steps 4 and 8, read once each
    assert counter.calls == ["tolist", "tolist"], counter.calls
    logged = [line for line in (tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == 2 and '"ce"' in logged[0]


def parameters_and_state(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    tensors = [p.detach().clone() for g in optimizer.param_groups for p in g["params"]]
    for state in optimizer.state.values():
        tensors += [v.clone() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_a_masked_step_leaves_parameters_and_optimiser_state_untouched(name: str) -> None:
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(6))
    make = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01, fused=True),
            "adamw": lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.01, fused=True)}[name]
    optimizer = make([param])
    twin = torch.nn.Parameter(param.detach().clone())
    plain = make([twin])
    for step, grad in enumerate([torch.ones(6), torch.full((6,), float("nan")), -torch.ones(6)]):
        before = parameters_and_state(optimizer)
        param.grad = grad.clone()
        ok = torch.isfinite(grad).all()
        masked_step(optimizer, ok)
        if step == 1:  # the NaN step: nothing moved, Adam's step count included
            after = parameters_and_state(optimizer)
            assert len(after) == len(before) and all(torch.equal(a, b) for a, b in zip(after, before, strict=True))
        else:  # a good step is the plain update; the twin never sees the bad step
            twin.grad = grad.clone()
            plain.step()
    torch.testing.assert_close(param.detach(), twin.detach(), rtol=0, atol=1e-7)


def test_skip_policy_counts_bad_steps_and_their_update_is_masked(data_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(recipe_for(data_dir, "train.on_nonfinite=skip", "optim.max_steps=2", "train.log_every=1"),
                      tmp_path / "skip")
    real_loss = trainer.method.loss
    weights: list[torch.Tensor] = []

    def poisoned(images: torch.Tensor, labels: torch.Tensor):
        weights.append(torch.cat([p.detach().reshape(-1) for p in trainer.params]).clone())
        output = real_loss(images, labels)
        if trainer.step == 1:
            output.total = output.total * float("inf")
        return output

    monkeypatch.setattr(trainer.method, "loss", poisoned)
    result = trainer.run()
    final = torch.cat([p.detach().reshape(-1) for p in trainer.params])
    assert result.skipped_steps == 1 and result.steps == 2
    assert not torch.equal(weights[1], weights[0])  # the good first step moved the weights ...
    assert torch.equal(final, weights[1])  # ... the bad second one did not


def test_a_bad_step_found_at_the_next_log_stops_before_any_later_checkpoint(data_dir: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(recipe_for(data_dir, "train.save_every=4"), tmp_path / "stop")
    real_loss = trainer.method.loss

    def poisoned(images: torch.Tensor, labels: torch.Tensor):
        output = real_loss(images, labels)
        if trainer.step == 1:
            output.total = output.total * float("nan")
        return output

    monkeypatch.setattr(trainer.method, "loss", poisoned)
    with pytest.raises(RuntimeFailure, match="step 2: loss is nan"):  # the 2nd step (trainer.step 1)
        trainer.run()
    assert trainer.step == 4  # noticed at the first read (step 4), reported as the step it happened at
    assert not (tmp_path / "stop" / "checkpoints").exists()  # the step-4 checkpoint was never written
    assert (tmp_path / "stop" / "metrics.jsonl").read_text() == ""


def test_a_checkpoint_of_a_non_fused_optimiser_resumes_into_fused_masked_steps() -> None:
    torch.manual_seed(0)
    old_param = torch.nn.Parameter(torch.randn(4))
    old = torch.optim.AdamW([old_param], lr=0.1)  # as checkpoints written before the fused optimiser
    old_param.grad = torch.ones(4)
    old.step()
    param = torch.nn.Parameter(old_param.detach().clone())
    new = torch.optim.AdamW([param], lr=0.1, fused=True)
    new.load_state_dict(copy.deepcopy(old.state_dict()))  # fresh tensors, as read from a checkpoint
    assert not new.param_groups[0]["fused"]
    keep_fused(new)
    param.grad = torch.full((4,), float("nan"))
    masked_step(new, torch.tensor(False))  # would fail on the non-fused path, which has no found_inf
    torch.testing.assert_close(param.detach(), old_param.detach(), rtol=0, atol=0)
    param.grad, old_param.grad = torch.ones(4), torch.ones(4)
    masked_step(new, torch.tensor(True))
    old.step()
    torch.testing.assert_close(param.detach(), old_param.detach())
    assert float(new.state[param]["step"]) == 2


def test_without_fused_kernels_a_masked_step_is_skipped_on_the_host() -> None:
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([param], lr=0.5, momentum=0.9)  # not fused: the flag is read (one sync)
    param.grad = torch.full((3,), float("nan"))
    masked_step(optimizer, torch.tensor(False))
    assert torch.equal(param.detach(), torch.ones(3)) and not optimizer.state
    param.grad = torch.ones(3)
    masked_step(optimizer, torch.tensor(True))
    torch.testing.assert_close(param.detach(), torch.full((3,), 0.5))
