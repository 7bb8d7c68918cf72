#!/bin/sh
# check_module_exports.sh MODULE LIBCSNN
# The CUDA module exports exactly csnn_backend_module_entry, and libcsnn
# itself does not depend on the CUDA runtime or cuBLAS (it dlopens the
# module on demand). Exit 77 when nm/readelf are missing.
set -u
module=$1
libcsnn=$2
command -v nm >/dev/null 2>&1 || { echo "SKIP: nm not found"; exit 77; }
command -v readelf >/dev/null 2>&1 || { echo "SKIP: readelf not found"; exit 77; }
status=0
exports=$(nm -D --defined-only "$module" | awk '{print $NF}' | sort)
echo "exports of $module:"
echo "$exports"
if [ "$exports" != "csnn_backend_module_entry" ]; then
    echo "FAIL: the module must export only csnn_backend_module_entry"
    status=1
fi
needed=$(readelf -d "$libcsnn" | grep NEEDED)
echo "NEEDED of $libcsnn:"
echo "$needed"
if echo "$needed" | grep -Eq 'libcuda|libcudart|libcublas'; then
    echo "FAIL: libcsnn must not link the CUDA runtime or cuBLAS"
    status=1
fi
mneeded=$(readelf -d "$module" | grep NEEDED)
echo "NEEDED of $module:"
echo "$mneeded"
if echo "$mneeded" | grep -q 'libcsnn\.so'; then
    echo "FAIL: the module must not link libcsnn"
    status=1
fi
exit $status
