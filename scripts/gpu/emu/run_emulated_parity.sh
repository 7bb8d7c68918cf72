#!/usr/bin/env bash
# scripts/gpu/emu/run_emulated_parity.sh [BUILD_DIR]
#
# Runs the CUDA backend's tests WITHOUT a GPU: the sources of cuda/*.cu are
# rewritten (transform.py: kernel launches, template kernels included, become
# host calls) and compiled with g++ against a host emulation of the CUDA
# runtime and cuBLAS (cuda_runtime.h, cublas_v2.h, emu_rt.cpp: column-major
# reference SGEMM with cuBLAS's argument checks), into an emulated
# libcsnn-cuda.so; then tests/cuda/test_cuda_module, test_cuda_parity and
# test_cuda_model of BUILD_DIR (a build configured with -Dcuda=enabled;
# default build-cuda) run against it, under AddressSanitizer + UBSan.
#
# Environment:
#   ASAN=0                 build and run without the sanitizers
#   TESTS="..."            which test programs (default: all three above)
#   CUDA_SRC=DIR           the module's sources (default <repo>/cuda): point it
#                          at a copy with a planted bug to see a test catch it
#   EMU_DIR=DIR            where the emulated module is built (default
#                          BUILD_DIR/cuda-emu)
#   CSNN_CUDA_TEST_FILTER  only the tests of test_cuda_parity matching a
#                          cmocka pattern, e.g. 'test_neuron*'
#   CSNN_CUDA_TEST_FULL    test_cuda_model's full fer-csnn preset: 0 here by
#                          default (the emulated cuBLAS is a plain triple
#                          loop); 1 runs it (minutes; best with ASAN=0)
#
# What this checks: every kernel's index math and bounds, the row-major to
# column-major cuBLAS operand mapping (gemm, conv's strided-batched calls),
# conv chunking, argument validation, error paths, against the test's host
# reference and the CPU backend, and a whole model's training step through
# libcsnn. What it cannot check: real GPU execution (concurrency between
# blocks - the emulator runs the threads of a launch one after another, so a
# race between threads cannot show -, the memory model, launch limits,
# register/local-memory limits, cuBLAS itself, performance) - that needs
# scripts/gpu/run_gpu_checks.sh on a GPU.
#
# Takes a few minutes (block reductions run on real host threads).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=${1:-$ROOT/build-cuda}
BUILD=$(cd "$BUILD" && pwd)
HERE=$ROOT/scripts/gpu/emu
SRC=$(cd "${CUDA_SRC:-$ROOT/cuda}" && pwd)
W=${EMU_DIR:-$BUILD/cuda-emu}
TESTS=${TESTS:-test_cuda_module test_cuda_parity test_cuda_model}
export CSNN_CUDA_TEST_FULL=${CSNN_CUDA_TEST_FULL:-0}
for t in $TESTS; do
    [ -x "$BUILD/tests/cuda/$t" ] || { echo "missing $BUILD/tests/cuda/$t: build with -Dcuda=enabled first" >&2; exit 1; }
done
rm -rf "$W"
mkdir -p "$W/src"
for f in "$SRC"/*.cu; do
    python3 "$HERE/transform.py" "$f" "$W/src/$(basename "$f" .cu).cpp" > /dev/null
done
cp "$SRC"/*.cuh "$W/src/"
cp "$HERE/emu_rt.cpp" "$W/src/"
san=()
# shellcheck disable=SC2054 # commas belong to the flag
if [ "${ASAN:-1}" = 1 ]; then san=(-fsanitize=address,undefined -fno-omit-frame-pointer); fi
echo "building the emulated module ($W/libcsnn-cuda-emu.so from $SRC)"
g++ -std=c++20 -O1 -g -fPIC -shared -ffp-contract=off -fvisibility=hidden "${san[@]}" \
    -I"$HERE" -I"$W/src" -I"$ROOT/include" -I"$ROOT/include/csnn" \
    -Wall -Wextra -Wno-unused-parameter \
    -o "$W/libcsnn-cuda-emu.so" "$W"/src/*.cpp \
    -Wl,--version-script="$SRC/libcsnn-cuda.map" -lpthread
pre=(env)
if [ "${ASAN:-1}" = 1 ]; then
    pre=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
         ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
fi
status=0
for t in $TESTS; do
    echo "== $t (emulated GPU)"
    if ! "${pre[@]}" CSNN_CUDA_MODULE="$W/libcsnn-cuda-emu.so" CSNN_NUM_THREADS="${CSNN_NUM_THREADS:-2}" \
        "$BUILD/tests/cuda/$t"; then
        status=1
    fi
done
exit $status
