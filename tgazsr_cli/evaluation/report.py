"""Result tables in the paper's layout (datasets as columns, models as rows, plus the average), as
Markdown and CSV, a per-model summary with the harmonic mean of clean and robust accuracy, and the
robust-vs-clean trade-off plot. Every table carries the threat model it was measured under.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Record = dict[str, Any]
SERIES_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                  "tab:gray", "tab:olive", "tab:cyan")
ATTACK_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _ordered(records: Sequence[Record], key: str) -> list[str]:
    """The distinct values of `key`, in order of first appearance."""
    return list(dict.fromkeys(record[key] for record in records))


def with_views(records: Sequence[Record]) -> list[Record]:
    """Records as the tables show them: behind a test-time defence the model reads "model + defence" and the
    attack "attack (view)", so the non-adaptive and adaptive numbers are two columns side by side
    (`attack_name` keeps the attack itself). Records without a defence are unchanged; applying it twice is."""
    shown = []
    for record in records:
        if record.get("defence") and "attack_name" not in record:
            view = f" ({record['attack_view']})" if record.get("attack_view") else ""
            record = {**record, "model": f"{record['model']} + {record['defence']}",
                      "attack": record["attack"] + view, "attack_name": record["attack"]}
        shown.append(record)
    return shown


def defence_lines(records: Sequence[Record]) -> list[str]:
    """What the two views measure, once, when any record was evaluated behind a defence."""
    defences = list(dict.fromkeys(r["defence"] for r in records if r.get("defence")))
    if not defences:
        return []
    return [f"**Test-time defence: {', '.join(defences)}.** Clean accuracy is the defended model's. "
            "*non-adaptive*: the attack is crafted on the undefended model, the defended model classifies the result "
            "(the defence's own protocol). *adaptive*: the attack runs through the defence (BPDA through "
            "non-differentiable steps, EOT over its randomness, AutoAttack's rand version for a randomised defence); "
            "only this column bounds what an attacker who knows the defence achieves (docs/defences.md)."]


def attacked(records: Sequence[Record]) -> list[str]:
    """The attacks (or suites) the records were measured under, in order; "none" is clean-only."""
    return [name for name in _ordered(records, "attack") if name != "none"]


def threat_line(records: Sequence[Record]) -> str:
    """The threat model(s) behind a table, in words, so a number is never shown without it. A suite sets its
    own steps and step sizes, so for a suite its description stands in for them."""
    from tgazsr_cli.attacks import SUITE_HELP

    seen = []
    for record in records:
        if record["attack"] == "none":
            continue
        t = record["threat"]
        suite = record.get("attack_name", record["attack"])
        budget = (f"suite {SUITE_HELP[suite]}" if suite in SUITE_HELP else
                  f"{t['steps']} steps of {t['step_size']:g}/255, {t['restarts']} restart(s), "
                  f"random start {'on' if t['random_start'] else 'off'}")
        text = (f"{record['attack']}: L-inf eps {t['eps']:g}/255, {budget}, {t['precision']} attack, "
                f"seed {t.get('seed', 0)}, eval batch {record['batch_size']}{scoring_words(record)}")
        if text not in seen:
            seen.append(text)
    return "Threat model — " + ("; ".join(seen) if seen else "none (clean evaluation only)")


def scoring_words(record: Record) -> str:
    """What a record's scoring departs from the defaults in, and the protocol it was read under, in words."""
    words = []
    if record["threat"].get("loss_reduction") == "mean":
        words.append("batch-mean attack loss")
    if record.get("robust_counting") == "all":
        words.append("robust counted over all images")
    if record.get("protocol"):
        scoring = (record.get("extra") or {}).get("protocol_scoring")
        words.append(f"protocol {record['protocol']}" + (" (as published)" if scoring == "as-published" else ""))
    return "".join(f", {word}" for word in words)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def harmonic_mean(clean: float, robust: float) -> float:
    """2cr/(c+r): high only when both are high (0 when either is 0)."""
    return 0.0 if clean + robust == 0 else 2 * clean * robust / (clean + robust)


@dataclass(frozen=True)
class TableRow:
    model: str
    attack: str  # "clean" for the clean-accuracy table
    cells: list[float | None]  # one per dataset, None where not measured
    average: float | None


def paper_table(records: Sequence[Record], attack: str | None) -> tuple[list[str], list[TableRow]]:
    """(datasets, rows): robust accuracy under `attack`, or clean accuracy when `attack` is None."""
    datasets = _ordered(records, "dataset")
    rows = []
    for model in _ordered(records, "model"):
        values: dict[str, float] = {}
        for record in records:
            if record["model"] != model:
                continue
            if attack is None:
                values.setdefault(record["dataset"], record["clean_accuracy"])
            elif record["attack"] == attack:
                values[record["dataset"]] = record["robust_accuracy"]
        if not values:
            continue
        cells = [values.get(d) for d in datasets]
        rows.append(TableRow(model, attack or "clean", cells, _mean([v for v in cells if v is not None])))
    return datasets, rows


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown_table(records: Sequence[Record], attack: str | None, title: str) -> str:
    datasets, rows = paper_table(records, attack)
    lines = [f"**{title}**", "", "| model | " + " | ".join(datasets) + " | average |",
             "|---|" + "---:|" * (len(datasets) + 1)]
    lines += [f"| {row.model} | " + " | ".join(_fmt(v) for v in [*row.cells, row.average]) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class SummaryRow:
    model: str
    attack: str
    clean: float  # unweighted mean over datasets, as the paper's "Average"
    robust: float
    num_datasets: int
    clean_ece: float | None = None  # mean expected calibration error over the datasets (calibration.py), %
    robust_ece: float | None = None

    @property
    def harmonic(self) -> float:
        return harmonic_mean(self.clean, self.robust)

    @property
    def mean(self) -> float:
        return (self.clean + self.robust) / 2  # the reference README's "Average"


def summary(records: Sequence[Record]) -> list[SummaryRow]:
    """Per (model, attack): average clean and robust accuracy over the datasets both were measured on."""
    rows = []
    for model in _ordered(records, "model"):
        for attack in _ordered(records, "attack"):
            mine = [r for r in records if r["model"] == model and r["attack"] == attack]
            if mine:
                eces = [(r["clean_ece"], r["robust_ece"]) for r in mine if r.get("clean_ece") is not None]
                rows.append(SummaryRow(model, attack, sum(r["clean_accuracy"] for r in mine) / len(mine),
                                       sum(r["robust_accuracy"] for r in mine) / len(mine), len(mine),
                                       _mean([c for c, _ in eces]), _mean([r for _, r in eces])))
    return rows


def averages(records: Sequence[Record]) -> dict[str, tuple[float, float]]:
    """Per model: (mean clean, mean robust accuracy) under the first attack measured, unweighted as in the paper."""
    first = (attacked(records) or ["none"])[0]
    return {row.model: (row.clean, row.robust) for row in summary(records) if row.attack == first}


def summary_table(records: Sequence[Record]) -> str:
    lines = ["**Summary (averages over datasets, %)**", "",
             "| model | attack | clean | robust | harmonic mean | (clean+robust)/2 | datasets |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.model} | {r.attack} | {r.clean:.2f} | {r.robust:.2f} | {r.harmonic:.2f} | {r.mean:.2f} | "
              f"{r.num_datasets} |" for r in summary(records) if r.attack != "none"]
    if _ece_records(records):  # ECE columns at the end: clean and robust ECE, averaged over datasets
        lines[2:4] = [lines[2] + " clean ECE | robust ECE |", lines[3] + "---:|---:|"]
        ece_cells = [f" {_fmt(r.clean_ece)} | {_fmt(r.robust_ece)} |" for r in summary(records) if r.attack != "none"]
        lines[4:] = [line + cells for line, cells in zip(lines[4:], ece_cells, strict=True)]
    return "\n".join(lines)


def _ece_records(records: Sequence[Record]) -> list[Record]:
    """The records that carry a calibration error, with their clean and robust ECE in the accuracy keys, so the
    paper-layout tables show ECE (records written before calibration was measured are left out)."""
    return [{**r, "clean_accuracy": r["clean_ece"], "robust_accuracy": r["robust_ece"]}
            for r in records if r.get("clean_ece") is not None]


def ece_tables(records: Sequence[Record], attacks: Sequence[str]) -> list[str]:
    """Markdown: clean ECE and robust ECE under each attack, in the paper layout; none without calibration."""
    with_ece = _ece_records(records)
    if not with_ece:
        return []
    return [markdown_table(with_ece, None, "Clean expected calibration error (%, 15 bins; lower is better)"),
            *(markdown_table(with_ece, name, f"Robust expected calibration error (%) — {name}") for name in attacks)]


def _with_ece_columns(text: str, records: Sequence[Record]) -> str:
    """The CSV `text` with ECE columns appended: `ece_<dataset>` per dataset and `ece_average`, the clean ECE
    on clean rows and the robust ECE under the row's attack on robust rows (unchanged without calibration)."""
    with_ece = _ece_records(records)
    if not with_ece:
        return text
    datasets = _ordered(records, "dataset")
    cells: dict[tuple[str, str], dict[str, float | None]] = {}
    for attack in [None, *attacked(with_ece)]:
        names, rows = paper_table(with_ece, attack)
        for row in rows:
            cells[(row.model, attack or "clean")] = {**dict(zip(names, row.cells, strict=True)), "": row.average}
    lines = list(csv.reader(io.StringIO(text)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*lines[0], *(f"ece_{d}" for d in datasets), "ece_average"])
    for line in lines[1:]:
        found = cells.get((line[0], "clean" if line[1] == "clean" else line[2]), {})
        writer.writerow([*line, *(_csv(found.get(d)) for d in [*datasets, ""])])
    return out.getvalue()


def warning_lines(records: Sequence[Record]) -> list[str]:
    """Sanity-check warnings, once per (model, dataset, text)."""
    seen: list[str] = []
    for record in records:
        for warning in record.get("warnings") or []:
            line = f"{record['model']} on {record['dataset']}: {warning}"
            if line not in seen:
                seen.append(line)
    return seen


def skipped_lines(records: Sequence[Record]) -> list[str]:
    """Images that could not be decoded and were left out, once per (model, dataset)."""
    counts = {(r["model"], r["dataset"]): r.get("skipped_images", 0) for r in records}
    return [f"{model} on {dataset}: {n} undecodable image(s) skipped" for (model, dataset), n in counts.items() if n]


def markdown_report(records: Sequence[Record], partial: str | None = None) -> str:
    """Robust tables (one per attack), the clean table, the summary, the threat model and any warnings; a
    `partial` report (an interrupted run) says so first."""
    if partial:
        return f"**Partial results: {partial}; only the datasets finished are below.**\n\n" + markdown_report(records)
    records = with_views(records)
    counts = ", ".join(f"{d} n={n}" for d, n in {r["dataset"]: r["num_examples"] for r in records}.items())
    clean = markdown_table(records, None, "Clean accuracy (%)")
    names = attacked(records)
    skipped = skipped_lines(records)
    skipped_part = ["**Skipped images**\n\n" + "\n".join(f"- {line}" for line in skipped)] if skipped else []
    if not names:
        return "\n\n".join([clean, *ece_tables(records, []), f"No attack (clean evaluation only). Examples: {counts}.",
                            *skipped_part]) + "\n"
    parts = [markdown_table(records, name, f"Robust accuracy (%) — {name}") for name in names]
    parts += [clean, *ece_tables(records, names), summary_table(records),
              threat_line(records) + f". Examples: {counts}."]
    warnings = warning_lines(records)
    parts += defence_lines(records)
    if warnings:
        parts.append("**Warnings (sanity checks)**\n\n" + "\n".join(f"- {w}" for w in warnings))
    return "\n\n".join([*parts, *skipped_part]) + "\n"


def csv_report(records: Sequence[Record]) -> str:
    """The paper layout as CSV: one row per (model, metric), datasets as columns, then the average, and for
    robust rows the harmonic mean of the model's average clean and robust accuracy."""
    records = with_views(records)
    names = attacked(records)
    datasets, clean_rows = paper_table(records, None)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "metric", "attack", *datasets, "average", "harmonic_mean"])
    clean_average = {row.model: row.average for row in clean_rows}
    for row in clean_rows:
        writer.writerow([row.model, "clean", "", *(_csv(v) for v in row.cells), _csv(row.average), ""])
    for name in names:
        for row in paper_table(records, name)[1]:
            base = clean_average.get(row.model)
            harmonic = harmonic_mean(base, row.average) if base is not None and row.average is not None else None
            writer.writerow([row.model, "robust", name, *(_csv(v) for v in row.cells), _csv(row.average),
                             _csv(harmonic)])
    return _with_ece_columns(out.getvalue(), records)


def _csv(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def tradeoff_points(records: Sequence[Record]) -> list[tuple[str, str, float, float]]:
    """(model, attack, average clean, average robust): what the trade-off plot draws, one point each."""
    return [(r.model, r.attack, r.clean, r.robust) for r in summary(records) if r.attack != "none"]


def _subtitle_lines(text: str, width: int = 78) -> list[str]:
    """The threat line as lines of at most `width` characters, broken only between its phrases: one attack a
    line, each wrapped at its commas (never inside "eval batch 256")."""
    lines: list[str] = []
    for attack in text.split("; "):
        line = ""
        for phrase in attack.split(", "):
            candidate = f"{line}, {phrase}" if line else phrase
            if line and len(candidate) > width:
                lines.append(line + ",")
                line = "    " + phrase
            else:
                line = candidate
        lines.append(line)
    return lines


def _label_points(axis: Any, points: list[tuple[str, str, float, float]]) -> None:
    """One name per model, beside its first point, on the side that keeps it inside the axes."""
    (x0, x1), (y0, y1) = axis.get_xlim(), axis.get_ylim()
    for model in dict.fromkeys(point[0] for point in points):
        _, _, clean, robust = next(point for point in points if point[0] == model)
        right = clean > (x0 + x1) / 2  # right half: the text goes to the left of the point
        top = robust > y0 + 0.85 * (y1 - y0)
        axis.annotate(model, (clean, robust), textcoords="offset points", xytext=(-7 if right else 7, -9 if top else 6),
                      ha="right" if right else "left", va="top" if top else "bottom", fontsize=8)


def tradeoff_plot(records: Sequence[Record], path: Path, title: str = "") -> Path:
    """Robust vs clean average accuracy: one colour per model, one marker per attack (the paper's figure)."""
    records = with_views(records)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = tradeoff_points(records) or [(r.model, "none", r.clean, r.robust) for r in summary(records)]
    models = list(dict.fromkeys(point[0] for point in points))
    attacks = list(dict.fromkeys(point[1] for point in points))
    subtitle = _subtitle_lines(title or threat_line(records).replace("Threat model — ", ""))
    fig, axis = plt.subplots(figsize=(5.5, 4.4 + 0.16 * len(subtitle)))
    for model, attack, clean, robust in points:
        colour = SERIES_COLOURS[models.index(model) % len(SERIES_COLOURS)]
        marker = ATTACK_MARKERS[attacks.index(attack) % len(ATTACK_MARKERS)]
        label = model if len(attacks) == 1 else f"{model} / {attack}"
        axis.scatter(clean, robust, s=60, color=colour, marker=marker, label=label)
    axis.margins(0.15)  # room for the names beside points at the edges
    _label_points(axis, points)
    axis.set_xlabel("clean accuracy, average over datasets (%)")
    axis.set_ylabel("robust accuracy, average over datasets (%)")
    fig.suptitle("Robust vs clean accuracy", fontsize=11)
    axis.set_title("\n".join(subtitle), fontsize=7.5, loc="left")
    return save_figure(fig, axis, path)


def save_figure(fig: Any, axis: Any, path: Path, legend: bool = True) -> Path:
    """Grid, legend, tight layout, PNG at 120 dpi; the figure is closed."""
    import matplotlib.pyplot as plt

    axis.grid(alpha=0.3)
    if legend:
        axis.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(records: Sequence[Record], folder: Path, partial: str | None = None) -> list[Path]:
    """results.json (flat records), results.md, results.csv, tradeoff.png and the sub-folder clip_benchmark/ of
    CLIP_benchmark result JSONs (evaluation/clip_benchmark.py; listed as the folder) in `folder`.

    `partial` (e.g. "interrupted after 2 of 5 datasets") marks the results of an interrupted run: a first line in
    results.md and a "partial" key in every record; no plot, whose averages would pass for the whole run's, and no
    CLIP_benchmark files, whose form has no place for the mark (a `build` over them would pass for a whole run).
    """
    import json

    from tgazsr_cli.evaluation.clip_benchmark import FOLDER, write_clip_benchmark

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "results.json", folder / "results.md", folder / "results.csv"]
    rows = [{**record, "partial": partial} for record in records] if partial else list(records)
    written[0].write_text(json.dumps(rows, indent=2))
    written[1].write_text(markdown_report(records, partial))
    written[2].write_text(csv_report(records))
    if not partial:
        written.append(tradeoff_plot(records, folder / "tradeoff.png"))
        write_clip_benchmark(records, folder / FOLDER)
        written.append(folder / FOLDER)
    return written
