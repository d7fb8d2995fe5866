"""Datasets shipped inside the package (`builtin/<name>/`) and the manifests that describe local copies.

A shipped folder holds `manifest.json` = {name, description, classnames, templates, resize_mode, license,
provenance} beside `train.parquet` / `test.parquet`. Every such folder becomes a registered dataset read
through the local parquet path, so shipped data exercises the same code as a downloaded copy.
A `manifest.json` (or a `classnames.txt`, one name a line) beside any local parquet supplies class names.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from tgazsr_cli.data.opened import LocalManifest
from tgazsr_cli.data.specs import DEFAULT_TEMPLATES, DatasetSpec, is_registered, register_dataset
from tgazsr_cli.data.splits import canonical_split
from tgazsr_cli.errors import TgazsrError, UsageError

BUILTIN_ROOT = Path(__file__).with_name("builtin")
MANIFEST = "manifest.json"
CLASSNAMES_TXT = "classnames.txt"


def _strings(value: Any, key: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{path}: '{key}' must be a non-empty list of strings")
    return tuple(value)


def read_manifest(folder: Path) -> LocalManifest | None:
    """The manifest.json or classnames.txt in `folder`, or None when there is neither."""
    path = folder / MANIFEST
    if path.is_file():
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UsageError(f"{path} is not valid JSON: {error}") from error
        if not isinstance(raw, dict):
            raise UsageError(f"{path}: expected a JSON object")
        return LocalManifest(
            path=path,
            name=str(raw["name"]) if raw.get("name") else None,
            classnames=_strings(raw["classnames"], "classnames", path) if "classnames" in raw else None,
            templates=_strings(raw["templates"], "templates", path) if "templates" in raw else None,
            resize_mode=str(raw["resize_mode"]) if raw.get("resize_mode") else None,
            description=str(raw.get("description", "")),
            extra={k: str(raw[k]) for k in ("license", "provenance") if k in raw},
        )
    path = folder / CLASSNAMES_TXT
    if path.is_file():
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
        return LocalManifest(path=path, classnames=_strings(names, "classnames", path))
    return None


def spec_from_folder(folder: Path) -> DatasetSpec:
    """The spec of one shipped folder; UsageError when its manifest is missing or incomplete."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.path.name != MANIFEST:
        raise UsageError(f"{folder} has no {MANIFEST}")
    if manifest.classnames is None:
        raise UsageError(f"{manifest.path}: 'classnames' is required")
    splits = {}
    for file in sorted(folder.glob("*.parquet")):
        canonical = canonical_split(file.stem)
        if canonical is not None:
            splits[canonical] = canonical
    if not splits:
        raise UsageError(f"{folder} has no train.parquet / test.parquet")
    return DatasetSpec(
        name=manifest.name or folder.name,
        classnames=manifest.classnames,
        templates=manifest.templates or DEFAULT_TEMPLATES,
        resize_mode=manifest.resize_mode or "resize_crop",
        hub_id=None,
        splits=splits,
        description=manifest.description,
        local_path=str(folder),
        layout_hint=f"train.parquet / test.parquet beside a {MANIFEST}",
        extra=manifest.extra,
    )


def discover_shipped(root: Path = BUILTIN_ROOT) -> list[DatasetSpec]:
    """Specs of every `root/<name>/manifest.json` folder, sorted by folder name."""
    if not root.is_dir():
        return []
    return [spec_from_folder(folder) for folder in sorted(root.iterdir()) if (folder / MANIFEST).is_file()]


def register_shipped(root: Path = BUILTIN_ROOT, *, strict: bool = False) -> list[str]:
    """Register the shipped datasets under `root`; a broken folder is a warning (an error when `strict`)."""
    names = []
    folders = sorted(root.iterdir()) if root.is_dir() else []
    for folder in folders:
        if not (folder / MANIFEST).is_file():
            continue
        try:
            spec = spec_from_folder(folder)
            if is_registered(spec.name) and not strict:
                continue
            register_dataset(spec)
        except TgazsrError as error:
            if strict:
                raise
            warnings.warn(f"skipping shipped dataset {folder.name}: {error}", stacklevel=2)
            continue
        names.append(spec.name)
    return names
