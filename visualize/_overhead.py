"""Limits of the online-overhead plot, shared by :func:`visualize.draw_online_overhead`
and ``pebbles tradeoff --online-overhead`` (no matplotlib here: the command line checks
them before importing it).
"""

from __future__ import annotations

import pebbles
from pebbles import PebblesValueError

__all__ = ["MAX_OVERHEAD_N", "MAX_OVERHEAD_STEPS", "check_overhead_work", "first_unfinished"]

#: Largest n of ``tradeoff --online-overhead`` (each point is simulated: about a minute
#: for three budgets up to 10^5, ten times that up to 10^6).
MAX_OVERHEAD_N = 10**5
#: Work an online-overhead plot does at most, in forward steps (all budgets, both games,
#: with :data:`PER_N` added for each simulated stream): about two minutes at the
#: simulator's 1.6e6 steps a second.
MAX_OVERHEAD_STEPS = 2 * 10**8
#: Forward steps each simulated stream of n steps is counted above its own, times n:
#: building and checking an online stream costs about 10-40 microseconds a step of n
#: whatever its budget (measured for n from 10^4 to 10^6), 16-64 steps' time.
PER_N = 64

_GAMES = ("checkpoint", "inplace")


def _work(ns: tuple[int, ...], s: int) -> int:
    """Work of budget ``s``'s online streams over ``ns`` in both games: their forward steps,
    estimated by the optimum (a small S costs about n^2 / S steps), plus :data:`PER_N`
    times n each; the sum stops once it passes :data:`MAX_OVERHEAD_STEPS`, so a long
    ``ns`` is refused at once."""
    total = 0
    for n in ns:
        for game in _GAMES:
            total += pebbles.min_forward_steps(n, max(s, pebbles.min_pebbles(n, game)), game)
            total += PER_N * n
        if total > MAX_OVERHEAD_STEPS:
            break
    return total


def check_overhead_work(ns: tuple[int, ...], budgets: tuple[int, ...],
                        given: int | None = None) -> None:
    """Refuse budgets whose online streams over ``ns`` take too long to simulate: more
    than :data:`MAX_OVERHEAD_STEPS` of work (:func:`_work`) for all budgets together, or
    an n above :data:`MAX_OVERHEAD_N` (the cost of a step grows with n).

    Parameters
    ----------
    ns, budgets : tuple of int
        The numbers of steps and the budgets S of the plot.
    given : int, optional
        The largest ``-n`` of the command line, whose flags the message then names;
        default: the message names the arguments of
        :func:`visualize.draw_online_overhead`.
    """
    work = {s: _work(ns, s) for s in dict.fromkeys(budgets)}
    total = sum(work.values())
    if total <= MAX_OVERHEAD_STEPS:
        _check_top(ns, given)
        return
    slow = [s for s, w in work.items() if w > MAX_OVERHEAD_STEPS] or list(work)
    steps = (f"the online streams have at least {total:.2g} forward steps to simulate "
             f"(each stream of n steps counted {PER_N} n more), more than "
             f"{MAX_OVERHEAD_STEPS:.0e} (minutes)")
    if given is None:
        raise PebblesValueError(
            f"budgets={tuple(slow)} with ns up to n={max(ns)}: {steps}; pass larger budgets "
            f"or smaller ns")
    plotted = f" (plotted up to n = {max(ns)})" if given > max(ns) else ""
    raise PebblesValueError(
        f"--online-overhead {' '.join(map(str, slow))} with -n {given}{plotted}: {steps}; "
        f"use larger budgets or a smaller -n")


def _check_top(ns: tuple[int, ...], given: int | None) -> None:
    """Refuse an n above :data:`MAX_OVERHEAD_N` (the command line plots up to it and says
    so, ``given`` being its ``-n``)."""
    if given is None and max(ns) > MAX_OVERHEAD_N:
        raise PebblesValueError(
            f"ns up to n={max(ns)}: the online-overhead plot simulates n up to "
            f"{MAX_OVERHEAD_N} (past it a stream takes minutes); pass ns of at most "
            f"{MAX_OVERHEAD_N}")


def first_unfinished(s: int, game: str, top: int) -> int | None:
    """The least n <= ``top`` that budget ``s`` cannot finish in ``game`` (``s`` below
    :func:`pebbles.min_pebbles`, which never falls as n grows), or None."""
    if pebbles.min_pebbles(top, game) <= s:
        return None
    lo, hi = 1, top
    while lo < hi:
        mid = (lo + hi) // 2
        if pebbles.min_pebbles(mid, game) > s:
            hi = mid
        else:
            lo = mid + 1
    return lo
