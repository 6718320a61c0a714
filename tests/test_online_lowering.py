"""The reverse sweep of ``replay_until`` lowered in pieces by the one lowering
(:class:`pebbles._lowering.SlotBoard`), and the online schedule's negative budgets."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest

import pebbles
from pebbles import IllegalMoveError, InfeasibleBudgetError, OnlineScheduler, online
from pebbles._lowering import SlotBoard


def _pieces(arr: np.ndarray, board: SlotBoard, seed: int) -> np.ndarray:
    """The rows of ``arr`` lowered from ``board`` in pieces of 1 to 29 moves."""
    rng, rows, i = np.random.default_rng(seed), [], 0
    while i < len(arr):
        j = i + int(rng.integers(1, 30))
        rows.append(board.lower(arr[i:j]))
        i = j
    return np.concatenate(rows)


@pytest.mark.parametrize("n", [1, 2, 7, 60, 400])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("make", [pebbles.treeverse, online])
def test_pieces_lower_as_the_whole_stream(n, inplace, make):
    """Lowered piece by piece from the board the pieces before left, a stream gives the
    rows of ``lower(stream, n, slots=k + 1, frees=True)``."""
    arr = pebbles.encode(make(n, 3, inplace=inplace))
    game = "inplace" if inplace else "checkpoint"
    whole = pebbles.lower(arr, n, game=game, frees=True)
    k = whole.nslots - 1
    board = SlotBoard(n, game, {0: 0}, list(range(k, 0, -1)))
    assert np.array_equal(_pieces(arr, board, n), whole.ops)
    assert board.held == {0: 0} and sorted(board.free) == list(range(1, k + 1))
    assert board.painted == 0


def test_a_piece_far_out_costs_its_moves_not_n():
    """A piece is played on the cells it names (and the held ones between them), not on
    a board of n cells: a walk of 10**6 cells at n = 10**9 takes a few KB."""
    n = 10**9
    board = SlotBoard(n, "checkpoint", {0: 0, n - 10**6: 1}, [3, 2])
    tracemalloc.start()
    try:
        rows = board.lower(np.array([[5, n - 10**6, n - 1], [2, n - 1, -1]]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000, peak
    assert rows.tolist() == [[0, 1, 2, n - 10**6, 10**6 - 1], [0, 2, 3, n - 1, 1],
                             [1, 3, 0, n, 1], [6, 3, 0, n, 0], [2, 2, 0, n - 1, 0]]
    assert board.held == {0: 0, n - 10**6: 1, n - 1: 2} and board.free == [3]


def test_a_broken_rule_names_the_boards_cells():
    """The error of a piece names the move and the cells of the game, not those of the
    piece's shortened board."""
    board = SlotBoard(1000, "checkpoint", {0: 0, 500: 1}, [2])
    with pytest.raises(IllegalMoveError, match=r"forward 400 900 walks over a pebble: "
                                               r"cells 401\.\.900 must be empty") as info:
        board.lower(np.array([[5, 0, 400], [5, 400, 900]]))
    assert info.value.index == 1
    with pytest.raises(IllegalMoveError, match=r"paint 5 needs cell 6 painted"):
        SlotBoard(1000, "checkpoint", {0: 0}, [1]).lower(np.array([[2, 5, -1]]))


def test_slots_running_out_are_refused():
    board = SlotBoard(10, "checkpoint", {0: 0}, [1])
    want = (r"^illegal move #1 \(forward 3 6\): needs a free slot, and none is left of "
            r"free=\[1\] at the piece's start; give the board more free slots$")
    with pytest.raises(IllegalMoveError, match=want) as info:
        board.lower(np.array([[5, 0, 3], [5, 3, 6]]))
    assert info.value.code == "slots"


@pytest.mark.parametrize(("held", "free", "match"), [
    ({1: 1}, [2], r"^held=\{1: 1\} must be a dict of each cell held to its slot, cell 0 "
                  r"included; pass held=\{0: 0\}"),
    ([0], [1], r"^held=\[0\] must be a dict"),
    ({0: 0, 11: 1}, [2], r"^held=\{0: 0, 11: 1\} and painted=10 must name cells in "
                         r"0\.\.n=10; pass cells of the game"),
    ({0: 0, 3: 1}, [1, 2], r"^held=\{0: 0, 3: 1\} and free=\[1, 2\] name a slot twice; "
                           r"give each cell held a slot of its own"),
    ({0: 0, -2: 1}, [2], r"^a cell of held=-2 must be >= 0"),
])
def test_bad_boards_are_refused(held, free, match):
    with pytest.raises(pebbles.PebblesValueError, match=match):
        SlotBoard(10, "checkpoint", held, free)


def test_moves_of_disk_or_tape_are_refused():
    with pytest.raises(pebbles.PebblesValueError, match=r"^a SlotBoard lowers moves of "
                                                        r"memory only; lower a stream"):
        SlotBoard(10, "checkpoint", {0: 0}, [1]).lower(np.array([[6, 0, -1]]))


@pytest.mark.parametrize("n", [1, 2, 3, 20])
@pytest.mark.parametrize("inplace", [False, True])
def test_online_negative_budget_names_the_least_that_runs(n, inplace):
    """online(n, -3) names the least budget that finishes n steps (not 0, which is refused
    past n = 1), and that budget runs."""
    game = "inplace" if inplace else "checkpoint"
    least = pebbles.min_pebbles(n, game)
    if least == 0:
        with pytest.raises(pebbles.PebblesValueError, match=r"^budget=-3 must be >= 0; "):
            online(n, -3, inplace=inplace)
    else:
        with pytest.raises(InfeasibleBudgetError) as info:
            online(n, -3, inplace=inplace)
        assert str(info.value) == (f"budget=-3 must be >= {least}, the least budget that "
                                   f"finishes n={n} steps; pass budget={least} or more")
        assert info.value.minimum == least
        with pytest.raises(InfeasibleBudgetError):
            list(online(n, least - 1, inplace=inplace))
    r = pebbles.simulate(online(n, least, inplace=inplace), n, game, budget=least)
    assert r.backward_steps == n


@pytest.mark.parametrize("inplace", [False, True])
def test_scheduler_negative_budget_names_the_least_for_any_length(inplace):
    """OnlineScheduler(-3) names the least budget that finishes every n (budget 0 stops
    at its second step), as replay_until's refusal of budget=1 does."""
    with pytest.raises(InfeasibleBudgetError) as info:
        OnlineScheduler(-3, inplace=inplace)
    least = info.value.minimum
    game = "inplace" if inplace else "checkpoint"
    why = " \\(a walk holds its start and the walking state\\)" if not inplace else ""
    assert re.fullmatch(rf"budget=-3 is negative; {least} is the least budget that finishes "
                        rf"a run of any length in the {game} game{why}; pass "
                        rf"budget={least} or more", str(info.value))
    assert least == (1 if inplace else 2)
    sched = OnlineScheduler(least, inplace=inplace)
    moves = [m for _ in range(99) for m in sched.advance()] + list(sched.reverse())
    assert pebbles.simulate(moves, 100, game, budget=least).backward_steps == 100
    with pytest.raises(InfeasibleBudgetError, match=rf"pass budget >= {least}"):
        small = OnlineScheduler(least - 1, inplace=inplace)
        for _ in range(3):
            small.advance()
    if not inplace:
        with pytest.raises(InfeasibleBudgetError, match=r"replay_until.*pass budget >= 2"):
            pebbles.replay_until(lambda i, s: 2 * s, lambda i, s, g: (2 * g, None),
                                 np.ones_like, np.ones(2), lambda i, s: i > 5, -3)
