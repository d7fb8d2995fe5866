"""The public Python API: lazily imported, documented, and the README's example runs as printed."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tgazsr_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_every_public_name_resolves_and_every_function_documents_arguments_returns_and_an_example() -> None:
    for name in tgazsr_cli.__all__:
        value = getattr(tgazsr_cli, name)
        if inspect.isfunction(value):
            doc = inspect.getdoc(value) or ""
            assert "Returns" in doc or "->" in doc or doc.startswith(("Training", "Attack", "The ")), name
            if name.startswith(("load_", "train", "evaluate", "attack", "attention")):
                assert "Args:" in doc and "Returns:" in doc and "Example:" in doc, name
    with pytest.raises(AttributeError):
        _ = tgazsr_cli.no_such_name


def test_keyword_settings_are_checked_like_flags() -> None:
    with pytest.raises(tgazsr_cli.UsageError, match=r"unknown setting 'epss'.*did you mean 'eps'"):
        tgazsr_cli.evaluate(model="tgazsr-tiny", epss=2)
    with pytest.raises(tgazsr_cli.UsageError, match=r"recipe key 'eval.eps' must be in \[0, 64\]"):
        tgazsr_cli.evaluate(model="tgazsr-tiny", eps=100)


def test_the_readme_example_runs_as_printed(tmp_path: Path) -> None:
    env = {**os.environ, "TGAZSR_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", readme_python_example()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    dataset, attack, clean, robust = lines[0].split()
    assert (dataset, attack) == ("emoji-unseen", "pgd") and 0 <= float(robust) <= float(clean) <= 100
    assert lines[-1].endswith("attention.png") and (tmp_path / "attention.png").stat().st_size > 1000
