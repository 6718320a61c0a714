"""Exact optima: closed forms vs plain dynamic programming vs brute-force search."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pebbles import (
    InfeasibleBudgetError,
    PebblesValueError,
    brute_force,
    dp_table,
    min_forward_steps,
    min_pebbles,
    plan,
    reversible_min_steps,
    reversible_optimal,
    simulate,
    treeverse,
)

GAMES = ["checkpoint", "inplace", "reversible"]


def _griewank(n: int, s: int) -> int:
    """Griewank's closed form r n - C(S + r, S + 1), r least with C(S + r, S) >= n."""
    r = 0
    while math.comb(s + r, s) < n:
        r += 1
    return r * n - math.comb(s + r, s + 1)


@pytest.mark.parametrize("game", GAMES)
def test_brute_force_dp_closed_form_agree(game: str) -> None:
    n_max = 7 if game == "reversible" else 8
    s_max = 4
    table = dp_table(n_max, s_max, game)
    assert table.shape == (n_max + 1, s_max + 1)
    feasible_seen = infeasible_seen = 0
    for n in range(1, n_max + 1):
        for s in range(0, s_max + 1):
            bf = brute_force(n, s, game)
            if s < min_pebbles(n, game):
                infeasible_seen += 1
                assert bf is None, (n, s, bf)
                assert np.isinf(table[n, s]), (n, s)
                with pytest.raises(InfeasibleBudgetError) as info:
                    min_forward_steps(n, s, game)
                assert info.value.minimum == min_pebbles(n, game)
            else:
                feasible_seen += 1
                assert bf is not None, (n, s)
                assert table[n, s] == bf, (n, s, table[n, s], bf)
                assert min_forward_steps(n, s, game) == bf, (n, s)
    assert feasible_seen > 10 and infeasible_seen > 2


def test_brute_force_examples() -> None:
    assert brute_force(6, 2, "checkpoint") == 9
    assert brute_force(6, 2, "inplace") == 8
    assert brute_force(3, 2, "reversible") == 4
    assert brute_force(4, 2, "reversible") is None


@pytest.mark.parametrize("game", GAMES)
def test_dp_table_matches_closed_forms(game: str) -> None:
    table = dp_table(120, 8, game)
    assert np.isnan(table[0]).all()
    checked = 0
    for n in range(1, 121):
        for s in range(0, 9):
            if s < min_pebbles(n, game):
                assert np.isinf(table[n, s]), (n, s)
                continue
            assert table[n, s] == min_forward_steps(n, s, game), (n, s)
            checked += 1
    assert checked > 300


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_split_range_is_every_optimal_first_checkpoint(game: str) -> None:
    """docs/optimality.md: a first checkpoint at offset j is optimal exactly when both
    parts fill their cheaper levels; ``BetaTable.split_range`` is that range, checked
    against every offset the dynamic program finds optimal."""
    from pebbles import Game
    from pebbles._binomial import BetaTable

    table, beta = dp_table(120, 8, game), BetaTable(Game(game))
    checked = 0
    for m in range(2, 121):
        for s in range(max(min_pebbles(m, game), 1), 9):
            j = np.arange(1, m)
            best = np.flatnonzero(j + table[m - j, s - 1] + table[j, s] == table[m, s]) + 1
            lo, hi = beta.split_range(m, s)
            assert best.tolist() == list(range(lo, hi + 1)), (m, s, lo, hi)
            checked += 1
    assert checked > 800


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_dp_table_monotone(game: str) -> None:
    t = dp_table(80, 8, game)[1:, :]
    with np.errstate(invalid="ignore"):
        assert (np.diff(t, axis=1)[~np.isinf(t[:, 1:])] <= 0).all()  # more pebbles never hurt
        assert (np.diff(t[:, 2:], axis=0) >= 1).all()  # a longer chain costs at least 1 more


def test_griewank_closed_form() -> None:
    for s in range(1, 11):
        for n in range(2, 501):
            assert min_forward_steps(n, s, "inplace") == _griewank(n, s), (n, s)


def test_checkpoint_between_inplace_bounds() -> None:
    for s in range(2, 11):
        for n in range(3, 250):
            c = min_forward_steps(n, s, "checkpoint")
            lo = min_forward_steps(n, s, "inplace")
            assert lo <= c <= min_forward_steps(n, s - 1, "inplace"), (n, s)


def test_worked_example_n20() -> None:
    assert min_forward_steps(20, 4, "inplace") == 39
    assert min_forward_steps(20, 4, "checkpoint") == 40
    assert [min_forward_steps(20, 5, g) for g in GAMES] == [33, 33, 45]


def test_large_budget_is_store_all() -> None:
    for n in range(2, 60):
        assert min_forward_steps(n, n, "checkpoint") == n - 1
        assert min_forward_steps(n, n + 7, "inplace") == n - 1
        assert min_forward_steps(n, n - 1, "checkpoint") == n - 1


def test_two_pebbles_checkpoint_is_recompute_all_bound() -> None:
    # the inplace game with one pebble is exactly recompute-all
    for n in range(1, 100):
        assert min_forward_steps(n, 1, "inplace") == n * (n - 1) // 2


def test_reversible_reach_limit() -> None:
    for s in range(1, 13):
        far = 2**s - 1
        steps = reversible_min_steps(far, s)
        if s <= 4:  # n = 15 with 4 pebbles is still small for the exhaustive search
            assert steps == brute_force(far, s, "reversible")
        assert steps == min_forward_steps(far, s, "reversible")
        with pytest.raises(InfeasibleBudgetError) as info:
            reversible_min_steps(far + 1, s)
        assert info.value.minimum == s + 1
        assert f"budget={s + 1}" in str(info.value)
        with pytest.raises(InfeasibleBudgetError) as info:
            min_forward_steps(far + 1, s, "reversible")
        assert info.value.minimum == s + 1


def test_reversible_farthest_cell_schedule() -> None:
    for s in range(1, 7):
        far = 2**s - 1
        r = simulate(reversible_optimal(far, s), far, "reversible", budget=s)
        assert r.forward_steps == reversible_min_steps(far, s)
        assert r.peak_states == s


def test_reversible_farthest_golden() -> None:
    assert [reversible_min_steps(2**s - 1, s) for s in range(1, 6)] == [1, 4, 13, 38, 109]


def test_reversible_optimal_golden() -> None:
    assert reversible_min_steps(16, 5) == 29
    assert min_forward_steps(16, 5, "reversible") == 29


def test_reversible_more_pebbles_never_hurt() -> None:
    for n in range(1, 130):
        prev = None
        for s in range(min_pebbles(n, "reversible"), 10):
            v = reversible_min_steps(n, s)
            assert v >= n
            if prev is not None:
                assert v <= prev
            prev = v
        assert reversible_min_steps(n, n) == n


def test_treeverse_matches_dp_for_every_entry() -> None:
    t = dp_table(60, 6, "checkpoint")
    for n in range(1, 61):
        for s in range(min_pebbles(n, "checkpoint"), 7):
            assert simulate(treeverse(n, s), n, budget=s).forward_steps == t[n, s]


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_sizes(bad: int) -> None:
    with pytest.raises(ValueError):
        dp_table(bad, 3)
    with pytest.raises(ValueError):
        brute_force(bad, 3)
    with pytest.raises(ValueError):
        min_forward_steps(bad, 3)


def test_reversible_schedule_builds_its_tables_once() -> None:
    # schedule() built the O(n S) tables to check its options, and every pass over the
    # moves built them again (41 s each for n = 10^6, S = 20)
    from pebbles import schedule
    from pebbles._reversible import _tables

    _tables.cache_clear()
    s = schedule("reversible-optimal", 1000, budget=12)
    assert list(s) == list(s) and s.simulate().forward_steps == reversible_min_steps(1000, 12)
    assert _tables.cache_info().misses == 1


def test_reversible_tables_equal_the_dynamic_programme_at_every_distance() -> None:
    # the tables are built run by run (runs of equal increments); the plain programme
    # (O(n^2 S)) checks every entry
    from pebbles._reversible import ReversibleTables

    table = dp_table(1000, 10, "reversible")
    for s in range(1, 11):
        far = min(2**s - 1, 1000)
        reach = ReversibleTables.build(far, s).reach[s]
        got = [reach(m) for m in range(1, far + 1)]
        assert got == table[1:far + 1, s].astype(int).tolist(), s


def test_reversible_tables_for_long_runs_are_locally_optimal() -> None:
    # n = 10^8, S = 30 (about 10^8 increments a row in ~700 runs): the first split of the
    # optimal schedule, F(n, S) = C(j, S) + F(n - j, S - 1), beats its neighbours
    from pebbles._convex import split_of_merge
    from pebbles._reversible import _tables

    n, s = 10**8, 30
    t = _tables(n, s)
    j = split_of_merge(t.clean[s], t.reach[s - 1], n)
    cost = {k: t.clean[s](k) + t.reach[s - 1](n - k) for k in range(j - 3, j + 4)}
    assert reversible_min_steps(n, s) == cost[j] == min(cost.values())
    assert cost[j + 3] > cost[j]  # the window sees the costs rise (convexity)


def test_reversible_with_a_pebble_a_cell_answers_at_once_without_tables() -> None:
    """budget >= n: a pebble on every cell, n steps; the same moves the tables give."""
    from pebbles import encode
    from pebbles._reversible import ReversibleTables, _reach, reversible_encoded

    for n in range(1, 12):
        table = encode(_reach(ReversibleTables.build(n, n), 0, n, n))
        assert np.array_equal(encode(reversible_optimal(n, n + 3)), table)
        assert np.array_equal(reversible_encoded(n, n), table)
    assert min_forward_steps(10**6, 10**6, "reversible") == 10**6
    assert sum(1 for _ in reversible_optimal(10**5, 10**6)) == 10**5


@pytest.mark.parametrize("n, budget", [(2**40, 41), (10**18, 100), (10**6, 5 * 10**5)])
def test_reversible_tables_too_large_to_build_are_refused_at_once(n, budget) -> None:
    """Before, these ran for minutes to hours (the tables' runs grow with n and budget)."""
    from pebbles._reversible import reversible_tables_fit

    with pytest.raises(PebblesValueError, match=r"tables grow past 1e\+06 runs.*'bennett'"):
        min_forward_steps(n, budget, "reversible")
    assert not reversible_tables_fit(n, budget)


def test_the_planner_and_compare_skip_reversible_tables_too_large(capsys) -> None:
    from pebbles.cli import main

    p = plan(10**18, budget=100)
    assert "reversible-gradient" in p.skipped and p.best.schedule.method == "treeverse"
    assert main(["compare", "-n", str(10**12), "--pebbles", "100"]) == 0
    out = capsys.readouterr().out
    assert "? (the reversible optimum's tables are too large here)" in out
    assert "not shown" in out and "reversible-optimal" in out


@pytest.mark.parametrize("n", [2000, 20000, 10**12])
def test_brute_force_refuses_large_boards_at_once(n) -> None:
    """The board count is summed only until it passes the limit (before: seconds at
    n = 5000, and a raw 'Exceeds the limit (4300 digits)' error at n = 20 000)."""
    with pytest.raises(PebblesValueError, match="would search at least .* boards, more than"):
        brute_force(n, min(n, 10**4))


def test_paper_tau_refuses_delta_zero_past_one_step_and_big_tau_answers_at_once() -> None:
    from pebbles import paper_tau, schedule

    with pytest.raises(InfeasibleBudgetError, match="delta=0 with n=5"):
        paper_tau(5, 0)
    assert paper_tau(1, 0) == 0
    # C(2 * 10^6, 10^6) is not computed: 2^min(tau, delta) already covers n
    s = schedule("treeverse-paper", 10, delta=10**6, tau=10**6)
    assert s.simulate().backward_steps == 10
