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
#   4. meson test --suite cuda --suite cuda-module (plus $EXTRA_SUITES):
#      cuda-parity (every op, the fused neuron + max-pool included),
#      cuda-model (a training step of a scaled fer-csnn and of the fer-csnn
#      preset on cpu and cuda; save on one, load on the other), the module's
#      loading tests;
#   5. benchmarks, libcsnn beside SpikingJelly on the same GPU:
#      `csnn bench --preset fer-csnn --mode train|infer --batch 16|256
#      --device cuda --json` (when the tool has the subcommand), then the
#      SpikingJelly anchor scripts/gpu/anchor_gpu.py, one process per neuron
#      backend ($SJ_BACKENDS), with SpikingJelly master's package carried in
#      .gpu-deps/spikingjelly (scripts/gpu/fetch_sj.sh); the table of each
#      pair and the ratio to the best SpikingJelly backend
#      (scripts/gpu/compare_bench.py) goes to the summary;
#   6. compute-sanitizer memcheck of the parity test, when present;
#   7. end to end: one epoch of `csnn train` on the synthetic dataset with
#      --device cuda and --device cpu (same seed), when the tool exists.
#
# Preparing a session (on the machine with the registry, before `run`):
#     scripts/gpu/fetch_debs.sh && scripts/gpu/fetch_sj.sh
# then run `scripts/gpu/run_gpu_checks.sh` on the GPU machine with
# carry [".gpu-deps"] (the .debs, a few tens of MB, and SpikingJelly's
# package, 5 MB: within the 64 MiB limit).
#
# Time: the whole run is meant to fit one device command of 10 minutes.
# BUDGET (default 540 s) bounds it: every step after the build gets at most
# what is left of the budget (minus a reserve for the summary), and a step
# that would start with too little left is skipped and said so. Expected on
# an H100/H200 with 16 cores: build 1.5-2.5 min, tests under 1 min,
# benchmarks 2-3 min, memcheck and e2e with what remains.
#
# Logs and a summary go to $OUT (default ./build-gpu-out, ignored by git):
# summary.txt, env.txt, setup/build/test logs, bench/ (every JSON line,
# logs, comparison.txt and comparison.json), e2e/.
# Idempotent: rerunning reuses the build directory (incremental). Exit
# status: 0 when the build, the CUDA tests and the cuda training run passed,
# 1 otherwise (benchmark figures never change it).
#
# Environment knobs (all optional):
#   OUT            log directory                  (default <repo>/build-gpu-out)
#   BUILD_DIR      build directory                (default <repo>/build-gpu)
#   CUDA_ARCH      value of -Dcuda-arch           (default 90: H100/H200; the
#                  project default 80,90,90-virtual takes 3x the compile time)
#   GPU_DEPS       auto | yes | no                (default auto)
#   BUDGET         seconds for the whole run      (default 540)
#   EXTRA_SUITES   more meson test suites, space-separated (e.g. "backend unit")
#   TEST_TIMEOUT   seconds for the test step      (default 240)
#   CSNN_CUDA_TEST_FULL 0: cuda-model skips the full fer-csnn preset (default 1)
#   BENCH          1: run step 5                  (default 1)
#   BENCH_CONFIGS  MODE:BATCH list               (default "train:16 train:256
#                  infer:16 infer:256")
#   BENCH_DEVICE   cuda (default) or cpu: the device of both sides, for a dry
#                  run of this step on a machine without a GPU
#   BENCH_EXTRA    more arguments for every `csnn bench` run
#   BENCH_TIMEOUT  seconds per `csnn bench` run   (default 60)
#   SJ_BACKENDS    SpikingJelly neuron backends   (default "torch cupy triton";
#                  triton only while 150 s of the budget remain)
#   SJ_TIMEOUT     seconds per anchor process     (default 100)
#   SJ_PYTHON      the Python with torch          (default: the first of
#                  python3, /usr/bin/python3 that imports torch)
#   SANITIZE       1: run compute-sanitizer memcheck if present (default 1)
#   SANITIZE_TIMEOUT seconds                      (default 120)
#   E2E            1: run step 7                  (default 1)
#   E2E_PER_CLASS  synthetic images per class     (default 40)
#   E2E_TIMEOUT    seconds per training run       (default 90)
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-$ROOT/build-gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
CUDA_ARCH=${CUDA_ARCH:-90}
GPU_DEPS=${GPU_DEPS:-auto}
TEST_TIMEOUT=${TEST_TIMEOUT:-240}
SANITIZE=${SANITIZE:-1}
SANITIZE_TIMEOUT=${SANITIZE_TIMEOUT:-120}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-60}
SJ_TIMEOUT=${SJ_TIMEOUT:-100}
BUDGET=${BUDGET:-540}
RESERVE=8 # seconds kept for the comparison table and the summary
export CSNN_CUDA_TEST_FULL=${CSNN_CUDA_TEST_FULL:-1}
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
T0=$(date +%s)

say() { echo "[gpu-checks +$(($(date +%s) - T0))s] $*" | tee -a "$SUMMARY"; }
result=0

# What is left of the budget, and a step's timeout capped by it (0: skip).
left() { echo $((BUDGET - RESERVE - ($(date +%s) - T0))); }
cap() { # WANTED [MINIMUM]: min(WANTED, left), or 0 when that is below MINIMUM (default 10)
    local l
    l=$(left)
    [ "$l" -gt "$1" ] && l=$1
    if [ "$l" -lt "${2:-10}" ]; then echo 0; else echo "$l"; fi
}

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
t_tests=$(cap "$TEST_TIMEOUT" 30)
[ "$t_tests" = 0 ] && t_tests=30 # the tests are the point: run them even late
say "tests (timeout ${t_tests}s; CSNN_CUDA_TEST_FULL=$CSNN_CUDA_TEST_FULL)"
with_timeout "$t_tests" "${MESON[@]}" test -C "$BUILD" "${suites[@]}" --print-errorlogs \
    --no-rebuild --num-processes 1 --timeout-multiplier 1 > "$OUT/test.log" 2>&1
rc=$?
cp "$BUILD/meson-logs/testlog.txt" "$OUT/testlog.txt" 2>/dev/null
# the full-model test's figures (spike flips, loss, per-tensor distances)
grep -E '^(scaled fer-csnn|fer-csnn preset)|spikes, firing|spikes differ|loss cpu|worst gradient|labels differ' \
    "$OUT/testlog.txt" 2>/dev/null | head -n 40 | tee -a "$SUMMARY"
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

# ------------------------------------------------------------------ 5. benchmarks
# In the build tree libcsnn (lib/) and the module (cuda/) are not side by
# side: tell libcsnn where the module is.
export CSNN_CUDA_MODULE="$BUILD/cuda/libcsnn-cuda.so"
CSNN_TOOL=$BUILD/examples/csnn
B=$OUT/bench
mkdir -p "$B"
BENCH_DEVICE=${BENCH_DEVICE:-cuda}
BENCH_CONFIGS=${BENCH_CONFIGS:-train:16 train:256 infer:16 infer:256}
if [ "${BENCH:-1}" != 1 ]; then
    say "bench: skipped (BENCH=${BENCH:-})"
elif [ "$BENCH_DEVICE" = cuda ] && grep -qE 'cuda-parity +SKIP' "$OUT/test.log" 2>/dev/null; then
    say "bench: skipped (no usable GPU)"
else
    # libcsnn: csnn bench, when the tool has the subcommand
    if [ -x "$CSNN_TOOL" ] && "$CSNN_TOOL" bench --help > "$B/bench-help.txt" 2>&1; then
        first=1 # the sgemm probe in the first run only
        for cfg in $BENCH_CONFIGS; do
            mode=${cfg%%:*}
            b=${cfg##*:}
            if [ "$b" -ge 128 ]; then it=(--warmup 2 --iters 8); else it=(--warmup 5 --iters 30); fi
            sg=()
            if [ "$first" = 0 ] && grep -q -- '--no-sgemm' "$B/bench-help.txt"; then sg=(--no-sgemm); fi
            first=0
            t_b=$(cap "$BENCH_TIMEOUT" 15)
            if [ "$t_b" = 0 ]; then
                say "bench: csnn $mode b$b skipped ($(left)s of the budget left)"
                continue
            fi
            # shellcheck disable=SC2086 # BENCH_EXTRA is a word list
            with_timeout "$t_b" "$CSNN_TOOL" bench --preset fer-csnn --mode "$mode" --batch "$b" \
                --device "$BENCH_DEVICE" --json "${it[@]}" "${sg[@]}" ${BENCH_EXTRA:-} \
                > "$B/csnn-$mode-b$b.json" 2> "$B/csnn-$mode-b$b.log"
            rc=$?
            [ $rc -eq 0 ] || say "bench: csnn bench $mode b$b: rc $rc: $(tail -n 2 "$B/csnn-$mode-b$b.log" | tr '\n' ' ')"
        done
    elif [ -x "$CSNN_TOOL" ]; then
        say "bench: the csnn tool has no bench subcommand yet (see bench/bench-help.txt)"
    else
        say "bench: $CSNN_TOOL not built"
    fi
    # SpikingJelly, same GPU, one process per neuron backend
    SJ_DIR=$ROOT/.gpu-deps
    py=""
    for p in ${SJ_PYTHON:-} python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' >/dev/null 2>&1; then py=$p; break; fi
    done
    if [ ! -f "$SJ_DIR/spikingjelly/__init__.py" ]; then
        say "bench: SpikingJelly not carried ($SJ_DIR/spikingjelly missing: run scripts/gpu/fetch_sj.sh and carry .gpu-deps)"
    elif [ -z "$py" ]; then
        say "bench: no Python with torch found (SJ_PYTHON, python3, /usr/bin/python3)"
    else
        say "bench: SpikingJelly $(head -n 1 "$SJ_DIR/spikingjelly.commit" 2>/dev/null | grep -o '[0-9a-f]\{40\}' || echo '?'), $("$py" -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -n 1), $py"
        for be in ${SJ_BACKENDS:-torch cupy triton}; do
            want=$SJ_TIMEOUT
            [ "$be" = triton ] && [ "$(left)" -lt 150 ] && { say "bench: SJ $be skipped ($(left)s of the budget left)"; continue; }
            t_sj=$(cap "$want" 30)
            if [ "$t_sj" = 0 ]; then
                say "bench: SJ $be skipped ($(left)s of the budget left)"
                continue
            fi
            t1=$(date +%s)
            PYTHONPATH=$SJ_DIR${PYTHONPATH:+:$PYTHONPATH} with_timeout "$t_sj" "$py" \
                "$ROOT/scripts/gpu/anchor_gpu.py" --backend "$be" --device "$BENCH_DEVICE" \
                --configs "$(echo "$BENCH_CONFIGS" | tr ' ' ',')" --warmup 3 --iters 20 \
                --iters-large 8 --budget-s $((t_sj - 15)) \
                > "$B/sj-$be.jsonl" 2> "$B/sj-$be.log"
            rc=$?
            say "bench: SJ $be: rc $rc, $(($(date +%s) - t1))s, $(grep -c samples_per_s "$B/sj-$be.jsonl") of $(echo "$BENCH_CONFIGS" | wc -w) measured"
            [ $rc -eq 0 ] || tail -n 3 "$B/sj-$be.log" | tee -a "$SUMMARY"
        done
    fi
    if [ -n "$py" ] || command -v python3 >/dev/null 2>&1; then
        "${py:-python3}" "$ROOT/scripts/gpu/compare_bench.py" "$B" > "$B/comparison.txt" 2>&1
        say "bench: libcsnn (csnn bench --device $BENCH_DEVICE) against SpikingJelly on the same device (samples/s, ms/step; ratio > 1: libcsnn faster):"
        tee -a "$SUMMARY" < "$B/comparison.txt"
    fi
fi

# ------------------------------------------------------------------ 6. memcheck
t_san=$(cap "$SANITIZE_TIMEOUT" 30)
if [ "$SANITIZE" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1 &&
    [ -x "$BUILD/tests/cuda/test_cuda_parity" ] && [ "$t_san" -gt 0 ]; then
    SANITIZE_TIMEOUT=$t_san
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
    say "compute-sanitizer: not run (SANITIZE=$SANITIZE, $(command -v compute-sanitizer >/dev/null 2>&1 && echo present || echo absent), $(left)s of the budget left)"
fi

# ------------------------------------------------------------------ 7. end to end
if [ -x "$CSNN_TOOL" ] && [ "${E2E:-1}" = 1 ] && [ "$(cap 60 30)" -gt 0 ]; then
    # One epoch of the default model on the synthetic dataset, on cuda and on
    # cpu, same seed: the per-epoch CSV lines should agree closely.
    W=$OUT/e2e
    mkdir -p "$W"
    with_timeout "$(cap 60 10)" "$CSNN_TOOL" synth --out "$W/synth" --per-class "${E2E_PER_CLASS:-40}" \
        --seed 0 > "$W/synth.log" 2>&1 || say "e2e: csnn synth failed (see e2e/synth.log)"
    for dev in cuda cpu; do
        t1=$(date +%s)
        t_e2e=$(cap "${E2E_TIMEOUT:-90}" 20)
        [ "$t_e2e" = 0 ] && { say "e2e: --device $dev skipped ($(left)s of the budget left)"; continue; }
        with_timeout "$t_e2e" "$CSNN_TOOL" train --data "$W/synth" \
            --out "$W/model-$dev.csnn" --epochs 1 --batch 16 --seed 0 --augment none \
            --device "$dev" --log "$W/train-$dev.csv" --quiet > "$W/train-$dev.log" 2>&1
        rc=$?
        say "e2e: csnn train --device $dev (1 epoch): rc $rc, $(($(date +%s) - t1))s; log:"
        [ -f "$W/train-$dev.csv" ] && tee -a "$SUMMARY" < "$W/train-$dev.csv"
        [ $rc -eq 0 ] || { tail -n 5 "$W/train-$dev.log" | tee -a "$SUMMARY"; [ "$dev" = cuda ] && result=1; }
    done
elif [ -x "$CSNN_TOOL" ] && [ "${E2E:-1}" = 1 ]; then
    say "e2e: skipped ($(left)s of the budget left)"
fi

say "done: result $result; logs in $OUT"
exit $result
