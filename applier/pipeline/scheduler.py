"""Route transactions to workers by their writesets (pure bookkeeping: no I/O, no threads).

Modelled on tiflow ``pkg/causality``, simplified. A transaction has a sequence number
``seq`` (increasing in source order) and a writeset: 64-bit int key hashes (db, table,
index, key value; see ``writeset.py``). Each of the N workers has a FIFO queue; it
commits its queued transactions in queue order, possibly several in one batch, and the
coordinator reports them with :meth:`Scheduler.complete`.

Rules
-----
* Transactions sharing a key run in source order. A new transaction whose keys are held
  by exactly one worker goes to that worker: the worker's FIFO keeps the order. Keys
  held by no worker (including a transaction with no keys, :data:`EMPTY_KEYS`) go to the
  least busy worker (fewest queued-or-running transactions), ties broken round-robin,
  among the first ``width`` workers (all by default; ``width.Width`` narrows it when
  fewer workers commit faster). Which worker a free transaction gets never matters for
  order: no transaction in flight shares a key with it.
  Keys held by several workers cannot be routed now: :meth:`Scheduler.route` returns
  ``None`` and the caller waits for completions until at most one worker holds them.
  Nor can keys held only by a worker beyond the width (the width narrowed after it took
  them): that worker gets nothing new, it finishes its queue and lets them go, and the
  transaction then goes to a worker within the width. (Fed through the keys it holds,
  a worker the width gave up would stay fed for good on a workload of hot rows, and so
  would its conflicts with the others.)
* A transaction is never split: it is assigned whole to one worker.
* Keys are de-duplicated within a transaction, so a transaction never waits on itself.
* Barriers: the caller drains until :meth:`Scheduler.idle`, then applies the barrier
  transaction (DDL, ...) serially.

The caller (coordinator) dispatches strictly in source order and does not skip a
transaction that cannot be routed: while it waits, nothing new is assigned, so the set
of holders of the waiting transaction's keys only shrinks and the wait ends (a worker
beyond the width is given nothing at all, so it too only lets keys go).

Why one global dict is enough
-----------------------------
Conceptually every worker has a map key -> number of its queued-or-running transactions
using the key. Routing guarantees that **a key is held by at most one worker at a
time**: a transaction is only assigned to a worker when no *other* worker holds any of
its keys (that worker already holds them, or nobody does). A key leaves a worker only
when its count drops to 0 and is then removed, so it is free before anyone else can
take it. Hence the N per-worker maps are disjoint and their union is one dict
``key -> (worker, count)``: ``route`` needs one lookup per key instead of N.

The ``(worker, count)`` pair is packed into a single int, ``count << shift | worker``,
so every hot-path operation is a single dict lookup/store with no tuple allocation:
``route`` reads ``v & mask``; ``assign`` adds ``1 << shift``; ``complete`` subtracts it
and deletes the key when the count part reaches 0 (``v < 1 << shift``).

Cost: ``route``/``assign`` are O(keys) (+ O(workers) to pick the least busy worker when
no one holds the keys); ``complete`` is O(keys of the released transactions). Per-worker
queues are deques of ``(seq, frozenset(keys))``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["EMPTY_KEYS", "Scheduler", "WaitingLine"]

EMPTY_KEYS: frozenset[int] = frozenset()
"""Writeset of a transaction touching nothing trackable: routed to the least busy worker."""


class Scheduler:
    """Conflict-aware routing of transactions to ``workers`` FIFO workers.

    See the module docstring for the rules and the single-holder invariant.
    ``keys`` arguments may be any iterable of ints (duplicates allowed); pass a
    re-iterable collection (tuple, frozenset) when calling both ``route`` and ``assign``.
    """

    __slots__ = ("_n", "_shift", "_mask", "_one", "_held", "_queues", "_inflight", "_next", "width")

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._n = workers
        self._shift = (workers - 1).bit_length()
        self._mask = (1 << self._shift) - 1
        self._one = 1 << self._shift  # count increment in a packed value
        # key -> count << shift | worker; only keys with count >= 1 are present.
        self._held: dict[int, int] = {}
        # per worker: FIFO of (seq, frozenset of keys) queued or running.
        self._queues: list[deque[tuple[int, frozenset[int]]]] = [deque() for _ in range(workers)]
        self._inflight = 0  # total queued-or-running transactions
        self._next = 0  # round-robin cursor: where the least-busy search starts
        self.width = workers  # free transactions go to workers 0 .. width - 1

    @property
    def workers(self) -> int:
        return self._n

    # -- hot path -------------------------------------------------------------------

    def route(self, keys: Iterable[int], prefer: int | None = None) -> int | None:
        """Worker to send a transaction with ``keys`` to, or ``None`` if >1 worker holds
        them or the one that does is beyond the width. When no worker holds them:
        ``prefer`` if given, else the least busy one (within the width).

        Does not change state.
        """
        held = self._held
        mask = self._mask
        owner = -1
        for k in keys:
            v = held.get(k)
            if v is not None:
                w = v & mask
                if owner < 0:
                    owner = w
                elif w != owner:
                    return None
        if owner >= 0:
            return owner if owner < self.width else None
        return self._least_busy() if prefer is None else prefer

    def assign(self, worker: int, seq: int, keys: Iterable[int]) -> None:
        """Record transaction ``seq`` with ``keys`` as queued on ``worker``.

        Raises ValueError (leaving the state unchanged) if another worker holds one of
        the keys, or if ``seq`` does not follow the worker's last queued seq.
        """
        q = self._queues[worker]
        if q and q[-1][0] >= seq:
            raise ValueError(f"seq {seq} not after seq {q[-1][0]} queued on worker {worker}")
        ks = frozenset(keys)  # de-duplicate (no copy if keys is already a frozenset)
        held = self._held
        mask = self._mask
        one = self._one
        fresh = True  # no key already held: a least-busy placement
        for k in ks:
            v = held.get(k)
            if v is None:
                held[k] = one | worker
            elif v & mask == worker:
                held[k] = v + one
                fresh = False
            else:
                self._rollback(ks, k)
                raise ValueError(f"key {k} of seq {seq} is held by worker {v & mask}, not {worker}")
        q.append((seq, ks))
        self._inflight += 1
        if fresh:
            # Advance the tie-break cursor only for free placements, so that
            # transactions following a busy key's holder don't keep resetting it.
            self._next = worker + 1 if worker + 1 < self._n else 0

    def complete(self, worker: int, upto_seq: int) -> int:
        """``worker`` committed all its queued transactions with seq <= ``upto_seq``.

        Releases their keys and returns how many transactions were released.
        """
        q = self._queues[worker]
        held = self._held
        one = self._one
        n = 0
        while q and q[0][0] <= upto_seq:
            for k in q.popleft()[1]:
                v = held[k] - one
                if v < one:
                    del held[k]
                else:
                    held[k] = v
            n += 1
        self._inflight -= n
        return n

    def busy(self, worker: int) -> int:
        """Number of queued-or-running transactions on ``worker``."""
        return len(self._queues[worker])

    @property
    def in_flight(self) -> int:
        """Queued-or-running transactions on all workers."""
        return self._inflight

    def idle(self) -> bool:
        """True when no transaction is queued or running on any worker."""
        return self._inflight == 0

    # -- diagnostics ----------------------------------------------------------------

    def holders(self, keys: Iterable[int]) -> set[int]:
        """Workers holding any of ``keys``."""
        held = self._held
        mask = self._mask
        return {held[k] & mask for k in keys if k in held}

    def holding(self, key: int) -> tuple[int, int] | None:
        """``(worker, count)`` for a held key, else None."""
        v = self._held.get(key)
        if v is None:
            return None
        return v & self._mask, v >> self._shift

    def queued(self, worker: int) -> list[int]:
        """Seqs queued or running on ``worker``, in FIFO order."""
        return [seq for seq, _ in self._queues[worker]]

    def held_keys(self) -> int:
        """Number of distinct keys currently held."""
        return len(self._held)

    def check(self) -> None:
        """Verify the internal invariants (O(total keys); for tests and debugging).

        Recomputes the per-worker key counts from the queues and checks that no key is
        used by two workers, that the global dict matches exactly, and that per-worker
        seqs increase. Raises AssertionError on violation.
        """
        expected: dict[int, tuple[int, int]] = {}
        total = 0
        for w, q in enumerate(self._queues):
            last = None
            for seq, ks in q:
                if last is not None and seq <= last:
                    raise AssertionError(f"worker {w}: seq {seq} after {last}")
                last = seq
                for k in ks:
                    ow, c = expected.get(k, (w, 0))
                    if ow != w:
                        raise AssertionError(f"key {k} held by workers {ow} and {w}")
                    expected[k] = (w, c + 1)
            total += len(q)
        actual = {k: (v & self._mask, v >> self._shift) for k, v in self._held.items()}
        if actual != expected:
            raise AssertionError(f"held keys {actual} != recomputed {expected}")
        if total != self._inflight:
            raise AssertionError(f"inflight {self._inflight} != queued {total}")

    def __repr__(self) -> str:
        busy = [len(q) for q in self._queues]
        return f"Scheduler(workers={self._n}, busy={busy}, held_keys={len(self._held)})"

    # -- internals ------------------------------------------------------------------

    def _least_busy(self) -> int:
        """Least busy of the first ``width`` workers, scanning round-robin from the cursor
        (first wins ties)."""
        qs = self._queues
        n = self.width
        best = self._next if self._next < n else 0
        best_len = len(qs[best])
        if best_len == 0:
            return best
        w = best
        for _ in range(n - 1):
            w += 1
            if w == n:
                w = 0
            ln = len(qs[w])
            if ln < best_len:
                best, best_len = w, ln
                if ln == 0:
                    break
        return best

    def _rollback(self, ks: frozenset[int], stop: int) -> None:
        """Undo the increments ``assign`` made for keys of ``ks`` iterated before ``stop``."""
        held = self._held
        one = self._one
        for k in ks:
            if k == stop:
                return
            v = held[k] - one
            if v < one:
                del held[k]
            else:
                held[k] = v


class WaitingLine:
    """Transactions that could not be routed yet (several workers hold their keys), in
    source order, so that the caller can go on routing the ones that share no key with
    any of them instead of stalling on every conflict.

    Order stays safe: a new transaction that shares a key with a waiting one must wait
    behind it (``blocks``); one that shares none has no row in common with any waiting
    transaction, so which of them runs first does not matter. Waiting transactions leave
    strictly oldest first (``release``), each once ``route`` finds it a worker.
    """

    __slots__ = ("_line", "_keys")

    def __init__(self) -> None:
        self._line: deque[tuple[object, Iterable[int]]] = deque()
        self._keys: dict[int, int] = {}  # key -> waiting transactions using it

    def __len__(self) -> int:
        return len(self._line)

    def blocks(self, keys: Iterable[int]) -> bool:
        """A transaction with ``keys`` must wait behind the waiting ones."""
        return bool(self._line) and not self._keys.keys().isdisjoint(keys)

    def add(self, item: object, keys: Iterable[int]) -> None:
        self._line.append((item, keys))
        counts = self._keys
        for k in keys:
            counts[k] = counts.get(k, 0) + 1

    def release(self, scheduler: Scheduler):
        """Yield ``(worker, item, keys)`` for waiting transactions, oldest first, while
        ``scheduler.route`` finds them a worker. The caller assigns each before asking
        for the next (the route of the next depends on it)."""
        line, counts = self._line, self._keys
        while line:
            item, keys = line[0]
            worker = scheduler.route(keys)
            if worker is None:
                return
            line.popleft()
            for k in keys:
                n = counts[k] - 1
                if n:
                    counts[k] = n
                else:
                    del counts[k]
            yield worker, item, keys
