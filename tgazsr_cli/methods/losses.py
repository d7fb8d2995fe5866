"""Loss terms shared by the training methods (spec §3-§4); every term returns an fp32 scalar."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.distributions import Dirichlet, kl_divergence

if TYPE_CHECKING:
    from tgazsr_cli.models.classifier import ClipClassifier

DISTANCES: tuple[str, ...] = ("l2", "cos", "l1")
CONCENTRATION_FLOOR = 1e-6  # UCAT main.py:390 and 396


def attention_distance(maps: torch.Tensor, targets: torch.Tensor, metric: str = "l2") -> torch.Tensor:
    """Distance between flattened attention maps [B, P] (spec §3 `--Distance_metric`).

    l2: batch mean of the plain (not squared) Euclidean norm of each map difference;
    cos: batch mean of 1 - cosine similarity; l1: mean absolute difference over batch x pixels.
    """
    maps, targets = maps.float(), targets.float()
    if metric == "l2":
        return torch.linalg.vector_norm(maps - targets, dim=1).mean()
    if metric == "cos":
        return (1 - F.cosine_similarity(maps, targets, dim=1)).mean()
    if metric == "l1":
        return (maps - targets).abs().mean()
    raise ValueError(f"unknown distance '{metric}'; choose from {', '.join(DISTANCES)}")


def zero_shot_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Batch-mean cross-entropy of zero-shot logits over all class prompts (TeCoA's L_CE)."""
    return F.cross_entropy(logits.float(), labels)


def clip_contrastive(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, scale: float) -> torch.Tensor:
    """Symmetric in-batch CLIP loss: ½[CE(image → text) + CE(text → image)], diagonal targets (spec §3 FT).

    Rows that share a class are still treated as negatives of each other, as the reference does.
    """
    image = F.normalize(image_embeddings.float(), dim=-1)
    text = F.normalize(text_embeddings.float(), dim=-1)
    logits = scale * image @ text.t()
    targets = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))


def kl_divergence_sum(target_logits: torch.Tensor, input_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(target) || softmax(input)) summed over the batch, as torch's KLDivLoss(reduction="sum")."""
    return F.kl_div(F.log_softmax(input_logits.float(), dim=1), F.softmax(target_logits.float(), dim=1),
                    reduction="sum")


def embedding_l2_squared(embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Batch mean of the squared L2 distance (summed over dimensions) of unnormalised embeddings (FARE)."""
    return (embeddings.float() - targets.float()).pow(2).sum(dim=1).mean()


def cosine_scores(model: ClipClassifier, images: torch.Tensor) -> torch.Tensor:
    """cos(f(x), T) [B, classes] in fp32 (AGFT, UCAT): the encoder runs under the caller's autocast (bf16 in a
    bf16 run), the normalisation and the product with the class prompts do not (autocast would run them in bf16)."""
    embeddings = model.encode_image(images)
    with torch.autocast(images.device.type, enabled=False):
        return F.normalize(embeddings.float(), dim=-1) @ model.text_features.float().t()


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-sum_k q_k log softmax(z)_k per row (torch's CE with probability targets), fp32 (AGFT)."""
    return F.cross_entropy(logits.float(), targets.float(), reduction=reduction)


def concentrations(cosines: torch.Tensor, temperature: float) -> torch.Tensor:
    """Dirichlet concentrations 1e-6 + exp((cos + 1) / t), fp32 (up to exp(2 / t), 2.6e12 at t = 0.07; UCAT)."""
    return CONCENTRATION_FLOOR + torch.exp((cosines.float() + 1) / temperature)


def dirichlet_kl(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Batch mean of KL(Dir(alpha_i) || Dir(beta_i)) in closed form (torch.distributions; UCAT)."""
    return kl_divergence(Dirichlet(alpha), Dirichlet(beta)).mean()
