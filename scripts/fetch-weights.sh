#!/usr/bin/env bash
# `make weights`: downloads torchvision's ResNet50 IMAGENET1K_V1 weights and refuses a file
# whose SHA-256 does not start with the prefix torchvision puts in the name (0676ba61).
set -euo pipefail
out=${1:-data/weights/resnet50-0676ba61.pth}
url=https://download.pytorch.org/models/resnet50-0676ba61.pth
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
curl --fail --location --retry 3 --output "$tmp" "$url"
sum=$(sha256sum "$tmp" | cut -c1-8)
if [ "$sum" != 0676ba61 ]; then
  echo "error: $url downloaded a file with SHA-256 $sum..., expected 0676ba61...; refusing it" >&2
  exit 1
fi
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out (sha256 $sum...)"
