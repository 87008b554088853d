#!/usr/bin/env bash
# The project's test command (`make test`): installs the Python packages the interop tests
# use, fetches METEOR's data (the METEOR parity tests need it), builds the stage binaries the
# end-to-end tests run, then runs every test in release mode (the networks are too slow
# unoptimised).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
python3 scripts/meteor_data.py --out data/meteor
cargo build --release --locked --workspace --bins
cargo test --release --locked --workspace
