"""Two-level (memory + disk) checkpointing: optimal schedules and the periodic-disk baseline.

This is disk revolve (Aupy, Herrmann, Hovland & Robert, "Optimal multistage
algorithm for adjoint computation", SIAM J. Sci. Comput. 2016) and H-Revolve
(Herrmann & Pallez, ACM TOMS 2020) re-derived for this library's checkpoint
game and in-place game with a disk: ``S`` memory pebbles (walking pebbles
included, cell 0 free), ``D`` disk pebbles (``None``: unbounded), the moves
``store i`` (cost ``w``), ``load i`` (cost ``r``) and ``discard i``, and the
total time ``forward steps + w * writes + r * reads``. ``periodic_disk`` is
Aupy & Herrmann's periodic disk scheme (2017) for comparison.

The dynamic programme works on an interval of ``m`` cells ``b..b+m-1`` whose
base ``b`` holds the only pebble in it, with ``s`` memory and ``d`` disk
pebbles to spare. Three values, each the least time to paint the interval:

* ``H0(m, s, d)`` -- the base is cell 0 (always in memory, never stored);
* ``H(m, s, d)``  -- the base is held in memory by the caller (not in ``s``);
* ``G(m, s, d)``  -- the base is on disk (its disk pebble is the caller's) and
  in memory, its memory pebble counted in ``s``; it may be freed and loaded again.

With ``t = 1`` if a walk of ``j`` cells needs one working pebble (in-place
game, or ``j = 1``) and ``t = 2`` otherwise, and the new pebble on ``b + j``
either kept in memory or stored at once::

    Right(k, s, d) = min( H(k, s, d),  w + G(k, s + 1, d - 1) )
    H0(1, .) = H(1, .) = G(1, .) = 0
    H0(m, s, d) = min_j  j + Right(m - j, s - 1, d) + H0(j, s, d)           (s >= t)
    Hs(m, s, d) = min_j  j + Right(m - j, s - 1, d) + H(j, s, d)            (s >= t)
    Gs(m, s, d) = min_j  min( j + Right(m - j, s - 2, d) + G(j, s, d),      (keep; s >= t + 1)
                              j + Right(m - j, s - 1, d) + r + G(j, s, d) ) (free the base
                              while walking, load it again; s >= 2, in-place s >= 1)
    H(m, s, d) = min( Hs(m, s, d), w + Gs(m, s + 1, d - 1) )   (store the base later)
    G(m, s, d) = min( Gs(m, s, d), Hs(m, s - 1, d + 1) )       (drop its disk copy)

and the optimum is ``H0(n, S, D)``. Without a disk (``D = 0``) only the first
terms are left and ``H0`` is the memory-only recurrence of
:func:`pebbles.dp_table`, i.e. :func:`pebbles.min_forward_steps`. With ``D``
unbounded (``D >= n - 1`` is the same) the ``d`` index drops. The derivation
and the dominance arguments (why no other move order can do better) are in
``docs/two-level.md``; the tests check the values against an exhaustive search
of the configuration graph on small boards and the streams in the simulator.

With an unbounded disk (or one at least as large as the unbounded optimum
needs) every write can be made on the first sweep, so left parts never write:
their costs are the memory-only ``T(j, s)`` (closed form) and ``R(j, s)`` (base
on disk, reloads, no writes), and a split at ``j`` is never tried when one more
disk checkpoint inside its left part would beat it (pruning lemma, checked with
``T(k, s) <= R(k, s) <= T(k, s) + r(k, s) * read_cost``). The splits left are at
most ``J``, set by the costs and not by n, and the table costs ``O(n J S)``
numpy work (n = 10^4, S = 10, write = read = 2: J = 14), in ``(S + 3)(n + 1)``-entry
arrays, refused at once above :data:`TWO_LEVEL_MAX_ENTRIES`. A bounded disk that
the unbounded optimum does not fit runs the full table, ``O(n^2 S (D + 1))``
(refused above :data:`BOUNDED_MAX_WORK`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from ._budget import check_budget, min_pebbles, refuse_negative
from ._errors import InfeasibleBudgetError, PebblesValueError
from ._moves import Game, Move, MoveKind
from ._optimal import min_forward_steps
from ._treeverse import treeverse
from ._validation import check_bool, check_cost, check_disk_budget, check_int

__all__ = ["best_period", "min_total_time", "periodic_disk", "periodic_disk_time",
           "two_level"]

_P = 2  # s-padding of the tables: row _P + s holds s; rows below are "infeasible"
_FORWARD, _PAINT, _REMOVE, _PLACE, _MOVE = (MoveKind.FORWARD, MoveKind.PAINT, MoveKind.REMOVE,
                                            MoveKind.PLACE, MoveKind.MOVE)
_STORE, _LOAD, _DISCARD = MoveKind.STORE, MoveKind.LOAD, MoveKind.DISCARD


def _check_cost(name: str, value: object) -> float:
    return check_cost(name, value, finite=False)  # inf: never written (or read)


def _check_args(n: object, budget: object, disk_budget: object, write_cost: object,
                read_cost: object, inplace: bool) -> tuple[int, int, int | None, float, float]:
    n = check_int("n", n, 1)
    budget = check_int("budget", budget)  # a negative one: check_budget tells the least
    check_budget(n, budget, Game.INPLACE if check_bool("inplace", inplace) else Game.CHECKPOINT)
    disk_budget = check_disk_budget(disk_budget)
    if disk_budget is not None and disk_budget >= n - 1:
        disk_budget = None  # n - 1 disk pebbles are as good as any number
    wc = _check_cost("write_cost", write_cost)
    rc = _check_cost("read_cost", read_cost)
    return n, min(budget, n), disk_budget, wc, rc


class _Tables:
    """The DP tables of one (n, S, D, w, r, game); see the module docstring."""

    def __init__(self, n: int, s_max: int, disk: int | None, wc: float, rc: float,
                 inplace: bool) -> None:
        self.n, self.s_max, self.wc, self.rc, self.inplace = n, s_max, wc, rc, inplace
        self.unbounded = disk is None
        levels = 1 if disk is None else disk + 1
        shape = (s_max + 1 + _P, levels, n + 1)
        self.h0, self.hs, self.h, self.gs, self.g, self.right = (
            np.full(shape, np.inf) for _ in range(6))
        self.j_h0, self.j_hs, self.j_gs = (np.zeros(shape, dtype=np.int32) for _ in range(3))
        self.keep = np.zeros(shape, dtype=bool)
        self._fill()

    def dec(self, d: int) -> int:
        """Disk level left after one more disk pebble (``-1``: none left)."""
        return d if self.unbounded else d - 1

    def inc(self, d: int) -> int:
        return d if self.unbounded else d + 1

    def _fill(self) -> None:
        p = _P
        for arr in (self.h0, self.hs, self.h, self.right):
            arr[p:, :, 1] = 0.0
        self.gs[p + 1:, :, 1] = self.g[p + 1:, :, 1] = 0.0
        self._fold(1)
        for m in range(2, self.n + 1):
            self._split(m)
            self._fold(m)

    def _split(self, m: int) -> None:
        p, top = _P, _P + self.s_max + 1
        jj = np.arange(1, m, dtype=np.float64)
        rk = self.right[:, :, m - 1:0:-1]
        t1 = rk[p - 1:top - 1] + jj  # right part with s - 1 spare pebbles, s = 0..S
        t2 = rk[p - 2:top - 2] + jj  # with s - 2
        self._best(t1 + self.h0[p:, :, 1:m], self.h0, self.j_h0, m, walk=1)
        if self.unbounded:  # storing a held base later = storing it at once (docs)
            self.hs[:, :, m], self.j_hs[:, :, m] = self.h0[:, :, m], self.j_h0[:, :, m]
        else:
            self._best(t1 + self.h[p:, :, 1:m], self.hs, self.j_hs, m, walk=1)
        gj = self.g[p:, :, 1:m]
        kbest = self._best(t2 + gj, self.gs, self.j_gs, m, walk=2)
        free = t1 + (gj + self.rc)
        if not self.inplace:
            free[1:2] = np.inf  # freeing the base while walking needs it and b+1 at once
        farg = free.argmin(axis=-1)
        fbest = np.take_along_axis(free, farg[..., None], axis=-1)[..., 0]
        use_free = fbest < kbest
        self.gs[p:, :, m] = np.where(use_free, fbest, kbest)
        self.j_gs[p:, :, m] = np.where(use_free, farg + 1, self.j_gs[p:, :, m])
        self.keep[p:, :, m] = ~use_free

    def _best(self, cand: np.ndarray, out: np.ndarray, jout: np.ndarray, m: int,
              walk: int) -> np.ndarray:
        """Least candidate over j into ``out[:, :, m]``; with ``walk`` spare pebbles
        (the base's own not counted) only j = 1 is a legal walk in the checkpoint game."""
        arg = cand.argmin(axis=-1)
        best = np.take_along_axis(cand, arg[..., None], axis=-1)[..., 0]
        if not self.inplace and best.shape[0] > walk:
            best[walk], arg[walk] = cand[walk, :, 0], 0
        out[_P:, :, m] = best
        jout[_P:, :, m] = arg + 1
        return best

    def _fold(self, m: int) -> None:
        """H, G and Right at m from Hs and Gs (store the base later, drop its disk copy)."""
        p, wc = _P, self.wc
        hs, gs, h, g, right = (a[:, :, m] for a in (self.hs, self.gs, self.h, self.g, self.right))
        h[:] = hs
        g[:] = gs
        if self.unbounded:
            right[:] = h
            right[p:-1] = np.minimum(h[p:-1], wc + g[p + 1:])
        else:
            h[p:-1, 1:] = np.minimum(hs[p:-1, 1:], wc + gs[p + 1:, :-1])
            g[p + 1:, :-1] = np.minimum(gs[p + 1:, :-1], hs[p:-1, 1:])
            right[:] = h
            right[p:-1, 1:] = np.minimum(h[p:-1, 1:], wc + g[p + 1:, :-1])


def _t_table(n: int, s_max: int, inplace: bool) -> tuple[np.ndarray, np.ndarray]:
    """``T[_P + s, m]``: memory-only optimum (held base, s spare), ``inf`` if infeasible,
    and the repetition numbers ``r(m, s)`` (most computations of any one cell)."""
    game = Game.INPLACE if inplace else Game.CHECKPOINT
    out = np.full((s_max + 1 + _P, n + 1), np.inf)
    reps = np.full((s_max + 1 + _P, n + 1), np.inf)
    m = np.arange(1, n + 1)
    for s in range(s_max + 1):
        out[_P + s, 1:], reps[_P + s, 1:] = _treeverse_steps(m, s, game)
    return out, reps


def _treeverse_steps(m: np.ndarray, s: int, game: Game) -> tuple[np.ndarray, np.ndarray]:
    """Treeverse's forward steps ``T(m, s)`` and repetition numbers ``r(m, s)`` for every
    entry of ``m`` at once.

    The closed form of :func:`pebbles._treeverse.min_steps`, ``r (m - 1) - sum_{i < r}
    (beta(s, i) - 1)`` with ``r`` the least with ``beta(s, r) >= m``, vectorised.

    Parameters
    ----------
    m : numpy.ndarray
        Step counts, integers ``>= 1``.
    s : int
        Pebbles, ``>= 0``.
    game : Game
        ``Game.CHECKPOINT`` or ``Game.INPLACE``.

    Returns
    -------
    steps, reps : numpy.ndarray
        Floats shaped like ``m``; ``inf`` where ``s`` pebbles cannot reverse ``m`` steps.
    """
    from ._treeverse import beta, repetitions

    top = int(m.max())
    s = min(s, top)  # pebbles beyond the steps are never used
    # infeasible for long boards: beta(s, 1) is as far as s pebbles ever reach
    r_top = repetitions(game, top, s) if s >= min_pebbles(top, game) else 1
    row = np.array([min(beta(game, s, r), top + 1) for r in range(r_top + 1)],
                   dtype=np.int64)
    r = np.searchsorted(row, m, side="left")
    ok = r <= r_top
    lost = np.concatenate(([0], np.cumsum(row - 1)))  # exact where used: row[i] < m
    rr = np.minimum(r, r_top)
    return np.where(ok, rr * (m - 1) - lost[rr], np.inf), np.where(ok, rr, np.inf)


class _Spine:
    """Unbounded disk: writes only on the first sweep, so left parts never write.

    ``H0`` as above with the left part ``T(j, s)`` (memory only); ``G`` with the
    left part ``R(j, s)`` (base on disk, reloads, no writes); splits that a
    further disk checkpoint would beat (docs/two-level.md, pruning lemma) are
    never tried, which bounds the split offsets by ``J`` and makes the table
    ``O(n J S)``.
    """

    def __init__(self, n: int, s_max: int, wc: float, rc: float, inplace: bool) -> None:
        self.n, self.s_max, self.wc, self.rc, self.inplace = n, s_max, wc, rc, inplace
        self.t, self.reps = _t_table(n, s_max, inplace)
        rows = s_max + 1 + _P
        self.r = np.full((rows, n + 1), np.inf)
        self.j_r = np.zeros((rows, n + 1), dtype=np.int32)
        self.keep_r = np.zeros((rows, n + 1), dtype=bool)
        self.r[_P + 1:, 1] = 0.0
        bounded = self._bounded_rows()
        for s in bounded:
            self._r_row(s, n, window=2)
        self.j_limit = self._limits(bounded, n)
        for s in range(1, s_max + 1):
            if s not in bounded:
                self._r_row(s, min(n, self.j_limit), window=n)
        # the same tests with the exact R (now known up to the limit) are sharper
        self.j_limit = self._limits(set(range(s_max + 1)), min(n, self.j_limit + 1))
        self._spine()

    def _bounded_rows(self) -> set[int]:
        """Rows where R's right parts have at most two cells (T(., s-1) is finite there only)."""
        return {s for s in ((1,) if self.inplace else (1, 2)) if s <= self.s_max}

    def _r_row(self, s: int, top: int, window: int) -> None:
        """R(m, s) for m <= top; right parts of at most ``window`` cells."""
        t, p = self.t, _P
        keep_t = t[p + s - 2].copy()  # right part of a kept base: s - 2 pebbles
        free_t = t[p + s - 1] + self.rc if s >= (1 if self.inplace else 2) else \
            np.full(self.n + 1, np.inf)
        one_only = not self.inplace and s < 3  # a kept base walks one cell at most
        row, jrow, krow = self.r[p + s], self.j_r[p + s], self.keep_r[p + s]
        if window <= 8:  # a few candidates: plain Python floats are faster than numpy
            rl, kt, ft = row.tolist(), keep_t.tolist(), free_t.tolist()
            for m in range(2, top + 1):
                best, arg, kept = math.inf, 0, False
                for j in range(max(1, m - window), m):
                    base = rl[j] + j
                    k = base + kt[m - j] if (j == 1 or not one_only) else math.inf
                    f = base + ft[m - j]
                    if k <= f and k < best:
                        best, arg, kept = k, j, True
                    elif f < k and f < best:
                        best, arg, kept = f, j, False
                rl[m], jrow[m], krow[m] = best, arg, kept
            row[:] = rl
            return
        for m in range(2, top + 1):
            jj = np.arange(1, m)
            left = row[1:m] + jj
            keep = left + keep_t[m - 1:0:-1]
            if one_only:
                keep[1:] = np.inf
            free = left + free_t[m - 1:0:-1]
            k, f = int(keep.argmin()), int(free.argmin())
            use_keep = keep[k] <= free[f]
            row[m] = keep[k] if use_keep else free[f]
            jrow[m] = (k if use_keep else f) + 1
            krow[m] = use_keep

    def _limits(self, exact: set[int], top: int) -> int:
        """Largest split offset below ``top`` not beaten by one more disk checkpoint, over
        all rows; rows in ``exact`` use R itself, the others its bounds."""
        n, p, t, c = self.n, _P, self.t, self.wc + self.rc
        bounded = exact
        j = np.arange(2, top)
        if len(j) == 0:
            return 1
        # R(k, s) <= T(k, s) + r(k, s) * read: Treeverse freeing and reloading the base
        # at each of its at most r(k, s) walks from it; R(k, s) >= T(k, s).
        upper = t + np.where(np.isfinite(self.reps), self.reps, 0.0) * self.rc
        limit = 1
        self.row_limits: dict[int, int] = {}
        for s in range(self.s_max + 1):
            up_s, up_s1 = (self.r[p + q] if q in bounded else upper[p + q] for q in (s, s - 1))
            low_s = self.r[p + s] if s in bounded else t[p + s]          # <= R(., s)
            low = 1 if self.inplace else 2
            free_ok, keep_ok = s >= low, s - 1 >= low   # the inserted checkpoint can walk
            beaten_h = np.zeros(len(j), dtype=bool)
            beaten_f = np.zeros(len(j), dtype=bool)
            beaten_k = np.zeros(len(j), dtype=bool)
            for b in [j // 2] + [np.minimum(2 ** e, j - 1) for e in range(n.bit_length())]:
                a = j - b
                beaten_h |= free_ok & (c + up_s[b] + t[p + s, a] < t[p + s, j])
                beaten_f |= free_ok & (c + up_s[b] + up_s[a] < low_s[j])
                beaten_k |= keep_ok & (c + up_s1[b] + up_s[a] < low_s[j])
            finite = np.isfinite(low_s[j])
            alive = ~beaten_h & np.isfinite(t[p + s, j]) & (self.inplace or s >= 2)
            alive |= ~beaten_f & finite & free_ok
            alive |= ~beaten_k & finite & (s >= (2 if self.inplace else 3))
            if alive.any():
                self.row_limits[s] = int(j[alive].max())
                limit = max(limit, self.row_limits[s])
        return limit

    def disk_used(self, s_top: int) -> int:
        """Disk pebbles of the optimum: its disk checkpoints, all on disk after the first
        sweep (the other parts never write)."""
        p, b, m, s, count, code = _P, 0, self.n, s_top, 0, 0
        while m > 1:
            j = int((self.j_h0 if code == 0 else self.j_g)[p + s, m])
            if code == 3 and not self.keep[p + s, m]:
                spare = s - 1
            else:
                spare = s - 1 if code == 0 else s - 2
            b, m = b + j, m - j
            if self.right[p + spare, m] == self.h0[p + spare, m]:
                code, s = 0, spare
            else:
                code, s, count = 3, spare + 1, count + 1
        return count

    def _spine(self) -> None:
        n, p, t, r, wc = self.n, _P, self.t, self.r, self.wc
        top, rows = _P + self.s_max + 1, self.s_max + 1
        shape = (top, n + 1)
        self.h0, self.g, self.right = (np.full(shape, np.inf) for _ in range(3))
        self.h0[p:, 1] = self.right[p:, 1] = 0.0
        self.g[p + 1:, 1] = 0.0
        jl = min(self.j_limit, n - 1) if n > 1 else 1
        # left-part costs by candidate (0 H0, 1 G keeping its base, 2 G freeing it), walk
        # limits of the checkpoint game folded in as inf
        left = np.stack([t[p:, 1:jl + 1], r[p:, 1:jl + 1], r[p:, 1:jl + 1] + self.rc])
        if not self.inplace:
            left[0, 1:2, 1:] = left[1, 2:3, 1:] = left[2, 1:2] = np.inf
        jj = np.arange(1, jl + 1, dtype=np.float64)
        rev = np.full(shape, np.inf)  # rev[:, n - k] = Right(k) + ..., slices run forward
        rev[p:, n - 1] = 0.0
        shift = np.array([p - 1, p - 2, p - 1])  # spare pebbles of the right part: s-1, s-2
        sel = shift[:, None] + np.arange(rows)[None, :]
        cand = np.empty((3, rows, jl))
        arg = np.zeros((3, rows, n + 1), dtype=np.int64)
        i0, i1 = np.ogrid[:3, :rows]
        val = np.full((3, rows, n + 1), np.inf)
        for m in range(2, n + 1):
            jmax = min(m - 1, jl)
            rk = rev[:, n - m + 1:n - m + 1 + jmax] + jj[:jmax]  # Right(m - j) + j
            c = cand[:, :, :jmax]
            np.add(rk[sel], left[:, :, :jmax], out=c)
            a = c.argmin(axis=2)
            v = c[i0, i1, a]
            arg[:, :, m], val[:, :, m] = a, v
            g = np.minimum(v[1], v[2])
            self.g[p:, m] = g
            col = v[0].copy()
            col[:-1] = np.minimum(col[:-1], wc + g[1:])
            rev[p:, n - m] = col
        self.h0[p:, 2:] = val[0, :, 2:]
        self.keep = np.zeros(shape, dtype=bool)
        self.keep[p:, 2:] = val[1, :, 2:] <= val[2, :, 2:]
        self.j_h0 = np.zeros(shape, dtype=np.int32)
        self.j_h0[p:] = arg[0] + 1
        self.j_g = np.zeros(shape, dtype=np.int32)
        self.j_g[p:] = np.where(self.keep[p:], arg[1], arg[2]) + 1
        self.right[p:, 2:] = rev[p:, n - 2::-1][:, :n - 1]


def _generate_spine(t: _Spine, s_top: int) -> Iterator[Move]:
    """The moves of :class:`_Spine`'s optimum (the same task stack as :func:`_generate`)."""
    new = tuple.__new__
    # tasks (code, b, m, s): 0 H0, 3 G, 5 Right, 6 R, 7 Treeverse, 9 emit move (kind=m)
    stack: list[tuple[int, int, int, int]] = [(0, 0, t.n, s_top)]
    push, pop = stack.append, stack.pop
    p = _P
    while stack:
        code, b, m, s = pop()
        if code == 9:
            yield new(Move, (MoveKind(m), b, -1))
        elif code == 7:
            for mv in treeverse(m, s, inplace=t.inplace):
                yield new(Move, (mv[0], mv[1] + b, mv[2] + b if mv[0] == _FORWARD else -1))
        elif code == 5:
            if t.right[p + s, m] == t.h0[p + s, m]:
                push((0, b, m, s))
            else:
                push((3, b, m, s + 1))
                yield new(Move, (_STORE, b, -1))
        elif m == 1:
            yield new(Move, (_PAINT, b, -1))
            if code != 0:
                yield new(Move, (_DISCARD, b, -1))
        else:
            yield from _spine_split(t, code, b, m, s, push)


def _split_plan(t: _Spine, code: int, b: int, m: int,
                s: int) -> tuple[int, bool, list[tuple[int, int, int, int]]]:
    """One split of H0 (code 0), G (3) or R (6): its walk's length j, whether the base's
    pebble stays, and the tasks of the rest, in the order to push them."""
    p = _P
    if code == 0:
        j, keep = int(t.j_h0[p + s, m]), True
    elif code == 3:
        j, keep = int(t.j_g[p + s, m]), bool(t.keep[p + s, m])
    else:
        j, keep = int(t.j_r[p + s, m]), bool(t.keep_r[p + s, m])
    c = b + j
    tasks = [(7, b, j, s) if code == 0 else (6, b, j, s)]
    if not keep:
        tasks.append((9, b, int(_LOAD), 0))
    tasks.append((9, c, int(_REMOVE), 0))
    spare = s - 1 if code == 0 or not keep else s - 2
    tasks.append((7 if code == 6 else 5, c, m - j, spare))
    return j, keep, tasks


def _spine_split(t: _Spine, code: int, b: int, m: int, s: int, push) -> Iterator[Move]:
    """One split of H0 (code 0), G (3) or R (6): the walk now, the rest pushed."""
    j, keep, tasks = _split_plan(t, code, b, m, s)
    for task in tasks:
        push(task)
    c = b + j
    if keep:
        yield Move(_FORWARD, b, c)
    else:
        yield from _walk(b, c, t.inplace)


#: Most entries ``(budget + 3) * (n + 1)`` of the unbounded-disk tables (:class:`_Spine`)
#: that are built: about 120 bytes an entry while they are built and 62 once built, so
#: at most about 2.4 GB (budget 10: n up to 1.5 * 10^6, about a minute on a 2-core
#: machine); larger ones are refused at once.
TWO_LEVEL_MAX_ENTRIES = 2 * 10**7


#: Most estimated work ``n m min(n, m + 16)`` (``m = min(budget, n)``) of the
#: unbounded-disk table: a budget near n leaves splits up to about the budget apart
#: (left parts that fit in memory are never beaten by a disk checkpoint), so the work
#: grows with the budget squared. At most about 40 s on a 2-core machine (n = 1000 with
#: budget 998 is 1e9: about 35 s; n = 10^4 with budget 300 is 9.5e8: 20 s); larger ones
#: are refused at once.
TWO_LEVEL_MAX_WORK = 10**9


def two_level_work(n: int, budget: int) -> int:
    """Estimated work of the unbounded-disk table of :func:`two_level` (compared with
    :data:`TWO_LEVEL_MAX_WORK`; about 20-35 ns a unit)."""
    m = min(budget, n)
    return n * m * min(n, m + 16)


def two_level_tables_fit(n: int, budget: int) -> bool:
    """Whether the tables of :func:`two_level` for ``n`` steps and ``budget`` memory
    pebbles are within :data:`TWO_LEVEL_MAX_ENTRIES` and their work within
    :data:`TWO_LEVEL_MAX_WORK` (else it refuses at once).

    Examples
    --------
    >>> from pebbles._twolevel import two_level_tables_fit
    >>> two_level_tables_fit(10**5, 10), two_level_tables_fit(10**12, 10)
    (True, False)
    """
    return (_table_entries(n, budget) <= TWO_LEVEL_MAX_ENTRIES
            and two_level_work(n, budget) <= TWO_LEVEL_MAX_WORK)


def _table_entries(n: int, budget: int) -> int:
    return (min(budget, n) + 1 + _P) * (n + 1)


def _longest_fit(n: int, budget: int) -> int:
    """The longest run, at most ``n`` steps, whose tables with ``budget`` memory pebbles
    fit (:func:`two_level_tables_fit`; 0 when none does): both limits grow with the run."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if two_level_tables_fit(mid, budget) else (lo, mid - 1)
    return lo


def _instead(n: int, s_max: int) -> str:
    """What to use instead of a two-level table too large for ``n`` and ``s_max``:
    segments whose tables fit where a disk still helps them, else Treeverse."""
    most = _longest_fit(n, s_max)
    memory_only = (f"'treeverse' (memory only), which needs {min_forward_steps(n, s_max)} "
                   f"forward steps for n={n} with this budget")
    if most > s_max + 1:  # a disk helps a segment only where memory does not hold it
        return (f"use 'periodic-disk' (one disk pebble every `period` steps, streamed at any "
                f"n), or reverse the run in segments of at most {most} steps with "
                f"budget={s_max}, or use {memory_only}")
    return f"use {memory_only}, or 'periodic-disk', or a smaller budget"


def _check_table_size(n: int, s_max: int) -> None:
    """Refuse tables above :data:`TWO_LEVEL_MAX_ENTRIES` entries or
    :data:`TWO_LEVEL_MAX_WORK` work before allocating them (``s_max``: the budget, at
    most ``n``), naming what fits instead."""
    entries = _table_entries(n, s_max)
    if entries > TWO_LEVEL_MAX_ENTRIES:
        raise PebblesValueError(
            f"two-level with n={n}, budget={s_max}: its tables hold (budget + 3) * (n + 1) "
            f"= {entries:.1e} entries of about 120 bytes, more than the "
            f"{TWO_LEVEL_MAX_ENTRIES:.0e} allowed (TWO_LEVEL_MAX_ENTRIES: a few GB and "
            f"minutes of work); {_instead(n, s_max)}")
    work = two_level_work(n, s_max)
    if work > TWO_LEVEL_MAX_WORK:
        raise PebblesValueError(
            f"two-level with n={n}, budget={s_max}: its table would take about {work:.1e} "
            f"operations, more than the {TWO_LEVEL_MAX_WORK:.0e} allowed "
            f"(TWO_LEVEL_MAX_WORK: about 40 s; the work grows with the budget squared); "
            f"{_instead(n, s_max)}")


#: Most work ``n^2 S (D + 1)`` of the bounded-disk table that is run (about 10 s on a
#: 2-core machine; n = 4000, S = 10, D = 5 is 9.6e8); larger ones are refused at once.
BOUNDED_MAX_WORK = 10**9


def bounded_work(n: int, budget: int, disk_budget: int) -> int:
    """Work ``n^2 S (D + 1)`` of the bounded-disk table (refused above
    :data:`BOUNDED_MAX_WORK` when the unbounded optimum needs more disk than ``D``)."""
    return n * n * budget * (disk_budget + 1)


@lru_cache(maxsize=4)
def _solve(n: int, s_max: int, disk: int | None, wc: float, rc: float,
           inplace: bool) -> _Tables | _Spine:
    """The unbounded-disk optimum when it needs at most ``disk`` disk pebbles, else the
    bounded table; tables above :data:`TWO_LEVEL_MAX_ENTRIES` are refused at once."""
    _check_table_size(n, s_max)
    with np.errstate(over="ignore"):  # costs near the float limit sum to inf, rightly
        spine = _Spine(n, s_max, wc, rc, inplace)
    used = None if disk is None else spine.disk_used(s_max)
    if used is None or used <= disk:
        return spine
    work = bounded_work(n, s_max, disk)
    if work > BOUNDED_MAX_WORK:
        raise PebblesValueError(
            f"disk_budget={disk} with n={n}, budget={s_max}: the optimum with an unbounded "
            f"disk uses {used} disk pebbles, and the exact schedule with "
            f"fewer solves a table of n^2 * budget * (disk_budget + 1) = {work:.1e} entries "
            f"(more than {BOUNDED_MAX_WORK:.0e}: minutes to hours). Give disk_budget="
            f"{used} or more, or an unbounded disk, or use 'periodic-disk', which "
            f"needs one disk pebble every `period` steps")
    return _Tables(n, s_max, disk, wc, rc, inplace)


def two_level_steps(n: int, budget: int, disk_budget: int | float | None = None, *,
                    write_cost: float, read_cost: float, inplace: bool = False) -> int:
    """Forward steps of :func:`two_level`'s schedule, without making its moves where the
    disk is unbounded (or large enough): the spine's splits, and Treeverse's closed form
    for the memory-only parts.

    Parameters
    ----------
    n : int
        Number of steps (cells ``0..n``); ``>= 1``.
    budget : int
        Memory pebbles S (walking pebbles included, cell 0 free).
    disk_budget : int, optional
        Disk pebbles D; ``None`` or ``math.inf`` for unbounded, 0 for no disk.
    write_cost, read_cost : float
        Cost of one ``store`` / ``load`` in forward steps (``>= 0``; ``inf`` allowed).
    inplace : bool, default False
        Play the in-place game instead of the checkpoint game.

    Returns
    -------
    int
        Forward steps of the schedule (stores and loads not counted).

    Raises
    ------
    PebblesTypeError
        If an argument has the wrong type.
    PebblesValueError
        If ``n < 1``, ``disk_budget < 0``, a cost is negative or NaN, or the tables
        would pass their size guards (:class:`InfeasibleBudgetError`, a subclass: a
        budget too small for the game).

    Examples
    --------
    >>> from pebbles import simulate, two_level, two_level_steps
    >>> kw = dict(write_cost=2, read_cost=2)
    >>> two_level_steps(1000, 4, **kw) == simulate(two_level(1000, 4, **kw), 1000,
    ...                                            "checkpoint", 4, **kw).forward_steps
    True
    """
    n, s, disk, wc, rc = _check_args(n, budget, disk_budget, write_cost, read_cost, inplace)
    game = Game.INPLACE if inplace else Game.CHECKPOINT
    if _memory_only(disk, wc, rc):
        from ._optimal import min_forward_steps

        return min_forward_steps(n, s, game)
    t = _solve(n, s, disk, wc, rc, bool(inplace))
    if isinstance(t, _Tables):
        return sum(m[2] - m[1] if m[0] == _FORWARD else 1
                   for m in _generate(t, s, t.h0.shape[1] - 1)
                   if m[0] in (_FORWARD, _PLACE, _MOVE))
    return _spine_steps(t, s, game)


def _spine_steps(t: _Spine, s_top: int, game: Game) -> int:
    """The forward steps :func:`_generate_spine` makes, by the same task stack."""
    from ._optimal import min_forward_steps

    stack, steps, p = [(0, 0, t.n, s_top)], 0, _P
    while stack:
        code, b, m, s = stack.pop()
        if code == 7:
            steps += min_forward_steps(m, s, game)
        elif code == 5:
            right = t.right[p + s, m] == t.h0[p + s, m]
            stack.append((0, b, m, s) if right else (3, b, m, s + 1))
        elif code != 9 and m > 1:
            j, _, tasks = _split_plan(t, code, b, m, s)
            stack += tasks
            steps += j  # the walk of the split
    return steps


def min_total_time(n: int, budget: int, disk_budget: int | float | None = None, *,
                   write_cost: float, read_cost: float, inplace: bool = False) -> float:
    """Least total time ``forward steps + write_cost * writes + read_cost * reads``.

    Parameters
    ----------
    n : int
        Number of steps (cells ``0..n``).
    budget : int
        Memory pebbles S (walking pebbles included, cell 0 free).
    disk_budget : int, optional
        Disk pebbles D; ``None`` or ``math.inf`` for unbounded, 0 for no disk.
    write_cost, read_cost : float
        Cost of one ``store`` / ``load`` in forward steps (``>= 0``; ``inf`` allowed: a
        disk never worth using, priced as memory only; :func:`pebbles.simulate`,
        :func:`pebbles.schedule` and :func:`pebbles.plan` take finite costs).
    inplace : bool
        Play the in-place game instead of the checkpoint game.

    Examples
    --------
    >>> from pebbles import min_forward_steps, min_total_time
    >>> min_total_time(100, 3, 0, write_cost=1, read_cost=1) == min_forward_steps(100, 3)
    True
    >>> min_total_time(100, 3, None, write_cost=1, read_cost=1)  # memory only: 615
    226.0
    """
    n, s, disk, wc, rc = _check_args(n, budget, disk_budget, write_cost, read_cost, inplace)
    if _memory_only(disk, wc, rc):
        from ._optimal import min_forward_steps

        return float(min_forward_steps(n, s, Game.INPLACE if inplace else Game.CHECKPOINT))
    t = _solve(n, s, disk, wc, rc, bool(inplace))
    return float(t.h0[_P + s, n] if isinstance(t, _Spine) else t.h0[_P + s, -1, n])


def _memory_only(disk: int | None, wc: float, rc: float) -> bool:
    """No disk, or a disk that cannot pay: the memory-only optimum is the optimum."""
    return disk == 0 or math.isinf(wc) or math.isinf(rc)


def two_level(n: int, budget: int, disk_budget: int | float | None = None, *,
              write_cost: float, read_cost: float, inplace: bool = False) -> Iterator[Move]:
    """Yield an optimal two-level (memory + disk) schedule.

    Its total time, as :func:`pebbles.simulate` measures it with the same
    budgets and (finite) costs, is :func:`min_total_time`.

    Parameters
    ----------
    n, budget, disk_budget, write_cost, read_cost, inplace
        As for :func:`min_total_time`.

    Yields
    ------
    Move
        ``forward``, ``place``, ``move``, ``remove``, ``paint``, ``store``,
        ``load`` and ``discard`` moves.

    Examples
    --------
    >>> from pebbles import simulate, two_level
    >>> moves = list(two_level(6, 2, None, write_cost=0.5, read_cost=0.5))
    >>> [str(m) for m in moves[:6]]
    ['forward 0 1', 'store 1', 'place 2', 'remove 1', 'store 2', 'place 3']
    >>> r = simulate(moves, 6, "checkpoint", 2, write_cost=0.5, read_cost=0.5)
    >>> r.forward_steps, r.writes, r.reads, r.time
    (5, 3, 3, 8.0)
    """
    n, s, disk, wc, rc = _check_args(n, budget, disk_budget, write_cost, read_cost, inplace)
    if _memory_only(disk, wc, rc):
        return treeverse(n, s, inplace=bool(inplace))
    t = _solve(n, s, disk, wc, rc, bool(inplace))
    if isinstance(t, _Spine):
        return _generate_spine(t, s)
    return _generate(t, s, t.h0.shape[1] - 1)


def _generate(t: _Tables, s_top: int, d_top: int) -> Iterator[Move]:
    new = tuple.__new__
    # tasks: (code, b, m, s, d); code 0 H0, 1 H, 2 Hsplit, 3 G, 4 Gsplit, 5 Right,
    # 9 emit move (kind=m, a=b).
    stack: list[tuple[int, int, int, int, int]] = [(0, 0, t.n, s_top, d_top)]
    push, pop = stack.append, stack.pop
    p = _P
    while stack:
        code, b, m, s, d = pop()
        if code == 9:
            yield new(Move, (MoveKind(m), b, -1))
        elif code == 1 or code == 3:  # fold choices
            if code == 1:
                split = t.h[p + s, d, m] == t.hs[p + s, d, m]
                nxt = (2, b, m, s, d) if split else (4, b, m, s + 1, t.dec(d))
                extra = None if split else _STORE
            else:
                split = t.g[p + s, d, m] == t.gs[p + s, d, m]
                nxt = (4, b, m, s, d) if split else (2, b, m, s - 1, t.inc(d))
                extra = None if split else _DISCARD
            push(nxt)
            if extra is not None:
                yield new(Move, (extra, b, -1))
        elif code == 5:  # the new pebble on b: keep it in memory or store it at once
            if t.right[p + s, d, m] == t.h[p + s, d, m]:
                push((1, b, m, s, d))
            else:
                push((3, b, m, s + 1, t.dec(d)))
                yield new(Move, (_STORE, b, -1))
        elif m == 1:
            yield new(Move, (_PAINT, b, -1))
            if code == 4:
                yield new(Move, (_DISCARD, b, -1))
        else:
            yield from _split_moves(t, code, b, m, s, d, push)


def _split_moves(t: _Tables, code: int, b: int, m: int, s: int, d: int, push) -> Iterator[Move]:
    """Moves of one split of H0 (code 0), Hsplit (2) or Gsplit (4); pushes the rest."""
    new = tuple.__new__
    p = _P
    if code == 4:
        j = int(t.j_gs[p + s, d, m])
        keep = bool(t.keep[p + s, d, m])
    else:
        j = int((t.j_h0 if code == 0 else t.j_hs)[p + s, d, m])
        keep = True
    c = b + j
    left = (0, b, j, s, d) if code == 0 else ((1 if code == 2 else 3), b, j, s, d)
    push(left)
    if not keep:
        push((9, b, _LOAD, 0, 0))
    push((9, c, _REMOVE, 0, 0))
    spare = s - 1 if code != 4 or not keep else s - 2
    push((5, c, m - j, spare, d))
    if keep:
        yield new(Move, (_FORWARD, b, c))
    elif t.inplace:
        for i in range(b + 1, c + 1):
            yield new(Move, (_MOVE, i, -1))
    else:  # a forward move would keep its start: walk by place / remove pairs
        for i in range(b + 1, c + 1):
            yield new(Move, (_PLACE, i, -1))
            yield new(Move, (_REMOVE, i - 1, -1))


def _check_period(n: int, budget: int, period: object, inplace: bool) -> tuple[int, int, int]:
    """``n``, ``budget`` and ``period`` of :func:`periodic_disk`, checked; a budget below
    :func:`_period_least` is refused naming it."""
    n = check_int("n", n, 1)
    budget = check_int("budget", budget)
    period = check_int("period", period, 1)
    game = Game.INPLACE if check_bool("inplace", inplace) else Game.CHECKPOINT
    least = _period_least(n, period, game)
    if budget < 0:
        refuse_negative(budget, least, n, by=f" with period={period}")
    if budget < min_pebbles(min(period, n), game):
        raise InfeasibleBudgetError(
            f"budget={budget} cannot reverse a period of {min(period, n)} steps (period="
            f"{period}, n={n}) in the {game.value} game; use budget={least} or more", least)
    if period < n and budget < min_pebbles(period, game) + 1:
        raise InfeasibleBudgetError(
            f"budget={budget} cannot reverse a period of {period} steps while it holds the "
            f"period's start in memory; pass budget >= {least} or a shorter period", least)
    if budget < least:  # the checkpoint walk between period starts
        raise InfeasibleBudgetError(
            f"budget={budget} cannot walk from one stored period start to the next with "
            f"period={period} and n={n} (a walk holds two pebbles in the checkpoint game); "
            f"pass budget >= {least}", least)
    return n, budget, period


def _period_least(n: int, period: int, game: Game) -> int:
    """Least budget :func:`periodic_disk` takes: a period's own (:func:`min_pebbles`),
    one more to hold its start where there are more periods, and 2 in the checkpoint
    game to walk between stored starts (``n > 2 period``)."""
    least = min_pebbles(min(period, n), game) + (1 if period < n else 0)
    if game is Game.CHECKPOINT and n > 2 * period:
        least = max(least, 2)
    return least


def periodic_disk(n: int, budget: int, period: int, *, inplace: bool = False) -> Iterator[Move]:
    """Yield the periodic disk schedule (Aupy & Herrmann 2017, adapted to this game).

    The first sweep stores the period starts ``s_period, s_2period, ...`` on disk
    but the last, which it ends on and keeps in memory (one ``store`` each, ``k - 1``
    disk pebbles for ``k = (n - 1) // period`` periods after the first); then the
    periods are reversed from the last to the first, each by
    :func:`pebbles.treeverse` with its start loaded once (not for the last, still in
    memory, nor the first, cell 0) and held while ``budget - 1`` further memory
    pebbles reverse it.

    Parameters
    ----------
    n : int
        Number of steps; ``>= 1``.
    budget : int
        Memory pebbles S (walking pebbles included, cell 0 free).
    period : int
        Steps between stored period starts; ``>= 1`` (``>= n``: no disk).
    inplace : bool, default False
        Play the in-place game instead of the checkpoint game.

    Yields
    ------
    Move
        The schedule's moves, streamed.

    Raises
    ------
    PebblesTypeError
        If ``n``, ``budget`` or ``period`` is not an integer, or ``inplace`` not a bool.
    PebblesValueError
        If ``n < 1`` or ``period < 1``; :class:`InfeasibleBudgetError` (a subclass) if
        ``budget`` cannot reverse a period while holding its start, or walk between
        stored starts.

    Examples
    --------
    >>> from pebbles import periodic_disk, periodic_disk_time, simulate
    >>> r = simulate(periodic_disk(30, 3, 10), 30, "checkpoint", 3, write_cost=2, read_cost=1)
    >>> r.time == periodic_disk_time(30, 3, 10, write_cost=2, read_cost=1), r.writes, r.reads
    (True, 1, 1)
    """
    n, budget, period = _check_period(n, budget, period, inplace)
    return _periodic(n, budget, period, inplace)


def _periodic(n: int, budget: int, period: int, inplace: bool) -> Iterator[Move]:
    """The moves of :func:`periodic_disk`, streamed: the period starts are a ``range``
    (never a list), so the first move comes at once at any n."""
    starts = range(0, n, period)  # lazy: indexing, slicing and reversing are O(1)
    last = starts[-1]
    if last > 0:
        yield Move(_FORWARD, 0, period)
        for a in starts[1:-1]:
            yield Move(_STORE, a)
            yield from _walk(a, a + period, inplace)
    for x in reversed(starts):
        length = min(x + period, n) - x
        if 0 < x < last:
            yield Move(_LOAD, x)
        pebbles = budget if x == 0 else budget - 1
        for m in treeverse(length, pebbles, inplace=inplace):
            yield Move(m[0], m[1] + x, m[2] + x if m[0] == _FORWARD else -1)
        if x > 0:
            yield Move(_REMOVE, x)
        if 0 < x < last:
            yield Move(_DISCARD, x)


def _walk(a: int, b: int, inplace: bool) -> Iterator[Move]:
    """Walk the only memory pebble from a to b, freeing a (2 pebbles at most; in-place 1)."""
    for i in range(a + 1, b + 1):
        if inplace:
            yield Move(_MOVE, i)
        else:
            yield Move(_PLACE, i)
            yield Move(_REMOVE, i - 1)


def periodic_disk_moves(n: int, period: int, inplace: bool) -> int:
    """Length of the stream of :func:`periodic_disk` (any budget it takes), counted from
    its structure: ``k`` period starts, the first sweep's walk and store of each start
    but the first and last, Treeverse's ``3 m - 2`` moves for a period of ``m`` steps,
    and the load, discard and remove of each start."""
    k = -(-n // period)  # period starts 0, period, ..., (k - 1) period
    sweep = 1 + (k - 2) * (1 + period * (1 if inplace else 2)) if k > 1 else 0
    return sweep + 3 * n - 2 * k + (k - 1) + 2 * max(k - 2, 0)


def periodic_disk_time(n: int, budget: int, period: int, *, write_cost: float,
                       read_cost: float, inplace: bool = False) -> float:
    """Total time of :func:`periodic_disk`: ``x_k + (k - 1)(w + r) + sum of Treeverse times``,
    ``k = (n - 1) // period`` periods after the first (the last starts at ``x_k = k period``).

    Parameters
    ----------
    n, budget, period : int
        As :func:`periodic_disk`.
    write_cost, read_cost : float
        Cost of one ``store`` / ``load`` in forward steps (``>= 0``; ``inf`` allowed).
    inplace : bool, default False
        Play the in-place game instead of the checkpoint game.

    Returns
    -------
    float
        Forward steps plus ``write_cost`` per store and ``read_cost`` per load.

    Raises
    ------
    PebblesTypeError
        If an argument has the wrong type.
    PebblesValueError
        As :func:`periodic_disk`, or if a cost is negative or NaN.

    Examples
    --------
    >>> from pebbles import periodic_disk_time
    >>> periodic_disk_time(30, 3, 10, write_cost=2, read_cost=1)
    89.0
    """
    from ._optimal import min_forward_steps

    n, budget, period = _check_period(n, budget, period, inplace)
    wc, rc = _check_cost("write_cost", write_cost), _check_cost("read_cost", read_cost)
    game = Game.INPLACE if inplace else Game.CHECKPOINT
    k = (n - 1) // period  # periods after the first; the last starts at k * period
    # writes and reads priced only when there are any (0 * inf would be nan)
    total = float(k * period) + ((k - 1) * wc if k > 1 else 0.0) \
        + ((k - 1) * rc if k > 1 else 0.0)
    if k == 0:
        return total + min_forward_steps(n, budget, game)
    middle = (k - 1) * min_forward_steps(period, budget - 1, game) if k > 1 else 0
    return (total + min_forward_steps(period, budget, game) + middle
            + min_forward_steps(n - k * period, budget - 1, game))


#: Largest n for which :func:`best_period` prices every period 1..n (numpy, in blocks
#: of :data:`_PERIOD_BLOCK`; about 10 s at the limit on a 2-core machine); larger n are
#: refused at once.
BEST_PERIOD_MAX_N = 10**8
_PERIOD_BLOCK = 1 << 20


def best_period(n: int, budget: int, *, write_cost: float, read_cost: float,
                inplace: bool = False) -> int:
    """The period with the least :func:`periodic_disk_time` (ties: the longest).

    Every period ``1..n`` is priced, by :func:`periodic_disk_time`'s closed form
    evaluated for all of them at once.

    Parameters
    ----------
    n : int
        Number of steps, ``1 <= n <= BEST_PERIOD_MAX_N``.
    budget : int
        Memory pebbles (at least what the game needs for n steps).
    write_cost, read_cost : float
        Cost of one ``store`` / ``load`` in forward steps (``>= 0``; ``inf`` allowed: a
        disk never worth using, priced as memory only; :func:`pebbles.simulate`,
        :func:`pebbles.schedule` and :func:`pebbles.plan` take finite costs).
    inplace : bool
        Play the in-place game instead of the checkpoint game.

    Returns
    -------
    int
        The period (``n``: no disk at all, when nothing shorter is cheaper).

    Raises
    ------
    PebblesValueError
        For a bad argument, a budget no period can use (:class:`InfeasibleBudgetError`),
        or ``n > BEST_PERIOD_MAX_N``.

    Examples
    --------
    >>> from pebbles import best_period
    >>> best_period(1000, 4, write_cost=2, read_cost=2)
    4
    """
    n, budget, wc, rc, game = _check_best_period(n, budget, write_cost, read_cost, inplace)
    best, arg = math.inf, n
    for lo in range(1, n + 1, _PERIOD_BLOCK):
        periods = np.arange(lo, min(lo + _PERIOD_BLOCK, n + 1), dtype=np.int64)
        times = _period_times(n, budget, periods, wc, rc, game)
        low = float(times.min())
        if low <= best and low < math.inf:  # later blocks hold longer periods: ties go there
            best, arg = low, int(periods[np.flatnonzero(times == low)[-1]])
    return arg


def _check_best_period(n: object, budget: object, write_cost: object, read_cost: object,
                       inplace: object) -> tuple[int, int, float, float, Game]:
    n = check_int("n", n, 1)
    budget = check_int("budget", budget)  # a negative one: check_budget tells the least
    game = Game.INPLACE if check_bool("inplace", inplace) else Game.CHECKPOINT
    check_budget(n, budget, game)  # period n (no disk) needs no more than this
    wc, rc = _check_cost("write_cost", write_cost), _check_cost("read_cost", read_cost)
    if n > BEST_PERIOD_MAX_N:
        raise PebblesValueError(
            f"best_period(n={n}) prices each of the n periods; n must be <= "
            f"{BEST_PERIOD_MAX_N:.0e} (BEST_PERIOD_MAX_N: seconds, where larger n take "
            f"minutes to hours). Price a few periods with periodic_disk_time (closed form, "
            f"instant at any n), or start from best_period of a shorter run")
    return n, budget, wc, rc, game


def _period_times(n: int, budget: int, periods: np.ndarray, wc: float, rc: float,
                  game: Game) -> np.ndarray:
    """:func:`periodic_disk_time` of every period in ``periods`` (``1..n``), the same
    floats in the same order of operations; ``inf`` where :func:`_check_period` refuses."""
    k = (n - 1) // periods
    held = max(budget - 1, 0)  # only where some period is held (k >= 1), which needs 1+
    first, _ = _treeverse_steps(periods, budget, game)
    middle, _ = _treeverse_steps(periods, held, game)
    tail, _ = _treeverse_steps(n - k * periods, held, game)
    with np.errstate(invalid="ignore"):  # 0 * inf: no writes (reads) are priced 0
        total = (k * periods).astype(np.float64) + np.where(k > 1, (k - 1) * wc, 0.0) \
            + np.where(k > 1, (k - 1) * rc, 0.0)
        total = total + first + np.where(k > 1, (k - 1) * middle, 0.0) \
            + np.where(k > 0, tail, 0.0)
    # _check_period's rules; min_pebbles(m, game) is the same for every m >= 3
    least = np.array([min_pebbles(m, game) for m in (1, 2, 3)])[np.minimum(periods, 3) - 1]
    refused = (periods < n) & (budget < least + 1)
    if game is Game.CHECKPOINT and budget < 2:
        refused |= n > 2 * periods
    return np.where(refused, np.inf, total)
