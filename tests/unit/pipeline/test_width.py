"""Width: hill climbing on the commit rate, against simulated workers (no servers).

A simulated run advances time in small steps; at width w the workers commit
``rate(w)`` transactions per second (with noise). The controller must settle on the
best width, spend most of the run there, and learn nothing while not saturated."""

from __future__ import annotations

import random

import pytest

from applier.pipeline.width import PERIOD, REPROBE, Width


def simulate(width: Width, rate, seconds: float, *, noise: float = 0.03, seed: int = 1,
             saturated=lambda t: True, clock: list | None = None) -> dict[int, float]:
    """Run ``seconds`` (``clock``: [time, committed], carried from run to run); the
    time spent at each width."""
    rng = random.Random(seed)
    clock = clock if clock is not None else [0.0, 0.0]
    step, end = 0.01, clock[0] + seconds
    spent: dict[int, float] = {}
    w = width.value
    while clock[0] < end:
        clock[1] += rate(w) * step * (1 + rng.uniform(-noise, noise))
        clock[0] += step
        spent[w] = spent.get(w, 0.0) + step
        w = width.observe(clock[0], int(clock[1]), saturated(clock[0]))
    return spent


@pytest.mark.parametrize("best, rate", [
    (1, lambda w: 9000 / (1 + 0.4 * (w - 1))),  # every extra worker costs (2 shared cores, hot rows)
    (4, lambda w: 2000 * w),  # cores to spare, no conflicts
    (2, lambda w: {1: 5000, 2: 7000, 3: 6000, 4: 5000}[w]),
])
def test_it_settles_on_the_best_width_and_stays_there_mostly(best, rate):
    width = Width(4)
    spent = simulate(width, rate, 60)
    assert width.settled == best
    assert spent[best] / 60 > 0.75, spent
    # what it commits is within 10% of always running at the best width
    total = sum(rate(w) * s for w, s in spent.items())
    assert total >= 0.9 * rate(best) * 60


def test_a_short_run_where_one_worker_is_best_loses_little():
    """A bench run of a few seconds: one probe of two workers, then back."""
    def rate(w: int) -> float:
        return 9000 / (1 + 0.5 * (w - 1))
    width = Width(4)
    spent = simulate(width, rate, 3)
    total = sum(rate(w) * s for w, s in spent.items())
    assert total >= 0.9 * rate(1) * 3, spent


def test_it_follows_a_change():
    """Few conflicts at first (wider is better), then a hot-row phase (one is best)."""
    def rate(w: int) -> float:
        return 2000 * w if phase[0] == "wide" else 9000 / (1 + 0.4 * (w - 1))
    phase = ["wide"]
    width, clock = Width(4), [0.0, 0.0]
    simulate(width, rate, 30, clock=clock)
    assert width.settled == 4
    phase[0] = "hot"
    spent = simulate(width, rate, 60, seed=2, clock=clock)
    assert width.settled == 1
    assert spent[1] > 40, spent


def test_nothing_is_learned_while_the_source_sets_the_pace():
    width = Width(4)
    spent = simulate(width, lambda w: 1000 * w, 30, saturated=lambda t: False)
    assert width.value == 1 and width.changes == 0 and spent == {1: pytest.approx(30, abs=0.02)}
    assert width.rates == {}


def test_one_worker_never_moves():
    width = Width(1)
    simulate(width, lambda w: 1000, 10)
    assert width.value == 1 and width.changes == 0


def test_it_probes_again_every_few_periods():
    width = Width(2)
    simulate(width, lambda w: 9000 if w == 1 else 5000, PERIOD * REPROBE * 5)
    assert width.settled == 1
    assert width.changes >= 2 * 4  # each probe is two changes: out and back


def test_a_probe_ends_even_when_the_probed_width_is_not_saturated():
    """At the probed width the workers may take everything the coordinator has (the
    coordinator, not the workers, sets the pace: on shared cores the extra worker slows
    it): that is a result, not a reason to measure again. Found on sysbench, 2 cores:
    the probe of two workers never ended (one unsaturated moment in each period reset
    it) and the run stayed at two workers, 40% slower than one."""
    def rate(w: int) -> float:
        return 16000 if w == 1 else 11000
    width = Width(4)
    spent = simulate(width, rate, 10, saturated=lambda t: width.value == 1 or int(t * 100) % 20 != 0)
    assert width.settled == 1
    assert spent[1] > 8, spent
