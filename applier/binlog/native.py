"""The one place that chooses the native (Cython, native/*.pyx) or the pure-Python
implementation of the hot paths. Both give identical results (tests/unit/test_native.py
and test_scan.py check it); the native ones are built by ``pip install`` when a C
compiler and Cython are there.

* ``decode_rows(plan, op, body, version, wanted=None)``: row images -> literals
  (native/_rowkeys.pyx, else ``rowcodec.decode_rows``);
* ``unpack_payload(payload, rows_event)``: a scanner payload -> (table_maps, rows
  events) (native/_scan.pyx, else ``transactions.py_unpack_payload``);
* ``scan``: the native binlog scanner module (``Scanner``, ``TableRoute``), or None:
  there is no pure-Python scanner, the per-event path is its reference;
* ``frame_events``: binlog file bytes -> dump packets (native/_scan.pyx), or None: then
  ``files.FileSource`` frames each event itself (its per-event code is the reference).
"""

from __future__ import annotations

from types import ModuleType

from . import rowcodec, transactions


def _load():
    try:
        from applier.native import _rowkeys  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - exercised when the extension is not built
        _rowkeys = None
    try:
        from applier.native import _scan  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover
        _scan = None
    return _rowkeys, _scan


_rowkeys, scan = _load()
scan: ModuleType | None

NATIVE = _rowkeys is not None
"""The native row decoder is built."""

decode_rows = _rowkeys.decode_keys if _rowkeys is not None else rowcodec.decode_rows
unpack_payload = scan.unpack_payload if scan is not None else transactions.py_unpack_payload
frame_events = getattr(scan, "frame_events", None)
