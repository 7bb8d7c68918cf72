#!/bin/sh
# Configures (or reconfigures) and builds libcsnn in ./build (or $1). The
# CUDA module is built when nvcc is found: /usr/local/cuda/bin goes on PATH
# when it exists, since meson looks for nvcc only on PATH.
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
[ -d /usr/local/cuda/bin ] && PATH=/usr/local/cuda/bin:$PATH && export PATH
if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir"
else
    meson setup "$dir"
fi
ninja -C "$dir"
