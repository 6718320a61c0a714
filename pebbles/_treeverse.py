"""Treeverse schedules: optimal binomial checkpointing and the paper's Algorithm 3.

``treeverse`` is optimal (fewest forward steps) for the paper's checkpoint game
and, with ``inplace=True``, for the in-place game, for every n >= 1 and every
feasible budget. It recursively puts the first checkpoint at an optimal offset
(:func:`_split`), reverses the right part with one pebble less,
frees the checkpoint and reverses the left part (Griewank's binomial
checkpointing, Liu & Xu Figure 6a and eq. (6)). It is written with an explicit
stack, so memory is O(S + r) and no Python recursion is involved.

``treeverse_paper`` is Algorithm 3 of Liu & Xu exactly, with its ``mid`` split;
it reproduces Figure 7(a) (n = 20, delta = 3: 45 forward steps) but is not
optimal (paper-notes section 3).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from functools import lru_cache
from math import comb

import numpy as np

from ._budget import check_budget
from ._errors import InfeasibleBudgetError
from ._moves import Game, Move, MoveKind, encode
from ._validation import check_bool, check_int

__all__ = ["paper_tau", "treeverse", "treeverse_chunks", "treeverse_encoded", "treeverse_paper"]

_PAINT, _REMOVE, _FORWARD = MoveKind.PAINT, MoveKind.REMOVE, MoveKind.FORWARD


def treeverse(n: int, budget: int, *, inplace: bool = False) -> Iterator[Move]:
    """Yield an optimal checkpointing schedule (Treeverse / binomial Revolve).

    Parameters
    ----------
    n : int
        Number of steps (cells ``0..n``), ``n >= 1``.
    budget : int
        Budget S: most states held besides s_0, working state included.
    inplace : bool
        Play the in-place game (steps may overwrite their input buffer); the
        step count is then Griewank's ``r n - C(S + r, S + 1)``.

    Yields
    ------
    Move
        ``forward``, ``remove`` and ``paint`` moves.

    Raises
    ------
    InfeasibleBudgetError
        If the budget cannot finish the game (the error names the minimum).

    Examples
    --------
    >>> from pebbles import treeverse, simulate, min_forward_steps
    >>> r = simulate(treeverse(20, 4), 20, "checkpoint", budget=4)
    >>> r.forward_steps, r.backward_steps, min_forward_steps(20, 4, "checkpoint")
    (40, 20, 40)
    >>> simulate(treeverse(20, 4, inplace=True), 20, "inplace", 4).forward_steps
    39
    """
    n, budget, game = _checked(n, budget, inplace)
    return _lazy_tasks(n, budget, game)


def _lazy_tasks(n: int, budget: int, game: Game) -> Iterator[Move]:
    # The table is built at the first move, so making a schedule stays instant.
    yield from _tasks(_rows(n, budget, game), [(0, n, budget)])


def treeverse_encoded(n: int, budget: int, *, inplace: bool = False) -> np.ndarray:
    """The moves of :func:`treeverse` as an encoded ``int64`` (m, 3) array, fast.

    Equal to ``encode(treeverse(n, budget, inplace=inplace))``, but a subtree of
    the recursion depends only on its length and budget, not on where it
    starts: each small subtree is generated once, encoded, and copied shifted
    to every place it occurs (about 20x faster at n = 10^6).

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import encode, treeverse
    >>> from pebbles._treeverse import treeverse_encoded
    >>> np.array_equal(treeverse_encoded(1000, 5), encode(treeverse(1000, 5)))
    True
    """
    return np.concatenate(list(treeverse_chunks(n, budget, inplace=inplace)))


def treeverse_chunks(n: int, budget: int, *, inplace: bool = False) -> Iterator[np.ndarray]:
    """Stream the moves of :func:`treeverse` as encoded ``int64`` (m, 3) chunks.

    The streamed form of :func:`treeverse_encoded`: memory O(S log n) besides
    the cache of small subtrees, each chunk a few thousand moves at most.

    Examples
    --------
    >>> from pebbles._treeverse import treeverse_chunks
    >>> sum(int((c[:, 2] - c[:, 1])[c[:, 0] == 5].sum()) for c in treeverse_chunks(20, 4))
    40
    """
    n, budget, game = _checked(n, budget, inplace)
    return _chunks(_rows(n, budget, game), n, budget)


def _chunks(rows: list[list[int]] | _LazyRows, n: int, budget: int) -> Iterator[np.ndarray]:
    blocks: dict[tuple[int, int], np.ndarray] = {}
    pending: list[tuple[int, int, int]] = []
    stack = [(0, n, budget)]
    while stack:
        base, m, s = stack.pop()
        if m == 0:
            pending.append((_REMOVE, base, -1))
        elif m > _BLOCK:
            j = _split(rows, m, s)
            pending.append((_FORWARD, base, base + j))
            stack += ((base, j, s), (base + j, 0, 0), (base + j, m - j, s - 1))
        else:
            block = blocks.get((m, s))
            if block is None:
                block = blocks[(m, s)] = encode(_tasks(rows, [(0, m, s)]))
            if pending:
                yield np.array(pending, dtype=np.int64)
                pending.clear()
            shifted = block + base
            shifted[block[:, 2] < 0, 2] = -1
            shifted[:, 0] = block[:, 0]
            yield shifted
    if pending:
        yield np.array(pending, dtype=np.int64)


_BLOCK = 256  # subtrees this short or shorter are copied from the block cache


def _checked(n: int, budget: int, inplace: bool) -> tuple[int, int, Game]:
    n = check_int("n", n, 1)
    budget = check_int("budget", budget)  # a negative one: check_budget tells the least
    game = Game.INPLACE if check_bool("inplace", inplace) else Game.CHECKPOINT
    check_budget(n, budget, game)
    return n, min(budget, n), game


def beta(game: Game, s: int, r: int) -> int:
    """Most cells ``s`` pebbles reverse with no cell computed more than ``r`` times.

    Closed forms (no table): ``C(s + r, s)`` in the in-place game; in the
    paper's checkpoint game (``beta(1, r) = 2``, Pascal recurrence otherwise)
    ``C(s + r, s) - C(s + r - 2, s)`` for ``s, r >= 1``, and 1 when s or r is 0.
    """
    if r < 0:
        return 0
    if game is Game.INPLACE:
        return comb(s + r, s)
    if s == 0 or r == 0:
        return 1
    return comb(s + r, s) - comb(s + r - 2, s)


def repetitions(game: Game, m: int, s: int) -> int:
    """Least r with ``beta(s, r) >= m`` (a feasible (m, s)), by bisection: O(log m) terms."""
    hi = 1
    while beta(game, s, hi) < m:
        hi *= 2
    lo = 0  # beta(s, lo) < m <= beta(s, hi) unless m <= 1
    if beta(game, s, 0) >= m:
        return 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if beta(game, s, mid) < m else (lo, mid)
    return hi


def min_steps(game: Game, m: int, s: int) -> int:
    """Fewest forward steps that reverse ``m`` steps with ``s`` pebbles (checkpoint games).

    ``r m - sum_{i<r} beta(s, i)`` with r = :func:`repetitions`; the sum has
    the closed forms ``C(s + r, s + 1)`` (in-place) and
    ``C(s + r, s + 1) - C(s + r - 2, s + 1)`` (checkpoint game), so this is
    O(log m) binomials for any m and s.
    """
    if m <= 1:
        return 0
    s = min(s, m)
    r = repetitions(game, m, s)
    total = comb(s + r, s + 1)
    if game is Game.CHECKPOINT:
        total -= comb(s + r - 2, s + 1)
    return r * m - total


#: Largest table (budget + 1) x (repetitions + 2) built eagerly; above it rows
#: are evaluated lazily from the closed form (huge budgets, or n >> budget).
_EAGER_CELLS = 1 << 20


class _LazyRow:
    """``beta(s, 0..length-1)`` as a sequence evaluated on demand (for ``bisect``)."""

    __slots__ = ("game", "s", "length", "cache")

    def __init__(self, game: Game, s: int, length: int) -> None:
        self.game, self.s, self.length, self.cache = game, s, length, {}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, r: int) -> int:
        if r < 0:
            r += self.length
        value = self.cache.get(r)
        if value is None:
            value = self.cache[r] = beta(self.game, self.s, r)
        return value


class _LazyRows:
    """``rows[s]`` for every s, each a :class:`_LazyRow` made on first use."""

    __slots__ = ("game", "length", "made")

    def __init__(self, game: Game, length: int) -> None:
        self.game, self.length, self.made = game, length, {}

    def __getitem__(self, s: int) -> _LazyRow:
        row = self.made.get(s)
        if row is None:
            row = self.made[s] = _LazyRow(self.game, s, self.length)
        return row


def _rows(n: int, budget: int, game: Game) -> list[list[int]] | _LazyRows:
    """rows[s][r] = beta(s, r) for every r the recursion can meet (r <= r_top + 1)."""
    length = repetitions(game, n, budget) + 2
    if (budget + 1) * length > _EAGER_CELLS:
        return _LazyRows(game, length)
    rows = [[1] * length]
    for s in range(1, budget + 1):  # Pascal's rule, one row from the last
        prev, row = rows[-1], [1] * length
        for r in range(1, length):
            row[r] = (2 if s == 1 and game is Game.CHECKPOINT else row[r - 1] + prev[r])
        rows.append(row)
    return rows


def _split(rows: list[list[int]], m: int, s: int) -> int:
    """The optimal first checkpoint offset for m steps with s pebbles."""
    row, prev = rows[s], rows[s - 1]
    r = bisect_left(row, m)
    return max(1, m - prev[r], row[r - 2] if r >= 2 else 0)


def _tasks(rows: list[list[int]], stack: list[tuple[int, int, int]]) -> Iterator[Move]:
    # Tasks (base, m, s): reverse cells base..base+m-1 with s free pebbles;
    # m == 0 stands for "remove base" (a checkpoint no longer needed).
    new = tuple.__new__
    pop, push = stack.pop, stack.append
    while stack:
        base, m, s = pop()
        if m == 0:
            yield new(Move, (_REMOVE, base, -1))
        elif m == 1:
            yield new(Move, (_PAINT, base, -1))
        elif m == 2:  # the only split is j = 1; saves three stack round trips
            yield new(Move, (_FORWARD, base, base + 1))
            yield new(Move, (_PAINT, base + 1, -1))
            yield new(Move, (_REMOVE, base + 1, -1))
            yield new(Move, (_PAINT, base, -1))
        else:
            j = _split(rows, m, s)
            yield new(Move, (_FORWARD, base, base + j))
            push((base, j, s))
            push((base + j, 0, 0))
            push((base + j, m - j, s - 1))


def paper_tau(n: int, delta: int) -> int:
    """Least tau with ``C(tau + delta, delta) >= n`` (Algorithm 3's initial tau).

    Parameters
    ----------
    n : int
        Number of steps, ``n >= 1``.
    delta : int
        Checkpoints delta of Algorithm 3, ``>= 0`` (0 only for ``n = 1``).

    Returns
    -------
    int
        The least such tau (0 for ``n = 1``).

    Raises
    ------
    PebblesTypeError
        If ``n`` or ``delta`` is not an integer.
    PebblesValueError
        If ``n < 1`` or ``delta < 0``; :class:`InfeasibleBudgetError` (a subclass) if
        ``delta = 0`` and ``n > 1``.

    Examples
    --------
    >>> from pebbles import paper_tau
    >>> paper_tau(20, 3), paper_tau(10**12, 1)
    (3, 999999999999)
    """
    n = check_int("n", n, 1)
    delta = check_int("delta", delta, 0)
    if delta == 0 and n > 1:
        raise InfeasibleBudgetError(
            f"delta=0 with n={n}: no tau covers it (C(tau + 0, 0) = 1 < n); pass delta=1 or "
            f"more", 1)
    return repetitions(Game.INPLACE, n, delta) if delta > 0 else 0


def _mid(delta: int, tau: int, sigma: int, phi: int) -> int:
    kappa = -(-(delta * sigma + tau * phi) // (tau + delta))
    if kappa >= phi and delta > 0:
        kappa = max(sigma + 1, phi - 1)
    return kappa


def treeverse_paper(n: int, delta: int, tau: int | None = None) -> Iterator[Move]:
    """Yield the moves of Algorithm 3 (Liu & Xu), line by line.

    Parameters
    ----------
    n : int
        Number of steps, ``n >= 1``.
    delta : int
        The paper's delta (number of checkpoints it may store), ``delta >= 1``.
    tau : int, optional
        Number of sweeps; default the least tau with ``C(tau + delta, delta) >= n``.

    Examples
    --------
    >>> from pebbles import treeverse_paper, simulate
    >>> r = simulate(treeverse_paper(20, 3), 20)
    >>> r.forward_steps, r.backward_steps, r.peak_states
    (45, 20, 4)
    """
    n = check_int("n", n, 1)
    delta = check_int("delta", delta, 1)
    least = paper_tau(n, delta)
    tau = least if tau is None else check_int("tau", tau, 0)
    if not _covers(tau, delta, n):
        raise InfeasibleBudgetError(
            f"tau={tau} with delta={delta} covers C(tau+delta, delta)="
            f"{comb(tau + delta, delta)} < n={n} steps; use tau={least} or more",
            least,
        )
    return _treeverse_paper(delta, tau, 0, 0, n)


#: Loop turns :func:`_paper_steps` counts before it gives up (about half a second).
PAPER_STEPS_MAX_WORK = 2 * 10**5


def _paper_steps(n: int, delta: int, tau: int | None = None) -> int | None:
    """Forward steps of :func:`treeverse_paper` without making its moves, or ``None``
    where counting them would take more than :data:`PAPER_STEPS_MAX_WORK` loop turns.

    Algorithm 3's cost depends on a call's ``(delta, tau, phi - sigma)`` only (``_mid``
    shifts with ``sigma``), so each distinct call is counted once: a few hundred for
    ``n = 10^6`` and ``delta = 20``. Arguments are checked as :func:`treeverse_paper`
    checks them. Counts are cached (the planner, ``most_moves`` and the solvers' estimates
    ask for the same schedule's).
    """
    n = check_int("n", n, 1)
    delta = check_int("delta", delta, 1)
    least = paper_tau(n, delta)
    tau = least if tau is None else check_int("tau", tau, 0)
    if not _covers(tau, delta, n):
        return None  # treeverse_paper refuses it
    return _paper_count(n, delta, tau, PAPER_STEPS_MAX_WORK)


@lru_cache(maxsize=256)
def _paper_count(n: int, delta: int, tau: int, most: int) -> int | None:
    """:func:`_paper_steps` of checked arguments, ``None`` past ``most`` loop turns."""
    memo: dict[tuple[int, int, int], int] = {}
    # frames (key, [delta, tau, phi - sigma, steps so far, the child's kappa - sigma])
    stack = [((delta, tau, n), [delta, tau, n, 0, 0])]
    got, work = None, 0
    while stack:
        key, f = stack[-1]
        if got is not None:  # the child returned: the walk to kappa and the child's steps
            f[3] += f[4] + got
            f[1], f[2], got = f[1] - 1, f[4], None
        d, t, length = f[0], f[1], f[2]
        kappa = _mid(d, t, 0, length) if t > 0 else length
        if kappa < length:
            work += 1
            if work > most:
                return None
            f[4], child = kappa, (d - 1, t, length - kappa)
            got = memo.get(child)
            if got is None:
                stack.append((child, [*child, 0, 0]))
            continue
        memo[key] = got = f[3]
        stack.pop()
    return got


def _covers(tau: int, delta: int, n: int) -> bool:
    """``C(tau + delta, delta) >= n``, at once for large tau and delta (the binomial is then
    at least ``2^min(tau, delta)``, which is not computed exactly)."""
    return min(tau, delta) >= n.bit_length() or comb(tau + delta, delta) >= n


def _treeverse_paper(delta: int, tau: int, beta: int, sigma: int, phi: int) -> Iterator[Move]:
    # Algorithm 3's recursion with an explicit stack of frames
    # [delta, tau, beta, sigma, phi, started]: no Python recursion limit, however
    # deep the sweeps go (a large delta nests one call per checkpoint).
    stack = [[delta, tau, beta, sigma, phi, False]]
    while stack:
        f = stack[-1]
        delta, tau, beta, sigma, phi, started = f
        if not started:
            f[5] = True
            if sigma > beta:
                delta = f[0] = delta - 1
                yield Move(_FORWARD, beta, sigma)
        if tau > 0:
            kappa = _mid(delta, tau, sigma, phi)
            if kappa < phi:
                f[1], f[4] = tau - 1, kappa  # what the loop does after the call
                stack.append([delta, tau, sigma, kappa, phi, False])
                continue
        stack.pop()
        yield Move(_PAINT, sigma)
        if sigma > beta:
            yield Move(_REMOVE, sigma)
