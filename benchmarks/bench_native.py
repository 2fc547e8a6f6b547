"""Native vs pure-Python row decoding for writesets, per row.

Times ``applier.native._rowkeys.decode_keys`` against ``applier.rowcodec.decode_rows``
(the fallback) on the same rows events, as the coordinator calls them: only the key
columns are decoded, the others skipped. Tables:

* ``sbtest``: sysbench's table (INT id PK, INT k, CHAR(120) c, CHAR(60) pad, utf8mb4),
  wanted = {id};
* ``wide``: 14 mixed columns (BIGINT UNSIGNED id, INT tenant, VARCHAR email, DECIMAL,
  DATETIME/TIMESTAMP(6), DOUBLE, ENUM/SET, TEXT, DATE, BINARY(16), ...), wanted = the
  PRIMARY KEY and a UNIQUE (tenant, email); plus the same with every column decoded.

Events hold 1 row (sysbench's statements: one row per event) or 100 rows (bulk). Usage:

    .venv/bin/python benchmarks/bench_native.py [--seconds 0.5] [--check]

``--check`` exits 1 when a key-column case is below the 5x target.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
from collections.abc import Callable

from applier.binlog import rowcodec as rc
from applier.binlog import tablemap as s
from applier.binlog.events import INSERT, UPDATE
from applier.db import schema as dbs

try:
    from applier.native._rowkeys import decode_keys as native_decode
except ImportError:  # pragma: no cover - reported below
    native_decode = None

TARGET = 5.0

# -- a minimal binlog row encoder (the full one, for every type, is in tests/unit/test_native.py)


def _bitmap(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def _lenprefixed(data: bytes, n: int) -> bytes:
    return len(data).to_bytes(n, "little") + data


def _decimal_12_2(cents: int) -> bytes:
    """DECIMAL(12,2): 10 integer digits (1 + 9: 1 byte + 4 bytes), 2 fraction digits (1 byte)."""
    neg, cents = cents < 0, abs(cents)
    whole, frac = divmod(cents, 100)
    out = bytearray(bytes([whole // 10**9 % 10]) + (whole % 10**9).to_bytes(4, "big") + bytes([frac]))
    if neg:
        out = bytearray(b ^ 0xFF for b in out)
    out[0] ^= 0x80
    return bytes(out)


def _datetime2(y: int, mo: int, d: int, h: int, mi: int, sec: int) -> bytes:
    ymd = ((y * 13 + mo) << 5) | d
    return ((((ymd << 17) | (h << 12) | (mi << 6) | sec)) + 0x8000000000).to_bytes(5, "big")


def _rows_event(op: int, ncols: int, images: list[bytes]) -> bytes:
    head = (42).to_bytes(6, "little") + b"\x01\x00" + (2).to_bytes(2, "little")  # v2, no extra data
    present = _bitmap([True] * ncols)
    bitmaps = present * (2 if op == UPDATE else 1)
    return head + bytes([ncols]) + bitmaps + b"".join(images)


def _plan(cols: list[tuple[int, int, bool, str | None]]) -> rc.RowPlan:
    tmap = s.TableMap(42, "bench", "t", tuple(c[0] for c in cols), tuple(c[1] for c in cols),
                      (True,) * len(cols), None)
    columns = tuple(dbs.Column(f"c{i}", "x", c[2], c[3], None, True, False) for i, c in enumerate(cols))
    return rc.build_plan(tmap, dbs.TableSchema("bench", "t", columns, (), False))


# -- tables -------------------------------------------------------------------------------

SBTEST = [
    (s.T_LONG, 0, False, None),  # id INT PRIMARY KEY
    (s.T_LONG, 0, False, None),  # k INT
    (s.T_STRING, 480, False, "utf8mb4"),  # c CHAR(120)
    (s.T_STRING, 240, False, "utf8mb4"),  # pad CHAR(60)
]


def _sb_digits(rnd: random.Random, groups: int) -> bytes:
    return "-".join("".join(rnd.choice("0123456789") for _ in range(11)) for _ in range(groups)).encode()


def sbtest_image(rnd: random.Random, i: int) -> bytes:
    values = [
        struct.pack("<i", i),
        struct.pack("<i", rnd.randrange(1, 1_000_000)),
        _lenprefixed(_sb_digits(rnd, 10), 2),  # 119 chars, like sysbench's c
        _lenprefixed(_sb_digits(rnd, 5), 1),  # 59 chars, like sysbench's pad
    ]
    return _bitmap([False] * 4) + b"".join(values)


WIDE = [
    (s.T_LONGLONG, 0, True, None),  # 0 id BIGINT UNSIGNED PRIMARY KEY
    (s.T_LONG, 0, False, None),  # 1 tenant INT        UNIQUE (tenant, email)
    (s.T_VARCHAR, 1020, False, "utf8mb4"),  # 2 email VARCHAR(255)
    (s.T_VARCHAR, 400, False, "utf8mb4"),  # 3 name VARCHAR(100)
    (s.T_NEWDECIMAL, 12 | 2 << 8, False, None),  # 4 balance DECIMAL(12,2)
    (s.T_DATETIME2, 0, False, None),  # 5 created DATETIME
    (s.T_TIMESTAMP2, 6, False, None),  # 6 updated TIMESTAMP(6)
    (s.T_DOUBLE, 8, False, None),  # 7 score DOUBLE
    (s.T_ENUM, 1, False, None),  # 8 status ENUM
    (s.T_SET, 1, False, None),  # 9 flags SET
    (s.T_BLOB, 2, False, "utf8mb4"),  # 10 notes TEXT
    (s.T_DATE, 0, False, None),  # 11 birth DATE
    (s.T_TINY, 0, False, None),  # 12 active TINYINT
    (s.T_STRING, 16, False, "binary"),  # 13 token BINARY(16)
]


def wide_image(rnd: random.Random, i: int) -> bytes:
    name = "".join(rnd.choice("abcdefghij klmnop") for _ in range(rnd.randrange(5, 30)))
    values = [
        struct.pack("<Q", 10**12 + i),
        struct.pack("<i", rnd.randrange(100)),
        _lenprefixed(f"user{i}.{name.replace(' ', '')}@example.com".encode(), 2),
        _lenprefixed(name.encode(), 2),
        _decimal_12_2(rnd.randrange(-10**8, 10**8)),
        _datetime2(2024, rnd.randrange(1, 13), rnd.randrange(1, 29), 12, 34, 56),
        struct.pack(">I", 1_700_000_000 + i) + rnd.randrange(10**6).to_bytes(3, "big"),
        struct.pack("<d", rnd.random() * 1000),
        bytes([rnd.randrange(1, 4)]),
        bytes([rnd.randrange(256)]),
        _lenprefixed(("lorem ipsum dolor sit amet " * rnd.randrange(1, 10)).encode(), 2),
        ((1990 << 9) | (rnd.randrange(1, 13) << 5) | rnd.randrange(1, 29)).to_bytes(3, "little"),
        bytes([rnd.randrange(2)]),
        _lenprefixed(rnd.randbytes(16).rstrip(b"\x00"), 1),
    ]
    return _bitmap([False] * len(values)) + b"".join(values)


# -- timing -------------------------------------------------------------------------------


def _rate(fn: Callable[[], object], rows: int, seconds: float) -> float:
    """Rows per second: best of 5 runs of about ``seconds / 5`` each."""
    n = 1
    while True:  # calibrate
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > 0.02:
            break
        n *= 4
    n = max(1, int(n * (seconds / 5) / dt))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return n * rows / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time per measurement (default 0.5)")
    ap.add_argument("--check", action="store_true", help=f"exit 1 if a key-column case is below {TARGET:g}x")
    args = ap.parse_args(argv)
    if native_decode is None:
        print("applier.native._rowkeys is not built (pip install -e . builds it)", file=sys.stderr)
        return 2

    rnd = random.Random(1)
    sb_plan, wide_plan = _plan(SBTEST), _plan(WIDE)
    cases = []
    for label, plan, make, wanted in (
        ("sbtest, key {id}", sb_plan, sbtest_image, frozenset({0})),
        ("wide, keys {0,1,2}", wide_plan, wide_image, frozenset({0, 1, 2})),
        ("wide, all columns", wide_plan, wide_image, None),
    ):
        for op in (INSERT, UPDATE):
            for nrows in (1, 100):
                images = []
                for i in range(nrows):
                    images.append(make(rnd, i))
                    if op == UPDATE:
                        images.append(make(rnd, i))
                body = _rows_event(op, len(plan.columns), images)
                cases.append((label, op, nrows, plan, body, wanted))

    print(f"{'table, decoded columns':<22} {'event':<12} {'fallback rows/s':>16} {'native rows/s':>15} {'ratio':>7}")
    below = []
    for label, op, nrows, plan, body, wanted in cases:
        want = rc.decode_rows(plan, op, body, 2, wanted)
        assert native_decode(plan, op, body, 2, wanted) == want, "native != fallback"
        assert len(want) == nrows
        py = _rate(lambda p=plan, b=body, w=wanted, o=op: rc.decode_rows(p, o, b, 2, w), nrows, args.seconds)
        nat = _rate(lambda p=plan, b=body, w=wanted, o=op: native_decode(p, o, b, 2, w), nrows, args.seconds)
        ratio = nat / py
        event = f"{'INSERT' if op == INSERT else 'UPDATE'} x{nrows}"
        print(f"{label:<22} {event:<12} {py:>16,.0f} {nat:>15,.0f} {ratio:>6.1f}x")
        if wanted is not None and ratio < TARGET:
            below.append((label, event, ratio))
    if below:
        print(f"below the {TARGET:g}x target: {below}")
        return 1 if args.check else 0
    print(f"every key-column case is at least {TARGET:g}x the fallback")
    return 0


if __name__ == "__main__":
    sys.exit(main())
