"""Lowering: a checked schedule as a program over a fixed number of state slots.

Every executor of a checkpoint-game or in-place-game schedule (Liu & Xu,
appendix; Griewank's Revolve setting) needs the same two things: the moves
checked against the rules, and each stored state given a place in memory. This
module does both in one pass of the simulator's rule loop
(:func:`pebbles._rules.play`, with slot assignment switched on) and returns a
compact integer program that the generic executor, the Numba and GPU
executors and the JAX and PyTorch adapters all run:

==========  ===============================================================
op          row ``(op, src, dst, first, count)``
==========  ===============================================================
OP_STEP     steps ``first .. first+count-1`` from the state in slot ``src``,
            leaving ``s_{first+count}`` in slot ``dst`` (``src == dst``: in
            place; otherwise the first step writes into ``dst``, the rest in
            place there, and ``src`` keeps its state)
OP_SEED     ``s_n`` is in slot ``src``: evaluate the loss, seed ``dL/ds_n``
            (``count`` is 1 when ``s_n`` was computed only for this: the
            extra step just before, into a scratch slot; else 0)
OP_PAINT    backward step ``first`` from ``s_first`` in slot ``src``
OP_STORE    copy slot ``src`` to the disk copy of cell ``first``
OP_LOAD     copy the disk copy of cell ``first`` into slot ``dst``
OP_DISCARD  delete the disk copy of cell ``first``
OP_FREE     the state in slot ``src`` (of cell ``first``) is no longer needed
            (only with ``frees=True``)
OP_TAPE     as OP_STEP with ``count == 1`` (a ``tape`` move), and the graph of
            step ``first`` is kept for its OP_PAINT, which then replays
            nothing (an executor that cannot keep graphs runs it as OP_STEP)
==========  ===============================================================

Slot 0 holds ``s_0`` and is never written. Free slots are reused last-freed
first, so the slots used are exactly the most states held at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _rules as R
from ._errors import PebblesTypeError, PebblesValueError
from ._moves import Game, Move, MoveKind, encode
from ._simulator import _Game, use_compiled
from ._validation import check_bool, check_int

if TYPE_CHECKING:
    from ._registry import Schedule

__all__ = ["OP_DISCARD", "OP_FREE", "OP_LOAD", "OP_PAINT", "OP_SEED", "OP_STEP", "OP_STORE",
           "OP_TAPE", "SlotProgram", "lower"]

OP_STEP, OP_SEED, OP_PAINT = R.OP_STEP, R.OP_SEED, R.OP_PAINT
OP_STORE, OP_LOAD, OP_DISCARD, OP_FREE = R.OP_STORE, R.OP_LOAD, R.OP_DISCARD, R.OP_FREE
OP_TAPE = R.OP_TAPE


@dataclass(frozen=True, slots=True, eq=False)
class SlotProgram:
    """A checked schedule as slot operations (see :func:`lower`).

    Attributes
    ----------
    ops : ndarray, int64, shape (m, 5)
        Rows ``(op, src, dst, first, count)``; see the module's table.
    n : int
        Number of steps.
    game : Game
        The game the schedule was checked in.
    nslots : int
        Slots needed, slot 0 (``s_0``) included.
    forward_steps : int
        Step calls of OP_STEP and OP_TAPE rows, the one that computes ``s_n``
        for the seed included (an OP_PAINT not served by an OP_TAPE replays
        one more).
    backward_steps : int
        Backward steps (paints).
    peak_states : int
        Most slots in use at once besides slot 0 (``nslots - 1`` unless
        ``slots`` was given larger).
    writes, reads : int
        Disk writes and reads (two-level schedules).
    """

    ops: np.ndarray
    n: int
    game: Game
    nslots: int
    forward_steps: int
    backward_steps: int
    peak_states: int
    writes: int = 0
    reads: int = 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SlotProgram):
            return NotImplemented
        return self._scalars() == other._scalars() and np.array_equal(self.ops, other.ops)

    def __hash__(self) -> int:
        return hash((self._scalars(), self.ops.tobytes()))

    def _scalars(self) -> tuple[Any, ...]:
        """Every field but ``ops`` (an array, compared and hashed by value)."""
        return (self.n, self.game, self.nslots, self.forward_steps, self.backward_steps,
                self.peak_states, self.writes, self.reads)


def lower(
    schedule: Schedule | Iterable[Move] | np.ndarray,
    n: int | None = None,
    *,
    game: Game | str | None = None,
    slots: int | None = None,
    frees: bool = False,
) -> SlotProgram:
    """Check a checkpoint-game or in-place-game schedule and assign its states to slots.

    Parameters
    ----------
    schedule : Schedule, iterable of Move, or encoded (m, 3) int64 array
        A value of :func:`pebbles.schedule` carries its own ``n`` and game.
    n : int, optional
        Number of steps (needed unless ``schedule`` is a Schedule).
    game : {'checkpoint', 'inplace'}, optional
        Default: the Schedule's game; for plain moves, ``inplace`` if a
        ``move`` occurs, else ``checkpoint``.
    slots : int, optional
        Slots to use, ``s_0`` included; default exactly as many as needed.
    frees : bool
        Emit ``OP_FREE`` when a state is dropped (for executors that release
        memory rather than reuse slots).

    Returns
    -------
    SlotProgram

    Raises
    ------
    IllegalMoveError
        A move breaks a rule, or the slots do not suffice: the error names the
        move's index, the move and the rule.

    Examples
    --------
    >>> import pebbles
    >>> p = pebbles.lower(pebbles.schedule("treeverse", 20, budget=4))
    >>> p.nslots, p.forward_steps, p.backward_steps, p.peak_states
    (6, 41, 20, 5)
    >>> p.ops[:2].tolist()  # walk 0 -> 5 into slot 1, then 5 -> 13 into slot 2
    [[0, 0, 1, 0, 5], [0, 1, 2, 5, 8]]
    """
    arr, n, game = _resolve(schedule, n, game)
    budget, disk = _limits(schedule)
    frees = check_bool("frees", frees)
    if slots is not None:
        slots = check_int("slots", slots, 2)
    cap = n + 1 if slots is None else slots - 1
    compiled = use_compiled(len(arr), work=5)
    g = _Game(n, game, budget, disk, None, compiled)
    g.lower = 2 if frees else 1
    slot = np.full(n + 1, -1, dtype=np.int64)
    slot[0] = 0
    free = np.arange(cap, 0, -1, dtype=np.int64)
    g.st[R.ST_NFREE] = cap
    size = 5 * (len(arr) + 4)  # a move makes one row at most; the first paint four
    if compiled:
        g.slot, g.free, ops = slot, free, np.empty(size, dtype=np.int64)
        g.play(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), ops)
    else:
        g.slot, g.free, ops = slot.tolist(), free.tolist(), [0] * size
        kinds, aa, bb = (arr[:, i].tolist() for i in range(3))
        g.play(kinds, aa, bb, ops)
    g.check_end()
    st = g.st
    rows = int(st[R.ST_NOPS])
    prog = np.asarray(ops[: 5 * rows], dtype=np.int64).reshape(rows, 5)
    peak = int(st[R.ST_SLOTPEAK])
    return SlotProgram(prog, n, game, peak + 1 if slots is None else slots,
                       int(st[R.ST_LSTEPS]), int(st[R.ST_LPAINTS]), peak,
                       int(st[R.ST_WRITES]), int(st[R.ST_READS]))


def _limits(schedule: Any) -> tuple[int | None, int | None]:
    """The budget and disk budget a Schedule's moves are checked against (its own: a
    ``treeverse-paper`` schedule given a budget its delta exceeds is refused here)."""
    from ._registry import Schedule

    if not isinstance(schedule, Schedule):
        return None, None
    disk = schedule.simulator_options.get("disk_budget")
    return schedule.budget, None if disk is None or disk == math.inf else int(disk)


def _resolve(schedule: Any, n: int | None,
             game: Game | str | None) -> tuple[np.ndarray, int, Game]:
    """The encoded moves, n and game of whatever was passed to :func:`lower`."""
    from ._registry import Schedule

    if n is not None:
        n = check_int("n", n, 1)
    if isinstance(schedule, Schedule):
        if n is not None and n != schedule.n:
            raise PebblesValueError(
                f"n={n} but the schedule is for n={schedule.n}; drop n or pass n={schedule.n}")
        n, game = schedule.n, schedule.game if game is None else game
        arr = schedule.encode()
    else:
        if n is None:
            raise PebblesTypeError("lower() needs n=NUMBER_OF_STEPS for a plain move stream "
                                   "(a pebbles.schedule(...) value carries its own)")
        arr = encode(schedule)
    n = check_int("n", n, 1)
    if game is None:
        game = Game.INPLACE if (arr[:, 0] == MoveKind.MOVE).any() else Game.CHECKPOINT
    game = Game.coerce(game)
    if game is Game.REVERSIBLE:
        raise PebblesValueError(
            "game='reversible' cannot be lowered: a gradient needs paints; lower the "
            "checkpoint-game mirror instead (pebbles.schedule('bennett-gradient', n, k=...))")
    return arr, n, game
