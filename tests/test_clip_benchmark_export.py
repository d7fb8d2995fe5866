"""acc5 and mean per-class recall in the records, robust counting "all", and the records as CLIP_benchmark result
files that the real `clip_benchmark build` merges into one table."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.test_evaluation import TensorDataset
from tgazsr_cli.attacks import ThreatModel
from tgazsr_cli.cli.app import main
from tgazsr_cli.data import ImageClassificationData
from tgazsr_cli.errors import UsageError
from tgazsr_cli.evaluation.clip_benchmark import clip_benchmark_results, per_class_recall, write_clip_benchmark
from tgazsr_cli.evaluation.robust_accuracy import evaluate_attacks

EVAL = ["eval", "--model", "tgazsr-mini", "--pretrained", "tgazsr:mini-clip", "--datasets", "digits", "--limit", "12",
        "--eps", "2", "--steps", "2", "--step-size", "1", "--batch-size", "8", "--workers", "0", "--no-sanity",
        "--device", "cpu"]


class Rows(nn.Module):
    """Returns its input's first `classes` values as the logits: a batch whose numbers are known by hand."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1))

    def set_classes(self, classnames: list[str], templates: list[str]) -> None:
        pass

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)[:, :self.classes]


def ranked(label: int, rank: int, classes: int) -> torch.Tensor:
    """Logits where `label` comes `rank`-th (0: the prediction), the other classes in index order."""
    order = [c for c in range(classes) if c != label]
    order.insert(rank, label)
    logits = torch.zeros(classes)
    for position, c in enumerate(order):
        logits[c] = float(classes - position)
    return logits


def data_of(images: torch.Tensor, labels: list[int], classes: int) -> ImageClassificationData:
    return ImageClassificationData(TensorDataset(images, torch.tensor(labels)), [f"c{i}" for i in range(classes)],
                                   ["{}"], "hand", "test", "in-memory")


def test_acc5_and_mean_per_class_recall_of_a_hand_made_batch() -> None:
    labels, ranks = [0, 0, 1, 1, 2, 3, 3, 5], [0, 2, 0, 5, 0, 1, 4, 0]  # class 4 absent; example 3 misses top-5
    logits = torch.stack([ranked(y, r, 6) for y, r in zip(labels, ranks, strict=True)])
    images = torch.cat([logits, torch.zeros(8, 3 * 2 * 2 - 6)], dim=1).view(8, 3, 2, 2)
    record = evaluate_attacks(Rows(6), data_of(images, labels, 6), model_label="rows", threat=ThreatModel(eps=0),
                              batch_size=3, num_workers=0, sanity=False, protocol="p", pretrained="w")[0].to_dict()
    assert (record["clean_correct"], record["clean_top5_correct"]) == (4, 7)
    assert record["class_counts"] == [2, 2, 1, 2, 0, 1]
    assert record["clean_per_class"] == record["robust_per_class"] == [1, 1, 1, 0, 0, 1]
    assert record["clean_acc5"] == record["robust_acc5"] == 87.5
    # recall per class present: 1/2, 1/2, 1, 0, 1 (class 4 has no example and is left out, as sklearn does)
    assert record["clean_mean_per_class_recall"] == pytest.approx(60.0, abs=1e-12)
    assert (record["protocol"], record["pretrained"], record["arch"]) == ("p", "w", None)
    sklearn = pytest.importorskip("sklearn.metrics")
    predictions = logits.argmax(dim=1).tolist()
    assert per_class_recall(record["clean_per_class"], record["class_counts"]) == \
        pytest.approx(sklearn.balanced_accuracy_score(labels, predictions), abs=1e-12)


def test_top5_is_every_class_below_five_classes() -> None:
    labels = [0, 1, 2]
    logits = torch.stack([ranked(y, 2, 3) for y in labels])  # every label last of 3
    images = torch.cat([logits, torch.zeros(3, 9)], dim=1).view(3, 3, 2, 2)
    record = evaluate_attacks(Rows(3), data_of(images, labels, 3), model_label="rows", threat=ThreatModel(eps=0),
                              batch_size=4, num_workers=0, sanity=False)[0].to_dict()
    assert (record["clean_correct"], record["clean_top5_correct"], record["clean_acc5"]) == (0, 3, 100.0)
    assert math.isnan(clip_benchmark_results([record])[0][1]["metrics"]["acc5"])  # CLIP_benchmark: NaN there


class Misleading(nn.Module):
    """Two classes by the mean pixel s: class 0 when s > 0.5. Its gradient is that of the opposite classifier,
    so PGD, ascending the loss of the true class, pushes a misclassified class-0 image over to class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1))

    def set_classes(self, classnames: list[str], templates: list[str]) -> None:
        pass

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = 50 * (images.mean(dim=(1, 2, 3)) - 0.5)
        shown, followed = torch.stack([h, -h], dim=1), torch.stack([-h, h], dim=1)
        return followed + (shown - followed).detach()


def test_robust_counting_all_counts_a_misclassified_point_the_attack_makes_correct() -> None:
    levels, labels = [0.49, 0.49, 0.45], [0, 1, 0]  # wrong (flipped by the attack), right, wrong (stays wrong)
    images = torch.stack([torch.full((3, 4, 4), level) for level in levels])
    threat = ThreatModel(eps=8.0, steps=5, step_size=2.0, random_start=False)
    runs = {counting: evaluate_attacks(Misleading(), data_of(images, labels, 2), model_label="m",
                                       attacks=["pgd", "paper-pgd"], threat=threat, batch_size=2, num_workers=0,
                                       sanity=False, robust_counting=counting)
            for counting in ("clean-and-robust", "all")}
    records = {counting: run[0].to_dict() for counting, run in runs.items()}
    assert [(r["clean_correct"], r["robust_correct"]) for r in records.values()] == [(1, 1), (1, 2)]
    assert records["all"]["robust_per_class"] == [1, 1] and records["all"]["robust_counting"] == "all"
    assert records["all"]["robust_accuracy"] > records["all"]["clean_accuracy"]  # possible only under "all"
    assert records["clean-and-robust"]["robust_per_class"] == [0, 1]
    suite = {counting: run[1].to_dict() for counting, run in runs.items()}  # paper-pgd: pgd, 100 steps of 1/255
    assert [(r["robust_correct"], r["extra"]["robust_after"]) for r in suite.values()] == [(1, {"pgd": 1}),
                                                                                          (2, {"pgd": 2})]


def test_robust_counting_is_checked() -> None:
    data = data_of(torch.zeros(2, 3, 2, 2), [0, 1], 2)
    with pytest.raises(UsageError, match="robust counting"):
        evaluate_attacks(Misleading(), data, model_label="m", robust_counting="some", num_workers=0)
    with pytest.raises(UsageError, match="test-time defence"):
        evaluate_attacks(Misleading(), data, model_label="m", robust_counting="all", defence="ttc", num_workers=0)


def record_of(dataset: str, attack: str = "pgd", **more: object) -> dict:
    return {"model": "tga", "arch": "ViT-B-32", "pretrained": "openai", "dataset": dataset, "attack": attack,
            "num_examples": 4, "clean_correct": 3, "robust_correct": 1, "clean_top5_correct": 4,
            "robust_top5_correct": 2, "class_counts": [1] * 4 + [0], "clean_per_class": [1, 1, 1, 0, 0],
            "robust_per_class": [1, 0, 0, 0, 0], "batch_size": 2, "extra": {},
            "threat": {"eps": 1.0, "steps": 10, "norm": "Linf"}, **more}


def test_dataset_names_file_names_and_keys(tmp_path: Path) -> None:
    records = [record_of("imagenet"), record_of("imagenet", "cw"), record_of("aircraft"),
               record_of("cifar10", extra={"clip_benchmark_name": "wds/vtab/cifar10"}), record_of("caltech256")]
    results = dict(clip_benchmark_results(records))
    tail = "openai_ViT-B-32_en_zeroshot_classification.json"  # CLIP_benchmark's {dataset}_{pretrained}_{model}_...
    assert sorted(results) == sorted([
        f"imagenet1k_{tail}", "adv_ViT-B-32_openai_imagenet1k_4_bs2_pgd_1_10.json",
        "adv_ViT-B-32_openai_imagenet1k_4_bs2_cw_1_10.json", f"fgvc_aircraft_{tail}",
        "adv_ViT-B-32_openai_fgvc_aircraft_4_bs2_pgd_1_10.json", f"vtab_cifar10_{tail}",
        "adv_ViT-B-32_openai_vtab_cifar10_4_bs2_pgd_1_10.json", f"caltech256_{tail}",
        "adv_ViT-B-32_openai_caltech256_4_bs2_pgd_1_10.json"])
    assert results[f"imagenet1k_{tail}"] == {
        "dataset": "imagenet1k", "model": "ViT-B-32", "pretrained": "openai", "task": "zeroshot_classification",
        "language": "en", "attack": "none", "metrics": {"acc1": 0.75, "acc5": 1.0, "mean_per_class_recall": 0.75}}
    robust = results["adv_ViT-B-32_openai_imagenet1k_4_bs2_pgd_1_10.json"]
    assert {k: robust[k] for k in ("attack", "eps", "iterations_adv", "norm")} == \
        {"attack": "pgd", "eps": 1.0, "iterations_adv": 10, "norm": "Linf"}
    assert robust["metrics"] == {"acc1": 0.25, "acc5": 0.5, "mean_per_class_recall": 0.25}
    assert results[f"vtab_cifar10_{tail}"]["dataset"] == "wds/vtab/cifar10"
    views = [record_of("dtd", defence="ttc", attack_view=view) for view in ("non-adaptive", "adaptive")]
    names = [name for name, _ in clip_benchmark_results(views)]
    assert names[1:] == ["adv_ViT-B-32_openai_dtd_4_bs2_pgd_non-adaptive_1_10.json",
                         "adv_ViT-B-32_openai_dtd_4_bs2_pgd_adaptive_1_10.json"]  # one file per view
    base_and_tuned = [record_of("dtd", model="ViT-B-32 (openai)"), record_of("dtd", model="tga-run")]
    assert [r["pretrained"] for _, r in clip_benchmark_results(base_and_tuned)][::2] == ["ViT-B-32 (openai)", "tga-run"]
    written = write_clip_benchmark(records, tmp_path / "cb")
    assert len(written) == 9 and json.loads(written[0].read_text())["task"] == "zeroshot_classification"


def build_table(folders: list[Path], tmp_path: Path) -> list[dict[str, str]]:
    """CLIP_benchmark's own `build` over the folders (it reads every .json in a folder), as rows."""
    table = tmp_path / "benchmark.csv"
    command = [sys.executable, "-m", "clip_benchmark.cli", "build", *map(str, folders), "--output", str(table)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    with table.open() as file:
        return list(csv.DictReader(file))


@pytest.mark.skipif(importlib.util.find_spec("clip_benchmark") is None,
                    reason="clip_benchmark is not installed (the test extra installs it)")
def test_clip_benchmark_build_tabulates_clean_and_pgd_results(tmp_path: Path) -> None:
    clean_out, pgd_out = tmp_path / "clean", tmp_path / "pgd"
    assert main([*EVAL, "--eps", "0", "-o", str(clean_out)]) == 0
    assert main([*EVAL, "--attack", "pgd", "-o", str(pgd_out)]) == 0
    clean_record = json.loads((clean_out / "results.json").read_text())[0]
    record = json.loads((pgd_out / "results.json").read_text())[0]
    assert clean_record["attack"] == "none" and record["attack"] == "pgd"
    assert clean_record["clean_per_class"] == record["clean_per_class"]  # the same clean predictions
    for r in (clean_record, record):
        assert sum(r["class_counts"]) == r["num_examples"] == 12 and len(r["class_counts"]) == 10
        assert sum(r["clean_per_class"]) == r["clean_correct"] and sum(r["robust_per_class"]) == r["robust_correct"]
        assert r["clean_correct"] <= r["clean_top5_correct"] and r["robust_correct"] <= r["robust_top5_correct"]
    adversarial, clean = sorted(p.name for p in (pgd_out / "clip_benchmark").iterdir())  # the weights' part varies
    assert adversarial.startswith("adv_tgazsr-mini_") and adversarial.endswith("_digits_12_bs8_pgd_2_2.json")
    assert clean.startswith("digits_") and clean.endswith("_tgazsr-mini_en_zeroshot_classification.json")
    rows = build_table([clean_out / "clip_benchmark", pgd_out / "clip_benchmark"], tmp_path)
    assert len(rows) == 3  # the clean file of each run and the pgd file
    pretrained = record["pretrained"] or record["model"]
    for row in rows:
        assert (row["dataset"], row["model"], row["pretrained"]) == ("digits", "tgazsr-mini", pretrained)
        assert row["model_fullname"] == f"tgazsr-mini {pretrained}" and row["task"] == "zeroshot_classification"
        assert row["language"] == "en"
    clean_rows = [row for row in rows if row["attack"] == "none"]
    (robust_row,) = [row for row in rows if row["attack"] == "pgd"]
    n = record["num_examples"]
    for row in clean_rows:
        assert float(row["acc1"]) == record["clean_correct"] / n
        assert float(row["acc1"]) == pytest.approx(record["clean_accuracy"] / 100, abs=1e-15)
        assert float(row["acc5"]) == record["clean_top5_correct"] / n
        assert float(row["acc5"]) == pytest.approx(record["clean_acc5"] / 100, abs=1e-15)
        recall = [c / k for c, k in zip(record["clean_per_class"], record["class_counts"], strict=True) if k]
        assert float(row["mean_per_class_recall"]) == pytest.approx(sum(recall) / len(recall), abs=1e-15)
        assert row["eps"] == row["iterations_adv"] == row["norm"] == ""  # build leaves a clean row's attack keys empty
    assert float(robust_row["acc1"]) == record["robust_correct"] / n
    assert float(robust_row["acc5"]) == record["robust_top5_correct"] / n
    recall = [c / k for c, k in zip(record["robust_per_class"], record["class_counts"], strict=True) if k]
    assert float(robust_row["mean_per_class_recall"]) == pytest.approx(sum(recall) / len(recall), abs=1e-15)
    assert (float(robust_row["eps"]), int(robust_row["iterations_adv"]), robust_row["norm"]) == (2.0, 2, "Linf")
    assert float(robust_row["mean_per_class_recall"]) == pytest.approx(record["robust_mean_per_class_recall"] / 100)
