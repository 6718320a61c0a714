"""The compiled loops behind :func:`pebbles.jax.checkpointed_while_loop` (needs JAX).

The number of steps ``n`` is known only when ``cond`` first says stop, so no
schedule can be made on the host: the online scheduler's controller runs inside
the compiled program, a few integer operations per step.

**Forward** (``custom_vjp`` forward pass): one ``lax.while_loop`` whose carry is
the user's carry, the step counter, a slot buffer of ``S`` carries (one array
per leaf with a leading slot axis) and the controller's state. At step ``k >= 1``
the controller decides which slot ``s_k`` overwrites, as
:class:`pebbles.OnlineScheduler` does in the checkpoint game (budget ``S``
counts the stored states, the front included, not ``s_0``):

* store every state until the ``S`` slots are in use, then the r = 2 phase
  (after Stumm & Walther, "New algorithms for optimal online checkpointing",
  SIAM J. Sci. Comput. 32(2), 2010): optimal at every ``n <= (S+1)(S+2)/2 - 1``;
* the r = 3 phase (:class:`pebbles._online._R3`, after Stumm & Walther's
  Online_r3): at most 3 steps above the optimum up to ``n = beta(S, 3)``. Its
  choices depend on ``S`` only, so for ``S <= 45`` (phases of at most
  ``2^14`` steps) the host makes them once (:func:`pebbles._online.r3_choices`)
  and the loop reads each from a table; for larger budgets the loop judges every
  candidate in one cost lookup a step, its state the marks it keeps (a bool per
  slot position), a counter and its distance to the optimum;
* beyond it, the greedy rule (default; Revolve's third online phase): free the
  checkpoint after which the reverse sweep is cheapest, with exact costs of the
  checkpoint game read from a host-built table (the closed form when an interval
  outgrows it); one evaluation judges the next 32 boards while the rule frees the
  checkpoint before the front, so it runs once in 10-17 steps (for n = 10^4 at budgets
  10 and 20); or, with ``beyond="wang-moin"``, Wang, Moin & Iaccarino's
  minimal-repetition dynamic checkpointing (SIAM J. Sci. Comput. 31(4), 2009), whose
  levels and dispensable marks are two arrays of size ``S``.

**Reverse** (``custom_vjp`` backward pass): the sweep of
:meth:`pebbles.OnlineScheduler.reverse`, each interval between held checkpoints
reversed, last first, by the optimal offline schedule (Griewank's binomial
checkpointing, Treeverse) with the slots left. A ``lax.while_loop`` walks an explicit
stack of tasks ``(base, m, s, q)`` (reverse ``m`` steps from ``s_base``, held at stack
position ``q``, with ``s`` free slots): a task with ``m >= 2`` walks to the optimal
split ``base + j`` (:meth:`pebbles._binomial.BetaTable.split_range`'s lower end: a
host-built table for ``m <= min(1024, 2^16 / (S + 1))`` (at least 16), the closed form
from a table of ``beta(s, r)`` beyond, so the walks are exactly Treeverse's), stores
``s_{base+j}`` at position ``q + 1`` and is replaced by its two halves; a task with
``m = 1`` is the VJP of ``body`` at ``s_base``. The stack never holds more than ``S + 1``
tasks and position ``q`` maps to a slot through the controller's ``slots`` array, so the
reverse pass stores nothing beyond the forward's ``S`` slots.

As in :mod:`pebbles._jax_scan`, no buffer passes through a ``lax.cond``: the
backward loop is walks (an inner loop that writes the buffer) then one VJP
(which only reads it). ``body`` and its VJP are traced a fixed number of
times, whatever ``n`` and ``S``: the program's size depends on neither.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._jax_scan import (
    _at,
    _const_cotangents,
    _merge,
    _put,
    _Shapes,
    _shapes,
    _slots,
    _split,
    _vjp_step,
    instantiate,
    jax_errors_noted,
    primal,
    unwrap,
)
from ._moves import Game
from ._online import _R3_LIMIT, _r3_layout, r3_choices
from ._treeverse import beta as _beta_exact

__all__ = ["MAX_STEPS", "Controller", "advance", "beta_table", "controller", "greedy_tables",
           "make_while", "split_table"]

#: Most steps a checkpointed while loop may take (the counters are int32).
MAX_STEPS = 1 << 30
_I32 = jnp.int32


# ---------------------------------------------------------------------------
# the online controller (checkpoint game, r = 2 then Wang-Moin), in jnp
# ---------------------------------------------------------------------------
class Controller(NamedTuple):
    """Controller state; ``cells[:num]`` are the held cells, the front last.

    ``slots[p]`` is the buffer slot of position ``p`` (a permutation of
    ``0..S-1``); ``t, k`` the r = 2 counters; ``levels, marks`` Wang-Moin's
    levels and dispensable marks of ``cells[:S-1]``; ``run`` the number of coming
    steps the greedy rule is known to free the checkpoint before the front, ``then``
    the position it frees right after them (``-2``: not known).
    """

    cells: Any
    slots: Any
    num: Any
    t: Any
    k: Any
    levels: Any
    marks: Any
    run: Any
    then: Any
    fixed: Any
    mark: Any
    over: Any
    r3: Any


def controller(budget: int) -> Controller:
    """The state before the first step: nothing held."""
    zero = jnp.zeros((), _I32)
    return Controller(jnp.zeros(budget, _I32), jnp.arange(budget, dtype=_I32), zero, zero,
                      zero, jnp.ones(budget, _I32), jnp.zeros(budget, bool), zero,
                      jnp.asarray(-2, _I32), jnp.zeros(budget, bool), zero, zero,
                      jnp.asarray(True))


def _shift(a: Any, p: Any, last: int) -> Any:
    """``a`` with entry ``p`` deleted: entries ``p + 1 .. last`` move down one."""
    idx = jnp.arange(a.shape[0], dtype=_I32)
    return jnp.where((idx >= p) & (idx < last), jnp.roll(a, -1), a)


def _wang_moin(levels: Any, marks: Any, budget: int) -> tuple[Any, Any, Any]:
    """Wang-Moin on a full board: (position freed, new levels, new marks)."""
    top = budget - 2  # levels[:budget-1] belong to the checkpoints before the front
    idx = jnp.arange(budget, dtype=_I32)
    live = marks & (idx <= top)
    has = jnp.any(live)
    i = jnp.where(has, jnp.max(jnp.where(live, idx, -1)), top).astype(_I32)
    level = jnp.where(has, 0, levels[top] + 1)
    marks = jnp.where(has, marks, marks | ((idx < top) & (levels < levels[top])))
    levels, marks = _shift(levels, i, top), _shift(marks, i, top)
    return i, levels.at[top].set(level), marks.at[top].set(False)


@lru_cache(maxsize=32)
def _beta_sums(budget: int) -> np.ndarray:
    """``sums[off[s] + r] = sum_{i<r} (beta(s, i) - 1)`` for ``s >= 4``, laid out like
    :func:`beta_table` (its rows end where beta passes ``MAX_STEPS``)."""
    values, off, last = beta_table(budget)
    sums = np.zeros(values.shape, np.float64)
    for s in range(4, budget + 1):
        row = values[off[s]:off[s] + last[s] + 1].astype(np.float64)
        sums[off[s]:off[s] + last[s] + 1] = np.concatenate([[0.0], np.cumsum(row[:-1] - 1)])
    return sums


def _cost(tab: tuple, sums: Any, d: Any, s: Any) -> Any:
    """Fewest forward steps to reverse ``d`` cells with ``s`` free slots (checkpoint game;
    ``inf`` where it cannot be done), as :func:`pebbles._online._interval_costs`:
    ``r (d - 1) - sum_{i<r} (beta(s, i) - 1)`` with ``r`` the repetition number."""
    dt = sums.dtype
    r = _repetitions(tab, jnp.maximum(d, 2), s)
    rf = r.astype(dt)
    small = jnp.where(s == 2, rf * (rf - 1),
                      jnp.where(s == 3, rf * (rf + 1) * (2 * rf + 1) / 6 - rf,
                                jnp.maximum(rf - 1, 0)))
    values, off, _ = tab
    table = sums[off[jnp.clip(s, 0, off.shape[0] - 1)] + r]
    total = rf * (d - 1).astype(dt) - jnp.where(s >= 4, table, small)
    never = (s == 0) | ((s == 1) & (d > 2))
    return jnp.where(d <= 1, 0, jnp.where(never, jnp.inf, total)).astype(dt)


def _cost_table(budget: int, dt: Any) -> np.ndarray:
    """``table[s, d] = cost(d, s)`` of :func:`_cost` for ``d <= _COST_CELLS // (budget + 1)``."""
    top = _COST_CELLS // (budget + 1)
    d = np.arange(top + 1, dtype=np.int64)
    table = np.full((budget + 1, top + 1), np.inf)
    table[:, :2] = 0.0
    for s in range(1, budget + 1):
        beta = _beta_row(s, top)
        r = np.searchsorted(beta, d)  # least r with beta(s, r) >= d
        sums = np.concatenate([[0], np.cumsum(beta - 1)])
        cost = r * (d - 1) - sums[r]
        ok = (d >= 2) & ((s >= 2) | (d <= 2))
        table[s, ok] = cost[ok]
    return table.astype(dt)


def _beta_row(s: int, top: int) -> np.ndarray:
    """``beta(s, 0..r)`` of the checkpoint game up to the first value ``>= top`` (rows
    ``s <= 3`` by their closed forms: 1, 2; 2r + 1; (r + 1)^2)."""
    if s == 1:
        return np.asarray([1, 2, top], np.int64)  # never more than 2 cells: the rest inf
    if s in (2, 3):
        r = np.arange(top + 2, dtype=np.int64)
        row = 2 * r + 1 if s == 2 else (r + 1) ** 2
        return row[:int(np.searchsorted(row, top)) + 1]
    row = [_beta_exact(Game.CHECKPOINT, s, 0)]
    while row[-1] < top:
        row.append(_beta_exact(Game.CHECKPOINT, s, len(row)))
    return np.asarray(row, np.int64)


def _looked_up(table: Any, d: Any, s: Any) -> Any:
    """``cost(d, s)`` from :func:`_cost_table` (``d`` clipped to the table's width)."""
    top = table.shape[1] - 1
    return table.reshape(-1)[s * (top + 1) + jnp.minimum(d, top)]


#: Entries of the greedy rule's cost lookup table (intervals longer: the closed form).
_COST_CELLS = 1 << 20


#: Boards the greedy rule evaluates at once: this one and the next ones while it frees
#: the checkpoint before the front.
_AHEAD = 32


def _ahead(cost: Callable, gaps: Any, budget: int) -> tuple[Any, Any]:
    """Cost change of freeing each checkpoint (``_online._cheapest_next``'s deltas) on
    this board and on the ``_AHEAD - 1`` boards after as many frees of the checkpoint
    before the front (interval ``budget - 2`` grows one cell each time, the last stays
    as it is): one row per board.

    Only the two deltas that read that interval change from row to row; the earlier
    ones all move by the change of its ``term``. Every cost is read in one ``cost``
    call (one gather: the loop's cost is its number of kernels, not their size).
    """
    s, i = budget, jnp.arange(1, budget, dtype=_I32)  # column i - 1: free cells[i - 1]
    a, b, end = gaps[:-1], gaps[1:], gaps[-1:]
    g = gaps[s - 2] + jnp.arange(_AHEAD, dtype=_I32)
    before = gaps[-3:-2] if s >= 3 else jnp.zeros(1, _I32)
    parts = [(b, s - i), (b, s - i + 1), (a + b, s - i + 1), (a, s - i + 1),
             (g + end, 2), (g, 2), (g, 3), (before + g, 3), (before, 3), (end, 1), (end, 2)]
    d = jnp.concatenate([p for p, _ in parts])
    lev = jnp.concatenate([jnp.broadcast_to(jnp.asarray(q, _I32), p.shape) for p, q in parts])
    cuts = np.cumsum([p.shape[0] for p, _ in parts])[:-1]
    (cb, cb1, cab, ca, cge, cg2, cg3, cbg, cbe, ce1, ce2) = jnp.split(cost(d, lev), cuts)
    term = cb - cb1
    later = jnp.asarray(np.tril(np.ones((s - 1, s - 1)), -1), term.dtype)
    delta = cab - ca - cb - later.T @ term           # sum over j > i (a product: one kernel)
    last = cge - cg2 - ce1
    if s == 2:
        return i, last[:, None]
    prev = cbg - cbe - cg2 - (ce1 - ce2)
    moved = cg2 - cg3
    earlier = delta[None, :s - 3] - (moved - moved[0])[:, None]
    return i, jnp.concatenate([earlier, prev[:, None], last[:, None]], axis=1)


def _greedy(ctl: Controller, budget: int, tab: tuple, sums: Any,
            table: Any) -> tuple[Any, Any, Any]:
    """Position of the checkpoint to free on a full board: the step after which the
    reverse sweep is cheapest, ties to the latest (:func:`pebbles._online._cheapest_next`,
    Revolve's third online phase); ``-1`` when none is finite. Costs come from a table
    while every merged interval fits in it, from the closed form otherwise.

    Also returns for how many steps after this one the rule will free the checkpoint
    before the front (its usual choice) and what it frees right after (``-2``: not
    known), so :func:`advance` skips the rule while they last: up to ``_AHEAD`` boards
    are judged at once (:func:`_ahead`).
    """
    cells = ctl.cells
    gaps = jnp.concatenate([cells[:1], cells[1:] - cells[:-1]])
    top = table.shape[1] - 1
    fits = jnp.max(gaps[:-1] + gaps[1:]) + _AHEAD <= top

    def cost(d: Any, s: Any) -> Any:  # a branch per source, around the lookup only
        return lax.cond(fits, lambda: _looked_up(table, d, s), lambda: _cost(tab, sums, d, s))

    i, delta = _ahead(cost, gaps, budget)
    ok = delta < jnp.inf                            # NaN and +inf never win
    least = jnp.min(jnp.where(ok, delta, jnp.inf), axis=1, keepdims=True)
    best = jnp.max(jnp.where(ok & (delta == least), i[None, :], 0), axis=1) - 1
    other = best != budget - 2
    ends = jnp.where(jnp.any(other), jnp.argmax(other), _AHEAD).astype(_I32)
    known = (ends > 0) & (ends < _AHEAD)
    then = jnp.where(known, best[jnp.minimum(ends, _AHEAD - 1)], -2)
    return best[0], jnp.maximum(ends - 1, 0), then.astype(_I32)


@lru_cache(maxsize=32)
def _r3_consts(budget: int) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """The r = 3 phase's constants (:class:`pebbles._online._R3`, checkpoint game):
    level tops ``beta(s, 2)`` (level 1: 1), the marks in the order they are kept
    (padded with ``MAX_STEPS``), the last front, ``beta(S, 2)`` and the optimum's
    rise at the phase's first step.

    Cells, marks and tops past ``MAX_STEPS`` are saturated at ``MAX_STEPS`` (they fit
    int32 then): a run has at most ``MAX_STEPS`` steps, so its front stays below them
    and every comparison with them comes out as with the exact values.
    """
    from ._binomial import BetaTable

    table = BetaTable(Game.CHECKPOINT)
    top, marks = _r3_layout(budget, Game.CHECKPOINT)
    b2 = table.beta(budget, 2)
    rise0 = table.min_steps(b2 + 1, budget) - table.min_steps(b2, budget)
    return (_saturated(top), _saturated([*marks, MAX_STEPS]),
            min(table.beta(budget, 3) - 1, MAX_STEPS), min(b2, MAX_STEPS), rise0)


def _saturated(values: Sequence[int]) -> np.ndarray:
    """Python ints as an int32 array, each at most ``MAX_STEPS``."""
    return np.asarray([min(v, MAX_STEPS) for v in values], np.int32)


def _r3(ctl: Controller, f: Any, budget: int, tables: tuple) -> tuple[Any, Any, Any, Any]:
    """One step of the r = 3 phase on a full board with the front at ``f``:
    (position freed, whether the phase takes this step, its new ``over``, whether
    the front's cell is a mark). Mirrors :meth:`pebbles._online._R3.next_action`."""
    tab, sums, table = tables
    tops, marks, end, b2, rise0 = (jnp.asarray(a) for a in _r3_consts(budget))
    cells, s = ctl.cells, budget
    gaps = jnp.concatenate([cells[:1], cells[1:] - cells[:-1]])
    lev = jnp.concatenate([jnp.zeros(1, _I32), gaps[::-1]])   # lev[k]: level k's cells
    fx = ctl.fixed[::-1]                                       # fx[k]: a mark above level k
    k, j = jnp.arange(1, s, dtype=_I32), jnp.arange(2, s, dtype=_I32)
    a, b = lev[k], lev[k + 1]
    parts = [(a + b, k + 1), (b, k + 1), (lev[j - 1], j), (lev[j], j),
             (lev[1:2], jnp.ones(1, _I32)), (jnp.ones(1, _I32), jnp.ones(1, _I32))]
    d, lv = jnp.concatenate([p for p, _ in parts]), jnp.concatenate([q for _, q in parts])
    cuts = np.cumsum([p.shape[0] for p, _ in parts])[:-1]
    c = lax.cond(jnp.max(a + b) <= table.shape[1] - 1, lambda: _looked_up(table, d, lv),
                 lambda: _cost(tab, sums, d, lv))
    cab, cb, cprev, ccur, c1, cone = jnp.split(c, cuts)
    inf = jnp.asarray(jnp.inf, c.dtype)
    gain = jnp.where((a + b <= tops[k + 1]) & ~fx[k], cab - cb, inf)
    pre = cone[0] - c1[0] + jnp.concatenate([jnp.zeros(1, c.dtype), jnp.cumsum(cprev - ccur)])
    totals = pre + gain
    rest = jnp.concatenate([totals[1:], inf[None]])
    k2, least = jnp.argmin(rest).astype(_I32) + 2, jnp.min(rest)
    one = (totals[0] < least) | ((totals[0] == least) & (lev[2] == 3))
    best, delta = jnp.where(one, 1, k2), jnp.where(one, totals[0], least)
    mark = marks[ctl.mark]
    over = ctl.over + 1 + jnp.where(delta < inf, delta, 0).astype(_I32) \
        - jnp.where(f >= b2, 3, rise0)
    take = (f < end) & (f <= mark) & (delta < inf) & (over <= _R3_LIMIT[Game.CHECKPOINT])
    return (s - 1 - best).astype(_I32), take, over.astype(_I32), f == mark


def _skip3(ctl: Controller) -> tuple:
    """No r = 3 step: the outputs of :func:`_phase3`'s step that leave the controller as
    it is."""
    return jnp.zeros((), _I32), jnp.asarray(False), ctl.over, ctl.fixed, ctl.mark


def _phase3(cell: Any, budget: int, tables: tuple) -> tuple[Any, Callable[[Controller], tuple]]:
    """The r = 3 phase's step to ``cell``: whether the phase may take it (once it has
    not, it never does), and the function that runs it: (position freed, whether the
    phase takes the step, new ``over``, ``fixed``, ``mark``). A phase listed in
    :func:`_r3_table` takes exactly its listed steps, read from the table; a longer one
    is judged on the board (:func:`_r3_judged`), its first flag always True."""
    first, plan, whole = _r3_table(budget, _R3_TABLE)
    if not whole:
        return jnp.asarray(True), lambda c: _r3_judged(c, cell - 1, budget, tables)
    j = cell - first
    listed = (j >= 0) & (j < plan.shape[0])

    def listed_step(c: Controller) -> tuple:
        return (jnp.asarray(plan)[jnp.clip(j, 0, plan.shape[0] - 1)], listed, c.over,
                c.fixed, c.mark)

    return listed, listed_step


def _or_greedy(phase3: Callable, budget: int, tables: tuple | None) -> Callable:
    """The r = 3 step, or, when the phase does not take it, the greedy rule's
    (``tables=None``: a phase that takes every step it runs): (position, ``run``,
    ``then``, whether the phase took the step, ``over``, ``fixed``, ``mark``)."""
    def step(c: Controller) -> tuple:
        i, take, over, fixed, mark = phase3(c)
        if tables is None:
            return i, c.run, c.then, take, over, fixed, mark
        i, run, then = lax.cond(take, lambda c: (i, c.run, c.then),
                                lambda c: _greedy(c, budget, *tables), c)
        return i, run, then, take, over, fixed, mark
    return step


def _r3_judged(ctl: Controller, f: Any, budget: int, tables: tuple) -> tuple:
    """:func:`_r3` and its bookkeeping: (position freed, whether the phase takes the
    step, and the new ``over``, ``fixed`` and ``mark`` of the controller)."""
    i, take, over, hit = _r3(ctl, f, budget, tables)
    fixed = _shift(ctl.fixed, i, budget - 1).at[budget - 2].set(hit).at[budget - 1].set(False)
    return (i, take, jnp.where(take, over, ctl.over), jnp.where(take, fixed, ctl.fixed),
            ctl.mark + (take & hit).astype(ctl.mark.dtype))


#: Longest r = 3 phase the controller reads from a table made on the host
#: (:func:`pebbles._online.r3_choices`, budgets up to 45: at most about 0.15 s, once a
#: budget) instead of judging each board in the loop (:func:`_r3`).
_R3_TABLE = 1 << 14


@lru_cache(maxsize=32)
def _r3_table(budget: int, most: int) -> tuple[int, np.ndarray, bool]:
    """The r = 3 phase's choices: (its first front, the positions freed, True), or
    ``(MAX_STEPS, [0], False)`` when the phase is longer than ``most`` steps."""
    got = r3_choices(budget, most)
    if got is None or not got[1]:
        return MAX_STEPS, np.zeros(1, np.int32), False
    return got[0], np.asarray(got[1], np.int32), True


def _known(ctl: Controller) -> tuple[Any, Any, Any]:
    """The greedy rule's next choice when :func:`_greedy` said it before."""
    ahead = ctl.run > 0
    budget = ctl.cells.shape[0]
    return (jnp.where(ahead, budget - 2, ctl.then).astype(_I32), jnp.maximum(ctl.run - 1, 0),
            jnp.where(ahead, ctl.then, -2).astype(_I32))


def advance(ctl: Controller, cell: Any, budget: int, tables: tuple | None = None,
            beyond: str = "greedy") -> tuple[Controller, Any]:
    """Keep ``s_cell`` (the new front): the new state and the slot it goes to.

    Mirrors :meth:`pebbles.OnlineScheduler.advance` in the checkpoint game
    (``budget >= 2``): r = 2, r = 3, then the greedy rule or (``beyond="wang-moin"``)
    Wang-Moin. ``tables``: :func:`greedy_tables` (made when not given).

    Examples
    --------
    Budget 3, seven advances (compiled once: run eagerly, each of its operations
    would be compiled on its own): the held cells are those of the host scheduler.

    >>> import jax
    >>> from pebbles import OnlineScheduler
    >>> from pebbles._jax_while import advance, controller
    >>> step = jax.jit(lambda ctl, cell: advance(ctl, cell, 3, beyond="wang-moin"))
    >>> ctl, host = controller(3), OnlineScheduler(3, beyond="wang-moin")
    >>> for cell in range(1, 8):
    ...     ctl, slot = step(ctl, cell)
    ...     _ = host.advance()
    >>> ctl.cells.tolist(), host.checkpoints
    ([4, 6, 7], (4, 6, 7))
    """
    tables = greedy_tables(budget) if tables is None else tables
    place = ctl.num < budget
    t, k = ctl.t, ctl.k
    bump = (t < budget - 1) & (k == budget - t)
    t, k = jnp.where(bump, t + 1, t), jnp.where(bump, 0, k)
    r2 = t < budget - 1
    k = jnp.where(r2, k + 1, k)
    busy = ~place & ~r2  # a full board past the r = 2 phase: r = 3, then the rule beyond
    if beyond == "wang-moin":
        i3, use3, over, fixed, mark = lax.cond(busy & ctl.r3, _phase3(cell, budget, tables)[1],
                                               _skip3, ctl)
        i, levels, marks = _wang_moin(ctl.levels, ctl.marks, budget)
        i, run, then = jnp.where(use3, i3, i), ctl.run, ctl.then
    else:  # one conditional a step: the rule's known choice, the rule, or the r = 3 phase
        levels, marks = ctl.levels, ctl.marks
        known = (ctl.run > 0) | (ctl.then != -2)
        # a listed phase takes every step it runs: the rule's branch follows it
        listed, phase3 = _phase3(cell, budget, tables)
        whole = _r3_table(budget, _R3_TABLE)[2]
        which = jnp.where(busy & ctl.r3 & listed, 2, jnp.where(busy & ~known, 1, 0))
        i, run, then, use3, over, fixed, mark = lax.switch(which, [
            lambda c: (*_known(c), *_skip3(c)[1:]),
            lambda c: (*_greedy(c, budget, *tables), *_skip3(c)[1:]),
            _or_greedy(phase3, budget, None if whole else tables)], ctl)
    rest = busy & ~use3
    p = jnp.where(place, budget, jnp.where(r2, t, i))
    at = jnp.where(place, ctl.num, budget - 1)
    slot = ctl.slots[jnp.minimum(jnp.where(place, ctl.num, p), budget - 1)]
    cells = _shift(ctl.cells, p, budget - 1).at[at].set(cell)
    slots = _shift(ctl.slots, p, budget - 1).at[at].set(slot)
    wm = rest & (beyond == "wang-moin")
    new = Controller(cells, slots, jnp.minimum(ctl.num + 1, budget),
                     jnp.where(place, ctl.t, t), jnp.where(place, ctl.k, k),
                     jnp.where(wm, levels, ctl.levels), jnp.where(wm, marks, ctl.marks),
                     run, then, fixed, mark, over, ctl.r3 & (place | r2 | use3))
    return new, slot


# ---------------------------------------------------------------------------
# beta(s, r) of the checkpoint game, its repetitions and optimal splits, in jnp
# ---------------------------------------------------------------------------
@lru_cache(maxsize=32)
def beta_table(budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``beta(s, 0..)`` for ``4 <= s <= budget``, each up to the first value
    ``>= MAX_STEPS``, flattened: (values, offset of row s, last index of row s).
    Rows ``s <= 3`` have closed forms (1, 2, 2r + 1, (r + 1)^2)."""
    values, off, last = [0], np.zeros(budget + 1, np.int32), np.zeros(budget + 1, np.int32)
    for s in range(4, budget + 1):
        off[s] = len(values)
        r = 0
        while True:
            v = _beta_exact(Game.CHECKPOINT, s, r)
            values.append(min(v, MAX_STEPS))
            if v >= MAX_STEPS:
                break
            r += 1
        last[s] = r
    return np.asarray(values, np.int32), off, last


def _beta(tab: tuple, s: Any, r: Any) -> Any:
    """``beta(s, r)`` of the checkpoint game, saturated at ``MAX_STEPS`` (0 for r < 0)."""
    values, off, last = tab
    s = jnp.clip(s, 0, off.shape[0] - 1)
    rc = jnp.maximum(r, 0)
    row = values[off[s] + jnp.minimum(rc, last[s])]
    v = jnp.where(s == 2, 2 * jnp.minimum(rc, 1 << 29) + 1,
                  jnp.where(s == 3, jnp.square(jnp.minimum(rc, 32767) + 1), row))
    v = jnp.where(s == 1, jnp.where(rc >= 1, 2, 1), jnp.where(s == 0, 1, v))
    return jnp.where(r < 0, 0, jnp.minimum(v, MAX_STEPS)).astype(_I32)


def _repetitions(tab: tuple, m: Any, s: Any) -> Any:
    """Least ``r`` with ``beta(s, r) >= m``, by bisection (elementwise)."""
    def halve(_: Any, bounds: tuple) -> tuple:
        lo, hi = bounds
        mid = (lo + hi) // 2
        ok = _beta(tab, s, mid) >= m
        return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)

    lo, hi = jnp.full(jnp.shape(m), -1, _I32), jnp.full(jnp.shape(m), MAX_STEPS, _I32)
    return lax.fori_loop(0, 31, halve, (lo, hi))[1]


def _first_checkpoint(tab: tuple, m: Any, s: Any) -> Any:
    """Treeverse's optimal first checkpoint offset for ``m >= 2`` steps and ``s`` slots
    (:meth:`pebbles._binomial.BetaTable.split_range`'s lower end), from ``beta``."""
    r = _repetitions(tab, m, s)
    return jnp.maximum(jnp.maximum(1, m - _beta(tab, s - 1, r)), _beta(tab, s, r - 2))


def greedy_tables(budget: int) -> tuple:
    """The tables :func:`advance` needs for the greedy rule, as jnp arrays (costs in
    float64 under ``jax_enable_x64``, exact; float32 otherwise, exact up to 2^24)."""
    dt = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return (tuple(jnp.asarray(a) for a in beta_table(budget)),
            jnp.asarray(_beta_sums(budget), dt), jnp.asarray(_cost_table(budget, dt)))


@lru_cache(maxsize=32)
def split_table(budget: int) -> np.ndarray:
    """``table[s, m]``: the optimal first checkpoint for ``m`` steps and ``s`` slots,
    for ``m <= short(budget)`` (1 where infeasible).

    Examples
    --------
    >>> from pebbles._jax_while import split_table
    >>> int(split_table(4)[4, 20])    # treeverse(20, 4) walks to 5 first
    5
    """
    top = _short(budget)
    table = np.ones((budget + 1, top + 1), np.int32)
    m = np.arange(top + 1)
    for s in range(2, budget + 1):
        row = [_beta_exact(Game.CHECKPOINT, s, 0)]
        while row[-1] < top:
            row.append(_beta_exact(Game.CHECKPOINT, s, len(row)))
        row = np.asarray(row)
        r = np.searchsorted(row, m)  # least r with beta(s, r) >= m
        below = np.asarray([_beta_exact(Game.CHECKPOINT, s - 1, int(k)) for k in range(len(row))])
        two_less = np.where(r >= 2, row[np.maximum(r - 2, 0)], 0)
        table[s] = np.maximum(np.maximum(1, m - below[r]), two_less)
    return table


def _short(budget: int) -> int:
    """Longest interval whose split comes from :func:`split_table` (at most ~64k entries)."""
    return max(16, min(1024, (1 << 16) // (budget + 1)))


# ---------------------------------------------------------------------------
# the loops
# ---------------------------------------------------------------------------
def _as_step(fun: Callable) -> Callable:
    """``fun(carry, *consts) -> carry`` as a scan step ``(carry, x, *consts) -> (carry, None)``."""
    def step(c: Any, x: Any, *consts: Any) -> tuple[Any, None]:
        return fun(c, *consts), None
    return step


def _primal(fun: Callable, sh: _Shapes) -> Callable:
    """:func:`pebbles._jax_scan.primal` of ``fun(carry, *consts) -> carry``."""
    run = primal(_as_step(fun), sh)
    return lambda c, *consts: run(c, None, *consts)[0]


def _forward(fun: Callable, go: Callable, budget: int, init: Any,
             consts: Sequence[Any], greedy: bool) -> tuple[Any, Any, Controller, Any]:
    """Run the loop while ``go((carry, k))``, storing states as the controller says:
    (carry, buffer, controller, n)."""
    tables = greedy_tables(budget)
    beyond = "greedy" if greedy else "wang-moin"

    def body(state: tuple) -> tuple:
        c, k, buf, ctl = state
        new, slot = advance(ctl, k, budget, tables, beyond)
        # s_0 is the input: not stored (slot 0 is overwritten by s_1). Placing cell 0 on
        # the empty board changes only ``num`` (cells are 0, slots[0] stays where it is).
        first = k == 0
        ctl = new._replace(num=jnp.where(first, ctl.num, new.num))
        buf = _put(buf, c, jnp.where(first, 0, slot))
        return fun(c, *consts), k + 1, buf, ctl

    state = (init, jnp.zeros((), _I32), _slots(init, budget), controller(budget))
    c, n, buf, ctl = lax.while_loop(go, body, state)
    return c, buf, ctl, n


def _tasks(ctl: Controller, n: Any, budget: int) -> tuple[Any, Any]:
    """The initial stack: one task per interval of ``(0, cells..., n)``, the last on top."""
    j = jnp.arange(budget + 1, dtype=_I32)
    cells = jnp.concatenate([ctl.cells, jnp.zeros(1, _I32)])
    lo = jnp.where(j == 0, 0, cells[jnp.maximum(j - 1, 0)])
    hi = jnp.where(j < ctl.num, cells, n)
    m = jnp.where(j <= ctl.num, hi - lo, 1)
    s = jnp.minimum(budget - j, m)
    stack = jnp.stack([lo, m, s, j - 1], axis=1)
    return stack, jnp.where(n > 0, ctl.num + 1, 0)


def _state(init: Any, buf: Any, slots: Any, q: Any) -> Any:
    """The carry held at stack position ``q`` (``-1``: the input ``s_0``)."""
    held = _at(buf, slots[jnp.maximum(q, 0)])
    return jax.tree.map(lambda a, b: jnp.where(q < 0, a, b), init, held)


def _walks(fun: Callable, tabs: tuple, init: Any, slots: Any, consts: Sequence[Any],
           state: tuple) -> tuple:
    """Split the top task until it is one step: walk to each split, store it, push.

    Tasks longer than the split table (rare: the top of the recursion) are split by
    the closed form in a loop of their own, the others by a table lookup; a
    ``lax.cond`` between the two would cost more than the walk of a short task.
    """
    tab, short = tabs
    top = short.shape[1] - 1

    def splitter(first: Callable) -> Callable:
        def split(state: tuple) -> tuple:
            buf, stack, sp = state
            base, m, s, q = lax.dynamic_index_in_dim(stack, sp - 1, 0, keepdims=False)
            j = first(m, s)
            c = lax.fori_loop(0, j, lambda _, c: fun(c, *consts), _state(init, buf, slots, q))
            buf = _put(buf, c, slots[q + 1])
            left = jnp.stack([base, j, s, q])
            right = jnp.stack([base + j, m - j, s - 1, q + 1])
            return buf, stack.at[sp - 1].set(left).at[sp].set(right), sp + 1
        return split

    def longer_than(least: int) -> Callable:
        return lambda st: st[1][st[2] - 1, 1] > least

    state = lax.while_loop(longer_than(top), splitter(
        lambda m, s: _first_checkpoint(tab, m, s)), state)
    return lax.while_loop(longer_than(1), splitter(
        lambda m, s: short[s, jnp.minimum(m, top)]), state)


def _backward(fun: Callable, sh: _Shapes, budget: int, init: Any, buf: Any, ctl: Controller,
              n: Any, consts: Sequence[Any], g: list[Any]) -> tuple[list[Any], list[Any]]:
    """Reverse the ``n`` steps from the cotangent ``g`` of ``s_n``: (g_s0, g_consts), the
    differentiated leaves only (the masks of ``sh``)."""
    tabs = (tuple(jnp.asarray(a) for a in beta_table(budget)),
            jnp.asarray(split_table(budget)))
    step = _as_step(fun)

    def reverse_one(state: tuple) -> tuple:
        buf, stack, sp, g, gcs = state
        buf, stack, sp = _walks(_primal(fun, sh), tabs, init, ctl.slots, consts, (buf, stack, sp))
        c = _state(init, buf, ctl.slots, stack[sp - 1, 3])
        g, _, gk = _vjp_step(step, sh, c, None, consts, g, [])
        return buf, stack, sp - 1, g, [a + b for a, b in zip(gcs, gk, strict=True)]

    stack, sp = _tasks(ctl, n, budget)
    gcs = [jnp.zeros_like(a) for a in _split(consts, sh.const_mask)]
    state = lax.while_loop(lambda st: st[2] > 0, reverse_one, (buf, stack, sp, g, gcs))
    return state[3], _merge(state[4], [None] * len(consts), sh.const_mask)


def make_while(fun: Callable, cfun: Callable, budget: int,
               max_steps: int | None, greedy: bool = True) -> Callable:
    """``loop(init, consts, cconsts) -> carry`` with the online reverse pass.

    ``fun(carry, *consts) -> carry`` and ``cfun(carry, *cconsts) -> bool`` must be
    closure-converted; ``budget >= 2``. ``greedy``: the rule past the r = 3
    phase (else Wang-Moin).
    """
    def going(cconsts: list[Any]) -> Callable:
        def go(state: tuple) -> Any:
            more = cfun(state[0], *cconsts)
            return more if max_steps is None else more & (state[1] < max_steps)
        return go

    @jax.custom_vjp
    def loop(init: Any, consts: list[Any], cconsts: list[Any]) -> Any:
        state = (init, jnp.zeros((), _I32))
        return lax.while_loop(going(cconsts), lambda st: (fun(st[0], *consts), st[1] + 1),
                              state)[0]

    def loop_fwd(init: Any, consts: list[Any], cconsts: list[Any]) -> tuple:
        (init, init_p), (consts, consts_p), (cconsts, _p) = map(unwrap, (init, consts, cconsts))
        with jax_errors_noted():
            sh, _ = _shapes(_as_step(fun), init, None, consts, (init_p, [], consts_p))
            c, buf, ctl, n = _forward(_primal(fun, sh), going(cconsts), budget, init, consts,
                                      greedy)
        return c, (init, buf, ctl, n, consts, sh, cconsts)

    def loop_bwd(res: tuple, ct: Any) -> tuple:
        init, buf, ctl, n, consts, sh, cconsts = res
        g = [instantiate(a) for a in _split(jax.tree.leaves(ct), sh.carry_mask)]
        with jax_errors_noted():
            g0, gcs = _backward(fun, sh, budget, init, buf, ctl, n, consts, g)
        none_c = [None] * len(sh.carry_mask)
        g_init = jax.tree.unflatten(sh.carry, _merge(g0, none_c, sh.carry_mask))
        # cond is not differentiated
        return g_init, _const_cotangents(gcs, consts), [None] * len(cconsts)

    loop.defvjp(loop_fwd, loop_bwd, symbolic_zeros=True)
    return loop
