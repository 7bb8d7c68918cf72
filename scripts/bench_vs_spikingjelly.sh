#!/bin/sh
# bench_vs_spikingjelly.sh - libcsnn against the SpikingJelly anchor on this
# machine, in the same run, alternating (docs/PERFORMANCE.md has the results).
#
#     scripts/bench_vs_spikingjelly.sh [--csnn-only] [--no-levers] [SJ_PATH]
#
# SJ_PATH: SpikingJelly's source at release 0.0.0.0.14 (the folder holding
# spikingjelly/); default $SJ_PATH, else /work/sj-src. The anchor is
# ../shared/anchors/bench_csnn.py beside the source tree (ANCHOR_DIR), run
# with Debian's /usr/bin/python3 and python3-torch, OpenBLAS put in front
# through LD_LIBRARY_PATH (openblas-openmp when installed, else
# openblas-pthread). Without python3-torch or SpikingJelly it says so and
# exits 0 (--csnn-only still measures libcsnn's own tables).
#
# Workloads (anchor task vs `csnn bench`), each printed as a pair with the
# ratio, for ROUNDS rounds:
#   train_b16  training step, batch 16, samples/s   (fer-csnn; target >= 5x)
#   infer_b16  inference, batch 16, samples/s       (target >= 10x)
#   infer_b256 inference, batch 256, samples/s      (target >= 10x)
#   latency_b1 inference of one image, ms           (target >= 10x lower)
#   memory     peak RSS of the train_b16 processes  (target <= 1/3)
#   ann_train  the ANN twin (fer-cnn / --variant ann), training b16, samples/s;
#              libcsnn's run also times its layers: the conv and linear
#              layers' dense rate against its sgemm rate (target >= 60 %)
# OpenBLAS misdetects the CPU of some VMs and falls back to slow SSE3 kernels
# unless OPENBLAS_CORETYPE is set; libcsnn sets it itself, PyTorch does not
# (its convolutions use oneDNN, its Linear layers OpenBLAS). So the anchor
# runs twice per workload: with the default and with OPENBLAS_CORETYPE set
# to the core libcsnn would choose (ANCHOR_CORETYPE); the ratios against
# the targets use the faster anchor configuration (for memory, the smaller).
#
# Then (unless --no-levers) libcsnn alone: the execution-plan levers
# (CSNN_DISABLE=fusion,sparse,bnfold,pack,temporal,skinny,amx,winograd: all on, each off, all off) on
# train_b16, infer_b16 and latency_b1, and the thread scaling (1 vs THREADS).
#
# Environment (all optional):
#   CSNN            the csnn tool (default: build/examples/csnn)
#   THREADS         threads of both sides (default: nproc)
#   ROUNDS          rounds of the comparison (default 2); LEVER_ROUNDS (default 1)
#   RESULTS_DIR     where every raw JSON line is kept (default: a new temp dir)
#   ANCHOR_CORETYPE OpenBLAS core of the tuned anchor (default: from /proc/cpuinfo)
#   Iterations, as WARMUP/ITERS pairs per workload (anchor and csnn alike unless
#   the CSNN_ variant is given):
#   TRAIN_WARMUP=2 TRAIN_ITERS=6      INFER16_WARMUP=2 INFER16_ITERS=8
#   INFER256_WARMUP=1 INFER256_ITERS=2 LAT_WARMUP=3 LAT_ITERS=20
#   ANN_WARMUP=2 ANN_ITERS=8          CSNN_ITERS_SCALE=2 (csnn runs x this many
#   timed steps: it is fast, and more steps steady the median)
# The defaults take about 7 minutes on 2 cores (the anchor's inference at
# batch 256 is ~17 s per step).
set -eu

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

csnn_only=0
levers=1
sj=
for a in "$@"; do
    case $a in
    --csnn-only) csnn_only=1 ;;
    --no-levers) levers=0 ;;
    -h | --help) usage ;;
    -*) echo "bench_vs_spikingjelly.sh: unknown option '$a'" >&2; usage ;;
    *) [ -z "$sj" ] || usage; sj=$a ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
SJ_PATH=${sj:-${SJ_PATH:-/work/sj-src}}
ANCHOR_DIR=${ANCHOR_DIR:-$root/../shared/anchors}
CSNN=${CSNN:-$root/build/examples/csnn}
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}
ROUNDS=${ROUNDS:-2}
LEVER_ROUNDS=${LEVER_ROUNDS:-1}
TRAIN_WARMUP=${TRAIN_WARMUP:-2} TRAIN_ITERS=${TRAIN_ITERS:-6}
INFER16_WARMUP=${INFER16_WARMUP:-2} INFER16_ITERS=${INFER16_ITERS:-8}
INFER256_WARMUP=${INFER256_WARMUP:-1} INFER256_ITERS=${INFER256_ITERS:-2}
LAT_WARMUP=${LAT_WARMUP:-3} LAT_ITERS=${LAT_ITERS:-20}
ANN_WARMUP=${ANN_WARMUP:-2} ANN_ITERS=${ANN_ITERS:-8}
CSNN_ITERS_SCALE=${CSNN_ITERS_SCALE:-2}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

say() { printf '%s\n' "$*"; }
note() { printf 'bench_vs_spikingjelly: %s\n' "$*" >&2; }

[ -x "$CSNN" ] || {
    note "no csnn tool at $CSNN: build it (scripts/build.sh) or set CSNN"
    exit 1
}

# ---- is the anchor runnable?
anchor_ok=1
if [ "$csnn_only" = 0 ]; then
    if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
        note "Debian's python3-torch is not installed (apt-get install python3-torch python3-numpy libopenblas0-openmp): the SpikingJelly comparison is skipped"
        anchor_ok=0
    elif [ ! -d "$SJ_PATH/spikingjelly" ]; then
        note "SpikingJelly's source is not at '$SJ_PATH' (give SJ_PATH: the folder holding spikingjelly/, release 0.0.0.0.14): the comparison is skipped"
        anchor_ok=0
    elif [ ! -f "$ANCHOR_DIR/bench_csnn.py" ]; then
        note "the anchor bench_csnn.py is not in '$ANCHOR_DIR' (set ANCHOR_DIR): the comparison is skipped"
        anchor_ok=0
    fi
    [ "$anchor_ok" = 1 ] || exit 0
fi

blas_dir=
for d in /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/x86_64-linux-gnu/openblas-pthread \
    /usr/lib/aarch64-linux-gnu/openblas-openmp /usr/lib/aarch64-linux-gnu/openblas-pthread; do
    if [ -d "$d" ]; then blas_dir=$d; break; fi
done
if [ -z "${ANCHOR_CORETYPE:-}" ]; then
    flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
    has() { case " $flags " in *" $1 "*) return 0 ;; esac; return 1; }
    if has avx512f && has avx512bw && has avx512vl && has avx512dq; then
        ANCHOR_CORETYPE=SkylakeX
    elif has avx2 && has fma; then
        ANCHOR_CORETYPE=Haswell
    else
        ANCHOR_CORETYPE=
    fi
fi

dis=
RESULTS_DIR=${RESULTS_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-sj.XXXXXX")}
mkdir -p "$RESULTS_DIR"
records=$RESULTS_DIR/records.txt
: >"$records"

load1() { cut -d' ' -f1 /proc/loadavg; }

# record WORKLOAD SIDE CONFIG ROUND FILE LOAD_BEFORE: one line per measurement
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$6" "$(load1)" "$(tail -n 1 "$5")" \
        >>"$records"
}

# anchor WORKLOAD CONFIG ROUND ARGS...: one anchor process
anchor() {
    w=$1 cfg=$2 r=$3
    shift 3
    out=$RESULTS_DIR/$w.anchor-$cfg.$r.json
    l=$(load1)
    if [ "$cfg" = default ]; then
        env -u OPENBLAS_CORETYPE PYTHONPATH="$SJ_PATH" LD_LIBRARY_PATH="$blas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
            /usr/bin/python3 "$ANCHOR_DIR/bench_csnn.py" --threads "$THREADS" "$@" >"$out"
    else
        env OPENBLAS_CORETYPE="$cfg" PYTHONPATH="$SJ_PATH" LD_LIBRARY_PATH="$blas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
            /usr/bin/python3 "$ANCHOR_DIR/bench_csnn.py" --threads "$THREADS" "$@" >"$out"
    fi
    record "$w" anchor "$cfg" "$r" "$out" "$l"
}

# csnn WORKLOAD CONFIG ROUND ARGS...: one csnn bench process (CONFIG names
# the CSNN_DISABLE set or the thread count of the lever tables; $dis is the
# CSNN_DISABLE value, empty for all levers on)
csnn() {
    w=$1 cfg=$2 r=$3
    shift 3
    out=$RESULTS_DIR/$w.csnn-$cfg.$r.json
    l=$(load1)
    env -u OPENBLAS_CORETYPE -u CSNN_DISABLE ${dis:+CSNN_DISABLE=$dis} "$CSNN" bench --json "$@" >"$out"
    record "$w" csnn "$cfg" "$r" "$out" "$l"
}

# pair WORKLOAD ROUND: prints the round's figures of WORKLOAD and the ratios
pair() {
    "$PY" - "$records" "$1" "$2" <<'EOF'
import json, sys
path, w, r = sys.argv[1:4]
rows = [l.rstrip("\n").split("\t", 6) for l in open(path)]
rows = [x for x in rows if x[0] == w and x[3] == r]
lat = w.startswith("latency")
def fig(side, d):
    if lat:
        return d["median_ms"] if side == "anchor" else d["ms_per_step"], "ms"
    return d["samples_per_s"], "samples/s"
cs = [json.loads(x[6]) for x in rows if x[1] == "csnn"]
c = fig("csnn", cs[0])[0] if cs else None
for x in rows:
    d = json.loads(x[6])
    v, unit = fig(x[1], d)
    mem = d["ru_maxrss_kb"] / 1024 if x[1] == "anchor" else d["peak_rss_mb"]
    line = "  %-7s %-9s %10.2f %-9s peak RSS %6.0f MiB  load %s -> %s" % (
        x[1], x[2], v, unit, mem, x[4], x[5])
    if x[1] == "anchor" and c:
        line += "   libcsnn %.2fx %s" % ((v / c, "lower") if lat else (c / v, "faster"))
    print(line)
EOF
}

csnn_iters() { echo $(($1 * CSNN_ITERS_SCALE)); }

say "libcsnn vs SpikingJelly: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, threads $THREADS"
say "csnn: $CSNN ($("$CSNN" --version))"
if [ "$csnn_only" = 0 ]; then
    say "anchor: $ANCHOR_DIR/bench_csnn.py, SpikingJelly $SJ_PATH ($(git -C "$SJ_PATH" rev-parse --short HEAD 2>/dev/null || echo '?')), torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
    say "anchor OpenBLAS: ${blas_dir:-none found (reference BLAS)}; configurations: default, OPENBLAS_CORETYPE=${ANCHOR_CORETYPE:-(none)}"
fi
cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
blas_ver=$(dpkg-query -W -f '${Version}' libopenblas0-pthread 2>/dev/null || true)
[ -d /usr/lib/x86_64-linux-gnu/openblas-openmp ] &&
    blas_ver=$(dpkg-query -W -f '${Version}' libopenblas0-openmp 2>/dev/null || true)
say "machine: ${cpu:-?}, $(nproc) CPUs, ${mem:-?}; OpenBLAS ${blas_ver:-?}"
say "raw results: $RESULTS_DIR"
say "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"

anchor_cfgs=default
[ -n "$ANCHOR_CORETYPE" ] && anchor_cfgs="default $ANCHOR_CORETYPE"

if [ "$csnn_only" = 0 ]; then
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        say ""
        say "== round $r of $ROUNDS"
        # each workload: anchor (default), csnn, anchor (tuned BLAS)
        for w in train_b16 infer_b16 infer_b256 latency_b1 ann_train; do
            case $w in
            train_b16) a="--variant snn --task train --batch 16 --warmup $TRAIN_WARMUP --iters $TRAIN_ITERS"
                c="--preset fer-csnn --mode train --batch 16 --warmup $TRAIN_WARMUP --iters $(csnn_iters "$TRAIN_ITERS")" ;;
            infer_b16) a="--variant snn --task infer --batch 16 --warmup $INFER16_WARMUP --iters $INFER16_ITERS"
                c="--preset fer-csnn --mode infer --batch 16 --warmup $INFER16_WARMUP --iters $(csnn_iters "$INFER16_ITERS")" ;;
            infer_b256) a="--variant snn --task infer --batch 256 --warmup $INFER256_WARMUP --iters $INFER256_ITERS"
                c="--preset fer-csnn --mode infer --batch 256 --warmup $INFER256_WARMUP --iters $(csnn_iters "$INFER256_ITERS")" ;;
            latency_b1) a="--variant snn --task latency --warmup $LAT_WARMUP --iters $LAT_ITERS"
                c="--preset fer-csnn --mode infer --batch 1 --warmup $LAT_WARMUP --iters $(csnn_iters "$LAT_ITERS")" ;;
            ann_train) a="--variant ann --task train --batch 16 --warmup $ANN_WARMUP --iters $ANN_ITERS"
                # (--layers: the dense layers' share of sgemm, a target too)
                c="--preset fer-cnn --mode train --batch 16 --warmup $ANN_WARMUP --iters $(csnn_iters "$ANN_ITERS") --layers" ;;
            esac
            say "-- $w"
            i=0
            for cfg in $anchor_cfgs; do
                # shellcheck disable=SC2086
                anchor "$w" "$cfg" "$r" $a
                if [ "$i" = 0 ]; then
                    # shellcheck disable=SC2086
                    csnn "$w" csnn "$r" --threads "$THREADS" $c
                fi
                i=$((i + 1))
            done
            pair "$w" "$r"
        done
        r=$((r + 1))
    done
fi

if [ "$levers" = 1 ]; then
    say ""
    say "== libcsnn's execution-plan levers (CSNN_DISABLE) and thread scaling"
    # lever_args WORKLOAD: the csnn bench options of a lever/thread workload
    lever_args() {
        case $1 in
        train_b16) echo "--mode train --batch 16 --warmup $TRAIN_WARMUP --iters $(csnn_iters "$TRAIN_ITERS")" ;;
        infer_b16) echo "--mode infer --batch 16 --warmup $INFER16_WARMUP --iters $(csnn_iters "$INFER16_ITERS")" ;;
        latency_b1) echo "--mode infer --batch 1 --warmup $LAT_WARMUP --iters $(csnn_iters "$LAT_ITERS")" ;;
        esac
    }
    r=1
    while [ "$r" -le "$LEVER_ROUNDS" ]; do
        for set in none fusion sparse bnfold pack temporal skinny amx winograd fusion,sparse,bnfold,pack,temporal,skinny,amx,winograd; do
            dis=$set
            [ "$set" = none ] && dis=
            say "-- CSNN_DISABLE=$dis (round $r)"
            for w in train_b16 infer_b16 latency_b1; do
                c=$(lever_args "$w")
                # shellcheck disable=SC2086
                csnn "lever_$w" "$set" "$r" --preset fer-csnn --threads "$THREADS" --no-sgemm $c
            done
        done
        dis=
        for t in 1 "$THREADS"; do
            say "-- threads $t (round $r)"
            for w in train_b16 infer_b16 latency_b1; do
                c=$(lever_args "$w")
                # shellcheck disable=SC2086
                csnn "threads_$w" "t$t" "$r" --preset fer-csnn --threads "$t" --no-sgemm $c
            done
        done
        r=$((r + 1))
    done
fi

# ---- the summary: medians over the rounds
say ""
"$PY" - "$records" "$csnn_only" "$levers" <<'EOF'
import json, statistics, sys
path, csnn_only, levers = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
rows = []
for l in open(path):
    w, side, cfg, r, lb, la, js = l.rstrip("\n").split("\t", 6)
    rows.append(dict(w=w, side=side, cfg=cfg, r=int(r), lb=float(lb), la=float(la), d=json.loads(js)))

def med(xs):
    return statistics.median(xs) if xs else float("nan")

def value(x):
    d = x["d"]
    if x["w"].startswith("latency") or x["w"].endswith("latency_b1"):
        return d["median_ms"] if x["side"] == "anchor" else d["ms_per_step"]
    return d["samples_per_s"]

def rss(x):
    d = x["d"]
    return d["ru_maxrss_kb"] / 1024 if x["side"] == "anchor" else d["peak_rss_mb"]

def group(w, side, cfg):
    return [x for x in rows if x["w"] == w and x["side"] == side and x["cfg"] == cfg]

def loads(g):
    return "%s" % ", ".join("%.2f-%.2f" % (x["lb"], x["la"]) for x in g)

if not csnn_only:
    cfgs = sorted({x["cfg"] for x in rows if x["side"] == "anchor"}, key=lambda c: c != "default")
    print("== summary (median over rounds; load average 1-min before-after each run)")
    print()
    hdr = "| workload | " + " | ".join("anchor %s" % c for c in cfgs) + \
          " | libcsnn | ratio vs faster anchor | target | met | load (anchor; csnn) |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    spec = [("train_b16", "training b16 (samples/s)", 5, False),
            ("infer_b16", "inference b16 (samples/s)", 10, False),
            ("infer_b256", "inference b256 (samples/s)", 10, False),
            ("latency_b1", "single image b1 (ms)", 10, True),
            ("ann_train", "ANN twin training b16 (samples/s)", None, False)]
    for w, label, target, lower in spec:
        a = {c: med([value(x) for x in group(w, "anchor", c)]) for c in cfgs}
        cg = group(w, "csnn", "csnn")
        c = med([value(x) for x in cg])
        best = min(a.values()) if lower else max(a.values())
        ratio = best / c if lower else c / best
        met = "-" if target is None else ("yes" if ratio >= target else "NO")
        tg = "-" if target is None else ">= %gx%s" % (target, " lower" if lower else "")
        al = "; ".join(loads(group(w, "anchor", k)) for k in cfgs)
        print("| %s | %s | %.2f | %.2fx | %s | %s | %s; %s |" % (
            label, " | ".join("%.2f" % a[k] for k in cfgs), c, ratio, tg, met, al, loads(cg)))
    # memory: peak RSS of the training b16 processes; against the smaller anchor figure
    a = {k: med([rss(x) for x in group("train_b16", "anchor", k)]) for k in cfgs}
    cg = group("train_b16", "csnn", "csnn")
    c = med([rss(x) for x in cg])
    best = min(a.values())
    print("| peak memory, training b16 (MiB) | %s | %.0f | %.2f (1/%.1f) | <= 1/3 | %s | %s; %s |" % (
        " | ".join("%.0f" % a[k] for k in cfgs), c, c / best, best / c,
        "yes" if c * 3 <= best else "NO",
        "; ".join(loads(group("train_b16", "anchor", k)) for k in cfgs), loads(cg)))
    a = {k: med([rss(x) for x in group("ann_train", "anchor", k)]) for k in cfgs}
    c = med([rss(x) for x in group("ann_train", "csnn", "csnn")])
    print("| peak memory, ANN twin training b16 (MiB) | %s | %.0f | %.2f | - | - | |" % (
        " | ".join("%.0f" % a[k] for k in cfgs), c, c / min(a.values())))
    a = {k: med([rss(x) for x in group("infer_b256", "anchor", k)]) for k in cfgs}
    c = med([rss(x) for x in group("infer_b256", "csnn", "csnn")])
    print("| peak memory, inference b256 (MiB) | %s | %.0f | %.2f | - | - | |" % (
        " | ".join("%.0f" % a[k] for k in cfgs), c, c / min(a.values())))
    # the ANN twin's conv and linear layers against the sgemm rate of the
    # same process (csnn bench --layers)
    g = [x for x in group("ann_train", "csnn", "csnn")
         if x["d"].get("dense_layers_sgemm_fraction") is not None]
    if g:
        f = med([x["d"]["dense_layers_sgemm_fraction"] for x in g])
        print("| ANN twin's conv + linear layers (GFLOP/s) | %s | %.1f | %.1f %% of sgemm (rounds: %s) | >= 60 %% | %s | %s |" % (
            " | ".join("-" for _ in cfgs), med([x["d"]["dense_layers_gflops"] for x in g]), 100 * f,
            ", ".join("%.1f %%" % (100 * x["d"]["dense_layers_sgemm_fraction"]) for x in g),
            "yes" if f >= 0.60 else "NO", loads(g)))
    cs = [x["d"] for x in rows if x["side"] == "csnn" and x["d"].get("sgemm_gflops")]
    if cs:
        print()
        print("libcsnn dense-equivalent GFLOP/s (median) against its sgemm rate:")
        for w, label, _, _ in spec:
            g = [x["d"] for x in group(w, "csnn", "csnn")]
            if g:
                print("  %-28s %7.1f GFLOP/s; sgemm %6.1f GFLOP/s (%.0f %%)" % (
                    label.split(" (")[0], med([d["gflops"] for d in g]), med([d["sgemm_gflops"] for d in g]),
                    100 * med([d["gflops"] / d["sgemm_gflops"] for d in g])))

if levers:
    print()
    print("== levers: median ms per step (samples/s); gain = time with the lever off / time with all on")
    print()
    sets = ["none", "fusion", "sparse", "bnfold", "pack", "temporal", "skinny", "amx", "winograd",
            "fusion,sparse,bnfold,pack,temporal,skinny,amx,winograd"]
    ws = [("train_b16", "train b16"), ("infer_b16", "infer b16"), ("latency_b1", "infer b1")]
    print("| CSNN_DISABLE | " + " | ".join(l for _, l in ws) + " | load |")
    print("|---|" + "---|" * len(ws) + "---|")
    base = {w: med([x["d"]["ms_per_step"] for x in group("lever_" + w, "csnn", "none")]) for w, _ in ws}
    for s in sets:
        cells, ld = [], []
        for w, _ in ws:
            g = group("lever_" + w, "csnn", s)
            ms = med([x["d"]["ms_per_step"] for x in g])
            sps = med([x["d"]["samples_per_s"] for x in g])
            cells.append("%.2f ms (%.1f/s)%s" % (ms, sps, "" if s == "none" else ", x%.2f" % (ms / base[w])))
            ld.append(loads(g))
        print("| %s | %s | %s |" % ("(all on)" if s == "none" else s, " | ".join(cells), "; ".join(ld)))
    print()
    print("== thread scaling: median ms per step")
    print()
    ts = sorted({x["cfg"] for x in rows if x["w"].startswith("threads_")}, key=lambda c: int(c[1:]))
    print("| threads | " + " | ".join(l for _, l in ws) + " | load |")
    print("|---|" + "---|" * len(ws) + "---|")
    one = {w: med([x["d"]["ms_per_step"] for x in group("threads_" + w, "csnn", "t1")]) for w, _ in ws}
    for t in ts:
        cells, ld = [], []
        for w, _ in ws:
            g = group("threads_" + w, "csnn", t)
            ms = med([x["d"]["ms_per_step"] for x in g])
            cells.append("%.2f ms%s" % (ms, "" if t == "t1" else " (speed-up %.2fx)" % (one[w] / ms)))
            ld.append(loads(g))
        print("| %s | %s | %s |" % (t[1:], " | ".join(cells), "; ".join(ld)))
EOF
say ""
say "raw results kept in $RESULTS_DIR"
