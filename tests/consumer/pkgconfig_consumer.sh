#!/bin/sh
# Installs libcsnn into a temporary prefix (meson install --destdir) and
# builds and runs examples/minimal.c out of tree with
# `pkg-config --cflags --libs csnn`: it trains fer-csnn for a few steps on a
# repeated batch (the loss must fall), saves and reloads the model.
# usage: pkgconfig_consumer.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
command -v pkg-config >/dev/null 2>&1 || { echo "pkg-config missing: skip"; exit 77; }
command -v cc >/dev/null 2>&1 || { echo "no C compiler: skip"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp/root" -name csnn.pc | head -n 1)
[ -n "$pc" ] || { echo "csnn.pc was not installed"; exit 1; }
# the installed .pc names the final prefix; point a copy of it at the staging root
pcdir="$tmp/pc"
mkdir -p "$pcdir"
prefix=$(sed -n 's/^prefix=//p' "$pc")
sed "s|^prefix=.*|prefix=$tmp/root$prefix|" "$pc" > "$pcdir/csnn.pc"
cflags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags csnn)
libs=$(PKG_CONFIG_PATH="$pcdir" pkg-config --libs csnn)
echo "pkg-config: $cflags $libs"
cc -std=c11 -Wall -Werror "$src/examples/minimal.c" $cflags $libs -o "$tmp/minimal"
libdir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=libdir csnn)
cd "$tmp"
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ./minimal "${CSNN_CONSUMER_STEPS:-6}" "$tmp/model.csnn"
# the program must use the installed library, not the build tree's
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd ./minimal | grep -q "$tmp/root" || { echo "not linked to the installed copy"; exit 1; }
