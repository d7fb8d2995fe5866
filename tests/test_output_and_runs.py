"""Results are never silently overwritten or mixed, finished runs are left alone, and runs explain themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import make_image_folder
from tgazsr_cli.api import evaluate as evaluation
from tgazsr_cli.api.attack import spread_indices
from tgazsr_cli.cli.app import main
from tgazsr_cli.cli.console import PlainProgress

TRAIN = ["train", "--recipe", "tiny", "--set", "optim.max_steps=3", "--set", "data.batch_size=8"]


@pytest.fixture(scope="module")
def run_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tga"
    assert main([*TRAIN, "--dataset", str(data_dir), "--output", str(run)]) == 0
    return run


def eval_args(run: Path, data: Path, out: Path) -> list[str]:
    return ["eval", "-c", str(run), "-d", str(data), "--eps", "2", "--steps", "2", "-o", str(out), "--no-sanity"]


def test_eval_refuses_a_folder_with_results_unless_forced(run_dir: Path, data_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    assert main(eval_args(run_dir, data_dir, out)) == 0
    first = (out / "results.json").read_text()
    capsys.readouterr()
    assert main(eval_args(run_dir, data_dir, out)) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (out / "results.json").read_text() == first  # untouched
    (out / "notes.txt").write_text("mine")
    assert main([*eval_args(run_dir, data_dir, out), "--force"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and json.loads((out / "results.json").read_text())


def test_attack_with_force_replaces_stale_examples(run_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "adv"
    args = ["attack", "-c", str(run_dir), "-d", str(data_dir), "--eps", "2", "--steps", "2", "-o", str(out)]
    assert main([*args, "-n", "4"]) == 0
    assert len(list(out.glob("*-adversarial.png"))) == 4
    assert main([*args, "-n", "2"]) == 2
    assert main([*args, "-n", "2", "--force"]) == 0
    assert len(list(out.glob("*-adversarial.png"))) == 2  # no stale pairs from the earlier run
    labels = [e["label"] for e in json.loads((out / "predictions.json").read_text())["examples"]]
    assert len(set(labels)) == 2  # a spread over the classes, not the first two images of one class


def test_spread_indices_cover_every_class_before_repeating() -> None:
    labels = [0] * 10 + [1] * 10 + [2] * 3
    picked = spread_indices(labels, 6, seed=0)
    assert sorted({labels[i] for i in picked[:6]}) == [0, 1, 2] and len(set(picked)) == 6
    assert [labels[i] for i in spread_indices(labels, 3, seed=1)].count(2) == 1
    assert spread_indices(labels, 6, seed=0) == picked and spread_indices(labels, 6, seed=2) != picked
    assert len(spread_indices(labels, 50, seed=0)) == len(labels)


def test_resume_of_a_finished_run_changes_nothing(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    final = run_dir / "final.safetensors"
    before = final.stat().st_mtime_ns, final.read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir)]) == 0
    assert "is complete (final checkpoint at step 3); nothing to do" in capsys.readouterr().err
    assert (final.stat().st_mtime_ns, final.read_bytes()) == before


def test_eval_of_a_run_uses_its_recipe_eval_section(run_dir: Path, data_dir: Path) -> None:
    request = evaluation.EvalRequest(checkpoints=[str(run_dir)], datasets=[str(data_dir)], sanity=False,
                                     settings={"steps": 1})
    result = evaluation.run_evaluation(request)
    (record,) = result.records
    assert record["threat"]["eps"] == 4.0 and record["threat"]["steps"] == 1  # tiny recipe eps 4, flag steps 1
    assert result.notices == ["evaluation settings from the checkpoint's recipe; flags override them"]


def test_interrupted_eval_removes_the_folder_it_created(run_dir: Path, data_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*_: object, **__: object) -> list:
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "evaluate_all", interrupted)
    out = tmp_path / "never"
    capsys.readouterr()
    assert main(eval_args(run_dir, data_dir, out)) == 130
    assert not out.exists()
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "interrupted before any of 1 dataset(s) finished; nothing was written")  # the line the README promises


def test_broken_images_are_counted_in_the_report(run_dir: Path, data_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    make_image_folder(data, per_class=3, size=32)
    broken = next((data / "red_circle").glob("*.png"))
    broken.write_bytes(b"not a png")
    out = tmp_path / "eval"
    capsys.readouterr()
    assert main(eval_args(run_dir, data, out)) == 0
    assert "skipped 1 undecodable image(s)" in capsys.readouterr().err
    assert "1 undecodable image(s) skipped" in (out / "results.md").read_text()


def test_visualize_takes_class_names_from_the_table_without_data(run_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tgazsr_cli.data.loading as loading

    def no_data(*_: object, **__: object) -> None:
        raise AssertionError("visualize-attention read a dataset")

    monkeypatch.setattr(loading, "load_image_dataset", no_data)
    image = tmp_path / "cat.png"
    Image.new("RGB", (40, 40), (200, 120, 40)).save(image)
    out = tmp_path / "panel.png"
    assert main(["visualize-attention", str(image), "-c", str(run_dir), "--dataset", "tinyimagenet",
                 "--eps", "2", "--steps", "2", "-o", str(out)]) == 0
    assert out.stat().st_size > 0


def test_visualize_a_broken_example_is_one_line(run_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    make_image_folder(data, per_class=2, size=32)
    for png in data.rglob("*.png"):
        png.write_bytes(b"broken")
    assert main(["visualize-attention", "-c", str(run_dir), "--dataset", str(data), "--index", "0",
                 "--eps", "2", "--steps", "2", "-o", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be decoded; choose another index" in err[0]


def test_plain_progress_prints_lines_for_logs(capsys: pytest.CaptureFixture[str]) -> None:
    progress = PlainProgress()
    task = progress.task("train tga-zsr", total=100)
    for _ in range(100):
        task.advance(1, ce=1.5)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train tga-zsr")]
    assert len(lines) == 20 and lines[-1].startswith("train tga-zsr: 100/100") and "ce 1.5" in lines[-1]


def test_warnings_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    old = tmp_path / "old.yaml"
    old.write_text("method: tecoa\nloss: {alpha: 0.1}\n")
    done = subprocess.run([sys.executable, "-m", "tgazsr_cli", "train", "--recipe", str(old), "--print-config"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stderr.strip().splitlines() == [
        "warning: recipe section 'loss' (tgazsr 0.1 layout) is read as method_options; write "
        "method_options.alpha=... instead"]


def test_pick_from_prefers_an_example_that_fools_only_the_original(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from tgazsr_cli.api import visualize as visualization
    def row(shift: float, adversarial: str) -> SimpleNamespace:
        return SimpleNamespace(map_shift=shift, adversarial_prediction=adversarial, map_class="cat")

    outcomes = {0: [row(0.9, "cat"), row(0.1, "cat")],  # largest shift, but the original is not fooled
                1: [row(0.6, "dog"), row(0.2, "cat")],  # fools only the original
                2: [row(0.8, "dog"), row(0.1, "dog")]}  # fools both
    monkeypatch.setattr(visualization, "example", lambda data, index: (index, 0))
    monkeypatch.setattr(visualization, "panel_rows", lambda models, picture, *_: outcomes[picture])
    index, rows = visualization.most_telling([], None, [0, 1, 2], None, [], [], visualization.VisualizeRequest())
    assert index == 1 and rows is outcomes[1]


def test_a_failed_eval_leaves_no_empty_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    assert main(["eval", "-c", str(tmp_path / "no-such-run"), "-d", "shapes", "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()
