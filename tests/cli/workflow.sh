# workflow.sh - synth -> train -> eval -> predict -> summary on a small
# synthetic set with a tiny model: exit statuses, files, the CSV log, the
# JSON of eval and predict, and plots when cairo was built.
. "$(dirname "$0")/common.sh"

write_tiny_spec
expect 0 "$CSNN" synth --out data --per-class 20 --seed 1
out_has "wrote 140 images"
[ "$(find data -type f | wc -l)" -eq 140 ] || fail "synth wrote $(find data -type f | wc -l) files, not 140"
for c in angry disgust fear happy neutral sad surprise; do
    [ -d "data/$c" ] || fail "no class folder data/$c"
done
expect 0 "$CSNN" synth --out test --per-class 10 --seed 2

# ---- train
plots=""
[ "$PLOTS" = 1 ] && plots="--plots plots"
expect 0 "$CSNN" train --data data --out m.csnn --spec tiny.spec --epochs 3 --val-split 0.2 \
    --log log.csv --seed 3 --batch 8 --augment hflip,rot=5,crop=2,jitter=0.1 $plots
out_has "Total params: 5,335"
out_has "112 training images in 7 classes, 28 validation images"
out_has "finished after 3 epochs"
out_has "best epoch:"
out_has "saved to m.csnn"
out_has "confusion matrix"
err_has "epoch 3/3:"
[ -s m.csnn ] || fail "m.csnn was not written"
[ -s m.csnn.last ] || fail "m.csnn.last was not written"
[ "$(head -n 1 log.csv)" = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds,improved" ] ||
    fail "log.csv header: $(head -n 1 log.csv)"
[ "$(wc -l <log.csv)" -eq 4 ] || fail "log.csv has $(wc -l <log.csv) lines, not 4"
[ "$(cut -d, -f1 log.csv | tr '\n' ' ')" = "epoch 1 2 3 " ] || fail "log.csv epochs: $(cut -d, -f1 log.csv)"
awk -F, 'NR > 1 && (NF != 8 || $4 == "" || $5 == "" || $6 != 0.001) { exit 1 }' log.csv ||
    fail "log.csv rows: $(cat log.csv)"
if [ "$PLOTS" = 1 ]; then
    is_png plots/loss.png
    is_png plots/accuracy.png
    is_png plots/confusion.png
fi

# without validation: every epoch is saved, the user is told to run eval
expect 0 "$CSNN" train --data data --out noval.csnn --spec tiny.spec --epochs 1 --val-split 0 \
    --augment none --quiet --log noval.csv
out_has "no validation set"
out_has "csnn eval --model noval.csnn"
awk -F, 'NR == 2 && ($4 != "" || $5 != "" || $8 != 1) { exit 1 }' noval.csv ||
    fail "noval.csv: $(cat noval.csv)"

# a second run with the same --out starts afresh, with a note about MODEL.last
expect 0 "$CSNN" train --data data --out noval.csnn --spec tiny.spec --epochs 1 --val-split 0 --quiet
err_has "noval.csnn.last exists"
err_has "--resume noval.csnn.last"

# --val-data instead of a split; --time-steps; --skip-bad counts bad files
printf 'not an image' >data/happy/broken.png
expect 1 "$CSNN" train --data data --out v.csnn --spec tiny.spec --epochs 1 --val-data test --quiet
err_has "broken.png"
expect 0 "$CSNN" train --data data --out v.csnn --spec tiny.spec --epochs 1 --val-data test \
    --time-steps 2 --skip-bad --threads 1
err_has "skipped 1 bad file"
out_has "140 training images in 7 classes, 70 validation images from test"
out_has "Time steps: 2"
rm data/happy/broken.png

# a tiny time limit: no epoch finishes, nothing is saved, exit 0
expect 0 "$CSNN" train --data data --out t.csnn --spec tiny.spec --epochs 5 --max-minutes 0.00001 --quiet
out_has "no epoch finished within the time limit: nothing was saved"
[ ! -e t.csnn ] || fail "t.csnn was written"

# ---- eval
expect 0 "$CSNN" eval --model m.csnn --data test
out_has "accuracy:"
out_has "confusion matrix (rows: true class, columns: predicted class)"
out_has "precision"
out_has "firing rates"
out_has "sn1"
expect 0 "$CSNN" eval --model m.csnn --data test --json
cp out.txt eval.json
[ "$(wc -l <eval.json)" -eq 1 ] || fail "eval --json printed $(wc -l <eval.json) lines"
json_check eval.json '
names = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
assert d["classes"] == names, d["classes"]
assert d["n"] == 70
assert 0 <= d["accuracy"] <= 1 and d["loss"] >= 0
cm = d["confusion"]
assert len(cm) == 7 and all(len(r) == 7 for r in cm)
assert sum(map(sum, cm)) == 70 and all(sum(r) == 10 for r in cm)
assert abs(sum(cm[i][i] for i in range(7)) / 70 - d["accuracy"]) < 1e-9
pc = d["per_class"]
assert [p["class"] for p in pc] == names
for i, p in enumerate(pc):
    assert p["support"] == 10
    assert abs(p["recall"] - cm[i][i] / 10) < 1e-9
    col = sum(cm[r][i] for r in range(7))
    assert abs(p["precision"] - (cm[i][i] / col if col else 0)) < 1e-9
    assert 0 <= p["f1"] <= 1
assert [r["layer"] for r in d["firing_rates"]] == ["sn1", "sn2", "sn3"]
assert all(0 <= r["rate"] <= 1 for r in d["firing_rates"])
'
if [ "$PLOTS" = 1 ]; then
    expect 0 "$CSNN" eval --model m.csnn --data test --plots evalplots
    is_png evalplots/confusion.png
fi
# a dataset whose classes the model does not know
mkdir -p other/cats && cp test/happy/00000.* other/cats/
expect 1 "$CSNN" eval --model m.csnn --data other
err_has "CSNN_ERR_NOT_FOUND"

# a FER2013 CSV (labels 0..6, 48x48 pixels per row); --usage picks rows
awk 'BEGIN {
    print "emotion,pixels,Usage"
    for (r = 0; r < 21; r++) {
        line = (r % 7) ","
        for (p = 0; p < 2304; p++) line = line (p ? " " : "") ((p * 7 + r * 13) % 256)
        print line "," (r < 14 ? "Training" : "PublicTest")
    }
}' >fer.csv
expect 0 "$CSNN" eval --model m.csnn --data fer.csv --usage PublicTest --json
json_check out.txt 'assert d["n"] == 7 and all(p["support"] == 1 for p in d["per_class"]), d'
expect 0 "$CSNN" eval --model m.csnn --data fer.csv --json
json_check out.txt 'assert d["n"] == 21, d["n"]'

# ---- predict
img1=$(ls test/happy/* | head -n 1)
img2=$(ls test/sad/* | head -n 1)
expect 0 "$CSNN" predict --model m.csnn --json "$img1" "$img2"
cp out.txt predict.json
[ "$(wc -l <predict.json)" -eq 2 ] || fail "predict --json printed $(wc -l <predict.json) lines"
lines=1 json_check predict.json '
names = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
assert [o["file"] for o in d] == sys.argv[4:6], [o["file"] for o in d]
for o in d:
    s = o["scores"]
    assert list(s) == names, list(s)
    assert all(v in (0, 0.25, 0.5, 0.75, 1) for v in s.values()), s
    best = max(s.values())
    assert o["label"] == next(k for k in names if s[k] == best), o
' "$img1" "$img2"
expect 0 "$CSNN" predict --model m.csnn "$img1"
out_has "$img1: "
out_has "happy "
expect 1 "$CSNN" predict --model m.csnn no-such.png "$img2"
err_has "no-such.png"
out_has "$img2: "

# ---- summary
expect 0 "$CSNN" summary --preset fer-csnn
out_has "Total params: 21,532,679"
expect 0 "$CSNN" summary --model m.csnn
out_has "Total params: 5,335"
out_has "Classes: angry disgust fear happy neutral sad surprise"
echo "PASS"
