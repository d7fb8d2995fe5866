"""A method, an attack and a dataset added from a folder outside the package ($TGAZSR_PLUGIN_PATH,
$TGAZSR_DATASET_PATH) are listed and usable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

PLUGIN = '''
from dataclasses import dataclass

from tgazsr_cli.attacks import register_attack
from tgazsr_cli.config.fields import NonNegative
from tgazsr_cli.methods import LossOutput, TrainingMethod, register_method


def sign_noise(model, images, labels, threat, sample_ids=None):
    import torch

    generator = torch.Generator().manual_seed(threat.seed)
    signs = torch.randint(0, 2, images.shape, generator=generator).to(images) * 2 - 1
    return (images + threat.eps_pixels * signs).clamp(0, 1)


register_attack("sign-noise", sign_noise, "random signs at eps (a throwaway plugin attack)")


@dataclass
class ScaledOptions:
    weight: NonNegative = 1.0


@register_method
class ScaledCe(TrainingMethod):
    name = "scaled-ce"
    description = "clean CE times a weight (a throwaway plugin method)"
    source = "tests/test_plugins.py"
    Options = ScaledOptions

    def loss(self, images, labels):
        from tgazsr_cli.methods.losses import zero_shot_cross_entropy

        ce = self.options.weight * zero_shot_cross_entropy(self.model(images), labels)
        return LossOutput(ce, {"ce": ce.detach()})
'''


DATASET = """\
name: two-colours
description: Red and blue squares (a throwaway dataset)
sources:
  local: squares
splits:
  test: {size: 8}
classnames: [red, blue]
templates: ["a {} square"]
"""


def tgazsr(args: list[str], cwd: Path, plugins: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TGAZSR_PLUGIN_PATH": str(plugins), "TGAZSR_DATASET_PATH": str(plugins), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "tgazsr_cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env)


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "throwaway.py").write_text(PLUGIN)
    (folder / "two-colours.yaml").write_text(DATASET)
    for colour, rgb in (("red", (230, 20, 20)), ("blue", (20, 20, 230))):
        (folder / "squares" / "test" / colour).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (12, 12), tuple(max(0, c - 10 * i) for c in rgb)).save(
                folder / "squares" / "test" / colour / f"{i}.png")
    return folder


def test_a_plugin_method_and_attack_are_listed(tmp_path: Path, plugins: Path) -> None:
    assert "scaled-ce" in tgazsr(["methods"], tmp_path, plugins).stdout
    assert "sign-noise" in tgazsr(["attacks"], tmp_path, plugins).stdout
    assert "two-colours" in tgazsr(["datasets"], tmp_path, plugins).stdout
    bad = tgazsr(["train", "--method", "scaled-ce", "--set", "method_options.weight=-1"], tmp_path, plugins)
    assert bad.returncode == 2 and "recipe key 'method_options.weight' must be >= 0" in bad.stderr


def test_a_plugin_method_trains_on_a_plugin_dataset_and_a_plugin_attack_evaluates(tmp_path: Path,
                                                                                    plugins: Path) -> None:
    run = tmp_path / "run"
    trained = tgazsr(["train", "--recipe", "tiny", "--method", "scaled-ce", "--set", "method_options.weight=0.5",
                      "--dataset", "two-colours", "--set", "data.split=test", "--batch-size", "4", "--max-steps", "2",
                      "-o", str(run)], tmp_path, plugins)
    assert trained.returncode == 0, trained.stderr
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1 and first["ce"] > 0
    evaluated = tgazsr(["eval", "-c", str(run), "--datasets", "two-colours", "--attack", "sign-noise", "--json"],
                       tmp_path, plugins)
    assert evaluated.returncode == 0, evaluated.stderr
    (record,) = json.loads(evaluated.stdout[evaluated.stdout.index("["):])
    assert (record["dataset"], record["attack"], record["num_examples"]) == ("two-colours", "sign-noise", 8)
    assert 0 <= record["robust_accuracy"] <= record["clean_accuracy"]


def test_a_broken_plugin_is_one_line(tmp_path: Path, plugins: Path) -> None:
    (plugins / "broken.py").write_text("raise RuntimeError('half-written plugin')\n")
    done = tgazsr(["methods"], tmp_path, plugins)
    assert done.returncode == 2 and "failed to load: half-written plugin" in done.stderr
    assert "Traceback" not in done.stderr
