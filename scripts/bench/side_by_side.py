#!/usr/bin/env python3
"""`lsnn bench` and the PyTorch harness (bench_torch.py) side by side, in one sitting: first the
reproduction of design §9.1's lm-small reference figures (which must come within ±10%, or the
sitting's ratios are not quoted), then for each workload lsnn, eager PyTorch and torch.compile,
each in its own process, and a Markdown table of tokens/s, peak RSS and the ratios.

    cargo build --release -p lsnn
    scripts/fixtures/.venv/bin/python scripts/bench/side_by_side.py [--workloads ts-small,cls-small] [--steps 20]
    scripts/fixtures/.venv/bin/python scripts/bench/side_by_side.py --workloads lm-small,lm-medium --precision bf16

`--precision bf16` runs `lsnn bench --precision bf16` (bf16 matmul operands, f32 sums) against
PyTorch under `torch.autocast("cpu", dtype=torch.bfloat16)`; the reproduction stays f32.

Writes the raw JSON lines to --out (default: bench-side-by-side.jsonl) beside the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def lsnn(workload, steps, precision="f32"):
    exe = os.path.join(REPO, "target", "release", "lsnn")
    out = subprocess.run([exe, "bench", "--workload", workload, "--steps", str(steps), "--json",
                          "--precision", precision],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    r["mode"] = "lsnn"
    return r


def torch(workload, mode, steps, extra=()):
    cmd = [sys.executable, os.path.join(HERE, "bench_torch.py"), "--workload", workload,
           "--mode", mode, "--steps", str(steps), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"workload": workload, "mode": mode, "error": out.stderr[-1500:]}
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="lm-small,lm-medium,ts-small,cls-small")
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default="bench-side-by-side.jsonl")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                    help="bf16: lsnn's bf16 matmuls against PyTorch's CPU autocast to bfloat16")
    args = ap.parse_args()
    sys.path.insert(0, HERE)
    from bench_torch import REFERENCE_LM_SMALL

    rows = []
    with open(args.out, "w") as log:
        def keep(r):
            log.write(json.dumps(r) + "\n")
            log.flush()
            print(json.dumps(r), file=sys.stderr, flush=True)
            return r

        rep = keep(torch("lm-small", "eager", args.steps, ["--infer-autograd"]))
        dev = {k: rep.get(k, float("nan")) / ref - 1.0 for k, ref in REFERENCE_LM_SMALL.items()}
        reproduced = all(abs(v) <= 0.10 for v in dev.values())
        print("design §9.1 lm-small reproduction (eager, inference with autograd on): "
              + ", ".join(f"{k} {rep.get(k, float('nan')):.0f} ({v:+.1%})" for k, v in dev.items())
              + (" — within ±10%" if reproduced else " — NOT within ±10%: ratios below are not quotable"))
        for w in args.workloads.split(","):
            res = {"lsnn": keep(lsnn(w, args.steps, args.precision))}
            extra = ["--autocast", "bf16"] if args.precision == "bf16" else []
            for m in args.modes.split(","):
                res[m] = keep(torch(w, m, args.steps, extra))
            rows.append((w, res))
    print()
    print("| workload | lsnn train | eager | compile | lsnn infer | eager | compile | train ×eager | train ×compile | infer ×eager | infer ×compile | peak RSS lsnn / eager / compile (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for w, r in rows:
        def g(m, k):
            return r.get(m, {}).get(k, float("nan"))
        lt, li = g("lsnn", "train_tokens_per_s"), g("lsnn", "infer_tokens_per_s")
        cells = [w, f"{lt:,.0f}", f"{g('eager', 'train_tokens_per_s'):,.0f}",
                 f"{g('compile', 'train_tokens_per_s'):,.0f}", f"{li:,.0f}",
                 f"{g('eager', 'infer_tokens_per_s'):,.0f}", f"{g('compile', 'infer_tokens_per_s'):,.0f}",
                 f"{lt / g('eager', 'train_tokens_per_s'):.2f}", f"{lt / g('compile', 'train_tokens_per_s'):.2f}",
                 f"{li / g('eager', 'infer_tokens_per_s'):.2f}", f"{li / g('compile', 'infer_tokens_per_s'):.2f}",
                 f"{g('lsnn', 'peak_rss_mib'):.0f} / {g('eager', 'peak_rss_mib'):.0f} / {g('compile', 'peak_rss_mib'):.0f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
