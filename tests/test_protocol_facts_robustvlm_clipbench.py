"""Facts of the `robustvlm` and `clip-benchmark` protocols, each checked against the reference line it was read from.

RobustVLM = chs20/RobustVLM@7de10ee209f169d415c07aa0abaae4806c402b14 (paths under CLIP_benchmark/ are its vendored
copy); CLIP_benchmark = LAION-AI/CLIP_benchmark@48de38c1689fa6d8b4dd53e3370c669c3bb18117.
"""

from __future__ import annotations

import pytest

from tgazsr_cli.data.specs import get_dataset_spec


@pytest.fixture(scope="module")
def robustvlm():
    from tgazsr_cli.protocols import load_protocol

    return load_protocol("robustvlm")


@pytest.fixture(scope="module")
def clipbench():
    from tgazsr_cli.protocols import load_protocol

    return load_protocol("clip-benchmark")


def test_robustvlm_attack_and_scoring(robustvlm):
    assert robustvlm.reference["commit"] == "7de10ee209f169d415c07aa0abaae4806c402b14"
    # zeroshot_classification.py:130-136 version='custom' with apgd-ce + apgd-t; autoattack.py:34-36 APGD 5 restarts
    assert robustvlm.attack.name == "autoattack-official-custom"
    assert robustvlm.attack.eps == 2          # run_benchmark_adv.sh:6 EPS=2; README.md:290 --eps 2
    assert robustvlm.attack.steps == 100      # autoattack.py:15 iterations_apgd=100
    assert robustvlm.attack.restarts == 5     # autoattack.py:34 APGDAttack(n_restarts=5)
    assert robustvlm.attack.step_size == 4    # autopgd_base.py:296-301: initial step alpha*eps, alpha 2
    assert robustvlm.scoring.precision == "fp32"           # cli.py:32 amp default False
    assert robustvlm.scoring.loss_reduction == "sum"       # autopgd_base.py:273-274 loss_indiv.sum()
    assert robustvlm.scoring.robust_counting == "clean-and-robust"  # autoattack.py:122-141, 154-177
    assert robustvlm.as_published is None


def test_robustvlm_datasets_and_names(robustvlm):
    # ImageNet (README.md:290) then CLIP_benchmark/benchmark/datasets.txt:1-12 (13: imagenet_sketch, no file here;
    # 5: vtab/caltech101, 102 VTAB classes, left out)
    assert list(robustvlm.datasets) == ["imagenet", "cifar10", "stl10", "cifar100", "cars", "pets", "flowers102", "dtd",
                                        "eurosat", "aircraft", "pcam", "imagenet-r"]
    names = {key: entry.clip_benchmark_name for key, entry in robustvlm.datasets.items()}
    # datasets.txt:1,3,9,11 (the JSON's "dataset" is the name as given: cli.py:384)
    assert names["cifar10"] == "wds/vtab/cifar10" and names["cifar100"] == "wds/vtab/cifar100"
    assert names["eurosat"] == "wds/vtab/eurosat" and names["pcam"] == "wds/vtab/pcam"
    # run_benchmark_adv.sh:11 reads clip-benchmark/wds_{dataset with / as -}
    assert robustvlm.datasets["eurosat"].hub == "clip-benchmark/wds_vtab-eurosat"
    assert robustvlm.datasets["cifar10"].hub == "clip-benchmark/wds_vtab-cifar10"
    assert robustvlm.datasets["imagenet-r"].hub == "clip-benchmark/wds_imagenet-r"


def test_robustvlm_templates(robustvlm):
    d = robustvlm.datasets
    # en_zeroshot_classification_templates.json:2-21 (cifar10), 22-41 (cifar100), 42-123 (imagenet1k), chosen by the
    # last part of the name (builder.py:84-89, 431)
    assert len(d["cifar10"].templates) == 18 and len(d["cifar100"].templates) == 18
    assert d["cifar10"].templates[0] == "a photo of a {}."
    assert len(d["imagenet"].templates) == 80          # CLIP_eval/clip_robustbench.py:210-212 'imagenet1k'
    assert d["imagenet"].templates[0] == "a bad photo of a {}."
    assert len(d["imagenet-r"].templates) == 80        # no 'imagenet-r' key: imagenet1k fallback (builder.py:82, 88)
    # json:244-247 pcam: two histopathology templates
    assert d["pcam"].templates == ("a histopathology slide showing {}", "histopathology image of {}")
    assert len(d["stl10"].templates) == 2              # json:200-203
    assert len(d["cars"].templates) == 8               # json:131-140
    assert len(d["dtd"].templates) == 8                # json:145-154
    assert len(d["eurosat"].templates) == 3            # json:204-208
    assert len(d["aircraft"].templates) == 2           # json:141-144
    assert d["pets"].templates == ("a photo of a {}, a type of pet.",)      # json:155-157
    assert d["flowers102"].templates == ("a photo of a {}, a type of flower.",)  # json:194-196


def test_robustvlm_class_names(robustvlm):
    d = robustvlm.datasets
    # en_classnames.json:1690-1693 (pcam), used by VTAB's pcam (builder.py:560-563)
    assert d["pcam"].classnames == ("lymph node", "lymph node containing metastatic tumor tissue")
    # en_classnames.json:364-375 (eurosat, builder.py:530-533): label order AnnualCrop ... SeaLake, as ours
    assert d["eurosat"].classnames[:3] == ("annual crop land", "forest", "brushland or shrubland")
    assert d["eurosat"].classnames[-1] == "lake or sea"
    # en_classnames.json:1651-1689 (pets, builder.py:556-559)
    assert d["pets"].classnames[:2] == ("Abyssinian", "American Bulldog")
    # TFDS names (builder.py:553-555 flowers, 574-576 cifar; tfds.py:29-30): tensorflow/datasets@1ab0c7d
    # oxford_flowers102.py:30-55; CIFAR-100 fine_label_names keep '_'
    assert d["flowers102"].classnames[11] == "colt's foot"
    assert d["flowers102"].classnames[1] == "hard-leaved pocket orchid"
    assert d["cifar100"].classnames[1] == "aquarium_fish"
    assert "polka-dotted" in d["dtd"].classnames       # tensorflow/datasets dtd.py: label = image folder
    # torchvision names (builder.py:354-357, no rename): years kept, raw variants
    assert d["cars"].classnames[0] == "AM General Hummer SUV 2000"
    assert d["aircraft"].classnames[:2] == ("707-320", "727-200")
    # open_flamingo/eval/classification_utils.py:2-1006 = our imagenet file's names (absent = the file's)
    assert d["imagenet"].classnames == get_dataset_spec("imagenet").classnames
    assert d["cifar10"].classnames == get_dataset_spec("cifar10").classnames   # TFDS cifar10 = torchvision's


def test_robustvlm_preprocessing(robustvlm):
    d = robustvlm.datasets
    for key in ("cifar10", "cifar100", "stl10"):
        p = d[key].preprocessing
        # cli.py:231-234: ToTensor only, then Resize(224, BICUBIC, antialias=None) in the forward
        # (zeroshot_classification.py:112-113); torchvision==0.15.2 (requirements.txt:145): no antialias on tensors
        assert (p.native_resolution, p.resize, p.interpolation) == (True, 224, "bicubic")
        assert (p.antialias, p.crop) == (False, None)
    for key in ("imagenet", "cars", "pcam", "imagenet-r"):
        p = d[key].preprocessing
        # cli.py:235-236 open_clip 2.19.0 transform minus Normalize (open_clip transform.py:124-131); ImageNet:
        # CLIP_eval/eval_utils.py:58-61
        assert (p.native_resolution, p.resize, p.interpolation) == (False, 224, "bicubic")
        assert (p.crop, p.antialias) == (224, True)


def test_robustvlm_selection(robustvlm):
    d = robustvlm.datasets
    # run_benchmark_adv.sh:8 SAMPLES=1000; cli.py:39 seed 0, 257-258 shuffle(10000, initial=10000, Random(seed))
    for key in ("cifar10", "eurosat", "pcam", "imagenet-r"):
        s = d[key].selection
        assert (s.mode, s.count, s.seed) == ("stream", 1000, 0)
    # CLIP_eval/clip_robustbench.py:34, 294-296: robustbench's load_imagenet, 5,000 images of its list
    assert (d["imagenet"].selection.mode, d["imagenet"].selection.name) == ("subset", "robustbench-imagenet-5000")


def test_clip_benchmark_protocol(clipbench):
    assert clipbench.reference["commit"] == "48de38c1689fa6d8b4dd53e3370c669c3bb18117"
    assert clipbench.attack.name == "none"             # cli.py:29-69: no attack option
    assert clipbench.scoring.precision == "fp32"  # its fp16 is clean inference (cli.py:42); an added attack: fp32
    d = clipbench.datasets
    # benchmark/datasets.txt:4,22,23,31,33,34,35 and 15 (names CLIP_benchmark's build CSV carries)
    assert {k: d[k].clip_benchmark_name for k in ("imagenet", "cifar10", "cifar100", "eurosat", "flowers102", "pets",
                                                   "pcam", "aircraft")} == {
        "imagenet": "imagenet1k", "cifar10": "vtab/cifar10", "cifar100": "vtab/cifar100", "eurosat": "vtab/eurosat",
        "flowers102": "vtab/flowers", "pets": "vtab/pets", "pcam": "vtab/pcam", "aircraft": "fgvc_aircraft"}
    assert all(entry.selection.mode == "all" for entry in d.values())   # cli.py:292-302: no sample limit, no shuffle
    for entry in d.values():
        p = entry.preprocessing
        # open_clip eval transform for every set, CIFAR included (models/open_clip.py:5; cli.py:265-268)
        assert (p.native_resolution, p.resize, p.interpolation, p.crop) == (False, 224, "bicubic", 224)
    assert len(d["cifar10"].templates) == 18           # en_zeroshot_classification_templates.json:2-21
    assert len(d["imagenet"].templates) == 80          # json:42-123
    assert len(d["imagenet-a"].templates) == 80        # builder.py:480: imagenet1k fallback
    assert len(d["pcam"].templates) == 2               # json:244-247
    assert len(d["sun397"].templates) == 2             # json:127-130
    assert d["food101"].templates == ("a photo of {}, a type of food.",)  # json:124-126
    # builder.py:621-624: VTAB's eurosat test split from the wds copy (5,400 images, not our 27,000)
    assert (d["eurosat"].hub, d["eurosat"].hub_split) == ("clip-benchmark/wds_vtab-eurosat", "test")
    assert d["cars"].classnames[-1] == "smart fortwo Convertible 2012"   # builder.py:389-391 torchvision names


def test_shared_lists_agree_with_our_label_order(clipbench):
    # Every protocol list has our dataset file's class count (the loader checks it); spot-check the order against
    # our names under the rule that produced ours (scripts/derive_protocol_data.py checks every name).
    d = clipbench.datasets
    ours = get_dataset_spec("cars").classnames
    assert [n[:-5].lower().replace("-", " ") for n in d["cars"].classnames[:5]] == list(ours[:5])
    ours = get_dataset_spec("aircraft").classnames
    assert d["aircraft"].classnames[21].lower() == ours[21] == "a300b4"
    assert d["pets"].classnames[5].lower() == get_dataset_spec("pets").classnames[5] == "bengal"
