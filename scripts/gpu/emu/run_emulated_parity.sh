#!/usr/bin/env bash
# scripts/gpu/emu/run_emulated_parity.sh [BUILD_DIR]
#
# Runs the CUDA backend's tests WITHOUT a GPU: the sources of cuda/*.cu are
# rewritten (transform.py: kernel launches become host calls) and compiled
# with g++ against a host emulation of the CUDA runtime and cuBLAS
# (cuda_runtime.h, cublas_v2.h, emu_rt.cpp: column-major reference SGEMM
# with cuBLAS's argument checks), into an emulated libcsnn-cuda.so; then
# tests/cuda/test_cuda_parity and test_cuda_module of BUILD_DIR (a build
# configured with -Dcuda=enabled; default build-cuda) run against it, under
# AddressSanitizer + UBSan (ASAN=0 to skip).
#
# What this checks: every kernel's index math and bounds, the row-major to
# column-major cuBLAS operand mapping (gemm, conv's strided-batched calls),
# conv chunking, argument validation, error paths, against the test's host
# reference and the CPU backend. What it cannot check: real GPU execution
# (concurrency between blocks, the memory model, launch limits, cuBLAS
# itself, performance) - that needs scripts/gpu/run_gpu_checks.sh on a GPU.
#
# Takes a few minutes (block reductions run on real host threads).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=${1:-$ROOT/build-cuda}
BUILD=$(cd "$BUILD" && pwd)
HERE=$ROOT/scripts/gpu/emu
W=$BUILD/cuda-emu
for t in test_cuda_parity test_cuda_module; do
    [ -x "$BUILD/tests/cuda/$t" ] || { echo "missing $BUILD/tests/cuda/$t: build with -Dcuda=enabled first" >&2; exit 1; }
done
rm -rf "$W"
mkdir -p "$W/src"
for f in "$ROOT"/cuda/*.cu; do
    python3 "$HERE/transform.py" "$f" "$W/src/$(basename "$f" .cu).cpp" > /dev/null
done
cp "$ROOT"/cuda/*.cuh "$W/src/"
cp "$HERE/emu_rt.cpp" "$W/src/"
san=()
# shellcheck disable=SC2054 # commas belong to the flag
if [ "${ASAN:-1}" = 1 ]; then san=(-fsanitize=address,undefined -fno-omit-frame-pointer); fi
echo "building the emulated module ($W/libcsnn-cuda-emu.so)"
g++ -std=c++20 -O1 -g -fPIC -shared -ffp-contract=off -fvisibility=hidden "${san[@]}" \
    -I"$HERE" -I"$W/src" -I"$ROOT/include" -I"$ROOT/include/csnn" \
    -Wall -Wextra -Wno-unused-parameter \
    -o "$W/libcsnn-cuda-emu.so" "$W"/src/*.cpp \
    -Wl,--version-script="$ROOT/cuda/libcsnn-cuda.map" -lpthread
pre=()
if [ "${ASAN:-1}" = 1 ]; then
    pre=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
         ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
fi
status=0
for t in test_cuda_module test_cuda_parity; do
    echo "== $t (emulated GPU)"
    if ! "${pre[@]}" CSNN_CUDA_MODULE="$W/libcsnn-cuda-emu.so" "$BUILD/tests/cuda/$t"; then
        status=1
    fi
done
exit $status
