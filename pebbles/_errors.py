"""Library exceptions.

Every exception subclasses the matching built-in so callers may catch
``ValueError`` / ``TypeError`` without importing this module.
"""

from __future__ import annotations

from functools import partial

__all__ = [
    "IllegalMoveError",
    "InfeasibleBudgetError",
    "PebblesError",
    "PebblesNotImplementedError",
    "PebblesTypeError",
    "PebblesValueError",
]


class PebblesError(Exception):
    """Base class of every error raised by :mod:`pebbles`."""


def add_note(err: BaseException, note: str) -> None:
    """Add ``note`` to ``err`` (``BaseException.add_note``): the one way the library's
    layers (executor, pebbles.jax, pebbles.torch) annotate an error they pass on."""
    err.add_note(note)


def rebuilt(err: BaseException, *args: object, **kwargs: object) -> tuple[object, ...]:
    """``err.__reduce__()`` for an exception whose constructor takes ``args`` and
    ``kwargs``: pickle and :func:`copy.deepcopy` call the constructor again, then restore
    ``err.__dict__`` (its attributes and notes). The cause and traceback are not kept, as
    for any exception.
    """
    return (partial(type(err), **kwargs) if kwargs else type(err)), args, err.__dict__


class PebblesValueError(PebblesError, ValueError):
    """An argument has the right type but a value outside its rule."""


class PebblesTypeError(PebblesError, TypeError):
    """An argument has the wrong type."""


class PebblesNotImplementedError(PebblesError, NotImplementedError):
    """A request pebbles cannot carry out by design (e.g. a double backward pass through
    a checkpointed PyTorch call); the message says what to use instead."""


class InfeasibleBudgetError(PebblesValueError):
    """The pebble budget is too small for the game to be finished.

    Attributes
    ----------
    minimum : int
        The smallest budget with which the game can be finished.
    """

    def __init__(self, message: str, minimum: int) -> None:
        super().__init__(message)
        self.minimum = minimum

    def __reduce__(self) -> tuple[object, ...]:
        return rebuilt(self, self.args[0], self.minimum)


class IllegalMoveError(PebblesValueError):
    """A move stream breaks a rule of its game.

    Attributes
    ----------
    index : int
        Position of the offending move in the stream (0-based); ``-1`` when the
        stream ended without meeting the game's end condition.
    move : object
        The offending move (``None`` for an unmet end condition).
    rule : str
        The rule that was broken, in words (for people: the wording may change).
    code : str
        The rule that was broken, as a stable name for programs to test: one per rule
        of the simulator, e.g. ``"budget"`` (more memory pebbles at once than the
        budget), ``"disk_budget"`` (more disk pebbles than the disk budget),
        ``"slots"`` (a lowering ran out of slots), ``"paint_order"``, ``"occupied"``;
        ``"end"`` for an unmet end condition; ``"other"`` where none was given. The
        simulator's names are those of :data:`pebbles.RULE_NAMES` after its first, ``"ok"``.

    Examples
    --------
    >>> import pebbles
    >>> try:
    ...     pebbles.simulate([pebbles.forward(0, 2)], 2, budget=1)
    ... except pebbles.IllegalMoveError as err:
    ...     print(err.index, err.code)
    0 budget
    """

    def __init__(self, index: int, move: object, rule: str, code: str = "other") -> None:
        where = "end of stream" if index < 0 else f"move #{index} ({move})"
        super().__init__(f"illegal {where}: {rule}")
        self.index = index
        self.move = move
        self.rule = rule
        self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        return rebuilt(self, self.index, self.move, self.rule, self.code)
