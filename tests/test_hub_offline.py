"""Pretrained tags without the hub: offline (or unreachable) fails at once in one line that says how to pass local
weights; weights already in the Hugging Face cache load with no request at all."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tgazsr_cli.errors import RuntimeFailure
from tgazsr_cli.models.building import build_clip, resolve_model_spec
from tgazsr_cli.models.classifier import load_classifier
from tgazsr_cli.weights import hub as hub_files

TAG_CFG = {"hf_hub": "tgazsr-test/tiny-clip/", "quick_gelu": False}


@pytest.fixture(autouse=True)
def _fresh_probes():
    """The hub's reachability is kept for the process: each test here starts as a new process would."""
    hub_files.forget_probes()
    yield
    hub_files.forget_probes()


def test_offline_pretrained_tag_fails_fast_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "OMP_NUM_THREADS": "1",
           "HOME": str(tmp_path)}  # an empty cache: nothing to fall back on
    started = time.monotonic()  # what the heavy imports alone take on this machine now (busy or not)
    subprocess.run([sys.executable, "-c", "import open_clip, tgazsr_cli.models.classifier"], check=True, env=env)
    imports = time.monotonic() - started
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tgazsr_cli", "convert", "--model", "ViT-B-32",
                             "--pretrained", "openai", "-o", str(tmp_path / "out.safetensors")],
                            capture_output=True, text=True, timeout=120, env=env)
    seconds = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no retry warnings
    assert "offline" in lines[0] and "--pretrained PATH" in lines[0] and "OpenAI .pt" in lines[0]
    assert seconds < imports + 15  # a generous bound; the old path spent over a minute in retries
    assert not (tmp_path / "out.safetensors").exists()


def test_unreachable_hub_is_probed_once_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class Session:
        def head(self, url: str, timeout: float) -> None:
            calls.append((url, timeout))
            raise ConnectionError("no route")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.utils.get_session", lambda: Session())
    downloads = []
    monkeypatch.setattr("open_clip.pretrained.download_pretrained", lambda cfg: downloads.append(cfg))
    with pytest.raises(RuntimeFailure) as caught:
        hub_files.fetch_tag_weights({"hf_hub": "nobody/nothing-here/"}, "pretrained weights 'x' for M",
                                    "--pretrained PATH+robust.pth.tar")
    message = str(caught.value)
    assert "is not reachable (ConnectionError)" in message and message.endswith("--pretrained PATH+robust.pth.tar")
    with pytest.raises(RuntimeFailure, match="is not reachable"):  # a second file: the answer is remembered
        hub_files.fetch_hub_file("nobody/other", "open_clip_config.json", "the config", "hint")
    assert len(calls) == 1 and calls[0][1] == hub_files.PROBE_TIMEOUT_S == 2.0 and not downloads
    hub_files.forget_probes()
    assert hub_files.unreachable_reason() is not None and len(calls) == 2  # forgotten: probed again


def test_cached_tag_weights_load_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(3)
    reference = build_clip(resolve_model_spec("tgazsr-tiny")).state_dict()
    snapshot = tmp_path / "models--tgazsr-test--tiny-clip" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in reference.items()}, str(snapshot / "open_clip_model.safetensors"))
    (tmp_path / "models--tgazsr-test--tiny-clip" / "refs").mkdir()
    (tmp_path / "models--tgazsr-test--tiny-clip" / "refs" / "main").write_text("0123abcd")

    import open_clip

    real = open_clip.get_pretrained_cfg
    monkeypatch.setattr(open_clip, "get_pretrained_cfg",
                        lambda model, tag: dict(TAG_CFG) if tag == "cached" else real(model, tag))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.utils.get_session", lambda: pytest.fail("no request for a cached file"))
    loaded = load_classifier("tgazsr-tiny", "cached").clip.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in reference.items())
