"""Binary DECIMAL (both flavours' row images, and MySQL's JSON DECIMAL): 9 digits per
4 bytes big-endian, a shorter group for the leftover digits, the sign in the first
byte's top bit (a negative value has every byte inverted)."""

from __future__ import annotations

DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes for 0..9 leftover digits


def decimal_size(precision: int, scale: int) -> int:
    intg, frac = precision - scale, scale
    return (intg // 9) * 4 + DIG2BYTES[intg % 9] + (frac // 9) * 4 + DIG2BYTES[frac % 9]


def decimal_text(data: bytes, precision: int, scale: int) -> tuple[bool, str]:
    """(negative, the digits without sign: every scale digit, no leading zeros) of the
    ``decimal_size`` bytes ``data``."""
    raw = bytearray(data)
    negative = not raw[0] & 0x80
    raw[0] ^= 0x80
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    intg, frac = precision - scale, scale
    p = 0
    digits = []
    lead = DIG2BYTES[intg % 9]
    if lead:
        digits.append(str(int.from_bytes(raw[p : p + lead], "big")))
        p += lead
    for _ in range(intg // 9):
        digits.append(f"{int.from_bytes(raw[p : p + 4], 'big'):09d}")
        p += 4
    text = "".join(digits).lstrip("0") or "0"
    fparts = []
    for _ in range(frac // 9):
        fparts.append(f"{int.from_bytes(raw[p : p + 4], 'big'):09d}")
        p += 4
    tail = frac % 9
    if tail:
        fparts.append(f"{int.from_bytes(raw[p : p + DIG2BYTES[tail]], 'big'):0{tail}d}")
    if frac:
        text += "." + "".join(fparts)
    return negative, text
