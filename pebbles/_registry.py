"""The schedule registry: every schedule of the library, picked by name.

``pebbles.schedule("treeverse", n, budget=10)`` returns a :class:`Schedule`, a
small frozen value naming the method, its options, its game and its budget. It
can be iterated any number of times for its moves, encoded, simulated (the one
referee, :func:`pebbles.simulate`) and lowered to a slot program
(:func:`pebbles.lower`). The command line, the planner, the solvers, the
drawing code and the JAX and PyTorch adapters all pick schedules here.

The methods are the paper's (Liu & Xu, Algorithms 2 and 3), the optimal ones
(binomial checkpointing; the reversible optimum) and the baselines; see
:func:`methods` for the list and :func:`describe` for one method's options.
"""

from __future__ import annotations

import difflib
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._background import background_two_level
from ._baselines import periodic, recompute_all, store_all
from ._bennett import (
    bennett,
    bennett_encoded,
    bennett_gradient,
    bennett_gradient_encoded,
    bennett_pebbles,
    bennett_steps,
    best_bennett,
    reversible_gradient,
)
from ._budget import min_pebbles, refuse_negative
from ._encoded import mirror_encoded
from ._errors import InfeasibleBudgetError, PebblesTypeError, PebblesValueError
from ._lowering import SlotProgram, lower
from ._moves import Game, Move, encode
from ._online import online
from ._optimal import min_forward_steps
from ._reversible import reversible_encoded, reversible_min_steps, reversible_optimal
from ._simulator import SimulationResult, simulate
from ._treeverse import _paper_steps, paper_tau, treeverse, treeverse_encoded, treeverse_paper
from ._twolevel import periodic_disk, periodic_disk_moves, two_level
from ._validation import (
    a_kind,
    check_bool,
    check_callable,
    check_cost,
    check_disk_budget,
    check_int,
    check_steps,
)

__all__ = ["Method", "Schedule", "candidates", "describe", "fewest_moves", "gradient_methods",
           "methods", "most_moves", "predicted_moves", "predicted_steps", "register",
           "schedule"]


@dataclass(frozen=True, slots=True)
class Method:
    """One registered method.

    Attributes
    ----------
    name : the registry name (``'treeverse'``).
    make : ``make(n, **options) -> iterator of Move``; gets ``budget`` when the
        method takes one.
    game : the game of its moves, given its options.
    options : option names and defaults (``None``: required, but for the options
        whose ``None`` has a meaning of its own: the least ``tau``, an unbounded
        ``disk_budget``).
    required : the options a call must give (a property, from ``options``).
    need : the most pebbles its moves hold, given ``n`` and its options, when
        known without playing them (checked against a budget given to a method
        that takes none).
    summary : one line for listings.
    encoded : optional fast ``encoded(n, **options) -> int64 array``.
    fit : ``fit(n, budget)``: the option sets with which the method runs within
        ``budget`` (what :func:`candidates` offers); ``None``: never offered.
    steps : ``steps(n, budget, **options)``: its forward steps without playing
        the moves (closed forms and recursions), for the planner; it may return
        ``None`` where counting would take too long.
    moves : ``moves(n, budget, **options)``: the length of its stream without
        playing it (what the command line may hold in memory).
    fewest : ``fewest(n, budget, **options)``: a lower bound on that length where
        no formula gives it (:func:`fewest_moves`).
    uses_disk : its moves keep states on disk (two-level): executors need a store.
    """

    name: str
    make: Callable[..., Iterator[Move]]
    game: Callable[[Mapping[str, Any]], Game]
    options: tuple[tuple[str, Any], ...]
    takes_budget: bool
    summary: str
    need: Callable[..., int | None] | None = None
    encoded: Callable[..., np.ndarray] | None = None
    fit: Callable[[int, int], list[dict[str, Any]]] | None = None
    steps: Callable[..., int | None] | None = None
    uses_disk: bool = False
    moves: Callable[..., int] | None = None
    fewest: Callable[..., int] | None = None

    @property
    def required(self) -> tuple[str, ...]:
        """The options a call must give: those without a default."""
        return tuple(k for k, v in self.options if v is None and k not in _OPTIONAL)


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the registry (used by the modules that define schedules)."""
    _METHODS[method.name] = method
    return method


def methods() -> tuple[str, ...]:
    """Names of the registered methods.

    Examples
    --------
    >>> import pebbles
    >>> "treeverse" in pebbles.methods()
    True
    """
    return tuple(_METHODS)


def gradient_methods(*, disk: bool = False) -> tuple[str, ...]:
    """Methods whose schedules compute a gradient over stored states.

    Those of the checkpoint and in-place games (the reversible game's moves are
    not a gradient of a ``step`` that forgets its input); with ``disk=True`` also
    the two-level methods, which need a disk store (``replay(..., store=)``).

    Parameters
    ----------
    disk : bool, default False
        Include the two-level (disk) methods.

    Returns
    -------
    tuple of str
        Method names, in registration order.

    Raises
    ------
    PebblesTypeError
        If ``disk`` is not a bool.

    Examples
    --------
    >>> import pebbles
    >>> names = pebbles.gradient_methods()
    >>> "treeverse" in names, "reversible-optimal" in names
    (True, False)
    >>> [m for m in pebbles.gradient_methods(disk=True) if pebbles.describe(m).uses_disk]
    ['two-level', 'periodic-disk']
    """
    disk = check_bool("disk", disk)
    return tuple(name for name, m in _METHODS.items()
                 if m.game(dict(m.options)) is not Game.REVERSIBLE and (disk or not m.uses_disk))


def check_gradient_method(method: str, options: dict[str, Any], who: str) -> None:
    """Refuse, before a schedule is made, a method whose moves are not a gradient over
    states held in memory (reversible game, two-level disk schedules), for the
    adapter ``who`` (``"checkpointed_scan"``), naming the methods it takes; an unknown
    name is told those too (:func:`describe` would list every method, these included)."""
    if not isinstance(method, str):
        raise PebblesTypeError(f"method={method!r} must be a method name such as 'treeverse'")
    takes = (f"{who} replays checkpoint-game or in-place-game schedules over states held in "
             f"memory: pass method='treeverse' (optimal) or one of "
             f"{', '.join(map(repr, gradient_methods()))}")
    if method not in _METHODS:
        hint = _did_you_mean(method, gradient_methods())
        raise PebblesValueError(f"method={method!r} is not a method name; {hint}{takes}")
    entry = _METHODS[method]
    if entry.uses_disk:
        kind = "is a two-level method, which keeps states on disk"
    elif entry.game(dict(entry.options) | options) is Game.REVERSIBLE:
        kind = ("plays the reversible game, whose moves uncompute states instead of storing "
                "the states a gradient takes its VJPs at")
    else:
        return
    raise PebblesValueError(f"method={method!r} {kind}; {takes}")


def candidates(n: int, budget: int, *,
               keep: Callable[[Method, dict[str, Any]], bool] | None = None) -> list[Schedule]:
    """The registered methods with a fit rule that run ``n`` steps within ``budget``, as
    schedules, with the options their rule picks.

    A method's fit rule (:attr:`Method.fit`) names the options with which it runs within
    a budget: treeverse (both games), treeverse-paper, bennett, bennett-gradient,
    reversible-optimal, reversible-gradient, store-all and recompute-all have one. The
    others are never offered, even where they fit: online plays runs of unknown length
    (for a known ``n`` treeverse does at least as well), periodic needs its ``every``,
    two-level and periodic-disk need a disk and its costs. The one enumeration behind
    ``pebbles compare`` and :func:`pebbles.plan`.
    ``keep(method, options)``, when given, decides before a schedule is made
    (some cost time to set up) whether it is offered.

    Parameters
    ----------
    n : int
        Number of steps, from 1 to 2^63 - 1.
    budget : int
        Budget S, ``>= 0``.
    keep : callable, optional
        ``keep(method, options) -> bool`` with the :class:`Method` and the option
        dict; ``None`` offers every fitting method.

    Returns
    -------
    list of Schedule
        One schedule for each method and option set that fits, in registration order.

    Raises
    ------
    PebblesTypeError
        If ``n`` or ``budget`` is not an integer, or ``keep`` is neither None nor
        callable.
    PebblesValueError
        If ``n < 1``, ``n >= 2^63`` or ``budget < 0``.

    Examples
    --------
    >>> import pebbles
    >>> [str(s) for s in pebbles.candidates(8, 3)][:2]
    ['treeverse -n 8 --budget 3', 'treeverse -n 8 --budget 3 --inplace']
    """
    n = check_steps(n)
    budget = check_int("budget", budget, 0)
    if keep is not None:
        check_callable("keep", keep, "keep(method, options) -> bool, or keep=None")
    out = []
    for entry in _METHODS.values():
        for opts in entry.fit(n, budget) if entry.fit is not None else ():
            if keep is None or keep(entry, opts):
                out.append(schedule(entry.name, n, budget=budget, **opts))
    return out


def predicted_steps(s: Schedule) -> int | None:
    """Forward steps of ``s`` from its method's formula (``None`` if it has none).

    Parameters
    ----------
    s : Schedule
        A schedule made by :func:`pebbles.schedule` (or :func:`candidates`).

    Returns
    -------
    int or None
        The forward steps, without making the moves: closed forms, and recursions
        that count each distinct call once (treeverse-paper's, which is ``None``
        where it would take more than about half a second).

    Raises
    ------
    PebblesTypeError
        If ``s`` is not a :class:`Schedule`.

    Examples
    --------
    >>> import pebbles
    >>> s = pebbles.schedule("treeverse", 20, budget=4)
    >>> pebbles.predicted_steps(s), pebbles.simulate(s, 20).forward_steps
    (40, 40)
    >>> pebbles.predicted_steps(pebbles.schedule("online", 20, budget=4)) is None
    True
    """
    entry = _entry_of(s, "predicted_steps")
    if entry.steps is None:
        return None
    return entry.steps(s.n, s.budget, **dict(s.options))


def predicted_moves(s: Schedule) -> int | None:
    """Moves of the stream of ``s`` from its method's formula (``None`` if it has none)."""
    entry = _entry_of(s, "predicted_moves")
    if entry.moves is None:
        return None
    return entry.moves(s.n, s.budget, **dict(s.options))


def most_moves(s: Schedule) -> int | None:
    """An upper bound on the length of the stream of ``s``, without making its moves:
    its exact length (the method's formula), else ``n`` paints and at most a step-taking
    move and a remove per forward step (:func:`predicted_steps`; in the reversible game
    every move is a step); ``None`` where neither formula is known (online, two-level,
    periodic-disk; treeverse-paper where counting its steps would take too long).

    Parameters
    ----------
    s : Schedule
        A schedule made by :func:`pebbles.schedule` (or :func:`candidates`).

    Returns
    -------
    int or None
        The bound on the number of moves.

    Raises
    ------
    PebblesTypeError
        If ``s`` is not a :class:`Schedule`.

    Examples
    --------
    >>> import pebbles
    >>> s = pebbles.schedule("bennett-gradient", 100, k=2)
    >>> pebbles.most_moves(s) == len(s.encode())
    True
    """
    exact, steps = predicted_moves(s), predicted_steps(s)
    if exact is not None or steps is None:
        return exact
    return steps if s.game is Game.REVERSIBLE else 2 * steps + s.n


def fewest_moves(s: Schedule) -> int:
    """A lower bound on the length of the stream of ``s``, without making its moves.

    Its exact length where a formula gives it (:func:`most_moves`); else the method's
    own bound (online: about ``5 n`` moves in the checkpoint game, ``3 n`` in-place; its
    streams are longer by at most ``S`` moves in the checkpoint game, under 1% once
    ``n > 20 S``, and by a third to two thirds in-place); else ``n`` paints and a move
    pebbling each cell ``1..n-1`` (``2 n - 1``), or in the reversible game a move a
    forward step.

    Parameters
    ----------
    s : Schedule
        A schedule made by :func:`pebbles.schedule` (or :func:`candidates`).

    Returns
    -------
    int
        At most ``len(s.encode())``.

    Raises
    ------
    PebblesTypeError
        If ``s`` is not a :class:`Schedule`.

    Examples
    --------
    >>> import pebbles
    >>> s = pebbles.schedule("online", 1000, budget=10)
    >>> pebbles.fewest_moves(s), len(s.encode())
    (4966, 4976)
    """
    entry = _entry_of(s, "fewest_moves")
    exact = predicted_moves(s)
    if exact is not None:
        return exact
    if entry.fewest is not None:
        return entry.fewest(s.n, s.budget, **dict(s.options))
    if s.game is Game.REVERSIBLE:
        return max(s.n, predicted_steps(s) or 0)
    return 2 * s.n - 1


def _online_fewest(n: int, budget: int, inplace: bool, beyond: str) -> int:
    """A lower bound on an online stream's length. Not knowing ``n``, its forward sweep
    pebbles cells ``1..n-1`` one move each; at its end at most ``budget`` are held, so
    the reverse sweep pebbles at least ``n - 1 - budget`` again; there are ``n`` paints;
    and in the checkpoint game every pebble made past ``budget`` is removed first. It
    holds for either ``beyond`` rule (taken, as every option is, and not used)."""
    made = n - 1 + max(n - 1 - budget, 0)
    removes = 0 if inplace else max(made - budget, 0)
    return made + removes + n


def _entry_of(s: object, who: str) -> Method:
    """The registry entry of the Schedule ``s``, or an error naming ``who`` for any other
    value (the formulas are the methods', so a plain move stream has none)."""
    if not isinstance(s, Schedule):
        raise PebblesTypeError(
            f"{who}(s={s!r:.60}) needs a pebbles.Schedule, got {a_kind(s)}; pass "
            f"pebbles.schedule(method, n, ...), or count a move stream's steps with "
            f"pebbles.simulate(moves, n).forward_steps")
    return _METHODS[s.method]


def _check_fits(s: Schedule) -> None:
    """Refuse to encode a stream larger than the machine's memory (24 bytes a move; a
    method without a formula for its moves has at least ``n``: one a cell)."""
    moves = predicted_moves(s)
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return
    least = s.n if moves is None else moves
    if 24 * least > ram:
        count = f"at least {least}" if moves is None else str(moves)
        raise PebblesValueError(
            f"{s} has {count} moves: encoding them takes {24 * least / 2**30:,.1f} GiB, more "
            f"than this machine's {ram / 2**30:,.1f} GiB of memory; iterate the schedule to "
            f"stream its moves, or take its forward steps from a formula "
            f"(pebbles.min_forward_steps, pebbles compare)")


def _did_you_mean(name: str, names: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` where ``name`` in lower case with dashes is one of
    ``names`` (``Treeverse``, ``store_all``) or close to one (``trevers``, by
    :func:`difflib.get_close_matches`), else ``""``."""
    names = list(names)
    near = name.strip().lower().replace("_", "-")
    if near not in names:
        close = difflib.get_close_matches(near, names, n=1)
        near = close[0] if close else ""
    return f"did you mean {near!r}? " if near else ""


def describe(name: str) -> Method:
    """The registry entry of method ``name`` (options, game, summary).

    Parameters
    ----------
    name : str
        A registered method name (:func:`methods`).

    Returns
    -------
    Method
        The entry.

    Raises
    ------
    PebblesTypeError
        If ``name`` is not a str.
    PebblesValueError
        If ``name`` is not a registered method (the error suggests a close name).

    Examples
    --------
    >>> import pebbles
    >>> m = pebbles.describe("bennett")
    >>> m.options, m.takes_budget
    ((('k', 2), ('uncompute', True)), False)
    >>> pebbles.describe("treeverse-paper").required  # tau's None: the least tau
    ('delta',)
    >>> m.game(dict(m.options)).value
    'reversible'
    """
    return _entry(name, "name")


def _entry(name: object, arg: str = "method") -> Method:
    """The entry of method ``name``, else an error naming the argument ``arg`` (``name``
    for :func:`describe`, ``method`` for :func:`schedule`)."""
    if not isinstance(name, str):
        raise PebblesTypeError(f"{arg}={name!r} must be a method name (a str), got "
                               f"{type(name).__name__}; use one of {', '.join(_METHODS)}")
    if name not in _METHODS:
        hint = _did_you_mean(name, _METHODS)
        raise PebblesValueError(
            f"{arg}={name!r} is not a schedule; {hint}use one of {', '.join(_METHODS)}")
    return _METHODS[name]


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule picked by name: iterate it (any number of times) for its moves.

    Attributes
    ----------
    method : the registry name.
    n : number of steps.
    game : the game its moves are played in.
    budget : the budget it was asked for (``None`` for methods that take none
        and were given none).
    options : the method's options besides ``budget``, as sorted pairs of plain Python
        values (``disk_budget=math.inf`` as ``None``).

    Make one with :func:`pebbles.schedule`. One built directly is checked the same way
    (the method name, ``n``, the budget, the options) and its ``game`` must be the one its
    options imply; a contradiction raises :class:`PebblesValueError`.

    Examples
    --------
    >>> import pebbles
    >>> s = pebbles.schedule("treeverse", 20, budget=4)
    >>> s.game, s.budget, len(list(s)) == len(list(s))
    (<Game.CHECKPOINT: 'checkpoint'>, 4, True)
    >>> s.simulate().forward_steps
    40
    >>> str(s)
    'treeverse -n 20 --budget 4'
    """

    method: str
    n: int
    game: Game
    budget: int | None
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        entry = _entry(self.method)
        n = check_steps(self.n)
        opts = _options(entry, _pairs(self.options))
        if entry.takes_budget and self.budget is None:
            raise PebblesTypeError(f"method {self.method!r} needs budget=NUMBER_OF_STATES "
                                   f"(most states held besides s_0)")
        budget = None if self.budget is None else check_int("budget", self.budget)
        if budget is not None and budget < 0:
            _refuse_negative(self.method, n, budget, opts, "steps")
        kw = dict(opts) | ({"budget": budget} if entry.takes_budget else {})
        iter(entry.make(n, **kw))  # validates every option now, not at the first move
        opts = {key: _plain(key, value) for key, value in opts.items()}
        _check_need(entry, n, budget, opts)
        game = entry.game(opts)
        if self.game != game:
            raise PebblesValueError(
                f"game={self.game!r} contradicts method {self.method!r} with options {opts}, "
                f"whose moves are played in game={game.value!r}; pass game=Game."
                f"{game.name}, or make the schedule with pebbles.schedule({self.method!r}, "
                f"n, ...), which sets the game")
        for name, value in (("n", n), ("game", game), ("budget", budget),
                            ("options", tuple(sorted(opts.items())))):
            object.__setattr__(self, name, value)

    def __iter__(self) -> Iterator[Move]:
        entry = _METHODS[self.method]
        return iter(entry.make(self.n, **self._kwargs()))

    def _kwargs(self) -> dict[str, Any]:
        kw = dict(self.options)
        if _METHODS[self.method].takes_budget:
            kw["budget"] = self.budget
        return kw

    def encode(self) -> np.ndarray:
        """The moves as an encoded ``int64`` (m, 3) array (fast for treeverse, bennett and
        the reversible optimum and their gradients)."""
        entry = _METHODS[self.method]
        _check_fits(self)
        if entry.encoded is not None:
            return entry.encoded(self.n, **self._kwargs())
        return encode(iter(self))

    def simulate(self, **kwargs: Any) -> SimulationResult:
        """Check the moves with :func:`pebbles.simulate` (in its game, within its budget;
        a two-level schedule with its disk budget and I/O costs); keyword arguments
        override these (``budget=2`` checks the moves against a smaller budget). The
        moves and ``n`` are the schedule's own."""
        fixed = sorted(set(kwargs) & {"moves", "n"})
        if fixed:
            raise PebblesTypeError(
                f"Schedule.simulate({fixed[0]}={kwargs[fixed[0]]!r:.40}): the schedule fixes "
                f"its moves and n={self.n}; drop {fixed[0]}, or make a schedule of other "
                f"steps with pebbles.schedule({self.method!r}, n, ...)")
        opts = {"game": self.game, "budget": self.budget} | self.simulator_options | kwargs
        return simulate(self.encode(), self.n, **opts)

    @property
    def simulator_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`pebbles.simulate` its options imply (the disk
        budget and I/O costs of a two-level schedule)."""
        opts = dict(self.options)
        return {k: opts[k] for k in ("disk_budget", "write_cost", "read_cost") if k in opts}

    def lower(self, *, slots: int | None = None, frees: bool = False) -> SlotProgram:
        """:func:`pebbles.lower` of this schedule."""
        return lower(self, slots=slots, frees=frees)

    def __str__(self) -> str:
        words = [self.method, "-n", str(self.n)]
        if self.budget is not None:
            words += ["--budget", str(self.budget)]
        return " ".join(words + self.option_flags())

    def option_flags(self) -> list[str]:
        """Command-line flags of the options that differ from the method's defaults.

        Examples
        --------
        >>> import pebbles
        >>> pebbles.schedule("bennett", 16, k=3, uncompute=False).option_flags()
        ['--k', '3', '--no-uncompute']
        """
        words: list[str] = []
        defaults = dict(_METHODS[self.method].options)
        for key, value in self.options:
            name = _FLAG_NAMES.get(key, key.replace("_", "-"))
            if value is None or value == defaults[key]:
                continue
            if isinstance(value, (bool, np.bool_)):
                words.append(("--" if value else "--no-") + name)
            else:
                words += ["--" + name, str(value)]
        return words


#: Options whose command-line flag is not their name with dashes (``pebbles schedule``).
_FLAG_NAMES = {"disk_budget": "disk-slots"}


def schedule(method: str, n: int, *, budget: int | None = None, **options: Any) -> Schedule:
    """Pick a schedule by name.

    Parameters
    ----------
    method : str
        One of :func:`methods`: ``treeverse`` (optimal, ``budget``,
        ``inplace``), ``treeverse-paper`` (``delta``, ``tau``), ``bennett``
        (``k``, ``uncompute``), ``bennett-gradient`` (``k``),
        ``reversible-optimal`` (``budget``), ``reversible-gradient``
        (``budget``), ``store-all``, ``recompute-all``, ``periodic``
        (``every``), ``online`` (``budget``, ``inplace``, ``beyond``),
        ``two-level`` (``budget``, ``disk_budget``, ``write_cost``,
        ``read_cost``, ``inplace``, ``background_writes``) and
        ``periodic-disk`` (``budget``, ``period``, ``inplace``);
        ``pebbles methods`` lists them with their options.
    n : int
        Number of steps.
    budget : int, optional
        Most states held besides ``s_0``. Required by the methods that take
        one; a method that takes none is checked against it (it must not need
        more) and the budget is enforced when the schedule is simulated.
    **options
        The method's own options.

    Returns
    -------
    Schedule

    Raises
    ------
    PebblesValueError, PebblesTypeError
        Unknown method or option, missing or bad option.
    InfeasibleBudgetError
        The budget cannot finish the game with this method; for a negative budget,
        the least budget that does (``.minimum``), where 0 does not.

    Examples
    --------
    >>> import pebbles
    >>> s = pebbles.schedule("treeverse", 10_000, budget=10, inplace=True)
    >>> s.simulate().forward_steps == pebbles.min_forward_steps(10_000, 10, "inplace")
    True
    >>> pebbles.schedule("store-all", 10, budget=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pebbles.InfeasibleBudgetError: store-all holds 9 states at once for n=10, ...
    """
    return make_schedule(method, n, budget, options)


def make_schedule(method: str, n: int, budget: int | None, options: Mapping[str, Any], *,
                  unit: str = "steps") -> Schedule:
    """:func:`schedule`, for an adapter whose ``n`` counts ``unit`` (``"layers"``), the
    word the message of a negative budget gives ``n``.

    A negative budget is told the least budget that finishes the ``n`` steps (an
    :class:`InfeasibleBudgetError` carrying it; 0 finishes no ``n >= 2``):

    >>> import pebbles
    >>> pebbles.schedule("periodic", 20, budget=-3, every=5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pebbles.InfeasibleBudgetError: budget=-3 must be >= 7, the least budget ...
    """
    entry = _entry(method)
    n = check_steps(n)
    opts = _options(entry, options)
    if budget is not None and check_int("budget", budget) < 0:
        _refuse_negative(method, n, int(budget), opts, unit)
    # The Schedule checks the budget and options, and stores them as plain values.
    return Schedule(method, n, entry.game(opts), budget, tuple(opts.items()))


def _check_need(entry: Method, n: int, budget: int | None, opts: dict[str, Any]) -> None:
    """Refuse a ``budget`` below the states a method without one holds (its ``need``;
    ``opts`` checked, so the need is defined)."""
    if entry.takes_budget or budget is None or entry.need is None:
        return
    need = entry.need(n, **opts)
    if need is not None and need > budget:
        fits = [o for o in (entry.fit(n, budget) if entry.fit is not None else ()) if o]
        words = ", ".join(f"{k}={v!r}" for k, v in fits[0].items()) if fits else ""
        other = f", or {words} (then it holds at most {budget})" if fits else ""
        raise InfeasibleBudgetError(
            f"{entry.name} holds {need} states at once for n={n}, more than "
            f"budget={budget}; pass budget >= {need}{other}, or pick a method that takes a "
            f"budget (treeverse)", need)


def _refuse_negative(method: str, n: int, budget: int, opts: dict[str, Any],
                     unit: str) -> None:
    """Raise for a negative ``budget``, naming the least budget that finishes ``n``
    ``unit`` with ``method`` and ``opts`` (from the refusal of budget 0), or 0 where 0
    finishes them."""
    try:
        make_schedule(method, n, 0, opts, unit=unit)
    except InfeasibleBudgetError as err:
        least = err.minimum
    else:
        least = 0  # 0 finishes them: "must be >= 0"
    by = "" if method == "treeverse" else f" with method={method!r}"
    refuse_negative(budget, least, n, unit, by)


def _options(entry: Method, given: Mapping[str, Any]) -> dict[str, Any]:
    known = dict(entry.options)
    unknown = sorted(set(given) - set(known))
    if unknown:
        takes = ", ".join(["budget"] * entry.takes_budget + list(known)) or "no options"
        raise PebblesTypeError(
            f"method {entry.name!r} takes {takes}; got {', '.join(unknown)}="
            f"{given[unknown[0]]!r}")
    opts = {k: given.get(k, default) for k, default in entry.options}
    missing = [k for k in entry.required if opts[k] is None]
    if missing:
        raise PebblesTypeError(f"method {entry.name!r} needs {missing[0]}=...; "
                               f"see pebbles.describe({entry.name!r})")
    return opts


#: Options whose default None is a meaning of its own (least tau, unbounded disk).
_OPTIONAL = frozenset({"tau", "disk_budget"})


def _pairs(options: object) -> dict[str, Any]:
    """A Schedule's ``options`` (pairs of name and value) as a dict, or an error."""
    try:
        pairs = dict(options)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        pairs = None
    if pairs is None or not all(isinstance(key, str) for key in pairs):
        raise PebblesTypeError(
            f"options={options!r:.80} must be pairs of option name and value, e.g. "
            f"options=(('inplace', True),); or make the schedule with pebbles.schedule("
            f"method, n, **options)")
    return pairs


def _plain(name: str, value: Any) -> Any:
    """A checked option's value as a plain Python value: a bool, int or float for a
    NumPy or other number (costs as floats), a disk budget of ``math.inf`` as None; so
    that schedules of equal options compare, hash and print alike."""
    if name == "disk_budget":
        return check_disk_budget(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if name in ("write_cost", "read_cost") or (
            isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)):
        return float(value)
    return int(value) if isinstance(value, numbers.Integral) else value


def _fixed(game: Game) -> Callable[[Mapping[str, Any]], Game]:
    return lambda opts: game


def _periodic_need(n: int, every: int) -> int:
    """Peak states of :func:`pebbles.periodic` (k = ceil(n / every) segments)."""
    k = -(-n // every)
    if k < 2:
        return n - 1
    return max(k + (n - (k - 1) * every) - 2, k + every - 3, k if every >= 2 else 0)


def _periodic_steps(n: int, every: int) -> int:
    """Forward steps of :func:`pebbles.periodic`: the walk to the last of its ``k``
    checkpoints, then each segment's ``length - 1`` steps (``n - k`` in all)."""
    k = -(-n // every)
    return (k - 1) * every + n - k


#: Most moves :func:`_paper_need` plays to find treeverse-paper's peak (about a second).
PAPER_NEED_MAX_MOVES = 2 * 10**6


def _paper_need(n: int, delta: int | None, tau: int | None) -> int | None:
    """Peak states of :func:`pebbles.treeverse_paper`, which depends on tau as well as
    delta (fewer checkpoints with more sweeps): played where the stream is short, else
    None (unknown: the budget is checked as the moves are played or lowered)."""
    if delta is None:
        return None
    sweeps = paper_tau(n, delta) if tau is None else tau
    if n * (sweeps + 3) > PAPER_NEED_MAX_MOVES:
        return None
    return simulate(treeverse_paper(n, delta, tau), n).peak_states


def _treeverse_fit(n: int, budget: int) -> list[dict[str, Any]]:
    return [{"inplace": ip} for ip in (False, True)
            if budget >= min_pebbles(n, Game.INPLACE if ip else Game.CHECKPOINT)]


def _best_bennett(n: int, budget: int) -> list[dict[str, Any]]:
    best = best_bennett(n, budget)
    return [] if best is None else [{"k": best[0]}]


register(Method(
    "treeverse", treeverse,
    lambda o: Game.INPLACE if o["inplace"] else Game.CHECKPOINT,
    (("inplace", False),), True,
    "optimal binomial checkpointing (Griewank's Revolve; Liu & Xu Algorithm 3, optimal)",
    encoded=treeverse_encoded, fit=_treeverse_fit,
    steps=lambda n, budget, inplace: min_forward_steps(
        n, budget, Game.INPLACE if inplace else Game.CHECKPOINT),
    moves=lambda n, budget, inplace: 3 * n - 2))  # a walk, a paint and a remove a cell
register(Method(
    "treeverse-paper", treeverse_paper, _fixed(Game.CHECKPOINT),
    (("delta", None), ("tau", None)), False,
    "the paper's Algorithm 3 exactly (not optimal)", need=_paper_need,
    fit=lambda n, budget: [{"delta": budget - 1}] if budget >= 2 else [],
    steps=lambda n, budget, delta, tau: _paper_steps(n, delta, tau)))
register(Method(
    "bennett", bennett, _fixed(Game.REVERSIBLE), (("k", 2), ("uncompute", True)), False,
    "Bennett's k-ary compute/uncompute (the paper's Algorithm 2), reversible game",
    encoded=bennett_encoded,
    need=lambda n, k, uncompute: bennett_pebbles(n, k, uncompute=uncompute),
    fit=lambda n, budget: [o | {"uncompute": False} for o in _best_bennett(n, budget)],
    steps=lambda n, budget, k, uncompute: bennett_steps(n, k, uncompute=uncompute)))
register(Method(
    "bennett-gradient", bennett_gradient, _fixed(Game.CHECKPOINT), (("k", 2),), False,
    "Bennett's reach run and its mirror with paints (a gradient schedule)",
    encoded=bennett_gradient_encoded,
    need=lambda n, k: bennett_pebbles(n, k, uncompute=False), fit=_best_bennett,
    steps=lambda n, budget, k: bennett_steps(n, k, uncompute=False)))
register(Method(
    "reversible-optimal", reversible_optimal, _fixed(Game.REVERSIBLE), (), True,
    "fewest steps of the reversible game (needs n <= 2^budget - 1)",
    encoded=reversible_encoded,
    fit=lambda n, budget: [{}] if budget >= min_pebbles(n, Game.REVERSIBLE) else [],
    steps=lambda n, budget: reversible_min_steps(n, min(budget, n))))
register(Method(
    "reversible-gradient",
    lambda n, budget: reversible_gradient(reversible_optimal(n, budget), n),
    _fixed(Game.CHECKPOINT), (), True,
    "the reversible optimum and its mirror with paints (a gradient schedule)",
    encoded=lambda n, budget: mirror_encoded(reversible_encoded(n, budget), n),
    fit=lambda n, budget: [{}] if budget >= min_pebbles(n, Game.REVERSIBLE) else [],
    steps=lambda n, budget: reversible_min_steps(n, min(budget, n))))
register(Method(
    "store-all", store_all, _fixed(Game.CHECKPOINT), (), False,
    "store every state: n - 1 steps, n - 1 states", need=lambda n: n - 1,
    fit=lambda n, budget: [{}] if budget >= n - 1 else [], steps=lambda n, budget: n - 1,
    moves=lambda n, budget: 3 * n - 2))
register(Method(
    "recompute-all", recompute_all, _fixed(Game.CHECKPOINT), (), False,
    "walk from s_0 to every cell: n(n-1)/2 steps, two states",
    need=lambda n: min(n - 1, 2),
    fit=lambda n, budget: [{}] if budget >= min(n - 1, 2) else [],
    steps=lambda n, budget: n * (n - 1) // 2, moves=lambda n, budget: 3 * n - 2))
register(Method(
    "online", online,
    lambda o: Game.INPLACE if o["inplace"] else Game.CHECKPOINT,
    (("inplace", False), ("beyond", "greedy")), True,
    "online checkpointing for runs of unknown length (optimal r=2 phase, r=3 phase, then "
    "greedy or Wang-Moin; both games), the stream it plays when the run stops after n steps",
    fewest=_online_fewest))


def _two_level(n: int, budget: int, disk_budget: int | None = None, *, write_cost: float,
               read_cost: float, inplace: bool = False, background_writes: bool = False,
               backward_cost: float = 1.0) -> Iterator[Move]:
    """:func:`two_level`, or with ``background_writes`` :func:`background_two_level` (whose
    choice of write price depends on ``backward_cost``; the others' does not: every
    schedule runs the same ``n`` backward steps)."""
    write_cost = check_cost("write_cost", write_cost, "a state's write time over a forward "
                            "step's")
    read_cost = check_cost("read_cost", read_cost, "a state's read time over a forward step's")
    backward_cost = check_cost("backward_cost", backward_cost, "a backward step's time over "
                               "a forward step's")
    background_writes = check_bool("background_writes", background_writes)
    if backward_cost != 1.0 and not background_writes:
        raise PebblesValueError(
            f"backward_cost={backward_cost!r} changes only the schedule of background_writes="
            f"True (every schedule runs the same n backward steps); leave it out or pass "
            f"background_writes=True")
    if background_writes:
        return background_two_level(n, budget, disk_budget, write_cost=write_cost,
                                    read_cost=read_cost, inplace=inplace,
                                    backward_cost=backward_cost)
    return two_level(n, budget, disk_budget, write_cost=write_cost, read_cost=read_cost,
                     inplace=inplace)


register(Method(
    "two-level", _two_level,
    lambda o: Game.INPLACE if o["inplace"] else Game.CHECKPOINT,
    (("disk_budget", None), ("write_cost", None), ("read_cost", None), ("inplace", False),
     ("background_writes", False), ("backward_cost", 1.0)),
    True, "optimal memory + disk checkpointing (disk revolve / H-Revolve for this game); "
    "with background_writes, the optimum of a lower write price when a background writer "
    "hides the writes (for backward steps of backward_cost)", uses_disk=True))
register(Method(
    "periodic-disk", periodic_disk,
    lambda o: Game.INPLACE if o["inplace"] else Game.CHECKPOINT,
    (("period", None), ("inplace", False)), True,
    "a disk checkpoint every `period` steps, Treeverse within (Aupy & Herrmann 2017)",
    uses_disk=True,
    moves=lambda n, budget, period, inplace: periodic_disk_moves(n, period, inplace)))
register(Method(
    "periodic", periodic, _fixed(Game.CHECKPOINT), (("every", None),), False,
    "a checkpoint every `every` steps, store-all within segments", need=_periodic_need,
    steps=lambda n, budget, every: _periodic_steps(n, every),
    moves=lambda n, budget, every: 3 * n - 2))  # a move a checkpoint walk and its remove
