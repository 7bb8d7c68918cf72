#!/usr/bin/env bash
# scripts/gpu/fetch_sj.sh - puts SpikingJelly's Python package (the
# spikingjelly/ folder only: no docs, tests, examples or benchmark data) into
# <repo>/.gpu-deps/spikingjelly/, so that a GPU session's `carry` of
# .gpu-deps brings it along; run_gpu_checks.sh then runs the SpikingJelly
# anchor (scripts/gpu/anchor_gpu.py) with PYTHONPATH=<repo>/.gpu-deps.
#
# The GPU machine has PyTorch (>= 2.6) and CuPy but no registry; the anchor
# needs SpikingJelly's NEWEST source (master, version 2.0.0.dev1, which
# needs torch >= 2.6 - the 0.0.0.0.14 release of the CPU anchor does not
# know the newer backends).
#
# Where the source comes from (first that applies):
#   SJ_MASTER=DIR   a checkout of SpikingJelly (the folder holding
#                   spikingjelly/), e.g. a `git worktree` of a mirror;
#   SJ_GIT_DIR=DIR  a git directory (a bare mirror): the tree of SJ_COMMIT is
#                   exported with `git archive` (no work tree needed); default
#                   /work/.mirror/fangwei123456+spikingjelly/repo when it
#                   exists;
#   SJ_COMMIT       the commit to export from SJ_GIT_DIR (default: master's
#                   afb132264a8cbe38d0f221dcef04053e6ba134d3, the one named in
#                   shared/fixtures/spikingjelly/README.md).
#
# Idempotent: does nothing when .gpu-deps/spikingjelly.commit already names
# the same source (FORCE=1 copies again). About 4 MB: with the .debs of
# fetch_debs.sh the carry stays far below its 64 MiB limit.
#
# .gpu-deps/ is ignored by git (.gitignore): never commit it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPS=${GPU_DEPS_DIR:-$ROOT/.gpu-deps}
DEST=$DEPS/spikingjelly
STAMP=$DEPS/spikingjelly.commit
SJ_COMMIT=${SJ_COMMIT:-afb132264a8cbe38d0f221dcef04053e6ba134d3}
default_git=/work/.mirror/fangwei123456+spikingjelly/repo

mkdir -p "$DEPS"
tmp=$DEPS/spikingjelly.new
rm -rf "$tmp"
mkdir -p "$tmp"

if [ -n "${SJ_MASTER:-}" ]; then
    src=$(cd "$SJ_MASTER" && pwd)
    [ -f "$src/spikingjelly/__init__.py" ] ||
        { echo "fetch_sj: $src has no spikingjelly/__init__.py (SJ_MASTER must be the folder holding spikingjelly/)" >&2; exit 1; }
    rev=$(git -C "$src" rev-parse HEAD 2>/dev/null || echo "unknown")
    what="checkout $src at $rev"
    if [ "${FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(head -n 1 "$STAMP")" = "$what" ] &&
        [ -f "$DEST/__init__.py" ]; then
        echo "fetch_sj: $DEST is up to date ($what)"
        rm -rf "$tmp"
        exit 0
    fi
    # the package folder only, without caches
    (cd "$src/spikingjelly" && tar --exclude='__pycache__' --exclude='*.pyc' -cf - .) |
        (cd "$tmp" && tar -xf -)
else
    gd=${SJ_GIT_DIR:-$default_git}
    [ -d "$gd" ] || { echo "fetch_sj: no SpikingJelly source: set SJ_MASTER (a checkout) or SJ_GIT_DIR (a git dir; $default_git is absent)" >&2; exit 1; }
    rev=$(git --git-dir="$gd" rev-parse --verify "$SJ_COMMIT^{commit}") ||
        { echo "fetch_sj: $gd has no commit $SJ_COMMIT" >&2; exit 1; }
    what="git $gd at $rev"
    if [ "${FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(head -n 1 "$STAMP")" = "$what" ] &&
        [ -f "$DEST/__init__.py" ]; then
        echo "fetch_sj: $DEST is up to date ($what)"
        rm -rf "$tmp"
        exit 0
    fi
    git --git-dir="$gd" archive "$rev" spikingjelly | (cd "$tmp" && tar -xf - --strip-components=1)
fi

if [ ! -f "$tmp/__init__.py" ] || [ ! -f "$tmp/activation_based/neuron/__init__.py" ]; then
    echo "fetch_sj: the copy lacks spikingjelly/activation_based/neuron: not a SpikingJelly tree?" >&2
    exit 1
fi
rm -rf "$DEST"
mv "$tmp" "$DEST"
{
    echo "$what"
    echo "files $(find "$DEST" -type f | wc -l), $(du -sh "$DEST" | cut -f1)"
} > "$STAMP"
echo "fetch_sj: $what -> $DEST ($(du -sh "$DEST" | cut -f1)); PYTHONPATH=$DEPS imports it"
