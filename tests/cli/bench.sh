# bench.sh - csnn bench: --json on a tiny spec model for both modes (the
# required keys, positive figures), the text report, usage errors (exit 2)
# and --help. No timing is asserted.
. "$(dirname "$0")/common.sh"

write_tiny_spec

# ---- usage errors: exit 2, a message on stderr, nothing on stdout
expect 2 "$CSNN" bench --mode train --batch 2
err_has "one of --preset or --spec is required"
out_empty
expect 2 "$CSNN" bench --preset fer-csnn --spec tiny.spec --mode train --batch 2
err_has "exclude each other"
expect 2 "$CSNN" bench --spec tiny.spec --batch 2
err_has "--mode is required"
expect 2 "$CSNN" bench --spec tiny.spec --mode fly --batch 2
err_has "--mode: 'fly' is neither train nor infer"
out_empty
expect 2 "$CSNN" bench --spec tiny.spec --mode train
err_has "--batch is required"
expect 2 "$CSNN" bench --spec tiny.spec --mode train --batch 0
err_has "--batch: 0 is outside"
expect 2 "$CSNN" bench --spec tiny.spec --mode infer --batch 2 --iters 0
err_has "--iters: 0 is outside"
expect 2 "$CSNN" bench --spec tiny.spec --mode infer --batch 2 --warmup x
err_has "--warmup: 'x' is not an integer"
expect 2 "$CSNN" bench --spec tiny.spec --mode infer --batch 2 --inputs noise
err_has "--inputs: 'noise' is neither random nor synth"
expect 2 "$CSNN" bench --spec tiny.spec --mode infer --batch 2 extra
err_has "unexpected argument 'extra'"

# ---- help
expect 0 "$CSNN" bench --help
out_has "Usage: csnn bench"
out_has "--mode MODE"
out_has "ru_maxrss"
err_empty
expect 0 "$CSNN" --help
out_has "bench"

# ---- runtime failures: exit 1
expect 1 "$CSNN" bench --spec no-such.spec --mode train --batch 2
err_has "no-such.spec"
expect 1 "$CSNN" bench --preset no-such-preset --mode infer --batch 2
err_has "CSNN_ERR_NOT_FOUND"

# ---- --json: one object with the required keys, positive figures
keys='
import math
need = ["samples_per_s", "ms_per_step", "ms_min", "peak_rss_mb", "gflops", "gflop_per_step",
        "sgemm_gflops", "batch", "iters", "threads"]
for k in need:
    v = d[k]
    assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, (k, v)
for k in ["device", "description", "spec", "mode"]:
    assert isinstance(d[k], str) and d[k], (k, d.get(k))
assert d["mode"] == sys.argv[4], d["mode"]
assert d["batch"] == int(sys.argv[5]) and d["iters"] == 2 and d["warmup"] == 1, d
assert d["time_steps"] == 4 and d["params"] == 5335, d
assert len(d["step_ms"]) == 2 and min(d["step_ms"]) == d["ms_min"], d
assert abs(d["samples_per_s"] * d["ms_per_step"] / 1e3 - d["batch"]) < 1e-6 * d["batch"], d
assert d["device"] == "cpu" and d["threads"] == 1, d
'
expect 0 "$CSNN" bench --spec tiny.spec --mode train --batch 4 --iters 2 --warmup 1 --threads 1 --json
err_empty
[ "$(wc -l <out.txt)" -eq 1 ] || fail "bench --json printed $(wc -l <out.txt) lines"
cp out.txt train.json
json_check train.json "$keys
assert math.isfinite(d[\"last_loss\"]), d" train 4
expect 0 "$CSNN" bench --spec tiny.spec --mode infer --batch 3 --iters 2 --warmup 1 --threads 1 --json \
    --inputs synth --seed 5
cp out.txt infer.json
json_check infer.json "$keys
assert d[\"last_loss\"] is None and d[\"inputs\"] == \"synth\", d" infer 3

# the FLOP count: tiny.spec, dense MACs per image and time step (4 steps,
# nothing static): conv1 8x24x24x9 + conv2 16x12x12x72 + fc1 7x576
json_check infer.json '
macs = 8 * 24 * 24 * 9 + 16 * 12 * 12 * 72 + 7 * 576
want = 2 * macs * 4 * 3 * 1e-9
assert abs(d["gflop_per_step"] - want) < 1e-6 * want, (d["gflop_per_step"], want)'
json_check train.json '
macs = 8 * 24 * 24 * 9 + 16 * 12 * 12 * 72 + 7 * 576
want = 2 * macs * 4 * 4 * 3 * 1e-9
assert abs(d["gflop_per_step"] - want) < 1e-6 * want, (d["gflop_per_step"], want)'

# a static first block counts once; CSNN_DISABLE is reported
cat >static.spec <<'SPEC'
input 1x48x48
steps 4
static: conv 8 k=3 s=2 p=1; bn
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
CSNN_DISABLE=sparse expect 0 "$CSNN" bench --spec static.spec --mode infer --batch 2 --iters 2 --warmup 1 \
    --threads 1 --json --no-sgemm
cp out.txt static.json
json_check static.json '
macs = 8 * 24 * 24 * 9 + 4 * (16 * 12 * 12 * 72 + 7 * 576)
want = 2 * macs * 2 * 1e-9
assert abs(d["gflop_per_step"] - want) < 1e-6 * want, (d["gflop_per_step"], want)
assert d["sgemm_gflops"] is None and d["sgemm_fraction"] is None, d
assert d["disabled"] == "sparse", d'

# --layers: per-layer times, and each conv / linear layer's FLOPs (forward;
# in training x 3, x 2 for the first, which has no input gradient) over its
# time; the dense layers together
for mode in infer train; do
    expect 0 "$CSNN" bench --spec static.spec --mode $mode --batch 2 --iters 2 --warmup 1 \
        --threads 1 --json --no-sgemm --layers
    cp out.txt layers-$mode.json
    json_check layers-$mode.json "
train = '$mode' == 'train'
macs = {'conv1': 8 * 24 * 24 * 9, 'conv2': 4 * 16 * 12 * 12 * 72, 'fc1': 4 * 7 * 576}
names = [l['name'] for l in d['layers']]
assert names == ['conv1', 'bn1', 'sn1', 'pool1', 'conv2', 'bn2', 'sn2', 'pool2', 'flatten1',
                 'fc1', 'sn3'], names
flop = secs = 0
for l in d['layers']:
    assert l['forward_ms'] >= 0 and l['backward_ms'] >= 0, l
    assert train or l['backward_ms'] == 0, l
    if l['name'] in macs:
        assert l['forward_ms'] > 0 and (l['backward_ms'] > 0) == train, l
        f = 2 * macs[l['name']] * 2 * (1 if not train else 2 if l['name'] == 'conv1' else 3)
        s = (l['forward_ms'] + l['backward_ms']) / 1e3
        assert abs(l['gflops'] * s - f * 1e-9) < 1e-6 * f * 1e-9, (l, f)
        flop += f
        secs += s
    else:
        assert l['gflops'] is None, l
assert abs(d['dense_layers_gflops'] - flop * 1e-9 / secs) < 1e-6 * d['dense_layers_gflops'], d
assert d['dense_layers_sgemm_fraction'] is None, d"
done
expect 0 "$CSNN" bench --spec static.spec --mode train --batch 2 --iters 2 --warmup 0 --threads 1 \
    --no-sgemm --layers
out_has "per layer, ms per step"
out_has "dense layers:"
out_has "(runs with the layer before)"

# ---- the text report
expect 0 "$CSNN" bench --spec tiny.spec --mode train --batch 2 --iters 2 --warmup 0 --threads 1 --no-sgemm
out_has "samples/s"
out_has "ms median"
out_has "peak memory:"
out_has "GFLOP/s dense-equivalent"
out_has "last loss:"
err_empty
echo "PASS"
