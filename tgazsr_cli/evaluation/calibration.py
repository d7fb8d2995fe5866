"""Expected calibration error (ECE) and reliability diagrams, from exact per-bin sums.

Confidence is the largest softmax probability of the model's zero-shot logits (computed in float64). The
confidences fall into 15 equal-width bins (0, 1/15], (1/15, 2/15], ..., (14/15, 1] (a confidence of exactly 0,
which softmax never gives, goes to the first bin): the binning of Guo et al., "On Calibration of Modern Neural
Networks" (ICML 2017), which UCAT's paper reports. UCAT's released code (VivienLu/UCAT at e3bea1d) has no ECE
function of its own: `main.py:324-326` only computes the predictive entropy. Then

    ECE = sum_b |B_b| / n * |acc(B_b) - conf(B_b)|,   in %, like the accuracies.

Each evaluation keeps, per bin, the number of predictions, the summed confidence and the number correct. The
summed confidence is kept as an integer number of 2^-32 units (each confidence rounded to the nearest unit, an
error below 1.2e-10), so the sums are exact: they do not depend on the batch size or on the order of the
batches, and torchrun's ranks sum them exactly as they sum the other counts. Records carry them as floats
(`confidence_sum`, exact since every unit count is below 2^53).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NUM_BINS = 15
UNITS = 2**32  # confidence units per 1.0 in the exact sums

Record = dict[str, Any]


def _zeros() -> list[int]:
    return [0] * NUM_BINS


@dataclass
class CalibrationBins:
    """Exact per-bin sums of one set of predictions: counts, summed confidence (in 1/UNITS), number correct."""

    count: list[int] = field(default_factory=_zeros)
    confidence_units: list[int] = field(default_factory=_zeros)
    correct: list[int] = field(default_factory=_zeros)

    def add(self, logits: Any, correct: Any) -> None:
        """Add a batch: `logits` (N x classes) and the boolean mask of the predictions that count as correct."""
        import torch

        if len(logits) == 0:
            return
        confidence = torch.softmax(logits.detach().double(), dim=1).amax(dim=1).cpu()
        index = bin_index(confidence)
        units = torch.round(confidence * UNITS).long()
        hits = correct.detach().cpu().long()
        for name, values in (("count", torch.ones_like(index)), ("confidence_units", units), ("correct", hits)):
            sums = torch.zeros(NUM_BINS, dtype=torch.int64).index_add_(0, index, values)
            setattr(self, name, [a + int(b) for a, b in zip(getattr(self, name), sums.tolist(), strict=True)])

    def to_dict(self) -> dict[str, list]:
        return {"count": list(self.count), "confidence_sum": [u / UNITS for u in self.confidence_units],
                "correct": list(self.correct)}

    @classmethod
    def from_dict(cls, bins: dict[str, list]) -> CalibrationBins:
        return cls(list(bins["count"]), [round(s * UNITS) for s in bins["confidence_sum"]], list(bins["correct"]))

    def as_ints(self) -> list[int]:
        return [*self.count, *self.confidence_units, *self.correct]

    @classmethod
    def from_ints(cls, values: list[int]) -> CalibrationBins:
        n = NUM_BINS
        return cls(list(values[:n]), list(values[n:2 * n]), list(values[2 * n:3 * n]))


def bin_edges() -> Any:
    """The 16 edges 0, 1/15, ..., 1 (float64), as numpy's and torch's linspace give them."""
    import torch

    return torch.linspace(0, 1, NUM_BINS + 1, dtype=torch.float64)


def bin_index(confidence: Any) -> Any:
    """The bin of each confidence: b with edge[b] < c <= edge[b + 1] (c = 0 in bin 0, c > 1 in the last)."""
    import torch

    return torch.bucketize(confidence.double(), bin_edges()[1:-1], right=False)


def ece(bins: dict[str, list] | None) -> float | None:
    """ECE in % from a record's bins ({count, confidence_sum, correct}); None without bins or predictions."""
    if not bins or not sum(bins["count"]):
        return None
    total = sum(bins["count"])
    gap = sum(abs(hit - conf) for n, conf, hit in zip(bins["count"], bins["confidence_sum"], bins["correct"],
                                                      strict=True) if n)
    return 100.0 * gap / total  # sum_b |B_b|/n * |acc_b - conf_b| = sum_b |correct_b - confsum_b| / n


def merged(many: list[dict[str, list]]) -> dict[str, list]:
    """The bins of several evaluations pooled (e.g. one model's datasets): sums per bin."""
    total = CalibrationBins()
    for bins in many:
        part = CalibrationBins.from_dict(bins)
        total = CalibrationBins.from_ints([a + b for a, b in zip(total.as_ints(), part.as_ints(), strict=True)])
    return total.to_dict()


def all_reduce_bins(bins: dict[str, list]) -> dict[str, list]:
    """A record's bins summed exactly over torchrun's ranks (the identity without a process group)."""
    from tgazsr_cli.runtime import distributed as dist

    if not bins:
        return bins
    return CalibrationBins.from_ints(dist.all_reduce_sum(CalibrationBins.from_dict(bins).as_ints())).to_dict()


# -- the reliability diagram --------------------------------------------------------------------------------
def plot_name(model: str) -> str:
    """reliability-<model>.png, with anything but letters, digits, '.', '_' and '-' replaced by '_'."""
    return "reliability-" + re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") + ".png"


def reliability_series(records: list[Record], model: str) -> list[tuple[str, dict[str, list]]]:
    """(label, pooled bins) of one model: clean over all its datasets, then each attack's adversarial bins."""
    mine = [r for r in records if r["model"] == model and r.get("clean_bins")]
    if not mine:
        return []
    by_dataset = {r["dataset"]: r["clean_bins"] for r in mine}  # one clean set per dataset, whatever the attacks
    series = [("clean", merged(list(by_dataset.values())))]
    for attack in dict.fromkeys(r["attack"] for r in mine if r["attack"] != "none"):
        series.append((attack, merged([r["robust_bins"] for r in mine if r["attack"] == attack])))
    return series


def reliability_plot(records: list[Record], model: str, path: Path) -> Path:
    """Accuracy vs confidence per bin (clean and under each attack, pooled over the model's datasets), the
    diagonal of perfect calibration, the ECE of each series, and below it the number of predictions per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tgazsr_cli.evaluation.report import SERIES_COLOURS, save_figure

    series = reliability_series(records, model)
    fig, (axis, counts) = plt.subplots(2, 1, figsize=(5.5, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    axis.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration")
    width = 1 / NUM_BINS / max(1, len(series))
    for k, (label, bins) in enumerate(series):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        filled = [(s / n, c / n, b) for b, (n, s, c) in
                  enumerate(zip(bins["count"], bins["confidence_sum"], bins["correct"], strict=True)) if n]
        axis.plot([f[0] for f in filled], [f[1] for f in filled], marker="o", color=colour,
                  label=f"{label} (ECE {ece(bins):.2f}%)")
        left = [b / NUM_BINS + k * width for b in range(NUM_BINS)]
        counts.bar(left, bins["count"], width=width, align="edge", color=colour, label=label)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_ylabel("accuracy in bin")
    axis.set_title(f"{model}: reliability ({NUM_BINS} bins, pooled over datasets)", fontsize=10)
    counts.set_xlabel("confidence (max softmax probability)")
    counts.set_ylabel("predictions")
    counts.grid(alpha=0.3)
    return save_figure(fig, axis, path)


def reliability_plots(records: list[Record], folder: Path) -> list[Path]:
    """One reliability diagram per model with calibration bins, in `folder`."""
    models = dict.fromkeys(r["model"] for r in records if r.get("clean_bins"))
    return [reliability_plot(records, model, folder / plot_name(model)) for model in models]
