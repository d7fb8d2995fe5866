"""Class names: the class-name files beside the dataset files, the WordNet-id table, and prompt-name cleaning.

Class names are data, not code: ``datasets/classnames/<dataset>.txt`` holds one class a line in label order,
either ``name`` or ``key<TAB>name`` (the key is the class's raw name at the source, e.g. a WordNet id or a folder
name), with ``#`` comment lines saying where the list comes from. Raw label names found in a source (folder
names, ClassLabel features, manifests) are turned into the text that fills a prompt template: a Tiny-ImageNet
WordNet id (``n01443537``) becomes its name from ``classnames/tinyimagenet.txt``; anything else has ``_`` and
``-`` turned into spaces (spec §3, §6).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from tgazsr_cli.errors import RuntimeFailure, UsageError

DATASETS_DIR = Path(__file__).with_name("datasets")  # the shipped dataset files, <name>.yaml
CLASSNAMES_DIR = DATASETS_DIR / "classnames"
WNID_FILE = CLASSNAMES_DIR / "tinyimagenet.txt"  # the 200 Tiny-ImageNet wnids -> prompt names
IMAGENET_FILE = CLASSNAMES_DIR / "imagenet.txt"  # the 1000 ImageNet-1k wnids -> prompt names
_WNID = re.compile(r"^n\d{8}$")
_SEPARATORS = re.compile(r"[_\-]+")


def read_lines(path: Path) -> tuple[str, ...]:
    """The non-blank, non-comment lines of a list file, stripped; RuntimeFailure when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RuntimeFailure(f"cannot read the list {path}: {error.strerror or error}") from error
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def read_class_file(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(keys, names) of a class-name file in label order; keys are () when its lines are plain names."""
    lines = read_lines(path)
    keyed = [line for line in lines if "\t" in line]
    if not keyed:
        return (), lines
    if len(keyed) != len(lines):
        plain = next(line for line in lines if "\t" not in line)
        raise UsageError(f"{path}: every line must be 'key<TAB>name' once one is; got {plain!r}")
    keys, names = [], []
    for line in lines:
        key, _, name = line.partition("\t")
        if not key.strip() or not name.strip():
            raise UsageError(f"{path}: expected 'key<TAB>name', got {line!r}")
        keys.append(key.strip())
        names.append(name.strip())
    return tuple(keys), tuple(names)


def read_name_table(path: Path) -> dict[str, str]:
    """A ``key<TAB>name`` file as an ordered dict key -> name."""
    keys, names = read_class_file(path)
    if not keys:
        raise RuntimeFailure(f"{path}: expected 'key<TAB>name' lines")
    return dict(zip(keys, names, strict=True))


@lru_cache(maxsize=1)
def wnid_names() -> dict[str, str]:
    """The 200 Tiny-ImageNet wnids -> prompt names, in class-index (sorted wnid) order (spec §3)."""
    return read_name_table(WNID_FILE)


def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in class-index order (the order of open_clip's IMAGENET_CLASSNAMES)."""
    return tuple(read_name_table(IMAGENET_FILE))


def is_wnid(name: str) -> bool:
    """True for a WordNet noun id such as ``n01443537``."""
    return bool(_WNID.match(name))


def clean_classname(name: str) -> str:
    """``_`` and ``-`` to spaces, whitespace collapsed (spec §6: folder names become prompt names)."""
    return " ".join(_SEPARATORS.sub(" ", str(name)).split())


def readable_classname(name: str) -> str:
    """The prompt name of one raw label name: wnids through the Tiny-ImageNet table, others cleaned."""
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
