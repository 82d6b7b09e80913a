#!/usr/bin/env python3
"""snnTorch's per-step neurons on the work of lsnn's `neurons` bench, for the side-by-side table in
docs/layers.md: T = 8 steps of [512, 128] float32 currents (N = 65,536, normal(0.3, 1), seed 21),
spikes stepped as snnTorch users step them (``spk, mem = lif(cur[t], mem)``), forward + backward of
the spikes' sum; 3 warm-ups, then the median of 20 (design §9.1's protocol). Then the
all-to-all ``RLeaky`` (``nn.Linear(256, 256)``, weight and bias trained) on T = 8 steps of
[256, 256] currents, as lsnn's ``rleaky_a2a`` bench, with currents normal(0.3, 1) and the weak
input normal(-0.3, 1).

    scripts/fixtures/.venv/bin/python scripts/bench/bench_snntorch_neurons.py --threads 1

Pinned versions: scripts/bench/requirements.txt.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import snntorch as snn
from snntorch import surrogate

T, SHAPE = 8, (512, 128)


def leaky(cur):
    lif = snn.Leaky(beta=0.95, threshold=1.0, spike_grad=surrogate.fast_sigmoid(slope=25))
    mem = torch.zeros_like(cur[0])
    out = []
    for t in range(cur.shape[0]):
        spk, mem = lif(cur[t], mem)
        out.append(spk)
    return torch.stack(out)


def synaptic(cur):
    lif = snn.Synaptic(alpha=0.9, beta=0.95, threshold=1.0,
                       spike_grad=surrogate.fast_sigmoid(slope=25))
    syn = torch.zeros_like(cur[0])
    mem = torch.zeros_like(cur[0])
    out = []
    for t in range(cur.shape[0]):
        spk, syn, mem = lif(cur[t], syn, mem)
        out.append(spk)
    return torch.stack(out)


def alpha(cur):
    lif = snn.Alpha(alpha=0.95, beta=0.9, threshold=1.0,
                    spike_grad=surrogate.fast_sigmoid(slope=25))
    syn_exc = torch.zeros_like(cur[0])
    syn_inh = torch.zeros_like(cur[0])
    mem = torch.zeros_like(cur[0])
    out = []
    for t in range(cur.shape[0]):
        spk, syn_exc, syn_inh, mem = lif(cur[t], syn_exc, syn_inh, mem)
        out.append(spk)
    return torch.stack(out)


def rleaky_o2o(cur):
    lif = snn.RLeaky(beta=0.95, V=torch.full((SHAPE[1],), 0.2), all_to_all=False, threshold=1.0,
                     spike_grad=surrogate.fast_sigmoid(slope=25))
    spk = torch.zeros_like(cur[0])
    mem = torch.zeros_like(cur[0])
    out = []
    for t in range(cur.shape[0]):
        spk, mem = lif(cur[t], spk, mem)
        out.append(spk)
    return torch.stack(out)


def rleaky_a2a_of(lif):
    def run(cur):
        spk = torch.zeros_like(cur[0])
        mem = torch.zeros_like(cur[0])
        out = []
        for t in range(cur.shape[0]):
            spk, mem = lif(cur[t], spk, mem)
            out.append(spk)
        return torch.stack(out)
    return run


def measure(fn, cur, warmup=3, reps=20):
    times = []
    for i in range(warmup + reps):
        cur.grad = None
        t0 = time.perf_counter()
        fn(cur).sum().backward()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return statistics.median(times) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(21)
    cur = (torch.randn(T, *SHAPE) + 0.3).requires_grad_(True)
    print(f"torch {torch.__version__}, snntorch {snn.__version__}, {args.threads} thread(s)")
    for name, fn in (("leaky", leaky), ("synaptic", synaptic), ("alpha", alpha),
                     ("rleaky one-to-one", rleaky_o2o)):
        print(f"snntorch {name}: median {measure(fn, cur):.2f} ms (T = {T}, N = {SHAPE[0] * SHAPE[1]}, fwd+bwd)")
    torch.manual_seed(22)
    cur = (torch.randn(T, 256, 256) + 0.3).requires_grad_(True)
    lif = snn.RLeaky(beta=0.95, all_to_all=True, linear_features=256, threshold=1.0,
                     spike_grad=surrogate.fast_sigmoid(slope=25))
    print(f"snntorch rleaky all-to-all: median {measure(rleaky_a2a_of(lif), cur):.2f} ms "
          f"(T = {T}, B = 256, F = 256, fwd+bwd)")
    torch.manual_seed(23)
    weak = (torch.randn(T, 256, 256) - 0.3).requires_grad_(True)
    print(f"snntorch rleaky all-to-all, weak input normal(-0.3, 1): median "
          f"{measure(rleaky_a2a_of(lif), weak):.2f} ms")


if __name__ == "__main__":
    main()
