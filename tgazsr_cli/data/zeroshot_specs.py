"""The zero-shot evaluation datasets of TGA-ZSR (spec §6) besides Tiny-ImageNet and ImageNet (specs.py).

Each entry fixes what the paper's evaluation used: the split (the whole set for SUN397, EuroSAT, Caltech-101 and
Caltech-256), the resize mode (plain resize for CIFAR-10/100 and STL-10), the class names and prompt templates
(data files under classnames/, see classfiles.py), and where the data can come from. A hub id is given only where
a hub copy holds exactly the split the paper scored; the whole-set datasets and ImageNet-A/O/R are read from a
local copy passed with --data-dir (docs/datasets.md says where each comes from and what layouts are accepted).
"""

from __future__ import annotations

from tgazsr_cli.data.classfiles import imagenet_subset, read_classnames, read_templates
from tgazsr_cli.data.specs import (
    ALL_SPLITS,
    DatasetSpec,
    get_dataset_spec,
    is_registered,
    register_dataset,
)

GENERIC_LAYOUTS = ("a folder of parquet files, a datasets save_to_disk folder, webdataset .tar shards "
                   "(<key>.cls + <key>.jpg/.webp), or an image folder DIR/<class>/*.jpg")
EUROSAT_FOLDERS = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake")  # label order of the descriptive names
TEST = {"train": "train", "test": "test"}
WHOLE = {"test": ALL_SPLITS, "all": ALL_SPLITS}  # spec §6: no split, every image is scored

# name: (hub id or None, splits, resize mode, what a local copy may look like, description)
_TABLE: dict[str, tuple[str | None, dict[str, str], str, str, str]] = {
    "cifar10": ("uoft-cs/cifar10", TEST, "resize",
                "the hub's parquet files (plain_text/test-*.parquet) or DIR/test/<class>/*.png",
                "CIFAR-10, 10 classes, 32x32; test 10,000"),
    "cifar100": ("uoft-cs/cifar100", TEST, "resize",
                 "the hub's parquet files (cifar100/test-*.parquet, fine_label) or DIR/test/<class>/*.png",
                 "CIFAR-100 fine labels, 100 classes, 32x32; test 10,000"),
    "stl10": ("tanganke/stl10", TEST, "resize",
              "the hub's parquet files (data/test-*.parquet) or DIR/test/<class>/*.png",
              "STL-10, 10 classes, 96x96; test 8,000"),
    "sun397": (None, WHOLE, "resize_crop",
               "the SUN397 archive folder (ClassName.txt + a/abbey/sun_*.jpg), scored whole",
               "SUN397, 397 scene classes; all 108,754 images (the paper uses no split)"),
    "food101": ("clip-benchmark/wds_food101", TEST, "resize_crop",
                "the hub's webdataset shards (test/*.tar) or food-101 images as DIR/test/<class>/*.jpg",
                "Food-101, 101 classes; test 25,250"),
    "pets": ("clip-benchmark/wds_vtab-pets", TEST, "resize_crop",
             "the hub's webdataset shards (test/*.tar) or DIR/test/<breed>/*.jpg",
             "Oxford-IIIT Pets, 37 breeds; test 3,669"),
    "flowers102": ("clip-benchmark/wds_vtab-flowers", TEST, "resize_crop",
                   "the hub's webdataset shards (test/*.tar) or DIR/test/<class>/*.jpg in label order",
                   "Oxford 102 Flowers; test 6,149"),
    "dtd": ("clip-benchmark/wds_vtab-dtd", TEST, "resize_crop",
            "the hub's webdataset shards (test/*.tar) or DIR/test/<texture>/*.jpg (test1.txt of partition 1)",
            "Describable Textures, 47 classes; test split of partition 1, 1,880"),
    "eurosat": (None, WHOLE, "resize_crop",
                "the EuroSAT RGB folder 2750/<class>/*.jpg (AnnualCrop ... SeaLake), scored whole",
                "EuroSAT RGB, 10 land-use classes; all 27,000 images (the paper uses no split)"),
    "aircraft": ("clip-benchmark/wds_fgvc_aircraft", TEST, "resize_crop",
                 "the hub's webdataset shards (test/*.tar) or DIR/test/<variant>/*.jpg in variants.txt order",
                 "FGVC-Aircraft, 100 variants; test 3,333"),
    "caltech101": (None, WHOLE, "resize_crop",
                   "the 101_ObjectCategories folder (<class>/image_*.jpg; BACKGROUND_Google is skipped), scored whole",
                   "Caltech-101, 101 object classes (BACKGROUND_Google removed); all 8,677 images"),
    "caltech256": (None, WHOLE, "resize_crop",
                   "the 256_ObjectCategories folder (001.ak47/*.jpg ... 257.clutter/*.jpg), scored whole",
                   "Caltech-256, 257 classes including clutter; all 30,607 images"),
    "cars": ("clip-benchmark/wds_cars", TEST, "resize_crop",
             "the hub's webdataset shards (test/*.tar) or DIR/test/<class>/*.jpg in cars_annos.mat order",
             "Stanford Cars, 196 classes; test 8,041 (cars_annos.mat)"),
    "pcam": ("clip-benchmark/wds_vtab-pcam", TEST, "resize_crop",
             "the hub's webdataset shards (test/*.tar) or a parquet/save_to_disk copy with labels 0/1",
             "PatchCamelyon, 2 classes (no tumour / tumour), 96x96; test 32,768"),
}

# Folder names the usual downloads unpack to (besides the registered name): the hub copies as `huggingface-cli
# download ID --local-dir NAME` or CLIP_benchmark's `wds_{name with / as -}` names them, the original archives
# (SUN397, EuroSAT's 2750 / EuroSAT_RGB, Caltech's *_ObjectCategories). Copies of another split (wds_sun397,
# wds_vtab-eurosat, wds_vtab-caltech101) are left out on purpose: they are not the set the paper scores.
FOLDER_NAMES: dict[str, tuple[str, ...]] = {
    "cifar10": ("wds_cifar10", "wds_vtab-cifar10"),
    "cifar100": ("wds_cifar100", "wds_vtab-cifar100"),
    "stl10": ("wds_stl10",),
    "sun397": ("SUN397",),
    "food101": ("wds_food101",),
    "pets": ("wds_vtab-pets",),
    "flowers102": ("wds_vtab-flowers",),
    "dtd": ("wds_vtab-dtd",),
    "eurosat": ("2750", "EuroSAT_RGB"),
    "aircraft": ("wds_fgvc_aircraft",),
    "caltech101": ("101_ObjectCategories",),
    "caltech256": ("256_ObjectCategories",),
    "cars": ("wds_cars",),
    "pcam": ("wds_vtab-pcam",),
}

_IMAGENET_SUBSETS = {
    "imagenet-a": "ImageNet-A, 7,500 natural adversarial images of 200 ImageNet classes (appendix)",
    "imagenet-o": "ImageNet-O, 2,000 out-of-distribution images under 200 ImageNet class folders (appendix)",
    "imagenet-r": "ImageNet-R, 30,000 renditions of 200 ImageNet classes (appendix)",
}


def _register_table() -> None:
    for name, (hub_id, splits, mode, layout, description) in _TABLE.items():
        register_dataset(DatasetSpec(
            name=name, classnames=read_classnames(name), templates=read_templates(name), resize_mode=mode,
            hub_id=hub_id, splits=dict(splits), description=description,
            layout_hint=f"{layout}; or {GENERIC_LAYOUTS}",
            exclude_classes=("BACKGROUND_Google",) if name == "caltech101" else (),
            class_keys=EUROSAT_FOLDERS if name == "eurosat" else (),
            folder_names=FOLDER_NAMES.get(name, ()),
        ))


def _register_imagenet_subsets() -> None:
    imagenet_names = get_dataset_spec("imagenet").classnames
    for name, description in _IMAGENET_SUBSETS.items():
        wnids, names = imagenet_subset(name, imagenet_names)
        register_dataset(DatasetSpec(
            name=name, classnames=names, templates=read_templates(name), resize_mode="resize_crop", hub_id=None,
            splits={"test": ALL_SPLITS, "all": ALL_SPLITS}, description=description,
            layout_hint=f"the {name} folder DIR/<wnid>/*.jpg (200 wnid folders); or {GENERIC_LAYOUTS}",
            class_keys=wnids,
        ))


def register_zeroshot_specs() -> None:
    """Register the 14 zero-shot datasets and ImageNet-A/O/R once (data/__init__.py calls this at import)."""
    if not is_registered("cifar10"):
        _register_table()
        _register_imagenet_subsets()
