#!/bin/sh
# The main job: generate the built-in synthetic faces (a training set and an
# unseen test set drawn with another seed), train a CSNN on them with the
# seed's recipe and evaluate it on the test set. PRESET picks the model
# (default small-csnn, which converges in a minute or two; the seed's
# fer-csnn spends its first epochs leaving its silent-output state, see
# docs/PERFORMANCE.md).
# Usage: main-job.sh [BUILD_DIR] — MINUTES (default 4) bounds the training.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
csnn="$build/examples/csnn"
work=${WORK:-main-job}
minutes=${MINUTES:-4}
preset=${PRESET:-small-csnn}
[ -x "$csnn" ] || { echo "main-job: $csnn not built; run scripts/build.sh first" >&2; exit 1; }
mkdir -p "$work"
"$csnn" synth --out "$work/train" --per-class 200 --seed 1
"$csnn" synth --out "$work/test" --per-class 100 --seed 2
"$csnn" train --data "$work/train" --out "$work/$preset.csnn" --preset "$preset" \
    --max-minutes "$minutes" --log "$work/train.csv" --plots "$work/plots"
"$csnn" eval --model "$work/$preset.csnn" --data "$work/test" --plots "$work/plots"
echo "main-job: model, log and plots are in $work/"
