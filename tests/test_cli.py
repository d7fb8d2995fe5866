"""Every command end to end on the tiny model and generated data, in process; bad input gives one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tgazsr_cli.checkpoints.metadata import read_metadata
from tgazsr_cli.cli.app import main

TRAIN = ["train", "--recipe", "tiny", "--set", "optim.max_steps=6", "--set", "train.save_every=3", "--epochs", "3"]


@pytest.fixture(scope="module")
def run_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tga"
    assert main([*TRAIN, "--dataset", str(data_dir), "--output", str(run)]) == 0
    return run


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_writes_checkpoints_recipe_and_metrics(run_dir: Path) -> None:
    meta = read_metadata(run_dir / "final.safetensors")
    assert meta.method == "tga-zsr" and meta.step == 6 and meta.kind == "model"
    assert meta.model_name == "tgazsr-tiny" and meta.recipe["method_options"]["alpha"] == 0.08
    assert {"torch", "open_clip", "safetensors"} <= set(meta.versions)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "step-00000003.safetensors", "step-00000006.safetensors"]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert all({"ce", "attention_refinement", "attention_constraint", "lr"} <= set(line) for line in lines)
    assert "alpha: 0.08" in (run_dir / "recipe.yaml").read_text()


def test_eval_reports_clean_and_robust_accuracy(run_dir: Path, data_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    code, stdout, stderr = run_cli(["eval", "--checkpoint", str(run_dir), "--datasets", str(data_dir), "--split",
                                    "train", "--eps", "4", "--steps", "3", "--batch-size", "7", "-o", str(out),
                                    "--json"], capsys)
    assert code == 0, stderr
    records = json.loads(stdout)
    assert len(records) == 1 and records[0]["num_examples"] == 32
    record = records[0]
    assert 0 <= record["robust_accuracy"] <= record["clean_accuracy"] <= 100
    assert record["threat"]["eps"] == 4 and record["threat"]["steps"] == 3 and record["batch_size"] == 7
    saved = json.loads((out / "results.json").read_text())
    assert saved == records
    table = (out / "results.md").read_text()
    assert "Robust accuracy" in table and "eps 4/255, 3 steps" in table


def test_eval_does_not_depend_on_batch_size(run_dir: Path, data_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    results = []
    for batch in ("1", "7", "64"):
        code, stdout, _ = run_cli(["eval", "-c", str(run_dir), "-d", str(data_dir), "--split", "train", "--eps",
                                   "4", "--steps", "2", "--batch-size", batch, "--limit", "12", "--json"], capsys)
        assert code == 0
        (record,) = json.loads(stdout)
        results.append((record["clean_correct"], record["robust_correct"]))
    assert results[0] == results[1] == results[2]


def test_attack_writes_images_tensors_and_predictions(run_dir: Path, data_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "adv"
    code, _, stderr = run_cli(["attack", "-c", str(run_dir), "--dataset", str(data_dir), "--split", "train",
                               "--eps", "4", "--steps", "3", "-n", "5", "-o", str(out)], capsys)
    assert code == 0, stderr
    tensors = load_file(str(out / "adversarial.safetensors"))
    assert tensors["adversarial"].shape == (5, 3, 28, 28)
    assert (tensors["adversarial"] - tensors["clean"]).abs().max() <= 4 / 255 + 1e-6
    assert len(list(out.glob("*-adversarial.png"))) == 5
    predictions = json.loads((out / "predictions.json").read_text())
    assert len(predictions["examples"]) == 5 and predictions["threat"]["eps"] == 4


def test_visualize_attention_draws_a_panel(run_dir: Path, data_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    image = next((data_dir / "red_circle").glob("*.png"))
    out = tmp_path / "panel.png"
    code, _, stderr = run_cli(["visualize-attention", str(image), "-c", str(run_dir), "--model", "tgazsr-tiny",
                               "--classes", "red circle,blue square,green circle,yellow square", "--label",
                               "red circle", "--eps", "4", "--steps", "2", "-o", str(out)], capsys)
    assert code == 0, stderr
    with Image.open(out) as panel:
        assert panel.format == "PNG" and panel.width > 500 and panel.height > 400
    assert stderr.count("clean →") == 2  # the original model and the fine-tuned one


def test_export_loads_in_plain_open_clip_with_identical_logits(run_dir: Path, tmp_path: Path) -> None:
    import open_clip

    from tgazsr_cli.checkpoints.loading import load_model

    out = tmp_path / "export"
    assert main(["export", str(run_dir), "-o", str(out)]) == 0
    plain = open_clip.create_model(f"local-dir:{out}").eval()
    ours = load_model(checkpoint=str(run_dir)).classifier
    images = torch.rand(3, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ours.encode_image(images)
        got = plain.encode_image(ours.normalize(images))
    torch.testing.assert_close(got, expected)


def test_print_config_shows_the_resolved_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run_cli(["train", "--recipe", "tiny", "--set", "method_options.alpha=0.5", "--print-config"],
                              capsys)
    assert code == 0
    assert "alpha: 0.5" in stdout and "name: tgazsr-tiny" in stdout


@pytest.mark.parametrize(("args", "code", "message"), [
    (["train", "--method", "tga-zrs", "--print-config"], 2, "did you mean 'tga-zsr'"),
    (["train", "--set", "loss.alfa=1"], 2, "unknown recipe key 'loss.alfa'"),
    (["train", "--train-eps", "300"], 2, "units of 1/255"),
    (["eval", "--checkpoint", "/nonexistent/run"], 2, "does not exist"),
    (["eval", "--model", "ViT-B-99"], 2, "unknown model 'ViT-B-99'"),
    (["eval", "--model", "tgazsr-tiny", "--attack", "pgdd"], 2, "unknown attack or attack suite 'pgdd'"),
    (["eval", "--model", "tgazsr-tiny", "--eps", "-1"], 2, "'eval.eps' must be in [0, 64]"),
    (["attack", "--model", "tgazsr-tiny", "--dataset", "no-such-set"], 2, "unknown dataset"),
    (["visualize-attention", "/no/such.png", "--model", "tgazsr-tiny", "--classes", "a,b"], 2, "does not exist"),
])
def test_bad_input_is_one_line_with_the_right_exit_code(args: list[str], code: int, message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    got, _, stderr = run_cli(args, capsys)
    assert got == code
    assert message in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def test_existing_run_directory_is_never_overwritten(run_dir: Path, data_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    before = (run_dir / "final.safetensors").read_bytes()
    code, _, stderr = run_cli([*TRAIN, "--dataset", str(data_dir), "--output", str(run_dir)], capsys)
    assert code == 2 and "already exists" in stderr
    assert (run_dir / "final.safetensors").read_bytes() == before
