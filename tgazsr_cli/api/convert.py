"""`tgazsr convert`: published weights (OpenAI-layout `.pt`/`.pth`/`.pth.tar`, open_clip files) to a tgazsr
checkpoint that `eval`, `attack`, `visualize-attention` and `export` read like any other."""

from __future__ import annotations

import os
from pathlib import Path

from tgazsr_cli.errors import UsageError
from tgazsr_cli.runtime.output import OutputFolder


def same_path(a: Path | str, b: Path | str) -> bool:
    """Whether two names reach one file (links and `..` resolved; either may not exist yet)."""
    first, second = Path(a).expanduser(), Path(b).expanduser()
    if first.exists() and second.exists():
        return os.path.samefile(first, second)
    return first.resolve() == second.resolve()


def check_output_file(output: Path, inputs: dict[str, Path | str | None]) -> None:
    """A file about to be written: not one of the `inputs` (what each is -> its path), not a folder, and in a
    folder that exists or can be made and is writable. Raised before any model is loaded."""
    for what, source in inputs.items():
        if source is not None and same_path(output, source):
            raise UsageError(f"output '{output}' is the {what}; choose another file")
    if output.is_dir():
        raise UsageError(f"output '{output}' is a folder; name the file to write")
    OutputFolder(output.parent, (), force=True).validate()  # force: other files in that folder do not matter
    if output.exists() and not os.access(output, os.W_OK):
        raise UsageError(f"output '{output}' is not writable")


def weights_file(pretrained: str) -> str | None:
    """The file part of `--pretrained` (a file, or BASE+FILE), None for a tag or a name."""
    candidate = pretrained.split("+", 1)[1] if "+" in pretrained and not os.path.exists(pretrained) else pretrained
    return candidate if os.path.exists(os.path.expanduser(candidate)) else None


def check_output(output: Path, force: bool, pretrained: str | None = None) -> None:
    """Every reason not to write `output`, before torch is imported."""
    if output.suffix != ".safetensors":
        raise UsageError(f"output '{output}' must end in .safetensors")
    if pretrained is not None and (source := weights_file(pretrained)) is not None and same_path(output, source):
        raise UsageError(f"output '{output}' is the weights file being converted; choose another file")
    if output.exists() and not force:
        raise UsageError(f"output '{output}' exists; pass --force to overwrite it")
    if not output.parent.is_dir():
        problem = "is not a folder" if output.parent.exists() else "does not exist"
        raise UsageError(f"output folder '{output.parent}' {problem}")
    check_output_file(output, {})


def convert_weights(model: str, pretrained: str, output: Path, *, logit_scale: float = 100.0,
                    force: bool = False) -> Path:
    """Load `pretrained` into `model` (read with weights_only=True) and write it as a model checkpoint."""
    from tgazsr_cli.checkpoints.checkpoint import save_checkpoint
    from tgazsr_cli.checkpoints.loading import load_pretrained_classifier
    from tgazsr_cli.checkpoints.metadata import CheckpointMetadata

    check_output(output, force, pretrained)
    classifier = load_pretrained_classifier(model, pretrained, logit_scale=logit_scale)
    spec = classifier.spec
    metadata = CheckpointMetadata(
        kind="model", method="converted", model_name=spec.name, model_cfg=spec.model_cfg,
        pretrained=spec.pretrained, preprocess_cfg=spec.preprocess_cfg, logit_scale=logit_scale,
        extra={"source": {"pretrained": pretrained}})
    return save_checkpoint(output, model_state=classifier.clip.state_dict(), metadata=metadata)
