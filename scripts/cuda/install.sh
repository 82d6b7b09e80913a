#!/usr/bin/env bash
# A CUDA 13.0 toolkit from PyPI wheels, enough to build lsnn with `--features cuda` on a machine
# without a GPU or a system toolkit (docs/cuda.md). Idempotent: a second run finds it and only
# prints the environment.
#
#   eval "$(scripts/cuda/install.sh)"        # installs if needed, then exports the environment
#   scripts/cuda/install.sh --print-dir      # the toolkit folder, once installed
#
# What it does, and why:
# - pip-installs the pinned CUDA 13.0 wheels (nvcc with its nvvm and crt, cccl, the runtime,
#   nvrtc, cuBLAS, cuRAND) into a venv of their own (default ~/.cache/lsnn-cuda, or
#   $LSNN_CUDA_DIR); they unpack into one toolkit-shaped folder, site-packages/nvidia/cu13/.
#   Pinned to 13.0: cudarc 0.19 (candle 0.11's CUDA binding) refuses 13.5, and a driver for 13.0
#   may refuse code built by a newer toolkit. The CUDA 12 wheels ship no nvcc.
# - gives every versioned library its plain name (libcublas.so -> libcublas.so.13), which the
#   linker looks for;
# - builds a link stub libcuda.so (soname libcuda.so.1) from the function names the wheel's
#   cuda.h declares, each returning CUDA_ERROR_STUB_LIBRARY (34): the wheels ship no driver
#   library, and on a machine without a GPU `Device::new_cuda` then fails cleanly with that
#   error. On a GPU machine the driver's own libcuda.so.1 comes first on the loader's path.
# - prints the environment a build needs: nvcc on PATH, CUDA_ROOT, CUDA_COMPUTE_CAP=90
#   (Hopper; candle-kernels builds sm_90a), CUDAFORGE_THREADS (else its kernels compile one at
#   a time), and the library paths.
set -euo pipefail

DIR=${LSNN_CUDA_DIR:-$HOME/.cache/lsnn-cuda}
PY=${PYTHON:-python3}
PINS=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-runtime==13.0.88
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cublas==13.0.2.14
    nvidia-curand==10.4.0.35
)
# The stamp names the pins and this script, so a change to either reinstalls.
STAMP="$DIR/installed-$( (printf '%s\n' "${PINS[@]}"; cat "$0") | sha256sum | cut -c1-16)"

say() { echo "cuda/install.sh: $*" >&2; }

root_dir() {
    "$DIR/venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))'
}

if [ ! -e "$STAMP" ]; then
    say "installing the CUDA 13.0 wheels into $DIR (a few hundred MB)"
    mkdir -p "$DIR"
    [ -x "$DIR/venv/bin/python" ] || "$PY" -m venv "$DIR/venv"
    "$DIR/venv/bin/pip" install -q --no-deps "${PINS[@]}" >&2
    ROOT=$(root_dir)
    [ -x "$ROOT/bin/nvcc" ] || { say "no nvcc in $ROOT/bin"; exit 1; }
    # Plain names for the versioned libraries.
    for lib in "$ROOT"/lib/lib*.so.*; do
        plain="${lib%%.so.*}.so"
        [ -e "$plain" ] || ln -s "$(basename "$lib")" "$plain"
    done
    # The driver stub: every cu* function cuda.h declares (after its _v2 renames).
    mkdir -p "$ROOT/lib/stubs"
    # The two error-string functions answer, so that the error a caller prints says what
    # happened; every other function returns CUDA_ERROR_STUB_LIBRARY.
    {
        echo 'int cuGetErrorName(int e, const char **s) { (void)e; *s = "CUDA_ERROR_STUB_LIBRARY"; return 0; }'
        echo 'int cuGetErrorString(int e, const char **s) { (void)e; *s = "the CUDA driver is a link stub: this machine has no NVIDIA driver"; return 0; }'
        gcc -E -P -I"$ROOT/include" "$ROOT/include/cuda.h" 2>/dev/null |
            grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | sed -E 's/[[:space:]]*\($//' | sort -u |
            grep -vE '^cuGetError(Name|String)$' |
            awk '{ printf "int %s(void) { return 34; }\n", $1 }'
    } > "$ROOT/lib/stubs/cuda_stub.c"
    n=$(wc -l < "$ROOT/lib/stubs/cuda_stub.c")
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$ROOT/lib/stubs/libcuda.so.1" "$ROOT/lib/stubs/cuda_stub.c"
    ln -sf libcuda.so.1 "$ROOT/lib/stubs/libcuda.so"
    say "driver stub: $n functions, each returning CUDA_ERROR_STUB_LIBRARY"
    touch "$STAMP"
fi
ROOT=$(root_dir)
if [ "${1:-}" = "--print-dir" ]; then
    echo "$ROOT"
    exit 0
fi
cat <<ENV
export CUDA_ROOT="$ROOT"
export CUDA_PATH="$ROOT"
export PATH="$ROOT/bin:\$PATH"
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
export CUDAFORGE_THREADS=\${CUDAFORGE_THREADS:-$(nproc)}
export LIBRARY_PATH="$ROOT/lib:$ROOT/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$ROOT/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}:$ROOT/lib/stubs"
ENV
