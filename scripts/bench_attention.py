#!/usr/bin/env python3
"""PyTorch reference for the attention trainer benchmark (the attention decoder's training steps).

The same caption model as the attention decoder (Xu et al. 2015 soft attention): a 7x7 grid of
2048-channel features per image standardised with constant per-channel mean/std, h0/c0 from
Linear 2048->512 + tanh of the grid mean, additive attention of dimension 256 (grid projection
computed once per batch, state projection per step), a sigmoid gate Linear 512->2048 on the
context, an LSTMCell 256+2048->512 unrolled over every step with teacher forcing, dropout ->
Linear 512->8000 on h. The same batches as scripts/bench_trainer.py (Flickr8k-sized random data:
30,000 captions, vocabulary 8,000, lengths up to 34 tokens, sorted into length buckets of 64
captions), masked cross-entropy plus the doubly stochastic regulariser (weight 1), Adam with
epsilon 1e-8, gradient-norm clipping at 5, CPU with 2 threads. Prints training captions/s.

Usage: python3 scripts/bench_attention.py [--steps 10] [--warmup 2] [--threads 2]
Exits 0 with a message when torch is not installed.
"""

import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("torch is not installed: skipping the PyTorch reference (pip install torch)")
    sys.exit(0)

from bench_trainer import options, time_training  # the same captions, batches and loop

FEATURE_DIM, REGIONS, EMBED, HIDDEN, ATTENTION, VOCAB, BATCH = 2048, 49, 256, 512, 256, 8000, 64
GRID_MEAN, GRID_STD, ATTENTION_REG = 0.5, 0.29, 1.0


class AttentionModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("grid_mean", torch.full((FEATURE_DIM,), GRID_MEAN))
        self.register_buffer("grid_std", torch.full((FEATURE_DIM,), GRID_STD))
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.encoder_att = nn.Linear(FEATURE_DIM, ATTENTION)
        self.decoder_att = nn.Linear(HIDDEN, ATTENTION)
        self.full_att = nn.Linear(ATTENTION, 1)
        self.init_h = nn.Linear(FEATURE_DIM, HIDDEN)
        self.init_c = nn.Linear(FEATURE_DIM, HIDDEN)
        self.f_beta = nn.Linear(HIDDEN, FEATURE_DIM)
        self.lstm = nn.LSTMCell(EMBED + FEATURE_DIM, HIDDEN)
        self.output = nn.Linear(HIDDEN, VOCAB)
        self.dropout = nn.Dropout(0.5)

    def forward(self, grid, inputs):
        # grid [B, R, F], inputs [B, T] (<start> w1 .. wn) -> logits [B, T, V], alphas [B, T, R]
        grid = (grid - self.grid_mean) / self.grid_std
        mean = grid.mean(dim=1)
        h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))
        enc = self.encoder_att(grid)  # [B, R, A], once per batch
        embedded = self.embedding(inputs)
        hs, alphas = [], []
        for t in range(inputs.shape[1]):
            e = self.full_att(torch.tanh(enc + self.decoder_att(h).unsqueeze(1))).squeeze(2)
            alpha = torch.softmax(e, dim=1)
            context = torch.bmm(alpha.unsqueeze(1), grid).squeeze(1)  # [B, F]
            z = torch.sigmoid(self.f_beta(h)) * context
            h, c = self.lstm(torch.cat([embedded[:, t], z], dim=1), (h, c))
            hs.append(h)
            alphas.append(alpha)
        logits = self.output(self.dropout(torch.stack(hs, dim=1)))
        return logits, torch.stack(alphas, dim=1)


def attention_loss(logits, alphas, inputs, targets):
    """Masked cross-entropy over the real targets plus the doubly stochastic regulariser:
    mean over captions and regions of (1 - sum over the real input steps of alpha)^2.

    `inputs` are PAD after a caption's last input (`<end>` is never an input, as in
    crates/decoder's TeacherBatch), so the input mask is the target mask."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=0)
    mask = (inputs != 0).to(alphas.dtype).unsqueeze(2)  # [B, T, 1]
    reg = ((1.0 - (alphas * mask).sum(dim=1)) ** 2).mean()
    return ce, reg


def batch_loss(model, chunk, tokens):
    """Cross-entropy plus the weighted regulariser of a batch with a random grid."""
    grid = torch.rand(len(chunk), REGIONS, FEATURE_DIM)
    targets = tokens[:, 1:]
    inputs = tokens[:, :-1].masked_fill(targets == 0, 0)  # PAD after the last input
    logits, alphas = model(grid, inputs)
    ce, reg = attention_loss(logits, alphas, inputs, targets)
    return ce + ATTENTION_REG * reg


def main():
    time_training(options(__doc__, steps=10, warmup=2), AttentionModel, batch_loss)


if __name__ == "__main__":
    main()
