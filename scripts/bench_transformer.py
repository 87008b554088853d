#!/usr/bin/env python3
"""PyTorch reference for the Transformer trainer benchmark (`cargo bench -p trainer --
--transformer`).

The same model as crates/decoder's Transformer, built by scripts/transformer_reference.py
(the model the parity test checks against ours) at the default sizes: d_model 512, 8 heads,
feed-forward 2048, 2 encoder and 2 decoder layers, dropout 0.1, over a 7x7 grid of
2048-channel features, vocabulary 8,000. The same batches as scripts/bench_trainer.py
(Flickr8k-sized random data: 30,000 captions, lengths up to 34 tokens, length buckets of 64
captions), masked cross-entropy, Adam with epsilon 1e-8, gradient-norm clipping at 5, CPU
with 2 threads. Prints training captions/s.

Usage: python3 scripts/bench_transformer.py [--steps 10] [--warmup 2] [--threads 2]
Exits 0 with a message when torch is not installed.
"""

import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch is not installed: skipping the PyTorch reference (pip install torch)")
    sys.exit(0)

from bench_trainer import options, time_training  # the same captions, batches and loop
from transformer_reference import Captioner

FEATURE_DIM, REGIONS, VOCAB = 2048, 49, 8000
CONFIG = {"vocab_size": VOCAB, "feature_dim": FEATURE_DIM, "d_model": 512, "heads": 8,
          "feed_forward": 2048, "encoder_layers": 2, "decoder_layers": 2, "dropout": 0.1}


def batch_loss(model, chunk, tokens):
    """Cross-entropy of a batch with a random grid; PAD targets are not scored."""
    grid = torch.rand(len(chunk), REGIONS, FEATURE_DIM)
    logits = model(grid, tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1), ignore_index=0)


def main():
    time_training(options(__doc__, steps=10, warmup=2), lambda: Captioner(CONFIG), batch_loss)


if __name__ == "__main__":
    main()
