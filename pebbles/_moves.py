"""Moves of the pebble games (Liu & Xu, appendix) and their text and array forms.

A schedule is a stream of :class:`Move` values. Cells are ``0..n``; cell 0 holds
the input state s_0 and is never emptied. The move kinds are

=========  =====================================================  ==========
kind       meaning                                                cost
=========  =====================================================  ==========
place i    compute s_i from the pebble on i-1 into a new pebble   1 step
remove i   free the pebble on i                                   free
paint i    backward step i (needs s_i and the gradient of i+1)   free
move i     in-place step: the pebble on i-1 (not cell 0) -> i     1 step
unplace i  reversible uncomputation of s_i (needs s_{i-1})        1 step
forward    ``forward i j``: from the pebble on i a working        j-i steps
           pebble walks to j and stays there
store i    copy the memory pebble on i to disk (two-level game)   write cost
load i     copy the disk pebble on i into a new memory pebble     read cost
discard i  free the disk pebble on i                              free
tape i     ``place i`` keeping the graph of step i-1 until        1 step
           ``paint i-1``, which then replays nothing (kept
           graphs, :class:`pebbles.ChainCosts` ``graph``)
=========  =====================================================  ==========

``Move`` is a :class:`typing.NamedTuple` rather than a dataclass: schedules
yield millions of moves, and a tuple is about twice as cheap to build (0.31 us
against 0.68 us for a frozen slotted dataclass, measured on the CI machine) while
being just as immutable and hashable.

The compact encoding (:func:`encode`) is an ``int64`` array of shape ``(m, 3)``
with rows ``(kind, a, b)``; compiled executors replay it without Python objects.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from enum import Enum, IntEnum
from itertools import islice
from numbers import Integral
from typing import NamedTuple, NoReturn

import numpy as np
from numpy.typing import ArrayLike

from ._errors import PebblesTypeError, PebblesValueError

__all__ = [
    "Game",
    "as_encoded",
    "Move",
    "MoveKind",
    "decode",
    "discard",
    "encode",
    "forward",
    "format_move",
    "load",
    "move",
    "paint",
    "parse_move",
    "place",
    "remove",
    "store",
    "tape",
    "unplace",
]


class Game(str, Enum):  # noqa: UP042 -- str(Game.X) stays 'Game.X', as in messages
    """The three games of the library.

    ``checkpoint`` is the paper's checkpoint game (place / remove / paint),
    ``inplace`` adds ``move`` (a step that overwrites its input buffer), and
    ``reversible`` is the paper's reversible game (place / unplace).
    """

    CHECKPOINT = "checkpoint"
    INPLACE = "inplace"
    REVERSIBLE = "reversible"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def coerce(cls, game: Game | str) -> Game:
        """Return ``game`` as a :class:`Game`, accepting its string name (anything but a
        Game or a str is a :class:`PebblesTypeError`, an unknown name a
        :class:`PebblesValueError`)."""
        names = ", ".join(repr(g.value) for g in cls)
        if not isinstance(game, (Game, str)):
            raise PebblesTypeError(f"game={game!r:.60} is not a game: it must be a "
                                   f"pebbles.Game or its name, one of {names}")
        try:
            return cls(game)
        except ValueError:
            raise PebblesValueError(
                f"game={game!r} is not a game; use one of {names}"
            ) from None


class MoveKind(IntEnum):
    """Integer codes of the move kinds (also the first column of :func:`encode`)."""

    PLACE = 0
    REMOVE = 1
    PAINT = 2
    MOVE = 3
    UNPLACE = 4
    FORWARD = 5
    STORE = 6
    LOAD = 7
    DISCARD = 8
    TAPE = 9


class Move(NamedTuple):
    """One move: ``kind`` applied to cell ``a`` (``forward`` walks from ``a`` to ``b``).

    A plain tuple, not checked when built (streams of millions are built); the move
    makers (:func:`place`, :func:`forward` ...) check their cells, and the simulator
    every rule. ``str`` writes any move as it stands, for messages; :func:`format_move`
    writes only moves that :func:`parse_move` reads back.

    Examples
    --------
    >>> from pebbles import Move, MoveKind
    >>> str(Move(MoveKind.FORWARD, 0, 7))
    'forward 0 7'
    >>> str(Move(MoveKind.PAINT, 2))
    'paint 2'
    >>> str(Move(99, 1))
    'kind=99 1 -1'
    """

    kind: MoveKind
    a: int
    b: int = -1

    def __str__(self) -> str:
        if isinstance(self.kind, Integral) and not isinstance(self.kind, bool) \
                and self.kind in _NAMES:
            return _text(MoveKind(self.kind), self)
        return f"kind={self.kind!r} {self.a} {self.b}"  # no kind: the fields as they are


def place(i: int) -> Move:
    """``place i``: compute s_i from the pebble on cell i-1."""
    return Move(MoveKind.PLACE, _cell("i", i))


def remove(i: int) -> Move:
    """``remove i``: free the pebble on cell i."""
    return Move(MoveKind.REMOVE, _cell("i", i))


def paint(i: int) -> Move:
    """``paint i``: the backward step i."""
    return Move(MoveKind.PAINT, _cell("i", i))


def move(i: int) -> Move:
    """``move i``: in-place step moving the pebble on i-1 to i."""
    return Move(MoveKind.MOVE, _cell("i", i))


def unplace(i: int) -> Move:
    """``unplace i``: uncompute s_i (reversible game)."""
    return Move(MoveKind.UNPLACE, _cell("i", i))


def forward(i: int, j: int) -> Move:
    """``forward i j``: a working pebble walks from cell i to cell j (j-i steps)."""
    i, j = _cell("i", i), _cell("j", j)
    if j <= i:
        raise PebblesValueError(
            f"forward(i={i}, j={j}) walks nowhere: it needs i < j; a walk of one step "
            f"is forward({i}, {i + 1})")
    return Move(MoveKind.FORWARD, i, j)


def store(i: int) -> Move:
    """``store i``: copy the memory pebble on cell i to disk (two-level game)."""
    return Move(MoveKind.STORE, _cell("i", i))


def load(i: int) -> Move:
    """``load i``: copy the disk pebble on cell i into a new memory pebble."""
    return Move(MoveKind.LOAD, _cell("i", i))


def discard(i: int) -> Move:
    """``discard i``: free the disk pebble on cell i."""
    return Move(MoveKind.DISCARD, _cell("i", i))


def tape(i: int) -> Move:
    """``tape i``: ``place i`` keeping the graph of step i-1 until ``paint i-1``, which
    then replays nothing (kept graphs: :class:`pebbles.ChainCosts` ``graph``)."""
    return Move(MoveKind.TAPE, _cell("i", i))


def _cell(name: str, i: object) -> int:
    """Check that a move's cell is a whole number >= 0 (the board's upper end is the
    simulator's to check)."""
    if isinstance(i, bool) or not isinstance(i, Integral):
        raise PebblesTypeError(
            f"{name}={i!r} must be a cell number (an integer >= 0), got {type(i).__name__}")
    if not 0 <= i <= MAX_CELL:
        raise PebblesValueError(f"{name}={i} must be a cell number from 0 to 2^63 - 1 "
                                f"(cells are counted in int64)")
    return int(i)


#: Largest cell a move may name: moves are played and encoded as int64.
MAX_CELL = 2**63 - 1


def outside_int64(where: str) -> PebblesValueError:
    """The error for the move ``where`` (its index and value) naming a cell past int64."""
    return PebblesValueError(f"{where} names a cell outside int64; cells are 0 to "
                             f"2^63 - 1, so n must be below 2^63")


_NAMES = {k: k.name.lower() for k in MoveKind}
#: The move kinds with their codes, for messages: ``0 (place), 1 (remove), ...``.
_KIND_LIST = ", ".join(f"{int(k)} ({_NAMES[k]})" for k in MoveKind)
_KINDS = {name: k for k, name in _NAMES.items()}


def format_move(m: Move) -> str:
    """Return the text form of a move, e.g. ``'place 3'`` or ``'forward 0 7'``, which
    :func:`parse_move` reads back.

    Parameters
    ----------
    m : Move
        The move (or a ``(kind, a, b)`` tuple).

    Returns
    -------
    str
        The kind's name and the cell (``forward``: both cells).

    Raises
    ------
    PebblesValueError, PebblesTypeError
        If ``m`` is no move that :func:`parse_move` can read back: an unknown kind, a
        cell that is not a whole number in ``0..2^63-1``, a ``forward i j`` without
        ``i < j`` (such as ``Move(MoveKind.FORWARD, 0)``, which has no ``j``).

    Examples
    --------
    >>> from pebbles import Move, MoveKind, format_move
    >>> format_move(Move(MoveKind.FORWARD, 0, 7))
    'forward 0 7'
    >>> format_move(Move(MoveKind.FORWARD, 0))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    pebbles.PebblesValueError: m=Move(kind=<MoveKind.FORWARD: 5>, a=0, b=-1) has no ...
    """
    kind = _kind_of(m)
    a, b = _cells_of(m, kind)
    if kind is MoveKind.FORWARD:
        if not (type(a) is int and type(b) is int and 0 <= a < b <= MAX_CELL):
            a, b = _checked(m, forward, a, b)
        return f"forward {a} {b}"
    if not (type(a) is int and 0 <= a <= MAX_CELL):
        (a,) = _checked(m, _MAKERS[kind], a)
    return f"{_NAMES[kind]} {a}"


def _cells_of(m: Move, kind: MoveKind) -> tuple[object, object]:
    """``m[1]`` and ``m[2]`` (``-1`` where a move other than forward has none), or an
    error saying which cells a move of ``kind`` needs."""
    forward = kind is MoveKind.FORWARD
    try:
        return m[1], m[2] if forward else -1
    except IndexError:
        example = "forward 0 1" if forward else f"{_NAMES[kind]} 1"
        raise PebblesValueError(
            f"m={m!r} is not a move: a {_NAMES[kind]} move needs "
            f"{'i and j' if forward else 'a cell'} after its kind, e.g. the move "
            f"{example!r}") from None


def _kind_of(m: object) -> MoveKind:
    """The kind of the move ``m``, or an error naming the kinds: a
    :class:`PebblesValueError` for an integer that is no kind, a :class:`PebblesTypeError`
    for a kind that is no integer (as :func:`pebbles.simulate`, :func:`pebbles.lower` and
    :func:`encode` refuse them)."""
    try:
        kind = m[0]  # type: ignore[index]
    except (TypeError, IndexError, KeyError):
        kind = None
    if not isinstance(kind, Integral) or isinstance(kind, bool):
        raise PebblesTypeError(f"m={m!r:.60} is not a move: its kind must be an integer, one "
                               f"of {_KIND_LIST}")
    try:
        return MoveKind(kind)
    except ValueError:
        raise PebblesValueError(f"m={m!r:.60} is not a move: its kind must be one of "
                                f"{_KIND_LIST}") from None


def _text(kind: MoveKind, m: Move) -> str:
    """The words of ``m`` as it stands (a bad cell too, for a message)."""
    if kind is MoveKind.FORWARD:
        return f"forward {m[1]} {m[2]}"
    return f"{_NAMES[kind]} {m[1]}"


def _checked(m: object, maker: object, *cells: object) -> tuple[int, ...]:
    """``cells`` as ints once ``maker`` (``place``, ``forward`` ...) takes them, or the
    maker's error naming ``m``, which has no text form."""
    try:
        made = maker(*cells)  # type: ignore[operator]
    except (PebblesValueError, PebblesTypeError) as err:
        raise type(err)(f"m={m!r:.80} has no text form that parse_move reads back: {err}; "
                        f"build moves with pebbles.place(), pebbles.forward(i, j) etc.") from None
    return tuple(made[1:1 + len(cells)])


_MAKERS = {MoveKind.PLACE: place, MoveKind.REMOVE: remove, MoveKind.PAINT: paint,
           MoveKind.MOVE: move, MoveKind.UNPLACE: unplace, MoveKind.FORWARD: forward,
           MoveKind.STORE: store, MoveKind.LOAD: load, MoveKind.DISCARD: discard,
           MoveKind.TAPE: tape}


def parse_move(text: str) -> Move:
    """Parse the text form of a move.

    Parameters
    ----------
    text : str
        A kind's name and its cells, separated by whitespace: ``'place 3'``,
        ``'forward 0 7'`` (as :func:`format_move` writes them).

    Returns
    -------
    Move
        The move.

    Raises
    ------
    PebblesTypeError
        If ``text`` is not a string.
    PebblesValueError
        If ``text`` is not a kind followed by the right number of whole numbers, a cell
        is past ``2^63 - 1``, or a ``forward i j`` has ``i >= j``.

    Examples
    --------
    >>> from pebbles import parse_move
    >>> parse_move("forward 0 7")
    Move(kind=<MoveKind.FORWARD: 5>, a=0, b=7)
    """
    if not isinstance(text, str):
        raise PebblesTypeError(
            f"text={text!r} must be a string such as 'place 3', got {type(text).__name__}"
        )
    words = text.split()
    kind = _KINDS.get(words[0]) if words else None
    arity = 2 if kind is MoveKind.FORWARD else 1
    if kind is None or len(words) != arity + 1 or not all(
        w.isascii() and w.isdigit() for w in words[1:]
    ):
        raise PebblesValueError(
            f"text={text!r} is not a move; write e.g. 'place 3' or 'forward 0 7' "
            f"(kinds: {', '.join(_KINDS)}; cells are whole numbers >= 0)"
        )
    return _MAKERS[kind](*(int(w) for w in words[1:]))


def encode(moves: Iterable[Move] | np.ndarray) -> np.ndarray:
    """Encode a move stream as an ``int64`` array of rows ``(kind, a, b)``.

    The stream is consumed once, into a compact buffer (24 bytes a move). An
    array that is already an encoding is checked and returned as is.

    Parameters
    ----------
    moves : iterable of Move or numpy.ndarray
        A move stream (a schedule, a list of moves), or an encoding to check
        (:func:`as_encoded`).

    Returns
    -------
    numpy.ndarray
        ``int64`` array of shape ``(m, 3)``: kind, first cell, second cell (``-1``
        where a move has none).

    Raises
    ------
    PebblesTypeError
        If ``moves`` is a string, a dict or not iterable, or a move is not three whole numbers.
    PebblesValueError
        If a move names a number outside int64, or (for an array) a row's kind is no
        move kind.

    Examples
    --------
    >>> from pebbles import encode, decode, treeverse
    >>> arr = encode(treeverse(10, 3))
    >>> arr.dtype, arr.shape[1]
    (dtype('int64'), 3)
    >>> list(decode(arr)) == list(treeverse(10, 3))
    True
    """
    if isinstance(moves, np.ndarray):
        return checked_encoding(moves, "moves")
    from ._registry import Schedule  # here: the registry imports this module

    if isinstance(moves, Schedule):  # its fast encoding, refused past the memory
        return moves.encode()
    stream = iter_moves(moves)
    parts = []
    count = 0
    while chunk := list(islice(stream, ENCODE_CHUNK)):
        parts.append(move_columns(chunk, count))
        count += len(chunk)
    out = np.empty((count, 3), dtype=np.int64)
    row = 0
    for cols in parts:
        for j, col in enumerate(cols):
            out[row:row + len(col), j] = np.frombuffer(col, dtype=np.int64)
        row += len(cols[0])
    return as_encoded(out)


def iter_moves(moves: object) -> Iterator:
    """``iter(moves)``, after refusing a str, bytes or dict (whose letters or keys would
    be read as moves) and a non-iterable: the one check of the move consumers.

    >>> from pebbles._moves import iter_moves
    >>> iter_moves({})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    pebbles.PebblesTypeError: moves={} is a dict, not a stream of moves; pass an iterable ...
    """
    if isinstance(moves, (str, bytes, Mapping)):
        what = "a string" if isinstance(moves, (str, bytes)) else f"a {type(moves).__name__}"
        text = " (pebbles.parse_move reads text)" if what == "a string" else ""
        raise PebblesTypeError(
            f"moves={moves!r:.60} is {what}, not a stream of moves; pass an iterable of "
            f"moves such as [pebbles.place(1), pebbles.paint(0)] or a schedule{text}")
    try:
        return iter(moves)  # type: ignore[call-overload]
    except TypeError:
        raise PebblesTypeError(
            f"moves={moves!r:.60} is not a stream of moves: {type(moves).__name__} is not an "
            f"iterable of moves; pass a schedule, an iterable of Move values such as "
            f"[pebbles.place(1)] or an encoded array") from None


#: Moves :func:`encode` takes from a stream at a time.
ENCODE_CHUNK = 8192


def move_columns(chunk: list, index: int) -> tuple[array, array, array]:
    """The kinds, first and second cells of the moves ``chunk`` as int64 arrays
    (``array("q")``); ``index`` is the position of its first move in the stream.

    One pass of C loops a column, bools sought by their type (``array("q")`` takes them
    as 0 and 1, but no cell is a bool: :func:`place` refuses ``True``).

    Raises
    ------
    PebblesTypeError, PebblesValueError
        Naming the first move that is not three whole numbers, or that names a cell
        outside int64 (:func:`refuse_moves`).
    """
    try:
        cols = list(zip(*chunk, strict=True))
        kinds, aa, bb = (array("q", col) for col in cols)
    except (TypeError, ValueError, OverflowError):
        refuse_moves(chunk, index)
    if bool in {*map(type, cols[1]), *map(type, cols[2])}:
        refuse_moves(chunk, index)
    return kinds, aa, bb


def refuse_moves(chunk: list, index: int) -> NoReturn:
    """Name the first move of ``chunk`` (its first the ``index``-th of the stream) that
    is not a Move of whole numbers (a bool is none), or that names a number past int64."""
    bad = next((i for i, m in enumerate(chunk) if not _whole_numbers(m)), None)
    if bad is not None:
        m = chunk[bad]
        hint = (" (text such as 'place 1' is read by pebbles.parse_move)" if isinstance(
            m, str) else "; a cell is a whole number, not a bool" if isinstance(m, tuple)
            and any(isinstance(v, bool) for v in m) else "")
        raise PebblesTypeError(
            f"move #{index + bad} of the stream, {m!r:.40}, is not a Move (kind, a, b); "
            f"build moves with pebbles.place(), pebbles.forward() etc.{hint}")
    bad = next(i for i, m in enumerate(chunk) if not -MAX_CELL - 1 <= min(m) <= max(
        m) <= MAX_CELL)
    raise outside_int64(f"move #{index + bad} of the stream, {chunk[bad]!r:.80},")


def _whole_numbers(m: object) -> bool:
    """Whether ``m`` is three integers, none a bool (of any size: a Move's fields)."""
    try:
        fields = tuple(m)  # type: ignore[call-overload]
    except TypeError:
        return False
    return len(fields) == 3 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in fields)


def as_encoded(encoded: object) -> np.ndarray:
    """Return ``encoded`` as a checked, C-contiguous ``int64`` (m, 3) move array.

    The one validator of encoded schedules: the shape, the integer dtype and the
    move kinds are checked (the rules of the game are :func:`pebbles.simulate`'s).

    Parameters
    ----------
    encoded : array_like
        Integer array of shape ``(m, 3)``, rows ``(kind, a, b)``.

    Returns
    -------
    numpy.ndarray
        ``encoded`` as C-contiguous ``int64`` (the same array where it already is one).

    Raises
    ------
    PebblesTypeError
        If the array is not 2-D with 3 columns of an integer dtype.
    PebblesValueError
        If an unsigned value is past int64, or a row's kind is no move kind.

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import as_encoded
    >>> as_encoded(np.array([[5, 0, 2], [2, 1, -1]])).dtype
    dtype('int64')
    """
    return checked_encoding(encoded, "encoded")


def checked_encoding(encoded: object, name: str) -> np.ndarray:
    """:func:`as_encoded` of the argument ``name`` (its messages name it)."""
    arr = np.asarray(encoded)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype.kind not in "iu":
        raise PebblesTypeError(
            f"{name}={encoded!r:.60} (an array with shape={arr.shape} and dtype={arr.dtype})"
            f" is not a move encoding; pass an integer array of shape (m, 3) made by "
            f"pebbles.encode()")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        k = int(np.flatnonzero((arr > np.iinfo(np.int64).max).any(axis=1))[0])
        raise outside_int64(f"row {k} of the encoding, {arr[k].tolist()},")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    bad = np.flatnonzero((arr[:, 0] < 0) | (arr[:, 0] > max(MoveKind)))
    if bad.size:
        i = int(bad[0])
        raise PebblesValueError(
            f"row {i} of the encoding, {arr[i].tolist()}, has kind={int(arr[i, 0])}, which is "
            f"not a move kind; kinds are {_KIND_LIST}"
        )
    return arr


def decode(encoded: ArrayLike) -> Iterator[Move]:
    """Yield the moves of an array made by :func:`encode`.

    Parameters
    ----------
    encoded : array_like
        Integer array of shape ``(m, 3)``, rows ``(kind, a, b)``.

    Yields
    ------
    Move
        One move a row.

    Raises
    ------
    PebblesTypeError, PebblesValueError
        As :func:`as_encoded`, at the call (before the first move is taken).

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import decode
    >>> [str(m) for m in decode(np.array([[5, 0, 2], [2, 1, -1]]))]
    ['forward 0 2', 'paint 1']
    """
    return _decoded(as_encoded(encoded))


def _decoded(arr: np.ndarray) -> Iterator[Move]:
    """The moves of the checked encoding ``arr``, one a row (:func:`decode`)."""
    kinds = list(MoveKind)
    for kind, a, b in arr.tolist():
        yield Move(kinds[kind], a, b)
