"""Planner: pick a schedule for n steps under a memory budget.

Every method is compared as a gradient schedule on one board (the checkpoint
game): predicted time = forward steps + backward_cost * n backward steps, in
units of one forward step. Bennett and the reversible optimum are counted as
their mirror gradient runs (paper-notes section 4); Treeverse uses the exact
optima of :func:`pebbles.min_forward_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ._bennett import _blocks, bennett_pebbles
from ._budget import min_pebbles
from ._errors import InfeasibleBudgetError, PebblesValueError
from ._optimal import min_forward_steps
from ._reversible import reversible_min_steps
from ._validation import check_int

__all__ = ["Candidate", "Plan", "bennett_steps", "plan"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One method's predicted cost under the budget."""

    method: str
    game: str
    pebbles: int
    forward_steps: int
    backward_steps: int
    cost: float
    options: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """Candidates sorted by predicted cost; ``best`` is the recommendation."""

    n: int
    pebbles: int
    backward_cost: float
    candidates: tuple[Candidate, ...]

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


@cache
def _bennett_cost(k: int, length: int, uncompute: bool) -> int:
    if length == 1:
        return 1
    blocks = _blocks(k, 0, length)
    done = sum(_bennett_cost(k, b, True) for _, b in blocks[:-1])
    last = _bennett_cost(k, blocks[-1][1], uncompute)
    return done + last + (done if uncompute else 0)


def bennett_steps(n: int, k: int, *, uncompute: bool = True) -> int:
    """Steps of :func:`pebbles.bennett` from the recursion (no stream is made)."""
    return _bennett_cost(k, n, uncompute)


def best_bennett(n: int, pebbles: int) -> tuple[int, int] | None:
    """(k, steps) of the cheapest Bennett reach run within ``pebbles`` (k <= 64), or None."""
    best = None
    for k in range(2, min(n, 64) + 1):
        if bennett_pebbles(n, k, uncompute=False) <= pebbles:
            steps = bennett_steps(n, k, uncompute=False)
            if best is None or steps < best[1]:
                best = (k, steps)
    return best


def _budget_pebbles(n, pebbles, memory, state_bytes) -> int:
    if pebbles is not None:
        return check_int("pebbles", pebbles, 0)
    if memory is None or state_bytes is None:
        raise PebblesValueError(
            "plan() needs a budget: pass pebbles=S, or memory=BYTES with state_bytes=BYTES"
        )
    memory = check_int("memory", memory, 1)
    state_bytes = check_int("state_bytes", state_bytes, 1)
    # s_0 is held by the caller; every other state the schedule holds is a pebble.
    return memory // state_bytes - 1


def plan(
    n: int,
    pebbles: int | None = None,
    *,
    memory: int | None = None,
    state_bytes: int | None = None,
    backward_cost: float = 1.0,
) -> Plan:
    """Compare the methods for ``n`` steps under a budget and recommend one.

    Parameters
    ----------
    n : int
        Number of steps.
    pebbles : int, optional
        Budget in states (besides s_0). Or give ``memory`` and ``state_bytes``.
    backward_cost : float
        Cost of one backward step relative to one forward step.

    Examples
    --------
    >>> from pebbles import plan
    >>> p = plan(10_000, memory=2 * 2**30, state_bytes=32 * 2**20, backward_cost=3)
    >>> p.pebbles, p.best.method, p.best.forward_steps
    (63, 'treeverse', 27855)
    """
    n = check_int("n", n, 1)
    if not backward_cost >= 0:
        raise PebblesValueError(f"backward_cost={backward_cost!r} must be >= 0")
    s = _budget_pebbles(n, pebbles, memory, state_bytes)
    if s < min_pebbles(n, "checkpoint"):
        need = min_pebbles(n, "checkpoint")
        raise InfeasibleBudgetError(
            f"a budget of {s} pebbles cannot finish n={n} steps; give room for "
            f"{need} states besides s_0", need,
        )
    found = _candidates(n, s)
    cands = tuple(sorted(
        (Candidate(m, g, p, f, n, f + backward_cost * n, o) for m, g, p, f, o in found),
        key=lambda c: (c.cost, c.pebbles),
    ))
    return Plan(n, s, float(backward_cost), cands)


def _candidates(n: int, s: int) -> list[tuple[str, str, int, int, str]]:
    out = []
    if s >= n - 1:
        out.append(("store-all", "checkpoint", n - 1, n - 1, ""))
    for game, flag in (("checkpoint", ""), ("inplace", " --inplace")):
        if s >= min_pebbles(n, game):
            out.append(("treeverse", game, min(s, n), min_forward_steps(n, s, game),
                        f"--pebbles {s}{flag}"))
    best = best_bennett(n, s)
    if best is not None:
        k, steps = best
        out.append(("bennett-gradient", "checkpoint", bennett_pebbles(n, k, uncompute=False),
                    steps, f"--k {k}"))
    if s >= min_pebbles(n, "reversible"):
        sr = min(s, n)
        out.append(("reversible-optimal", "checkpoint", sr, reversible_min_steps(n, sr),
                    f"--pebbles {sr}"))
    return out
