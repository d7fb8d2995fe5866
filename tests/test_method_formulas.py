"""Each method's loss recomputed by hand from its formula (spec §3-§4) on the tiny model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.test_methods import perturb
from tgazsr_cli.engine.attacks import ThreatModel
from tgazsr_cli.engine.attacks.pgd import maximize, pgd
from tgazsr_cli.engine.attention import text_guided_attention
from tgazsr_cli.engine.methods import build_method
from tgazsr_cli.engine.recipe import load_recipe

THREAT = ThreatModel(eps=4, steps=2, step_size=2)
ATTACK = ["attack.eps=4", "attack.steps=2", "attack.step_size=2"]


def method_for(model, name: str, *overrides: str):
    method = build_method(model, load_recipe(None, [f"method={name}", *ATTACK, *overrides]))
    perturb(model)
    return method


def test_ft_clean_is_the_symmetric_in_batch_clip_loss(tiny_model, batch) -> None:
    images, labels = batch
    output = method_for(tiny_model, "ft-clean").loss(images, labels)
    image = F.normalize(tiny_model.encode_image(images), dim=-1)
    logits = 100 * image @ tiny_model.text_features[labels].t()
    diagonal = torch.arange(len(labels))
    expected = (F.cross_entropy(logits, diagonal) + F.cross_entropy(logits.t(), diagonal)) / 2
    torch.testing.assert_close(output.total, expected)


def test_ft_adv_uses_adversarial_images(tiny_model, batch) -> None:
    images, labels = batch
    method = method_for(tiny_model, "ft-adv")
    torch.manual_seed(4)
    output = method.loss(images, labels)
    torch.manual_seed(4)
    adversarial = pgd(tiny_model, images, labels, THREAT)
    image = F.normalize(tiny_model.encode_image(adversarial), dim=-1)
    logits = 100 * image @ tiny_model.text_features[labels].t()
    diagonal = torch.arange(len(labels))
    expected = (F.cross_entropy(logits, diagonal) + F.cross_entropy(logits.t(), diagonal)) / 2
    torch.testing.assert_close(output.total, expected)


@pytest.mark.parametrize("raw_cosine", [False, True])
def test_pmg_aft_is_ce_plus_two_summed_kl_terms(tiny_model, batch, raw_cosine: bool) -> None:
    images, labels = batch
    method = method_for(tiny_model, "pmg-aft", f"method_options={{raw_cosine_logits: {str(raw_cosine).lower()}}}")
    scale = 1.0 if raw_cosine else 100.0
    torch.manual_seed(6)
    output = method.loss(images, labels)
    torch.manual_seed(6)
    adversarial = pgd(tiny_model, images, labels, THREAT)

    def logits(model, x):
        return scale * F.normalize(model.encode_image(x), dim=-1) @ tiny_model.text_features.t()

    z_adv, z_clean = logits(tiny_model, adversarial), logits(tiny_model, images)
    z_ori = logits(method.teacher, adversarial).detach()

    def kl(p_logits, q_logits):
        p = p_logits.softmax(1)
        return (p * (p.log() - q_logits.log_softmax(1))).sum()

    expected = F.cross_entropy(z_adv, labels) + kl(z_ori, z_adv) + kl(z_clean, z_adv)
    torch.testing.assert_close(output.total, expected, rtol=1e-4, atol=1e-5)
    assert output.parts["kl_original"] > 0 and output.parts["kl_clean"] > 0


def test_fare_is_squared_embedding_distance_after_its_own_attack(tiny_model, batch) -> None:
    images, labels = batch
    method = method_for(tiny_model, "fare")
    torch.manual_seed(8)
    output = method.loss(images, labels)
    target = method.teacher.encode_image(images).detach()

    def objective(x):
        return (tiny_model.encode_image(x) - target).pow(2).sum()

    torch.manual_seed(8)
    adversarial = maximize(objective, images, THREAT, momentum=0.9)
    expected = (tiny_model.encode_image(adversarial) - target).pow(2).sum(1).mean()
    torch.testing.assert_close(output.total, expected, rtol=1e-4, atol=1e-5)
    clean = (tiny_model.encode_image(images) - target).pow(2).sum(1).mean()
    assert expected > clean  # the inner attack increased the FARE loss


def test_comp_tga_map_is_text_map_times_one_minus_negated_map(tiny_model, batch) -> None:
    images, labels = batch
    method = method_for(tiny_model, "comp-tga")
    tokens = tiny_model.encode_image_tokens(images)
    negative = tiny_model.class_text_features(tiny_model.classnames, ["This is not a photo of a {}"])
    positive_map = text_guided_attention(tokens, tiny_model.text_features[labels], (7, 7), (28, 28))
    negative_map = text_guided_attention(tokens, negative[labels], (7, 7), (28, 28))
    torch.testing.assert_close(method.attention(tiny_model, tokens, labels), positive_map * (1 - negative_map))
    assert (method.options.alpha, method.options.beta) == (0.08, 0.05)  # recipes set 0.10 / 0.07


@pytest.mark.parametrize("detach", [False, True])
def test_vision_tga_attention_carries_gradient_unless_detached(tiny_model, batch, detach: bool) -> None:
    images, labels = batch
    method = method_for(tiny_model, "vision-tga", "method_options.alpha=1", "method_options.beta=1",
                        f"method_options={{detach_attention: {str(detach).lower()}}}")
    torch.manual_seed(9)
    output = method.loss(images, labels)
    grads = torch.autograd.grad(output.total, list(tiny_model.visual.parameters()), allow_unused=True)
    torch.manual_seed(9)
    adversarial = pgd(tiny_model, images, labels, THREAT)
    ce = F.cross_entropy(tiny_model(adversarial), labels)
    ce_grads = torch.autograd.grad(ce, list(tiny_model.visual.parameters()), allow_unused=True)
    same = all(torch.allclose(g, c, atol=1e-6) for g, c in zip(grads, ce_grads, strict=True) if g is not None)
    assert output.parts["attention_refinement"] > 0
    assert same == detach  # detached maps: the update is the CE-only update (the reference's behaviour)


def test_clip_pretrain_loss_formula(tiny_model, batch) -> None:
    images, labels = batch
    method = method_for(tiny_model, "clip-pretrain")
    torch.manual_seed(2)
    output = method.loss(images, labels)
    torch.manual_seed(2)
    prompts = method.prompts()
    text = F.normalize(tiny_model.clip.encode_text(tiny_model.tokenizer(prompts)), dim=-1)
    logits = tiny_model.clip.logit_scale.exp() * F.normalize(tiny_model.encode_image(images), dim=-1) @ text.t()
    i2t = F.cross_entropy(logits, labels)
    t2i = []
    for c in labels.unique():
        members = labels == c
        t2i.append(-logits.t()[c].log_softmax(0)[members].mean())
    expected = 0.5 * i2t + 0.5 * torch.stack(t2i).mean()
    torch.testing.assert_close(output.total, expected, rtol=1e-4, atol=1e-5)
