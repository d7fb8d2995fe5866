"""Results over several training seeds: mean and standard deviation per (method, dataset), and the trade-off
plot with error bars. Runs named `NAME-s<SEED>` (what scripts/mini_world_benchmark.sh writes) are one method
trained with different seeds; every other row (the original model) is a group of one.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tgazsr_cli.evaluation.report import Record, save_figure, threat_line

SEEDED = re.compile(r"^(?P<name>.+?)-s(?P<seed>\d+)(?: \((?P<method>[^)]*)\))?$")


@dataclass
class Cell:
    mean: float
    std: float  # sample standard deviation over seeds (0 for one seed)
    n: int

    def text(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f}" if self.n > 1 else f"{self.mean:.1f}"


def group_name(model: str) -> str:
    match = SEEDED.match(model)
    return match.group("name") if match else model


def cell(values: Sequence[float]) -> Cell:
    return Cell(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))


def seed_table(records: Sequence[Record], attack: str) -> tuple[list[str], dict[str, dict[str, tuple[Cell, Cell]]]]:
    """(datasets, group -> dataset -> (clean, robust)) for one attack; "average" is the per-run average's
    mean and spread, so its spread is over seeds, not over datasets."""
    chosen = [r for r in records if r["attack"] == attack]
    datasets = list(dict.fromkeys(r["dataset"] for r in chosen))
    runs: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    for r in chosen:
        runs.setdefault(group_name(r["model"]), {}).setdefault(r["model"], {})[r["dataset"]] = (
            r["clean_accuracy"], r["robust_accuracy"])
    table: dict[str, dict[str, tuple[Cell, Cell]]] = {}
    for group, members in runs.items():
        row = {d: (cell([m[d][0] for m in members.values() if d in m]), cell([m[d][1] for m in members.values()
                                                                            if d in m]))
               for d in datasets}
        complete = [m for m in members.values() if set(m) == set(datasets)]
        if complete:
            row["average"] = (cell([statistics.fmean(v[0] for v in m.values()) for m in complete]),
                              cell([statistics.fmean(v[1] for v in m.values()) for m in complete]))
        table[group] = row
    return datasets, table


def seed_markdown(records: Sequence[Record], attack: str) -> str:
    datasets, table = seed_table(records, attack)
    columns = [*datasets, "average"]
    seeds = {group: max(c[0].n for c in row.values()) for group, row in table.items()}
    parts = []
    for index, what in ((1, f"Robust accuracy (%) — {attack}"), (0, "Clean accuracy (%)")):
        lines = [f"**{what}, mean ± standard deviation over training seeds**", "",
                 "| model | seeds | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
        for group, row in table.items():
            cells = [row[c][index].text() if c in row else "" for c in columns]
            lines.append(f"| {group} | {seeds[group]} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    parts.append(threat_line([r for r in records if r["attack"] == attack]) + ".")
    return "\n\n".join(parts) + "\n"


def ranking(records: Sequence[Record], attack: str) -> list[tuple[str, Cell, Cell]]:
    """Groups by mean average robust accuracy, best first: (group, clean average, robust average)."""
    _, table = seed_table(records, attack)
    rows = [(group, row["average"][0], row["average"][1]) for group, row in table.items() if "average" in row]
    return sorted(rows, key=lambda item: -item[2].mean)


def seed_plot(records: Sequence[Record], attack: str, path: Path) -> Path:
    """Average robust vs average clean accuracy per group, error bars one standard deviation over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.4, 4.8))
    colours = plt.get_cmap("tab20").colors
    for index, (group, clean, robust) in enumerate(ranking(records, attack)):
        axis.errorbar(clean.mean, robust.mean, xerr=clean.std, yerr=robust.std, fmt="o", capsize=3,
                      color=colours[index % len(colours)])
        axis.annotate(group, (clean.mean, robust.mean), textcoords="offset points", xytext=(4, 4), fontsize=7,
                      color=colours[index % len(colours)])
    axis.margins(0.15)
    axis.set_xlabel("clean accuracy, average over datasets (%)")
    axis.set_ylabel(f"robust accuracy ({attack}), average (%)")
    fig.suptitle("Robust vs clean accuracy, mean ± sd over training seeds", fontsize=10)
    return save_figure(fig, axis, path, legend=False)  # every point carries its name
