"""Exact optima of the three pebble games: closed forms, dynamic programming
and a brute-force search of the configuration graph (for tiny boards).

* ``min_forward_steps`` -- closed forms: Griewank's ``r n - C(S + r, S + 1)``
  for the in-place game, the paper-game twin of it (:mod:`pebbles._binomial`),
  and the convex-merge tables of the reversible game
  (:mod:`pebbles._reversible`).
* ``dp_table`` -- plain dynamic programming over the first checkpoint position
  (checkpoint games) or the first kept pebble (reversible game), O(n^2 S).
* ``brute_force`` -- Dijkstra (networkx) over every board reachable with the
  game's primitive moves under the budget, with the simulator's rules as edges.

The tests show the three agree wherever they overlap.
"""

from __future__ import annotations

import numpy as np

from ._budget import check_budget
from ._errors import PebblesValueError
from ._moves import Game, Move, MoveKind
from ._optional import require
from ._reversible import reversible_min_steps
from ._simulator import Board, play_one
from ._treeverse import min_steps
from ._validation import check_int

__all__ = ["BRUTE_FORCE_MAX_BOARDS", "DP_MAX_CELLS", "DP_MAX_N", "brute_force", "dp_table",
           "min_forward_steps"]

#: Most boards :func:`brute_force` may have to search (pebble sets x painted prefixes).
BRUTE_FORCE_MAX_BOARDS = 200_000
#: Largest ``n_max`` and number of entries of :func:`dp_table`.
DP_MAX_N = 20_000
DP_MAX_CELLS = 10**7


def min_forward_steps(n: int, budget: int, game: Game | str = Game.CHECKPOINT) -> int:
    """Fewest forward steps that finish the game with at most ``budget`` pebbles.

    Parameters
    ----------
    n : int
        Number of steps, ``n >= 1``.
    budget : int
        Budget S: most pebbles besides cell 0's.
    game : Game or str, default Game.CHECKPOINT
        ``'checkpoint'``, ``'inplace'`` or ``'reversible'``.

    Returns
    -------
    int
        Fewest forward steps (reversible game: ``place`` and ``unplace`` moves until
        cell n is first reached).

    Raises
    ------
    PebblesTypeError
        If ``n`` or ``budget`` is not an integer.
    PebblesValueError
        If ``n < 1`` or ``game`` is not a game; :class:`InfeasibleBudgetError` (a
        subclass) if ``budget`` cannot finish the game.

    Examples
    --------
    >>> from pebbles import min_forward_steps
    >>> [min_forward_steps(20, 5, g) for g in ("checkpoint", "inplace", "reversible")]
    [33, 33, 45]
    """
    n = check_int("n", n, 1)
    budget = check_int("budget", budget)  # a negative one: check_budget tells the least
    game = Game.coerce(game)
    check_budget(n, budget, game)
    if game is Game.REVERSIBLE:
        return reversible_min_steps(n, budget)
    return min_steps(game, n, min(budget, n))


def dp_table(n_max: int, budget_max: int, game: Game | str = Game.CHECKPOINT) -> np.ndarray:
    """Minimum steps ``T[n, S]`` for ``n <= n_max``, ``S <= budget_max`` by plain DP.

    O(n_max^2 budget_max) time: a reference for the closed forms, meant for
    ``n_max`` up to a few thousand (at most :data:`DP_MAX_CELLS` table entries).

    Infeasible entries are ``inf``; row 0 is unused (``nan``).

    Checkpoint games: ``T(1, S) = 0``; ``T(n, S) = min_j j + T(n - j, S - 1) + T(j, S)``
    (first checkpoint at j; in the checkpoint game a walk of two or more cells
    needs S >= 2). Reversible game: the clean-move and reach recursions of
    :func:`pebbles.reversible_optimal`.

    Parameters
    ----------
    n_max : int
        Largest number of steps, ``1 <= n_max <= DP_MAX_N``.
    budget_max : int
        Largest budget S, ``>= 0``; ``(n_max + 1) (budget_max + 1)`` must not pass
        :data:`DP_MAX_CELLS`.
    game : Game or str, default Game.CHECKPOINT
        ``'checkpoint'``, ``'inplace'`` or ``'reversible'``.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(n_max + 1, budget_max + 1)``: ``T[n, S]``.

    Raises
    ------
    PebblesTypeError
        If ``n_max`` or ``budget_max`` is not an integer.
    PebblesValueError
        If ``n_max < 1``, ``budget_max < 0``, ``game`` is not a game, or the table
        passes the size limits above.

    Examples
    --------
    >>> from pebbles import dp_table, min_forward_steps
    >>> t = dp_table(20, 5)
    >>> t.shape, int(t[20, 4]), min_forward_steps(20, 4)
    ((21, 6), 40, 40)
    >>> float(t[3, 1])  # a walk of two cells needs two pebbles in the checkpoint game
    inf
    """
    n_max = check_int("n_max", n_max, 1)
    budget_max = check_int("budget_max", budget_max, 0)
    game = Game.coerce(game)
    if n_max > DP_MAX_N or (n_max + 1) * (budget_max + 1) > DP_MAX_CELLS:
        raise PebblesValueError(
            f"dp_table(n_max={n_max}, budget_max={budget_max}) is a reference table for small "
            f"boards (n_max <= {DP_MAX_N}, at most {DP_MAX_CELLS} entries); for one (n, S) "
            f"use pebbles.min_forward_steps(n, S, game), which is exact and instant")
    if game is Game.REVERSIBLE:
        return _dp_reversible(n_max, budget_max)
    t = np.full((n_max + 1, budget_max + 1), np.inf)
    t[0] = np.nan
    t[1] = 0
    for n in range(2, n_max + 1):
        j = np.arange(1, n)
        for s in range(1, budget_max + 1):
            cost = j + t[n - j, s - 1] + t[j, s]
            if game is Game.CHECKPOINT and s < 2:
                cost = cost[:1]
            t[n, s] = cost.min()
    return t


def _dp_reversible(n_max: int, s_max: int) -> np.ndarray:
    clean = np.full((n_max + 1, s_max + 1), np.inf)
    reach = np.full((n_max + 1, s_max + 1), np.inf)
    clean[1, 1:] = reach[1, 1:] = 1
    for m in range(2, n_max + 1):
        j = np.arange(1, m)
        for s in range(2, s_max + 1):
            clean[m, s] = (clean[j, s] + clean[m - j, s - 1] + clean[j, s - 1]).min()
            reach[m, s] = (clean[j, s] + reach[m - j, s - 1]).min()
    reach[0] = np.nan
    return reach


def _successors(board: tuple, n: int, game: Game, budget: int):
    """Yield (next board, cost, move) for every legal primitive move, via the simulator."""
    cells, painted_from = board
    kinds = (
        (MoveKind.PLACE, MoveKind.UNPLACE) if game is Game.REVERSIBLE
        else (MoveKind.PLACE, MoveKind.REMOVE, MoveKind.PAINT, MoveKind.MOVE)
    )
    for kind in kinds:
        if kind is MoveKind.MOVE and game is not Game.INPLACE:
            continue
        for a in range(n + 1):
            m = Move(kind, a)
            after = play_one(Board(cells, painted_from), m, n, game, budget)
            if after is not None:
                yield (after[0].pebbles, after[0].painted_from), after[1], m


def _boards(n: int, budget: int, factor: int) -> int:
    """``factor * sum_{k <= min(budget, n)} C(n, k)``, the boards of :func:`brute_force`,
    summed only until it passes :data:`BRUTE_FORCE_MAX_BOARDS` (large n answer at once)."""
    total, term = 0, 1  # term = C(n, k)
    for k in range(min(budget, n) + 1):
        total += term * factor
        if total > BRUTE_FORCE_MAX_BOARDS:
            break
        term = term * (n - k) // (k + 1)
    return total


def brute_force(n: int, budget: int, game: Game | str = Game.CHECKPOINT) -> int | None:
    """Fewest steps by exhaustive search (Dijkstra with 0/1 costs); ``None`` if unsolvable.

    Every board reachable from the start is a node; every legal primitive move
    (checked by the simulator's own rules) is an edge costing its steps.
    Meant for tiny boards: at most :data:`BRUTE_FORCE_MAX_BOARDS` boards
    (``sum_k C(n, k)`` pebble sets, times ``n + 1`` painted prefixes).

    Parameters
    ----------
    n : int
        Number of steps, ``n >= 1``.
    budget : int
        Budget S, ``>= 0``.
    game : Game or str, default Game.CHECKPOINT
        ``'checkpoint'``, ``'inplace'`` or ``'reversible'``.

    Returns
    -------
    int or None
        Fewest steps, or ``None`` if no board reachable within ``budget`` ends the game.

    Raises
    ------
    ImportError
        If networkx is not installed (the ``search`` extra).
    PebblesTypeError
        If ``n`` or ``budget`` is not an integer.
    PebblesValueError
        If ``n < 1``, ``budget < 0``, ``game`` is not a game, or the search would pass
        :data:`BRUTE_FORCE_MAX_BOARDS` boards.

    Examples
    --------
    >>> from pebbles import brute_force
    >>> [brute_force(6, 2, game) for game in ("checkpoint", "inplace")]
    [9, 8]
    >>> brute_force(3, 2, "reversible")
    4
    """
    nx = require("networkx", "search", "brute_force")

    n = check_int("n", n, 1)
    budget = check_int("budget", budget, 0)
    game = Game.coerce(game)
    boards = _boards(n, budget, 1 if game is Game.REVERSIBLE else n + 1)
    if boards > BRUTE_FORCE_MAX_BOARDS:
        raise PebblesValueError(
            f"brute_force(n={n}, budget={budget}) would search at least {boards} boards, more "
            f"than {BRUTE_FORCE_MAX_BOARDS}; it is meant for tiny boards: use "
            f"pebbles.min_forward_steps(n, budget, game) (exact, instant)")
    start = ((), n)
    graph = nx.DiGraph()
    graph.add_node(start)
    todo, seen = [start], {start}
    while todo:
        board = todo.pop()
        for nxt, cost, _ in _successors(board, n, game, budget):
            graph.add_edge(board, nxt, weight=cost)
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    goals = [b for b in seen if (n in b[0] if game is Game.REVERSIBLE else b[1] == 0)]
    for goal in goals:
        graph.add_edge(goal, "end", weight=0)
    if not goals:
        return None
    return int(nx.shortest_path_length(graph, start, "end", weight="weight"))
