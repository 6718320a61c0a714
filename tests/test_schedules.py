"""Every schedule of the library, refereed by the one simulator (``pebbles.simulate``).

Checks legality under the requested budget, step counts against the exact optima,
golden values from the paper (Liu & Xu, Figure 7a and section 4) and the
streaming / input-validation contracts.
"""

from __future__ import annotations

import inspect
import itertools
import sys
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pebbles
from pebbles import (
    InfeasibleBudgetError,
    PebblesTypeError,
    PebblesValueError,
    bennett,
    bennett_gradient,
    bennett_pebbles,
    bennett_steps,
    min_forward_steps,
    min_pebbles,
    periodic,
    recompute_all,
    reversible_gradient,
    reversible_min_steps,
    reversible_optimal,
    simulate,
    store_all,
    treeverse,
    treeverse_paper,
)

N_MAX = 60
S_MAX = 8


def _feasible(n: int, game: str) -> range:
    return range(min_pebbles(n, game), S_MAX + 1)


# --------------------------------------------------------------------------- treeverse


@pytest.mark.parametrize("inplace", [False, True], ids=["checkpoint", "inplace"])
def test_treeverse_optimal_and_legal_small(inplace: bool) -> None:
    game = "inplace" if inplace else "checkpoint"
    for n in range(1, N_MAX + 1):
        for s in _feasible(n, game):
            r = simulate(treeverse(n, s, inplace=inplace), n, game, budget=s)
            assert r.backward_steps == n, (n, s)
            assert r.forward_steps == min_forward_steps(n, s, game), (n, s)
            assert r.peak_states <= s


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3000), s=st.integers(0, 30), inplace=st.booleans())
def test_treeverse_optimal_random_large(n: int, s: int, inplace: bool) -> None:
    game = "inplace" if inplace else "checkpoint"
    s = max(s, min_pebbles(n, game))
    r = simulate(treeverse(n, s, inplace=inplace), n, game, budget=s)
    assert r.backward_steps == n
    assert r.peak_states <= s
    assert r.forward_steps == min_forward_steps(n, s, game)


def test_treeverse_inplace_stream_not_legal_in_checkpoint_game_when_tight() -> None:
    # The in-place schedule uses one pebble fewer while walking; in the paper's
    # game with the same budget it must break the budget somewhere (n=20, S=4:
    # 39 steps is below the checkpoint-game optimum 40).
    with pytest.raises(pebbles.IllegalMoveError):
        simulate(treeverse(20, 4, inplace=True), 20, "checkpoint", budget=4)


# --------------------------------------------------------------------------- paper Algorithm 3


@pytest.mark.parametrize("delta", range(1, 7))
def test_treeverse_paper_legal(delta: int) -> None:
    for n in range(1, N_MAX + 1):
        r = simulate(treeverse_paper(n, delta), n, "checkpoint", budget=delta + 1)
        assert r.backward_steps == n
        # never better than the optimum for the memory it actually used
        if r.peak_states >= min_pebbles(n, "checkpoint"):
            assert r.forward_steps >= min_forward_steps(n, r.peak_states, "checkpoint")


def test_treeverse_paper_golden_counts() -> None:
    r = simulate(treeverse_paper(20, 3), 20)
    assert (r.forward_steps, r.backward_steps, r.peak_states) == (45, 20, 4)
    r = simulate(treeverse_paper(9999, 5), 9999)
    assert r.forward_steps == 113095
    assert r.peak_states == 6
    assert r.backward_steps == 9999
    # about 25 % above Revolve's optimum for that memory (paper-notes section 3)
    assert 1.2 < r.forward_steps / min_forward_steps(9999, 6, "inplace") < 1.3
    # and, being legal with peak 6, not below the paper game's optimum
    assert r.forward_steps >= min_forward_steps(9999, 6, "checkpoint") == 99604


# Frozen once from treeverse_paper(20, 3), checked by hand against Algorithm 3:
# tau = 3 (C(6,3) = 20); mid(3,3,0,20) = 10 -> forward 0 10 (delta 2);
# mid(2,3,10,20) = ceil(80/5) = 16 -> forward 10 16 (delta 1);
# mid(1,3,16,20) = ceil(76/4) = 19 -> forward 16 19 (delta 0);
# mid(0,3,19,20) = 20 >= phi -> paint 19, remove 19; back at sigma=16, tau=2,
# phi=19: mid(1,2,16,19) = ceil(54/3) = 18 -> forward 16 18, paint 18, remove 18;
# tau=1, phi=18: mid(1,1,16,18) = 17 -> forward 16 17 ...
GOLDEN_PAPER_20_3 = [
    "forward 0 10", "forward 10 16", "forward 16 19", "paint 19", "remove 19",
    "forward 16 18", "paint 18", "remove 18", "forward 16 17", "paint 17", "remove 17",
    "paint 16", "remove 16", "forward 10 13", "forward 13 15", "paint 15", "remove 15",
    "forward 13 14", "paint 14", "remove 14", "paint 13", "remove 13", "forward 10 11",
    "forward 11 12", "paint 12", "remove 12", "paint 11", "remove 11", "paint 10",
    "remove 10", "forward 0 4", "forward 4 7", "forward 7 9", "paint 9", "remove 9",
    "forward 7 8", "paint 8", "remove 8", "paint 7", "remove 7", "forward 4 5",
    "forward 5 6", "paint 6", "remove 6", "paint 5", "remove 5", "paint 4", "remove 4",
    "forward 0 1", "forward 1 2", "forward 2 3", "paint 3", "remove 3", "paint 2",
    "remove 2", "paint 1", "remove 1", "paint 0",
]


def test_treeverse_paper_golden_stream() -> None:
    assert [str(m) for m in treeverse_paper(20, 3)] == GOLDEN_PAPER_20_3
    assert [pebbles.format_move(m) for m in treeverse_paper(20, 3)] == GOLDEN_PAPER_20_3


def test_treeverse_golden() -> None:
    assert simulate(treeverse(20, 4), 20, "checkpoint", budget=4).forward_steps == 40
    assert simulate(treeverse(20, 4, inplace=True), 20, "inplace", budget=4).forward_steps == 39


# --------------------------------------------------------------------------- Bennett / reversible


@pytest.mark.parametrize("k", range(2, 6))
@pytest.mark.parametrize("uncompute", [True, False])
def test_bennett_legal(k: int, uncompute: bool) -> None:
    for n in range(1, N_MAX + 1):
        peak = bennett_pebbles(n, k, uncompute=uncompute)
        r = simulate(bennett(n, k, uncompute=uncompute), n, "reversible", budget=peak)
        assert r.peak_states == peak, (n, k)
        assert r.first_reach_n is not None
        if not uncompute:
            assert r.forward_steps == r.first_reach_n
        else:
            # the full run leaves only the pebble on n: every other pebble uncomputed
            tr = simulate(bennett(n, k), n, "reversible", trace=True).trace
            assert tr[-1].pebbles == (n,)
        assert r.forward_steps >= reversible_min_steps(n, peak)


def test_bennett_power_formula() -> None:
    # n = k^l: (2k-1)^l steps with l(k-1)+1 pebbles (paper eq. (5))
    for k, l in [(2, 1), (2, 2), (2, 3), (2, 4), (2, 5), (3, 2), (3, 3), (4, 2), (5, 2)]:
        n = k**l
        r = simulate(bennett(n, k), n, "reversible")
        assert r.forward_steps == (2 * k - 1) ** l
        assert r.peak_states == l * (k - 1) + 1 == bennett_pebbles(n, k)


def test_bennett_counts_at_huge_k_from_block_sizes() -> None:
    # n = k^2: (2k - 1)^2 steps, (k - 1)(2k - 1) + k without the top-level uncompute,
    # 2k - 1 pebbles either way; the recursion counts blocks of two sizes instead of
    # listing k blocks a level (a list of 10^8 blocks took gigabytes)
    for k in (2, 3, 4, 7, 10**8):
        n = k * k
        assert bennett_steps(n, k) == (2 * k - 1) ** 2  # paper eq. (5)
        assert bennett_steps(n, k, uncompute=False) == (k - 1) * (2 * k - 1) + k
        for uncompute in (True, False):
            assert bennett_pebbles(n, k, uncompute=uncompute) == 2 * k - 1
        if k < 10:
            r = simulate(bennett(n, k, uncompute=False), n, "reversible")
            assert (r.forward_steps, r.peak_states) == ((k - 1) * (2 * k - 1) + k, 2 * k - 1)


def test_bennett_golden() -> None:
    r = simulate(bennett(16, 2), 16, "reversible")
    assert (r.forward_steps, r.first_reach_n, r.peak_states) == (81, 41, 5)
    r = simulate(bennett(16, 2, uncompute=False), 16, "reversible")
    assert r.forward_steps == 41
    assert r.first_reach_n == 41


def test_reversible_optimal_legal_and_beats_bennett() -> None:
    strictly_better = set()
    for n in range(1, N_MAX + 1):
        for s in range(min_pebbles(n, "reversible"), S_MAX + 1):
            r = simulate(reversible_optimal(n, s), n, "reversible", budget=s)
            assert r.forward_steps == reversible_min_steps(n, s), (n, s)
            assert r.forward_steps == min_forward_steps(n, s, "reversible")
            assert r.first_reach_n == r.forward_steps
            for k in range(2, 6):
                if bennett_pebbles(n, k, uncompute=False) <= s:
                    b = simulate(bennett(n, k, uncompute=False), n, "reversible")
                    assert r.forward_steps <= b.forward_steps, (n, s, k)
                    if r.forward_steps < b.forward_steps:
                        strictly_better.add((n, s, k))
    assert (16, 5, 2) in strictly_better
    assert len(strictly_better) > 50


def test_reversible_optimal_golden() -> None:
    r = simulate(reversible_optimal(16, 5), 16, "reversible", budget=5)
    assert r.forward_steps == 29
    assert simulate(bennett(16, 2, uncompute=False), 16, "reversible").forward_steps == 41


@pytest.mark.parametrize("k", range(2, 6))
def test_bennett_gradient_legal(k: int) -> None:
    for n in range(1, N_MAX + 1):
        fwd = simulate(bennett(n, k, uncompute=False), n, "reversible")
        r = simulate(bennett_gradient(n, k), n, "checkpoint", budget=fwd.peak_states)
        assert r.backward_steps == n
        # forward play: its placements; mirror play: one recomputation per
        # uncomputation -- in all, the reversible run's step count
        assert r.forward_steps == fwd.forward_steps
        assert r.peak_states == fwd.peak_states


def test_reversible_gradient_legal() -> None:
    for n in range(1, N_MAX + 1):
        for s in range(min_pebbles(n, "reversible"), S_MAX + 1):
            fwd = reversible_min_steps(n, s)
            r = simulate(
                reversible_gradient(reversible_optimal(n, s), n), n, "checkpoint", budget=s
            )
            assert r.backward_steps == n
            assert r.forward_steps == fwd
            # any legal gradient schedule is no better than the checkpoint optimum
            assert r.forward_steps >= min_forward_steps(n, max(s, min_pebbles(n, "checkpoint")))


def test_reversible_gradient_golden() -> None:
    g = reversible_gradient(reversible_optimal(16, 5), 16)
    assert simulate(g, 16, "checkpoint", budget=5).forward_steps == 29


def test_reversible_gradient_rejects_stream_not_ending_on_n() -> None:
    with pytest.raises(pebbles.IllegalMoveError):
        list(reversible_gradient(reversible_optimal(5, 3), 7))


# --------------------------------------------------------------------------- baselines


def test_store_all() -> None:
    for n in range(1, N_MAX + 1):
        r = simulate(store_all(n), n, "checkpoint", budget=max(n - 1, 0))
        assert r.forward_steps == n - 1
        assert r.peak_states == n - 1
        assert r.backward_steps == n


def test_recompute_all() -> None:
    for n in range(1, N_MAX + 1):
        r = simulate(recompute_all(n), n, "checkpoint", budget=2)
        assert r.forward_steps == n * (n - 1) // 2
        assert r.backward_steps == n
        if n >= 3:
            assert r.peak_states == 2
            assert r.forward_steps >= min_forward_steps(n, 2, "checkpoint")


@pytest.mark.parametrize("every", [1, 2, 3, 5, 7, 10, 61])
def test_periodic(every: int) -> None:
    for n in range(1, N_MAX + 1):
        r = simulate(periodic(n, every), n, "checkpoint")
        assert r.backward_steps == n
        assert r.forward_steps < 2 * n
        used = max(r.peak_states, min_pebbles(n, "checkpoint"))
        assert r.forward_steps >= min_forward_steps(n, used)


def test_periodic_golden() -> None:
    r = simulate(periodic(100, 10), 100)
    assert (r.forward_steps, r.peak_states) == (180, 18)


# --------------------------------------------------------------------------- streaming


SCHEDULES = [
    lambda: treeverse(50, 4),
    lambda: treeverse(50, 4, inplace=True),
    lambda: treeverse_paper(50, 3),
    lambda: bennett(50, 3),
    lambda: bennett(50, 3, uncompute=False),
    lambda: bennett_gradient(50, 3),
    lambda: reversible_optimal(50, 7),
    lambda: reversible_gradient(reversible_optimal(50, 7), 50),
    lambda: store_all(50),
    lambda: recompute_all(50),
    lambda: periodic(50, 7),
]


@pytest.mark.parametrize("make", SCHEDULES)
def test_schedules_are_iterators(make) -> None:
    g = make()
    assert inspect.isgenerator(g) or (iter(g) is g and hasattr(g, "__next__"))
    first = next(g)
    assert isinstance(first, pebbles.Move)


def first_moves_with_bounded_work(make, count: int, max_events: int, max_bytes: int):
    """The first ``count`` moves of ``make()``, failing as soon as producing them (the call
    included) runs more than ``max_events`` Python trace events (calls, lines, returns) or
    allocates more than ``max_bytes``: a deterministic measure of work, unlike a clock."""
    events = 0

    def tracer(frame, event, arg):
        nonlocal events
        events += 1
        if events > max_events:
            raise AssertionError(f"more than {max_events} trace events before {count} moves: "
                                 "O(n) work before the first moves?")
        return tracer

    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        first = list(itertools.islice(make(), count))
    finally:
        sys.settrace(previous)
        peak = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()
    assert peak <= max_bytes, f"{peak} bytes allocated before {count} moves"
    return first


@pytest.mark.parametrize(
    "make",
    [
        lambda n: treeverse(n, 20),
        lambda n: treeverse(n, 20, inplace=True),
        lambda n: treeverse_paper(n, 20),
        lambda n: bennett(n, 2),
        lambda n: bennett_gradient(n, 2),
        lambda n: store_all(n),
        lambda n: recompute_all(n),
        lambda n: periodic(n, n // 100),
    ],
)
def test_streaming_is_lazy(make) -> None:
    # n = 10^9: any work or memory proportional to n before the first moves trips the
    # bounds (today's schedules need under 10^4 events and 30 kB for 50 moves)
    list(itertools.islice(make(1000), 50))  # lazy imports and caches are not counted
    first = first_moves_with_bounded_work(lambda: make(10**9), 50, max_events=100_000,
                                          max_bytes=2**20)
    assert len(first) == 50 and all(isinstance(m, pebbles.Move) for m in first)


def test_work_bound_catches_eager_schedules() -> None:
    def eager(n):
        steps = list(range(n))  # O(n) before the first move
        yield from (pebbles.Move(pebbles.MoveKind.PLACE, i) for i in steps[1:])

    with pytest.raises(AssertionError, match="bytes allocated"):
        first_moves_with_bounded_work(lambda: eager(10**5), 5, 10**9, 2**20)

    def busy(n):
        total = sum(i for i in range(n))  # O(n) Python work, no memory
        yield pebbles.Move(pebbles.MoveKind.PLACE, 1 + total % 2)

    with pytest.raises(AssertionError, match="trace events"):
        first_moves_with_bounded_work(lambda: busy(10**9), 1, 100_000, 2**20)


def test_streaming_prefix_is_legal() -> None:
    moves = list(itertools.islice(treeverse(10**9, 20), 200))
    r = simulate(moves, 10**9, "checkpoint", budget=20, check_end=False)
    assert r.moves == 200
    assert r.peak_states <= 20


# --------------------------------------------------------------------------- bad input


def test_bad_n() -> None:
    for call in [
        lambda: treeverse(0, 3),
        lambda: treeverse(-5, 3),
        lambda: treeverse_paper(0, 3),
        lambda: bennett(0, 2),
        lambda: bennett_gradient(0, 2),
        lambda: reversible_optimal(0, 3),
        lambda: store_all(0),
        lambda: recompute_all(0),
        lambda: periodic(0, 3),
        lambda: min_forward_steps(0, 3),
    ]:
        with pytest.raises(PebblesValueError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert "n=" in str(info.value)


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_treeverse_infeasible_budget(game: str) -> None:
    for n in range(1, 40):
        need = min_pebbles(n, game)
        for s in range(need):
            with pytest.raises(InfeasibleBudgetError) as info:
                treeverse(n, s, inplace=game == "inplace")
            assert info.value.minimum == need
            assert str(need) in str(info.value)
            assert isinstance(info.value, ValueError)
            with pytest.raises(InfeasibleBudgetError) as info:
                min_forward_steps(n, s, game)
            assert info.value.minimum == need


def test_reversible_infeasible_budget() -> None:
    for n in range(1, 70):
        need = min_pebbles(n, "reversible")
        assert 2**need - 1 >= n > 2 ** (need - 1) - 1
        for s in range(need):
            for call in (reversible_optimal, reversible_min_steps):
                with pytest.raises(InfeasibleBudgetError) as info:
                    call(n, s)
                assert info.value.minimum == need
                assert f"budget={need}" in str(info.value)


def test_infeasible_raised_eagerly() -> None:
    # the error comes from the call, not from the first next()
    with pytest.raises(InfeasibleBudgetError):
        treeverse(100, 1)
    with pytest.raises(InfeasibleBudgetError):
        reversible_optimal(100, 6)


def test_treeverse_paper_bad_tau() -> None:
    with pytest.raises(InfeasibleBudgetError) as info:
        treeverse_paper(20, 3, tau=2)
    assert info.value.minimum == 3 == pebbles.paper_tau(20, 3)
    with pytest.raises(PebblesValueError):
        treeverse_paper(20, 0)


def test_bad_k() -> None:
    for call in (bennett, bennett_gradient, bennett_pebbles):
        with pytest.raises(PebblesValueError) as info:
            call(16, 1)
        assert "k=1" in str(info.value)
        with pytest.raises(PebblesValueError):
            call(16, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: treeverse("a", 3),
        lambda: treeverse(10, "3"),
        lambda: treeverse(10.0, 3),
        lambda: treeverse(True, 3),
        lambda: treeverse(10, True),
        lambda: treeverse_paper("a", 3),
        lambda: treeverse_paper(10, True),
        lambda: bennett("a"),
        lambda: bennett(16, True),
        lambda: bennett(False, 2),
        lambda: reversible_optimal("a", 5),
        lambda: reversible_optimal(16, 5.0),
        lambda: reversible_min_steps(True, 5),
        lambda: store_all("a"),
        lambda: recompute_all(None),
        lambda: periodic(10, True),
        lambda: min_forward_steps("a", 3),
        lambda: min_forward_steps(10, True),
        lambda: simulate([], "a"),
        lambda: simulate([], True),
    ],
)
def test_bad_types(call) -> None:
    with pytest.raises(PebblesTypeError) as info:
        call()
    assert isinstance(info.value, TypeError)
    assert "must be an integer" in str(info.value)


def test_numpy_ints_accepted() -> None:
    import numpy as np

    r = simulate(treeverse(np.int64(20), np.int32(4)), np.int64(20), budget=np.int8(4))
    assert r.forward_steps == 40


def test_bad_game_name() -> None:
    with pytest.raises(PebblesValueError) as info:
        min_forward_steps(10, 3, "chekpoint")
    assert "chekpoint" in str(info.value)
    with pytest.raises(ValueError):
        simulate(treeverse(10, 3), 10, "nope")


def test_error_hierarchy() -> None:
    assert issubclass(pebbles.PebblesValueError, ValueError)
    assert issubclass(pebbles.PebblesTypeError, TypeError)
    assert issubclass(InfeasibleBudgetError, ValueError)
    assert issubclass(pebbles.IllegalMoveError, ValueError)
    errors = (PebblesValueError, PebblesTypeError, InfeasibleBudgetError, pebbles.IllegalMoveError)
    for cls in errors:
        assert issubclass(cls, pebbles.PebblesError)


def test_illegal_move_error_names_the_broken_rule_in_code():
    """``IllegalMoveError.code`` is a stable name for programs, whatever the wording."""
    from pebbles import _rules
    from pebbles._moves import forward, paint, store

    with pytest.raises(pebbles.IllegalMoveError) as info:
        simulate(treeverse(20, 3), 20, budget=2)
    assert info.value.code == "budget" and "budget is 2" in info.value.rule
    with pytest.raises(pebbles.IllegalMoveError) as info:
        simulate([forward(0, 2), store(2), forward(0, 1), store(1)], 2, disk_budget=1)
    assert info.value.code == "disk_budget"
    with pytest.raises(pebbles.IllegalMoveError) as info:
        simulate([forward(0, 2), paint(0)], 2)
    assert (info.value.index, info.value.code) == (1, "paint_order")
    with pytest.raises(pebbles.IllegalMoveError) as info:
        simulate([forward(0, 2)], 2)
    assert (info.value.index, info.value.code) == (-1, "end")
    with pytest.raises(pebbles.IllegalMoveError) as info:  # restated by the lowering
        pebbles.lower(list(treeverse(30, 5)), 30, slots=3)
    assert info.value.code == "slots" and "needs slots=" in info.value.rule
    assert pebbles.IllegalMoveError(3, None, "a rule").code == "other"  # as before: 3 args
    names = _rules.RULE_NAMES  # one name per E_* code, from the codes themselves
    assert len(set(names)) == len(names) == _rules.E_GRAPH_NEVER + 1
    assert (names[_rules.E_BUDGET], names[_rules.E_DISK_BUDGET]) == ("budget", "disk_budget")


@pytest.mark.parametrize(("game", "least", "by"), [
    ("checkpoint", 2, ""), ("inplace", 1, ""),
    ("reversible", 5, " with method='reversible-optimal'"),
])
def test_check_budget_tells_a_negative_budget_the_least_in_the_registrys_words(game, least, by):
    """A negative budget reached the game's wording ("-3 pebbles reach cell -0.875")."""
    from pebbles._budget import check_budget
    from pebbles._moves import Game

    with pytest.raises(pebbles.InfeasibleBudgetError,
                       match=rf"^budget=-3 must be >= {least}, the least budget that finishes "
                             rf"n=20 steps{by}; pass budget={least} or more$") as err:
        check_budget(20, -3, Game(game))
    assert err.value.minimum == least == pebbles.min_pebbles(20, game)
    one = pebbles.min_pebbles(1, game)  # 0 finishes one step but in the reversible game
    with pytest.raises(pebbles.PebblesValueError, match=rf"^budget=-3 must be >= {one}[;,]"):
        check_budget(1, -3, Game(game))
