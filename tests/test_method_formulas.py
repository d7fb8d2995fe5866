"""Each method's loss recomputed by hand from its formula (spec §3-§4) on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.test_methods import perturb
from tgazsr_cli.attacks import ThreatModel
from tgazsr_cli.attacks.pgd import maximize, pgd
from tgazsr_cli.config import load_recipe
from tgazsr_cli.methods import build_method
from tgazsr_cli.models.attention import text_guided_attention

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


def test_agft_soft_cross_entropy_on_fixed_tensors() -> None:
    from tgazsr_cli.methods.losses import soft_cross_entropy

    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (1/4, 3/4)
    targets = torch.tensor([[0.5, 0.5]])
    assert soft_cross_entropy(logits, targets).item() == pytest.approx(0.5 * math.log(16 / 3), rel=1e-6)


@pytest.mark.parametrize(("logit_scale", "scale_ratio"), [(100.0, 1.0), (180.0, 0.4)])
def test_agft_is_soft_target_ce_at_the_training_scale(tiny_model, batch, logit_scale: float,
                                                     scale_ratio: float) -> None:
    images, labels = batch
    method = method_for(tiny_model, "agft",
                        f"method_options={{logit_scale: {logit_scale}, scale_ratio: {scale_ratio}}}")
    torch.manual_seed(12)
    output = method.loss(images, labels)

    def cosines(model, x):
        return F.normalize(model.encode_image(x), dim=-1) @ tiny_model.text_features.t()

    targets = (scale_ratio * logit_scale * cosines(method.teacher, images)).softmax(1).detach()

    def objective(x):
        return -(targets * (logit_scale * cosines(tiny_model, x)).log_softmax(1)).sum()

    torch.manual_seed(12)
    adversarial = maximize(objective, images, THREAT)
    expected = -(targets * (logit_scale * cosines(tiny_model, adversarial)).log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(output.total, expected, rtol=1e-4, atol=1e-5)
    clean = -(targets * (logit_scale * cosines(tiny_model, images)).log_softmax(1)).sum(1).mean()
    assert expected > clean  # the attack raised the soft-target loss


def test_ucat_dirichlet_kl_and_weight_on_fixed_tensors() -> None:
    from tgazsr_cli.methods.losses import concentrations, dirichlet_kl
    from tgazsr_cli.methods.ucat import UcatOptions

    # KL(Dir(1, 2) || Dir(2, 1)) = digamma(2) - digamma(1) = 1 (the lgamma terms cancel)
    kl = dirichlet_kl(torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 1.0]]))
    assert kl.item() == pytest.approx(1.0, rel=1e-5)
    assert dirichlet_kl(torch.tensor([[3.0, 5.0]]), torch.tensor([[3.0, 5.0]])).item() == pytest.approx(0, abs=1e-5)
    assert concentrations(torch.tensor([0.0]), 0.5).item() == pytest.approx(1e-6 + math.e ** 2, rel=1e-6)
    x = 2 / 0.07  # lambda = tau / exp(softplus(2 / t)), softplus(x) = x + log1p(exp(-x))
    assert UcatOptions().weight == pytest.approx(1e5 * math.exp(-(x + math.log1p(math.exp(-x)))), rel=1e-9)
    assert UcatOptions(kl_weight=0.25).weight == 0.25


@pytest.mark.parametrize("kl_target", ["frozen-clean", "clean"])
def test_ucat_is_ce_plus_weighted_reverse_dirichlet_kl(tiny_model, batch, kl_target: str) -> None:
    images, labels = batch
    method = method_for(tiny_model, "ucat", f"method_options={{kl_target: {kl_target}, kl_weight: 0.01}}")
    torch.manual_seed(13)
    output = method.loss(images, labels)
    torch.manual_seed(13)
    adversarial = pgd(tiny_model, images, labels, THREAT)

    def cosines(model, x):
        return F.normalize(model.encode_image(x), dim=-1) @ tiny_model.text_features.t()

    def dirichlet(c):
        return torch.distributions.Dirichlet(1e-6 + torch.exp((c + 1) / 0.07))

    adv = cosines(tiny_model, adversarial)
    reference = cosines(method.teacher if kl_target == "frozen-clean" else tiny_model, images)
    kl = torch.distributions.kl_divergence(dirichlet(adv), dirichlet(reference)).mean()
    expected = F.cross_entropy(100 * adv, labels) + 0.01 * kl
    torch.testing.assert_close(output.total, expected, rtol=1e-4, atol=1e-4)
    assert output.parts["dirichlet_kl"] == pytest.approx(kl.item(), rel=1e-4)
    assert kl.item() > 0


@pytest.mark.parametrize(("name", "attack"), [("agft", "maximize"), ("ucat", "pgd")])
def test_agft_and_ucat_score_in_fp32_under_bf16_autocast(tiny_model, batch, monkeypatch: pytest.MonkeyPatch,
                                                         name: str, attack: str) -> None:
    """Given the same (bf16) embeddings, the loss under bf16 autocast is the fp32 computation's to fp32 tolerance.

    The embeddings are what a bf16 tower hands back, made the same way in both runs; the training attack runs
    without autocast in both (its own precision is not what is checked here), so only the scoring differs.
    """
    import tgazsr_cli.attacks.pgd as pgd_module

    images, labels = batch
    method = method_for(tiny_model, name, "method_options={}" if name == "agft" else
                        "method_options={kl_weight: 0.01}")

    def bf16_tower(encode):
        def encode_image(x: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cpu", enabled=False):
                return encode(x).to(torch.bfloat16)
        return encode_image

    for model in (tiny_model, method.teacher):
        model.encode_image = bf16_tower(model.encode_image)
    real_attack = getattr(pgd_module, attack)

    def attack_without_autocast(*args, **kwargs) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return real_attack(*args, **kwargs)

    monkeypatch.setattr(pgd_module, attack, attack_without_autocast)
    torch.manual_seed(14)  # the same random start in both runs
    reference = method.loss(images, labels)
    torch.manual_seed(14)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = method.loss(images, labels)
    assert mixed.total.dtype == torch.float32
    torch.testing.assert_close(mixed.total, reference.total, rtol=1e-6, atol=1e-6)
    for key, value in reference.parts.items():
        torch.testing.assert_close(mixed.parts[key], value, rtol=1e-6, atol=1e-6)
