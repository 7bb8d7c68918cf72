#!/bin/sh
# Installs libcsnn into a temporary prefix (meson install --destdir), then
# configures, builds and runs an out-of-tree CMake project (tests/cmake)
# that finds it with find_package(csnn) and links csnn::csnn:
#  - raii (examples/raii.cpp, C++17 RAII wrappers) trains a small model on
#    synthetic faces, saves it and writes a few image files;
#  - classify (examples/classify.c) classifies those files with the model.
# Also checks that the programs use the staged copy of the library and that
# find_package refuses a version the package does not satisfy.
# Skips (exit 77) without cmake or a C compiler.
# usage: cmake_consumer.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
command -v cmake >/dev/null 2>&1 || { echo "cmake missing: skip"; exit 77; }
command -v cc >/dev/null 2>&1 || { echo "no C compiler: skip"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# meson test points LD_LIBRARY_PATH at the build tree; the programs must find
# the staged library through the run path CMake gives them instead
unset LD_LIBRARY_PATH
meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
config=$(find "$tmp/root" -name csnnConfig.cmake | head -n 1)
[ -n "$config" ] || { echo "csnnConfig.cmake was not installed"; exit 1; }
[ -f "$(dirname "$config")/csnnConfigVersion.cmake" ] || { echo "csnnConfigVersion.cmake missing"; exit 1; }
pc=$(find "$tmp/root" -name csnn.pc | head -n 1)
prefix=$(sed -n 's/^prefix=//p' "$pc")
staged="$tmp/root$prefix"
echo "staged prefix: $staged"
echo "config: $config"

cmake -S "$src/tests/cmake" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$staged" \
      -DCSNN_EXAMPLES_DIR="$src/examples" -DCMAKE_BUILD_TYPE=Release
cmake --build "$tmp/build"

# the programs must use the installed copy, not the build tree's (a static
# libcsnn is inside them)
shared=$(find "$staged" -name 'libcsnn.so*' | head -n 1)
linked_to_stage() {
    [ -z "$shared" ] || ldd "$1" | grep -q "$tmp/root" || {
        echo "$1 is not linked to the staged copy"; ldd "$1"; exit 1; }
}
linked_to_stage "$tmp/build/classify"

cd "$tmp"
if [ -x "$tmp/build/raii" ]; then
    linked_to_stage "$tmp/build/raii"
    "$tmp/build/raii" "$tmp/model.csnn" "$tmp/images"
    # shellcheck disable=SC2086
    "$tmp/build/classify" --top 2 "$tmp/model.csnn" "$tmp"/images/*/* > "$tmp/out.txt"
    cat "$tmp/out.txt"
    lines=$(wc -l < "$tmp/out.txt")
    [ "$lines" -eq 14 ] || { echo "classify printed $lines lines, not 14"; exit 1; }
    # an unreadable file: reported, the others still classified, exit status 1
    set +e
    "$tmp/build/classify" "$tmp/model.csnn" "$tmp/missing.png" "$tmp"/images/happy/* > "$tmp/out2.txt" 2> "$tmp/err.txt"
    rc=$?
    set -e
    [ "$rc" -eq 1 ] || { echo "classify exit status $rc with a missing file, not 1"; exit 1; }
    grep -q CSNN_ERR_IO "$tmp/err.txt" || { echo "no CSNN_ERR_IO message"; cat "$tmp/err.txt"; exit 1; }
    [ "$(wc -l < "$tmp/out2.txt")" -eq 2 ] || { echo "classify skipped good files"; exit 1; }
else
    "$tmp/build/classify" --help
fi

# find_package must refuse versions the package does not satisfy, and accept
# ranges that include it (ranges need CMake >= 3.19)
configure() { # want log
    cmake -S "$src/tests/cmake" -B "$tmp/build-cfg" -DCMAKE_PREFIX_PATH="$staged" \
          -DCSNN_EXAMPLES_DIR="$src/examples" -DCSNN_REQUIRED_VERSION="$1" > "$2" 2>&1
    rc=$?
    rm -rf "$tmp/build-cfg"
    return $rc
}
for want in 99.0 0.99 1; do
    if configure "$want" "$tmp/refuse.log"; then
        echo "find_package(csnn $want) succeeded"; exit 1
    fi
    grep -q "requested version" "$tmp/refuse.log" || { cat "$tmp/refuse.log"; exit 1; }
done
cmake_version=$(cmake --version | sed -n 's/^cmake version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
set -- $cmake_version
if [ "$1" -gt 3 ] || { [ "$1" -eq 3 ] && [ "$2" -ge 19 ]; }; then
    configure "0.1...<1" "$tmp/range.log" || { cat "$tmp/range.log"; echo "range 0.1...<1 refused"; exit 1; }
    if configure "0.2...<1" "$tmp/range.log"; then echo "range 0.2...<1 accepted"; exit 1; fi
fi
echo "cmake consumer: OK"
