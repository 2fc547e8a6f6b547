"""Build the optional Cython extensions ``applier.native._rowkeys`` (row images, native/
_rowkeys.pyx) and ``applier.native._scan`` (the coordinator's binlog scanner, native/_scan.pyx).

Project metadata lives in pyproject.toml, the sdist's file list in MANIFEST.in; this file
only adds the extensions. The .pyx files are translated to C when the extensions are
built (not when an sdist is made: it ships the .pyx, never generated C), and both are
compiled in parallel. If Cython is missing or the C compiler fails, the build still
succeeds without them (with a warning) and the applier uses its pure-Python paths, which
give identical results.
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


def _jobs() -> int:
    return max(1, min(len(_NATIVE), os.cpu_count() or 1))


def _cythonize(extensions: list[Extension]) -> list[Extension]:
    """The extensions with their .pyx translated to C; [] (and a warning) without Cython."""
    try:
        from Cython.Build import cythonize
    except ImportError as e:
        _warn(f"Cython is not available ({e})")
        return []
    try:
        return cythonize(
            extensions,
            compiler_directives={"language_level": "3"},
            quiet=True,
            nthreads=_jobs() if _jobs() > 1 else 0,
        )
    except Exception as e:  # a .pyx that does not translate: no extension
        _warn(f"cythonize native/*.pyx failed: {e}")
        return []


class OptionalBuildExt(build_ext):
    """build_ext that cythonizes first, compiles the extensions in parallel
    (``--parallel`` overrides) and turns any failure into a warning."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel and _jobs() > 1:
            self.parallel = _jobs()

    def run(self) -> None:
        try:
            # translate in place: the Extension objects carry what finalize_options set
            translated = {e.name: e for e in _cythonize(self.extensions)} if self.extensions else {}
            self.extensions = [e for e in self.extensions if e.name in translated]
            for ext in self.extensions:
                ext.sources = translated[ext.name].sources
            if self.extensions:
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
    extra = [] if os.name == "nt" else ["-O2"]
    return [
        Extension(
            f"applier.native.{name}",
            sources=[os.path.join("native", f"{name}.pyx")],
            include_dirs=["native"],  # native/xxhash: the vendored xxHash header
            extra_compile_args=extra,
            libraries=["z"] if name == "_scan" else [],  # zlib's crc32 (frame_events)
        )
        for name in _NATIVE
    ]


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    # the generated C source is a build input, not something to install
    exclude_package_data={"applier.native": ["*.c"]},
)
