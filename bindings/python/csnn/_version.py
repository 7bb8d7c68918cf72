"""Version of the csnn Python package.

Kept in its own module, free of imports, so that the build backend reads it
(pyproject.toml: ``version = {attr = "csnn._version.__version__"}``) without
loading libcsnn. It equals the libcsnn project version it was written with;
the meson test suite checks that it matches the library's version string.
"""

__version__ = "0.1.0"

#: The libcsnn ABI (SONAME number) this package was written for. The loader
#: refuses a library whose ``csnn_abi_version()`` differs.
ABI_VERSION = 0

#: The oldest libcsnn (CSNN_VERSION_NUMBER: major*10000 + minor*100 + patch)
#: that has every function this package calls; older ones trigger a warning.
MIN_VERSION_NUMBER = 100
