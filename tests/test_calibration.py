"""Expected calibration error: the 15-bin ECE against a hand computation, exact per-bin sums that do not depend on
the batch size or the sharding, and the ECE in results.json/csv/md and the reliability diagram of `eval --plots`."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.test_evaluation import Float64Classifier, make_data
from tgazsr_cli.attacks import ThreatModel
from tgazsr_cli.cli.app import main
from tgazsr_cli.evaluation.calibration import NUM_BINS, CalibrationBins, bin_edges, bin_index, ece, merged
from tgazsr_cli.evaluation.robust_accuracy import evaluate_attacks


def test_bins_are_left_open_right_closed_fifteenths() -> None:
    edges = bin_edges()
    assert len(edges) == NUM_BINS + 1 == 16
    assert bin_index(edges[1:]).tolist() == list(range(15))  # an upper edge belongs to its bin: (lo, hi]
    assert bin_index(edges[:-1] + 1e-12).tolist() == list(range(15))  # just above a lower edge: the same bin
    assert bin_index(torch.tensor([0.0, 1e-9, 0.5, 0.62, 0.95, 1.0])).tolist() == [0, 0, 7, 9, 14, 14]


def test_ece_matches_a_hand_computation() -> None:
    # max probabilities 0.95 (right), 0.95 (wrong), 0.5 (right), 0.62 (wrong), over 3 classes; label 0 throughout
    probabilities = torch.tensor([[0.95, 0.03, 0.02], [0.03, 0.95, 0.02], [0.5, 0.3, 0.2], [0.2, 0.62, 0.18]],
                                 dtype=torch.float64)
    logits = probabilities.log()
    correct = logits.argmax(dim=1) == torch.zeros(4, dtype=torch.long)
    bins = CalibrationBins()
    bins.add(logits, correct)
    record = bins.to_dict()
    assert (record["count"][14], record["count"][7], record["count"][9], sum(record["count"])) == (2, 1, 1, 4)
    assert record["correct"][14] == 1 and record["correct"][7] == 1 and record["correct"][9] == 0
    assert record["confidence_sum"][14] == pytest.approx(1.9, abs=1e-9)
    # bin 14: |1 - 1.9|, bin 7: |1 - 0.5|, bin 9: |0 - 0.62|; ECE = sum / n = 2.02 / 4
    assert ece(record) == pytest.approx(100 * (0.9 + 0.5 + 0.62) / 4, abs=1e-7)
    assert ece(CalibrationBins().to_dict()) is None and ece({}) is None
    perfect = CalibrationBins()
    perfect.add(torch.tensor([[0.0, 0.0]]), torch.tensor([True]))  # confidence 0.5, right once: |1 - 0.5|
    assert ece(perfect.to_dict()) == pytest.approx(50.0)


def test_per_bin_sums_do_not_depend_on_the_batch_size_or_the_shards(tiny_model) -> None:
    # float64, where batched kernels give the same per-row logits at any batch size (in fp32 they move a
    # confidence by ~1e-6, which the exact sums then faithfully show): the bins are then identical
    model = Float64Classifier(copy.deepcopy(tiny_model)).eval()
    data = make_data(model, n=10, dtype=torch.float64)
    threat = ThreatModel(eps=2.0, steps=3, step_size=1.0)
    runs = {}
    for size in (3, 16):
        records = evaluate_attacks(model, data, model_label="tiny", attacks=["pgd", "paper-pgd"], threat=threat,
                                   batch_size=size, num_workers=0, sanity=False)
        runs[size] = {r.attack: r.to_dict() for r in records}
    for attack in ("pgd", "paper-pgd"):
        small, large = runs[3][attack], runs[16][attack]
        for key in ("clean_bins", "robust_bins"):
            assert small[key] == large[key]
        assert small["clean_ece"] == large["clean_ece"] and small["robust_ece"] == large["robust_ece"]
        # the sets: every example once; the adversarial bins score exactly the predictions robust accuracy counts
        assert sum(small["clean_bins"]["count"]) == sum(small["robust_bins"]["count"]) == small["num_examples"] == 10
        assert sum(small["clean_bins"]["correct"]) == small["clean_correct"]
        assert sum(small["robust_bins"]["correct"]) == small["robust_correct"]
    # two shards, summed per bin as torchrun's ranks do, give the whole evaluation's bins
    halves = [evaluate_attacks(model, data, model_label="tiny", attacks=["pgd"], threat=threat, batch_size=16,
                               num_workers=0, sanity=False, indices=part)[0] for part in (range(5), range(5, 10))]
    for key in ("clean_bins", "robust_bins"):
        assert merged([getattr(half, key) for half in halves]) == runs[16]["pgd"][key]


def test_a_clean_only_record_has_equal_clean_and_robust_ece(tiny_model) -> None:
    data = make_data(tiny_model, n=6)
    record = evaluate_attacks(tiny_model, data, model_label="tiny", threat=ThreatModel(eps=0), batch_size=4,
                              num_workers=0, sanity=False)[0].to_dict()
    assert record["attack"] == "none" and record["clean_ece"] == record["robust_ece"] is not None


EVAL = ["eval", "--model", "tgazsr-mini", "--pretrained", "tgazsr:mini-clip", "--datasets", "digits", "--limit", "12",
        "--attack", "pgd", "--eps", "2", "--steps", "2", "--step-size", "1", "--batch-size", "8", "--workers", "0",
        "--no-sanity", "--device", "cpu"]


def test_eval_writes_ece_to_json_csv_md_and_a_reliability_diagram(tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main([*EVAL, "-o", str(out), "--plots"]) == 0
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 1
    record = records[0]
    for key in ("clean_bins", "robust_bins"):
        assert set(record[key]) == {"count", "confidence_sum", "correct"} and len(record[key]["count"]) == 15
    assert 0 <= record["clean_ece"] <= 100 and 0 <= record["robust_ece"] <= 100
    assert record["clean_ece"] == pytest.approx(ece(record["clean_bins"]))
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert [(r["metric"], r["attack"]) for r in rows] == [("clean", ""), ("robust", "pgd")]
    assert float(rows[0]["ece_digits"]) == pytest.approx(record["clean_ece"], abs=1e-4)
    assert float(rows[1]["ece_average"]) == pytest.approx(record["robust_ece"], abs=1e-4)
    text = (out / "results.md").read_text()
    assert "Clean expected calibration error (%, 15 bins; lower is better)" in text
    assert "Robust expected calibration error (%) — pgd" in text and "clean ECE | robust ECE |" in text
    assert f"{record['robust_ece']:.2f}" in text
    plots = sorted(out.glob("reliability-*.png"))
    assert [p.name for p in plots] == ["reliability-tgazsr-mini_tgazsr_mini-clip.png"]  # the model label, made safe
    assert plots[0].stat().st_size > 10_000
    with Image.open(plots[0]) as image:
        assert image.size[0] > 400 and image.size[1] > 400
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50  # lines, markers, bars and text, not a blank canvas
    assert not math.isnan(record["robust_ece"])


def test_plots_need_an_output_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*EVAL, "--plots"]) == 2
    assert "--output" in capsys.readouterr().err
