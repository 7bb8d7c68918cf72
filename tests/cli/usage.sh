# usage.sh - the csnn tool's command line: usage errors (exit 2), --help
# (exit 0, on stdout) and runtime failures (exit 1 with the library's
# message).
. "$(dirname "$0")/common.sh"

# ---- usage errors: exit 2, a message on stderr, nothing on stdout
expect 2 "$CSNN"
err_has "command is missing"
out_empty
expect 2 "$CSNN" frobnicate
err_has "unknown command 'frobnicate'"
expect 2 "$CSNN" train --data d --out m.csnn --bogus
err_has "unknown option '--bogus'"
out_empty
expect 2 "$CSNN" eval --model m.csnn --data d -x
err_has "unknown option '-x'"
expect 2 "$CSNN" train --out m.csnn
err_has "--data is required"
expect 2 "$CSNN" eval --data d
err_has "--model is required"
expect 2 "$CSNN" synth
err_has "--out is required"
expect 2 "$CSNN" train --data d --out m.csnn --epochs x
err_has "--epochs: 'x' is not an integer"
out_empty
expect 2 "$CSNN" train --data d --out m.csnn --lr 1e-3x
err_has "--lr: '1e-3x' is not a number"
expect 2 "$CSNN" train --data d --out m.csnn --epochs
err_has "--epochs needs a value"
expect 2 "$CSNN" train --data d --out m.csnn --epochs 0
err_has "--epochs: 0 is outside"
expect 2 "$CSNN" synth --out d --per-class 0
err_has "--per-class: 0 is outside"
expect 2 "$CSNN" synth --out d --seed -1
err_has "--seed: '-1' is not a non-negative integer"
expect 2 "$CSNN" train --data d --out m.csnn --augment hflip,wobble=3
err_has "--augment: unknown item 'wobble'"
expect 2 "$CSNN" train --data d --out m.csnn --augment rot
err_has "--augment: rot needs a value"
expect 2 "$CSNN" train --data d --out m.csnn --augment crop=four
err_has "--augment: crop: 'four' is not a number"
expect 2 "$CSNN" train --data d --out m.csnn --augment hflip=2
err_has "--augment: 2 is outside"
expect 2 "$CSNN" train --data d --out m.csnn --preset fer-csnn --spec x.spec
err_has "--preset and --spec exclude each other"
expect 2 "$CSNN" train --data d --out m.csnn --val-split 0.2 --val-data v
err_has "exclude each other"
expect 2 "$CSNN" train --data d --out m.csnn --resume m.csnn.last --time-steps 2
err_has "--resume"
expect 2 "$CSNN" summary
err_has "one of --preset, --spec or --model is required"
expect 2 "$CSNN" summary --preset fer-csnn --model m.csnn
err_has "exclude each other"
expect 2 "$CSNN" predict --model m.csnn
err_has "an argument is missing"
expect 2 "$CSNN" eval --model m.csnn --data d extra
err_has "unexpected argument 'extra'"
expect 2 "$CSNN" eval --model=m.csnn --data=d --json=yes
err_has "--json takes no value"
if [ "$PLOTS" != 1 ]; then
    expect 2 "$CSNN" train --data d --out m.csnn --plots p
    err_has "not available"
    expect 2 "$CSNN" eval --model m.csnn --data d --plots p
    err_has "not available"
fi

# ---- help: exit 0, on stdout, nothing on stderr
expect 0 "$CSNN" --help
out_has "Usage: csnn COMMAND"
err_empty
expect 0 "$CSNN" --version
out_has "libcsnn"
for cmd in train eval predict summary synth; do
    expect 0 "$CSNN" $cmd --help
    out_has "Usage: csnn $cmd"
    out_has "--help"
    err_empty
    expect 0 "$CSNN" help $cmd
    out_has "Usage: csnn $cmd"
done
expect 0 "$CSNN" train -h
out_has "--augment LIST"

# ---- runtime failures: exit 1 with the library's message
write_tiny_spec
expect 1 "$CSNN" train --data "$WORK/no-such-dir" --out m.csnn --spec tiny.spec --quiet
err_has "no-such-dir"
err_has "CSNN_ERR_IO"
expect 1 "$CSNN" eval --model "$WORK/no-such-model.csnn" --data "$WORK"
err_has "no-such-model.csnn"
printf 'this is not a libcsnn model, just text that pretends to be one\n' >corrupt.csnn
expect 1 "$CSNN" eval --model corrupt.csnn --data "$WORK"
err_has "corrupt.csnn"
err_has "CSNN_ERR_FORMAT"
expect 1 "$CSNN" summary --model corrupt.csnn
err_has "CSNN_ERR_FORMAT"
expect 1 "$CSNN" predict --model corrupt.csnn x.png
err_has "CSNN_ERR_FORMAT"
expect 1 "$CSNN" summary --preset no-such-preset
err_has "unknown preset 'no-such-preset'"
err_has "CSNN_ERR_NOT_FOUND"
expect 1 "$CSNN" train --data "$WORK" --out m.csnn --preset no-such-preset --quiet
err_has "unknown preset 'no-such-preset'"
printf 'input 1x48x48\nconv 8 k=3\nbogus 3\n' >bad.spec
expect 1 "$CSNN" summary --spec bad.spec
err_has "line 3"
err_has "CSNN_ERR_SPEC"
expect 1 "$CSNN" summary --spec no-such.spec
err_has "no-such.spec"
expect 1 "$CSNN" train --data "$WORK" --out m.csnn --spec tiny.spec --device no-such-device --quiet
err_has "no-such-device"

# ---- summary and --time-steps (the spec text is edited)
expect 0 "$CSNN" summary --preset fer-csnn
out_has "Total params: 21,532,679"
out_has "Time steps: 4"
expect 0 "$CSNN" summary --preset fer-csnn --time-steps 8
out_has "Total params: 21,532,679"
out_has "Time steps: 8"
expect 0 "$CSNN" summary --spec tiny.spec --time-steps 2
out_has "Time steps: 2"
out_has "Total params: 5,335"
grep -v '^steps' tiny.spec >nosteps.spec
printf 'input 1x48x48 # the input\nconv 7 k=3 p=1;if;flatten;linear 7;lif\n' >oneline.spec
expect 0 "$CSNN" summary --spec nosteps.spec
out_has "Time steps: 1"
expect 0 "$CSNN" summary --spec nosteps.spec --time-steps 3
out_has "Time steps: 3"
expect 0 "$CSNN" summary --spec oneline.spec --time-steps 5
out_has "Time steps: 5"
printf 'input 1x48x48; steps 2; classes 7 # steps 9\nflatten; linear 7; lif\n' >inline.spec
expect 0 "$CSNN" summary --spec inline.spec --time-steps 6
out_has "Time steps: 6"
expect 0 "$CSNN" summary --list
out_has "fer-csnn"
out_has "fer-cnn"
echo "PASS"
