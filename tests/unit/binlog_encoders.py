"""Binlog rows-event encoders shared by the unit tests (no server, no native module:
tests of the pure-Python fallback use them too)."""

from __future__ import annotations

from applier.binlog.events import UPDATE


def enc_packed_int(n: int) -> bytes:
    if n < 251:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def enc_bitmap(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def enc_image(present: list[bool], values: list[bytes | None]) -> bytes:
    """One row image: NULL bitmap over the present columns, then their non-NULL values
    (``values`` holds encoded bytes, None for NULL, one per present column)."""
    assert len(values) == sum(present)
    return enc_bitmap([v is None for v in values]) + b"".join(v for v in values if v is not None)


def rows_body(
    ncols: int,
    op: int,
    version: int,
    present1: list[bool],
    present2: list[bool] | None,
    images: bytes,
    extra: bytes = b"",
    table_id: int = 42,
) -> bytes:
    head = table_id.to_bytes(6, "little") + b"\x01\x00"
    if version == 2:
        head += (2 + len(extra)).to_bytes(2, "little") + extra
    bitmaps = enc_bitmap(present1)
    if op == UPDATE:
        assert present2 is not None
        bitmaps += enc_bitmap(present2)
    return head + enc_packed_int(ncols) + bitmaps + images
