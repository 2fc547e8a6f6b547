"""Build the optional Cython extension ``applier.native._rowkeys`` (native/_rowkeys.pyx).

Project metadata lives in pyproject.toml; this file only adds the extension. If Cython
is missing or the C compiler fails, the build still succeeds without the extension (with
a warning) and the applier uses the pure-Python decoder, which gives identical results.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_PYX = os.path.join("native", "_rowkeys.pyx")


def _warn(message: str) -> None:
    banner = "*" * 78
    print(
        f"\n{banner}\nWARNING: {message}\n"
        "applier.native._rowkeys is not built; the pure-Python row decoder will be used "
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
    ext = Extension(
        "applier.native._rowkeys",
        sources=[_PYX],
        extra_compile_args=extra,
    )
    try:
        return cythonize(
            [ext],
            compiler_directives={"language_level": "3"},
            quiet=True,
        )
    except Exception as e:  # a .pyx that does not translate: no extension
        _warn(f"cythonize {_PYX} failed: {e}")
        return []


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    # the generated C source is a build input, not something to install
    exclude_package_data={"applier.native": ["*.c"]},
)
