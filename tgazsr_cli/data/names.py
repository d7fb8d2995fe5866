"""Class names as prompts see them (spec §3, §6): WordNet ids mapped through a shipped table, `_ -` cleaned.

Raw label names come from folder names, ClassLabel features or manifests. Each is turned into the text that
fills a prompt template: a Tiny-ImageNet WordNet id (``n01443537``) becomes its first lemma from
``classnames/tinyimagenet_wnids.txt``; anything else has ``_`` and ``-`` turned into spaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from tgazsr_cli.errors import RuntimeFailure

CLASSNAMES_DIR = Path(__file__).with_name("classnames")
WNID_FILE = CLASSNAMES_DIR / "tinyimagenet_wnids.txt"
_WNID = re.compile(r"^n\d{8}$")
_SEPARATORS = re.compile(r"[_\-]+")


def is_wnid(name: str) -> bool:
    """True for a WordNet noun id such as ``n01443537``."""
    return bool(_WNID.match(name))


def read_name_table(path: Path) -> dict[str, str]:
    """A ``key<TAB>name`` table (``#`` comments, blank lines ignored) as an ordered dict."""
    table: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, name = line.partition("\t")
        if not sep or not name.strip():
            raise RuntimeFailure(f"{path}:{number}: expected 'key<TAB>name', got {line!r}")
        table[key.strip()] = name.strip()
    return table


@lru_cache(maxsize=1)
def wnid_names() -> dict[str, str]:
    """The 200 Tiny-ImageNet wnids -> prompt names, in class-index (sorted wnid) order (spec §3)."""
    return read_name_table(WNID_FILE)


def clean_classname(name: str) -> str:
    """``_`` and ``-`` to spaces, whitespace collapsed (spec §6: folder names become prompt names)."""
    return " ".join(_SEPARATORS.sub(" ", str(name)).split())


def readable_classname(name: str) -> str:
    """The prompt name of one raw label name: wnids through the shipped table, others cleaned."""
    name = str(name).strip()
    if is_wnid(name) and name in wnid_names():
        return wnid_names()[name]
    return clean_classname(name)


def readable_classnames(names: Sequence[str]) -> list[str]:
    """`readable_classname` over a list."""
    return [readable_classname(name) for name in names]


def match_key(name: str) -> str:
    """The key under which a raw name and a spec name are considered the same class."""
    return readable_classname(name).lower()
