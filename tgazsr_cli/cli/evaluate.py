"""`tgazsr eval`: zero-shot clean and robust accuracy per dataset, as JSON records and a Markdown table."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tgazsr_cli.cli.console import RichProgress, console, stdout

CHECKPOINT_HELP = "tgazsr checkpoint file or run directory (repeatable: one table row each)."


def split_names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def evaluate(
    checkpoint: list[Path] | None = typer.Option(None, "--checkpoint", "-c", help=CHECKPOINT_HELP),
    model: str | None = typer.Option(None, help="Evaluate an open_clip model instead: name, e.g. ViT-B-32."),
    pretrained: str | None = typer.Option(None, help="With --model: pretrained tag (e.g. openai) or weights file."),
    original: bool = typer.Option(False, "--original", help="Also evaluate the model each checkpoint started from."),
    datasets: str | None = typer.Option(None, "--datasets", "-d", help="Comma-separated dataset names or paths."),
    data_dir: str | None = typer.Option(None, help="Local copy of the (single) dataset."),
    split: str = typer.Option("test", help="Split to evaluate."),
    attack: str = typer.Option("pgd", help="Attack (`tgazsr attacks`)."),
    eps: float = typer.Option(1.0, help="L-inf radius in /255 (0 = clean only)."),
    steps: int = typer.Option(100, help="Attack iterations (the paper: 100)."),
    step_size: float = typer.Option(1.0, help="Attack step size in /255."),
    attack_precision: str = typer.Option("fp32", help="Forward precision during the attack: fp32, bf16 or fp16."),
    batch_size: int = typer.Option(256, min=1, help="Evaluation batch size (results do not depend on it)."),
    limit: int | None = typer.Option(None, min=1, help="Evaluate a seeded random subset of N examples per dataset."),
    seed: int = typer.Option(0, help="Seed of the attack's random start and of --limit subsets."),
    workers: int = typer.Option(2, min=0, help="Data loader workers."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write results.json and results.md here."),
    as_json: bool = typer.Option(False, "--json", help="Print the result records as JSON on stdout."),
) -> None:
    """Zero-shot clean and adversarial accuracy of checkpoints or open_clip models on one or more datasets."""
    from tgazsr_cli.engine.attacks import ThreatModel, get_attack
    from tgazsr_cli.engine.data import load_image_dataset
    from tgazsr_cli.engine.errors import UsageError
    from tgazsr_cli.engine.evaluator import evaluate as run_eval
    from tgazsr_cli.engine.loading import load_model, original_model
    from tgazsr_cli.engine.report import markdown_report, tradeoff_plot
    from tgazsr_cli.engine.runinfo import pick_device

    threat = ThreatModel(eps=eps, steps=steps, step_size=step_size, precision=attack_precision, seed=seed)
    if eps > 0:
        get_attack(attack)
    if not checkpoint and not model:
        raise UsageError("name what to evaluate: --checkpoint RUN_DIR|FILE (repeatable) or --model NAME")
    torch_device = pick_device(device)
    loaded = [load_model(checkpoint=str(path), device=torch_device) for path in checkpoint or []]
    if model:
        loaded.insert(0, load_model(model=model, pretrained=pretrained, device=torch_device))
    if original:
        bases = [original_model(item, torch_device) for item in loaded if item.metadata.get("recipe")]
        loaded = [base for base in bases if base is not None] + loaded
    names = split_names(datasets)
    if not names:
        recipe = loaded[-1].metadata.get("recipe", {})
        names = recipe.get("eval", {}).get("datasets") or [recipe.get("data", {}).get("dataset", "")]
        names = [n for n in names if n]
    if not names:
        raise UsageError("name the datasets to evaluate on with --datasets a,b,c")
    if data_dir and len(names) > 1:
        raise UsageError("--data-dir names one local copy; evaluate one dataset at a time with it")
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    records = []
    with RichProgress() as progress:
        for name in names:
            by_size = {}  # models of one input size share one decoded dataset
            for item in loaded:
                size = item.classifier.image_size
                if size not in by_size:
                    by_size[size] = load_image_dataset(name, split=split, image_size=size, data_dir=data_dir,
                                                       limit=limit, seed=seed)
                data = by_size[size]
                record = run_eval(item.classifier, data, model_label=item.label, attack=attack, threat=threat,
                                  batch_size=batch_size, num_workers=workers, progress=progress)
                records.append(record.to_dict())
    report = markdown_report(records)
    console.print(report)
    if output is not None:
        (output / "results.json").write_text(json.dumps(records, indent=2))
        (output / "results.md").write_text(report)
        tradeoff_plot(records, output / "tradeoff.png")
        console.print(f"results written to {output}/: results.json, results.md, tradeoff.png")
    if as_json:
        stdout.print(json.dumps(records, indent=2))
