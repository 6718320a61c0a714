"""Planner: pick a gradient schedule for n steps under a memory budget.

Every gradient schedule of the registry that fits the budget
(:func:`pebbles.candidates`: Treeverse in both games, Bennett's gradient, the
baselines) is costed on one scale: predicted time = forward steps +
backward_cost * n backward steps, in units of one forward step. Forward steps
come from each method's closed form or recursion (Treeverse: the exact optima
of :func:`pebbles.min_forward_steps`), so planning n = 10^9 steps is instant.

Memory is counted as the generic executor holds it (:func:`pebbles.replay`):
the schedule's stored states, plus ``s_0``, the scratch state in which ``s_n``
is computed for the loss, and two gradients (the one held and the one a
backward step returns). A memory budget in bytes is turned into a schedule
budget by taking those :data:`EXECUTOR_EXTRA_STATES` away.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from ._background import BackgroundClock
from ._budget import check_budget, min_pebbles
from ._errors import InfeasibleBudgetError, PebblesValueError, rebuilt
from ._moves import Game
from ._optimal import min_forward_steps
from ._registry import Method, Schedule, candidates, predicted_steps, schedule
from ._reversible import reversible_tables_fit
from ._simulator import simulate
from ._twolevel import (
    BOUNDED_MAX_WORK,
    TWO_LEVEL_MAX_ENTRIES,
    TWO_LEVEL_MAX_WORK,
    bounded_work,
    min_total_time,
    two_level_steps,
    two_level_tables_fit,
    two_level_work,
)
from ._validation import check_bool, check_cost, check_disk_budget, check_int

__all__ = [
    "BACKGROUND_MAX_N",
    "BOUNDED_DISK_MAX_N",
    "EXECUTOR_EXTRA_STATES",
    "Candidate",
    "Plan",
    "budget_for",
    "plan",
    "two_level_table_work",
]

#: States the generic executor holds besides a schedule's budget: s_0, the
#: scratch s_n of the loss, and two gradients.
EXECUTOR_EXTRA_STATES = 4


class NoDiskError(PebblesValueError):
    """An argument of :func:`plan` that needs a disk, given without the disk's costs.

    The message names the library's arguments; a caller with other names for them
    (the ``pebbles plan`` command line) words it from the attributes, with its own fix.

    Attributes
    ----------
    argument : str
        The argument given (``"background_writes"``).
    rule : str
        What it does and why it needs a disk, without the fix.
    """

    def __init__(self, argument: str, rule: str, fix: str) -> None:
        super().__init__(f"{argument}=True {rule}: {fix}")
        self.argument, self.rule, self._fix = argument, rule, fix

    def __reduce__(self) -> tuple[object, ...]:
        return rebuilt(self, self.argument, self.rule, self._fix)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One schedule's predicted cost under the budget.

    Attributes
    ----------
    schedule : the registry's schedule, runnable as is (``pebbles.replay``).
    forward_steps, backward_steps : predicted steps.
    cost : ``forward_steps + backward_cost * backward_steps``.
    states : states the executor holds at most (``budget +``
        :data:`EXECUTOR_EXTRA_STATES`).
    needs_step_into : the in-place game, where a ``step_into`` callback lets ``replay``
        reuse buffers (without one it allocates a new state a step, at the same peak).
    """

    schedule: Schedule
    forward_steps: int
    backward_steps: int
    cost: float
    states: int
    needs_step_into: bool

    @property
    def method(self) -> str:
        """The registry name of the schedule's method."""
        return self.schedule.method

    @property
    def game(self) -> str:
        """The game of the schedule, as a string."""
        return self.schedule.game.value


@dataclass(frozen=True, slots=True)
class Plan:
    """Candidates sorted by predicted cost; ``best`` is the recommendation.

    ``skipped`` names the methods that fit but were not costed: the reversible optimum
    where its exact tables would take more than about a second (its name alone),
    treeverse-paper where counting its steps would, and two-level variants the tables
    cannot serve or a disk cannot improve (with the reason in parentheses).
    """

    n: int
    budget: int
    backward_cost: float
    candidates: tuple[Candidate, ...]
    state_bytes: int | None = None
    skipped: tuple[str, ...] = ()

    @property
    def best(self) -> Candidate:
        """The cheapest candidate (fewest forward steps among equal costs)."""
        return self.candidates[0]

    @property
    def memory(self) -> int | None:
        """Bytes the best candidate holds at most (with ``state_bytes``): its states and the
        executor's own. A two-level candidate run through a ``DiskStore`` may hold up to
        ``queue_size`` copies being written besides, where the executor has no free
        buffer to lend it (no ``step_into``, or every buffer in use)."""
        return None if self.state_bytes is None else self.best.states * self.state_bytes


def budget_for(memory: int, state_bytes: int) -> int:
    """The schedule budget that fits ``memory`` bytes once the executor's own states are counted.

    :func:`pebbles.replay` holds, besides a schedule's ``budget`` states,
    :data:`EXECUTOR_EXTRA_STATES` more of the same size (``s_0``, the scratch
    ``s_n`` and the gradients), so the budget is
    ``memory // state_bytes - EXECUTOR_EXTRA_STATES``.

    Parameters
    ----------
    memory : int
        Bytes available for states (and gradients of the same size).
    state_bytes : int
        Bytes of one state.

    Returns
    -------
    int
        A budget for :func:`pebbles.schedule`, :func:`pebbles.treeverse`, ...

    Raises
    ------
    PebblesValueError
        The memory holds fewer than ``EXECUTOR_EXTRA_STATES + 1`` states.

    Examples
    --------
    >>> import pebbles
    >>> from pebbles import budget_for
    >>> budget = budget_for(2 * 2**30, 32 * 2**20)
    >>> budget
    60
    >>> s = pebbles.schedule("treeverse", 10_000, budget=budget)
    """
    memory = check_int("memory", memory, 1)
    state_bytes = check_int("state_bytes", state_bytes, 1)
    fit = memory // state_bytes
    need = (EXECUTOR_EXTRA_STATES + 1) * state_bytes
    if fit == 0:
        raise PebblesValueError(
            f"memory={memory} bytes is smaller than one state (state_bytes={state_bytes}); "
            f"the executor needs {EXECUTOR_EXTRA_STATES + 1} states at least: give memory "
            f">= {need}")
    if fit < EXECUTOR_EXTRA_STATES + 1:
        raise PebblesValueError(
            f"memory={memory} bytes holds {fit} state{'s' * (fit != 1)} of "
            f"state_bytes={state_bytes}; the "
            f"executor needs {EXECUTOR_EXTRA_STATES} besides the schedule's (s_0, s_n and the "
            f"gradients) and at least 1 stored state: give memory >= {need}")
    return fit - EXECUTOR_EXTRA_STATES


def _budget(budget: object, memory: object, state_bytes: object) -> tuple[int, int | None]:
    """The schedule budget and the state size (``None``: not given)."""
    size = None if state_bytes is None else check_int("state_bytes", state_bytes, 1)
    budget = None if budget is None else check_int("budget", budget)  # < 0: _plan_budget
    memory = None if memory is None else check_int("memory", memory, 1)  # told first
    if budget is not None:
        if memory is not None:
            raise PebblesValueError(
                "give either budget=STATES or memory=BYTES with state_bytes=BYTES, not both")
        return budget, size
    if memory is None:
        raise PebblesValueError(
            "plan() needs a budget: pass budget=S, or memory=BYTES with state_bytes=BYTES")
    if size is None:
        raise PebblesValueError(
            f"memory={memory!r} needs state_bytes=BYTES (the bytes of one state) to turn "
            f"into a budget; pass state_bytes=BYTES too, or budget=S instead of memory")
    return budget_for(memory, size), size


def _plan_budget(n: int, budget: object, memory: object,
                 state_bytes: object) -> tuple[int, int | None]:
    """:func:`plan`'s schedule budget (at most ``n``) and state size (``None``: not
    given); refused where no candidate can finish."""
    s, size = _budget(budget, memory, state_bytes)
    if s < 0:  # told the least budget, in the registry's words
        check_budget(n, s, Game.INPLACE)
    need = min_pebbles(n, Game.INPLACE)  # the least budget any candidate finishes with
    if s < need:
        raise InfeasibleBudgetError(
            f"a budget of {s} states cannot finish n={n} steps (every backward step needs "
            f"its state held); pass budget={need} or more (a memory for {need} state besides "
            f"s_0 and the executor's {EXECUTOR_EXTRA_STATES})", need)
    return min(s, n), size  # more than n states is store-all with room to spare


def two_level_table_work(n: int, budget: int | None = None, *, memory: int | None = None,
                         state_bytes: int | None = None) -> int:
    """Estimated work of the two-level table :func:`plan` solves when given a disk.

    The budget is derived as :func:`plan` derives it, and the table is skipped where
    :func:`plan` skips it: where memory alone runs no step twice, and where the table
    is too large to solve (:func:`pebbles._twolevel.two_level_tables_fit`).

    Parameters
    ----------
    n : int
        Number of steps.
    budget : int, optional
        States a schedule may store besides ``s_0``; or give ``memory`` and
        ``state_bytes``, as for :func:`plan`.
    memory, state_bytes : int, optional
        Bytes for states and of one state (:func:`budget_for`).

    Returns
    -------
    int
        :func:`pebbles._twolevel.two_level_work` of the table (about 20-35 ns a unit);
        0 when the plan solves no table.

    Raises
    ------
    PebblesValueError
        The arguments :func:`plan` refuses for the budget (an
        :class:`InfeasibleBudgetError` for one too small).

    Examples
    --------
    >>> from pebbles._planner import two_level_table_work
    >>> two_level_table_work(60, 40), two_level_table_work(60, 59)
    (134400, 0)
    >>> two_level_table_work(60, memory=62, state_bytes=1)  # a budget of 58
    208800
    """
    n = check_int("n", n, 1)
    s, _ = _plan_budget(n, budget, memory, state_bytes)
    if _memory_runs_each_step_once(n, s) or not two_level_tables_fit(n, s):
        return 0
    return two_level_work(n, s)


def _memory_runs_each_step_once(n: int, s: int) -> bool:
    """Whether ``s`` memory states run every step once (the last never): then a disk
    cannot do better and the two-level table is not solved."""
    return s >= min_pebbles(n, Game.CHECKPOINT) and min_forward_steps(n, s) == n - 1


def _disk_cost(name: str, value: object) -> float | None:
    """``write_cost`` or ``read_cost`` checked (``None`` when not given)."""
    word = name.split("_")[0]
    return None if value is None else check_cost(
        name, value, f"a state's {word} time over a forward step's")


def plan(
    n: int,
    budget: int | None = None,
    *,
    memory: int | None = None,
    state_bytes: int | None = None,
    backward_cost: float = 1.0,
    disk_budget: int | float | None = None,
    write_cost: float | None = None,
    read_cost: float | None = None,
    background_writes: bool = False,
) -> Plan:
    """Compare the gradient schedules for ``n`` steps under a budget and recommend one.

    Parameters
    ----------
    n : int
        Number of steps.
    budget : int, optional
        States a schedule may store besides ``s_0``; or give ``memory`` and
        ``state_bytes`` instead (not both).
    memory : int, optional
        Instead of ``budget``: bytes available for states (and the executor's
        gradients of the same size); the budget is then what fits once the
        executor's own :data:`EXECUTOR_EXTRA_STATES` are counted,
        ``budget_for(memory, state_bytes)``, at most ``n``.
    state_bytes : int, optional
        Bytes of one state: needed with ``memory``; with ``budget`` it only sizes
        :attr:`Plan.memory` (``None``: the plan counts no bytes).
    backward_cost : float
        Cost of one backward step relative to one forward step.
    disk_budget, write_cost, read_cost : optional
        A disk as a second storage level: with ``write_cost`` and ``read_cost``
        (a state's write and read time over a forward step's, e.g. from
        ``pebbles.measure_io(dir, state_bytes).costs(step_seconds)``) the optimal
        two-level schedule (``disk_budget`` states on disk, ``None``: unbounded)
        is costed too, at its least total time (:func:`pebbles.min_total_time`).
    background_writes : bool
        The executor writes stores in a background thread (as ``pebbles.DiskStore``
        does): cost the two-level candidates by :func:`pebbles.background_time` and
        take :func:`pebbles.background_two_level`'s choice (for ``n`` up to
        :data:`BACKGROUND_MAX_N`; above, they are costed with writes in full).

    Returns
    -------
    Plan
        ``plan(...).best.schedule`` runs as is with :func:`pebbles.replay`.

    Examples
    --------
    >>> from pebbles import plan
    >>> p = plan(10_000, memory=2 * 2**30, state_bytes=32 * 2**20, backward_cost=3)
    >>> p.budget, p.best.method, p.best.forward_steps, p.best.needs_step_into
    (60, 'treeverse', 28047, True)
    >>> p.memory <= 2 * 2**30
    True
    """
    n = check_int("n", n, 1)
    backward_cost = check_cost("backward_cost", backward_cost,
                               "the cost of a backward step over a forward step")
    if not math.isfinite(backward_cost * n):
        raise PebblesValueError(
            f"backward_cost={backward_cost!r} with n={n}: the backward steps' cost "
            f"backward_cost * n is beyond any float; pass a backward_cost below "
            f"{sys.float_info.max / n:.3g}")
    write_cost, read_cost = _disk_cost("write_cost", write_cost), _disk_cost("read_cost", read_cost)
    background_writes = check_bool("background_writes", background_writes)
    check_disk_budget(disk_budget)  # told before a disk's missing costs (kept as given)
    disk = write_cost is not None or read_cost is not None or disk_budget is not None
    if background_writes and not disk:
        raise NoDiskError(
            "background_writes", "costs the two-level schedules with their stores written "
            "while the steps go on, and there are none without a disk", "give write_cost= "
            "and read_cost= too (a state's write and read times in forward steps, e.g. "
            "pebbles.measure_io(dir, state_bytes).costs(step_seconds))")
    s, state_bytes = _plan_budget(n, budget, memory, state_bytes)
    found, skipped = [], []
    for sched in _gradient_schedules(n, s, skipped):
        steps = predicted_steps(sched)
        if steps is None:
            skipped.append(f"{sched.method} (counting its steps would take more than "
                           f"about half a second at n={n})")
            continue
        held = min(s, n) + EXECUTOR_EXTRA_STATES
        found.append(Candidate(sched, steps, n, steps + backward_cost * n, held,
                               sched.game is Game.INPLACE))
    if disk:
        found += _two_level(n, s, disk_budget, write_cost, read_cost, backward_cost, skipped,
                            background_writes)
    found.sort(key=lambda c: (c.cost, c.forward_steps, c.states))
    return Plan(n, s, backward_cost, tuple(found), state_bytes, tuple(skipped))


#: Largest n for which a two-level plan with a disk too small for the unbounded optimum
#: is solved (its exact table costs O(n^2 S D)).
BOUNDED_DISK_MAX_N = 2000

#: Largest n for which ``plan(..., background_writes=True)`` makes and times the
#: background choice (six schedules, each walked once in Python).
BACKGROUND_MAX_N = 10**5


def _two_level(n: int, s: int, disk_budget: int | float | None, write_cost: float | None,
               read_cost: float | None, backward_cost: float,
               skipped: list[str], background: bool = False) -> list[Candidate]:
    """The two-level candidates (both games), costed at their least total time (with
    ``background``: their background time, :func:`_background_candidate`)."""
    if write_cost is None or read_cost is None:
        raise PebblesValueError(
            "a disk needs write_cost= and read_cost= (a state's write and read time over a "
            "forward step's; pebbles.measure_io(dir, state_bytes).costs(step_seconds))")
    disk_budget = check_disk_budget(disk_budget)  # here for every n (n > BOUNDED_DISK_MAX_N)
    if _memory_runs_each_step_once(n, s):
        skipped.append(f"two-level (n={n} with {s} memory states: memory alone runs no step "
                       f"twice, a disk cannot do better)")
        return []
    if not two_level_tables_fit(n, s):
        too = (f"its tables would hold more than {TWO_LEVEL_MAX_ENTRIES:.0e} entries"
               if two_level_work(n, s) <= TWO_LEVEL_MAX_WORK else
               f"its table would take more than {TWO_LEVEL_MAX_WORK:.0e} operations")
        skipped.append(f"two-level (n={n} with {s} memory states: {too}; 'periodic-disk' "
                       f"streams at any n)")
        return []
    out = []
    for inplace in (False, True):
        game = Game.INPLACE if inplace else Game.CHECKPOINT
        if s < min_pebbles(n, game):
            continue
        if disk_budget is not None and (why := _bounded_too_big(n, s, disk_budget)):
            free = schedule("two-level", n, budget=s, write_cost=write_cost,
                            read_cost=read_cost, inplace=inplace).simulate()
            if free.peak_disk > disk_budget:
                skipped.append(f"two-level{' --inplace' * inplace} (a disk of {disk_budget} "
                               f"states is below the {free.peak_disk} the unbounded optimum "
                               f"uses, and {why})")
                continue
        if background and n <= BACKGROUND_MAX_N:
            out.append(_background_candidate(n, s, disk_budget, write_cost, read_cost,
                                             backward_cost, inplace))
            continue
        if background:
            skipped.append(f"background writes for two-level{' --inplace' * inplace} "
                           f"(n > {BACKGROUND_MAX_N}: costed with writes in full)")
        sched = schedule("two-level", n, budget=s, disk_budget=disk_budget,
                         write_cost=write_cost, read_cost=read_cost, inplace=inplace)
        total = min_total_time(n, s, disk_budget, write_cost=write_cost, read_cost=read_cost,
                               inplace=inplace)
        steps = two_level_steps(n, s, disk_budget, write_cost=write_cost,
                                read_cost=read_cost, inplace=inplace)
        out.append(Candidate(sched, steps, n, total + backward_cost * n,
                             s + EXECUTOR_EXTRA_STATES, inplace))
    return out


def _bounded_too_big(n: int, s: int, disk_budget: int) -> str:
    """Why the exact bounded-disk table is not solved for the planner ('' if it is)."""
    if n > BOUNDED_DISK_MAX_N:
        return f"n > {BOUNDED_DISK_MAX_N}"
    work = bounded_work(n, s, disk_budget)
    if work > BOUNDED_MAX_WORK:
        return (f"the exact table with fewer holds n^2 * budget * (disk_budget + 1) = "
                f"{work:.1e} entries, more than {BOUNDED_MAX_WORK:.0e}")
    return ""


def _background_candidate(n: int, s: int, disk_budget: int | None, write_cost: float,
                          read_cost: float, backward_cost: float,
                          inplace: bool) -> Candidate:
    """:func:`pebbles.background_two_level`'s schedule, costed by its background time
    (timed as the simulator counts its forward steps: one walk, no list of its moves)."""
    sched = schedule("two-level", n, budget=s, disk_budget=disk_budget, write_cost=write_cost,
                     read_cost=read_cost, inplace=inplace, background_writes=True,
                     backward_cost=backward_cost)
    clock = BackgroundClock(write_cost=write_cost, read_cost=read_cost,
                            backward_cost=backward_cost)
    steps = simulate(clock.timed(sched), n, sched.game, s,
                     **sched.simulator_options).forward_steps
    return Candidate(sched, steps, n, clock.time, s + EXECUTOR_EXTRA_STATES, inplace)


def _gradient_schedules(n: int, budget: int, skipped: list[str]) -> list[Schedule]:
    """:func:`pebbles.candidates` without the reversible game's (not gradient) schedules,
    and without the reversible optimum where its tables would take more than about a
    second (:func:`pebbles._reversible.reversible_tables_fit`; named in ``skipped``). They
    never win: Treeverse is optimal in the checkpoint game."""
    def keep(entry: Method, opts: dict) -> bool:
        if entry.game(opts) is Game.REVERSIBLE:
            return False
        if entry.name.startswith("reversible") and not reversible_tables_fit(n, budget):
            skipped.append(entry.name)
            return False
        return True

    return candidates(n, budget, keep=keep)
