"""Argument validators that echo ``name=value``, the rule and the fix."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._errors import PebblesTypeError, PebblesValueError
from ._moves import MAX_CELL, outside_int64

__all__ = [
    "a_kind", "check_bool", "check_callable", "check_choice", "check_cost", "check_disk_budget",
    "check_int", "check_steps",
]


def a_kind(value: object) -> str:
    """The type of ``value`` with its article, for messages: ``"an int"``, ``"a dict"``."""
    kind = type(value).__name__
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int`` after checking its type and lower bound.

    Raises
    ------
    PebblesTypeError
        If ``value`` is not an integer (``bool`` is refused too).
    PebblesValueError
        If ``value < minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind, dtype = type(value).__name__, getattr(value, "dtype", None)
        # an array's dtype says more than its type (a NumPy scalar's type is its dtype)
        got = kind if dtype is None or str(dtype) == kind else f"{kind} of dtype {dtype}"
        raise PebblesTypeError(
            f"{name}={value!r} must be an integer, got {got}; "
            f"pass a whole number such as {name}=10"
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise PebblesValueError(
            f"{name}={value} must be >= {minimum}; pass {name}={minimum} or more"
        )
    return value


def check_steps(value: object, name: str = "n") -> int:
    """Return ``value`` as a number of steps: an integer from 1 to 2^63 - 1 (cells
    ``0..n`` are counted in int64).

    >>> from pebbles._validation import check_steps
    >>> check_steps(2**63)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    pebbles.PebblesValueError: n=9223372036854775808 names a cell outside int64; ...
    """
    steps = check_int(name, value, 1)
    if steps > MAX_CELL:
        raise outside_int64(f"{name}={steps}")
    return steps


def check_disk_budget(value: object) -> int | None:
    """``disk_budget`` as an ``int``, or ``None`` for an unbounded disk (``None`` or
    ``math.inf``).

    >>> import math
    >>> from pebbles._validation import check_disk_budget
    >>> check_disk_budget(math.inf) is None, check_disk_budget(3)
    (True, 3)
    """
    if value is None or (isinstance(value, numbers.Real) and value == math.inf):
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        raise PebblesTypeError(
            f"disk_budget={value!r} must be a whole number of states, or None or math.inf "
            f"for an unbounded disk; pass disk_budget=10 or disk_budget=None")
    return check_int("disk_budget", value, 0)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a clear error (a
    :class:`PebblesTypeError` for anything but a str)."""
    if not isinstance(value, str):
        raise PebblesTypeError(
            f"{name}={value!r:.60} must be a str, one of {', '.join(map(repr, choices))}; "
            f"pick one of those")
    if value not in choices:
        raise PebblesValueError(
            f"{name}={value!r} is not one of {', '.join(map(repr, choices))}; "
            f"pick one of those"
        )
    return str(value)


def check_callable(name: str, fn: object, signature: str) -> None:
    """Refuse ``fn`` unless it is callable, naming ``name`` and the ``signature`` wanted.

    >>> from pebbles._validation import check_callable
    >>> check_callable("body", None, "body(c)")
    Traceback (most recent call last):
        ...
    pebbles.PebblesTypeError: body=None is not callable; pass a function body(c)
    """
    if not callable(fn):
        raise PebblesTypeError(f"{name}={fn!r:.60} is not callable; pass a function "
                               f"{signature}")


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (NumPy's too), else raise.

    >>> from pebbles._validation import check_bool
    >>> check_bool("inplace", False)
    False
    """
    if not isinstance(value, (bool, np.bool_)):
        raise PebblesTypeError(f"{name}={value!r} must be True or False; pass {name}=True "
                               f"or {name}=False")
    return bool(value)


def check_cost(name: str, value: object, meaning: str = "a cost in forward steps", *,
               finite: bool = True) -> float:
    """Return ``value`` as a float after checking it is a real number >= 0 (finite unless
    ``finite=False``; NumPy scalars pass). ``meaning`` says what it is, for the message.

    >>> check_cost("write_cost", 2, "a write over a forward step")
    2.0
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise PebblesTypeError(f"{name}={value!r} must be a number: {meaning}, e.g. "
                               f"{name}=2.5")
    try:
        v = float(value)
    except OverflowError:  # an int or Fraction beyond any float
        v = math.inf if value > 0 else -math.inf
    if math.isnan(v) or v < 0 or (finite and math.isinf(v)):
        raise PebblesValueError(
            f"{name}={value!r:.60} must be a {'finite ' if finite else ''}number >= 0 ({meaning}"
            f"{'; NaN is not one' if math.isnan(v) else ''}); pass e.g. {name}=2.5")
    return v
