#!/bin/sh
# fuzz.sh - runs the libFuzzer targets of tests/fuzz/, one after the other.
#
#     scripts/fuzz.sh SECONDS [TARGET...]
#
# TARGETs: png jpeg csv spec checkpoint (default: all), each run for SECONDS
# in one process (no -jobs/-workers: one fuzzer at a time, on one core).
#
# It configures (once) and builds a clang build in $FUZZ_BUILD (default
# build-fuzz: CC=clang, -Dfuzzing=true, debugoptimized; the library is
# compiled again into the fuzz binaries with -fsanitize=fuzzer-no-link,
# address,undefined and -fno-sanitize-recover=all), generates the seed
# corpora (tests/fuzz/make_corpus) and runs each target on
#
#     $FUZZ_BUILD/fuzz-work/TARGET/corpus   (grows from run to run)
#     $FUZZ_BUILD/tests/fuzz/corpus/TARGET  (the generated seeds)
#     tests/fuzz/regressions/TARGET         (every input that ever crashed)
#
# with -print_final_stats=1. Crashes, leaks, timeouts and out-of-memory
# inputs go to $FUZZ_BUILD/fuzz-work/TARGET/artifacts/. A summary line per
# target (executions, exec/s, corpus size, findings) is printed and
# appended to $FUZZ_BUILD/fuzz-work/summary.txt. Exit status: 0 when no
# target found anything, 1 otherwise, 2 on a usage or build error.
#
# A finding: minimise it (fuzz_TARGET -minimize_crash=1 -runs=100000
# -exact_artifact_path=OUT ARTIFACT), fix it, and commit OUT under
# tests/fuzz/regressions/TARGET/ so that `meson test` replays it forever.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)

usage() {
    echo "usage: scripts/fuzz.sh SECONDS [png|jpeg|csv|spec|checkpoint ...]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
SECONDS_EACH=$1
shift
case $SECONDS_EACH in '' | *[!0-9]*) usage ;; esac
ALL="png jpeg csv spec checkpoint"
TARGETS=${*:-$ALL}
for t in $TARGETS; do
    case " $ALL " in *" $t "*) ;; *) echo "fuzz.sh: unknown target '$t'" >&2; usage ;; esac
done

BUILD=${FUZZ_BUILD:-build-fuzz}
command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang libclang-rt-dev)" >&2; exit 2; }
if [ ! -f "$BUILD/build.ninja" ]; then
    CC=clang meson setup "$BUILD" -Dfuzzing=true -Dbuildtype=debugoptimized -Dcuda=disabled \
        -Dexamples=false >"$BUILD.setup.log" 2>&1 ||
        { cat "$BUILD.setup.log" >&2; exit 2; }
fi
bins=""
for t in $TARGETS; do bins="$bins tests/fuzz/fuzz_$t"; done
# shellcheck disable=SC2086
ninja -C "$BUILD" $bins tests/fuzz/corpus.stamp >/dev/null || { echo "fuzz.sh: build failed" >&2; exit 2; }

WORK=$BUILD/fuzz-work
mkdir -p "$WORK"
# AddressSanitizer's quarantine is kept small so that the fuzzer's RSS
# stays below -rss_limit_mb; leaks are findings (LeakSanitizer).
ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64:detect_leaks=1:symbolize=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS

status=0
printf '%-11s %10s %12s %9s %8s %s\n' target seconds executions exec/s corpus findings
for t in $TARGETS; do
    dir=$WORK/$t
    mkdir -p "$dir/corpus" "$dir/artifacts"
    before=$(ls "$dir/artifacts" | wc -l)
    extra=""
    # FER2013 rows are ~5-9 KB: a cap of two rows or so keeps the rate up
    [ "$t" = csv ] && extra="-max_len=20000"
    regress=$ROOT/tests/fuzz/regressions/$t
    [ -d "$regress" ] || regress=""
    log=$dir/fuzz.log
    # shellcheck disable=SC2086
    "$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -timeout=20 -rss_limit_mb=4096 -malloc_limit_mb=2048 \
        -artifact_prefix="$dir/artifacts/" $extra \
        "$dir/corpus" "$BUILD/tests/fuzz/corpus/$t" $regress >"$log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    corpus=$(ls "$dir/corpus" | wc -l)
    after=$(ls "$dir/artifacts" | wc -l)
    found=$((after - before))
    what=none
    if [ "$found" -gt 0 ]; then
        what="$found new in $dir/artifacts: $(grep -m1 -E 'ERROR: |SUMMARY: |fuzz invariant' "$log" || true)"
        status=1
    elif grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|fuzz invariant' "$log"; then
        what="see $log"
        status=1
    fi
    line=$(printf '%-11s %10s %12s %9s %8s %s' "$t" "$SECONDS_EACH" "${execs:-?}" "${rate:-?}" "$corpus" "$what")
    echo "$line"
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $line" >>"$WORK/summary.txt"
done
exit $status
