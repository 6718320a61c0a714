"""Bennett's k-ary compute/uncompute schedule (Liu & Xu, Algorithm 2) and the
gradient schedules of reversible runs (paper-notes section 4).

``bennett(n, k)`` yields Algorithm 2's moves of the reversible game: split the
segment into k' = ceil(L / l) blocks of length l = ceil(L / k), compute them
one after another, then uncompute blocks k'-1..1 in reverse order. For n = k^l
it takes (2k - 1)^l steps with l(k - 1) + 1 pebbles (paper eq. (5)). Without the
top-level uncomputation the stream stops when cell n is first reached.

A reversible run turns into a gradient schedule of the checkpoint game by
playing it forward (an uncomputation frees memory: ``remove``) and then in
mirror order (an uncomputation becomes a recomputation ``place``; undoing a
placement of cell i becomes ``paint i-1`` the first time cell i's gradient is
available, else ``remove i``). The board of the mirror run is the reversible
board in reverse, so the peak is the reversible run's peak.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from functools import cache

import numpy as np

from ._encoded import Children, assemble, mirror_encoded
from ._errors import IllegalMoveError
from ._moves import Move, MoveKind
from ._rules import END_CODE
from ._validation import check_bool, check_int

__all__ = [
    "bennett_steps",
    "best_bennett","bennett", "bennett_gradient", "bennett_pebbles", "reversible_gradient"]

_PLACE, _UNPLACE, _REMOVE, _PAINT = (
    MoveKind.PLACE, MoveKind.UNPLACE, MoveKind.REMOVE, MoveKind.PAINT,
)


def _sizes(k: int, length: int) -> tuple[int, int, int]:
    """Algorithm 2's split of ``length`` cells into at most ``k`` blocks: ``(count, l,
    last)``, i.e. ``count`` blocks of ``l = ceil(length / k)`` cells, then one of
    ``last`` cells (``1 <= last <= l``)."""
    l = -(-length // k)
    count = -(-length // l) - 1
    return count, l, length - count * l


def _blocks(k: int, i: int, length: int) -> list[tuple[int, int]]:
    count, l, last = _sizes(k, length)
    return [(i + j * l, l) for j in range(count)] + [(i + count * l, last)]


def _bennett(k: int, i: int, length: int, inverse: bool) -> Iterator[Move]:
    """Algorithm 2 on block (i, length), or its inverse ~bennett (reversed, undone)."""
    if length == 1:
        yield Move(_UNPLACE if inverse else _PLACE, i + 1)
        return
    blocks = _blocks(k, i, length)
    first, second = (blocks[:-1], blocks[::-1]) if inverse else (blocks, blocks[-2::-1])
    for b in first:
        yield from _bennett(k, b[0], b[1], False)
    for b in second:
        yield from _bennett(k, b[0], b[1], True)


def _reach(k: int, i: int, length: int) -> Iterator[Move]:
    """Algorithm 2 stopped when cell i+length is first reached."""
    while length > 1:
        blocks = _blocks(k, i, length)
        for b in blocks[:-1]:
            yield from _bennett(k, b[0], b[1], False)
        i, length = blocks[-1]
    yield Move(_PLACE, i + 1)


def _reach_reversed(k: int, i: int, length: int) -> Iterator[Move]:
    """The moves of :func:`_reach` in reverse order (each one as it was played)."""
    if length == 1:
        yield Move(_PLACE, i + 1)
        return
    blocks = _blocks(k, i, length)
    yield from _reach_reversed(k, *blocks[-1])
    for b in blocks[-2::-1]:
        yield from _swap(_bennett(k, b[0], b[1], True))


def _swap(moves: Iterable[Move]) -> Iterator[Move]:
    for m in moves:
        yield Move(_PLACE if m[0] == _UNPLACE else _UNPLACE, m[1])


def _check_nk(n: int, k: int) -> tuple[int, int]:
    return check_int("n", n, 1), check_int("k", k, 2)


def bennett(n: int, k: int = 2, *, uncompute: bool = True) -> Iterator[Move]:
    """Yield Algorithm 2 (Bennett's k-ary schedule) for the reversible game.

    Parameters
    ----------
    n : int
        Target cell, ``n >= 1``.
    k : int
        Number of blocks per level, ``k >= 2``.
    uncompute : bool
        Keep the top-level uncomputation (default). Without it the stream ends
        when cell n is first reached.

    Examples
    --------
    >>> from pebbles import bennett, simulate
    >>> r = simulate(bennett(16, 2), 16, "reversible")
    >>> r.forward_steps, r.first_reach_n, r.peak_states
    (81, 41, 5)
    """
    n, k = _check_nk(n, k)
    if check_bool("uncompute", uncompute):
        return _bennett(k, 0, n, False)
    return _reach(k, 0, n)


def bennett_encoded(n: int, k: int = 2, *, uncompute: bool = True) -> np.ndarray:
    """The moves of :func:`bennett` as an encoded ``int64`` (m, 3) array, fast.

    Equal to ``encode(bennett(n, k, uncompute=uncompute))``: a block's moves depend
    only on its length, so each small block is encoded once and copied shifted
    (:func:`pebbles._encoded.assemble`; about 100x faster at n = 10^5).

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import bennett, encode
    >>> from pebbles._bennett import bennett_encoded
    >>> np.array_equal(bennett_encoded(1000, 3), encode(bennett(1000, 3)))
    True
    """
    n, k = _check_nk(n, k)
    uncompute = check_bool("uncompute", uncompute)
    return assemble((n, uncompute), lambda key: _parts(k, *key),
                    lambda key: _bennett_cost(k, *key))


def _parts(k: int, length: int, uncompute: bool) -> Children:
    """The blocks of Algorithm 2 on ``length`` cells: (offset, (length, uncompute),
    inverse); the reach run (no uncomputation) ends with the reach run of its last block."""
    if length == 1:
        return None
    blocks = _blocks(k, 0, length)
    done = [(i, (l, True), False) for i, l in blocks[:-1]]
    last = blocks[-1]
    if not uncompute:
        return [*done, (last[0], (last[1], False), False)]
    return [*done, (last[0], (last[1], True), False),
            *((i, (l, True), True) for i, l in blocks[-2::-1])]


def bennett_gradient_encoded(n: int, k: int = 2) -> np.ndarray:
    """The moves of :func:`bennett_gradient` as an encoded ``int64`` (m, 3) array, fast.

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import bennett_gradient, encode
    >>> from pebbles._bennett import bennett_gradient_encoded
    >>> np.array_equal(bennett_gradient_encoded(100, 3), encode(bennett_gradient(100, 3)))
    True
    """
    n, k = _check_nk(n, k)
    return mirror_encoded(bennett_encoded(n, k, uncompute=False), n)


def bennett_pebbles(n: int, k: int = 2, *, uncompute: bool = True) -> int:
    """Peak pebbles of :func:`bennett`, from the recursion (no stream is made).

    Equals l(k - 1) + 1 for n = k^l (paper eq. (5)).

    Parameters
    ----------
    n : int
        Target cell, ``n >= 1``.
    k : int, default 2
        Number of blocks per level, ``k >= 2``.
    uncompute : bool, default True
        Count the top-level uncomputation (else the run ends when cell n is first
        reached).

    Returns
    -------
    int
        Most pebbles on the board at once, cell 0 not counted.

    Raises
    ------
    PebblesTypeError
        If ``n`` or ``k`` is not an integer, or ``uncompute`` not a bool.
    PebblesValueError
        If ``n < 1`` or ``k < 2``.

    Examples
    --------
    >>> from pebbles import bennett_pebbles
    >>> bennett_pebbles(16, 2), bennett_pebbles(27, 3)
    (5, 7)
    """
    n, k = _check_nk(n, k)
    return _peak(k, n, check_bool("uncompute", uncompute))


@cache
def _peak(k: int, length: int, uncompute: bool) -> int:
    # two block lengths a level: O(log n) distinct calls, O(1) work each
    if length == 1:
        return 1
    count, l, last = _sizes(k, length)
    # Computing block j holds the end pebbles of blocks 0..j-1; uncomputing
    # block j (j < count) also holds the end pebble of the last block. The
    # first count blocks have one size: the latest of them is the largest.
    peak = count + _peak(k, last, uncompute)
    if count:
        peak = max(peak, count - 1 + (1 if uncompute else 0) + _peak(k, l, True))
    return peak


def bennett_gradient(n: int, k: int = 2) -> Iterator[Move]:
    """Yield the checkpoint-game gradient schedule of Bennett's algorithm.

    The reversible run (:func:`bennett` without top-level uncomputation) is
    played forward and then mirrored with paints; both halves are generated
    recursively, so memory stays O(k log n).

    Parameters
    ----------
    n : int
        Target cell, ``n >= 1``.
    k : int, default 2
        Number of blocks per level, ``k >= 2``.

    Yields
    ------
    Move
        ``place``, ``remove`` and ``paint`` moves of the checkpoint game.

    Raises
    ------
    PebblesTypeError
        If ``n`` or ``k`` is not an integer.
    PebblesValueError
        If ``n < 1`` or ``k < 2``.

    Examples
    --------
    >>> from pebbles import bennett_gradient, simulate
    >>> r = simulate(bennett_gradient(16, 2), 16, "checkpoint")
    >>> r.backward_steps, r.peak_states
    (16, 5)
    """
    n, k = _check_nk(n, k)
    return _mirror(_reach(k, 0, n), _reach_reversed(k, 0, n), n)


def reversible_gradient(moves: Iterable[Move], n: int) -> Iterator[Move]:
    """Turn any reversible-game stream ending with a pebble on n into a gradient schedule.

    The stream is buffered (24 bytes a move) to be replayed in mirror order.

    Parameters
    ----------
    moves : iterable of Move
        A reversible-game stream of ``place`` and ``unplace`` moves that ends with a
        pebble on cell ``n``; read lazily, as the result is iterated.
    n : int
        Number of steps, ``n >= 1``.

    Yields
    ------
    Move
        ``place``, ``remove`` and ``paint`` moves of the checkpoint game: ``moves``
        with ``unplace`` as ``remove``, then the mirror run with paints.

    Raises
    ------
    PebblesTypeError
        If ``n`` is not an integer.
    PebblesValueError
        If ``n < 1``.
    IllegalMoveError
        While iterating: if ``moves`` holds a move other than ``place`` or ``unplace``,
        or the mirror run cannot paint every cell.

    Examples
    --------
    >>> from pebbles import reversible_gradient, reversible_optimal, simulate
    >>> g = reversible_gradient(reversible_optimal(16, 5), 16)
    >>> simulate(g, 16, "checkpoint").forward_steps
    29
    """
    n = check_int("n", n, 1)
    buf = array("q")

    def recorded() -> Iterator[Move]:
        for m in moves:
            buf.extend((m[0], m[1]))
            yield m

    def replayed() -> Iterator[Move]:
        for t in range(len(buf) - 2, -1, -2):
            yield Move(MoveKind(buf[t]), buf[t + 1])

    return _mirror(recorded(), replayed(), n)


def _mirror(run: Iterable[Move], reversed_run: Iterable[Move], n: int) -> Iterator[Move]:
    for m in run:
        if m[0] == _PLACE:
            yield m
        elif m[0] == _UNPLACE:
            yield Move(_REMOVE, m[1])
        else:
            raise IllegalMoveError(-1, m, "a reversible run has only place and unplace moves",
                                   "game")
    painted_from = n
    for m in reversed_run:
        i = m[1]
        if m[0] == _UNPLACE:
            yield Move(_PLACE, i)
            continue
        if i == painted_from:
            painted_from -= 1
            yield Move(_PAINT, i - 1)
        yield Move(_REMOVE, i)
    if painted_from != 0:
        raise IllegalMoveError(
            -1, None, f"the mirror run left cells 0..{painted_from - 1} unpainted; "
            f"the reversible stream must end with a pebble on cell {n}", END_CODE,
        )


@cache
def _bennett_cost(k: int, length: int, uncompute: bool) -> int:
    if length == 1:
        return 1
    count, l, last = _sizes(k, length)
    done = count * _bennett_cost(k, l, True) if count else 0
    return done + _bennett_cost(k, last, uncompute) + (done if uncompute else 0)


def bennett_steps(n: int, k: int = 2, *, uncompute: bool = True) -> int:
    """Steps of :func:`pebbles.bennett` from the recursion (no stream is made).

    Equals (2k - 1)^l for n = k^l with the top-level uncompute (paper eq. (5)).

    Parameters
    ----------
    n : int
        Target cell, ``n >= 1``.
    k : int, default 2
        Number of blocks per level, ``k >= 2``.
    uncompute : bool, default True
        Count the top-level uncomputation (else the run ends when cell n is first
        reached).

    Returns
    -------
    int
        Number of ``place`` and ``unplace`` moves.

    Raises
    ------
    PebblesTypeError
        If ``n`` or ``k`` is not an integer, or ``uncompute`` not a bool.
    PebblesValueError
        If ``n < 1`` or ``k < 2``.

    Examples
    --------
    >>> from pebbles import bennett_steps
    >>> bennett_steps(16, 2), bennett_steps(16, 2, uncompute=False)
    (81, 41)
    """
    n, k = _check_nk(n, k)
    return _bennett_cost(k, n, check_bool("uncompute", uncompute))


def best_bennett(n: int, budget: int) -> tuple[int, int] | None:
    """(k, steps) of the cheapest Bennett reach run within ``budget`` (k <= 64), or None."""
    best = None
    for k in range(2, max(2, min(n, 64)) + 1):
        if bennett_pebbles(n, k, uncompute=False) <= budget:
            steps = bennett_steps(n, k, uncompute=False)
            if best is None or steps < best[1]:
                best = (k, steps)
    return best
