"""`tgazsr visualize-attention`: text-guided attention maps, clean vs adversarial, original vs fine-tuned."""

from __future__ import annotations

from pathlib import Path

import typer

from tgazsr_cli.cli.console import console


def visualize_attention(
    image: Path | None = typer.Argument(None, help="Image file (any format PIL reads)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help="Fine-tuned checkpoint or run dir."),
    model: str | None = typer.Option(None, help="Original model: open_clip name (default: the checkpoint's)."),
    pretrained: str | None = typer.Option(None, help="With --model: pretrained tag or weights file."),
    classes: str | None = typer.Option(None, help="Comma-separated class names to score against."),
    dataset: str | None = typer.Option(None, help="Take class names and prompts from this dataset."),
    index: int | None = typer.Option(None, help="With --dataset and no IMAGE: use this example of its test split."),
    label: str | None = typer.Option(None, help="True class name (default: the model's clean prediction)."),
    template: str | None = typer.Option(None, help="Prompt template with {} (default: the dataset's)."),
    attack_name: str = typer.Option("pgd", "--attack", help="Attack for the adversarial image."),
    eps: float = typer.Option(1.0, help="L-inf radius in /255."),
    steps: int = typer.Option(100, help="Attack iterations."),
    step_size: float = typer.Option(1.0, help="Step size in /255."),
    attention_norm: str = typer.Option("token-axis", help="token-axis (reference) or per-token."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    output: Path = typer.Option(Path("attention.png"), "--output", "-o", help="PNG file to write."),
) -> None:
    """Draw an image's text-guided attention map, clean and adversarial, for each model in one PNG panel."""
    from tgazsr_cli.engine.attacks import ThreatModel, get_attack
    from tgazsr_cli.engine.attention import ATTENTION_NORMS
    from tgazsr_cli.engine.data import build_transform, load_image_dataset
    from tgazsr_cli.engine.errors import UsageError
    from tgazsr_cli.engine.loading import load_model, original_model
    from tgazsr_cli.engine.runinfo import pick_device
    from tgazsr_cli.engine.visualize import attention_row, draw_panel, read_image

    if attention_norm not in ATTENTION_NORMS:
        raise UsageError(f"--attention-norm must be one of {', '.join(ATTENTION_NORMS)}")
    threat = ThreatModel(eps=eps, steps=steps, step_size=step_size)
    get_attack(attack_name)
    torch_device = pick_device(device)
    models = []
    if checkpoint is not None:
        tuned = load_model(checkpoint=str(checkpoint), device=torch_device)
        base = load_model(model=model, pretrained=pretrained, device=torch_device) if model else \
            original_model(tuned, torch_device)
        models = [m for m in (base, tuned) if m is not None]
    elif model:
        models = [load_model(model=model, pretrained=pretrained, device=torch_device)]
    else:
        raise UsageError("name a model: --checkpoint RUN_DIR|FILE and/or --model NAME")
    size = models[0].classifier.image_size
    data = load_image_dataset(dataset, split="test", image_size=size) if dataset else None
    if classes:
        classnames = [c.strip() for c in classes.split(",") if c.strip()]
    elif data is not None:
        classnames = data.classnames
    else:
        raise UsageError("give the class names to score against: --classes a,b,c or --dataset NAME")
    templates = [template] if template else (data.templates if data is not None else ["This is a photo of a {}"])
    if image is not None:
        picture = read_image(image, build_transform(size, "resize_crop"))
        true_label = None
    elif data is not None and index is not None:
        if not 0 <= index < len(data.dataset):
            raise UsageError(f"--index must be in [0, {len(data.dataset) - 1}]")
        picture, true_label = data.dataset[index]
        true_label = int(true_label)
    else:
        raise UsageError("give an IMAGE file, or --dataset NAME with --index N")
    if label is not None:
        if label not in classnames:
            raise UsageError(f"--label '{label}' is not one of the class names")
        true_label = classnames.index(label)
    rows = [attention_row(m.label, m.classifier, picture, classnames, templates, label=true_label,
                          attack=attack_name, threat=threat, norm=attention_norm) for m in models]
    draw_panel(rows, output, title=f"{attack_name} eps {eps:g}/255, {steps} steps")
    for row in rows:
        console.print(f"{row.name}: clean → {row.clean_prediction}, adversarial → {row.adversarial_prediction}")
    console.print(f"attention panel written to {output}")
