"""The long-sequence tables and plot of docs/performance.md from one sitting's JSON lines.

Reads what scripts/bench/long_sequences.sh (lsnn) and long_sequences_torch.sh (PyTorch) print,
saved as docs/bench/long_sequences/lsnn.jsonl and torch.jsonl, and writes:
  - the two markdown tables, with FLOP per token and the fraction of the matmul bound, on stdout;
  - docs/long_sequences.svg: peak RSS against L, every mode of both, log-log.

FLOP per token follows design §9.2 for lm-small's widths (D = 128, one attention layer): the
multiply-adds of one forward pass, attention over all L keys as PyTorch's masked matmul computes
them, training = three forward passes, 2 FLOP per multiply-add. The bound is design §9.2's
~100 GFLOP/s of the 2-core machine. Standard library only.

usage: python3 scripts/bench/long_sequences_report.py [DIR] [--svg PATH]
"""

import argparse
import json
import math
import os

D = 128
ATTENTIONS = 1
# Design §9.2: lm-small's 442,368 multiply-adds per token at L = 64, less its attention's.
NON_ATTENTION_MACS = 442_368 - ATTENTIONS * (4 * D * D + 2 * 64 * D)
BOUND_FLOPS = 100e9

LSNN_MODES = [
    ("auto", "auto"),
    ("attention_kernel=materialized", "materialized"),
    ("recompute_activations=true", "recompute"),
    ("tbptt=128", "tbptt 128"),
    ("recompute_activations=true,shard_rows=1", "recompute, shard_rows 1"),
    ("tbptt=128,shard_rows=1", "tbptt 128, shard_rows 1"),
]


def torch_mode(r):
    if r.get("checkpoint"):
        return "sdpa + checkpoint"
    return "sdpa" if r.get("sdpa") else "materialised"


TORCH_MODES = ["materialised", "sdpa", "sdpa + checkpoint"]


def macs_per_token(L):
    return NON_ATTENTION_MACS + ATTENTIONS * (4 * D * D + 2 * L * D)


def train_flop_per_token(L):
    return 3 * 2 * macs_per_token(L)


def attention_share(L):
    return ATTENTIONS * (4 * D * D + 2 * L * D) / macs_per_token(L)


def bound_fraction(L, tokens_per_s):
    return tokens_per_s * train_flop_per_token(L) / BOUND_FLOPS


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt_int(v):
    return f"{v:,.0f}"


def mib(v):
    """MiB with one decimal, two below 1 MiB (0.25 is not 0.2)."""
    return f"{v:,.2f}" if v < 1 else f"{v:,.1f}"


def lsnn_table(rows):
    out = [
        "| L | mode | train tokens/s | train MFLOP/token (attention share) | of the matmul bound "
        "| infer tokens/s | peak live MiB | largest alloc MiB | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = dict(LSNN_MODES)
    for r in sorted(rows, key=lambda r: (r["L"], [m for m, _ in LSNN_MODES].index(r["mode"]))):
        L = r["L"]
        out.append(
            f"| {L} | {names[r['mode']]} | {fmt_int(r['train_tps'])} "
            f"| {train_flop_per_token(L) / 1e6:.2f} ({attention_share(L):.0%}) "
            f"| {bound_fraction(L, r['train_tps']):.0%} | {fmt_int(r['infer_tps'])} "
            f"| {r['peak_live_mib']:,.1f} | {mib(r['largest_mib'])} | {r['peak_rss_mib']:,.1f} |"
        )
    return "\n".join(out)


def torch_table(rows):
    out = [
        "| L | PyTorch mode | train tokens/s | of the matmul bound | infer tokens/s | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["seq_len"], TORCH_MODES.index(torch_mode(r)))):
        L = r["seq_len"]
        tps = r["train_tokens_per_s"]
        out.append(
            f"| {L} | {torch_mode(r)} | {fmt_int(tps)} | {bound_fraction(L, tps):.0%} "
            f"| {fmt_int(r['infer_tokens_per_s'])} | {r['peak_rss_mib']:,.1f} |"
        )
    return "\n".join(out)


def series(lsnn, torch):
    """(label, colour, dashed, [(L, peak RSS MiB)]) for each mode of both."""
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#17becf", "#8c564b"]
    out = []
    for (mode, name), colour in zip(LSNN_MODES, colours):
        pts = sorted((r["L"], r["peak_rss_mib"]) for r in lsnn if r["mode"] == mode)
        if pts:
            out.append((f"lsnn {name}", colour, False, pts))
    for mode, colour in zip(TORCH_MODES, ["#ff7f0e", "#7f7f7f", "#bcbd22"]):
        pts = sorted((r["seq_len"], r["peak_rss_mib"]) for r in torch if torch_mode(r) == mode)
        if pts:
            out.append((f"PyTorch {mode}", colour, True, pts))
    return out


def svg(lines):
    W, H = 760, 470
    left, right, top, bottom = 70, 250, 40, 60
    xs = sorted({x for *_, pts in lines for x, _ in pts})
    ys = [y for *_, pts in lines for _, y in pts]
    x0, x1 = math.log2(xs[0]), math.log2(xs[-1])
    y0 = math.floor(math.log10(min(ys)))
    y1 = math.ceil(math.log10(max(ys)))

    def px(x):
        return left + (math.log2(x) - x0) / (x1 - x0) * (W - left - right)

    def py(y):
        return H - bottom - (math.log10(y) - y0) / (y1 - y0) * (H - top - bottom)

    e = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14" font-weight="bold">Training peak RSS against sequence '
        f"length (lm-small widths, batch 4)</text>",
    ]
    for k in range(y0, y1 + 1):
        for m in (1, 2, 5):
            v = m * 10**k
            if v < 10**y0 or v > 10**y1:
                continue
            y = py(v)
            e.append(f'<line x1="{left}" y1="{y:.1f}" x2="{W - right}" y2="{y:.1f}" '
                     f'stroke="{"#ccc" if m == 1 else "#eee"}"/>')
            e.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:,}</text>')
    for x in xs:
        e.append(f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{H - bottom}" stroke="#eee"/>')
        e.append(f'<text x="{px(x):.1f}" y="{H - bottom + 18}" text-anchor="middle">{x}</text>')
    e.append(f'<rect x="{left}" y="{top}" width="{W - left - right}" height="{H - top - bottom}" '
             f'fill="none" stroke="#333"/>')
    e.append(f'<text x="{(left + W - right) / 2:.0f}" y="{H - 18}" text-anchor="middle">'
             f"sequence length L (log scale)</text>")
    e.append(f'<text transform="translate(18 {(top + H - bottom) / 2:.0f}) rotate(-90)" '
             f'text-anchor="middle">peak RSS, MiB (log scale)</text>')
    for i, (label, colour, dashed, pts) in enumerate(lines):
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        e.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for x, y in pts:
            e.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}">'
                     f"<title>{label}, L = {x}: {y:,.1f} MiB</title></circle>")
        ly = top + 10 + i * 20
        lx = W - right + 15
        e.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 28}" y2="{ly}" stroke="{colour}" '
                 f'stroke-width="2"{dash}/>')
        e.append(f'<text x="{lx + 34}" y="{ly + 4}">{label}</text>')
    e.append("</svg>")
    return "\n".join(e) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", default=os.path.join(root, "docs", "bench", "long_sequences"))
    ap.add_argument("--svg", default=os.path.join(root, "docs", "long_sequences.svg"))
    a = ap.parse_args()
    lsnn = read_jsonl(os.path.join(a.dir, "lsnn.jsonl"))
    torch = read_jsonl(os.path.join(a.dir, "torch.jsonl"))
    print(lsnn_table(lsnn))
    print()
    print(torch_table(torch))
    with open(a.svg, "w") as f:
        f.write(svg(series(lsnn, torch)))


if __name__ == "__main__":
    main()
