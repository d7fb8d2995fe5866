"""Published checkpoints by `hf-hub:` name, offline from a pre-filled Hugging Face cache, and `export --hub-dir`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers import make_image_folder
from tests.hubcache import fill_hub_cache, use_offline_cache
from tgazsr_cli.checkpoints.export import export_open_clip
from tgazsr_cli.checkpoints.loading import load_model
from tgazsr_cli.cli.app import main
from tgazsr_cli.errors import RuntimeFailure
from tgazsr_cli.models.building import build_clip, resolve_model_spec
from tgazsr_cli.models.classifier import load_classifier

REPO = "test-org/tiny"
IMAGES = torch.rand(3, 3, 28, 28, generator=torch.Generator().manual_seed(0))
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)  # not open_clip's defaults: the repository's own must be used


@pytest.fixture
def source():
    """The tiny model with seeded random weights: what the hub repository holds."""
    torch.manual_seed(7)
    return load_classifier("tgazsr-tiny")


@pytest.fixture
def hub_cache(source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = export_open_clip(source.clip.state_dict(), model_cfg=source.spec.model_cfg,
                              preprocess_cfg={"mean": list(MEAN), "std": list(STD)}, out_dir=tmp_path / "repo")
    cache = tmp_path / "hf-cache"
    fill_hub_cache(cache, REPO, folder)
    use_offline_cache(cache, monkeypatch)
    return cache


def embeddings(classifier) -> torch.Tensor:
    with torch.no_grad():
        return classifier.eval().encode_image(IMAGES)


def test_hf_hub_model_name_loads_offline_through_open_clip(source, hub_cache: Path) -> None:
    spec = resolve_model_spec(f"hf-hub:{REPO}")
    assert spec.model_cfg == source.spec.model_cfg and spec.image_size == 28
    clip = build_clip(spec)
    torch.testing.assert_close(clip.state_dict(), source.clip.state_dict(), rtol=0, atol=0)
    assert (spec.mean, spec.std) == (MEAN, STD)
    classifier = load_classifier(f"hf-hub:{REPO}")
    source.mean.copy_(torch.tensor(MEAN).view(1, -1, 1, 1))
    source.std.copy_(torch.tensor(STD).view(1, -1, 1, 1))
    torch.testing.assert_close(embeddings(classifier), embeddings(source), rtol=0, atol=0)
    classifier.set_classes(["red circle", "blue square"], ["a photo of a {}."])  # the tokenizer works offline
    assert classifier.text_features.shape == (2, 32)


def test_hf_hub_as_pretrained_weights(source, hub_cache: Path) -> None:
    named = load_model(model="tgazsr-tiny", pretrained=f"hf-hub:{REPO}")
    alone = load_model(pretrained=f"hf-hub:{REPO}")  # the repository names its architecture itself
    assert named.label == f"tgazsr-tiny (hf-hub:{REPO})" and alone.label == f"hf-hub:{REPO} (hub weights)"
    for loaded in (named, alone):
        assert (loaded.classifier.spec.mean, loaded.classifier.spec.std) == (MEAN, STD)
        torch.testing.assert_close(loaded.classifier.clip.state_dict(), source.clip.state_dict(), rtol=0, atol=0)


def test_missing_repository_offline_is_one_clear_failure(hub_cache: Path) -> None:
    with pytest.raises(RuntimeFailure, match="could not fetch the open_clip config of 'hf-hub:test-org/absent'"):
        load_classifier("hf-hub:test-org/absent")
    with pytest.raises(RuntimeFailure, match="offline"):
        load_model(model="tgazsr-tiny", pretrained="hf-hub:test-org/absent")


def test_cli_eval_of_an_hf_hub_model(hub_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert main(["eval", "--model", f"hf-hub:{REPO}", "--datasets", "shapes", "--limit", "16", "--eps", "0",
                 "-o", str(out)]) == 0
    assert f"hf-hub:{REPO} (hub weights)" in (out / "results.md").read_text()


@pytest.mark.slow
def test_cli_eval_of_an_hf_hub_model_in_a_fresh_offline_process(hub_cache: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = tmp_path / "eval"
    result = subprocess.run([sys.executable, "-m", "tgazsr_cli", "eval", "--model", f"hf-hub:{REPO}",
                             "--datasets", "shapes", "--limit", "16", "--eps", "0", "-o", str(out)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"hf-hub:{REPO}" in (out / "results.md").read_text()


def test_attack_and_attention_maps_of_an_hf_hub_model(hub_cache: Path, tmp_path: Path) -> None:
    data = tmp_path / "shapes"
    names = make_image_folder(data, per_class=2, size=32)
    assert main(["attack", "--model", f"hf-hub:{REPO}", "--dataset", str(data), "--split", "train", "--eps", "4",
                 "--steps", "2", "-n", "2", "-o", str(tmp_path / "adv")]) == 0
    assert len(list((tmp_path / "adv").glob("*-adversarial.png"))) == 2
    image = next((data / "red_circle").glob("*.png"))
    assert main(["visualize-attention", str(image), "--model", f"hf-hub:{REPO}", "--classes", ",".join(names),
                 "--label", "red circle", "--eps", "4", "--steps", "1", "-o", str(tmp_path / "panel.png")]) == 0
    assert (tmp_path / "panel.png").stat().st_size > 0


@pytest.fixture
def hub_run(hub_cache: Path, tmp_path: Path) -> Path:
    """A short training run that starts from the hub model (`model.name: hf-hub:...`), with eval results."""
    data = tmp_path / "shapes"
    make_image_folder(data, per_class=4, size=32)
    run = tmp_path / "run"
    assert main(["train", "--recipe", "tiny", "--model", f"hf-hub:{REPO}", "--dataset", str(data), "--set",
                 "optim.max_steps=2", "--set", "data.batch_size=8", "--output", str(run)]) == 0
    assert main(["eval", "--checkpoint", str(run), "--datasets", "shapes", "--limit", "16", "--eps", "0",
                 "-o", str(run / "eval")]) == 0
    return run


def test_training_from_an_hf_hub_start_and_hub_dir_export_round_trip(source, hub_run: Path, hub_cache: Path,
                                                                    tmp_path: Path) -> None:
    tuned = load_model(checkpoint=str(hub_run))
    assert tuned.info is not None and tuned.info.model_name == f"hf-hub:{REPO}"
    assert tuned.classifier.spec.mean == MEAN  # recorded from the hub start
    assert not torch.equal(tuned.classifier.clip.visual.proj, source.clip.visual.proj)  # it did train

    folder = tmp_path / "upload"
    assert main(["export", str(hub_run), "--hub-dir", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "open_clip_config.json",
                                                          "open_clip_model.safetensors"]
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "open_clip" and "license" in front and "tga-zsr" in front["tags"]
    assert "eps 4/255, 2 steps of 2/255" in card  # the tiny recipe's training attack
    assert (hub_run / "eval" / "results.md").read_text().strip() in card
    assert "method: tga-zsr" in card  # the recipe

    fill_hub_cache(hub_cache, "test-org/tuned", folder)
    published = load_classifier("hf-hub:test-org/tuned")
    torch.testing.assert_close(embeddings(published), embeddings(tuned.classifier), rtol=0, atol=0)
