"""`tgazsr attack`: adversarial examples from a checkpoint, saved for inspection."""

from __future__ import annotations

from pathlib import Path

import typer

from tgazsr_cli.cli.console import console
from tgazsr_cli.cli.evaluate import check_output_folder


def attack(
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help="tgazsr checkpoint or run directory."),
    model: str | None = typer.Option(None, help="Or an open_clip model name, e.g. ViT-B-32."),
    pretrained: str | None = typer.Option(None, help="With --model: pretrained tag or weights file."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name or local path to draw images from."),
    data_dir: str | None = typer.Option(None, help="Local copy of the dataset."),
    split: str = typer.Option("test", help="Split to draw from."),
    attack_name: str = typer.Option("pgd", "--attack", "-a", help="Attack or attack suite (`tgazsr attacks`)."),
    eps: float = typer.Option(1.0, help="L-inf radius in /255."),
    steps: int = typer.Option(100, help="Attack iterations."),
    step_size: float = typer.Option(1.0, help="Step size in /255."),
    restarts: int = typer.Option(1, min=1, help="Random restarts per attack (suites set their own)."),
    attack_precision: str = typer.Option("fp32", help="Forward precision during the attack: fp32, bf16 or fp16."),
    num_examples: int = typer.Option(16, "--num-examples", "-n", min=1, help="How many examples to attack."),
    seed: int = typer.Option(0, help="Seed of the random start."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    output: Path = typer.Option(Path("adversarial"), "--output", "-o", help="Folder for PNGs, tensors, predictions."),
) -> None:
    """Attack examples of a dataset and write them as PNGs, one safetensors file and predictions.json."""
    from tgazsr_cli.engine.adversarial import attack_and_save
    from tgazsr_cli.engine.attacks import ThreatModel, resolve_attack
    from tgazsr_cli.engine.data import load_image_dataset
    from tgazsr_cli.engine.loading import load_model
    from tgazsr_cli.engine.runinfo import pick_device

    threat = ThreatModel(eps=eps, steps=steps, step_size=step_size, restarts=restarts,
                         precision=attack_precision, seed=seed)
    resolve_attack(attack_name)
    check_output_folder(output)
    loaded = load_model(checkpoint=str(checkpoint) if checkpoint else None, model=model, pretrained=pretrained,
                        device=pick_device(device))
    data = load_image_dataset(dataset, split=split, image_size=loaded.classifier.image_size, data_dir=data_dir)
    summary = attack_and_save(loaded.classifier, data, output, attack=attack_name, threat=threat,
                              num_examples=num_examples)
    n = summary.num_examples
    console.print(
        f"{loaded.label} on {data.name}: clean {summary.clean_correct}/{n} correct, "
        f"adversarial {summary.adversarial_correct}/{n} correct; max |delta| {summary.max_perturbation:.3f}/255"
    )
    console.print(f"wrote {n} clean/adversarial PNG pairs, {summary.tensor_file.name} and "
                  f"{summary.predictions_file.name} to {output}")
