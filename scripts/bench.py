#!/usr/bin/env python3
"""`make bench`: featurizer and trainer throughput next to PyTorch, and METEOR next to the
METEOR 1.5 jar, on this machine, as one Markdown table (ours, the reference, ratio, peak
memory). The reference sides are optional: without torch, or without pycocoevalcap and Java,
they are reported as skipped.

Featurizer: the same 200 real-size JPEGs (scripts/make_bench_images.py), end to end (decode,
resize, network, write), 2 threads, batch 16, ResNet50 with random weights on both sides
(speed does not depend on the weight values), timed after the network is built.
Network: crates/models/benches/resnet.rs prints the machine's matrix-multiply limit (faer's
single-threaded product on one core, then on every thread at once) and the CPU path's
per-layer profile (ResNet50, 224x224, batch 16); both featurizer rates are also given as
fractions of that limit (ResNet50's 4.1 GMAC, i.e. 8.2 GFLOP, per image).
Trainer: see crates/trainer/benches/train.rs and scripts/bench_trainer.py; the attention and
Transformer trainers (`--attention`, `--transformer`) against scripts/bench_attention.py and
scripts/bench_transformer.py, with their peak memory while the grid of 6,000 images (2.4 GB)
sits in a temp file; the Transformer's beam-3 decoding (crates/decoder/benches/decode.rs)
against scripts/bench_transformer_decode.py. A last table shows an epoch's time and the peak memory
at Flickr8k's size and at COCO's (600,000 captions, 123,000 images, vocabulary 10,000).
METEOR: 1,000 images with 5 references each (Flickr8k test captions when the caption file is
found, else generated ones), crates/metrics/benches/meteor.rs against scripts/bench_meteor_jar.py
(pycocoevalcap's Meteor(), which runs the jar): the time to load the data (ours: data/meteor/;
the jar: start Java and load its resources) and the time to score the corpus. Both print the
corpus METEOR, which must agree.
"""
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
WORK = Path(os.environ.get("BENCH_DIR", ROOT / "target" / "bench"))
THREADS = 2


def run(cmd):
    """Runs cmd, returns (its output, its own peak RSS in MiB, from wait4's rusage)."""
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True,
                                 env={**os.environ, "RAYON_NUM_THREADS": str(THREADS)})
        _, status, usage = os.wait4(child.pid, 0)
        log.seek(0)
        output = log.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed:\n{output}")
    return output, usage.ru_maxrss / 1024


def network():
    """crates/models/benches/resnet.rs: (the limit line, GFLOP/s on all threads, GFLOP per
    image, the rest of its output: network-only rate and per-layer profile)."""
    out = subprocess.run(["cargo", "bench", "--locked", "-q", "-p", "models", "--bench", "resnet"], cwd=ROOT,
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "RAYON_NUM_THREADS": str(THREADS)}).stdout
    limit = re.search(r"^matmul limit: .*?([\d.]+) GFLOP/s on \d+ threads.*$", out, re.M)
    gmac = re.search(r"^\| total \| [\d.]+ \| 100% \| ([\d.]+) \|", out, re.M)
    alone = re.search(r"^cpu path: ([\d.]+) images/s", out, re.M)
    gflop = 2 * float(gmac.group(1))
    share = 100 * float(alone.group(1)) * gflop / float(limit.group(1))
    rest = out[limit.end():].strip() + (
        f"\n\nThe network alone runs at {share:.0f}% of the limit, counting the direct convolutions' "
        f"{gflop:.1f} GFLOP per image (Winograd does fewer multiplies for the stride-1 3x3 ones).")
    return limit.group(0), float(limit.group(1)), gflop, rest


def featurizer_rows(limit, gflop):
    """The featurizer rows; `limit` GFLOP/s and `gflop` per image give each rate as a fraction
    of the machine's limit."""
    share = lambda rate: f"{100 * rate * gflop / limit:.0f}% of the limit"
    images = WORK / "images"
    if not images.is_dir():
        subprocess.run([sys.executable, ROOT / "scripts/make_bench_images.py", images, "200"], check=True)
    torch_out, torch_mem = run([sys.executable, ROOT / "scripts/bench_featurizer.py", images, "--threads", str(THREADS), "--batch-size", "16"])
    torch = json.loads(torch_out.strip().splitlines()[-1])
    shutil.rmtree(WORK / "featurizer-work", ignore_errors=True)
    ours_out, ours_mem = run([BIN / "featurizer", "--images", images, "--work-dir", WORK / "featurizer-work", "--weights", "random", "--batch-size", "16"])
    match = re.search(r"\(([\d.]+) images/s end to end, ([\d.]+) after loading", ours_out)
    profile = re.search(r"^time .*$", ours_out, re.M)
    ours = float(match.group(2))
    row = ["featurizer (images/s, 200 JPEGs 500x375, batch 16)", f"{ours:.1f}"]
    if "skipped" in torch:
        return [row + ["skipped", "", f"{ours_mem:.0f} MiB", ""]], [torch["skipped"], f"featurizer end to end: ours {share(ours)}"]
    ratio = ours / torch["images_per_s"]
    shares = f"featurizer end to end: ours {share(ours)}, PyTorch {share(torch['images_per_s'])} ({gflop:.1f} GFLOP per image)"
    return [row + [f"{torch['images_per_s']:.1f}", f"{ratio:.2f}x", f"{ours_mem:.0f} MiB", f"{torch_mem:.0f} MiB"]], [profile.group(0) if profile else "", shares]


def trainer_rows():
    """crates/trainer/benches/train.rs runs both sides and prints one line each."""
    out = subprocess.run(["cargo", "bench", "--locked", "-q", "-p", "trainer", "--bench", "train"], cwd=ROOT,
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "RAYON_NUM_THREADS": str(THREADS)}).stdout
    line = lambda who: re.search(who + r".*?: ([\d.]+) training captions/s.*peak memory (\S+) MiB", out)
    ours, torch = line("burn trainer"), line("pytorch")
    row = ["trainer (captions/s, 30k captions, vocab 8000, len <= 34, batch 64)", f"{float(ours.group(1)):.0f}"]
    scst = re.search(r"burn scst.*?: ([\d.]+) sampled captions/s.*?([\d.]+) s/step against ([\d.]+) s/step", out)
    scst_row = ["self-critical step (sampled captions/s; s/step vs cross-entropy)", f"{float(scst.group(1)):.0f}",
                "", f"{scst.group(2)} s vs {scst.group(3)} s", "", ""]
    if not torch:
        return [row + ["skipped", "", f"{ours.group(2)} MiB", ""], scst_row], ["PyTorch trainer side skipped (pip install torch)"]
    ratio = float(ours.group(1)) / float(torch.group(1))
    return [row + [f"{float(torch.group(1)):.0f}", f"{ratio:.2f}x", f"{ours.group(2)} MiB", f"{torch.group(2)} MiB"], scst_row], []


def grid_model_rows(decoder):
    """A grid model's trainer (crates/trainer/benches/train.rs --attention or --transformer),
    its grid of 6,000 images in a temp file as in training, next to scripts/bench_<decoder>.py."""
    out = subprocess.run(["cargo", "bench", "--locked", "-q", "-p", "trainer", "--bench", "train", "--",
                          f"--{decoder}", "--steps", "10", "--warmup", "2"], cwd=ROOT,
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "RAYON_NUM_THREADS": str(THREADS)}).stdout
    line = lambda who: re.search(who + r".*?: ([\d.]+) training captions/s.*peak memory (\S+) MiB", out)
    ours, torch = line(f"burn {decoder} trainer"), line("pytorch")
    row = [f"{decoder} trainer (captions/s, 7x7 grid of 6,000 images, vocab 8000, batch 64)", f"{float(ours.group(1)):.1f}"]
    if not torch:
        return [row + ["skipped", "", f"{ours.group(2)} MiB", ""]], [f"PyTorch {decoder} side skipped (pip install torch)"]
    ratio = float(ours.group(1)) / float(torch.group(1))
    return [row + [f"{float(torch.group(1)):.1f}", f"{ratio:.2f}x", f"{ours.group(2)} MiB", f"{torch.group(2)} MiB"]], []


def decode_rows():
    """The Transformer's beam-3 decoding of 1,000 images (crates/decoder/benches/decode.rs) next
    to scripts/bench_transformer_decode.py."""
    out = subprocess.run(["cargo", "bench", "--locked", "-q", "-p", "decoder", "--bench", "decode"], cwd=ROOT,
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "RAYON_NUM_THREADS": str(THREADS)}).stdout
    line = lambda who: re.search(who + r".*?: ([\d.]+) images/s", out)
    ours, torch = line("burn transformer beam-3"), line("pytorch")
    row = ["transformer beam-3 decoding (images/s, 1,000 images, vocab 8000, 20 words)", f"{float(ours.group(1)):.1f}"]
    if not torch:
        return [row + ["skipped", "", "", ""]], ["PyTorch decoding side skipped (pip install torch)"]
    ratio = float(ours.group(1)) / float(torch.group(1))
    return [row + [f"{float(torch.group(1)):.1f}", f"{ratio:.2f}x", "", ""]], []


def growth_table():
    """How an epoch's time and the peak memory grow from Flickr8k's size to COCO's
    (crates/trainer/benches/train.rs --epoch, one process per size so each peak is its own):
    Flickr8k's epoch timed whole, COCO's on every 20th batch."""
    sizes = []
    for scale, stride in (("flickr8k", 1), ("coco", 20)):
        out = subprocess.run(["cargo", "bench", "--locked", "-q", "-p", "trainer", "--bench", "train", "--",
                              "--epoch", scale, "--stride", str(stride)], cwd=ROOT,
                             check=True, capture_output=True, text=True,
                             env={**os.environ, "RAYON_NUM_THREADS": str(THREADS)}).stdout
        m = re.search(r"burn epoch \S+ .*?: (\d+) captions, (\d+) images, vocabulary (\d+): epoch (\d+) s "
                      r"\((\d+) of (\d+) batches timed.*?([\d.]+) captions/s\), peak memory (\S+) MiB, pooled features (\d+) MiB", out)
        sizes.append((scale, *m.groups()))
    (_, c0, i0, _, t0, *_, m0, f0), (_, c1, i1, _, t1, *_, m1, f1) = sizes
    lines = ["| size | captions | images | vocabulary | batches timed | captions/s | epoch | peak memory | pooled features |",
             "|---|---|---|---|---|---|---|---|---|"]
    for scale, captions, images, vocab, epoch, timed, batches, rate, peak, features in sizes:
        lines.append(f"| {scale} | {int(captions):,} | {int(images):,} | {int(vocab):,} | {timed} of {batches} | {float(rate):.0f} "
                     f"| {int(epoch):,} s | {peak} MiB | {int(features):,} MiB |")
    lines.append(f"| growth | {int(c1) / int(c0):.1f}x | {int(i1) / int(i0):.1f}x | | | | {int(t1) / int(t0):.1f}x "
                 f"| +{float(m1) - float(m0):,.0f} MiB | +{int(f1) - int(f0):,} MiB |")
    return lines


def meteor_corpus(images=1000):
    """1,000 images with 5 references: Flickr8k test images when the caption file is here (a
    caption of each image against its other four and the first caption of the next image),
    else generated scene captions."""
    for tokens in (ROOT / "data/flickr8k/Flickr8k.token.txt", ROOT.parent / "shared/flickr8k/Flickr8k.token.txt"):
        if tokens.is_file():
            captions = {}
            for line in tokens.read_text(encoding="utf-8").splitlines():
                key, caption = line.split("\t", 1) if "\t" in line else line.split(" ", 1)
                captions.setdefault(key.rsplit("#", 1)[0], []).append(caption)
            names = [n for n in (ROOT / "data/splits/Flickr_8k.testImages.txt").read_text().split()
                     if len(captions.get(n, [])) == 5][:images]
            refs = [captions[n][1:] + [captions[names[(i + 1) % len(names)]][0]] for i, n in enumerate(names)]
            return {"hypotheses": [captions[n][0] for n in names], "references": refs}, f"Flickr8k test captions ({tokens})"
    import random
    rng = random.Random(7)
    who = ["a dog", "a black dog", "two dogs", "a man", "a young boy", "a girl", "a woman", "people"]
    does = ["runs", "is running", "jumps", "plays", "is playing", "walks", "sits", "swims", "climbs"]
    where = ["on the grass", "in the water", "on the beach", "in the snow", "through a field", "on a street"]
    make = lambda: f"{rng.choice(who)} {rng.choice(does)} {rng.choice(where)} ."
    return {"hypotheses": [make() for _ in range(images)],
            "references": [[make() for _ in range(5)] for _ in range(images)]}, "generated captions"


def meteor_rows():
    corpus, source = meteor_corpus()
    path = WORK / "meteor_corpus.json"
    path.write_text(json.dumps(corpus))
    ours_out, ours_mem = run(["cargo", "bench", "--locked", "-q", "-p", "metrics", "--bench", "meteor", "--", str(path), str(ROOT / "data/meteor")])
    ours = json.loads(ours_out.strip().splitlines()[-1])
    jar_out, jar_mem = run([sys.executable, ROOT / "scripts/bench_meteor_jar.py", path])
    jar = json.loads(jar_out.strip().splitlines()[-1])
    rows = [["METEOR load (s; ours: data/meteor, jar: start Java, load resources)", f"{ours['load_s']:.2f}"],
            [f"METEOR scoring (s; {len(corpus['hypotheses']):,} images x 5 references)", f"{ours['score_s']:.2f}"]]
    if "skipped" in jar:
        return [r + ["skipped", "", f"{ours_mem:.0f} MiB", ""] for r in rows], [jar["skipped"]]
    for row, key in zip(rows, ["load_s", "score_s"]):
        row += [f"{jar[key]:.2f}", f"{jar[key] / ours[key]:.1f}x faster", f"{ours_mem:.0f} MiB", f"{jar_mem:.0f} MiB"]
    note = (f"METEOR corpus: {source}; corpus METEOR ours {ours['meteor']:.6f}, jar {jar['meteor']:.6f} "
            f"(|difference| {abs(ours['meteor'] - jar['meteor']):.1e}). Memory: the whole process (ours), "
            f"Python and the jar's Java (reference).")
    return rows, [note]


def cpu_name():
    """The model name, with family/model and the vector width (virtual machines often say only
    "AMD EPYC")."""
    info = {}
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    if "model name" not in info:
        return platform.processor()
    vector = "AVX-512" if "avx512f" in info.get("flags", "").split() else "AVX2, no AVX-512"
    return f"{info['model name']} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}, {vector})"


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    cpu = cpu_name()
    limit_line, limit, gflop, profile = network()
    rows, notes = [], []
    for part in (lambda: featurizer_rows(limit, gflop), trainer_rows, lambda: grid_model_rows("attention"),
                 lambda: grid_model_rows("transformer"), decode_rows, meteor_rows):
        r, n = part()
        rows += r
        notes += [x for x in n if x]
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} on {cpu}, {THREADS} threads (RAYON_NUM_THREADS / torch.set_num_threads)\n")
    print("| benchmark | ours | reference (PyTorch; METEOR: the jar) | ratio | peak memory (ours) | peak memory (reference) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    for n in notes:
        print(f"\n{n}")
    print(f"\n{limit_line}")
    print(f"\nNetwork alone (crates/models/benches/resnet.rs), per-layer profile:\n\n{profile}")
    print("\nThe trainer from Flickr8k's size to COCO's (one epoch of the default model, validation left out):\n")
    print("\n".join(growth_table()))


if __name__ == "__main__":
    main()
