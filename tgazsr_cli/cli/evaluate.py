"""`tgazsr eval`: zero-shot clean and robust accuracy per dataset, as JSON records and a Markdown table."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import typer

from tgazsr_cli.cli.console import RichProgress, console, stdout
from tgazsr_cli.engine.progress import SilentProgress

CHECKPOINT_HELP = "tgazsr checkpoint file or run directory (repeatable: one table row each)."


def split_names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@contextlib.contextmanager
def quiet() -> Iterator[SilentProgress]:
    """No progress bars (ranks other than 0 under torchrun)."""
    yield SilentProgress()


def local_copy(data_dir: str | None, name: str, num_datasets: int) -> str | None:
    """--data-dir is the copy itself for one dataset, else a root with a folder per dataset (hub if absent)."""
    if data_dir is None or num_datasets == 1:
        return data_dir
    candidate = Path(data_dir).expanduser() / name
    return str(candidate) if candidate.exists() else None


def check_output_folder(output: Path) -> None:
    """Fail before any work when the results could not be written."""
    import os

    from tgazsr_cli.engine.errors import UsageError

    if output.exists() and not output.is_dir():
        raise UsageError(f"output {output} exists and is not a folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {output}: {exc.strerror}") from None
    if not os.access(output, os.W_OK):
        raise UsageError(f"output folder {output} is not writable")


def evaluate(
    checkpoint: list[Path] | None = typer.Option(None, "--checkpoint", "-c", help=CHECKPOINT_HELP),
    model: str | None = typer.Option(None, help="Evaluate an open_clip model instead: name, e.g. ViT-B-32."),
    pretrained: str | None = typer.Option(None, help="With --model: pretrained tag (e.g. openai) or weights file."),
    original: bool = typer.Option(False, "--original", help="Also evaluate the model each checkpoint started from."),
    datasets: str | None = typer.Option(None, "--datasets", "-d", help="Comma-separated dataset names or paths."),
    data_dir: str | None = typer.Option(
        None, help="Local copy of the dataset; with several datasets, a folder holding one <name>/ folder each."),
    split: str = typer.Option("test", help="Split to evaluate."),
    attack: list[str] | None = typer.Option(
        None, "--attack", "-a", help="Attack or attack suite (`tgazsr attacks`); repeatable or a,b. Default: pgd."),
    suite: list[str] | None = typer.Option(
        None, "--suite", help="Attack suite (paper-pgd, paper-aa, autoattack) or dataset suite (zs16); repeatable."),
    eps: float = typer.Option(1.0, help="L-inf radius in /255 (0 = clean only)."),
    steps: int = typer.Option(100, help="Attack iterations (the paper: 100)."),
    step_size: float = typer.Option(1.0, help="Attack step size in /255."),
    restarts: int = typer.Option(1, min=1, help="Random restarts per attack (suites set their own)."),
    attack_precision: str = typer.Option("fp32", help="Forward precision during the attack: fp32, bf16 or fp16."),
    batch_size: int = typer.Option(256, min=1, help="Evaluation batch size (results do not depend on it)."),
    limit: int | None = typer.Option(None, min=1, help="Evaluate a seeded random subset of N examples per dataset."),
    seed: int = typer.Option(0, help="Seed of the attack's random start and of --limit subsets."),
    sanity: bool = typer.Option(True, "--sanity/--no-sanity", help="Run gradient-masking sanity checks (warnings)."),
    workers: int = typer.Option(2, min=0, help="Data loader workers."),
    on_broken: str = typer.Option("skip", help="An image that cannot be decoded: skip (and count it) or fail."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    text_cache: str = typer.Option(
        "auto", help="Folder for cached class text features; auto: $TGAZSR_CACHE or ~/.cache/tgazsr; off: none."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write results.json, results.md, results.csv and tradeoff.png here."),
    as_json: bool = typer.Option(False, "--json", help="Print the result records as JSON on stdout."),
) -> None:
    """Zero-shot clean and adversarial accuracy of checkpoints or open_clip models on one or more datasets."""
    from tgazsr_cli.engine import distributed as dist
    from tgazsr_cli.engine.attacks import ThreatModel
    from tgazsr_cli.engine.data import load_image_dataset
    from tgazsr_cli.engine.errors import UsageError
    from tgazsr_cli.engine.eval_suites import resolve_suites
    from tgazsr_cli.engine.evaluator import check_attack_names, evaluate_sharded
    from tgazsr_cli.engine.loading import load_model, original_model
    from tgazsr_cli.engine.report import markdown_report, write_reports
    from tgazsr_cli.engine.runinfo import pick_device

    if on_broken not in ("skip", "fail"):
        raise UsageError(f"--on-broken must be skip or fail, got '{on_broken}'")
    threat = ThreatModel(eps=eps, steps=steps, step_size=step_size, restarts=restarts,
                         precision=attack_precision, seed=seed)
    suites = resolve_suites([name for text in suite or [] for name in split_names(text)])
    attacks = [name for text in attack or [] for name in split_names(text)]
    attacks = check_attack_names([*attacks, *suites.attack_suites] or ["pgd"])
    if output is not None:
        check_output_folder(output)
    if not checkpoint and not model:
        raise UsageError("name what to evaluate: --checkpoint RUN_DIR|FILE (repeatable) or --model NAME")
    torch_device = dist.init_from_env(pick_device(device))
    loaded = [load_model(checkpoint=str(path), device=torch_device) for path in checkpoint or []]
    if model:
        loaded.insert(0, load_model(model=model, pretrained=pretrained, device=torch_device))
    if original:
        bases = [original_model(item, torch_device) for item in loaded if item.recipe]
        unique = {base.label: base for base in bases if base is not None}  # checkpoints sharing a base: one row
        loaded = list(unique.values()) + loaded
    if text_cache != "off":
        for item in loaded:
            item.classifier.use_disk_cache(None if text_cache == "auto" else Path(text_cache).expanduser())
    names = [*suites.datasets, *(n for n in split_names(datasets) if n not in suites.datasets)]
    if not names:
        recipe = loaded[-1].recipe
        names = recipe.get("eval", {}).get("datasets") or [recipe.get("data", {}).get("dataset", "")]
        names = [n for n in names if n]
    if not names:
        raise UsageError("name the datasets to evaluate on with --datasets a,b,c")
    records = []
    with RichProgress() if dist.is_main_process() else quiet() as progress:
        for name in names:
            by_size = {}  # models of one input size share one decoded dataset
            for item in loaded:
                size = item.classifier.image_size
                if size not in by_size:
                    by_size[size] = load_image_dataset(name, split=split, image_size=size,
                                                       data_dir=local_copy(data_dir, name, len(names)),
                                                       limit=limit, seed=seed)
                data = by_size[size]
                found = evaluate_sharded(item.classifier, data, model_label=item.label, attacks=attacks,
                                         threat=threat, batch_size=batch_size, num_workers=workers,
                                         progress=progress, sanity=sanity, on_broken=on_broken)
                records.extend(record.to_dict() for record in found)
    if not dist.is_main_process():
        return  # every rank holds the summed records; rank 0 reports them
    console.print(markdown_report(records))
    if output is not None:
        written = write_reports(records, output)
        console.print(f"results written to {output}/: " + ", ".join(path.name for path in written))
    if as_json:
        stdout.print(json.dumps(records, indent=2))
