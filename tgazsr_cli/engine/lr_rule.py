"""One learning-rate rule for every method: each method is trained at every learning rate of a grid (same seed,
same schedule otherwise) and keeps the one whose zero-shot accuracy on a validation split of the fine-tuning
classes has the best harmonic mean of clean and robust accuracy. The validation split holds other draws of the
fine-tuning classes than their test split, so no choice is made on an evaluated set. Runs are named
`METHOD-lr<VALUE>` (what scripts/mini_world_lr_rule.py writes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tgazsr_cli.engine.report import Record, harmonic_mean

GRID_RUN = re.compile(r"^(?P<method>.+)-lr(?P<lr>[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$")


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
        # ties go to the smaller learning rate: the gentler update
        return max(self.candidates, key=lambda c: (round(c.harmonic, 6), -c.lr))


def grid_run_name(method: str, lr: float) -> str:
    return f"{method}-lr{lr:g}"


def lr_choices(records: Sequence[Record], attack: str, dataset: str) -> list[Choice]:
    """Every method's candidates and choice from an evaluation of its grid runs on one validation dataset."""
    found: dict[str, list[Candidate]] = {}
    for record in records:
        match = GRID_RUN.match(record["model"])
        if match is None or record["attack"] != attack or record["dataset"] != dataset:
            continue
        found.setdefault(match.group("method"), []).append(
            Candidate(float(match.group("lr")), record["clean_accuracy"], record["robust_accuracy"]))
    return [Choice(method, tuple(sorted(candidates, key=lambda c: c.lr)))
            for method, candidates in sorted(found.items())]


def lr_rule_markdown(choices: Sequence[Choice], split_note: str) -> str:
    """The table of every candidate (clean / robust / harmonic mean) with the chosen one in bold."""
    rates = sorted({c.lr for choice in choices for c in choice.candidates})
    lines = [f"Clean / robust / harmonic mean (%) on {split_note}; the chosen learning rate in bold.", "",
             "| method | " + " | ".join(f"lr {lr:g}" for lr in rates) + " | chosen |",
             "|---|" + "---:|" * (len(rates) + 1)]
    for choice in choices:
        by_lr = {c.lr: c for c in choice.candidates}
        cells = []
        for lr in rates:
            c = by_lr.get(lr)
            text = "" if c is None else f"{c.clean:.1f} / {c.robust:.1f} / {c.harmonic:.1f}"
            cells.append(f"**{text}**" if c is choice.best else text)
        lines.append(f"| {choice.method} | " + " | ".join(cells) + f" | {choice.best.lr:g} |")
    return "\n".join(lines) + "\n"
