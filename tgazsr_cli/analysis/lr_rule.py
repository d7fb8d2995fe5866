"""Choosing the mini-world learning rate on a validation split, by one rule for every method.

Each method is trained at every learning rate of a grid (same seed, same schedule otherwise) and evaluated on a
validation split of the fine-tuning classes (other draws than their test split, so no choice is made on an
evaluated set). Two rules read that grid:

- the protocol rule (used): the gentlest learning rate at which every anchor method (TeCoA and TGA-ZSR) gains at
  least `gain` robust points over the original model. Gentlest, because every step of fine-tuning on the 200
  classes costs zero-shot accuracy elsewhere, which a split of the fine-tuning classes cannot see;
- the harmonic-mean rule (reported): per method, the best harmonic mean of clean and robust accuracy on that
  split. It rewards fitting the fine-tuning classes, so on the mini world it picks the largest rate tried.

Runs are named `METHOD-lr<VALUE>` (what scripts/mini_world_lr_rule.py writes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tgazsr_cli.errors import UsageError
from tgazsr_cli.evaluation.report import Record, harmonic_mean

GRID_RUN = re.compile(r"^(?P<method>.+)-lr(?P<lr>[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$")
ORIGINAL_PREFIX = "original"  # how `eval --original` labels the start model


@dataclass(frozen=True)
class Candidate:
    lr: float
    clean: float
    robust: float

    @property
    def harmonic(self) -> float:
        return harmonic_mean(self.clean, self.robust)


@dataclass(frozen=True)
class Choice:
    method: str
    candidates: tuple[Candidate, ...]  # by learning rate, smallest first

    @property
    def best(self) -> Candidate:
        """The harmonic-mean rule's pick; ties go to the smaller learning rate (the gentler update)."""
        return max(self.candidates, key=lambda c: (round(c.harmonic, 6), -c.lr))

    def at(self, lr: float) -> Candidate | None:
        return next((c for c in self.candidates if c.lr == lr), None)


def grid_run_name(method: str, lr: float) -> str:
    return f"{method}-lr{lr:g}"


def _selected(records: Sequence[Record], attack: str, dataset: str) -> list[Record]:
    return [r for r in records if r["attack"] == attack and r["dataset"] == dataset]


def lr_choices(records: Sequence[Record], attack: str, dataset: str) -> list[Choice]:
    """Every method's candidates from an evaluation of its grid runs on one validation dataset."""
    found: dict[str, list[Candidate]] = {}
    for record in _selected(records, attack, dataset):
        match = GRID_RUN.match(record["model"])
        if match is not None:
            found.setdefault(match.group("method"), []).append(
                Candidate(float(match.group("lr")), record["clean_accuracy"], record["robust_accuracy"]))
    return [Choice(method, tuple(sorted(candidates, key=lambda c: c.lr)))
            for method, candidates in sorted(found.items())]


def original_accuracy(records: Sequence[Record], attack: str, dataset: str) -> Candidate:
    """The original model's (clean, robust) on the validation dataset, as a candidate of learning rate 0."""
    for record in _selected(records, attack, dataset):
        if record["model"].startswith(ORIGINAL_PREFIX):
            return Candidate(0.0, record["clean_accuracy"], record["robust_accuracy"])
    raise UsageError(f"no '{ORIGINAL_PREFIX}' row for {dataset} ({attack}): evaluate the grid with --original")


def gentlest_lr(choices: Sequence[Choice], anchors: Sequence[str], original: Candidate, gain: float) -> float | None:
    """The smallest learning rate at which every anchor method gains `gain` robust points; None if none does."""
    by_method = {c.method: c for c in choices}
    missing = [a for a in anchors if a not in by_method]
    if missing:
        raise UsageError(f"the grid has no runs of {', '.join(missing)}")
    robust = {a: {c.lr: c.robust for c in by_method[a].candidates} for a in anchors}
    for lr in sorted(set.intersection(*(set(by_lr) for by_lr in robust.values()))):
        if all(robust[a][lr] - original.robust >= gain for a in anchors):
            return lr
    return None


def lr_rule_markdown(choices: Sequence[Choice], original: Candidate, chosen: float | None, note: str) -> str:
    """Every candidate as clean / robust (gain over the original) / harmonic mean; the chosen rate in bold."""
    rates = sorted({c.lr for choice in choices for c in choice.candidates})
    lines = [f"Clean / robust (robust gain over the original) / harmonic mean, %, on {note}. The original: "
             f"{original.clean:.1f} / {original.robust:.1f}. Bold: the protocol's learning rate; last column: "
             "the harmonic-mean rule's pick.", "",
             "| method | " + " | ".join(f"**lr {lr:g}**" if lr == chosen else f"lr {lr:g}" for lr in rates)
             + " | best harmonic mean |",
             "|---|" + "---:|" * (len(rates) + 1)]
    for choice in choices:
        cells = []
        for lr in rates:
            c = choice.at(lr)
            text = "" if c is None else (f"{c.clean:.1f} / {c.robust:.1f} ({c.robust - original.robust:+.1f}) / "
                                         f"{c.harmonic:.1f}")
            cells.append(f"**{text}**" if lr == chosen and text else text)
        lines.append(f"| {choice.method} | " + " | ".join(cells) + f" | {choice.best.lr:g} |")
    return "\n".join(lines) + "\n"
