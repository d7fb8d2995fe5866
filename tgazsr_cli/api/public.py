"""The Python API: the functions `import tgazsr_cli` exports, which the commands call too.

Each takes the command's request object, or the same fields as keyword arguments, and returns the command's
result object. torch is imported only inside the functions that compute.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tgazsr_cli.api.attack import AttackRequest, AttackResult
from tgazsr_cli.api.evaluate import EvalRequest, EvalResult
from tgazsr_cli.api.train import TrainRequest
from tgazsr_cli.api.visualize import VisualizeRequest, VisualizeResult
from tgazsr_cli.config import EvalConfig, Recipe
from tgazsr_cli.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from tgazsr_cli.checkpoints.loading import LoadedModel
    from tgazsr_cli.data import ImageClassificationData
    from tgazsr_cli.protocols import Protocol
    from tgazsr_cli.runtime.progress import Progress
    from tgazsr_cli.training.outcomes import TrainResult

RequestT = TypeVar("RequestT")


def _request(cls: type[RequestT], request: RequestT | None, fields: dict[str, Any],
             extra: str | None = None, extra_keys: tuple[str, ...] = ()) -> RequestT:
    """`request`, or one built from keyword fields; keys in `extra_keys` are gathered into the field `extra`."""
    if request is not None:
        if fields:
            raise UsageError(f"give a {cls.__name__} or keyword settings, not both")
        return request
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    gathered = {key: fields.pop(key) for key in list(fields) if key in extra_keys and key not in names}
    for key in fields:
        if key not in names:
            raise UsageError(f"unknown setting '{key}' for {cls.__name__}{did_you_mean(key, [*names, *extra_keys])}")
    if extra is not None and gathered:
        fields[extra] = {**fields.get(extra, {}), **gathered}
    return cls(**fields)


def load_recipe(recipe: str | None = None, overrides: list[str] | None = None,
                flags: dict[str, Any] | None = None) -> Recipe:
    """A validated recipe with every option of its method filled in.

    Args:
        recipe: a recipe file or built-in name (`tgazsr recipes`), or None for the defaults (the paper's row).
        overrides: `key=value` strings, as `--set` takes them.
        flags: dotted keys and values that win over both, as explicit flags do (`{"optim.lr": 1e-3}`).
    Returns:
        The `Recipe` (typed dataclasses; `.to_yaml()` prints it).
    Example:
        >>> recipe = load_recipe("mini-world/tga-zsr", ["optim.epochs=1"])
        >>> recipe.method_options["alpha"]
        0.08
    """
    from tgazsr_cli.config import load_recipe as load
    from tgazsr_cli.methods import resolve_method_options

    return resolve_method_options(load(recipe, overrides, flags))


def load_model(checkpoint: str | Path | None = None, *, model: str | None = None, pretrained: str | None = None,
               device: str = "cpu") -> LoadedModel:
    """A zero-shot classifier from a tgazsr run folder or checkpoint, or from an open_clip name and weights.

    Args:
        checkpoint: a run folder or `.safetensors` checkpoint written by tgazsr.
        model, pretrained: instead, an open_clip model (`ViT-B-32`, `hf-hub:ORG/NAME`, `tgazsr-mini`) and its
            weights (`openai`, `tgazsr:mini-world-clip`, a file).
        device: `cpu`, `cuda`, `cuda:N` or `auto`.
    Returns:
        `LoadedModel` with `.classifier` (takes [0, 1] images, normalises inside), `.label` and `.recipe`.
    Example:
        >>> loaded = load_model(model="tgazsr-mini", pretrained="tgazsr:mini-world-clip")
        >>> loaded.classifier.image_size
        28
    """
    from tgazsr_cli.checkpoints.loading import load_model as load
    from tgazsr_cli.runtime.device import pick_device

    return load(checkpoint=str(checkpoint) if checkpoint else None, model=model, pretrained=pretrained,
                device=pick_device(device))


def load_dataset(name: str, *, split: str = "test", image_size: int = 224, data_dir: str | None = None,
                 limit: int | None = None, seed: int = 0) -> ImageClassificationData:
    """A labelled image dataset with its class names and prompt templates, ready for a DataLoader.

    Args:
        name: a registered dataset (`list_datasets()`), `hf:ORG/NAME`, or a local folder / parquet file.
        split: `train`, `test` or `val`; image_size: the model's input side; data_dir: a local copy.
        limit: a seeded random subset of that many examples (`seed`).
    Returns:
        `ImageClassificationData`: `.dataset` (tensors in [0, 1]), `.classnames`, `.templates`, `.labels()`.
    Example:
        >>> data = load_dataset("digits", image_size=28, limit=8)
        >>> len(data.dataset), data.classnames[:2]
        (8, ['zero', 'one'])
    """
    from tgazsr_cli.data import load_image_dataset

    return load_image_dataset(name, split=split, image_size=image_size, data_dir=data_dir, limit=limit, seed=seed)


def train(request: TrainRequest | None = None, /, *, progress: Progress | None = None,
          **fields: Any) -> TrainResult | None:
    """Adversarially fine-tune a CLIP image tower into a run folder (`tgazsr train`).

    Args:
        request: a `TrainRequest`, or its fields as keywords: `recipe`, `overrides` (`key=value` strings),
            `flags` (dotted keys), `output` (the run folder), `resume` (a run folder to continue).
        progress: hooks for progress reports (`runtime.progress.Progress`), or None.
    Returns:
        The `TrainResult` (steps, seconds, last loss parts, the final checkpoint), or None on torchrun ranks
        other than 0 and for a run that was already complete.
    Example:
        >>> result = train(recipe="tiny", overrides=["optim.max_steps=2"], output=Path("runs/tiny"))
        >>> result.final_checkpoint.name
        'final.safetensors'
    """
    from tgazsr_cli.api.train import plan_training, run_training

    plan = plan_training(_request(TrainRequest, request, fields))
    if plan.complete_at is not None:
        return None
    return run_training(plan, progress)


_EVAL_SETTINGS = tuple(f.name for f in dataclasses.fields(EvalConfig))


def evaluate(request: EvalRequest | None = None, /, *, progress: Progress | None = None,
             **fields: Any) -> EvalResult:
    """Zero-shot clean and robust accuracy per model, dataset and attack (`tgazsr eval`).

    Args:
        request: an `EvalRequest`, or its fields as keywords: `checkpoints` (run folders or files), `model` and
            `pretrained`, `original` (also the model a checkpoint started from), `datasets`, `attacks`, `suites`,
            `output` (write results.json/.md/.csv and a plot there), and the eval settings `eps`, `steps`,
            `step_size` (in /255), `limit`, `seed`, `precision`, `batch_size`, `split`, `data_dir`.
        progress: hooks for progress reports, or None.
    Returns:
        `EvalResult`: `.records`, one flat dict per model x dataset x attack (clean and robust accuracy in %, the
        threat model), and `.written` files.
    Example:
        >>> result = evaluate(model="tgazsr-mini", pretrained="tgazsr:mini-world-clip", datasets=["digits"],
        ...                   eps=2, steps=10, limit=50)
        >>> sorted(result.records[0])[:3]
        ['attack', 'batch_size', 'clean_accuracy']
    """
    from tgazsr_cli.api.evaluate import run_evaluation

    return run_evaluation(_request(EvalRequest, request, fields, "settings", _EVAL_SETTINGS), progress)


def attack(request: AttackRequest | None = None, /, **fields: Any) -> AttackResult:
    """Attack a seeded spread of a dataset's examples and save them as PNGs and tensors (`tgazsr attack`).

    Args:
        request: an `AttackRequest`, or its fields as keywords: `dataset`, `checkpoint` or `model` and
            `pretrained`, `attack` (an attack or suite), `threat` (a `ThreatModel`), `num_examples`, `output`.
    Returns:
        `AttackResult` with `.summary` (clean and adversarial correct counts, the largest perturbation, files).
    Example:
        >>> result = attack(dataset="digits", model="tgazsr-mini", pretrained="tgazsr:mini-world-clip",
        ...                 threat=ThreatModel(eps=2, steps=10), num_examples=4, output=Path("adv"))
    """
    from tgazsr_cli.api.attack import run_attack

    return run_attack(_request(AttackRequest, request, fields))


def attention_maps(request: VisualizeRequest | None = None, /, **fields: Any) -> VisualizeResult:
    """The text-guided attention map of an image, clean and adversarial, per model, drawn as one PNG panel.

    Args:
        request: a `VisualizeRequest`, or its fields as keywords: `image` (a picture) or `dataset` with `index`
            or `pick_from`, `checkpoint` (adds the original model's row) or `model` and `pretrained`, `classes`
            or `dataset` for the class names, `attack`, `threat`, `output` (the PNG).
    Returns:
        `VisualizeResult`: `.rows` (per model: predictions and the maps as tensors), `.output`, `.index`.
    Example:
        >>> result = attention_maps(dataset="digits", index=0, model="tgazsr-mini",
        ...                         pretrained="tgazsr:mini-world-clip", output=Path("attention.png"))
    """
    from tgazsr_cli.api.visualize import run_visualization

    return run_visualization(_request(VisualizeRequest, request, fields))


def list_methods() -> dict[str, str]:
    """Training method name -> one-line description (`tgazsr methods`)."""
    from tgazsr_cli.methods import all_methods

    return {name: cls.description for name, cls in sorted(all_methods().items())}


def list_attacks() -> dict[str, str]:
    """Attack and attack-suite name -> one-line description (`tgazsr attacks`)."""
    from tgazsr_cli.attacks import SUITE_HELP, all_attacks

    return {**{name: entry.help for name, entry in sorted(all_attacks().items())}, **SUITE_HELP}


def list_datasets() -> list[str]:
    """The registered dataset names (`tgazsr datasets`)."""
    from tgazsr_cli.data import list_datasets as names

    return names()


def list_protocols() -> list[str]:
    """The published evaluation protocols (`tgazsr protocols`): `tga-zsr`, `agft`, `robustvlm`, `clip-benchmark`."""
    from tgazsr_cli.protocols import list_protocols as names

    return names()


def load_protocol(name: str, *, as_published: bool = False) -> Protocol:
    """A published evaluation protocol, resolved (`tgazsr protocols NAME --json`); `evaluate(protocol=name)`
    evaluates under it.

    Args:
        name: a shipped protocol (`list_protocols()`) or the path of a protocol .yaml file.
        as_published: apply the reference's own scoring choices (fp16 attack gradients, ...) instead of the
            honest defaults.
    Returns:
        `Protocol`: `.datasets` (per dataset the class names, templates, split, preprocessing and selection),
        `.attack`, `.scoring`, `.reference` and `.to_dict()`.
    Example:
        >>> load_protocol("agft").datasets["caltech101"].classnames[0]
        'person'
    """
    from tgazsr_cli.protocols import load_protocol as load

    return load(name, as_published=as_published)
