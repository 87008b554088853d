#!/usr/bin/env python3
"""`make meteor-data`: the METEOR 1.5 data files into data/meteor/, checked.

METEOR's resources (function words, nonbreaking prefixes, WordNet synonyms, the paraphrase
table) are not ours to commit. pycocoevalcap on PyPI carries them: the English resources inside
pycocoevalcap/meteor/meteor-1.5.jar, the paraphrase table beside it. This script fetches the
pinned wheel with pip (`pip download`, which uses pip's cache), takes the files listed in
crates/metrics/src/meteor/data.manifest out of it, checks each file's size and SHA-256, and
moves them into place together. A folder that already matches the manifest is left as it is
(checking it takes a fraction of a second), so running it again is cheap.

    python3 scripts/meteor_data.py                # into data/meteor/
    python3 scripts/meteor_data.py --out DIR
    python3 scripts/meteor_data.py --wheel pycocoevalcap-1.2-py3-none-any.whl   # no download
"""
import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "crates/metrics/src/meteor/data.manifest"
PACKAGE = "pycocoevalcap==1.2"
JAR = "pycocoevalcap/meteor/meteor-1.5.jar"


def manifest():
    """(sha256, bytes, path, source) for each file of the manifest."""
    entries = []
    for line in MANIFEST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            sha256, size, path, source = line.split()
            entries.append((sha256, int(size), path, source))
    return entries


def problems(folder):
    """What is wrong with `folder` against the manifest (empty: nothing)."""
    found = []
    for sha256, size, path, _ in manifest():
        file = folder / path
        if not file.is_file():
            found.append(f"{file}: missing")
        elif file.stat().st_size != size:
            found.append(f"{file}: {file.stat().st_size} bytes, expected {size}")
        elif hashlib.sha256(file.read_bytes()).hexdigest() != sha256:
            found.append(f"{file}: SHA-256 differs from the manifest")
    return found


def download_wheel(into):
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--only-binary=:all:", "--dest", str(into), PACKAGE]
    print("meteor-data:", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    wheels = sorted(into.glob("pycocoevalcap-*.whl"))
    if not wheels:
        sys.exit(f"meteor-data: pip left no pycocoevalcap wheel in {into}")
    return wheels[0]


def extract(wheel, staging):
    """Writes every manifest file from the wheel (and the jar inside it) under `staging`."""
    with zipfile.ZipFile(wheel) as whl:
        jar = zipfile.ZipFile(io.BytesIO(whl.read(JAR)))
        for _, _, path, source in manifest():
            kind, member = source.split(":", 1)
            data = (jar if kind == "jar" else whl).read(member)
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data/meteor")
    parser.add_argument("--wheel", type=Path, help="use this pycocoevalcap 1.2 wheel instead of pip")
    args = parser.parse_args()
    out = args.out
    if out.is_dir():
        found = problems(out)
        if not found:
            print(f"meteor-data: {out} is complete (sizes and SHA-256 match the manifest)")
            return
        print("meteor-data: extracting again:\n  " + "\n  ".join(found), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".meteor-") as tmp:
        tmp = Path(tmp)
        wheel = args.wheel or download_wheel(tmp / "wheel")
        staging = tmp / "meteor"
        extract(wheel, staging)
        found = problems(staging)
        if found:
            sys.exit("meteor-data: the wheel's files do not match the manifest:\n  " + "\n  ".join(found))
        shutil.copyfile(MANIFEST, staging / "MANIFEST")
        # Replace the old folder (if any) only once the new one is complete.
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    total = sum(size for _, size, _, _ in manifest())
    print(f"meteor-data: {len(manifest())} files, {total / 2**20:.1f} MiB, checked, in {out}")


if __name__ == "__main__":
    main()
