"""Watching a run (docs/watching.md): TensorBoard and W&B reporters fed the metrics.jsonl numbers, validation during
training with the best checkpoint, and a validation that leaves the training's weights and RNG untouched."""

from __future__ import annotations

import json
import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import ctrl_c_at_step
from tgazsr_cli.checkpoints.checkpoint import load_checkpoint
from tgazsr_cli.checkpoints.metadata import read_metadata
from tgazsr_cli.config import load_recipe
from tgazsr_cli.errors import UsageError
from tgazsr_cli.training.loop import Trainer
from tgazsr_cli.training.outcomes import TrainingInterrupted
from tgazsr_cli.training.reporting import TIMING_KEYS
from tgazsr_cli.training.validation import Validation, harmonic_mean

pytestmark = pytest.mark.usefixtures("one_thread")

# a cheap validation: 16 images, PGD-2 at 1/255
VALIDATION = ["train.eval_every=2", "train.eval_images=16", "eval.steps=2", "eval.eps=1", "eval.step_size=1",
              "eval.batch_size=16"]


def recipe_for(data_dir: Path, *extra: str):
    return load_recipe("tiny", [f"data.dataset={data_dir}", "optim.max_steps=6", "train.save_every=2",
                                "train.keep_last=3", "data.batch_size=8", "optim.epochs=3", *extra])


def lines_of(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def visual_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith("visual.")}


def assert_equal_states(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for key, value in got.items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)


def test_tensorboard_scalars_equal_metrics_jsonl(data_dir: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    Trainer(recipe_for(data_dir, "optim.max_steps=4", "train.report_to=[tensorboard]"), run).run()
    logged = lines_of(run)
    assert [line["step"] for line in logged] == [1, 2, 3, 4]
    assert all("images_per_s" not in line for line in logged)  # wall-clock numbers stay out of metrics.jsonl

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"total", "lr", "images_per_s"} <= tags and set(logged[0]) - {"step"} <= tags
    for tag in set(logged[0]) - {"step"}:
        scalars = {event.step: event.value for event in events.Scalars(tag)}
        assert scalars == {line["step"]: pytest.approx(line[tag], rel=1e-6, abs=1e-9) for line in logged}, tag
    assert all(event.value > 0 for event in events.Scalars("images_per_s"))


def test_validation_logs_keeps_the_best_and_leaves_training_untouched(data_dir: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    plain = Trainer(recipe_for(data_dir), tmp_path / "plain")
    plain.run()
    real_count, modes = Validation.count, []

    def drawing_count(self: Validation, model: torch.nn.Module) -> tuple[int, int, int]:
        """As a validation that draws from every global RNG would (a DataLoader, a random-start attack)."""
        random.random(), np.random.rand(), torch.rand(3)
        modes.append(model.training)
        return real_count(self, model)

    monkeypatch.setattr(Validation, "count", drawing_count)
    watched = tmp_path / "watched"
    trainer = Trainer(recipe_for(data_dir, *VALIDATION), watched)
    trainer.run()
    assert modes == [False, False, False] and trainer.model.training

    # the RNG stream, the modes and the class set were restored: the same weights as without validation
    assert_equal_states(load_checkpoint(watched / "final.safetensors").model_state,
                        load_checkpoint(tmp_path / "plain" / "final.safetensors").model_state)
    training = [line for line in lines_of(watched) if "total" in line]
    assert training == lines_of(tmp_path / "plain")

    validation = [line for line in lines_of(watched) if "val_clean" in line]
    assert [line["step"] for line in validation] == [2, 4, 6]
    for line in validation:
        assert 0 <= line["val_robust"] <= line["val_clean"] <= 100 and line["val_images"] == 16
        assert line["val_harmonic"] == pytest.approx(harmonic_mean(line["val_clean"], line["val_robust"]))
    best = max(validation, key=lambda line: line["val_harmonic"])  # the first of equals: only a gain replaces it
    kept = watched / "best.safetensors"
    assert read_metadata(kept).step == best["step"] and read_metadata(kept).kind == "model"
    at_best = watched / "checkpoints" / f"step-{best['step']:08d}.safetensors"
    assert_equal_states(visual_state(load_checkpoint(kept).model_state),
                        visual_state(load_checkpoint(at_best).model_state))


def test_validation_in_an_interrupted_and_resumed_run(data_dir: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    Trainer(recipe_for(data_dir, *VALIDATION), straight).run()
    resumed = tmp_path / "resumed"
    with ctrl_c_at_step(5), pytest.raises(TrainingInterrupted):
        Trainer(recipe_for(data_dir, *VALIDATION), resumed).run()
    torch.manual_seed(999)
    Trainer(recipe_for(data_dir, *VALIDATION), resumed).run(resume=True)
    assert lines_of(resumed) == lines_of(straight)  # each step once, validations included
    assert_equal_states(load_checkpoint(resumed / "final.safetensors").model_state,
                        load_checkpoint(straight / "final.safetensors").model_state)
    assert read_metadata(resumed / "best.safetensors").step == read_metadata(straight / "best.safetensors").step


def test_missing_tensorboard_is_one_line_before_the_model_loads(data_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` raises ImportError

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the reporters were checked")

    monkeypatch.setattr("tgazsr_cli.training.loop.load_pretrained_classifier", no_model)
    with pytest.raises(UsageError) as info:
        Trainer(recipe_for(data_dir, "train.report_to=tensorboard"), tmp_path / "run")
    message = str(info.value)
    assert "\n" not in message and "tgazsr[tensorboard]" in message and "train.report_to" in message
    assert not (tmp_path / "run").exists()


def test_wandb_gets_the_same_numbers(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `wandb` module (no server, no package): the reporter's calls and what it was given."""
    calls: dict[str, list] = {"init": [], "log": [], "finish": []}

    class FakeRun:
        def log(self, values: dict[str, float], step: int) -> None:
            calls["log"].append((step, values))

        def finish(self) -> None:
            calls["finish"].append(True)

    def init(**kwargs: object) -> FakeRun:
        calls["init"].append(kwargs)
        return FakeRun()

    fake = types.SimpleNamespace(init=init, util=types.SimpleNamespace(generate_id=lambda: "abc123"))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run = tmp_path / "run"
    Trainer(recipe_for(data_dir, "optim.max_steps=2", "train.report_to=wandb", *VALIDATION), run).run()
    (init_kwargs,) = calls["init"]
    assert init_kwargs["id"] == "abc123" and init_kwargs["dir"] == str(run) and init_kwargs["resume"] == "allow"
    assert (run / "wandb-id.txt").read_text().strip() == "abc123" and calls["finish"] == [True]
    logged = lines_of(run)
    assert [step for step, _ in calls["log"]] == [line["step"] for line in logged] == [1, 2, 2]
    for (_, values), line in zip(calls["log"], logged, strict=True):
        assert {k: v for k, v in values.items() if k not in TIMING_KEYS} == {k: v for k, v in line.items()
                                                                             if k != "step"}


def test_eval_every_settings() -> None:
    assert load_recipe("tiny", ["train.eval_every=epoch"]).train.eval_every == "epoch"
    assert load_recipe("tiny", ["train.eval_every=3"]).train.eval_every == "3"
    assert load_recipe("tiny", []).train.eval_every == "off" and load_recipe("tiny", []).train.report_to == []
    with pytest.raises(UsageError, match=r"train\.eval_every"):
        load_recipe("tiny", ["train.eval_every=often"])
    with pytest.raises(UsageError, match=r"train\.best_metric"):
        load_recipe("tiny", ["train.best_metric=loss"])
