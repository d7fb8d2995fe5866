"""Derive the mini world (emoji-pretrain, emoji-seen, emoji-unseen, symbola) shipped in tgazsr_cli/data/builtin/.

    apt-get install -y fonts-noto-color-emoji fonts-symbola
    python scripts/make_emoji_world.py --out tgazsr_cli/data/builtin --seed 0
    python scripts/make_emoji_world.py --check

Sources (needed only by this script, never by the project at run time): the two Debian fonts
- Noto Color Emoji (fonts-noto-color-emoji 2.042-0+deb12u1, SIL Open Font License 1.1, (c) Google Inc.):
  colour bitmaps, rendered by Pillow at size 109 (the only size the CBDT font has) with embedded_color=True;
- Symbola (fonts-symbola 2.60-1.1, "free for any use", (c) George Douros): black outlines of the same
  characters, rendered at size 110.
A concept is a single code point that both fonts map, of Unicode category So (other symbol), whose glyph is
not blank in either font, named by `unicodedata.name` lower-cased ("red apple"); regional indicators, skin-tone
modifiers, squared / circled letters and CJK signs are left out (letters, not pictures), as are names whose
longest prompt does not fit the mini CLIP's 16-token context and names that a shipped dataset already uses. Of the
1,062 that qualify, a seeded random subset of CONCEPTS (500) is kept: more images of each for the same bytes.

Every image is one concept's glyph, rotated, scaled and placed at random on a flat or gradient background, with
a sprinkle of speckle noise: a draw of Python's random.Random('SEED-FOLDER-SPLIT-CODEPOINT'), so every folder,
split and concept has its own stream and no two folders share an image. Colour renderings are RGB PNG, Symbola
renderings one-channel PNG (black ink on a grey background; the loader makes them RGB).

- emoji-pretrain: every concept in both renderings (train only): the mini CLIP's pre-training set;
- emoji-seen: a fixed random subset of SEEN_CLASSES concepts, colour (train: the fine-tuning set, the
  Tiny-ImageNet role; val and test: other draws, val for choosing hyper-parameters);
- emoji-unseen: every other concept, colour (test only: classes never fine-tuned on);
- symbola: every concept, line drawings (test only: the other rendering, the sketch domain).

The SHA-256 of each font is checked against the one the shipped files were made from. Files are replaced
atomically only when their bytes change; each parquet file is read back through `datasets` and compared.
The output is byte-for-byte reproducible for a given seed, fonts and Pillow / zlib / pyarrow versions; --check
regenerates into a temporary folder and compares.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import random
import sys
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_builtin_datasets import (  # the sibling script's writers, shared on purpose
    BuildError,
    compare,
    parquet_bytes,
    put,
    sha256,
)

SIZE = 28
SCRIPT = "scripts/make_emoji_world.py"
DEFAULT_OUT = "tgazsr_cli/data/builtin"
NOTO = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
SYMBOLA = Path("/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf")
NOTO_DEB = "fonts-noto-color-emoji 2.042-0+deb12u1"
SYMBOLA_DEB = "fonts-symbola 2.60-1.1"
FONT_SHA256 = {
    NOTO.name: "e5899ed38b8ed83e08bd3ac5de09791e9d19d288333a796de1d35ad17396f1ec",
    SYMBOLA.name: "af8bd8cc9c808272034651cb5ebf6c38370ae536fe631eb89462f127f11e793f",
}
NOTO_SIZE = 109  # the colour bitmap strikes exist at this size only
SYMBOLA_SIZE = 110
CONTEXT_LENGTH = 16  # tgazsr-mini's text context, start and end tokens included
CONCEPTS = 500  # a seeded random subset of the ~1,060 eligible characters: more views of each for the same bytes
SEEN_CLASSES = 200
SPECKLE = 0.02  # largest share of pixels replaced by noise (noise does not compress as PNG)
PER_CLASS = {  # images per concept and rendering
    ("emoji-pretrain", "train"): 15,
    ("emoji-seen", "train"): 12,
    ("emoji-seen", "val"): 3,  # for choosing hyper-parameters, so that no choice is made on a test split
    ("emoji-seen", "test"): 3,
    ("emoji-unseen", "test"): 3,
    ("symbola", "test"): 3,
}
EMOJI_TEMPLATES = ["an emoji of a {}.", "a picture of a {}.", "a {}."]
LINE_TEMPLATES = ["a line drawing of a {}.", "a black and white drawing of a {}.", "a {}."]
PRETRAIN_TEMPLATES = ["an emoji of a {}.", "a line drawing of a {}.", "a picture of a {}.", "a {}."]
LEFT_OUT = ("REGIONAL INDICATOR", "FITZPATRICK", "SQUARED", "CIRCLED", "CJK", "IDEOGRAPH", "KEYCAP")
SHIPPED_NAMES = {  # class names of the other shipped sets: a combined pre-training set needs unique names
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    *(f"{c} {k}" for c in ("red", "green", "blue") for k in ("circle", "square", "triangle")),
}

SYMBOLA_LICENSE = """Symbola
Copyright (C) 2007-2015 George Douros <g1951d@teilar.gr>, http://users.teilar.gr/~g1951d/

License:

    Fonts are free for any use; they may be opened, edited,
    modified, regenerated, packaged and redistributed.

(The licence of the Symbola font as stated in Debian's /usr/share/doc/fonts-symbola/copyright, package
fonts-symbola 2.60-1.1. The images in this folder are renderings of its glyphs.)
"""


@dataclass(frozen=True)
class Concept:
    codepoint: int
    name: str


@dataclass(frozen=True)
class Folder:
    name: str
    description: str
    classnames: list[str]
    templates: list[str]
    splits: dict[str, list[tuple[Image.Image, int]]]
    license_id: str
    license_text: str
    provenance: str
    notes: list[str]


# ---------------------------------------------------------------- fonts and concepts


def font_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise BuildError(f"{path} is missing: `apt-get install fonts-noto-color-emoji fonts-symbola`")
    data = path.read_bytes()
    expected = FONT_SHA256[path.name]
    if expected and sha256(data) != expected:
        print(f"warning: {path} is not the font the shipped data were made from (SHA-256 {sha256(data)}, "
              f"expected {expected}); the outputs will differ", file=sys.stderr)
    return data


def glyph(font: ImageFont.FreeTypeFont, char: str, colour: bool) -> Image.Image | None:
    """The glyph as a tight RGBA crop, or None when the font draws nothing for it."""
    canvas = Image.new("RGBA", (192, 192), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((96, 96), char, font=font, anchor="mm", embedded_color=colour,
                                fill=(0, 0, 0, 255))
    box = canvas.getbbox()
    if box is None or min(box[2] - box[0], box[3] - box[1]) < 8:
        return None
    return canvas.crop(box)


Sprites = dict[int, Image.Image]


def concepts(noto: Path, symbola: Path, seed: int) -> tuple[list[Concept], Sprites, Sprites]:
    import open_clip  # the mini CLIP's tokenizer decides which names fit its context
    from fontTools.ttLib import TTFont  # Pillow cannot list a font's characters

    font_bytes(noto), font_bytes(symbola)
    shared = set(TTFont(noto).getBestCmap()) & set(TTFont(symbola).getBestCmap())
    colour_font, line_font = ImageFont.truetype(str(noto), NOTO_SIZE), ImageFont.truetype(str(symbola), SYMBOLA_SIZE)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    longest = max([*EMOJI_TEMPLATES, *LINE_TEMPLATES, *PRETRAIN_TEMPLATES], key=len)
    kept, colour, line, seen_names = [], {}, {}, set()
    for codepoint in sorted(shared):
        char = chr(codepoint)
        raw = unicodedata.name(char, "")
        name = raw.lower()
        if unicodedata.category(char) != "So" or not raw or any(word in raw for word in LEFT_OUT):
            continue
        if name in seen_names or name in SHIPPED_NAMES:
            continue
        if len(tokenizer.encode(longest.format(name))) + 2 > CONTEXT_LENGTH:
            continue
        a, b = glyph(colour_font, char, True), glyph(line_font, char, False)
        if a is None or b is None:
            continue
        seen_names.add(name)
        kept.append(Concept(codepoint, name))
        colour[codepoint], line[codepoint] = a, b
    print(f"{len(kept)} characters qualify; keeping {min(CONCEPTS, len(kept))}", file=sys.stderr)
    if len(kept) > CONCEPTS:
        kept = sorted(random.Random(f"{seed}-concepts").sample(kept, CONCEPTS), key=lambda c: c.codepoint)
    return kept, colour, line


# ---------------------------------------------------------------- images


def background(rng: random.Random, grey: bool) -> np.ndarray:
    """A flat or linear-gradient background (smooth, so it stays small as PNG)."""
    low = 150 if grey else 40  # black line drawings need a light background
    channels = 1 if grey else 3
    start = np.array([rng.randint(low, 255) for _ in range(channels)], dtype=float)
    end = start if rng.random() < 0.4 else np.array([rng.randint(low, 255) for _ in range(channels)], dtype=float)
    ramp = np.linspace(0.0, 1.0, SIZE)
    angle = rng.uniform(0, 2 * math.pi)
    t = (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None])
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-9)
    return start * (1 - t[..., None]) + end * t[..., None]


def render(sprite: Image.Image, rng: random.Random, grey: bool) -> Image.Image:
    """One random view of a glyph: rotation, scale, position, background and speckle noise all drawn from rng."""
    turned = sprite.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BICUBIC, expand=True)
    side = max(8, round(SIZE * rng.uniform(0.55, 0.95)))
    scale = side / max(turned.size)
    turned = turned.resize((max(1, round(turned.width * scale)), max(1, round(turned.height * scale))),
                           Image.Resampling.LANCZOS)
    base = background(rng, grey)
    pixels = base.round().astype(np.uint8)
    canvas = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if grey else pixels))  # 2-D: L, 3-D: RGB
    x, y = rng.randint(0, SIZE - turned.width), rng.randint(0, SIZE - turned.height)
    if grey:
        ink = Image.new("L", turned.size, rng.randint(0, 60))
        canvas.paste(ink, (x, y), turned.getchannel("A"))
    else:
        canvas.paste(turned.convert("RGB"), (x, y), turned.getchannel("A"))
    pixels = np.asarray(canvas).copy()
    noise = np.random.default_rng(rng.randrange(2**63))
    speckled = noise.random(pixels.shape[:2]) < rng.uniform(0.0, SPECKLE)
    values = noise.integers(0, 256, (int(speckled.sum()), *pixels.shape[2:]))
    pixels[speckled] = values.astype(np.uint8)
    return Image.fromarray(pixels)


def draws(folder: str, split: str, items: list[tuple[Concept, int]], sprites: dict[int, Image.Image],
          grey: bool, seed: int, offset: int = 0) -> list[tuple[Image.Image, int]]:
    """PER_CLASS views of each (concept, label); one random stream per folder, split, concept and rendering."""
    out = []
    for concept, label in items:
        rng = random.Random(f"{seed}-{folder}-{split}-{'line' if grey else 'colour'}-{concept.codepoint:x}")
        out += [(render(sprites[concept.codepoint], rng, grey), label + offset)
                for _ in range(PER_CLASS[(folder, split)])]
    return out


# ---------------------------------------------------------------- the folders


def noto_license() -> str:
    text = Path("/usr/share/doc/fonts-noto-color-emoji/copyright").read_text(encoding="utf-8")
    body = text.split("License:   SIL-1.1\n", 2)[-1]
    lines = [line[1:] if line.startswith(" ") else line for line in body.splitlines()]
    lines = ["" if line == "." else line for line in lines]
    return ("Noto Color Emoji\nCopyright 2013-2017 Google Inc.; Arjen Nienhuis <a.g.nienhuis@gmail.com>\n\n"
            + "\n".join(lines).strip() + "\n\n(The font's licence, from Debian's "
            "/usr/share/doc/fonts-noto-color-emoji/copyright, package " + NOTO_DEB + ". The images in this folder "
            "are renderings of its glyphs; the OFL does not extend to documents made with the font, and is "
            "shipped here as provenance.)\n")


def provenance(folder: str, what: str, seed: int) -> str:
    return (f"Rendered by {SCRIPT} from the Debian fonts {NOTO_DEB} (Noto Color Emoji, SIL OFL 1.1) and "
            f"{SYMBOLA_DEB} (Symbola, free for any use): {what} Each image is one glyph rotated by up to 20 "
            f"degrees, scaled to 55-95% of {SIZE} px, placed at random on a flat or gradient background with up "
            f"to {SPECKLE:.0%} speckle noise, drawn from Python's "
            f"random.Random('{seed}-{folder}-SPLIT-RENDERING-CODEPOINT'). "
            f"Made with: python {SCRIPT} --out {DEFAULT_OUT} --seed {seed}")


def images_per_class(folder: str) -> str:
    """"12 train, 3 validation and 3 test images per class": the folder's splits in PER_CLASS order."""
    counts = [f"{n} {'validation' if split == 'val' else split}" for (name, split), n in PER_CLASS.items()
              if name == folder]
    listed = counts[0] if len(counts) == 1 else ", ".join(counts[:-1]) + " and " + counts[-1]
    return f"{listed} images per class."


def colour_folder(name: str, description: str, chosen: list[Concept], sprites: Sprites, licence: str, seed: int,
                  selection: str, notes: list[str] | None = None) -> Folder:
    """A folder of colour renderings of `chosen` (labels in that order), one split per PER_CLASS entry."""
    labelled = list(zip(chosen, range(len(chosen)), strict=True))
    return Folder(
        name=name, description=description, classnames=[c.name for c in chosen], templates=EMOJI_TEMPLATES,
        splits={split: draws(name, split, labelled, sprites, False, seed)
                for folder, split in PER_CLASS if folder == name},
        license_id="OFL-1.1 (Noto Color Emoji)", license_text=licence,
        provenance=provenance(name, selection + images_per_class(name), seed), notes=notes or [],
    )


def build(noto: Path, symbola: Path, seed: int) -> list[Folder]:
    found, colour, line = concepts(noto, symbola, seed)
    seen = sorted(random.Random(f"{seed}-seen").sample(range(len(found)), SEEN_CLASSES))
    seen_set = set(seen)
    seen_c = [found[i] for i in seen]
    unseen_c = [c for i, c in enumerate(found) if i not in seen_set]
    names = [c.name for c in found]
    everything = list(zip(found, range(len(found)), strict=True))
    emoji_licence = noto_license()
    both_licence = emoji_licence + "\n\n" + "-" * 72 + "\n\n" + SYMBOLA_LICENSE
    concept_note = (f"{len(found)} concepts, random.Random('{seed}-concepts').sample of the single code points "
                    "of Unicode category So that both fonts draw, named by unicodedata.name lower-cased.")
    return [
        Folder(
            name="emoji-pretrain",
            description=f"Every concept of the mini world ({len(found)}) in both renderings: colour emoji and "
                        f"black-and-white line drawings, {SIZE}x{SIZE} (pre-training set of the mini CLIP)",
            classnames=names, templates=PRETRAIN_TEMPLATES,
            splits={"train": draws("emoji-pretrain", "train", everything, colour, False, seed)
                    + draws("emoji-pretrain", "train", everything, line, True, seed)},
            license_id="OFL-1.1 (Noto Color Emoji) and Symbola's free licence", license_text=both_licence,
            provenance=provenance("emoji-pretrain", f"{concept_note} {PER_CLASS[('emoji-pretrain', 'train')]} "
                                  "colour and as many line-drawing images per concept (train only).", seed),
            notes=["Pre-training only: the evaluation folders are other random draws (other seeds), so no "
                   "evaluation image is a pre-training image.",
                   "Colour images are RGB PNG, line drawings one-channel PNG; the loader makes every image RGB."],
        ),
        colour_folder("emoji-seen", f"{SEEN_CLASSES} colour emoji concepts, {SIZE}x{SIZE}: the mini protocol's "
                      "fine-tuning set (the Tiny-ImageNet role)", seen_c, colour, emoji_licence, seed,
                      f"{concept_note} A fixed subset of {SEEN_CLASSES} of them, random.Random('{seed}-seen').sample; ",
                      ["Train, validation and test images are different random draws (different seeds) of the same "
                       "glyphs; the validation split is for choosing hyper-parameters (docs/mini-world.md)."]),
        colour_folder("emoji-unseen", f"The other {len(unseen_c)} colour emoji concepts, {SIZE}x{SIZE}: classes the "
                      "mini protocol never fine-tunes on (test only)", unseen_c, colour, emoji_licence, seed,
                      f"{concept_note} Those not in emoji-seen; "),
        Folder(
            name="symbola",
            description=f"Every concept of the mini world ({len(found)}) as a black-and-white line drawing "
                        f"(Symbola), {SIZE}x{SIZE}: the other rendering, the sketch domain (test only)",
            classnames=names, templates=LINE_TEMPLATES,
            splits={"test": draws("symbola", "test", everything, line, True, seed)},
            license_id="Symbola's free licence", license_text=SYMBOLA_LICENSE,
            provenance=provenance("symbola", f"{concept_note} {PER_CLASS[('symbola', 'test')]} test images per "
                                  "class, dark ink on a light grey background.", seed),
            notes=["Stored as one-channel PNG; the loader makes every image RGB."],
        ),
    ]


# ---------------------------------------------------------------- writing and checking


def manifest_bytes(folder: Folder, hashes: dict[str, str]) -> bytes:
    manifest = {
        "name": folder.name, "description": folder.description, "classnames": folder.classnames,
        "templates": folder.templates, "resize_mode": "resize", "image_size": SIZE,
        "license": folder.license_id, "provenance": folder.provenance,
        **{f"num_{split}": len(examples) for split, examples in folder.splits.items()},
        "sha256": {f"{split}.parquet": digest for split, digest in hashes.items()},
    }
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()


def readme_bytes(folder: Folder, sizes: dict[str, int]) -> bytes:
    counts = {split: Counter(label for _, label in examples) for split, examples in folder.splits.items()}
    splits = sorted(folder.splits)
    images = "; ".join(f"{len(folder.splits[s]):,} {s} ({s}.parquet {sizes[s]:,} bytes)" for s in splits)
    lines = [
        f"# `{folder.name}`", "", f"{folder.description}.", "",
        f"- Licence: {folder.license_id} (see `LICENSE`).",
        f"- Images: {SIZE}x{SIZE} PNG in parquet; {images}.",
        f"- Templates (the first is the default): {', '.join(f'`{t}`' for t in folder.templates)}",
        "", "| label | class name | " + " | ".join(splits) + " |", "|---|---|" + "---|" * len(splits),
        *[f"| {i} | {name} | " + " | ".join(str(counts[s][i]) for s in splits) + " |"
          for i, name in enumerate(folder.classnames)],
        "", "## Provenance", "", folder.provenance, "", *[f"- {note}" for note in folder.notes], "",
        "## Use", "", "```", f"tgazsr eval --datasets {folder.name} ...    # registered by name from manifest.json",
        "```", "", f"Regenerate byte-for-byte (or `--check`) with `{SCRIPT}`; see its `--help`.", "",
    ]
    return "\n".join(lines).encode()


def verify(path: Path, folder: Folder) -> None:
    """Read the parquet files back through `datasets` and compare labels and a sample of pixels."""
    import os

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as cache:
        files = {split: str(path / f"{split}.parquet") for split in folder.splits}
        loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=cache)
        for split, examples in folder.splits.items():
            data = loaded[split]
            if data.features["label"].names != folder.classnames or data["label"] != [y for _, y in examples]:
                raise BuildError(f"{folder.name}/{split}: labels or class names differ from those written")
            for i in sorted(random.Random(0).sample(range(len(data)), min(25, len(data)))):
                if not np.array_equal(np.asarray(data[i]["image"]), np.asarray(examples[i][0])):
                    raise BuildError(f"{folder.name}/{split}[{i}]: pixels differ from those written")


def write(out: Path, folder: Folder) -> None:
    data = {split: parquet_bytes(examples, folder.classnames) for split, examples in sorted(folder.splits.items())}
    hashes = {split: sha256(blob) for split, blob in data.items()}
    files = {f"{split}.parquet": blob for split, blob in data.items()}
    files["manifest.json"] = manifest_bytes(folder, hashes)
    files["LICENSE"] = folder.license_text.encode()
    files["README.md"] = readme_bytes(folder, {split: len(blob) for split, blob in data.items()})
    changed = [file for file, blob in files.items() if put(out / folder.name / file, blob)]
    verify(out / folder.name, folder)
    counts = ", ".join(f"{len(ex):,} {split}" for split, ex in sorted(folder.splits.items()))
    print(f"{folder.name}: {len(folder.classnames)} classes, {counts}, "
          f"{sum(len(b) for b in data.values()):,} bytes of parquet; read back: ok; "
          f"{'changed: ' + ', '.join(changed) if changed else 'unchanged'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=f"default {DEFAULT_OUT}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noto", type=Path, default=NOTO, help=f"Noto Color Emoji .ttf (default {NOTO})")
    parser.add_argument("--symbola", type=Path, default=SYMBOLA, help=f"Symbola .ttf (default {SYMBOLA})")
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary folder, compare with --out byte for byte; write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) if args.check else args.out
        try:
            for folder in build(args.noto, args.symbola, args.seed):
                write(target, folder)
        except (BuildError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        versions = ", ".join(f"{p} {importlib.metadata.version(p)}"
                             for p in ("numpy", "pillow", "pyarrow", "fonttools"))
        print(f"made with Python {sys.version.split()[0]}, {versions}; fonts: "
              + ", ".join(f"{p.name} sha256 {hashlib.sha256(p.read_bytes()).hexdigest()}"
                          for p in (args.noto, args.symbola)))
        if args.check:
            differences = compare(target, args.out)
            for line in differences:
                print(f"check: {line}", file=sys.stderr)
            print(f"check: {'FAILED' if differences else f'every regenerated file is byte-identical to {args.out}'}")
            return 1 if differences else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
