#!/usr/bin/env bash
# scripts/gpu/run_gpu_checks.sh - the GPU checks of libcsnn in one command,
# for a machine with an NVIDIA GPU, nvcc, meson/ninja (possibly only as
# Python packages) and no package registry.
#
#   1. dependencies: the system's, or the Debian packages that
#      scripts/gpu/fetch_debs.sh unpacked into .gpu-deps/ (run it beforehand
#      on a machine with a registry; GPU_DEPS=auto|yes|no, default auto);
#   2. meson setup (or --reconfigure) of $BUILD_DIR with -Dcuda=enabled;
#   3. build;
#   4. meson test --suite cuda --suite cuda-module (plus $EXTRA_SUITES), and,
#      when compute-sanitizer exists, the parity test under memcheck;
#   5. end to end: one epoch of `csnn train` on the synthetic dataset with
#      --device cuda and --device cpu (same seed), when the tool exists;
#   6. the benchmark `csnn bench ...` if the tool and the subcommand exist.
#
# Logs and a summary go to $OUT (default ./build-gpu-out, ignored by git).
# Idempotent: rerunning reuses the build directory (incremental). Exit
# status: 0 when the build, the CUDA tests and the cuda training run passed,
# 1 otherwise.
#
# Environment knobs (all optional):
#   OUT            log directory                  (default <repo>/build-gpu-out)
#   BUILD_DIR      build directory                (default <repo>/build-gpu)
#   CUDA_ARCH      value of -Dcuda-arch           (default 90: H100/H200; the
#                  project default 80,90,90-virtual takes 3x the compile time)
#   GPU_DEPS       auto | yes | no                (default auto)
#   EXTRA_SUITES   more meson test suites, space-separated (e.g. "backend unit")
#   TEST_TIMEOUT   seconds for the test step      (default 300)
#   SANITIZE       1: run compute-sanitizer memcheck if present (default 1)
#   SANITIZE_TIMEOUT seconds                      (default 150)
#   BENCH_ARGS     arguments after `csnn bench`   (default: --device cuda)
#   BENCH_TIMEOUT  seconds                        (default 120)
#   E2E            1: run step 5                  (default 1)
#   E2E_PER_CLASS  synthetic images per class     (default 40)
#   E2E_TIMEOUT    seconds per training run       (default 150)
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-$ROOT/build-gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
CUDA_ARCH=${CUDA_ARCH:-90}
GPU_DEPS=${GPU_DEPS:-auto}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
SANITIZE=${SANITIZE:-1}
SANITIZE_TIMEOUT=${SANITIZE_TIMEOUT:-150}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
T0=$(date +%s)

say() { echo "[gpu-checks +$(($(date +%s) - T0))s] $*" | tee -a "$SUMMARY"; }
result=0

# ------------------------------------------------------------------ tools
[ -d /usr/local/cuda/bin ] && case ":$PATH:" in *:/usr/local/cuda/bin:*) ;; *) PATH=/usr/local/cuda/bin:$PATH ;; esac
export PATH
if command -v meson >/dev/null 2>&1; then
    MESON=(meson)
elif python3 -c 'import mesonbuild' >/dev/null 2>&1; then
    MESON=(python3 -m mesonbuild.mesonmain)
else
    say "FATAL: meson not found (neither a command nor the mesonbuild Python package)"
    exit 1
fi
if ! command -v ninja >/dev/null 2>&1; then
    nbin=$(python3 -c 'import ninja, os; print(os.path.dirname(ninja.__file__) + "/data/bin")' 2>/dev/null || true)
    [ -n "$nbin" ] && [ -x "$nbin/ninja" ] && PATH=$nbin:$PATH
    command -v ninja >/dev/null 2>&1 || { say "FATAL: ninja not found"; exit 1; }
fi
if command -v timeout >/dev/null 2>&1; then TIMEOUT=(timeout --kill-after=10); else TIMEOUT=(); fi
with_timeout() { # SECONDS CMD...
    local s=$1
    shift
    if [ ${#TIMEOUT[@]} -gt 0 ]; then "${TIMEOUT[@]}" "$s" "$@"; else "$@"; fi
}

{
    echo "== date"; date -u
    echo "== uname"; uname -a
    echo "== os-release"; cat /etc/os-release 2>/dev/null
    echo "== glibc"; ldd --version 2>&1 | head -n 1
    echo "== nvidia-smi"; nvidia-smi 2>&1
    echo "== nvcc"; command -v nvcc && nvcc --version 2>&1
    echo "== cuda libs"; ls -l /usr/local/cuda/lib64/*cudart* /usr/local/cuda/lib64/*cublas* 2>&1
    ldconfig -p 2>/dev/null | grep -E 'libcuda\.|cudart|cublas'
    echo "== compute-sanitizer"; command -v compute-sanitizer
    echo "== cc"; command -v cc gcc; gcc --version 2>&1 | head -n 1
    echo "== meson"; "${MESON[@]}" --version
    echo "== ninja"; ninja --version
    echo "== pkg-config"; command -v pkg-config pkgconf
    echo "== python"; python3 -c 'import sys; print(sys.version)' 2>&1
    python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)' 2>&1 | tail -n 1
    python3 -c 'import cupy; print("cupy", cupy.__version__)' 2>&1 | tail -n 1
    echo "== nproc"; nproc
    echo "== .gpu-deps"; cat .gpu-deps/root/.glibc 2>/dev/null; head -n 1 .gpu-deps/root/.complete 2>/dev/null
} > "$OUT/env.txt" 2>&1
say "environment: $OUT/env.txt; GPU: $(nvidia-smi -L 2>/dev/null | head -n 1 || true)"

# ------------------------------------------------------------------ 1. dependencies
system_has_deps() {
    command -v pkg-config >/dev/null 2>&1 || return 1
    pkg-config --exists libpng libjpeg zlib cmocka || return 1
    pkg-config --exists openblas && return 0
    # Debian keeps openblas.pc off the default path; the root meson.build
    # then falls back to libopenblas + cblas.h
    ls /usr/lib/*/libopenblas.so /usr/lib/libopenblas.so /usr/lib64/libopenblas.so >/dev/null 2>&1 || return 1
}
use_bundled=0
case "$GPU_DEPS" in
yes) use_bundled=1 ;;
no) use_bundled=0 ;;
*) if system_has_deps; then use_bundled=0; else use_bundled=1; fi ;;
esac
if [ "$use_bundled" = 1 ]; then
    # shellcheck source=scripts/gpu/deps_env.sh
    . "$ROOT/scripts/gpu/deps_env.sh"
    if gpu_deps_env "$ROOT/.gpu-deps" 2>> "$SUMMARY"; then
        say "dependencies: bundled .gpu-deps (needs $(cat .gpu-deps/root/.glibc 2>/dev/null); have $(ldd --version 2>&1 | head -n 1 | grep -o '[0-9.]*$'))"
    else
        say "FATAL: the system lacks libpng/libjpeg/zlib/cmocka/openblas and .gpu-deps is missing: run scripts/gpu/fetch_debs.sh on a machine with a package registry and carry .gpu-deps"
        exit 1
    fi
else
    say "dependencies: the system's"
fi
{
    echo "PKG_CONFIG_PATH=${PKG_CONFIG_PATH-}"
    echo "PKG_CONFIG_LIBDIR=${PKG_CONFIG_LIBDIR-}"
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH-}"
    echo "C_INCLUDE_PATH=${C_INCLUDE_PATH-}"
    echo "PKG_CONFIG=${PKG_CONFIG-}"
} >> "$OUT/env.txt"

# ------------------------------------------------------------------ 2. configure
opts=(-Dcuda=enabled "-Dcuda-arch=$CUDA_ARCH" -Dbuildtype=release)
if [ -f "$BUILD/build.ninja" ]; then
    "${MESON[@]}" setup --reconfigure "$BUILD" "${opts[@]}" > "$OUT/setup.log" 2>&1
else
    rm -rf "$BUILD"
    "${MESON[@]}" setup "$BUILD" "${opts[@]}" > "$OUT/setup.log" 2>&1
fi
rc=$?
cp "$BUILD/meson-logs/meson-log.txt" "$OUT/meson-log.txt" 2>/dev/null
if [ $rc -ne 0 ]; then
    say "FAIL: meson setup (rc $rc), see setup.log / meson-log.txt:"
    tail -n 15 "$OUT/setup.log" | tee -a "$SUMMARY"
    exit 1
fi
say "configured $BUILD ($(grep -E 'CUDA backend' "$OUT/setup.log" | tr -s ' ' | head -n 1))"

# ------------------------------------------------------------------ 3. build
ninja -C "$BUILD" > "$OUT/build.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    say "FAIL: build (rc $rc), see build.log:"
    grep -E 'error|FAILED' "$OUT/build.log" | head -n 20 | tee -a "$SUMMARY"
    exit 1
fi
say "built ($(grep -c 'warning' "$OUT/build.log") warning lines)"

# ------------------------------------------------------------------ 4. tests
suites=(--suite cuda --suite cuda-module)
for s in ${EXTRA_SUITES:-}; do suites+=(--suite "$s"); done
with_timeout "$TEST_TIMEOUT" "${MESON[@]}" test -C "$BUILD" "${suites[@]}" --print-errorlogs \
    --no-rebuild --num-processes 1 > "$OUT/test.log" 2>&1
rc=$?
cp "$BUILD/meson-logs/testlog.txt" "$OUT/testlog.txt" 2>/dev/null
grep -E '^ *[0-9]+/[0-9]+ ' "$OUT/test.log" | tee -a "$SUMMARY"
grep -E '^(Ok|Fail|Skipped|Timeout):' "$OUT/test.log" | tr '\n' ' ' | tee -a "$SUMMARY"
echo | tee -a "$SUMMARY"
if [ $rc -ne 0 ]; then
    say "FAIL: tests (rc $rc), details in test.log / testlog.txt"
    result=1
elif grep -qE 'cuda-parity +SKIP' "$OUT/test.log"; then
    say "WARNING: cuda-parity was SKIPPED: no usable GPU (see env.txt: nvidia-smi)"
    result=1
else
    say "tests passed"
fi

if [ "$SANITIZE" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1 &&
    [ -x "$BUILD/tests/cuda/test_cuda_parity" ]; then
    CSNN_CUDA_MODULE="$BUILD/cuda/libcsnn-cuda.so" with_timeout "$SANITIZE_TIMEOUT" \
        compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 \
        "$BUILD/tests/cuda/test_cuda_parity" > "$OUT/sanitizer-memcheck.log" 2>&1
    rc=$?
    case $rc in
    0) say "compute-sanitizer memcheck: clean" ;;
    124 | 137) say "compute-sanitizer memcheck: timed out after ${SANITIZE_TIMEOUT}s (partial log kept)" ;;
    *) say "FAIL: compute-sanitizer memcheck rc $rc: $(grep -m 3 -E 'Invalid|ERROR SUMMARY' "$OUT/sanitizer-memcheck.log" | tr '\n' ' ')"
       result=1 ;;
    esac
else
    say "compute-sanitizer: not run (SANITIZE=$SANITIZE, $(command -v compute-sanitizer >/dev/null 2>&1 && echo present || echo absent))"
fi

# ------------------------------------------------------------------ 5. end to end
# In the build tree libcsnn (lib/) and the module (cuda/) are not side by
# side: tell libcsnn where the module is.
export CSNN_CUDA_MODULE="$BUILD/cuda/libcsnn-cuda.so"
CSNN_TOOL=$BUILD/examples/csnn
if [ -x "$CSNN_TOOL" ] && [ "${E2E:-1}" = 1 ]; then
    # One epoch of the default model on the synthetic dataset, on cuda and on
    # cpu, same seed: the per-epoch CSV lines should agree closely.
    W=$OUT/e2e
    mkdir -p "$W"
    with_timeout 120 "$CSNN_TOOL" synth --out "$W/synth" --per-class "${E2E_PER_CLASS:-40}" \
        --seed 0 > "$W/synth.log" 2>&1 || say "e2e: csnn synth failed (see e2e/synth.log)"
    for dev in cuda cpu; do
        t1=$(date +%s)
        with_timeout "${E2E_TIMEOUT:-150}" "$CSNN_TOOL" train --data "$W/synth" \
            --out "$W/model-$dev.csnn" --epochs 1 --batch 16 --seed 0 --augment none \
            --device "$dev" --log "$W/train-$dev.csv" --quiet > "$W/train-$dev.log" 2>&1
        rc=$?
        say "e2e: csnn train --device $dev (1 epoch): rc $rc, $(($(date +%s) - t1))s; log:"
        [ -f "$W/train-$dev.csv" ] && tee -a "$SUMMARY" < "$W/train-$dev.csv"
        [ $rc -eq 0 ] || { tail -n 5 "$W/train-$dev.log" | tee -a "$SUMMARY"; [ "$dev" = cuda ] && result=1; }
    done
fi

# ------------------------------------------------------------------ 6. benchmark
if [ -x "$CSNN_TOOL" ]; then
    "$CSNN_TOOL" --help > "$OUT/csnn-help.txt" 2>&1
    "$CSNN_TOOL" help >> "$OUT/csnn-help.txt" 2>&1
    if grep -qw bench "$OUT/csnn-help.txt"; then
        "$CSNN_TOOL" bench --help > "$OUT/bench-help.txt" 2>&1
        # shellcheck disable=SC2086
        with_timeout "$BENCH_TIMEOUT" "$CSNN_TOOL" bench ${BENCH_ARGS:---device cuda} > "$OUT/bench.log" 2>&1
        rc=$?
        say "bench (csnn bench ${BENCH_ARGS:---device cuda}): rc $rc; last lines:"
        tail -n 15 "$OUT/bench.log" | tee -a "$SUMMARY"
    else
        say "bench: the csnn tool has no bench subcommand yet (see csnn-help.txt)"
    fi
else
    say "bench: $CSNN_TOOL not built (examples not there yet)"
fi

say "done: result $result; logs in $OUT"
exit $result
