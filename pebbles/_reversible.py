"""Optimal schedules of the reversible pebble game (Liu & Xu, appendix; Knill 1995).

With S pebbles the farthest reachable cell is 2^S - 1. Two costs are optimal
by dynamic programming over the position j of the first pebble that stays:

* clean move ``C(m, s)``: bring a pebble from the base to distance m and leave
  no other pebble behind:
  ``C(1, s) = 1``, ``C(m, s) = min_j C(j, s) + C(m - j, s - 1) + C(j, s - 1)``
  (go to j, go on to m with one pebble less, then undo the way to j while the
  pebble on m is held);
* reach ``F(m, s)``: end with a pebble on cell m, others may stay:
  ``F(1, s) = 1``, ``F(m, s) = min_j C(j, s) + F(m - j, s - 1)``.

Both are convex in m, so each minimum is a merge of increments
(:mod:`pebbles._convex`), and every table is kept as O(S) runs: building them
for n costs O(n) time and O(S^2) memory. The tests check the tables against
the plain dynamic program and the brute-force search.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._budget import check_budget
from ._convex import Convex, RunReader, add, merge, split_of_merge
from ._encoded import Children, assemble
from ._errors import PebblesValueError
from ._moves import Game, Move, MoveKind
from ._validation import check_int

__all__ = ["REVERSIBLE_MAX_RUNS", "ReversibleTables", "reversible_optimal",
           "reversible_min_steps", "reversible_tables_fit"]

_PLACE, _UNPLACE = MoveKind.PLACE, MoveKind.UNPLACE

#: Most work the tables may take: their runs, all rows of the three tables together,
#: about 8 us of building each (10^6 runs: some 8 s). A row of m cells holds up to about
#: 7 m^0.35 runs (9787 at m = 2^30, 94 862 at 10^12); rows of all n cells, one a pebble
#: past log2(n), about 2.4 each once the first few are past.
REVERSIBLE_MAX_RUNS = 10**6
#: Work :func:`reversible_tables_fit` allows the planners: about a second.
_FIT_WORK = 1.5 * 10**5


@dataclass(frozen=True, slots=True)
class ReversibleTables:
    """Run-length tables of C (clean move), G = C(., s) + C(., s-1), and F (reach)."""

    clean: tuple[Convex, ...]
    left: tuple[Convex, ...]
    reach: tuple[Convex, ...]

    @classmethod
    def build(cls, n: int, pebbles: int) -> ReversibleTables:
        """Tables for distances up to ``n`` with ``s = 1..pebbles`` (index s)."""
        clean, left, reach = [Convex(0)], [Convex(0)], [Convex(0)]
        clean.append(Convex(1))
        left.append(Convex(1))
        reach.append(Convex(1))
        if _estimated_work(n, pebbles) > REVERSIBLE_MAX_RUNS:
            raise _too_large(n, pebbles)
        work = 0
        for s in range(2, pebbles + 1):
            c = _clean_row(clean[s - 1], _capped(n, s - 1))
            clean.append(c)
            left.append(add(c, clean[s - 1], min(c.size, clean[s - 1].size)))
            reach.append(merge(1, c, reach[s - 1], _capped(n, s, 1)))
            work += len(c.runs) + len(left[s].runs) + len(reach[s].runs)
            if work > REVERSIBLE_MAX_RUNS:  # the estimate was short: stop all the same
                raise _too_large(n, pebbles)
        return cls(tuple(clean), tuple(left), tuple(reach))


def _too_large(n: int, pebbles: int) -> PebblesValueError:
    return PebblesValueError(
        f"n={n}, budget={pebbles}: the reversible game's optimal tables grow past "
        f"{REVERSIBLE_MAX_RUNS:.0e} runs (seconds to hours of building, more with n); use "
        f"'bennett' (k-ary, closed form) for this size, or a smaller n or budget (budget >= n "
        f"answers at once: n steps)")


def _capped(n: int, s: int, minus: int = 0) -> int:
    """``min(n, 2^s - minus)`` without making 2^s for large s (``minus`` 0 or 1)."""
    return n if s > n.bit_length() else min(n, (1 << s) - minus)


def _estimated_work(n: int, pebbles: int) -> float:
    """The tables' runs by the growth law above (measured from n = 10^4 to 10^12 and
    pebbles up to 10^5; the build stops all the same where it is short)."""
    full = max(0, pebbles - n.bit_length())  # rows of all n cells
    top = 7.0 * 2.0 ** (0.35 * min(math.log2(n), pebbles))  # runs of the longest row
    return 3 * top * (4.7 + (5 if full else 0)) + 7.3 * full


def reversible_tables_fit(n: int, budget: int) -> bool:
    """Whether the reversible optimum of ``n`` cells with ``budget`` pebbles is known in
    about a second (``budget >= n`` always: n steps, no table), for the planners."""
    return budget >= n or _estimated_work(n, min(budget, n)) <= _FIT_WORK


def _clean_row(prev: Convex, size: int) -> Convex:
    """Row ``C(., s)`` on ``1..size`` from ``prev = C(., s - 1)``, run by run.

    ``C(m, s) = min_{j + k = m} g(j) + h(k)`` with ``g = C(., s) + prev`` and
    ``h = prev``: g depends on the row being built, but only on increments
    already made (the merge takes g's j-th increment after h's first). Both are
    convex, so the row's increments are theirs merged by size; a run of equal
    increments of g (or h) is taken at once, so the work is O(runs), not O(size).
    """
    row = Convex(1)
    if size < 2:
        return row
    row.append(prev.first + prev.first + prev.first - 1)
    own, g_prev, h_prev = RunReader(row), RunReader(prev), RunReader(prev)
    g_room = h_room = prev.size - 1
    made = 2  # row.size, counted here (the property sums the runs)
    while made < size and (g_room or h_room):
        g_next = own.step() + g_prev.step() if g_room else None
        h_next = h_prev.step() if h_room else None
        room = size - made
        if h_next is None or (g_next is not None and g_next <= h_next):
            take = min(own.left(), g_prev.left(), g_room, room)
            row.extend(g_next, take)
            own.skip(take)
            g_prev.skip(take)
            g_room -= take
            made += take
        else:
            take = min(h_prev.left(), h_room, room)
            row.extend(h_next, take)
            h_prev.skip(take)
            h_room -= take
            made += take
    return row


@lru_cache(maxsize=8)
def _tables(n: int, s: int) -> ReversibleTables:
    """:meth:`ReversibleTables.build`, kept for the next call: a schedule builds them
    when it is made, and again each time its moves are played."""
    return ReversibleTables.build(n, s)


def _checked(n: object, budget: object) -> tuple[int, int]:
    """``n`` and the pebbles used, ``min(budget, n)``, after the checks (``n <= 2^S - 1``)."""
    n = check_int("n", n, 1)
    budget = check_int("budget", budget)  # a negative one: check_budget tells the least
    check_budget(n, budget, Game.REVERSIBLE)
    return n, min(budget, n)


def reversible_min_steps(n: int, budget: int) -> int:
    """Fewest steps of the reversible game to put a pebble on cell n.

    Parameters
    ----------
    n : int
        Target cell, ``n >= 1``.
    budget : int
        Budget S (cell 0 not counted); needs ``n <= 2**S - 1``.

    Returns
    -------
    int
        Fewest ``place`` and ``unplace`` moves until cell n holds a pebble.

    Raises
    ------
    PebblesTypeError
        If ``n`` or ``budget`` is not an integer.
    PebblesValueError
        If ``n < 1``; :class:`InfeasibleBudgetError` (a subclass) if
        ``n > 2**budget - 1`` (a negative budget included), naming the minimum S.

    Examples
    --------
    >>> from pebbles import reversible_min_steps
    >>> reversible_min_steps(16, 5)   # Bennett k=2 needs 41
    29
    """
    n, s = _checked(n, budget)
    return n if s == n else _tables(n, s).reach[s](n)


def reversible_optimal(n: int, budget: int) -> Iterator[Move]:
    """Yield a schedule of the reversible game with the fewest steps.

    Parameters
    ----------
    n : int
        Target cell, ``n >= 1``.
    budget : int
        Budget S; needs ``n <= 2**S - 1``.

    Raises
    ------
    InfeasibleBudgetError
        If ``n > 2**budget - 1``; the error names the minimum S.

    Examples
    --------
    >>> from pebbles import reversible_optimal, bennett, simulate
    >>> simulate(reversible_optimal(16, 5), 16, "reversible", 5).forward_steps
    29
    >>> simulate(bennett(16, 2, uncompute=False), 16, "reversible").forward_steps
    41
    """
    n, s = _checked(n, budget)
    if s == n:  # a pebble on every cell: no table needed
        return (Move(_PLACE, i) for i in range(1, n + 1))
    return _reach(_tables(n, s), 0, n, s)


def reversible_encoded(n: int, budget: int) -> np.ndarray:
    """The moves of :func:`reversible_optimal` as an encoded ``int64`` (m, 3) array, fast.

    A clean move's moves depend only on its distance and pebbles, so each small
    one is encoded once and copied shifted (:func:`pebbles._encoded.assemble`).

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import encode, reversible_optimal
    >>> from pebbles._reversible import reversible_encoded
    >>> np.array_equal(reversible_encoded(1000, 12), encode(reversible_optimal(1000, 12)))
    True
    """
    n, s = _checked(n, budget)
    if s == n:
        out = np.zeros((n, 3), dtype=np.int64)
        out[:, 0], out[:, 1], out[:, 2] = int(_PLACE), np.arange(1, n + 1), -1
        return out
    t = _tables(n, s)
    return assemble(("reach", n, s), lambda key: _parts(t, *key),
                    lambda key: (t.reach if key[0] == "reach" else t.clean)[key[2]](key[1]))


def _parts(t: ReversibleTables, kind: str, m: int, s: int) -> Children:
    """The parts of :func:`_reach` (``kind`` "reach") or :func:`_clean` ("clean")."""
    if m == 1:
        return None
    if kind == "reach":
        j = split_of_merge(t.clean[s], t.reach[s - 1], m)
        return [(0, ("clean", j, s), False), (j, ("reach", m - j, s - 1), False)]
    j = split_of_merge(t.left[s], t.clean[s - 1], m)
    return [(0, ("clean", j, s), False), (j, ("clean", m - j, s - 1), False),
            (0, ("clean", j, s - 1), True)]


def _reach(t: ReversibleTables, base: int, m: int, s: int) -> Iterator[Move]:
    while m > 1:
        j = split_of_merge(t.clean[s], t.reach[s - 1], m)
        yield from _clean(t, base, j, s, False)
        base, m, s = base + j, m - j, s - 1
    yield Move(_PLACE, base + 1)


def _clean(t: ReversibleTables, base: int, m: int, s: int, inverse: bool) -> Iterator[Move]:
    """Clean move of distance m with s pebbles, or its inverse (reversed, undone)."""
    if m == 1:
        yield Move(_UNPLACE if inverse else _PLACE, base + 1)
        return
    j = split_of_merge(t.left[s], t.clean[s - 1], m)
    if inverse:
        yield from _clean(t, base, j, s - 1, False)
        yield from _clean(t, base + j, m - j, s - 1, True)
        yield from _clean(t, base, j, s, True)
    else:
        yield from _clean(t, base, j, s, False)
        yield from _clean(t, base + j, m - j, s - 1, False)
        yield from _clean(t, base, j, s - 1, True)
