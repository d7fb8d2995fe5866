"""LoRA through peft (train.trainable=lora): only adapters train, merged final weights, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import ctrl_c_at_step
from tgazsr_cli.checkpoints import checkpoint as ckpt
from tgazsr_cli.checkpoints.loading import load_model
from tgazsr_cli.checkpoints.run_dir import checkpoint_name
from tgazsr_cli.cli.app import main
from tgazsr_cli.config import load_recipe
from tgazsr_cli.errors import UsageError
from tgazsr_cli.methods import METHODS, build_method
from tgazsr_cli.models.classifier import load_classifier
from tgazsr_cli.models.lora import has_adapters, is_adapted, select_trainable, trainable_mode
from tgazsr_cli.training.loop import Trainer
from tgazsr_cli.training.outcomes import TrainingInterrupted

IMAGES = torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(2))
ATTENTION_BASE = ("in_proj_weight", "out_proj.weight")  # peft re-derives these by subtraction every forward


def recipe_for(data_dir: Path, *extra: str):
    return load_recipe("tiny", [f"data.dataset={data_dir}", "optim.max_steps=4", "train.save_every=2",
                                "data.batch_size=8", "optim.epochs=2", "optim.lr=0.05", "train.trainable=lora",
                                *extra])


def plain_name(key: str) -> str:
    """peft's key of a wrapped base weight -> the open_clip key it came from."""
    return key.replace(".base_layer", "")


def test_lora_run_trains_only_adapters_and_its_final_checkpoint_is_merged(data_dir: Path, tmp_path: Path) -> None:
    trainer = Trainer(recipe_for(data_dir), tmp_path / "run")
    original = {plain_name(k): v.clone() for k, v in trainer.model.clip.state_dict().items() if ".lora_" not in k}
    teacher = trainer.method.teacher
    assert teacher is not None and not any(".lora_" in k for k in teacher.state_dict())  # tga-zsr's f_ori
    assert {id(p) for p in trainer.params} == {id(p) for p in trainer.model.parameters() if p.requires_grad}
    assert all(".lora_" in n for n, p in trainer.model.clip.named_parameters() if p.requires_grad)
    trainer.run()

    state = trainer.model.clip.state_dict()
    adapters_b = [v for k, v in state.items() if ".lora_B." in k]
    assert len(adapters_b) == 8 and all(v.abs().sum() > 0 for v in adapters_b)  # 2 blocks x (c_fc, c_proj, attn x2)
    for key, value in state.items():
        if ".lora_" in key:
            continue
        if plain_name(key).endswith(ATTENTION_BASE):  # float rounding only
            torch.testing.assert_close(value, original[plain_name(key)], rtol=0, atol=1e-6, msg=key)
        else:  # the rest of the image tower, the text tower and the logit scale: bit-exact
            assert torch.equal(value, original[plain_name(key)]), key
    for key, value in teacher.clip.state_dict().items():  # the original tower: "visual.*" keys
        assert torch.equal(value, original[key]), key

    final = ckpt.load_checkpoint(tmp_path / "run" / "final.safetensors")
    assert not has_adapters(final.model_state) and set(final.model_state) == set(original)
    merged = load_model(checkpoint=str(tmp_path / "run")).classifier
    assert not is_adapted(merged)
    merged.set_classes(trainer.model.classnames, trainer.recipe.data.templates)  # its own (unchanged) text tower
    trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(IMAGES), trainer.model(IMAGES), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(merged.encode_image(IMAGES), teacher.encode_image(IMAGES))

    step_path = tmp_path / "run" / "checkpoints" / checkpoint_name(4)
    step = ckpt.load_checkpoint(step_path)
    assert has_adapters(step.model_state)  # resumable: adapters stored as they are
    from_step = load_model(checkpoint=str(step_path)).classifier
    as_pretrained = load_model(model="tgazsr-tiny", pretrained=str(step_path)).classifier  # merged in checkpoints/
    final_weights = load_classifier("tgazsr-tiny", str(tmp_path / "run" / "final.safetensors"))  # plain: models/
    with torch.no_grad():
        torch.testing.assert_close(from_step.encode_image(IMAGES), merged.encode_image(IMAGES), rtol=0, atol=1e-6)
        torch.testing.assert_close(as_pretrained.encode_image(IMAGES), merged.encode_image(IMAGES), rtol=0, atol=1e-6)
        torch.testing.assert_close(final_weights.encode_image(IMAGES), merged.encode_image(IMAGES), rtol=0, atol=0)
    with pytest.raises(UsageError, match="LoRA run's step checkpoint"):
        load_classifier("tgazsr-tiny", str(step_path))  # models/ never merges: that needs the checkpoint's recipe


def test_lora_exports_load_in_plain_open_clip(data_dir: Path, tmp_path: Path) -> None:
    import open_clip

    run = tmp_path / "run"
    Trainer(recipe_for(data_dir, "optim.max_steps=3", "train.save_every=2"), run).run()
    (run / "final.safetensors").rename(tmp_path / "final.safetensors")  # leave only the adapter checkpoints
    for source, out in ((tmp_path / "final.safetensors", tmp_path / "from-final"), (run, tmp_path / "from-step")):
        assert main(["export", str(source), "-o", str(out)]) == 0
    assert main(["export", str(run), "--hub-dir", str(tmp_path / "hub")]) == 0
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "LoRA on the image tower (rank 8, alpha 16, modules c_fc, c_proj, attn), merged" in card
    assert "optimiser steps: 3 of 3 planned" in card
    ours = load_model(checkpoint=str(tmp_path / "final.safetensors")).classifier
    with torch.no_grad():
        expected = ours.encode_image(IMAGES)
        plain = open_clip.create_model(f"local-dir:{tmp_path / 'from-final'}").eval()
        torch.testing.assert_close(plain.encode_image(ours.normalize(IMAGES)), expected, rtol=0, atol=0)
        # the step-3 checkpoint holds the same model unmerged: merged on export, equal up to float rounding
        plain_step = open_clip.create_model(f"local-dir:{tmp_path / 'from-step'}").eval()
        torch.testing.assert_close(plain_step.encode_image(ours.normalize(IMAGES)), expected, rtol=0, atol=1e-6)


def test_interrupted_lora_run_resumes_exactly(data_dir: Path, tmp_path: Path) -> None:
    straight = Trainer(recipe_for(data_dir), tmp_path / "straight")
    straight.run()
    with ctrl_c_at_step(3), pytest.raises(TrainingInterrupted):
        Trainer(recipe_for(data_dir), tmp_path / "resumed").run()
    torch.manual_seed(999)  # fresh adapters drawn here must be replaced by the checkpoint's
    resumed = Trainer(recipe_for(data_dir), tmp_path / "resumed")
    assert resumed.run(resume=True).steps == 4
    expected = straight.model.clip.state_dict()
    for key, value in resumed.model.clip.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)
    final = ckpt.load_checkpoint(tmp_path / "resumed" / "final.safetensors").model_state
    for key, value in ckpt.load_checkpoint(tmp_path / "straight" / "final.safetensors").model_state.items():
        assert torch.equal(final[key], value), key


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_takes_a_lora_step(tiny_model, batch, name) -> None:
    images, labels = batch
    method = build_method(tiny_model, load_recipe(None, [f"method={name}", "train.trainable=lora"]))
    teacher_before = {k: v.clone() for k, v in method.teacher.state_dict().items()} if method.teacher else {}
    params = select_trainable(method)
    before = {k: v.clone() for k, v in tiny_model.clip.state_dict().items()}
    optimizer = torch.optim.SGD(params, lr=0.1)
    for _ in range(2):  # the second step moves lora_A too (lora_B starts at zero)
        optimizer.zero_grad()
        output = method.loss(images, labels)
        assert torch.isfinite(output.total)
        output.total.backward()
        optimizer.step()
    after = tiny_model.clip.state_dict()
    changed = {k for k in before
               if not torch.equal(before[k], after[k]) and not plain_name(k).endswith(ATTENTION_BASE)}
    assert changed and all(".lora_" in k for k in changed)
    assert {k for k in changed if ".lora_B." in k}
    assert all(not p.requires_grad for n, p in tiny_model.clip.named_parameters() if ".lora_" not in n)
    if method.teacher is not None:  # the frozen teacher is the original tower, never adapted
        assert teacher_before.keys() == method.teacher.state_dict().keys()
        assert all(torch.equal(v, method.teacher.state_dict()[k]) for k, v in teacher_before.items())


def test_mlp_only_adapters_leave_every_base_weight_bit_exact(tiny_model, batch) -> None:
    images, labels = batch
    method = build_method(tiny_model, load_recipe(None, ["method=tecoa", "train.trainable=lora",
                                                         "lora.target_modules=[c_fc, c_proj]", "lora.rank=2"]))
    params = select_trainable(method)
    assert sum(p.numel() for p in params) == 2 * (2 * (32 + 128) + 2 * (128 + 32))  # 2 blocks, rank 2
    before = {k: v.clone() for k, v in tiny_model.clip.state_dict().items() if ".lora_" not in k}
    optimizer = torch.optim.SGD(params, lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        method.loss(images, labels).total.backward()
        optimizer.step()
    assert all(torch.equal(v, tiny_model.clip.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize(("overrides", "message"), [
    (["train.trainable=lora", "lora.target_modules=[no_such_layer]"], "cannot apply LoRA"),
    (["train.trainable=lora", "train.compile=true"], "drop 'attn' from lora.target_modules"),
])
def test_bad_trainable_settings_are_one_clear_error(tiny_model, overrides: list[str], message: str) -> None:
    method = build_method(tiny_model, load_recipe(None, ["method=tecoa", *overrides]))
    with pytest.raises(UsageError, match=message):
        select_trainable(method)


@pytest.mark.parametrize(("overrides", "message"), [
    (["train.trainable=last-k"], "last-k needs its k"),
    (["train.trainable=lora", "optim.last_num_ft=2"], "conflicts with optim.last_num_ft=2"),
    (["train.trainable=lora", "lora.dropout=1.5"], r"lora.dropout' must be in \[0, 1\)"),
    (["train.trainable=lora", "lora.target_modules=[]"], "lora.target_modules' must name"),
])
def test_bad_trainable_settings_are_refused_when_the_recipe_loads(overrides: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_recipe(None, ["method=tecoa", *overrides])


def test_trainable_choices_and_the_older_last_num_ft_key() -> None:
    assert trainable_mode(load_recipe(None, ["optim.last_num_ft=3"])) == "last-k"
    assert trainable_mode(load_recipe(None, ["train.trainable=last-k", "optim.last_num_ft=3"])) == "last-k"
    assert load_recipe(None, ["optim.last_num_ft=3"]).train.trainable == "last-3"
    assert load_recipe(None, ["train.trainable=last-3"]).last_k == 3
    assert trainable_mode(load_recipe(None)) == "full"
    assert trainable_mode(load_recipe(None, ["train.trainable=first-2"])) == "first-k"
    assert load_recipe(None, ["train.trainable=first-2"]).first_k == 2
    assert load_recipe(None, ["train.trainable=first-2"]).last_k == 0
    with pytest.raises(UsageError, match=r"train\.trainable' must be one of full, last-k, lora"):
        load_recipe(None, ["train.trainable=last-0"])
    with pytest.raises(UsageError, match=r"train\.trainable' must be one of full, last-k, lora"):
        load_recipe(None, ["train.trainable=adapters"])
    with pytest.raises(UsageError, match=r"lora\.rank' must be > 0"):
        load_recipe(None, ["lora.rank=0"])
