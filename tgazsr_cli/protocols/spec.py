"""A published evaluation protocol, read from its data file (`protocols/<name>.yaml`; docs/protocols.md).

A protocol names, per dataset, the registered dataset it reads, the split, class names and templates, the
preprocessing and the sample selection of one paper's code, and once for all its attack and how robust accuracy
is counted; every fact cites the line of the reference it was read from. What a protocol leaves out is the
dataset file's own. Reading needs PyYAML and the dataset table only, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tgazsr_cli.attacks.registry import check_attack_or_suite
from tgazsr_cli.attacks.threat import PRECISIONS
from tgazsr_cli.data.catalog import known_fields, mapping_of, read_yaml, strings_of, text_of
from tgazsr_cli.data.classnames import read_lines
from tgazsr_cli.data.specs import get_dataset_spec
from tgazsr_cli.data.views import DatasetView, Preprocessing, Selection
from tgazsr_cli.errors import TgazsrError, UsageError

REDUCTIONS = ("sum", "mean")
COUNTINGS = ("clean-and-robust", "all")
TOP_FIELDS = ("name", "description", "reference", "reproduces", "attack", "scoring", "as_published", "defaults",
              "datasets")
ATTACK_FIELDS = ("name", "eps", "steps", "step_size", "restarts", "source")
SCORING_FIELDS = ("precision", "loss_reduction", "robust_counting", "batch_size")
ENTRY_FIELDS = ("dataset", "split", "classnames", "merge_classes", "templates", "preprocessing", "selection",
                "clean_selection", "hub", "hub_split", "clip_benchmark_name", "source")
PREPROCESSING_FIELDS = ("resize", "interpolation", "crop", "native_resolution", "antialias")
SELECTION_FIELDS = ("mode", "count", "seed", "name")


@dataclass(frozen=True)
class ProtocolAttack:
    """The attack (or suite) of the protocol; eps and step size in 1/255. `name` "none": clean accuracy only."""

    name: str = "none"
    eps: float = 0.0
    steps: int = 0
    step_size: float = 1.0
    restarts: int = 1
    source: str = ""


@dataclass(frozen=True)
class Scoring:
    """How the attack is run and robust accuracy counted: attack autocast precision, the attack's loss over the
    batch (a sum keeps tiny per-sample gradients from underflowing), and whether robust accuracy counts only
    clean-correct points (`clean-and-robust`) or every attacked image (`all`)."""

    precision: str = "fp32"
    loss_reduction: str = "sum"
    robust_counting: str = "clean-and-robust"
    batch_size: int | None = None  # the reference's evaluation batch, which a batch-mean loss depends on
    source: str = ""
    why: str = ""


@dataclass(frozen=True)
class ProtocolDataset:
    """One dataset as the protocol reads it (every field resolved: the dataset file's facts where it is silent)."""

    key: str
    dataset: str
    split: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    preprocessing: Preprocessing
    selection: Selection
    merge_classes: dict[str, str] = field(default_factory=dict)
    clean_selection: Selection | None = None  # the images of a clean-only run, where the reference's differ
    hub: str | None = None
    hub_split: str | None = None
    clip_benchmark_name: str | None = None
    source: str = ""
    renamed: bool = False  # the protocol names the classes itself (not the dataset file's names)

    def view(self, clean_only: bool = False) -> DatasetView:
        """What `load_image_dataset` needs to read the dataset this way (for a run without attacks, the
        reference's clean images where they differ: RobustVLM's clean column scores every test image)."""
        selection = self.clean_selection if clean_only and self.clean_selection else self.selection
        return DatasetView(classnames=self.classnames if self.renamed or self.merge_classes else None,
                           templates=self.templates, merge_classes=dict(self.merge_classes),
                           preprocessing=self.preprocessing, selection=selection, hub=self.hub,
                           hub_split=self.hub_split)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "hub": self.hub, "hub_split": self.hub_split,
                "clip_benchmark_name": self.clip_benchmark_name, "num_classes": len(self.classnames),
                "classnames": list(self.classnames), "merge_classes": dict(self.merge_classes),
                "templates": list(self.templates), "preprocessing": self.preprocessing.to_dict(),
                "selection": self.selection.to_dict(),
                "clean_selection": self.clean_selection.to_dict() if self.clean_selection else None,
                "source": self.source}


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    reference: dict[str, str]
    reproduces: tuple[str, ...]
    attack: ProtocolAttack
    scoring: Scoring
    as_published: Scoring | None
    datasets: dict[str, ProtocolDataset]
    path: str = ""
    published: bool = False  # the reference's own inflating choices applied (`--as-published`)

    def as_published_version(self) -> Protocol:
        """The protocol with the reference's own scoring choices; UsageError if it has none."""
        if self.as_published is None:
            raise UsageError(f"protocol '{self.name}' has no as-published scoring: its defaults are the reference's")
        return replace(self, scoring=self.as_published, published=True)

    def to_dict(self) -> dict[str, Any]:
        scoring = {k: getattr(self.scoring, k) for k in SCORING_FIELDS}
        published = None if self.as_published is None else {
            **{k: getattr(self.as_published, k) for k in SCORING_FIELDS},
            "source": self.as_published.source, "why": self.as_published.why}
        return {"name": self.name, "description": self.description, "reference": self.reference,
                "reproduces": list(self.reproduces), "attack": vars(self.attack).copy(), "scoring": scoring,
                "as_published": published, "applied": "as-published" if self.published else "default",
                "datasets": {key: entry.to_dict() for key, entry in self.datasets.items()}}


# -- reading ------------------------------------------------------------------------------------------------
def _number(value: Any, where: str, *, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise UsageError(f"{where}: expected {'a whole number' if integer else 'a number'}, got {value!r}")
    return value


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise UsageError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _lines_or_list(value: Any, folder: Path, where: str) -> tuple[str, ...]:
    """An inline list of strings, or the lines of a file beside the protocol (`#` lines are comments)."""
    if isinstance(value, str):
        try:
            return read_lines(folder / value)
        except TgazsrError as error:
            raise UsageError(f"{where}: {error}") from error
    return strings_of(value, where)


def _attack(raw: Any, where: str) -> ProtocolAttack:
    data = known_fields(mapping_of(raw, where), ATTACK_FIELDS, where)
    name = text_of(data.get("name", "none"), f"{where}.name") or "none"
    if name != "none":
        check_attack_or_suite(name)
    return ProtocolAttack(name=name, eps=float(_number(data.get("eps", 0), f"{where}.eps")),
                          steps=_number(data.get("steps", 0), f"{where}.steps", integer=True),
                          step_size=float(_number(data.get("step_size", 1), f"{where}.step_size")),
                          restarts=_number(data.get("restarts", 1), f"{where}.restarts", integer=True),
                          source=str(data.get("source", "")))


def _scoring(raw: Any, where: str, base: Scoring | None = None) -> Scoring:
    data = known_fields(mapping_of(raw, where), (*SCORING_FIELDS, "source", "why"), where)
    base = base or Scoring()
    batch = data.get("batch_size", base.batch_size)
    if batch is not None and _number(batch, f"{where}.batch_size", integer=True) < 1:
        raise UsageError(f"{where}.batch_size: expected a positive number of images, got {batch}")
    return Scoring(precision=_choice(data.get("precision", base.precision), PRECISIONS, f"{where}.precision"),
                   loss_reduction=_choice(data.get("loss_reduction", base.loss_reduction), REDUCTIONS,
                                          f"{where}.loss_reduction"),
                   robust_counting=_choice(data.get("robust_counting", base.robust_counting), COUNTINGS,
                                           f"{where}.robust_counting"), batch_size=batch,
                   source=str(data.get("source", "")), why=str(data.get("why", "")))


def _preprocessing(raw: dict[str, Any], base: Preprocessing, where: str) -> Preprocessing:
    """`raw`'s steps over `base` (the dataset file's own), key by key."""
    data = {**base.to_dict(), **known_fields(raw, PREPROCESSING_FIELDS, where)}
    resize = data["resize"]
    try:
        return Preprocessing(resize=tuple(resize) if isinstance(resize, list) else resize,
                             interpolation=data["interpolation"], crop=data["crop"],
                             native_resolution=bool(data["native_resolution"]), antialias=bool(data["antialias"]))
    except UsageError as error:
        raise UsageError(f"{where}: {error}") from None


def _selection(raw: dict[str, Any], where: str) -> Selection:
    data = known_fields(raw, SELECTION_FIELDS, where)
    try:
        return Selection(mode=data.get("mode", "all"), count=data.get("count"), seed=data.get("seed", 0),
                         name=data.get("name"))
    except UsageError as error:
        raise UsageError(f"{where}: {error}") from None


def _entry(key: str, raw: Any, defaults: dict[str, Any], folder: Path, where: str) -> ProtocolDataset:
    own = known_fields(mapping_of(raw, where), ENTRY_FIELDS, where)
    data = {**defaults, **own}
    spec = get_dataset_spec(str(data.get("dataset", key)))
    preprocessing = {**mapping_of(defaults.get("preprocessing"), where),
                     **mapping_of(own.get("preprocessing"), f"{where}.preprocessing")}
    merge = {str(k): str(v) for k, v in mapping_of(data.get("merge_classes"), f"{where}.merge_classes").items()}
    names = _lines_or_list(data["classnames"], folder, f"{where}.classnames") if "classnames" in data else None
    if merge and names is None:
        raise UsageError(f"{where}: merge_classes needs the protocol's own classnames")
    if names is not None and len(names) != len(spec.classnames) - len(merge):
        raise UsageError(f"{where}.classnames: {len(names)} names for the {len(spec.classnames) - len(merge)} "
                         f"classes of {spec.name}" + (" after merge_classes" if merge else ""))
    templates = _lines_or_list(data["templates"], folder, f"{where}.templates") if "templates" in data else None
    if templates is not None and (not templates or any("{}" not in t for t in templates)):
        raise UsageError(f"{where}.templates: every template needs '{{}}' for the class name")
    return ProtocolDataset(
        key=key, dataset=spec.name, split=text_of(data.get("split", "test"), f"{where}.split") or "test",
        classnames=names or spec.classnames, templates=templates or spec.templates,
        preprocessing=_preprocessing(preprocessing, Preprocessing.of_resize_mode(spec.resize_mode),
                                     f"{where}.preprocessing"),
        selection=_selection(mapping_of(data.get("selection"), f"{where}.selection"), f"{where}.selection"),
        clean_selection=(_selection(mapping_of(data["clean_selection"], f"{where}.clean_selection"),
                                    f"{where}.clean_selection") if data.get("clean_selection") else None),
        merge_classes=merge, hub=text_of(data.get("hub"), f"{where}.hub"),
        hub_split=text_of(data.get("hub_split"), f"{where}.hub_split"),
        clip_benchmark_name=text_of(data.get("clip_benchmark_name"), f"{where}.clip_benchmark_name"),
        source=str(own.get("source", "")), renamed=names is not None)


def protocol_from_yaml(path: Path) -> Protocol:
    """Read and check one protocol file; UsageError naming the file and field on any mistake."""
    where = path.name
    data = known_fields(read_yaml(path), TOP_FIELDS, where)
    defaults = known_fields(mapping_of(data.get("defaults"), f"{where}: defaults"),
                            tuple(f for f in ENTRY_FIELDS if f not in ("dataset", "source")), f"{where}: defaults")
    raw_datasets = mapping_of(data.get("datasets"), f"{where}: datasets")
    if not raw_datasets:
        raise UsageError(f"{where}: a protocol names at least one dataset")
    reference = {str(k): str(v) for k, v in mapping_of(data.get("reference"), f"{where}: reference").items()}
    published = data.get("as_published")
    scoring = _scoring(data.get("scoring"), f"{where}: scoring")
    return Protocol(
        name=text_of(data.get("name", path.stem), f"{where}: name") or path.stem,
        description=" ".join(str(data.get("description", "")).split()), reference=reference,
        reproduces=strings_of(data.get("reproduces"), f"{where}: reproduces"),
        attack=_attack(data.get("attack"), f"{where}: attack"), scoring=scoring,
        as_published=_scoring(published, f"{where}: as_published", scoring) if published else None,
        datasets={str(key): _entry(str(key), raw, defaults, path.parent, f"{where}: datasets.{key}")
                  for key, raw in raw_datasets.items()},
        path=str(path))
