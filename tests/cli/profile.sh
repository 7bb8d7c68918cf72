# profile.sh - csnn profile: the per-layer table and the totals of a tiny
# trained model on a small synthetic set, the JSON report checked against
# the table's definitions, a preset-free spec with in-memory synthetic
# faces, the energy options, and usage errors (exit 2).
. "$(dirname "$0")/common.sh"

write_tiny_spec

# ---- usage errors
expect 2 "$CSNN" profile
err_has "one of --model, --preset or --spec is required"
out_empty
expect 2 "$CSNN" profile --model m.csnn
err_has "--data is required with --model"
expect 2 "$CSNN" profile --model m.csnn --spec tiny.spec --data d
err_has "exclude each other"
expect 2 "$CSNN" profile --spec tiny.spec --mac-pj -1
err_has "--mac-pj: -1 is outside"
expect 2 "$CSNN" profile --spec tiny.spec --ac-pj x
err_has "--ac-pj: 'x' is not a number"
expect 2 "$CSNN" profile --spec tiny.spec --max-samples 0
err_has "--max-samples: 0 is outside"
expect 2 "$CSNN" profile --model m.csnn --data d --time-steps 2
err_has "--time-steps applies to --preset and --spec only"
expect 2 "$CSNN" profile --spec tiny.spec --data d --synth-per-class 3
err_has "--synth-per-class applies without --data only"
expect 0 "$CSNN" profile --help
out_has "Usage: csnn profile"
out_has "--mac-pj X"
out_has "Conventions"
err_empty

# ---- a trained tiny model on synthetic faces
expect 0 "$CSNN" synth --out data --per-class 6 --seed 4
expect 0 "$CSNN" train --data data --out m.csnn --spec tiny.spec --epochs 1 --val-split 0 \
    --augment none --quiet --threads 1
expect 1 "$CSNN" profile --model m.csnn --data no-such-dir
err_has "no-such-dir"
expect 0 "$CSNN" profile --model m.csnn --data data --threads 1
err_empty
out_has "42 samples profiled"
out_has "MAC 4.6 pJ, AC 0.9 pJ"
for l in conv1 bn1 sn1 pool1 conv2 bn2 sn2 pool2 flatten1 fc1 sn3 total; do
    grep -q "^$l " out.txt || { cat out.txt >&2; fail "no table row for $l"; }
done
grep -q '^conv1  *conv  *MAC ' out.txt || fail "conv1 is not counted as MACs: $(cat out.txt)"
grep -q '^conv2  *conv  *AC ' out.txt || fail "conv2 is not counted as ACs: $(cat out.txt)"
out_has "SNN/ANN ratio"
out_has "static block"

expect 0 "$CSNN" profile --model m.csnn --data data --threads 1 --json --max-samples 10 \
    --mac-pj 3.7 --ac-pj 0.5
err_empty
[ "$(wc -l <out.txt)" -eq 1 ] || fail "profile --json printed $(wc -l <out.txt) lines"
cp out.txt p.json
json_check p.json '
import math
assert d["samples"] == 10 and d["mac_pj"] == 3.7 and d["ac_pj"] == 0.5, d
names = [l["name"] for l in d["layers"]]
assert names == ["conv1", "bn1", "sn1", "pool1", "conv2", "bn2", "sn2", "pool2", "flatten1",
                 "fc1", "sn3"], names
L = {l["name"]: l for l in d["layers"]}
assert L["conv1"]["counted_as"] == "MAC" and L["conv2"]["counted_as"] == "AC", L
assert L["fc1"]["counted_as"] == "AC" and L["bn1"]["counted_as"] is None, L
# ANN twin: dense MACs per image; the first layer runs T = 4 times (not static)
assert L["conv1"]["ann_macs"] == 8 * 24 * 24 * 9, L["conv1"]
assert L["conv1"]["macs"] == 4 * 8 * 24 * 24 * 9 and L["conv1"]["acs"] == 0, L["conv1"]
assert L["conv2"]["ann_macs"] == 16 * 12 * 12 * 72 and L["conv2"]["macs"] == 0, L["conv2"]
assert L["fc1"]["ann_macs"] == 7 * 576, L["fc1"]
for n in ["sn1", "sn2", "sn3", "conv2", "fc1"]:
    r = L[n]["firing_rate"]
    assert r is not None and 0 <= r <= 1, (n, r)
assert L["pool1"]["firing_rate"] is None
for l in d["layers"] + [d["total"]]:
    e = l["macs"] * 3.7 + l["acs"] * 0.5
    assert abs(l["energy_pj"] - e) <= 1e-9 * max(1, e), l
    assert abs(l["ann_energy_pj"] - l["ann_macs"] * 3.7) <= 1e-9 * max(1, l["ann_energy_pj"]), l
t = d["total"]
for k in ["macs", "acs", "ann_macs", "energy_pj", "ann_energy_pj"]:
    s = sum(l[k] for l in d["layers"])
    assert abs(t[k] - s) <= 1e-9 * max(1, s), (k, t[k], s)
assert t["name"] == "total" and t["ann_macs"] > 0
assert abs(d["energy_ratio"] - t["energy_pj"] / t["ann_energy_pj"]) < 1e-9, d["energy_ratio"]
assert "static block" in d["conventions"] and d["model"] == "m.csnn" and d["data"] == "data"'

# ---- a spec with random weights on in-memory synthetic faces
expect 0 "$CSNN" profile --spec tiny.spec --synth-per-class 2 --time-steps 2 --threads 1 --json
cp out.txt s.json
json_check s.json '
assert d["samples"] == 14 and d["data"].startswith("synthetic faces"), d
assert d["layers"][0]["macs"] == 2 * 8 * 24 * 24 * 9, d["layers"][0]'
expect 0 "$CSNN" profile --spec tiny.spec --synth-per-class 1 --threads 1
out_has "(random weights)"
out_has "7 samples profiled"
echo "PASS"
