#!/usr/bin/env python3
"""norse's adaptive LIF stepped per step on the work of lsnn's `neurons` bench (`alif/*`), for the
side-by-side table in docs/layers.md: T = 8 steps of [512, 128] float32 currents (N = 65,536,
normal(0.3, 1), seed 21), ``z, s = cell(x_t, s)`` with ``norse.torch.LSNNCell`` at the discrete
parameters of the bench's ``AlifConfig::new(0.9, 0.8).with_adaptation(0.9, 0.2)`` (dt 1e-3:
tau_syn_inv 100, tau_mem_inv 200, tau_adapt_inv 100, beta 0.2, v_th 1; SuperSpike), forward +
backward of the spikes' sum; 3 warm-ups, then the median of 20 (design §9.1's protocol).

    scripts/fixtures/.venv-norse/bin/python scripts/bench/bench_norse_alif.py --threads 1

Pinned versions: scripts/fixtures/requirements-norse.txt.
"""

from __future__ import annotations

import argparse
import statistics
import time

import norse
import torch
from norse.torch import LSNNCell, LSNNParameters

T, SHAPE = 8, (512, 128)


def alif(cur):
    p = LSNNParameters(
        tau_syn_inv=torch.tensor(100.0), tau_mem_inv=torch.tensor(200.0),
        tau_adapt_inv=torch.tensor(100.0), v_th=torch.tensor(1.0), beta=torch.tensor(0.2),
        method="super",
    )
    cell = LSNNCell(p=p, dt=1e-3)
    state = None
    out = []
    for t in range(cur.shape[0]):
        z, state = cell(cur[t], state)
        out.append(z)
    return torch.stack(out)


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
    print(f"torch {torch.__version__}, norse {norse.__version__}, {args.threads} thread(s)")
    print(f"norse alif (LSNNCell): median {measure(alif, cur):.2f} ms "
          f"(T = {T}, N = {SHAPE[0] * SHAPE[1]}, fwd+bwd)")


if __name__ == "__main__":
    main()
