#!/bin/bash
# The PyTorch side of docs/performance.md "Long sequences": the same network (lm-long-1k: lm-small
# widths, batch 4) at L = 64 … 4096, eager, 2 threads, with its own tools — the materialised
# scores, scaled_dot_product_attention, and sdpa with torch.utils.checkpoint per layer — one
# process per point, 3 timed steps each; one JSON line per point on stdout. PY names the
# interpreter of the pinned venv (scripts/bench/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-scripts/bench/.venv/bin/python}
for L in 64 256 1024 4096; do
  for mode in "" "--sdpa" "--sdpa --checkpoint"; do
    # shellcheck disable=SC2086
    "$PY" scripts/bench/bench_torch.py --workload lm-long-1k --seq-len "$L" --steps 3 $mode
  done
done
