"""Trainer: exact resume after an interruption, run-directory safety, non-finite policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import ctrl_c_at_step, make_image_folder
from tgazsr_cli.config import load_recipe
from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.training.loop import Trainer
from tgazsr_cli.training.outcomes import TrainingInterrupted
from tgazsr_cli.training.setup import epoch_batches


def recipe_for(data_dir: Path, *extra: str):
    return load_recipe("tiny", [f"data.dataset={data_dir}", "optim.max_steps=6", "train.save_every=2",
                                "data.batch_size=8", "optim.epochs=3", *extra])


def visual_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.clip.visual.state_dict().items()}


def test_interrupted_then_resumed_run_equals_uninterrupted(data_dir: Path, tmp_path: Path) -> None:
    straight = Trainer(recipe_for(data_dir), tmp_path / "straight")
    straight.run()
    expected = visual_state(straight)

    interrupted = Trainer(recipe_for(data_dir), tmp_path / "resumed")
    with ctrl_c_at_step(4), pytest.raises(TrainingInterrupted) as info:
        interrupted.run()
    assert info.value.checkpoint.name == "step-00000004.safetensors"
    assert info.value.saved and info.value.step == 4

    torch.manual_seed(12345)  # resume must restore RNG state, whatever the process did before
    resumed = Trainer(recipe_for(data_dir), tmp_path / "resumed")
    result = resumed.run(resume=True)
    assert result.steps == 6
    for key, value in visual_state(resumed).items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)
    assert resumed.optimizer.state_dict()["state"].keys() == straight.optimizer.state_dict()["state"].keys()


def test_epoch_order_is_a_pure_function_of_seed_and_epoch() -> None:
    assert epoch_batches(20, 4, 0, 1) == epoch_batches(20, 4, 0, 1)
    assert epoch_batches(20, 4, 0, 1) != epoch_batches(20, 4, 0, 2)
    batches = epoch_batches(22, 4, 3, 0)
    assert len(batches) == 5 and len({i for b in batches for i in b}) == 20


def test_resume_without_checkpoint_and_overwrite_are_refused(data_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="nothing to resume"):
        Trainer(recipe_for(data_dir), empty).run(resume=True)
    (empty / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="already exists"):
        Trainer(recipe_for(data_dir), empty).run()
    assert (empty / "notes.txt").read_text() == "mine"
    assert [p.name for p in empty.iterdir()] == ["notes.txt"]  # the run lock went with the refusal


def poison_step(trainer: Trainer, step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the method's loss NaN at one optimiser step."""
    real_loss = trainer.method.loss

    def poisoned(images: torch.Tensor, labels: torch.Tensor):
        output = real_loss(images, labels)
        if trainer.step == step:
            output.total = output.total * float("nan")
        return output

    monkeypatch.setattr(trainer.method, "loss", poisoned)


def test_non_finite_loss_stops_or_skips(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(recipe_for(data_dir), tmp_path / "stop")
    poison_step(trainer, 3, monkeypatch)
    with pytest.raises(RuntimeFailure, match="step 4: loss is nan"):  # the 4th step (trainer.step 3)
        trainer.run()
    assert sorted(p.name for p in (tmp_path / "stop" / "checkpoints").iterdir()) == ["step-00000002.safetensors"]

    skipping = Trainer(recipe_for(data_dir, "train.on_nonfinite=skip"), tmp_path / "skip")
    poison_step(skipping, 3, monkeypatch)
    result = skipping.run()
    assert result.steps == 6 and result.skipped_steps == 1


def loss_and_grads(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor):
    torch.manual_seed(7)  # the same attack random start for both runs
    total, _ = trainer.loss_module(images, labels)
    total.backward()
    return total.detach(), [p.grad.clone() for p in trainer.params]


def test_grad_checkpointing_gives_the_same_loss_and_gradients(data_dir: Path, tmp_path: Path) -> None:
    plain = Trainer(recipe_for(data_dir), tmp_path / "plain")
    checkpointed = Trainer(recipe_for(data_dir, "train.grad_checkpointing=true"), tmp_path / "checkpointed")
    assert checkpointed.model.visual.transformer.grad_checkpointing
    assert not plain.model.visual.transformer.grad_checkpointing
    with torch.no_grad():  # start away from the teacher: at equality the L_AMC gradient is arbitrary (spec §11)
        for a, b in zip(plain.params, checkpointed.params, strict=True):
            a.add_(0.01 * torch.sin(torch.arange(a.numel(), dtype=a.dtype).view_as(a)))
            b.copy_(a)
    images, labels = torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(3)), torch.tensor([0, 1, 2, 3])
    loss_a, grads_a = loss_and_grads(plain, images, labels)
    loss_b, grads_b = loss_and_grads(checkpointed, images, labels)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-6, atol=1e-7)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("setting", "mode"), [("default", None), ("reduce-overhead", "reduce-overhead")])
def test_compile_compiles_both_image_towers_with_the_chosen_mode(data_dir: Path, tmp_path: Path, monkeypatch,
                                                                 setting: str, mode: str | None) -> None:
    compiled: list[tuple[torch.nn.Module, str | None]] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append((self, kw["mode"])))
    trainer = Trainer(recipe_for(data_dir, f"train.compile={setting}"), tmp_path / "run")
    towers = [trainer.model.visual.transformer, trainer.method.teacher.visual.transformer]
    assert [(id(module), m) for module, m in compiled] == [(id(t), mode) for t in towers]


def test_broken_images_are_skipped_and_counted_or_stop_the_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_image_folder(data, per_class=8, size=32)
    for name in ("red_circle", "blue_square"):
        (data / name / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = Trainer(recipe_for(data, "optim.max_steps=8", "optim.epochs=2"), tmp_path / "skip").run()
    assert result.steps == 8 and result.skipped_images >= 1  # counted, and the run finished
    stopping = Trainer(recipe_for(data, "optim.max_steps=8", "optim.epochs=2", "data.on_broken=fail"),
                       tmp_path / "fail")
    with pytest.raises(RuntimeFailure, match=r"could not be decoded \(step \d+\)"):
        stopping.run()
    assert stopping.step < 8


def test_non_finite_stop_before_any_checkpoint_says_so(data_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(recipe_for(data_dir), tmp_path / "early")
    poison_step(trainer, 0, monkeypatch)
    with pytest.raises(RuntimeFailure) as info:
        trainer.run()
    assert str(info.value).startswith("step 1: loss is nan; stopped, no checkpoint had been written yet")
    assert not (tmp_path / "early" / "checkpoints").exists()
