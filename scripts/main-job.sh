#!/bin/sh
# The main job: generate the built-in synthetic faces (a training set and an
# unseen test set drawn with another seed), train the seed's CSNN (preset
# fer-csnn, the seed's recipe) on them and evaluate it on the test set.
# Usage: main-job.sh [BUILD_DIR] — MINUTES (default 4) bounds the training.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
csnn="$build/examples/csnn"
work=${WORK:-main-job}
minutes=${MINUTES:-4}
[ -x "$csnn" ] || { echo "main-job: $csnn not built; run scripts/build.sh first" >&2; exit 1; }
mkdir -p "$work"
"$csnn" synth --out "$work/train" --per-class 200 --seed 1
"$csnn" synth --out "$work/test" --per-class 100 --seed 2
"$csnn" train --data "$work/train" --out "$work/fer-csnn.csnn" --preset fer-csnn \
    --max-minutes "$minutes" --log "$work/train.csv" --plots "$work/plots"
"$csnn" eval --model "$work/fer-csnn.csnn" --data "$work/test" --plots "$work/plots"
echo "main-job: model, log and plots are in $work/"
