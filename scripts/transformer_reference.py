#!/usr/bin/env python3
"""An independent PyTorch build of the project's Transformer captioner (crates/decoder/src/
transformer), written from its description, not translated from its code.

    transformer_reference.py DIR

DIR holds what the Rust side wrote: `config.json` and `model.safetensors` (the exported model,
`decoder::export`), `inputs.safetensors` (`grid` [n, regions, features] raw features,
`tokens` [n, steps] teacher-forced inputs) and `expected.safetensors` (`logits` [n, steps,
vocab], `greedy` [n, max_len] greedy word ids, -1 after a caption's end). The script loads
the weights into its own model, compares the logits (max abs difference <= 1e-4) and the
greedy captions (equal), prints both results, and exits 1 when either differs.
"""
import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

PAD, START, END, UNK = 0, 1, 2, 3
TOLERANCE = 1e-4


def sinusoids(length, dim):
    """Vaswani et al.'s positions: sin and cos interleaved, periods up to 10000."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


def grid_positions(regions, dim):
    """A square grid's region r: its row's sinusoids, then its column's, dim/2 each."""
    side = math.isqrt(regions)
    line = sinusoids(side, dim // 2)
    rows = line.repeat_interleave(side, dim=0)
    columns = line.repeat(side, 1)
    return torch.cat([rows, columns], dim=1)


class Attention(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.output = (nn.Linear(d, d) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, memory, mask=None):
        n, length, d = x.shape
        split = lambda t: t.view(n, -1, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(memory)), split(self.value(memory))
        scores = q @ k.transpose(2, 3) / math.sqrt(d // self.heads)
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        weights = self.dropout(scores.softmax(-1))
        return self.output((weights @ v).transpose(1, 2).reshape(n, length, d))


class FeedForward(nn.Module):
    def __init__(self, d, width, dropout):
        super().__init__()
        self.linear_inner, self.linear_outer = nn.Linear(d, width), nn.Linear(width, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.linear_outer(self.dropout(torch.relu(self.linear_inner(x))))


class EncoderLayer(nn.Module):
    def __init__(self, d, heads, width, dropout):
        super().__init__()
        self.norm_attention, self.attention = nn.LayerNorm(d), Attention(d, heads, dropout)
        self.norm_feed_forward = nn.LayerNorm(d)
        self.feed_forward = FeedForward(d, width, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        h = self.norm_attention(x)
        x = x + self.dropout(self.attention(h, h))
        return x + self.dropout(self.feed_forward(self.norm_feed_forward(x)))


class DecoderLayer(nn.Module):
    def __init__(self, d, heads, width, dropout):
        super().__init__()
        self.norm_self, self.self_attention = nn.LayerNorm(d), Attention(d, heads, dropout)
        self.norm_cross, self.cross_attention = nn.LayerNorm(d), Attention(d, heads, dropout)
        self.norm_feed_forward = nn.LayerNorm(d)
        self.feed_forward = FeedForward(d, width, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, memory, mask):
        h = self.norm_self(x)
        x = x + self.dropout(self.self_attention(h, h, mask))
        x = x + self.dropout(self.cross_attention(self.norm_cross(x), memory))
        return x + self.dropout(self.feed_forward(self.norm_feed_forward(x)))


class Captioner(nn.Module):
    """The model of the architecture `c` (config.json's keys), with its dropout in training
    mode (`.train()`, the benchmark) and none in `.eval()` (the checks)."""

    def __init__(self, c):
        super().__init__()
        d, heads, width, p = c["d_model"], c["heads"], c["feed_forward"], c["dropout"]
        self.register_buffer("feature_mean", torch.zeros(c["feature_dim"]))
        self.register_buffer("feature_inv_std", torch.ones(c["feature_dim"]))
        self.region_projection = nn.Linear(c["feature_dim"], d)
        self.encoder = nn.ModuleList(EncoderLayer(d, heads, width, p) for _ in range(c["encoder_layers"]))
        self.encoder_norm = nn.LayerNorm(d)
        self.embedding = nn.Embedding(c["vocab_size"], d)
        self.decoder = nn.ModuleList(DecoderLayer(d, heads, width, p) for _ in range(c["decoder_layers"]))
        self.decoder_norm = nn.LayerNorm(d)
        self.output = nn.Linear(d, c["vocab_size"])
        self.dropout = nn.Dropout(p)
        self.d = d

    def encode(self, grid):
        x = torch.relu(self.region_projection((grid - self.feature_mean) * self.feature_inv_std))
        x = self.dropout(x) + grid_positions(grid.shape[1], self.d)
        for layer in self.encoder:
            x = layer(x)
        return self.encoder_norm(x)

    def forward(self, grid, tokens):
        """Teacher-forced logits [n, steps, vocab] of inputs `tokens` [n, steps]."""
        memory = self.encode(grid)
        steps = tokens.shape[1]
        x = self.dropout(self.embedding(tokens) * math.sqrt(self.d) + sinusoids(steps, self.d))
        mask = torch.triu(torch.ones(steps, steps, dtype=torch.bool), diagonal=1)
        for layer in self.decoder:
            x = layer(x, memory, mask)
        return self.output(self.decoder_norm(x))

    def greedy(self, grid, max_len):
        """Greedy captions, rerunning the whole prefix each step (no cache: a different
        route from the Rust side's). `<pad>`, `<start>` and `<unk>` are never chosen."""
        n = grid.shape[0]
        tokens = torch.full((n, 1), START, dtype=torch.long)
        done = torch.zeros(n, dtype=torch.bool)
        words = torch.full((n, max_len), -1, dtype=torch.long)
        for t in range(max_len):
            logits = self.forward(grid, tokens)[:, -1]
            logits[:, [PAD, START, UNK]] = float("-inf")
            best = logits.argmax(-1)
            ended = done | (best == END)
            words[:, t] = torch.where(ended, torch.full_like(best, -1), best)
            done = ended
            if done.all():
                break
            tokens = torch.cat([tokens, best[:, None]], dim=1)
        return words


def load(folder):
    config = json.loads((folder / "config.json").read_text())
    if config.get("decoder") != "transformer":
        sys.exit(f"{folder}/config.json: decoder {config.get('decoder')!r}, expected 'transformer'")
    model = Captioner(config)
    model.load_state_dict(load_file(folder / "model.safetensors"), strict=True)
    return model.eval()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = Path(sys.argv[1])
    model = load(folder)
    inputs = load_file(folder / "inputs.safetensors")
    expected = load_file(folder / "expected.safetensors")
    with torch.no_grad():
        logits = model(inputs["grid"], inputs["tokens"])
        difference = (logits - expected["logits"]).abs().max().item()
        greedy = model.greedy(inputs["grid"], expected["greedy"].shape[1])
    same = (greedy == expected["greedy"]).all(dim=1)
    print(f"logits: largest difference {difference:.3e} over {logits.numel()} values")
    print(f"greedy captions: {int(same.sum())} of {len(same)} the same")
    for row in (~same).nonzero().flatten().tolist()[:5]:
        print(f"  image {row}: ours {expected['greedy'][row].tolist()}, PyTorch {greedy[row].tolist()}")
    if difference > TOLERANCE or not same.all():
        sys.exit(1)


if __name__ == "__main__":
    main()
