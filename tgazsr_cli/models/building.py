"""Weight resolution: open_clip configs, pretrained tags, shipped weights and weight files -> an open_clip model.

`--pretrained` takes an open_clip tag (`openai`), `tgazsr:NAME` (weights shipped inside the package), a
weights file (the model tensors of a tgazsr checkpoint, open_clip/OpenAI state dict, or a published robust-CLIP
file), or a stack `BASE+FILE[+FILE...]` loaded in order. Model names are open_clip's, tgazsr's own configs,
`local-dir:PATH` or `hf-hub:ORG/NAME` (open_clip's own resolution and cache).

Nothing here reads a checkpoint's metadata or merges a LoRA run's adapters: the checkpoints package, a layer above
(`checkpoints/loading.py`), does, and hands the weights it read to `build_clip` (`layer_states`).
"""

from __future__ import annotations

import contextlib
import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tgazsr_cli.errors import RuntimeFailure, UsageError, did_you_mean, first_line
from tgazsr_cli.models.lora import has_adapters
from tgazsr_cli.runtime.resources import package_path
from tgazsr_cli.weights.files import checkpoint_model_state, is_checkpoint_file
from tgazsr_cli.weights.openai import activation_for_file
from tgazsr_cli.weights.state_dict import check_compatible

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

_CONFIG_DIR = package_path("models", "configs")
SHIPPED_WEIGHTS = package_path("models", "shipped")  # `--pretrained tgazsr:NAME` (e.g. tgazsr:mini-clip)
SHIPPED_PREFIX = "tgazsr:"
HUB_CONFIG_NAME = "open_clip_config.json"  # what open_clip reads from an `hf-hub:` repository
HUB_PREFIX = "hf-hub:"  # a model name (config + weights) or a pretrained value (weights) on the Hugging Face hub


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
        config = hub_config(name.removeprefix("hf-hub:"))
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
        if part.startswith(HUB_PREFIX):  # the repository's config says how its weights were trained
            model_cfg, preprocess = hub_weights_config(part, model_cfg, preprocess)
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
        else:  # OpenAI's weights in a local file need QuickGELU, as the `openai` tag sets (openai_weights.py)
            quick = f"{name.replace('/', '-')}-quickgelu"
            model_cfg = activation_for_file(model_cfg, name, part, base=part == pretrained_layers(pretrained)[0],
                                            quick_model=quick if open_clip.get_model_config(quick) else None)
    return ModelSpec(name, pretrained, model_cfg, preprocess)


def hub_config(repo_id: str) -> dict[str, Any]:
    """The open_clip config of a hub model, through huggingface_hub's cache (honours HF_HUB_OFFLINE)."""
    from tgazsr_cli.weights.hub import fetch_hub_file

    path = fetch_hub_file(repo_id, HUB_CONFIG_NAME, f"the open_clip config of 'hf-hub:{repo_id}'",
                          "a model downloaded once is read from the Hugging Face cache, or use --model local-dir:PATH")
    return json.loads(Path(path).read_text(encoding="utf-8"))


def hub_weights_config(pretrained: str, model_cfg: dict[str, Any], preprocess: dict[str, Any],
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--pretrained hf-hub:ORG/NAME` on a named model: the repository's preprocessing and QuickGELU flag."""
    config = hub_config(pretrained.removeprefix(HUB_PREFIX))
    hub_cfg = config.get("model_cfg", {})
    if hub_cfg.get("quick_gelu"):
        model_cfg = {**model_cfg, "quick_gelu": True}
    return model_cfg, preprocess or dict(config.get("preprocess_cfg", {}))


def hub_weights(pretrained: str) -> str:
    """The weights file of a hub repository, found and cached by open_clip (safetensors preferred)."""
    from open_clip.pretrained import download_pretrained_from_hf

    repo_id = pretrained.removeprefix(HUB_PREFIX)
    try:
        return str(download_pretrained_from_hf(repo_id))
    except Exception as exc:  # the hub raises many types; all mean "could not fetch"
        raise RuntimeFailure(f"could not fetch the weights of '{pretrained}' ({type(exc).__name__}); "
                             "offline? a model downloaded once is read from the Hugging Face cache") from exc


LayerStates = Mapping[str, Mapping[str, torch.Tensor]]  # a layer of `--pretrained` -> the weights to load for it


def build_clip(spec: ModelSpec, *, load_weights: bool = True, layer_states: LayerStates | None = None) -> nn.Module:
    """Instantiate the open_clip model of `spec`; downloads weights for a pretrained tag when online.

    `layer_states`: weights the caller already read for some layers of `spec.pretrained` (by the layer's text, as
    `pretrained_layers` splits it), loaded in their place instead of the layer's file."""
    import open_clip

    from tgazsr_cli.weights.hub import cache_only, unreachable_reason

    register_builtin_configs()
    # without weights the recorded config is enough: a checkpoint of an hf-hub model loads offline, uncached
    if spec.name.startswith(("local-dir:", "hf-hub:")) and load_weights:
        # a hub that does not answer: its cached files resolve at once instead of each request timing out
        unreachable = spec.name.startswith("hf-hub:") and unreachable_reason() is not None
        try:
            with cache_only() if unreachable else contextlib.nullcontext():
                return open_clip.create_model(spec.name, load_weights=load_weights)
        except pickle.UnpicklingError:  # open_clip reads .bin/.pt weights with torch.load(weights_only=True)
            raise UsageError(f"'{spec.name}' holds pickled weights with more than tensors in them, which are not "
                             "loaded (weights_only=True); convert a trusted copy to safetensors") from None
        except (KeyError, TypeError) as exc:  # open_clip indexes the config's sections without checking them
            raise UsageError(f"'{spec.name}' has an incomplete open_clip_config.json (missing or wrong "
                             f"{first_line(exc)})") from None
        except (OSError, RuntimeError, ValueError) as exc:
            raise RuntimeFailure(f"could not load '{spec.name}': {first_line(exc)}") from exc
    model_cls = open_clip.CustomTextCLIP if _needs_custom_text(spec.model_cfg) else open_clip.CLIP
    cfg = {k: v for k, v in spec.model_cfg.items() if k != "custom_text"}
    # tag weights are fetched before the model is built, so that a missing download fails at once
    states = layer_states or {}
    files = _tag_files(spec, skip=states) if spec.pretrained and load_weights else {}
    model = model_cls(**cfg)
    if spec.pretrained and load_weights:
        _load_pretrained(model, spec, files, states)
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


def _tag_files(spec: ModelSpec, skip: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Pretrained tag -> its local weights file (cached or downloaded), for every tag in `spec.pretrained` that
    is not in `skip`."""
    import open_clip

    from tgazsr_cli.weights.hub import fetch_tag_weights

    layers = pretrained_layers(spec.pretrained)
    files = {}
    for layer in layers:
        if skip and layer in skip:
            continue
        tag_cfg = open_clip.get_pretrained_cfg(spec.name.replace("/", "-"), layer)
        if tag_cfg and layer not in files:
            local = "+".join("PATH" if part == layer else part for part in layers)
            files[layer] = fetch_tag_weights(tag_cfg, f"pretrained weights '{layer}' for {spec.name}",
                                             f"--pretrained {local} (PATH: an OpenAI .pt, open_clip or tgazsr "
                                             "weights file)")
    return files


def _load_pretrained(model: nn.Module, spec: ModelSpec, files: dict[str, str], states: LayerStates) -> None:
    assert spec.pretrained is not None
    layers = pretrained_layers(spec.pretrained)
    for index, layer in enumerate(layers):
        if layer in states:
            _load_state(model, states[layer])
        else:
            _load_layer(model, spec, files.get(layer, layer), base_loaded=index > 0)


def _load_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """A whole open_clip state dict (both towers) into `model`: a tgazsr checkpoint's weights."""
    check_compatible(state, model.state_dict())
    model.load_state_dict({k: v.float() for k, v in state.items()})


def _load_layer(model: nn.Module, spec: ModelSpec, pretrained: str, *, base_loaded: bool) -> None:
    """Load one weights file (a tag is already resolved to its file by `_tag_files`) into `model`."""
    import open_clip

    if pretrained.startswith(HUB_PREFIX):
        path = hub_weights(pretrained)
    else:
        path = str(shipped_weights(pretrained)) if pretrained.startswith(SHIPPED_PREFIX) else pretrained
    if is_checkpoint_file(path):  # shipped weights, or a tgazsr checkpoint named by a caller below checkpoints/
        state = checkpoint_model_state(path)
        if has_adapters(state):
            raise UsageError(f"'{path}' is a LoRA run's step checkpoint (adapters not merged): load it through "
                             "tgazsr's checkpoint loader (the CLI's --pretrained or --checkpoint, "
                             "checkpoints/loading.py), or `tgazsr export` it once")
        _load_state(model, state)
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
    from tgazsr_cli.weights.files import read_weights_file
    from tgazsr_cli.weights.published import apply_weights, find_clip_weights

    try:
        found = find_clip_weights(read_weights_file(path), model, path)
    except UsageError as exc:
        raise UsageError(f"could not load weights '{path}' into {spec.name}: {exc}") from None
    if found.towers != "full" and not base_loaded:
        raise UsageError(
            f"'{path}' holds only an image tower ({found.source_key}); name the weights of the rest first, "
            f"e.g. --pretrained openai+{path} (the tag the image tower was fine-tuned from)")
    apply_weights(model, found)


def make_tokenizer(spec: ModelSpec) -> Any:
    """The tokenizer that matches the text tower of `spec`, built locally when possible."""
    import open_clip

    register_builtin_configs()
    text_cfg = spec.model_cfg.get("text_cfg", {})
    if spec.name.startswith(("local-dir:", "hf-hub:")) and "hf_tokenizer_name" in text_cfg:
        return open_clip.get_tokenizer(spec.name)
    if "hf_tokenizer_name" in text_cfg:
        return open_clip.get_tokenizer(spec.name.replace("/", "-"))
    # what open_clip.get_tokenizer builds for such a config, without fetching the config again
    return open_clip.SimpleTokenizer(context_length=text_cfg.get("context_length", 77),
                                     **text_cfg.get("tokenizer_kwargs", {}))
