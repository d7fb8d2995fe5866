"""Our records as CLIP_benchmark result files, so `clip_benchmark build` tabulates them beside its own.

CLIP_benchmark (LAION-AI/CLIP_benchmark at 48de38c1689fa6d8b4dd53e3370c669c3bb18117) writes one JSON per
model x dataset x language: `{"dataset", "model", "pretrained", "task", "metrics", "language"}`
(clip_benchmark/cli.py:405-412), named by the template `{dataset}_{pretrained}_{model}_{language}_{task}.json`
(cli.py:62) with the dataset's "wds/" prefix dropped and "/" made "_" (cli.py:225-233). Zero-shot
classification's metrics are fractions: `acc1`, `acc5` (NaN with fewer than 5 classes) and
`mean_per_class_recall`, sklearn's balanced accuracy of the top-1 predictions
(clip_benchmark/metrics/zeroshot_classification.py:225-235). `build` (cli.py:89-114) reads every `.json` of
a folder, flattens `metrics` into the row and adds `model_fullname` = "model pretrained".

RobustVLM's copy (chs20/RobustVLM at 7de10ee209f169d415c07aa0abaae4806c402b14) adds the attack:
`"attack", "iterations_adv", "eps", "norm"` (CLIP_benchmark/clip_benchmark/cli.py:383-395), eps in 1/255
(metrics/zeroshot_classification.py:126), its metrics then scoring the adversarial images (AutoAttack's, the
clean image where the clean prediction is already wrong; zeroshot_classification.py:152-160), and names
adversarial files `adv_{model}_{pretrained}_{dataset}_{n_samples}_bs{bs}_{attack}_{eps}_{iterations}.json`
(CLIP_benchmark/bash/run_benchmark_adv.sh:13, eps as an integer: cli.py:196).

We write, per record, the clean metrics once per model x dataset (attack "none", under CLIP_benchmark's
name) and the robust metrics per attack (under RobustVLM's adversarial name, n_samples being the number of
examples evaluated). This module imports no torch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Record = dict[str, Any]
TASK = "zeroshot_classification"
LANGUAGE = "en"  # our prompts are English
FOLDER = "clip_benchmark"  # the sub-folder of an eval output folder

# Our dataset names -> CLIP_benchmark's, each the name its builder gives the torchvision dataset we read
# (LAION-AI/CLIP_benchmark at 48de38c1689fa6d8b4dd53e3370c669c3bb18117, clip_benchmark/datasets/builder.py,
# the line of its `dataset_name == ...` branch). The same data also come as webdatasets under "wds/" or
# "wds/vtab/" names (benchmark/webdatasets.txt), which RobustVLM evaluates; a protocol that reads those
# sets `extra["clip_benchmark_name"]` to say so. Datasets not listed (caltech256, tinyimagenet, the mini
# worlds) have no CLIP_benchmark equivalent and keep their own names.
CLIP_BENCHMARK_NAMES = {
    "cifar10": "cifar10",  # builder.py:95
    "cifar100": "cifar100",  # builder.py:98
    "imagenet": "imagenet1k",  # builder.py:101
    "imagenet-a": "imagenet-a",  # builder.py:168
    "imagenet-r": "imagenet-r",  # builder.py:182
    "imagenet-o": "imagenet-o",  # builder.py:196
    "food101": "food101",  # builder.py:377
    "sun397": "sun397",  # builder.py:383
    "cars": "cars",  # builder.py:389
    "aircraft": "fgvc_aircraft",  # builder.py:392
    "dtd": "dtd",  # builder.py:395
    "pets": "pets",  # builder.py:398
    "caltech101": "caltech101",  # builder.py:401
    "flowers102": "flowers",  # builder.py:408
    "stl10": "stl10",  # builder.py:421
    "eurosat": "eurosat",  # builder.py:424
    "pcam": "pcam",  # builder.py:436
}


def per_class_recall(correct: Sequence[int], counts: Sequence[int]) -> float | None:
    """Mean over the classes present (count > 0) of correct / count, as a fraction: sklearn's
    balanced_accuracy_score, which drops classes absent from y_true (scikit-learn 1.9.1,
    sklearn/metrics/_classification.py:2937-2940). None when no class is present."""
    recalls = [hit / count for hit, count in zip(correct, counts, strict=True) if count > 0]
    return sum(recalls) / len(recalls) if recalls else None


def dataset_name(record: Record) -> str:
    """CLIP_benchmark's name of the record's dataset: the protocol's, else the table's, else our own."""
    given = (record.get("extra") or {}).get("clip_benchmark_name")
    return str(given or CLIP_BENCHMARK_NAMES.get(record["dataset"], record["dataset"]))


def _metrics(correct: int, top5: int, per_class: Sequence[int], record: Record) -> dict[str, float | None]:
    n = record["num_examples"]
    counts = record.get("class_counts") or []
    # CLIP_benchmark's acc5 is NaN below 5 classes (zeroshot_classification.py:227-231); json writes NaN as it does
    acc5 = top5 / n if n and len(counts) >= 5 else math.nan
    recall = per_class_recall(per_class, counts) if len(per_class) == len(counts) else None
    return {"acc1": correct / n if n else None, "acc5": acc5, "mean_per_class_recall": recall}


def _attack_label(record: Record) -> str:
    """The attack as the file and its row name it: behind a defence, with its view (two rows per attack)."""
    view = record.get("attack_view")
    return f"{record['attack']} ({view})" if view else record["attack"]


def _iterations(record: Record) -> int:
    """The attack's steps; for a suite its first member's (AutoAttack's APGD: 100, as RobustVLM writes)."""
    members = (record.get("extra") or {}).get("suite") or []
    return int(next((m["steps"] for m in members if "steps" in m), record["threat"]["steps"]))


def _weights(record: Record) -> str:
    return str(record.get("pretrained") or record["model"])


def _base(record: Record) -> Record:
    return {"dataset": dataset_name(record), "model": record.get("arch") or record["model"],
            "pretrained": _weights(record), "task": TASK, "language": LANGUAGE}


def _distinct(records: Sequence[Record]) -> list[Record]:
    """The records, where several models of the run share an (arch, pretrained) pair (a checkpoint reports its
    base weights, as the base model evaluated with --original does) with each one's own label as `pretrained`,
    so no file and no table row mixes two models."""
    labels: dict[tuple[str, str], set[str]] = {}
    for record in records:
        labels.setdefault((str(record.get("arch") or record["model"]), _weights(record)), set()).add(record["model"])
    return [{**r, "pretrained": r["model"]} if len(labels[(str(r.get("arch") or r["model"]), _weights(r))]) > 1
            else r for r in records]


def clean_result(record: Record) -> Record:
    """The clean CLIP_benchmark result of the record's model on its dataset."""
    result = {**_base(record), "attack": "none"}
    result["metrics"] = _metrics(record["clean_correct"], record.get("clean_top5_correct", 0),
                                 record.get("clean_per_class") or [], record)
    if record.get("defence"):
        result["defence"] = record["defence"]
    return result


def robust_result(record: Record) -> Record:
    """The robust CLIP_benchmark result under the record's attack, with RobustVLM's attack keys."""
    threat = record["threat"]
    result = {**_base(record), "attack": _attack_label(record), "eps": float(threat["eps"]),
              "iterations_adv": _iterations(record), "norm": threat.get("norm", "Linf")}
    result["metrics"] = _metrics(record["robust_correct"], record.get("robust_top5_correct", 0),
                                 record.get("robust_per_class") or [], record)
    result["robust_counting"] = record.get("robust_counting", "clean-and-robust")
    if record.get("defence"):
        result["defence"] = record["defence"]
    return result


def _slug(text: str) -> str:
    """A file-name part: what CLIP_benchmark makes of a path ("/" -> "_"), and no spaces or brackets."""
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", text.removeprefix("wds/")).strip("_") or "_"


def file_name(result: Record, record: Record) -> str:
    """CLIP_benchmark's name for a clean result, RobustVLM's adversarial one otherwise (eps written with
    `:g`, which is RobustVLM's `int(eps)` for a whole eps and keeps a fractional one apart)."""
    given = result["pretrained"]
    pretrained = Path(given).name if Path(given).is_file() else given  # a file: its name (cli.py:231)
    model, pretrained, dataset = _slug(result["model"]), _slug(pretrained), _slug(result["dataset"])
    if result["attack"] == "none":
        return f"{dataset}_{pretrained}_{model}_{result['language']}_{result['task']}.json"
    return (f"adv_{model}_{pretrained}_{dataset}_{record['num_examples']}_bs{record.get('batch_size', 0)}_"
            f"{_slug(result['attack'])}_{result['eps']:g}_{result['iterations_adv']}.json")


def clip_benchmark_results(records: Sequence[Record]) -> list[tuple[str, Record]]:
    """(file name, result) per model x dataset for the clean numbers, and per attack for the robust ones."""
    results: dict[str, Record] = {}
    for record in _distinct(records):
        if "clean_correct" not in record:  # a hand-made record, without counts: nothing to export
            continue
        clean = clean_result(record)
        results.setdefault(file_name(clean, record), clean)  # one clean file, whatever the attacks
        if record["attack"] != "none":
            robust = robust_result(record)
            results[file_name(robust, record)] = robust
    return list(results.items())


def write_clip_benchmark(records: Sequence[Record], folder: Path) -> list[Path]:
    """The records' CLIP_benchmark result JSONs in `folder` (created), one file each; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, result in clip_benchmark_results(records):
        path = folder / name
        path.write_text(json.dumps(result))  # NaN as CLIP_benchmark's json.dump writes it
        written.append(path)
    return written
