"""Which parameters train (`train.trainable`: full | last-k | first-k | lora), and LoRA adapters through `peft`.

LoRA wraps modules of the image tower only (`classifier.clip.visual`), in place, after the method's
setup made its frozen teacher, so the teacher keeps the original weights. The text tower and logit
scale stay frozen. Targets are matched by module name suffix: open_clip's MLP linears `c_fc` /
`c_proj` and, with `attn`, its `nn.MultiheadAttention` (peft's LoRA covers in_proj and out_proj
together there). `lora.layers` restricts them to some transformer blocks (peft's `layers_to_transform`,
with `layers_pattern` naming open_clip's block list `resblocks`). peft runs the attention adapter by
adding B·A to the frozen in_proj/out_proj weights before each forward and subtracting it after, so
those two frozen weights move by float rounding (about one ulp per forward); the MLP base weights stay
bit-exact.

Resumable step checkpoints hold the adapted model as it is (base weights + adapters, peft's keys),
so `--resume` continues exactly; `final.safetensors` holds merged plain open_clip weights.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from tgazsr_cli.config import LoraConfig, Recipe
from tgazsr_cli.errors import UsageError
from tgazsr_cli.weights.state_dict import check_compatible

if TYPE_CHECKING:
    from tgazsr_cli.models.classifier import ClipClassifier

ADAPTER = "default"  # peft's adapter name
ADAPTER_KEY = ".lora_A."  # present in the state-dict keys of an adapted (unmerged) model
_TUNER = "_lora_tuner"  # the peft LoraModel of an adapted classifier, kept outside nn.Module registration


BLOCKS = "resblocks"  # open_clip's list of transformer blocks: `transformer.resblocks.N` in a ViT image tower


def trainable_mode(recipe: Recipe) -> str:
    """`full`, `last-k` (its k is `recipe.last_k`), `first-k` (`recipe.first_k`) or `lora`; recipes with
    `optim.last_num_ft` are read as last-k."""
    if recipe.last_k:
        return "last-k"
    return "first-k" if recipe.first_k else recipe.train.trainable


class MethodLike(Protocol):
    """What select_trainable needs of a training method (`methods.base.TrainingMethod`, a layer above)."""

    recipe: Recipe
    model: ClipClassifier

    def trainable_parameters(self) -> list[nn.Parameter]: ...


def select_trainable(method: MethodLike) -> list[nn.Parameter]:
    """The parameters the optimiser updates: the method's own choice, or the LoRA adapters."""
    recipe = method.recipe
    if trainable_mode(recipe) != "lora":
        return method.trainable_parameters()
    if recipe.train.compile != "off" and "attn" in recipe.lora.target_modules:
        raise UsageError("train.compile is not supported with peft's MultiheadAttention LoRA (it swaps the attention "
                         "weight tensors on every forward); drop 'attn' from lora.target_modules or set "
                         "train.compile=off")
    return apply_lora(method.model, recipe.lora)


def peft_config(settings: LoraConfig) -> Any:
    """peft's config of `settings`. `lora.layers` becomes `layers_to_transform` with `layers_pattern="resblocks"`:
    peft (0.21, `check_target_module_exists`) takes a matched module's block index from the number right after
    `resblocks.` in its name, which fits open_clip's `transformer.resblocks.N.mlp.c_fc` and
    `transformer.resblocks.N.attn` inside the image tower (tested in tests/test_first_k.py), so no full module
    names are needed."""
    from peft import LoraConfig as PeftLoraConfig

    layers = {} if settings.layers is None else {"layers_to_transform": sorted(settings.layers),
                                                 "layers_pattern": BLOCKS}
    return PeftLoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                          target_modules=list(settings.target_modules), bias="none", **layers)


def block_count(visual: nn.Module) -> int | None:
    """How many transformer blocks an open_clip ViT image tower has (`transformer.resblocks`); None otherwise."""
    blocks = getattr(getattr(visual, "transformer", None), BLOCKS, None)
    return len(blocks) if isinstance(blocks, nn.ModuleList) else None


def _check_layers(visual: nn.Module, settings: LoraConfig) -> None:
    if settings.layers is None:
        return
    count = block_count(visual)
    if count is None:
        raise UsageError(f"recipe key 'lora.layers' needs an open_clip ViT image tower (transformer.{BLOCKS}), "
                         f"not {type(visual).__name__}; set lora.layers=null")
    if wrong := [i for i in settings.layers if i >= count]:
        raise UsageError(f"recipe key 'lora.layers' names block(s) {wrong}, but the image tower has {count} blocks "
                         f"(0 to {count - 1})")


def _inject(visual: nn.Module, settings: LoraConfig) -> Any:
    from peft import LoraModel

    _check_layers(visual, settings)
    try:
        return LoraModel(visual, peft_config(settings), ADAPTER)
    except ValueError as exc:  # peft: no module matched, or a module type it cannot adapt
        where = "" if settings.layers is None else f" and lora.layers={sorted(settings.layers)}"
        raise UsageError(f"cannot apply LoRA to {type(visual).__name__} with lora.target_modules="
                         f"{list(settings.target_modules)}{where}: {str(exc).splitlines()[0]}") from None


def apply_lora(classifier: ClipClassifier, settings: LoraConfig) -> list[nn.Parameter]:
    """Wrap the image tower's target modules with LoRA in place; only the adapters stay trainable."""
    if is_adapted(classifier):
        raise UsageError("this model already carries LoRA adapters")
    device = classifier.mean.device
    tuner = _inject(classifier.clip.visual, settings)
    classifier.__dict__[_TUNER] = tuner  # a plain attribute: deepcopy keeps it pointing at the copied tower
    classifier.to(device)
    adapters = [p for name, p in classifier.clip.visual.named_parameters() if ".lora_" in name]
    classifier.freeze_all_but(adapters)
    return adapters


def is_adapted(classifier: ClipClassifier) -> bool:
    return _TUNER in classifier.__dict__


def merged_clip_state(classifier: ClipClassifier) -> dict[str, torch.Tensor]:
    """The whole open_clip state dict with any adapters merged (plain keys); the classifier is not changed."""
    clip = classifier.clip
    if not is_adapted(classifier):
        return clip.state_dict()
    visual = copy.deepcopy(classifier.__dict__[_TUNER]).merge_and_unload()
    state = {k: v for k, v in clip.state_dict().items() if not k.startswith("visual.")}
    state.update({f"visual.{k}": v.detach() for k, v in visual.state_dict().items()})
    return state


def has_adapters(model_state: Mapping[str, Any]) -> bool:
    return any(ADAPTER_KEY in key for key in model_state)


def merge_adapters(clip: nn.Module, model_state: Mapping[str, torch.Tensor], settings: LoraConfig,
                   ) -> dict[str, torch.Tensor]:
    """Plain open_clip weights from an adapted state dict (a LoRA run's step checkpoint), merged by peft.

    `clip` is an open_clip model of the state's architecture, built by the caller (its weights do not matter):
    the adapters of `settings` are injected into its image tower, `model_state` is loaded and merged, and
    `clip` ends up holding the merged weights. Nothing is read from disk or built here."""
    tuner = _inject(clip.visual, settings)
    check_compatible(model_state, clip.state_dict())
    clip.load_state_dict(dict(model_state))
    tuner.merge_and_unload()
    return {k: v.detach() for k, v in clip.state_dict().items()}
