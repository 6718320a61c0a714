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
from dataclasses import dataclass, fields, replace
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _rules as R
from ._errors import IllegalMoveError, PebblesError, PebblesTypeError, PebblesValueError
from ._moves import Game, Move, MoveKind, encode
from ._simulator import _Game, use_compiled
from ._validation import check_bool, check_int, check_steps

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
        Rows ``(op, src, dst, first, count)``, as in the table above; read-only (a
        writable array given is copied), as a program compares and hashes by its rows.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", _read_only(self.ops))

    def __reduce__(self) -> tuple[Any, ...]:
        # Through the constructor: pickle and copy.deepcopy keep ops read-only.
        return type(self), tuple(getattr(self, f.name) for f in fields(self))

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

    def in_memory(self, runs: str | None = None) -> SlotProgram:
        """The program in the rows an executor that keeps every state in memory, and no
        graphs, runs: OP_STEP, OP_SEED and OP_PAINT.

        OP_FREE rows are dropped (the slots are kept to the end: ``nslots`` is
        unchanged) and an OP_TAPE row becomes the OP_STEP it is (no graph is
        kept: its OP_PAINT recomputes the step, as after any OP_STEP). The counts
        are unchanged. ``self`` when there is nothing to change.

        Parameters
        ----------
        runs : str, optional
            Who asks, for the error message: an executor and its verb (e.g.
            ``"checkpointed_scan runs"``: "checkpointed_scan runs schedules held in
            memory; ..."). ``None`` (the default): the message names ``in_memory()``.

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
            who = ("in_memory() keeps only programs that hold every state in memory"
                   if runs is None else f"{runs} schedules held in memory")
            raise PebblesValueError(
                f"{who}; this one stores states on disk (two-level): run it with "
                f"pebbles.replay(program, n, s0, ..., "
                f"store=pebbles.DiskStore(directory)), or pick a memory-only schedule "
                f"such as pebbles.schedule('treeverse', n, budget=S)")
        if not np.isin(op, (OP_FREE, OP_TAPE)).any():
            return self
        ops = self.ops[op != OP_FREE]  # a copy, written here only
        ops[ops[:, 0] == OP_TAPE, 0] = OP_STEP
        ops.flags.writeable = False
        return replace(self, ops=ops)


def _read_only(ops: Any) -> np.ndarray:
    """``ops`` as a read-only array: itself when neither it nor any array it views can be
    written (a view of a program's rows, say), else a read-only copy, which no one else
    can write to."""
    arr = ops if isinstance(ops, np.ndarray) else np.asarray(ops)
    view: Any = arr
    while isinstance(view, np.ndarray):
        if view.flags.writeable:
            arr = arr.copy()
            arr.flags.writeable = False
            return arr
        view = view.base
    return arr


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
    g = _Game(n, game, budget, disk, None, use_compiled(len(arr), work=5))
    g.lower = 2 if frees else 1
    slot = np.full(n + 1, -1, dtype=np.int64)
    slot[0] = 0
    g.st[R.ST_NFREE] = cap
    try:
        prog = _lowered(g, arr, slot, np.arange(cap, 0, -1, dtype=np.int64))
    except IllegalMoveError as err:
        if slots is None or err.code != "slots":
            raise
        raise _too_few_slots(err, arr, n, game, slots) from None
    g.check_end()
    st = g.st
    peak = int(st[R.ST_SLOTPEAK])
    return SlotProgram(prog, n, game, peak + 1 if slots is None else slots,
                       int(st[R.ST_LSTEPS]), int(st[R.ST_LPAINTS]), peak,
                       int(st[R.ST_WRITES]), int(st[R.ST_READS]))


class SlotBoard:
    """A game lowered piece by piece, from a board: the cells held, their slots, the free slots.

    For an executor that runs a long move stream in pieces, so that no program of the
    whole stream is ever held (:func:`pebbles.replay_until`'s reverse sweep). Each
    :meth:`lower` checks a piece of the moves against the rules from the board the
    pieces before it left, and assigns slots, with the rule loop of :func:`lower`: the
    rows of the pieces of a stream from ``SlotBoard(n, game, {0: 0}, [k, ..., 2, 1])``
    are those of ``lower(stream, n, game=game, slots=k + 1, frees=frees)``.

    A piece is played on the cells its moves name and the held cells between them,
    every run of two or more empty cells there shortened to one (the rules look at no
    other cell): its memory is that of its moves, whatever ``n`` (a piece that breaks a
    rule is played again on the whole board, in O(n) memory, for a message that names
    the game's cells). The rows of the
    :data:`PIECES` pieces lowered last are kept by their shape (the moves, held cells
    and free slots up to a shift of the cells and a renaming of the slots), so a
    subtree that recurs all along a stream is lowered once.

    Parameters
    ----------
    n : int
        Number of steps.
    game : {'checkpoint', 'inplace'}
        The game; its moves of memory only (no disk moves, no ``tape``).
    held : dict of int to int
        The slot of each cell held, cell 0 included.
    free : list of int
        The free slots, the last one taken first.
    painted : int, optional
        The first painted cell: cells ``painted..n`` are painted. Default ``n``:
        the first paint of the pieces seeds the gradient (OP_SEED), as in
        :func:`lower`; below ``n``, the seed is done.
    frees : bool
        Emit ``OP_FREE`` when a state is dropped, as in :func:`lower`.

    Attributes
    ----------
    held, free, painted
        The board after the pieces lowered so far.

    Examples
    --------
    >>> import pebbles
    >>> from pebbles._lowering import SlotBoard
    >>> board = SlotBoard(3, "checkpoint", {0: 0}, [2, 1])
    >>> board.lower(pebbles.encode([pebbles.forward(0, 2)])).tolist()   # s_2 into slot 1
    [[0, 0, 1, 0, 2]]
    >>> board.held, board.free
    ({0: 0, 2: 1}, [2])
    >>> board.lower(pebbles.encode([pebbles.paint(2), pebbles.remove(2)])).tolist()[:2]
    [[0, 1, 2, 2, 1], [1, 2, 0, 3, 1]]
    """

    __slots__ = ("n", "game", "held", "free", "painted", "frees", "_memo")

    def __init__(self, n: int, game: Game | str, held: dict[int, int], free: list[int], *,
                 painted: int | None = None, frees: bool = True) -> None:
        self.n = check_steps(n)
        self.game = Game.coerce(game)
        if self.game is Game.REVERSIBLE:
            raise PebblesValueError("game='reversible' cannot be lowered; pass "
                                    "game='checkpoint' or game='inplace'")
        self.painted = self.n if painted is None else check_int("painted", painted, 0)
        self.held, self.free = _checked_board(self.n, held, free, self.painted)
        self.frees = check_bool("frees", frees)
        self._memo = lru_cache(maxsize=PIECES)(partial(_piece, self.game, self.frees))

    def lower(self, moves: np.ndarray) -> np.ndarray:
        """The rows of the encoded moves ``moves``, played from the board, which they leave
        as the board after them.

        Raises
        ------
        IllegalMoveError
            A move breaks a rule, or the free slots run out (its index in ``moves``);
            the board is left as it was before the piece.
        PebblesValueError
            A disk move or a ``tape`` (the board holds memory pebbles only).
        """
        arr = moves if _encoded(moves) else encode(moves)
        if len(arr) == 0:
            return np.zeros((0, 5), dtype=np.int64)
        if arr[:, 0].max() > _FORWARD:
            raise PebblesValueError("a SlotBoard lowers moves of memory only; lower a stream "
                                    "with disk moves or tape moves whole, by pebbles.lower")
        cells = self._frame(arr)
        if cells is not None:
            try:
                return self._play(arr, cells, self._memo)
            except IllegalMoveError:  # again on the whole board: the message names its cells
                pass
        free = list(self.free)
        try:
            return self._play(arr, np.arange(self.n + 1), partial(_piece, self.game, self.frees))
        except IllegalMoveError as err:
            if err.code != "slots":
                raise
            raise IllegalMoveError(err.index, err.move, f"needs a free slot, and none is left "
                                   f"of free={free} at the piece's start; give the board "
                                   f"more free slots", err.code) from None

    def _frame(self, arr: np.ndarray) -> np.ndarray | None:
        """The cells the rules look at for ``arr``, sorted (None: a cell outside 0..n)."""
        kinds, a = arr[:, 0], arr[:, 1]
        forward = kinds == _FORWARD
        named = np.concatenate((a, arr[forward, 2], [self.painted, self.n - 1]))
        if self.painted < self.n:  # else the seed's step reads s_{n-1}
            named = named[:-1]
        before = a[(kinds == _PLACE) | (kinds == _MOVE)] - 1  # they read it
        lo, hi = int(named.min()), int(named.max())
        if lo < 0 or hi > self.n:
            return None
        inside = np.array([c for c in self.held if lo <= c <= hi], dtype=np.int64)
        return np.unique(np.concatenate((named, before[before >= 0], inside)))

    def _play(self, arr: np.ndarray, cells: np.ndarray, piece: Any) -> np.ndarray:
        """The rows of ``arr`` played by ``piece`` (:func:`_piece`) on ``cells`` (the
        first one its cell 1, or 0 if it is cell 0; runs of empty cells shortened to
        one), in the board's cells and slots; the board updated."""
        local = np.minimum(cells[1:] - cells[:-1], 2).cumsum()
        local = np.concatenate(([0], local)) + (1 if cells[0] else 0)
        cell_of = np.full(local[-1] + 1, -1, dtype=np.int64)
        cell_of[local] = cells
        moves = arr.copy()
        if len(cells) < self.n + 1:  # else every cell is its own: a cell out of 0..n too
            at = local[np.searchsorted(cells, arr[:, 1:3])]
            moves[:, 1] = at[:, 0]
            moves[:, 2] = np.where(arr[:, 0] == _FORWARD, at[:, 1], arr[:, 2])
        held = sorted(c for c in self.held if cells[0] <= c <= cells[-1])
        where = local[np.searchsorted(cells, [*held, self.painted])].tolist()
        rows, after, free, painted = piece(moves.tobytes(), tuple(where[:-1]), int(local[-1]),
                                           where[-1], self.painted < self.n, len(self.free))
        table = np.array([0, *self.free, *(self.held[c] for c in held)], dtype=np.int64)
        out = rows.copy()
        out[:, 1:3] = table[rows[:, 1:3]]
        out[:, 3] = cell_of[rows[:, 3]]
        walks = rows[:, 0] == OP_STEP
        out[walks, 4] = cell_of[rows[walks, 3] + rows[walks, 4]] - out[walks, 3]
        for c in held:
            del self.held[c]
        self.held.update((int(cell_of[c]), int(table[t])) for c, t in after)
        self.free = table[list(free)].tolist()
        self.painted = int(cell_of[painted])
        return out


#: Pieces whose rows a :class:`SlotBoard` keeps (the most recently used): the same
#: subtree recurs all along an interval of a Treeverse sweep, and its rows are a few KB.
PIECES = 64
_PLACE, _MOVE, _FORWARD = int(MoveKind.PLACE), int(MoveKind.MOVE), int(MoveKind.FORWARD)


def _encoded(moves: Any) -> bool:
    """Whether ``moves`` is an encoded stream (an int64 (m, 3) array) as it stands."""
    return (type(moves) is np.ndarray and moves.dtype == np.int64 and moves.ndim == 2
            and moves.shape[1] == 3)


def _piece(game: Game, frees: bool, moves: bytes, held: tuple[int, ...], n: int,
           painted: int, seeded: bool, nfree: int) -> tuple[Any, ...]:
    """A piece of :meth:`SlotBoard.lower` in its own cells ``0..n`` and slots: free slots
    ``1..nfree`` (``nfree`` taken first), then one for each of the cells ``held``.

    Returns its rows and the board after: the held cells and their slots, the free
    slots and the first painted cell.
    """
    arr = np.frombuffer(moves, dtype=np.int64).reshape(-1, 3)
    g = _Game(n, game, None, None, None, use_compiled(len(arr), work=5))
    g.lower = 2 if frees else 1
    slot = np.full(n + 1, -1, dtype=np.int64)
    slot[list(held)] = np.arange(nfree + 1, nfree + 1 + len(held))
    for c in held:
        g.occ[c] = 1
    g.st[R.ST_PAINTED], g.st[R.ST_SEEDED], g.st[R.ST_NFREE] = painted, int(seeded), nfree
    g.st[R.ST_COUNT] = sum(1 for c in held if c)
    free = np.zeros(nfree + len(held), dtype=np.int64)
    free[:nfree] = np.arange(1, nfree + 1)
    rows = _lowered(g, arr, slot, free)
    real = 0 if not held or held[0] == 0 else 1  # local cell 0 stands for a cell below
    after = tuple((c, int(g.slot[c])) for c in range(real, n + 1) if g.occ[c])
    return rows, after, tuple(g.free[: int(g.st[R.ST_NFREE])]), int(g.st[R.ST_PAINTED])


def _checked_board(n: int, held: Any, free: Any, painted: int) -> tuple[dict[int, int],
                                                                        list[int]]:
    """``held`` and ``free`` of a :class:`SlotBoard`, checked and copied."""
    if not isinstance(held, dict) or held.get(0) is None:
        raise PebblesValueError(f"held={held!r:.60} must be a dict of each cell held to its "
                                f"slot, cell 0 included; pass held={{0: 0}} for s_0 alone")
    cells = {check_int("a cell of held", c, 0): check_int(f"held[{c}]", t, 0)
             for c, t in held.items()}
    slots = [check_int("a slot of free", t, 0) for t in free]
    if max(cells) > n or painted > n:
        raise PebblesValueError(f"held={held!r:.60} and painted={painted} must name cells "
                                f"in 0..n={n}; pass cells of the game")
    taken = [*cells.values(), *slots]
    if len(set(taken)) != len(taken):
        raise PebblesValueError(f"held={held!r:.60} and free={free!r:.60} name a slot "
                                f"twice; give each cell held a slot of its own, and free "
                                f"the slots no cell holds")
    return cells, slots


def _lowered(g: _Game, arr: np.ndarray, slot: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The rows of the encoded moves ``arr`` played on ``g`` with slots assigned: the one
    rule loop of every lowering (:func:`lower`, :class:`SlotBoard`).

    ``slot[c]`` is the slot of each held cell ``c``; ``free`` holds the free slots in its
    first ``g.st[ST_NFREE]`` entries, the last taken first, and room for every slot
    freed. ``g.slot`` and ``g.free`` are left as the board after the moves.
    """
    size = 5 * (len(arr) + 4)  # a move makes one row at most; the first paint four
    if g.compiled:
        g.slot, g.free, ops = slot, free, np.empty(size, dtype=np.int64)
    else:
        g.slot, g.free, ops = slot.tolist(), free.tolist(), [0] * size
    for run in g.runs(*(arr[:, i].copy() for i in range(3))):  # Ctrl-C between runs
        g.play(*run, ops)
    rows = int(g.st[R.ST_NOPS])
    out = np.asarray(ops[: 5 * rows], dtype=np.int64).reshape(rows, 5)
    view: Any = out
    while isinstance(view, np.ndarray):  # the rows and the buffer they view: SlotProgram
        view.flags.writeable = False     # keeps them as they are (_read_only)
        view = view.base
    return out


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
        n = check_steps(n)
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
    n = check_steps(n)
    if game is None:
        game = Game.INPLACE if (arr[:, 0] == MoveKind.MOVE).any() else Game.CHECKPOINT
    game = Game.coerce(game)
    if game is Game.REVERSIBLE:
        raise PebblesValueError(
            "game='reversible' cannot be lowered: a gradient needs paints; lower the "
            "checkpoint-game mirror instead (pebbles.schedule('reversible-gradient', n, "
            "budget=...) for 'reversible-optimal', 'bennett-gradient' for 'bennett')")
    return arr, n, game
