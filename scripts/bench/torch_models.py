"""A clean, vectorised PyTorch implementation of lsnn's networks (docs/design.md §2), for timing
beside `lsnn bench` (bench_torch.py). It computes what lsnn computes — the LIF neurons with the
fast-sigmoid surrogate, the spiking encoder, the CfC recurrence, the hybrid block, the spiking
attention, the language model and the sequence models with their heads and losses — with
dropout where lsnn has it. Every position-parallel part runs on all B·L positions at once; only
the LIF steps (T, a few) and the CfC recurrence (L) are Python loops, as in any PyTorch version
of these networks.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint


class SpikeFastSigmoid(torch.autograd.Function):
    """Heaviside forward, fast-sigmoid surrogate (slope k) backward."""

    @staticmethod
    def forward(ctx, v, k: float):
        ctx.save_for_backward(v)
        ctx.k = k
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        return g / (ctx.k * v.abs() + 1.0) ** 2, None


def spike(v, k=25.0):
    return SpikeFastSigmoid.apply(v, k)


def lif_const(i, steps, beta, theta):
    """Constant current i for `steps` steps (reset by subtraction, detached): spikes [T, ...]."""
    u = torch.zeros_like(i)
    out = []
    for _ in range(steps):
        r = (u.detach() > theta).to(i.dtype)
        u = beta * u + i - r * theta
        out.append(spike(u - theta))
    return torch.stack(out)


def lif_const_rate(i, steps, beta, theta):
    """The firing rate of a constant current (the attention's rate code)."""
    u = torch.zeros_like(i)
    total = None
    for _ in range(steps):
        r = (u.detach() > theta).to(i.dtype)
        u = beta * u + i - r * theta
        s = spike(u - theta)
        total = s if total is None else total + s
    return total / steps


def lif_seq(currents, beta, theta):
    """Currents [T, ...] → (rate, mean membrane)."""
    u = torch.zeros_like(currents[0])
    rate = None
    mem = None
    for t in range(currents.shape[0]):
        r = (u.detach() > theta).to(u.dtype)
        u = beta * u + currents[t] - r * theta
        s = spike(u - theta)
        rate = s if rate is None else rate + s
        mem = u if mem is None else mem + u
    steps = currents.shape[0]
    return rate / steps, mem / steps


def lecun_tanh(x):
    return 1.7159 * torch.tanh(0.666 * x)


class Encoder(nn.Module):
    def __init__(self, d, s, steps, beta, theta, dropout=0.2):
        super().__init__()
        self.fc1 = nn.Linear(d, 2 * s)
        self.fc2 = nn.Linear(2 * s, s)
        self.steps, self.beta, self.theta = steps, beta, theta
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        s1 = lif_const(self.fc1(x), self.steps, self.beta, self.theta)  # [T, N, 2S]
        rate, mem = lif_seq(self.fc2(self.drop(s1)), self.beta, self.theta)
        return rate, mem.detach()


class CfC(nn.Module):
    """ncps' CfCCell (mode default, one backbone layer), input half projected for all positions."""

    def __init__(self, s, h, units):
        super().__init__()
        self.backbone = nn.Linear(s + h, units)
        self.heads = nn.Linear(units, 4 * h)  # ff1, ff2, time_a, time_b in one matmul
        self.s, self.h = s, h

    def forward(self, x, spans=None):
        """x [B, L, S] → every state [B, L, H]."""
        B, L, _ = x.shape
        w_in, w_h = self.backbone.weight[:, : self.s], self.backbone.weight[:, self.s :]
        proj = F.linear(x, w_in, self.backbone.bias)  # [B, L, U], all positions at once
        h = x.new_zeros(B, self.h)
        hs = []
        for t in range(L):
            z = lecun_tanh(proj[:, t] + h @ w_h.t())
            f1, f2, ta, tb = self.heads(z).chunk(4, dim=-1)
            ts = 1.0 if spans is None else spans[:, t : t + 1]
            tau = torch.sigmoid(ta * ts + tb)
            h = torch.tanh(f1) * (1.0 - tau) + tau * torch.tanh(f2)
            hs.append(h)
        return torch.stack(hs, dim=1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, s, h = c["hidden_dim"], c["spiking_units"], c["liquid_units"]
        self.encoder = Encoder(d, s, c["num_spike_steps"], c["beta"], c["spike_threshold"])
        self.pnorm = nn.LayerNorm(s)
        self.cfc = CfC(s, h, c["backbone_units"])
        self.fuse = nn.Linear(h + s, d)
        self.fuse_norm = nn.LayerNorm(d)
        self.gate = nn.Linear(d, d)
        self.drop = nn.Dropout(0.1)

    def forward(self, x, spans=None):
        B, L, D = x.shape
        rate, mem = self.encoder(x.reshape(B * L, D))
        s = (rate + 0.1 * self.pnorm(mem)).reshape(B, L, -1)
        hs = self.cfc(s, spans)
        y = self.drop(F.gelu(self.fuse_norm(self.fuse(torch.cat([hs, s], dim=-1)))))
        return y + torch.sigmoid(self.gate(x)) * x


class Attention(nn.Module):
    def __init__(self, d, heads, steps, beta, theta, sdpa=False):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)
        self.heads, self.steps, self.beta, self.theta = heads, steps, beta, theta
        # PyTorch's own fused attention (its flash / memory-efficient CPU kernels) instead of
        # the materialised scores.
        self.sdpa = sdpa

    def forward(self, x):
        B, L, D = x.shape
        rates = lif_const_rate(self.qkv(x), self.steps, self.beta, self.theta)
        q, k, v = (
            t.reshape(B, L, self.heads, D // self.heads).transpose(1, 2)
            for t in rates.chunk(3, dim=-1)
        )
        if self.sdpa:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.o(a.transpose(1, 2).reshape(B, L, D))
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // self.heads)
        mask = torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)
        a = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        return self.o((a @ v).transpose(1, 2).reshape(B, L, D))


class Trunk(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_dim"]
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["num_layers"])])
        self.norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(c["num_layers"])])
        self.attns = nn.ModuleList([
            Attention(d, c["num_attention_heads"], c["attention_spike_steps"], c["beta"],
                      c["spike_threshold"], sdpa=c.get("sdpa", False))
            for _ in range(c["num_layers"] // 2)
        ])
        self.drop = nn.Dropout(c["dropout"])
        # torch.utils.checkpoint around each layer: keep its input, recompute it in backward
        # (the RNG state is saved and restored, so dropout replays), as lsnn's
        # recompute_activations.
        self.checkpoint = c.get("checkpoint", False)

    def layer(self, i, x, spans=None):
        x = self.drop(self.norms[i](self.blocks[i](x, spans)))
        if i % 2 == 1:
            x = x + self.attns[(i - 1) // 2](x)
        return x

    def forward(self, x, spans=None):
        for i in range(len(self.blocks)):
            if self.checkpoint and self.training:
                x = torch.utils.checkpoint.checkpoint(self.layer, i, x, spans, use_reentrant=False)
            else:
                x = self.layer(i, x, spans)
        return x


class LM(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, v = c["hidden_dim"], c["vocab_size"]
        self.tok = nn.Embedding(v, d)
        self.pos = nn.Embedding(c["sequence_length"], d)
        self.in_proj = nn.Linear(d, d)
        self.trunk = Trunk(c)
        self.fc1 = nn.Linear(d, 2 * d)
        self.norm = nn.LayerNorm(2 * d)
        self.fc2 = nn.Linear(2 * d, v)
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, ids):
        L = ids.shape[1]
        x = self.in_proj(self.drop(self.tok(ids) + self.pos(torch.arange(L, device=ids.device))))
        x = self.trunk(x)
        return self.fc2(self.drop(self.norm(F.gelu(self.fc1(x)))))

    def loss(self, window):
        logits = self(window[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))


class SeqModel(nn.Module):
    def __init__(self, c, task, outputs):
        super().__init__()
        d = c["hidden_dim"]
        self.task = task
        self.in_proj = nn.Linear(c["input_dim"], d)
        self.trunk = Trunk(c)
        self.head = nn.Sequential(
            nn.Linear(d, d), nn.Tanh(), nn.Linear(d, d // 2), nn.Tanh(), nn.Linear(d // 2, outputs)
        )

    def forward(self, x):
        h = self.trunk(self.in_proj(x))
        if self.task == "classification":
            h = h[:, -1]  # the last position (whole rows)
        return self.head(h)

    def loss(self, batch):
        x, y = batch
        out = self(x)
        if self.task == "classification":
            return F.cross_entropy(out, y)
        return F.smooth_l1_loss(out, y, beta=1.0)
