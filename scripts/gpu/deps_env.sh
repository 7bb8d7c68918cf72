# shellcheck shell=bash
# scripts/gpu/deps_env.sh - sourced (bash) by run_gpu_checks.sh and
# fetch_debs.sh: points the build at the Debian packages unpacked by
# fetch_debs.sh into <repo>/.gpu-deps/root (for machines without a package
# registry).
#
#   gpu_deps_env DEPS_DIR     rewrites the .pc files of DEPS_DIR/root into
#                             DEPS_DIR/pkgconfig with absolute paths into the
#                             tree (they say prefix=/usr; the tree may have
#                             moved since fetch_debs.sh ran, so this is done
#                             where the build runs, every time), then exports
#                             PKG_CONFIG_PATH, LD_LIBRARY_PATH, LIBRARY_PATH,
#                             C_INCLUDE_PATH and, when no pkg-config is on
#                             PATH, PKG_CONFIG (the bundled pkgconf).
#
# Idempotent; safe to source twice.

_gpu_prepend() { # VAR DIR...: prepend existing dirs, no duplicates
    local var=$1 d cur
    shift
    for d in "$@"; do
        [ -d "$d" ] || continue
        cur=${!var-}
        case ":$cur:" in *":$d:"*) continue ;; esac
        if [ -n "$cur" ]; then export "$var=$d:$cur"; else export "$var=$d"; fi
    done
}

gpu_deps_env() {
    local deps
    deps=$(cd "$1" 2>/dev/null && pwd) || { echo "gpu_deps_env: no directory $1" >&2; return 1; }
    local root=$deps/root
    if [ ! -f "$root/.complete" ]; then
        echo "gpu_deps_env: $root is missing or incomplete: run scripts/gpu/fetch_debs.sh first" >&2
        return 1
    fi
    root=$(cd "$root" && pwd)
    local pcdir=$deps/pkgconfig
    rm -rf "$pcdir"
    mkdir -p "$pcdir"
    local f
    while IFS= read -r f; do
        # =/usr..., -L/usr..., -I/usr... -> into the tree (prefix, libdir,
        # includedir and hard-coded flags alike)
        sed -e "s#=/usr/#=$root/usr/#g" -e "s#=/usr\$#=$root/usr#g" \
            -e "s#-L/usr/#-L$root/usr/#g" -e "s#-I/usr/#-I$root/usr/#g" \
            -e "s#=/lib/#=$root/lib/#g" -e "s#-L/lib/#-L$root/lib/#g" \
            "$f" > "$pcdir/$(basename "$f")"
    done < <(find "$root" -name '*.pc' \( -type f -o -type l \))
    local multi
    multi=$(cat "$root/.multiarch" 2>/dev/null || echo x86_64-linux-gnu)
    if ! command -v pkg-config >/dev/null 2>&1 && [ -x "$root/usr/bin/pkgconf" ]; then
        export PKG_CONFIG="$root/usr/bin/pkgconf"
    fi
    _gpu_prepend PKG_CONFIG_PATH "$pcdir"
    # Also in PKG_CONFIG_LIBDIR (which replaces the default search path, so
    # the default is appended): a test that sets PKG_CONFIG_PATH itself
    # (tests/consumer) still finds csnn.pc's Requires.private here.
    if [ -z "${PKG_CONFIG_LIBDIR-}" ]; then
        local sys_pc
        sys_pc=$("${PKG_CONFIG:-pkg-config}" --variable pc_path pkg-config 2>/dev/null) ||
            sys_pc=/usr/local/lib/$multi/pkgconfig:/usr/local/lib/pkgconfig:/usr/local/share/pkgconfig:/usr/lib/$multi/pkgconfig:/usr/lib/pkgconfig:/usr/share/pkgconfig
        export PKG_CONFIG_LIBDIR="$sys_pc"
    fi
    _gpu_prepend PKG_CONFIG_LIBDIR "$pcdir"
    _gpu_prepend LD_LIBRARY_PATH "$root/lib/$multi" "$root/usr/lib/$multi" \
        "$root/usr/lib/$multi/openblas-pthread"
    _gpu_prepend LIBRARY_PATH "$root/lib/$multi" "$root/usr/lib/$multi" \
        "$root/usr/lib/$multi/openblas-pthread"
    _gpu_prepend C_INCLUDE_PATH "$root/usr/include/$multi" "$root/usr/include"
    _gpu_prepend CPLUS_INCLUDE_PATH "$root/usr/include/$multi" "$root/usr/include"
    return 0
}
