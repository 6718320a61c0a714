"""Baseline schedules of the checkpoint game: store everything, recompute
everything from s_0 (two pebbles, O(n^2) steps), and periodic checkpoints
(Liu & Xu, section 3 and appendix)."""

from __future__ import annotations

from collections.abc import Iterator

from ._moves import Move, MoveKind
from ._validation import check_int

__all__ = ["periodic", "recompute_all", "store_all"]

_PLACE, _REMOVE, _PAINT, _FORWARD = (
    MoveKind.PLACE, MoveKind.REMOVE, MoveKind.PAINT, MoveKind.FORWARD,
)


def _segment(start: int, end: int) -> Iterator[Move]:
    """Store every state of (start, end), then paint end-1..start, freeing as it goes."""
    for i in range(start + 1, end):
        yield Move(_PLACE, i)
    for i in range(end - 1, start, -1):
        yield Move(_PAINT, i)
        yield Move(_REMOVE, i)
    yield Move(_PAINT, start)


def store_all(n: int) -> Iterator[Move]:
    """Yield the store-everything schedule: n - 1 steps, n - 1 pebbles.

    Parameters
    ----------
    n : int
        Number of steps, ``n >= 1``.

    Yields
    ------
    Move
        ``place``, ``paint`` and ``remove`` moves of the checkpoint game.

    Raises
    ------
    PebblesTypeError
        If ``n`` is not an integer.
    PebblesValueError
        If ``n < 1``.

    Examples
    --------
    >>> from pebbles import store_all, simulate
    >>> r = simulate(store_all(10), 10)
    >>> r.forward_steps, r.peak_states
    (9, 9)
    """
    n = check_int("n", n, 1)
    return _segment(0, n)


def recompute_all(n: int) -> Iterator[Move]:
    """Yield the two-pebble schedule: walk from s_0 to every cell, n(n-1)/2 steps.

    Parameters
    ----------
    n : int
        Number of steps, ``n >= 1``.

    Yields
    ------
    Move
        ``forward``, ``paint`` and ``remove`` moves of the checkpoint game.

    Raises
    ------
    PebblesTypeError
        If ``n`` is not an integer.
    PebblesValueError
        If ``n < 1``.

    Examples
    --------
    >>> from pebbles import recompute_all, simulate
    >>> r = simulate(recompute_all(10), 10)
    >>> r.forward_steps, r.peak_states
    (45, 2)
    """
    n = check_int("n", n, 1)
    return _recompute_all(n)


def _recompute_all(n: int) -> Iterator[Move]:
    for i in range(n - 1, 0, -1):
        yield Move(_FORWARD, 0, i)
        yield Move(_PAINT, i)
        yield Move(_REMOVE, i)
    yield Move(_PAINT, 0)


def periodic(n: int, every: int) -> Iterator[Move]:
    """Yield periodic checkpointing: keep s_0, s_m, s_2m, ..., store-all within segments.

    Steps: about 2n; pebbles: about n/m + m.

    Parameters
    ----------
    n : int
        Number of steps, ``n >= 1``.
    every : int
        Period m between kept states, ``>= 1``.

    Yields
    ------
    Move
        ``forward``, ``place``, ``paint`` and ``remove`` moves of the checkpoint game.

    Raises
    ------
    PebblesTypeError
        If ``n`` or ``every`` is not an integer.
    PebblesValueError
        If ``n < 1`` or ``every < 1``.

    Examples
    --------
    >>> from pebbles import periodic, simulate
    >>> r = simulate(periodic(100, 10), 100)
    >>> r.forward_steps, r.peak_states
    (180, 18)
    """
    n = check_int("n", n, 1)
    every = check_int("every", every, 1)
    return _periodic(n, every)


def _periodic(n: int, every: int) -> Iterator[Move]:
    starts = range(0, n, every)  # ranges, not lists: O(1) memory for any n
    for a, b in zip(starts, starts[1:], strict=False):
        yield Move(_FORWARD, a, b)
    ends = range(every, n + every, every)  # starts[1:] and then n
    for a, b in zip(reversed(starts), reversed(ends), strict=True):
        b = min(b, n)
        yield from _segment(a, b)
        if a > 0:
            yield Move(_REMOVE, a)
