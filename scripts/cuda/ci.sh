#!/usr/bin/env bash
# CI's CUDA step (docs/cuda.md): the toolkit from PyPI (scripts/cuda/install.sh), every crate
# built with `--features cuda` with warnings denied, and the tests that need no GPU run against
# the driver stub — the device tests report "ignored, needs a CUDA device", never a pass. Its own
# target directory, so the default build's cache is untouched.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(scripts/cuda/install.sh)"
export CARGO_TARGET_DIR=target/cuda RUSTFLAGS="-D warnings"
cargo build --workspace --features cuda
cargo test --features cuda -p lsnn-memory -p lsnn-layers -p lsnn-train -p lsnn --test cuda
cargo test --features cuda -p lsnn-memory --test probe_detector
