"""How many workers get the transactions no worker holds keys of: measured, not assumed.

More workers are not always faster. On a machine whose cores the source, the target
and the applier share, or on a workload whose transactions mostly touch a few hot rows,
a second worker adds processes, smaller batches (less compaction, more commits) and
waiting for conflicts, and one worker is faster; on a target with cores to spare and
few conflicts, more workers are. ``Width`` finds out while it runs, by hill climbing on
the commit rate:

* it starts at one worker and, while the workers are the bottleneck (``saturated``:
  the coordinator has more in flight than they take at once), measures the commit rate
  over a period (``PERIOD`` seconds);
* then it tries one worker more: kept if that period commits at least ``GAIN`` times as
  fast, otherwise it goes back and next tries one fewer (when there is one fewer);
* settled, it tries again every ``REPROBE`` periods (the workload and the machine
  change), and forgets what it measured when the source, not the workers, limits the
  rate (not saturated: nothing to learn from that rate);
* a probe always ends after one period, saturated or not: when the wider set of
  workers takes all the coordinator has, the workers no longer limit the rate and one
  more of them brought nothing (on shared cores the extra process even slows the
  coordinator down); restarting the period there instead kept a probe going for good.

It decides where *new, free* transactions go (``Scheduler.width``): a transaction whose
keys a worker within the width holds still goes to that worker, and one whose keys a
worker beyond it holds waits until that worker has committed them (it gets nothing new
and drains its queue normally), so the per-key order proof of the scheduler is
untouched. A worker beyond the width then stays idle and costs nothing (it blocks on
its queue). Pure: the caller passes the time and the count of committed transactions.
"""

from __future__ import annotations

PERIOD = 0.5  # seconds of saturated running per measurement
GAIN = 1.08  # a probed width must commit this much faster to be kept
REPROBE = 8  # periods at a settled width before it probes again


class Width:
    def __init__(self, workers: int, start: int = 1, period: float = PERIOD) -> None:
        self.max = workers
        self.period = period
        self.value = max(1, min(start, workers))
        self.rates: dict[int, float] = {}  # width -> commit rate measured at it (transactions/s)
        self.changes = 0  # times the width changed (metrics, tests)
        self._base = self.value  # the width kept: a probe goes back to it unless it wins
        self._step = +1  # the direction of the next probe
        self._settled = 0  # periods measured at the base since the last probe ended
        self._since: tuple[float, int] | None = None  # (time, committed) when the period began

    @property
    def settled(self) -> int:
        """The width kept (``value`` differs while a probe runs)."""
        return self._base

    def observe(self, now: float, committed: int, saturated: bool) -> int:
        """Note the time and the total committed so far; the width to use from now."""
        if self.max == 1:
            return 1
        if not saturated and self.value == self._base:
            self._since = None  # the source sets the pace: this rate says nothing of the width
            return self.value
        if self._since is None:
            self._since = (now, committed)
            return self.value
        began, count = self._since
        if now - began < self.period:
            return self.value
        self._since = (now, committed)
        self.rates[self.value] = (committed - count) / (now - began)
        self._decide()
        return self.value

    def _decide(self) -> None:
        base, rates = self._base, self.rates
        if self.value != base:  # a probe just ended
            if rates[self.value] >= rates.get(base, 0.0) * GAIN:
                self._base = self.value  # it wins: keep it, and try one more that way at once
                self._probe(climbing=True)
            else:
                self._step = -self._step  # it loses: back, and next time the other way
                self._move(base)
            self._settled = 0
            return
        self._settled += 1
        if len(rates) == 1 or self._settled >= REPROBE:  # the first measurement, or time to look again
            self._settled = 0
            self._probe()

    def _probe(self, climbing: bool = False) -> None:
        nxt = self._base + self._step
        if not 1 <= nxt <= self.max:
            if climbing:
                return  # at the end of the range: settle there
            self._step = -self._step
            nxt = self._base + self._step
        if 1 <= nxt <= self.max:
            self._move(nxt)

    def _move(self, value: int) -> None:
        if value != self.value:
            self.value = value
            self.changes += 1
