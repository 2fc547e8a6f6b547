# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Native binlog scanner: whole transactions and their writesets straight from the
dump stream's bytes, without a Python object per event.

Why: the coordinator's per-event Python path (``source.events`` -> ``TransactionBuilder``
-> ``writeset.event_keys``) costs about 90 us per sysbench transaction, so it caps the
applier near 11,000 transactions/s. The common transaction is GTID, TableMaps, rows
events, XID: this module frames those packets, hashes the key columns and hands the
coordinator one record per transaction, with the TableMaps and rows events re-framed as
one ``payload`` bytes object that crosses to a worker process without pickling per item
(``unpack_payload`` turns it back into what ``transactions.Transaction`` carries).

MySQL's tagged GTIDs (GTID_TAGGED_LOG_EVENT) start a transaction like plain ones. A
compressed transaction (GTID, then one TRANSACTION_PAYLOAD_EVENT holding the rest) is
read from the events inside, which ``expand`` (the intake's zstd) uncompresses: the
pushed events then point into that bytes object instead of the buffer.

Anything else stops the scan *at the start of the transaction it belongs to* (or at the
event, between transactions) and the coordinator reads from there with the Python path,
which is the reference for every case: DDL and other QUERY events, Rotate, heartbeats,
error and EOF packets, tables the coordinator routes itself (filtered, barriers),
transactions above ``max_rows`` rows or ``max_bytes`` bytes (streamed big transactions),
rows events whose images lack columns (another binlog_row_image in that session), split
packets, artificial events. A transaction is never half native, half Python.

Keys are those of ``writeset.TableKeys.hashes`` for the same images: one xxh3_64 of
``db NUL table NUL index NUL`` + literals joined by NUL, NULL parts skip the key. Only
tables whose key columns hash their literal as is (``TableRoute.native``) are hashed
here; others call back into ``writeset`` per rows event (``TableRoute.call``).
tests/unit/test_scan.py checks both paths give the same transactions and keys.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.tuple cimport PyTuple_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

cdef extern from "xxhash/xxh3_inline.h":
    uint64_t XXH3_64bits(const void* data, size_t length) nogil

cdef extern from "zlib.h":
    unsigned long crc32(unsigned long crc, const unsigned char* buf, unsigned int length) nogil

__all__ = ["Scanner", "TableRoute", "frame_events", "unpack_payload", "xxh3"]

# event types (applier.events)
cdef enum:
    QUERY = 2
    FORMAT_DESCRIPTION = 15
    XID = 16
    TABLE_MAP = 19
    WRITE_ROWS_V1 = 23
    UPDATE_ROWS_V1 = 24
    DELETE_ROWS_V1 = 25
    WRITE_ROWS_V2 = 30
    UPDATE_ROWS_V2 = 31
    DELETE_ROWS_V2 = 32
    MYSQL_GTID = 33
    MYSQL_ANONYMOUS_GTID = 34
    MYSQL_TRANSACTION_PAYLOAD = 40
    MYSQL_GTID_TAGGED = 42
    MARIADB_ANNOTATE_ROWS = 160
    MARIADB_GTID = 162
    MARIADB_FL_STANDALONE = 1
    MARIADB_FL_XA = 0x40 | 0x80  # FL_PREPARED_XA, FL_COMPLETED_XA
    HEADER_LEN = 19
    MAX_PACKET = 0xFFFFFF


def xxh3(bytes data):
    """xxh3_64 of ``data`` (the same function as ``xxhash.xxh3_64_intdigest``)."""
    return XXH3_64bits(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef class TableRoute:
    """How the scanner treats rows events of one TableMap (built by the coordinator).

    ``native``: decode the key columns with ``decode(plan, op, body, version, wanted)``
    and hash each unique key here (``heads[i]`` + literals of columns ``cols[i]``).
    Otherwise ``call(op, body, version, keys)`` adds the keys itself and returns the
    row count. ``extra`` keys are added for every rows event (table/database policies).
    """

    cdef readonly bint native
    cdef readonly object call
    cdef readonly object decode
    cdef readonly object plan
    cdef readonly object wanted
    cdef readonly tuple heads
    cdef readonly tuple cols
    cdef readonly tuple extra

    def __init__(self, *, call=None, decode=None, plan=None, wanted=frozenset(), heads=(), cols=(),
                 extra=()):
        self.native = call is None
        if self.native and decode is None:
            raise ValueError("TableRoute needs call or decode")
        if len(heads) != len(cols):
            raise ValueError("one column tuple per key head")
        self.call = call
        self.decode = decode
        self.plan = plan
        self.wanted = frozenset(wanted)
        self.heads = tuple(bytes(h) for h in heads)
        self.cols = tuple(tuple(int(i) for i in c) for c in cols)
        if any(i < 0 for c in self.cols for i in c):
            raise ValueError("column indexes must not be negative")
        self.extra = tuple(int(k) for k in extra)


cdef struct Ev:
    int type
    const unsigned char* base  # the buffer (or a compressed transaction's uncompressed events)
    Py_ssize_t off   # body offset in ``base``
    Py_ssize_t size  # body length (checksum removed)


cdef inline uint64_t rd_le(const unsigned char* s, int n) noexcept nogil:
    cdef uint64_t v = 0
    while n > 0:
        n -= 1
        v = (v << 8) | s[n]
    return v


cdef bint _full_images(const unsigned char* body, Py_ssize_t size, int etype) noexcept nogil:
    """Every column is in the rows event's image(s) (binlog_row_image=FULL): the Python
    path decides what a partial image means (refused, unless only generated columns
    are missing)."""
    cdef Py_ssize_t pos = 8, ncols, nb, i, k
    cdef int first
    cdef unsigned char last
    if etype >= WRITE_ROWS_V2:
        if size < 10:
            return False
        pos = 8 + <Py_ssize_t>rd_le(body + 8, 2)
    if pos >= size:
        return False
    first = body[pos]
    if first < 251:
        ncols = first
        pos += 1
    elif first == 252 and pos + 3 <= size:
        ncols = <Py_ssize_t>rd_le(body + pos + 1, 2)
        pos += 3
    elif first == 253 and pos + 4 <= size:
        ncols = <Py_ssize_t>rd_le(body + pos + 1, 3)
        pos += 4
    else:
        return False
    nb = (ncols + 7) >> 3
    last = <unsigned char>((1 << (ncols & 7)) - 1) if ncols & 7 else 0xFF
    for k in range(2 if etype == UPDATE_ROWS_V1 or etype == UPDATE_ROWS_V2 else 1):
        if pos + nb > size:
            return False
        for i in range(nb - 1):
            if body[pos + i] != 0xFF:
                return False
        if nb and (body[pos + nb - 1] & last) != last:
            return False
        pos += nb
    return True


cdef bint _is_begin(const unsigned char* body, Py_ssize_t size):
    """A QUERY event whose statement is exactly BEGIN."""
    if size < 13:
        return False
    cdef Py_ssize_t db_len = body[8], status_len = body[11] | (body[12] << 8)
    cdef Py_ssize_t start = 13 + status_len + db_len + 1
    return size - start == 5 and memcmp(body + start, b"BEGIN", 5) == 0


cdef inline bint _is_null(bytes lit):
    """rowcodec.NULL: no other literal is the four bytes NULL (strings are quoted)."""
    return PyBytes_GET_SIZE(lit) == 4 and memcmp(PyBytes_AS_STRING(lit), b"NULL", 4) == 0


cdef class Scanner:
    """Scans a dump connection's buffer for whole transactions. One per coordinator;
    ``forget_tables()`` after DDL (routes depend on the target's schema)."""

    cdef object resolve
    cdef object expand      # compressed transaction body -> its events uncompressed, or None
    cdef dict maps          # table id -> (TableMap body, TableRoute or None)
    cdef bint checksum
    cdef Py_ssize_t max_rows
    cdef readonly bint big  # the last scan stopped at a transaction above max_rows
    cdef Py_ssize_t max_bytes
    cdef Ev* evs
    cdef Py_ssize_t evcap
    cdef char* keybuf
    cdef Py_ssize_t keycap

    def __cinit__(self):
        self.evs = NULL
        self.keybuf = NULL

    def __init__(self, resolve, *, bint checksum, Py_ssize_t max_rows, Py_ssize_t max_bytes=4 << 20,
                 expand=None):
        """``resolve(tablemap_body)`` -> TableRoute, or None: transactions using that
        table take the Python path. ``expand(payload_body)`` -> the events of a MySQL
        compressed transaction, uncompressed (bytes), or None to leave it to Python;
        without it compressed transactions take the Python path."""
        self.resolve = resolve
        self.expand = expand
        self.maps = {}
        self.checksum = checksum
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.evcap = 64
        self.evs = <Ev*>PyMem_Malloc(self.evcap * sizeof(Ev))
        self.keycap = 1024
        self.keybuf = <char*>PyMem_Malloc(self.keycap)
        if self.evs == NULL or self.keybuf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.evs)
        PyMem_Free(self.keybuf)

    def forget_tables(self):
        self.maps = {}

    cdef object _route(self, uint64_t table_id, const unsigned char* body, Py_ssize_t size):
        cdef tuple entry = self.maps.get(table_id)
        cdef bytes known
        if entry is not None:
            known = entry[0]
            if PyBytes_GET_SIZE(known) == size and memcmp(PyBytes_AS_STRING(known), body, size) == 0:
                return entry[1]
        known = PyBytes_FromStringAndSize(<const char*>body, size)
        route = self.resolve(known)
        if route is not None and not isinstance(route, TableRoute):
            raise TypeError("resolve must return a TableRoute or None")
        if len(self.maps) >= 4096:
            self.maps.clear()
        self.maps[table_id] = (known, route)
        return route

    cdef int _push(self, int etype, const unsigned char* base, Py_ssize_t off, Py_ssize_t size,
                   Py_ssize_t n) except -1:
        cdef Ev* grown
        if n == self.evcap:
            grown = <Ev*>PyMem_Realloc(self.evs, 2 * self.evcap * sizeof(Ev))
            if grown == NULL:
                raise MemoryError()
            self.evs = grown
            self.evcap *= 2
        self.evs[n].type = etype
        self.evs[n].base = base
        self.evs[n].off = off
        self.evs[n].size = size
        return 0

    cdef int _hash_image(self, TableRoute route, tuple image, set keys) except -1:
        cdef Py_ssize_t k, j, i, need, used
        cdef tuple cols
        cdef bytes head, lit
        cdef object val
        cdef char* grown
        for k in range(len(route.heads)):
            head = route.heads[k]
            cols = route.cols[k]
            need = PyBytes_GET_SIZE(head)
            for j in range(len(cols)):
                i = cols[j]
                if i >= PyTuple_GET_SIZE(image):
                    raise ValueError(f"key column {i} is beyond the row image")
                val = image[i]
                if val is None:
                    need = -1
                    break
                if type(val) is not bytes:
                    raise TypeError("row image literals must be bytes")
                if _is_null(<bytes>val):
                    need = -1
                    break
                need += PyBytes_GET_SIZE(<bytes>val) + 1
            if need < 0:
                continue  # a NULL part: this key never conflicts
            if need > self.keycap:
                grown = <char*>PyMem_Realloc(self.keybuf, need)
                if grown == NULL:
                    raise MemoryError()
                self.keybuf = grown
                self.keycap = need
            used = PyBytes_GET_SIZE(head)
            memcpy(self.keybuf, PyBytes_AS_STRING(head), used)
            for j in range(len(cols)):
                if j:
                    self.keybuf[used] = 0
                    used += 1
                lit = <bytes>image[<Py_ssize_t>cols[j]]
                memcpy(self.keybuf + used, PyBytes_AS_STRING(lit), PyBytes_GET_SIZE(lit))
                used += PyBytes_GET_SIZE(lit)
            keys.add(XXH3_64bits(self.keybuf, used))
        return 0

    cdef Py_ssize_t _rows_keys(self, TableRoute route, int etype, bytes body, set keys) except -1:
        cdef int op, version
        cdef list rows
        cdef object row, image
        if WRITE_ROWS_V2 <= etype <= DELETE_ROWS_V2:
            op = etype - WRITE_ROWS_V2 + 1
            version = 2
        else:
            op = etype - WRITE_ROWS_V1 + 1
            version = 1
        for k in route.extra:
            keys.add(k)
        if not route.native:
            return route.call(op, body, version, keys)
        rows = route.decode(route.plan, op, body, version, route.wanted)
        if route.heads:
            for row in rows:
                for image in row:
                    if image is not None:
                        if type(image) is not tuple:
                            raise TypeError("row images must be tuples")
                        self._hash_image(route, <tuple>image, keys)
        return len(rows)

    cdef Py_ssize_t _event(self, int etype, const unsigned char* base, Py_ssize_t bstart, Py_ssize_t size,
                           dict txn_routes, set keys, Py_ssize_t nev, Py_ssize_t rows,
                           bint have_records) except -2:
        """A TableMap or rows event of the transaction being scanned (body at ``base +
        bstart``): routed or hashed, and pushed as event ``nev``. Returns the rows so
        far, or -1: the transaction goes to the Python path (a failing route or decode
        raises when no transaction came before it in this scan)."""
        cdef const unsigned char* body = base + bstart
        cdef uint64_t table_id
        cdef object route
        cdef bytes rbody
        if size < 8:
            return -1
        if etype == TABLE_MAP:
            table_id = rd_le(body, 6)
            try:
                route = self._route(table_id, body, size)
            except Exception:
                if not have_records:
                    raise
                return -1  # the Python path meets it after these
            if route is None:
                return -1
            txn_routes[table_id] = route
        else:
            route = txn_routes.get(rd_le(body, 6))
            if route is None or not _full_images(body, size, etype):
                return -1
            rbody = PyBytes_FromStringAndSize(<const char*>body, size)
            try:
                rows += self._rows_keys(<TableRoute>route, etype, rbody, keys)
            except Exception:
                if not have_records:
                    raise
                return -1
            if rows > self.max_rows:
                self.big = True
                return -1  # a big transaction: streamed by Python
        self._push(etype, base, bstart, size, nev)
        return rows

    cdef bytes _payload(self, Py_ssize_t nev):
        """The pushed events as one payload (``unpack_payload``'s format)."""
        cdef Py_ssize_t total = 0, i
        cdef bytes payload
        cdef unsigned char* out
        for i in range(nev):
            total += 5 + self.evs[i].size
        payload = PyBytes_FromStringAndSize(NULL, total)
        out = <unsigned char*>PyBytes_AS_STRING(payload)
        for i in range(nev):
            out[0] = <unsigned char>self.evs[i].type
            out[1] = self.evs[i].size & 0xFF
            out[2] = (self.evs[i].size >> 8) & 0xFF
            out[3] = (self.evs[i].size >> 16) & 0xFF
            out[4] = (self.evs[i].size >> 24) & 0xFF
            memcpy(out + 5, self.evs[i].base + self.evs[i].off, self.evs[i].size)
            out += 5 + self.evs[i].size
        return payload

    def scan(self, bytearray buf, Py_ssize_t off):
        """Scan ``buf`` from ``off`` (a packet boundary outside any transaction).

        Returns ``(off, records, slow)``: ``records`` are the whole transactions found,
        each ``(gtid, timestamp, end_pos, payload, keys, rows)``; ``off`` is where the
        next scan (or the Python path) starts; ``slow`` says the packet at ``off`` must
        go through the Python path (else more bytes are needed)."""
        cdef const unsigned char* p = <const unsigned char*>buf
        cdef Py_ssize_t end = len(buf), pos = off, length, nxt, size, bstart
        cdef Py_ssize_t txn_start = off, nev = 0, rows = 0, i, total
        cdef int complete
        cdef const unsigned char* pkt
        cdef const unsigned char* body
        cdef int etype, trailer = 4 if self.checksum else 0
        cdef uint64_t log_pos, table_id
        cdef bint in_txn = False
        cdef list records = []
        cdef set keys = None
        cdef str gtid = ""
        cdef uint64_t timestamp = 0
        cdef int verdict
        cdef object raw
        cdef const unsigned char* rp
        cdef Py_ssize_t q, rend, isize
        cdef dict txn_routes = None
        self.big = False
        while True:
            if end - pos < 4:
                return txn_start, records, False
            length = p[pos] | (p[pos + 1] << 8) | (p[pos + 2] << 16)
            if length >= MAX_PACKET:
                return txn_start, records, True  # a split packet: the Python path joins it
            if end - pos - 4 < length:
                return txn_start, records, False
            nxt = pos + 4 + length
            pkt = p + pos + 4
            if length < 1 + HEADER_LEN + trailer or pkt[0] != 0:
                return txn_start, records, True  # error, EOF or a short packet
            etype = pkt[5]
            size = <Py_ssize_t>rd_le(pkt + 10, 4)
            log_pos = rd_le(pkt + 14, 4)
            if size != length - 1 or log_pos == 0:
                return txn_start, records, True
            bstart = pos + 4 + 1 + HEADER_LEN
            body = p + bstart
            size = size - HEADER_LEN - trailer
            if not in_txn:
                if etype == MARIADB_GTID:
                    if size < 13 or body[12] & (MARIADB_FL_STANDALONE | MARIADB_FL_XA):
                        return pos, records, True
                    gtid = f"{rd_le(body + 8, 4)}-{rd_le(pkt + 6, 4)}-{rd_le(body, 8)}"
                elif etype == MYSQL_GTID:
                    if size < 25:
                        return pos, records, True
                    gtid = _mysql_gtid(body)
                elif etype == MYSQL_GTID_TAGGED:
                    gtid = _tagged_gtid(body, size)
                    if gtid is None:
                        return pos, records, True  # the Python path names what is wrong
                elif etype == MYSQL_ANONYMOUS_GTID:
                    gtid = ""
                else:
                    return pos, records, True  # outside a transaction: Rotate, heartbeat, DDL...
                complete = _complete(p, nxt, end, pos + self.max_bytes, trailer)
                if complete == 0:
                    return pos, records, False  # decode nothing before the whole of it is here
                if complete < 0:
                    return pos, records, True
                in_txn = True
                txn_start = pos
                timestamp = rd_le(pkt + 1, 4)
                nev = 0
                rows = 0
                keys = set()
                txn_routes = {}
            elif etype == TABLE_MAP or WRITE_ROWS_V1 <= etype <= DELETE_ROWS_V1 \
                    or WRITE_ROWS_V2 <= etype <= DELETE_ROWS_V2:
                verdict = self._event(etype, p, bstart, size, txn_routes, keys, nev, rows, bool(records))
                if verdict < 0:
                    return txn_start, records, True
                nev += 1
                rows = verdict
            elif etype == XID:
                records.append((gtid, timestamp, log_pos, self._payload(nev), keys, rows))
                in_txn = False
                txn_start = nxt
            elif etype == MYSQL_TRANSACTION_PAYLOAD:
                # a compressed transaction: the rest of it is in here (BEGIN, TableMaps,
                # rows events, XID, no checksums); ``expand`` uncompresses it (None: too
                # big, or not readable: the Python path reads it, or names the error)
                if nev or self.expand is None:
                    return txn_start, records, True
                raw = self.expand(PyBytes_FromStringAndSize(<const char*>body, size))
                if raw is None:
                    return txn_start, records, True
                rp = <const unsigned char*>PyBytes_AS_STRING(raw)
                rend = PyBytes_GET_SIZE(raw)
                q = 0
                while in_txn:
                    if rend - q < HEADER_LEN:
                        return txn_start, records, True
                    etype = rp[q + 4]
                    isize = <Py_ssize_t>rd_le(rp + q + 9, 4)
                    if isize < HEADER_LEN or isize > rend - q:
                        return txn_start, records, True
                    if etype == TABLE_MAP or WRITE_ROWS_V1 <= etype <= DELETE_ROWS_V1 \
                            or WRITE_ROWS_V2 <= etype <= DELETE_ROWS_V2:
                        verdict = self._event(etype, rp, q + HEADER_LEN, isize - HEADER_LEN, txn_routes,
                                              keys, nev, rows, bool(records))
                        if verdict < 0:
                            return txn_start, records, True
                        nev += 1
                        rows = verdict
                    elif etype == XID and q + isize == rend:
                        records.append((gtid, timestamp, log_pos, self._payload(nev), keys, rows))
                        in_txn = False
                        txn_start = nxt
                    elif etype != QUERY or nev or not _is_begin(rp + q + HEADER_LEN, isize - HEADER_LEN):
                        return txn_start, records, True
                    q += isize
                    if in_txn and q >= rend:
                        return txn_start, records, True  # no XID at the end
            elif etype == QUERY:
                # MySQL's BEGIN after its GTID; any other statement goes the Python way
                if nev or not _is_begin(body, size):
                    return txn_start, records, True
            elif etype != MARIADB_ANNOTATE_ROWS:
                return txn_start, records, True
            if in_txn and nxt - txn_start > self.max_bytes:
                return txn_start, records, True
            pos = nxt


cdef int _complete(const unsigned char* p, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t limit,
                   int trailer):
    """Whether the transaction whose events start at ``pos`` ends (XID, or a QUERY such
    as COMMIT: the main loop decides) inside the buffer: 1 yes, 0 not yet, -1 it runs
    past ``limit`` (or a split packet): framing only, so a transaction that arrives in
    many reads is decoded once, not once per read."""
    cdef Py_ssize_t length
    cdef int etype
    while True:
        if end - pos < 4:
            return 0
        length = p[pos] | (p[pos + 1] << 8) | (p[pos + 2] << 16)
        if length >= MAX_PACKET:
            return -1
        if end - pos - 4 < length:
            return 0
        if length < 1 + HEADER_LEN or p[pos + 4] != 0:
            return 1  # error/EOF packet: let the main loop stop there
        etype = p[pos + 4 + 5]
        if etype == XID or etype == MYSQL_TRANSACTION_PAYLOAD:
            # (the XID does not count towards max_bytes, as in the main loop; a payload,
            # a compressed transaction, is the rest of it: the main loop hands it to Python)
            return 1
        if pos + 4 + length > limit:
            return -1
        if etype == QUERY and not _is_begin(p + pos + 4 + 1 + HEADER_LEN, length - 1 - HEADER_LEN - trailer):
            return 1
        pos += 4 + length


cdef inline Py_ssize_t _varlen(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                               uint64_t* value) noexcept:
    """transactions._varlen: MySQL's serialization integers; the position after, -1 if
    it runs past ``end``."""
    cdef int n = 1
    cdef unsigned char first
    if pos >= end:
        return -1
    first = b[pos]
    while n < 9 and (first >> (n - 1)) & 1:
        n += 1
    if pos + n > end:
        return -1
    if n == 1:
        value[0] = first >> 1
    elif n == 9:
        value[0] = rd_le(b + pos + 1, 8)
    else:
        value[0] = (first >> n) | (rd_le(b + pos + 1, n - 1) << (8 - n))
    return pos + n


cdef object _tagged_gtid(const unsigned char* body, Py_ssize_t size):
    """transactions.tagged_gtid (``uuid:tag:n``), or None when the event is not as expected."""
    cdef uint64_t v, field, msg_size, gno = 0
    cdef Py_ssize_t pos = 0, end, i
    cdef unsigned char uuid[16]
    cdef bint have_uuid = False, have_gno = False
    cdef bytes tag = b""
    cdef str sid, text
    pos = _varlen(body, pos, size, &v)
    if pos < 0:
        return None
    pos = _varlen(body, pos, size, &msg_size)
    if pos < 0:
        return None
    pos = _varlen(body, pos, size, &v)
    if pos < 0:
        return None
    end = <Py_ssize_t>msg_size if <Py_ssize_t>msg_size < size else size
    while pos < end:
        pos = _varlen(body, pos, end, &field)
        if pos < 0:
            return None
        if field == 1:
            for i in range(16):
                pos = _varlen(body, pos, end, &v)
                if pos < 0 or v > 255:
                    return None
                uuid[i] = <unsigned char>v
            have_uuid = True
        elif field == 3:
            pos = _varlen(body, pos, end, &v)
            if pos < 0 or pos + <Py_ssize_t>v > end:
                return None
            tag = PyBytes_FromStringAndSize(<const char*>body + pos, <Py_ssize_t>v)
            break
        elif field == 0 or field == 2:
            pos = _varlen(body, pos, end, &v)
            if pos < 0:
                return None
            if field == 2:
                if v & 1:
                    return None  # a negative gno
                gno = v >> 1
                have_gno = True
        else:
            break
    if not have_uuid or not have_gno or gno < 1:
        return None
    try:
        text = tag.decode("ascii").lower()
    except UnicodeDecodeError:
        return None
    sid = PyBytes_FromStringAndSize(<const char*>uuid, 16).hex()
    uuid_text = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}"
    return f"{uuid_text}:{text}:{gno}" if text else f"{uuid_text}:{gno}"


cdef str _mysql_gtid(const unsigned char* body):
    cdef str sid = PyBytes_FromStringAndSize(<const char*>body + 1, 16).hex()
    return f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}:{rd_le(body + 17, 8)}"


def unpack_payload(bytes payload, rows_event):
    """A scanner payload -> (table_maps {id: body}, [rows_event(op, table_id, version, body)])."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(payload)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(payload), pos = 0, size
    cdef int etype
    cdef dict maps = {}
    cdef list items = []
    cdef bytes body
    while pos < n:
        if n - pos < 5:
            raise ValueError("truncated scanner payload")
        etype = p[pos]
        size = <Py_ssize_t>rd_le(p + pos + 1, 4)
        pos += 5
        if size > n - pos or size < 6:
            raise ValueError("truncated scanner payload")
        body = PyBytes_FromStringAndSize(<const char*>p + pos, size)
        pos += size
        if etype == TABLE_MAP:
            maps[rd_le(<const unsigned char*>PyBytes_AS_STRING(body), 6)] = body
        elif WRITE_ROWS_V2 <= etype <= DELETE_ROWS_V2:
            items.append(rows_event(etype - WRITE_ROWS_V2 + 1, rd_le(p + pos - size, 6), 2, body))
        elif WRITE_ROWS_V1 <= etype <= DELETE_ROWS_V1:
            items.append(rows_event(etype - WRITE_ROWS_V1 + 1, rd_le(p + pos - size, 6), 1, body))
        else:
            raise ValueError(f"unexpected event type {etype} in a scanner payload")
    return maps, items


def frame_events(bytes data, Py_ssize_t start, bytearray buf, unsigned int seq, bint checksum):
    """Binlog file bytes -> dump packets (``files.FileSource._frame``'s loop, in C): the
    whole events of ``data`` from ``start`` are appended to ``buf`` as the dump protocol
    sends them (3-byte length, sequence number, the OK byte, the event), each checked
    against its CRC32 when ``checksum``. Returns ``(end, framed, seq, last_type)``: the
    offset after the last event framed, how many, the next sequence number and the last
    one's type.

    It stops before an event it leaves to the caller's per-event code, which frames it
    or names the problem: one not whole in ``data``, of an impossible size, of one
    packet's size or more (split packets), a FormatDescription (its CRC32 is computed
    with the in-use flag clear) or one whose CRC32 does not match."""
    cdef const unsigned char* d = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), p = start, q, size, total = 0, old
    cdef Py_ssize_t framed = 0
    cdef int last = 0
    cdef unsigned char* out
    cdef unsigned int plen
    while n - p >= HEADER_LEN:
        size = <Py_ssize_t>rd_le(d + p + 9, 4)
        if size < HEADER_LEN + (4 if checksum else 0) or size > n - p or size + 1 >= MAX_PACKET \
                or d[p + 4] == FORMAT_DESCRIPTION:
            break
        if checksum and crc32(0, d + p, <unsigned int>(size - 4)) != rd_le(d + p + size - 4, 4):
            break
        total += size + 5
        p += size
        framed += 1
    if framed == 0:
        return start, 0, seq, 0
    old = PyByteArray_GET_SIZE(buf)
    PyByteArray_Resize(buf, old + total)
    out = <unsigned char*>PyByteArray_AS_STRING(buf) + old
    q = start
    while q < p:
        size = <Py_ssize_t>rd_le(d + q + 9, 4)
        plen = <unsigned int>(size + 1)
        out[0] = plen & 0xFF
        out[1] = (plen >> 8) & 0xFF
        out[2] = (plen >> 16) & 0xFF
        out[3] = seq & 0xFF
        out[4] = 0  # the OK byte
        memcpy(out + 5, d + q, size)
        last = d[q + 4]
        out += size + 5
        q += size
        seq += 1
    return p, framed, seq, last
