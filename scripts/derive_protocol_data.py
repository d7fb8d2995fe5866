"""Write the class-name, template and image-id lists of the `robustvlm` and `clip-benchmark` protocols.

The lists under ``tgazsr_cli/protocols/clip-benchmark/`` and ``tgazsr_cli/data/subsets/`` are data read
from public reference repositories, never typed by hand. This script re-creates them from local checkouts, so
a reviewer can regenerate them and diff:

    python scripts/derive_protocol_data.py \\
        --clip-benchmark ~/src/CLIP_benchmark \\
        --robustbench ~/src/robustbench \\
        --openai-clip ~/src/CLIP \\
        --tfds-cars196 ~/src/datasets/tensorflow_datasets/image_classification/cars196.py \\
        --tfds-flowers ~/src/datasets/tensorflow_datasets/image_classification/oxford_flowers102.py

Inputs (the commits the shipped files were made from are in brackets; pass ``--*-commit`` when a checkout is
not a git work tree, otherwise ``git rev-parse HEAD`` is used):

- ``--clip-benchmark``: a checkout of LAION-AI/CLIP_benchmark [48de38c1689fa6d8b4dd53e3370c669c3bb18117];
  reads ``clip_benchmark/datasets/en_zeroshot_classification_templates.json`` (templates, ``{c}`` written as
  ``{}``) and ``clip_benchmark/datasets/en_classnames.json`` (pets, eurosat, pcam).
  chs20/RobustVLM [7de10ee209f169d415c07aa0abaae4806c402b14] vendors byte-identical copies of both files
  (``CLIP_benchmark/clip_benchmark/datasets/``) and of the templates as ``CLIP_eval/zeroshot-templates.json``.
- ``--robustbench``: a checkout of RobustBench/robustbench [e67e4225facde47be6a41ed78b576076e8b90cc5, the commit
  RobustVLM's requirements.txt pins; identical at 78fcc9e48a07a861268f295a777b975f25155964]; reads
  ``robustbench/helper_files/imagenet_test_image_ids.txt`` (the 5,000 ImageNet validation images, file order).
- ``--openai-clip``: a checkout of openai/CLIP [d05afc436d78f1c48dc0dbf8e5980a9d471f35f6]; reads the
  FGVCAircraft ``classes`` block of ``data/prompts.md`` (the 100 names of fgvc-aircraft-2013b's variants.txt,
  which torchvision's FGVCAircraft uses as its classes).
- ``--tfds-cars196``: tensorflow/datasets ``tensorflow_datasets/image_classification/cars196.py``
  [0560e686ded1ed7876137f062fa09467717a8e42]; reads ``_NAMES`` (the class_names of Stanford Cars' devkit, the
  list torchvision's StanfordCars returns, years included).
- ``--tfds-flowers``: tensorflow/datasets ``tensorflow_datasets/image_classification/oxford_flowers102.py``
  [1ab0c7d99f864b20e19207c520e6faf9ec3311bc]; reads ``_NAMES`` (the names VTAB's flowers takes from TFDS:
  CLIP_benchmark's build_vtab_dataset passes no classes for it).

Two lists are derived from this project's own dataset files, with the reference's rule undone:
``cifar100.txt`` (torchvision/TFDS fine label names keep ``_``: no CIFAR-100 name has a space, so a space in
``tgazsr_cli/data/datasets/classnames/cifar100.txt`` is a ``_``) and ``dtd.txt`` (TFDS names DTD classes by their
folder, ``polka-dotted``; no DTD folder has a space). Every list is checked against this project's list under
the cleaning rule that produced it; a mismatch stops the script.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ROOT / "tgazsr_cli" / "data" / "datasets" / "classnames"
PROTOCOLS = ROOT / "tgazsr_cli" / "protocols"
SUBSETS = ROOT / "tgazsr_cli" / "data" / "subsets"  # named id lists a selection reads (data/selection.py)

# template key in en_zeroshot_classification_templates.json -> output file (under clip-benchmark/)
TEMPLATE_KEYS = ("cifar10", "cifar100", "imagenet1k", "food101", "sun397", "cars", "fgvc_aircraft", "dtd", "pets",
                 "caltech101", "flowers", "stl10", "eurosat", "pcam")
# class-name key in en_classnames.json -> (output file, our dataset's list, the rule ours applies to the reference;
# None: only the count and order are checked, the names differ)
CLASSNAME_KEYS = {
    "pets": ("pets.txt", "pets", lambda n: n.lower()),
    "eurosat": ("eurosat.txt", "eurosat", None),
    "pcam": ("pcam.txt", "pcam", None),
}
MIT_CLIP_BENCHMARK = "MIT licence, Copyright (c) 2022 Mehdi Cherti (LAION-AI/CLIP_benchmark LICENSE)"


def commit_of(path: Path, given: str | None) -> str:
    if given:
        return given
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        sys.exit(f"{path} is not a git work tree: pass its commit with the matching --*-commit option")
    return out.stdout.strip()


def our_names(name: str) -> list[str]:
    """This project's class names for `name` (the part after a tab when a line has one)."""
    lines = (OURS / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[-1] for line in lines if line.strip() and not line.startswith("#")]


def key_line(text: str, key: str) -> int:
    """The 1-based line of `"key":` in a JSON file written one entry a line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf'\s*"{re.escape(key)}"\s*:', line):
            return number
    sys.exit(f"key {key!r} not found")


def write_names(path: Path, header: list[str], names: list[str]) -> None:
    body = "".join(f"# {line}\n" for line in header) + "".join(f"{name}\n" for name in names)
    path.write_text(body, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)} ({len(names)} names)")


def check(kind: str, theirs: list[str], ours: list[str], rule) -> None:
    mapped = [rule(n) if rule else n for n in theirs]
    if len(theirs) != len(ours) or (rule is not None and mapped != ours):
        sys.exit(f"{kind}: the reference list does not map onto ours ({len(theirs)} vs {len(ours)} names)")


def derive_templates(cb: Path, commit: str, out: Path) -> None:
    path = cb / "clip_benchmark" / "datasets" / "en_zeroshot_classification_templates.json"
    text = path.read_text(encoding="utf-8")
    table = json.loads(text)
    for key in TEMPLATE_KEYS:
        templates = table[key]
        for template in templates:
            if template.count("{") != 1 or "{c}" not in template or "\n" in template:
                sys.exit(f"template {template!r} of {key} is not a one-line '{{c}}' template")
        line = key_line(text, key)
        write_names(out / f"templates-{key}.txt", [
            f"CLIP_benchmark's '{key}' zero-shot templates ({len(templates)}), '{{c}}' written as '{{}}'.",
            f"Source: LAION-AI/CLIP_benchmark@{commit} clip_benchmark/datasets/"
            f"en_zeroshot_classification_templates.json:{line}-{line + len(templates) + 1}",
            "(byte-identical: chs20/RobustVLM@7de10ee209f169d415c07aa0abaae4806c402b14",
            "CLIP_eval/zeroshot-templates.json and",
            "CLIP_benchmark/clip_benchmark/datasets/en_zeroshot_classification_templates.json).",
            MIT_CLIP_BENCHMARK + ". Written by scripts/derive_protocol_data.py.",
        ], [t.replace("{c}", "{}") for t in templates])


def derive_classnames(cb: Path, commit: str, out: Path) -> None:
    path = cb / "clip_benchmark" / "datasets" / "en_classnames.json"
    text = path.read_text(encoding="utf-8")
    table = json.loads(text)
    for key, (filename, ours, rule) in CLASSNAME_KEYS.items():
        names = table[key]
        check(key, names, our_names(ours), rule)
        line = key_line(text, key)
        write_names(out / filename, [
            f"CLIP_benchmark's '{key}' class names, in label order (the hub copy's .cls order).",
            f"Source: LAION-AI/CLIP_benchmark@{commit} clip_benchmark/datasets/en_classnames.json:"
            f"{line}-{line + len(names) + 1}",
            "(byte-identical in chs20/RobustVLM@7de10ee209f169d415c07aa0abaae4806c402b14",
            "CLIP_benchmark/clip_benchmark/datasets/en_classnames.json). Written by scripts/derive_protocol_data.py.",
            MIT_CLIP_BENCHMARK + ".",
        ], names)


def derive_from_ours(out: Path) -> None:
    cifar100 = [n.replace(" ", "_") for n in our_names("cifar100")]
    write_names(out / "cifar100.txt", [
        "CIFAR-100 fine label names as TFDS and torchvision give them ('aquarium_fish'): VTAB's cifar100 takes",
        "the TFDS names (LAION-AI/CLIP_benchmark@48de38c1689fa6d8b4dd53e3370c669c3bb18117",
        "clip_benchmark/datasets/tfds.py:29-30; builder.py:574-576 passes no classes), which the",
        "clip-benchmark/wds_vtab-cifar100 copy stores in classnames.txt (webdataset_builder.py:142-145 of",
        "chs20/RobustVLM@7de10ee209f169d415c07aa0abaae4806c402b14 CLIP_benchmark/). Same list as",
        "tensorflow/datasets@90b66237ad09c9e5b9b1bc61b646db7b1fb0713c",
        "tensorflow_datasets/image_classification/cifar100_n/dummy_data/cifar-100-binary/fine_label_names.txt:1-100.",
        "Derived from tgazsr_cli/data/datasets/classnames/cifar100.txt (space -> '_'; no CIFAR-100 name has a",
        "space). Label order = ours. Written by scripts/derive_protocol_data.py.",
    ], cifar100)
    dtd = [n.replace(" ", "-") for n in our_names("dtd")]
    write_names(out / "dtd.txt", [
        "DTD classes as TFDS names them: the image folder ('polka-dotted'; tensorflow/datasets@",
        "0d456aef87c0bb8ccbffb8d763363f2d4fa65fe5 tensorflow_datasets/image_classification/dtd.py:96-97 label =",
        "folder, names file dtd_key_attributes.txt :59-60), which VTAB's dtd passes on",
        "(LAION-AI/CLIP_benchmark@48de38c1689fa6d8b4dd53e3370c669c3bb18117 builder.py:618-620, tfds.py:29-30).",
        "Derived from tgazsr_cli/data/datasets/classnames/dtd.txt (space -> '-'; no DTD folder has a space).",
        "Label order = ours (sorted folders). Written by scripts/derive_protocol_data.py.",
    ], dtd)


def derive_aircraft(clip: Path, commit: str, out: Path) -> None:
    lines = (clip / "data" / "prompts.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "## FGVCAircraft")
    begin = next(i for i in range(start, len(lines)) if lines[i].startswith("classes = ["))
    end = next(i for i in range(begin, len(lines)) if lines[i].strip() == "]")
    names = [ast.literal_eval(line.strip().rstrip(",")) for line in lines[begin + 1:end]]

    def rule(name: str) -> str:  # how this project's aircraft.txt was cleaned (see its header)
        return ("Boeing " + name if name.startswith("7") else name).lower().replace("_", " ")

    check("fgvc_aircraft", names, our_names("aircraft"), rule)
    write_names(out / "aircraft.txt", [
        "FGVC-Aircraft variant names as torchvision's FGVCAircraft gives them (data/variants.txt of",
        "fgvc-aircraft-2013b), the class names of CLIP_benchmark's fgvc_aircraft (LAION-AI/CLIP_benchmark@",
        "48de38c1689fa6d8b4dd53e3370c669c3bb18117 clip_benchmark/datasets/builder.py:392-394, no rename).",
        f"Transcribed from openai/CLIP@{commit} data/prompts.md:{begin + 2}-{end} (MIT licence, Copyright (c)",
        "2021 OpenAI). Label order = ours. Written by scripts/derive_protocol_data.py.",
    ], names)


def tfds_names(path: Path) -> tuple[ast.Assign, list[str]]:
    """The `_NAMES = [...]` list of a tensorflow/datasets builder module, and its assignment (for its lines)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_NAMES")
    return node, ast.literal_eval(node.value)


def derive_cars(path: Path, commit: str, out: Path) -> None:
    node, names = tfds_names(path)
    check("cars", names, our_names("cars"), lambda n: n[:-5].lower().replace("_", " ").replace("-", " "))
    write_names(out / "cars.txt", [
        "Stanford Cars class names with the year, as torchvision's StanfordCars gives them (devkit",
        "cars_meta.mat class_names), the class names of CLIP_benchmark's cars (LAION-AI/CLIP_benchmark@",
        "48de38c1689fa6d8b4dd53e3370c669c3bb18117 clip_benchmark/datasets/builder.py:389-391, no rename).",
        f"Transcribed from tensorflow/datasets@{commit} tensorflow_datasets/image_classification/cars196.py:"
        f"{node.lineno}-{node.end_lineno} (_NAMES, Apache-2.0). Label order = ours. Written by",
        "scripts/derive_protocol_data.py.",
    ], names)


def derive_flowers(path: Path, commit: str, out: Path) -> None:
    node, names = tfds_names(path)
    check("flowers", names, our_names("flowers102"), lambda n: n.replace("-", " ").replace("'", ""))
    write_names(out / "flowers102.txt", [
        "Oxford Flowers-102 names as TFDS gives them, the class names of VTAB's flowers (LAION-AI/CLIP_benchmark@",
        "48de38c1689fa6d8b4dd53e3370c669c3bb18117 clip_benchmark/datasets/builder.py:644-646 and tfds.py:29-30: no",
        "classes passed, so TFDS's label names), stored by the converter in clip-benchmark/wds_vtab-flowers.",
        f"Transcribed from tensorflow/datasets@{commit} tensorflow_datasets/image_classification/oxford_flowers102.py:"
        f"{node.lineno}-{node.end_lineno} (_NAMES, Apache-2.0). Label order = ours (imagelabels.mat).",
        "Written by scripts/derive_protocol_data.py.",
    ], names)


def derive_robustbench(rb: Path, commit: str, out: Path) -> None:
    ids = [line.strip() for line in (rb / "robustbench" / "helper_files" / "imagenet_test_image_ids.txt")
           .read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(ids) != 5000 or len(set(ids)) != 5000:
        sys.exit(f"expected 5,000 distinct ImageNet ids, found {len(ids)}")
    write_names(out / "robustbench-imagenet-5000.txt", [
        "RobustBench's 5,000-image ImageNet test subset: <wnid>/ILSVRC2012_val_<number>.JPEG, one a line, in",
        "the order robustbench evaluates them (robustbench/loaders.py:19-26,68-70 keep the file order).",
        f"Source: RobustBench/robustbench@{commit} robustbench/helper_files/imagenet_test_image_ids.txt:1-5000",
        "(MIT licence, Copyright (c) 2020 Francesco Croce, Maksym Andriushchenko, Vikash Sehwag).",
        "Written by scripts/derive_protocol_data.py.",
    ], ids)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-benchmark", type=Path, required=True)
    parser.add_argument("--clip-benchmark-commit")
    parser.add_argument("--robustbench", type=Path, required=True)
    parser.add_argument("--robustbench-commit")
    parser.add_argument("--openai-clip", type=Path, required=True)
    parser.add_argument("--openai-clip-commit")
    parser.add_argument("--tfds-cars196", type=Path, required=True)
    parser.add_argument("--tfds-commit", default="0560e686ded1ed7876137f062fa09467717a8e42")
    parser.add_argument("--tfds-flowers", type=Path, required=True)
    parser.add_argument("--tfds-flowers-commit", default="1ab0c7d99f864b20e19207c520e6faf9ec3311bc")
    parser.add_argument("--out", type=Path, default=PROTOCOLS)
    parser.add_argument("--subsets-out", type=Path, default=SUBSETS)
    args = parser.parse_args(argv)
    cb_dir = args.out / "clip-benchmark"
    rv_dir = args.subsets_out
    cb_dir.mkdir(parents=True, exist_ok=True)
    rv_dir.mkdir(parents=True, exist_ok=True)
    cb_commit = commit_of(args.clip_benchmark, args.clip_benchmark_commit)
    derive_templates(args.clip_benchmark, cb_commit, cb_dir)
    derive_classnames(args.clip_benchmark, cb_commit, cb_dir)
    derive_from_ours(cb_dir)
    derive_aircraft(args.openai_clip, commit_of(args.openai_clip, args.openai_clip_commit), cb_dir)
    derive_cars(args.tfds_cars196, args.tfds_commit, cb_dir)
    derive_flowers(args.tfds_flowers, args.tfds_flowers_commit, cb_dir)
    derive_robustbench(args.robustbench, commit_of(args.robustbench, args.robustbench_commit), rv_dir)


if __name__ == "__main__":
    main()
