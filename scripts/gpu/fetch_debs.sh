#!/usr/bin/env bash
# scripts/gpu/fetch_debs.sh - run on a machine WITH a Debian package
# registry (Debian 12 / bookworm, amd64): downloads the .deb files of the
# libraries libcsnn builds against (OpenBLAS, libpng, libjpeg-turbo, zlib,
# cmocka, and pkgconf in case the target has no pkg-config) with
# `apt-get download` and unpacks them with `dpkg -x` into <repo>/.gpu-deps/root,
# for a GPU machine that has no registry (see run_gpu_checks.sh).
#
# Idempotent: does nothing when .gpu-deps/root/.complete lists the same
# packages; FORCE=1 refetches. Keeps the tree small (no docs, no static
# libraries); KEEP_DEBS=1 keeps the .deb files in .gpu-deps/debs.
#
# .gpu-deps/ must not be committed: add `/.gpu-deps/` to .gitignore and pass
# `.gpu-deps` in the device tool's `carry` list.
#
# The SpikingJelly anchor of run_gpu_checks.sh also travels in .gpu-deps:
# scripts/gpu/fetch_sj.sh copies SpikingJelly master's package into
# .gpu-deps/spikingjelly (this script leaves that folder alone). Run both:
#     scripts/gpu/fetch_debs.sh && scripts/gpu/fetch_sj.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPS=${GPU_DEPS_DIR:-$ROOT/.gpu-deps}
PKGS=(
    libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0
    libpng16-16 libpng-dev
    zlib1g zlib1g-dev
    libjpeg62-turbo libjpeg62-turbo-dev
    libcmocka0 libcmocka-dev
    pkgconf-bin libpkgconf3
)
want="${PKGS[*]}"

if [ "${FORCE:-0}" != 1 ] && [ -f "$DEPS/root/.complete" ] &&
    [ "$(head -n 1 "$DEPS/root/.complete")" = "$want" ]; then
    echo "fetch_debs: $DEPS/root is up to date ($(wc -l < "$DEPS/root/.complete") lines of manifest)"
    exit 0
fi

command -v apt-get >/dev/null || { echo "fetch_debs: apt-get not found" >&2; exit 1; }
command -v dpkg >/dev/null || { echo "fetch_debs: dpkg not found" >&2; exit 1; }
arch=$(dpkg --print-architecture)
multi=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

mkdir -p "$DEPS/debs"
rm -rf "$DEPS/root.new"
mkdir -p "$DEPS/root.new"
(
    cd "$DEPS/debs"
    for p in "${PKGS[@]}"; do
        if ! ls "${p}"_*_"${arch}".deb "${p}"_*_all.deb >/dev/null 2>&1; then
            echo "fetch_debs: apt-get download $p"
            apt-get download -q "$p"
        fi
    done
)
manifest=$(mktemp)
echo "$want" > "$manifest"
for deb in "$DEPS"/debs/*.deb; do
    dpkg -x "$deb" "$DEPS/root.new"
    dpkg-deb -f "$deb" Package Version Architecture | tr '\n' ' ' >> "$manifest"
    echo >> "$manifest"
done
# slim down: documentation, static libraries, lintian overrides
rm -rf "$DEPS/root.new/usr/share/doc" "$DEPS/root.new/usr/share/man" \
    "$DEPS/root.new/usr/share/lintian" "$DEPS/root.new/usr/share/info" \
    "$DEPS/root.new/usr/share/aclocal"
find "$DEPS/root.new" -name '*.a' -delete
# LAPACK is not used (7 MB)
find "$DEPS/root.new" \( -name 'liblapack.so*' -o -name 'lapack-openblas.pc' \) -delete

# checks: what the build needs is there
missing=0
for f in usr/include/$multi/openblas-pthread/cblas.h usr/include/png.h usr/include/zlib.h \
    usr/include/jpeglib.h usr/include/$multi/jconfig.h usr/include/cmocka.h \
    usr/lib/$multi/openblas-pthread/pkgconfig/openblas.pc usr/lib/$multi/pkgconfig/libpng.pc \
    usr/lib/$multi/pkgconfig/libjpeg.pc usr/lib/$multi/pkgconfig/zlib.pc \
    usr/lib/$multi/pkgconfig/cmocka.pc usr/lib/$multi/openblas-pthread/libopenblas.so \
    usr/lib/$multi/libpng16.so usr/lib/$multi/libjpeg.so usr/lib/$multi/libcmocka.so \
    usr/lib/$multi/libz.so usr/bin/pkgconf; do
    if [ ! -e "$DEPS/root.new/$f" ]; then
        echo "fetch_debs: MISSING $f" >&2
        missing=1
    fi
done
# every .so symlink must resolve inside the tree
while IFS= read -r l; do
    if [ ! -e "$l" ]; then
        echo "fetch_debs: dangling link $l -> $(readlink "$l")" >&2
        missing=1
    fi
done < <(find "$DEPS/root.new" -type l)
[ "$missing" = 0 ] || { echo "fetch_debs: incomplete, not installed" >&2; exit 1; }

echo "$multi" > "$DEPS/root.new/.multiarch"
mv "$manifest" "$DEPS/root.new/.complete"
rm -rf "$DEPS/root"
mv "$DEPS/root.new" "$DEPS/root"
[ "${KEEP_DEBS:-0}" = 1 ] || rm -rf "$DEPS/debs"

# the newest glibc symbol version the binaries need (the GPU machine's
# glibc must be at least this)
glibc=$(find "$DEPS/root" -type f \( -name '*.so*' -o -path '*/bin/*' \) -exec objdump -T {} + 2>/dev/null |
    grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1 || true)
echo "${glibc:-GLIBC_?}" > "$DEPS/root/.glibc"
echo "fetch_debs: unpacked $(($(wc -l < "$DEPS/root/.complete") - 1)) packages into $DEPS/root" \
    "($(du -sh "$DEPS/root" | cut -f1)); needs glibc >= ${glibc#GLIBC_}"
