"""Test oracle shared by the chain and PyTorch tests: which backward steps a taped run serves."""

from __future__ import annotations

from collections.abc import Iterable

from pebbles import MoveKind


def taped_steps(moves: Iterable, n: int, *, seed_taped: bool = False) -> set[int]:
    """Steps whose backward step reuses a run taped with its graph, derived from the moves.

    The last run of step i before paint i is a one-step walk from a pebble on cell i,
    cell i keeps its pebble until paint i, and once cell i+1 loses its pebble no step
    runs before paint i. With ``seed_taped`` (the PyTorch executor), when no pebble is on
    cell n at the first paint, s_n is computed from s_{n-1} then (one step, taped) and
    dropped at once.
    """
    cand, dropped, taped, cells = {}, set(), set(), set()
    for kind, a, b in moves:
        if kind in (MoveKind.PLACE, MoveKind.FORWARD):
            for k in dropped:
                cand[k] = False
            dropped.clear()
            lo, hi = (a - 1, a) if kind == MoveKind.PLACE else (a, b)
            for k in range(lo, hi):
                cand[k] = hi == lo + 1
            cells.add(hi)
        elif kind == MoveKind.REMOVE:
            cells.discard(a)
            cand[a] = False
            dropped.add(a - 1)
        elif kind == MoveKind.PAINT:
            if seed_taped and a == n - 1 and n not in cells:
                cand[a] = True
            if cand.get(a):
                taped.add(a)
    return taped
