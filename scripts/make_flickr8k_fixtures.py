#!/usr/bin/env python3
"""Builds the small real-data fixtures of tests/fixtures/flickr8k/ from the real Flickr8k
caption file (Flickr8k.token.txt of the original release).

    python3 scripts/make_flickr8k_fixtures.py /path/to/Flickr8k.token.txt

It keeps the lines of a few images chosen for the file's quirks: the three lines that use a
space instead of a tab, the `2258277193_586949ec62.jpg.1` key that has no image, captions with
commas and double quotes. From those lines it writes the three layouts the cleaner reads:
- token/Flickr8k.token.txt: the lines verbatim (original release),
- kaggle/captions.txt: the Kaggle CSV (header image,caption; RFC-4180 quoting, as Kaggle's
  file quotes captions with commas and doubles quotes), without the `.jpg.1` key, as Kaggle's,
- karpathy/dataset_flickr8k.json: Karpathy's JSON, images split over train/restval/val/test.
"""
import csv
import json
import sys
from pathlib import Path

IMAGES = [
    "1000268201_693b08cb0e.jpg",  # space separator on #0
    "1001773457_577c3a7d70.jpg",  # space separator on #0
    "1002674143_1b742ab4b8.jpg",  # space separator on #1
    "1012212859_01547e3f17.jpg",  # commas
    "1253275679_e955fb7304.jpg",  # double quotes
    "1387461595_2fe6925f73.jpg",  # double quotes
    "2258277193_586949ec62.jpg.1",  # the key without an image
]
SPLITS = ["train", "train", "restval", "val", "test", "test", "train"]

def main(token_file):
    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "flickr8k"
    lines = [l for l in Path(token_file).read_text().splitlines() if l.split("#")[0] in IMAGES]
    lines.sort(key=lambda l: (IMAGES.index(l.split("#")[0]), l))
    (out / "token").mkdir(parents=True, exist_ok=True)
    (out / "token" / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")

    rows = []
    for line in lines:
        key, caption = line.split("\t", 1) if "\t" in line else line.split(" ", 1)
        rows.append((key.rsplit("#", 1)[0], caption))
    (out / "kaggle").mkdir(exist_ok=True)
    with open(out / "kaggle" / "captions.txt", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["image", "caption"])
        writer.writerows(r for r in rows if not r[0].endswith(".1"))

    images = []
    for name, split in zip(IMAGES, SPLITS):
        if name.endswith(".1"):
            continue
        sentences = [{"raw": c, "tokens": c.lower().split()} for n, c in rows if n == name]
        images.append({"filename": name, "split": split, "sentences": sentences})
    (out / "karpathy").mkdir(exist_ok=True)
    (out / "karpathy" / "dataset_flickr8k.json").write_text(json.dumps({"images": images, "dataset": "flickr8k"}, indent=1))

if __name__ == "__main__":
    main(sys.argv[1])
