"""Published robust-CLIP weights (OpenAI-CLIP layout `.pth.tar`, as TeCoA, PMG-AFT and TGA-ZSR release them):
evaluated directly with `--pretrained BASE+FILE`, or converted once to a tgazsr checkpoint."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import make_image_folder
from tgazsr_cli.cli.app import main
from tgazsr_cli.errors import UsageError
from tgazsr_cli.models.building import build_clip, pretrained_layers, resolve_model_spec
from tgazsr_cli.models.classifier import load_classifier


def tiny_clip(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_clip(resolve_model_spec("tgazsr-tiny"))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """base.pt: a whole CLIP state dict; robust.pth.tar: another model's image tower in the layout the
    reference code saves (an empty prompter under "state_dict", the tower under "vision_encoder_state_dict",
    DataParallel's "module." prefix, OpenAI-CLIP parameter names)."""
    base, robust = tiny_clip(1), tiny_clip(2)
    torch.save(base.state_dict(), tmp_path / "base.pt")
    tower = {f"module.{k}": v for k, v in robust.visual.state_dict().items()}
    torch.save({"epoch": 10, "state_dict": {}, "add_prompter": {}, "vision_encoder_state_dict": tower,
                "best_acc1": 0.3, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-5, "params": [0]}]}},
               tmp_path / "robust.pth.tar")
    torch.save({"state_dict": {f"module.{k}": v for k, v in robust.state_dict().items()}},
               tmp_path / "whole.pth")
    return {"base": tmp_path / "base.pt", "robust": tmp_path / "robust.pth.tar", "whole": tmp_path / "whole.pth",
            "root": tmp_path}


def parameters(clip: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in clip.state_dict().items() if k.startswith(prefix)}


def test_image_tower_on_top_of_a_base(files: dict[str, Path]) -> None:
    loaded = load_classifier("tgazsr-tiny", f"{files['base']}+{files['robust']}").clip
    base, robust = tiny_clip(1), tiny_clip(2)
    for key, value in loaded.state_dict().items():
        expected = robust.state_dict()[key] if key.startswith("visual.") else base.state_dict()[key]
        assert torch.equal(value, expected), key
    images = torch.rand(2, 3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(loaded.encode_image(images), robust.encode_image(images))


def test_a_whole_model_under_a_container_and_a_prefix_loads_alone(files: dict[str, Path]) -> None:
    loaded = load_classifier("tgazsr-tiny", str(files["whole"])).clip
    for key, value in tiny_clip(2).state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_an_image_tower_alone_asks_for_its_base(files: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match=r"only an image tower \(vision_encoder_state_dict\).*openai\+"):
        load_classifier("tgazsr-tiny", str(files["robust"]))


def test_a_different_architecture_is_named_as_such(files: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="different architecture"):
        load_classifier("tgazsr-mini", f"tgazsr:mini-clip+{files['robust']}")


class Booby:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return builtins.open, (str(self.marker), "w")


def test_a_malicious_published_file_is_refused_and_never_runs(files: dict[str, Path]) -> None:
    marker = files["root"] / "pwned"
    evil = files["root"] / "evil.pth.tar"
    torch.save({"vision_encoder_state_dict": tiny_clip(2).visual.state_dict(), "trap": Booby(marker)}, evil)
    with pytest.raises(UsageError, match="refuses to unpickle"):
        load_classifier("tgazsr-tiny", f"{files['base']}+{evil}")
    assert not marker.exists()


def test_layers_split_only_where_every_part_is_a_tag_or_file(files: dict[str, Path]) -> None:
    assert pretrained_layers(f"openai+{files['robust']}") == ["openai", str(files["robust"])]
    assert pretrained_layers("laion2b_s34b_b79k") == ["laion2b_s34b_b79k"]
    assert pretrained_layers("/no/such+dir/w.pt") == ["/no/such+dir/w.pt"]


def test_convert_then_eval_equals_direct_eval(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = files["root"]
    make_image_folder(root / "data", per_class=3)
    layered = f"{files['base']}+{files['robust']}"
    converted = root / "robust.safetensors"
    assert main(["convert", "--model", "tgazsr-tiny", "--pretrained", layered, "-o", str(converted)]) == 0
    common = ["--datasets", str(root / "data"), "--eps", "2", "--steps", "3", "--step-size", "1", "--batch-size", "5",
              "--workers", "0", "--no-sanity", "--json"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(converted), *common]) == 0
    via_checkpoint = json.loads(capsys.readouterr().out)
    assert main(["eval", "--model", "tgazsr-tiny", "--pretrained", layered, *common]) == 0
    direct = json.loads(capsys.readouterr().out)
    keys = ("num_examples", "clean_correct", "robust_correct")
    assert [r[k] for r in via_checkpoint for k in keys] == [r[k] for r in direct for k in keys]
    assert via_checkpoint[0]["num_examples"] == 12
    assert main(["convert", "--model", "tgazsr-tiny", "--pretrained", layered, "-o", str(converted)]) == 2
    assert "exists" in capsys.readouterr().err


def test_a_published_file_given_as_checkpoint_gets_a_hint(files: dict[str, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--checkpoint", str(files["robust"]), "--datasets", "x"]) == 2
    assert "--pretrained openai+" in capsys.readouterr().err
