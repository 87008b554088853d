#!/usr/bin/env python3
"""`make bench`: featurizer and trainer throughput next to PyTorch on this machine, as one
Markdown table (ours, PyTorch, ratio, peak memory). The PyTorch sides are optional: without
torch they are reported as skipped.

Featurizer: the same 200 real-size JPEGs (scripts/make_bench_images.py), end to end (decode,
resize, network, write), 2 threads, batch 16, ResNet50 with random weights on both sides
(speed does not depend on the weight values), timed after the network is built.
Network: crates/models/benches/resnet.rs prints the machine's matrix-multiply limit (faer's
single-threaded product on one core, then on every thread at once) and the CPU path's
per-layer profile (ResNet50, 224x224, batch 16); both featurizer rates are also given as
fractions of that limit (ResNet50's 4.1 GMAC, i.e. 8.2 GFLOP, per image).
Trainer: see crates/trainer/benches/train.rs and scripts/bench_trainer.py.
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
BIN = ROOT / "target" / "release"
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
    if not torch:
        return [row + ["skipped", "", f"{ours.group(2)} MiB", ""]], ["PyTorch trainer side skipped (pip install torch)"]
    ratio = float(ours.group(1)) / float(torch.group(1))
    return [row + [f"{float(torch.group(1)):.0f}", f"{ratio:.2f}x", f"{ours.group(2)} MiB", f"{torch.group(2)} MiB"]], []


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
    for part in (lambda: featurizer_rows(limit, gflop), trainer_rows):
        r, n = part()
        rows += r
        notes += [x for x in n if x]
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} on {cpu}, {THREADS} threads (RAYON_NUM_THREADS / torch.set_num_threads)\n")
    print("| benchmark | ours | PyTorch | ratio | peak memory (ours) | peak memory (PyTorch) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    for n in notes:
        print(f"\n{n}")
    print(f"\n{limit_line}")
    print(f"\nNetwork alone (crates/models/benches/resnet.rs), per-layer profile:\n\n{profile}")


if __name__ == "__main__":
    main()
