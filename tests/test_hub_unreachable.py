"""A hub that does not answer, without HF_HUB_OFFLINE: probed once per process (2 s at most), then every uncached
model or dataset fails at once in one line, with no retry warnings; cached files are still used.

Only loopback endpoints: a closed port (connection refused) and a port that accepts but never answers (what a
firewall that drops packets looks like).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tgazsr_cli.data import load_image_dataset
from tgazsr_cli.errors import RuntimeFailure
from tgazsr_cli.models.building import resolve_model_spec
from tgazsr_cli.weights import hub as hub_files

SLACK_S = 5.0  # the bound: the old path spent about 23 s in retries
CLI_SLACK_S = 10.0  # a CLI run past its imports: wider, as import times on a shared box vary by seconds


def closed_port() -> str:
    with socket.socket() as probe:  # bound then released: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def silent_endpoint() -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback port that accepts connections and never answers; the accepted connections are listed."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.05)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])  # held open, never answered
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()


@pytest.fixture
def online_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """This process as a user's without HF_HUB_OFFLINE, with empty caches in tmp_path; returns `point_at(url)`."""
    import datasets
    import huggingface_hub.constants as constants

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    hub_files.forget_probes()

    def point_at(endpoint: str) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)

    yield point_at
    hub_files.forget_probes()
    assert constants.HF_HUB_OFFLINE is False and datasets.config.HF_HUB_OFFLINE is False  # restored after use


def fill_datasets_cache(cache: Path, hub_id: str, tmp_path: Path) -> None:
    """What `datasets` leaves in its cache after loading `hub_id` once: <ns>___<name>/default/0.0.0/<hash>/."""
    import io

    import datasets
    from datasets.packaged_modules.parquet.parquet import Parquet
    from PIL import Image

    rows = []
    for i in range(6):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(buffer, "PNG")
        rows.append({"image": {"bytes": buffer.getvalue(), "path": None}, "label": i % 2})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["dark", "light"])})
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp_path / "train.parquet"))
    name = hub_id.split("/")[1]
    builder = Parquet(cache_dir=str(tmp_path / "build"), dataset_name=name, config_name="default",
                      data_files={"train": str(tmp_path / "train.parquet")}, hash="0123abcd")
    builder.download_and_prepare()
    built = next((tmp_path / "build" / name).glob("default*/0.0.0/0123abcd"))
    target = cache / hub_id.replace("/", "___") / "default" / "0.0.0"
    target.mkdir(parents=True)
    built.rename(target / "0123abcd")


def test_a_silent_hub_is_probed_once_then_model_and_dataset_fail_at_once(
        online_mode, silent_endpoint: tuple[str, list[socket.socket]]) -> None:
    endpoint, accepted = silent_endpoint
    online_mode(endpoint)
    started = time.monotonic()
    with pytest.raises(RuntimeFailure) as model_error:
        resolve_model_spec("hf-hub:nobody/uncached-model")
    with pytest.raises(RuntimeFailure) as data_error:
        load_image_dataset("hf:nobody/uncached-set", split="train", image_size=16)
    seconds = time.monotonic() - started
    assert len(accepted) == 1  # one probe for the process; no download was tried
    assert hub_files.PROBE_TIMEOUT_S <= seconds < SLACK_S  # the probe's 2 s wait, once; no retries
    host = endpoint.removeprefix("http://")
    for error in (model_error.value, data_error.value):
        assert f"{host} is not reachable (ReadTimeout) and it is not in the local cache" in str(error)
        assert error.exit_code == 1 and "\n" not in str(error)
    assert "'nobody/uncached-set'" in str(data_error.value) and "--data-dir" in str(data_error.value)


def test_a_cached_dataset_loads_while_the_hub_is_unreachable(online_mode, tmp_path: Path,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    import datasets

    online_mode(closed_port())
    fill_datasets_cache(Path(datasets.config.HF_DATASETS_CACHE), "nobody/cached-set", tmp_path)
    capfd.readouterr()
    started = time.monotonic()
    data = load_image_dataset("hf:nobody/cached-set", split="train", image_size=16)
    assert time.monotonic() - started < SLACK_S
    assert len(data.dataset) == 6 and data.classnames == ["dark", "light"]
    assert [data.dataset[i][1] for i in range(6)] == [0, 1, 0, 1, 0, 1]
    assert "Retrying" not in capfd.readouterr().err and "is not reachable" in hub_files.unreachable_reason()


# -- the command line, as a user runs it -----------------------------------------------------------------------
def cli_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    return {**env, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "HOME": str(tmp_path),
            "TGAZSR_CACHE": str(tmp_path / "tgazsr"), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def import_seconds(tmp_path_factory: pytest.TempPathFactory) -> float:
    """What the heavy imports alone take on this machine now (busy or not): the CLI pays them before failing."""
    env = cli_env(tmp_path_factory.mktemp("imports"), closed_port())
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import open_clip, datasets, tgazsr_cli.models.classifier, "
                    "tgazsr_cli.data, tgazsr_cli.api.evaluate"], check=True, env=env)
    return time.monotonic() - started


@pytest.mark.parametrize(("args", "needle"), [
    (["--model", "hf-hub:nobody/uncached-model", "-d", "tgazsr-mini-cats"], "open_clip config of 'hf-hub:nobody"),
    (["--model", "tgazsr-tiny", "-d", "hf:nobody/uncached-set", "--limit", "4"], "could not load 'nobody/uncached"),
])
def test_eval_against_a_closed_port_fails_fast_in_one_line(tmp_path: Path, import_seconds: float, args: list[str],
                                                          needle: str) -> None:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tgazsr_cli", "eval", *args, "--device", "cpu"],
                            capture_output=True, text=True, timeout=120, env=cli_env(tmp_path, closed_port()))
    seconds = time.monotonic() - started
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) <= 2 and "Retrying" not in result.stderr, result.stderr  # at most the CPU-threads note
    assert lines[-1].startswith("error: ") and needle in lines[-1] and "is not reachable" in lines[-1]
    assert seconds < import_seconds + CLI_SLACK_S, (seconds, import_seconds)  # retries took 23 s more


def test_a_cached_hub_model_loads_at_once_from_a_silent_hub(silent_endpoint, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Online mode, the model's files cached: open_clip's own requests would each wait out a 10 s timeout."""
    import huggingface_hub.constants as constants

    from tests.hubcache import fill_hub_cache
    from tgazsr_cli.checkpoints.export import export_open_clip
    from tgazsr_cli.models.classifier import load_classifier

    source = load_classifier("tgazsr-tiny")
    folder = export_open_clip(source.clip.state_dict(), model_cfg=source.spec.model_cfg, preprocess_cfg={},
                              out_dir=tmp_path / "repo")
    cache = tmp_path / "hf-cache"
    fill_hub_cache(cache, "test-org/cached", folder)
    endpoint, _ = silent_endpoint
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    hub_files.forget_probes()
    started = time.monotonic()
    loaded = load_classifier("hf-hub:test-org/cached")
    assert time.monotonic() - started < SLACK_S
    assert all(loaded.clip.state_dict()[k].equal(v) for k, v in source.clip.state_dict().items())
    assert constants.HF_HUB_OFFLINE is False  # offline only within the load
