#!/bin/bash
# Peak memory and speed against L for each long-sequence mode (lsnn side; docs/performance.md,
# "Long sequences"): lm-long-1k's network (lm-small widths, batch 4) at L = 64 … 4096, one
# process per point, 3 timed steps each; one JSON line per point on stdout (saved as
# docs/bench/long_sequences/lsnn.jsonl, scripts/bench/long_sequences_report.py makes the tables
# and the plot). A mode is comma-separated --set assignments. About 9 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p lsnn
B=target/release/lsnn
for L in 64 256 1024 4096; do
  for mode in "auto" "attention_kernel=materialized" "recompute_activations=true" "tbptt=128" \
      "recompute_activations=true,shard_rows=1" "tbptt=128,shard_rows=1"; do
    steps=3
    sets="--set sequence_length=$L --set max_position_embeddings=$L"
    if [ "$mode" != "auto" ]; then
      for s in ${mode//,/ }; do sets="$sets --set $s"; done
    fi
    $B bench --workload lm-long-1k --steps $steps --json $sets 2>/dev/null | tail -1 | python3 -c "
import json,sys; d=json.load(sys.stdin); print(json.dumps({'L':$L,'mode':'$mode','train_tps':round(d['train_tokens_per_s']),'infer_tps':round(d['infer_tokens_per_s']),'peak_rss_mib':round(d['peak_rss_mib'],1),'peak_live_mib':round(d['peak_live_bytes']/1048576,1),'largest_mib':round(d['largest_alloc_bytes']/1048576,2),'train_ms':round(d['train_median_ms'],1)}))"
  done
done
