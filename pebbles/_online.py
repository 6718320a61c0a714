"""Online checkpointing: schedules for runs whose length is known only when they stop.

The forward phase is played one step at a time by :class:`OnlineScheduler`,
which never looks at the final number of steps ``n``; when the run stops, the
reverse sweep reverses each interval between the checkpoints it holds with the
optimal offline schedule (:func:`pebbles.treeverse`, shifted). Phases, chained as
in Walther's Revolve (Online_r2, Online_r3, then a third rule):

* **r <= 2**, after Stumm & Walther, "New algorithms for optimal online
  checkpointing", SIAM J. Sci. Comput. 32(2), 2010: a checkpoint distribution
  that is optimal at every ``n <= beta(S, 2)``. Our own construction
  (docs/online.md proves it): store every state until the ``S`` pebbles are in
  use, then, for ``t = 0, 1, ..., S - 2``, ``S - t`` times free the checkpoint
  right after the ``t`` fixed ones and keep the new state; in the in-place game
  one in-place step ends the phase.
* **r = 3** (both games), after Stumm & Walther's Online_r3 as Walther's Revolve
  plays it: the checkpoints of the configuration that is optimal at
  ``n = beta(S, 3)`` are kept when the front reaches them; in between, the front
  walks in place to 3 cells (in-place game) and then frees the checkpoint below a
  level that can absorb its neighbour without leaving its band, the cheapest one.
  It tracks its distance to the offline optimum exactly and never accepts more
  than 2 steps (in-place) or 3 (checkpoint game); docs/online.md derives this.
* **beyond**: ``'greedy'`` (default) takes the step after which the reverse
  sweep would be cheapest, with exact costs (the rule of Revolve's third online
  phase, Arevolve); ``'wang-moin'`` is Wang, Moin & Iaccarino, "Minimal
  repetition dynamic checkpointing algorithm for unsteady adjoint calculation",
  SIAM J. Sci. Comput. 31(4), 2009: every state is kept; a checkpoint marked
  dispensable is freed (the latest one), otherwise the latest checkpoint is freed
  and the new one gets its level plus one, which marks the older checkpoints of
  lower level dispensable. Its checkpoints start at level 1.

Budget mapping: Revolve counts ``c`` checkpoints including the one holding
``s_0`` but not the working state; our budget ``S`` counts the working state but
not ``s_0``. Both hold ``c + 1 = S + 1`` states, so ``S = c`` and Revolve's
``beta(c, 2) = (c + 1)(c + 2) / 2`` is ``beta(S, 2)`` of our in-place game; in
the checkpoint game (no in-place step) the r = 2 range ends one step earlier,
at ``beta(S, 2) - 1``.

The last state the backward sweep needs is ``s_{n-1}``: when the caller has
made ``k`` advances the front holds ``s_k`` and :meth:`OnlineScheduler.reverse`
reverses ``n = k + 1`` steps (``s_n`` is the state the caller's stopping test
just looked at, and seeds the gradient).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import numpy as np

from ._binomial import BetaTable
from ._budget import check_budget
from ._errors import InfeasibleBudgetError
from ._lowering import SlotBoard, SlotProgram
from ._moves import Game, Move, MoveKind
from ._treeverse import _rows, _tasks, beta, min_steps, treeverse_chunks
from ._validation import check_bool, check_choice, check_int

if TYPE_CHECKING:
    from ._executor import _Replay

__all__ = ["OnlineScheduler", "UntilResult", "online", "online_r2_range", "replay_until"]

_PLACE, _REMOVE, _PAINT, _MOVE, _FORWARD = (
    MoveKind.PLACE, MoveKind.REMOVE, MoveKind.PAINT, MoveKind.MOVE, MoveKind.FORWARD)


def online_r2_range(budget: int, *, inplace: bool = False) -> int:
    """Largest ``n`` for which the online schedule is optimal by construction.

    ``beta(S, 2) = (S + 1)(S + 2) / 2`` in the in-place game, one less in the
    checkpoint game (except at ``S = 0``, where both are 1).

    Parameters
    ----------
    budget : int
        Budget S: most states held besides s_0; ``>= 0``.
    inplace : bool, default False
        The in-place game (else the checkpoint game).

    Returns
    -------
    int
        The largest such ``n``.

    Raises
    ------
    PebblesTypeError
        If ``budget`` is not an integer or ``inplace`` not a bool.
    PebblesValueError
        If ``budget < 0``.

    Examples
    --------
    >>> from pebbles import online_r2_range
    >>> online_r2_range(10, inplace=True), online_r2_range(10)
    (66, 65)
    """
    budget, inplace = check_int("budget", budget, 0), check_bool("inplace", inplace)
    full = (budget + 1) * (budget + 2) // 2
    return full if inplace or budget == 0 else full - 1


class _SlotState:
    """Pickling (and ``copy.deepcopy``) of a class with ``__slots__`` at every protocol:
    protocols 0 and 1 need ``__getstate__``. Every slot is set in ``__init__``."""

    __slots__ = ()

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def __copy__(self) -> _SlotState:
        """A deep copy: a shallow one would share the lists the original goes on
        changing (advancing one would move the other)."""
        return copy.deepcopy(self)


class OnlineScheduler(_SlotState):
    """Forward phase of online checkpointing, one step at a time.

    Parameters
    ----------
    budget : int
        Budget S: most states held besides s_0, the front (working state) included.
    inplace : bool
        Play the in-place game (steps may overwrite their input).
    beyond : {'greedy', 'wang-moin'}
        Rule past the r = 3 phase (``n > beta(S, 3)``, in both games; at
        ``S = 4``: 30 steps in the checkpoint game, 35 in-place):
        ``'greedy'`` takes the step after which the reverse sweep would be
        cheapest (Revolve's third online phase, exact costs); ``'wang-moin'``
        is Wang, Moin & Iaccarino's dynamic checkpointing.

    Notes
    -----
    Calling rules (docs/online.md, "Stop convention"). After ``k`` calls of
    :meth:`advance` the front (the working state) holds ``s_k``. The caller
    then

    1. computes ``s_{k+1}`` from ``s_k`` into a buffer of its own (``s_k``
       is still needed),
    2. tests ``s_{k+1}``: on a stop, ``n = k + 1`` and :meth:`reverse`
       gives the rest of the schedule; ``s_{k+1} = s_n`` is not on the
       board, so the caller keeps it to seed the gradient (``dL/ds_n``)
       before the sweep's first move, ``paint n-1``;
    3. otherwise calls :meth:`advance` and applies its moves: ``remove c``
       frees the buffer of ``s_c``; ``place k+1`` keeps both buffers (the
       one of ``s_k`` stays a checkpoint, or is ``s_0`` when ``k = 0``, and
       ``s_{k+1}`` becomes the front); ``move k+1`` (in-place game only)
       means ``s_k`` is no longer needed, so its buffer may be reused for the
       next step.

    So every state is computed once in the forward phase, and the caller
    holds at most ``budget + 1`` states besides ``s_0``: the ``budget``
    states on the board (front included) and the one being tested (or, in
    the reverse sweep, the seed ``s_n``). ``moves + list(reverse())`` is an
    ordinary move stream for ``n`` steps, equal to ``online(n, budget)``.
    :meth:`reverse` only reads the scheduler: it may be called again (the
    same stream), and :meth:`advance` may be called after it to go on (the
    prefix property: the forward phase does not depend on ``n``).

    A scheduler pickles and copies (``copy.copy`` is a deep copy too) at any
    point of the run (any protocol), to be saved with a job's state and restored
    to go on as it would have; its cost cache is module-level, shared, and not
    saved.

    Examples
    --------
    >>> from pebbles import OnlineScheduler, online, simulate
    >>> sched = OnlineScheduler(3)
    >>> moves = [m for _ in range(6) for m in sched.advance()]   # stop after n = 7
    >>> [str(m) for m in moves[-2:]], sched.checkpoints
    (['remove 3', 'place 6'], (4, 5, 6))
    >>> r = simulate(moves + list(sched.reverse()), 7, "checkpoint", budget=3)
    >>> r.forward_steps, r.peak_pebbles
    (9, 3)
    >>> moves + list(sched.reverse()) == list(online(7, 3))
    True
    """

    __slots__ = ("_budget", "_game", "_beyond", "_cells", "_levels", "_marks", "_t", "_k",
                 "_phase", "_r3", "_cost", "_memo")

    def __init__(self, budget: int, *, inplace: bool = False, beyond: str = "greedy") -> None:
        self._game = Game.INPLACE if check_bool("inplace", inplace) else Game.CHECKPOINT
        self._budget = check_int("budget", budget)
        if self._budget < 0:
            _refuse_any_n(self._budget, self._game)
        self._beyond = check_choice("beyond", beyond, ("greedy", "wang-moin"))
        self._cells: list[int] = []      # pebbled cells, the front last
        self._levels: list[int] = []     # Wang-Moin levels of _cells[:-1]
        self._marks: list[bool] = []     # Wang-Moin dispensable marks
        self._t = 0                      # r = 2: fixed checkpoints
        self._k = 0                      # r = 2: merges done with _t fixed
        self._phase = _R2
        self._r3: _R3 | None = None
        self._cost = _interval_costs(self.game)
        self._memo: list[Any] = []       # greedy rule: best choice before the last two

    @property
    def budget(self) -> int:
        """The states the schedule holds besides ``s_0`` (fixed for the run)."""
        return self._budget

    @property
    def game(self) -> Game:
        """The game it plays: checkpoint, or in-place with ``inplace=True``."""
        return self._game

    @property
    def beyond(self) -> str:
        """The rule past the r = 3 phase: ``"greedy"`` or ``"wang-moin"``."""
        return self._beyond

    def __repr__(self) -> str:
        inplace = ", inplace=True" if self._game is Game.INPLACE else ""
        return (f"OnlineScheduler({self._budget}{inplace}, beyond={self._beyond!r}) at step "
                f"{self.front}")

    @property
    def front(self) -> int:
        """Cell of the current state (the number of advances so far)."""
        return self._cells[-1] if self._cells else 0

    @property
    def checkpoints(self) -> tuple[int, ...]:
        """Pebbled cells besides cell 0, the front included, in order."""
        return tuple(self._cells)

    def advance(self) -> tuple[Move, ...]:
        """Moves that take the front from cell ``f`` to ``f + 1`` (``f``: the advances so far).

        Call it after computing ``s_{f+1}`` and finding that the run goes on;
        apply the moves in order. ``remove c`` frees the checkpoint on cell
        ``c`` (always an older one, never the front). ``place f+1``: the buffer
        of ``s_f`` is kept (as a checkpoint; for ``f = 0`` it is ``s_0``, kept
        anyway) and ``s_{f+1}``, in its own buffer, becomes the front.
        ``move f+1`` (in-place game only): ``s_f`` is dropped, its buffer free
        for reuse, and ``s_{f+1}`` becomes the front. See the class's Notes.

        Returns
        -------
        tuple of Move
            ``(place f+1,)``, ``(move f+1,)`` or ``(remove c, place f+1)``.

        Raises
        ------
        InfeasibleBudgetError
            In the checkpoint game with budget < 2 past n = 2 (a walk needs two
            pebbles), or with budget 0 past n = 1.
        """
        f, cells, s = self.front, self._cells, self.budget
        if s < _need(f, self.game):
            least = _need(1, self.game)  # enough for every n
            raise InfeasibleBudgetError(
                f"budget={s} cannot go past n={f + 1} steps in the {self.game.value} game; "
                f"pass budget >= {least}", least)
        if f == 0 or len(cells) < s:
            cells.append(f + 1)
            return (Move(_PLACE, f + 1),)
        action = self._next_action()
        if action == 0:
            cells[-1] = f + 1
            return (Move(_MOVE, f + 1),)
        gone = cells.pop(action - 1)
        cells.append(f + 1)
        return Move(_REMOVE, gone), Move(_PLACE, f + 1)

    def _next_action(self) -> int:
        """0: in-place step of the front; i >= 1: free ``_cells[i - 1]``, keep the front."""
        if self._phase == _R2:
            action = self._next_r2()
            if action is not None:
                return action
            self._phase = _BEYOND
            if self.budget >= 2:
                self._phase = _R3_PHASE
                self._r3 = _R3(self._cells, self.budget, self.game, self._cost)
        if self._phase == _R3_PHASE:
            level = self._r3.next_action()
            if level is not None:
                return level and self.budget - level
            self._phase = _BEYOND
        if self.beyond == "greedy":
            return _cheapest_next(self._cells, self.budget, self._cost,
                                  self.game is Game.INPLACE, self._memo)
        if self._phase == _BEYOND:
            self._phase = _WANG_MOIN
            self._levels = [1] * (len(self._cells) - 1)
            self._marks = [False] * (len(self._cells) - 1)
        return self._next_wang_moin()

    def _next_r2(self) -> int | None:
        s = self.budget
        if self._t < s - 1 and self._k == s - self._t:
            self._t, self._k = self._t + 1, 0
        if self._t < s - 1:
            self._k += 1
            return self._t + 1
        if self.game is Game.INPLACE and self._t == s - 1:
            self._t = s
            return 0
        return None

    def _next_wang_moin(self) -> int:
        levels, marks = self._levels, self._marks
        if not levels:  # budget 1, in-place: the front walks in place
            return 0
        i = _last_true(marks)
        if i >= 0:
            level = 0
        else:
            i = len(levels) - 1
            level = levels[i] + 1
            for j in range(i):
                if levels[j] < levels[i]:
                    marks[j] = True
        del levels[i], marks[i]
        levels.append(level)
        marks.append(False)
        return i + 1

    def reverse(self) -> Iterator[Move]:
        """Yield the reverse sweep for ``n = front + 1`` steps.

        Call it when the state just computed, ``s_{front+1} = s_n``, met the
        stop test. The sweep starts with ``paint n-1`` (on the front) and never
        places ``s_n``: the caller seeds the gradient from the ``s_n`` it holds
        first. Every interval between held checkpoints is then reversed by the
        optimal offline schedule with the pebbles left, the last interval
        first, within the budget (the caller's ``s_n`` aside: ``budget + 1``
        states besides ``s_0`` at most).

        It only reads the scheduler: a second call yields the same stream, and
        :meth:`advance` may be called afterwards to go on with the run.

        Examples
        --------
        >>> from pebbles import OnlineScheduler
        >>> sched = OnlineScheduler(3)
        >>> for _ in range(6):
        ...     _ = sched.advance()
        >>> [str(m) for m in sched.reverse()][:3]     # n = 7: s_7 is the caller's seed
        ['paint 6', 'remove 6', 'paint 5']
        """
        return _reverse(tuple(self._cells), self.budget, self.game)


_R2, _R3_PHASE, _BEYOND, _WANG_MOIN = range(4)


def _need(f: int, game: Game) -> int:
    """The budget :meth:`OnlineScheduler.advance` from cell ``f`` needs: the front, and in
    the checkpoint game past ``f = 0`` the state it steps from (a walk holds two)."""
    return 1 if (f == 0 or game is Game.INPLACE) else 2


def _refuse_any_n(budget: int, game: Game) -> None:
    """Raise for a negative ``budget`` of a run of unknown length: name the least budget
    that finishes every ``n`` (:func:`_need`'s most; a smaller one >= 0 finishes short
    runs, and :meth:`OnlineScheduler.advance` refuses to go past them)."""
    least = _need(1, game)
    why = " (a walk holds its start and the walking state)" if least > 1 else ""
    raise InfeasibleBudgetError(
        f"budget={budget} is negative; {least} is the least budget that finishes a run of "
        f"any length in the {game.value} game{why}; pass budget={least} or more", least)


class _R3(_SlotState):
    """r = 3 phase, after Stumm & Walther's Online_r3 (Revolve's rule, exact costs).

    Levels ``s = 1..S`` are the intervals from the front backwards (level ``s`` is
    reversed with ``s`` free pebbles); ``d[s]`` is its length. The phase runs from
    the end of the r = 2 phase to ``n = beta(S, 3)``, where every level ``s >= 2``
    holds ``top(s) = beta(s, 2)`` cells (level 1: 3 in the in-place game, 1 in the
    checkpoint game):

    * the checkpoints of that final configuration (the *marks*: ``top(S)``,
      ``top(S) + top(S - 1)``, ...) are kept when the front reaches them and are
      never freed;
    * in the in-place game the front walks in place until level 1 holds 3 cells
      (fewer when the next mark is nearer);
    * otherwise it frees the checkpoint below a level that can absorb its lower
      neighbour without passing its top, the one after which the reverse sweep is
      cheapest (ties: level 2 while it is at its bottom, then the lowest level).

    ``over`` is the online cost minus the offline optimum at ``n = front + 1``;
    the phase ends (None) rather than take a step that would raise it past
    ``limit``. Actions: 0 = in-place step, ``k`` = free the checkpoint between
    levels ``k + 1`` and ``k`` (level ``k + 1`` absorbs level ``k``, lower levels
    move up one level, a new level 1 of one cell appears).
    """

    __slots__ = ("s", "d", "fixed", "marks", "front", "end", "fwd", "over", "limit",
                 "inplace", "top", "cost", "sd", "gain", "b2")

    def __init__(self, cells: list[int], s: int, game: Game,
                 cost: Callable[[int, int], float]) -> None:
        pos = [0, *cells]
        self.s, self.cost = s, cost
        self.inplace = game is Game.INPLACE
        self.d = [0] + [pos[s - j + 1] - pos[s - j] for j in range(1, s + 1)]
        self.fixed = [False] * (s + 1)   # fixed[k]: the checkpoint above level k is a mark
        self.top, marks = _r3_layout(s, game)
        self.front = pos[-1]
        self.marks = [m for m in marks[::-1] if m >= self.front]   # the next one last
        self.end = beta(game, s, 3) - 1
        self.b2 = beta(game, s, 2)
        self.fwd = 3
        self.limit = _R3_LIMIT[game]
        self.over = self.front + sum(cost(self.d[j], j) for j in range(1, s + 1)) \
            - cost(self.front + 1, s)
        self.sd, self.gain = [0.0] * (s + 1), [_INF] * (s + 1)
        self._refresh(s)

    def next_action(self) -> int | None:
        """The next action, applied to the state; None when the phase is over."""
        d, cost, f = self.d, self.cost, self.front
        if f >= self.end or (self.marks and f > self.marks[-1]):
            return None
        rise = 3 if f >= self.b2 else \
            cost(f + 2, self.s) - cost(f + 1, self.s)
        if self.inplace and (not self.marks or d[1] < self.fwd):
            self.over += 1 + cost(d[1] + 1, 1) - cost(d[1], 1) - rise
            d[1] += 1
            self.front = f + 1
            self._refresh(2)
            return 0
        k, delta = self._best()
        if k == 0 or self.over + 1 + delta - rise > self.limit:
            return None
        self.over += 1 + delta - rise
        self._merge(k)
        self._refresh(k + 2)
        return k

    def _best(self) -> tuple[int, float]:
        """The merge to make and its change of the reverse sweep's cost (0: none).

        Candidates, in the order of preference: level 2 absorbs level 1 while level
        2 is at its bottom, then ``k = 2, 3, ...``, then level 2 absorbs level 1.
        The change for ``k`` is ``base + sd[2] + ... + sd[k] + gain[k]``
        (:meth:`_refresh`), summed at C speed.
        """
        d, top, cost = self.d, self.top, self.cost
        base = cost(1, 1) - cost(d[1], 1)
        run = accumulate(self.sd[2:self.s], initial=base)
        next(run)
        totals = [p + g for p, g in zip(run, self.gain[2:self.s], strict=True)]
        least = min(totals, default=_INF)
        best = totals.index(least) + 2 if least < _INF else 0
        landing = self.inplace and bool(self.marks) and self.front == self.marks[-1] - 1
        if d[1] + d[2] < top[2] + (not landing) and not self.fixed[1]:
            one = base + cost(d[1] + d[2], 2) - cost(d[2], 2)
            if one < least or (one == least and d[2] == 3):
                best, least = 1, one
        return best, least

    def _refresh(self, upto: int) -> None:
        """Recompute ``sd[j]`` (level ``j`` takes the cells of level ``j - 1``) and
        ``gain[k]`` (level ``k + 1`` absorbs level ``k``; inf if it may not) for
        ``j, k <= upto``: a merge ``k`` changes levels ``1 .. k + 1`` only."""
        d, top, cost, fixed, sd, gain = self.d, self.top, self.cost, self.fixed, self.sd, self.gain
        for j in range(2, min(upto, self.s - 1) + 1):
            sd[j] = cost(d[j - 1], j) - cost(d[j], j)
            fits = not fixed[j] and d[j] + d[j + 1] <= top[j + 1]
            gain[j] = cost(d[j] + d[j + 1], j + 1) - cost(d[j + 1], j + 1) if fits else _INF

    def _merge(self, k: int) -> None:
        d, fixed, f = self.d, self.fixed, self.front
        d[k + 1] += d[k]
        for j in range(k - 1, 0, -1):
            d[j + 1], fixed[j + 1] = d[j], fixed[j]
        d[1], fixed[1] = 1, bool(self.marks) and f == self.marks[-1]
        if fixed[1]:
            self.marks.pop()
        self.front = f + 1
        self.fwd = min(3, self.marks[-1] - f) if self.marks else 3


def _r3_layout(s: int, game: Game) -> tuple[list[int], list[int]]:
    """The r = 3 phase's level tops (``[0, level 1, ..., level s]``: ``beta(j, 2)``,
    level 1: 3 in-place, 1 in the checkpoint game) and its marks, the checkpoints of
    the configuration optimal at ``beta(s, 3)``, in the order the front meets them."""
    table = BetaTable(game)
    top = [0, 3 if game is Game.INPLACE else 1] + [table.beta(j, 2) for j in range(2, s + 1)]
    return top, list(accumulate(top[:1:-1]))


def r3_choices(budget: int, most: int) -> tuple[int, list[int]] | None:
    """The r = 3 phase of the checkpoint game as a list: ``(cell, positions)``, where
    the phase's ``j``-th step brings the front to ``cell + j`` and frees the held
    checkpoint at ``positions[j]`` (an index into :attr:`OnlineScheduler.checkpoints`);
    None when the phase takes more than ``most`` steps. The choices depend on the
    budget only, so they can be made ahead (:mod:`pebbles._jax_while` reads them
    from a table instead of judging each board in the compiled loop).

    Examples
    --------
    >>> from pebbles._online import r3_choices
    >>> r3_choices(3, 100)    # fronts 9 .. 15 (beta(3, 3) = 16)
    (9, [1, 1, 0, 1, 1, 1, 1])
    """
    table = BetaTable(Game.CHECKPOINT)
    if budget < 2 or table.beta(budget, 3) - table.beta(budget, 2) > most:
        return None
    host, positions, cell = OnlineScheduler(budget), [], 0
    while len(positions) <= most:
        held = host.checkpoints
        moves = host.advance()
        if host._phase == _R3_PHASE:
            cell = cell or host.front
            positions.append(held.index(moves[0].a))
        elif host._phase != _R2:
            return cell, positions
    return None


_INF = float("inf")

#: Most steps above the offline optimum the r = 3 phase accepts (docs/online.md).
_R3_LIMIT = {Game.INPLACE: 2, Game.CHECKPOINT: 3}


def _interval_costs(game: Game) -> Callable[[int, int], float]:
    """``cost(d, s)``: fewest steps to reverse ``d`` cells with ``s`` free pebbles.

    A module-level function, so that a scheduler holding it pickles (by name), and
    one cache per game, shared by every scheduler.
    """
    return _inplace_cost if game is Game.INPLACE else _checkpoint_cost


@lru_cache(maxsize=1 << 16)
def _inplace_cost(d: int, s: int) -> float:
    """``cost(d, s)`` of the in-place game (:func:`_interval_costs`)."""
    if d <= 1:
        return 0
    return min_steps(Game.INPLACE, d, s) if s else _INF


@lru_cache(maxsize=1 << 16)
def _checkpoint_cost(d: int, s: int) -> float:
    """``cost(d, s)`` of the checkpoint game (:func:`_interval_costs`)."""
    if d <= 1:
        return 0
    if s == 0 or (s == 1 and d > 2):
        return _INF
    return min_steps(Game.CHECKPOINT, d, s)


def _cheapest_next(cells: list[int], s: int, cost: Callable[[int, int], float],
                   inplace: bool, memo: list[Any] | None = None) -> int:
    """The step after which the reverse sweep is cheapest (a full board).

    0 is an in-place step of the front; ``i >= 1`` frees ``cells[i - 1]``: its two
    intervals merge (the merged one reversed with ``s - i + 1`` pebbles) and every
    later interval gets one pebble more. Ties go to the latest checkpoint, an
    in-place step last.

    Only the last two choices read the last two intervals; every earlier delta
    moves by the same amount when those change. ``memo`` (a list, filled here)
    keeps the best earlier choice for the intervals before the last two, so the
    rule's usual step -- free the checkpoint before the front, which changes only
    the last two -- costs O(1) instead of O(S). Costs are integers (or inf), so
    the sums are exact and the choice is that of the full scan.
    """
    k = len(cells)
    best, best_delta, tail = _scan(cells, s, cost, k - 1, max(k - 3, 0), 0.0)
    if tail != float("inf"):
        key = tuple(cells[:k - 2])
        memo = [] if memo is None else memo
        if not memo or memo[0] != key:
            memo[:] = [key, _scan(cells, s, cost, k - 3, 0, 0.0)[:2]]
        i, delta = memo[1]
        if i and delta - tail < best_delta:
            best, best_delta = i, delta - tail
    else:  # gained is inf: the earlier deltas are -inf or NaN, the scan decides
        i, delta, _ = _scan(cells, s, cost, k - 3, 0, tail)
        if i and delta < best_delta:
            best, best_delta = i, delta
    front = cells[-1] - (cells[-2] if k >= 2 else 0)
    if inplace and cost(front + 1, s - k + 1) - cost(front, s - k + 1) < best_delta:
        best = 0
    return best


def _scan(cells: list[int], s: int, cost: Callable[[int, int], float], top: int, stop: int,
          gained: float) -> tuple[int, float, float]:
    """Deltas of freeing ``cells[i - 1]`` for ``i = top, top - 1, ..., stop + 1``:
    (best i, or 0 when none is below inf; its delta; ``gained`` plus the cost each
    interval ``i`` gains from one pebble more)."""
    best, best_delta = 0, float("inf")
    for i in range(top, stop, -1):
        lo = cells[i - 2] if i >= 2 else 0
        a, b = cells[i - 1] - lo, cells[i] - cells[i - 1]
        delta = cost(a + b, s - i + 1) - cost(a, s - i + 1) - cost(b, s - i) - gained
        if delta < best_delta:
            best, best_delta = i, delta
        gained += cost(b, s - i) - cost(b, s - i + 1)
    return best, best_delta, gained


def _last_true(flags: list[bool]) -> int:
    for i in range(len(flags) - 1, -1, -1):
        if flags[i]:
            return i
    return -1


def _reverse(cells: tuple[int, ...], budget: int, game: Game) -> Iterator[Move]:
    if not cells:
        yield Move(_PAINT, 0)
        return
    yield Move(_PAINT, cells[-1])
    yield Move(_REMOVE, cells[-1])
    bounds = (0, *cells)
    for j in range(len(cells) - 1, -1, -1):
        base, m = bounds[j], bounds[j + 1] - bounds[j]
        s = min(budget - j, m)  # Treeverse (:func:`pebbles.treeverse`) from cell ``base``
        yield from _tasks(_rows(m, s, game), [(base, m, s)])
        if base:
            yield Move(_REMOVE, base)


def online(n: int, budget: int, *, inplace: bool = False,
           beyond: str = "greedy") -> Iterator[Move]:
    """Yield the moves the online scheduler plays when the run stops after ``n`` steps.

    The forward phase does not depend on ``n``: for ``n' > n`` the stream for
    ``n'`` starts with the forward-phase moves of the stream for ``n``.

    Parameters
    ----------
    n : int
        Steps the run took, ``n >= 1``.
    budget : int
        Budget S (working state included, s_0 not).
    inplace : bool
        Play the in-place game.
    beyond : {'greedy', 'wang-moin'}
        Rule past the r = 3 phase, ``n > beta(S, 3)``, in both games (see
        :class:`OnlineScheduler`).

    Examples
    --------
    >>> from pebbles import min_forward_steps, online, simulate
    >>> r = simulate(online(60, 10, inplace=True), 60, "inplace", budget=10)
    >>> r.forward_steps == min_forward_steps(60, 10, "inplace")
    True
    >>> simulate(online(1000, 10), 1000, "checkpoint", budget=10).peak_pebbles
    10
    """
    n, budget = check_int("n", n, 1), check_int("budget", budget)
    check_budget(n, budget, Game.INPLACE if check_bool("inplace", inplace) else Game.CHECKPOINT)
    return _online(n, OnlineScheduler(budget, inplace=inplace, beyond=beyond))


@dataclass(frozen=True, slots=True)
class UntilResult:
    """What :func:`replay_until` computed.

    Attributes
    ----------
    n : int
        Steps the run took (``done`` was first true for ``s_n``).
    loss : float or None
        ``loss(s_n)`` when ``loss`` was given.
    grad_s0, grad_theta : state, object or None
        ``dL/ds_0`` and the sum of the ``theta_bar_i`` (``None`` if all were ``None``).
    forward_steps : int
        Step calls: ``n`` in the forward phase (the last one makes ``s_n``) plus the
        reverse sweep's; in all, the online schedule's steps (as the simulator
        counts them) plus one, the ``forward_steps`` of
        ``pebbles.lower(pebbles.online(n, budget), n)`` (which adds the step to
        ``s_n`` that the stream never places).
    backward_steps : int
        Calls of ``backward``.
    """

    n: int
    loss: float | None
    grad_s0: Any
    grad_theta: Any
    forward_steps: int
    backward_steps: int


def while_budget(budget: object, who: str, what: tuple[str, str]) -> int:
    """``budget`` of a loop of unknown length (``who``; ``what`` it stores, singular and
    plural), checked:
    an integer >= 2, since in the checkpoint game a walk holds its start and the walking
    state, so reversing a run of unknown length needs two stored ones."""
    budget = check_int("budget", budget)
    least = _need(1, Game.CHECKPOINT)  # OnlineScheduler's rule past the first step
    if budget < least:
        raise InfeasibleBudgetError(
            f"budget={budget} is too small for {who}: in the checkpoint game a walk holds its "
            f"start and the walking {what[0]}, so reversing a run of unknown length needs "
            f"{least} stored {what[1]}; pass budget >= {least}", least)
    return budget


def replay_until(
    step: Callable[[int, Any], Any],
    backward: Callable[[int, Any, Any], tuple[Any, Any]],
    loss_grad: Callable[[Any], Any],
    s0: Any,
    done: Callable[[int, Any], bool],
    budget: int,
    *,
    max_steps: int | None = None,
    loss: Callable[[Any], float] | None = None,
    running_loss: Callable[[int, Any], float] | None = None,
    running_loss_grad: Callable[[int, Any], Any] | None = None,
    beyond: str = "greedy",
    check_finite: bool = False,
    check_states: bool = False,
    progress: bool = False,
) -> UntilResult:
    """Run ``s_{i+1} = step(i, s_i)`` until ``done(i, s_i)``, then return the gradient.

    The forward phase keeps the states the online scheduler says (at most
    ``budget`` besides ``s_0``, plus the state just computed). At the stop after
    ``n`` steps, the executor of :func:`pebbles.replay` runs the rest of
    ``pebbles.online(n, budget)`` (checkpoint game) from the kept states: the
    schedule's forward part is the one that ran, and its reverse sweep reverses
    each interval between kept states with the optimal offline schedule. Every
    callback is called and checked as :func:`pebbles.replay` does it.

    Memory: the states (at most ``budget + 1`` besides ``s_0``) and, from the stop
    on, the reverse sweep in pieces (subtrees of at most 256 steps, each lowered
    and run at once), whose memory is bounded independently of ``n``: 0.4 to 1.5 MB
    at budget 5 for n = 2e3 to 6e5 (docs/online.md, "Generic executor").

    Its first arguments come in another order than :func:`pebbles.replay`'s
    (``replay(moves, n, s0, step, backward, loss_grad)``); pass them by
    keyword, as in the example, to keep the two apart.

    Parameters
    ----------
    step, backward, loss_grad, loss, running_loss, running_loss_grad
        As in :func:`pebbles.replay` (``step`` must return a new state; states
        are NumPy arrays, not Python floats). The running loss
        ``sum_{i=1..n} l_i(s_i)`` runs to the stop ``n``; it is evaluated in the
        reverse sweep, as in :func:`pebbles.replay`, so ``done`` cannot read it.
    s0 : state
        The initial state; ``done`` is not asked about it.
    done : callable ``done(i, s_i) -> bool``
        Stopping test, called for ``i = 1, 2, ...``; the first ``i`` for which it
        is true is ``n``. It must return one truth value (a bool or a 0-d array)
        and only read ``s_i``: the reverse sweep recomputes states without asking
        ``done``, so a state it changed would make the gradient wrong
        (``check_states=True`` catches that).
    budget : int
        States kept besides ``s_0`` (>= 2).
    max_steps : int, optional
        Stop at ``n = max_steps`` even if ``done`` never said so.
    beyond : {'greedy', 'wang-moin'}
        See :class:`OnlineScheduler`.
    check_finite : bool
        As in :func:`pebbles.replay`: raise :class:`NonFiniteError` if a callback
        returns NaN or infinity (states, gradients, ``theta_bar``, the loss).
    check_states : bool
        Debug mode, as in :func:`pebbles.replay`: name the callback and step that
        changed a state it was only given to read (``done`` included; slower).
    progress : bool
        Show a tqdm progress bar (``pip install "pebble-games[progress]"``; without
        tqdm a warning says so once), counting the steps until the stop, then the
        reverse sweep's slot operations; it has no total, since ``n`` is not known
        in advance.

    Returns
    -------
    UntilResult

    Raises
    ------
    CallbackError
        A callback (``done`` included) raised; the message names the callback and
        the step, numbered from ``s_0`` whichever phase it ran in. Every state
        held has been dropped.
    PebblesTypeError
        A callback returned a value of the wrong structure, shape or dtype, or
        ``done`` returned no single truth value.
    PebblesValueError
        ``step`` returned its input or a state still held, or (with
        ``check_states``) a callback changed a state it was only given to read; ``done``
        returned NaN or a complex number.
    NonFiniteError
        With ``check_finite``, a callback returned NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import replay_until
    >>> r = replay_until(step=lambda i, s: 1.5 * s, backward=lambda i, s, g: (1.5 * g, None),
    ...                  loss_grad=np.ones_like, s0=np.ones(2),
    ...                  done=lambda i, s: s[0] > 100, budget=3)
    >>> r.n, r.grad_s0          # 1.5**12 > 100 > 1.5**11
    (12, array([129.74633789, 129.74633789]))
    """
    from ._executor import _callbacks, _check_callbacks, _guard, _progress_bar, _Replay

    budget = while_budget(budget, "replay_until", ("state", "states"))
    if max_steps is not None:
        max_steps = check_int("max_steps", max_steps, 1)
    check_finite = check_bool("check_finite", check_finite)
    check_states = check_bool("check_states", check_states)
    progress = check_bool("progress", progress)
    sched = OnlineScheduler(budget, beyond=beyond)
    _check_callbacks(s0, "replay_until", step=step, backward=backward, loss_grad=loss_grad,
                     done=done, loss=loss, running_loss=running_loss,
                     running_loss_grad=running_loss_grad)
    r = _Replay(0, 2, s0, _callbacks(step, backward, loss_grad, loss=loss, done=done,
                                     running_loss=running_loss,
                                     running_loss_grad=running_loss_grad),
                check_finite, None, check_states)  # slots: the stop's program sizes them
    r.offers = False  # no step_into here
    bar = _progress_bar(None, progress)
    try:
        _guard(r, s0, lambda: _reverse_until(r, _forward_until(r, sched, max_steps, bar),
                                             sched, bar))
    finally:
        if bar is not None:
            bar.close()
    result = UntilResult(r.n, r.loss, r.gbar, r.theta, r.steps, r.paints)
    r.release()
    return result


def _forward_until(r: _Replay, sched: OnlineScheduler, max_steps: int | None,
                   bar: Any) -> dict[int, Any]:
    """Step through ``r`` until ``done``; return the states kept, ``{cell: state}``,
    ``s_n`` included. ``bar``: a progress bar to count the steps on, or None."""
    s = r.slots[0]
    kept, i = {0: s}, 0
    while True:
        nxt = r.fresh(i, s, 1)
        i += 1
        if bar is not None:
            bar.update(1)
        if r.truth("done", i, nxt) or i == max_steps:
            kept[i] = r.keep(nxt)
            return kept
        for kind, a, _ in sched.advance():
            if kind == _REMOVE:
                r.forget(kept.pop(a))
        kept[i] = s = r.keep(nxt)


def _reverse_until(r: _Replay, kept: dict[int, Any], sched: OnlineScheduler,
                   bar: Any) -> None:
    """Run the rest of ``online(n, budget)`` through ``r`` from the states ``kept``.

    Piece by piece, so that its memory is bounded independently of ``n``: the seed and
    ``paint n-1`` first (:func:`_seed_program`), then each interval between kept
    states, last first, as :func:`_reverse` reverses it, streamed by
    :func:`pebbles._treeverse.treeverse_chunks` (subtrees of at most 256 steps, and the
    moves between them), each piece lowered from the board the pieces before it left
    (:class:`pebbles._lowering.SlotBoard`). The moves, so the calls of ``step`` and
    ``backward``, are those of ``online(n, budget)``.
    """
    cells = sorted(kept)  # 0, the checkpoints (the front n - 1 last), n
    budget = min(sched.budget, cells[-1])  # no more slots than the n steps can fill
    board = SlotBoard(cells[-1], Game.CHECKPOINT, {0: 0}, list(range(budget + 1, 0, -1)))
    r.resume(_seed_program(board, cells, budget + 2), kept)
    bounds = cells[:-1]
    for j in range(len(bounds) - 2, -1, -1):
        base, d = bounds[j], bounds[j + 1] - bounds[j]
        for chunk in treeverse_chunks(d, min(budget - j, d)):
            moves = chunk + [0, base, base]
            moves[chunk[:, 2] < 0, 2] = -1
            r.run(board.lower(moves), bar)
        if base:
            r.run(board.lower(np.array([[_REMOVE, base, -1]])), bar)


def _seed_program(board: SlotBoard, cells: list[int], nslots: int) -> SlotProgram:
    """The slot program :meth:`_Replay.resume` starts the reverse sweep with: the seed
    at ``s_n``, then ``paint n-1`` on the front, lowered from ``board``.

    Its forward part (walks from each kept cell of ``cells``, ``0 .. n``, to the next,
    and the step to ``s_n`` that the lowering adds for the seed) only tells ``resume``
    where the kept states go; ``resume`` runs a program from its seed on.
    """
    n = cells[-1]
    moves = [[_FORWARD, a, b] for a, b in zip(cells[:-2], cells[1:-1], strict=True)]
    moves.append([_PAINT, n - 1, -1])
    if n > 1:
        moves.append([_REMOVE, n - 1, -1])
    return SlotProgram(board.lower(np.array(moves, dtype=np.int64)), n, Game.CHECKPOINT,
                       nslots, forward_steps=n, backward_steps=1, peak_states=len(cells) - 1)


def _online(n: int, sched: OnlineScheduler) -> Iterator[Move]:
    for _ in range(n - 1):
        yield from sched.advance()
    yield from sched.reverse()
