"""A zero-shot classifier over any open_clip model (spec §1).

Images enter in [0, 1] pixel space and are normalised inside, so attacks can work on raw pixels.
The classifier exposes the CLS embedding, the projected patch tokens the attention map is built
from (spec §1: ln_post and proj applied to every token), and zero-shot logits against text
features that are computed once per class set and cached.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from tgazsr_cli.engine.errors import RuntimeFailure, UsageError, did_you_mean

if TYPE_CHECKING:
    from tgazsr_cli.engine.text_cache import TextFeatureCache

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
PAPER_LOGIT_SCALE = 100.0  # spec §3: logit scale fixed at exp(ln 100)
TEXT_BATCH = 256  # prompts encoded per text-tower forward when building class features

_CONFIG_DIR = Path(__file__).parent / "model_configs"
SHIPPED_WEIGHTS = Path(__file__).parent / "weights"  # `--pretrained tgazsr:NAME` (e.g. tgazsr:mini-clip)
SHIPPED_PREFIX = "tgazsr:"


def shipped_weights(pretrained: str) -> Path:
    """The file behind a `tgazsr:NAME` pretrained value: weights shipped inside the package."""
    name = pretrained.removeprefix(SHIPPED_PREFIX)
    path = SHIPPED_WEIGHTS / f"{name}.safetensors"
    if not path.is_file():
        known = sorted(p.stem for p in SHIPPED_WEIGHTS.glob("*.safetensors"))
        raise UsageError(f"no shipped weights '{pretrained}'{did_you_mean(name, known)}; "
                         f"shipped: {', '.join(SHIPPED_PREFIX + k for k in known) or 'none'}")
    return path
_configs_registered = False


def register_builtin_configs() -> None:
    """Make tgazsr's own open_clip configs (tgazsr-tiny, tgazsr-mini) known to open_clip by name."""
    global _configs_registered
    if not _configs_registered:
        import open_clip

        open_clip.add_model_config(_CONFIG_DIR)
        _configs_registered = True


@dataclass
class ModelSpec:
    """Everything needed to rebuild a CLIP model: recorded in every checkpoint's metadata."""

    name: str
    pretrained: str | None
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.preprocess_cfg.get("mean", OPENAI_MEAN))

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.preprocess_cfg.get("std", OPENAI_STD))

    @property
    def image_size(self) -> int:
        size = self.model_cfg["vision_cfg"].get("image_size", 224)
        return int(size[0] if isinstance(size, list | tuple) else size)


def resolve_model_spec(name: str, pretrained: str | None = None) -> ModelSpec:
    """Find the open_clip config for `name` (built-in, tgazsr's own, or `local-dir:`) without building it."""
    import open_clip

    register_builtin_configs()
    if name.startswith("local-dir:"):
        config_path = Path(name.removeprefix("local-dir:")) / "open_clip_config.json"
        if not config_path.is_file():
            raise UsageError(f"no open_clip_config.json in '{config_path.parent}' (expected an open_clip local-dir)")
        config = json.loads(config_path.read_text())
        return ModelSpec(name, None, config["model_cfg"], dict(config.get("preprocess_cfg", {})))
    if name.startswith("hf-hub:"):
        try:  # the config lives on the hub
            config = open_clip.factory._get_hf_config(name.removeprefix("hf-hub:"))
        except Exception as exc:  # the hub raises many types; all mean "could not fetch"
            raise RuntimeFailure(f"could not fetch the open_clip config of '{name}' ({type(exc).__name__})") from exc
        return ModelSpec(name, None, config["model_cfg"], dict(config.get("preprocess_cfg", {})))
    model_cfg = open_clip.get_model_config(name.replace("/", "-"))
    if model_cfg is None:
        known = open_clip.list_models()
        raise UsageError(f"unknown model '{name}'{did_you_mean(name, known)}; `tgazsr models` lists them")
    preprocess: dict[str, Any] = {}
    for part in pretrained_layers(pretrained):
        if part.startswith(SHIPPED_PREFIX):
            shipped_weights(part)
            continue
        tag_cfg = open_clip.get_pretrained_cfg(name.replace("/", "-"), part)
        if tag_cfg:
            preprocess = preprocess or {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode")
                                        if k in tag_cfg}
            if tag_cfg.get("quick_gelu"):
                model_cfg = {**model_cfg, "quick_gelu": True}  # OpenAI weights were trained with QuickGELU
        elif not Path(part).expanduser().is_file():
            tags = open_clip.list_pretrained_tags_by_model(name.replace("/", "-"))
            raise UsageError(
                f"'{part}' is neither a pretrained tag of {name} nor a file"
                f"{did_you_mean(part, tags)}; tags: {', '.join(tags) or 'none'}"
            )
    return ModelSpec(name, pretrained, model_cfg, preprocess)


def build_clip(spec: ModelSpec, *, load_weights: bool = True) -> nn.Module:
    """Instantiate the open_clip model of `spec`; downloads weights for a pretrained tag when online."""
    import open_clip

    register_builtin_configs()
    if spec.name.startswith(("local-dir:", "hf-hub:")):
        try:
            return open_clip.create_model(spec.name, load_weights=load_weights)
        except (OSError, RuntimeError, ValueError) as exc:
            raise RuntimeFailure(f"could not load '{spec.name}': {exc}") from exc
    model_cls = open_clip.CustomTextCLIP if _needs_custom_text(spec.model_cfg) else open_clip.CLIP
    cfg = {k: v for k, v in spec.model_cfg.items() if k != "custom_text"}
    model = model_cls(**cfg)
    if spec.pretrained and load_weights:
        _load_pretrained(model, spec)
    return model


def _needs_custom_text(model_cfg: dict[str, Any]) -> bool:
    return bool(model_cfg.get("custom_text")) or "hf_model_name" in model_cfg.get("text_cfg", {})


def pretrained_layers(pretrained: str | None) -> list[str]:
    """`BASE+FILE[+FILE...]`: weights loaded in order, each over the last (e.g. `openai+tecoa.pth.tar`: OpenAI's
    CLIP with a published robust image tower on top). A value whose parts are not all tags or files is one."""
    if not pretrained:
        return []
    parts = pretrained.split("+")
    if len(parts) > 1 and all(p and (Path(p).expanduser().is_file() or ("/" not in p and "." not in p))
                              for p in parts):
        return parts
    return [pretrained]


def _load_pretrained(model: nn.Module, spec: ModelSpec) -> None:
    assert spec.pretrained is not None
    layers = pretrained_layers(spec.pretrained)
    for index, layer in enumerate(layers):
        _load_layer(model, spec, layer, base_loaded=index > 0)


def _load_layer(model: nn.Module, spec: ModelSpec, pretrained: str, *, base_loaded: bool) -> None:
    import open_clip
    from open_clip.pretrained import download_pretrained

    name = spec.name.replace("/", "-")
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if tag_cfg:
        try:
            path = download_pretrained(tag_cfg)
        except Exception as exc:  # the hub raises many types; all mean "could not fetch"
            raise RuntimeFailure(
                f"could not download pretrained weights '{pretrained}' for {spec.name} ({type(exc).__name__}); "
                "are you offline? pass a local weights file with --pretrained PATH"
            ) from exc
    else:
        path = str(shipped_weights(pretrained)) if pretrained.startswith(SHIPPED_PREFIX) else pretrained
    if _is_tgazsr_checkpoint(path):
        from tgazsr_cli.engine import checkpoint as ckpt

        state = ckpt.load_checkpoint(path).model_state
        ckpt.check_compatible(state, model.state_dict())
        model.load_state_dict({k: v.float() for k, v in state.items()})
        return
    if not base_loaded:
        try:  # open_clip's own loader: converts OpenAI/third-party layouts, weights_only=True for pickles
            open_clip.load_checkpoint(model, path, strict=True, weights_only=True)
            return
        except Exception:  # the published-layout reader below says why, more precisely
            pass
    _load_published_layer(model, spec, path, base_loaded)


def _load_published_layer(model: nn.Module, spec: ModelSpec, path: str, base_loaded: bool) -> None:
    """Released robust-CLIP files (TeCoA, PMG-AFT, TGA-ZSR layouts); an image tower alone needs a base."""
    from tgazsr_cli.engine.checkpoint import read_weights_file
    from tgazsr_cli.engine.published import apply_weights, find_clip_weights

    try:
        found = find_clip_weights(read_weights_file(path), model, path)
    except UsageError as exc:
        raise UsageError(f"could not load weights '{path}' into {spec.name}: {exc}") from None
    if found.towers != "full" and not base_loaded:
        raise UsageError(
            f"'{path}' holds only an image tower ({found.source_key}); name the weights of the rest first, "
            f"e.g. --pretrained openai+{path} (the tag the image tower was fine-tuned from)")
    apply_weights(model, found)


def _is_tgazsr_checkpoint(path: str) -> bool:
    if not path.endswith(".safetensors"):
        return False
    from tgazsr_cli.engine import checkpoint as ckpt

    try:
        ckpt.read_metadata(path)
    except UsageError:
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def make_tokenizer(spec: ModelSpec):
    """The tokenizer that matches the text tower of `spec`, built locally when possible."""
    import open_clip

    register_builtin_configs()
    if spec.name.startswith(("local-dir:", "hf-hub:")):
        return open_clip.get_tokenizer(spec.name)
    text_cfg = spec.model_cfg.get("text_cfg", {})
    if "hf_tokenizer_name" in text_cfg:
        return open_clip.get_tokenizer(spec.name.replace("/", "-"))
    return open_clip.SimpleTokenizer(context_length=text_cfg.get("context_length", 77))


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

    # -- image side -------------------------------------------------------------------------------
    @property
    def visual(self) -> nn.Module:
        return self.clip.visual

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
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
        from tgazsr_cli.engine.text_cache import TextFeatureCache, default_cache_dir, text_tower_fingerprint

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
    def image_parameters(self, last_num_ft: int = 0) -> list[nn.Parameter]:
        """Image-tower parameters to train: all, or only the last k tensors (reference `--last_num_ft`)."""
        params = list(self.visual.parameters())
        if last_num_ft < 0:
            raise UsageError(f"last_num_ft must be >= 0, got {last_num_ft}")
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
