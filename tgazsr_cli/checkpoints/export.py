"""Checkpoints as open_clip folders that any open_clip user can load, without tgazsr.

Importing this module imports no torch, so that `tgazsr export` refuses a bad output before torch loads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgazsr_cli.checkpoints.metadata import CheckpointMetadata
from tgazsr_cli.checkpoints.run_dir import CHECKPOINT_DIR, checkpoint_in
from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.runtime.atomic import atomic_save_tensors, atomic_write, check_json
from tgazsr_cli.runtime.output import OutputFolder

if TYPE_CHECKING:
    import torch

    from tgazsr_cli.checkpoints.checkpoint import Checkpoint


def export_open_clip(
    checkpoint_or_state: Checkpoint | Mapping[str, torch.Tensor],
    *,
    model_cfg: Mapping[str, Any],
    preprocess_cfg: Mapping[str, Any],
    out_dir: Path | str,
) -> Path:
    """An open_clip `local-dir:` folder (open_clip_config.json + open_clip_model.safetensors) for any user."""
    from tgazsr_cli.checkpoints.checkpoint import Checkpoint

    if not {"vision_cfg", "text_cfg"} <= set(model_cfg):
        raise UsageError("model_cfg needs 'vision_cfg' and 'text_cfg' for open_clip to rebuild the model")
    config = {"model_cfg": dict(model_cfg), "preprocess_cfg": dict(preprocess_cfg)}
    check_json(config, "export config")
    state = checkpoint_or_state
    if isinstance(state, Checkpoint):
        state = state.model_state
    out = Path(out_dir)
    atomic_save_tensors(out / "open_clip_model.safetensors", state, {"format": "pt"})
    text = json.dumps(config, indent=2) + "\n"
    try:
        atomic_write(out / "open_clip_config.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {out / 'open_clip_config.json'}: {exc.strerror or exc}") from exc
    return out


def check_export_folder(output: Path | None, hub_dir: Path | None, checkpoint: Path | None = None) -> Path:
    """The one folder an export writes: empty or new, writable, and not the checkpoint or its run folder.
    Raised before any checkpoint is read."""
    if (output is None) == (hub_dir is None):
        raise UsageError("name one folder to write: --output DIR (open_clip) or --hub-dir DIR (with a model card)")
    folder = output or hub_dir
    assert folder is not None
    if checkpoint is not None and checkpoint.exists() and folder.exists() and os.path.samefile(folder, checkpoint):
        raise UsageError(f"output folder {folder} is the checkpoint being exported; choose a new folder")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"output folder {folder} is not empty")
    OutputFolder(folder, ()).validate()  # it can be made, and written to
    return folder


def export_checkpoint(checkpoint: Path, out_dir: Path, *, model_card: bool = False) -> tuple[Path, Path]:
    """(the checkpoint file read, the folder written): a run directory or checkpoint as an open_clip folder,
    with a hub model card when `model_card`. A LoRA run's step checkpoint is merged first."""
    from tgazsr_cli.checkpoints.plain import load_plain_checkpoint

    check_export_folder(out_dir, None, checkpoint)
    path = checkpoint_in(checkpoint)
    state = load_plain_checkpoint(path)
    if model_card:
        return path, export_hub_folder(state, out_dir)
    info = state.metadata
    return path, export_open_clip(state, model_cfg=info.model_cfg, preprocess_cfg=info.preprocess_cfg,
                                  out_dir=out_dir)


HUB_CARD = "README.md"
EVAL_RESULTS = ("eval/results.md", "results.md")  # `tgazsr eval ... -o RUN/eval` writes the first


def export_hub_folder(
    checkpoint: Checkpoint,
    out_dir: Path | str,
    *,
    license: str = "other",
) -> Path:
    """A folder ready for `huggingface-cli upload`: open_clip config + weights + a model card README.md.

    The card holds YAML front matter the hub reads (library_name open_clip, license, tags), how to load the
    model, the training threat model, the evaluation table of the checkpoint's run folder if it has one
    (`eval/results.md`), and the recipe.
    """
    info = checkpoint.metadata
    path = Path(checkpoint.path)
    run_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
    out = export_open_clip(checkpoint, model_cfg=info.model_cfg, preprocess_cfg=info.preprocess_cfg, out_dir=out_dir)
    evaluation = next((run_dir / name for name in EVAL_RESULTS if (run_dir / name).is_file()), None)
    text = model_card(info, evaluation.read_text(encoding="utf-8") if evaluation else None, license)
    try:
        atomic_write(out / HUB_CARD, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {out / HUB_CARD}: {exc.strerror or exc}") from exc
    return out


def model_card(info: CheckpointMetadata, evaluation: str | None, license: str = "other") -> str:
    """The hub model card of a tgazsr checkpoint (`info`: its CheckpointMetadata)."""
    import yaml

    recipe = info.recipe or {}
    tags = ["clip", "open_clip", "zero-shot-image-classification", "adversarial-robustness", "tgazsr"]
    front = {"library_name": "open_clip", "license": license, "pipeline_tag": "zero-shot-image-classification",
             "tags": [*tags, info.method] if info.method not in tags else tags}
    own = info.model_name.startswith(("hf-hub:", "local-dir:"))  # such a name carries its weights
    start = info.pretrained or ("its published weights" if own else "random init")
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
             f"# {info.model_name} fine-tuned with {info.method}", "",
             f"An open_clip `{info.model_name}` (start weights: {start}) adversarially fine-tuned with the "
             f"`{info.method}` method by tgazsr.", "",
             "## Load", "", "```python", "import open_clip", "",
             "model, _, preprocess = open_clip.create_model_and_transforms('hf-hub:ORG/NAME')",
             "tokenizer = open_clip.get_tokenizer('hf-hub:ORG/NAME')", "```", "",
             "or evaluate it: `tgazsr eval --model hf-hub:ORG/NAME --datasets cifar10 --eps 1`", "",
             "## Threat model", "", *threat_lines(info, recipe), "",
             "## Evaluation", ""]
    lines += [evaluation.strip()] if evaluation else ["No evaluation results were stored with this run "
                                                       "(`tgazsr eval --checkpoint RUN -o RUN/eval` writes them)."]
    lines += ["", "## Recipe", "", "The resolved tgazsr recipe of the run:", "", "```yaml",
              yaml.safe_dump(recipe, sort_keys=False).rstrip() if recipe else "# (none recorded)", "```", ""]
    return "\n".join(lines)


def threat_lines(info: CheckpointMetadata, recipe: dict[str, Any]) -> list[str]:
    attack = recipe.get("attack", {})
    data, optim, train = recipe.get("data", {}), recipe.get("optim", {}), recipe.get("train", {})
    lines = [f"- training method: `{info.method}`"]
    if not recipe:  # e.g. `tgazsr convert` of published weights: their training is not recorded here
        return [*lines, "- no training recipe recorded with these weights; see their original publication"]
    if attack:
        lines.append(f"- training attack (the method's inner attack): L-inf, eps {attack.get('eps'):g}/255, "
                     f"{attack.get('steps')} steps of {attack.get('step_size'):g}/255, on images in [0, 1]")
    if data:
        lines.append(f"- training data: `{data.get('dataset')}`, batch size {data.get('batch_size')}")
    lines.append(f"- optimiser steps: {info.step} of {info.total_steps} planned"
                 + (f" ({optim.get('name')}, lr {optim.get('lr'):g})" if optim else ""))
    mode = train.get("trainable", "full")
    if mode == "lora":
        lora = recipe.get("lora", {})
        lines.append(f"- trained: LoRA on the image tower (rank {lora.get('rank')}, alpha {lora.get('alpha'):g}, "
                     f"modules {', '.join(lora.get('target_modules', []))}"
                     + (f", blocks {', '.join(map(str, lora['layers']))}" if lora.get("layers") else "")
                     + "), merged into these weights")
    else:
        # `last-K` since train.trainable took its k; recipes saved before kept k in optim.last_num_ft
        last_k = int(mode.removeprefix("last-")) if mode.startswith("last-") else optim.get("last_num_ft") or 0
        if mode.startswith("first-"):
            part = f"the patch embedding and the first {mode.removeprefix('first-')} transformer blocks"
        else:
            part = f"the last {last_k} image-tower tensors" if last_k else "the whole image tower"
        lines.append(f"- trained: {part}; the text tower is unchanged")
    return lines
