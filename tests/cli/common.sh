# common.sh - sourced by the csnn CLI tests (POSIX sh).
#
#     sh TEST.sh CSNN PYTHON PLOTS
#
# CSNN: the csnn tool; PYTHON: a python3 for checking JSON ("" when none was
# found); PLOTS: 1 when the tool was built with cairo. Every test works in
# a temporary directory that is removed at exit.

CSNN=$1
PYTHON=$2
PLOTS=$3
[ -x "$CSNN" ] || { echo "usage: sh $0 CSNN PYTHON PLOTS" >&2; exit 99; }
case $CSNN in /*) ;; *) CSNN=$(pwd)/$CSNN ;; esac

TINY_SPEC=$(cd "$(dirname "$0")" && pwd)/tiny.spec # before the cd below
WORK=$(mktemp -d "${TMPDIR:-/tmp}/csnn-cli.XXXXXX") || exit 99
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 99

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# expect STATUS COMMAND...: runs COMMAND (stdout in out.txt, stderr in
# err.txt) and checks its exit status.
expect() {
    want=$1
    shift
    "$@" >out.txt 2>err.txt
    got=$?
    if [ "$got" != "$want" ]; then
        echo "--- stdout:" >&2
        cat out.txt >&2
        echo "--- stderr:" >&2
        cat err.txt >&2
        fail "'$*' exited with $got, expected $want"
    fi
    echo "ok: $* (exit $got)"
}

# out_has TEXT / err_has TEXT: the last command's stdout / stderr has TEXT.
out_has() {
    grep -q -F -e "$1" out.txt || { cat out.txt >&2; fail "stdout lacks '$1'"; }
}
err_has() {
    grep -q -F -e "$1" err.txt || { cat err.txt >&2; fail "stderr lacks '$1'"; }
}
err_empty() {
    [ ! -s err.txt ] || { cat err.txt >&2; fail "stderr is not empty"; }
}
out_empty() {
    [ ! -s out.txt ] || { cat out.txt >&2; fail "stdout is not empty"; }
}

# is_png FILE
is_png() {
    [ -s "$1" ] || fail "$1 is missing or empty"
    [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "$1 is not a PNG file"
}

# A small spiking model for 48x48 inputs (5,335 parameters), tests/cli/tiny.spec.
write_tiny_spec() {
    cp "$TINY_SPEC" "${1:-tiny.spec}" || fail "cannot copy $TINY_SPEC"
}

# json_check FILE PYTHON-CODE [ARG...]: runs the code with `d` = the parsed
# JSON object of FILE (with lines=1 in the environment: the list of the
# objects on its lines) and sys.argv[4:] = the ARGs; skipped when no
# python3 was found.
json_check() {
    if [ -z "$PYTHON" ]; then
        echo "note: no python3: JSON of $1 not checked"
        return 0
    fi
    file=$1
    code=$2
    shift 2
    "$PYTHON" -c '
import json, sys
path, code, lines = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with open(path, encoding="utf-8") as f:
    text = f.read()
d = [json.loads(l) for l in text.splitlines()] if lines else json.loads(text)
exec(code)
' "$file" "$code" "${lines:-0}" "$@" || fail "JSON check of $file"
    echo "ok: JSON of $file"
}
