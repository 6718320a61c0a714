"""States as the generic executor sees them: arrays, or pytrees of arrays.

A state (and a gradient) is a NumPy-like array, or a tuple, list or dict of
states (nested freely). The executor checks every value a callback returns
against ``s0``'s structure, shapes and dtypes leaf by leaf, adds gradients leaf
by leaf, and (in debug mode) fingerprints states to catch a callback that
changes one it was only meant to read.
"""

from __future__ import annotations

import copy
import numbers
import operator
import zlib
from typing import Any

import numpy as np

__all__ = ["Holdings", "add", "aliases", "all_finite", "describe", "digest", "leaves",
           "numpy_arrays", "object_dtype", "signature"]


def leaves(x: Any) -> list[Any]:
    """The arrays of a state, in a fixed order (dict keys sorted)."""
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in leaves(item)]
    if isinstance(x, dict):
        return [leaf for key in _keys(x) for leaf in leaves(x[key])]
    return [x]


def _keys(d: dict) -> list[Any]:
    """A dict's keys in a fixed order: sorted within each key type (ints as numbers, strs
    as text), the types by name, so that keys of mixed types need no comparison."""
    return sorted(d, key=lambda k: (type(k).__name__, k))


_DTYPE_NAMES: dict[Any, str] = {}


def signature(x: Any) -> Any:
    """Structure, shapes and dtypes of a state (two states match when these are equal)."""
    if type(x) is np.ndarray:  # the common case, once per step: no str() of the dtype
        name = _DTYPE_NAMES.get(x.dtype)
        if name is None:
            name = _DTYPE_NAMES.setdefault(x.dtype, str(x.dtype))
        return (x.shape, name)
    if isinstance(x, (tuple, list)):
        return (type(x).__name__, tuple(signature(item) for item in x))
    if isinstance(x, dict):
        return ("dict", tuple((key, signature(x[key])) for key in _keys(x)))
    return (np.shape(x), str(getattr(x, "dtype", type(x).__name__)))


def describe(sig: Any) -> str:
    """A signature in words, e.g. ``shape=(3,), dtype=float64``."""
    if len(sig) == 2 and isinstance(sig[0], tuple) and isinstance(sig[1], str):
        return f"shape={sig[0]}, dtype={sig[1]}"
    if sig[0] == "dict":
        return "{" + ", ".join(f"{k!r}: {describe(s)}" for k, s in sig[1]) + "}"
    inner = ", ".join(describe(s) for s in sig[1])
    return f"{sig[0]}({inner})"


#: Type names a Python number has in a signature (NumPy values carry a dtype).
_PYTHON_NUMBERS = {"bool": "np.bool_", "int": "np.int64", "float": "np.float64",
                   "complex": "np.complex128"}


def _leaf_signatures(sig: Any) -> list[Any]:
    """The ``(shape, dtype name)`` pairs of a signature, in :func:`leaves` order."""
    if len(sig) == 2 and isinstance(sig[0], tuple) and isinstance(sig[1], str):
        return [sig]
    items = (s for _, s in sig[1]) if sig[0] == "dict" else sig[1]
    return [leaf for s in items for leaf in _leaf_signatures(s)]


def python_number_hint(got: Any, expected: Any) -> str:
    """Why ``got`` differs from ``expected`` (both signatures) when a Python number stands
    where a NumPy value of the same shape is expected, or the other way round: the two
    dtype names (``float`` and ``float64``) read alike. ``''`` in every other case."""
    for g, e in zip(_leaf_signatures(got), _leaf_signatures(expected), strict=False):
        if g[0] != e[0] or g[1] == e[1]:
            continue
        if g[1] in _PYTHON_NUMBERS and e[1] not in _PYTHON_NUMBERS:
            return (f"; that is a Python {g[1]} where s0 holds a {e[1]} array: return an "
                    f"array or a NumPy scalar, e.g. np.ones_like(s) or np.{e[1]}(x), not a "
                    f"Python number such as 1.0")
        if e[1] in _PYTHON_NUMBERS and g[1] not in _PYTHON_NUMBERS:
            return (f"; s0 is a Python {e[1]}, not a NumPy array (states are arrays): pass "
                    f"s0=np.asarray(s0, dtype=np.{g[1]}), a 0-d {g[1]} array, the dtype the "
                    f"callback returns")
    return ""


def _map(fn: Any, a: Any, *rest: Any) -> Any:
    """``fn`` of each leaf of state ``a`` (and of the leaves at the same places of the
    states ``rest``, of the same structure), in a state of ``a``'s structure."""
    if isinstance(a, (tuple, list)):
        items = [_map(fn, *parts) for parts in zip(a, *rest, strict=True)]
        return a._make(items) if hasattr(a, "_make") else type(a)(items)
    if isinstance(a, dict):
        return {key: _map(fn, a[key], *(r[key] for r in rest)) for key in a}
    return fn(a, *rest)


def add(a: Any, b: Any) -> Any:
    """Leaf-by-leaf sum of two states of the same structure."""
    return _map(operator.add, a, b)


def copied(x: Any) -> Any:
    """A copy of state ``x`` that shares no memory with it, leaf by leaf: the executor's
    running sum of ``theta_bar`` starts from one, as ``backward`` may return the same
    buffer again at its next call. An array's own ``copy()`` (NumPy, CuPy) or
    ``clone()`` (PyTorch, whose ``copy.copy`` shares storage), else ``copy.deepcopy``."""
    return _map(_copied_leaf, x)


def _copied_leaf(leaf: Any) -> Any:
    own = getattr(leaf, "clone", None) or getattr(leaf, "copy", None)
    return own() if callable(own) else copy.deepcopy(leaf)


def all_finite(x: Any) -> bool:
    """True when no float or complex leaf holds NaN or infinity (leaves of other dtypes,
    ints, strings, records, are not looked into: ``np.isfinite`` does not apply)."""
    return all(np.asarray(leaf).dtype.kind not in "fc" or bool(np.all(np.isfinite(leaf)))
               for leaf in leaves(x))


def _immutable(leaf: Any) -> bool:
    """Whether a leaf is a value no one can write into (a NumPy scalar other than a
    structured one, a Python number, a string, None): two states may share it freely,
    as NumPy and Python share one object for equal values (``np.True_``, small ints)."""
    if type(leaf) is np.ndarray:  # the common case, several times a step
        return False
    if isinstance(leaf, np.generic):
        return not isinstance(leaf, np.void)  # a record of a structured array is a view
    return leaf is None or isinstance(leaf, (numbers.Number, str, bytes))


def _mutable_leaves(x: Any) -> list[Any]:
    """The leaves of state ``x`` that can be written into: the ones that can alias."""
    return [leaf for leaf in leaves(x) if not _immutable(leaf)]


def aliases(a: Any, b: Any) -> bool:
    """Whether two states share a leaf, or memory in any pair of leaves (leaves that
    cannot be written into, NumPy scalars and Python numbers, never alias)."""
    la, lb = _mutable_leaves(a), _mutable_leaves(b)
    for x in la:
        for y in lb:
            if x is y or (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
                          and np.may_share_memory(x, y)):
                return True
    return False


def digest(x: Any) -> int:
    """A checksum of a state's contents (debug mode: has a callback changed it?)."""
    crc = 0
    for leaf in leaves(x):
        crc = zlib.crc32(np.ascontiguousarray(leaf).view(np.uint8).ravel(), crc)
    return crc


def numpy_arrays(x: Any) -> list[np.ndarray]:
    """The leaves of ``x`` that are NumPy arrays of numbers, no Python objects: those
    :func:`digest` checksums cheaply and safely (a scalar leaf beside them cannot be
    written into)."""
    return [leaf for leaf in leaves(x) if isinstance(leaf, np.ndarray) and not leaf.dtype.hasobject]


def object_dtype(x: Any) -> np.dtype | None:
    """The dtype of the first leaf that holds Python objects (``dtype=object``, or a
    structured dtype with an object field), or None."""
    for leaf in leaves(x):
        dtype = getattr(leaf, "dtype", None)
        if isinstance(dtype, np.dtype) and dtype.hasobject:
            return dtype
    return None


def _owner(leaf: Any) -> int:
    """Identity of the memory a leaf lives in: the base-most array for NumPy views."""
    while isinstance(leaf, np.ndarray) and leaf.base is not None:
        leaf = leaf.base
    return id(leaf)


class Holdings:
    """The leaves of the states an executor holds, indexed by the memory they live in.

    :meth:`clash` answers, in O(leaves) for states in separate buffers, whether
    a new value is, or shares memory with, a held state: a ``step`` that
    returns a stored state (or a view of one) would make two cells share one
    buffer and silently corrupt the gradient.
    """

    __slots__ = ("by_owner",)

    def __init__(self) -> None:
        self.by_owner: dict[int, list[Any]] = {}

    def add(self, x: Any) -> None:
        """Start holding state ``x`` (its leaves that can be written into)."""
        for leaf in _mutable_leaves(x):
            self.by_owner.setdefault(_owner(leaf), []).append(leaf)

    def discard(self, x: Any) -> None:
        """Stop holding state ``x``."""
        for leaf in _mutable_leaves(x):
            key = _owner(leaf)
            held = self.by_owner.get(key, [])
            for k, other in enumerate(held):
                if other is leaf:
                    del held[k]
                    break
            if not held:
                self.by_owner.pop(key, None)

    def clash(self, x: Any) -> bool:
        """Whether a leaf of ``x`` is, or overlaps in memory, a held leaf (NumPy scalars
        and Python numbers never clash: they cannot be written into)."""
        for leaf in _mutable_leaves(x):
            for other in self.by_owner.get(_owner(leaf), ()):
                if other is leaf or (isinstance(leaf, np.ndarray)
                                     and np.may_share_memory(leaf, other)):
                    return True
        return False
