"""What users see: listings in files, the models listing, help screens, the legend of difference pictures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tgazsr_cli.cli import listing
from tgazsr_cli.cli.app import main


def test_listings_off_a_terminal_are_tab_separated_and_never_cut(capsys: pytest.CaptureFixture[str]) -> None:
    from tgazsr_cli.data import get_dataset_spec, list_datasets

    assert main(["datasets"]) == 0  # capsys's stdout is not a terminal, as a pipe or a file is not
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "name\tclasses\tsource\tdescription"
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert sorted(rows) == list_datasets() and all(len(row) == 4 for row in rows.values())
    for name, row in rows.items():  # every cell whole, however long the line
        spec = get_dataset_spec(name)
        assert row[3] == spec.description and (spec.hub_id is None or row[2] == spec.hub_id)
    assert max(len(line) for line in lines) > 80 and "…" not in "".join(lines)


def test_listings_on_a_terminal_are_tables(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.setattr(listing.stdout, "_force_terminal", True)
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "┃ name" in out and "\t" not in out


# In a fresh interpreter: `models`, which modules it imported, then open_clip's own list (after that check).
MODELS_PROBE = """
import json, sys
from tgazsr_cli.cli.app import main
assert main(["models"]) == 0
heavy = sorted(m for m in ("torch", "open_clip") if m in sys.modules)
import open_clip
from tgazsr_cli.models.building import register_builtin_configs
register_builtin_configs()
print(json.dumps([heavy, open_clip.list_models()]), file=sys.stderr)
"""


def test_models_lists_one_column_without_importing_torch() -> None:
    done = subprocess.run([sys.executable, "-c", MODELS_PROBE], capture_output=True, text=True, timeout=120,
                          check=True)
    heavy, open_clip_names = json.loads(done.stderr.strip().splitlines()[-1])
    assert heavy == []
    lines = done.stdout.splitlines()
    assert lines[0] == "name" and "\t" not in done.stdout  # one column: no empty second header
    assert lines[1:] == open_clip_names  # the same names, in open_clip's order
    assert {"tgazsr-tiny", "tgazsr-mini", "ViT-B-32"} <= set(lines)


def test_models_with_pretrained_tags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--pretrained"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "name\tpretrained tags"
    tags = dict(line.split("\t") for line in lines[1:])
    assert "openai" in tags["ViT-B-32"].split(", ") and tags["tgazsr-tiny"] == ""


@pytest.mark.parametrize("argv", [["--help"], ["models", "--help"], ["export", "--help"], ["eval", "--help"]])
def test_help_shows_no_bool_type_for_flags(argv: list[str], capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: a `<bool>` would show whole
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "--help" in out and "<bool>" not in out
    if argv == ["--help"]:
        assert "--verbose" in out and "--version" in out
    if argv[0] == "eval":
        assert "<int>" in out  # options that take a value keep their type


def test_difference_picture_has_a_legend(tmp_path: Path) -> None:
    from tgazsr_cli.viz.examples import LEGEND_HEIGHT, RAMP_HEIGHT, save_example_pngs

    clean = torch.full((3, 28, 28), 0.5)
    adversarial = clean.clone()
    adversarial[:, 0, 0] += 2 / 255
    save_example_pngs(clean, adversarial, tmp_path, 0)
    with Image.open(tmp_path / "0000-difference.png") as picture:
        pixels = np.asarray(picture).astype(int)
        caption = picture.text["Description"]
    side = pixels.shape[1]
    assert pixels.shape[0] == side + LEGEND_HEIGHT
    assert (pixels[0, 0] == 255).all()  # the largest change is white in the picture...
    ramp = pixels[side + 5 + RAMP_HEIGHT // 2, 8:side - 8, 0]  # ...and the legend's ramp runs black to white
    assert ramp[0] == 0 and ramp[-1] == 255 and (np.diff(ramp) >= 0).all()
    labels = pixels[side + 5 + RAMP_HEIGHT + 1:]
    assert (labels > 0).any()  # its labels are drawn
    assert "white the largest change (2/255)" in caption
