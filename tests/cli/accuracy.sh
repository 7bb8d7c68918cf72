# accuracy.sh - end to end: the built-in synthetic faces (150 per class,
# seed 1) train a small CSNN for 12 epochs; on a second synthetic set
# (seed 2) csnn eval --json must report an accuracy of at least 0.90.
# (Measured on 2 cores: 0.985 with --seed 0; 0.958 and 0.969 with seeds 1
# and 2; about 25 s of CPU time for the training.)
. "$(dirname "$0")/common.sh"

cat >small.spec <<'SPEC'
# 7,607 parameters: a full-resolution static first layer, three conv blocks
input 1x48x48
steps 4
classes 7
static: conv 8 k=3 p=1; bn
if
maxpool 2
conv 16 k=3 p=1
bn
if
maxpool 2
conv 16 k=3 p=1
bn
if
maxpool 2
flatten
linear 7
lif
SPEC
expect 0 "$CSNN" synth --out train --per-class 150 --seed 1
expect 0 "$CSNN" synth --out test --per-class 150 --seed 2
start=$(date +%s)
expect 0 "$CSNN" train --data train --out m.csnn --spec small.spec --epochs 12 --val-split 0.1 \
    --augment hflip,crop=2 --lr 0.005 --seed 0 --log log.csv
echo "training took $(($(date +%s) - start)) s"
cat out.txt
expect 0 "$CSNN" eval --model m.csnn --data test --json
cat out.txt
acc=$(sed -n 's/.*"accuracy": \([0-9.eE+-]*\).*/\1/p' out.txt)
[ -n "$acc" ] || fail "no accuracy in the JSON"
echo "test accuracy: $acc"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.90) }' || fail "test accuracy $acc is below 0.90"
json_check out.txt 'assert d["n"] == 1050 and d["accuracy"] >= 0.90, d["accuracy"]'
echo "PASS"
