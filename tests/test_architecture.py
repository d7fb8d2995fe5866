"""The README's Architecture tree names exactly the packages and top-level modules the package has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_architecture_tree_matches_the_package() -> None:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Architecture", 1)[1]
    tree = re.search(r"```\ntgazsr_cli/\n(.*?)```", section, re.S).group(1)
    drawn = {m.group(1) for m in re.finditer(r"^  (\S+?)/?\s", tree, re.M) if m.group(1) != "__init__.py"}
    package = ROOT / "tgazsr_cli"
    actual = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    actual |= {p.name for p in package.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    actual |= {"recipes"}
    assert drawn == actual


def test_no_two_modules_differ_only_by_a_suffix_and_none_is_long() -> None:
    modules = [p for p in (ROOT / "tgazsr_cli").rglob("*.py") if p.name != "__init__.py"]
    for path in modules:
        siblings = {p.stem for p in path.parent.glob("*.py")}
        for suffix in ("s", "er", "or", "ing", "ion", "ation"):
            stem = path.stem
            assert not (stem.endswith(suffix) and stem[: -len(suffix)] in siblings), path
    long = [str(p.relative_to(ROOT)) for p in modules if len(p.read_text(encoding="utf-8").splitlines()) > 420]
    assert not long
