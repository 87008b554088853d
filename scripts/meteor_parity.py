#!/usr/bin/env python3
"""Writes the METEOR parity fixture for crates/metrics: captions plus what the METEOR 1.5 jar,
run by pycocoevalcap, says about them.

Rerun (from the repository root) whenever the fixture should change:

    apt-get install default-jre-headless        # Java (any 8+ runtime)
    pip install pycocoevalcap==1.2
    python3 scripts/meteor_parity.py            # reads ../shared/flickr8k/Flickr8k.token.txt
    make meteor-data && cargo test --release -p metrics --test meteor_parity

For a larger ad-hoc check that is not committed:

    python3 scripts/meteor_parity.py --split train --images 6000 --out /tmp/meteor_big.json
    METEOR_PARITY_FIXTURE=/tmp/meteor_big.json cargo test --release -p metrics --test meteor_parity

The fixture, crates/metrics/tests/fixtures/meteor.json, holds:
- cases: small corpora, each with its hypotheses and references (images aligned by index), the
  corpus METEOR and per-image scores of pycocoevalcap's Meteor().compute_score (the jar's EVAL
  answer), and each image's 23 sufficient statistics (the jar's SCORE answer);
  - flickr8k_raw: real Flickr8k captions of test-split images, caption #(i mod 5) of image i
    as the hypothesis against the other four, as the file has them (case, punctuation);
  - flickr8k_clean: the same captions cleaned by the project's rules (what the evaluator
    scores);
  - hand-made cases for each module and quirk: synonyms, stems, paraphrases, word order and
    chunks, repeated words, empty captions, punctuation and case, the protocol's escaping,
    Java's hash-code word comparison, non-ASCII text, long sentences;
- normalize: the jar's own Normalizer (edu.cmu.meteor.util.Normalizer en true) run on every
  distinct caption of the fixture: the -norm tokenization before lowercasing, listed for the
  captions it changes (it leaves every other one as it is);
- stems: the jar's own Snowball stemmer (its Stemmer class) on every distinct word the
  fixture's captions normalize to (numbers excepted: that class leaves them unstemmed).
"""

import argparse
import json
import re
import subprocess
from importlib.metadata import version
from pathlib import Path

from pycocoevalcap.meteor import meteor as meteor_module
from pycocoevalcap.meteor.meteor import Meteor

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "crates/metrics/tests/fixtures/meteor.json"
DEFAULT_TOKENS = ROOT.parent / "shared/flickr8k/Flickr8k.token.txt"
SPLITS = ROOT / "data/splits"
JAR = Path(meteor_module.__file__).resolve().parent / "meteor-1.5.jar"


def hand_made_cases():
    """(name, [(hypothesis, [references])]) for each module and quirk."""
    return [
        ("synonyms", [
            ("a kid sits on a couch", ["a child sits on a sofa"]),
            ("a large dog near an automobile", ["a big dog near a car"]),
            ("a man takes a photo of the sea", ["a man takes a picture of the ocean"]),
            ("two boys play on the shore", ["two children play on the beach", "two lads play on the coast"]),
            ("a woman in a hat", ["a lady in a cap"]),
            ("a dog leaps over a log", ["a dog jumps over a log"]),
        ]),
        ("stems", [
            ("the dogs are running", ["the dog is runs"]),
            ("a girl jumped into the pools", ["a girl jumping into the pool"]),
            ("two cyclists racing", ["two cyclist races"]),
            ("climbers climbing rocks", ["a climber climbs a rock"]),
            ("happily playing children", ["happy children played"]),
        ]),
        ("paraphrases", [
            ("there are a lot of people", ["there are many people"]),
            ("a child stands in front of a building", ["a kid stands before a building"]),
            ("a boy rides a bicycle", ["a boy rides a bike"]),
            ("kids are playing", ["the children are playing"]),
            ("a number of dogs run", ["several dogs run"]),
            ("a big crowd", ["a large crowd", "a huge crowd"]),
        ]),
        ("word_order", [
            ("the dog chased the cat", ["the cat chased the dog"]),
            ("grass the on runs dog a", ["a dog runs on the grass"]),
            ("on the grass a dog runs", ["a dog runs on the grass"]),
            ("a man and a woman walk", ["a woman and a man walk"]),
            ("runs dog", ["dog runs", "runs dog"]),
        ]),
        ("repeated_words", [
            ("a dog dog dog runs", ["a dog runs"]),
            ("the the the the", ["the dog sat on the mat"]),
            ("a a a a a b a a a", ["a a b a a a a"]),
            ("dog a dog a dog", ["a dog and a dog"]),
            ("a man a man a man a man", ["a man"]),
        ]),
        ("empty", [
            ("", ["a dog runs"]),
            ("a dog runs", [""]),
            ("", [""]),
            ("   ", ["a cat"]),
            (".", ["a dog ."]),
            ("a dog", ["", "a dog"]),
        ]),
        ("identical", [
            ("a dog runs on the grass", ["a dog runs on the grass"]),
            ("the", ["the"]),
            ("a dog", ["a cat", "a dog"]),
            ("A Dog Runs .", ["a dog runs."]),
        ]),
        ("punctuation_and_case", [
            ("A Dog, running... on the beach!", ["a dog is running on the beach ."]),
            ("Mr. Smith's dog isn't here.", ["mr smith s dog is not here", "MR. SMITH'S DOG IS NOT HERE."]),
            ("a U.S.-based team -- in red", ["a us based team - in red"]),
            ("\u201cquoted\u201d words and \u2018single\u2019 ones", ["\"quoted\" words and 'single' ones"]),
            ("a t-shirt, a hat, and 1,000 balloons (red)", ["a t shirt , a hat , and 1,000 balloons ( red )"]),
            ("the dog's ball; the dogs' balls: 1990's", ["the dog 's ball the dogs ' balls 1990 's"]),
            ("No. 5 and No. six, e.g. the end.", ["No. 5 and No . six e.g. the end ."]),
            ("a dog \u2013 a cat \u2014 a bird...", ["a dog - a cat - a bird ..."]),
            ("It's 3.5 m high, isn't it?", ["it 's 3.5 m high is n't it ?"]),
            ("a b.c. d.e.f. and etc. Inc. x", ["a bc def and etc. inc. x"]),
        ]),
        ("protocol", [
            ("a dog ||| runs", ["a dog runs"]),
            ("a dog runs", ["a dog ||| runs"]),
            ("a  dog   runs", ["a dog  runs"]),
            ("|||", ["a dog"]),
        ]),
        ("hash_collision", [
            # "c0" and "an" have the same String.hashCode(): the jar matches them exactly.
            ("a dog in an park", ["a dog in c0 park"]),
            ("an", ["c0"]),
        ]),
        ("non_ascii", [
            ("a caf\u00e9 with na\u00efve art", ["a cafe with naive art", "a caf\u00e9 with na\u00efve art work"]),
            ("\u00c9COLE \u00c0 PARIS", ["\u00e9cole \u00e0 paris"]),
            ("\u0441\u043e\u0431\u0430\u043a\u0430 \u0431\u0435\u0436\u0438\u0442", ["\u0441\u043e\u0431\u0430\u043a\u0430"]),
            ("a dog\u00a0runs\u2009fast", ["a dog runs fast"]),
            ("emoji \U0001F600 dog", ["emoji dog"]),
        ]),
        ("long", [
            (" ".join(["a dog runs and a cat sleeps"] * 12), [" ".join(["a cat sleeps and a dog runs"] * 11)]),
            (" ".join(f"w{i}" for i in range(70)), [" ".join(f"w{i}" for i in reversed(range(70)))]),
        ]),
    ]


def clean(raw):
    """The project's caption cleaning (contracts::text::clean_caption)."""
    spaced = "".join(c if c.isalnum() else " " for c in raw).lower()
    return " ".join(t for t in spaced.split() if not any(ch.isnumeric() for ch in t))


def flickr8k_cases(token_file, images, split):
    captions = {}
    for line in Path(token_file).read_text(encoding="utf-8").splitlines():
        key, caption = line.split("\t", 1) if "\t" in line else line.split(" ", 1)
        name, _ = key.rsplit("#", 1)
        captions.setdefault(name, []).append(caption.strip())
    split_list = SPLITS / f"Flickr_8k.{split}Images.txt"
    test = [n for n in split_list.read_text().split() if len(captions.get(n, [])) == 5][:images]
    raw = []
    for i, name in enumerate(test):
        caps = captions[name]
        k = i % 5
        raw.append((caps[k], caps[:k] + caps[k + 1:]))
    cleaned = [(clean(h), [clean(r) for r in refs]) for h, refs in raw]
    return [("flickr8k_raw", raw), ("flickr8k_clean", cleaned)]


def score(meteor, name, pairs):
    """The case with pycocoevalcap's scores and the jar's statistics for it."""
    gts = {i: refs for i, (_, refs) in enumerate(pairs)}
    res = {i: [hyp] for i, (hyp, _) in enumerate(pairs)}
    corpus, per_image = meteor.compute_score(gts, res)
    stats = [[int(float(x)) for x in meteor._stat(hyp, refs).split()] for hyp, refs in pairs]
    return {
        "name": name,
        "hypotheses": [h for h, _ in pairs],
        "references": [r for _, r in pairs],
        "meteor": corpus,
        "per_image": per_image,
        "stats": stats,
    }


def java_lines(main_class, args, lines):
    """Runs one of the jar's command-line classes on `lines` (UTF-8 in and out)."""
    out = subprocess.run(["java", "-Dfile.encoding=UTF-8", "-cp", str(JAR), main_class, *args],
                         input="".join(l + "\n" for l in lines), capture_output=True,
                         text=True, encoding="utf-8", check=True).stdout
    result = out.split("\n")[:-1]
    assert len(result) == len(lines), (main_class, len(result), len(lines))
    return result


def is_number(word):
    """The jar's Stemmer class leaves these unstemmed."""
    return all(c.isdigit() or c in ",.-" for c in word)


def to_json(fixture):
    """Indented JSON with each innermost list (a caption list, a stats row) on one line."""
    text = json.dumps(fixture, indent=1, ensure_ascii=False)
    return re.sub(r"\[\n\s*([^\[\]{}]*?)\n\s*\]", lambda m: "[" + re.sub(r",\n\s*", ", ", m[1]) + "]", text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=Path, default=DEFAULT_TOKENS, help="Flickr8k.token.txt")
    parser.add_argument("--images", type=int, default=250, help="Flickr8k test images per case")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"],
                        help="Flickr8k split the images come from")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    cases = flickr8k_cases(args.tokens, args.images, args.split) + hand_made_cases()
    meteor = Meteor()
    scored = [score(meteor, name, pairs) for name, pairs in cases]
    del meteor

    # Every distinct field the jar normalizes (the protocol trims and un-pipes; feed the
    # Normalizer what SCORE would pass it).
    texts = sorted({t.replace("|||", "").strip() for c in scored for t in c["hypotheses"] + [r for rs in c["references"] for r in rs]})
    normalized = java_lines("edu.cmu.meteor.util.Normalizer", ["en", "true"], texts)
    words = sorted({w for line in normalized for w in line.lower().split() if not is_number(w)})
    stems = java_lines("Stemmer", ["en"], words)

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    fixture = {
        "generator": "scripts/meteor_parity.py",
        "pycocoevalcap": version("pycocoevalcap"),
        "java": java,
        "cases": scored,
        "normalize": [[t, n] for t, n in zip(texts, normalized) if t != n],
        "stems": [[w, s] for w, s in zip(words, stems)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_json(fixture) + "\n", encoding="utf-8")
    for c in scored:
        print(f"{c['name']}: {len(c['hypotheses'])} images, METEOR {c['meteor']:.4f}")
    changed = sum(t != n for t, n in zip(texts, normalized))
    print(f"{len(texts)} distinct captions ({changed} changed by the normalizer), "
          f"{len(words)} stems; wrote {args.out}")


if __name__ == "__main__":
    main()
