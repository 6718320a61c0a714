"""Repetition tables of the checkpoint games (Griewank's eta and its paper-game twin).

For the in-place game (Revolve's setting) the number of steps that S pebbles can
reverse when no cell is computed more than r times is Griewank's
``beta(S, r) = C(S + r, S)`` (the paper's eta(tau, delta), Figure 6a). For the
paper's checkpoint game, where a walking pebble needs two pebbles, the same
Pascal recurrence ``beta(s, r) = beta(s, r-1) + beta(s-1, r)`` holds with the
boundary ``beta(1, r) = 2`` for r >= 1 (one pebble reverses at most two
cells), ``beta(s, 0) = beta(0, r) = 1``. Both tables give the minimum step count

    T(n, S) = r (n - 1) - sum_{i < r} (beta(S, i) - 1),   r = min{r : beta(S, r) >= n},

which for the in-place game is Griewank's closed form ``r n - C(S + r, S + 1)``,
and the range of optimal first-checkpoint positions used by ``treeverse``.
The derivation is in ``docs/optimality.md``; tests check both against the
dynamic program and the brute-force solver.
"""

from __future__ import annotations

from math import comb

from ._moves import Game
from ._treeverse import min_steps, repetitions

__all__ = ["BetaTable"]


class BetaTable:
    """``beta(s, r)`` for one checkpoint game, memoised by rows of r."""

    __slots__ = ("game", "_rows")

    def __init__(self, game: Game) -> None:
        if game is Game.REVERSIBLE:
            raise ValueError("BetaTable is for the checkpoint games")
        self.game = game
        self._rows: dict[int, list[int]] = {}

    def row(self, s: int, r_max: int) -> list[int]:
        """``[beta(s, 0), ..., beta(s, r_max)]`` (grown on demand, no recursion)."""
        row = self._rows.get(s)
        if row is None or len(row) <= r_max:
            if self.game is Game.INPLACE:
                row = [comb(s + r, s) for r in range(r_max + 1)]
            else:
                row = self._paper_row(s, r_max)
            self._rows[s] = row
        return row

    def _paper_row(self, s: int, r_max: int) -> list[int]:
        # Pascal recurrence row by row, from beta(0, r) = 1 and beta(1, r>=1) = 2.
        row = [1] * (r_max + 1)
        for t in range(1, s + 1):
            new = [1] * (r_max + 1)
            for r in range(1, r_max + 1):
                new[r] = 2 if t == 1 else new[r - 1] + row[r]
            row = new
        return row

    def beta(self, s: int, r: int) -> int:
        """Most cells ``s`` pebbles reverse with every cell computed <= r times.

        ``beta(s, r)`` for r < 0 is 0.
        """
        if r < 0:
            return 0
        if self.game is Game.INPLACE:
            return comb(s + r, s)
        row = self._rows.get(s)
        if row is None or len(row) <= r:
            row = self.row(s, max(r, 2 * len(row) if row else 8))
        return row[r]

    def repetitions(self, m: int, s: int) -> int:
        """Least r with ``beta(s, r) >= m`` (requires a feasible (m, s)): by bisection on
        the closed form, O(log m) binomials (:func:`pebbles._treeverse.repetitions`)."""
        return repetitions(self.game, m, s)

    def min_steps(self, m: int, s: int) -> int:
        """Minimum forward steps to reverse ``m`` steps with ``s`` pebbles: the closed form
        of the module docstring, O(log m) binomials (:func:`pebbles._treeverse.min_steps`;
        walking r = 0, 1, ... takes r ~ m / 2 terms at s = 2 in the checkpoint game)."""
        return min_steps(self.game, m, s)

    def split_range(self, m: int, s: int) -> tuple[int, int]:
        """Range ``(lo, hi)`` of optimal first-checkpoint offsets for (m, s), m >= 2.

        A first checkpoint at offset j splits the work into the right part
        (m - j cells, s - 1 pebbles) and the left part (j cells, s pebbles);
        it is optimal exactly when both parts fill their cheaper repetition
        levels: ``beta(s-1, r-1) <= m - j <= beta(s-1, r)`` and
        ``beta(s, r-2) <= j <= beta(s, r-1)``.
        """
        r = self.repetitions(m, s)
        lo = max(1, m - self.beta(s - 1, r), self.beta(s, r - 2))
        hi = min(m - 1, self.beta(s, r - 1), m - self.beta(s - 1, r - 1))
        return lo, hi
