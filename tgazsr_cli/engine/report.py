"""Result tables in the paper's layout: datasets as columns, models as rows, plus the average."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def threat_line(records: Sequence[dict[str, Any]]) -> str:
    """The threat model(s) behind a table, in words, so a number is never shown without it."""
    seen = []
    for record in records:
        t = record["threat"]
        text = (f"{record['attack']}: L-inf eps {t['eps']:g}/255, {t['steps']} steps of {t['step_size']:g}/255, "
                f"{t['restarts']} restart(s), random start {'on' if t['random_start'] else 'off'}, "
                f"{t['precision']} attack, eval batch {record['batch_size']}")
        if text not in seen:
            seen.append(text)
    return "Threat model — " + "; ".join(seen)


def _pivot(records: Sequence[dict[str, Any]], key: str) -> tuple[list[str], list[str], dict[tuple[str, str], float]]:
    models: list[str] = []
    datasets: list[str] = []
    values: dict[tuple[str, str], float] = {}
    for record in records:
        if record["model"] not in models:
            models.append(record["model"])
        if record["dataset"] not in datasets:
            datasets.append(record["dataset"])
        values[(record["model"], record["dataset"])] = record[key]
    return models, datasets, values


def markdown_table(records: Sequence[dict[str, Any]], key: str, title: str) -> str:
    models, datasets, values = _pivot(records, key)
    lines = [f"**{title}**", "", "| model | " + " | ".join(datasets) + " | average |",
             "|---|" + "---:|" * (len(datasets) + 1)]
    for model in models:
        row = [values.get((model, d)) for d in datasets]
        present = [v for v in row if v is not None]
        average = sum(present) / len(present) if present else None
        cells = ["–" if v is None else f"{v:.2f}" for v in [*row, average]]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(records: Sequence[dict[str, Any]]) -> str:
    """Robust and clean accuracy tables (%), with the threat model and example counts."""
    counts = ", ".join(sorted({f"{r['dataset']} n={r['num_examples']}" for r in records}))
    clean = markdown_table(records, "clean_accuracy", "Clean accuracy (%)")
    if all(r["attack"] == "none" for r in records):
        return clean + f"\n\nNo attack (clean evaluation only). Examples: {counts}.\n"
    return "\n\n".join([
        markdown_table(records, "robust_accuracy", "Robust accuracy (%)"),
        clean,
        threat_line(records) + f". Examples: {counts}.",
    ]) + "\n"


def averages(records: Sequence[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per model: (mean clean accuracy, mean robust accuracy) over its datasets, unweighted as in the paper."""
    sums: dict[str, list[float]] = {}
    for record in records:
        entry = sums.setdefault(record["model"], [0.0, 0.0, 0.0])
        entry[0] += record["clean_accuracy"]
        entry[1] += record["robust_accuracy"]
        entry[2] += 1
    return {model: (clean / n, robust / n) for model, (clean, robust, n) in sums.items()}


def tradeoff_plot(records: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Robust vs clean average accuracy, one labelled point per model (the paper's trade-off figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = averages(records)
    fig, axis = plt.subplots(figsize=(5.5, 4.2))
    for model, (clean, robust) in points.items():
        axis.scatter(clean, robust, s=60, label=model)
        axis.annotate(model, (clean, robust), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axis.set_xlabel("clean accuracy, average over datasets (%)")
    axis.set_ylabel("robust accuracy, average over datasets (%)")
    axis.set_title(title or threat_line(records).replace("Threat model — ", ""), fontsize=7)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
