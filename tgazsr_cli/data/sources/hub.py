"""The Hugging Face hub as a source: `datasets.load_dataset(hub_id, split=...)` (spec §8.10: never at import).

Not a folder on disk, so it registers no layout reader: `loading.py` calls `open_hub` for hub ids. Every failure
becomes a one-line `RuntimeFailure` that names the hub id and where a local copy can go instead. A dataset
already in the local `datasets` cache loads offline too. Unless offline mode is set, one short probe (shared
with weights/hub.py, kept for the process) says whether the hub answers; when it does not, `datasets` runs in
offline mode with its logging quiet, so a cached dataset still loads and an uncached one fails at once rather
than after five retries per file (about 23 s and ten lines of warnings).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from tgazsr_cli.data.sources.base import OpenedSource, first_line
from tgazsr_cli.data.specs import LOCAL_LAYOUTS
from tgazsr_cli.data.splits import split_candidates
from tgazsr_cli.errors import RuntimeFailure, UsageError
from tgazsr_cli.weights.hub import cache_only, unreachable_reason

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
