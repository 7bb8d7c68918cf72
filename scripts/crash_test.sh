#!/bin/sh
# crash_test.sh - kill `csnn train` with SIGKILL at random moments and check
# that nothing is lost that was saved, nothing half-written is left where a
# model is expected, and --resume finishes the run as if nothing happened.
#
#     scripts/crash_test.sh [KILLS]          (default 50)
#
# Environment: CSNN (the tool; default build/examples/csnn), CRASH_PROBE
# (tests/reliability/crash_probe of the same build; default beside CSNN's
# build), CRASH_SEED (the random delays; default: from the clock, printed),
# CRASH_KEEP=1 keeps the work directory.
#
# A synthetic set (csnn synth, 30 images per class) is trained on with a
# small spec (48x48 input, 5,335 parameters), --val-split 0.2, patience
# off, and a CSV log. Then, KILLS times: train (or --resume MODEL.last when
# it exists), and kill -9 it, either after a random delay (two kills in
# three) or the moment a temporary file of MODEL or MODEL.last appears (a
# kill aimed at a checkpoint write). After every kill:
#
#  - MODEL and MODEL.last, when they exist, load and evaluate (csnn eval),
#    and MODEL.last restores a trainer (crash_probe: csnn_trainer_load_
#    checkpoint), so neither is half-written; MODEL.last never exists
#    without MODEL;
#  - MODEL.last holds every epoch the killed run reported finished and
#    every epoch before the one it was in (at most one epoch of work is
#    lost), and never fewer epochs than after the previous kill;
#  - the CSV log holds epochs 1..N or 1..N-1 (it is written just after
#    MODEL.last) for N the checkpoint's epochs.
#
# Finally the run is resumed to its end: it must finish every epoch, the
# log must hold each epoch exactly once, its metrics must equal those of an
# uninterrupted run of the same settings (bit for bit on the CPU), and no
# stale temporary file may be left (the library removes those of killed
# writers at its next save). A run that ends before all kills are done is
# checked the same way and a new one begins.
#
# Then (as root, with unshare(1): a tmpfs in a private mount namespace)
# csnn train on a full disk and into a read-only directory must exit with
# status 1 and a message naming the file and the cause, and leave the
# previous MODEL and MODEL.last byte for byte as they were.
#
# Exit status 0: every check passed; 1: a check failed; 77: the tool is
# missing.
set -u
KILLS=${1:-50}
case $KILLS in '' | *[!0-9]*) echo "usage: $0 [KILLS]" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "$0")/.." && pwd)
CSNN=${CSNN:-$HERE/build/examples/csnn}
case $CSNN in /*) ;; *) CSNN=$(pwd)/$CSNN ;; esac
[ -x "$CSNN" ] || { echo "crash_test: no csnn tool at $CSNN (set CSNN)" >&2; exit 77; }
PROBE=${CRASH_PROBE:-$(dirname "$(dirname "$CSNN")")/tests/reliability/crash_probe}
case $PROBE in /*) ;; *) PROBE=$(pwd)/$PROBE ;; esac
[ -x "$PROBE" ] || { echo "crash_test: no crash_probe at $PROBE (set CRASH_PROBE)" >&2; exit 77; }
SEED=${CRASH_SEED:-$(date +%s)}
echo "crash_test: $KILLS kills, seed $SEED, tool $CSNN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/csnn-crash.XXXXXX") || exit 1
if [ "${CRASH_KEEP:-0}" = 1 ]; then
    trap 'echo "crash_test: work directory kept: $WORK"' EXIT
else
    trap 'rm -rf "$WORK"' EXIT
fi
cd "$WORK" || exit 1

fail() {
    echo "FAIL: $*" >&2
    [ -f run.err ] && { echo "--- stderr of the last run:" >&2; tail -n 20 run.err >&2; }
    exit 1
}

# a reproducible stream of random numbers: rand N gives 0..N-1
RSTATE=$SEED
rand() {
    RSTATE=$(((RSTATE * 1103515245 + 12345) % 2147483648))
    echo $(((RSTATE / 65536) % $1))
}

cp "$HERE/tests/cli/tiny.spec" tiny.spec || fail "cannot copy the test spec"
"$CSNN" synth --out data --per-class 30 --seed 3 >/dev/null || fail "csnn synth failed"
EPOCHS=$((KILLS + 8))
[ "$EPOCHS" -gt 60 ] && EPOCHS=60
ARGS="--data data --val-split 0.2 --seed 5 --batch 16 --threads 1"
RUN_ARGS="--spec tiny.spec --epochs $EPOCHS --patience 0 $ARGS"

# the reference: the same run, uninterrupted
mkdir ref
# shellcheck disable=SC2086
"$CSNN" train $RUN_ARGS --out ref/m.csnn --log ref/run.csv --quiet >ref/out.txt 2>&1 ||
    fail "the reference run failed: $(cat ref/out.txt)"
start_s=$(date +%s)

# epochs in a checkpoint (crash_probe), or 0 when it does not exist
ckpt_epochs() {
    [ -e "$1" ] || { echo 0; return; }
    "$PROBE" "$1" >probe.txt 2>probe.err || fail "$1 does not restore: $(cat probe.err)"
    sed -n 's/.*epochs=\([0-9]*\).*/\1/p' probe.txt
}

# the epochs listed in the log, as "1 2 3 "
log_epochs() {
    [ -e "$1" ] || return 0
    tail -n +2 "$1" | cut -d, -f1 | tr '\n' ' '
}

seq_to() {
    i=1
    while [ "$i" -le "$1" ]; do printf '%s ' "$i"; i=$((i + 1)); done
}

# checks a finished run in directory $1 against the reference
check_finished() {
    d=$1
    grep -q "finished after $EPOCHS epochs" "$d/run.out" || fail "run $d did not finish: $(tail -n 3 "$d/run.out")"
    [ "$(log_epochs "$d/run.csv")" = "$(seq_to "$EPOCHS")" ] ||
        fail "run $d: the log's epochs are '$(log_epochs "$d/run.csv")'"
    cut -d, -f1-6,8 "$d/run.csv" >"$d/a.csv"
    cut -d, -f1-6,8 ref/run.csv >"$d/b.csv"
    cmp -s "$d/a.csv" "$d/b.csv" || { diff "$d/a.csv" "$d/b.csv" >&2; fail "run $d: the metrics differ from the uninterrupted run's"; }
    cmp -s "$d/m.csnn" ref/m.csnn || fail "run $d: the best model differs from the uninterrupted run's"
    stale=$(ls "$d" | grep -c '\.tmp-')
    [ "$stale" -eq 0 ] || fail "run $d: stale temporary files left: $(ls "$d" | grep '\.tmp-' | tr '\n' ' ')"
    echo "ok: run $d finished $EPOCHS epochs; log and best model equal the uninterrupted run's"
}

run=1
mkdir r1
kills=0 aimed_hits=0 fresh=0 resumed=0 prev_n=0 max_lost=0 runs_done=0
while [ "$kills" -lt "$KILLS" ]; do
    d=r$run
    stale_before=$(ls "$d" | grep '\.tmp-' | tr '\n' ' ')
    if [ -e "$d/m.csnn.last" ]; then
        resumed=$((resumed + 1))
        # shellcheck disable=SC2086
        "$CSNN" train $ARGS --out "$d/m.csnn" --log "$d/run.csv" --resume "$d/m.csnn.last" \
            >"$d/run.out" 2>run.err &
    else
        fresh=$((fresh + 1))
        # shellcheck disable=SC2086
        "$CSNN" train $RUN_ARGS --out "$d/m.csnn" --log "$d/run.csv" >"$d/run.out" 2>run.err &
    fi
    pid=$!
    aimed=0 hit=0
    if [ $((kills % 3)) -eq 2 ]; then
        # aimed: kill the moment a temporary file of the model or checkpoint exists
        # (every other one waits for MODEL.last's, which comes second)
        aimed=1
        if [ $((kills % 2)) -eq 0 ]; then pat1=m.csnn.last.tmp-; else pat1=m.csnn.tmp-; fi
        t0=$(date +%s)
        hit=0
        while kill -0 "$pid" 2>/dev/null; do
            for f in "$d/$pat1"* "$d"/m.csnn.last.tmp-*; do
                # a stale file of an earlier kill is not this run's write
                case " $stale_before " in *" ${f##*/} "*) continue ;; esac
                if [ -e "$f" ]; then
                    kill -9 "$pid" 2>/dev/null && hit=1 && hitf=${f##*/}
                    break 2
                fi
            done
            [ $(($(date +%s) - t0)) -lt 20 ] || break
        done
        [ "$hit" = 1 ] && aimed_hits=$((aimed_hits + 1))
    else
        # 0.05 .. 1.2 s: before, during and after the first epoch of the run
        rand 1150
        ms=$((50 + R))
        sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    fi
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    status=$?
    if [ "$status" -ne 137 ]; then
        # the run ended by itself: it must have finished
        [ "$status" -eq 0 ] || fail "run $d exited with $status"
        check_finished "$d"
        runs_done=$((runs_done + 1))
        run=$((run + 1))
        mkdir "r$run"
        prev_n=0
        continue
    fi
    kills=$((kills + 1))

    # what the killed run had reported: epochs finished (the "epoch k/E:"
    # lines come after MODEL.last is written) and the epoch in progress
    done_seen=$(sed -n 's/^epoch \([0-9]*\)\/[0-9]*: .*/\1/p' run.err | tail -n 1)
    begun_seen=$(sed -n 's/^epoch \([0-9]*\)\/[0-9]* .*/\1/p' run.err | tail -n 1)
    done_seen=${done_seen:-0}
    begun_seen=${begun_seen:-0}

    # nothing half-written where a model is expected
    [ -e "$d/m.csnn.last" ] && [ ! -e "$d/m.csnn" ] && fail "kill $kills: $d/m.csnn.last exists without $d/m.csnn"
    for f in "$d/m.csnn" "$d/m.csnn.last"; do
        [ -e "$f" ] || continue
        "$CSNN" eval --model "$f" --data data --threads 1 >eval.out 2>eval.err ||
            fail "kill $kills: $f does not load and evaluate: $(cat eval.err)"
        grep -q '^accuracy:' eval.out || fail "kill $kills: csnn eval of $f printed no accuracy"
    done
    n=$(ckpt_epochs "$d/m.csnn.last")
    [ "$n" -ge "$prev_n" ] || fail "kill $kills: the checkpoint went back from $prev_n to $n epochs"
    [ "$n" -ge "$done_seen" ] || fail "kill $kills: the run reported epoch $done_seen finished, the checkpoint has $n"
    # work lost: the epoch in progress (begun, or trained but not yet in
    # MODEL.last) and nothing before it
    lost=$((begun_seen > done_seen ? begun_seen - n : done_seen - n))
    [ "$lost" -le 1 ] || fail "kill $kills: the run had begun epoch $begun_seen, the checkpoint has $n epochs"
    [ "$lost" -gt "$max_lost" ] && max_lost=$lost
    if [ -e "$d/run.csv" ]; then
        le=$(log_epochs "$d/run.csv")
        [ "$le" = "$(seq_to "$n")" ] || [ "$le" = "$(seq_to $((n - 1)))" ] ||
            fail "kill $kills: the log has epochs '$le' for a checkpoint of $n"
    fi
    stale=$(ls "$d" | grep -c '\.tmp-')
    kind=random
    [ "$aimed" = 1 ] && kind="aimed: missed"
    [ "$aimed" = 1 ] && [ "$hit" = 1 ] && kind="aimed: during the write of ${hitf%%.tmp-*}"
    echo "kill $kills ($kind): checkpoint at epoch $n (run reported $done_seen finished, was in epoch $begun_seen); $stale stale temporary files"
    prev_n=$n
done

# csnn train on a full disk and into a read-only directory (a tmpfs in a
# private mount namespace: root and unshare(1) needed, else skipped): exit
# status 1, a message naming the file and the cause, the previous files
# byte for byte as they were, no temporary file left
disk_checks() {
    command -v unshare >/dev/null 2>&1 || { echo "note: no unshare(1): disk checks skipped"; return 0; }
    cat >disk.sh <<'DISK'
set -u
CSNN=$1
mount --make-rprivate / 2>/dev/null
mkdir -p small && mount -t tmpfs -o size=160k tmpfs small || exit 77
set -- --data data --val-split 0.2 --seed 5 --batch 16 --threads 1 --spec tiny.spec --patience 0 --quiet
"$CSNN" train "$@" --epochs 1 --out small/m.csnn >/dev/null 2>&1 || { echo "FAIL: the first run on the tmpfs failed"; exit 1; }
cp small/m.csnn m.before && cp small/m.csnn.last last.before
dd if=/dev/zero of=small/filler bs=4096 >/dev/null 2>&1
"$CSNN" train "$@" --epochs 2 --out small/m.csnn >out.txt 2>err.txt
st=$?
[ $st -eq 1 ] || { echo "FAIL: csnn train on a full disk exited with $st"; cat err.txt; exit 1; }
grep -q "No space left on device" err.txt || { echo "FAIL: no clear message on a full disk:"; cat err.txt; exit 1; }
echo "ok: full disk: $(grep -m1 'No space' err.txt)"
cmp -s small/m.csnn m.before && cmp -s small/m.csnn.last last.before || { echo "FAIL: a full disk changed the previous files"; exit 1; }
rm -f small/filler
mount -o remount,ro small || exit 77
"$CSNN" train "$@" --epochs 2 --out small/m.csnn >out.txt 2>err.txt
st=$?
[ $st -eq 1 ] || { echo "FAIL: csnn train into a read-only directory exited with $st"; exit 1; }
grep -q "Read-only file system" err.txt || { echo "FAIL: no clear message for a read-only directory:"; cat err.txt; exit 1; }
echo "ok: read-only directory: $(grep -m1 'Read-only' err.txt)"
cmp -s small/m.csnn m.before && cmp -s small/m.csnn.last last.before || { echo "FAIL: a read-only directory changed the previous files"; exit 1; }
[ "$(ls small | grep -c '\.tmp-')" -eq 0 ] || { echo "FAIL: temporary files left: $(ls small)"; exit 1; }
umount small
exit 0
DISK
    unshare -m sh disk.sh "$CSNN" >disk.out 2>&1
    st=$?
    cat disk.out
    case $st in
    0) ;;
    77) echo "note: no tmpfs could be mounted (not root?): disk checks skipped" ;;
    *) fail "disk checks" ;;
    esac
}
disk_checks

# the last run, to its end
d=r$run
if [ -e "$d/m.csnn.last" ]; then
    # shellcheck disable=SC2086
    "$CSNN" train $ARGS --out "$d/m.csnn" --log "$d/run.csv" --resume "$d/m.csnn.last" \
        >"$d/run.out" 2>run.err || fail "the final resume failed"
else
    # shellcheck disable=SC2086
    "$CSNN" train $RUN_ARGS --out "$d/m.csnn" --log "$d/run.csv" >"$d/run.out" 2>run.err ||
        fail "the final run failed"
fi
check_finished "$d"
runs_done=$((runs_done + 1))
echo "PASS: $kills kills ($aimed_hits during a checkpoint write; $fresh fresh starts, $resumed resumes), $runs_done runs finished, at most $max_lost epoch of work lost per kill, $(($(date +%s) - start_s)) s"
