#!/usr/bin/env python3
"""The METEOR 1.5 jar's side of `make bench` (scripts/bench.py): pycocoevalcap's Meteor() on
the corpus CORPUS.json ({"hypotheses": [..], "references": [[..], ..]}), one JSON line with the
time to start the jar and load its resources (Meteor() and a first one-image compute_score, which
waits for the jar to be ready) and the time of compute_score on the whole corpus.
Prints {"skipped": why} without pycocoevalcap or Java.
"""
import json
import shutil
import sys
import time


def main(path):
    try:
        from pycocoevalcap.meteor.meteor import Meteor
    except ImportError:
        print(json.dumps({"skipped": "METEOR jar side skipped (pip install pycocoevalcap==1.2)"}))
        return
    if shutil.which("java") is None:
        print(json.dumps({"skipped": "METEOR jar side skipped (no java: apt-get install default-jre-headless)"}))
        return
    corpus = json.load(open(path, encoding="utf-8"))
    gts = {i: refs for i, refs in enumerate(corpus["references"])}
    res = {i: [hyp] for i, hyp in enumerate(corpus["hypotheses"])}
    start = time.perf_counter()
    meteor = Meteor()
    meteor.compute_score({0: gts[0]}, {0: res[0]})
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    score, _ = meteor.compute_score(gts, res)
    score_s = time.perf_counter() - start
    del meteor
    print(json.dumps({"load_s": load_s, "score_s": score_s, "images": len(res), "meteor": score}))


if __name__ == "__main__":
    main(sys.argv[1])
