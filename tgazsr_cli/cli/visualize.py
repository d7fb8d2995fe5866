"""`tgazsr visualize-attention`: text-guided attention maps, clean vs adversarial, original vs fine-tuned."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tgazsr_cli.cli import options as opt
from tgazsr_cli.cli.console import console


def visualize_attention(
    image: Annotated[Path | None, typer.Argument(help="Image file (any format PIL reads).")] = None,
    checkpoint: opt.CheckpointPath = None,
    model: Annotated[str | None, typer.Option(help="Original model: open_clip name (default: the checkpoint's).")
                     ] = None,
    pretrained: opt.Pretrained = None,
    classes: Annotated[str | None, typer.Option(help="Comma-separated class names to score against.")] = None,
    dataset: Annotated[str | None, typer.Option(
        help="Class names and prompts from this dataset's built-in table (no download).")] = None,
    data_dir: opt.DataDir = None,
    index: Annotated[int | None, typer.Option(help="With --dataset and no IMAGE: this example of its test split.")
                     ] = None,
    pick_from: Annotated[int | None, typer.Option(
        min=1, help="With --dataset: of N examples, draw the one whose attention the attack moves most "
                    "in the original and least in the fine-tuned model.")] = None,
    label: Annotated[str | None, typer.Option(help="True class name (default: the model's clean prediction).")
                     ] = None,
    template: Annotated[str | None, typer.Option(help="Prompt template with {} (default: the dataset's).")] = None,
    attack_name: Annotated[str, typer.Option("--attack", help="Attack for the adversarial image.")] = "pgd",
    eps: opt.Eps = 1.0,
    steps: opt.Steps = 100,
    step_size: opt.StepSize = 1.0,
    attention_norm: Annotated[str, typer.Option(help="token-axis (reference) or per-token.")] = "token-axis",
    device: opt.Device = "auto",
    threads: opt.Threads = None,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Picture file to write: .png (default), .jpg, .pdf or .svg.")] = Path("attention.png"),
    force: Annotated[bool, opt.flag("--force", help="Overwrite an existing output file.")] = False,
    no_verify: opt.NoVerify = False,
) -> None:
    """Draw an image's text-guided attention map, clean and adversarial, for each model in one PNG panel."""
    from tgazsr_cli.api.visualize import VisualizeRequest, check_request
    from tgazsr_cli.attacks.threat import ThreatModel

    request = VisualizeRequest(
        image=image, checkpoint=checkpoint, model=model, pretrained=pretrained,
        classes=[c.strip() for c in (classes or "").split(",") if c.strip()], dataset=dataset, data_dir=data_dir,
        index=index, pick_from=pick_from, label=label, template=template, attack=attack_name,
        threat=ThreatModel(eps=eps, steps=steps, step_size=step_size), attention_norm=attention_norm,
        device=device, output=output, force=force, verify=not no_verify, threads=threads or 0)
    check_request(request)  # usage errors before torch is imported

    from tgazsr_cli.api.visualize import run_visualization

    result = run_visualization(request)
    for notice in result.notices:
        console.print(f"[dim]{notice}[/dim]")
    for row in result.rows:
        console.print(f"{row.name}: clean → {row.clean_prediction}, adversarial → {row.adversarial_prediction}; "
                      f"attention moved {row.map_shift:.3f}")
    where = f" (example {result.index})" if result.index is not None else ""
    console.print(f"attention panel written to {result.output}{where}")
