#!/usr/bin/env bash
# One command that checks lsnn on a CUDA GPU (docs/cuda.md), writing one report file.
#
#   scripts/device-check.sh --build        # here, with the toolkit of scripts/cuda/install.sh:
#                                          # builds the binaries into target/device-check/bin
#                                          # and packs them as bin.tar.xz (~35 MB, the one
#                                          # file to carry; they are ~265 MB unpacked, most
#                                          # of it candle's embedded PTX)
#   scripts/device-check.sh [--out FILE]   # on the GPU machine (NVIDIA driver, no toolkit):
#                                          # runs them, writes the report (default
#                                          # target/device-check/report.md)
#   scripts/device-check.sh --dry-run      # lists what the run would do, runs nothing
#
# The run: (1) what the machine has (nvidia-smi, the driver library, the CUDA libraries the
# binaries need); (2) the CUDA test suites with their device tests included (`--include-ignored`:
# every layer's composed path on CUDA against the CPU, device selection, the CUDA probe and the
# manager's cleanup); (3) the leak suite on the device, measured by the driver's used memory,
# every control caught (`lsnn-leakcheck all --device cuda`); (4) `lsnn bench --device cuda` on
# every workload. Binaries are carried, not built there: a GPU machine without a toolkit cannot
# build candle's kernels. The CUDA libraries (cuBLAS, cuRAND, NVRTC) must be on that machine:
# LSNN_CUDA_LIBS=DIR[:DIR…] names them, else common places are searched.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=target/device-check/bin
OUT=target/device-check/report.md
MODE=run
while [ $# -gt 0 ]; do
    case "$1" in
        --build) MODE=build ;;
        --dry-run) MODE=dry ;;
        --out) OUT=$2; shift ;;
        --bin-dir) BIN=$2; shift ;;
        *) echo "usage: $0 [--build | --dry-run] [--out FILE] [--bin-dir DIR]" >&2; exit 2 ;;
    esac
    shift
done

TESTS=(lsnn-layers:cuda lsnn-memory:cuda lsnn-train:cuda lsnn:cuda)
WORKLOADS=(lm-small ts-small cls-small lm-medium)

if [ "$MODE" = build ]; then
    eval "$(scripts/cuda/install.sh)"
    export CARGO_TARGET_DIR=target/cuda
    mkdir -p "$BIN"
    cargo build --release --features cuda -p lsnn --bin lsnn &&
        cargo build --release --features cuda -p lsnn-bench --bin lsnn-leakcheck || exit 1
    cp target/cuda/release/lsnn target/cuda/release/lsnn-leakcheck "$BIN/"
    for t in "${TESTS[@]}"; do
        pkg=${t%%:*}; name=${t##*:}
        exe=$(cargo test --release --features cuda -p "$pkg" --test "$name" --no-run \
            --message-format=json 2>/dev/null |
            python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])' | tail -1)
        [ -n "$exe" ] || { echo "no test executable for $t" >&2; exit 1; }
        cp "$exe" "$BIN/test-$pkg-$name"
    done
    strip "$BIN"/* 2>/dev/null
    du -sh "$BIN"
    tar -C "$(dirname "$BIN")" -cf - "$(basename "$BIN")" | xz -T0 -6 > "$BIN.tar.xz"
    ls -la "$BIN.tar.xz"
    echo "carry $BIN.tar.xz to the GPU machine and run scripts/device-check.sh there"
    exit 0
fi

run() {  # run TITLE COMMAND...: into the report, with its exit code
    local title=$1; shift
    if [ "$MODE" = dry ]; then
        printf '%s\n    %s\n' "$title" "$*"
        return 0
    fi
    {
        printf '\n## %s\n\n```\n$ %s\n' "$title" "$*"
        timeout 540 "$@" 2>&1 | tail -n 80
        printf 'exit %s\n```\n' "${PIPESTATUS[0]}"
    } >> "$OUT"
}

if [ "$MODE" = run ]; then
    if [ ! -d "$BIN" ] && [ -f "$BIN.tar.xz" ]; then
        tar -C "$(dirname "$BIN")" -xJf "$BIN.tar.xz"
    fi
    [ -x "$BIN/lsnn" ] || { echo "no binaries in $BIN: run scripts/device-check.sh --build first" >&2; exit 2; }
    mkdir -p "$(dirname "$OUT")"
    {
        echo "# lsnn device check"
        echo
        echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname); binaries from $BIN"
    } > "$OUT"
    # The CUDA libraries the binaries link: from LSNN_CUDA_LIBS, else where they usually are.
    libs=${LSNN_CUDA_LIBS:-}
    for d in /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 /usr/lib/x86_64-linux-gnu \
        $(python3 -c 'import nvidia, os; [print(os.path.join(p, q, "lib")) for p in nvidia.__path__ for q in os.listdir(p)]' 2>/dev/null); do
        [ -d "$d" ] && libs="$libs:$d"
    done
    export LD_LIBRARY_PATH="${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # The command-line tests run the carried binary, not the path that built them.
    LSNN_BIN=$(realpath "$BIN/lsnn")
    export LSNN_BIN
fi
run "the machine" bash -c "nvidia-smi || echo 'no nvidia-smi'; for l in libcuda.so.1 libcublas.so libcublasLt.so libcurand.so libnvrtc.so; do printf '%s: ' \$l; ldconfig -p | grep -m1 \$l || (IFS=:; for d in \$LD_LIBRARY_PATH; do [ -e \$d/\$l ] && { echo \$d/\$l; exit; }; done; echo missing); done"
for t in "${TESTS[@]}"; do
    pkg=${t%%:*}; name=${t##*:}
    run "tests: $pkg/$name, device tests included" "$BIN/test-$pkg-$name" --include-ignored --test-threads 1
done
run "leak suite on the device (the CUDA driver's used memory)" "$BIN/lsnn-leakcheck" all --device cuda --out target/device-check/leakcheck.json
for w in "${WORKLOADS[@]}"; do
    run "lsnn bench $w on CUDA" "$BIN/lsnn" bench --workload "$w" --device cuda --steps 20 --json
done
if [ "$MODE" = run ]; then
    echo "report: $OUT"
fi
