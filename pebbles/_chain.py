"""Optimal checkpointing of heterogeneous chains: per-step costs and state sizes.

Implements the dynamic programme of Beaumont, Eyraud-Dubois, Herrmann, Joly and
Shilova, "Optimal checkpointing for heterogeneous chains: how to train deep
neural networks with limited memory" (2019, the ``rotor`` package), rederived
for the checkpoint game of Liu & Xu (appendix) as played by
:func:`pebbles.simulate`.

Model (:class:`pebbles.ChainCosts`; ``pebbles.simulate(..., costs=...)`` measures
any stream under it). Step ``i`` (``0 <= i < n``) computes ``s_{i+1}`` from
``s_i`` in time ``forward[i]``; backward step ``i`` (``paint i``, from ``s_i``
and the gradient of ``s_{i+1}``) takes ``backward[i]``; state ``s_i`` occupies
``sizes[i]`` bytes. The memory in use is the sum of ``sizes[c]`` over the
pebbled cells ``c = 1..n``: like cell 0 in the game, ``s_0`` (the caller's
input) is never counted, ``sizes[0]`` is kept only for completeness. A
``forward i j`` walk holds, at its worst, two consecutive states ``s_c`` and
``s_{c+1}`` (``i < c < j``; just ``s_{i+1}`` for ``j = i + 1``), exactly as
:func:`pebbles.expand` spells it out.

Dynamic programme. ``C(i, j, m)``: least forward time to paint cells
``i..j-1`` when cell ``i`` holds a pebble, cell ``j`` is painted, cells
``i+1..j`` are empty and ``m`` memory is free (for everything right of ``i``)::

    C(i, i+1, m) = 0
    C(i, j, m)   = min over i < k < j with walk(i, k) <= m of
                   F(i, k) + C(k, j, m - size_k) + C(i, k, m)

``F(i, k)`` is the walk's time and ``walk(i, k)`` its peak memory (above).
The schedule walks to the first checkpoint ``k``, reverses ``k..j`` holding
``s_k``, frees it and reverses ``i..k``. Total time is ``C(0, n, memory)`` plus
every backward cost (each backward step runs once). With unit sizes and costs
this is :func:`pebbles.dp_table`'s recursion, whose optimum is
:func:`pebbles.min_forward_steps`; the tests check both that and, for small
random chains, the exhaustive search :func:`hetero_brute_force`.

Kept graphs (Beaumont et al.'s ``F_all``; ``ChainCosts.graph``). A step may also
be run with its graph kept: ``tape i+1`` computes ``s_{i+1}`` from the stored
``s_i`` and keeps the step's saved activations, ``graph[i]`` bytes besides
``s_i`` and ``s_{i+1}``, until ``paint i``, which then replays nothing. The
game's accounting (:func:`pebbles.simulate`): the tape holds ``sizes[i+1] + graph[i]``
more bytes at once; while the graph is kept neither ``s_i`` nor
``s_{i+1}`` may be removed (the graph holds them: the rule keeps the count exact
whatever the step saves); the served paint frees ``graph[i]``; any other paint
``i`` replays step i with its graph and so holds ``sizes[i+1] + graph[i]`` for
the moment (not counted where ``graph[i]`` is inf, nor without a graph: the
former model). ``backward[i]`` is read, as for an executor that stores only
states, as the backward step *including* the replay of step i with its graph;
the tape costs ``forward[i]`` and the served paint ``backward[i] - forward[i]``,
so a kept graph adds nothing to the time. The programme gains one branch::

    C(i, j, m) = min( the checkpoint branch above,
                      C(i+1, j, m - tape_i) )   if tape_i <= m,
    tape_i     = size_{i+1} + graph[i]     (one sum, rounded as a pair is;
                                             M + 1 units for an inf graph)

(``tape i+1``; reverse ``i+1..j`` holding ``s_{i+1}`` and the graph; ``paint i``
from the graph; ``remove i+1``), and the base case becomes ``C(i, i+1, m) = 0``
if ``tape_i <= m`` (the replay fits; always for an inf graph), else ``inf``. For
``i = n - 1`` the schedule tapes ``n`` when it fits (same model time), since the
executor would otherwise run step n-1 once more to return ``s_n``. The programme
is optimal among persistent schedules (each checkpoint kept until its segment is
reversed, the class of Beaumont et al.); the exhaustive search
:func:`hetero_brute_force`, over all schedules, is lower on a few small chains
(4 of 400 random ones, n <= 6): with replays that need room, dropping a
checkpoint before a paint and recomputing it afterwards can save a little. So can
sizes that differ without any graph: a chain of 8 steps under 10 bytes takes 2051
with ``s_2`` dropped for ``s_3`` before ``s_2``'s segment is reversed, 2075 for the
best persistent schedule (the tests pin it). The
moves are the existing ones plus ``tape`` -- a new move rather than ``place``
plus a costs field, because whether a graph is kept is a property of one run of
a step (the same step is also run without a graph, to walk past it), and the one
simulator must see it to count its bytes and the replay it saves. ``graph=None``
or all ``inf`` gives exactly the schedules without kept graphs; ``graph=0``
(a graph that saves only the step's input and output) covers what the
``tape=True`` model below saves, with replays now counted.

Held gradients (``ChainCosts.grads``, ``ChainCosts.cotangents``). Backward
step ``i`` may make memory that stays held until the end (the gradients of the
parameters it is the last to use, ``grads[i]``) and makes the cotangent of
``s_i`` (``cotangents[i]``), held until backward step ``i-1`` has used it. While
cells ``< j`` are reversed, ``H(j) = grads[j] + ... + grads[n-1] + cotangents[j]``
bytes are held (``H(n) = 0``: like ``s_0``, the caller's cotangent of ``s_n`` is
not counted), and paint ``i`` holds ``X(i) = cotangents[i+1]`` more while it runs.
Counting ``m`` as the room there would be without them (the limit less the
stored states) keeps the recursion as it is; only the tests that something fits
change: a walk in ``C(i, j, m)`` needs ``walk(i, k) + H(j) <= m``, a paint ``i``
(base case, or served by a kept graph) its bytes ``+ H(i) + X(i) <= m``, a tape
in ``C(i, j, m)`` its bytes ``+ H(j) <= m``. The tables gain the walks' peaks
``W[i, d]`` and the split one mask, about 3.5x the time. Optimal among
persistent schedules (an exhaustive enumeration of those agrees on small
chains); the search over all schedules is lower on a few small chains near the
least memory (13 of 1200 in a random sample, n <= 6), where dropping a
checkpoint before the gradients grow and recomputing it pays.

Memory levels. Memory is counted in units of a quantum ``q``: ``m`` takes the
values ``0..M`` and size ``s`` costs ``ceil(s / q)`` units. When the sizes and the
sums the tests form are integers, of greatest common divisor ``g``, every test
compares a multiple of ``g`` with the limit, so the limit counts as
``floor(memory / g) g`` (a limit between two multiples has the schedules of the
multiple below, and the same time); when ``M = floor(memory / g)`` is at most
``levels``, ``q = g`` and the optimum is exact. Otherwise ``q = memory / levels`` (of
that floored limit; ``M = levels``), sizes are rounded up, and the schedule is still
feasible under the true limit but may be slower than the optimum: each size counts
up to one quantum more, which can cost much time, about twice on chains whose
sizes differ in magnitude (states of 1e6 and 1 bytes under 1000001: 207 at
``levels=100``, 105 at ``levels=1000001``).
To tell, compare with a larger ``levels=``. The rounding is decided in exact rational
arithmetic where the float quotient is within 1e-9 of a whole number (``0.3``
bytes at ``q = 0.6 / 100`` is 50 units, not the float quotient's 51; ``0.1`` at
``q = 0.3 / 3`` is 2 units, since three float ``0.1`` pass ``0.3``), so the
schedule is exact whenever every size and the limit are multiples of the quantum.
``sizes[0]`` takes part in nothing. A walk's two states are rounded as one sum,
and so are a stored state with the paint that follows it (its replay and, with
``grads`` or ``cotangents``, the bytes held), and a walk with the bytes held
meanwhile: the schedule of :func:`hetero_min_memory` fits in ``M`` units, so
every limit of at least that many bytes is finishable at any ``levels``. Where
rounding costs time, a simple schedule can be faster: the result is never slower
than ``store_all`` (or, with kept graphs, keeping every graph: one segment of
:func:`sequential_segments`) measured by :func:`pebbles.simulate` under the costs,
when that fits in the limit, and :func:`hetero_time` is the simulator's time of
the schedule returned.

Complexity: ``O(n^3 M / 6)`` additions and comparisons (for every segment
length, one vectorised NumPy min over the split point, all start cells and all
memory levels at once, over tables stored by length first so that each split
reads contiguous slabs: about the same cost an entry at any ``M``) and
``O(n^2 M)`` memory (two float64 tables of ``(M + 1) (n + 1)^2`` entries: 406 MB
at n = 500, M = 100; a third, ``C`` itself, with kept graphs: 609 MB). Time on
one core at n = 500, M = 100: about 3-4 s (n of about 340 in one second), the
same with kept graphs, 6.5 s with held gradients and cotangents (n of about 270
in one second). The kept-graph branch
adds ``O(n^2 M)``. A uniform chain with kept graphs (equal forward costs, state
sizes and graph sizes) depends only on segment lengths: tables
of ``(n + 1) (M + 1)`` entries, ``O(n^2 M)`` time (n = 1000, M = 56: 0.1 s).
The schedule itself is ``3 n`` moves at most (``4 n`` with tapes). Larger tables
are refused at once with a :class:`pebbles.PebblesValueError` (``_MAX_ENTRIES``
entries a table, ``_MAX_WORK`` operations: n = 500 at 100 levels fits, n = 1000 at
24) that names fewer levels, a uniform budget or segments instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np

from ._baselines import store_all
from ._errors import PebblesTypeError, PebblesValueError
from ._moves import Move, MoveKind, encode
from ._optional import require
from ._simulator import ChainCosts, simulate
from ._validation import check_bool, check_int, check_steps

__all__ = [
    "hetero_brute_force",
    "hetero_min_memory",
    "hetero_optimal",
    "hetero_time",
    "sequential_segments",
]

_PLACE, _REMOVE, _PAINT, _FORWARD, _TAPE = (MoveKind.PLACE, MoveKind.REMOVE, MoveKind.PAINT,
                                            MoveKind.FORWARD, MoveKind.TAPE)

# Size guard of the dynamic programme (:func:`_check_size`). One table holds at most
# 4e7 float64 entries (320 MB; three with kept graphs, 960 MB), the fill at most 4.2e9
# additions and comparisons. Both fills run at about the same cost an operation at any
# number of levels, so the limit takes about 6-10 s on one core for a general chain
# (1.2-2.5 ns an operation, measured on a shared 2-core machine: n = 1000 at levels=24,
# 4.2e9, 6.1 s; n = 1840 at levels=3, 4.2e9, 6.4 s; with kept graphs about the same),
# about 13 s with held gradients and cotangents (3 ns: the walk tests' rounding), and up
# to twice that on a busy core. The goal, n = 500 steps at levels=100 (2.5e7 entries,
# 2.1e9 operations: 3-4 s, 6.5 s with held gradients), fits; so does n = 1000 at
# levels=24, or a uniform chain with kept graphs of n = 2000 at levels=2000, whose fill
# runs at about 1 ns (n = 20000 at 20 levels, 4.2e9: 4 s on a busy machine). The
# schedule's time is summed in O(moves) (:func:`_time`), not by the simulator's loop
# over every walked step (near the least memory, n^2 / 2 of them).
_MAX_ENTRIES = 40_000_000
_MAX_WORK = 4_200_000_000
# Largest chains :func:`hetero_brute_force` searches: boards of up to 2^n (n + 1)
# (12: 53 248, about 10 s) and, where a graph may be kept, 4^n (n + 1) (8: about 5 s).
_BRUTE_MAX_N = 12
_BRUTE_MAX_N_KEPT = 8


def hetero_min_memory(costs: ChainCosts) -> float:
    """Fewest bytes with which the schedule that recomputes every state from ``s_0``
    finishes the chain; :func:`hetero_optimal` finishes with any limit of at least that.

    Recomputing ``s_l`` from ``s_0`` holds ``s_1``, then ``s_c`` and ``s_{c+1}`` for
    ``c < l`` (every schedule computes each pair at least once, so needs the most
    of these when nothing else is held); backward step ``l`` holds ``s_l`` (``l >= 1``)
    and, with ``costs.graph``, ``s_{l+1}`` and the graph of step ``l`` (kept or
    replayed, where that graph is finite). With ``costs.grads``, the gradients of
    steps ``>= l`` are held during backward step ``l`` (every schedule needs that
    much) and those of steps ``> l`` while ``s_l`` is recomputed (a schedule that
    keeps ``s_l`` from earlier on instead may need a little less).

    Parameters
    ----------
    costs : ChainCosts
        Forward and backward cost of every step, size of every state (and, where
        given, the graphs, grads and cotangents).

    Returns
    -------
    float
        The least memory, in bytes (the units of ``costs.sizes``).

    Raises
    ------
    PebblesTypeError
        If ``costs`` is not a :class:`pebbles.ChainCosts` (whose constructor refuses a
        chain of no step).
    PebblesValueError
        If the sizes, graphs, grads and cotangents sum past the largest float (the
        byte counts would overflow; rescale them).

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import ChainCosts, hetero_min_memory
    >>> hetero_min_memory(ChainCosts(np.ones(5), np.ones(5), np.full(6, 8.0)))
    16.0
    >>> hetero_min_memory(ChainCosts(np.ones(3), np.ones(3), np.full(4, 8.0),
    ...                              grads=np.array([4.0, 2.0, 8.0])))  # paint 1: s_1, 2 + 8
    18.0
    """
    return _needs(costs)[1]


def _needs(costs: ChainCosts) -> tuple[float, float]:
    """(bytes every schedule needs, :func:`hetero_min_memory`): the most of the walks'
    pairs and the paints with what the backward steps hold, then the same with the
    walks also holding what is held while ``s_l`` is recomputed."""
    s, n = _check_costs(costs).sizes, costs.n
    held = _held(costs)
    paints = float((s[:n] * (np.arange(n) > 0) + _paint_bytes(s, costs.graph, held)).max())
    held = np.zeros(2 * n + 1) if held is None else held
    walks = np.maximum.accumulate(np.concatenate(([0.0, s[1]], s[1:n - 1] + s[2:n])))[:n]
    return max(float(walks.max()), paints), max(float((walks + held[1:n + 1]).max()), paints)


def _paint_bytes(sizes: np.ndarray, graph: np.ndarray | None,
                 held: np.ndarray | None) -> np.ndarray:
    """What paint ``i`` holds besides ``s_i``: its replay (``sizes[i+1] + graph[i]`` where
    that graph is finite) plus, with ``held`` (:func:`_held`), ``H(i) + X(i)``; the one
    float sum that :func:`hetero_min_memory` and the programme's tests both use."""
    n = len(sizes) - 1
    paint = np.zeros(n)
    if graph is not None:
        finite = np.isfinite(graph)
        paint = np.where(finite, sizes[1:] + np.where(finite, graph, 0.0), 0.0)
    return paint if held is None else paint + held[:n] + held[n + 1:]


def _quantum(sizes: np.ndarray, memory: float, levels: int,
             graph: np.ndarray | None = None,
             held: np.ndarray | None = None) -> _Units:
    """The chain in memory units (:class:`_Units`), each sum a test forms rounded up once.

    ``units[c] = ceil(sizes[c] / q)`` (``units[0] = 0``: s_0 is not counted, nor is
    ``sizes[0]`` used anywhere); ``pairs[c] = ceil((sizes[c - 1] + sizes[c]) / q)``
    for ``2 <= c <= n``, the peak of a walk step from ``s_{c-1}`` to ``s_c``. With
    kept graphs, ``tunits[i]`` is ``tape i+1``'s ``ceil((sizes[i+1] + graph[i]) / q)``,
    and ``M + 1`` (never fits) where ``graph[i]`` is inf; else ``tunits`` is None.
    ``paints[i]``: what paint ``i`` holds besides ``s_i``, its replay (``sizes[i+1] +
    graph[i]`` where finite) plus, with ``held`` (:func:`_held`: ``H(0..n)`` then
    ``X(0..n-1)``), ``H(i) + X(i)``; ``stored_paint[i]``: ``s_i`` (``i >= 1``) with
    paint ``i``, one sum, so that the schedule of :func:`hetero_min_memory` fits in
    ``M`` units whenever it fits in ``memory`` bytes. The exact quantum is taken
    where its ``M`` is at most ``levels`` (:func:`_units`).
    """
    n = len(sizes) - 1
    stored = np.concatenate(([0.0], sizes[1:]))
    pair_bytes = np.concatenate(([0.0, 0.0], stored[1:n] + stored[2:]))
    finite = None if graph is None else np.isfinite(graph)
    tapes = None if graph is None else stored[1:] + np.where(finite, graph, 0.0)
    paint_bytes = _paint_bytes(stored, graph, held)
    sums = [pair_bytes, paint_bytes, stored[:n] + paint_bytes]  # for the exact quantum
    sums += ([] if tapes is None else [tapes]) + ([] if held is None else [held[:n + 1]])
    scale, mmax, whole = _units(np.concatenate([stored, *sums]), memory, levels)
    tests = None if held is None else _Held(
        held[:n + 1], scale, pair_bytes, stored,
        None if tapes is None else np.where(finite, tapes, np.inf))
    return _Units(scale(stored), scale(pair_bytes), mmax,
                  None if tapes is None else np.where(finite, scale(tapes), mmax + 1),
                  scale(paint_bytes), scale(stored[:n] + paint_bytes), tests, scale, whole)


@dataclass(frozen=True)
class _Held:
    """The tests of what the backward steps hold (:func:`_held`), each sum turned into
    units at once by ``scale``: walks ``walk(i, k) + H(j)`` (walk peaks in bytes, from
    ``sizes`` and ``pair_bytes``) and tapes ``tape_i + H(j)`` (``tapes``, inf where a
    graph is never kept)."""

    h: np.ndarray
    scale: _Scale
    pair_bytes: np.ndarray
    sizes: np.ndarray
    tapes: np.ndarray | None

    @cached_property
    def walks(self) -> np.ndarray:
        """``W[i, d]``: peak bytes of the walk ``i -> i + d`` (0 where undefined)."""
        n = len(self.sizes) - 1
        w = np.zeros((n + 1, n + 1))
        walk = self.sizes[1:].copy()
        w[:n, 1] = walk
        for d in range(2, n + 1):
            walk = np.maximum(walk[:n - d + 1], self.pair_bytes[d:])
            w[:n - d + 1, d] = walk
        return w

    def tape_fits(self, i: Any, j: Any, m: Any) -> Any:
        """Whether ``tape i+1`` fits in ``m`` units while ``H(j)`` is held (never where
        step i's graph is never kept)."""
        t = self.tapes[i] + self.h[j]
        return np.isfinite(t) & (self.scale(np.where(np.isfinite(t), t, 0.0)) <= m)


@dataclass(frozen=True)
class _Units:
    """A chain in memory units (:func:`_quantum`): states, walk pairs, levels ``M``,
    tapes (None without kept graphs), paints, a stored state with its paint, the
    tests of held bytes (None without grads or cotangents), the rule from bytes to
    units and, where every size is a whole number, the ``M`` of the exact quantum
    (:func:`_units`)."""

    units: np.ndarray
    pairs: np.ndarray
    mmax: int
    tunits: np.ndarray | None
    paints: np.ndarray
    stored_paint: np.ndarray
    held: _Held | None
    scale: _Scale | None = None
    whole: int | None = None

    @property
    def exact(self) -> bool:
        """Whether every test counts bytes exactly (no size rounded up): the quantum
        divides every size and sum, or the limit is 0 or inf."""
        s = self.scale
        return s is None or bool(s.g) or not 0 < s.memory < math.inf


# Relative distance of ``x * levels / memory`` from a whole number below which
# :class:`_Scale` decides the rounding exactly (a float product errs by about 2e-16).
_NEAR = 1e-9


@dataclass(frozen=True)
class _Scale:
    """Bytes to memory units: ``x // g`` when every quantity is a multiple of ``g`` (exact),
    else ``ceil(x * levels / memory)`` computed exactly (``levels + 1`` above ``memory``,
    so at most ``levels`` for what fits); with ``memory = 0``, 1 for anything above 0."""

    memory: float
    levels: int
    g: int = 0
    exact: dict = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, x: Any) -> Any:
        x = np.asarray(x, dtype=np.float64)
        if self.memory == 0:
            return (x > 0).astype(np.int64)
        if self.g:
            return (x // self.g).astype(np.int64)
        flat = x.reshape(-1)
        over = flat > self.memory
        p = np.where(over, 0.0, flat) / self.memory * self.levels
        k = np.rint(p)
        u = np.ceil(p)
        near = np.abs(p - k) <= _NEAR * np.maximum(k, 1.0)
        if math.isfinite(self.memory) and near.any():
            u[near] = [self._ceil(v, w) for v, w in zip(flat[near], k[near], strict=True)]
        return np.where(over, self.levels + 1, u).astype(np.int64).reshape(x.shape)

    def _ceil(self, x: float, k: float) -> int:
        """``ceil(x * levels / memory)`` in exact rational arithmetic, for ``x * levels /
        memory`` within float error of the whole number ``k``."""
        key = float(x)
        if key not in self.exact:
            exact = Fraction(key) * self.levels <= int(k) * Fraction(self.memory)
            self.exact[key] = int(k) if exact else int(k) + 1
        return self.exact[key]


def _units(ints: np.ndarray, memory: float, levels: int) -> tuple[_Scale, int, int | None]:
    """(the rule from bytes to units, a :class:`_Scale`; ``M``; the exact ``M``, None where
    the byte counts are not whole numbers).

    ``ints``: every size (``sizes[0]`` as 0) and every sum the tests form. Where they are
    integers of greatest common divisor ``g``, each test compares a multiple of ``g``
    with the limit, so ``memory`` counts as ``floor(memory / g) g`` (the same schedules
    fit) and ``q = g``, ``M = floor(memory / g)``, exact, when that ``M`` is at most
    ``levels``; else ``q = memory / levels`` (of that floored limit), ``M = levels``."""
    if not memory > 0:  # memory 0: only zero-size states can ever be held
        return _Scale(0.0, 0), 0, 0
    g = _divisor(ints)
    if not g or not math.isfinite(memory):
        return _Scale(memory, levels), levels, None
    whole = int(Fraction(memory) // g)
    if whole <= levels:
        return _Scale(float(whole * g), levels, g), whole, whole
    return _Scale(float(whole * g), levels), levels, whole


def _divisor(ints: np.ndarray) -> int:
    """The greatest common divisor of ``ints`` when they are whole numbers below 2^53, else
    0 (also when all are 0)."""
    if np.all(ints < 2.0**53) and np.all(ints == np.round(ints)):
        return int(np.gcd.reduce(ints.astype(np.int64)))
    return 0


def _tables(fwd: np.ndarray, q: _Units, tape: bool = False) -> tuple[Any, Any, Any]:
    """Fill ``E[i, d, m] = C(i, i+d, m) + F(i, i+d)`` (inf where the walk i -> i+d needs
    more than m) and ``D[j, d, m] = C(j-d, j, m - units[j-d])`` (inf where m is too small;
    for ``d = 1`` the stored state and its paint are tested as one sum,
    ``q.stored_paint``); with kept graphs (``q.tunits``) also ``K[i, d, m] = C(i, i+d, m)``
    itself, for the kept-graph branch ``C(i, j, m) <= C(i+1, j, m - tunits[i])``; then
    ``C(i, i+1, m) = 0`` needs ``m >= q.paints[i]`` (the replay's graph and what the
    backward steps hold); with ``q.held``, the walks' tests with ``H(j)`` in the split
    (:func:`_min_split`).

    Stored by length first (``E[i, d, m]`` at ``[d, i, m]``, ``D[j, d, m]`` at ``[d, j, m]``,
    ``K`` as ``E``): one length's entries for every start cell and level are one
    contiguous slab, written at once and read by the split in slabs (:func:`_min_split`)."""
    n, units, held = fwd.shape[0], q.units, q.held
    prefix = np.concatenate(([0.0], np.cumsum(fwd)))
    lev = np.arange(q.mmax + 1)
    e = np.full((n + 1, n + 1, q.mmax + 1), np.inf)
    d_ = np.full((n + 1, n + 1, q.mmax + 1), np.inf)
    kk = None if q.tunits is None else np.full((n + 1, n + 1, q.mmax + 1), np.inf)
    walk = units[1:, None].copy()  # peak units of the walk i -> i+1
    starts = np.arange(n)[:, None]
    first = 0.0 if tape else (prefix[1:] - prefix[:-1])[:, None]
    paint = q.paints[:, None]
    e[1, :n] = np.where(lev >= np.maximum(walk, paint), first, np.inf)
    d_[1, 1:] = np.where(lev >= q.stored_paint[:, None], 0.0, np.inf)
    if kk is not None:
        kk[1, :n] = np.where(lev >= paint, 0.0, np.inf)
    for d in range(2, n if kk is None else n + 1):
        m = n - d + 1
        c = _min_split(e, d_, d, m, held)
        if kk is not None:
            c = np.minimum(c, _kept(kk, q.tunits, d, m, lev, held, q.paints))
            kk[d, :m] = c
        walk = np.maximum(walk[:m], q.pairs[d:, None])
        e[d, :m] = np.where(lev >= walk, c + (prefix[d:] - prefix[:m])[:, None], np.inf)
        need = units[:m, None]
        d_[d, d:] = np.where(lev >= need, c[starts[:m], np.maximum(lev - need, 0)], np.inf)
    return e, d_, kk


def _kept(kk: np.ndarray, tunits: Any, d: int, m: int, lev: np.ndarray,
          held: _Held | None = None, punits: Any = None) -> np.ndarray:
    """Kept-graph branch of ``C(i, i+d, .)`` for ``i < m``: ``tape i+1`` (step i run with
    its graph, ``tunits[i]`` units: s_{i+1} and the graph), ``C(i+1, i+d)`` in what is
    left, then ``paint i`` from the graph (no replay; the tape with ``H(i+d)`` held, the
    paint with ``punits[i]``: :func:`_quantum`) and ``remove i+1``. The run costs
    ``forward[i]`` and the paint saves it: ``+ 0``."""
    idx = lev[None, :] - tunits[:m, None]
    vals = kk[d - 1, np.arange(1, m + 1)[:, None], np.maximum(idx, 0)]
    if held is None:
        return np.where(idx >= 0, vals, np.inf)
    cells = np.arange(m)[:, None]
    fits = (idx >= 0) & (lev >= punits[:m, None]) & held.tape_fits(cells, cells + d, lev)
    return np.where(fits, vals, np.inf)


def _min_split(e: np.ndarray, d_: np.ndarray, d: int, m: int,
               held: _Held | None = None) -> np.ndarray:
    """``C(i, i+d, .)`` for ``i < m``: min over the split ``k = i + 1 + t``. For each ``t``
    the terms of every start cell and level are one contiguous slab of ``E`` (length
    ``t + 1``) and one of ``D`` (length ``d - 1 - t``, cells ``d..n``), ``m (M + 1)``
    entries, so the sum and the min run over long rows at any number of levels; in
    chunks of ``t`` that keep the temporary array near 2 MB (cache-sized). With ``held``,
    the walk ``i -> k`` (``W[i, k-i]`` bytes) runs while ``H(i+d)`` is held (:func:`_held`):
    splits whose walk then exceeds the level are inf."""
    levels = e.shape[2]
    out = np.empty((m, levels))
    part = np.empty((m, levels))
    ts = max(1, _CHUNK // (m * levels))
    buf = np.empty(min(ts, d - 1) * m * levels)
    lev = np.arange(levels)
    for lo in range(0, d - 1, ts):
        hi = min(lo + ts, d - 1)
        tmp = buf[:(hi - lo) * m * levels].reshape(hi - lo, m, levels)
        np.add(e[1 + lo:1 + hi, :m], d_[d - 1 - lo:d - 1 - hi:-1, d:], out=tmp)
        if held is not None:
            need = held.scale(held.walks[:m, 1 + lo:1 + hi].T + held.h[None, d:])
            np.putmask(tmp, lev[None, None, :] < need[:, :, None], np.inf)
        if lo == 0:
            np.min(tmp, axis=0, out=out)
        else:
            np.minimum(out, np.min(tmp, axis=0, out=part), out=out)
    return out


# Entries of :func:`_min_split`'s temporary array (2 MB of float64).
_CHUNK = 2**18


class _Plan:
    """The filled tables of one chain and limit, asked ``split`` and ``kept`` by the
    schedule's reconstruction (general chains: :func:`_tables`' by length, start cell and
    level)."""

    def __init__(self, e: np.ndarray, d_: np.ndarray, kk: Any, tunits: Any,
                 held: _Held | None = None, punits: Any = 0) -> None:
        self.e, self.d_, self.kk, self.tunits = e, d_, kk, tunits
        self.held, self.punits = held, punits

    def split(self, i: int, j: int, m: int) -> tuple[float, int]:
        """(C(i, j, m) over checkpoint splits, best first checkpoint k) for j > i + 1."""
        d = j - i
        cost = self.e[1:d, i, m] + self.d_[d - 1:0:-1, j, m]
        if self.held is not None:
            fits = self.held.scale(self.held.walks[i, 1:d] + self.held.h[j]) <= m
            cost = np.where(fits, cost, np.inf)
        t = int(np.argmin(cost))
        return float(cost[t]), i + 1 + t

    def tape_units(self, i: int) -> int:
        """Units of ``tape i+1``; more than any level when graphs are not kept."""
        return 1 << 62 if self.tunits is None else int(self.tunits[i])

    def kept(self, i: int, j: int, m: int) -> float:
        """C(i+1, j, m - tunits[i]): the kept-graph branch (inf when off or too big)."""
        if self.tape_units(i) > m or self.held is not None and not (
                self.punits[i] <= m and self.held.tape_fits(i, j, m)):
            return math.inf
        return float(self.kk[j - i - 1, i + 1, m - self.tape_units(i)])


class _UniformPlan(_Plan):
    """Tables of a uniform chain by segment length only (``O(n^2 M)`` time, ``O(n M)``
    memory), by level first: ``E[m, d]`` and ``K[m, d]`` as in :func:`_tables`, and ``D``
    reversed in the length, ``D[d, m]`` at ``[m, n - d]``."""

    def split(self, i: int, j: int, m: int) -> tuple[float, int]:
        d, n = j - i, self.e.shape[1] - 1
        cost = self.e[m, 1:d] + self.d_[m, n - d + 1:n]
        t = int(np.argmin(cost))
        return float(cost[t]), i + 1 + t

    def tape_units(self, i: int) -> int:
        return int(self.tunits[0])

    def kept(self, i: int, j: int, m: int) -> float:
        if self.tape_units(i) > m:
            return math.inf
        return float(self.kk[m - self.tape_units(i), j - i - 1])


def _uniform_plan(f: float, q: _Units, n: int) -> tuple[_UniformPlan, float]:
    """Fill the length-only tables of a uniform chain; (plan, C(0, n, M)). A level's row
    of each table is contiguous and ``D``'s is reversed (:class:`_UniformPlan`), so the
    split's sum and min run over contiguous rows of ``d - 1`` entries: about 1 ns an
    entry at any number of levels (rows of ``M + 1`` entries, by length first, would take
    10-15 ns at ``M = 3``)."""
    unit, tunit, mmax = int(q.units[-1]), int(q.tunits[0]), q.mmax
    pair = int(q.pairs[-1]) if n > 1 else 0
    lev = np.arange(mmax + 1)
    e = np.full((mmax + 1, n + 1), np.inf)
    dr = np.full((mmax + 1, n + 1), np.inf)
    kk = np.full((mmax + 1, n + 1), np.inf)
    kk[:, 1] = np.where(lev >= tunit, 0.0, np.inf)  # a paint replays with its graph
    e[:, 1] = np.where(lev >= max(unit, tunit), f, np.inf)
    dr[:, n - 1] = np.where(lev >= q.stored_paint[-1], 0.0, np.inf)  # s_k, paint k: one sum
    shift = np.where(lev >= tunit, lev - tunit, 0)
    buf = np.empty((mmax + 1, max(n - 1, 1)))
    for d in range(2, n + 1):
        tmp = np.add(e[:, 1:d], dr[:, n - d + 1:n], out=buf[:, :d - 1])
        c = np.minimum(tmp.min(axis=1), np.where(lev >= tunit, kk[shift, d - 1], np.inf))
        kk[:, d] = c
        e[:, d] = np.where(lev >= max(unit, pair), c + d * f, np.inf)
        dr[:, n - d] = np.where(lev >= unit, c[np.maximum(lev - unit, 0)], np.inf)
    return _UniformPlan(e, dr, kk, np.array([tunit])), float(kk[mmax, n])


def _moves(plan: _Plan, n: int, mmax: int, units: np.ndarray) -> list[Move]:
    """The schedule of ``C(0, n, M)``: at each segment, a kept graph when it is strictly
    cheaper than the best split, else the split (``forward i k`` or ``place i+1``)."""
    moves: list[Move] = []
    stack = [(0, n, mmax)]
    while stack:
        i, j, m = stack.pop()
        if j < 0:
            moves.append(Move(_REMOVE if j == -1 else _PAINT, i))
        elif j == i + 1:
            if j == n and plan.tape_units(i) <= m:  # s_n is computed anyway: tape it
                moves += [Move(_TAPE, n), Move(_PAINT, i), Move(_REMOVE, n)]
            else:
                moves.append(Move(_PAINT, i))
        else:
            cost, k = plan.split(i, j, m)
            if plan.kept(i, j, m) < cost:
                moves.append(Move(_TAPE, i + 1))
                stack += [(i + 1, -1, 0), (i, -2, 0), (i + 1, j, m - plan.tape_units(i))]
            else:
                moves.append(Move(_PLACE, k) if k == i + 1 else Move(_FORWARD, i, k))
                stack += [(i, k, m), (k, -1, 0), (k, j, m - int(units[k]))]
    return moves


def _solve(costs: ChainCosts, memory: float, levels: int,
           tape: bool = False) -> tuple[float, list[Move]]:
    """Least total time and its moves, for a limit of at least what a paint or a walk alone
    needs (below :func:`hetero_min_memory` the programme may find none: then an error):
    the dynamic programme's, or a simple schedule's (:func:`_simple`) where that is faster
    (rounding to memory levels can cost the programme more). Tables within
    :data:`_MAX_ENTRIES` and :data:`_MAX_WORK`, else :class:`PebblesValueError`."""
    n, backward = costs.n, float(costs.backward.sum())
    graph, taped = _graph(costs), tape and _graph(costs) is None
    if n == 1 and graph is None and memory >= hetero_min_memory(costs):  # the one paint
        return backward, [Move(_PAINT, 0)]
    q = _quantum(costs.sizes, memory, levels, graph, _held(costs))
    uniform = graph is not None and q.held is None and _is_uniform(costs)
    _check_size(n, levels, q.mmax, uniform)
    if uniform:
        plan, best = _uniform_plan(float(costs.forward[0]), q, n)
    else:
        e, d_, kk = _tables(costs.forward, q, taped)
        plan = _Plan(e, d_, kk, q.tunits, q.held, q.paints)
        best = float(kk[n, 0, q.mmax]) if kk is not None else plan.split(0, n, q.mmax)[0]
    simple = _simple(costs, memory, taped)
    if simple is not None and simple[0] < best + backward:
        return simple
    if not math.isfinite(best):
        need = hetero_min_memory(costs)
        if memory < need:
            raise _below_need(costs, memory, need, q, levels)
        raise PebblesValueError(
            f"memory={_fmt(memory)} bytes is at least hetero_min_memory(costs)="
            f"{_fmt(need)}, yet the dynamic programme found no schedule at levels={levels}: "
            f"a bug of pebbles' rounding to memory levels; please report it with the costs")
    moves = _moves(plan, n, q.mmax, q.units)
    return (best + backward if taped else _time(moves, costs)), moves


def _time(moves: list[Move], costs: ChainCosts) -> float:
    """``pebbles.simulate(moves, n, costs=costs).time`` of the programme's (legal) ``moves``,
    exactly: the simulator's float sum in its order, each walk's steps from 0.0, then
    move by move (a paint served by a kept graph adds ``backward[a]``, then subtracts
    ``forward[a]``). NumPy work of O(moves + walks' steps) in C, where the simulator's
    Python loop takes 0.3-0.7 us a step: minutes for the ``n^2 / 2`` steps of a long
    chain near its least memory (n = 20000: 2e8 steps, every walk from s_0)."""
    arr = encode(moves)
    kind, a, b = arr[:, 0], arr[:, 1], arr[:, 2]
    f, bw = costs.forward, costs.backward
    inc = np.zeros((len(arr), 2))
    step = (kind == _PLACE) | (kind == _TAPE)
    inc[step, 0] = f[a[step] - 1]
    paint = np.flatnonzero(kind == _PAINT)
    inc[paint, 0] = bw[a[paint]]
    taped = np.full(costs.n + 2, len(arr))  # first tape of each cell
    tapes = np.flatnonzero(kind == _TAPE)
    np.minimum.at(taped, a[tapes], tapes)
    served = paint[taped[a[paint] + 1] < paint]
    inc[served, 1] = -f[a[served]]
    walks = np.flatnonzero(kind == _FORWARD)
    walks = walks[np.argsort(a[walks], kind="stable")]
    starts, first = np.unique(a[walks], return_index=True)
    for start, at in zip(starts, np.split(walks, first)[1:], strict=True):
        # every walk from one cell at once (near the least memory: all from s_0)
        inc[at, 0] = np.add.accumulate(f[start:b[at].max()])[b[at] - start - 1]
    return float(np.add.accumulate(inc.reshape(-1))[-1])


def _simple(costs: ChainCosts, memory: float,
            taped: bool) -> tuple[float, list[Move]] | None:
    """(total time, moves) of the fastest simple schedule that fits in ``memory`` bytes,
    both measured by :func:`pebbles.simulate` under ``costs``, or None if none fits:
    ``store_all`` and, where every graph may be kept, keeping every graph (one segment of
    :func:`sequential_segments`). ``taped``: the taped model, where each of
    ``store_all``'s ``n - 1`` steps runs straight before its reversal and costs nothing."""
    n, g = costs.n, _graph(costs)
    plans = [list(store_all(n))]
    if g is not None and np.isfinite(g).all():
        plans.append(list(_sequential_segments(n, 1, True)))
    best = None
    for moves in plans:
        r = simulate(moves, n, costs=costs)
        time = r.time - float(costs.forward[:n - 1].sum()) if taped else r.time
        if r.peak_bytes <= memory and (best is None or time < best[0]):
            best = (time, moves)
    return best


def _table_size(n: int, mmax: int, uniform: bool) -> tuple[int, int]:
    """(entries of one table, additions and comparisons of the fill) at ``M = mmax``:
    ``(M + 1) (n + 1)^2`` and ``n^3 (M + 1) / 6`` (``(M + 1) (n + 1)`` and
    ``n^2 (M + 1) / 2`` for a uniform chain with kept graphs)."""
    if uniform:
        return (n + 1) * (mmax + 1), n * n * (mmax + 1) // 2
    return (n + 1) ** 2 * (mmax + 1), n**3 * (mmax + 1) // 6


def _levels_fit(n: int, uniform: bool) -> int:
    """The most ``levels`` whose tables pass :func:`_check_size` for ``n`` steps (the
    programme has ``levels + 1`` memory levels at most); below 1 where none do."""
    one_entries, one_work = _table_size(n, 0, uniform)  # per memory level
    return min(_MAX_ENTRIES // one_entries, _MAX_WORK // max(one_work, 1)) - 1


def levels_fit(costs: ChainCosts) -> int:
    """:func:`_levels_fit` of ``costs``: the most ``levels`` :func:`hetero_optimal` takes
    for them within its size guard."""
    graph = _graph(costs)
    return _levels_fit(costs.n, graph is not None and _held(costs) is None
                       and _is_uniform(costs))


def _check_size(n: int, levels: int, mmax: int, uniform: bool) -> None:
    """Refuse tables above :data:`_MAX_ENTRIES` entries or :data:`_MAX_WORK` operations,
    naming ``n``, ``levels``, the size and the ways out."""
    entries, work = _table_size(n, mmax, uniform)
    if entries <= _MAX_ENTRIES and work <= _MAX_WORK:
        return
    fit = _levels_fit(n, uniform)
    way = (f"pass levels={fit} or fewer (coarser rounding of the sizes), "
           if fit >= 1 else f"n={n} is too long at any levels: ")
    raise PebblesValueError(
        f"the heterogeneous optimum of n={n} steps at levels={levels} ({mmax + 1} memory "
        f"levels) needs tables of {entries:.3g} float64 entries ({entries * 8 / 1e9:.3g} GB "
        f"each) and about {work:.3g} operations; the limit is {_MAX_ENTRIES:.3g} entries "
        f"and {_MAX_WORK:.3g} operations (about 10 s); {way}use a uniform budget with "
        f"pebbles.schedule('treeverse', {n}, budget=...), or cut the chain into segments "
        f"(pebbles.sequential_segments, or pebbles.torch.checkpoint_sequential(segments=...)) "
        f"and solve each")


def _graph(costs: ChainCosts) -> np.ndarray | None:
    """The kept-graph sizes, or None when no step may keep its graph (the old model)."""
    g = costs.graph
    return None if g is None or not np.isfinite(g).any() else g


def _held(costs: ChainCosts) -> np.ndarray | None:
    """What the backward steps hold, or None when nothing: ``H(j)`` for ``j = 0..n``, held
    while cells ``< j`` are reversed (``G(j)``, the gradients made by paints ``j..n-1``,
    and the cotangent of ``s_j``; ``H(n) = 0``), then ``X(i)`` for ``i = 0..n-1``, the
    cotangent of ``s_{i+1}`` that paint ``i`` holds besides ``H(i)`` while it runs."""
    g, c = costs._made()
    if not (g.any() or c.any()):
        return None
    return np.concatenate((np.cumsum(g[::-1])[::-1] + c, [0.0], c[1:], [0.0]))


def _is_uniform(costs: ChainCosts) -> bool:
    f, s, g = costs.forward, costs.sizes[1:], costs.graph
    return bool(np.all(f == f[0]) and np.all(s == s[0]) and np.all(g == g[0]))


def _check_costs(costs: object) -> ChainCosts:
    """``costs`` if it is a :class:`ChainCosts` (which has at least one step: its
    constructor refuses none) whose byte counts sum to a finite float, else a clear
    error."""
    if not isinstance(costs, ChainCosts):
        raise PebblesTypeError(
            f"costs={costs!r:.80} must be a ChainCosts; build one with "
            f"pebbles.ChainCosts(forward, backward, sizes)"
        )
    fields = {k: getattr(costs, k) for k in ("sizes", "graph", "grads", "cotangents")}
    with np.errstate(over="ignore"):
        total = sum(float(np.sum(v[np.isfinite(v)])) for v in fields.values() if v is not None)
    if not math.isfinite(total):
        name, v = max(((k, v) for k, v in fields.items() if v is not None),
                      key=lambda kv: float(np.max(np.where(np.isfinite(kv[1]), kv[1], 0.0))))
        i = int(np.argmax(np.where(np.isfinite(v), v, 0.0)))
        raise PebblesValueError(
            f"ChainCosts.{name}[{i}]={_fmt(v[i])}: the sizes, graphs, grads and cotangents sum "
            f"to more than the largest float ({np.finfo(np.float64).max:.4g}), so the memory "
            f"counts would overflow; rescale them (e.g. bytes to MiB) and the memory with them")
    return costs


def _fmt(x: float) -> str:
    """Bytes for a message: whole numbers below 2^53 exactly, others as ``repr`` (exact: the
    printed value passed back is the same float)."""
    x = float(x)
    return str(int(x)) if abs(x) < 2.0**53 and x == int(x) else repr(x)


def _check_chain(costs: object, memory: object) -> float:
    """Check ``costs`` (:func:`_check_costs`) and ``memory`` (a number of bytes, not NaN,
    NumPy's too; an integer past the largest float is inf, no limit, as ``math.inf``
    is); return ``memory`` as a float."""
    _check_costs(costs)
    if isinstance(memory, (bool, np.bool_)) or not isinstance(memory, (int, float, np.number)):
        raise PebblesTypeError(f"memory={memory!r} must be a number of bytes, e.g. 2**20")
    try:
        value = float(memory)
    except OverflowError:  # a Python int past 1.8e308
        value = math.inf if memory > 0 else -math.inf
    if math.isnan(value):
        raise PebblesValueError(f"memory={memory!r} must be a number of bytes, not NaN; "
                                f"pass e.g. memory=2**20")
    return value


def _check_memory(costs: object, memory: object, levels: object,
                  tape: object) -> tuple[float, int, bool]:
    """The arguments of :func:`hetero_optimal` checked: (memory, levels, tape); a memory
    below :func:`hetero_min_memory` is refused, saying whether any schedule can finish."""
    memory = _check_chain(costs, memory)
    levels = check_int("levels", levels, 1)
    tape = check_bool("tape", tape)
    least, need = _needs(costs)
    if memory >= least:  # below need, the programme is tried (_solve says if it fails)
        return memory, levels, tape
    raise _cannot_finish(costs, memory, least, need)


def _cannot_finish(costs: ChainCosts, memory: float, least: float,
                   need: float) -> PebblesValueError:
    """The error of a ``memory`` below ``least``, what some step holds alone (no schedule
    finishes): :func:`hetero_optimal`'s, and :func:`hetero_brute_force`'s (a negative
    one)."""
    holds = (f"some step holds its input and output at once"
             f"{'' if costs.graph is None else ' (and its graph, in its backward step)'}"
             f"{'' if _held(costs) is None else ' with the gradients the backward steps hold'}")
    return PebblesValueError(
        f"memory={_fmt(memory)} bytes cannot finish the chain of n={costs.n} steps: "
        f"{holds} ({_fmt(least)} bytes); pass memory >= {_fmt(need)} "
        f"(hetero_min_memory(costs), with which the dynamic programme always finishes)")


def _below_need(costs: ChainCosts, memory: float, need: float, q: _Units,
                levels: int) -> PebblesValueError:
    """The error of a limit below :func:`hetero_min_memory` with which the programme
    found no schedule in the units ``q`` (of :func:`_quantum` at ``levels``): where sizes
    were rounded up, first the rounding and a larger ``levels``."""
    least = _needs(costs)[0]
    rounded = "" if q.exact else _rounding_lost(costs.n, memory, levels, q)
    return PebblesValueError(
        f"memory={_fmt(memory)} bytes is below hetero_min_memory(costs)={_fmt(need)}, with "
        f"which the dynamic programme always finishes the chain of n={costs.n} steps (it "
        f"recomputes every state while the gradients of the later steps are held), and "
        f"the programme found no schedule within it.{rounded} Pass memory >= {_fmt(need)}. "
        f"A schedule outside its family may finish with less (no schedule with under "
        f"{_fmt(least)}): hetero_brute_force(costs, memory) searches every schedule of a "
        f"chain of n <= {_BRUTE_MAX_N} steps ({_BRUTE_MAX_N_KEPT} with kept graphs)")


def _rounding_lost(n: int, memory: float, levels: int, q: _Units) -> str:
    """What :func:`_below_need` says of sizes rounded up to ``levels`` memory levels: the
    quantum, and the ``levels`` that counts bytes exactly or the most the guard allows."""
    fit = _levels_fit(n, False)
    quantum = q.scale.memory / levels
    exact = ((f"; levels={q.whole} counts these whole-byte sizes exactly" if q.whole <= fit
              else f"; levels={q.whole} would count these whole-byte sizes exactly, but "
              f"passes the size guard") if q.whole is not None else
             "; sizes that are not whole numbers are counted exactly only at a levels for "
             "which memory / levels divides each of them")
    larger = (f"pass a larger levels=, up to levels={fit} (the most within the size guard "
              f"for n={n} steps)" if fit > levels else
              f"levels={levels} is the most within the size guard for n={n} steps")
    return (f" Its sizes are rounded up to multiples of memory / levels = {quantum:.6g} bytes "
            f"(levels={levels}), which can lose the schedules that fit in "
            f"memory={_fmt(memory)}: {larger}{exact}.")


def hetero_optimal(costs: ChainCosts, memory: float, *, levels: int = 100,
                   tape: bool = False) -> Iterator[Move]:
    """Yield a least-time persistent checkpoint-game schedule of a heterogeneous chain.

    Parameters
    ----------
    costs : ChainCosts
        Forward and backward cost of every step, size of every state.
    memory : float
        Most bytes held on cells 1..n at any moment, walking states included
        (``math.inf``, or an integer past the largest float: no limit). The schedule
        is never slower than ``store_all`` (with kept graphs, than keeping every
        graph) when that fits.
    levels : int
        Memory levels of the dynamic programme where sizes are rounded (see the
        module docstring). Whole-byte sizes are counted exactly, at
        ``floor(memory / g)`` levels for their greatest common divisor ``g``, when
        that is at most ``levels``; otherwise every size is rounded up to a
        multiple of ``memory / levels``, which keeps the limit but can cost time:
        about 2x on chains whose sizes differ in magnitude. To tell, compare with a
        larger ``levels=`` (exact where ``memory / levels`` divides every size).
        Tables near the size guard take seconds and hundreds of MB (n = 5 steps at
        a million levels: about 1.5 s, 0.7 GB).
    tape : bool
        Taped model: a step run from a stored ``s_i`` straight before the reversal
        of ``i+1..j`` (``place i+1``, then ``remove i+1`` and ``paint i``) keeps its
        graph at no memory cost, so backward step ``i`` needs no replay:
        ``backward[i]`` is then read as a backward step including the replay of
        step ``i``, and that split costs ``forward[i]`` less (what
        :mod:`pebbles.torch` does for layers whose graph saves only their
        input, output and parameters).

    Yields
    ------
    Move
        ``place``, ``forward``, ``remove`` and ``paint`` moves (at most ``3 n``),
        and ``tape`` moves when ``costs.graph`` is given (at most ``4 n``; see
        the module docstring: ``tape`` is then ignored).

    Raises
    ------
    PebblesTypeError
        If ``costs`` is not a :class:`pebbles.ChainCosts`, ``memory`` not a number,
        ``levels`` not an integer or ``tape`` not a bool.
    PebblesValueError
        If ``memory`` is NaN, below what a paint or a walk alone holds ("cannot
        finish"), or below :func:`hetero_min_memory` with no schedule of the
        programme within it (a limit below it is tried: keeping a state instead of
        recomputing it from ``s_0`` may need less),
        ``levels < 1``, or the tables would pass the size guard (``_MAX_ENTRIES``
        entries, ``_MAX_WORK`` operations: n = 500 steps at 100 levels fits; see the
        module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import ChainCosts, hetero_optimal, min_forward_steps, simulate
    >>> unit = ChainCosts(np.ones(20), np.zeros(20), np.ones(21))
    >>> simulate(hetero_optimal(unit, 4), 20, costs=unit).forward_steps
    40
    >>> min_forward_steps(20, 4)
    40
    >>> costs = ChainCosts(np.array([1, 1, 5, 1]), np.ones(4), np.array([0, 4, 1, 4, 1]))
    >>> [str(m) for m in hetero_optimal(costs, 6)]
    ['forward 0 2', 'place 3', 'paint 3', 'remove 3', 'paint 2', 'remove 2', 'place 1', \
'paint 1', 'remove 1', 'paint 0']
    >>> kept = ChainCosts(np.ones(3), np.full(3, 2.0), np.full(4, 2.0), graph=np.full(3, 2.0))
    >>> [str(m) for m in hetero_optimal(kept, 6)]  # step 2 keeps its graph
    ['forward 0 2', 'tape 3', 'paint 2', 'remove 3', 'remove 2', 'place 1', 'paint 1', \
'remove 1', 'paint 0']
    """
    memory, levels, tape = _check_memory(costs, memory, levels, tape)
    _, moves = _solve(costs, memory, levels, tape)
    return iter(moves)


def hetero_time(costs: ChainCosts, memory: float, *, levels: int = 100,
                tape: bool = False) -> float:
    """Total time (forward and backward) of :func:`hetero_optimal`'s schedule.

    Without ``tape=True`` it is ``pebbles.simulate(hetero_optimal(...), n,
    costs=costs).time`` exactly. With ``tape=True``, backward steps that reuse a
    taped run are counted at ``backward[i] - forward[i]`` (see
    :func:`hetero_optimal`, whose parameters and errors these are).

    Parameters
    ----------
    costs : ChainCosts
        Forward and backward cost of every step, size of every state.
    memory : float
        Most bytes held on cells 1..n at any moment (``math.inf``: no limit).
    levels : int, default 100
        Memory levels of the dynamic programme where sizes are rounded; ``>= 1``.
    tape : bool, default False
        The taped model of :func:`hetero_optimal`.

    Returns
    -------
    float
        Forward plus backward time of the schedule, in the units of ``costs``.

    Raises
    ------
    PebblesTypeError
        If ``costs`` is not a :class:`pebbles.ChainCosts`, ``memory`` not a number,
        ``levels`` not an integer or ``tape`` not a bool.
    PebblesValueError
        As :func:`hetero_optimal`: ``memory`` NaN or too small to finish, ``levels < 1``,
        or tables past the size guard.

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import ChainCosts, hetero_time
    >>> hetero_time(ChainCosts(np.ones(20), np.full(20, 2.0), np.ones(21)), 4)
    80.0
    """
    memory, levels, tape = _check_memory(costs, memory, levels, tape)
    return _solve(costs, memory, levels, tape)[0]


def hetero_brute_force(costs: ChainCosts, memory: float) -> float | None:
    """Least total time by Dijkstra (networkx) over every reachable board; ``None`` if none.

    Nodes are boards (pebbled cells, first painted cell, steps whose graph is
    kept), edges the primitive moves ``place`` (weight ``forward[a-1]``),
    ``remove`` (0; not of a cell a kept graph holds) and ``paint``
    (``backward[a]``, or ``backward[a] - forward[a]`` from a kept graph) and,
    when ``costs.graph`` is given, ``tape`` (``forward[a-1]``, keeping the graph
    of step a-1), whose result holds at most ``memory`` bytes on cells 1..n, in
    kept graphs, in the ``costs.grads`` of the painted steps and in the cotangent of
    the first painted cell (a paint counts its own and the one it frees). A
    reference for tiny chains (up to ``4^n (n + 1)`` nodes).

    Parameters
    ----------
    costs : ChainCosts
        Forward and backward cost of every step, size of every state (and, where
        given, the graphs, grads and cotangents).
    memory : float
        Most bytes held at any moment (``math.inf``: no limit).

    Returns
    -------
    float or None
        The least total time, or ``None`` if no schedule finishes within ``memory``.

    Raises
    ------
    ImportError
        If networkx is not installed (the ``search`` extra).
    PebblesTypeError
        If ``costs`` is not a :class:`pebbles.ChainCosts` or ``memory`` not a number.
    PebblesValueError
        If ``memory`` is NaN or negative (as :func:`hetero_time` refuses it), or ``n``
        is above 12 (8 where a
        graph may be kept), which would take minutes or more.

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import ChainCosts, hetero_brute_force, hetero_time
    >>> costs = ChainCosts(np.array([1, 1, 5, 1]), np.ones(4), np.array([0, 4, 1, 4, 1]))
    >>> hetero_brute_force(costs, 6), hetero_time(costs, 6)
    (12.0, 12.0)
    >>> kept = ChainCosts(costs.forward, np.full(4, 5.0), costs.sizes, graph=np.full(4, 1.0))
    >>> hetero_brute_force(kept, 6), hetero_time(kept, 6)
    (30.0, 30.0)
    """
    nx = require("networkx", "search", "hetero_brute_force")
    memory = _check_brute(costs, memory)
    start = (frozenset(), costs.n, frozenset())
    graph = nx.DiGraph()
    graph.add_node(start)
    todo, seen = [start], {start}
    while todo:
        board = todo.pop()
        for new, weight in _brute_moves(costs, memory, board):
            graph.add_edge(board, new, weight=float(weight))
            if new not in seen:
                seen.add(new)
                todo.append(new)
    goals = [g for g in seen if g[1] == 0]
    if not goals:
        return None
    for g in goals:
        graph.add_edge(g, "end", weight=0.0)
    return float(nx.shortest_path_length(graph, start, "end", weight="weight"))


def _check_brute(costs: object, memory: object) -> float:
    """:func:`_check_chain`, and ``n`` at most :data:`_BRUTE_MAX_N` (kept graphs:
    :data:`_BRUTE_MAX_N_KEPT`); ``memory`` as a float."""
    memory = _check_chain(costs, memory)
    if memory < 0:  # refused as hetero_time refuses it: None would say "no schedule fits"
        raise _cannot_finish(costs, memory, *_needs(costs))
    kept = _graph(costs) is not None
    most = _BRUTE_MAX_N_KEPT if kept else _BRUTE_MAX_N
    if costs.n > most:
        raise PebblesValueError(
            f"hetero_brute_force searches every board, up to {'4' if kept else '2'}^n (n + 1) "
            f"of them: n={costs.n} steps is more than the {most} it takes in seconds"
            f"{' when a graph may be kept' if kept else ''}; pass a chain of n <= {most}, "
            f"or use hetero_time(costs, memory) (the optimum among persistent schedules)")
    return memory


def _brute_moves(costs: ChainCosts, memory: float, board: tuple) -> list:
    """The boards one primitive move away from ``board``, with the moves' times."""
    n, f, b, s = costs.n, costs.forward, costs.backward, costs.sizes
    g, (grads, cot) = costs.graph, costs._made()
    cells, painted, kept = board
    held = sum(s[c] for c in cells) + sum(g[i] for i in kept) + grads[painted:].sum()
    held += cot[painted] if painted < n else 0.0
    replay = 0.0  # a paint without a kept graph builds the step's output and graph again
    out = [((cells - {c}, painted, kept), 0.0) for c in cells
           if c not in kept and c - 1 not in kept]
    for a in range(1, n + 1):
        if a in cells or not (a == 1 or a - 1 in cells):
            continue
        if held + s[a] <= memory:
            out.append(((cells | {a}, painted, kept), f[a - 1]))
        if g is not None and math.isfinite(g[a - 1]) and held + s[a] + g[a - 1] <= memory:
            out.append(((cells | {a}, painted, kept | {a - 1}), f[a - 1]))
    a = painted - 1
    if a >= 0 and g is not None and a not in kept and math.isfinite(g[a]):
        replay = s[a + 1] + g[a]
    if a >= 0 and (a == 0 or a in cells) and held + replay + grads[a] + cot[a] <= memory:
        served = a in kept
        out.append(((cells, a, kept - {a}), b[a] - f[a] * served))
    return [((frozenset(c), p, frozenset(k)), w) for (c, p, k), w in out]


def sequential_segments(n: int, segments: int, *, kept: bool = True) -> Iterator[Move]:
    """Yield the schedule of ``torch.utils.checkpoint.checkpoint_sequential``.

    The chain is cut into ``segments`` pieces of ``n // segments`` steps, the last
    one taking the rest (PyTorch's split: 9 steps in 5 segments are
    ``[1, 1, 1, 1, 5]``). The forward sweep keeps the first state of every piece;
    the last piece runs with its graphs kept, and each other piece, when the
    backward pass reaches it, is recomputed from its first state with its graphs
    kept, then reversed. With ``kept=False`` the pieces store their states
    instead of graphs (``place`` for ``tape``; each paint replays its step). A
    schedule of the kept-graph game (:class:`pebbles.ChainCosts` ``graph``), to be
    measured with ``pebbles.simulate(..., costs=...)`` against
    :func:`hetero_optimal` at the same memory.

    Parameters
    ----------
    n : int
        Number of steps, from 1 to 2^63 - 1.
    segments : int
        Number of pieces, from 1 to ``n``.
    kept : bool, default True
        Keep the graphs of the pieces' steps (``tape`` moves); ``False`` stores their
        states instead (``place`` moves).

    Yields
    ------
    Move
        The schedule's moves.

    Raises
    ------
    PebblesTypeError
        If ``n`` or ``segments`` is not an integer, or ``kept`` not a bool.
    PebblesValueError
        If ``n < 1``, ``n >= 2^63``, ``segments < 1`` or ``segments > n``.

    Examples
    --------
    >>> from pebbles import sequential_segments, simulate
    >>> r = simulate(sequential_segments(9, 5), 9)
    >>> r.forward_steps + r.backward_steps - r.taped  # PyTorch's 9 + 4 layer runs
    13
    >>> r.peak_states  # 4 segment inputs and the last segment's 5 outputs
    9
    """
    n = check_steps(n)
    s = check_int("segments", segments, 1)
    if s > n:
        raise PebblesValueError(f"segments={s} is more than n={n} steps; pass segments <= {n}")
    return _sequential_segments(n, s, check_bool("kept", kept))


def _sequential_segments(n: int, s: int, kept: bool) -> Iterator[Move]:
    size = n // s
    cuts = [k * size for k in range(s)]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        yield Move(_PLACE, b) if b == a + 1 else Move(_FORWARD, a, b)
    for a, b in reversed(list(zip(cuts, [*cuts[1:], n], strict=True))):
        yield from (_kept_segment if kept else _stored_segment)(a, b, n)
        if a > 0:
            yield Move(_REMOVE, a)


def _kept_segment(a: int, b: int, n: int) -> Iterator[Move]:
    """Steps ``a..b-1`` from a stored ``s_a``, graphs kept, then their backward steps."""
    for c in range(a + 1, b):
        yield Move(_TAPE, c)
    if b == n:  # s_n is computed anyway: with its graph
        yield from (Move(_TAPE, n), Move(_PAINT, n - 1), Move(_REMOVE, n))
    else:  # s_b is stored: paint b-1 replays its step
        yield Move(_PAINT, b - 1)
    for c in range(b - 1, a, -1):
        yield from (Move(_PAINT, c - 1), Move(_REMOVE, c))


def _stored_segment(a: int, b: int, n: int) -> Iterator[Move]:
    """Steps ``a..b-1`` from a stored ``s_a``, states kept, then their backward steps."""
    for c in range(a + 1, b):
        yield Move(_PLACE, c)
    for c in range(b - 1, a, -1):
        yield from (Move(_PAINT, c), Move(_REMOVE, c))
    yield Move(_PAINT, a)
