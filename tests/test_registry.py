"""The schedule registry (pebbles.schedule) and its one enumeration (pebbles.candidates)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pebbles
from pebbles import (
    InfeasibleBudgetError,
    PebblesTypeError,
    PebblesValueError,
    Schedule,
    candidates,
    describe,
    methods,
    predicted_steps,
    schedule,
)
from pebbles._registry import predicted_moves

CASES = [
    ("treeverse", 50, {"budget": 4}),
    ("treeverse", 50, {"budget": 4, "inplace": True}),
    ("treeverse-paper", 20, {"delta": 3}),
    ("bennett", 16, {"k": 2}),
    ("bennett", 16, {"k": 3, "uncompute": False}),
    ("bennett-gradient", 16, {"k": 2}),
    ("reversible-optimal", 16, {"budget": 5}),
    ("store-all", 10, {}),
    ("recompute-all", 10, {}),
    ("periodic", 100, {"every": 10}),
]


@pytest.mark.parametrize("method,n,opts", CASES)
def test_schedule_value_matches_the_plain_generator(method, n, opts):
    s = schedule(method, n, **opts)
    assert isinstance(s, Schedule) and s.method == method and s.n == n
    # iterable any number of times, each time the same stream
    first, second = list(s), list(s)
    assert first == second and first
    assert np.array_equal(s.encode(), pebbles.encode(first))
    r = s.simulate()
    assert r.game is s.game and r.moves == len(first)
    # the stream is the method's own generator, unchanged
    entry = describe(method)
    kw = {k: v for k, v in opts.items() if k != "budget"}
    if entry.takes_budget:
        kw["budget"] = opts["budget"]
    assert first == list(entry.make(n, **kw))


def test_schedule_is_a_frozen_hashable_value():
    s = schedule("treeverse", 20, budget=4)
    assert s == schedule("treeverse", 20, budget=4) and hash(s) == hash(
        schedule("treeverse", 20, budget=4))
    with pytest.raises(AttributeError):
        s.n = 3  # type: ignore[misc]
    assert str(s) == "treeverse -n 20 --budget 4"
    assert str(schedule("treeverse", 20, budget=4, inplace=True)).endswith("--inplace")
    assert str(schedule("bennett", 8, uncompute=False)) == "bennett -n 8 --no-uncompute"
    assert str(schedule("bennett", 8, k=3)) == "bennett -n 8 --k 3"


@pytest.mark.parametrize("n,budget,inplace", [(1, 0, False), (2, 1, False), (1000, 5, False),
                                              (1000, 5, True), (12345, 10, True),
                                              (300, 2, False), (300, 1, True)])
def test_fast_treeverse_encoding_equals_the_generator(n, budget, inplace):
    s = schedule("treeverse", n, budget=budget, inplace=inplace)
    assert np.array_equal(s.encode(), pebbles.encode(pebbles.treeverse(n, budget,
                                                                        inplace=inplace)))


@given(n=st.integers(1, 3000), budget=st.integers(1, 12), inplace=st.booleans())
@settings(max_examples=60, deadline=None)
def test_fast_encoding_is_optimal_and_legal(n, budget, inplace):
    game = "inplace" if inplace else "checkpoint"
    if budget < pebbles.min_pebbles(n, game):
        return
    s = schedule("treeverse", n, budget=budget, inplace=inplace)
    r = s.simulate()
    assert r.forward_steps == pebbles.min_forward_steps(n, budget, game)


def _generated(method, n, opts):
    """The stream of the method's plain generator, encoded move by move."""
    return pebbles.encode(describe(method).make(n, **opts))


@pytest.mark.parametrize("method,n,opts", [
    ("bennett", 1, {"k": 2, "uncompute": True}), ("bennett", 1, {"k": 2, "uncompute": False}),
    ("bennett", 7, {"k": 3, "uncompute": True}), ("bennett", 100, {"k": 7, "uncompute": False}),
    ("bennett", 700, {"k": 2, "uncompute": True}),  # 9 x more moves than a cached block
    ("bennett", 5000, {"k": 64, "uncompute": False}),
    ("bennett-gradient", 1, {"k": 2}), ("bennett-gradient", 300, {"k": 2}),
    ("bennett-gradient", 2000, {"k": 5}),
    ("reversible-optimal", 1, {"budget": 1}), ("reversible-optimal", 31, {"budget": 5}),
    ("reversible-optimal", 2000, {"budget": 12}),  # above a cached block
    ("reversible-optimal", 3000, {"budget": 300}),  # deep chains of distinct blocks
    ("reversible-gradient", 1, {"budget": 3}), ("reversible-gradient", 1500, {"budget": 13}),
    ("reversible-gradient", 3000, {"budget": 40}),
])
def test_fast_reversible_encodings_equal_the_generators(method, n, opts):
    s = schedule(method, n, **opts)
    fast = s.encode()
    assert fast.dtype == np.int64 and fast.flags.c_contiguous
    assert np.array_equal(fast, _generated(method, n, opts))
    assert len(fast) > 4096 or n < 700  # the large cases copy cached blocks
    r = s.simulate()
    assert r.forward_steps == predicted_steps(s)


@given(n=st.integers(1, 400), k=st.integers(2, 9), budget=st.integers(1, 12))
@settings(max_examples=40, deadline=None)
def test_fast_reversible_encodings_equal_the_generators_at_random(n, k, budget):
    for method, opts in [("bennett", {"k": k, "uncompute": True}),
                         ("bennett", {"k": k, "uncompute": False}),
                         ("bennett-gradient", {"k": k})]:
        assert np.array_equal(schedule(method, n, **opts).encode(),
                              _generated(method, n, opts))
    if n <= 2**budget - 1:
        for method in ("reversible-optimal", "reversible-gradient"):
            assert np.array_equal(schedule(method, n, budget=budget).encode(),
                                  _generated(method, n, {"budget": budget}))


def test_fast_mirror_refuses_a_run_that_does_not_end_on_n():
    from pebbles._encoded import mirror_encoded

    run = pebbles.encode(pebbles.bennett(4, 2, uncompute=False))  # ends on cell 4, not 8
    with pytest.raises(pebbles.IllegalMoveError, match="cells 0..7 unpainted") as slow:
        list(pebbles.reversible_gradient(pebbles.bennett(4, 2, uncompute=False), 8))
    with pytest.raises(pebbles.IllegalMoveError) as fast:
        mirror_encoded(run, 8)
    assert str(fast.value) == str(slow.value)


@pytest.mark.parametrize("call,error,words", [
    (lambda: schedule("nosuch", 10), PebblesValueError, "method='nosuch'"),
    (lambda: schedule("treeverse", 10), PebblesTypeError, "needs budget"),
    (lambda: schedule("treeverse", 10, budget=3, k=2), PebblesTypeError, "k=2"),
    (lambda: schedule("treeverse", 10, budget=1), InfeasibleBudgetError, "budget=2"),
    (lambda: schedule("treeverse", 0, budget=3), PebblesValueError, "n=0"),
    (lambda: schedule("treeverse", 10, budget=3, inplace="no"), PebblesTypeError,
     "inplace='no'"),
    (lambda: schedule("periodic", 10), PebblesTypeError, "needs every"),
    (lambda: schedule("store-all", 10, budget=3), InfeasibleBudgetError, "budget=3"),
    (lambda: schedule("recompute-all", 10, budget=1), InfeasibleBudgetError, "budget=1"),
    (lambda: schedule("bennett-gradient", 64, k=2, budget=3), InfeasibleBudgetError,
     "budget=3"),
])
def test_bad_requests_name_the_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()


@pytest.mark.parametrize("method,opts,least,by", [
    ("treeverse", {}, 2, ""),
    ("treeverse", {"inplace": True}, 1, ""),
    ("periodic", {"every": 5}, 7, " with method='periodic'"),
    ("store-all", {}, 19, " with method='store-all'"),
    ("reversible-optimal", {}, 5, " with method='reversible-optimal'"),
    ("two-level", {"write_cost": 1.0, "read_cost": 1.0}, 2, " with method='two-level'"),
])
@pytest.mark.parametrize("budget", [-3, np.int64(-3)])
def test_a_negative_budget_is_told_the_least_budget(method, opts, least, by, budget):
    """budget=-3 was told "pass budget=0 or more", and budget=0 was then refused."""
    with pytest.raises(InfeasibleBudgetError,
                       match=rf"^budget=-3 must be >= {least}, the least budget that finishes "
                             rf"n=20 steps{by}; pass budget={least} or more$") as err:
        schedule(method, 20, budget=budget, **opts)
    assert err.value.minimum == least
    schedule(method, 20, budget=least, **opts)  # which it is


def test_a_negative_budget_where_0_finishes_is_told_0():
    with pytest.raises(PebblesValueError, match=r"^budget=-1 must be >= 0; pass budget=0 or "
                                                r"more$") as err:
        schedule("treeverse", 1, budget=-1)
    assert not isinstance(err.value, InfeasibleBudgetError)


def test_a_budget_a_method_ignores_is_enforced_when_played(monkeypatch):
    # treeverse-paper's peak is played at creation only for short streams; past that
    # the simulator enforces the budget
    monkeypatch.setattr(pebbles._registry, "PAPER_NEED_MAX_MOVES", 0)
    s = schedule("treeverse-paper", 20, delta=3, budget=3)
    with pytest.raises(pebbles.IllegalMoveError, match="budget is 3"):
        s.simulate()
    assert schedule("treeverse-paper", 20, delta=3, budget=4).simulate().peak_states == 4


@pytest.mark.parametrize("n,budget", [(1, 0), (2, 1), (3, 2), (16, 5), (100, 6), (1000, 10)])
def test_candidates_fit_the_budget_and_predict_their_steps(n, budget):
    found = candidates(n, budget)
    assert found and {s.method for s in found} <= set(methods())
    for s in found:
        r = s.simulate()  # within the budget, by the simulator's rules
        assert r.peak_states <= budget
        steps = predicted_steps(s)
        if steps is not None:
            assert steps == r.forward_steps, str(s)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 31, 64])
def test_periodic_formulas_count_its_steps_and_moves(n):
    for every in range(1, n + 3):
        s = schedule("periodic", n, every=every)
        assert predicted_steps(s) == s.simulate().forward_steps, every
        assert pebbles.most_moves(s) == len(s.encode()), every


@pytest.mark.parametrize("inplace", [False, True])
def test_periodic_disk_formula_counts_its_moves(inplace):
    """periodic-disk's stream length from its structure (the solvers' memory estimate and
    the command line's move limits had only a lower bound of about 3 n; it makes ~5 n)."""
    for n in (1, 2, 9, 10, 11, 37, 64):
        for budget in (2, 3, 5):
            for period in (1, 2, 3, 10, 64, 100):
                try:
                    s = schedule("periodic-disk", n, budget=budget, period=period,
                                 inplace=inplace)
                except InfeasibleBudgetError:
                    continue
                assert pebbles.most_moves(s) == len(s.encode()), (n, budget, period)
                assert pebbles.fewest_moves(s) == len(s.encode())


def test_every_method_is_described():
    for name in methods():
        entry = describe(name)
        assert entry.name == name and entry.summary


def test_printed_flags_are_the_command_lines():
    s = schedule("two-level", 20, budget=3, disk_budget=4, write_cost=2.0, read_cost=1.5,
                 inplace=True, background_writes=True)
    assert str(s) == ("two-level -n 20 --budget 3 --background-writes --disk-slots 4 "
                      "--inplace --read-cost 1.5 --write-cost 2.0")


def test_numpy_bools_print_as_flags():
    # inplace=np.True_ (e.g. from a NumPy config array) prints as "--inplace"
    s = schedule("treeverse", 20, budget=3, inplace=np.True_)
    assert str(s) == "treeverse -n 20 --budget 3 --inplace" and s == schedule(
        "treeverse", 20, budget=3, inplace=True)
    assert schedule("bennett", 16, uncompute=np.False_).option_flags() == ["--no-uncompute"]


@pytest.mark.parametrize("name", [None, 3, ["treeverse"]])
def test_a_method_name_must_be_a_string(name):
    # a TypeError naming the argument's type, not "method='None' is not a schedule" nor
    # describe's bare "unhashable type"
    with pytest.raises(PebblesTypeError, match=r"must be a method name \(a str\)"):
        schedule(name, 10, budget=3)
    with pytest.raises(PebblesTypeError, match=r"must be a method name"):
        describe(name)


@pytest.mark.parametrize("name,near", [("Treeverse", "treeverse"), (" treeverse ", "treeverse"),
                                       ("two_level", "two-level"), ("STORE-ALL", "store-all")])
def test_a_near_miss_name_gets_a_hint(name, near):
    with pytest.raises(PebblesValueError, match=f"did you mean '{near}'"):
        schedule(name, 10, budget=3)


@pytest.mark.parametrize("name,near", [("trevers", "treeverse"), ("bennet", "bennett"),
                                       ("store_al", "store-all"), ("onlne", "online")])
def test_a_misspelt_name_gets_the_closest_method(name, near):
    with pytest.raises(PebblesValueError, match=f"; did you mean '{near}'\\? use one of"):
        schedule(name, 10, budget=3)


def test_a_name_close_to_nothing_gets_the_list_only():
    with pytest.raises(PebblesValueError) as info:
        schedule("xyz", 10, budget=3)
    assert "did you mean" not in str(info.value)
    assert str(info.value).endswith(", ".join(pebbles.methods()))


def test_bennett_uncompute_must_be_a_bool():
    # uncompute=0 is refused, not stored as 0 (which would print "--uncompute 0")
    with pytest.raises(PebblesTypeError, match=r"uncompute=0 must be True or False"):
        schedule("bennett", 16, uncompute=0)
    with pytest.raises(PebblesTypeError, match=r"uncompute='no'"):
        pebbles.bennett_steps(16, 2, uncompute="no")


#: The methods with a formula for their number of moves, over n, budgets and games.
MOVES_CASES = [("treeverse", n, {"budget": b, "inplace": ip})
               for n in (1, 2, 3, 50, 301) for b in (1, 2, 7) for ip in (False, True)
               if b >= pebbles.min_pebbles(n, "inplace" if ip else "checkpoint")]
MOVES_CASES += [(m, n, {}) for m in ("store-all", "recompute-all") for n in (1, 2, 40)]


@pytest.mark.parametrize("method,n,opts", MOVES_CASES)
def test_predicted_moves_count_the_stream(method, n, opts):
    s = schedule(method, n, **opts)
    assert predicted_moves(s) == len(list(s))


@pytest.mark.parametrize("cost,error,words", [
    (float("nan"), PebblesValueError, "write_cost=nan must be a finite number"),
    (float("inf"), PebblesValueError, "write_cost=inf must be a finite number"),
    (-1, PebblesValueError, ">= 0"),
    ("2", PebblesTypeError, "write_cost='2' must be a number"),
    (True, PebblesTypeError, "write_cost=True"),
])
def test_two_level_costs_are_finite_numbers(cost, error, words):
    with pytest.raises(error, match=words):
        schedule("two-level", 20, budget=3, write_cost=cost, read_cost=1)
    assert schedule("two-level", 20, budget=3, write_cost=np.float32(2), read_cost=1)


def test_treeverse_paper_refuses_a_budget_its_moves_exceed_at_creation():
    """Its peak depends on delta and tau; before, the budget was ignored (replay held 10
    states with budget=3)."""
    with pytest.raises(pebbles.InfeasibleBudgetError, match="holds 10 states at once"):
        pebbles.schedule("treeverse-paper", 100, delta=10, budget=3)
    s = pebbles.schedule("treeverse-paper", 20, delta=3, tau=20, budget=2)  # more sweeps
    assert s.simulate().peak_states == 2


def test_lower_checks_a_schedule_against_its_own_budget(monkeypatch):
    """Where the peak is not known at creation (long streams), lower refuses the moves."""
    monkeypatch.setattr(pebbles._registry, "PAPER_NEED_MAX_MOVES", 0)
    s = pebbles.schedule("treeverse-paper", 100, delta=10, budget=3)
    with pytest.raises(pebbles.IllegalMoveError, match="the budget is 3"):
        pebbles.lower(s)
    with pytest.raises(pebbles.IllegalMoveError, match="the budget is 3"):
        pebbles.replay(s, None, np.ones(2), lambda i, x: 2.0 * x, lambda i, x, g: (2 * g, None),
                       np.ones_like)


@pytest.mark.parametrize("n", [100, 3000])  # below and past BOUNDED_DISK_MAX_N
@pytest.mark.parametrize("disk_budget, error, match", [
    (-3, pebbles.PebblesValueError, r"^disk_budget=-3 must be >= 0"),
    (2.5, pebbles.PebblesTypeError, r"^disk_budget=2\.5 must be a whole number"),
    (True, pebbles.PebblesTypeError, r"^disk_budget=True must be an integer"),
    ("3", pebbles.PebblesTypeError, r"^disk_budget='3' must be an integer"),
])
def test_plan_checks_the_disk_budget_at_every_n(n, disk_budget, error, match):
    with pytest.raises(error, match=match):
        pebbles.plan(n, 5, disk_budget=disk_budget, write_cost=1, read_cost=1)


def test_gradient_methods_takes_a_bool():
    with pytest.raises(pebbles.PebblesTypeError, match=r"^disk='no' must be True or False"):
        pebbles.gradient_methods(disk="no")
    assert set(pebbles.gradient_methods(disk=True)) - set(pebbles.gradient_methods()) == {
        "two-level", "periodic-disk"}


@pytest.mark.parametrize("every, error, match", [
    (0, pebbles.PebblesValueError, r"^every=0 must be >= 1"),
    (-2, pebbles.PebblesValueError, r"^every=-2 must be >= 1"),
    ([1], pebbles.PebblesTypeError, r"^every=\[1\] must be an integer"),
])
def test_options_are_checked_before_a_budget_is_compared_with_the_need(every, error, match):
    """periodic's need divides by every: with a budget it was worked out first
    (ZeroDivisionError, a bare TypeError, or 'pass budget >= 5' for every=-2)."""
    with pytest.raises(error, match=match):
        pebbles.schedule("periodic", 6, budget=3, every=every)


@pytest.mark.parametrize("call", [lambda s: s.encode(), lambda s: s.simulate(),
                                  lambda s: pebbles.lower(s), pebbles.encode])
def test_a_stream_larger_than_memory_is_refused_before_encoding(call):
    s = pebbles.schedule("treeverse", 10**12, budget=40)
    with pytest.raises(ValueError, match=r"2999999999998 moves.*GiB.*iterate the schedule"):
        call(s)
    online = pebbles.schedule("online", 10**12, budget=40)  # no formula: at least n moves
    with pytest.raises(ValueError, match=r"has at least 1000000000000 moves.*GiB"):
        call(online)


@pytest.mark.parametrize("n", [1, 2, 7, 20, 49, 300])
def test_treeverse_paper_steps_are_counted_as_simulated(n):
    for delta in (1, 2, 3, 5):
        for tau in (None, 0, 1, 2, 4, 9):
            try:
                s = schedule("treeverse-paper", n, delta=delta, tau=tau)
            except InfeasibleBudgetError:
                continue
            steps = pebbles.simulate(s, n).forward_steps
            assert predicted_steps(s) == steps, (delta, tau)
            assert pebbles.most_moves(s) >= len(s.encode())


def test_treeverse_paper_steps_give_up_where_counting_is_long(monkeypatch):
    import pebbles._treeverse as tv

    s = schedule("treeverse-paper", 10**4, delta=1)  # tau = n - 1: a turn a cell
    assert predicted_steps(s) == 10**4 * (10**4 - 1) // 2
    monkeypatch.setattr(tv, "PAPER_STEPS_MAX_WORK", 1000)
    assert predicted_steps(s) is None and pebbles.most_moves(s) is None
    p = pebbles.plan(10**4, 2)
    assert "treeverse-paper" not in {c.schedule.method for c in p.candidates}
    assert any(x.startswith("treeverse-paper (counting its steps") for x in p.skipped)


def test_plan_costs_treeverse_paper_and_ranks_it_after_treeverse():
    p = pebbles.plan(1000, 10)
    got = {c.schedule.method: c.forward_steps for c in p.candidates if c.game == "checkpoint"}
    paper = schedule("treeverse-paper", 1000, delta=9)
    assert got["treeverse-paper"] == pebbles.simulate(paper, 1000).forward_steps
    assert got["treeverse"] < got["treeverse-paper"] and p.skipped == ()


def test_fewest_moves_bounds_every_methods_stream_from_below():
    for s in [*candidates(60, 6), schedule("online", 60, budget=6),
              schedule("online", 60, budget=6, inplace=True, beyond="wang-moin"),
              schedule("two-level", 60, budget=4, write_cost=2, read_cost=1),
              schedule("periodic-disk", 60, budget=4, period=15)]:
        length = len(s.encode())
        assert pebbles.fewest_moves(s) <= length, s
        most = pebbles.most_moves(s)
        assert most is None or most >= length
    with pytest.raises(PebblesTypeError, match=r"fewest_moves\(s="):
        pebbles.fewest_moves(list(pebbles.treeverse(5, 2)))
