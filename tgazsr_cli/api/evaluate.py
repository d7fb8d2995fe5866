"""The `tgazsr eval` entry point: which models, which datasets, which settings; then the model x dataset loop.

Settings resolve as: built-in defaults < the `eval:` section of a recipe (`--recipe`, else the recipe the first
checkpoint was trained with) < the protocol it or a flag names (protocols/: datasets, attack, scoring, and per
dataset the class names, templates, preprocessing and selection) < explicit flags. Models of one input size
share one decoded copy of a dataset.
Results never overwrite earlier ones unless asked to (`force`), and an interrupted run leaves no empty folder:
Ctrl-C keeps the results of the datasets finished before it, written as a report marked partial.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgazsr_cli.attacks import ThreatModel, check_attack_names, check_attack_or_suite
from tgazsr_cli.config import EvalConfig, build_section, load_recipe
from tgazsr_cli.defences.registry import check_defence
from tgazsr_cli.errors import UsageError, unknown_name
from tgazsr_cli.evaluation.suites import resolve_suites
from tgazsr_cli.runtime.output import OutputFolder
from tgazsr_cli.runtime.progress import Progress, SilentProgress

if TYPE_CHECKING:
    from tgazsr_cli.protocols import Protocol

RESULT_FILES = ("results.json", "results.md", "results.csv", "tradeoff.png", "reliability-*.png",
                "clip_benchmark/*.json")
TEXT_CACHE_OFF = "off"


@dataclass
class EvalRequest:
    """Everything `tgazsr eval` was asked; `settings` holds only the eval-section values given explicitly."""

    checkpoints: list[str] = field(default_factory=list)
    model: str | None = None
    pretrained: str | None = None
    original: bool = False
    datasets: list[str] = field(default_factory=list)  # names or paths; empty: the recipe's eval.datasets
    attacks: list[str] = field(default_factory=list)  # attacks and attack suites; empty: the recipe's eval.attack
    suites: list[str] = field(default_factory=list)  # attack suites or dataset suites (recipes/eval)
    recipe: str | None = None  # a recipe whose eval section supplies the defaults
    settings: dict[str, Any] = field(default_factory=dict)  # EvalConfig keys: protocol, split, eps, steps, ...
    sanity: bool = True
    workers: int = 2
    on_broken: str = "skip"
    device: str = "auto"
    text_cache: str = "auto"  # a folder, "auto" ($TGAZSR_CACHE or ~/.cache/tgazsr) or "off"
    output: Path | None = None
    force: bool = False
    verify: bool = True  # check each checkpoint tensor against the digest written with it (runtime/digest.py)
    plots: bool = False  # also write reliability-<model>.png (evaluation/calibration.py) into `output`


@dataclass
class EvalResult:
    records: list[dict[str, Any]]
    settings: EvalConfig
    written: list[Path] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    is_main_process: bool = True  # under torchrun only rank 0 reports

    @property
    def skipped_images(self) -> int:
        return sum(record.get("skipped_images", 0) for record in self.records)


class EvaluationInterrupted(KeyboardInterrupt):
    """Ctrl-C during an evaluation: the records of the datasets finished before it and the reports written.

    A KeyboardInterrupt, so code that knows nothing of it still stops as on Ctrl-C.
    """

    def __init__(self, records: list[dict[str, Any]], finished: int, total: int) -> None:
        super().__init__(f"interrupted after {finished} of {total} datasets")
        self.records, self.finished, self.total = records, finished, total
        self.written: list[Path] = []
        self.is_main_process = True

    @property
    def partial(self) -> str:
        return f"interrupted after {self.finished} of {self.total} datasets"


def resolve_settings(request: EvalRequest, checkpoint_recipe: dict[str, Any]) -> tuple[EvalConfig, str | None]:
    """(the eval settings, where their defaults came from) — flags override the recipe's eval section."""
    settings, source, _ = settings_and_protocol(request, checkpoint_recipe)
    return settings, source


def settings_and_protocol(request: EvalRequest, checkpoint_recipe: dict[str, Any],
                          ) -> tuple[EvalConfig, str | None, Protocol | None]:
    """`resolve_settings`, and the protocol they name (read once: its files are read for every dataset)."""
    known = {f.name for f in fields(EvalConfig)}
    unknown = sorted(set(request.settings) - known)
    if unknown:
        raise UsageError(f"unknown evaluation setting '{unknown[0]}'")
    source, base = None, {}
    if request.recipe:
        base, source = load_recipe(request.recipe).to_dict()["eval"], f"recipe {request.recipe}"
    elif checkpoint_recipe.get("eval"):
        base, source = checkpoint_recipe["eval"], "the checkpoint's recipe"
    chosen = build_section(EvalConfig, {**base, **request.settings}, "eval.")
    protocol = protocol_of(chosen)
    if protocol is None:
        return chosen, source, None
    source = f"protocol {protocol.name}" + (" (as published)" if protocol.published else "")
    settings = build_section(EvalConfig, {**base, **protocol_settings(protocol), **request.settings}, "eval.")
    return settings, source, protocol


def protocol_of(settings: EvalConfig) -> Protocol | None:
    """The protocol the settings name (with its as-published scoring when asked), or None."""
    from tgazsr_cli.protocols import load_protocol

    if settings.protocol is None:
        if settings.as_published:
            raise UsageError("--as-published applies a protocol's reference choices: name one with --protocol")
        return None
    return load_protocol(settings.protocol, as_published=settings.as_published)


def protocol_settings(protocol: Protocol) -> dict[str, Any]:
    """The eval-section values a protocol fixes: its datasets, its attack and how robust accuracy is scored."""
    attack = protocol.attack
    threat = ({"attack": attack.name, "eps": attack.eps, "steps": attack.steps, "step_size": attack.step_size,
               "restarts": attack.restarts} if attack.name != "none" else {"eps": 0.0, "steps": 0})
    scoring = protocol.scoring
    batch = {"batch_size": scoring.batch_size} if scoring.batch_size else {}
    return {"datasets": list(protocol.datasets), **threat, "precision": scoring.precision,
            "loss_reduction": scoring.loss_reduction, "robust_counting": scoring.robust_counting, **batch}


def check_request(request: EvalRequest) -> None:
    """Errors that need no model or data: raised before torch is imported or any work is done."""
    if request.on_broken not in ("skip", "fail"):
        raise UsageError(f"--on-broken must be skip or fail, got '{request.on_broken}'")
    if not request.checkpoints and not request.model:
        raise UsageError("name what to evaluate: --checkpoint RUN_DIR|FILE (repeatable) or --model NAME")
    for name in request.attacks:
        check_attack_or_suite(name)
    resolve_suites(request.suites)
    given, _, protocol = settings_and_protocol(request, {})  # the values given, checked against their types
    check_defence(given.defence, given.defence_options)  # a known defence and valid settings of it
    if protocol is not None:
        dataset_names(request, resolve_suites(request.suites), given, protocol)  # each of the protocol's datasets
    if request.plots and request.output is None:
        raise UsageError("--plots writes reliability diagrams into the output folder: add --output DIR")
    if request.output is not None:
        OutputFolder(request.output, RESULT_FILES, force=request.force).validate()


def run_evaluation(request: EvalRequest, progress: Progress | None = None) -> EvalResult:
    """Evaluate every requested model on every dataset under every attack; write the reports if asked."""
    from tgazsr_cli.runtime import distributed as dist
    from tgazsr_cli.runtime.device import pick_device

    check_request(request)
    suites = resolve_suites(request.suites)
    output = OutputFolder(request.output, RESULT_FILES, force=request.force) if request.output else None
    if output is not None:
        output.check()
    with nothing_left_behind(output):
        torch_device = dist.init_from_env(pick_device(request.device))
        try:
            result = _evaluate_on(torch_device, request, suites, output, progress)
            dist.barrier()  # no rank leaves the group while another is still in a collective
        finally:
            dist.shutdown()  # an open gloo group torn down at exit can abort the slower rank
    return result


def _evaluate_on(torch_device: Any, request: EvalRequest, suites: Any, output: OutputFolder | None,
                 progress: Progress | None) -> EvalResult:
    from tgazsr_cli.runtime import distributed as dist
    from tgazsr_cli.runtime.threads import announced, use_threads

    models = load_models(request, torch_device)
    recipe = next((m.recipe for m in models if m.recipe), {})
    settings, source, protocol = settings_and_protocol(request, recipe)
    check_defence(settings.defence, settings.defence_options)
    progress = announced(progress, use_threads(torch_device, settings.threads, "eval.threads"))
    attacks = check_attack_names([*request.attacks, *suites.attack_suites] or split_names(settings.attack))
    threat = ThreatModel(eps=settings.eps, steps=settings.steps, step_size=settings.step_size,
                         restarts=settings.restarts, precision=settings.precision, seed=settings.seed,
                         loss_reduction=settings.loss_reduction)
    names = dataset_names(request, suites, settings, protocol)
    notices = [f"evaluation settings from {source}; flags override them"] if source else []
    result = EvalResult([], replace(settings, datasets=names), notices=notices,
                        is_main_process=dist.is_main_process())
    try:
        result.records = evaluate_all(models, names, request, settings, attacks, threat,
                                      progress or SilentProgress(), protocol)
    except KeyboardInterrupt as exc:
        stopped = exc if isinstance(exc, EvaluationInterrupted) else EvaluationInterrupted([], 0, len(names))
        stopped.is_main_process = result.is_main_process
        if output is not None and stopped.records and result.is_main_process:
            from tgazsr_cli.evaluation.report import write_reports

            # the finished datasets' results are kept; the folder is then not empty, so it stays
            stopped.written = write_reports(stopped.records, output.path, partial=stopped.partial)
        raise stopped from None
    if output is not None and result.is_main_process:
        from tgazsr_cli.evaluation.report import write_reports

        result.written = write_reports(result.records, output.path)
        if request.plots:
            from tgazsr_cli.evaluation.calibration import reliability_plots

            result.written += reliability_plots(result.records, output.path)
    return result


def dataset_names(request: EvalRequest, suites: Any, settings: EvalConfig, protocol: Protocol | None) -> list[str]:
    """The datasets to score, in order: the dataset suites', then --datasets, else the settings' (a protocol's);
    under a protocol each must be one of its datasets."""
    names = [*suites.datasets, *(n for n in request.datasets if n not in suites.datasets)] or settings.datasets
    if not names:
        raise UsageError("name the datasets to evaluate on with --datasets a,b,c")
    if protocol is not None:
        for name in names:
            if name not in protocol.datasets:
                raise unknown_name(f"dataset of protocol {protocol.name}", name, protocol.datasets)
    return names


def load_models(request: EvalRequest, device: Any) -> list[Any]:
    """The rows of the table: the base models (with --original, one per distinct base), the open_clip model,
    then the checkpoints, in the order given."""
    from tgazsr_cli.checkpoints.loading import load_model, original_model

    loaded = [load_model(checkpoint=path, device=device, verify=request.verify) for path in request.checkpoints]
    if request.model:
        loaded.insert(0, load_model(model=request.model, pretrained=request.pretrained, device=device))
    if request.original:
        bases = [original_model(item, device) for item in loaded if item.recipe]
        unique = {base.label: base for base in bases if base is not None}  # checkpoints sharing a base: one row
        loaded = list(unique.values()) + loaded
    if request.text_cache != TEXT_CACHE_OFF:
        folder = None if request.text_cache == "auto" else Path(request.text_cache).expanduser()
        for item in loaded:
            item.classifier.use_disk_cache(folder)
    return loaded


def evaluate_all(models: list[Any], names: list[str], request: EvalRequest, settings: EvalConfig,
                 attacks: list[str], threat: Any, progress: Progress,
                 protocol: Protocol | None = None) -> list[dict[str, Any]]:
    """The records of every model on every dataset; Ctrl-C raises EvaluationInterrupted with the records of the
    datasets every model had finished (a dataset some models had not reached is left out whole)."""
    from tgazsr_cli.evaluation.robust_accuracy import evaluate_sharded

    records: list[dict[str, Any]] = []
    finished = 0
    try:
        for name in names:
            by_size: dict[int, Any] = {}  # models of one input size share one decoded dataset
            of_dataset: list[dict[str, Any]] = []
            for item in models:
                size = item.classifier.image_size
                if size not in by_size:
                    by_size[size] = read_dataset(name, size, request, settings, protocol, len(names),
                                                 clean_only=not attacks or threat.eps == 0 or threat.steps == 0)
                data = by_size[size]
                item.classifier.resize_inside = data.resize_inside  # native resolution: resized in the model
                try:
                    found = evaluate_sharded(
                        item.classifier, data, model_label=item.label, attacks=attacks, threat=threat,
                        batch_size=settings.batch_size, num_workers=request.workers, progress=progress,
                        sanity=request.sanity, on_broken=request.on_broken, defence=settings.defence,
                        defence_options=settings.defence_options, eot_samples=settings.eot_samples,
                        robust_counting=settings.robust_counting, pretrained=weights_name(item),
                        protocol=protocol.name if protocol else None)
                finally:
                    item.classifier.resize_inside = None
                of_dataset.extend(with_protocol(record.to_dict(), protocol, name) for record in found)
            records.extend(of_dataset)
            finished += 1
    except KeyboardInterrupt:
        raise EvaluationInterrupted(records, finished, len(names)) from None
    return records


def weights_name(item: Any) -> str | None:
    """What CLIP_benchmark's `pretrained` column calls a model's weights: the tag, or the checkpoint's label."""
    return item.label if item.info is not None else item.classifier.spec.pretrained


def read_dataset(name: str, image_size: int, request: EvalRequest, settings: EvalConfig, protocol: Protocol | None,
                 count: int, clean_only: bool = False) -> Any:
    """Dataset `name` at `image_size`, read as the protocol says (if any; a clean-only run takes the reference's
    clean images); --data-dir is the copy itself for one dataset, else a folder of copies."""
    from tgazsr_cli.data import load_image_dataset

    where = {"data_dir": settings.data_dir} if count == 1 else {"data_root": settings.data_dir}
    if protocol is None:
        return load_image_dataset(name, split=settings.split, image_size=image_size, **where, limit=settings.limit,
                                  seed=settings.seed)
    entry = protocol.datasets[name]
    data = load_image_dataset(entry.dataset, split=request.settings.get("split", entry.split), image_size=image_size,
                              **where, limit=settings.limit, seed=settings.seed,
                              view=entry.view(clean_only))
    data.name = name
    return data


def with_protocol(record: dict[str, Any], protocol: Protocol | None, name: str) -> dict[str, Any]:
    """A record that says how its protocol (named in `record["protocol"]`) scored it, as published or with the
    honest defaults, and what CLIP_benchmark calls the dataset under it."""
    if protocol is not None:
        record["extra"]["protocol_scoring"] = "as-published" if protocol.published else "default"
        entry = protocol.datasets[name]
        if entry.clip_benchmark_name:
            record["extra"]["clip_benchmark_name"] = entry.clip_benchmark_name
    return record


@contextlib.contextmanager
def nothing_left_behind(output: OutputFolder | None) -> Iterator[None]:
    """On any failure or Ctrl-C: remove the output folder if this run created it and wrote nothing, re-raise."""
    try:
        yield
    except BaseException:
        if output is not None:
            output.discard_if_empty()
        raise


def split_names(values: str | list[str] | None) -> list[str]:
    """Names given comma-separated and/or repeated: `"pgd,cw"` or `["pgd,cw", "square"]` -> [pgd, cw, square]."""
    texts = [values] if isinstance(values, str) else values or []
    return [part.strip() for text in texts for part in text.split(",") if part.strip()]
