"""A zero-shot classifier over any open_clip model (spec §1).

Images enter in [0, 1] pixel space and are normalised inside, so attacks can work on raw pixels.
The classifier exposes the CLS embedding, the projected patch tokens the attention map is built
from (spec §1: ln_post and proj applied to every token), and zero-shot logits against text
features that are computed once per class set and cached.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.models.building import ModelSpec, build_clip, make_tokenizer, resolve_model_spec

if TYPE_CHECKING:
    from tgazsr_cli.models.text_cache import TextFeatureCache

PAPER_LOGIT_SCALE = 100.0  # spec §3: logit scale fixed at exp(ln 100)
TEXT_BATCH = 256  # prompts encoded per text-tower forward when building class features


def build_prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[str]:
    """class-major list of prompts: all templates of class 0, then class 1, ..."""
    if not templates:
        raise UsageError("at least one prompt template is needed")
    for template in templates:
        if "{}" not in template:
            raise UsageError(f"prompt template '{template}' has no '{{}}' placeholder for the class name")
    return [template.format(name) for name in classnames for template in templates]


class ClipClassifier(nn.Module):
    """Zero-shot classifier: [0, 1] images in, logits over the current class set out."""

    def __init__(
        self,
        clip: nn.Module,
        spec: ModelSpec,
        tokenizer: Any = None,
        logit_scale: float = PAPER_LOGIT_SCALE,
    ) -> None:
        super().__init__()
        self.clip = clip
        self.spec = spec
        self.tokenizer = tokenizer
        self.logit_scale = float(logit_scale)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("text_features", torch.empty(0), persistent=False)
        self.classnames: list[str] = []
        self._text_cache: dict[tuple[tuple[str, ...], tuple[str, ...]], torch.Tensor] = {}
        self.disk_cache: TextFeatureCache | None = None  # see use_disk_cache (evaluation only)
        # (interpolation, antialias) to resize other-sized images to the model's size inside, so that an attack
        # works on a protocol's native-resolution pixels (CIFAR's 32x32); None: images come at the model's size
        self.resize_inside: tuple[str, bool] | None = None

    # -- image side -------------------------------------------------------------------------------
    @property
    def visual(self) -> nn.Module:
        return self.clip.visual

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        size = self.image_size
        if self.resize_inside is not None and tuple(images.shape[-2:]) != (size, size):
            mode, antialias = self.resize_inside
            images = F.interpolate(images, size=(size, size), mode=mode, align_corners=False, antialias=antialias)
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised CLS (pooled, projected) image embedding of [0, 1] images."""
        return self.visual(self.normalize(images))

    def require_patch_tokens(self) -> None:
        """Fail early, with a usable message, for image towers that have no CLS + patch tokens."""
        if not _is_plain_vit(self.visual):
            raise UsageError(
                f"text-guided attention needs a ViT image tower with a CLS token; {type(self.visual).__name__} "
                "has none (use a method without attention losses, e.g. tecoa)"
            )

    def encode_image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """All final tokens after ln_post and proj, CLS first: [B, 1 + N, D] (spec §1, step 1 of §2)."""
        self.require_patch_tokens()
        visual = self.visual
        # open_clip's public `forward_intermediates` would give these tokens too, but it calls the transformer's
        # own `forward_intermediates`, bypassing the module call that `train.compile` compiles: `_embeds` +
        # `transformer(x)` keeps the compiled path and is the same computation as the tower's forward.
        x = visual._embeds(self.normalize(images))
        x = visual.transformer(x)
        if visual.final_ln_after_pool:
            tokens = torch.cat([visual.ln_post(x[:, :1]), x[:, 1:]], dim=1)
        else:
            tokens = visual.ln_post(x)
        return tokens @ visual.proj if visual.proj is not None else tokens

    @property
    def patch_grid(self) -> tuple[int, int]:
        grid = getattr(self.visual, "grid_size", None)
        if grid is None:
            raise UsageError(f"{type(self.visual).__name__} has no patch grid")
        return int(grid[0]), int(grid[1])

    # -- text side --------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings of `prompts`, fp32, from the frozen text tower."""
        if self.tokenizer is None:
            raise RuntimeFailure("this model has no text tower attached (frozen image-only copy)")
        device = self.mean.device
        chunks = []
        for start in range(0, len(prompts), TEXT_BATCH):
            tokens = self.tokenizer(list(prompts[start : start + TEXT_BATCH])).to(device)
            chunks.append(F.normalize(self.clip.encode_text(tokens).float(), dim=-1))
        return torch.cat(chunks)

    @torch.no_grad()
    def class_text_features(self, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """One unit vector per class: the renormalised mean over templates (CLIP's prompt ensembling)."""
        key = (tuple(classnames), tuple(templates))
        cached = self._text_cache.get(key)
        if cached is None or cached.device != self.mean.device:
            cached = self.disk_cache.load(classnames, templates) if self.disk_cache else None
            if cached is None:
                embeddings = self.encode_prompts(build_prompts(classnames, templates))
                embeddings = embeddings.view(len(classnames), len(templates), -1).mean(dim=1)
                cached = F.normalize(embeddings, dim=-1)
                if self.disk_cache:
                    self.disk_cache.store(classnames, templates, cached)
            cached = cached.to(self.mean.device)
            self._text_cache[key] = cached
        return cached

    def use_disk_cache(self, directory: Path | None = None) -> TextFeatureCache:
        """Keep class text features on disk across runs. Only for a frozen text tower: the key fingerprints
        the tower's weights as they are now."""
        from tgazsr_cli.models.text_cache import TextFeatureCache, default_cache_dir, text_tower_fingerprint

        fingerprint = text_tower_fingerprint(self.clip, self.spec.model_cfg)
        self.disk_cache = TextFeatureCache(directory or default_cache_dir(), fingerprint)
        return self.disk_cache

    def set_classes(self, classnames: Sequence[str], templates: Sequence[str]) -> None:
        """Select the class set that `forward` scores against (text features built once, then cached)."""
        self.text_features = self.class_text_features(classnames, templates)
        self.classnames = list(classnames)

    def use_text_features(self, text_features: torch.Tensor, classnames: Sequence[str]) -> None:
        """Score against precomputed, normalised class features (e.g. shared with a frozen teacher)."""
        self.text_features = text_features.to(self.mean.device)
        self.classnames = list(classnames)

    # -- scoring ----------------------------------------------------------------------------------
    def logits_from_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        if self.text_features.numel() == 0:
            raise RuntimeFailure("no class set selected: call set_classes(classnames, templates) first")
        image = F.normalize(embedding.float(), dim=-1)
        return self.logit_scale * image @ self.text_features.t()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Zero-shot logits (fp32) of [0, 1] images against the selected class set."""
        return self.logits_from_embedding(self.encode_image(images))

    # -- training helpers -------------------------------------------------------------------------
    def image_parameters(self, last_num_ft: int = 0, *, first_blocks: int = 0) -> list[nn.Parameter]:
        """Image-tower parameters to train: all, only the last k tensors (reference `--last_num_ft`), or with
        `first_blocks` K the patch embedding and the first K transformer blocks (`train.trainable: first-K`)."""
        params = list(self.visual.parameters())
        if last_num_ft < 0:
            raise UsageError(f"last_num_ft must be >= 0, got {last_num_ft}")
        if first_blocks:
            if last_num_ft:
                raise UsageError("train.trainable takes one of last-K and first-K")
            chosen = {id(p) for p in shallow_vit_parameters(self.visual, first_blocks)}
            return [p for p in params if id(p) in chosen]  # in the tower's own order, like the other modes
        return params[-last_num_ft:] if last_num_ft else params

    def freeze_all_but(self, trainable: Sequence[nn.Parameter]) -> None:
        keep = {id(p) for p in trainable}
        for param in self.parameters():
            param.requires_grad_(id(param) in keep)

    def frozen_image_copy(self) -> ClipClassifier:
        """A frozen copy of the image tower (the teacher f_ori of spec §3) sharing the text features.

        Only the image tower is copied: the teacher never encodes text, and copying the text tower
        would double its memory for nothing.
        """
        holder = nn.Module()
        holder.visual = copy.deepcopy(self.clip.visual)
        teacher = ClipClassifier(holder, self.spec, tokenizer=None, logit_scale=self.logit_scale)
        teacher.to(self.mean.device)
        teacher.use_text_features(self.text_features.detach(), self.classnames)
        teacher.requires_grad_(False)
        return teacher.eval()


PATCH_EMBEDDING = ("conv1", "class_embedding", "positional_embedding", "ln_pre")  # an open_clip ViT's input side


def shallow_vit_parameters(visual: nn.Module, blocks: int) -> list[nn.Parameter]:
    """An open_clip ViT image tower's patch embedding (`conv1` with `class_embedding`, `positional_embedding`,
    `ln_pre`, where the tower has them) and its first `blocks` transformer blocks (`transformer.resblocks`)."""
    resblocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if not isinstance(resblocks, nn.ModuleList) or not isinstance(getattr(visual, "conv1", None), nn.Module):
        raise UsageError(f"recipe key 'train.trainable' first-{blocks} needs an open_clip ViT image tower "
                         f"(conv1 and transformer.resblocks), not {type(visual).__name__}; use full, last-K or lora")
    if not 1 <= blocks <= len(resblocks):
        raise UsageError(f"recipe key 'train.trainable' first-{blocks}: the image tower has {len(resblocks)} "
                         f"transformer blocks, so K must be in [1, {len(resblocks)}]")
    params: list[nn.Parameter] = []
    for name in PATCH_EMBEDDING:
        part = getattr(visual, name, None)
        if isinstance(part, nn.Parameter):
            params.append(part)
        elif isinstance(part, nn.Module):
            params.extend(part.parameters())  # ln_pre is an nn.Identity (no parameters) in no_ln_pre towers
    for block in resblocks[:blocks]:
        params.extend(block.parameters())
    return params


def _is_plain_vit(visual: nn.Module) -> bool:
    return (
        hasattr(visual, "_embeds")
        and hasattr(visual, "transformer")
        and getattr(visual, "attn_pool", None) is None
        and getattr(visual, "pool_type", None) == "tok"
    )


def load_classifier(
    name: str,
    pretrained: str | None = None,
    *,
    device: str | torch.device = "cpu",
    logit_scale: float = PAPER_LOGIT_SCALE,
) -> ClipClassifier:
    """A ClipClassifier for an open_clip model name plus a pretrained tag or weights file."""
    spec = resolve_model_spec(name, pretrained)
    clip = build_clip(spec)
    classifier = ClipClassifier(clip, spec, make_tokenizer(spec), logit_scale=logit_scale)
    return classifier.to(device).eval()
