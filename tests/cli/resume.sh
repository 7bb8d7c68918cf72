# resume.sh - Ctrl-C (SIGINT) stops training at a batch boundary with exit
# status 130 and valid files; --resume MODEL.last continues the run, and
# the CSV log then holds every epoch, equal to an uninterrupted run's.
. "$(dirname "$0")/common.sh"

write_tiny_spec
expect 0 "$CSNN" synth --out data --per-class 20 --seed 4
EPOCHS=12
set -- --data data --spec tiny.spec --epochs $EPOCHS --patience 0 --val-split 0.2 --seed 5 --batch 16

# an interrupted run: SIGINT once the first epoch is in the log
"$CSNN" train "$@" --out m.csnn --log run.csv >run.out 2>run.err &
pid=$!
tries=0
while [ "$(cat run.csv 2>/dev/null | wc -l)" -lt 2 ]; do
    tries=$((tries + 1))
    [ $tries -lt 600 ] || { kill $pid; fail "no epoch finished within 60 s"; }
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
kill -INT $pid 2>/dev/null
wait $pid
status=$?
cat run.out
if [ $status -ne 130 ]; then
    cat run.err >&2
    fail "the interrupted run exited with $status, expected 130"
fi
grep -q "interrupted: stopping at the next batch" run.err || fail "no interrupt message on stderr"
grep -q -e "--resume m.csnn.last" run.out || fail "the interrupted run did not say how to resume"
done_epochs=$(($(wc -l <run.csv) - 1))
[ $done_epochs -ge 1 ] && [ $done_epochs -lt $EPOCHS ] || fail "run.csv has $done_epochs epochs"
[ -s m.csnn ] && [ -s m.csnn.last ] || fail "the files of the interrupted run are missing"
expect 0 "$CSNN" summary --model m.csnn.last
echo "ok: interrupted after $done_epochs epochs"

# continue it (its settings come from the checkpoint: --epochs is ignored)
expect 0 "$CSNN" train --data data --val-split 0.2 --out m.csnn --resume m.csnn.last \
    --log run.csv --epochs 99
err_has "ignoring --epochs"
out_has "resuming m.csnn.last after epoch $done_epochs of at most $EPOCHS"
out_has "finished after $EPOCHS epochs"
[ "$(cut -d, -f1 run.csv | tr '\n' ' ')" = "epoch 1 2 3 4 5 6 7 8 9 10 11 12 " ] ||
    fail "run.csv epochs after resuming: $(cut -d, -f1 run.csv | tr '\n' ' ')"

# resuming a run that has ended trains nothing
expect 0 "$CSNN" train --data data --val-split 0.2 --out m.csnn --resume m.csnn.last --quiet
out_has "had already ended (the epoch limit)"
out_has "best epoch:"

# the same run without an interruption: the same metrics (bit for bit on
# the CPU), apart from the wall time
expect 0 "$CSNN" train "$@" --out full.csnn --log full.csv --quiet
cut -d, -f1-6,8 run.csv >a.csv
cut -d, -f1-6,8 full.csv >b.csv
cmp -s a.csv b.csv || { diff a.csv b.csv >&2; fail "the resumed run differs from the uninterrupted one"; }
echo "ok: the resumed run's log equals the uninterrupted run's"

# a resume from a file that is not a checkpoint
expect 1 "$CSNN" train --data data --out m.csnn --resume no-such.last
err_has "no-such.last"
echo "PASS"
