"""OpenAI's CLIP weights in a local file run with QuickGELU, as the `openai` tag does; a TorchScript archive is
refused with the fix; the activation is recorded in checkpoint metadata and kept when the checkpoint is loaded."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from tgazsr_cli.checkpoints import checkpoint as ckpt
from tgazsr_cli.checkpoints.loading import load_tgazsr_checkpoint
from tgazsr_cli.cli.app import main
from tgazsr_cli.errors import UsageError
from tgazsr_cli.models.building import build_clip, resolve_model_spec
from tgazsr_cli.models.classifier import load_classifier
from tgazsr_cli.weights.openai import OPENAI, OTHER, TORCHSCRIPT, weights_kind


def tiny_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_clip(resolve_model_spec("tgazsr-tiny")).state_dict()


def activation_of(clip: torch.nn.Module) -> str:
    return type(clip.visual.transformer.resblocks[0].mlp.gelu).__name__


@pytest.fixture
def openai_file(tmp_path: Path) -> Path:
    """The tiny model's weights as the state dict of OpenAI's archive: OpenAI's parameter names (open_clip's ViT
    keeps them) plus the input_resolution / context_length / vocab_size entries only OpenAI's files have."""
    state = {**tiny_state(1), "input_resolution": torch.tensor(28), "context_length": torch.tensor(77),
             "vocab_size": torch.tensor(49408)}
    assert "visual.transformer.resblocks.0.attn.in_proj_weight" in state
    torch.save(state, tmp_path / "openai-tiny.pt")
    return tmp_path / "openai-tiny.pt"


class Scripted(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def test_openai_state_dict_switches_to_quickgelu_with_a_warning(openai_file: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="OpenAI's CLIP weights, trained with QuickGELU"):
        loaded = load_classifier("tgazsr-tiny", str(openai_file))
    assert loaded.spec.model_cfg["quick_gelu"] is True and activation_of(loaded.clip) == "QuickGELU"
    for key, value in tiny_state(1).items():
        assert torch.equal(loaded.clip.state_dict()[key], value), key
    # the same weights without OpenAI's extra entries: an ordinary open_clip file, GELU as configured
    plain = tmp_path / "plain.pt"
    torch.save(tiny_state(1), plain)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other = load_classifier("tgazsr-tiny", str(plain))
    assert not other.spec.model_cfg.get("quick_gelu") and activation_of(other.clip) == "GELU"
    # QuickGELU changes the outputs: the trap was real
    images = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(loaded.clip.encode_image(images), other.clip.encode_image(images))


def test_a_stack_takes_the_activation_of_its_base(openai_file: Path, tmp_path: Path) -> None:
    tower = {f"module.{k.removeprefix('visual.')}": v for k, v in tiny_state(2).items() if k.startswith("visual.")}
    torch.save({"epoch": 1, "vision_encoder_state_dict": tower}, tmp_path / "checkpoint.pth.tar")
    with pytest.warns(UserWarning, match="QuickGELU"):
        spec = resolve_model_spec("tgazsr-tiny", f"{openai_file}+{tmp_path / 'checkpoint.pth.tar'}")
    assert spec.model_cfg["quick_gelu"] is True
    assert weights_kind(tmp_path / "checkpoint.pth.tar") == OTHER  # a robust tower alone decides nothing


def test_converted_checkpoint_records_and_keeps_quickgelu(openai_file: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "converted.safetensors"
    with pytest.warns(UserWarning, match="QuickGELU"):
        assert main(["convert", "--model", "tgazsr-tiny", "--pretrained", str(openai_file), "-o", str(out)]) == 0
    assert ckpt.load_checkpoint(out).metadata.activation == "quick_gelu"
    assert activation_of(load_tgazsr_checkpoint(out).classifier.clip) == "QuickGELU"


def test_torchscript_archive_is_refused_with_the_fix(tmp_path: Path) -> None:
    archive = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.trace(Scripted(), torch.zeros(1, 4)), str(archive))
    assert weights_kind(archive) == TORCHSCRIPT
    with pytest.raises(UsageError) as caught:
        resolve_model_spec("ViT-B-32", str(archive))
    message = str(caught.value)
    assert "TorchScript archive" in message and "torch.jit.load" in message and "\n" not in message
    assert "--model ViT-B-32-quickgelu --pretrained openai" in message


def test_kinds_of_weights_files(openai_file: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    assert weights_kind(openai_file) == OPENAI
    save_file({k: v.contiguous() for k, v in torch.load(openai_file, weights_only=True).items()},
              str(tmp_path / "openai.safetensors"))
    assert weights_kind(tmp_path / "openai.safetensors") == OPENAI
    torch.save(tiny_state(3), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert weights_kind(tmp_path / "legacy.pt") == OTHER
