"""Fast encodings of recursive reversible-game schedules (Bennett's Algorithm 2, Liu & Xu;
the reversible optimum, Knill 1995) and of their mirrored gradient schedules.

Both schedules are trees of sub-schedules whose moves depend only on the
sub-schedule's shape (its length and pebbles), not on the cell where it starts,
and whose inverse (undoing it) is its moves reversed with ``place`` and
``unplace`` swapped. :func:`assemble` writes the encoded stream (:func:`pebbles.encode`'s
``(kind, a, b)`` rows) into one preallocated array: the sub-schedules of at most
:data:`SMALL` moves are encoded once, then copied shifted to every place they occur,
so Python runs once per large node instead of once per move.
:func:`mirror_encoded` is :func:`pebbles.reversible_gradient` on such an array.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np

from ._errors import IllegalMoveError
from ._moves import MoveKind
from ._rules import END_CODE

__all__ = ["SMALL", "Children", "assemble", "mirror_encoded"]

#: Sub-schedules of at most this many moves are encoded once and copied.
SMALL = 4096

#: A node's parts in order: (cell offset, child key, played inverted), or None for
#: a single ``place 1``.
Children = Sequence[tuple[int, Hashable, bool]] | None

_PLACE, _UNPLACE, _REMOVE, _PAINT = (int(MoveKind.PLACE), int(MoveKind.UNPLACE),
                                     int(MoveKind.REMOVE), int(MoveKind.PAINT))


class _Assembler:
    def __init__(self, expand: Callable[[Hashable], Children]) -> None:
        self.expand = expand
        self.cache: dict[tuple[Hashable, bool], np.ndarray] = {}

    def template(self, key: Hashable, inverse: bool) -> np.ndarray:
        """The encoded moves of a small node, started at cell 0 (made once)."""
        hit = self.cache.get((key, inverse))
        if hit is None:
            if inverse:
                hit = self.template(key, False)[::-1].copy()
                hit[:, 0] = np.where(hit[:, 0] == _PLACE, _UNPLACE, _PLACE)
            else:
                hit = np.array(self.moves(key), dtype=np.int64).reshape(-1, 3)
            self.cache[key, inverse] = hit
        return hit

    def moves(self, key: Hashable) -> list[int]:
        """The node's moves one by one (a stack, not recursion: the trees can be deep)."""
        flat: list[int] = []
        stack = [(key, False, 0)]
        while stack:
            node, inverse, base = stack.pop()
            parts = self.expand(node)
            if parts is None:
                flat += (_UNPLACE if inverse else _PLACE, base + 1, -1)
            else:
                stack += _pushed(parts, inverse, base)
        return flat


def _pushed(parts: Sequence[tuple[int, Hashable, bool]], inverse: bool,
            base: int) -> list[tuple[Hashable, bool, int]]:
    """Stack entries that play ``parts`` (inverted: in reverse order, each inverted)."""
    order = parts if inverse else parts[::-1]
    return [(child, inv != inverse, base + off) for off, child, inv in order]


def assemble(root: Hashable, expand: Callable[[Hashable], Children],
             size: Callable[[Hashable], int]) -> np.ndarray:
    """The encoded ``int64`` (m, 3) moves of the tree ``root``, started at cell 0.

    ``expand(key)`` gives a node's parts, ``size(key)`` its number of moves (a
    node's size is the sum of its parts'; a leaf is one ``place``).

    Examples
    --------
    >>> from pebbles._encoded import assemble
    >>> # a clean move of 2 cells: place 1, place 2, unplace 1
    >>> parts = {2: [(0, 1, False), (1, 1, False), (0, 1, True)], 1: None}
    >>> assemble(2, parts.get, {2: 3, 1: 1}.get)[:, :2].tolist()
    [[0, 1], [0, 2], [4, 1]]
    """
    out = np.empty((size(root), 3), dtype=np.int64)
    asm, pos = _Assembler(expand), 0
    stack = [(root, False, 0)]
    while stack:
        key, inverse, base = stack.pop()
        m = size(key)
        if m <= SMALL:
            out[pos:pos + m] = asm.template(key, inverse)
            out[pos:pos + m, 1] += base
            pos += m
        else:
            parts = expand(key)
            assert parts is not None, "a leaf is one move"
            stack += _pushed(parts, inverse, base)
    assert pos == len(out), "the sizes do not add up"
    return out


def mirror_encoded(run: np.ndarray, n: int) -> np.ndarray:
    """:func:`pebbles.reversible_gradient` of an encoded reversible run, vectorised.

    The run, with ``unplace`` as ``remove``, then the run in reverse order, where an
    ``unplace i`` becomes ``place i`` and a ``place i`` becomes ``remove i``, preceded
    by ``paint i-1`` when cells i..n are painted and i-1 is not.

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import bennett_gradient, bennett, encode
    >>> from pebbles._encoded import mirror_encoded
    >>> run = encode(bennett(16, 2, uncompute=False))
    >>> np.array_equal(mirror_encoded(run, 16), encode(bennett_gradient(16, 2)))
    True
    """
    m = len(run)
    rev = run[::-1]
    paints = _paint_rows(rev[:, 1], rev[:, 0] == _PLACE, n)  # increasing rows of rev
    out = np.empty((2 * m + n, 3), dtype=np.int64)
    out[:m] = run
    kinds = out[:m, 0]
    kinds[kinds == _UNPLACE] = _REMOVE
    back = out[m:]
    rows = np.zeros(m, dtype=np.int64)
    rows[paints] = 1
    np.cumsum(rows, out=rows)
    rows += np.arange(m, dtype=np.int64)  # a row of rev moves down by the paints before it
    back[rows] = rev
    kinds = back[:, 0]
    kinds[rows] = np.where(kinds[rows] == _PLACE, _REMOVE, _PLACE)  # unplace -> place
    painted = rows[paints] - 1
    back[painted, 0] = _PAINT
    back[painted, 1] = rev[paints, 1] - 1
    back[painted, 2] = -1
    return out


def _paint_rows(cells: np.ndarray, places: np.ndarray, n: int) -> np.ndarray:
    """Rows of the reversed run that paint: the first ``place n``, then after each
    painting ``place c`` the first ``place c - 1`` that follows it."""
    pos = np.flatnonzero(places)
    at = cells[pos]
    span = len(pos) + 1
    keys = np.sort(at * span + np.arange(len(pos)))  # by cell, then by row
    nxt = np.searchsorted(keys, (at - 1) * span + np.arange(1, len(pos) + 1))
    hit = keys[np.minimum(nxt, len(keys) - 1)]
    follow = np.where((nxt < len(keys)) & (hit // span == at - 1), hit % span, -1)
    first = int(np.searchsorted(keys, n * span))
    idx = int(keys[first] % span) if first < len(keys) and keys[first] // span == n else -1
    chain = np.empty(n, dtype=np.int64)
    for c in range(n):
        if idx < 0:
            raise IllegalMoveError(
                -1, None, f"the mirror run left cells 0..{n - c - 1} unpainted; "
                f"the reversible stream must end with a pebble on cell {n}", END_CODE)
        chain[c] = idx
        idx = follow.item(idx)
    return pos[chain]
