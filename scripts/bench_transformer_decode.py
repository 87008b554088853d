#!/usr/bin/env python3
"""PyTorch reference for the Transformer decoding benchmark (`cargo bench -p decoder --bench
decode`): beam-3 search over 1,000 images of random 7x7 grids in batches of 64, up to 20 words,
with scripts/transformer_reference.py's model at the default sizes (d_model 512, 8 heads,
feed-forward 2048, 2 + 2 layers, vocabulary 8,000) and random weights, under
`torch.inference_mode()`. Each step runs the new word alone through the decoder with a
key/value cache per layer (the regions' keys and values computed once per batch), and beam
reordering selects the cache's rows, as ours does. Prints images/s.

Usage: python3 scripts/bench_transformer_decode.py [--images 1000] [--threads 2]
Exits 0 with a message when torch is not installed.
"""
import argparse
import math
import sys
import time

try:
    import torch
except ImportError:
    print("torch is not installed: skipping the PyTorch reference (pip install torch)")
    sys.exit(0)

from transformer_reference import END, PAD, START, UNK, Captioner, sinusoids

REGIONS, CHANNELS, VOCAB, BATCH, BEAM, MAX_LEN = 49, 2048, 8000, 64, 3, 20
CONFIG = {"vocab_size": VOCAB, "feature_dim": CHANNELS, "d_model": 512, "heads": 8,
          "feed_forward": 2048, "encoder_layers": 2, "decoder_layers": 2, "dropout": 0.1}


def heads(attention, x):
    n, length, d = x.shape
    return x.view(n, length, attention.heads, d // attention.heads).transpose(1, 2)


def attend(attention, x, keys, values):
    """One query position `x` [rows, 1, d] over cached `keys`/`values` [rows, h, len, dk]."""
    q = heads(attention, attention.query(x))
    weights = (q @ keys.transpose(2, 3) / math.sqrt(q.shape[-1])).softmax(-1)
    return attention.output((weights @ values).transpose(1, 2).reshape(x.shape))


def step(model, tokens, position, cache, regions, positions):
    """The next word's log-probabilities [rows, vocab]; appends to `cache` in place."""
    x = model.embedding(tokens[:, None]) * math.sqrt(model.d) + positions[position]
    for i, layer in enumerate(model.decoder):
        h = layer.norm_self(x)
        k = heads(layer.self_attention, layer.self_attention.key(h))
        v = heads(layer.self_attention, layer.self_attention.value(h))
        if cache[i] is not None:
            k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
        cache[i] = (k, v)
        x = x + attend(layer.self_attention, h, k, v)
        x = x + attend(layer.cross_attention, layer.norm_cross(x), *regions[i])
        x = x + layer.feed_forward(layer.norm_feed_forward(x))
    return model.output(model.decoder_norm(x))[:, 0].log_softmax(-1)


def beam_search(model, grid, positions):
    """Every image's best caption after MAX_LEN words and a forced <end>."""
    n = grid.shape[0]
    memory = model.encode(grid).repeat_interleave(BEAM, 0)
    regions = [(heads(l.cross_attention, l.cross_attention.key(memory)),
                heads(l.cross_attention, l.cross_attention.value(memory))) for l in model.decoder]
    cache = [None] * len(model.decoder)
    scores = torch.full((n, BEAM), float("-inf"))
    scores[:, 0] = 0.0
    tokens = torch.full((n * BEAM,), START, dtype=torch.long)
    words = torch.zeros(n * BEAM, 0, dtype=torch.long)
    for position in range(MAX_LEN):
        log_probs = step(model, tokens, position, cache, regions, positions)
        log_probs[:, [PAD, START, UNK, END]] = float("-inf")
        total = (scores.view(-1, 1) + log_probs).view(n, BEAM * VOCAB)
        scores, best = total.topk(BEAM, dim=1)
        parents = (best // VOCAB + torch.arange(n)[:, None] * BEAM).view(-1)
        tokens = (best % VOCAB).view(-1)
        cache = [(k[parents], v[parents]) for k, v in cache]
        words = torch.cat([words[parents], tokens[:, None]], 1)
    final = step(model, tokens, MAX_LEN, cache, regions, positions)[:, END].view(n, BEAM)
    return words.view(n, BEAM, -1)[torch.arange(n), (scores + final).argmax(1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = Captioner(CONFIG).eval()
    positions = sinusoids(MAX_LEN + 1, CONFIG["d_model"])
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, args.images, BATCH):
            beam_search(model, torch.rand(min(BATCH, args.images - first), REGIONS, CHANNELS), positions)
    seconds = time.perf_counter() - start
    print(f"pytorch {torch.__version__} beam-3 decoding ({args.threads} threads): "
          f"{args.images / seconds:.1f} images/s ({args.images} images, {seconds:.1f} s)")


if __name__ == "__main__":
    main()
