"""Each command only parses, builds one request and calls one engine function: checked without any model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tgazsr_cli.api import attack as attacking
from tgazsr_cli.api import evaluate as evaluation
from tgazsr_cli.api import train as training
from tgazsr_cli.api import visualize as visualization
from tgazsr_cli.cli.app import main


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_evaluation(request: evaluation.EvalRequest, progress: Any = None) -> evaluation.EvalResult:
        seen["eval"] = request
        return evaluation.EvalResult([], evaluation.EvalConfig())

    def fake_training(plan: training.TrainPlan, progress: Any = None) -> Any:
        seen["train"] = plan
        return SimpleNamespace(last_parts={"ce": 1.0}, steps=3, seconds=0.1, skipped_steps=0, skipped_images=0,
                               final_checkpoint=plan.run_dir / "final.safetensors")

    def fake_attack(request: attacking.AttackRequest) -> Any:
        seen["attack"] = request
        summary = SimpleNamespace(num_examples=2, clean_correct=1, adversarial_correct=0, max_perturbation=1.0,
                                  tensor_file=Path("a.safetensors"), predictions_file=Path("p.json"))
        return attacking.AttackResult("m", "shapes", summary, 2)

    def fake_visualization(request: visualization.VisualizeRequest) -> Any:
        seen["visualize"] = request
        return visualization.VisualizeResult([], request.output, None)

    monkeypatch.setattr(evaluation, "run_evaluation", fake_evaluation)
    monkeypatch.setattr(training, "run_training", fake_training)
    monkeypatch.setattr(attacking, "run_attack", fake_attack)
    monkeypatch.setattr(visualization, "run_visualization", fake_visualization)
    return seen


def test_eval_flags_become_one_request_and_only_given_settings_override(captured: dict[str, Any]) -> None:
    assert main(["eval", "-c", "runA", "-c", "runB", "-d", "cifar10,stl10", "-d", "dtd", "-a", "pgd,cw",
                 "--eps", "2", "--limit", "50", "--original", "--force", "-o", "out"]) == 0
    request = captured["eval"]
    assert request.checkpoints == ["runA", "runB"] and request.original and request.force
    assert request.datasets == ["cifar10", "stl10", "dtd"] and request.attacks == ["pgd", "cw"]
    assert request.settings == {"eps": 2.0, "limit": 50}  # steps, split ... come from the recipe or defaults
    assert request.output == Path("out")


def test_eval_usage_errors_need_no_model(captured: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "-d", "shapes"]) == 2
    assert "name what to evaluate" in capsys.readouterr().err and "eval" not in captured


def test_eval_settings_resolve_defaults_then_recipe_then_flags() -> None:
    request = evaluation.EvalRequest(recipe="tiny", settings={"steps": 7})
    settings, source = evaluation.resolve_settings(request, {})
    assert (settings.eps, settings.steps, settings.limit, settings.datasets) == (4.0, 7, 64, ["shapes"])
    assert source == "recipe tiny"
    from_checkpoint, source = evaluation.resolve_settings(evaluation.EvalRequest(), {"eval": {"eps": 3.0}})
    assert (from_checkpoint.eps, from_checkpoint.steps, source) == (3.0, 100, "the checkpoint's recipe")


def test_train_builds_one_plan(captured: dict[str, Any], tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--recipe", "tiny", "--method", "TeCoA", "--lr", "0.01", "--set", "optim.max_steps=3",
                 "-o", str(run)]) == 0
    plan = captured["train"]
    assert plan.run_dir == run and not plan.resume
    assert (plan.recipe.method, plan.recipe.optim.lr, plan.recipe.optim.max_steps) == ("tecoa", 0.01, 3)


def test_method_options_go_through_set_and_train_has_no_method_flags(captured: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    assert main(["train", "--recipe", "tiny", "--set", "method_options.alpha=0.3", "-o", str(tmp_path / "r")]) == 0
    assert captured["train"].recipe.method_options["alpha"] == 0.3
    assert main(["train", "--recipe", "tiny", "--alpha", "0.3", "-o", str(tmp_path / "a")]) == 2
    assert main(["train", "--recipe", "tiny", "--method", "fare", "--set", "method_options.alpha=0.3",
                 "-o", str(tmp_path / "f")]) == 2
    assert main(["train", "--recipe", "tiny", "--trainable", "last-2", "-o", str(tmp_path / "k")]) == 0
    assert captured["train"].recipe.train.trainable == "last-2"


def test_attack_builds_one_request(captured: dict[str, Any]) -> None:
    assert main(["attack", "-c", "run", "-d", "shapes", "-n", "4", "--eps", "2", "--steps", "3", "--seed", "5",
                 "-o", "advs"]) == 0
    request = captured["attack"]
    assert (request.checkpoint, request.dataset, request.num_examples) == ("run", "shapes", 4)
    assert (request.threat.eps, request.threat.steps, request.threat.seed) == (2.0, 3, 5)


def test_attack_bad_eps_fails_before_any_work(captured: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attack", "-c", "run", "-d", "shapes", "--eps", "300"]) == 2
    assert "eps must be in [0, 64]" in capsys.readouterr().err and "attack" not in captured


def test_visualize_builds_one_request(captured: dict[str, Any]) -> None:
    assert main(["visualize-attention", "-c", "run", "--dataset", "shapes", "--index", "3", "--classes", "a, b",
                 "--eps", "4"]) == 0
    request = captured["visualize"]
    assert (request.checkpoint, request.dataset, request.index, request.classes) == ("run", "shapes", 3, ["a", "b"])


def test_visualize_needs_an_image_or_an_example(captured: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["visualize-attention", "-c", "run", "--dataset", "shapes"]) == 2
    assert "--index N" in capsys.readouterr().err and "visualize" not in captured


def test_threads_reach_every_request(captured: dict[str, Any], tmp_path: Path) -> None:
    assert main(["train", "--recipe", "tiny", "--threads", "3", "-o", str(tmp_path / "t")]) == 0
    assert captured["train"].recipe.train.threads == 3
    assert main(["train", "--recipe", "tiny", "--set", "train.threads=2", "-o", str(tmp_path / "s")]) == 0
    assert captured["train"].recipe.train.threads == 2
    assert main(["train", "--recipe", "tiny", "-o", str(tmp_path / "a")]) == 0
    assert captured["train"].recipe.train.threads == 0  # automatic
    assert main(["eval", "-c", "run", "-d", "shapes", "--threads", "4"]) == 0
    assert captured["eval"].settings == {"threads": 4}
    assert main(["attack", "-c", "run", "-d", "shapes", "--threads", "2", "-o", str(tmp_path / "adv")]) == 0
    assert captured["attack"].threads == 2
    assert main(["visualize-attention", "-c", "run", "--dataset", "shapes", "--index", "0", "--threads", "5",
                 "-o", str(tmp_path / "p.png")]) == 0
    assert captured["visualize"].threads == 5
    assert main(["train", "--recipe", "tiny", "--threads", "-1", "-o", str(tmp_path / "n")]) == 2
