"""Derive the small real datasets shipped in tgazsr_cli/data/builtin/ from their original sources.

    apt-get install -y dataset-fashion-mnist     # idx files -> /usr/share/datasets/fashion-mnist
    pip download --no-deps --only-binary=:all: -d /tmp/skl scikit-learn==1.9.1   # holds digits.csv.gz
    python scripts/make_builtin_datasets.py --out tgazsr_cli/data/builtin --seed 0 \\
        --sklearn-wheel /tmp/skl/scikit_learn-1.9.1-*.whl
    python scripts/make_builtin_datasets.py --check --sklearn-wheel /tmp/skl/scikit_learn-1.9.1-*.whl

Sources (needed only by this script, never by the project at run time):
- Fashion-MNIST (MIT, Zalando SE): the four idx .gz files; --fashion-mnist-dir, default the folder where
  Debian's `dataset-fashion-mnist` puts them (/usr/share/datasets/fashion-mnist). Upstream's are the same.
- scikit-learn's handwritten digits (BSD-3-Clause): `sklearn/datasets/data/digits.csv.gz`, read straight
  out of a scikit-learn wheel (--sklearn-wheel; nothing is imported) or given as a file (--digits-csv).
  Without either, the copy inside an installed scikit-learn is used when there is one (found, not imported).
- shapes: generated here from the seed.
The SHA-256 of each source is checked against the one the shipped files were made from; a different source
is reported, since the outputs will then differ.

Fashion-MNIST is shipped as two halves of five classes each (--fashion-mnist-layout halves, the default), so
that the mini protocol can fine-tune on one half and measure zero-shot transfer to unseen classes of the
same domain on the other; `--fashion-mnist-layout full` writes one 10-class `fashion-mnist` folder instead.

Each folder gets manifest.json, train.parquet, test.parquet (Hugging Face parquet layout: an image struct
{bytes, path} of PNG bytes and an int64 label, with Image / ClassLabel features in the schema metadata),
LICENSE and README.md; builtin/README.md is rebuilt from the manifests. Each parquet file is read back with
`datasets.load_dataset("parquet", ...)` and compared with what was written (counts, class names, labels,
pixels). A file is replaced (atomically) only when its bytes change. The output is byte-for-byte
reproducible for a given seed, sources and Pillow / zlib / pyarrow versions; --check regenerates into a
temporary folder and compares.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import random
import struct
import sys
import tempfile
import textwrap
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

SIZE = 28
SCRIPT = "scripts/make_builtin_datasets.py"
DEFAULT_OUT = "tgazsr_cli/data/builtin"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_DEB = "dataset-fashion-mnist 0.0~git20200523.55506a9-1"
FASHION_FILES = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
DIGITS_MEMBER = "sklearn/datasets/data/digits.csv.gz"
# SHA-256 of the decompressed CSV (the same in the scikit-learn 1.6.1 and 1.9.1 wheels)
DIGITS_CSV_SHA256 = "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8"
SKLEARN_WHEEL = "scikit_learn-1.9.1-*.whl"

FASHION_NAMES = [
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
]
FASHION_LAYOUTS = {
    "halves": {"fashion-mnist-a": [0, 1, 2, 3, 4], "fashion-mnist-b": [5, 6, 7, 8, 9]},
    "full": {"fashion-mnist": list(range(10))},
}
FASHION_TEMPLATES = [
    "a photo of a {}.", "a black and white photo of a {}.", "a photo of a {}, a type of fashion product.",
]
FASHION_PER_CLASS = {"train": 600, "test": 200}
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGIT_TEMPLATES = ["a photo of the number {}.", "a handwritten digit {}.", "the digit {}."]
DIGITS_TRAIN_FRACTION = 0.7
SHAPE_COLOURS = {"red": (215, 40, 40), "green": (40, 170, 60), "blue": (45, 80, 225)}
SHAPE_KINDS = ["circle", "square", "triangle"]
SHAPE_TEMPLATES = ["a photo of a {}.", "a drawing of a {}.", "a {} on a grey background."]
SHAPES_PER_CLASS = {"train": 250, "test": 100}

MIT_GRANT = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and "
    "associated documentation files (the {q}Software{p}), to deal in the Software without restriction, "
    "including without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, "
    "and/or sell copies of the Software, and to permit persons to whom the Software is furnished to do so, "
    "subject to the following conditions:"
)
MIT_NOTICE = (
    "The above copyright notice and this permission notice shall be included in all copies or substantial "
    "portions of the Software."
)
MIT_WARRANTY = (
    "THE SOFTWARE IS PROVIDED {q}AS IS{p}, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT "
    "NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. "
    "IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, "
    "WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE "
    "SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."
)
# upstream's LICENSE word for word: one line a paragraph, typographic quotes
FASHION_LICENSE = "\n\n".join([
    "The MIT License (MIT) Copyright © 2017 Zalando SE, https://tech.zalando.com",
    *(text.format(q="“", p="”") for text in (MIT_GRANT, MIT_NOTICE, MIT_WARRANTY)),
]) + "\n"
PROJECT_LICENSE = "\n\n".join([
    "MIT License",
    "Copyright (c) tgazsr contributors",
    *(textwrap.fill(text.format(q='"', p='"'), 100) for text in (MIT_GRANT, MIT_NOTICE, MIT_WARRANTY)),
]) + "\n"

# scikit-learn 1.9.1's COPYING (the part that covers the package; the rest is about bundled binaries)
SKLEARN_LICENSE = """BSD 3-Clause License

Copyright (c) 2007-2026 The scikit-learn developers.
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

* Redistributions of source code must retain the above copyright notice, this
  list of conditions and the following disclaimer.

* Redistributions in binary form must reproduce the above copyright notice,
  this list of conditions and the following disclaimer in the documentation
  and/or other materials provided with the distribution.

* Neither the name of the copyright holder nor the names of its
  contributors may be used to endorse or promote products derived from
  this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

Example = tuple[Image.Image, int]


class BuildError(Exception):
    """A source is missing or a written file does not read back as written."""


@dataclass(frozen=True)
class Built:
    """One dataset folder's content before it is written."""

    name: str
    description: str
    classnames: list[str]
    templates: list[str]
    splits: dict[str, list[Example]]
    license_id: str
    license_text: str
    provenance: str
    readme_notes: list[str]


# ---------------------------------------------------------------- writing


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def parquet_bytes(examples: list[Example], classnames: list[str]) -> bytes:
    """Parquet in the Hugging Face layout: image struct {bytes, path}, int64 label, ClassLabel features."""
    features = {"image": {"_type": "Image"}, "label": {"names": classnames, "_type": "ClassLabel"}}
    table = pa.table({
        "image": pa.array([{"bytes": png_bytes(img), "path": None} for img, _ in examples],
                          type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "label": pa.array([label for _, label in examples], type=pa.int64()),
    })
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(path: Path, data: bytes) -> bool:
    """Write `data` to `path` atomically unless it already holds exactly those bytes; True when it changed."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return True


# ---------------------------------------------------------------- reading the sources


def checked(data: bytes, expected: str, what: str) -> bytes:
    if sha256(data) != expected:
        print(f"warning: {what} is not the file the shipped data were made from (SHA-256 {sha256(data)}, "
              f"expected {expected}); the outputs will differ", file=sys.stderr)
    return data


def read_idx(data: bytes) -> np.ndarray:
    raw = gzip.decompress(data)
    magic, count = struct.unpack(">II", raw[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", raw[8:16])
        return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)
    if magic != 2049:
        raise BuildError(f"not an idx image or label file (magic {magic})")
    return np.frombuffer(raw, dtype=np.uint8, offset=8)


def fashion_sources(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for file, digest in FASHION_FILES.items():
        path = folder / file
        if not path.is_file():
            raise BuildError(f"{path} is missing: `apt-get install dataset-fashion-mnist` puts the "
                             f"Fashion-MNIST idx files in {FASHION_DIR}, or pass --fashion-mnist-dir")
        arrays[file] = read_idx(checked(path.read_bytes(), digest, str(path)))
    return arrays


def digits_csv_text(csv: Path | None, wheel: Path | None) -> str:
    if csv is not None:
        data, where = csv.read_bytes(), str(csv)
    elif wheel is not None:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(DIGITS_MEMBER)
        where = f"{wheel}:{DIGITS_MEMBER}"
    else:
        spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
        locations = list(spec.submodule_search_locations or []) if spec else []
        found = [Path(p) / "datasets" / "data" / "digits.csv.gz" for p in locations]
        found = [p for p in found if p.is_file()]
        if not found:
            raise BuildError("digits needs --sklearn-wheel WHEEL (`pip download --no-deps "
                             "--only-binary=:all: scikit-learn==1.9.1`) or --digits-csv PATH (digits.csv.gz)")
        data, where = found[0].read_bytes(), str(found[0])
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return checked(data, DIGITS_CSV_SHA256, f"{where} (decompressed)").decode()


# ---------------------------------------------------------------- the datasets


def balanced_pick(labels: np.ndarray, classes: list[int], per_class: int, rng: random.Random) -> list[int]:
    chosen: list[int] = []
    for cls in classes:
        indices = [int(i) for i in np.flatnonzero(labels == cls)]
        chosen += sorted(rng.sample(indices, per_class))
    return chosen


def fashion(folder: Path, layout: str, seed: int) -> list[Built]:
    arrays = fashion_sources(folder)
    sources = {
        "train": (arrays["train-images-idx3-ubyte.gz"], arrays["train-labels-idx1-ubyte.gz"]),
        "test": (arrays["t10k-images-idx3-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"]),
    }
    built = []
    for name, classes in FASHION_LAYOUTS[layout].items():
        rng = random.Random(f"{seed}-{name}")  # one stream per folder: train picks first, then test
        splits = {}
        for split, (images, labels) in sources.items():
            picked = balanced_pick(labels, classes, FASHION_PER_CLASS[split], rng)
            splits[split] = [(Image.fromarray(images[i], mode="L"), classes.index(int(labels[i])))
                             for i in picked]
        classnames = [FASHION_NAMES[i] for i in classes]
        halves_note = (
            f"Fashion-MNIST is split into two halves of five classes (`fashion-mnist-a`: "
            f"{', '.join(FASHION_NAMES[:5])}; `fashion-mnist-b`: {', '.join(FASHION_NAMES[5:])}) so that a "
            "model fine-tuned on one half can be tested zero-shot on unseen classes of the same domain."
        )
        built.append(Built(
            name=name,
            description=f"Fashion-MNIST, classes {', '.join(classnames)}: 28x28 grey photos of fashion "
                        "products",
            classnames=classnames,
            templates=FASHION_TEMPLATES,
            splits=splits,
            license_id="MIT",
            license_text=FASHION_LICENSE,
            provenance=(
                "Zalando Research's Fashion-MNIST (github.com/zalandoresearch/fashion-mnist, MIT, (c) 2017 "
                f"Zalando SE), the four idx .gz files of Debian package {FASHION_DEB} (the same as "
                "upstream's; SHA-256 in the folder's README.md); a class-balanced subset drawn with Python's "
                f"random.Random('{seed}-{name}'): {FASHION_PER_CLASS['train']} images per class from the "
                f"official 60,000-image train split, then {FASHION_PER_CLASS['test']} per class from the "
                "official 10,000-image test split, kept as the original 28x28 grey pixels (PNG, mode L), "
                f"labels renumbered in the order of 'classnames'. Made by {SCRIPT} with: python {SCRIPT} "
                f"--out {DEFAULT_OUT} --seed {seed} --only fashion-mnist --fashion-mnist-layout {layout} "
                f"--fashion-mnist-dir {FASHION_DIR}"
            ),
            readme_notes=[
                "Images are the original Fashion-MNIST pixels, unchanged: light product on a black "
                "background.",
                "Stored as single-channel (mode `L`) PNG, half the size of a three-channel copy; tgazsr's "
                "loader converts every image to RGB (the grey value in all three channels), so a model sees "
                "3x28x28.",
                *([halves_note] if layout == "halves" else []),
                "Source files (SHA-256):",
                *[f"  - `{file}` `{digest}`" for file, digest in FASHION_FILES.items()],
            ],
        ))
    return built


def digits(csv: Path | None, wheel: Path | None, seed: int) -> list[Built]:
    text = digits_csv_text(csv, wheel)
    rows = np.array([[float(v) for v in line.split(",")] for line in text.strip().splitlines()])
    if rows.shape != (1797, 65):
        raise BuildError(f"expected the 1,797 x (64 pixels + label) scikit-learn digits, got {rows.shape}")
    pixels, labels = rows[:, :64].reshape(-1, 8, 8), rows[:, 64].astype(int)
    rng = random.Random(f"{seed}-digits")
    splits: dict[str, list[Example]] = {"train": [], "test": []}
    for cls in range(10):
        indices = [int(i) for i in np.flatnonzero(labels == cls)]
        rng.shuffle(indices)
        cut = round(DIGITS_TRAIN_FRACTION * len(indices))
        for position, index in enumerate(indices):
            # 0..16 ink counts -> 0..255, white ink on black like MNIST / Fashion-MNIST, bilinear 8 -> 28 px
            small = Image.fromarray((pixels[index] * (255 / 16)).round().astype(np.uint8), mode="L")
            example = (small.resize((SIZE, SIZE), Image.Resampling.BILINEAR), cls)
            splits["train" if position < cut else "test"].append(example)
    return [Built(
        name="digits",
        description="Handwritten digits 0-9 (8x8 scans upsampled to 28x28, white ink on black)",
        classnames=DIGIT_NAMES,
        templates=DIGIT_TEMPLATES,
        splits=splits,
        license_id="BSD-3-Clause",
        license_text=SKLEARN_LICENSE,
        provenance=(
            "scikit-learn's copy of the UCI ML hand-written digits (E. Alpaydin, C. Kaynak, 1998): "
            f"{DIGITS_MEMBER} from the scikit-learn 1.9.1 wheel (BSD-3-Clause; the same file ships in other "
            "versions; SHA-256 of the decompressed CSV in the folder's README.md), all 1,797 8x8 images; "
            "ink counts "
            "0..16 scaled to 0..255 (white ink on black) and bilinearly upsampled with Pillow to 28x28 (PNG, "
            f"mode L); a stratified split: each class shuffled with Python's random.Random('{seed}-digits') "
            f"and cut at round({DIGITS_TRAIN_FRACTION} x class size) into train / test. Made by {SCRIPT} "
            f"with: python {SCRIPT} --out {DEFAULT_OUT} --seed {seed} --only digits --sklearn-wheel "
            f"{SKLEARN_WHEEL}"
        ),
        readme_notes=[
            "Orientation: white ink on a black background, the MNIST / Fashion-MNIST convention, so that "
            "the grey sets shipped here agree; a bilinear upsample of 8x8 blocks gives soft, blurry strokes.",
            "Stored as single-channel (mode `L`) PNG; tgazsr's loader converts every image to RGB.",
            f"Source: `{DIGITS_MEMBER}` inside a scikit-learn wheel (identical in 1.6.1 and 1.9.1); "
            f"SHA-256 of the decompressed CSV `{DIGITS_CSV_SHA256}`.",
            "The data are the test set of the UCI ML Optical Recognition of Handwritten Digits data set "
            "(Alpaydin & Kaynak, 1998), redistributed by scikit-learn under its BSD-3-Clause licence "
            "(LICENSE). The UCI Machine Learning Repository lists the original under CC BY 4.0: cite it "
            "when you publish results on it.",
        ],
    )]


def draw_shape(kind: str, colour: tuple[int, int, int], rng: random.Random) -> Image.Image:
    # a smooth grey gradient in a random direction: varied, yet small as PNG (noise would not compress)
    start, end = rng.randint(80, 210), rng.randint(80, 210)
    ramp = np.linspace(start, end, SIZE)
    grey = np.tile(ramp, (SIZE, 1)) if rng.random() < 0.5 else np.tile(ramp[:, None], (1, SIZE))
    image = Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2).round().astype(np.uint8))
    draw = ImageDraw.Draw(image)
    size = rng.randint(10, 20)
    x, y = rng.randint(1, SIZE - size - 1), rng.randint(1, SIZE - size - 1)
    shade = tuple(int(np.clip(c + rng.randint(-25, 25), 0, 255)) for c in colour)
    if kind == "circle":
        draw.ellipse((x, y, x + size, y + size), fill=shade)
    elif kind == "square":
        draw.rectangle((x, y, x + size, y + size), fill=shade)
    else:
        draw.polygon([(x + size / 2, y), (x, y + size), (x + size, y + size)], fill=shade)
    return image


def shapes(seed: int) -> list[Built]:
    classes = [(colour, kind) for kind in SHAPE_KINDS for colour in SHAPE_COLOURS]
    rng = random.Random(f"{seed}-shapes")  # one stream: all train images, then all test images
    splits = {
        split: [(draw_shape(kind, SHAPE_COLOURS[colour], rng), i)
                for i, (colour, kind) in enumerate(classes) for _ in range(per_class)]
        for split, per_class in SHAPES_PER_CLASS.items()
    }
    return [Built(
        name="shapes",
        description="Coloured geometric shapes (3 colours x 3 shapes) on grey gradient backgrounds, 28x28",
        classnames=[f"{colour} {kind}" for colour, kind in classes],
        templates=SHAPE_TEMPLATES,
        splits=splits,
        license_id="MIT",
        license_text=PROJECT_LICENSE,
        provenance=(
            f"Procedurally generated by {SCRIPT} from Python's random.Random('{seed}-shapes'): for each of "
            "3 shapes (circle, square, triangle) x 3 colours (red, green, blue), a filled shape 10-20 px "
            "wide at a random place, its colour jittered by up to +-25 per channel, on a horizontal or "
            f"vertical grey gradient (80..210); {SHAPES_PER_CLASS['train']} train and "
            f"{SHAPES_PER_CLASS['test']} test images per class, 28x28 RGB PNG. Made with: python {SCRIPT} "
            f"--out {DEFAULT_OUT} --seed {seed} --only shapes"
        ),
        readme_notes=[
            "Nine classes cross three shapes with three colours, so neither the colour nor the shape alone "
            "names the class: the text tower has to read both words.",
            "Backgrounds are smooth grey gradients rather than pixel noise, which would not compress as PNG.",
            "Stored as three-channel (mode `RGB`) PNG.",
        ],
    )]


# ---------------------------------------------------------------- files of a folder


def manifest_bytes(built: Built, hashes: dict[str, str]) -> bytes:
    manifest = {
        "name": built.name, "description": built.description, "classnames": built.classnames,
        "templates": built.templates, "resize_mode": "resize", "image_size": SIZE,
        "license": built.license_id, "provenance": built.provenance,
        "num_train": len(built.splits["train"]), "num_test": len(built.splits["test"]),
        "sha256": {f"{split}.parquet": hashes[split] for split in ("train", "test")},
    }
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()


def readme_bytes(built: Built, sizes: dict[str, int]) -> bytes:
    counts = {split: Counter(label for _, label in examples) for split, examples in built.splits.items()}
    table = [f"| {i} | {name} | {counts['train'][i]} | {counts['test'][i]} |"
             for i, name in enumerate(built.classnames)]
    lines = [
        f"# `{built.name}`",
        "",
        f"{built.description}.",
        "",
        f"- Licence: {built.license_id} (see `LICENSE`).",
        f"- Images: {SIZE}x{SIZE} PNG in parquet; {len(built.splits['train']):,} train, "
        f"{len(built.splits['test']):,} test; train.parquet {sizes['train']:,} bytes, test.parquet "
        f"{sizes['test']:,} bytes.",
        f"- Templates (the first is the default): {', '.join(f'`{t}`' for t in built.templates)}",
        "",
        "| label | class name | train | test |",
        "|---|---|---|---|",
        *table,
        "",
        "## Provenance",
        "",
        built.provenance,
        "",
        *[note if note.startswith("  - ") else f"- {note}" for note in built.readme_notes],
        "",
        "## Use",
        "",
        "```",
        f"tgazsr eval --datasets {built.name} ...    # registered by name from manifest.json",
        f'datasets.load_dataset("parquet", data_files={{"test": ".../{built.name}/test.parquet"}})',
        "```",
        "",
        f"Regenerate byte-for-byte (or `--check`) with `{SCRIPT}`; see its `--help`.",
        "",
    ]
    return "\n".join(lines).encode()


def index_bytes(out: Path) -> bytes:
    rows = []
    total = 0
    for path in sorted(out.glob("*/manifest.json")):
        manifest = json.loads(path.read_text())
        size = sum((path.parent / file).stat().st_size for file in manifest["sha256"])
        total += size
        names = manifest["classnames"]
        shown = ", ".join(names) if len(names) <= 5 else f"{names[0]} … {names[-1]} ({len(names)})"
        rows.append(f"| `{manifest['name']}` | {shown} | {manifest['num_train']:,} / "
                    f"{manifest['num_test']:,} | {size / 1e6:.2f} MB | {manifest['license']} |")
    lines = [
        "# Shipped datasets",
        "",
        "Small real labelled datasets that let the mini protocol (and the tests) run offline on a CPU.",
        "Each folder holds `manifest.json` (class names, prompt templates, licence, provenance, SHA-256 of",
        "the parquet files), `train.parquet` and `test.parquet` in the Hugging Face parquet layout (28x28",
        "PNG images, `ClassLabel` labels), the original `LICENSE` and a `README.md`. They are registered by",
        "name and read through the same local-parquet code path as any downloaded dataset;",
        '`datasets.load_dataset("parquet", data_files=...)` reads them too.',
        "",
        "| name | classes | train / test | parquet size | licence |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Parquet files in all: {total / 1e6:.2f} MB. Grey sources are stored as one-channel PNG; the",
        "loader makes every image RGB. Everything here is derived by `scripts/make_builtin_datasets.py`",
        "(its docstring names the sources and the exact commands); `--check` regenerates into a temporary",
        "folder and compares bytes.",
        "",
    ]
    return "\n".join(lines).encode()


# ---------------------------------------------------------------- checking what was written


def verify(folder: Path, built: Built) -> None:
    """Read the parquet files back through `datasets` and compare them with what was written."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets  # the project's dependency; imported late so that --help stays fast

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()

    def require(condition: bool, message: str) -> None:
        if not condition:
            raise BuildError(f"{folder.name}: {message}")

    with tempfile.TemporaryDirectory() as cache:
        files = {split: str(folder / f"{split}.parquet") for split in built.splits}
        loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=cache)
        for split, examples in built.splits.items():
            data = loaded[split]
            require(len(data) == len(examples), f"{split}: {len(data)} rows, wrote {len(examples)}")
            label = data.features["label"]
            require(isinstance(data.features["image"], datasets.Image), f"{split}: image is no Image feature")
            require(isinstance(label, datasets.ClassLabel) and label.names == built.classnames,
                    f"{split}: label is not ClassLabel({built.classnames})")
            require(data["label"] == [y for _, y in examples], f"{split}: labels differ from those written")
            rng = random.Random(0)
            for i in sorted({0, len(data) - 1, *rng.sample(range(len(data)), min(25, len(data)))}):
                image = data[i]["image"]
                require(isinstance(image, Image.Image) and image.size == (SIZE, SIZE),
                        f"{split}[{i}]: not a {SIZE}x{SIZE} PIL image")
                require(np.array_equal(np.asarray(image), np.asarray(examples[i][0])),
                        f"{split}[{i}]: pixels differ from those written")


# ---------------------------------------------------------------- main


def write(out: Path, built: Built) -> None:
    folder = out / built.name
    data = {split: parquet_bytes(examples, built.classnames) for split, examples in built.splits.items()}
    hashes = {split: sha256(blob) for split, blob in data.items()}
    files = {f"{split}.parquet": blob for split, blob in data.items()}
    files["manifest.json"] = manifest_bytes(built, hashes)
    files["LICENSE"] = built.license_text.encode()
    files["README.md"] = readme_bytes(built, {split: len(blob) for split, blob in data.items()})
    changed = [file for file, blob in files.items() if put(folder / file, blob)]
    verify(folder, built)
    sizes = {split: sorted(Counter(y for _, y in ex).values()) for split, ex in built.splits.items()}
    print(f"{built.name}: {len(built.splits['train'])} train, {len(built.splits['test'])} test, "
          f"{len(built.classnames)} classes (per class: train {sizes['train'][0]}..{sizes['train'][-1]}, "
          f"test {sizes['test'][0]}..{sizes['test'][-1]}); read back through datasets: ok; "
          f"{'changed: ' + ', '.join(changed) if changed else 'unchanged'}")
    for split in ("train", "test"):
        print(f"  {split}.parquet {len(data[split]):>9,} bytes  sha256 {hashes[split]}")


def compare(generated: Path, out: Path) -> list[str]:
    differences = []
    for path in sorted(p for p in generated.rglob("*") if p.is_file()):
        target = out / path.relative_to(generated)
        if not target.is_file():
            differences.append(f"{target} is missing")
        elif target.read_bytes() != path.read_bytes():
            differences.append(f"{target} differs (regenerated sha256 {sha256(path.read_bytes())}, "
                               f"on disk {sha256(target.read_bytes())})")
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=f"default {DEFAULT_OUT}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["fashion-mnist", "digits", "shapes"], help="build one source only")
    parser.add_argument("--fashion-mnist-dir", type=Path, default=Path(FASHION_DIR),
                        help=f"folder of the four Fashion-MNIST idx .gz files (default {FASHION_DIR})")
    parser.add_argument("--fashion-mnist-layout", choices=sorted(FASHION_LAYOUTS), default="halves",
                        help="two 5-class folders (default, shipped) or one 10-class `fashion-mnist` folder")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--sklearn-wheel", type=Path, help=f"a scikit-learn wheel holding {DIGITS_MEMBER}")
    source.add_argument("--digits-csv", type=Path, help="scikit-learn's digits.csv.gz (or the plain CSV)")
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary folder, compare with --out byte for byte; "
                             "write nothing")
    args = parser.parse_args(argv)

    builders: list[tuple[str, Callable[[], list[Built]]]] = [
        ("fashion-mnist", lambda: fashion(args.fashion_mnist_dir, args.fashion_mnist_layout, args.seed)),
        ("digits", lambda: digits(args.digits_csv, args.sklearn_wheel, args.seed)),
        ("shapes", lambda: shapes(args.seed)),
    ]
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) if args.check else args.out
        try:
            for key, build in builders:
                if args.only in (None, key):
                    for built in build():
                        write(target, built)
        except (BuildError, OSError, zipfile.BadZipFile, KeyError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        if args.only is None:
            put(target / "README.md", index_bytes(target))
        versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("numpy", "pillow", "pyarrow"))
        print(f"made with Python {sys.version.split()[0]}, {versions}")
        if args.check:
            differences = compare(target, args.out)
            for line in differences:
                print(f"check: {line}", file=sys.stderr)
            verdict = "FAILED" if differences else f"every regenerated file is byte-identical to {args.out}"
            print(f"check: {verdict}")
            return 1 if differences else 0
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {total:,} bytes in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
