"""Smallest feasible pebble budgets of the three games, and the check that uses them.

The bounds of the paper's appendix (Liu & Xu, pebble games): a checkpoint-game walk
holds two pebbles, an in-place step one, and S pebbles of the reversible game reach
cell 2^S - 1 at the farthest (Bennett's bound, the paper's Algorithm 2).
"""

from __future__ import annotations

from ._errors import InfeasibleBudgetError
from ._moves import Game
from ._validation import check_int

__all__ = ["min_pebbles", "check_budget"]


def min_pebbles(n: int, game: Game | str = Game.CHECKPOINT) -> int:
    """Smallest budget S with which the game on cells ``0..n`` can be finished.

    checkpoint: 0 for n = 1, 1 for n = 2, else 2 (a walk holds two pebbles);
    inplace: 0 for n = 1, else 1; reversible: ceil(log2(n + 1)), since S
    pebbles reach cell 2^S - 1 at the farthest.

    Parameters
    ----------
    n : int
        Number of steps (>= 1).
    game : Game or str
        ``"checkpoint"`` (the default, as in :func:`pebbles.min_forward_steps`),
        ``"inplace"`` or ``"reversible"``.

    Returns
    -------
    int
        The least budget S that finishes the game.

    Examples
    --------
    >>> from pebbles import min_pebbles
    >>> min_pebbles(20, "checkpoint"), min_pebbles(20, "inplace"), min_pebbles(20, "reversible")
    (2, 1, 5)
    >>> min_pebbles(100)
    2
    """
    n = check_int("n", n, 1)
    game = Game.coerce(game)
    if game is Game.REVERSIBLE:
        return n.bit_length()
    if n == 1:
        return 0
    if game is Game.INPLACE or n == 2:
        return 1
    return 2


def check_budget(n: int, budget: int, game: Game) -> None:
    """Raise :class:`InfeasibleBudgetError` if ``budget`` cannot finish the game.

    A negative ``budget`` is told the least budget that finishes the ``n`` steps in the
    registry's words (:func:`pebbles.schedule`'s, from the refusal of budget 0), or
    ``>= 0`` where 0 finishes them:

    >>> from pebbles._budget import check_budget
    >>> check_budget(20, -3, Game.CHECKPOINT)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pebbles.InfeasibleBudgetError: budget=-3 must be >= 2, the least budget ...
    """
    if budget < 0:  # raises: 2**budget below is whole
        by = " with method='reversible-optimal'" if game is Game.REVERSIBLE else ""
        refuse_negative(budget, min_pebbles(n, game), n, by=by)
    need = min_pebbles(n, game)
    if budget < need:
        state = "every backward step needs its state on the board"
        why = {
            Game.CHECKPOINT: ("a walking pebble holds two pebbles in the checkpoint game"
                              if need >= 2 else state),
            Game.INPLACE: state,
            Game.REVERSIBLE: f"{budget} pebbles reach cell {2**budget - 1} at the farthest",
        }[game]
        raise InfeasibleBudgetError(
            f"budget={budget} cannot finish the {game.value} game with n={n} "
            f"({why}); use budget={need} or more",
            need,
        )


def refuse_negative(budget: int, least: int, n: int, unit: str = "steps", by: str = "") -> None:
    """Raise for a negative ``budget``: an :class:`InfeasibleBudgetError` naming ``least``,
    the least budget that finishes the ``n`` ``unit`` (``by``: with what, e.g. `` with
    method='periodic'``), where it is above 0; else "must be >= 0". The one wording of
    :func:`check_budget` and :func:`pebbles.schedule` (which finds ``least`` by trying 0)."""
    if least > 0:
        raise InfeasibleBudgetError(
            f"budget={budget} must be >= {least}, the least budget that finishes n={n} "
            f"{unit}{by}; pass budget={least} or more", least)
    check_int("budget", budget, 0)
