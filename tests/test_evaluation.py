"""The evaluator with attacks and suites: batch-size invariance, suite bookkeeping, sanity warnings in the
records, and the reports written from them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import CLASSNAMES, TEMPLATES
from tgazsr_cli.attacks import ThreatModel
from tgazsr_cli.data import ImageClassificationData
from tgazsr_cli.errors import UsageError
from tgazsr_cli.evaluation.report import csv_report, markdown_report
from tgazsr_cli.evaluation.robust_accuracy import evaluate_attacks
from tgazsr_cli.evaluation.suites import resolve_suites
from tgazsr_cli.models.classifier import ClipClassifier


class TensorDataset(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


def make_data(model: nn.Module, n: int = 64, seed: int = 3,
              dtype: torch.dtype = torch.float32) -> ImageClassificationData:
    """Random images labelled with the model's own predictions, with a few wrong labels mixed in."""
    images = torch.rand(n, 3, 28, 28, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    with torch.no_grad():
        labels = model(images).argmax(dim=1)
    labels[::9] = (labels[::9] + 1) % len(CLASSNAMES)  # some clean-misclassified points
    return ImageClassificationData(TensorDataset(images, labels), list(CLASSNAMES), list(TEMPLATES), "toy", "test",
                                   "in-memory")


def run(model: ClipClassifier, data: ImageClassificationData, attacks: list[str], batch_size: int,
        threat: ThreatModel, sanity: bool = False) -> dict[str, dict]:
    records = evaluate_attacks(model, data, model_label="tiny", attacks=attacks, threat=threat,
                               batch_size=batch_size, num_workers=0, sanity=sanity)
    return {record.attack: record.to_dict() for record in records}


def test_robust_accuracy_does_not_depend_on_the_batch_size(tiny_model) -> None:
    data = make_data(tiny_model, n=24)
    threat = ThreatModel(eps=1.5, steps=10, step_size=0.5)
    attacks = ["pgd", "cw", "paper-pgd"]
    results = {size: run(tiny_model, data, attacks, size, threat) for size in (1, 7, 64)}
    for attack in attacks:
        counts = {size: (r[attack]["clean_correct"], r[attack]["robust_correct"]) for size, r in results.items()}
        assert len(set(counts.values())) == 1, (attack, counts)
    clean, robust = results[64]["pgd"]["clean_correct"], results[64]["pgd"]["robust_correct"]
    assert 0 < robust < clean < 24  # the attack did something, and some points were already wrong


class Float64Classifier(nn.Module):
    """The tiny classifier in float64, where batched kernels give the same per-row results at any batch size
    (in fp32 they differ by ~1e-5, enough to flip APGD's loss comparisons on near-ties; docs/attacks.md)."""

    def __init__(self, inner: ClipClassifier) -> None:
        super().__init__()
        self.inner = inner.double()
        self.mean = self.inner.mean
        self.text = self.inner.text_features.double()

    def set_classes(self, classnames: list[str], templates: list[str]) -> None:
        self.inner.set_classes(classnames, templates)
        self.text = self.inner.text_features.double()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embedding = torch.nn.functional.normalize(self.inner.encode_image(images), dim=-1)
        return self.inner.logit_scale * embedding @ self.text.t()


def test_apgd_suite_is_batch_size_invariant_in_float64(tiny_model) -> None:
    model = Float64Classifier(tiny_model).eval()
    data = make_data(model, n=12, dtype=torch.float64)
    results = {size: run(model, data, ["paper-aa"], size, ThreatModel(eps=2.0, steps=10)) for size in (1, 7, 64)}
    assert len({r["paper-aa"]["robust_correct"] for r in results.values()}) == 1


def test_suite_records_say_what_each_member_left_robust(tiny_model) -> None:
    data = make_data(tiny_model)
    record = run(tiny_model, data, ["paper-aa"], 16, ThreatModel(eps=2.0, steps=10))["paper-aa"]
    after = record["extra"]["robust_after"]
    assert list(after) == ["apgd-ce", "apgd-dlr"]
    assert record["clean_correct"] >= after["apgd-ce"] >= after["apgd-dlr"] == record["robust_correct"]
    assert [step["attack"] for step in record["extra"]["suite"]] == ["apgd-ce", "apgd-dlr"]
    assert record["extra"]["suite"][0]["steps"] == 100  # the suite's own budget is recorded, not the caller's


def test_a_suite_is_at_least_as_strong_as_its_first_member(tiny_model) -> None:
    data = make_data(tiny_model)
    results = run(tiny_model, data, ["apgd-ce", "paper-aa"], 64, ThreatModel(eps=2.0, steps=100))
    assert results["paper-aa"]["robust_correct"] <= results["apgd-ce"]["robust_correct"]


class QuantisedClassifier(nn.Module):
    """Gradient masking built in: 8-bit input rounding in front of the classifier (zero input gradient)."""

    def __init__(self, inner: ClipClassifier) -> None:
        super().__init__()
        self.inner = inner
        self.mean = inner.mean

    def set_classes(self, classnames: list[str], templates: list[str]) -> None:
        self.inner.set_classes(classnames, templates)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(images * 255) / 255)


def test_gradient_masking_is_caught_by_the_suite_and_reported(tiny_model) -> None:
    masked = QuantisedClassifier(tiny_model).eval()
    data = make_data(masked, n=24)
    threat = ThreatModel(eps=8.0, steps=100, step_size=2.0)  # square: 100 queries
    results = run(masked, data, ["pgd", "square"], 24, threat, sanity=True)
    pgd, square = results["pgd"], results["square"]
    assert pgd["robust_correct"] == pgd["clean_correct"]  # the gradient attack finds nothing
    assert square["robust_correct"] < pgd["robust_correct"]  # the black-box attack does
    assert any("exactly zero" in warning for warning in pgd["warnings"])
    report = markdown_report(list(results.values()))
    assert "Warnings (sanity checks)" in report and "exactly zero" in report


def test_a_plain_model_gets_no_warnings(tiny_model) -> None:
    data = make_data(tiny_model, n=16)
    record = run(tiny_model, data, ["pgd"], 16, ThreatModel(eps=1.0, steps=5), sanity=True)["pgd"]
    assert record["warnings"] == []
    assert not tiny_model.training


def test_zero_eps_gives_one_clean_record(tiny_model) -> None:
    data = make_data(tiny_model, n=10)
    results = run(tiny_model, data, ["pgd", "paper-aa"], 4, ThreatModel(eps=0.0))
    assert list(results) == ["none"]
    assert results["none"]["robust_correct"] == results["none"]["clean_correct"]


def test_unknown_attack_or_suite_names_are_usage_errors(tiny_model) -> None:
    with pytest.raises(UsageError, match="did you mean 'paper-aa'"):
        run(tiny_model, make_data(tiny_model, n=4), ["paper-a"], 4, ThreatModel())
    with pytest.raises(UsageError, match="unknown suite"):
        resolve_suites(["autoatack"])
    assert resolve_suites(["autoattack", "paper-pgd"]).attack_suites == ["autoattack", "paper-pgd"]


def test_records_become_paper_tables_csv_and_json(tiny_model, tmp_path: Path) -> None:
    from tgazsr_cli.evaluation.report import write_reports

    data = make_data(tiny_model, n=20)
    records = [r.to_dict() for r in evaluate_attacks(tiny_model, data, model_label="tiny", attacks=["pgd", "cw"],
                                                     threat=ThreatModel(eps=2.0, steps=5), batch_size=8,
                                                     num_workers=0, sanity=False)]
    written = write_reports(records, tmp_path)
    assert [p.name for p in written] == ["results.json", "results.md", "results.csv", "tradeoff.png", "clip_benchmark"]
    assert json.loads(written[0].read_text()) == records
    rows = list(csv.DictReader(io.StringIO(csv_report(records))))
    assert [(r["metric"], r["attack"]) for r in rows] == [("clean", ""), ("robust", "pgd"), ("robust", "cw")]
    assert float(rows[1]["toy"]) == pytest.approx(records[0]["robust_accuracy"], abs=1e-4)
    text = written[1].read_text()
    assert "Robust accuracy (%) — pgd" in text and "Robust accuracy (%) — cw" in text
    assert "seed 0, eval batch 8" in text


def test_broken_images_are_skipped_and_counted_or_fail_the_run(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import make_image_folder
    from tgazsr_cli.cli.app import main

    make_image_folder(tmp_path / "data", per_class=3)
    (tmp_path / "data" / "red_circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    args = ["eval", "--model", "tgazsr-tiny", "--datasets", str(tmp_path / "data"), "--eps", "1", "--steps", "1",
            "--workers", "0", "--no-sanity", "--json"]
    assert main(args) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["skipped_images"] == 1 and record["num_examples"] == 12
    assert main([*args, "--on-broken", "fail"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert errors == ["error: 1 image(s) of data could not be decoded; pass --on-broken skip to skip and count them"]


def test_text_features_are_cached_on_disk_per_tower_and_prompt_set(tiny_model, tmp_path: Path) -> None:
    from tgazsr_cli.models.classifier import load_classifier

    cache = tiny_model.use_disk_cache(tmp_path)
    first = tiny_model.class_text_features(["cat", "dog"], ["a photo of a {}."])
    assert cache.misses == 1 and len(list(cache.folder.glob("*.safetensors"))) == 1
    fresh = load_classifier("tgazsr-tiny")
    fresh.load_state_dict(tiny_model.state_dict())
    fresh_cache = fresh.use_disk_cache(tmp_path)
    assert fresh_cache.folder == cache.folder  # same text tower, same fingerprint
    assert torch.equal(fresh.class_text_features(["cat", "dog"], ["a photo of a {}."]), first)
    assert fresh_cache.hits == 1
    fresh.class_text_features(["cat", "dog"], ["a drawing of a {}."])  # other templates: another entry
    assert fresh_cache.misses == 1 and len(list(cache.folder.glob("*.safetensors"))) == 2
    with torch.no_grad():
        fresh.clip.token_embedding.weight.add_(0.01)  # another text tower: another folder
    assert fresh.use_disk_cache(tmp_path).folder != cache.folder
    with torch.no_grad():
        fresh.clip.visual.conv1.weight.add_(0.01)  # the image tower is not part of the key
    assert tiny_model.use_disk_cache(tmp_path).folder == cache.folder


def test_a_corrupt_cache_entry_is_recomputed(tiny_model, tmp_path: Path) -> None:
    cache = tiny_model.use_disk_cache(tmp_path)
    expected = tiny_model.class_text_features(["cat", "dog"], ["a photo of a {}."]).clone()
    cache.path(["cat", "dog"], ["a photo of a {}."]).write_bytes(b"garbage")
    tiny_model._text_cache.clear()
    assert torch.equal(tiny_model.class_text_features(["cat", "dog"], ["a photo of a {}."]), expected)
    assert cache.misses == 2


def test_fp16_gradient_underflow_on_the_mini_clip_is_flagged() -> None:
    """Measured (docs/attacks.md): fp16 autocast zeroes most input-gradient entries of the shipped mini CLIP, and
    its PGD robust accuracy then overstates robustness; the zero-gradient check runs in the attack's precision."""
    from tgazsr_cli.attacks.sanity import zero_gradient_warning
    from tgazsr_cli.data import load_image_dataset
    from tgazsr_cli.models.classifier import load_classifier

    model = load_classifier("tgazsr-mini", "tgazsr:mini-clip")
    data = load_image_dataset("digits", split="test", image_size=model.image_size, limit=16, seed=0)
    model.set_classes(data.classnames, data.templates)
    images = torch.stack([data.dataset[i][0] for i in range(16)])
    labels = torch.tensor([data.dataset[i][1] for i in range(16)])
    assert zero_gradient_warning(model, images, labels, precision="fp32") is None
    warning = zero_gradient_warning(model, images, labels, precision="fp16")
    assert warning is not None and "exactly zero in fp16" in warning


def test_attack_command_takes_a_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file

    from tests.helpers import make_image_folder
    from tgazsr_cli.cli.app import main

    make_image_folder(tmp_path / "data", per_class=2)
    out = tmp_path / "adv"
    assert main(["attack", "--model", "tgazsr-tiny", "--dataset", str(tmp_path / "data"), "--attack", "paper-aa",
                 "--eps", "4", "-n", "5", "-o", str(out)]) == 0
    tensors = load_file(str(out / "adversarial.safetensors"))
    assert (tensors["adversarial"] - tensors["clean"]).abs().max() <= 4 / 255 + 1e-6
    assert json.loads((out / "predictions.json").read_text())["attack"] == "paper-aa"
    assert len(list(out.glob("*-adversarial.png"))) == 5
