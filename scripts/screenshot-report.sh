#!/usr/bin/env bash
# Opens an HTML report in headless Chromium (Debian's `chromium` package) and saves a PNG
# screenshot, e.g. to check the report renders with its images:
#     scripts/screenshot-report.sh data/demo/eval/report.html report.png
set -euo pipefail
report=$(realpath "$1") out=$(realpath -m "${2:-report.png}")
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "no chromium found: apt-get install chromium" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1200,1600 --screenshot="$out" "file://$report" >/dev/null 2>&1
[ -s "$out" ] && echo "wrote $out"
