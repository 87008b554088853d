#!/usr/bin/env bash
# Stops `make train` at once, before any output is made, when Flickr8k or the ResNet50
# weights are missing, and says where to put them and where to get them.
set -u
dataset=$1 weights=$2
missing=0
if ! compgen -G "$dataset/Flickr8k.token.txt" >/dev/null && ! compgen -G "$dataset/*/Flickr8k.token.txt" >/dev/null \
   && ! compgen -G "$dataset/captions.txt" >/dev/null && ! compgen -G "$dataset/dataset_*.json" >/dev/null; then
  cat >&2 <<MSG
error: no Flickr8k dataset in $dataset/
  Put either layout there:
  - Kaggle (https://www.kaggle.com/datasets/adityajn105/flickr8k): unzip so that
      $dataset/captions.txt and $dataset/Images/*.jpg exist
  - the original release (Flickr8k_Dataset.zip + Flickr8k_text.zip): unzip so that
      $dataset/Flickr8k.token.txt (or $dataset/Flickr8k_text/...) and $dataset/Flicker8k_Dataset/*.jpg exist
  The official 6000/1000/1000 split lists ship in data/splits/ and are used for both.
MSG
  missing=1
fi
if [ "$weights" != random ] && [ ! -f "$weights" ]; then
  cat >&2 <<MSG
error: no ResNet50 weights at $weights
  Run \`make weights\` (downloads torchvision's resnet50-0676ba61.pth, IMAGENET1K_V1, ~98 MB,
  and checks its SHA-256 prefix), or copy that file there yourself.
MSG
  missing=1
fi
exit $missing
