"""Training methods: one step on the tiny model, and the TGA-ZSR loss recomputed by hand (spec §3)."""

from __future__ import annotations

import pytest
import torch

from tgazsr_cli.attacks import ThreatModel
from tgazsr_cli.attacks.pgd import pgd
from tgazsr_cli.config import load_recipe
from tgazsr_cli.methods import METHODS, build_method
from tgazsr_cli.models.attention import text_guided_attention


def perturb(model, scale: float = 1e-2) -> None:
    """Spec §11: start from a model that differs from the frozen copy, so L_AMC is not exactly zero."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in model.visual.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_one_step_updates_only_trainable_parameters(tiny_model, batch, name) -> None:
    images, labels = batch
    method = build_method(tiny_model, load_recipe(None, [f"method={name}"]))
    perturb(tiny_model)
    before = {k: v.clone() for k, v in tiny_model.clip.state_dict().items()}
    teacher_before = {k: v.clone() for k, v in method.teacher.state_dict().items()} if method.teacher else {}
    optimizer = torch.optim.SGD(method.trainable_parameters(), lr=0.1)
    output = method.loss(images, labels)
    assert torch.isfinite(output.total) and output.parts
    output.total.backward()
    optimizer.step()
    after = tiny_model.clip.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    trainable_ids = {id(p) for p in method.trainable_parameters()}
    trainable = {n for n, p in tiny_model.clip.named_parameters() if id(p) in trainable_ids}
    assert changed and changed <= trainable
    assert all(p.grad is None for n, p in tiny_model.clip.named_parameters() if n not in trainable)
    if name != "clip-pretrain":  # spec §3: only the image tower is fine-tuned
        assert all(n.startswith("visual.") for n in trainable)
    if method.teacher is not None:
        assert all(torch.equal(v, method.teacher.state_dict()[k]) for k, v in teacher_before.items())
        assert all(not p.requires_grad for p in method.teacher.parameters())


def test_tga_zsr_loss_equals_its_formula(tiny_model, batch) -> None:
    images, labels = batch
    recipe = load_recipe(None, ["method_options.alpha=0.3", "method_options.beta=0.2", "attack.eps=4",
                                "attack.steps=2"])
    method = build_method(tiny_model, recipe)
    perturb(tiny_model)

    torch.manual_seed(11)
    output = method.loss(images, labels)

    torch.manual_seed(11)  # same random start
    adversarial = pgd(tiny_model, images, labels, ThreatModel(eps=4, steps=2, step_size=1))
    text = tiny_model.text_features[labels]

    def attention(model, x):
        return text_guided_attention(model.encode_image_tokens(x), text, (7, 7), (28, 28))

    logits = tiny_model(adversarial)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    with torch.no_grad():
        target = attention(method.teacher, images)
    l_ar = (attention(tiny_model, adversarial) - target).norm(dim=1).mean()
    l_amc = (attention(tiny_model, images) - target).norm(dim=1).mean()
    expected = ce + 0.3 * l_ar + 0.2 * l_amc
    assert l_amc.item() > 0
    torch.testing.assert_close(output.total, expected, rtol=1e-4, atol=1e-5)
    assert output.parts["attention_refinement"] == pytest.approx(l_ar.item(), rel=1e-4)
    assert output.parts["attention_constraint"] == pytest.approx(l_amc.item(), rel=1e-4)


def test_tecoa_is_adversarial_ce_only(tiny_model, batch) -> None:
    images, labels = batch
    method = build_method(tiny_model, load_recipe(None, ["method=tecoa", "loss.alpha=0.5"]))  # 0.1 layout: ignored
    assert method.teacher is None
    torch.manual_seed(5)
    output = method.loss(images, labels)
    torch.manual_seed(5)
    adversarial = pgd(tiny_model, images, labels, ThreatModel(eps=1, steps=2, step_size=1))
    expected = torch.nn.functional.cross_entropy(tiny_model(adversarial), labels)
    torch.testing.assert_close(output.total, expected)
    assert set(output.parts) == {"ce"}


@pytest.mark.parametrize("setting", ["train.trainable=last-2", "optim.last_num_ft=2"])
def test_last_k_trains_only_the_last_tensors(tiny_model, setting: str) -> None:
    method = build_method(tiny_model, load_recipe(None, [setting]))
    trainable = [p for p in tiny_model.parameters() if p.requires_grad]
    assert len(trainable) == 2
    assert trainable[-1] is list(tiny_model.visual.parameters())[-1]
    assert method.trainable_parameters() == list(tiny_model.visual.parameters())[-2:]
