"""Two-level schedules for stores written in the background.

The dynamic programme of :mod:`pebbles._twolevel` (disk revolve / H-Revolve for
this library's games) prices every ``store`` at its full ``write_cost``, as if
the computation waited for each write. The executors write with a background
thread (:class:`pebbles.DiskStore`): a store hands the state over and the steps
go on while it is written, so a write costs the computation nothing as long as
the writer keeps up. This module

* times a two-level stream under that model (:func:`background_time`): one clock
  for the computation (a forward step costs 1, a backward step
  ``backward_cost``, a load ``read_cost``, a store nothing) and one writer that
  takes ``write_cost`` per state, one state at a time in the order stored; the
  computation waits when ``queue`` states are already waiting or being written,
  and before it loads or discards a state that is not written yet;
* picks, among the optimal schedules of :func:`pebbles.two_level` for
  write prices ``write_cost * f`` (``f`` in :data:`PRICES`), the one with the least
  background time (:func:`background_two_level`). A lower price buys more writes
  and fewer forward steps, which pays while the writer hides them.

The choice is exact for the priced programme only; under the background model it
is the best of the candidates tried, not a proven optimum.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from functools import lru_cache

from ._moves import Move, MoveKind, iter_moves
from ._twolevel import _check_args, _check_cost, two_level
from ._validation import check_int

__all__ = ["PRICES", "BackgroundClock", "background_time", "background_two_level"]

#: Write prices :func:`background_two_level` tries, as fractions of ``write_cost``.
PRICES = (1.0, 0.75, 0.5, 0.375, 0.25, 0.125)

_STEPS = {MoveKind.PLACE: 1, MoveKind.MOVE: 1}
_TIMED = (MoveKind.FORWARD, MoveKind.PAINT, MoveKind.STORE, MoveKind.LOAD, MoveKind.DISCARD)


def background_time(moves: Iterable[Move], *, write_cost: float, read_cost: float,
                    backward_cost: float = 1.0, queue: int = 2) -> float:
    """Time of a two-level stream whose stores are written in the background.

    Parameters
    ----------
    moves : iterable of Move
        A legal two-level stream (check it with :func:`pebbles.simulate`).
    write_cost, read_cost : float
        Time of writing one state (on the writer) and of reading one (on the
        computation), in forward steps.
    backward_cost : float
        Time of one ``paint`` (a backward step), in forward steps.
    queue : int
        States the writer holds at most, the one being written included.

    Raises
    ------
    PebblesTypeError
        If ``moves`` is a str, a dict or not iterable, or a cost or ``queue`` is not a
        number.
    PebblesValueError
        If a cost is negative or not finite, or ``queue < 1``.

    Examples
    --------
    Five steps, ``s_1`` and ``s_3`` stored on the way: writes of 2 steps hide behind
    the walk and the load at the end finds ``s_3`` written; writes of 6 do not.

    >>> from pebbles import Move, MoveKind as K, background_time
    >>> moves = [Move(K.FORWARD, 0, 1), Move(K.STORE, 1), Move(K.FORWARD, 1, 3),
    ...          Move(K.STORE, 3), Move(K.FORWARD, 3, 5), Move(K.LOAD, 3)]
    >>> background_time(moves, write_cost=2, read_cost=0.5)   # 5 steps + the load
    5.5
    >>> background_time(moves, write_cost=6, read_cost=0.5)   # the load waits for s_3
    13.5
    """
    clock = BackgroundClock(write_cost=write_cost, read_cost=read_cost,
                            backward_cost=backward_cost, queue=queue)
    deque(clock.timed(iter_moves(moves)), maxlen=0)
    return clock.time


class BackgroundClock:
    """:func:`background_time` of a stream as another consumer walks it.

    ``clock.timed(moves)`` yields the moves unchanged and times each on the way, so
    that the simulator checking a stream (``pebbles.simulate(clock.timed(moves),
    ...)``) also gives its background time, :attr:`time`, in the same walk: a stream
    made on the fly (a two-level schedule's dynamic programme) is made once. The
    parameters are :func:`background_time`'s.

    Attributes
    ----------
    time : float
        The background time of the moves yielded so far (the whole stream's once the
        consumer has taken them all).

    Examples
    --------
    >>> from pebbles import Move, MoveKind as K, simulate
    >>> from pebbles._background import BackgroundClock
    >>> moves = [Move(K.FORWARD, 0, 1), Move(K.STORE, 1), Move(K.REMOVE, 1),
    ...          Move(K.LOAD, 1), Move(K.PAINT, 1), Move(K.PAINT, 0)]
    >>> clock = BackgroundClock(write_cost=3, read_cost=0.5, backward_cost=0)
    >>> simulate(clock.timed(moves), 2, budget=1).forward_steps, clock.time
    (1, 4.5)
    """

    def __init__(self, *, write_cost: float, read_cost: float, backward_cost: float = 1.0,
                 queue: int = 2) -> None:
        self._model = _check_model(write_cost, read_cost, backward_cost, queue)
        self.time = 0.0

    def timed(self, moves: Iterable[Move]) -> Iterator[Move]:
        """Yield ``moves`` as they are, timing each on this clock: from 0 once the first
        move is taken, so :attr:`time` is that of the stream being taken (one at a time)."""
        write_cost, read_cost, backward_cost, queue = self._model
        forward, paint, store, load, discard = _TIMED  # locals: an enum's members are slow
        now, free = 0.0, 0.0           # the computation's clock; when the writer is next idle
        self.time = now
        pending: deque[float] = deque()  # finish times of the writes not yet done
        done: dict[int, float] = {}
        for move in moves:
            kind, a, b = move
            if kind == forward:
                now += b - a
            elif kind == paint:
                now += backward_cost
            elif kind == store:
                while pending and pending[0] <= now:
                    pending.popleft()
                if len(pending) >= queue:
                    now = pending.popleft()
                free = max(free, now) + write_cost
                pending.append(free)
                done[a] = free
            elif kind == load:
                now = max(now, done.get(a, 0.0)) + read_cost
            elif kind == discard:
                now = max(now, done.pop(a, 0.0))
            else:
                now += _STEPS.get(kind, 0)
            self.time = now
            yield move


def background_two_level(n: int, budget: int, disk_budget: int | float | None = None, *,
                         write_cost: float, read_cost: float, inplace: bool = False,
                         backward_cost: float = 1.0, queue: int = 2) -> Iterator[Move]:
    """Yield the optimal two-level schedule, among those for the write prices of
    :data:`PRICES`, with the least :func:`background_time`.

    Parameters are those of :func:`pebbles.two_level` and
    :func:`background_time`. Each candidate is made and timed once (``len(PRICES)``
    dynamic programmes and walks of the stream); the price chosen is remembered for
    the same arguments, so making the schedule again costs one programme.

    Examples
    --------
    Writes of 60 forward steps, 2000 steps, 4 memory states: the writer hides most of
    them behind the walks, so the optimum of a lower price (more writes, fewer steps)
    is faster:

    >>> from pebbles import background_time, background_two_level, simulate, two_level
    >>> priced = list(two_level(2000, 4, write_cost=60, read_cost=1.2, inplace=True))
    >>> chosen = list(background_two_level(2000, 4, write_cost=60, read_cost=1.2,
    ...                                    inplace=True))
    >>> steps = [simulate(m, 2000, "inplace", 4).forward_steps for m in (priced, chosen)]
    >>> steps[1] < steps[0]
    True
    >>> times = [background_time(m, write_cost=60, read_cost=1.2) for m in (priced, chosen)]
    >>> times[1] < times[0]
    True
    """
    n, s, disk, wc, rc = _check_args(n, budget, disk_budget, write_cost, read_cost, inplace)
    _, _, backward_cost, queue = _check_model(wc, rc, backward_cost, queue)
    price = _best_price(n, s, disk, wc, rc, bool(inplace), backward_cost, queue)
    return two_level(n, s, disk, write_cost=price, read_cost=rc, inplace=inplace)


@lru_cache(maxsize=64)
def _best_price(n: int, s: int, disk: int | None, wc: float, rc: float, inplace: bool,
                backward_cost: float, queue: int) -> float:
    """The write price of :func:`background_two_level`'s choice (ties: the higher price,
    the fewer writes); cached, so that a schedule made again costs one programme."""
    def timed(price: float) -> float:
        moves = two_level(n, s, disk, write_cost=price, read_cost=rc, inplace=inplace)
        return background_time(moves, write_cost=wc, read_cost=rc,
                               backward_cost=backward_cost, queue=queue)

    return min((wc * f for f in PRICES), key=timed)


def _check_model(write_cost: object, read_cost: object, backward_cost: object,
                 queue: object) -> tuple[float, float, float, int]:
    """The background model's costs (numbers >= 0) and queue (a whole number >= 1)."""
    return (_check_cost("write_cost", write_cost), _check_cost("read_cost", read_cost),
            _check_cost("backward_cost", backward_cost), check_int("queue", queue, 1))
