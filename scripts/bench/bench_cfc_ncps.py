#!/usr/bin/env python3
"""ncps 1.0.1's PyTorch CfC and LTC cells over a 64-step sequence, forward + backward, timed as design
§9.1 times a step: 3 warm-up runs, then 20 timed runs, the median reported (milliseconds).

The same workloads as ``crates/lsnn-layers/benches/cfc.rs``: B = 8, L = 64, 64 inputs, H = 64 —
the dense ``CfCCell`` (backbone 128, one layer) with the constant span and with per-step spans
(ts [B, 1] per step), and ``WiredCfCCell`` over ``AutoNCP(64, 19)`` — stepped position by position
(ncps' own ``CfC`` wrapper runs the same loop), loss = sum of every output; and ``LTCCell`` (6
unfolds, ncps' defaults) over ``FullyConnected(64)`` and over the same ``AutoNCP(64, 19)``, so that
the CfC/LTC cost ratio comes from one sitting.

Run:  scripts/fixtures/.venv/bin/python scripts/bench/bench_cfc_ncps.py [--threads 1]
"""

import argparse
import statistics
import time

import torch
from ncps.torch import CfCCell, LTCCell, WiredCfCCell
from ncps.wirings import AutoNCP, FullyConnected

B, L, S, H = 8, 64, 64, 64


def run(cell, x, ts, state):
    h = torch.zeros(B, state)
    total = 0.0
    for t in range(L):
        span = ts[:, t] if ts is not None else 1.0
        out, h = cell(x[:, t], h, span)
        total = total + out.sum()
    total.backward()


def median_ms(fn, warmup=3, reps=20):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        s = time.perf_counter()
        fn()
        times.append((time.perf_counter() - s) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(B, L, S)
    ts = 0.5 + torch.rand(B, L, 1)
    dense = CfCCell(S, H, backbone_units=128, backbone_layers=1)
    wired = WiredCfCCell(S, AutoNCP(64, 19))
    ltc_dense = LTCCell(FullyConnected(64), in_features=S)
    ltc_wired = LTCCell(AutoNCP(64, 19), in_features=S)
    rows = [
        ("dense CfCCell, constant span", lambda: run(dense, x, None, H)),
        ("dense CfCCell, per-step spans", lambda: run(dense, x, ts, H)),
        ("WiredCfCCell AutoNCP(64, 19)", lambda: run(wired, x, None, 64)),
        ("LTCCell FullyConnected(64)", lambda: run(ltc_dense, x, None, 64)),
        ("LTCCell AutoNCP(64, 19)", lambda: run(ltc_wired, x, None, 64)),
    ]
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    for name, fn in rows:
        print(f"{name}: {median_ms(fn):.2f} ms")


if __name__ == "__main__":
    main()
