"""The Hugging Face hub as a source: `datasets.load_dataset(hub_id, split=...)` (spec §8.10: never at import).

Not a folder on disk, so it registers no layout reader: `loading.py` calls `open_hub` for hub ids. Every failure
becomes a one-line `RuntimeFailure` that names the hub id and where a local copy can go instead. A dataset
already in the local `datasets` cache loads offline too. Unless offline mode is set, one short probe (shared
with weights/hub.py, kept for the process) says whether the hub answers; when it does not, `datasets` runs in
offline mode with its logging quiet, so a cached dataset still loads and an uncached one fails at once rather
than after five retries per file (about 23 s and ten lines of warnings).

A repository of webdataset shards only (CLIP_benchmark's ``clip-benchmark/wds_*``: ``test/0.tar``,
``test/nshards.txt``, ``classnames.txt``) is read with the "webdataset" builder named: `datasets` would pick the
builder by the most common extension in a split and open a one-shard split (one .tar beside nshards.txt) as text.
Its file list comes from the hub (or, offline or unreachable, from the snapshot in the local hub cache); the
split's shards and classnames.txt are downloaded into that cache, so they load offline afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path, PurePosixPath

from tgazsr_cli.data.sources.base import CLASSNAMES_TXT, OpenedSource, first_line, read_manifest
from tgazsr_cli.data.sources.webdataset import TAR_SUFFIX, group_shards, is_webdataset_listing, load_shards
from tgazsr_cli.data.specs import ALL_SPLITS, LOCAL_LAYOUTS
from tgazsr_cli.data.splits import resolve_split, split_candidates
from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.weights.hub import cache_only, hub_offline, unreachable_reason

_OFFLINE_VARS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")


def offline_requested() -> bool:
    """True when the environment asks `datasets` / `huggingface_hub` to stay offline."""
    return any(os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for var in _OFFLINE_VARS)


def parse_hub_source(source: str) -> tuple[str, str | None]:
    """``hf:ORG/NAME`` or ``hf:ORG/NAME:CONFIG`` -> (hub id, config)."""
    rest = source[len("hf:"):] if source.startswith("hf:") else source
    hub_id, _, config = rest.partition(":")
    parts = hub_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise UsageError(f"'{source}' is not a hub dataset; write hf:ORG/NAME (as hf:zh-plus/tiny-imagenet)")
    return hub_id, config or None


def unreachable(hub_id: str, reason: str, layout_hint: str = LOCAL_LAYOUTS) -> RuntimeFailure:
    """The documented error for a hub dataset that could not be loaded."""
    offline = " (offline mode is set and it is not in the local cache)" if offline_requested() else ""
    return RuntimeFailure(
        f"could not load '{hub_id}' from the Hugging Face hub{offline}: {reason}; "
        f"put a local copy in a folder and pass it with --data-dir DIR ({layout_hint})"
    )


def open_hub(
    hub_id: str, split: str, *, config: str | None = None, name: str | None = None,
    layout_hint: str = LOCAL_LAYOUTS,
) -> OpenedSource:
    """Load one split of a hub dataset, trying the split's synonyms (valid/validation/val...) in turn."""
    import datasets

    down = None if offline_requested() else unreachable_reason(datasets.config.HF_ENDPOINT)

    def failure(error: Exception) -> RuntimeFailure:
        reason = f"{down} and it is not in the local cache" if down else first_line(error)
        return unreachable(hub_id, reason, layout_hint)

    if config is None:
        local_only = bool(down) or offline_requested() or hub_offline() or bool(datasets.config.HF_HUB_OFFLINE)
        try:
            with _datasets_cache_only() if down else nullcontext():
                opened = _open_hub_webdataset(hub_id, split, name=name, local_only=local_only,
                                              layout_hint=layout_hint)
        except (RuntimeFailure, UsageError):
            raise
        except Exception as error:  # huggingface_hub raises many types (LocalEntryNotFoundError, HTTP errors, ...)
            raise failure(error) from error
        if opened is not None:
            return opened
    unknown_split: ValueError | None = None
    for candidate in split_candidates(split):
        try:
            with _datasets_cache_only() if down else nullcontext():
                table = datasets.load_dataset(hub_id, config, split=candidate)
        except ValueError as error:
            if "unknown split" not in str(error).lower():
                raise failure(error) from error
            unknown_split = error
            continue
        except Exception as error:  # datasets raises many types (ConnectionError, HfHubHTTPError, ...)
            raise failure(error) from error
        if not isinstance(table, datasets.Dataset):
            raise RuntimeFailure(f"'{hub_id}' split '{candidate}' is not a map-style dataset")
        return OpenedSource(table=table, description=f"hf:{hub_id} split {candidate}", split=candidate,
                            name=name or hub_id)
    reason = first_line(unknown_split or ValueError())
    raise UsageError(f"hub dataset '{hub_id}' has no split '{split}': {reason}")


def _cached_snapshot(hub_id: str) -> Path | None:
    """The folder of the `main` snapshot of dataset repository `hub_id` in the local hub cache, or None."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(str(snapshot_download(hub_id, repo_type="dataset", local_files_only=True)))
    except Exception:  # LocalEntryNotFoundError and friends: nothing cached
        return None
    return folder if folder.is_dir() else None


def _repo_files(hub_id: str, local_only: bool) -> tuple[str | None, list[str]] | None:
    """(revision, relative file names) of a dataset repository; None when they cannot be listed.

    `local_only`: the files of the cached snapshot (revision None: the one `main` points at). Otherwise one
    request to the hub; a failing one leaves the `datasets` path to load or report the dataset.
    """
    if local_only:
        folder = _cached_snapshot(hub_id)
        if folder is None:
            return None
        return None, sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    import datasets
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=datasets.config.HF_ENDPOINT).dataset_info(hub_id)
    except Exception:  # not found, gated, no answer: `datasets.load_dataset` says so in its own words
        return None
    return info.sha, sorted(sibling.rfilename for sibling in info.siblings or [])


def _open_hub_webdataset(
    hub_id: str, split: str, *, name: str | None, local_only: bool, layout_hint: str,
) -> OpenedSource | None:
    """One split of a hub repository of webdataset shards; None when the repository has another layout."""
    listing = _repo_files(hub_id, local_only)
    if listing is None or not is_webdataset_listing(listing[1]):
        return None
    revision, names = listing
    shards = [PurePosixPath(n) for n in names if PurePosixPath(n).suffix.lower() == TAR_SUFFIX]
    groups = group_shards(PurePosixPath(), shards)
    if split == ALL_SPLITS:
        chosen, wanted = ALL_SPLITS, shards
    else:
        if set(groups) == {""}:  # shards that name no split: the one split `datasets` calls "train"
            groups = {"train": groups[""]}
        chosen = resolve_split(split, groups, where=f"hub dataset '{hub_id}'")
        wanted = groups[chosen]
    files = [s.as_posix() for s in wanted] + ([CLASSNAMES_TXT] if CLASSNAMES_TXT in names else [])
    folder = _download(hub_id, revision, files, local_only, layout_hint)
    table = load_shards([folder / s for s in wanted], "train" if chosen == ALL_SPLITS else chosen, f"hf:{hub_id}")
    return OpenedSource(table=table, description=f"hf:{hub_id} split {chosen}", split=chosen, name=name or hub_id,
                        base_dir=folder, manifest=read_manifest(folder))


def _download(hub_id: str, revision: str | None, files: list[str], local_only: bool, layout_hint: str) -> Path:
    """The snapshot folder holding `files` of the repository (fetched into the hub cache unless `local_only`)."""
    import datasets
    from huggingface_hub import snapshot_download

    folder = Path(str(snapshot_download(hub_id, repo_type="dataset", revision=revision, allow_patterns=files,
                                        local_files_only=local_only, endpoint=datasets.config.HF_ENDPOINT)))
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise unreachable(hub_id, f"{missing[0]} is not in the local cache", layout_hint)
    return folder


@contextmanager
def _datasets_cache_only() -> Iterator[None]:
    """`datasets` and huggingface_hub offline and quiet: the cache is read, no request is retried."""
    import datasets

    datasets_logger = logging.getLogger("datasets")
    offline, level = datasets.config.HF_HUB_OFFLINE, datasets_logger.level
    datasets.config.HF_HUB_OFFLINE = True
    datasets_logger.setLevel(logging.ERROR)  # "Using the latest cached version ..." is expected here
    try:
        with cache_only():
            yield
    finally:
        datasets.config.HF_HUB_OFFLINE = offline
        datasets_logger.setLevel(level)
