#!/usr/bin/env python3
"""Writes the benchmark's images: N real-size JPEG photos (Flickr8k's typical 500x375 and
375x500), varied crops, flips and scales of the real photo committed as a test fixture
(crates/models/tests/fixtures/grace_hopper.jpg). Deterministic.

    python3 scripts/make_bench_images.py OUT_DIR [N]
"""
import random
import sys
from pathlib import Path

from PIL import Image, ImageOps

def main(out, n):
    src = Image.open(Path(__file__).resolve().parent.parent / "crates/models/tests/fixtures/grace_hopper.jpg").convert("RGB")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for i in range(n):
        w, h = (500, 375) if i % 3 else (375, 500)
        scale = rng.uniform(1.0, 1.6)
        img = src.resize((int(src.width * scale), int(src.height * scale)), Image.BILINEAR)
        if img.width < w or img.height < h:
            img = img.resize((max(w, img.width), max(h, img.height)), Image.BILINEAR)
        x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
        img = img.crop((x, y, x + w, y + h))
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        img.save(out / f"bench_{i:04d}.jpg", quality=90)

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200)
