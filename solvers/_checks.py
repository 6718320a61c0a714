"""Argument checks shared by the solvers: numbers and arrays of real numbers and flags,
named in the message (:func:`real`, :func:`whole`, :func:`reals`, :func:`triples`,
:func:`boolean`), and the command lines' shared default of ``periodic``'s interval
(:func:`periodic_every`)."""

from __future__ import annotations

import math
import reprlib

import numpy as np

import pebbles

__all__ = ["MAX_STEPS", "boolean", "periodic_every", "real", "reals", "triples", "whole"]

#: The largest step count (and other count) the solvers take: ``2**63 - 1``. The compiled
#: loops count in int64 (Numba types a larger Python int as uint64, over which ``range``
#: runs no iterations), as :func:`pebbles.schedule` counts cells (it refuses
#: ``n >= 2**63``).
MAX_STEPS = int(np.iinfo(np.int64).max)


def periodic_every(n: int) -> int:
    """The checkpoint interval ``--method periodic`` takes when ``--every`` is not given:
    ``ceil(sqrt(n))`` for ``n`` steps (1 for ``n <= 1``), which holds about ``sqrt(n)``
    states and recomputes each step about once (both command lines use it).

    Examples
    --------
    >>> from solvers._checks import periodic_every
    >>> periodic_every(2000), periodic_every(100), periodic_every(1)
    (45, 10, 1)
    """
    return math.isqrt(max(n - 1, 0)) + 1


def real(value: object, name: str, what: str, example: object, *,
         positive: bool = False) -> float:
    """``value`` as a float: a real number (bools refused) and finite (and ``> 0`` with
    ``positive``).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``value`` is not a real number (a string, a bool, a complex number, None).
    pebbles.PebblesValueError
        If it is not finite, or with ``positive`` not above 0.

    Examples
    --------
    >>> from solvers._checks import real
    >>> real(3, "dt", "time step", 0.003)
    3.0
    >>> try:
    ...     real(0.0, "dt", "time step", 0.003, positive=True)
    ... except ValueError as err:
    ...     print(err)
    dt=0.0 must be a finite number > 0, the time step; pass e.g. dt=0.003
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or isinstance(value, (complex, np.complexfloating)):
        raise pebbles.PebblesTypeError(
            f"{name}={value!r:.80} must be a real number, the {what}; pass e.g. "
            f"{name}={example}")
    try:
        number = float(value)
    except OverflowError:  # an int past float's range (10**400)
        number = math.inf if value > 0 else -math.inf
    if not math.isfinite(number):
        raise pebbles.PebblesValueError(f"{name}={value!r:.80} is not finite; pass a finite "
                                        f"{what} such as {example}")
    if positive and not number > 0:
        raise pebbles.PebblesValueError(f"{name}={value!r} must be a finite number > 0, the "
                                        f"{what}; pass e.g. {name}={example}")
    return number


def whole(n: object, minimum: int, name: str, what: str, example: int | None = None) -> int:
    """``n`` as an int in ``minimum..MAX_STEPS`` (bools and non-integers such as 2.0
    refused; :data:`MAX_STEPS` is int64's largest value, the compiled loops' counter).
    The fixes suggest ``example`` where given (a grid size, say, where 2**63 - 1 would
    be no advice).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``n`` is not an integer.
    pebbles.PebblesValueError
        If it is below ``minimum`` or above :data:`MAX_STEPS`.

    Examples
    --------
    >>> from solvers._checks import whole
    >>> whole(5, 1, "n", "the number of steps")
    5
    >>> try:
    ...     whole(2**63, 0, "n", "the number of steps")
    ... except ValueError as err:
    ...     print(str(err).split(";")[0])
    n=9223372036854775808 must be an integer in 0..2**63 - 1 (the number of steps
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise pebbles.PebblesTypeError(
            f"{name}={n!r:.80} must be an integer >= {minimum} ({what}); pass a whole number "
            f"such as {name}={max(minimum, 10) if example is None else example}")
    if n < minimum:
        raise pebbles.PebblesValueError(
            f"{name}={n!r} must be an integer >= {minimum} ({what}); pass {name}={minimum} "
            f"or more")
    if n > MAX_STEPS:
        raise pebbles.PebblesValueError(
            f"{name}={n!r} must be an integer in {minimum}..2**63 - 1 ({what}; counted in "
            f"int64); " + (f"pass {name}={MAX_STEPS} or less" if example is None
                           else f"pass e.g. {name}={example}"))
    return int(n)


def boolean(value: object, name: str) -> bool:
    """``value`` as a bool: True or False (NumPy's too); anything else is refused, since
    ``if value`` would read ``"no"`` or ``1`` as True.

    Raises
    ------
    pebbles.PebblesTypeError
        If ``value`` is not True or False.

    Examples
    --------
    >>> from solvers._checks import boolean
    >>> boolean(False, "inplace")
    False
    >>> try:
    ...     boolean("no", "inplace")
    ... except TypeError as err:
    ...     print(err)
    inplace='no' must be True or False; pass inplace=True or inplace=False
    """
    if not isinstance(value, (bool, np.bool_)):
        raise pebbles.PebblesTypeError(f"{_shown(name, value)} must be True or False; pass "
                                       f"{name}=True or {name}=False")
    return bool(value)


def reals(v: object, name: str, what: str, example: object, *,
          finite: bool = False) -> np.ndarray:
    """``v`` as a float64 array; a :class:`pebbles.PebblesTypeError` naming ``name``, its
    value, ``what`` it holds and an ``example`` unless it holds real numbers.

    With ``finite``, a :class:`pebbles.PebblesValueError` naming the first
    non-finite entry unless every entry is finite.

    Examples
    --------
    >>> from solvers._checks import reals
    >>> reals([1, 2], "x0", "the initial state", [1.0, 0.0]).dtype
    dtype('float64')
    """
    try:
        arr = np.asarray(v)
        ok = arr.dtype.kind in "iuf"
    except (TypeError, ValueError):  # ragged sequences, objects NumPy cannot hold
        ok = False
    if not ok:
        raise pebbles.PebblesTypeError(
            f"{_shown(name, v)} must hold real numbers: {what}; pass e.g. {name}={example}")
    arr = arr.astype(np.float64)
    if finite:
        _check_finite(arr, v, name, what, example)
    return arr


def _check_finite(arr: np.ndarray, v: object, name: str, what: str, example: object) -> None:
    """Raise naming the first non-finite entry of ``arr`` (``v`` as given)."""
    if not np.isfinite(arr).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        at = f"{name}[{', '.join(map(str, where))}]" if where else name
        raise pebbles.PebblesValueError(
            f"{_shown(name, v)} has a non-finite entry ({at}={float(arr[where])}); it must "
            f"hold finite numbers: {what}; pass e.g. {name}={example}")


def _shown(name: str, v: object) -> str:
    """``name=value`` for a message: a large array by its dtype and shape."""
    if isinstance(v, np.ndarray) and (v.ndim > 1 or v.size > 8):
        return f"{name}=<{v.dtype} array of shape {v.shape}>"
    return f"{name}={reprlib.repr(v):.80}"  # reprlib: a long list's repr is cut as made


def triples(v: object, name: str, what: str, example: object, *,
            batch: bool = False) -> np.ndarray:
    """``v`` as a C-contiguous float64 array of shape ``(3,)`` (or ``(B, 3)`` with
    ``batch``) of finite real numbers, checked by :func:`reals`.

    Raises
    ------
    pebbles.PebblesTypeError
        If ``v`` does not hold real numbers.
    pebbles.PebblesValueError
        If its shape is wrong or an entry is not finite.

    Examples
    --------
    >>> from solvers._checks import triples
    >>> triples([[1, 0, 0], [2, 0, 0]], "x0", "initial states", [1.0, 0.0, 0.0],
    ...         batch=True).shape
    (2, 3)
    """
    arr = reals(v, name, what, example)
    if arr.shape != (3,) and not (batch and arr.ndim == 2 and arr.shape[1] == 3):
        shapes = "shape (3,) or (B, 3)" if batch else "3 components"
        raise pebbles.PebblesValueError(
            f"{_shown(name, v)} must have {shapes} ({what}), got shape {arr.shape}; pass "
            f"e.g. {name}={example}")
    _check_finite(arr, v, name, what, example)
    return np.ascontiguousarray(arr)
