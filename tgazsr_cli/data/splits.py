"""Split names: our train/test/val against whatever a source calls them (spec §6 "split used" column).

Sources disagree: the hub's Tiny-ImageNet says "valid", `datasets` turns a `valid-*.parquet` file into
"validation", folders say "val". A request is tried under its synonyms; "test" falls back to the validation
split when a source has no test split (Tiny-ImageNet and ImageNet are evaluated on val, spec §6).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePath

from tgazsr_cli.errors import UsageError

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval"),
}
_WORD = re.compile(r"[a-z]+")


def canonical_split(name: str) -> str | None:
    """train / validation / test for a known synonym, else None."""
    lowered = name.lower()
    for canonical, synonyms in _SYNONYMS.items():
        if lowered in synonyms:
            return canonical
    return None


def split_candidates(requested: str) -> list[str]:
    """Names to try for a requested split, best first (the request itself, its synonyms, then fallbacks)."""
    canonical = canonical_split(requested)
    candidates = [requested]
    if canonical is not None:
        candidates += _SYNONYMS[canonical]
    if canonical == "test":
        candidates += _SYNONYMS["validation"]
    return list(dict.fromkeys(candidates))


def resolve_split(requested: str, available: Iterable[str], *, where: str) -> str:
    """The available split that serves `requested`; UsageError naming the available ones otherwise."""
    available = list(available)
    by_lower = {name.lower(): name for name in available}
    for candidate in split_candidates(requested):
        if candidate.lower() in by_lower:
            return by_lower[candidate.lower()]
    raise UsageError(f"{where} has no split '{requested}'; available: {', '.join(available) or 'none'}")


def split_of_path(relative: PurePath) -> str | None:
    """The canonical split named by the words of a relative path (``data/valid-0000.parquet``), or None."""
    for part in reversed(relative.parts):
        for word in _WORD.findall(part.lower()):
            canonical = canonical_split(word)
            if canonical is not None:
                return canonical
    return None
