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

Memory levels. Memory is counted in units of a quantum ``q``: ``m`` takes the
values ``0..M`` and size ``s`` costs ``ceil(s / q)`` units. When the sizes and
the limit are integers whose greatest common divisor ``g`` gives
``memory / g <= levels``, ``q = g`` and the optimum is exact; otherwise
``q = memory / levels`` (``M = levels``), sizes are rounded up, and the
schedule is still feasible under the true limit but may be up to one quantum
a stored state from optimal. The schedule is exact whenever every size and
the limit are multiples of the quantum. A walk's two states are rounded as one
sum, so every limit of at least :func:`hetero_min_memory` bytes stays
finishable.

Complexity: ``O(n^3 M / 6)`` additions and comparisons (for every segment
length, one vectorised NumPy min over the split point, all start cells and all
memory levels at once) and ``O(n^2 M)`` memory (two float64 tables of
``(M + 1) (n + 1)^2`` entries: 406 MB at n = 500, M = 100). The schedule
itself is ``3 n`` moves at most.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ._errors import PebblesTypeError, PebblesValueError
from ._moves import Move, MoveKind
from ._simulator import ChainCosts
from ._validation import check_int

__all__ = [
    "hetero_brute_force",
    "hetero_min_memory",
    "hetero_optimal",
    "hetero_time",
]

_PLACE, _REMOVE, _PAINT, _FORWARD = (MoveKind.PLACE, MoveKind.REMOVE, MoveKind.PAINT,
                                     MoveKind.FORWARD)


def hetero_min_memory(costs: ChainCosts) -> float:
    """Fewest bytes with which any schedule finishes the chain.

    Every ``s_{l+1}`` with ``l + 1 <= n - 1`` is computed from ``s_l`` while both
    are held, so ``max(sizes[1], sizes[l] + sizes[l+1] for 1 <= l <= n - 2)``
    bytes are needed (``0`` for ``n = 1``), and recomputing from ``s_0`` for
    every backward step needs no more.

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import ChainCosts
    >>> from pebbles._chain import hetero_min_memory
    >>> hetero_min_memory(ChainCosts(np.ones(5), np.ones(5), np.full(6, 8.0)))
    16.0
    """
    s, n = costs.sizes, costs.n
    if n == 1:
        return 0.0
    pairs = s[1:n - 1] + s[2:n]
    return float(max(s[1], pairs.max(initial=0.0)))


def _quantum(sizes: np.ndarray, memory: float,
             levels: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(units of each state, units of each walk pair, memory in units).

    ``units[c] = ceil(sizes[c] / q)`` (``units[0] = 0``: s_0 is not counted);
    ``pairs[c] = ceil((sizes[c - 1] + sizes[c]) / q)`` for ``2 <= c <= n``, the peak
    of a walk step from ``s_{c-1}`` to ``s_c``, rounded as one sum (a pair that fits
    in ``memory`` bytes fits in ``M`` units).
    """
    n = len(sizes) - 1
    pair_bytes = np.concatenate(([0.0, 0.0], sizes[1:n] + sizes[2:]))
    if memory == 0:  # only zero-size states can ever be held
        units = (sizes > 0).astype(np.int64)
        units[0] = 0
        return units, (pair_bytes > 0).astype(np.int64), 0
    ints = np.append(sizes[1:], memory)
    if np.all(ints == np.round(ints)) and np.all(ints < 2.0**53):
        g = int(np.gcd.reduce(ints.astype(np.int64)))
        if int(memory) // g <= levels:
            units = (sizes // g).astype(np.int64)
            units[0] = 0
            return units, (pair_bytes // g).astype(np.int64), int(memory) // g
    units = np.ceil(sizes * (levels / memory)).astype(np.int64)
    units[0] = 0
    pairs = np.ceil(pair_bytes * (levels / memory)).astype(np.int64)
    pairs = np.where(pair_bytes <= memory, np.minimum(pairs, levels), pairs)
    units = np.where(sizes <= memory, np.minimum(units, levels), units)
    return units, pairs, levels


def _tables(fwd: np.ndarray, units: np.ndarray, pairs: np.ndarray,
            mmax: int, tape: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``E[i, d, m] = C(i, i+d, m) + F(i, i+d)`` (inf where the walk i -> i+d needs
    more than m) and ``D[j, d, m] = C(j-d, j, m - units[j-d])`` (inf where m is too small)."""
    n = fwd.shape[0]
    prefix = np.concatenate(([0.0], np.cumsum(fwd)))
    lev = np.arange(mmax + 1)
    e = np.full((n + 1, n + 1, mmax + 1), np.inf)
    d_ = np.full((n + 1, n + 1, mmax + 1), np.inf)
    walk = units[1:, None].copy()  # peak units of the walk i -> i+1
    starts = np.arange(n)[:, None]
    first = 0.0 if tape else (prefix[1:] - prefix[:-1])[:, None]
    e[:n, 1] = np.where(lev >= walk, first, np.inf)
    d_[1:, 1] = np.where(lev >= units[:n, None], 0.0, np.inf)
    for d in range(2, n):
        m = n - d + 1
        c = _min_split(e, d_, d, m)
        walk = np.maximum(walk[:m], pairs[d:, None])
        e[:m, d] = np.where(lev >= walk, c + (prefix[d:] - prefix[:m])[:, None], np.inf)
        need = units[:m, None]
        d_[d:, d] = np.where(lev >= need, c[starts[:m], np.maximum(lev - need, 0)], np.inf)
    return e, d_


def _min_split(e: np.ndarray, d_: np.ndarray, d: int, m: int) -> np.ndarray:
    """``C(i, i+d, .)`` for ``i < m``: min over the split, in chunks of start cells that
    keep the temporary array near 2 MB (cache-sized; about 3x faster than one big sum)."""
    out = np.empty((m, e.shape[2]))
    rows = max(1, 2**21 // ((d - 1) * e.shape[2] * 8))
    buf = np.empty((min(rows, m), d - 1, e.shape[2]))
    for lo in range(0, m, rows):
        hi = min(lo + rows, m)
        tmp = buf[:hi - lo]
        np.add(e[lo:hi, 1:d], d_[d + lo:d + hi, d - 1:0:-1], out=tmp)
        np.min(tmp, axis=1, out=out[lo:hi])
    return out


def _split(e: np.ndarray, d_: np.ndarray, m: int, i: int, j: int) -> tuple[float, int]:
    """(C(i, j, m), best first checkpoint k) for j > i + 1."""
    d = j - i
    cost = e[i, 1:d, m] + d_[j, d - 1:0:-1, m]
    t = int(np.argmin(cost))
    return float(cost[t]), i + 1 + t


def _solve(costs: ChainCosts, memory: float, levels: int,
           tape: bool = False) -> tuple[float, list[Move]]:
    """Optimal forward time and the moves, for a feasible memory limit."""
    n = costs.n
    if n == 1:
        return 0.0, [Move(_PAINT, 0)]
    units, pairs, mmax = _quantum(costs.sizes, memory, levels)
    e, d_ = _tables(costs.forward, units, pairs, mmax, tape)
    best, _ = _split(e, d_, mmax, 0, n)
    if not math.isfinite(best):
        need = hetero_min_memory(costs)
        raise PebblesValueError(
            f"memory={memory:g} bytes is enough for some schedule (>= {need:g}) but not once "
            f"sizes are rounded up to {levels} memory levels; pass memory >= "
            f"{need * levels / max(levels - 2, 1):g} or levels={4 * levels}"
        )
    moves: list[Move] = []
    stack = [(0, n, mmax)]
    while stack:
        i, j, m = stack.pop()
        if j < 0:
            moves.append(Move(_REMOVE, i))
        elif j == i + 1:
            moves.append(Move(_PAINT, i))
        else:
            _, k = _split(e, d_, m, i, j)
            moves.append(Move(_PLACE, k) if k == i + 1 else Move(_FORWARD, i, k))
            stack += [(i, k, m), (k, -1, 0), (k, j, m - int(units[k]))]
    return best, moves


def _check_memory(costs: ChainCosts, memory: object, levels: object) -> tuple[float, int]:
    if not isinstance(costs, ChainCosts):
        raise PebblesTypeError(
            f"costs={costs!r} must be a ChainCosts; build one with "
            f"pebbles.ChainCosts(forward, backward, sizes)"
        )
    levels = check_int("levels", levels, 1)
    if isinstance(memory, bool) or not isinstance(memory, (int, float, np.number)):
        raise PebblesTypeError(f"memory={memory!r} must be a number of bytes, e.g. 2**20")
    memory = float(memory)
    need = hetero_min_memory(costs)
    if not memory >= need:
        raise PebblesValueError(
            f"memory={memory:g} bytes cannot finish the chain of n={costs.n} steps: some "
            f"step holds its input and output at once ({need:g} bytes); pass memory >= {need:g}"
        )
    return memory, levels


def hetero_optimal(costs: ChainCosts, memory: float, *, levels: int = 100,
                   tape: bool = False) -> Iterator[Move]:
    """Yield a least-time checkpoint-game schedule of a heterogeneous chain.

    Parameters
    ----------
    costs : ChainCosts
        Forward and backward cost of every step, size of every state.
    memory : float
        Most bytes held on cells 1..n at any moment, walking states included.
    levels : int
        Most memory levels of the dynamic programme (see the module docstring:
        exact when ``memory`` and every size are multiples of the quantum).
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
        ``place``, ``forward``, ``remove`` and ``paint`` moves (at most ``3 n``).

    Raises
    ------
    PebblesValueError
        If ``memory`` is below :func:`hetero_min_memory`.

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import ChainCosts, min_forward_steps, simulate
    >>> from pebbles._chain import hetero_optimal
    >>> unit = ChainCosts(np.ones(20), np.zeros(20), np.ones(21))
    >>> simulate(hetero_optimal(unit, 4), 20, costs=unit).forward_steps
    40
    >>> min_forward_steps(20, 4)
    40
    >>> costs = ChainCosts(np.array([1, 1, 5, 1]), np.ones(4), np.array([0, 4, 1, 4, 1]))
    >>> [str(m) for m in hetero_optimal(costs, 6)]
    ['forward 0 2', 'place 3', 'paint 3', 'remove 3', 'paint 2', 'remove 2', 'place 1', \
'paint 1', 'remove 1', 'paint 0']
    """
    memory, levels = _check_memory(costs, memory, levels)
    _, moves = _solve(costs, memory, levels, bool(tape))
    return iter(moves)


def hetero_time(costs: ChainCosts, memory: float, *, levels: int = 100,
                tape: bool = False) -> float:
    """Total time (forward and backward) of :func:`hetero_optimal`'s schedule.

    With ``tape=True``, backward steps that reuse a taped run are counted at
    ``backward[i] - forward[i]`` (see :func:`hetero_optimal`).

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import ChainCosts
    >>> from pebbles._chain import hetero_time
    >>> hetero_time(ChainCosts(np.ones(20), np.full(20, 2.0), np.ones(21)), 4)
    80.0
    """
    memory, levels = _check_memory(costs, memory, levels)
    best, _ = _solve(costs, memory, levels, bool(tape))
    return best + float(costs.backward.sum())


def hetero_brute_force(costs: ChainCosts, memory: float) -> float | None:
    """Least total time by Dijkstra (networkx) over every reachable board; ``None`` if none.

    Nodes are boards (pebbled cells, first painted cell), edges the primitive
    moves ``place`` (weight ``forward[a-1]``), ``remove`` (0) and ``paint``
    (``backward[a]``) whose result holds at most ``memory`` bytes on cells
    1..n. A reference for tiny chains (the graph has up to ``2^n (n + 1)`` nodes).

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import ChainCosts
    >>> from pebbles._chain import hetero_brute_force, hetero_time
    >>> costs = ChainCosts(np.array([1, 1, 5, 1]), np.ones(4), np.array([0, 4, 1, 4, 1]))
    >>> hetero_brute_force(costs, 6), hetero_time(costs, 6)
    (12.0, 12.0)
    """
    import networkx as nx

    n, f, b, s = costs.n, costs.forward, costs.backward, costs.sizes
    start = (frozenset(), n)
    graph = nx.DiGraph()
    graph.add_node(start)
    todo, seen = [start], {start}
    while todo:
        cells, painted = board = todo.pop()
        held = sum(s[c] for c in cells)
        nxt = [((frozenset(cells - {c})), painted, 0.0) for c in cells]
        nxt += [(cells | {a}, painted, f[a - 1]) for a in range(1, n + 1)
                if a not in cells and (a == 1 or a - 1 in cells) and held + s[a] <= memory]
        a = painted - 1
        if a >= 0 and (a == 0 or a in cells):
            nxt.append((cells, a, b[a]))
        for new_cells, new_painted, weight in nxt:
            new = (new_cells, new_painted)
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
