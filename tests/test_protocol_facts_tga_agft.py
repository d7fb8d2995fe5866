"""Facts of the `tga-zsr` and `agft` evaluation protocols (tgazsr_cli/protocols/), checked against the values read
in the reference code. No model, no data: only the protocol files, their class-name files and our dataset files.

References (every file:line below is in these commits):
  TGA:  GitHub zhyblue424/TGA-ZSR @ 663fe573dc9609893bb47b2d8303c034d9dd2ded
  AGFT: GitHub YuboCui/AGFT      @ 0031a8fb105fbf6496d92c7e2db2ab4fa669b191
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

import tgazsr_cli

PROTOCOLS_DIR = Path(tgazsr_cli.__file__).parent / "protocols"
TGA_COMMIT = "663fe573dc9609893bb47b2d8303c034d9dd2ded"
AGFT_COMMIT = "0031a8fb105fbf6496d92c7e2db2ab4fa669b191"

# The paper's Table 1 column order (= recipes/eval/zs16.yaml); TGA-ZSR.py:205-206 lists the same 16 sets.
TGA_ORDER = ["tinyimagenet", "cifar10", "cifar100", "stl10", "sun397", "food101", "pets", "flowers102", "dtd",
             "eurosat", "aircraft", "imagenet", "caltech101", "caltech256", "cars", "pcam"]
# AGFT main.py:47-67 (Country211, TinyImageNet, ImageNet_R, ImageNet_Sketch commented out) = recipes/eval/zs15.yaml.
AGFT_ORDER = ["caltech101", "caltech256", "cifar10", "cifar100", "dtd", "eurosat", "aircraft", "flowers102",
              "food101", "imagenet", "pets", "pcam", "cars", "stl10", "sun397"]
NATIVE = {"cifar10", "cifar100", "stl10"}  # AGFT utils.py:35, 43-46, 67-68: ToTensor only


def _get(obj, key):
    """A field of a mapping or of an object (the loader may give either for `as_published`)."""
    return obj[key] if isinstance(obj, Mapping) else getattr(obj, key)


def _names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


# ---- the raw files (no loader needed) ----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "commit", "repo"), [("tga-zsr", TGA_COMMIT, "zhyblue424/TGA-ZSR"),
                                                      ("agft", AGFT_COMMIT, "YuboCui/AGFT")])
def test_raw_file_shape(name, commit, repo):
    raw = yaml.safe_load((PROTOCOLS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    assert raw["name"] == name
    assert raw["reference"] == {"repository": repo, "commit": commit}
    for key, entry in raw["datasets"].items():
        # every entry cites file:line in the reference commit
        assert re.search(r"[\w/.-]+\.(py|txt|md):\d+", entry["source"]), key
        names = entry.get("classnames")
        if isinstance(names, str):
            assert (PROTOCOLS_DIR / names).is_file(), names


def test_raw_class_name_files():
    # imagenet_classes_names.txt:1-1000 of both references, one name per class
    assert len(_names(PROTOCOLS_DIR / "tga-zsr" / "imagenet.txt")) == 1000
    assert len(_names(PROTOCOLS_DIR / "agft" / "imagenet.txt")) == 1000
    assert len(_names(PROTOCOLS_DIR / "agft" / "caltech101.txt")) == 100  # AGFT clip_dataset.py:39-41
    assert len(_names(PROTOCOLS_DIR / "agft" / "flowers102.txt")) == 102  # AGFT clip_dataset.py:208-311


# ---- through the loader ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tga():
    from tgazsr_cli.protocols import load_protocol

    return load_protocol("tga-zsr")


@pytest.fixture(scope="module")
def agft():
    from tgazsr_cli.protocols import load_protocol

    return load_protocol("agft")


def _spec(name):
    from tgazsr_cli.data import get_dataset_spec

    return get_dataset_spec(name)


def test_both_listed():
    from tgazsr_cli.protocols import list_protocols

    assert {"tga-zsr", "agft"} <= set(list_protocols())


def test_tga_attack_and_scoring(tga):
    assert tga.name == "tga-zsr"
    # TGA-ZSR.py:48-50 (defaults 1, 100, 1), 117-120 (/255), 434-436 (attack_pgd); attacks.py:64 (restarts unused)
    assert (tga.attack.name, tga.attack.eps, tga.attack.steps, tga.attack.step_size, tga.attack.restarts) == (
        "pgd", 1, 100, 1, 1)
    # the project's honest defaults
    assert (tga.scoring.precision, tga.scoring.loss_reduction, tga.scoring.robust_counting) == (
        "fp32", "sum", "clean-and-robust")
    ap = tga.as_published
    assert _get(ap, "precision") == "fp16"  # TGA-ZSR.py:9, 418: attack inside torch.cuda.amp.autocast()
    assert _get(ap, "loss_reduction") == "mean"  # attacks.py:87-88: CrossEntropyLoss() default reduction
    assert _get(ap, "robust_counting") == "all"  # TGA-ZSR.py:442-447: robust top-1 over every image


def test_tga_order_and_selection(tga):
    assert list(tga.datasets) == TGA_ORDER
    for key, entry in tga.datasets.items():
        assert entry.dataset == key
        assert entry.split == "test"
        assert entry.selection.mode == "all"  # whole loaders, shuffle=False (TGA-ZSR.py:219-220)
        assert not entry.merge_classes


def test_tga_restates_our_dataset_files_except_imagenet(tga):
    # Our dataset files were written from this code: names and templates agree for 15 of the 16 sets.
    for key, entry in tga.datasets.items():
        spec = _spec(key)
        assert entry.templates == tuple(spec.templates), key
        if key != "imagenet":
            assert entry.classnames == tuple(spec.classnames), key
    ours = [n.lower() for n in _spec("imagenet").classnames]
    theirs = tga.datasets["imagenet"].classnames
    # imagenet_classes_names.txt (TGA-ZSR utils.py:260-265) vs OpenAI's curated names: 305 prompts differ
    assert sum(a != b for a, b in zip(ours, theirs, strict=True)) == 305


def test_tga_imagenet_names(tga):
    names = tga.datasets["imagenet"].classnames
    assert len(names) == 1000
    assert names[0] == "tench"  # imagenet_classes_names.txt:449 (n01440764), refined (utils.py:19-22, 272)
    assert names[7] == "cock"  # imagenet_classes_names.txt:383 (n01514668); ours: 'rooster'
    assert names[20] == "water ouzel"  # imagenet_classes_names.txt:396 (n01601694); ours: 'American dipper'
    assert names[151] == "chihuahua"  # imagenet_classes_names.txt:173 'Chihuahua', lower-cased by refine_classname
    # imagenet_classes_names.txt:429/545 crane, 50/836 Cardigan/cardigan, 782/977 maillot: kept as duplicates
    assert sorted(n for n, c in Counter(names).items() if c > 1) == ["cardigan", "crane", "maillot"]
    assert tga.datasets["imagenet"].templates == ("This is a photo of a {}",)  # TGA-ZSR.py:196


def test_tga_templates(tga):
    t = {k: e.templates for k, e in tga.datasets.items()}
    assert all(len(v) == 1 for v in t.values())  # one prompt per class everywhere
    for key in ("tinyimagenet", "cifar10", "cifar100", "stl10", "sun397", "imagenet", "caltech101"):
        assert t[key] == ("This is a photo of a {}",), key  # TGA-ZSR.py:196, utils.py:272-273
    assert t["food101"] == ("A photo of {}, a type of food.",)  # replace/datasets/food101.py:42
    assert t["pets"] == ("A photo of a {}, a type of pet.",)  # replace/datasets/oxford_iiit_pet.py:49
    assert t["flowers102"] == ("A photo of a {}, a type of flower.",)  # replace/datasets/flowers102.py:69
    assert t["dtd"] == ("A surface with a {} texture.",)  # replace/datasets/dtd.py:43
    assert t["eurosat"] == ("A centered satellite photo of {}.",)  # replace/datasets/eurosat.py:40
    assert t["aircraft"] == ("A photo of a {}, a type of aircraft.",)  # replace/datasets/fgvc_aircraft.py:50
    assert t["caltech256"] == ("A photo of a {}.",)  # replace/datasets/caltech.py:175
    assert t["cars"] == ("A photo of a {}.",)  # replace/datasets/stanford_cars.py:39


def test_tga_pcam_typo(tga):
    pcam = tga.datasets["pcam"]
    prompts = [tpl.format(n) for tpl in pcam.templates for n in pcam.classnames]
    # replace/datasets/pcam.py:69-72: the first prompt keeps its 'Tthis'
    assert prompts == ["Tthis is a photo of healthy lymph node tissue.", "This is a photo of lymph node tumor tissue."]


def test_tga_caltech101_keeps_101_classes(tga):
    names = tga.datasets["caltech101"].classnames
    # replace/datasets/caltech.py:55-56 categories; clip_categories' 'person' (lines 76-78) is unused
    # (utils.py:255-258 reads `categories`)
    assert len(names) == 101
    assert names[:2] == ("faces", "faces easy")


def test_tga_preprocessing(tga):
    for key, entry in tga.datasets.items():
        pp = entry.preprocessing
        assert not pp.native_resolution, key
        assert pp.interpolation == "bilinear" and pp.antialias, key  # PIL Resize, torchvision default
        if key in NATIVE:  # utils.py:139-142: Resize((224, 224)), no crop (utils.py:168, 171, 180)
            assert tuple(pp.resize) == (224, 224) and pp.crop is None, key
            assert _spec(key).resize_mode == "resize"
        else:  # utils.py:143-147: Resize(256) + CenterCrop(224)
            assert (pp.resize, pp.crop) == (256, 224), key
            assert _spec(key).resize_mode == "resize_crop"


def test_agft_attack_and_scoring(agft):
    assert agft.name == "agft"
    # main.py:98-100 ('1/255', '1/255', 20); utils.py:80-82; attacks/pgd.py:58-78 (one random start)
    assert (agft.attack.name, agft.attack.eps, agft.attack.steps, agft.attack.step_size, agft.attack.restarts) == (
        "pgd", 1, 20, 1, 1)
    assert (agft.scoring.precision, agft.scoring.loss_reduction, agft.scoring.robust_counting) == (
        "fp32", "sum", "clean-and-robust")
    ap = agft.as_published
    assert _get(ap, "precision") == "fp16"  # validate.py:23 autocast, enabled by --enable_amp (README.md:43)
    assert _get(ap, "loss_reduction") == "mean"  # attacks/pgd.py:55: nn.CrossEntropyLoss()
    assert _get(ap, "robust_counting") == "all"  # validate.py:25-31, 44: every image attacked and counted


def test_agft_order_and_selection(agft):
    assert list(agft.datasets) == AGFT_ORDER
    for key, entry in agft.datasets.items():
        assert entry.dataset == key
        assert entry.split == "test"
        assert entry.selection.mode == "all"


def test_agft_caltech101_merges_faces_into_person(agft):
    entry = agft.datasets["caltech101"]
    assert len(entry.classnames) == 100  # clip_dataset.py:39-41
    assert entry.classnames[0] == "person"  # clip_dataset.py:40
    assert dict(entry.merge_classes) == {"Faces_easy": "Faces"}  # clip_dataset.py:46-47: labels 0 and 1 -> 0
    assert entry.classnames[1:] == tuple(_spec("caltech101").classnames[2:])  # the other 99 names are ours
    assert entry.templates == ("A photo of a {}.",)  # clip_dataset.py:34


def test_agft_caltech101_labels_as_the_reference_shifts_them(agft):
    from tgazsr_cli.data.reading import renamed_classes

    ours = _spec("caltech101").classnames
    names, label_map = renamed_classes(ours, None, agft.datasets["caltech101"].view(), "agft caltech101")
    assert names[0] == "person" and len(names) == 100
    # clip_dataset.py:44-48: target 0 (Faces) stays 0, 1 (Faces_easy) -> 0, k >= 2 -> k - 1
    assert label_map == [0, 0, *range(1, 100)]


def test_agft_native_resolution(agft):
    for key, entry in agft.datasets.items():
        pp = entry.preprocessing
        if key in NATIVE:
            # utils.py:35 (ToTensor only); the model's Resize(224, bicubic): clip_model.py:19-21, 221
            assert pp.native_resolution and pp.interpolation == "bicubic" and pp.crop is None, key
        else:
            # utils.py:27-34: Resize(224) + CenterCrop(224), PIL bilinear (ours: 256 + 224)
            assert not pp.native_resolution, key
            assert (pp.resize, pp.crop, pp.interpolation) == (224, 224, "bilinear"), key


def test_agft_templates(agft):
    t = {k: e.templates for k, e in agft.datasets.items()}
    assert all(len(v) == 1 for v in t.values())
    for key in ("cifar10", "cifar100", "imagenet", "stl10", "sun397"):
        # clip_dataset.py:78, 95, 337, 442, 458: with a final period, which ours lacks
        assert t[key] == ("This is a photo of a {}.",), key
        assert tuple(_spec(key).templates) == ("This is a photo of a {}",), key
    assert t["caltech256"] == ("A photo of a {}.",)  # clip_dataset.py:58
    assert t["dtd"] == ("A surface with a {} texture.",)  # clip_dataset.py:136
    assert t["eurosat"] == ("A centered satellite photo of {}.",)  # clip_dataset.py:152
    assert t["aircraft"] == ("A photo of a {}, a type of aircraft.",)  # clip_dataset.py:181
    assert t["flowers102"] == ("A photo of a {}, a type of flower.",)  # clip_dataset.py:203
    assert t["food101"] == ("A photo of {}, a type of food.",)  # clip_dataset.py:323
    assert t["pets"] == ("A photo of a {}, a type of pet.",)  # clip_dataset.py:358
    assert t["cars"] == ("A photo of a {}.",)  # clip_dataset.py:397


def test_agft_pcam_has_no_typo(agft):
    pcam = agft.datasets["pcam"]
    prompts = [tpl.format(n) for tpl in pcam.templates for n in pcam.classnames]
    # clip_dataset.py:383-386 (clip_prompts), = template line 377 applied to clip_classes line 382
    assert prompts == ["This is a photo of healthy lymph node tissue.", "This is a photo of lymph node tumor tissue."]
    assert not any("Tthis" in p for p in prompts)


def test_agft_imagenet_names(agft, tga):
    names = agft.datasets["imagenet"].classnames
    assert len(names) == 1000
    assert names[7] == "cock"  # imagenet_classes_names.txt:383, clip_dataset.py:343-344
    assert names[151] == "Chihuahua"  # imagenet_classes_names.txt:173: case kept (no lower-casing, line 344)
    # the same map_clsloc file as TGA-ZSR's; only TGA-ZSR's lower-casing differs (no name has a '/')
    assert tuple(n.lower() for n in names) == tga.datasets["imagenet"].classnames


def test_agft_flowers_differs_in_one_name(agft):
    theirs, ours = agft.datasets["flowers102"].classnames, _spec("flowers102").classnames
    assert [i for i, (a, b) in enumerate(zip(theirs, ours, strict=True)) if a != b] == [59]
    assert theirs[59] == "pink yellow dahlia"  # clip_dataset.py:268; ours keeps TGA-ZSR's '?'


def test_agft_seven_sets_prompt_like_ours(agft):
    # names (compared case-insensitively: CLIP's tokenizer lower-cases) and templates as in our dataset files
    same = {key for key, e in agft.datasets.items()
            if [n.lower() for n in e.classnames] == [n.lower() for n in _spec(key).classnames]
            and e.templates == tuple(_spec(key).templates)}
    assert same == {"caltech256", "dtd", "eurosat", "aircraft", "food101", "pets", "cars"}
