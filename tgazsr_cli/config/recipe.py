"""Recipes: typed, validated training/evaluation settings read from YAML plus `key=value` overrides.

Defaults are the paper's TGA-ZSR row (spec §3). Unknown or mistyped keys are errors that name the
offending key, and the resolved recipe is written next to every output and into checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tgazsr_cli.errors import UsageError, did_you_mean
from tgazsr_cli.runtime.resources import package_path

RECIPES_DIR = package_path("recipes")  # inside the package; the top-level recipes/ links here
PAPER_TEMPLATE = "This is a photo of a {}"  # spec §3: training prompt


@dataclass
class ModelConfig:
    name: str = "ViT-B-32"
    pretrained: str | None = "openai"
    logit_scale: float = 100.0  # spec §3: fixed at exp(ln 100), never trained


@dataclass
class DataConfig:
    dataset: str = "tinyimagenet"
    data_dir: str | None = None
    split: str = "train"
    templates: list[str] = field(default_factory=lambda: [PAPER_TEMPLATE])
    batch_size: int = 128
    num_workers: int = 4
    limit: int | None = None
    on_broken: str = "skip"  # an image that cannot be decoded: skip and count it, or fail the run
    cache: str = "off"  # off | disk | device: decode once into a uint8 array file (data/decoded_cache.py)
    cache_dir: str | None = None  # default $TGAZSR_CACHE/decoded, else ~/.cache/tgazsr/decoded
    cache_size: int | None = None  # stored side S (resized on the device); null: the exact model input


@dataclass
class AttackConfig:
    """The training-time attack (spec §3): PGD-2 at 1/255, step 1/255, against the current model."""

    eps: float = 1.0
    steps: int = 2
    step_size: float = 1.0


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_steps: int = 1000
    schedule: str = "cosine"  # cosine | constant
    epochs: int = 10
    max_steps: int | None = None  # stop early after this many optimiser steps (quick runs)
    last_num_ft: int = 0  # 0 = whole image tower; k > 0 = only its last k parameter tensors


@dataclass
class TrainConfig:
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 (autocast; losses stay fp32)
    save_every: int = 500  # optimiser steps between resumable checkpoints
    keep_last: int = 3
    log_every: int = 10
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    on_nonfinite: str = "stop"  # stop (last good checkpoint kept) | skip (step skipped and counted)
    # torch.compile mode of the image towers' transformer: off | default | reduce-overhead (CUDA graphs) |
    # max-autotune; slow first steps, faster after. true / false (0.1 recipes) read as default / off.
    compile: str = "off"
    grad_checkpointing: bool = False  # recompute image-tower activations in backward: less memory, slower
    trainable: str = "full"  # full | last-k (optim.last_num_ft tensors) | lora (adapters on the image tower, `lora:`)


@dataclass
class LoraConfig:
    """LoRA adapters (peft) on the image tower when train.trainable=lora; see engine/lora.py."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["c_fc", "c_proj", "attn"])


@dataclass
class EvalConfig:
    datasets: list[str] = field(default_factory=lambda: ["tinyimagenet"])
    split: str = "test"
    data_dir: str | None = None
    attack: str = "pgd"
    eps: float = 1.0
    steps: int = 100
    step_size: float = 1.0
    precision: str = "fp32"
    batch_size: int = 256
    limit: int | None = None
    seed: int = 0


@dataclass
class Recipe:
    method: str = "tga-zsr"
    description: str = ""
    # the method's own typed settings (its Options dataclass); filled with every default when a recipe is loaded
    method_options: dict[str, Any] = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


CHOICES: dict[str, tuple[str, ...]] = {
    "optim.name": ("sgd", "adamw"),
    "optim.schedule": ("cosine", "constant"),
    "train.precision": ("fp32", "bf16"),
    "train.on_nonfinite": ("stop", "skip"),
    "train.trainable": ("full", "last-k", "lora"),
    "data.on_broken": ("skip", "fail"),
    "data.cache": ("off", "disk", "device"),
    "train.compile": ("off", "default", "reduce-overhead", "max-autotune"),
    "eval.precision": ("fp32", "bf16", "fp16"),
}
POSITIVE = {"data.batch_size", "eval.batch_size", "optim.epochs", "train.save_every", "train.keep_last",
            "train.log_every", "optim.lr", "attack.step_size", "eval.step_size", "lora.rank", "lora.alpha"}
NON_NEGATIVE = {"data.num_workers", "attack.steps", "eval.steps", "optim.warmup_steps", "optim.momentum",
                "optim.weight_decay", "optim.last_num_ft", "attack.eps", "eval.eps",
                "lora.dropout"}


# train.compile was true / false before it took a mode; the old values keep their meaning
BOOLEAN_BEFORE: dict[str, dict[bool, str]] = {"train.compile": {True: "default", False: "off"}}


def _choice_word(key: str, value: bool) -> str | bool:
    """The word a choice key meant where YAML read it as a boolean (`off`, `false`); other values unchanged."""
    if value in BOOLEAN_BEFORE.get(key, {}):
        return BOOLEAN_BEFORE[key][value]
    return "off" if value is False and "off" in CHOICES.get(key, ()) else value


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a dataclass field type, converting only where it is lossless."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key)
    if origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise UsageError(f"recipe key '{key}' must be a mapping, got {value!r}")
    if origin is list:
        (inner,) = typing.get_args(hint)
        items = value if isinstance(value, list) else [value]
        if isinstance(value, str) and inner is str and "," in value:
            items = [part.strip() for part in value.split(",") if part.strip()]
        return [_coerce(item, inner, key) for item in items]
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)  # YAML reads "1e-4" as a string
        if number is not None:
            if not math.isfinite(number):
                raise UsageError(f"recipe key '{key}' must be a finite number, got {value!r}")
            return number
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    name = getattr(hint, "__name__", str(hint))
    raise UsageError(f"recipe key '{key}' must be {name}, got {value!r}")


def build_section(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise UsageError(f"recipe section '{prefix.rstrip('.') or 'top level'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise UsageError(f"unknown recipe key '{full}'{did_you_mean(str(key), names)}")
        hint = hints[key]
        if isinstance(value, bool):
            value = _choice_word(full, value)
        if dataclasses.is_dataclass(hint):
            values[key] = build_section(hint, value or {}, f"{full}.")
        else:
            values[key] = _coerce(value, hint, full)
    return cls(**values)


def validate(recipe: Recipe) -> Recipe:
    """Range and choice checks that the types alone cannot express."""
    flat = _flatten(recipe.to_dict())
    for key, choices in CHOICES.items():
        if flat[key] not in choices:
            raise UsageError(f"recipe key '{key}' must be one of {', '.join(choices)}, got '{flat[key]}'")
    for key in POSITIVE:
        if flat[key] <= 0:
            raise UsageError(f"recipe key '{key}' must be > 0, got {flat[key]}")
    for key in NON_NEGATIVE:
        if flat[key] < 0:
            raise UsageError(f"recipe key '{key}' must be >= 0, got {flat[key]}")
    for key in ("data.limit", "eval.limit", "optim.max_steps", "data.cache_size"):
        if flat[key] is not None and flat[key] <= 0:
            raise UsageError(f"recipe key '{key}' must be > 0 when set, got {flat[key]}")
    for key in ("attack.eps", "eval.eps"):
        if flat[key] > 64:
            raise UsageError(f"recipe key '{key}' is in units of 1/255 and must be <= 64, got {flat[key]:g}")
    return recipe


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def find_recipe(name_or_path: str) -> Path:
    """A recipe file: a path, or a name under recipes/ (`tiny`, `paper/tga-zsr-vitb32-tinyimagenet`)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    stem = name_or_path.removesuffix(".yaml")
    candidates = sorted(RECIPES_DIR.rglob("*.yaml")) if RECIPES_DIR.is_dir() else []
    for candidate in candidates:
        relative = candidate.relative_to(RECIPES_DIR).with_suffix("").as_posix()
        if stem in (relative, candidate.stem):
            return candidate
    names = [c.relative_to(RECIPES_DIR).with_suffix("").as_posix() for c in candidates]
    raise UsageError(f"no recipe file or built-in recipe '{name_or_path}'{did_you_mean(stem, names)}")


def read_recipe_file(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Parse a recipe YAML safely; `extends: NAME` merges a parent recipe under this one."""
    path = path.resolve()
    if path in _seen:
        raise UsageError(f"recipe '{path}' extends itself through {' -> '.join(p.name for p in _seen)}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"recipe '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read recipe '{path}': {exc.strerror}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"recipe '{path}' must be a YAML mapping")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    local = path.parent / str(parent)
    parent_path = local if local.is_file() else find_recipe(str(parent))
    base = read_recipe_file(parent_path, (*_seen, path))
    if str(data.get("method", base.get("method", ""))).lower() != str(base.get("method", "")).lower():
        base.pop("method_options", None)  # another method's options: a recipe inherits the protocol, not those
    return deep_merge(base, data)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` with the value read as YAML (numbers, booleans, null, lists)."""
    if "=" not in text:
        raise UsageError(f"override '{text}' must look like key=value (e.g. method_options.alpha=0.08)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UsageError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"override '{'.'.join(path)}': '{part}' is not a section")
        node = child
    node[path[-1]] = value


def load_recipe(
    recipe: str | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> Recipe:
    """Defaults <- recipe file <- `--set key=value` overrides <- explicit flags (dotted keys)."""
    data = read_recipe_file(find_recipe(recipe)) if recipe else {}
    for text in overrides or []:
        apply_override(data, *parse_override(text))
    for key, value in (flags or {}).items():
        if value is not None:
            apply_override(data, key.split("."), value)
    return recipe_from_dict(data)


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """A validated recipe whose method_options hold every setting of its method (defaults filled in)."""
    from tgazsr_cli.config.legacy import upgrade_legacy_layout
    from tgazsr_cli.methods import resolve_method_options  # the registry knows each method's options

    data, legacy_options = upgrade_legacy_layout(data)
    return resolve_method_options(validate(build_section(Recipe, data, "")), legacy_options)
