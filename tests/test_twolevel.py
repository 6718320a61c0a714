"""Two-level (memory + disk) schedules: the DP optimum against an exhaustive search, the
streams in the simulator, the memory-only optimum at D = 0, and checkpoint_schedules'
H-Revolve / Disk-Revolve on the same resources."""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
import re
import sys
import time
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import networkx as nx
import numpy as np
import pytest

import pebbles
import pebbles._twolevel as twolevel
from pebbles._twolevel import (
    _P,
    _Spine,
    _Tables,
    _treeverse_steps,
    best_period,
    min_total_time,
    periodic_disk,
    periodic_disk_time,
    two_level,
    two_level_steps,
    two_level_tables_fit,
)

ROOT = Path(__file__).resolve().parents[1]
COSTS = [(0.0, 0.0), (0.5, 0.5), (1.0, 3.0), (3.0, 0.25), (2.0, 2.0), (10.0, 10.0)]


def reference(n: int, budget: int, disk: int | None, wc: float, rc: float,
              inplace: bool) -> float:
    """Least total time by Dijkstra over every (memory, disk, painted) configuration.

    Memory and disk pebbles are bit masks over cells 1..n (cell 0 is always in
    memory); edges are the primitive moves place / move / remove / paint / store /
    load / discard under both budgets, weighted 1 / 1 / 0 / 0 / wc / rc / 0.
    """
    graph = configurations(n, budget, n + 1 if disk is None else disk, inplace)
    if "end" not in graph:
        return math.inf

    def weight(u, v, edge) -> float:  # the cheapest move from u to v at these prices
        return min(steps + wc * writes + rc * reads for steps, writes, reads in edge["moves"])

    return float(nx.shortest_path_length(graph, (0, 0, n), "end", weight=weight))


@lru_cache(maxsize=2)  # the price pairs of one board are consecutive cases
def configurations(n: int, budget: int, dmax: int, inplace: bool) -> nx.DiGraph:
    """The configurations reachable from the start and the moves between them, priced
    later: edge attribute ``moves`` is the set of (steps, writes, reads) of the moves
    from one configuration to the other; the finished ones lead to ``"end"``. The
    graph does not depend on the prices, so the price pairs of a board share it."""
    start = (0, 0, n)
    graph = nx.DiGraph()
    seen, todo = {start}, [start]
    while todo:
        state = todo.pop()
        for nxt, move in _moves(state, n, budget, dmax, inplace):
            if graph.has_edge(state, nxt):
                graph[state][nxt]["moves"].add(move)
            else:
                graph.add_edge(state, nxt, moves={move})
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    for goal in [s for s in seen if s[2] == 0]:
        graph.add_edge(goal, "end", moves={FREE})
    return graph


STEP, FREE, WRITE, READ = (1, 0, 0), (0, 0, 0), (0, 1, 0), (0, 0, 1)


def _moves(state, n, budget, dmax, inplace):
    mem, dsk, painted = state
    used, stored = bin(mem).count("1"), bin(dsk).count("1")

    def has(i: int) -> bool:
        return i == 0 or bool(mem >> i & 1)

    for i in range(1, n + 1):
        bit = 1 << i
        if not has(i) and has(i - 1):
            if used < budget:
                yield (mem | bit, dsk, painted), STEP
            if inplace and i >= 2:
                yield (mem & ~(1 << (i - 1)) | bit, dsk, painted), STEP
        if has(i):
            yield (mem & ~bit, dsk, painted), FREE
            if not dsk & bit and stored < dmax:
                yield (mem, dsk | bit, painted), WRITE
        if dsk & bit:
            yield (mem, dsk & ~bit, painted), FREE
            if not has(i) and used < budget:
                yield (mem | bit, dsk, painted), READ
    if painted >= 1 and has(painted - 1):
        yield (mem, dsk, painted - 1), FREE


def _feasible(n: int, budget: int, inplace: bool) -> bool:
    return budget >= pebbles.min_pebbles(n, "inplace" if inplace else "checkpoint")


BRUTE = [(n, s, d, wc, rc, inplace)
         for inplace in (False, True)
         for n, s, disks in ((3, 2, (0, 1, None)), (5, 2, (0, 1, 2, None)),
                             (6, 3, (1, 2, None)), (7, 2, (1, 2)), (7, 3, (1,)))
         for d in disks
         for wc, rc in ((0.5, 0.5), (1.0, 3.0), (3.0, 0.25))]


@pytest.mark.parametrize("n,s,d,wc,rc,inplace", BRUTE)
def test_optimum_equals_exhaustive_search(n, s, d, wc, rc, inplace):
    want = reference(n, s, d, wc, rc, inplace)
    assert min_total_time(n, s, d, write_cost=wc, read_cost=rc, inplace=inplace) == want


def test_exhaustive_search_sees_the_disk_pay_off():
    # the reference is not trivially the memory-only optimum: a cheap disk saves steps
    assert reference(6, 2, None, 0.5, 0.5, False) < pebbles.min_forward_steps(6, 2)
    assert reference(6, 2, 0, 0.5, 0.5, False) == pebbles.min_forward_steps(6, 2)


GRID = [(n, s, d, wc, rc, inplace)
        for inplace in (False, True)
        for n in (1, 2, 3, 9, 20, 57)
        for s in (1, 2, 3, 5)
        for d in (0, 1, 3, None)
        for wc, rc in COSTS
        if _feasible(n, s, inplace)]


@pytest.mark.parametrize("inplace", [False, True])
def test_streams_are_legal_and_take_the_optimal_time(inplace):
    game = "inplace" if inplace else "checkpoint"
    for n, s, d, wc, rc, ip in GRID:
        if ip != inplace:
            continue
        moves = list(two_level(n, s, d, write_cost=wc, read_cost=rc, inplace=inplace))
        r = pebbles.simulate(moves, n, game, s, disk_budget=d, write_cost=wc, read_cost=rc)
        assert r.time == min_total_time(n, s, d, write_cost=wc, read_cost=rc,
                                        inplace=inplace), (n, s, d, wc, rc)
        assert r.backward_steps == n
        assert r.forward_steps == two_level_steps(n, s, d, write_cost=wc, read_cost=rc,
                                                  inplace=inplace)


@pytest.mark.parametrize("inplace", [False, True])
def test_no_disk_is_todays_optimum(inplace):
    game = "inplace" if inplace else "checkpoint"
    for n in (1, 2, 5, 17, 100, 333):
        for s in range(1, 8):
            if not _feasible(n, s, inplace):
                continue
            want = pebbles.min_forward_steps(n, s, game)
            assert min_total_time(n, s, 0, write_cost=1, read_cost=1, inplace=inplace) == want
            if n <= 100:  # the table itself, not only the shortcut to Treeverse
                k = min(s, n)
                assert _Tables(n, k, 0, 1.0, 1.0, inplace).h0[_P + k, 0, n] == want
            assert min_total_time(n, s, None, write_cost=math.inf, read_cost=1,
                                  inplace=inplace) == want
            moves = list(two_level(n, s, 0, write_cost=1, read_cost=1, inplace=inplace))
            assert not any(m.kind in (pebbles.MoveKind.STORE, pebbles.MoveKind.LOAD)
                           for m in moves)


def test_large_board_stream_matches_and_beats_memory_only():
    n, s = 2000, 10
    arr = pebbles.encode(two_level(n, s, None, write_cost=2, read_cost=2))
    r = pebbles.simulate(arr, n, "checkpoint", s, write_cost=2, read_cost=2)
    assert r.time == min_total_time(n, s, None, write_cost=2, read_cost=2)
    assert r.time < pebbles.min_forward_steps(n, s)
    assert r.writes > 0 and r.reads > 0


@pytest.mark.parametrize("inplace", [False, True])
def test_unbounded_fast_table_equals_general_table(inplace):
    # the unbounded-disk table (first-sweep writes, pruned splits) against the table
    # over all (memory, disk) sub-problems with every split tried
    for n in (13, 64, 150):
        for s in (2, 3, 6):
            for wc, rc in COSTS + [(50.0, 20.0), (0.0, 7.0)]:
                if not _feasible(n, s, inplace):
                    continue
                full = _Tables(n, s, None, wc, rc, inplace).h0[_P + s, 0, n]
                assert _Spine(n, s, wc, rc, inplace).h0[_P + s, n] == full, (n, s, wc, rc)


def test_bounded_disk_uses_no_more_than_its_budget_and_costs_monotone():
    n, s = 60, 3
    times = []
    for d in (0, 1, 2, 3, 5, None):
        moves = list(two_level(n, s, d, write_cost=1, read_cost=1))
        r = pebbles.simulate(moves, n, "checkpoint", s, disk_budget=d, write_cost=1,
                             read_cost=1)
        times.append(r.time)
        assert d is None or r.peak_disk <= d
    assert times == sorted(times, reverse=True) and times[0] > times[-1]
    cheap = min_total_time(n, s, None, write_cost=0.5, read_cost=0.5)
    assert cheap <= min_total_time(n, s, None, write_cost=1, read_cost=0.5) <= times[-1]


def _bench() -> ModuleType:
    """benchmarks/bench_twolevel.py, which holds the translation of the peers' schedules."""
    sys.path.insert(0, str(ROOT / "benchmarks"))  # for its `from _common import ...`
    try:
        spec = importlib.util.spec_from_file_location(
            "_bench_twolevel", ROOT / "benchmarks" / "bench_twolevel.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return mod


@pytest.mark.parametrize("peer", ["HRevolve", "DiskRevolve"])
def test_no_worse_than_checkpoint_schedules(peer):
    bench = _bench()
    used_disk = 0
    for n in (10, 30, 80):
        for ram in (2, 3, 5):
            for wc, rc in ((0.5, 0.5), (2.0, 2.0), (5.0, 1.0), (1.0, 8.0)):
                rec = bench.compare(peer, n, ram, 4, wc, rc)
                assert rec["ours"] <= rec["peer_time"], rec
                used_disk += rec["peak_disk"] > 0
    assert used_disk > 0  # the grid exercises their disk level, not only memory


def test_translated_peer_stream_is_checked_by_the_simulator():
    bench = _bench()
    moves = bench.peer_moves("HRevolve", 30, 3, 4, 0.5, 0.5)
    kinds = {m.kind for m in moves}
    assert pebbles.MoveKind.STORE in kinds and pebbles.MoveKind.LOAD in kinds
    with pytest.raises(pebbles.IllegalMoveError):  # one memory pebble fewer than it needs
        pebbles.simulate(moves, 30, "inplace", 2, write_cost=0.5, read_cost=0.5)


@pytest.mark.parametrize("inplace", [False, True])
def test_periodic_disk_is_legal_priced_and_never_beats_the_optimum(inplace):
    game = "inplace" if inplace else "checkpoint"
    for n, s, period in ((30, 3, 10), (100, 4, 7), (101, 5, 1), (50, 3, 50), (64, 4, 3)):
        r = pebbles.simulate(periodic_disk(n, s, period, inplace=inplace), n, game, s,
                             write_cost=2, read_cost=1.5)
        assert r.time == periodic_disk_time(n, s, period, write_cost=2, read_cost=1.5,
                                            inplace=inplace)
        assert r.peak_disk == max((n - 1) // period - 1, 0)
        assert r.writes == r.reads  # every state written is read back: the last start is
        # kept in memory, never written
        assert min_total_time(n, s, None, write_cost=2, read_cost=1.5,
                              inplace=inplace) <= r.time
    p = best_period(200, 4, write_cost=2, read_cost=2, inplace=inplace)
    assert periodic_disk_time(200, 4, p, write_cost=2, read_cost=2, inplace=inplace) < \
        pebbles.min_forward_steps(200, 4, game)


@pytest.mark.parametrize("kwargs,match", [
    (dict(n=10, budget=1, disk_budget=None), "budget"),
    (dict(n=0, budget=3, disk_budget=None), "n=0"),
    (dict(n=10, budget=3, disk_budget=-1), "disk_budget"),
    (dict(n=10, budget=3, disk_budget=1.5), "disk_budget"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        min_total_time(**kwargs, write_cost=1, read_cost=1)


@pytest.mark.parametrize("make", [min_total_time, lambda *a, **k: list(two_level(*a, **k))])
@pytest.mark.parametrize(("inplace", "least"), [(False, 2), (True, 1)])
def test_a_negative_budget_is_told_the_least_budget(make, inplace, least):
    """budget=-2 was told "pass budget=0 or more", and budget=0 was then refused."""
    with pytest.raises(pebbles.InfeasibleBudgetError,
                       match=rf"^budget=-2 must be >= {least}, the least budget that finishes "
                             rf"n=10 steps; pass budget={least} or more$") as err:
        make(10, -2, write_cost=1, read_cost=1, inplace=inplace)
    assert err.value.minimum == least
    make(10, least, write_cost=1, read_cost=1, inplace=inplace)  # which it is


@pytest.mark.parametrize("cost", [-1.0, float("nan")])
def test_bad_costs_are_refused(cost):
    nan = "; NaN is not one" if cost != cost else ""
    with pytest.raises(pebbles.PebblesValueError, match=f"write_cost=.* >= 0 .*steps{nan}"):
        min_total_time(10, 3, write_cost=cost, read_cost=1)
    with pytest.raises(pebbles.PebblesTypeError, match="read_cost"):
        list(two_level(10, 3, write_cost=1, read_cost="2"))


def test_pruning_bounds_the_splits_independently_of_n():
    # the pruning lemma keeps the unbounded table O(n J S) with J set by the costs
    limits = {n: _Spine(n, 10, 2.0, 2.0, False).j_limit for n in (500, 3000)}
    assert limits[500] == limits[3000] < 100
    assert _Spine(3000, 10, 0.5, 0.5, True).j_limit < limits[3000]


def test_periodic_disk_needs_a_pebble_for_the_held_start():
    with pytest.raises(pebbles.InfeasibleBudgetError, match="budget >= 3"):
        list(periodic_disk(30, 2, 10))


@pytest.mark.parametrize("n", [3, 4, 20])
def test_periodic_disk_with_one_pebble_refuses_the_walk_between_starts(n):
    # period 1, budget 1: the first sweep walks s_1 -> s_2 (two pebbles); refused when the
    # schedule is made, not by the simulator later ("needs 2 pebbles at once")
    with pytest.raises(pebbles.InfeasibleBudgetError, match=r"budget >= 2") as err:
        pebbles.schedule("periodic-disk", n, budget=1, period=1)
    assert err.value.minimum == 2
    with pytest.raises(pebbles.PebblesValueError):
        periodic_disk_time(n, 1, 1, write_cost=1, read_cost=1)
    for budget, period, inplace in ((1, 1, True), (2, 1, False)):  # the legal neighbours
        r = pebbles.schedule("periodic-disk", n, budget=budget, period=period,
                             inplace=inplace).simulate(write_cost=1, read_cost=1)
        assert r.time == periodic_disk_time(n, budget, period, write_cost=1, read_cost=1,
                                            inplace=inplace)
    assert pebbles.schedule("periodic-disk", 2, budget=1, period=1).simulate().peak_states == 1
    # no period is legal with one pebble (period 20 needs two): refused, not "20"
    with pytest.raises(pebbles.InfeasibleBudgetError, match="budget=1 .* budget=2") as err:
        best_period(20, 1, write_cost=0, read_cost=0)
    assert err.value.minimum == 2


def test_periodic_disk_time_is_closed_form_for_huge_n():
    # priced without listing every period start (10^9 of them here)
    n, period = 10**12, 1000
    mfs = pebbles.min_forward_steps
    want = (n - period) + 999_999_998 * 3.0 + 999_999_998 * 2.0 + mfs(period, 10) \
        + 999_999_999 * mfs(period, 9)
    assert periodic_disk_time(n, 10, period, write_cost=3, read_cost=2) == want


@pytest.mark.parametrize("make", [
    lambda: pebbles.schedule("periodic-disk", 20, budget=3, period=4, inplace=1),
    lambda: pebbles.schedule("two-level", 20, budget=3, write_cost=1, read_cost=1, inplace=1),
    lambda: min_total_time(20, 3, write_cost=1, read_cost=1, inplace="yes"),
])
def test_inplace_must_be_a_bool(make):
    # inplace=1 is refused (not printed as "--inplace 1"), as treeverse's is
    with pytest.raises(pebbles.PebblesTypeError, match=r"inplace=.* must be True or False"):
        make()


def test_no_disk_at_scale_is_treeverse():
    n, s = 10_000, 10
    assert min_total_time(n, s, 0, write_cost=1, read_cost=1) == pebbles.min_forward_steps(n, s)
    assert min_total_time(n, s, None, write_cost=1, read_cost=math.inf, inplace=True) == \
        pebbles.min_forward_steps(n, s, "inplace")
    # the general table agrees with that shortcut where it is cheap to run
    assert _Tables(300, 4, 0, 1.0, 1.0, False).h0[_P + 4, 0, 300] == \
        pebbles.min_forward_steps(300, 4)


@pytest.mark.parametrize("inplace", [False, True])
def test_forward_steps_of_large_schedules_without_their_moves(inplace):
    """The spine's step count (no moves made) is the simulator's, and what plan reports."""
    kw = dict(write_cost=2.0, read_cost=1.5, inplace=inplace)
    for n, s in [(3000, 4), (2500, 7)]:
        r = pebbles.schedule("two-level", n, budget=s, **kw).simulate()
        assert two_level_steps(n, s, None, **kw) == r.forward_steps
        assert r.forward_steps < r.time  # the count is the steps, not the total time
    p = pebbles.plan(3000, 4, write_cost=2.0, read_cost=1.5)
    two = [c for c in p.candidates if c.method == "two-level"]
    assert two and all(c.forward_steps == c.schedule.simulate().forward_steps for c in two)


def test_a_bounded_disk_table_too_large_is_refused_at_once():
    need = _Spine(8000, 10, 2.0, 2.0, False).disk_used(10)
    for make in (two_level, min_total_time, two_level_steps):
        with pytest.raises(pebbles.PebblesValueError,
                           match=f"disk_budget=5 with n=8000.*disk_budget={need} or more"):
            make(8000, 10, 5, write_cost=2.0, read_cost=2.0)
    assert need > 5


@pytest.mark.parametrize("make", [
    lambda n, s: pebbles.schedule("two-level", n, budget=s, write_cost=2, read_cost=1),
    lambda n, s: two_level(n, s, write_cost=2, read_cost=1),
    lambda n, s: two_level_steps(n, s, write_cost=2, read_cost=1),
    lambda n, s: min_total_time(n, s, write_cost=2, read_cost=1),
    lambda n, s: min_total_time(n, s, 3, write_cost=2, read_cost=1, inplace=True),
])
def test_two_level_tables_too_large_are_refused_at_once(make):
    # refused before numpy is asked for the tables ("Unable to allocate 94.6 TiB")
    t0 = time.perf_counter()
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"n=1000000000000, budget=10: .*\(budget \+ 3\) \* \(n \+ 1\) "
                             r"= 1\.3e\+13 .*more than the 2e\+07 .*'periodic-disk'"):
        make(10**12, 10)
    assert time.perf_counter() - t0 < 1
    assert not two_level_tables_fit(10**12, 10) and two_level_tables_fit(10**5, 10)


def test_two_level_work_near_a_budget_of_n_is_refused_at_once():
    """A budget near n leaves splits up to about the budget apart: the work grows with the
    budget squared (n = 10^4 at budget 1000 would run for minutes)."""
    assert two_level_tables_fit(10**4, 300) and not two_level_tables_fit(10**4, 1000)
    t0 = time.perf_counter()
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"n=10000, budget=1000: its table would take about 1\.0e\+10 "
                             r"operations, more than the 1e\+09 .*'treeverse' \(memory only\), "
                             r"which needs 18998 forward steps"):
        pebbles.schedule("two-level", 10**4, budget=1000, write_cost=1, read_cost=1)
    assert time.perf_counter() - t0 < 1


def test_two_level_table_limit_is_the_entry_count(monkeypatch):
    monkeypatch.setattr(twolevel, "TWO_LEVEL_MAX_ENTRIES", (4 + 3) * (41 + 1))
    assert min_total_time(41, 4, write_cost=2, read_cost=1) > 0  # exactly at the limit
    assert two_level_tables_fit(41, 4) and not two_level_tables_fit(42, 4)
    with pytest.raises(pebbles.PebblesValueError, match="segments of at most 41 steps"):
        min_total_time(42, 4, write_cost=2, read_cost=1)
    # a budget above n counts as n (the tables are cut there)
    assert two_level_tables_fit(41, 100) is two_level_tables_fit(41, 41)


def test_two_level_size_errors_offer_segments_that_fit_both_limits(monkeypatch):
    """The segments offered for a table too large fit the entry and the work limits
    (here the work limit is the tighter); where memory holds such a segment whole, a
    disk cannot help: Treeverse is offered."""
    monkeypatch.setattr(twolevel, "TWO_LEVEL_MAX_ENTRIES", 13 * 1001)
    monkeypatch.setattr(twolevel, "TWO_LEVEL_MAX_WORK", 500 * 10 * 26)
    with pytest.raises(pebbles.PebblesValueError) as err:
        min_total_time(2000, 10, write_cost=2, read_cost=1)
    most = int(re.search(r"segments of at most (\d+) steps", str(err.value)).group(1))
    assert most == 500 and not two_level_tables_fit(501, 10)
    min_total_time(most, 10, write_cost=2, read_cost=1)  # the advice works
    monkeypatch.undo()
    with pytest.raises(pebbles.PebblesValueError) as err:
        min_total_time(10**5, 10**4, write_cost=2, read_cost=1)
    assert "segments" not in str(err.value)
    assert "'treeverse' (memory only), which needs 189998 forward steps" in str(err.value)


def test_periodic_disk_streams_at_huge_n():
    # streamed without listing the period starts first (a MemoryError at 10^11 periods)
    t0 = time.perf_counter()
    moves = [str(m) for m in itertools.islice(
        pebbles.schedule("periodic-disk", 10**12, budget=3, period=10), 6)]
    assert moves[:3] == ["forward 0 10", "store 10", "place 11"]
    assert time.perf_counter() - t0 < 1


@pytest.mark.parametrize("inplace", [False, True])
def test_periodic_disk_stream_is_unchanged(inplace):
    # the streamed periods give the moves the listed ones gave: every period's start but
    # the last (kept in memory) stored on the way out, loaded, reversed and freed on the
    # way back
    game = "inplace" if inplace else "checkpoint"
    for n, period in ((23, 5), (20, 5), (7, 7), (9, 20), (12, 1)):
        moves = list(periodic_disk(n, 4, period, inplace=inplace))
        starts = list(range(period, n, period))
        assert [m.a for m in moves if m.kind is pebbles.MoveKind.STORE] == starts[:-1]
        assert [m.a for m in moves if m.kind is pebbles.MoveKind.LOAD] == starts[-2::-1]
        r = pebbles.simulate(moves, n, game, 4, write_cost=1.5, read_cost=2)
        assert r.time == periodic_disk_time(n, 4, period, write_cost=1.5, read_cost=2,
                                            inplace=inplace)


def test_periodic_disk_time_of_an_unpriced_disk_is_not_nan():
    # no write (read) at all costs nothing: 0 * inf does not make these nan
    assert periodic_disk_time(10, 3, 10, write_cost=math.inf, read_cost=1) == \
        pebbles.min_forward_steps(10, 3)
    assert periodic_disk_time(30, 3, 15, write_cost=1, read_cost=math.inf) == \
        periodic_disk_time(30, 3, 15, write_cost=1, read_cost=1)
    assert periodic_disk_time(30, 3, 10, write_cost=1, read_cost=math.inf) == math.inf


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(write_cost=-1), pebbles.PebblesValueError, r"write_cost=-1 must be a number >= 0"),
    (dict(read_cost=float("nan")), pebbles.PebblesValueError, r"read_cost=nan .*NaN"),
    (dict(read_cost="2"), pebbles.PebblesTypeError, r"read_cost='2' must be a number"),
    (dict(budget=0), pebbles.InfeasibleBudgetError, r"budget=0 cannot .* budget=2 or more"),
    # names the least budget that finishes, not "pass budget=0 or more" (refused in turn)
    (dict(budget=-3), pebbles.InfeasibleBudgetError, r"^budget=-3 must be >= 2, the least "
                                                     r"budget that finishes n=100 steps; pass "
                                                     r"budget=2 or more$"),
    (dict(budget=-3, inplace=True), pebbles.InfeasibleBudgetError, r"^budget=-3 must be >= 1"),
    (dict(n=0), pebbles.PebblesValueError, r"n=0 must be >= 1"),
    (dict(n=-5), pebbles.PebblesValueError, r"n=-5 must be >= 1"),
    (dict(n=10.0), pebbles.PebblesTypeError, r"n=10\.0 must be an integer"),
    (dict(inplace="yes"), pebbles.PebblesTypeError, r"inplace='yes' must be True or False"),
    (dict(n=10**12), pebbles.PebblesValueError, r"best_period\(n=1000000000000\) .*<= 1e\+08 "
                                                r".*periodic_disk_time"),
])
def test_best_period_refuses_bad_arguments(kwargs, error, match):
    # refused with the argument named, not answered with a period (n, 0 or -5: a
    # refusal taken for "not this period") nor a raw TypeError
    args = dict(n=100, budget=4, write_cost=2, read_cost=1) | kwargs
    with pytest.raises(error, match=match):
        best_period(**args)


def _best_period_loop(n, budget, wc, rc, inplace):
    """The former best_period: every period priced one by one (ties: the longest)."""
    best, arg = math.inf, n
    for period in range(n, 0, -1):
        try:
            t = periodic_disk_time(n, budget, period, write_cost=wc, read_cost=rc,
                                   inplace=inplace)
        except pebbles.PebblesValueError:
            continue
        if t < best:
            best, arg = t, period
    return arg


def test_best_period_equals_the_loop_over_every_period():
    rng = random.Random(7)
    costs = [0, 1e-9, 0.1, 0.5, 1, 2, 3, 7.25, 30, 100, math.inf]
    boards = [*range(1, 41), *(rng.randrange(41, 1500) for _ in range(8))]
    for n, inplace in itertools.product(boards, (False, True)):
        least = pebbles.min_pebbles(n, "inplace" if inplace else "checkpoint")
        for budget in sorted({least, least + 1, 3, 5, n + 2} - set(range(least))):
            wc, rc = rng.choice(costs), rng.choice(costs)
            assert best_period(n, budget, write_cost=wc, read_cost=rc, inplace=inplace) == \
                _best_period_loop(n, budget, wc, rc, inplace), (n, budget, wc, rc, inplace)


def test_best_period_is_vectorised():
    # 85 s at n = 10^6 when it priced the periods one by one in Python
    t0 = time.perf_counter()
    assert best_period(10**6, 4, write_cost=2, read_cost=1) == 4
    assert time.perf_counter() - t0 < 20


def test_best_period_blocks_keep_the_longest_of_tied_periods(monkeypatch):
    # periods 5 and 6 tie at (40, 6, 1, 1), 1..6 at (61, 6, 0.5, 0.5): the periods are
    # priced in blocks, and across blocks too the longest tied one wins, as in the loop
    for block in (1, 2, 4, 5, 64):
        monkeypatch.setattr(twolevel, "_PERIOD_BLOCK", block)
        for n, budget, wc, rc in ((40, 6, 1, 1), (61, 6, 0.5, 0.5), (30, 30, 1, 1)):
            assert best_period(n, budget, write_cost=wc, read_cost=rc) == \
                _best_period_loop(n, budget, wc, rc, False) == \
                {40: 6, 61: 6, 30: 30}[n]


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_treeverse_steps_vectorised_is_min_forward_steps(game):
    g = pebbles.Game(game)
    m = np.arange(1, 301)
    for s in (0, 1, 2, 3, 7, 299, 300, 10**6):
        steps, reps = _treeverse_steps(m, s, g)
        for i in (1, 2, 3, 4, 5, 17, 100, 299, 300):
            ok = s >= pebbles.min_pebbles(i, game)
            assert steps[i - 1] == (pebbles.min_forward_steps(i, s, game) if ok else math.inf)
            assert math.isfinite(reps[i - 1]) is ok


def test_plan_skips_two_level_tables_too_large_with_a_note():
    for kw in ({}, {"disk_budget": 5}, {"background_writes": True}):
        p = pebbles.plan(10**12, budget=10, write_cost=2, read_cost=1, **kw)
        assert p.best.schedule.method == "treeverse"
        assert any(x.startswith("two-level (n=1000000000000") for x in p.skipped)


def test_plan_skips_a_bounded_disk_table_too_large_below_the_n_limit():
    # n <= BOUNDED_DISK_MAX_N, yet n^2 * S * (D + 1) = 1.2e9 is over BOUNDED_MAX_WORK
    assert 2000 <= pebbles._planner.BOUNDED_DISK_MAX_N
    assert twolevel.bounded_work(2000, 100, 2) > twolevel.BOUNDED_MAX_WORK
    p = pebbles.plan(2000, 100, disk_budget=2, write_cost=0.2, read_cost=0.2)
    assert p.best.schedule.method == "treeverse"
    notes = [x for x in p.skipped if x.startswith("two-level")]
    assert len(notes) == 2 and all("1.2e+09 entries" in x for x in notes)


def test_an_infinite_disk_budget_is_an_unbounded_disk_everywhere():
    kw = dict(write_cost=1, read_cost=1)
    s = pebbles.schedule("two-level", 50, budget=3, disk_budget=math.inf, **kw)
    free = pebbles.schedule("two-level", 50, budget=3, **kw)
    assert s.simulate() == free.simulate()
    assert pebbles.simulate(free, 50, disk_budget=math.inf, **kw) == free.simulate()
    assert pebbles.simulate(free, 50, disk_budget=np.float32("inf"), **kw) == free.simulate()
    inf_plan = pebbles.plan(50, 3, disk_budget=math.inf, **kw)
    assert inf_plan == pebbles.plan(50, 3, disk_budget=None, **kw)
    with pytest.raises(pebbles.PebblesTypeError, match=r"disk_budget=2.5 .*whole number"):
        pebbles.simulate(free, 50, disk_budget=2.5, **kw)
