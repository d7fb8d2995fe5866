"""`tgazsr attack`: adversarial examples from a checkpoint, saved for inspection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tgazsr_cli.cli import options as opt
from tgazsr_cli.cli.console import console


def attack(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name or local path to draw images from.")],
    checkpoint: opt.CheckpointPath = None,
    model: opt.Model = None,
    pretrained: opt.Pretrained = None,
    data_dir: opt.DataDir = None,
    split: Annotated[str, typer.Option(help="Split to draw from.")] = "test",
    attack_name: Annotated[str, typer.Option("--attack", "-a", help="Attack or attack suite (`tgazsr attacks`).")
                           ] = "pgd",
    eps: opt.Eps = 1.0,
    steps: opt.Steps = 100,
    step_size: opt.StepSize = 1.0,
    restarts: opt.Restarts = 1,
    attack_precision: opt.AttackPrecision = "fp32",
    num_examples: Annotated[int, typer.Option(
        "--num-examples", "-n", min=1, help="How many examples to attack (a seeded spread over the classes).")] = 16,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    threads: opt.Threads = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for PNGs, tensors, predictions.")
                      ] = Path("adversarial"),
    force: opt.Force = False,
    no_verify: opt.NoVerify = False,
) -> None:
    """Attack examples of a dataset and write them as PNGs, one safetensors file and predictions.json."""
    from tgazsr_cli.api.attack import AttackRequest, run_attack
    from tgazsr_cli.attacks import ThreatModel

    threat = ThreatModel(eps=eps, steps=steps, step_size=step_size, restarts=restarts,
                         precision=attack_precision, seed=seed)
    request = AttackRequest(
        dataset=dataset, checkpoint=checkpoint, model=model, pretrained=pretrained, data_dir=data_dir,
        split=split, attack=attack_name, threat=threat, num_examples=num_examples, device=device,
        output=output, force=force, verify=not no_verify, threads=threads or 0)
    result = run_attack(request)
    summary, n = result.summary, result.summary.num_examples
    for notice in result.notices:
        console.print(f"[yellow]note[/yellow]: {notice}")
    console.print(f"{result.model_label} on {result.dataset}: clean {summary.clean_correct}/{n} correct, "
                  f"adversarial {summary.adversarial_correct}/{n} correct; max |delta| "
                  f"{summary.max_perturbation:.3f}/255")
    console.print(f"wrote {n} examples (clean, adversarial and amplified-difference PNGs), "
                  f"{summary.tensor_file.name} and {summary.predictions_file.name} to {output}")
