"""The mini world's shipped folders (emoji-pretrain, emoji-seen, emoji-unseen, symbola) and its sampled-negative
pre-training loss."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from tests.test_method_formulas import method_for
from tgazsr_cli.data import BUILTIN_ROOT, list_datasets, load_image_dataset

WORLD = {"emoji-pretrain": {"train"}, "emoji-seen": {"train", "val", "test"}, "emoji-unseen": {"test"},
         "symbola": {"test"}}
ROOT = Path(__file__).resolve().parents[1]


def manifest(name: str) -> dict:
    return json.loads((BUILTIN_ROOT / name / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(WORLD))
def test_world_folder_is_intact_licensed_and_loads(name: str) -> None:
    folder, meta = BUILTIN_ROOT / name, manifest(name)
    assert {f"{split}.parquet" for split in WORLD[name]} == set(meta["sha256"])
    for file, digest in meta["sha256"].items():
        assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest
    licence = (folder / "LICENSE").read_text()
    if name in ("emoji-pretrain", "symbola"):
        assert "free for any use" in licence and "George Douros" in licence  # Symbola's terms
    if name != "symbola":
        assert "SIL OPEN FONT LICENSE Version 1.1" in licence and "Google" in licence
    assert "fonts-noto-color-emoji" in meta["provenance"] and "make_emoji_world.py" in meta["provenance"]
    assert len(set(meta["classnames"])) == len(meta["classnames"]) >= 200
    assert name in list_datasets()
    for split in sorted(WORLD[name]):
        data = load_image_dataset(name, split=split, image_size=28)
        assert len(data.dataset) == meta[f"num_{split}"] and list(data.classnames) == meta["classnames"]
        image, _ = data.dataset[len(data.dataset) - 1]
        assert image.shape == (3, 28, 28) and image.min() >= 0 and image.max() <= 1
        labels = torch.tensor(pq.read_table(folder / f"{split}.parquet", columns=["label"])["label"].to_pylist())
        counts = torch.bincount(labels, minlength=len(meta["classnames"]))
        assert counts.min() == counts.max() > 0  # every class, equally often


def test_world_splits_partition_the_concepts_and_never_share_an_image() -> None:
    everything = manifest("emoji-pretrain")["classnames"]
    seen, unseen = manifest("emoji-seen")["classnames"], manifest("emoji-unseen")["classnames"]
    assert len(seen) == 200 and not set(seen) & set(unseen) and sorted(seen + unseen) == sorted(everything)
    assert manifest("symbola")["classnames"] == everything
    shipped = {n for other in ("fashion-mnist-a", "fashion-mnist-b", "digits", "shapes")
               for n in manifest(other)["classnames"]}
    assert not shipped & set(everything)  # the combined pre-training set needs unique names
    digests: dict[str, set[str]] = {}
    for name, splits in WORLD.items():
        for split in splits:
            column = pq.read_table(BUILTIN_ROOT / name / f"{split}.parquet", columns=["image"])["image"]
            digests[f"{name}/{split}"] = {hashlib.sha256(row["bytes"]).hexdigest() for row in column.to_pylist()}
    keys = sorted(digests)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert not digests[a] & digests[b], f"{a} and {b} share an image"


def test_sampled_negatives_are_the_clip_loss_over_the_chosen_classes(tiny_model, batch) -> None:
    images, labels = batch  # classes 0..3 present; ask for fewer prompts than classes with a smaller batch
    images, labels = images[:4], torch.tensor([1, 1, 3, 1])
    method = method_for(tiny_model, "clip-pretrain", "method_options.prompts_per_step=3")
    torch.manual_seed(5)
    output = method.loss(images, labels)
    torch.manual_seed(5)
    classes = method.step_classes(labels)
    assert classes is not None and len(classes) == 3 and {1, 3} <= set(classes.tolist())
    prompts = method.prompts(classes=classes.tolist())
    assert all(tiny_model.classnames[c] in p for c, p in zip(classes.tolist(), prompts, strict=True))
    text = F.normalize(tiny_model.clip.encode_text(tiny_model.tokenizer(prompts)), dim=-1)
    logits = tiny_model.clip.logit_scale.exp() * F.normalize(tiny_model.encode_image(images), dim=-1) @ text.t()
    columns = torch.searchsorted(classes, labels)
    i2t = F.cross_entropy(logits, columns)
    t2i = torch.stack([-logits.t()[c].log_softmax(0)[columns == c].mean() for c in columns.unique()]).mean()
    torch.testing.assert_close(output.total, 0.5 * i2t + 0.5 * t2i, rtol=1e-4, atol=1e-5)
    everyone = method_for(tiny_model, "clip-pretrain", "method_options.prompts_per_step=4")
    assert everyone.step_classes(labels) is None  # as many prompts as classes: all of them, no sampling


@pytest.mark.slow
def test_make_emoji_world_regenerates_the_shipped_bytes() -> None:
    pytest.importorskip("fontTools")
    if not Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf").is_file():
        pytest.skip("fonts-noto-color-emoji is not installed")
    done = subprocess.run([sys.executable, "scripts/make_emoji_world.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "byte-identical" in done.stdout
