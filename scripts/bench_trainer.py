#!/usr/bin/env python3
"""PyTorch reference for the trainer benchmark (`cargo bench -p trainer`).

The same caption model as crates/decoder (image Linear 2048->256 + ReLU + dropout fed as the
first LSTM step, word embeddings, LSTM 512, [h ; image] -> dropout -> Linear -> vocabulary),
the same batches (Flickr8k-sized random data: 30,000 captions, vocabulary 8,000, lengths up to
34 tokens, sorted into length buckets of 64 captions), masked cross-entropy, Adam with
epsilon 1e-8, gradient-norm clipping at 5, CPU with 2 threads. Prints training captions/s.

Usage: python3 scripts/bench_trainer.py [--steps 30] [--threads 2]
Exits 0 with a message when torch is not installed.
"""

import argparse
import random
import resource
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("torch is not installed: skipping the PyTorch reference (pip install torch)")
    sys.exit(0)

FEATURE_DIM, EMBED, HIDDEN, VOCAB, BATCH = 2048, 256, 512, 8000, 64
CAPTIONS, MAX_TOKENS = 30_000, 34


class CaptionModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.image_proj = nn.Linear(FEATURE_DIM, EMBED)
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True)
        self.output = nn.Linear(HIDDEN + EMBED, VOCAB)
        self.dropout = nn.Dropout(0.5)

    def forward(self, features, inputs):
        # features [B, F], inputs [B, T] (<start> w1 .. wn) -> logits [B, T, V]
        image = torch.relu(self.image_proj(features))
        sequence = torch.cat([self.dropout(image).unsqueeze(1), self.embedding(inputs)], dim=1)
        hidden, _ = self.lstm(sequence)
        hidden = hidden[:, 1:]  # the image step's output is not scored
        merged = torch.cat([hidden, image.unsqueeze(1).expand(-1, hidden.shape[1], -1)], dim=2)
        return self.output(self.dropout(merged))


def caption_lengths(rng):
    """Token counts (with <start>/<end>) shaped like Flickr8k's: mostly 8-18, a tail to 34."""
    return [min(MAX_TOKENS, max(4, int(rng.gauss(13, 4)))) for _ in range(CAPTIONS)]


def batches(rng, lengths):
    """Captions sorted by length, cut into batches of 64, batch order shuffled."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    chunks = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
    rng.shuffle(chunks)
    return chunks


def options(doc, steps, warmup):
    """The command line both benchmarks take (`doc` their module docstring), with their own
    default step counts."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=warmup)
    return parser.parse_args()


def random_tokens(chunk, lengths):
    """[B, T + 1] random word ids for the captions `chunk`: <start> words <end>, 0-padded."""
    steps = max(lengths[i] for i in chunk) - 1
    tokens = torch.zeros(len(chunk), steps + 1, dtype=torch.long)
    for row, i in enumerate(chunk):
        tokens[row, : lengths[i]] = torch.randint(4, VOCAB, (lengths[i],))
        tokens[row, 0], tokens[row, lengths[i] - 1] = 1, 2
    return tokens


def time_training(args, make_model, loss_of):
    """Trains the model `make_model()` builds (after seeding) on the benchmark's batches,
    `loss_of(model, chunk, tokens)` giving each batch's loss, with Adam and clipping as the
    trainer does; prints captions/s after the warm-up steps and the peak memory."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = random.Random(0)
    lengths = caption_lengths(rng)
    plan = batches(rng, lengths)[: args.warmup + args.steps]
    model = make_model()
    model.train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)

    captions = 0
    start = None
    for step, chunk in enumerate(plan):
        if step == args.warmup:
            start = time.perf_counter()
            captions = 0
        loss = loss_of(model, chunk, random_tokens(chunk, lengths))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optim.step()
        captions += len(chunk)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        f"pytorch {torch.__version__}: {captions / seconds:.1f} training captions/s "
        f"({args.steps} steps of batch {BATCH}, {seconds / args.steps:.3f} s/step, "
        f"{args.threads} threads, CPU), peak memory {peak_mib:.0f} MiB"
    )


def caption_loss(model, chunk, tokens):
    """Masked cross-entropy of a batch with random image features."""
    features = torch.rand(len(chunk), FEATURE_DIM)
    logits = model(features, tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1), ignore_index=0)


def main():
    time_training(options(__doc__, steps=30, warmup=3), CaptionModel, caption_loss)


if __name__ == "__main__":
    main()
