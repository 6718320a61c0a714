"""Rows of a pebble-game diagram, read off the simulator's trace.

A diagram (Liu & Xu, Figure 7) has one row per step-costing move (``place``,
``move``, ``unplace``, ``tape``: the moves :func:`pebbles.simulate` counts in
``forward_steps``) plus a first row for the starting board; free moves
(``remove``, ``paint``) are merged into the row of the step before them. Every
board comes from :func:`pebbles.simulate` with ``trace=True``: the rules are
never re-implemented here, the rows only diff consecutive boards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

import pebbles
from pebbles import Game, Move, MoveKind, PebblesTypeError, PebblesValueError

__all__ = ["CODES", "MAX_CELLS", "MAX_FINGERPRINT", "MAX_ROWS", "MAX_TRACE", "Row", "Traced",
           "check_fingerprint", "fingerprint_array", "trace_fingerprint", "trace_rows"]

_STEPS = frozenset({MoveKind.PLACE, MoveKind.MOVE, MoveKind.UNPLACE, MoveKind.TAPE})

#: Largest board and number of rows :func:`visualize.draw_game` draws marker by marker
#: (here, away from matplotlib, so the command line checks sizes before importing it).
MAX_CELLS = 128
MAX_ROWS = 1500
#: Most pixels of a fingerprint before binning (rows x cells).
MAX_FINGERPRINT = 2 * 10**8
#: Most pebbles a fingerprint traces (rows x (peak pebbles + 1)): about half a minute
#: and a gigabyte (store-all n=3000 is 9e6).
MAX_TRACE = 10**7


def check_fingerprint(what: str, n: int, rows: int, bound: str = "") -> None:
    """Refuse a fingerprint of ``rows`` rows x ``n + 1`` cells over :data:`MAX_FINGERPRINT`
    pixels (``what`` names it; ``bound="at least "``: a lower bound on the rows, known
    before any simulation, since every schedule steps n - 1 times)."""
    if rows * (n + 1) > MAX_FINGERPRINT:
        raise PebblesValueError(
            f"a fingerprint of {what} has {bound}{rows} rows x {n + 1} cells, more than "
            f"{MAX_FINGERPRINT} pixels before binning; draw a smaller n")


def _check_trace(who: str, rows: int, peak: int, streaming: bool = False) -> None:
    """Refuse a trace (``who``: a fingerprint of n=..., ...) whose boards hold more than
    :data:`MAX_TRACE` pebbles: the rows are read off every board, so time and memory grow
    with rows x peak (``streaming``: lower bounds on both, met while the moves still
    stream in)."""
    if rows * (peak + 1) > MAX_TRACE:
        size = (f"at least {rows} rows of at least {peak} pebbles" if streaming else
                f"{rows} rows of up to {peak} pebbles")
        raise PebblesValueError(
            f"{who} traces {size}, more than {MAX_TRACE} pebbles in all "
            f"(minutes and gigabytes); draw a smaller n or a method that holds fewer states")


#: Codes of :func:`fingerprint_array` (a cell shows the highest code that applies):
#: ``disk`` is a copy on disk (two-level game) of a cell with no pebble in memory.
CODES = {"empty": 0, "painted": 1, "disk": 2, "kept": 3, "removed": 4, "placed": 5}


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
    loaded : the cells of ``placed`` whose pebble a ``load`` read back from disk
        (the others were computed by a step).
    """

    placed: frozenset[int]
    removed: frozenset[int]
    kept: frozenset[int]
    painted_from: int
    newly_painted: range
    moves: tuple[Move, ...]
    on_disk: frozenset[int] = frozenset()
    loaded: frozenset[int] = frozenset()


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
    loaded: set[int] = set()
    prev = set(before.pebbles)
    for board, move in zip(boards, moves, strict=True):  # one board after each move
        now = set(board.pebbles)
        placed |= now - prev
        if move[0] is MoveKind.LOAD:
            loaded |= now - prev
        lost |= prev - now
        prev = now
    end = boards[-1] if boards else before
    start = set(before.pebbles)
    return Row(
        placed=frozenset(placed), removed=frozenset(lost - placed),
        kept=frozenset(start & set(end.pebbles) - lost), painted_from=end.painted_from,
        newly_painted=range(end.painted_from, before.painted_from), moves=tuple(moves),
        on_disk=frozenset(end.disk), loaded=frozenset(loaded),
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

    Examples
    --------
    >>> import pebbles, visualize
    >>> traced = visualize.trace_rows(pebbles.treeverse(5, 2), 5)
    >>> len(traced.rows), traced.n, traced.game.value
    (7, 5, 'checkpoint')
    """
    game, budget = schedule_defaults(moves, n, game, budget)
    least, who = pebbles.min_pebbles(n, game), f"the schedule of n={n}"
    return traced_within(moves, n, game, budget, MAX_TRACE // (least + 1),
                         lambda rows: _check_trace(who, rows, least, streaming=True))


def trace_fingerprint(
    moves: Iterable[Move], n: int, game: Game | str | None = None,
    budget: int | None = None,
) -> Traced:
    """:func:`trace_rows` within the limits of a fingerprint.

    Refused with a :class:`pebbles.PebblesValueError`, each as soon as it is known: more
    than :data:`MAX_FINGERPRINT` pixels (rows x (n + 1); a :class:`pebbles.Schedule`'s
    predicted steps before any move is made, a plain stream once its rows pass the
    limit), or more than :data:`MAX_TRACE` traced pebbles (rows x (peak + 1), measured
    by an untraced simulation before the boards are traced).
    """
    game, budget = schedule_defaults(moves, n, game, budget)
    what, least = f"n={n}", pebbles.min_pebbles(n, game)
    check_fingerprint(what, n, max(n - 1, 0), "at least ")  # every schedule steps n - 1 times
    steps = pebbles.predicted_steps(moves) if isinstance(moves, pebbles.Schedule) else None
    if steps is not None:
        check_fingerprint(what, n, steps)

    def refuse(rows: int) -> None:  # every row holds at least the fewest pebbles
        check_fingerprint(what, n, rows, "at least ")
        _check_trace(f"a fingerprint of {what}", rows, least, streaming=True)

    most = min(MAX_FINGERPRINT // (n + 1), MAX_TRACE // (least + 1))
    return traced_within(moves, n, game, budget, most, refuse, lambda rows, peak: _check_trace(
        f"a fingerprint of {what}", rows, peak))


def traced_within(moves: Iterable[Move], n: int, game: Game, budget: int | None, most: int,
                  refuse: Callable[[int], None],
                  measured: Callable[[int, int], None] | None = None) -> Traced:
    """:func:`trace_rows` of moves whose game and budget are known, ``refuse(rows)``
    called as soon as more than ``most`` rows (steps) stream in (an endless stream stops
    there); every move is checked by the simulator before any is expanded (a ``forward
    0 10**9`` on a small board is an illegal move, not a billion rows). ``measured(rows,
    peak)``: called with the rows and the peak pebbles before the boards are traced."""
    stream = _Counted(moves, n, most, refuse)
    peak = pebbles.simulate(stream, n, game, budget).peak_pebbles
    if measured is not None:
        measured(stream.rows, peak)
    return _traced(list(pebbles.expand(stream.kept, game)), n, game, budget)


class _Counted:
    """Iterate over ``moves``, keeping them in :attr:`kept` and counting the rows (steps)
    in :attr:`rows`; ``refuse(rows)`` is called whenever the rows pass ``most``."""

    def __init__(self, moves: Iterable[Move], n: int, most: int,
                 refuse: Callable[[int], None]) -> None:
        pebbles.expand(moves)  # refuses what is no stream (a dict, an int) at once
        self._moves, self._n, self._most, self._refuse = moves, n, most, refuse
        self.kept: list[Move] = []
        self.rows = 0

    def __iter__(self) -> Iterator[Move]:
        for move in self._moves:
            self.kept.append(move)
            self.rows += _steps_of(move, self._n)
            if self.rows > self._most:
                self._refuse(self.rows)
            yield move


def _steps_of(move: object, n: int) -> int:
    """The rows (steps) ``move`` adds if it is legal on a board of ``n`` cells: 0 for what
    is no move, and a walk counted within the board (the simulator, which reads the
    stream in chunks, refuses both, naming the move; they are not mistaken for rows)."""
    try:
        kind, a, b = (int(v) for v in move)  # type: ignore[attr-defined]
    except (TypeError, ValueError, OverflowError):
        return 0
    if kind == MoveKind.FORWARD:
        return max(0, min(b, n) - max(a, 0))
    return int(kind in _STEPS)


def _traced(flat: list[Move], n: int, game: Game, budget: int | None) -> Traced:
    """Simulate the primitive moves ``flat`` with a trace and cut it into rows."""
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


def schedule_defaults(moves: object, n: int, game: Game | str | None,
                      budget: int | None) -> tuple[Game, int | None]:
    """``game`` and ``budget``, from a :class:`pebbles.Schedule` where not given; a
    schedule of another ``n`` or game is refused (``n`` is checked first, as
    :func:`pebbles.min_pebbles` checks it: ``n='5'`` is a type error)."""
    pebbles.min_pebbles(n, Game.CHECKPOINT)
    if isinstance(moves, str):  # a method name: its letters would be read as moves
        raise pebbles.PebblesTypeError(
            f"moves={moves!r:.40} is a str, not moves; for a method by name pass "
            f"pebbles.schedule({moves!r:.40}, {n}, budget=...), or a stream of pebbles.Move")
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

    Each cell shows the highest code that applies in its row: ``placed``,
    ``removed``, ``kept`` (memory pebbles), then ``disk`` (a copy on disk and no
    pebble in memory, two-level game), then ``painted``. Cell 0 (the input state,
    always held) shows as ``kept`` until it is painted.

    Parameters
    ----------
    traced : Traced
        Rows of a schedule, from :func:`trace_rows`.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``(len(traced.rows), traced.n + 1)``.

    Raises
    ------
    pebbles.PebblesTypeError
        If ``traced`` is not a :class:`Traced` (the moves themselves, say).

    Examples
    --------
    >>> import pebbles, visualize
    >>> img = visualize.fingerprint_array(visualize.trace_rows(pebbles.treeverse(5, 2), 5))
    >>> img.shape, img[0].tolist()  # start: cell 0 kept, cell 5 painted
    ((7, 6), [3, 0, 0, 0, 0, 1])
    >>> bool(img[-1, 0] == visualize.CODES["painted"])  # the last row paints cell 0
    True
    """
    if not isinstance(traced, Traced):
        raise PebblesTypeError(
            f"traced={traced!r:.60} (of type {type(traced).__name__}) must be the rows of a "
            f"schedule; pass traced=visualize.trace_rows(moves, n)")
    img = np.zeros((len(traced.rows), traced.n + 1), dtype=np.uint8)
    for r, row in enumerate(traced.rows):
        if traced.game is not Game.REVERSIBLE:
            img[r, row.painted_from:] = CODES["painted"]
        if traced.game is Game.REVERSIBLE or row.painted_from > 0:
            img[r, 0] = CODES["kept"]
        for key in ("on_disk", "kept", "removed", "placed"):
            cells = list(getattr(row, key))
            img[r, cells] = CODES["disk" if key == "on_disk" else key]
    return img
