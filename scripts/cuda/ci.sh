#!/usr/bin/env bash
# CI's CUDA step (docs/cuda.md): the toolkit from PyPI (scripts/cuda/install.sh), every crate
# built with `--features cuda`, and the tests that need no GPU run against the driver stub — the
# device tests report "ignored, needs a CUDA device", never a pass.
#
# It shares the default target directory: only what the feature changes (candle with cuda,
# cudarc, candle-kernels, lsnn's crates) is built again, every other dependency is reused from the
# default build — a separate directory, or RUSTFLAGS="-D warnings" (which changes every crate's
# fingerprint), rebuilt all of them (about 4 minutes on 2 cores). Warnings in lsnn's own crates
# fail the step instead by reading cargo's output, which replays the warnings of cached crates too.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(scripts/cuda/install.sh)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo build --color never --workspace --features cuda 2>&1 | tee "$log"
cargo test --color never --features cuda -p lsnn-memory -p lsnn-layers -p lsnn-train -p lsnn \
    --test cuda --test probe_detector 2>&1 | tee -a "$log"
if grep -E '^warning: `(lsnn[a-z-]*|xtask)` \(' "$log"; then
    echo "the cuda build has warnings in lsnn's crates (above); CI denies them" >&2
    exit 1
fi
