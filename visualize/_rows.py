"""Rows of a pebble-game diagram, read off the simulator's trace.

A diagram (Liu & Xu, Figure 7) has one row per step-costing move (``place``,
``move``, ``unplace``) plus a first row for the starting board; free moves
(``remove``, ``paint``) are merged into the row of the step before them. Every
board comes from :func:`pebbles.simulate` with ``trace=True``: the rules are
never re-implemented here, the rows only diff consecutive boards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

import pebbles
from pebbles import Game, Move, MoveKind, PebblesValueError

__all__ = ["CODES", "MAX_CELLS", "MAX_FINGERPRINT", "MAX_ROWS", "Row", "Traced",
           "check_fingerprint", "fingerprint_array", "trace_rows"]

_STEPS = frozenset({MoveKind.PLACE, MoveKind.MOVE, MoveKind.UNPLACE})

#: Largest board and number of rows :func:`visualize.draw_game` draws marker by marker
#: (here, away from matplotlib, so the command line checks sizes before importing it).
MAX_CELLS = 128
MAX_ROWS = 1500
#: Most pixels of a fingerprint before binning (rows x cells).
MAX_FINGERPRINT = 2 * 10**8

def check_fingerprint(what: str, n: int, rows: int, bound: str = "") -> None:
    """Refuse a fingerprint of ``rows`` rows x ``n + 1`` cells over :data:`MAX_FINGERPRINT`
    pixels (``what`` names it; ``bound="at least "``: a lower bound on the rows, known
    before any simulation, since every schedule steps n - 1 times)."""
    if rows * (n + 1) > MAX_FINGERPRINT:
        raise PebblesValueError(
            f"a fingerprint of {what} has {bound}{rows} rows x {n + 1} cells, more than "
            f"{MAX_FINGERPRINT} pixels before binning; draw a smaller n")


#: Codes of :func:`fingerprint_array` (a cell shows the highest code that applies).
CODES = {"empty": 0, "painted": 1, "kept": 2, "removed": 3, "placed": 4}


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the diagram: what happened to the board during one step.

    Attributes
    ----------
    placed : cells that gained a pebble in this row (filled dark circles).
    removed : cells that lost a pebble in this row and were not placed in it
        (open circles).
    kept : cells holding a pebble from before the row to its end (light circles).
    painted_from : cells ``painted_from..n`` are painted at the end of the row.
    newly_painted : cells painted during this row.
    moves : the moves of the row (a step first, then free moves).
    on_disk : cells with a disk copy at the end of the row (two-level game:
        ``store`` writes one, ``load`` reads it back as a placed pebble).
    """

    placed: frozenset[int]
    removed: frozenset[int]
    kept: frozenset[int]
    painted_from: int
    newly_painted: range
    moves: tuple[Move, ...]
    on_disk: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Traced:
    """The rows of a schedule and the simulator's measurement of it."""

    rows: tuple[Row, ...]
    result: pebbles.SimulationResult
    n: int
    game: Game
    budget: int | None = None  # the budget S it was checked against, if any


def _row(before: pebbles.Board, boards: list[pebbles.Board], moves: list[Move]) -> Row:
    """Build one row from the board before it and the boards after each of its moves."""
    placed: set[int] = set()
    lost: set[int] = set()
    prev = set(before.pebbles)
    for board in boards:
        now = set(board.pebbles)
        placed |= now - prev
        lost |= prev - now
        prev = now
    end = boards[-1] if boards else before
    start = set(before.pebbles)
    return Row(
        placed=frozenset(placed), removed=frozenset(lost - placed),
        kept=frozenset(start & set(end.pebbles) - lost), painted_from=end.painted_from,
        newly_painted=range(end.painted_from, before.painted_from), moves=tuple(moves),
        on_disk=frozenset(end.disk),
    )


def trace_rows(
    moves: Iterable[Move], n: int, game: Game | str | None = None,
    budget: int | None = None,
) -> Traced:
    """Expand, simulate with a trace, and cut the trace into diagram rows.

    Parameters
    ----------
    moves : iterable of Move
        Any schedule (a generator is fine); ``forward i j`` is expanded with
        :func:`pebbles.expand`.
    n, game, budget
        As for :func:`pebbles.simulate`, which checks every move; for a
        :class:`pebbles.Schedule`, ``game`` and ``budget`` default to its own
        (``game='checkpoint'`` otherwise).

    Returns
    -------
    Traced
        ``rows[0]`` is the starting board; each further row starts with a step.
    """
    game, budget = _schedule_defaults(moves, n, game, budget)
    flat = list(pebbles.expand(moves, game))
    result = pebbles.simulate(flat, n, game, budget, trace=True)
    boards = result.trace or ()
    start = pebbles.Board((), n)
    cuts = [0] + [j for j, m in enumerate(flat) if m[0] in _STEPS and j > 0] + [len(flat)]
    if flat and flat[0][0] in _STEPS:
        cuts.insert(1, 0)  # row 0 is the bare starting board
    rows = []
    for lo, hi in pairwise(cuts):
        before = boards[lo - 1] if lo > 0 else start
        rows.append(_row(before, list(boards[lo:hi]), flat[lo:hi]))
    return Traced(tuple(rows), result, n, game, budget)


def _schedule_defaults(moves: object, n: int, game: Game | str | None,
                       budget: int | None) -> tuple[Game, int | None]:
    """``game`` and ``budget``, from a :class:`pebbles.Schedule` where not given; a
    schedule of another ``n`` or game is refused."""
    if not isinstance(moves, pebbles.Schedule):
        return Game.coerce("checkpoint" if game is None else game), budget
    if moves.n != n:
        raise pebbles.PebblesValueError(
            f"the schedule {str(moves)!r} is for n={moves.n}, not n={n}; pass n={moves.n}")
    if game is not None and Game.coerce(game) is not moves.game:
        raise pebbles.PebblesValueError(
            f"game={Game.coerce(game).value!r}, but the schedule {str(moves)!r} plays the "
            f"{moves.game.value} game; leave game out")
    return moves.game, moves.budget if budget is None else budget


def fingerprint_array(traced: Traced) -> np.ndarray:
    """Image of a schedule: shape ``(rows, n + 1)``, values from :data:`CODES`.

    Cell 0 (the input state, always held) shows as ``kept``.
    """
    img = np.zeros((len(traced.rows), traced.n + 1), dtype=np.uint8)
    for r, row in enumerate(traced.rows):
        if traced.game is not Game.REVERSIBLE:
            img[r, row.painted_from:] = CODES["painted"]
        img[r, 0] = CODES["kept"]
        for key in ("kept", "removed", "placed"):
            cells = list(getattr(row, key))
            img[r, cells] = CODES[key]
    return img
