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

from ._binomial import BetaTable
from ._budget import check_budget
from ._moves import Game, Move, MoveKind
from ._reversible import reversible_min_steps
from ._validation import check_int

__all__ = ["brute_force", "dp_table", "min_forward_steps"]


def min_forward_steps(n: int, pebbles: int, game: Game | str = Game.CHECKPOINT) -> int:
    """Fewest forward steps that finish the game with at most ``pebbles`` pebbles.

    Examples
    --------
    >>> from pebbles import min_forward_steps
    >>> [min_forward_steps(20, 5, g) for g in ("checkpoint", "inplace", "reversible")]
    [33, 33, 45]
    """
    n = check_int("n", n, 1)
    pebbles = check_int("pebbles", pebbles, 0)
    game = Game.coerce(game)
    check_budget(n, pebbles, game)
    if game is Game.REVERSIBLE:
        return reversible_min_steps(n, pebbles)
    return BetaTable(game).min_steps(n, min(pebbles, n))


def dp_table(n_max: int, pebbles_max: int, game: Game | str = Game.CHECKPOINT) -> np.ndarray:
    """Minimum steps ``T[n, S]`` for ``n <= n_max``, ``S <= pebbles_max`` by plain DP.

    Infeasible entries are ``inf``; row 0 is unused (``nan``).

    Checkpoint games: ``T(1, S) = 0``; ``T(n, S) = min_j j + T(n - j, S - 1) + T(j, S)``
    (first checkpoint at j; in the checkpoint game a walk of two or more cells
    needs S >= 2). Reversible game: the clean-move and reach recursions of
    :mod:`pebbles._reversible`.
    """
    n_max = check_int("n_max", n_max, 1)
    pebbles_max = check_int("pebbles_max", pebbles_max, 0)
    game = Game.coerce(game)
    if game is Game.REVERSIBLE:
        return _dp_reversible(n_max, pebbles_max)
    t = np.full((n_max + 1, pebbles_max + 1), np.inf)
    t[0] = np.nan
    t[1] = 0
    for n in range(2, n_max + 1):
        j = np.arange(1, n)
        for s in range(1, pebbles_max + 1):
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
    """Yield (next board, cost) for every legal primitive move, via the simulator."""
    from ._simulator import _apply, _rule_broken, _State

    cells, painted_from = board
    kinds = (
        (MoveKind.PLACE, MoveKind.UNPLACE) if game is Game.REVERSIBLE
        else (MoveKind.PLACE, MoveKind.REMOVE, MoveKind.PAINT, MoveKind.MOVE)
    )
    for kind in kinds:
        if kind is MoveKind.MOVE and game is not Game.INPLACE:
            continue
        for a in range(n + 1):
            st = _State(n)
            st.cells, st.painted_from = list(cells), painted_from
            if _rule_broken(st, game, kind, a, -1) is not None:
                continue
            if _apply(st, game, kind, a, -1) > budget:
                continue
            yield (tuple(st.cells), st.painted_from), st.steps, Move(kind, a)


def brute_force(n: int, pebbles: int, game: Game | str = Game.CHECKPOINT) -> int | None:
    """Fewest steps by exhaustive search (Dijkstra with 0/1 costs); ``None`` if unsolvable.

    Every board reachable from the start is a node; every legal primitive move
    (checked by the simulator's own rules) is an edge costing its steps.
    Meant for tiny boards (n <= 10 or so): the graph has up to 2^n * n nodes.

    Examples
    --------
    >>> from pebbles import brute_force
    >>> [brute_force(6, 2, game) for game in ("checkpoint", "inplace")]
    [9, 8]
    >>> brute_force(3, 2, "reversible")
    4
    """
    import networkx as nx

    n = check_int("n", n, 1)
    pebbles = check_int("pebbles", pebbles, 0)
    game = Game.coerce(game)
    start = ((), n)
    graph = nx.DiGraph()
    graph.add_node(start)
    todo, seen = [start], {start}
    while todo:
        board = todo.pop()
        for nxt, cost, _ in _successors(board, n, game, pebbles):
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
