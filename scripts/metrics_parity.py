#!/usr/bin/env python3
"""Writes the parity fixture for crates/metrics: captions plus pycocoevalcap's scores for them.

Rerun (from the repository root) whenever the fixture should change:

    pip install pycocoevalcap==1.2
    python3 scripts/metrics_parity.py
    cargo test --release -p metrics --test parity

The fixture, crates/metrics/tests/fixtures/parity.json, holds several cases: two random
corpora, random_40 (seed 2015: a small corpus, where CIDEr-D's document frequencies are
coarse) and random_1000 (seed 2016: 1,000 images, a test split's size), then hand-written edge
cases (single_image, degenerate, all_empty); 1,047 images in all, about 0.5 MB. Each has the
tokenized candidates and references (images aligned by index) and the scores pycocoevalcap's
Bleu(4), Rouge() and Cider() give when fed the same tokens joined by single spaces (the PTB
tokenizer is not run: the Rust crate receives clean tokens too). The captions are generated
deterministically from a fixed seed: Flickr8k-like scenes with 1 to 7 references, and
candidates that copy a reference, paraphrase, ramble, repeat words (to exercise clipping),
have one word or none, or use words no reference has.

For a larger ad-hoc check that is not committed:

    python3 scripts/metrics_parity.py --images 2000 --seed 7 --out /tmp/parity_big.json
    METRICS_PARITY_FIXTURE=/tmp/parity_big.json cargo test --release -p metrics --test parity
"""

import argparse
import json
import random
import re
from importlib.metadata import version
from pathlib import Path

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "crates/metrics/tests/fixtures/parity.json"

SUBJECTS = [
    ["dog"], ["black", "dog"], ["brown", "dog"], ["white", "dog"], ["puppy"],
    ["man"], ["young", "man"], ["woman"], ["girl"], ["little", "girl"], ["boy"],
    ["child"], ["two", "dogs"], ["group", "of", "people"], ["cyclist"], ["surfer"],
]
VERBS = [
    ["runs"], ["is", "running"], ["jumps"], ["is", "jumping"], ["plays"], ["is", "playing"],
    ["walks"], ["is", "walking"], ["sits"], ["is", "sitting"], ["rides", "a", "bike"],
    ["climbs", "a", "rock"], ["catches", "a", "ball"], ["swims"],
]
PLACES = [
    ["on", "the", "grass"], ["in", "the", "grass"], ["through", "the", "grass"],
    ["on", "the", "beach"], ["in", "the", "water"], ["in", "the", "snow"],
    ["on", "a", "street"], ["in", "a", "park"], ["near", "a", "fence"], ["by", "the", "lake"],
    ["down", "a", "hill"], ["in", "front", "of", "a", "building"],
]
EXTRAS = [
    [], [], [], ["with", "a", "ball"], ["while", "another", "dog", "watches"],
    ["in", "the", "sun"], ["with", "a", "red", "collar"], ["wearing", "a", "blue", "shirt"],
]
UNSEEN = ["zebra", "helicopter", "violin", "cathedral", "spaceship", "penguin"]


def caption(rng, subject, verb, place):
    """One reference-like caption about a scene, with some wording varied."""
    if rng.random() < 0.3:
        subject = rng.choice(SUBJECTS)
    if rng.random() < 0.4:
        verb = rng.choice(VERBS)
    if rng.random() < 0.3:
        place = rng.choice(PLACES)
    words = (["a"] if subject[0] not in ("two", "group") else []) + subject + verb + place
    return words + rng.choice(EXTRAS)


def candidate(rng, refs, kind):
    """A system caption of the given kind for an image with references `refs`."""
    if kind == "copy":
        return list(rng.choice(refs))
    if kind == "empty":
        return []
    if kind == "one_word":
        return [rng.choice(rng.choice(refs))]
    if kind == "repeat":
        base = rng.choice(refs)
        return base[:2] + [base[1]] * rng.randint(2, 4) + base[2:] + base[-2:]
    if kind == "ramble":
        return rng.choice(refs) + ["and"] + rng.choice(refs) + ["and", "a", "dog"]
    if kind == "unseen":
        return ["a"] + rng.sample(UNSEEN, 3)
    if kind == "prefix":
        base = rng.choice(refs)
        return base[: rng.randint(2, max(2, len(base) - 1))]
    # "paraphrase": a fresh caption of a similar scene.
    return caption(rng, rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(PLACES))


def random_case(name, images, seed):
    rng = random.Random(seed)
    kinds = ["copy", "empty", "one_word", "repeat", "ramble", "unseen", "prefix"]
    candidates, references = [], []
    for i in range(images):
        scene = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(PLACES)
        n_refs = 5 if i % 4 else rng.choice([1, 3, 5, 7])
        refs = [caption(rng, *scene) for _ in range(n_refs)]
        # Every kind appears at least once, then paraphrases dominate as in real output.
        kind = kinds[i] if i < len(kinds) else rng.choice(kinds + ["paraphrase"] * 6)
        candidates.append(candidate(rng, refs, kind))
        references.append(refs)
    return {"name": name, "candidates": candidates, "references": references}


def fixed_cases():
    """Small hand-written corpora for edge cases."""
    return [
        {
            # One image: log(1) - log(df) = 0, so CIDEr-D is 0 whatever the captions.
            "name": "single_image",
            "candidates": [["a", "dog", "runs", "on", "the", "grass"]],
            "references": [[["a", "dog", "runs", "on", "the", "grass"],
                            ["a", "brown", "dog", "is", "running", "outside"]]],
        },
        {
            # Empty, one-word and unseen-word candidates; an empty reference; ties for the
            # closest reference length.
            "name": "degenerate",
            "candidates": [[], ["dog"], ["a", "zebra", "plays", "violin"], ["a", "dog", "runs", "on", "grass"]],
            "references": [
                [["a", "dog", "runs"], []],
                [["a", "dog"], ["the", "dog", "sleeps"]],
                [["a", "man", "plays", "guitar"]],
                [["a", "dog", "runs", "fast"], ["a", "dog", "runs", "on", "the", "grass"]],
            ],
        },
        {
            # All candidates empty: BLEU's tiny/small constants avoid a division by zero.
            "name": "all_empty",
            "candidates": [[], []],
            "references": [[["a", "dog"]], [["a", "cat", "sleeps"]]],
        },
    ]


def score(case):
    """Adds pycocoevalcap's scores to a case."""
    gts = {i: [" ".join(r) for r in refs] for i, refs in enumerate(case["references"])}
    res = {i: [" ".join(c)] for i, c in enumerate(case["candidates"])}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, cider_per_image = Cider().compute_score(gts, res)
    case["bleu"] = [float(b) for b in bleu]
    case["rouge_l"] = float(rouge)
    case["cider_d"] = float(cider)
    case["cider_d_per_image"] = [float(c) for c in cider_per_image]
    return case


def to_json(fixture):
    """Indented JSON with each innermost list (a caption, a score list) on one line."""
    def one_line(match):
        items = [item.strip() for item in match[1].split(",")]
        return "[" + ", ".join(items) + "]" if match[1].strip() else "[]"

    return re.sub(r"\[([^\[\]{}]*)\]", one_line, json.dumps(fixture, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[40, 1000],
                        help="images in each random case (one case per number)")
    parser.add_argument("--seed", type=int, default=2015,
                        help="seed of the first random case; the next ones take seed+1, seed+2...")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    cases = [random_case(f"random_{n}", n, args.seed + k) for k, n in enumerate(args.images)]
    cases += fixed_cases()
    fixture = {
        "generator": "scripts/metrics_parity.py",
        "pycocoevalcap": version("pycocoevalcap"),
        "cases": [score(c) for c in cases],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_json(fixture) + "\n")
    for c in fixture["cases"]:
        bleu = " ".join(f"{b:.4f}" for b in c["bleu"])
        print(f"{c['name']}: {len(c['candidates'])} images, BLEU-1..4 {bleu}, "
              f"ROUGE-L {c['rouge_l']:.4f}, CIDEr-D {c['cider_d']:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
