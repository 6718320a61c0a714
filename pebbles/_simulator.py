"""The pebble-game simulator: the one referee of every schedule in the library.

It replays a move stream under the rules of the paper's appendix (Liu & Xu,
"Automatic differentiation in physics simulation", reversible and checkpoint
pebble games) and of this project's in-place variant, and measures the stream:
forward steps, backward steps (paints), peak pebbles and, for the reversible
game, the step at which cell n first holds a pebble.

Rules (cells ``0..n``; cell 0 always holds s_0 and is not counted):

* ``place i``  -- cell i-1 has a pebble, cell i has none; 1 step.
* ``remove i`` -- cell i (>= 1) has a pebble; free (not in the reversible game).
* ``paint i``  -- cell i has a pebble, cell i+1 is painted, cell i is not;
  free; cell n starts painted (checkpoint games only).
* ``move i``   -- in-place game only: cell i-1 (>= 1) has a pebble, cell i has
  none; the pebble moves; 1 step.
* ``unplace i`` -- reversible game only: cells i-1 and i have pebbles; 1 step.
* ``forward i j`` -- checkpoint games only: cell i has a pebble and cells
  i+1..j have none; a working pebble walks to j and stays; j-i steps. While
  walking it holds two pebbles in the checkpoint game (one for j = i+1) and one
  in the in-place game.

End: every cell painted (checkpoint games), or cell n pebbled (reversible).
The budget S bounds the pebbles on cells 1..n at every moment, transient
walking pebbles included.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ._errors import IllegalMoveError, PebblesTypeError
from ._moves import Game, Move, MoveKind
from ._validation import check_int

__all__ = ["Board", "SimulationResult", "expand", "simulate"]


@dataclass(frozen=True, slots=True)
class Board:
    """A snapshot of the board: pebbled cells (besides cell 0) and painted cells.

    Painted cells are always ``painted_from..n`` (paints go right to left).
    """

    pebbles: tuple[int, ...]
    painted_from: int


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What :func:`simulate` measured of a legal move stream.

    Attributes
    ----------
    game, n : the game and the number of steps (cells ``0..n``).
    forward_steps : moves that cost a step (place, move, unplace, forward).
    backward_steps : paints (backward steps).
    peak_pebbles : the most pebbles on cells 1..n at any moment.
    moves : number of moves in the stream.
    first_reach_n : steps taken when cell n first held a pebble (``None`` if never).
    trace : board after each move, when asked for.
    """

    game: Game
    n: int
    forward_steps: int
    backward_steps: int
    peak_pebbles: int
    moves: int
    first_reach_n: int | None
    trace: tuple[Board, ...] | None = None


_ALLOWED = {
    Game.CHECKPOINT: frozenset(
        {MoveKind.PLACE, MoveKind.REMOVE, MoveKind.PAINT, MoveKind.FORWARD}
    ),
    Game.INPLACE: frozenset(
        {MoveKind.PLACE, MoveKind.REMOVE, MoveKind.PAINT, MoveKind.FORWARD, MoveKind.MOVE}
    ),
    Game.REVERSIBLE: frozenset({MoveKind.PLACE, MoveKind.UNPLACE}),
}


class _State:
    """Mutable board used while replaying; ``cells`` is kept sorted."""

    __slots__ = ("n", "cells", "painted_from", "steps", "paints", "peak", "first_reach")

    def __init__(self, n: int) -> None:
        self.n = n
        self.cells: list[int] = []
        self.painted_from = n
        self.steps = 0
        self.paints = 0
        self.peak = 0
        self.first_reach: int | None = None

    def has(self, i: int) -> bool:
        if i == 0:
            return True
        k = bisect_right(self.cells, i)
        return k > 0 and self.cells[k - 1] == i

    def any_in(self, lo: int, hi: int) -> bool:
        """True if a pebble lies on a cell in ``lo..hi``."""
        k = bisect_right(self.cells, lo - 1)
        return k < len(self.cells) and self.cells[k] <= hi


def _check_cell(st: _State, i: int, lo: int, what: str) -> str | None:
    if not lo <= i <= st.n:
        return f"{what} must name a cell in {lo}..{st.n}, got {i}"
    return None


def _rule_broken(st: _State, game: Game, kind: MoveKind, a: int, b: int) -> str | None:
    """Return the broken rule for move (kind, a, b), or None if it is legal."""
    if kind not in _ALLOWED[game]:
        return f"'{kind.name.lower()}' is not a move of the {game.value} game"
    if kind is MoveKind.FORWARD:
        if not 0 <= a < b <= st.n:
            return f"forward i j needs 0 <= i < j <= {st.n}, got i={a}, j={b}"
        if not st.has(a):
            return f"forward starts from cell {a}, which has no pebble"
        if st.any_in(a + 1, b):
            return f"forward {a} {b} walks over a pebble: cells {a + 1}..{b} must be empty"
        return None
    lo = 0 if kind is MoveKind.PAINT else 1
    bad = _check_cell(st, a, lo, kind.name.lower())
    if bad:
        return bad
    if kind is MoveKind.PAINT:
        if a != st.painted_from - 1:
            return (f"paint {a} needs cell {a + 1} painted and cell {a} unpainted; "
                    f"painted cells are {st.painted_from}..{st.n}")
        return None if st.has(a) else f"paint {a} needs a pebble on cell {a}"
    if kind is MoveKind.REMOVE:
        return None if st.has(a) else f"remove {a}: cell {a} has no pebble"
    if kind is MoveKind.UNPLACE:
        if not st.has(a):
            return f"unplace {a}: cell {a} has no pebble"
        return None if st.has(a - 1) else f"unplace {a} needs a pebble on cell {a - 1}"
    if st.has(a):
        return f"{kind.name.lower()} {a}: cell {a} already has a pebble"
    if not st.has(a - 1):
        return f"{kind.name.lower()} {a} needs a pebble on cell {a - 1}"
    if kind is MoveKind.MOVE and a == 1:
        return "move 1 would take the pebble of cell 0, which never moves; use place 1"
    return None


def _apply(st: _State, game: Game, kind: MoveKind, a: int, b: int) -> int:
    """Apply a legal move; return the transient pebble count it reaches."""
    cells = st.cells
    if kind is MoveKind.PLACE:
        insort(cells, a)
        st.steps += 1
        if a == st.n and st.first_reach is None:
            st.first_reach = st.steps
        return len(cells)
    if kind is MoveKind.REMOVE:
        cells.remove(a)
    elif kind is MoveKind.UNPLACE:
        cells.remove(a)
        st.steps += 1
    elif kind is MoveKind.PAINT:
        st.painted_from = a
        st.paints += 1
    elif kind is MoveKind.MOVE:
        cells.remove(a - 1)
        insort(cells, a)
        st.steps += 1
    else:  # FORWARD
        extra = 1 if (game is Game.INPLACE or b - a == 1) else 2
        insort(cells, b)
        st.steps += b - a
        return len(cells) - 1 + extra
    return len(cells)


def simulate(
    moves: Iterable[Move],
    n: int,
    game: Game | str = Game.CHECKPOINT,
    budget: int | None = None,
    *,
    trace: bool = False,
    check_end: bool = True,
) -> SimulationResult:
    """Replay a move stream, check every rule, and measure it.

    Parameters
    ----------
    moves : iterable of Move
        The stream; consumed once (generators are fine).
    n : int
        Number of steps; the board has cells ``0..n``.
    game : {'checkpoint', 'inplace', 'reversible'}
        The rules to play by.
    budget : int, optional
        Most pebbles allowed on cells 1..n at any moment.
    trace : bool
        Record the board after each move (for drawing; memory O(moves * S)).
    check_end : bool
        Check the end condition once the stream is exhausted.

    Returns
    -------
    SimulationResult

    Raises
    ------
    IllegalMoveError
        Naming the move's index, the move and the rule it breaks.

    Examples
    --------
    >>> from pebbles import simulate, treeverse_paper
    >>> r = simulate(treeverse_paper(20, delta=3), 20)
    >>> r.forward_steps, r.backward_steps, r.peak_pebbles
    (45, 20, 4)
    """
    n = check_int("n", n, 1)
    game = Game.coerce(game)
    if budget is not None:
        budget = check_int("budget", budget, 0)
    st = _State(n)
    boards: list[Board] = []
    index = -1
    for index, m in enumerate(moves):
        try:
            kind, a, b = m
            kind = MoveKind(kind)
        except (TypeError, ValueError):
            raise PebblesTypeError(
                f"move #{index}={m!r} is not a Move; build moves with pebbles.place() etc."
            ) from None
        rule = _rule_broken(st, game, kind, a, b)
        if rule is not None:
            raise IllegalMoveError(index, Move(kind, a, b), rule)
        reached = _apply(st, game, kind, a, b)
        if budget is not None and reached > budget:
            raise IllegalMoveError(
                index, Move(kind, a, b),
                f"needs {reached} pebbles at once but the budget is {budget}",
            )
        st.peak = max(st.peak, reached)
        if trace:
            boards.append(Board(tuple(st.cells), st.painted_from))
    if check_end:
        _check_end(st, game)
    return SimulationResult(
        game, n, st.steps, st.paints, st.peak, index + 1, st.first_reach,
        tuple(boards) if trace else None,
    )


def _check_end(st: _State, game: Game) -> None:
    if game is Game.REVERSIBLE:
        if not st.has(st.n):
            raise IllegalMoveError(-1, None, f"the game ends with a pebble on cell {st.n}; "
                                   f"the stream left none there")
    elif st.painted_from != 0:
        raise IllegalMoveError(
            -1, None,
            f"the game ends with every cell painted; cells 0..{st.painted_from - 1} "
            f"were left unpainted",
        )


def expand(moves: Iterable[Move], game: Game | str = Game.CHECKPOINT) -> Iterator[Move]:
    """Rewrite each ``forward i j`` as primitive moves (for drawing and tracing).

    In the checkpoint game the walk is ``place i+1, place i+2, remove i+1, ...``;
    in the in-place game it is ``place i+1, move i+2, ..., move j``.
    """
    game = Game.coerce(game)
    for m in moves:
        if m[0] != MoveKind.FORWARD:
            yield m
            continue
        a, b = m[1], m[2]
        yield Move(MoveKind.PLACE, a + 1)
        for c in range(a + 2, b + 1):
            if game is Game.INPLACE:
                yield Move(MoveKind.MOVE, c)
            else:
                yield Move(MoveKind.PLACE, c)
                yield Move(MoveKind.REMOVE, c - 1)
