"""The shipped class-name, WordNet-id and prompt-template files under ``classnames/`` (spec §6 prompt column).

Class names are data, not code: ``classnames/<dataset>.txt`` holds one name a line in label order, with ``#``
comment lines saying where the list comes from; ``classnames/templates.txt`` maps a dataset to its prompt
template(s) as ``dataset<TAB>template`` lines. ImageNet-A/O/R name their 200 classes by WordNet id
(``classnames/<dataset>_wnids.txt``); their prompt names are the ImageNet-1k names of those ids.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tgazsr_cli.data.names import CLASSNAMES_DIR
from tgazsr_cli.errors import RuntimeFailure

TEMPLATES_FILE = CLASSNAMES_DIR / "templates.txt"
IMAGENET_WNIDS_FILE = CLASSNAMES_DIR / "imagenet_wnids.txt"


def read_lines(path: Path) -> tuple[str, ...]:
    """The non-blank, non-comment lines of a shipped list, stripped; RuntimeFailure when it is missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RuntimeFailure(f"cannot read the shipped list {path}: {error.strerror or error}") from error
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def read_classnames(dataset: str) -> tuple[str, ...]:
    """The class names of `dataset` in label order, from ``classnames/<dataset>.txt``."""
    return read_lines(CLASSNAMES_DIR / f"{dataset}.txt")


@lru_cache(maxsize=1)
def _all_templates() -> dict[str, tuple[str, ...]]:
    table: dict[str, list[str]] = {}
    for number, line in enumerate(TEMPLATES_FILE.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, template = line.partition("\t")
        if not sep or not template:
            raise RuntimeFailure(f"{TEMPLATES_FILE}:{number}: expected 'dataset<TAB>template', got {line!r}")
        table.setdefault(name.strip(), []).append(template)
    return {name: tuple(templates) for name, templates in table.items()}


def read_templates(dataset: str) -> tuple[str, ...]:
    """The prompt template(s) of `dataset` from ``classnames/templates.txt`` (kept byte for byte)."""
    try:
        return _all_templates()[dataset]
    except KeyError:
        raise RuntimeFailure(f"{TEMPLATES_FILE} has no template for '{dataset}'") from None


def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in class-index order (the order of open_clip's IMAGENET_CLASSNAMES)."""
    return read_lines(IMAGENET_WNIDS_FILE)


def imagenet_subset(dataset: str, imagenet_names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(wnids, prompt names) of an ImageNet subset such as imagenet-a: names looked up by wnid in ImageNet-1k."""
    index = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
    wnids = read_lines(CLASSNAMES_DIR / f"{dataset}_wnids.txt")
    unknown = [w for w in wnids if w not in index]
    if unknown or len(index) != len(imagenet_names):
        raise RuntimeFailure(f"classnames/{dataset}_wnids.txt does not match the ImageNet-1k class list "
                             f"({len(unknown)} unknown wnids)")
    return wnids, tuple(imagenet_names[index[w]] for w in wnids)
