"""A loopback TCP proxy that breaks connections on purpose (threads + sockets, bounded).

``FaultProxy(host, port)`` listens on a free 127.0.0.1 port and forwards every
connection to ``host:port``; point the applier's ``[source]`` (or anything else) at
``proxy.port``. Faults, all of them for as long as the test asks and no longer:

* ``cut_all()``: cut every live connection now (both sides see a reset; an orderly
  close by one side is passed on as an orderly close, after the data in flight);
* ``cut_randomly(0.1, 0.5)`` ... ``stop_cutting()``: a background thread cuts every
  live connection at random intervals (``min_bytes``: only connections past their
  first bytes, i.e. not in their handshake);
* ``handshake_cuts(budgets=[...])`` / ``handshake_cuts(max_bytes, seconds)``: each
  *new* connection is cut after the server sent it its first N bytes (N from the list,
  one per connection, or random in ``0..max_bytes`` until the time is up: inside the
  greeting, the authentication, the first queries); later connections pass;
* ``refuse(seconds)``: stop listening (connects get ECONNREFUSED) for a while;
  ``refuse(None)`` until ``accept_again()``;
* ``rate``: server->client bytes per second per connection (0: unlimited), a slow
  network: the applier's reading stays near its applying, so a cut lands mid-backlog;
* ``hold``: at most that many server->client bytes per connection, the rest waits (the
  server blocks) until ``hold = None``: the applier has read only the start of a backlog
  when the fault comes, however slowly it started (the machine may be busy);
* ``cut_before(*matchers)``: the server's byte stream of each connection is split into
  protocol packets (the MySQL framing holds from the greeting on, without TLS or
  compression); the first packet for which ``matcher(payload)`` is true is not
  forwarded: the client gets every byte before it, then the end of the stream. Each
  matcher once, in order.
* ``stall_before(matcher)`` ... ``release()``: the same packet and everything after it
  wait (the connection stays open, the client sees a quiet socket) until ``release()``.

Bounds: at most ``max_connections`` live connections (more are closed at once), every
socket wait has a short timeout, every thread is a daemon and ``close()`` joins them
with a timeout. Counters (``accepted``, ``cuts``, ``refusals``, ``handshake_kills``,
``matched_cuts``, ``over_limit``) say what happened, for assertions.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

_POLL = 0.02  # seconds: how often a pump thread looks at its cut flag
_CHUNK = 1 << 16
_MAX_BUFFER = 1 << 20  # bytes held per direction (bounded memory)
_JOIN_SECONDS = 5.0

_LINGER_RST = struct.pack("ii", 1, 0)  # close() sends a reset, like a broken network


def _abort(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    with contextlib.suppress(OSError):
        sock.close()


class _Conn:
    """One client connection and its upstream: one pump thread moves bytes both ways,
    non-blocking, so a cut is never stuck behind a full socket buffer."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket,
                 budget: int | None) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.budget = budget  # server->client bytes to let through before the cut (handshake)
        self.cut = threading.Event()
        self.received = 0  # server->client bytes read from the server
        self.sent_down = 0  # server->client bytes handed to the client (accepted or queued)
        self.delivered = 0  # server->client bytes the client's socket accepted
        self._down = bytearray()  # server bytes to send to the client
        self._up = bytearray()  # client bytes to send to the server
        self._framing = bytearray()  # the server's last packet, while it is incomplete
        self.stalled = False  # stall_before matched: server bytes wait in _framing
        self.thread = threading.Thread(target=self._pump, name="proxy-conn", daemon=True)

    def _from_server(self, data: bytes) -> bool:
        """Queue server bytes for the client, whole packets only (so ``cut_before`` can
        look at each); False once this connection is to be cut (what may still go
        through is queued)."""
        proxy = self.proxy
        if self.budget is not None and self.received + len(data) >= self.budget:
            room = self.budget - self.received  # byte-exact, inside a packet or not
            self._queue_down(self._framing + data[: max(room, 0)])
            self._framing.clear()
            proxy._count("handshake_kills")
            return False
        self.received += len(data)
        self._framing += data
        if self.stalled and proxy.stalling:
            return True
        self.stalled = False
        buf, off = self._framing, 0
        while len(buf) - off >= 4:
            length = buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16
            if len(buf) - off - 4 < length:
                break
            if proxy._stall is not None and proxy._match_stall(bytes(buf[off + 4 : off + 4 + length])):
                self.stalled = True
                proxy._count("stalls")
                break
            if proxy._matchers and proxy._match(bytes(buf[off + 4 : off + 4 + length])):
                self._queue_down(buf[:off])
                proxy._count("matched_cuts")
                return False
            off += 4 + length
        if off:
            self._queue_down(buf[:off])
            del buf[:off]
        return True

    def _end_after_sent(self) -> None:
        """A cut at an exact byte: the client gets everything queued, then the end of the
        stream (never a reset that could drop what it has not read yet); the server a
        reset. Bounded: the client has 5 s to close its side."""
        _abort(self.upstream)
        client = self.client
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not self.proxy._closing.is_set():
                if select.select([client], [], [], _POLL)[0] and _recv(client) in (b"", None):
                    break
        client.close()

    def _queue_down(self, data) -> None:
        self._down += data
        self.sent_down += len(data)

    def _pump(self) -> None:
        client, upstream = self.client, self.upstream
        client.setblocking(False)
        upstream.setblocking(False)
        closing = self.proxy._closing
        server_eof = client_eof = False
        cutting = False  # cut once what may still go through has been sent
        eof_deadline = None
        abort = True
        allowance, last = 0.0, time.monotonic()
        try:
            while not self.cut.is_set() and not closing.is_set():
                if cutting and not self._down:
                    abort = False
                    self._end_after_sent()
                    return
                if server_eof and client_eof and not self._down and not self._up:
                    abort = False
                    return
                if (server_eof or client_eof) and eof_deadline is None:
                    eof_deadline = time.monotonic() + 30
                if eof_deadline is not None and time.monotonic() > eof_deadline:
                    return
                if self.stalled and not self.proxy.stalling:  # released: pass the held bytes on
                    self._from_server(b"")
                readable = []
                if (not server_eof and not cutting and len(self._down) < _MAX_BUFFER
                        and len(self._framing) < _MAX_BUFFER):
                    readable.append(upstream)
                if not client_eof and len(self._up) < _MAX_BUFFER:
                    readable.append(client)
                rate, hold = self.proxy.rate, self.proxy.hold
                if rate:  # server->client bandwidth: a token bucket of up to 1/10 s
                    now = time.monotonic()
                    allowance = min(allowance + (now - last) * rate, rate / 10)
                    last = now
                room = len(self._down)
                if rate:
                    room = min(room, int(allowance))
                if hold is not None and not cutting:
                    room = min(room, hold - self.delivered)
                down_ok = room > 0
                writable = ([client] if down_ok else []) + ([upstream] if self._up else [])
                r, w, _ = select.select(readable, writable, [], _POLL)
                if upstream in r:
                    data = _recv(upstream)
                    if data is None:
                        return  # reset by the server
                    if data is _WOULD_BLOCK:
                        pass
                    elif not data:
                        server_eof = True
                        self._queue_down(self._framing)  # an incomplete last packet: as is
                        self._framing.clear()
                    elif not self._from_server(data):
                        cutting = True
                if client in r:
                    data = _recv(client)
                    if data is None:
                        return
                    if data is _WOULD_BLOCK:
                        pass
                    elif not data:
                        client_eof = True
                    else:
                        self._up += data
                if client in w and room > 0:
                    with contextlib.suppress(BlockingIOError):
                        n = client.send(self._down[:room])
                        del self._down[:n]
                        allowance -= n
                        self.delivered += n
                if upstream in w and self._up:
                    with contextlib.suppress(BlockingIOError):
                        del self._up[: upstream.send(self._up)]
                if server_eof and not self._down:
                    with contextlib.suppress(OSError):
                        client.shutdown(socket.SHUT_WR)  # an orderly end: the client reads all first
                if client_eof and not self._up:
                    with contextlib.suppress(OSError):
                        upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            if abort:  # a cut, a reset, or the proxy closing: both sides see a reset
                _abort(client)
                _abort(upstream)
            else:
                with contextlib.suppress(OSError):
                    client.close()
                with contextlib.suppress(OSError):
                    upstream.close()
            self.proxy._forget(self)


_WOULD_BLOCK = object()


def _recv(sock: socket.socket):
    """Bytes from a readable socket, b"" at its end, None when it was reset,
    ``_WOULD_BLOCK`` when there was nothing after all."""
    try:
        return sock.recv(_CHUNK)
    except (BlockingIOError, InterruptedError):
        return _WOULD_BLOCK
    except OSError:
        return None


class FaultProxy:
    def __init__(self, host: str, port: int, *, seed: int | None = None,
                 max_connections: int = 64) -> None:
        self.upstream = (host, port)
        self.host = "127.0.0.1"
        self.rng = random.Random(seed)
        self.max_connections = max_connections
        self.rate = 0  # server->client bytes per second per connection (0: unlimited)
        self.hold: int | None = None  # server->client bytes per connection, then wait (None: no cap)
        self.counters = {"accepted": 0, "cuts": 0, "refusals": 0, "handshake_kills": 0,
                         "matched_cuts": 0, "over_limit": 0, "stalls": 0}
        self._lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._closing = threading.Event()
        self._listener: socket.socket | None = None
        self._refuse_until: float | None = None  # monotonic deadline; inf = until accept_again
        self._handshake: tuple[int, float] | None = None  # (max bytes, monotonic deadline)
        self._budgets: list[int] = []  # handshake cuts for the next connections, in order
        self._matchers: list[Callable[[bytes], bool]] = []  # cut_before, in order
        self._stall: Callable[[bytes], bool] | None = None  # stall_before, once
        self.stalling = False  # a connection is stalled (until release())
        self._cutter: threading.Thread | None = None
        self._cutting = threading.Event()
        self.port = self._listen(0)
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        self._acceptor.start()

    # -- counters ----------------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    @property
    def accepted(self) -> int:
        return self.counters["accepted"]

    @property
    def cuts(self) -> int:
        """Connections cut by ``cut_all`` / ``cut_randomly``."""
        return self.counters["cuts"]

    @property
    def handshake_kills(self) -> int:
        return self.counters["handshake_kills"]

    @property
    def matched_cuts(self) -> int:
        return self.counters["matched_cuts"]

    # -- listening ---------------------------------------------------------------------------

    def _listen(self, port: int) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        sock.listen(64)
        sock.settimeout(_POLL * 5)
        self._listener = sock
        return sock.getsockname()[1]

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                until = self._refuse_until
            if until is not None:
                if self._listener is not None:  # stop listening: connects are refused
                    self._listener.close()
                    self._listener = None
                if time.monotonic() < until:
                    time.sleep(_POLL)
                    continue
                with self._lock:
                    if self._refuse_until == until:  # not refused again meanwhile
                        self._refuse_until = None
                self._relisten()
                continue
            listener = self._listener
            if listener is None:
                self._relisten()
                continue
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                continue
            self._start_conn(client)

    def _relisten(self) -> None:
        for _ in range(100):  # the port was ours a moment ago; bounded retries
            try:
                self._listen(self.port)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"proxy could not listen on port {self.port} again")

    def _start_conn(self, client: socket.socket) -> None:
        client.setblocking(True)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.counters["accepted"] += 1
            over = len(self._conns) >= self.max_connections
            budget = None
            if self._budgets:
                budget = self._budgets.pop(0)
            elif self._handshake is not None:
                max_bytes, deadline = self._handshake
                if time.monotonic() < deadline:
                    budget = self.rng.randint(0, max_bytes)
                else:
                    self._handshake = None
        if over:
            self._count("over_limit")
            _abort(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _abort(client)
            return
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(self, client, upstream, budget)
        with self._lock:
            self._conns.add(conn)
        conn.thread.start()

    def _forget(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _match(self, payload: bytes) -> bool:
        with self._lock:
            if not self._matchers or not self._matchers[0](payload):
                return False
            self._matchers.pop(0)  # each once, in order
            return True

    # -- faults ------------------------------------------------------------------------------

    def cut_all(self, *, min_bytes: int = 0) -> int:
        """Cut every live connection now (only those the server already sent
        ``min_bytes`` to, when given); how many there were."""
        with self._lock:
            conns = [c for c in self._conns if c.sent_down >= min_bytes]
            self.counters["cuts"] += len(conns)
        for c in conns:
            c.cut.set()
        return len(conns)

    def cut_randomly(self, low: float = 0.1, high: float = 0.5, *, min_bytes: int = 0) -> None:
        """Cut every live connection (see ``cut_all``) at random intervals in [low, high]
        seconds, until ``stop_cutting()`` (or ``close()``)."""
        self.stop_cutting()
        self._cutting.set()

        def loop() -> None:
            while self._cutting.is_set() and not self._closing.is_set():
                deadline = time.monotonic() + self.rng.uniform(low, high)
                while time.monotonic() < deadline:
                    if not self._cutting.is_set() or self._closing.is_set():
                        return
                    time.sleep(_POLL)
                self.cut_all(min_bytes=min_bytes)

        self._cutter = threading.Thread(target=loop, name="proxy-cutter", daemon=True)
        self._cutter.start()

    def stop_cutting(self) -> None:
        self._cutting.clear()
        if self._cutter is not None:
            self._cutter.join(_JOIN_SECONDS)
            self._cutter = None

    def handshake_cuts(self, max_bytes: int = 0, seconds: float = 0.0,
                       budgets: list[int] | tuple[int, ...] = ()) -> None:
        """Each new connection is cut after the server sent its first N bytes: N from
        ``budgets`` in order, one per connection, then, for ``seconds``, N random in
        0..max_bytes; later connections pass."""
        with self._lock:
            self._budgets = list(budgets)
            self._handshake = (max_bytes, time.monotonic() + seconds) if seconds > 0 else None

    def refuse(self, seconds: float | None) -> None:
        """Stop listening for ``seconds`` (None: until ``accept_again``); connects fail
        with ECONNREFUSED. Live connections are not touched (``cut_all`` does that)."""
        with self._lock:
            self._refuse_until = float("inf") if seconds is None else time.monotonic() + seconds
            self.counters["refusals"] += 1
        deadline = time.monotonic() + 2
        while self._listener is not None and time.monotonic() < deadline:
            time.sleep(_POLL)  # the accept thread closes the listener within one poll

    def accept_again(self) -> None:
        with self._lock:
            self._refuse_until = 0.0  # in the past: the accept loop listens again
        deadline = time.monotonic() + 5
        while self._listener is None and time.monotonic() < deadline:
            time.sleep(_POLL)

    def cut_before(self, *matchers: Callable[[bytes], bool]) -> None:
        """Cut the connection whose server sends a packet with ``matcher(payload)`` true,
        right before that packet; each matcher once, in order (the next one looks at the
        packets after the previous cut; none: disarm)."""
        with self._lock:
            self._matchers = list(matchers)

    def _match_stall(self, payload: bytes) -> bool:
        with self._lock:
            if self._stall is None or not self._stall(payload):
                return False
            self._stall = None
            self.stalling = True
            return True

    def stall_before(self, matcher: Callable[[bytes], bool]) -> None:
        """Hold back the first server packet with ``matcher(payload)`` true, and all that
        follows on its connection, until ``release()``; the connection stays open."""
        with self._lock:
            self._stall = matcher
            self.stalling = False

    def release(self) -> None:
        """A stalled connection goes on (what was held is passed on first)."""
        with self._lock:
            self._stall = None
            self.stalling = False

    @property
    def stalls(self) -> int:
        with self._lock:
            return self.counters["stalls"]

    @property
    def armed(self) -> int:
        """``cut_before`` matchers still waiting for their packet."""
        with self._lock:
            return len(self._matchers)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        self._closing.set()
        self.stop_cutting()
        self._acceptor.join(_JOIN_SECONDS)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.cut.set()
        for c in conns:
            c.thread.join(_JOIN_SECONDS)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
