"""Derive the small real datasets shipped in tgazsr_cli/engine/data/builtin/ from their original sources.

    python scripts/make_builtin_datasets.py --out tgazsr_cli/engine/data/builtin

Sources (needed only here, never at run time):
- Fashion-MNIST idx files (MIT): Debian's `dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist.
- scikit-learn's handwritten digits (BSD-3-Clause): `digits.csv.gz` from any scikit-learn wheel
  (`pip download --no-deps scikit-learn`, then pass the wheel with --sklearn-wheel).
- shapes: generated here from the seed.
Fashion-MNIST is shipped as two halves of five classes each, so that the mini protocol can fine-tune on one
half and measure zero-shot transfer to unseen classes of the same domain on the other.
Output is byte-for-byte reproducible for a given seed and sources.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import struct
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

SIZE = 28
FASHION_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
FASHION_HALVES = {"fashion-mnist-a": [0, 1, 2, 3, 4], "fashion-mnist-b": [5, 6, 7, 8, 9]}
FASHION_TEMPLATES = [
    "a photo of a {}.", "a black and white photo of a {}.", "a photo of a {}, a type of fashion product.",
]
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGIT_TEMPLATES = ["a photo of the number {}.", "a handwritten digit {}.", "the digit {}."]
SHAPE_COLOURS = {"red": (215, 40, 40), "green": (40, 170, 60), "blue": (45, 80, 225)}
SHAPE_KINDS = ["circle", "square", "triangle"]
SHAPE_TEMPLATES = ["a photo of a {}.", "a drawing of a {}.", "a {} on a grey background."]

MIT = """MIT License

Copyright (c) {holder}

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and
to permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of
the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO
THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS
IN THE SOFTWARE.
"""

BSD3 = """BSD 3-Clause License

Copyright (c) 2007-2024 The scikit-learn developers.
All rights reserved.

Redistribution and use in source and binary forms, with or without modification, are permitted provided that the
following conditions are met:

* Redistributions of source code must retain the above copyright notice, this list of conditions and the
  following disclaimer.
* Redistributions in binary form must reproduce the above copyright notice, this list of conditions and the
  following disclaimer in the documentation and/or other materials provided with the distribution.
* Neither the name of the copyright holder nor the names of its contributors may be used to endorse or promote
  products derived from this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED
WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR
PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT,
INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE
GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF
LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY
OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

Example = tuple[Image.Image, int]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write_parquet(path: Path, examples: list[Example], classnames: list[str]) -> str:
    """Parquet in the Hugging Face layout: image struct {bytes, path}, int64 label, ClassLabel features."""
    features = {"image": {"_type": "Image"}, "label": {"names": classnames, "_type": "ClassLabel"}}
    table = pa.table({
        "image": pa.array([{"bytes": png_bytes(img), "path": None} for img, _ in examples],
                          type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "label": pa.array([label for _, label in examples], type=pa.int64()),
    })
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, path, compression="zstd")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)
    return np.frombuffer(data, dtype=np.uint8, offset=8)


def balanced_pick(labels: np.ndarray, classes: list[int], per_class: int, rng: random.Random) -> list[int]:
    chosen: list[int] = []
    for cls in classes:
        indices = [int(i) for i in np.flatnonzero(labels == cls)]
        chosen += sorted(rng.sample(indices, per_class))
    return chosen


def fashion_halves(source: Path, seed: int) -> dict[str, tuple[list[Example], list[Example]]]:
    train_x, train_y = read_idx(source / "train-images-idx3-ubyte.gz"), read_idx(source / "train-labels-idx1-ubyte.gz")
    test_x, test_y = read_idx(source / "t10k-images-idx3-ubyte.gz"), read_idx(source / "t10k-labels-idx1-ubyte.gz")
    out = {}
    for name, classes in FASHION_HALVES.items():
        rng = random.Random(f"{seed}-{name}")
        splits = []
        for images, labels, per_class in ((train_x, train_y, 600), (test_x, test_y, 200)):
            picked = balanced_pick(labels, classes, per_class, rng)
            splits.append([(Image.fromarray(images[i], mode="L"), classes.index(int(labels[i]))) for i in picked])
        out[name] = (splits[0], splits[1])
    return out


def digits(wheel: Path, seed: int) -> tuple[list[Example], list[Example]]:
    with zipfile.ZipFile(wheel) as archive:
        raw = gzip.decompress(archive.read("sklearn/datasets/data/digits.csv.gz")).decode()
    rows = np.array([[float(v) for v in line.split(",")] for line in raw.strip().splitlines()])
    pixels, labels = rows[:, :64].reshape(-1, 8, 8), rows[:, 64].astype(int)
    rng = random.Random(f"{seed}-digits")
    train, test = [], []
    for cls in range(10):
        indices = [int(i) for i in np.flatnonzero(labels == cls)]
        rng.shuffle(indices)
        cut = round(0.7 * len(indices))
        for position, index in enumerate(indices):
            # 0..16 ink -> white on black like MNIST, upsampled bilinearly to 28 px
            small = Image.fromarray((pixels[index] * (255 / 16)).round().astype(np.uint8), mode="L")
            example = (small.resize((SIZE, SIZE), Image.BILINEAR), cls)
            (train if position < cut else test).append(example)
    return train, test


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


def shapes(seed: int) -> tuple[list[str], list[Example], list[Example]]:
    classes = [(colour, kind) for kind in SHAPE_KINDS for colour in SHAPE_COLOURS]
    names = [f"{colour} {kind}" for colour, kind in classes]
    rng = random.Random(f"{seed}-shapes")
    train = [(draw_shape(k, SHAPE_COLOURS[c], rng), i) for i, (c, k) in enumerate(classes) for _ in range(250)]
    test = [(draw_shape(k, SHAPE_COLOURS[c], rng), i) for i, (c, k) in enumerate(classes) for _ in range(100)]
    return names, train, test


def write_dataset(out: Path, name: str, classnames: list[str], templates: list[str], train: list[Example],
                  test: list[Example], licence: tuple[str, str], description: str, provenance: str) -> None:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {split: write_parquet(folder / f"{split}.parquet", examples, classnames)
              for split, examples in (("train", train), ("test", test))}
    manifest = {
        "name": name, "description": description, "classnames": classnames, "templates": templates,
        "resize_mode": "resize", "image_size": SIZE, "license": licence[0], "provenance": provenance,
        "num_train": len(train), "num_test": len(test),
        "sha256": {f"{split}.parquet": digest for split, digest in hashes.items()},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (folder / "LICENSE").write_text(licence[1])
    print(f"{name}: {len(train)} train, {len(test)} test, {len(classnames)} classes, "
          f"train.parquet {hashes['train'][:12]}, test.parquet {hashes['test'][:12]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("tgazsr_cli/engine/data/builtin"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fashion-mnist-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--sklearn-wheel", type=Path, help="a scikit-learn wheel holding digits.csv.gz")
    parser.add_argument("--only", choices=["fashion-mnist", "digits", "shapes"])
    args = parser.parse_args()
    command = "python scripts/make_builtin_datasets.py --out tgazsr_cli/engine/data/builtin --seed 0"
    if args.only in (None, "fashion-mnist"):
        for name, (train, test) in fashion_halves(args.fashion_mnist_dir, args.seed).items():
            classes = [FASHION_NAMES[i] for i in FASHION_HALVES[name]]
            write_dataset(
                args.out, name, classes, FASHION_TEMPLATES, train, test,
                ("MIT", MIT.format(holder="2017 Zalando SE, https://tech.zalando.com")),
                f"Fashion-MNIST, classes {', '.join(classes)}: 28x28 grey photos of fashion products",
                "Zalando Research's Fashion-MNIST (github.com/zalandoresearch/fashion-mnist), idx files of Debian "
                "package dataset-fashion-mnist 0.0~git20200523.55506a9-1; a seeded class-balanced subset of 600 "
                f"train images per class from the official train split and 200 per class from the test split. "
                f"Regenerate: {command}",
            )
    if args.only in (None, "digits"):
        if args.sklearn_wheel is None:
            parser.error("--sklearn-wheel is needed for digits (pip download --no-deps scikit-learn)")
        train, test = digits(args.sklearn_wheel, args.seed)
        write_dataset(
            args.out, "digits", DIGIT_NAMES, DIGIT_TEMPLATES, train, test, ("BSD-3-Clause", BSD3),
            "Handwritten digits 0-9 (8x8 scans upsampled to 28x28, white ink on black)",
            "scikit-learn's copy of the UCI ML hand-written digits (sklearn/datasets/data/digits.csv.gz, 1,797 "
            "images, from the scikit-learn 1.9.1 wheel); 0..16 ink scaled to 0..255 and bilinearly upsampled to "
            f"28x28; a seeded stratified 70/30 train/test split. Regenerate: {command} --sklearn-wheel WHEEL",
        )
    if args.only in (None, "shapes"):
        names, train, test = shapes(args.seed)
        write_dataset(
            args.out, "shapes", names, SHAPE_TEMPLATES, train, test, ("MIT", MIT.format(holder="tgazsr contributors")),
            "Coloured geometric shapes (3 colours x 3 shapes) on grey gradient backgrounds, 28x28",
            f"Procedurally generated by scripts/make_builtin_datasets.py from seed {args.seed}. Regenerate: {command}",
        )


if __name__ == "__main__":
    main()
