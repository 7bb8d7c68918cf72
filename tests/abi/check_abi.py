#!/usr/bin/env python3
"""The ABI of the built libcsnn against the stored baseline (tests/abi/libcsnn.abi).

usage: check_abi.py BASELINE LIBRARY INCLUDE_DIR        (the test 'abi-compat')
       check_abi.py --update BASELINE LIBRARY INCLUDE_DIR  (regenerate the baseline)

Needs abidiff/abidw (Debian: abigail-tools) and a library built with -g;
exit status 77 (skipped) when abidiff is missing, or when the library has no
debug information (then only its symbol table is compared: a removed symbol
still fails).

abidiff --no-added-syms compares the two; its exit status has bit 3 (8) for
an incompatible change (a removed function) and bit 2 (4) for any other ABI
change. Changes allowed by docs/ABI.md pass:
  - added functions (not reported with --no-added-syms);
  - added enumerators (abidiff's default filters count them harmless);
  - fields appended at the end of a struct (size-versioned structs and the
    backend table grow so): a report whose every struct change is a size
    increase plus data members inserted at or after the old size.
Every other change fails: a removed or changed function, a changed field
offset or type, a removed field, a changed enumerator value, ... A deliberate
change (with a SONAME bump, docs/ABI.md) regenerates the baseline:
  python3 tests/abi/check_abi.py --update tests/abi/libcsnn.abi \\
      BUILD/lib/libcsnn.so include/csnn
from a -g build (e.g. meson setup BUILD -Dbuildtype=debugoptimized)."""
import re
import shutil
import subprocess
import sys

SKIP = 77


def has_debug_info(library):
    readelf = shutil.which("readelf")
    if not readelf:
        return None
    out = subprocess.run([readelf, "-S", "-W", library], capture_output=True, text=True).stdout
    return ".debug_info" in out


# Lines of an abidiff report that describe where a change is, or a change
# that docs/ABI.md allows; anything else is an incompatible change.
NEUTRAL = [
    r"Functions changes summary: .*",
    r"Variables changes summary: .*",
    r"Function symbols changes summary: .*",
    r"Variable symbols changes summary: .*",
    r"\d+ functions? with some indirect sub-type change:",
    r"\[C\] '.*' (at .* )?has some indirect sub-type changes:",
    r"parameter \d+ of type '.*' has sub-type changes:",
    r"return type changed:",
    r"in pointed to type '.*':",
    r"pointed to type '.*' changed, as reported earlier",
    r"(unqualified )?underlying type '.*' changed, as reported earlier",
    r"in unqualified underlying type '.*':",
    r"type size hasn't changed",
    r"\d+ data member insertions?:",
    r"in referenced type '.*':",
]


def allowed(report):
    """(True, '') when every change in the report is allowed, else
    (False, the first offending line)."""
    struct_size = None  # old size of the struct being described
    for raw in report.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = re.fullmatch(r"underlying type 'struct (\w+)' changed:", line) or \
            re.fullmatch(r"(?:unqualified )?underlying type '(?:typedef )?(\w+)' changed:", line)
        if m:
            struct_size = None
            continue
        m = re.fullmatch(r"type size changed from (\d+) to (\d+) \(in bits\)", line)
        if m:
            old, new = int(m.group(1)), int(m.group(2))
            if new < old:
                return False, line
            struct_size = old
            continue
        m = re.fullmatch(r"'.*', at offset (\d+) \(in bits\)", line)
        if m:
            if struct_size is None or int(m.group(1)) < struct_size:
                return False, line
            continue
        if any(re.fullmatch(p, line) for p in NEUTRAL):
            continue
        return False, line
    return True, ""


def main(argv):
    update = len(argv) > 1 and argv[1] == "--update"
    args = argv[2:] if update else argv[1:]
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    baseline, library, include_dir = args
    tool = "abidw" if update else "abidiff"
    exe = shutil.which(tool)
    if not exe:
        print(f"skipped: {tool} not found (Debian: apt-get install abigail-tools)")
        return SKIP
    debug = has_debug_info(library)
    if update:
        if not debug:
            print(f"{library} has no debug information: build it with -g", file=sys.stderr)
            return 1
        subprocess.run([exe, "--no-show-locs", "--no-comp-dir-path", "--no-corpus-path",
                        "--drop-private-types", "--drop-undefined-syms",
                        "--headers-dir", include_dir, "--out-file", baseline, library],
                       check=True)
        print(f"wrote {baseline}")
        return 0
    res = subprocess.run([exe, "--no-show-locs", "--no-added-syms", baseline, library],
                         capture_output=True, text=True)
    rc, report = res.returncode, res.stdout + res.stderr
    if rc & 3:
        print(f"abidiff failed (exit status {rc}):\n{report}", file=sys.stderr)
        return 1
    if rc & 8:
        print(f"INCOMPATIBLE ABI CHANGE (symbols removed):\n{report}", file=sys.stderr)
        return 1
    if rc & 4:
        ok, line = allowed(report)
        if not ok:
            print(f"INCOMPATIBLE ABI CHANGE: {line}\n\n{report}\n"
                  "If this change is deliberate, bump the SONAME (docs/ABI.md) and regenerate "
                  "the baseline (see tests/abi/check_abi.py).", file=sys.stderr)
            return 1
        print(f"compatible ABI changes only (fields appended to structs):\n{report}")
    if not debug:
        print(f"note: {library} has no debug information: only its symbol table was compared "
              "with the baseline (no removed function); struct layouts, enum values and "
              "signatures need a -g build (e.g. -Dbuildtype=debugoptimized)")
        return SKIP
    print(f"ABI compatible with {baseline}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
