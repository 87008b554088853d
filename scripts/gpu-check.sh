#!/usr/bin/env bash
# GPU check: runs the CUDA build of the featurizer and trainer on a small synthetic set and
# compares them with the CPU results of the same binaries. Meant for a machine with an NVIDIA
# GPU and no network, so build everything here first:
#
#   cargo build --release --locked --features featurizer/cuda,trainer/cuda -p featurizer -p trainer
#   cargo build --release --locked -p synth -p cleaner -p tokenizer
#   scripts/gpu-check.sh prepare gpu-check       # synthetic data + CPU reference, on any machine
#   # copy target/release/{featurizer,trainer}, scripts/gpu-check.sh and gpu-check/ to the GPU box
#   scripts/gpu-check.sh run gpu-check           # on the GPU machine: CUDA runs + comparison
#
# Prints images/s and captions/s on both devices, the cosine similarity of CPU and CUDA
# features and grids (expected >= 0.9999) and the training losses of the merge and the
# attention decoder side by side (expected equal to float tolerance), the Transformer's losses
# and val BLEU-4 (its validation decodes greedily with the key/value cache on the device), and
# on a machine with two
# GPUs or more the merge decoder's losses on one GPU and split across two (`--devices
# cuda:0,cuda:1`, data-parallel). The comparison needs python3 with pyarrow.
set -euo pipefail
mode=${1:?usage: gpu-check.sh prepare|run DIR} dir=${2:?usage: gpu-check.sh prepare|run DIR}
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release}
train_flags=(--set trainer.epochs=3 --set trainer.batch_size=64 --set trainer.val_metric=loss)
attention=(--set model.decoder=attention)
attention_train=("${attention[@]}" --set trainer.epochs=2)
transformer_train=(--set model.decoder=transformer --set trainer.epochs=2 --set trainer.val_metric=bleu4
  --set model.transformer.d_model=256 --set model.transformer.feed_forward=1024)

if [ "$mode" = prepare ]; then
  "$bin/synth" --out "$dir/synthetic" --images 300 --seed 1 --force -q
  "$bin/cleaner" --dataset-dir "$dir/synthetic" --work-dir "$dir/cpu" -q
  "$bin/featurizer" --work-dir "$dir/cpu" --weights random --device cpu "${attention[@]}"
  "$bin/tokenizer" --work-dir "$dir/cpu" --min-count 1 -q
  "$bin/trainer" --work-dir "$dir/cpu" --device cpu "${train_flags[@]}"
  rm -rf "$dir/cpu-attention" && mkdir -p "$dir/cpu-attention"
  cp -r "$dir/cpu/captions.parquet" "$dir/cpu/vocab.parquet" "$dir/cpu/tokens.parquet" "$dir/cpu/features" "$dir/cpu/grid" "$dir/cpu-attention/"
  "$bin/trainer" --work-dir "$dir/cpu-attention" --device cpu "${train_flags[@]}" "${attention_train[@]}"
  rm -rf "$dir/cpu-transformer" && cp -r "$dir/cpu-attention" "$dir/cpu-transformer" && rm -rf "$dir/cpu-transformer/model"
  "$bin/trainer" --work-dir "$dir/cpu-transformer" --device cpu "${train_flags[@]}" "${transformer_train[@]}"
  exit 0
fi

rm -rf "$dir/cuda" && mkdir -p "$dir/cuda"
cp "$dir/cpu/captions.parquet" "$dir/cuda/"
"$bin/featurizer" --work-dir "$dir/cuda" --weights random --device cuda "${attention[@]}"
cp "$dir/cpu/vocab.parquet" "$dir/cpu/tokens.parquet" "$dir/cuda/"
# Train both on the CPU features so the loss comparison isolates the training step.
rm -rf "$dir/cuda-train" && mkdir -p "$dir/cuda-train"
cp -r "$dir/cpu/captions.parquet" "$dir/cpu/vocab.parquet" "$dir/cpu/tokens.parquet" "$dir/cpu/features" "$dir/cuda-train/"
"$bin/trainer" --work-dir "$dir/cuda-train" --device cuda "${train_flags[@]}"
rm -rf "$dir/cuda-attention" && mkdir -p "$dir/cuda-attention"
cp -r "$dir/cpu/captions.parquet" "$dir/cpu/vocab.parquet" "$dir/cpu/tokens.parquet" "$dir/cpu/features" "$dir/cpu/grid" "$dir/cuda-attention/"
"$bin/trainer" --work-dir "$dir/cuda-attention" --device cuda "${train_flags[@]}" "${attention_train[@]}"
rm -rf "$dir/cuda-transformer" && cp -r "$dir/cuda-attention" "$dir/cuda-transformer" && rm -rf "$dir/cuda-transformer/model"
"$bin/trainer" --work-dir "$dir/cuda-transformer" --device cuda "${train_flags[@]}" "${transformer_train[@]}"
# Data-parallel training where the machine has two GPUs or more: the same global batch on one
# GPU and split across two (dropout off: each device draws its own masks).
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "$gpus" -ge 2 ]; then
  for run in one two; do
    rm -rf "$dir/dp-$run" && mkdir -p "$dir/dp-$run"
    cp -r "$dir/cpu/captions.parquet" "$dir/cpu/vocab.parquet" "$dir/cpu/tokens.parquet" "$dir/cpu/features" "$dir/dp-$run/"
  done
  "$bin/trainer" --work-dir "$dir/dp-one" --device cuda "${train_flags[@]}" --set model.dropout=0
  "$bin/trainer" --work-dir "$dir/dp-two" --device cuda --devices cuda:0,cuda:1 "${train_flags[@]}" --set model.dropout=0
else
  echo "data-parallel check skipped: $gpus GPU(s) here, it needs 2"
fi
python3 - "$dir" <<'PY'
import csv, sys
import numpy as np
import pyarrow.dataset as ds
d = sys.argv[1]
def load(sub, folder, column):
    t = ds.dataset(f"{d}/{sub}/{folder}", format="parquet").to_table().sort_by("image")
    return t.column("image").to_pylist(), np.stack(t.column(column).to_numpy(zero_copy_only=False))
for folder, column in [("features", "feature"), ("grid", "grid")]:
    ia, a = load("cpu", folder, column); ib, b = load("cuda", folder, column)
    assert ia == ib, "different images"
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    print(f"{folder}: {len(ia)} images, cosine CPU vs CUDA min {cos.min():.6f} mean {cos.mean():.6f} (expected >= 0.9999)")
rows = lambda p: list(csv.DictReader(open(p)))
for model, cpu, cuda in [("merge", "cpu", "cuda-train"), ("attention", "cpu-attention", "cuda-attention"),
                         ("transformer", "cpu-transformer", "cuda-transformer")]:
    for c, g in zip(rows(f"{d}/{cpu}/model/metrics.csv"), rows(f"{d}/{cuda}/model/metrics.csv")):
        print(f"{model} epoch {c['epoch']}: train loss cpu {float(c['train_loss']):.5f} cuda {float(g['train_loss']):.5f}; "
              f"val BLEU-4 cpu {float(c['val_bleu4']):.4f} cuda {float(g['val_bleu4']):.4f}; "
              f"captions/s cpu {float(c['captions_per_s']):.0f} cuda {float(g['captions_per_s']):.0f}")
import os
if os.path.exists(f"{d}/dp-two/model/metrics.csv"):
    for a, b in zip(rows(f"{d}/dp-one/model/metrics.csv"), rows(f"{d}/dp-two/model/metrics.csv")):
        print(f"data-parallel epoch {a['epoch']}: train loss 1 GPU {float(a['train_loss']):.6f} 2 GPUs {float(b['train_loss']):.6f} "
              f"(expected equal to ~1e-5); captions/s 1 GPU {float(a['captions_per_s']):.0f} 2 GPUs {float(b['captions_per_s']):.0f}")
PY
