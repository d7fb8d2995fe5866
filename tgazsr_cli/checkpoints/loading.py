"""Turn what the user names (a run directory, a checkpoint, or a model + pretrained tag or file) into a classifier.

tgazsr checkpoints are read here, not in `models`: named by `--checkpoint`, or as a layer of `--pretrained`
(`--pretrained run/final.safetensors`, `openai+step-00000004.safetensors`), whose weights are read, LoRA adapters
merged, and handed to `models.building.build_clip`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tgazsr_cli.checkpoints.metadata import CheckpointMetadata
from tgazsr_cli.checkpoints.plain import load_plain_checkpoint, model_spec
from tgazsr_cli.checkpoints.run_dir import CHECKPOINT_DIR, FINAL_NAME, checkpoint_in
from tgazsr_cli.errors import UsageError
from tgazsr_cli.models.building import (
    HUB_PREFIX,
    SHIPPED_PREFIX,
    ModelSpec,
    build_clip,
    make_tokenizer,
    pretrained_layers,
    resolve_model_spec,
)
from tgazsr_cli.models.classifier import PAPER_LOGIT_SCALE, ClipClassifier
from tgazsr_cli.weights.files import is_checkpoint_file
from tgazsr_cli.weights.state_dict import check_compatible


@dataclass
class LoadedModel:
    classifier: ClipClassifier
    label: str  # the row name in tables and plots: "tga-zsr-run (tga-zsr)", "ViT-B-32 (openai)", "original ..."
    info: CheckpointMetadata | None  # None for an open_clip model named directly

    @property
    def recipe(self) -> dict[str, Any]:
        """The resolved recipe the checkpoint was trained with (empty for models and converted files)."""
        return self.info.recipe if self.info is not None else {}


def checkpoint_label(path: Path, method: str) -> str:
    """A run's final checkpoint is named by its run (and method, unless the run name already says it)."""
    if path.name != FINAL_NAME:
        run = path.parent.parent.name if path.parent.name == CHECKPOINT_DIR else path.parent.name
        return f"{run}/{path.stem}"
    run = path.parent.name
    return run if method in run else f"{run} ({method})"


def load_tgazsr_checkpoint(path: Path, device: torch.device | str = "cpu", *, verify: bool = True) -> LoadedModel:
    """A classifier from a tgazsr checkpoint file; `verify` checks each tensor against its written digest."""
    state = load_plain_checkpoint(path, verify=verify)  # a LoRA run's step checkpoint: adapters merged
    info = state.metadata
    spec = model_spec(info)
    clip = build_clip(spec, load_weights=False)
    check_compatible(state.model_state, clip.state_dict())
    clip.load_state_dict(state.model_state)
    classifier = ClipClassifier(clip, spec, make_tokenizer(spec), logit_scale=info.logit_scale)
    label = path.stem if info.method == "converted" else checkpoint_label(path, info.method)
    return LoadedModel(classifier.to(device).eval(), label, info)


def checkpoint_layers(spec: ModelSpec) -> dict[str, dict[str, torch.Tensor]]:
    """The layers of `spec.pretrained` that are tgazsr checkpoint files, read (LoRA adapters merged): the weights
    `build_clip` loads in their place. Shipped `tgazsr:NAME` weights and hub files are left to `build_clip`."""
    states: dict[str, dict[str, torch.Tensor]] = {}
    for layer in pretrained_layers(spec.pretrained):
        if layer.startswith((SHIPPED_PREFIX, HUB_PREFIX)) or layer in states:
            continue
        path = Path(layer).expanduser()
        if is_checkpoint_file(path):
            states[layer] = load_plain_checkpoint(path).model_state
    return states


def load_pretrained_classifier(
    name: str,
    pretrained: str | None = None,
    *,
    device: str | torch.device = "cpu",
    logit_scale: float = PAPER_LOGIT_SCALE,
) -> ClipClassifier:
    """`models.classifier.load_classifier` that also takes tgazsr checkpoints (a LoRA run's too) as pretrained
    weights: every entry point that passes on a user's `--pretrained` loads through this one."""
    spec = resolve_model_spec(name, pretrained)
    clip = build_clip(spec, layer_states=checkpoint_layers(spec))
    classifier = ClipClassifier(clip, spec, make_tokenizer(spec), logit_scale=logit_scale)
    return classifier.to(device).eval()


def load_model(
    checkpoint: str | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    device: torch.device | str = "cpu",
    logit_scale: float = 100.0,
    verify: bool = True,
) -> LoadedModel:
    """A tgazsr checkpoint or run directory, else an open_clip model name with a pretrained tag or file.
    `verify=False` skips checking a checkpoint's tensors against their digests (huge files, trusted copies)."""
    if checkpoint:
        return load_tgazsr_checkpoint(checkpoint_in(Path(checkpoint).expanduser()), device, verify=verify)
    if not model and pretrained and pretrained.startswith(HUB_PREFIX):
        model, pretrained = pretrained, None  # a hub repository names its architecture too (open_clip_config.json)
    if not model:
        raise UsageError("name a model: --checkpoint RUN_DIR|FILE, or --model NAME [--pretrained TAG|FILE]")
    classifier = load_pretrained_classifier(model, pretrained, device=device, logit_scale=logit_scale)
    return LoadedModel(classifier, f"{model} ({weights_label(model, pretrained)})", None)


def weights_label(model: str, pretrained: str | None) -> str:
    """What the weights are called in a table row: a tag, a file name, a hub name, or random init."""
    if pretrained:
        return pretrained if pretrained.startswith(HUB_PREFIX) else Path(pretrained).name
    if model.startswith(HUB_PREFIX):
        return "hub weights"
    return "folder weights" if model.startswith("local-dir:") else "random init"


def original_model(loaded: LoadedModel, device: torch.device | str = "cpu") -> LoadedModel | None:
    """The model a checkpoint was fine-tuned from, when its recipe names one that can be rebuilt.

    It keeps the logit scale the fine-tuning used, so the original and the fine-tuned rows are attacked
    through the same loss (a different scale changes what a fixed PGD step does)."""
    base = loaded.recipe.get("model", {})
    if not base.get("name"):
        return None
    original = load_model(model=base["name"], pretrained=base.get("pretrained"), device=device,
                          logit_scale=base.get("logit_scale", 100.0))
    weights = weights_label(base["name"], base.get("pretrained"))
    original.label = f"original ({base['name']}, {weights})"
    return original
