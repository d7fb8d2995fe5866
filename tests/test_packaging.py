"""What a wheel install needs ships inside the package, and listing commands stay light."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tgazsr_cli"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("tgazsr-*.whl")
    return zipfile.ZipFile(path)


def shipped(pattern: str) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob(pattern) if "__pycache__" not in p.parts}


@pytest.mark.parametrize("pattern", ["recipes/**/*.yaml", "models/shipped/*.safetensors", "models/configs/*.json",
                                     "data/datasets/**/*", "data/builtin/**/*"])
def test_the_wheel_holds_every_runtime_file(wheel: zipfile.ZipFile, pattern: str) -> None:
    expected = {p for p in shipped(pattern) if (ROOT / p).is_file()}
    assert expected, f"nothing in the tree matches {pattern}"
    assert expected <= set(wheel.namelist())


def test_the_wheel_names_an_spdx_licence(wheel: zipfile.ZipFile) -> None:
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    text = wheel.read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert any(n.endswith("licenses/LICENSE") for n in wheel.namelist())


def test_the_top_level_recipes_folder_is_the_package_copy() -> None:
    assert (ROOT / "recipes").resolve() == (PACKAGE / "recipes").resolve()


def test_listing_commands_do_not_import_open_clip_torchvision_or_datasets() -> None:
    code = ("import sys\nfrom tgazsr_cli.cli.app import main\n"
            "for command in ('datasets', 'recipes', 'methods', 'attacks', '--help'):\n"
            "    assert main([command]) == 0, command\n"
            "print(sorted(m for m in ('open_clip', 'torchvision', 'datasets') if m in sys.modules))\n"
            "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    heavy, torch_loaded = done.stdout.strip().splitlines()[-2:]
    assert heavy == "[]"
    assert torch_loaded == "False"  # the registries are read from source (engine.catalog), not imported
