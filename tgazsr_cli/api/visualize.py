"""The `tgazsr visualize-attention` entry point: which models, which image, which classes; then the panel.

Class names and prompt templates of a registered dataset come from its built-in table (no data is read);
only `--index` (an example of the dataset) needs the data itself, from the hub or `data_dir`. With
`pick_from N`, the example is chosen among N of a seeded spread over the classes: one the attack fools the
original model on but not the fine-tuned one, moving the original's attention most relative to the fine-tuned
model's (the panel prints both distances).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgazsr_cli.attacks.threat import ThreatModel
from tgazsr_cli.errors import UsageError

FALLBACK_TEMPLATE = "This is a photo of a {}"
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")  # what the panel can be saved as


@dataclass
class VisualizeRequest:
    image: Path | None = None
    checkpoint: str | None = None
    model: str | None = None
    pretrained: str | None = None
    classes: list[str] = field(default_factory=list)
    dataset: str | None = None
    data_dir: str | None = None
    index: int | None = None
    pick_from: int | None = None
    label: str | None = None
    template: str | None = None
    attack: str = "pgd"
    threat: ThreatModel = field(default_factory=ThreatModel)
    attention_norm: str = "token-axis"
    device: str = "auto"
    output: Path = Path("attention.png")
    force: bool = False  # overwrite an existing output file
    verify: bool = True  # check each checkpoint tensor against the digest written with it (runtime/digest.py)
    threads: int = 0  # torch's CPU threads on a CPU run; 0: OMP_NUM_THREADS, else automatic (runtime/threads.py)


@dataclass
class VisualizeResult:
    rows: list[Any]  # visualize.PanelRow, one per model
    output: Path
    index: int | None  # the dataset example drawn, if one was
    notices: list[str] = field(default_factory=list)  # e.g. the CPU thread count


def check_request(request: VisualizeRequest) -> None:
    """Errors that need no model or data; all but the last need no torch either."""
    if request.checkpoint is None and not request.model:
        raise UsageError("name a model: --checkpoint RUN_DIR|FILE and/or --model NAME")
    if request.image is None and (request.dataset is None or (request.index is None and not request.pick_from)):
        raise UsageError("give an IMAGE file, or --dataset NAME with --index N (or --pick-from N)")
    if not request.classes and request.dataset is None:
        raise UsageError("give the class names to score against: --classes a,b,c or --dataset NAME")
    if request.template is not None and "{}" not in request.template:
        raise UsageError("--template needs '{}' where the class name goes")
    if request.image is not None and not request.image.is_file():
        raise UsageError(f"image '{request.image}' does not exist")
    if request.dataset is not None:
        from tgazsr_cli.api.train import check_dataset_name

        check_dataset_name(request.dataset)
    check_picture_output(request)
    from tgazsr_cli.models.attention import ATTENTION_NORMS  # imports torch

    if request.attention_norm not in ATTENTION_NORMS:
        raise UsageError(f"--attention-norm must be one of {', '.join(ATTENTION_NORMS)}")


def check_picture_output(request: VisualizeRequest) -> None:
    """The panel's file: a picture format matplotlib writes, not an input, in a writable folder."""
    from tgazsr_cli.api.convert import check_output_file

    output = request.output
    if output.suffix.lower() not in PICTURE_SUFFIXES:
        raise UsageError(f"output '{output}' must be a picture file ending in {', '.join(PICTURE_SUFFIXES)}")
    check_output_file(output, {"input image": request.image, "checkpoint": request.checkpoint})
    if output.exists() and not request.force:
        raise UsageError(f"output '{output}' exists; pass --force to overwrite it")


def load_rows_models(request: VisualizeRequest, device: Any) -> list[Any]:
    """The original model first (the checkpoint's base, or --model), then the fine-tuned one."""
    from tgazsr_cli.checkpoints.loading import load_model, original_model

    if request.checkpoint is None:
        return [load_model(model=request.model, pretrained=request.pretrained, device=device)]
    tuned = load_model(checkpoint=request.checkpoint, device=device, verify=request.verify)
    tuned.label = f"fine-tuned ({tuned.label})"
    base = load_model(model=request.model, pretrained=request.pretrained, device=device) if request.model \
        else original_model(tuned, device)
    return [m for m in (base, tuned) if m is not None]


def class_set(request: VisualizeRequest) -> tuple[list[str], list[str]]:
    """(class names, templates) from --classes/--template or the dataset's built-in table, without its data."""
    from tgazsr_cli.data import get_dataset_spec
    from tgazsr_cli.data.specs import is_registered

    spec = get_dataset_spec(request.dataset) if request.dataset and is_registered(request.dataset) else None
    classnames = request.classes or (list(spec.classnames) if spec else [])
    templates = [request.template] if request.template else (list(spec.templates) if spec else [])
    return classnames, templates


def run_visualization(request: VisualizeRequest) -> VisualizeResult:
    from tgazsr_cli.attacks import get_attack
    from tgazsr_cli.runtime.device import pick_device
    from tgazsr_cli.runtime.threads import use_threads
    from tgazsr_cli.viz.attention_panel import draw_panel

    check_request(request)
    get_attack(request.attack)
    device = pick_device(request.device)
    models = load_rows_models(request, device)
    classnames, templates = class_set(request)
    size = models[0].classifier.image_size
    data = None
    if request.image is None or not classnames:
        from tgazsr_cli.data import load_image_dataset

        data = load_image_dataset(request.dataset, split="test", image_size=size, data_dir=request.data_dir)
        classnames = classnames or data.classnames
        templates = templates or data.templates
    templates = templates or [FALLBACK_TEMPLATE]
    if request.label is not None and request.label not in classnames:
        raise UsageError(f"--label '{request.label}' is not one of the class names")
    forced = classnames.index(request.label) if request.label is not None else None
    threads = use_threads(device, request.threads)
    if request.image is not None:
        index, rows = None, panel_rows(models, image_of(request.image, size), forced, classnames, templates,
                                       request)
    else:
        assert data is not None
        candidates = [request.index] if request.index is not None else spread(data, request.pick_from or 1, request)
        index, rows = most_telling(models, data, candidates, forced, classnames, templates, request)
    title = f"{request.attack} eps {request.threat.eps:g}/255, {request.threat.steps} steps"
    if index is not None:
        title += f" — {data.name if data else ''} example {index}"
    draw_panel(rows, request.output, title=title)
    return VisualizeResult(rows, request.output, index, [threads.describe()] if threads else [])


def image_of(path: Path, size: int) -> Any:
    from tgazsr_cli.data import build_transform
    from tgazsr_cli.viz.attention_panel import read_image

    return read_image(path, build_transform(size, "resize_crop"))


def example(data: Any, index: int) -> tuple[Any, int]:
    """One example of a dataset; a one-line error for an index out of range or an undecodable image."""
    if not 0 <= index < len(data.dataset):
        raise UsageError(f"--index must be in [0, {len(data.dataset) - 1}]")
    item = data.dataset[index]
    if item is None:
        raise UsageError(f"example {index} of {data.name} is an image that cannot be decoded; choose another index")
    return item[0], int(item[1])


def spread(data: Any, count: int, request: VisualizeRequest) -> list[int]:
    from tgazsr_cli.api.attack import spread_indices

    return spread_indices(data.labels(), count, request.threat.seed)


def panel_rows(models: list[Any], picture: Any, label: int | None, classnames: list[str], templates: list[str],
               request: VisualizeRequest) -> list[Any]:
    from tgazsr_cli.viz.attention_panel import attention_row

    return [attention_row(m.label, m.classifier, picture, classnames, templates, label=label,
                          attack=request.attack, threat=request.threat, norm=request.attention_norm)  # type: ignore
            for m in models]


def most_telling(models: list[Any], data: Any, candidates: list[int], forced: int | None, classnames: list[str],
                 templates: list[str], request: VisualizeRequest) -> tuple[int, list[Any]]:
    """The candidate whose attack fools the first (original) model but not the last (fine-tuned) one, and among
    those moves the original's map most relative to the fine-tuned one's (any candidate when none qualifies)."""
    best: tuple[tuple[bool, float], int, list[Any]] | None = None
    for index in candidates:
        picture, true_label = example(data, index)
        rows = panel_rows(models, picture, true_label if forced is None else forced, classnames, templates, request)
        shift = rows[0].map_shift - rows[-1].map_shift if len(rows) > 1 else rows[0].map_shift
        fooled_only_original = rows[0].adversarial_prediction != rows[0].map_class and (
            len(rows) == 1 or rows[-1].adversarial_prediction == rows[-1].map_class)
        score = (fooled_only_original, shift)
        if best is None or score > best[0]:
            best = (score, index, rows)
    assert best is not None
    return best[1], best[2]
