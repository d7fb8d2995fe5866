"""The dataset files: ``datasets/<name>.yaml`` in the package and in each ``$TGAZSR_DATASET_PATH`` folder, as specs.

One YAML file describes one dataset (docs/datasets.md has the field reference)::

    name: cifar10
    description: CIFAR-10, 10 classes, 32x32; test 10,000
    sources: {hub: uoft-cs/cifar10, folders: [wds_cifar10], local: null, layout: "...; or {generic}"}
    splits: {train: {}, test: {size: 10000, hub_split: test, aliases: [val]}}   # whole: true = every image
    preprocessing: {resize_mode: resize}
    classnames: classnames/cifar10.txt      # a file beside this one, or an inline list
    class_keys: classnames/eurosat.txt      # optional: the file's keys (`key<TAB>name` lines), or a list
    exclude_classes: [BACKGROUND_Google]    # optional
    templates: ["This is a photo of a {}"]

The package's files are registered when `tgazsr_cli.data` is imported; the folders named in
``$TGAZSR_DATASET_PATH`` (`os.pathsep`-separated) are re-read whenever the table is looked up and has changed, so
a user adds a dataset without touching the package. Only PyYAML is imported here (no torch, no `datasets`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tgazsr_cli.config.loading import safe_load_unique
from tgazsr_cli.data.classnames import DATASETS_DIR, read_class_file
from tgazsr_cli.data.specs import (
    ALL_SPLITS,
    DEFAULT_TEMPLATES,
    GENERIC_LAYOUTS,
    LOCAL_LAYOUTS,
    DatasetSpec,
    SplitSpec,
    add_lookup_hook,
    is_registered,
    register_dataset,
    unregister_dataset,
)
from tgazsr_cli.errors import TgazsrError, UsageError, did_you_mean

ENV_PATH = "TGAZSR_DATASET_PATH"
SUFFIX = ".yaml"
FIELDS = ("name", "description", "sources", "splits", "preprocessing", "classnames", "class_keys",
          "exclude_classes", "templates", "license", "provenance")
SOURCE_FIELDS = ("hub", "local", "folders", "layout")
SPLIT_FIELDS = ("size", "hub_split", "whole", "aliases")
PREPROCESSING_FIELDS = ("resize_mode",)


def mapping_of(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise UsageError(f"{where}: expected a mapping, got {value!r}")
    return value


def known_fields(mapping: dict[str, Any], fields: Sequence[str], where: str) -> dict[str, Any]:
    for key in mapping:
        if key not in fields:
            raise UsageError(f"{where}: unknown field '{key}'{did_you_mean(key, fields)}; "
                             f"fields: {', '.join(fields)}")
    return mapping


def text_of(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def strings_of(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def _class_list(value: Any, folder: Path, where: str, *, keys: bool) -> tuple[str, ...]:
    """Inline names/keys, or those of a class-name file (path relative to the dataset file)."""
    if not isinstance(value, str):
        return strings_of(value, where)
    try:
        file_keys, names = read_class_file(folder / value)
    except TgazsrError as error:  # a missing or malformed class-name file is the dataset file's mistake
        raise UsageError(f"{where}: {error}") from error
    if keys and not file_keys:
        raise UsageError(f"{where}: {folder / value} has no 'key<TAB>name' lines to take class keys from")
    return file_keys if keys else names


def _size(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{where}: size must be a whole number of examples, got {value!r}")
    return value


def _splits(value: Any, where: str) -> dict[str, SplitSpec]:
    """Our split names (and their aliases) -> where each is at the source and how big it is."""
    splits: dict[str, SplitSpec] = {}
    for name, raw in mapping_of(value, where).items():
        here = f"{where}.{name}"
        entry = known_fields(mapping_of(raw, here), SPLIT_FIELDS, here)
        whole = entry.get("whole", False)
        if not isinstance(whole, bool):
            raise UsageError(f"{here}.whole: expected true or false")
        hub_split = text_of(entry.get("hub_split"), f"{here}.hub_split")
        if whole and hub_split:
            raise UsageError(f"{here}: a whole-set split reads every split of a local copy; drop hub_split")
        split = SplitSpec(ALL_SPLITS if whole else hub_split or name, _size(entry.get("size"), f"{here}.size"))
        for key in (name, *strings_of(entry.get("aliases"), f"{here}.aliases")):
            if key in splits:
                raise UsageError(f"{here}: split name '{key}' is given twice")
            splits[key] = split
    return splits


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; UsageError when it cannot be read or is not a mapping."""
    try:
        raw = safe_load_unique(path.read_text(encoding="utf-8"))  # a key given twice is an error, as in recipes
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise UsageError(f"{path} is not valid YAML: {reason}") from error
    return mapping_of(raw, str(path))


def spec_from_yaml(path: Path) -> DatasetSpec:
    """The spec one dataset file describes; UsageError naming the file and field for anything wrong."""
    raw = known_fields(read_yaml(path), FIELDS, str(path))
    where = str(path)
    sources = known_fields(mapping_of(raw.get("sources"), f"{where}: sources"), SOURCE_FIELDS, f"{where}: sources")
    preprocessing = known_fields(mapping_of(raw.get("preprocessing"), f"{where}: preprocessing"), PREPROCESSING_FIELDS,
                           f"{where}: preprocessing")
    if "classnames" not in raw:
        raise UsageError(f"{where}: 'classnames' is required (a list, or a class-name file beside it)")
    layout = text_of(sources.get("layout"), f"{where}: sources.layout")
    local = text_of(sources.get("local"), f"{where}: sources.local")
    try:
        return DatasetSpec(
            name=text_of(raw.get("name"), f"{where}: name") or path.stem,
            classnames=_class_list(raw["classnames"], path.parent, f"{where}: classnames", keys=False),
            templates=strings_of(raw.get("templates"), f"{where}: templates") or DEFAULT_TEMPLATES,
            resize_mode=text_of(preprocessing.get("resize_mode"), f"{where}: preprocessing.resize_mode")
            or "resize_crop",
            hub_id=text_of(sources.get("hub"), f"{where}: sources.hub"),
            splits=_splits(raw.get("splits"), f"{where}: splits"),
            description=text_of(raw.get("description"), f"{where}: description") or "",
            local_path=str(path.parent / Path(local).expanduser()) if local else None,
            layout_hint=layout.replace("{generic}", GENERIC_LAYOUTS) if layout else LOCAL_LAYOUTS,
            extra={key: str(raw[key]) for key in ("license", "provenance") if key in raw},
            exclude_classes=strings_of(raw.get("exclude_classes"), f"{where}: exclude_classes"),
            class_keys=_class_list(raw.get("class_keys"), path.parent, f"{where}: class_keys", keys=True),
            folder_names=strings_of(sources.get("folders"), f"{where}: sources.folders"),
            defined_in=str(path),
        )
    except UsageError as error:
        message = str(error)
        raise UsageError(message if where in message else f"{where}: {message}") from error


def dataset_files(folder: Path) -> list[Path]:
    """The dataset files directly in `folder`, sorted (none when it is not a folder)."""
    return sorted(p for p in folder.glob(f"*{SUFFIX}") if p.is_file()) if folder.is_dir() else []


def register_package_datasets(folder: Path = DATASETS_DIR) -> list[str]:
    """Register the package's dataset files (an error in one is raised: they ship with the code)."""
    names = []
    for path in dataset_files(folder):
        spec = spec_from_yaml(path)
        if not is_registered(spec.name):
            register_dataset(spec)
            names.append(spec.name)
    return names


def extra_folders() -> list[Path]:
    """The folders named in $TGAZSR_DATASET_PATH, in order."""
    value = os.environ.get(ENV_PATH, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


_seen: tuple[tuple[str, int], ...] = ()  # (file, mtime) of the $TGAZSR_DATASET_PATH files registered last
_added: list[str] = []  # the names they registered


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # removed since it was listed: the next lookup sees it gone
        return -1


def sync_path_datasets() -> None:
    """Make the table hold the datasets of the $TGAZSR_DATASET_PATH folders as they are now (a lookup hook).

    A broken file, or one naming a dataset that is already registered, is skipped with a warning.
    """
    global _seen
    folders = extra_folders()
    if not folders and not _seen:
        return
    files = [path for folder in folders for path in dataset_files(folder)]
    state = tuple((str(path), _mtime(path)) for path in files)
    if state == _seen:
        return
    for name in _added:
        unregister_dataset(name)
    _added.clear()
    _seen = state
    for path in files:
        try:
            spec = spec_from_yaml(path)
            register_dataset(spec)
        except TgazsrError as error:
            reason = str(error) if str(path) in str(error) else f"{path}: {error}"
            warnings.warn(f"skipping dataset file {reason}", stacklevel=4)  # at the caller of the lookup
            continue
        _added.append(spec.name)


def register_all() -> None:
    """Fill the table: the package's dataset files, the shipped folders, then $TGAZSR_DATASET_PATH on lookup."""
    from tgazsr_cli.data.sources.builtin import BUILTIN_ROOT, register_shipped

    register_package_datasets()
    register_shipped(BUILTIN_ROOT)
    add_lookup_hook(sync_path_datasets)
