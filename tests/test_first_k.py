"""Shallow-layer adaptation (issue #23, after R-Adapt): `train.trainable: first-K` trains the image tower's patch
embedding and first K transformer blocks only, and `lora.layers` puts LoRA adapters in chosen blocks only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tgazsr_cli.config import load_recipe
from tgazsr_cli.errors import UsageError
from tgazsr_cli.methods import METHODS, build_method
from tgazsr_cli.models.classifier import load_classifier, shallow_vit_parameters
from tgazsr_cli.models.lora import apply_lora, select_trainable, trainable_mode
from tgazsr_cli.training.loop import Trainer

PATCH_EMBEDDING = {"visual.class_embedding", "visual.positional_embedding", "visual.conv1.weight",
                   "visual.ln_pre.weight", "visual.ln_pre.bias"}
BLOCK = {"ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
         "attn.out_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
         "mlp.c_proj.bias"}


def first_k_names(k: int) -> set[str]:
    """The open_clip names that train under first-K, written out by hand."""
    return PATCH_EMBEDDING | {f"visual.transformer.resblocks.{i}.{name}" for i in range(k) for name in BLOCK}


def changed_keys(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    assert before.keys() == after.keys()
    return {k for k in before if not torch.equal(before[k], after[k])}


def sgd_steps(method, params, images, labels, steps: int = 1, lr: float = 1.0) -> None:
    optimizer = torch.optim.SGD(params, lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        output = method.loss(images, labels)
        assert torch.isfinite(output.total)
        output.total.backward()
        optimizer.step()


@pytest.mark.parametrize("k", [1, 2])
def test_first_k_step_changes_exactly_the_named_parameters(tiny_model, batch, k: int) -> None:
    images, labels = batch
    recipe = load_recipe(None, ["method=tecoa", f"train.trainable=first-{k}"])
    assert recipe.first_k == k and recipe.last_k == 0 and trainable_mode(recipe) == "first-k"
    method = build_method(tiny_model, recipe)
    params = select_trainable(method)
    names = {n for n, p in tiny_model.clip.named_parameters() if any(p is q for q in params)}
    assert names == first_k_names(k) and len(params) == len(names) == 5 + 12 * k
    assert {n for n, p in tiny_model.clip.named_parameters() if p.requires_grad} == names
    before = {key: value.clone() for key, value in tiny_model.clip.state_dict().items()}
    sgd_steps(method, params, images, labels)
    after = tiny_model.clip.state_dict()
    assert changed_keys(before, after) == names  # every named tensor moved, every other one is bit-identical
    assert all(p.grad is None for n, p in tiny_model.clip.named_parameters() if n not in names)


def test_first_k_in_a_training_run_keeps_every_other_tensor_bit_identical(data_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe("tiny", [f"data.dataset={data_dir}", "method=tecoa", "train.trainable=first-1",
                                  "optim.max_steps=1", "optim.epochs=1", "data.batch_size=8", "optim.lr=0.5"])
    trainer = Trainer(recipe, tmp_path / "run")
    before = {key: value.clone() for key, value in trainer.model.clip.state_dict().items()}
    assert {n for n, p in trainer.model.clip.named_parameters() if any(p is q for q in trainer.params)} \
        == first_k_names(1)
    trainer.run()
    changed = changed_keys(before, trainer.model.clip.state_dict())
    assert changed and changed <= first_k_names(1)  # the run's own optimiser (AdamW, schedule) and lr warm-up
    unchanged = set(before) - first_k_names(1)
    assert all(torch.equal(before[k], trainer.model.clip.state_dict()[k]) for k in unchanged)


@pytest.mark.parametrize("name", sorted(set(METHODS) - {"clip-pretrain"}))  # clip-pretrain trains both towers
def test_every_method_takes_a_first_k_step(tiny_model, batch, name: str) -> None:
    images, labels = batch
    method = build_method(tiny_model, load_recipe(None, [f"method={name}", "train.trainable=first-1"]))
    teacher_before = {k: v.clone() for k, v in method.teacher.state_dict().items()} if method.teacher else {}
    before = {key: value.clone() for key, value in tiny_model.clip.state_dict().items()}
    sgd_steps(method, select_trainable(method), images, labels)
    changed = changed_keys(before, tiny_model.clip.state_dict())
    assert changed and changed <= first_k_names(1), name
    if method.teacher is not None:
        assert all(torch.equal(v, method.teacher.state_dict()[k]) for k, v in teacher_before.items())


@pytest.mark.parametrize(("setting", "message"), [
    ("train.trainable=first-3", r"^recipe key 'train\.trainable' first-3: the image tower has 2 transformer blocks, "
                                r"so K must be in \[1, 2\]$"),
])
def test_first_k_beyond_the_blocks_is_one_line_when_the_model_is_built(tiny_model, setting: str, message: str) -> None:
    recipe = load_recipe(None, ["method=tecoa", setting])  # the recipe itself is fine: K is a model property
    with pytest.raises(UsageError, match=message) as caught:
        build_method(tiny_model, recipe)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("value", ["first-0", "frist-1", "first-k", "first-", "first-01", "first-1.5", "first-two"])
def test_bad_first_k_spellings_are_one_line_when_the_recipe_loads(value: str) -> None:
    with pytest.raises(UsageError, match=r"^recipe key 'train\.trainable' must be one of full, last-k, lora, first-k "
                                         r"\(write last-k and first-k with their k") as caught:
        load_recipe(None, [f"train.trainable={value}"])
    assert "\n" not in str(caught.value)


def test_first_k_needs_a_vit_image_tower() -> None:
    import open_clip

    visual = open_clip.create_model("RN50").visual  # random weights, nothing downloaded
    with pytest.raises(UsageError, match=r"^recipe key 'train\.trainable' first-1 needs an open_clip ViT image tower "
                                         r"\(conv1 and transformer\.resblocks\), not ModifiedResNet") as caught:
        shallow_vit_parameters(visual, 1)
    assert "\n" not in str(caught.value)


def test_first_k_parameter_counts_of_vit_b_32() -> None:
    import open_clip

    visual = open_clip.create_model("ViT-B-32").visual  # random weights: only the shapes matter
    counts = {k: (len(ps), sum(p.numel() for p in ps)) for k in (1, 2, 12)
              for ps in [shallow_vit_parameters(visual, k)]}
    patch = 768 * 3 * 32 * 32 + 768 + 50 * 768 + 2 * 768  # conv1, class and positional embeddings, ln_pre
    block = 4 * 768 + (3 * 768 * 768 + 3 * 768) + (768 * 768 + 768) + (4 * 768 * 768 + 4 * 768) + (4 * 768 * 768 + 768)
    assert counts == {1: (17, patch + block), 2: (29, patch + 2 * block), 12: (149, patch + 12 * block)}
    assert counts[1][1] == 9_487_872  # of 87,849,216 in the whole tower


# -- LoRA in chosen blocks ------------------------------------------------------------------------------------


def test_lora_layers_put_adapters_in_the_chosen_blocks_only(tiny_model, batch) -> None:
    images, labels = batch
    recipe = load_recipe(None, ["method=tecoa", "train.trainable=lora", "lora.layers=[0]"])
    assert recipe.lora.layers == [0]
    method = build_method(tiny_model, recipe)
    params = select_trainable(method)
    adapters = {n for n, _ in tiny_model.clip.named_parameters() if ".lora_" in n}
    assert {n for n, p in tiny_model.clip.named_parameters() if p.requires_grad} == adapters
    assert len(params) == len(adapters) == 8  # c_fc, c_proj, attn (in_proj), attn.out_proj: A and B each
    assert all(n.startswith("visual.transformer.resblocks.0.") for n in adapters)
    assert not any("resblocks.1." in n and "base_layer" in n for n, _ in tiny_model.clip.named_parameters())
    before = {key: value.clone() for key, value in tiny_model.clip.state_dict().items()}
    sgd_steps(method, params, images, labels, steps=2, lr=0.5)  # the second step moves lora_A (lora_B starts at 0)
    after = tiny_model.clip.state_dict()
    attention_base = ("in_proj_weight", "out_proj.weight")  # peft adds and subtracts B·A: float rounding only
    changed = {k for k in changed_keys(before, after) if not k.replace(".base_layer", "").endswith(attention_base)}
    assert changed == adapters  # every adapter of block 0 moved, nothing else did
    for key in before:
        if key.replace(".base_layer", "").endswith(attention_base):
            torch.testing.assert_close(after[key], before[key], rtol=0, atol=1e-6, msg=key)


def test_lora_layers_restrict_mlp_adapters_and_keep_every_other_block_untouched(tiny_model) -> None:
    recipe = load_recipe(None, ["train.trainable=lora", "lora.layers=[1]", "lora.target_modules=[c_fc]"])
    apply_lora(tiny_model, recipe.lora)
    assert {n for n, _ in tiny_model.visual.named_parameters() if ".lora_" in n} == {
        "transformer.resblocks.1.mlp.c_fc.lora_A.default.weight",
        "transformer.resblocks.1.mlp.c_fc.lora_B.default.weight"}


def test_lora_layers_beyond_the_blocks_are_one_line(tiny_model) -> None:
    method = build_method(tiny_model, load_recipe(None, ["method=tecoa", "train.trainable=lora", "lora.layers=[0, 2]"]))
    with pytest.raises(UsageError, match=r"^recipe key 'lora\.layers' names block\(s\) \[2\], but the image tower has "
                                         r"2 blocks \(0 to 1\)$"):
        select_trainable(method)


@pytest.mark.parametrize(("setting", "message"), [
    ("lora.layers=[]", r"lora\.layers' must list at least one block index"),
    ("lora.layers=[-1]", r"lora\.layers' must be >= 0"),
    ("lora.layers=[0, 0]", r"lora\.layers' must not repeat"),
    ("lora.layers=[one]", r"lora\.layers' must be int"),
])
def test_bad_lora_layers_are_refused_when_the_recipe_loads(setting: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_recipe(None, ["train.trainable=lora", setting])


def test_lora_layers_round_trip_through_a_step_checkpoint_merge(tiny_model) -> None:
    """A step checkpoint of a block-restricted LoRA run merges with its recorded settings (checkpoints/plain)."""
    from tgazsr_cli.models.lora import merge_adapters, merged_clip_state

    settings = load_recipe(None, ["train.trainable=lora", "lora.layers=[1]"]).lora
    apply_lora(tiny_model, settings)
    with torch.no_grad():
        for name, param in tiny_model.visual.named_parameters():
            if ".lora_B." in name:
                param.normal_()
    expected = merged_clip_state(tiny_model)
    merged = merge_adapters(load_classifier("tgazsr-tiny").clip, tiny_model.clip.state_dict(), settings)
    assert merged.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(merged[key], value, rtol=0, atol=1e-6, msg=key)
    assert not torch.equal(expected["visual.transformer.resblocks.1.mlp.c_fc.weight"],
                           load_classifier("tgazsr-tiny").clip.state_dict()["visual.transformer.resblocks.1.mlp.c_fc.weight"])


@pytest.mark.parametrize(("trainable", "lora", "expected"), [
    ("first-2", {}, "the patch embedding and the first 2 transformer blocks"),
    ("last-3", {}, "the last 3 image-tower tensors"),
    ("lora", {"rank": 4, "alpha": 8.0, "target_modules": ["c_fc"], "layers": [0]}, "modules c_fc, blocks 0)"),
])
def test_the_model_card_says_what_trained(trainable: str, lora: dict, expected: str) -> None:
    from tgazsr_cli.checkpoints.export import threat_lines
    from tgazsr_cli.checkpoints.metadata import CheckpointMetadata

    recipe = {"train": {"trainable": trainable}, "lora": lora, "optim": {"name": "sgd", "lr": 1e-4},
              "attack": {"eps": 1, "steps": 2, "step_size": 1}, "data": {"dataset": "shapes", "batch_size": 8}}
    info = CheckpointMetadata(kind="model", method="tecoa", model_name="tgazsr-tiny", model_cfg={}, recipe=recipe)
    assert any(expected in line for line in threat_lines(info, recipe))
