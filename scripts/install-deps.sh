#!/bin/sh
# Installs the Debian 12 packages libcsnn needs to build and test, if any are
# missing. Run as root (or prefix the apt-get it prints with sudo).
set -eu
packages="build-essential pkg-config meson ninja-build cmake python3
libopenblas-dev libpng-dev libjpeg-dev zlib1g-dev libcmocka-dev libcairo2-dev
abigail-tools"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
echo "install-deps: installing$missing"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: not root; run: apt-get update && apt-get install -y$missing" >&2
        exit 1
    fi
else
    SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
