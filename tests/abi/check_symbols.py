#!/usr/bin/env python3
"""The exported symbols of libcsnn are exactly the CSNN_API functions of the
public headers and exactly the names of the linker version script.

usage: check_symbols.py INCLUDE_DIR MAP_FILE LIBRARY
Standard library only; needs `nm` (binutils)."""
import re
import subprocess
import sys
from pathlib import Path


def header_symbols(include_dir):
    names = set()
    for header in sorted(Path(include_dir).glob("*.h")):
        text = header.read_text()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"\\\n", " ", text)                     # join continued lines
        text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)      # drop preprocessor lines
        for decl in re.findall(r"CSNN_API\s+([^;{]*?)\(", text):
            m = re.search(r"(\w+)\s*$", decl)
            if m:
                names.add(m.group(1))
    return names


def map_symbols(map_file):
    text = re.sub(r"/\*.*?\*/", " ", Path(map_file).read_text(), flags=re.S)
    names = set()
    for block in re.findall(r"global:(.*?)(?:local:|\})", text, flags=re.S):
        for tok in re.findall(r"([A-Za-z_]\w*)\s*;", block):
            names.add(tok)
    return names


def exported_symbols(library):
    out = subprocess.run(["nm", "-D", "--defined-only", library], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "TtWwDdBbRr" and parts[1] != "A":
            names.add(parts[2].split("@")[0])
    return names


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    hdr = header_symbols(sys.argv[1])
    mp = map_symbols(sys.argv[2])
    exp = exported_symbols(sys.argv[3])
    ok = True
    for label, a, b in (("declared in the headers but not in the map", hdr, mp),
                        ("in the map but not declared in the headers", mp, hdr),
                        ("declared but not exported by the library", hdr, exp),
                        ("exported by the library but not declared", exp, hdr)):
        diff = sorted(a - b)
        if diff:
            ok = False
            print(f"{label}: {', '.join(diff)}")
    if not all(n.startswith("csnn_") and not n.startswith("csnn__") for n in exp):
        ok = False
        print("exported names outside the csnn_ prefix or internal csnn__ names")
    print(f"{len(hdr)} public functions checked: {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
