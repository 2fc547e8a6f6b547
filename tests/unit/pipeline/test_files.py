"""Binlog files' check (pipeline/files.py ``_walk``, ``FileSequence.verify``) on files
built here: events that cross the read chunks, the closing Rotate, a truncated or
corrupted file refused naming the file and the offset, as ``FileSource`` refuses it, and
a file before the last one that lacks its closing Rotate (cut short) refused."""

from __future__ import annotations

import zlib

import pytest

from applier.binlog import events as ev
from applier.errors import ConfigError, SourceError
from applier.pipeline import files
from tests.unit.streams import event_bytes, query_body


def _fde_body() -> bytes:
    # version, server version, created, header length, post-header lengths, checksum alg
    return b"\x04\x00" + b"10.11.6-MariaDB-log".ljust(50, b"\0") + b"\0" * 4 + bytes([19]) + b"\x00" * 40 + b"\x01"


def write_binlog(path, n_events: int = 40) -> list[int]:
    """A binlog with a FormatDescription, ``n_events`` BEGIN queries of ~300 bytes and a
    closing Rotate; the events' offsets."""
    out = bytearray(files.MAGIC)
    offsets = []

    def add(etype: int, body: bytes) -> None:
        offsets.append(len(out))
        out.extend(event_bytes(etype, body, ts=1, server_id=1, log_pos=len(out) + 19 + len(body) + 4,
                               flags=0, checksum=True))

    add(ev.FORMAT_DESCRIPTION, _fde_body())
    for i in range(n_events):
        add(ev.QUERY, query_body(b"BEGIN /* " + str(i).encode() * 80 + b" */"))
    add(ev.ROTATE, (4).to_bytes(8, "little") + b"mysql-bin.000002")
    path.write_bytes(bytes(out))
    return offsets


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(files, "CHUNK", 1000)  # events cross chunk boundaries


def test_walk_reads_across_chunks_to_the_closing_rotate(tmp_path, small_chunks):
    path = tmp_path / "mysql-bin.000001"
    write_binlog(path)
    info = files.inspect_file(path)
    assert info.checksum
    assert files._walk(info) == (ev.ROTATE, "mysql-bin.000002")
    source = files.FileSource(info)  # the reader agrees, event for event
    seen = []
    try:
        while True:
            source.fill(0)
            while (e := source.next_event()) is not None:
                seen.append(e.type)
    except files.EndOfFile:
        pass
    finally:
        source.close()
    assert seen == [ev.FORMAT_DESCRIPTION] + [ev.QUERY] * 40 + [ev.ROTATE]


def test_truncated_and_corrupted_files_name_the_offset(tmp_path, small_chunks):
    path = tmp_path / "mysql-bin.000001"
    offsets = write_binlog(path)
    data = path.read_bytes()
    cut = tmp_path / "cut" / path.name
    cut.parent.mkdir()
    cut.write_bytes(data[:-7])
    with pytest.raises(SourceError, match=rf"{cut} ends inside an event at offset {offsets[-1]}: the file is truncated"):
        files._walk(files.inspect_file(cut))
    bad = tmp_path / "bad" / path.name
    bad.parent.mkdir()
    raw = bytearray(data)
    raw[offsets[20] + 30] ^= 0x40
    bad.write_bytes(bytes(raw))
    with pytest.raises(SourceError, match=rf"{bad}: the event at offset {offsets[20]} fails its CRC32"):
        files._walk(files.inspect_file(bad))
    huge = tmp_path / "huge" / path.name
    huge.parent.mkdir()
    raw = bytearray(data)
    raw[offsets[5] + 9 : offsets[5] + 13] = (3).to_bytes(4, "little")
    huge.write_bytes(bytes(raw))
    with pytest.raises(SourceError, match=rf"offset {offsets[5]} has an impossible size \(3 bytes\)"):
        files._walk(files.inspect_file(huge))


def _sequence_of_two(tmp_path, first: bytes):
    """``first`` as mysql-bin.000001, then a whole mysql-bin.000002."""
    one, two = tmp_path / "seq" / "mysql-bin.000001", tmp_path / "seq" / "mysql-bin.000002"
    one.parent.mkdir(parents=True)
    one.write_bytes(first)
    write_binlog(two)
    return files.FileSequence([one, two]), one


def test_a_middle_file_cut_at_an_event_boundary_is_refused_naming_where_it_ends(tmp_path, small_chunks):
    """A file before the last one that lacks its closing Rotate was cut short (copied while
    the server wrote it): what followed the cut is missing, so the sequence is refused."""
    whole = tmp_path / "whole"
    offsets = write_binlog(whole)
    data = whole.read_bytes()
    for end in (offsets[-1], offsets[30]):  # no closing Rotate; cut in the middle
        seq, cut = _sequence_of_two(tmp_path / str(end), data[:end])
        with pytest.raises(SourceError, match=rf"binlog file {cut} ends at offset {end} without the Rotate"):
            seq.verify()
    seq, _ = _sequence_of_two(tmp_path / "ok", data)  # the whole file: its Rotate names the next
    seq.verify()


def test_a_middle_file_ended_by_a_stop_event_is_followed_by_the_next_number(tmp_path, small_chunks):
    whole = tmp_path / "whole"
    offsets = write_binlog(whole)
    data = whole.read_bytes()[: offsets[-1]]
    stop = event_bytes(ev.STOP, b"", ts=1, server_id=1, log_pos=len(data) + 23, flags=0, checksum=True)
    seq, _ = _sequence_of_two(tmp_path, data + stop)
    seq.verify()  # a server stopped (or restarted) between the two files


def test_a_middle_file_rotating_to_another_file_is_refused(tmp_path, small_chunks):
    whole = tmp_path / "whole"
    write_binlog(whole)
    data = whole.read_bytes().replace(b"mysql-bin.000002", b"mysql-bin.000007")
    body = data[-4 - 16 - 8 - 19:-4]
    data = data[:-4] + zlib.crc32(body).to_bytes(4, "little")
    seq, _ = _sequence_of_two(tmp_path, data)
    with pytest.raises(ConfigError, match="ends with a Rotate to mysql-bin.000007, but the next file"):
        seq.verify()


# ---- FileSource's framing: native (native/_scan.pyx frame_events) == per event --------------


def _framed(path, native: bool) -> tuple[bytes, int, int, str]:
    """Every dump packet FileSource frames of ``path``, its last event type, the next
    sequence number, and the error it stopped on ("" at the end of the file)."""
    source = files.FileSource(files.inspect_file(path))
    source.native = native
    out, error = bytearray(), ""
    try:
        for _ in range(10_000):
            source.fill(0)
            out += source.buf[source.off:]
            source.off = len(source.buf)
    except files.EndOfFile:
        pass
    except SourceError as e:
        error = str(e)
    finally:
        source.close()
    return bytes(out), source.last_type, source._seq, error


def _assorted_binlog(path) -> list[int]:
    """Events of many sizes (some cross the 1,000-byte test chunks, one is several chunks
    long), a FormatDescription with the in-use flag set (its CRC32 without it), a Rotate."""
    out = bytearray(files.MAGIC)
    offsets = []

    def add(etype: int, body: bytes, flags: int = 0) -> None:
        offsets.append(len(out))
        out.extend(event_bytes(etype, body, ts=1, server_id=1, log_pos=len(out) + 19 + len(body) + 4,
                               flags=flags, checksum=True))

    add(ev.FORMAT_DESCRIPTION, _fde_body())
    fde = offsets[0]
    out[fde + 17] |= files.LOG_EVENT_BINLOG_IN_USE_F  # set in place after the CRC, as a server does
    for i in range(120):
        add(ev.QUERY, query_body(b"BEGIN /* " + b"x" * ((i * 37) % 700) + b" */"))
        if i == 60:
            add(ev.QUERY, query_body(b"BEGIN /* " + b"y" * 3500 + b" */"))
    add(ev.ROTATE, (4).to_bytes(8, "little") + b"mysql-bin.000002")
    path.write_bytes(bytes(out))
    return offsets


@pytest.mark.skipif(files.binlog_native.frame_events is None, reason="native scanner not built")
def test_native_framing_frames_exactly_as_the_per_event_code(tmp_path, small_chunks):
    path = tmp_path / "mysql-bin.000001"
    offsets = _assorted_binlog(path)
    native, python = _framed(path, True), _framed(path, False)
    assert native == python
    assert native[3] == "" and native[1] == ev.ROTATE and native[2] == len(offsets) + 1
    data = path.read_bytes()
    for damage, where in ((lambda raw: raw.__setitem__(offsets[70] + 25, raw[offsets[70] + 25] ^ 1), "CRC32"),
                          (lambda raw: raw.__setitem__(slice(offsets[90] + 9, offsets[90] + 13),
                                                       (5).to_bytes(4, "little")), "impossible size"),
                          (lambda raw: raw.__delitem__(slice(len(raw) - 9, len(raw))), "truncated")):
        raw = bytearray(data)
        damage(raw)
        bad = tmp_path / where / path.name
        bad.parent.mkdir()
        bad.write_bytes(bytes(raw))
        native, python = _framed(bad, True), _framed(bad, False)
        assert native == python, where
        assert where in native[3], native[3]
