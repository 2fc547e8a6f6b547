"""Packaging: ``python -m build`` makes an sdist and a wheel from a copy of the source tree
(without any generated C or built extension in it); the sdist holds the Cython sources,
the vendored xxHash header and the examples but nothing generated; installed into a fresh
venv it builds ``applier.native`` and runs ``applier``. And the shipped systemd unit agrees
with the exit codes of ``applier/errors.py``.

Building compiles the two Cython extensions twice (wheel, then the sdist install): about
two minutes. Without a C compiler the build tests skip (and fail under CI).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from applier import errors

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 900  # seconds: python -m build (isolated env from PyPI, two compilations)
INSTALL_TIMEOUT = 900  # seconds: pip install of the sdist into a fresh venv
RUN_TIMEOUT = 60
NAME = "mts_applier"
# build outputs and caches that must not leak into the build (the .c/.so are regenerated)
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", "*.so", "*.c", "*.o",
    ".hypothesis", ".pytest_cache", ".ruff_cache", ".ci", "tests", "benchmarks",
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _compiler() -> str | None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) or shutil.which("cc") or shutil.which("gcc")


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} took over {timeout}s: {str(e.stdout or '')[-2000:]}")
    assert result.returncode == 0, (
        f"{' '.join(cmd)}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    return result


@pytest.fixture(scope="module")
def compiler() -> str:
    cc = _compiler()
    if cc is None:
        if _in_ci():
            pytest.fail("no C compiler (CI is set, so the packaging tests may not be skipped)")
        pytest.skip("no C compiler: the native extensions cannot be built (apt-get install gcc)")
    return cc


@pytest.fixture(scope="module")
def dist(compiler: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``python -m build`` of a clean copy of the tree: {"sdist": path, "wheel": path}."""
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    shutil.copytree(REPO, src, ignore=_NOT_SOURCES)
    out = base / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], BUILD_TIMEOUT)
    sdists, wheels = sorted(out.glob(f"{NAME}-*.tar.gz")), sorted(out.glob(f"{NAME}-*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, list(out.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0]}


def _sdist_names(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        names = tar.getnames()
    root = names[0].split("/")[0]
    return {n[len(root) + 1:] for n in names if n.startswith(root + "/")}


def test_sdist_holds_the_build_inputs_and_nothing_generated(dist):
    names = _sdist_names(dist["sdist"])
    for required in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in",
                     "native/_rowkeys.pyx", "native/_scan.pyx", "native/__init__.py",
                     "native/xxhash/xxhash.h", "native/xxhash/xxh3_inline.h", "native/xxhash/LICENSE",
                     "examples/applier.toml", "examples/applier.service", "examples/grafana-dashboard.json",
                     "applier/cli.py", "applier/config.py"):
        assert required in names, f"{required} missing from the sdist"
    generated = sorted(n for n in names if re.search(r"\.(c|so|o|pyc|pyd)$", n) or "__pycache__" in n)
    assert not generated, f"generated files in the sdist: {generated}"


def test_wheel_holds_the_extensions_and_the_metadata(dist):
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = whl.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = whl.read(metadata_name).decode()
    for ext in ("_rowkeys", "_scan"):
        assert any(re.fullmatch(rf"applier/native/{ext}\..*\.so", n) for n in names), (ext, names)
    assert not [n for n in names if n.endswith((".c", ".pyx", ".h"))]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    fields = [tuple(line.split(": ", 1)) for line in metadata.splitlines() if ": " in line]
    meta: dict[str, list[str]] = {}
    for key, value in fields:
        meta.setdefault(key, []).append(value)
    assert meta["License-Expression"] == ["MIT AND BSD-2-Clause"]
    assert meta["Requires-Python"] == [">=3.11"]
    assert meta.get("Author") and meta.get("Keywords") and len(meta["Classifier"]) >= 5
    requires = meta["Requires-Dist"]
    assert not [r for r in requires if "testcontainers" in r]
    assert any(r.startswith("build") and 'extra == "test"' in r for r in requires)
    # every dependency's range holds what this environment runs with
    from packaging.requirements import Requirement

    for text in requires:
        req = Requirement(text)
        if req.marker is not None:
            continue  # an extra
        installed = importlib.metadata.version(req.name)
        assert req.specifier.contains(installed, prereleases=True), (text, installed)
    # MySQL's binary JSON and compressed transactions are decoded here (mysqljson.py,
    # payload.py): zstandard is the only decoding dependency
    assert not [r for r in requires if r.startswith("mysql-replication")]
    assert any(r.startswith("zstandard") for r in requires)


def test_sdist_installs_into_a_fresh_venv(dist, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], RUN_TIMEOUT)
    py, applier = venv / "bin" / "python", venv / "bin" / "applier"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(dist["sdist"])],
         INSTALL_TIMEOUT, env=env, cwd=tmp_path)

    result = _run([str(applier), "--help"], RUN_TIMEOUT, env=env, cwd=tmp_path)
    assert "mts-applier" in result.stdout and "run" in result.stdout
    probe = ("import applier, applier.native._rowkeys as r, applier.native._scan as s; "
             "print(applier.__file__); print(r.__file__); print(s.__file__)")
    files = _run([str(py), "-c", probe], RUN_TIMEOUT, env=env, cwd=tmp_path).stdout.split()
    assert len(files) == 3
    for file in files:  # the installed copies, not this checkout
        assert Path(file).resolve().is_relative_to(venv.resolve()), files
    assert files[1].endswith(".so") and files[2].endswith(".so"), files

    # the [bench] extra is not installed there: one clear line, no traceback
    missing = _run([str(py), "-c", "import importlib.util as u; "
                    "print(u.find_spec('matplotlib') is None and u.find_spec('tqdm') is None)"],
                   RUN_TIMEOUT, env=env, cwd=tmp_path).stdout.strip()
    assert missing == "True"
    bench = subprocess.run([str(applier), "bench", "--quick"], capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert bench.returncode == errors.ApplierError.exit_code, (bench.stdout, bench.stderr)
    assert bench.stdout == "" and "Traceback" not in bench.stderr, bench.stderr
    lines = bench.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'mts-applier[bench]'" in lines[0], lines
    assert "matplotlib" in lines[0] and "tqdm" in lines[0]


# ---- the systemd unit and the exit codes ----------------------------------------------------------

UNIT = REPO / "examples" / "applier.service"


def _exit_code_table() -> dict[int, str]:
    """{code: "yes" | "no" | "fix first"} from the table in applier/errors.py's docstring."""
    table: dict[int, str] = {}
    for line in (errors.__doc__ or "").splitlines():
        m = re.match(r"^(\d+)\s{2,}.*\s{2,}(yes|no|fix first)\s*$", line)
        if m:
            table[int(m.group(1))] = m.group(2)
    return table


def _unit() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_every_exit_code_is_documented():
    table = _exit_code_table()
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.ApplierError)]
    for cls in classes:
        assert cls.exit_code in table, f"{cls.__name__} exit {cls.exit_code} not in the table"
        row = next(line for line in errors.__doc__.splitlines() if re.match(rf"^{cls.exit_code}\s", line))
        assert row, cls
    assert table[0] == "no"


def test_service_unit_restarts_exactly_the_safe_exit_codes():
    unit = _unit()
    table = _exit_code_table()
    prevent = {int(c) for c in unit["RestartPreventExitStatus"][0].split()}
    assert prevent == {code for code, restart in table.items() if restart == "fix first"}
    assert {code for code, restart in table.items() if restart == "yes"} == {1, 4, 7}
    assert unit["Type"] == ["simple"] and unit["Restart"] == ["on-failure"]
    assert unit["ExecStart"] == ["/usr/local/bin/applier run --config /etc/mts-applier/applier.toml"]
    assert unit["KillSignal"] == ["SIGTERM"] and unit["User"] == ["mts-applier"]
    for key in ("TimeoutStopSec", "LimitNOFILE", "EnvironmentFile"):
        assert unit.get(key), key
    readme = (REPO / "README.md").read_text()
    assert "## Running as a service" in readme
    assert f"RestartPreventExitStatus={unit['RestartPreventExitStatus'][0]}" in readme


def test_service_unit_parses(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "mts-applier.service"  # ExecStart must exist for verify
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/applier", shutil.which("applier")
                                             or str(Path(sys.executable).with_name("applier"))))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=RUN_TIMEOUT)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
