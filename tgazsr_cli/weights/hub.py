"""Files of pretrained tags and `hf-hub:` models: from the local cache first, the hub only when it answers.

huggingface_hub retries a failing request five times with back-off (about 23 s per file, a warning line per
try), and open_clip asks for two file names per tag. So: a cached file is used without any request; offline
mode (`HF_HUB_OFFLINE=1`) never touches the network; otherwise one short request (2 s at most) says whether the
hub answers before any download starts, and its answer is kept for the process, so that weights, configs and
datasets (data/sources/hub.py) ask once between them. Each failure is one line that says how to pass local
weights instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tgazsr_cli.errors import RuntimeFailure

PROBE_TIMEOUT_S = 2.0
_TRUE = {"1", "ON", "YES", "TRUE"}
_PROBED: dict[str, str | None] = {}  # scheme://host -> why it did not answer (None: it did), once per process


def hub_offline() -> bool:
    """True when huggingface_hub is in offline mode (HF_HUB_OFFLINE, read at its import or set since)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def unreachable_reason(url: str | None = None) -> str | None:
    """Why the hub (or `url`'s host) cannot be used now, or None when one short request gets an answer."""
    if hub_offline():
        return "offline mode is set (HF_HUB_OFFLINE=1)"
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    parts = urlsplit(url or constants.ENDPOINT)
    host = f"{parts.scheme}://{parts.netloc}"
    if host not in _PROBED:
        try:  # any HTTP answer, even an error status, means the host is there; the session honours proxies
            get_session().head(f"{host}/", timeout=PROBE_TIMEOUT_S)
        except Exception as exc:  # connection, DNS, proxy and timeout errors all mean "not reachable"
            _PROBED[host] = f"{parts.netloc} is not reachable ({type(exc).__name__})"
        else:
            _PROBED[host] = None
    return _PROBED[host]


def forget_probes() -> None:
    """Probe each host again on its next use (tests; a long-lived process whose network came back)."""
    _PROBED.clear()


@contextmanager
def cache_only() -> Iterator[None]:
    """huggingface_hub offline and quiet within the block: cached files resolve, any request fails at once.

    For a hub found unreachable: its requests would each retry five times with a warning line per try.
    """
    from huggingface_hub import constants

    hub_logger = logging.getLogger("huggingface_hub")
    offline, level = constants.HF_HUB_OFFLINE, hub_logger.level
    constants.HF_HUB_OFFLINE = True
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = offline
        hub_logger.setLevel(level)


def _cached(repo_id: str, filenames: list[str], revision: str | None = None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, revision=revision)
        if isinstance(found, str) and Path(found).is_file():
            return found
    return None


def _weight_names(filename: str) -> list[str]:
    """open_clip's file names for a hub weights file, safetensors first (as its own download does)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    filename = filename or HF_WEIGHTS_NAME
    if filename == HF_WEIGHTS_NAME:
        return [HF_SAFE_WEIGHTS_NAME, filename]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def _cached_url_file(url: str) -> str | None:
    """open_clip's cache for URL-only tags (~/.cache/clip/<file>); its download re-checks the checksum."""
    path = Path("~/.cache/clip").expanduser() / os.path.basename(url)
    return str(path) if path.is_file() else None


def fetch_tag_weights(tag_cfg: dict[str, Any], what: str, local_hint: str) -> str:
    """The local file of a pretrained tag's weights: cached, else downloaded when the hub answers.

    `what` names the weights in the error ("pretrained weights 'openai' for ViT-B-32"), `local_hint` says how
    to pass a local file instead ("--pretrained PATH").
    """
    from open_clip.pretrained import download_pretrained

    hub = tag_cfg.get("hf_hub", "")
    url = "" if hub else tag_cfg.get("url", "")
    if "file" in tag_cfg:
        return str(tag_cfg["file"])
    if hub:
        repo_id, filename = os.path.split(hub)
        cached = _cached(repo_id, _weight_names(filename))
    else:
        cached = _cached_url_file(url) if url else None
    if cached is not None and hub:
        return cached
    if cached is None:
        reason = unreachable_reason(url or None)
        if reason is not None:
            raise RuntimeFailure(f"could not fetch {what}: {reason} and they are not in the local cache; "
                                 f"pass a local weights file instead: {local_hint}")
    try:
        return download_pretrained(tag_cfg)
    except Exception as exc:  # the hub raises many types; all mean "could not fetch"
        raise RuntimeFailure(f"could not download {what} ({type(exc).__name__}); "
                             f"pass a local weights file instead: {local_hint}") from exc


def fetch_hub_file(repo_id: str, filename: str, what: str, hint: str) -> str:
    """One file of a hub repository (e.g. an `hf-hub:` model's open_clip_config.json): cached, else downloaded."""
    from huggingface_hub import hf_hub_download

    cached = _cached(repo_id, [filename])
    if cached is not None:
        return cached
    reason = unreachable_reason()
    if reason is not None:
        raise RuntimeFailure(f"could not fetch {what}: {reason} and it is not in the local cache; {hint}")
    try:
        return hf_hub_download(repo_id, filename)
    except Exception as exc:  # the hub raises many types; all mean "could not fetch"
        raise RuntimeFailure(f"could not fetch {what} ({type(exc).__name__}); {hint}") from exc
