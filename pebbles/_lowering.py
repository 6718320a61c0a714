"""Lowering: a checked schedule as a program over a fixed number of state slots.

Every executor of a checkpoint-game or in-place-game schedule (Liu & Xu,
appendix; Griewank's Revolve setting) needs the same two things: the moves
checked against the rules, and each stored state given a place in memory. This
module does both in one pass of the simulator's rule loop
(:func:`pebbles._rules.play`, with slot assignment switched on) and returns a
compact integer program that the generic executor, the Numba and GPU
executors and the JAX and PyTorch adapters all run:

The rows, the rules an executor follows and the counts are documented on
:class:`SlotProgram` (``help(pebbles.SlotProgram)``).

Slot 0 holds ``s_0`` and is never written. Free slots are reused last-freed
first, so the slots used are exactly the most states held at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _rules as R
from ._errors import IllegalMoveError, PebblesError, PebblesTypeError, PebblesValueError
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


#: Rows that read the state in ``src``, and rows that write a state into ``dst``.
READS = frozenset((OP_STEP, OP_TAPE, OP_SEED, OP_PAINT, OP_STORE))
WRITES = frozenset((OP_STEP, OP_TAPE, OP_LOAD))
_OPS = (OP_STEP, OP_SEED, OP_PAINT, OP_STORE, OP_LOAD, OP_DISCARD, OP_FREE, OP_TAPE)
#: Per op code: 1 if its row reads ``src``, 2 if it writes ``dst`` (or both).
_ROW_KINDS = np.array([(op in READS) | 2 * (op in WRITES) for op in range(max(_OPS) + 1)],
                      dtype=np.int8)


def _first_writes(rows: np.ndarray, ops: np.ndarray, nslots: int) -> np.ndarray:
    """The first of ``rows`` writing each slot (``len(ops)`` for none), found in chunks
    that double: every slot is usually written within the first few thousand rows."""
    first = np.full(nslots, len(ops))
    start, size = 0, 4096
    while start < len(rows) and (first[1:] == len(ops)).any():
        slots, at = np.unique(ops[rows[start:start + size], 2], return_index=True)
        new = first[slots] == len(ops)
        first[slots[new]] = rows[start + at[new]]
        start, size = start + size, 2 * size
    return first


@dataclass(frozen=True, slots=True, eq=False)
class SlotProgram:
    """A checked schedule as slot operations (see :func:`lower`).

    Slots hold states; slot 0 holds ``s_0`` and is never written. Each row of
    ``ops`` is ``(op, src, dst, first, count)``, five int64 numbers; a field an
    op does not use is 0. Cell ``i`` means the state ``s_i``.

    ==========  ==========================================================
    op          fields
    ==========  ==========================================================
    OP_STEP     ``count`` steps ``first .. first+count-1``: read ``s_first``
                from slot ``src``, leave ``s_{first+count}`` in slot ``dst``.
                ``src == dst``: every step in place (a ``move``, always
                ``count == 1``). Otherwise the first step writes into ``dst``
                and the others step in place there; ``src`` keeps its state.
    OP_SEED     ``src``: the slot holding ``s_n``; ``first = n``;
                ``count = 1`` when :func:`lower` added the step that computes
                ``s_n`` (the OP_STEP row just before), 0 when the schedule
                places ``s_n`` itself. Evaluate the loss at ``s_n`` and set
                the running cotangent to ``dL/ds_n``. ``dst`` unused.
    OP_PAINT    ``src``: the slot holding ``s_first``. Backward step
                ``first``: ``backward(first, s_first, cotangent)`` gives the
                new cotangent ``dL/ds_first`` and that step's parameter
                gradient. ``dst``, ``count`` unused.
    OP_STORE    copy the state in slot ``src`` to the disk copy of cell
                ``first`` (the store's key). ``dst``, ``count`` unused.
    OP_LOAD     copy the disk copy of cell ``first`` into slot ``dst``.
                ``src``, ``count`` unused.
    OP_DISCARD  delete the disk copy of cell ``first``. ``src``, ``dst``,
                ``count`` unused.
    OP_FREE     the state in slot ``src`` (that of cell ``first``) is no
                longer needed: the slot may be released or reused. Only with
                ``lower(..., frees=True)``. ``dst``, ``count`` unused.
    OP_TAPE     as OP_STEP with ``count == 1`` (a ``tape`` move), and the
                graph of step ``first`` is kept for its OP_PAINT, which then
                replays nothing (an executor that cannot keep graphs runs it
                as OP_STEP).
    ==========  ==========================================================

    Rules for an executor:

    * Rows run in order, once each.
    * Cell ``n`` starts painted: the games never need ``s_n`` as a stored
      state. There is one running cotangent: OP_SEED sets it (once, before
      the first OP_PAINT) and each OP_PAINT replaces it, for ``first = n-1,
      n-2, ..., 0`` in that order; after the last paint it is ``dL/ds_0``.
      The parameter gradient is the sum over all paints.
    * When the schedule never places ``s_n`` (most gradient schedules:
      ``treeverse``, ``online``, ``two-level`` ...), :func:`lower` puts an
      OP_STEP computing ``s_n`` from ``s_{n-1}`` into a free scratch slot
      right before OP_SEED (``count = 1`` there; with ``frees=True`` an
      OP_FREE of that slot follows the seed). ``bennett-gradient`` and
      ``reversible-gradient`` place ``s_n`` themselves (``count = 0``).
    * ``nslots`` counts the states held at once (stored states, the scratch
      ``s_n``, slot 0), not a spare buffer for walks: an OP_STEP with
      ``count > 1`` and ``src != dst`` may find every other slot in use. An
      executor whose step cannot write in place (it needs distinct input
      and output buffers) keeps one buffer of its own for walks, or asks for
      ``lower(..., slots=p.nslots + 1)``, which leaves a slot free at every
      walk.

    Attributes
    ----------
    ops : ndarray, int64, shape (m, 5)
        Rows ``(op, src, dst, first, count)``, as in the table above.
    n : int
        Number of steps.
    game : Game
        The game the schedule was checked in.
    nslots : int
        Slots needed, slot 0 (``s_0``) included.
    forward_steps : int
        Step calls of OP_STEP and OP_TAPE rows, the one :func:`lower` adds to
        compute ``s_n`` for the seed included (an OP_PAINT not served by an
        OP_TAPE replays one more). So it is the simulator's
        ``forward_steps`` plus one when that step was added (``count = 1`` in
        the OP_SEED row), equal to it otherwise.
    backward_steps : int
        Backward steps (paints).
    peak_states : int
        Most slots in use at once besides slot 0 (``nslots - 1`` unless
        ``slots`` was given larger), the scratch ``s_n`` counted while the
        seed uses it. For a budgeted schedule that never places ``s_n`` this
        is usually the simulator's ``peak_states`` plus one (treeverse at
        n = 20, S = 4: 5 against 4). The simulator also counts a
        checkpoint-game walk of more than one step as two pebbles, which a
        slot program does not (the walking state is the one in ``dst``), so
        the two can differ the other way too.
    writes, reads : int
        Disk writes and reads (two-level schedules).

    Examples
    --------
    >>> import pebbles
    >>> s = pebbles.schedule("treeverse", 20, budget=4)
    >>> p = pebbles.lower(s)
    >>> p.ops[3:6].tolist()    # s_19 into slot 4; s_20 into scratch slot 5; the seed
    [[0, 3, 4, 18, 1], [0, 4, 5, 19, 1], [1, 5, 0, 20, 1]]
    >>> p.ops[6].tolist() == [pebbles.OP_PAINT, 4, 0, 19, 0]   # paint 19 from slot 4
    True
    >>> (s.simulate().forward_steps, p.forward_steps), (s.simulate().peak_states, p.peak_states)
    ((40, 41), (4, 5))
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

    def rows(self) -> Iterator[list[int]]:
        """The rows of :attr:`ops` as lists of five Python ints, in order, converted
        :data:`ROWS_CHUNK` rows at a time: an executor's loop over a program of millions of
        rows holds no list of them all (about 140 bytes a row).

        Examples
        --------
        >>> import pebbles
        >>> p = pebbles.lower(pebbles.schedule("store-all", 2))
        >>> for row in p.rows():   # s_1 into slot 1, s_2 into slot 2, seed, two paints
        ...     print(row)
        [0, 0, 1, 0, 1]
        [0, 1, 2, 1, 1]
        [1, 2, 0, 2, 1]
        [2, 1, 0, 1, 0]
        [2, 0, 0, 0, 0]
        """
        return _rows(self.ops)

    def _scalars(self) -> tuple[Any, ...]:
        """Every field but ``ops`` (an array, compared and hashed by value)."""
        return (self.n, self.game, self.nslots, self.forward_steps, self.backward_steps,
                self.peak_states, self.writes, self.reads)

    def check(self) -> SlotProgram:
        """``self`` after checking that its rows can run: every slot named is in
        ``0..nslots-1``, no row reads a slot before an earlier row wrote a state there,
        and one OP_SEED comes before the first OP_PAINT. The executors call it on a
        program given to them (one built or cut by hand); :func:`lower`'s pass.

        Raises
        ------
        PebblesValueError
            Naming the first row that breaks a rule.

        Examples
        --------
        >>> import dataclasses, pebbles
        >>> p = pebbles.lower(pebbles.schedule("treeverse", 8, budget=2))
        >>> p.check() is p
        True
        >>> try:
        ...     dataclasses.replace(p, ops=p.ops[1:]).check()
        ... except ValueError as err:
        ...     print(str(err).split(";")[0])
        row 0 of the program, [0, 1, 2, 6, 1], reads slot 1 before any row writes a state there
        """
        ops = np.asarray(self.ops)
        fix = "pass the schedule, or a SlotProgram from pebbles.lower unchanged"
        if len(ops) == 0:
            return self
        slots = ops[:, 1:3]
        if slots.min() < 0 or slots.max() >= self.nslots:
            k = int(np.flatnonzero(((slots < 0) | (slots >= self.nslots)).any(axis=1))[0])
            raise PebblesValueError(f"row {k} of the program, {ops[k].tolist()}, names a slot "
                                    f"outside 0..{self.nslots - 1} (nslots={self.nslots}); "
                                    f"{fix}")
        unknown = np.flatnonzero(~np.isin(ops[:, 0], _OPS))
        if unknown.size:
            k = int(unknown[0])
            raise PebblesValueError(f"row {k} of the program, {ops[k].tolist()}, has op "
                                    f"{int(ops[k, 0])}, which is no OP_* code; {fix}")
        kind = _ROW_KINDS[ops[:, 0]]
        first_write = _first_writes(np.flatnonzero(kind & 2), ops, self.nslots)
        reads = (kind & 1).astype(bool) & (ops[:, 1] != 0)  # a row reads before it writes
        early = np.flatnonzero(reads & (np.arange(len(ops)) <= first_write[ops[:, 1]]))
        if early.size:
            k = int(early[0])
            raise PebblesValueError(f"row {k} of the program, {ops[k].tolist()}, reads slot "
                                    f"{int(ops[k, 1])} before any row writes a state there; "
                                    f"{fix}")
        seeds, paints = np.flatnonzero(ops[:, 0] == OP_SEED), np.flatnonzero(ops[:, 0] == OP_PAINT)
        if paints.size and (seeds.size != 1 or seeds[0] > paints[0]):
            raise PebblesValueError(f"the program has {seeds.size} seed row(s) (OP_SEED), and "
                                    f"its paints need one seed before them; {fix}")
        return self

    def in_memory(self, runs: str = "this executor runs") -> SlotProgram:
        """The program in the rows an executor that keeps every state in memory, and no
        graphs, runs: OP_STEP, OP_SEED and OP_PAINT.

        OP_FREE rows are dropped (the slots are kept to the end: ``nslots`` is
        unchanged) and an OP_TAPE row becomes the OP_STEP it is (no graph is
        kept: its OP_PAINT recomputes the step, as after any OP_STEP). The counts
        are unchanged. ``self`` when there is nothing to change.

        Parameters
        ----------
        runs : str
            The start of the error message: the executor and its verb.

        Raises
        ------
        PebblesValueError
            If the program keeps states on disk (OP_STORE, OP_LOAD or OP_DISCARD
            rows: a two-level schedule).

        Examples
        --------
        >>> import pebbles
        >>> tape = pebbles.lower(pebbles.sequential_segments(4, 2), 4)
        >>> sorted(set(tape.ops[:, 0].tolist()) - set(tape.in_memory().ops[:, 0].tolist()))
        [7]
        >>> tape.in_memory().forward_steps == tape.forward_steps
        True
        """
        op = self.ops[:, 0]
        if self.writes or self.reads or np.isin(op, (OP_STORE, OP_LOAD, OP_DISCARD)).any():
            raise PebblesValueError(
                f"{runs} schedules held in memory; this one stores states on disk "
                f"(two-level); pick a memory-only schedule such as pebbles.schedule("
                f"'treeverse', n, budget=S)")
        if not np.isin(op, (OP_FREE, OP_TAPE)).any():
            return self
        ops = self.ops[op != OP_FREE]
        ops[ops[:, 0] == OP_TAPE, 0] = OP_STEP
        return replace(self, ops=np.ascontiguousarray(ops))


#: Rows of a slot program turned into Python ints at a time (:meth:`SlotProgram.rows`).
ROWS_CHUNK = 4096


def _rows(ops: np.ndarray) -> Iterator[list[int]]:
    """The rows of ``ops`` as lists of Python ints, :data:`ROWS_CHUNK` rows at a time."""
    for start in range(0, len(ops), ROWS_CHUNK):
        yield from ops[start:start + ROWS_CHUNK].tolist()


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
        Slots to use, ``s_0`` included; default exactly as many as needed
        (``nslots``). Fewer are refused with an error naming the least number
        that works; more leave slots free (``slots=nslots + 1`` keeps one
        free at every walk, for steps that cannot write in place). More than
        ``n + 2`` are taken as ``n + 2`` (no game holds more than ``n + 1``
        states), so a large number costs nothing, here or in the executors.
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
        move's index, the move and the rule (for too few ``slots``, the
        number the schedule needs).

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
    if slots is not None:
        slots = min(slots, n + 2)  # no game holds more than n + 1 states: one more is free
    cap = n + 1 if slots is None else slots - 1
    compiled = use_compiled(len(arr), work=5)
    g = _Game(n, game, budget, disk, None, compiled)
    g.lower = 2 if frees else 1
    slot = np.full(n + 1, -1, dtype=np.int64)
    slot[0] = 0
    free = np.arange(cap, 0, -1, dtype=np.int64)
    g.st[R.ST_NFREE] = cap
    size = 5 * (len(arr) + 4)  # a move makes one row at most; the first paint four
    try:
        if compiled:
            g.slot, g.free, ops = slot, free, np.empty(size, dtype=np.int64)
        else:
            g.slot, g.free, ops = slot.tolist(), free.tolist(), [0] * size
        for run in g.runs(*(arr[:, i].copy() for i in range(3))):  # Ctrl-C between runs
            g.play(*run, ops)
    except IllegalMoveError as err:
        if slots is None or err.code != "slots":
            raise
        raise _too_few_slots(err, arr, n, game, slots) from None
    g.check_end()
    st = g.st
    rows = int(st[R.ST_NOPS])
    prog = np.asarray(ops[: 5 * rows], dtype=np.int64).reshape(rows, 5)
    peak = int(st[R.ST_SLOTPEAK])
    return SlotProgram(prog, n, game, peak + 1 if slots is None else slots,
                       int(st[R.ST_LSTEPS]), int(st[R.ST_LPAINTS]), peak,
                       int(st[R.ST_WRITES]), int(st[R.ST_READS]))


def _too_few_slots(err: IllegalMoveError, arr: np.ndarray, n: int, game: Game,
                   slots: int) -> IllegalMoveError:
    """``err`` (``slots`` ran out) restated with the number of slots the schedule needs."""
    try:
        need = lower(arr, n, game=game).nslots
    except PebblesError:  # the stream breaks a rule later on: name only what is known
        return err
    return IllegalMoveError(
        err.index, err.move,
        f"needs more than slots={slots} (s_0 included): this schedule needs slots={need} at "
        f"least; pass slots={need} or more, or slots=None to size them from the schedule",
        err.code)


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
            "checkpoint-game mirror instead (pebbles.schedule('reversible-gradient', n, "
            "budget=...) for 'reversible-optimal', 'bennett-gradient' for 'bennett')")
    return arr, n, game
