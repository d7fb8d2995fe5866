"""Reports: the paper's table layout with averages and the threat model, and the trade-off plot."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tgazsr_cli.evaluation.report import averages, markdown_report, tradeoff_plot

THREAT = {"eps": 1.0, "steps": 100, "step_size": 1.0, "restarts": 1, "random_start": True, "precision": "fp32"}


def record(model: str, dataset: str, clean: float, robust: float) -> dict:
    return {"model": model, "dataset": dataset, "clean_accuracy": clean, "robust_accuracy": robust,
            "attack": "pgd", "threat": THREAT, "batch_size": 256, "num_examples": 100}


RECORDS = [record("clip", "a", 80, 2), record("clip", "b", 60, 4), record("tga", "a", 70, 40),
           record("tga", "b", 50, 30)]


def test_markdown_has_datasets_as_columns_models_as_rows_and_averages() -> None:
    text = markdown_report(RECORDS)
    assert "| model | a | b | average |" in text
    assert "| clip | 2.00 | 4.00 | 3.00 |" in text  # robust table comes first
    assert "| tga | 70.00 | 50.00 | 60.00 |" in text  # clean table
    assert "eps 1/255, 100 steps of 1/255" in text and "eval batch 256" in text


def test_missing_cells_are_marked_and_excluded_from_the_average() -> None:
    text = markdown_report([*RECORDS, record("fare", "a", 90, 10)])
    assert "| fare | 10.00 | – | 10.00 |" in text


def test_tradeoff_plot_is_a_png_with_one_point_per_model(tmp_path: Path) -> None:
    assert averages(RECORDS) == {"clip": (70.0, 3.0), "tga": (60.0, 35.0)}
    path = tradeoff_plot(RECORDS, tmp_path / "plot.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] == 660 and image.size[1] >= 528
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 10  # something was drawn, not a blank canvas
    import matplotlib.pyplot as plt

    assert not plt.get_fignums()  # figures are closed after saving


def test_plot_draws_one_colour_per_model_and_a_point_per_attack(tmp_path: Path) -> None:
    from matplotlib.colors import to_rgb

    from tgazsr_cli.evaluation.report import SERIES_COLOURS, tradeoff_points

    records = [{**record(model, d, 50 + i, 10 + i), "attack": attack}
               for i, model in enumerate(["clip", "tecoa", "tga"]) for d in ("a", "b") for attack in ("pgd", "cw")]
    assert len(tradeoff_points(records)) == 6
    path = tradeoff_plot(records, tmp_path / "plot.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] == 660 and image.size[1] >= 528
        present = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 20)}

    def drawn(name: str) -> bool:
        return tuple(round(255 * c) for c in to_rgb(name)) in present

    assert [drawn(c) for c in SERIES_COLOURS[:4]] == [True, True, True, False]  # three series, not four


def test_csv_and_summary_carry_averages_and_the_harmonic_mean() -> None:
    from tgazsr_cli.evaluation.report import csv_report, harmonic_mean, summary

    rows = {(r.model, r.attack): r for r in summary(RECORDS)}
    assert rows[("tga", "pgd")].clean == 60 and rows[("tga", "pgd")].robust == 35
    assert rows[("tga", "pgd")].harmonic == pytest.approx(2 * 60 * 35 / 95)
    assert harmonic_mean(80, 0) == 0
    lines = csv_report(RECORDS).splitlines()
    assert lines[0] == "model,metric,attack,a,b,average,harmonic_mean"
    assert lines[1] == "clip,clean,,80.0000,60.0000,70.0000,"
    assert lines[4] == f"tga,robust,pgd,40.0000,30.0000,35.0000,{2 * 60 * 35 / 95:.4f}"
    assert "| tga | pgd | 60.00 | 35.00 | 44.21 | 47.50 | 2 |" in markdown_report(RECORDS)


def test_plot_title_breaks_between_phrases_and_names_stay_inside_the_axes() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tgazsr_cli.evaluation.report import _label_points, _subtitle_lines, threat_line

    records = [*RECORDS, *({**r, "attack": "cw"} for r in RECORDS)]
    lines = _subtitle_lines(threat_line(records).replace("Threat model — ", ""))
    assert len(lines) == 4 and all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("pgd:") and lines[2].startswith("cw:")
    assert all(line.endswith(",") or line.endswith("eval batch 256") for line in lines)  # whole phrases only
    fig, axis = plt.subplots(figsize=(5.5, 4.4))
    points = [("a very long model name at the right edge", "pgd", 99.0, 50.0), ("top", "pgd", 10.0, 99.0)]
    axis.scatter([p[2] for p in points], [p[3] for p in points])
    axis.margins(0.15)
    _label_points(axis, points)
    fig.canvas.draw()
    box = axis.get_window_extent()
    for text in axis.texts:
        extent = text.get_window_extent()
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1
    plt.close(fig)
