"""Turn what the user names (a run directory, a checkpoint, or a model + pretrained tag) into a classifier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tgazsr_cli.engine import checkpoint as ckpt
from tgazsr_cli.engine.errors import UsageError
from tgazsr_cli.engine.model import ClipClassifier, ModelSpec, build_clip, load_classifier, make_tokenizer
from tgazsr_cli.engine.trainer import FINAL_NAME


@dataclass
class LoadedModel:
    classifier: ClipClassifier
    label: str  # a short name for tables: the run/checkpoint name, or "ViT-B-32 (openai)"
    metadata: dict


def checkpoint_in(path: Path) -> Path:
    """A run directory resolves to its final checkpoint, else its newest valid training checkpoint."""
    if path.is_dir():
        final = path / FINAL_NAME
        if final.is_file():
            return final
        latest = ckpt.latest_checkpoint(path / "checkpoints")
        if latest is None:
            raise UsageError(f"no checkpoint in {path} (expected {FINAL_NAME} or checkpoints/step-*.safetensors)")
        return latest
    if not path.is_file():
        raise UsageError(f"checkpoint '{path}' does not exist")
    if path.suffix != ".safetensors":
        raise UsageError(f"'{path}' is not a tgazsr checkpoint; evaluate published weights with --model ViT-B-32 "
                         f"--pretrained openai+{path}, or convert them once with `tgazsr convert`")
    return path


def load_tgazsr_checkpoint(path: Path, device: torch.device | str = "cpu") -> LoadedModel:
    state = ckpt.load_checkpoint(path)
    meta = state.metadata
    spec = ModelSpec(meta["model_name"], meta.get("pretrained"), meta["model_cfg"], meta.get("preprocess_cfg", {}))
    clip = build_clip(spec, load_weights=False)
    ckpt.check_compatible(state.model_state, clip.state_dict())
    clip.load_state_dict(state.model_state)
    classifier = ClipClassifier(clip, spec, make_tokenizer(spec), logit_scale=meta.get("logit_scale", 100.0))
    run = path.parent.parent.name if path.parent.name == "checkpoints" else path.parent.name
    label = f"{meta.get('method', 'model')}:{run}" if path.name == FINAL_NAME else f"{run}/{path.stem}"
    return LoadedModel(classifier.to(device).eval(), label, meta)


def load_model(
    checkpoint: str | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    device: torch.device | str = "cpu",
    logit_scale: float = 100.0,
) -> LoadedModel:
    """A tgazsr checkpoint or run directory, else an open_clip model name with a pretrained tag or file."""
    if checkpoint:
        return load_tgazsr_checkpoint(checkpoint_in(Path(checkpoint).expanduser()), device)
    if not model:
        raise UsageError("name a model: --checkpoint RUN_DIR|FILE, or --model NAME [--pretrained TAG|FILE]")
    classifier = load_classifier(model, pretrained, device=device, logit_scale=logit_scale)
    label = f"{model} ({Path(pretrained).name if pretrained else 'random init'})"
    return LoadedModel(classifier, label, {"model_name": model, "pretrained": pretrained})


def original_model(loaded: LoadedModel, device: torch.device | str = "cpu") -> LoadedModel | None:
    """The model a checkpoint was fine-tuned from, when its recipe names one that can be rebuilt."""
    recipe = loaded.metadata.get("recipe", {})
    base = recipe.get("model", {})
    if not base.get("name"):
        return None
    return load_model(model=base["name"], pretrained=base.get("pretrained"), device=device,
                      logit_scale=base.get("logit_scale", 100.0))
