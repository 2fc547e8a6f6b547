"""Build the optional Cython extensions ``applier.native._rowkeys`` (row images, native/
_rowkeys.pyx) and ``applier.native._scan`` (the coordinator's binlog scanner, native/_scan.pyx).

Project metadata lives in pyproject.toml; this file only adds the extensions. If Cython
is missing or the C compiler fails, the build still succeeds without them (with a
warning) and the applier uses its pure-Python paths, which give identical results.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_NATIVE = ("_rowkeys", "_scan")


def _warn(message: str) -> None:
    banner = "*" * 78
    print(
        f"\n{banner}\nWARNING: {message}\n"
        "applier.native is not (fully) built; the pure-Python paths will be used "
        f"(same results, slower).\n{banner}\n",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed compilation into a warning."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # any failure means: no extension
            _warn(f"building the native extension failed: {e}")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:
            _warn(f"compiling {ext.name} failed: {e}")


def _extensions() -> list[Extension]:
    if os.environ.get("APPLIER_NO_NATIVE", "").strip() not in ("", "0"):
        _warn("APPLIER_NO_NATIVE is set")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as e:
        _warn(f"Cython is not available ({e})")
        return []
    extra = [] if os.name == "nt" else ["-O2"]
    exts = [
        Extension(
            f"applier.native.{name}",
            sources=[os.path.join("native", f"{name}.pyx")],
            include_dirs=["native"],  # native/xxhash: the vendored xxHash header
            extra_compile_args=extra,
        )
        for name in _NATIVE
    ]
    try:
        return cythonize(
            exts,
            compiler_directives={"language_level": "3"},
            quiet=True,
        )
    except Exception as e:  # a .pyx that does not translate: no extension
        _warn(f"cythonize native/*.pyx failed: {e}")
        return []


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    # the generated C source is a build input, not something to install
    exclude_package_data={"applier.native": ["*.c"]},
)
