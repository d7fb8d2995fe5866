"""`tgazsr eval`: zero-shot clean and robust accuracy per dataset, as JSON records and a Markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tgazsr_cli.cli import options as opt
from tgazsr_cli.cli.console import console, make_progress, stdout

if TYPE_CHECKING:
    from tgazsr_cli.api.evaluate import EvaluationInterrupted

CHECKPOINT_HELP = "tgazsr checkpoint file or run directory (repeatable: one table row each)."


def evaluate(
    checkpoint: Annotated[list[str] | None, typer.Option("--checkpoint", "-c", help=CHECKPOINT_HELP)] = None,
    model: opt.Model = None,
    pretrained: opt.Pretrained = None,
    original: Annotated[bool, opt.flag("--original", help="Also evaluate each checkpoint's start model.")
                        ] = False,
    recipe: Annotated[str | None, typer.Option(
        "--recipe", "-r", help="Take the defaults of every setting below from this recipe's eval section.")] = None,
    protocol: Annotated[str | None, typer.Option(
        "--protocol", "-p", help="A published evaluation protocol (`tgazsr protocols`): its datasets, class names, "
        "templates, preprocessing, selection and attack; flags still override.")] = None,
    as_published: Annotated[bool | None, typer.Option(
        "--as-published/--honest", metavar="", help="With --protocol: the reference's own scoring choices that "
        "inflate its numbers (fp16 attack gradients, ...), to compare with its table; default honest.")] = None,
    datasets: Annotated[list[str] | None, typer.Option(
        "--datasets", "-d", help="Dataset names or paths, comma-separated or repeated.")] = None,
    data_dir: Annotated[str | None, typer.Option(
        help="Local copy of the dataset; with several datasets, a folder holding one folder each.")] = None,
    split: Annotated[str | None, typer.Option(help="Split to evaluate (default test).")] = None,
    attack: Annotated[list[str] | None, typer.Option(
        "--attack", "-a", help="Attack or attack suite (`tgazsr attacks`); repeatable or a,b. Default: pgd.")] = None,
    suite: Annotated[list[str] | None, typer.Option(
        help="Attack suite (paper-pgd, paper-aa, autoattack) or dataset suite (zs16); repeatable.")] = None,
    eps: opt.OptionalEps = None,
    steps: opt.OptionalSteps = None,
    step_size: opt.OptionalStepSize = None,
    restarts: Annotated[int | None, typer.Option(
        min=1, help="Random restarts of pgd / cw / apgd (a point must survive each; suites set their own).")] = None,
    attack_precision: opt.OptionalAttackPrecision = None,
    loss_reduction: Annotated[str | None, typer.Option(
        help="The attack's cross-entropy over a batch: sum (default; exact under fp16) or mean.")] = None,
    robust_counting: Annotated[str | None, typer.Option(
        help="clean-and-robust (default: only clean-correct points count) or all (every image attacked).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Batch size (results do not depend on it).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="A seeded random subset of N examples per dataset.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the attack's random start and of --limit subsets.")] = None,
    sanity: Annotated[bool, typer.Option("--sanity/--no-sanity", metavar="",
                                         help="Run gradient-masking sanity checks (warnings).")] = True,
    workers: Annotated[int, typer.Option(min=0, help="Data loader workers.")] = 2,
    on_broken: Annotated[str, typer.Option(help="An undecodable image: skip (and count it) or fail.")] = "skip",
    device: opt.Device = "auto",
    threads: opt.Threads = None,
    text_cache: Annotated[str, typer.Option(
        help="Folder for cached class text features; auto: $TGAZSR_CACHE or ~/.cache/tgazsr; off: none.")] = "auto",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write results.json, results.md, results.csv and tradeoff.png here.")] = None,
    force: opt.Force = False,
    no_verify: opt.NoVerify = False,
    plots: Annotated[bool, opt.flag("--plots", help="Also write reliability-<model>.png (calibration, clean and "
                                                     "under attack) into --output.")] = False,
    as_json: Annotated[bool, opt.flag("--json", help="Print the result records as JSON on stdout.")] = False,
    defence: Annotated[str | None, typer.Option(
        help="Test-time defence in front of every model (ttc, noise, identity; default none): each attack is "
             "then reported non-adaptive (crafted on the bare model) and adaptive (through the defence).")] = None,
    defence_option: Annotated[list[str] | None, typer.Option(
        "--defence-option", help="A defence setting KEY=VALUE (repeatable), e.g. steps=2; see docs/defences.md.")
    ] = None,
    eot_samples: Annotated[int | None, typer.Option(
        min=1, help="EOT draws per gradient of the adaptive attack on a randomised defence (default 20).")] = None,
) -> None:
    """Zero-shot clean and adversarial accuracy of checkpoints or open_clip models on one or more datasets.

    Settings resolve as: defaults < the eval section of --recipe (else of the first checkpoint's recipe) < the
    protocol (--protocol, or the recipe's eval.protocol) < flags.
    """
    from tgazsr_cli.api.evaluate import EvalRequest, check_request, split_names

    given = {"protocol": protocol, "as_published": as_published, "restarts": restarts,
             "loss_reduction": loss_reduction, "robust_counting": robust_counting,
             "split": split, "eps": eps, "steps": steps, "step_size": step_size, "precision": attack_precision,
             "batch_size": batch_size, "limit": limit, "seed": seed, "data_dir": data_dir, "threads": threads,
             "defence": defence, "defence_options": defence_settings(defence_option), "eot_samples": eot_samples}
    request = EvalRequest(
        checkpoints=list(checkpoint or []), model=model, pretrained=pretrained, original=original,
        datasets=split_names(datasets), attacks=split_names(attack), suites=split_names(suite),
        recipe=recipe, settings={k: v for k, v in given.items() if v is not None},
        sanity=sanity, workers=workers, on_broken=on_broken, device=device, text_cache=text_cache,
        output=output, force=force, verify=not no_verify, plots=plots)
    check_request(request)  # usage errors before torch is imported

    from tgazsr_cli.api.evaluate import EvaluationInterrupted, run_evaluation
    from tgazsr_cli.evaluation.report import markdown_report

    try:
        with make_progress() as progress:
            result = run_evaluation(request, progress)
    except KeyboardInterrupt as exc:  # typer would exit 130 without a word
        stopped = exc if isinstance(exc, EvaluationInterrupted) else None
        if stopped is not None and not stopped.is_main_process:
            raise typer.Exit(130) from None
        if stopped is not None and stopped.records:
            console.print(markdown_report(stopped.records, stopped.partial))
            if as_json:
                stdout.print(json.dumps(stopped.records, indent=2))
        console.print(f"[red]interrupted[/red]{interrupted_detail(stopped, output)}")
        raise typer.Exit(130) from None
    if not result.is_main_process:
        return  # every rank holds the summed records; rank 0 reports them
    for notice in result.notices:
        console.print(f"[dim]{notice}[/dim]")
    console.print(markdown_report(result.records))
    if result.skipped_images:
        console.print(f"[yellow]skipped[/yellow] {result.skipped_images} undecodable image(s); see the report")
    if result.written:
        console.print(f"results written to {output}/: " + ", ".join(path.name for path in result.written))
    if as_json:
        stdout.print(json.dumps(result.records, indent=2))


def defence_settings(pairs: list[str] | None) -> dict[str, object] | None:
    """`--defence-option KEY=VALUE` pairs as a mapping, each value read as YAML (`2` an int, `0.5` a float)."""
    if not pairs:
        return None
    import yaml

    from tgazsr_cli.errors import UsageError

    settings: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--defence-option takes KEY=VALUE, got '{pair}'")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def interrupted_detail(stopped: EvaluationInterrupted | None, output: Path | None) -> str:
    """What an interrupted evaluation kept, after the word "interrupted"."""
    if stopped is None or not stopped.records:
        total = f" of {stopped.total} dataset(s)" if stopped is not None else " dataset"
        return f" before any{total} finished; nothing was written"
    where = (f"; their results are in {output}/: " + ", ".join(path.name for path in stopped.written)
             if stopped.written else "; their results are above")
    return f" after {stopped.finished} of {stopped.total} datasets{where} (marked partial)"
