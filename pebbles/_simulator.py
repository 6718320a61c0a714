"""The pebble-game simulator: the one referee of every schedule in the library.

It replays a move stream under the rules of the paper's appendix (Liu & Xu,
"Automatic differentiation in physics simulation", reversible and checkpoint
pebble games) and of this project's in-place variant, and measures the stream:
forward steps, backward steps (paints), peak pebbles and the steps taken when
cell n first holds a memory pebble.

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

* ``tape i`` -- ``place i`` that keeps the graph of step i-1 (its saved
  activations, ``ChainCosts.graph[i-1]`` bytes besides s_{i-1} and s_i) until
  ``paint i-1``, which then needs no replay of step i-1 (it costs
  ``backward[i-1] - forward[i-1]``); while the graph is kept, cells i-1 and i
  cannot lose their pebbles. With ``ChainCosts.graph``, any other paint i
  holds ``sizes[i+1] + graph[i]`` for the moment (its replay).
* ``store i`` / ``load i`` / ``discard i`` -- the two-level game (checkpoint
  and in-place games with a disk): copy the memory pebble on i to disk (no disk
  pebble there yet), copy the disk pebble on i into a new memory pebble (none
  in memory there yet), free the disk pebble on i. A disk pebble never blocks a
  walk; paints and walks need memory pebbles.

End: every cell painted (checkpoint games), or cell n pebbled (reversible).
The budget S bounds the pebbles on cells 1..n at every moment, transient
walking pebbles included; the disk budget bounds the disk pebbles.

The rules themselves are one loop, :func:`pebbles._rules.play`, run as Python
or, for long encoded streams when Numba is installed, compiled from the same
source. This module feeds it, turns a rule code into words and measures.
"""

from __future__ import annotations

import numbers
import os
import sys
import types
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import islice
from typing import Any

import numpy as np

from . import _rules as R
from ._errors import IllegalMoveError, PebblesTypeError, PebblesValueError
from ._moves import Game, Move, MoveKind, checked_encoding, iter_moves, move_columns
from ._validation import check_bool, check_cost, check_disk_budget, check_int, check_steps

__all__ = ["Board", "ChainCosts", "SimulationResult", "expand", "play_one", "simulate"]

_GAME_CODE = {Game.CHECKPOINT: R.G_CHECKPOINT, Game.INPLACE: R.G_INPLACE,
              Game.REVERSIBLE: R.G_REVERSIBLE}
#: Moves :func:`simulate` takes from a stream at a time; it checks them all before it
#: takes more (the command line writes a move only once it has been checked). Also the
#: most moves the plain-Python loop is given at once (as lists of Python ints).
SIMULATE_CHUNK = 8192
#: Most work (cells walked over, plus one a move) the rule loop is given at once, so
#: that it returns to Python, where a pending Ctrl-C is raised, often: at most about
#: 0.1 s in the compiled loop (a walk under :class:`ChainCosts` adds costs cell by cell;
#: checking a bare walk's cells takes a few hundredths of that).
_CHUNK_WORK = 2**26
#: Encoded streams at least this long are checked by the compiled loop when
#: Numba is installed (below it, importing Numba costs more than it saves).
JIT_MIN_MOVES = int(os.environ.get("PEBBLES_JIT_MIN_MOVES", "1000000"))


@dataclass(frozen=True, slots=True)
class Board:
    """A snapshot of the board: pebbled cells (besides cell 0) and painted cells.

    Painted cells are always ``painted_from..n`` (paints go right to left).
    ``disk`` lists the cells with a disk pebble (two-level game).
    """

    pebbles: tuple[int, ...]
    painted_from: int
    disk: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class ChainCosts:
    """Per-step costs and per-state sizes of a heterogeneous chain.

    Each array given is stored as a read-only float64 copy: a ChainCosts is a value
    (compared and hashed by its numbers) that later changes to the caller's arrays
    leave as it was.

    Attributes
    ----------
    forward : array (n,)
        Cost of forward step i (``s_i -> s_{i+1}``).
    backward : array (n,)
        Cost of backward step i (``paint i``).
    sizes : array (n + 1,)
        Size of state ``s_i`` (bytes, or any unit); ``sizes[0]`` (s_0, always
        held) does not count against a memory limit.
    graph : array (n,), optional
        Memory the graph of step i holds when it is kept (``tape i+1``: its saved
        activations), besides ``s_i`` and ``s_{i+1}`` which stay stored while it is
        kept; ``inf`` where a step's graph may never be kept. A paint that
        replays step i (no kept graph) holds ``sizes[i+1] + graph[i]`` for the
        moment (the step's output and graph, built again), unless ``graph[i]``
        is inf. ``None`` (the default): no step keeps its graph and replays
        are not counted (streams with ``tape`` moves are then measured with
        graphs of size 0). ``backward[i]`` is read as the
        backward step including the replay of step i, which a kept graph saves
        (a served paint costs ``backward[i] - forward[i]``), so with a graph
        every ``backward[i] >= forward[i]``.
    grads : array (n,), optional
        Memory that backward step i produces and that stays held until the end
        of the reversal (the gradients of parameters that step i is the last
        to use: :func:`pebbles.torch.profile_layers` measures them): ``paint i``
        adds ``grads[i]``, counted during the paint itself. ``None`` (the
        default): nothing is produced.
    cotangents : array (n,), optional
        Memory of the cotangent (gradient) of ``s_i``, ``i < n``: ``paint i``
        makes it while it still holds that of ``s_{i+1}``, which it then frees
        (``s_n``'s is the caller's and, like ``s_0``, not counted). ``None``
        (the default): not counted.

    Examples
    --------
    >>> import numpy as np, pebbles
    >>> c = pebbles.ChainCosts(np.ones(3), np.full(3, 2.0), np.array([8, 8, 16, 8]))
    >>> r = pebbles.simulate(pebbles.store_all(3), 3, costs=c)
    >>> r.time, r.peak_bytes
    (8.0, 24.0)
    >>> g = pebbles.ChainCosts(np.ones(2), np.full(2, 2.0), np.full(3, 8.0), graph=np.full(2, 4.0))
    >>> moves = [pebbles.Move(pebbles.MoveKind.TAPE, 1), pebbles.paint(1), pebbles.paint(0),
    ...          pebbles.remove(1)]
    >>> r = pebbles.simulate(moves, 2, costs=g)
    >>> r.time, r.peak_bytes, r.taped
    (4.0, 24.0, 1)
    >>> p = pebbles.ChainCosts(np.ones(3), np.full(3, 2.0), np.array([8, 8, 16, 8]),
    ...                        grads=np.array([1.0, 0.0, 4.0]))
    >>> pebbles.simulate(pebbles.store_all(3), 3, costs=p).peak_bytes  # 24 + grads[2]
    28.0
    """

    forward: np.ndarray
    backward: np.ndarray
    sizes: np.ndarray
    graph: np.ndarray | None = None
    grads: np.ndarray | None = None
    cotangents: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in _FIELDS:
            if getattr(self, name) is None:
                if name in _FIELDS[:3]:
                    raise PebblesTypeError(
                        f"ChainCosts.{name}=None: forward, backward and sizes are required; "
                        f"pass a 1-D array of numbers >= 0 (length n, n and n + 1)")
                continue
            value = _as_floats(name, getattr(self, name))
            finite = np.isfinite(value) | ((value == np.inf) & (name == "graph"))
            if value.ndim != 1 or not np.all(finite) or np.any(value < 0):
                bad = np.flatnonzero(~finite | (value < 0)) if value.ndim == 1 else ()
                what = f" with {name}[{bad[0]}]={float(value[bad[0]])!r}" if len(bad) else ""
                raise PebblesValueError(
                    f"ChainCosts.{name} must be a 1-D array of finite numbers >= 0 (graph: "
                    f"or inf), got shape={value.shape}{what}")
            object.__setattr__(self, name, value)
        n = len(self.forward)
        if n == 0:
            raise PebblesValueError(
                "ChainCosts.forward is empty (n=0 steps); a chain needs n >= 1: pass forward "
                "and backward of length n >= 1 and sizes of length n + 1")
        given = {name: len(getattr(self, name)) for name in _FIELDS
                 if getattr(self, name) is not None}
        if any(k != n + (name == "sizes") for name, k in given.items()):
            got = ", ".join(f"{name} {k}" for name, k in given.items())
            raise PebblesValueError(
                f"ChainCosts needs sizes of length n + 1 and every other array of length n "
                f"(n = len(forward) = {n} steps), got {got}; pass sizes of length {n + 1} and "
                f"the others of length {n}")
        if self.graph is not None and np.any(self.backward < self.forward):
            i = int(np.argmax(self.backward < self.forward))
            raise PebblesValueError(
                f"ChainCosts.backward[{i}]={self.backward[i]:g} < forward[{i}]="
                f"{self.forward[i]:g}: with a graph, backward[i] includes the replay of step "
                f"i that a kept graph saves; pass backward >= forward")

    def __reduce__(self) -> tuple[Any, ...]:
        # Through the constructor: pickle and copy.deepcopy keep the arrays read-only.
        return type(self), tuple(getattr(self, name) for name in _FIELDS)

    @property
    def n(self) -> int:
        """Number of steps of the chain."""
        return len(self.forward)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChainCosts):
            return NotImplemented
        mine, theirs = (tuple(getattr(c, k) for k in _FIELDS) for c in (self, other))
        return all((a is None and b is None) or (
            a is not None and b is not None and np.array_equal(a, b))
            for a, b in zip(mine, theirs, strict=True))

    def __hash__(self) -> int:
        # + 0.0 turns -0.0 into 0.0: arrays that __eq__ finds equal hash alike
        return hash(tuple(None if getattr(self, k) is None else (getattr(self, k) + 0.0).tobytes()
                          for k in _FIELDS))

    def _memory_sizes(self) -> np.ndarray:
        """The rule loop's ``size`` array: ``sizes``, then (when given) ``graph`` with
        ``-1`` for inf, then (when either is given) ``grads`` and ``cotangents`` (0 for
        the other), after a ``graph`` of ``-2`` (no graph model) where it is None."""
        held = self.grads is not None or self.cotangents is not None
        if self.graph is None and not held:
            return self.sizes
        graph = np.full(self.n, -2.0) if self.graph is None else np.where(
            np.isinf(self.graph), -1.0, self.graph)
        return np.concatenate((self.sizes, graph, *(self._made() if held else ())))

    def _made(self) -> tuple[np.ndarray, np.ndarray]:
        """(``grads``, ``cotangents``), zeros for either that is None."""
        zero = np.zeros(self.n)
        return (zero if self.grads is None else self.grads,
                zero if self.cotangents is None else self.cotangents)


_FIELDS = ("forward", "backward", "sizes", "graph", "grads", "cotangents")


def _as_floats(name: str, value: object) -> np.ndarray:
    """``value`` as a read-only contiguous float64 copy (the caller's array may change
    later; a ChainCosts may not), or an error naming ``ChainCosts.name`` (strings, bools,
    complex numbers, dates, durations and ``None`` entries are no real numbers, though
    NumPy would convert them; a masked array would lose its mask; an integer past the
    largest float has no float64)."""
    def refuse(why: str) -> PebblesTypeError:
        return PebblesTypeError(
            f"ChainCosts.{name}={value!r:.60} is not an array of numbers ({why}); pass a 1-D "
            f"array of numbers >= 0, e.g. np.ones(n)")

    if np.ma.isMaskedArray(value) and np.ma.getmaskarray(value).any():
        raise PebblesTypeError(
            f"ChainCosts.{name} is a masked array with masked entries, whose values would be "
            f"used as they are; pass {name}.filled(value) with the value a masked entry "
            f"stands for, or {name}.compressed() to drop them")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:  # a ragged nesting
        raise refuse(str(e)) from None
    kind = arr.dtype.kind
    if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
        kind = "b"  # [True, 1] is an int array
    if kind in "bcUSMm" or (kind == "O" and not _numbers(arr)):
        raise refuse(_not_numbers(kind, arr.ndim))
    try:
        floats = np.array(arr, dtype=np.float64, order="C")  # a copy, always
    except OverflowError:  # a Python int past the largest float
        raise _too_big(name, arr) from None
    except (TypeError, ValueError) as e:  # records: no cast to float
        raise refuse(str(e)) from None
    floats.flags.writeable = False
    return floats


def _too_big(name: str, arr: np.ndarray) -> PebblesValueError:
    """The error of an object array ``arr`` holding a number past the largest float."""
    flat, most = arr.reshape(-1), float(np.finfo(np.float64).max)
    i = next(k for k, v in enumerate(flat) if abs(v) > most)
    digits = len(str(int(abs(flat[i]))))
    return PebblesValueError(
        f"ChainCosts.{name}[{i}] (about 1e{digits - 1}) is past the "
        f"largest float ({np.finfo(np.float64).max:.4g}); rescale {name} (e.g. bytes to "
        f"MiB, or times to larger units; the memory with the sizes) to below it")


def _not_numbers(kind: str, ndim: int) -> str:
    """Why an array of dtype kind ``kind`` is refused, for :func:`_as_floats`."""
    if kind in "Mm":
        return "it holds dates or durations"
    return {"b": "it holds bools", "c": "it holds complex numbers"}.get(
        kind, "it is no sequence" if ndim == 0 else "it holds non-numbers")


def _numbers(value: np.ndarray) -> bool:
    """Whether every entry of an object array is a real number (not a bool)."""
    flat = value.reshape(-1)
    return flat.size > 0 and all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in flat)


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What :func:`simulate` measured of a legal move stream.

    Attributes
    ----------
    game, n : the game and the number of steps (cells ``0..n``).
    forward_steps : steps taken (place, move, unplace, and ``j - i`` per forward).
    backward_steps : paints (backward steps).
    peak_states : the most memory pebbles on cells 1..n at any moment, a walk's
        transient pebble included (``peak_pebbles`` is the same number under its
        former name).
    moves : number of moves in the stream.
    first_reach_n : steps taken when cell n first held a memory pebble (a ``place``,
        ``tape``, ``move``, ``load`` or a walk's arrival there; ``None`` if never).
    trace : board after each move, when asked for.
    writes, reads : ``store`` and ``load`` moves (two-level game).
    peak_disk : the most disk pebbles at any moment.
    time : forward cost + backward cost + ``write_cost * writes + read_cost * reads``;
        without ``costs`` a forward step costs 1 and a paint 0, so ``time`` is
        ``forward_steps`` plus the I/O.
    peak_bytes : the most memory held by pebbles on cells 1..n (transient walking
        states included) and by kept graphs under ``costs``; without costs,
        ``peak_states``.
    taped : paints served by a graph kept by a ``tape`` move (no replay of the
        step). An executor that replays step i in every other paint calls the
        steps ``forward_steps + backward_steps - taped`` times (plus one call of
        step n-1 for ``s_n`` when cell n is never pebbled).
    """

    game: Game
    n: int
    forward_steps: int
    backward_steps: int
    peak_states: int
    moves: int
    first_reach_n: int | None
    trace: tuple[Board, ...] | None = None
    writes: int = 0
    reads: int = 0
    peak_disk: int = 0
    time: float = 0.0
    peak_bytes: float = 0.0
    taped: int = 0

    @property
    def peak_pebbles(self) -> int:
        """Former name of :attr:`peak_states`."""
        return self.peak_states


def _play_with(**helpers: Any) -> Any:
    """:func:`pebbles._rules.play`, its helper functions replaced by ``helpers``."""
    glb = dict(R.__dict__) | helpers
    fn = types.FunctionType(R.play.__code__, glb, "play")
    fn.__module__, fn.__qualname__ = R.__name__, "play"
    return fn


def _first_set(occ: Any, lo: int, hi: int) -> int:
    """:func:`pebbles._rules._first_set` at C speed for plain Python boards."""
    if type(occ) is bytearray:
        return occ.find(1, lo, hi + 1)
    return occ.first_set(lo, hi)


class _SparseBoard:
    """A board of a huge n in plain Python: O(pebbles) memory instead of O(n)."""

    __slots__ = ("cells",)

    def __init__(self) -> None:
        self.cells: list[int] = []

    def __getitem__(self, i: int) -> int:
        k = bisect_left(self.cells, i)
        return int(k < len(self.cells) and self.cells[k] == i)

    def __setitem__(self, i: int, value: int) -> None:
        k = bisect_left(self.cells, i)
        here = k < len(self.cells) and self.cells[k] == i
        if value and not here:
            self.cells.insert(k, i)
        elif not value and here:
            del self.cells[k]

    def first_set(self, lo: int, hi: int) -> int:
        k = bisect_left(self.cells, lo)
        return self.cells[k] if k < len(self.cells) and self.cells[k] <= hi else -1

    def __bytes__(self) -> bytes:
        raise PebblesValueError("a board this large cannot be traced; trace a smaller n")


_python_play = _play_with(_first_set=_first_set)
#: Boards above this many cells use the sparse board in plain Python.
DENSE_MAX_N = 10**7


def use_compiled(moves: int, work: int = 1) -> bool:
    """Whether to play ``moves`` encoded moves with the compiled loop: long streams, or
    shorter ones when Numba is loaded already (then it costs nothing to start).
    ``work`` weighs the Python loop's cost a move (lowering does about 5x a check's)."""
    limit = JIT_MIN_MOVES // 50 if "numba" in sys.modules else JIT_MIN_MOVES
    return moves * work >= limit and compiled_play() is not None


def _work_runs(aa: np.ndarray, bb: np.ndarray, limit: int | None = None,
               most: int | None = None) -> list[tuple[int, int]]:
    """Bounds ``(lo, hi)`` of consecutive runs of the moves whose cells are ``aa`` and
    ``bb`` (the encoding's columns), each of at most ``limit`` (default
    :data:`_CHUNK_WORK`) work plus one walk and of at most ``most`` moves (default: any
    number): ``forward a b`` checks ``b - a`` cells, any other move (``b = -1``) counts
    one. Two passes over the moves (about 2 ns a move: a third of the compiled check of a
    stream of short walks), more when they are cut (a ``recompute-all`` stream of n = 2e5
    steps walks 2e10 cells: 300 runs).

    Examples
    --------
    >>> import numpy as np
    >>> _work_runs(np.array([0, 0, 3, 5]), np.array([4, 2, -1, -1]), limit=4)
    [(0, 1), (1, 4)]
    >>> _work_runs(np.array([0, 0, 3, 5]), np.array([4, 2, -1, -1]), most=3)
    [(0, 3), (3, 4)]
    """
    m = len(aa)
    limit = _CHUNK_WORK if limit is None else limit
    cuts = np.arange(most, m, most) if most else np.zeros(0, dtype=np.int64)
    work = np.subtract(bb, aa)
    np.clip(work, 1, limit, out=work)  # a walk counts at most limit: sums stay in int64
    if int(work.sum()) > limit:
        np.cumsum(work, out=work)
        at = np.searchsorted(work, np.arange(limit, int(work[-1]), limit), side="right")
        cuts = np.union1d(cuts, at[(at > 0) & (at < m)])
    bounds = [0, *cuts.tolist(), m] if m else []
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@cache
def compiled_play() -> Any:
    """The rule loop compiled by Numba (cached on disk), or ``None`` without Numba."""
    try:
        import numba
    except ImportError:
        return None
    jit = numba.njit(cache=True, nogil=True)
    scan = numba.njit(inline="always")(R._first_set)  # inlined: short walks stay fast
    return jit(_play_with(_op=jit(R._op), _slot_peak=jit(R._slot_peak),
                          _first_set=scan, _alloc=jit(R._alloc)))


class _Game:
    """One game in progress: the board, the counters and the arrays of :func:`play`."""

    def __init__(self, n: int, game: Game, budget: int | None, disk_budget: int | None,
                 costs: ChainCosts | None, compiled: bool) -> None:
        self.n, self.game = n, game
        # Clamped to bounds no game reaches (at most n + 1 pebbles and n + 1 kept graphs,
        # one walking pebble; n + 1 disk pebbles): a budget of 2**63 or more still fits
        # the compiled loop's int64, and plays the same.
        self.budget = -1 if budget is None else min(budget, 2 * n + 3)
        self.dbudget = -1 if disk_budget is None else min(disk_budget, n + 1)
        self.compiled = compiled
        self.st = np.zeros(R.ST_SIZE, dtype=np.int64)
        self.st[R.ST_PAINTED], self.st[R.ST_REACH] = n, -1
        self.ft = np.zeros(3, dtype=np.float64)
        empty = np.zeros(0, dtype=np.float64)
        self.costs = (empty, empty, empty) if costs is None else (
            costs.forward, costs.backward, costs._memory_sizes())
        self.occ: Any
        self.dsk: Any
        if compiled:
            self.occ = np.zeros(2 * n + 2, dtype=np.uint8)  # pebbles, then kept graphs
            self.dsk = np.zeros(n + 1, dtype=np.uint8)
        else:  # plain Python indexes lists and bytearrays faster
            self.st, self.ft = self.st.tolist(), self.ft.tolist()
            dense = n <= DENSE_MAX_N
            self.occ = bytearray(2 * n + 2) if dense else _SparseBoard()
            self.dsk = bytearray(n + 1) if dense else _SparseBoard()
            self.costs = tuple(c.tolist() for c in self.costs)
        self.occ[0] = 1
        self.slot: Any = np.zeros(0, dtype=np.int64)
        self.free: Any = np.zeros(0, dtype=np.int64)
        self.lower = 0
        self.moves = 0

    def runs(self, kinds: Any, aa: Any, bb: Any,
             most: int | None = None) -> Iterator[tuple[Any, Any, Any]]:
        """Encoded columns as the runs :meth:`play` takes one at a time, of at most ``most``
        moves: for the compiled loop NumPy slices of bounded work too (:func:`_work_runs`:
        it returns to Python, and to Ctrl-C, only between runs), for plain Python (which
        returns to it at every move) lists of Python ints, which it indexes faster."""
        if self.compiled:
            for lo, hi in _work_runs(aa, bb, most=most):
                yield kinds[lo:hi], aa[lo:hi], bb[lo:hi]
            return
        size = most or max(len(kinds), 1)  # NumPy arrays or array("q") (move streams)
        for lo in range(0, len(kinds), size):
            yield tuple(c[lo:lo + size].tolist() for c in (kinds, aa, bb))

    def play(self, kinds: Sequence[int], aa: Sequence[int], bb: Sequence[int],
             ops: Any = None) -> None:
        """Play a chunk of moves; raise :class:`IllegalMoveError` at a broken rule."""
        m = len(kinds)
        fn = compiled_play() if self.compiled else _python_play
        if ops is None:
            ops = np.zeros(0, dtype=np.int64) if self.compiled else []
        fn(kinds, aa, bb, m, self.n, _GAME_CODE[self.game], self.budget, self.dbudget,
           self.occ, self.dsk, self.st, self.ft, *self.costs, self.lower, self.slot,
           self.free, ops)
        st = self.st
        if st[R.ST_CODE] != R.E_OK:
            k = int(st[R.ST_INDEX])
            mv = Move(MoveKind(int(kinds[k])), int(aa[k]), int(bb[k]))
            code = int(st[R.ST_CODE])
            raise IllegalMoveError(self.moves + k, mv, rule_text(code, mv, self),
                                   R.RULE_NAMES[code])
        self.moves += m

    def board(self) -> Board:
        occ = np.frombuffer(bytes(self.occ), dtype=np.uint8)[: self.n + 1]
        dsk = np.frombuffer(bytes(self.dsk), dtype=np.uint8)
        return Board(tuple(np.flatnonzero(occ[1:]).__add__(1).tolist()),
                     int(self.st[R.ST_PAINTED]), tuple(np.flatnonzero(dsk).tolist()))

    def check_end(self) -> None:
        st, n = self.st, self.n
        if self.game is Game.REVERSIBLE:
            if not self.occ[n]:
                raise IllegalMoveError(-1, None, f"the game ends with a pebble on cell {n}; "
                                       f"the stream left none there", R.END_CODE)
        elif st[R.ST_PAINTED] != 0:
            raise IllegalMoveError(
                -1, None, f"the game ends with every cell painted; cells "
                f"0..{int(st[R.ST_PAINTED]) - 1} were left unpainted", R.END_CODE)

    def result(self, boards: list[Board] | None, write_cost: float,
               read_cost: float) -> SimulationResult:
        st, ft = self.st, self.ft
        reach = int(st[R.ST_REACH])
        io = write_cost * int(st[R.ST_WRITES]) + read_cost * int(st[R.ST_READS])
        return SimulationResult(
            self.game, self.n, int(st[R.ST_STEPS]), int(st[R.ST_PAINTS]), int(st[R.ST_PEAK]),
            self.moves, None if reach < 0 else reach,
            None if boards is None else tuple(boards), int(st[R.ST_WRITES]),
            int(st[R.ST_READS]), int(st[R.ST_DPEAK]), float(ft[R.FT_TIME]) + io,
            float(ft[R.FT_PEAKBYTES]) if len(self.costs[2]) else float(st[R.ST_PEAK]),
            int(st[R.ST_TAPED]))


def rule_text(code: int, mv: Move, g: _Game) -> str:
    """The broken rule of code ``code`` (:mod:`pebbles._rules`), in words."""
    kind, a, b = mv
    name, n = kind.name.lower(), g.n
    painted = int(g.st[R.ST_PAINTED])
    lo = 0 if kind is MoveKind.PAINT else 1
    hint = ""
    first_paint = kind is MoveKind.PAINT and int(g.st[R.ST_PAINTS]) == 0 and a >= 0
    if first_paint and code in (R.E_PAINT_ORDER, R.E_CELL) and a != n - 1:
        hint = (f"; the first paint is paint {a}, so this schedule looks like one for "
                f"n={a + 1} steps, but n={n} was given")
    texts: dict[int, str] = {
        R.E_GAME: f"'{name}' is not a move of the {g.game.value} game",
        R.E_FWD_RANGE: f"forward i j needs 0 <= i < j <= {n}, got i={a}, j={b}",
        R.E_FWD_START: f"forward starts from cell {a}, which has no pebble",
        R.E_FWD_OVER: f"forward {a} {b} walks over a pebble: cells {a + 1}..{b} must be empty",
        R.E_CELL: f"{name} must name a cell in {lo}..{n}, got {a}",
        R.E_PAINT_ORDER: f"paint {a} needs cell {a + 1} painted and cell {a} unpainted; "
                         f"painted cells are {painted}..{n}",
        R.E_PAINT_NONE: f"paint {a} needs a pebble on cell {a}",
        R.E_REMOVE_NONE: f"remove {a}: cell {a} has no pebble",
        R.E_UNPLACE_NONE: f"unplace {a}: cell {a} has no pebble",
        R.E_UNPLACE_PREV: f"unplace {a} needs a pebble on cell {a - 1}",
        R.E_OCCUPIED: f"{name} {a}: cell {a} already has a pebble",
        R.E_NEED_PREV: f"{name} {a} needs a pebble on cell {a - 1}",
        R.E_MOVE_ONE: "move 1 would take the pebble of cell 0, which never moves; use place 1",
        R.E_BUDGET: f"needs {int(g.st[R.ST_REACHED])} pebbles at once but the budget is "
                    f"{g.budget}",
        R.E_STORE_NONE: f"store {a} needs a pebble in memory on cell {a}",
        R.E_STORE_DUP: f"store {a}: cell {a} already has a disk pebble",
        R.E_LOAD_NONE: f"load {a}: cell {a} has no disk pebble",
        R.E_LOAD_DUP: f"load {a}: cell {a} already has a pebble in memory",
        R.E_DISCARD_NONE: f"discard {a}: cell {a} has no disk pebble",
        R.E_DISK_BUDGET: f"needs {int(g.st[R.ST_REACHED])} disk pebbles at once but the disk "
                         f"budget is {g.dbudget}",
        R.E_GRAPH_HELD: f"{name} {a}: the kept graph of step {_holder(g, kind, a)} holds "
                        f"s_{a - (kind is MoveKind.MOVE)}; paint that step first",
        R.E_GRAPH_NEVER: f"tape {a}: the graph of step {a - 1} may never be kept (its "
                         f"ChainCosts.graph is inf); use place {a}",
        R.E_SLOTS: f"needs more than slots={len(g.free) + 1} (s_0 included); pass slots=None "
                   f"to size them from the schedule",
    }
    return texts[code] + hint


def _holder(g: _Game, kind: MoveKind, a: int) -> int:
    """The step whose kept graph holds the state a remove (or move) would drop."""
    c = a - 1 if kind is MoveKind.MOVE else a  # the cell losing its pebble
    return c if 0 <= c < g.n and g.occ[g.n + 1 + c] else c - 1


def _move_chunks(moves: Iterable[Move], size: int) -> Iterator[tuple[array, array, array]]:
    """Split a stream of moves into int64 arrays (``array("q")``) of kinds, first and second
    cells, of ``size`` moves (the last one fewer); a chunk is taken once the last one is
    played."""
    it = iter_moves(moves)
    index = 0
    while chunk := list(islice(it, size)):
        kinds, aa, bb = move_columns(chunk, index)
        if not 0 <= min(kinds) <= max(kinds) <= max(MoveKind):
            k = next(i for i, kind in enumerate(kinds) if not 0 <= kind <= max(MoveKind))
            raise PebblesValueError(
                f"move #{index + k} of the stream, {chunk[k]!r:.40}, is not a Move: its kind "
                f"{kinds[k]} is none of 0..{max(MoveKind)}; build moves with pebbles.place() "
                f"etc.")
        yield kinds, aa, bb
        index += len(chunk)


def simulate(
    moves: Iterable[Move] | np.ndarray,
    n: int,
    game: Game | str | None = None,
    budget: int | None = None,
    *,
    disk_budget: int | float | None = None,
    write_cost: float = 0.0,
    read_cost: float = 0.0,
    costs: ChainCosts | None = None,
    trace: bool = False,
    check_end: bool = True,
) -> SimulationResult:
    """Replay a move stream, check every rule, and measure it.

    Parameters
    ----------
    moves : iterable of Move, or an encoded (m, 3) int64 array
        The stream; consumed once (generators are fine).
    n : int
        Number of steps; the board has cells ``0..n``.
    game : {'checkpoint', 'inplace', 'reversible'}, optional
        The rules to play by; default the game of ``moves`` when it is a
        :class:`pebbles.Schedule` (``pebbles.schedule("bennett", 9)`` plays the
        reversible game), else ``'checkpoint'``.
    budget : int, optional
        Most memory pebbles allowed on cells 1..n at any moment.
    disk_budget : int, optional
        Most disk pebbles at any moment (two-level game; default None or ``math.inf``:
        unbounded).
    write_cost, read_cost : float
        Cost of a ``store`` and of a ``load``, in forward steps (added to ``time``).
    costs : ChainCosts, optional
        Per-step costs and per-state sizes (heterogeneous chains): ``time`` and
        ``peak_bytes`` are measured under them.
    trace : bool
        Record the board after each move (for drawing; O(n) a move).
    check_end : bool
        Check the end condition once the stream is exhausted.

    Returns
    -------
    SimulationResult

    Raises
    ------
    IllegalMoveError
        Naming the move's index, the move and the rule it breaks.
    PebblesTypeError
        If ``moves`` is a str, a dict or not iterable, or ``trace`` or ``check_end`` is
        not a bool (or another argument has the wrong type).

    Examples
    --------
    >>> from pebbles import simulate, treeverse_paper
    >>> r = simulate(treeverse_paper(20, delta=3), 20)
    >>> r.forward_steps, r.backward_steps, r.peak_states
    (45, 20, 4)
    """
    game = _default_game(moves, game)
    n, game, budget, disk_budget = _check_args(n, game, budget, disk_budget, costs)
    write_cost = check_cost("write_cost", write_cost)
    read_cost = check_cost("read_cost", read_cost)
    trace, check_end = check_bool("trace", trace), check_bool("check_end", check_end)
    if isinstance(moves, np.ndarray):
        arr = checked_encoding(moves, "moves")
        compiled = not trace and use_compiled(len(arr))
        blocks: Iterable[tuple[Any, ...]] = [tuple(  # the compiled loop's are contiguous
            np.ascontiguousarray(arr[:, i]) if compiled else arr[:, i] for i in range(3))]
    else:
        compiled, blocks = False, _move_chunks(moves, 1 if trace else SIMULATE_CHUNK)
    g = _Game(n, game, budget, disk_budget, costs, compiled)
    boards: list[Board] | None = [] if trace else None
    most = 1 if trace else None if compiled else SIMULATE_CHUNK
    for block in blocks:
        for run in g.runs(*block, most=most):  # back in Python between runs: Ctrl-C
            g.play(*run)
            if boards is not None:
                boards.append(g.board())
    if check_end:
        g.check_end()
    return g.result(boards, write_cost, read_cost)


def _default_game(moves: object, game: Game | str | None) -> Game | str:
    """``game``, or when it is None the game of ``moves`` if it is a Schedule, else
    ``'checkpoint'``."""
    if game is not None:
        return game
    from ._registry import Schedule  # the registry imports this module

    return moves.game if isinstance(moves, Schedule) else Game.CHECKPOINT


def _check_args(n: object, game: object, budget: object, disk_budget: object,
                costs: object) -> tuple[int, Game, int | None, int | None]:
    n = check_steps(n)
    game = Game.coerce(game)  # type: ignore[arg-type]
    if budget is not None:
        budget = check_int("budget", budget, 0)
    disk_budget = check_disk_budget(disk_budget)
    if costs is not None:
        if not isinstance(costs, ChainCosts):
            raise PebblesTypeError(f"costs={costs!r} must be a pebbles.ChainCosts")
        if costs.n != n:
            raise PebblesValueError(f"costs are for a chain of n={costs.n} steps, but n={n}; "
                                    f"pass costs of n={n} steps")
    return n, game, budget, disk_budget  # type: ignore[return-value]


def play_one(board: Board, move: Move, n: int, game: Game,
             budget: int | None = None) -> tuple[Board, int] | None:
    """The board after one move and the steps it cost, or ``None`` if the move is illegal.

    For searches over boards (:func:`pebbles.brute_force`): the rules are
    :func:`pebbles._rules.play`'s, as everywhere.
    """
    g = _Game(n, game, budget, None, None, False)
    for c in board.pebbles:
        g.occ[c] = 1
    for c in board.disk:
        g.dsk[c] = 1
    g.st[R.ST_PAINTED], g.st[R.ST_COUNT] = board.painted_from, len(board.pebbles)
    g.st[R.ST_DCOUNT] = len(board.disk)
    _python_play([int(move[0])], [move[1]], [move[2]], 1, n, _GAME_CODE[game], g.budget, g.dbudget,
           g.occ, g.dsk, g.st, g.ft, *g.costs, 0, g.slot, g.free, [])
    if g.st[R.ST_CODE] != R.E_OK:
        return None
    return g.board(), int(g.st[R.ST_STEPS])


def expand(moves: Iterable[Move], game: Game | str | None = None) -> Iterator[Move]:
    """Rewrite each ``forward i j`` as primitive moves (for drawing and tracing).

    In the checkpoint game the walk is ``place i+1, place i+2, remove i+1, ...``;
    in the in-place game it is ``place i+1, move i+2, ..., move j``. ``game``
    defaults, as in :func:`simulate`, to the game of ``moves`` when it is a
    :class:`pebbles.Schedule`, else ``'checkpoint'``.

    Parameters
    ----------
    moves : iterable of Move
        A move stream or a :class:`pebbles.Schedule`; read lazily.
    game : Game or str, optional
        ``'checkpoint'``, ``'inplace'`` or ``'reversible'``; only ``'inplace'``
        walks by ``move``, the others by ``place`` / ``remove``.

    Yields
    ------
    Move
        The moves of ``moves``, each ``forward`` replaced by its primitive moves.

    Raises
    ------
    PebblesTypeError
        If ``moves`` is a str, a dict or not iterable.
    PebblesValueError
        If ``game`` is not a game.

    Examples
    --------
    >>> from pebbles import expand, forward
    >>> [str(m) for m in expand([forward(0, 3)])]
    ['place 1', 'place 2', 'remove 1', 'place 3', 'remove 2']
    >>> [str(m) for m in expand([forward(0, 3)], "inplace")]
    ['place 1', 'move 2', 'move 3']
    """
    game = Game.coerce(_default_game(moves, game))
    return _expand(iter_moves(moves), game)


def _expand(moves: Iterator[Move], game: Game) -> Iterator[Move]:
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
