"""Argument checks shared by the solvers: arrays of real numbers, named in the message."""

from __future__ import annotations

import numpy as np

import pebbles

__all__ = ["reals"]


def reals(v: object, name: str, what: str, example: object) -> np.ndarray:
    """``v`` as a float64 array; a :class:`pebbles.PebblesTypeError` naming ``name``, its
    value, ``what`` it holds and an ``example`` unless it holds real numbers.

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
            f"{name}={v!r:.80} must hold real numbers: {what}; pass e.g. {name}={example}")
    return arr.astype(np.float64)
