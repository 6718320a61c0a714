"""``checkpointed_scan`` / ``checkpointed_while_loop``: ``lax.scan`` / ``lax.while_loop``
whose gradients replay a pebbles schedule.

Reverse mode through ``lax.scan`` keeps every step's residuals (memory ``n``
carries); ``jax.checkpoint`` over a nested scan keeps about ``2 sqrt(n)``.
:func:`checkpointed_scan` keeps at most ``budget`` carries (plus ``s_0`` and a
scratch one) and recomputes the others along an exact schedule of the
checkpoint game of Liu & Xu, "Automatic differentiation in physics
simulation" (appendix) -- by default the optimal Treeverse (Griewank's
binomial checkpointing, Revolve), so it does the fewest forward steps any
schedule with that budget can do.

The schedule is generated and checked on the host when the function is
traced, lowered to a slot program (:func:`scan_program`) and embedded as a
constant integer array; one ``lax.fori_loop`` with a ``lax.cond`` between a
step and a backward step walks it over a preallocated buffer of slots. ``f``
and its VJP are traced once, so the program and its compile time do not grow
with ``n`` or with the budget.

:func:`checkpointed_while_loop` is the same for ``jax.lax.while_loop``, whose
number of steps is known only when it stops: the online scheduler's controller
(store every state, Stumm & Walther's r = 2 and r = 3 phases, then the greedy rule or
Wang, Moin & Iaccarino's dynamic checkpointing) runs inside the compiled loop and the
reverse pass replays Treeverse between the kept carries.

Importing this module needs JAX (``pip install "pebble-games[jax]"``);
``import pebbles`` never imports it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import numbers
import operator
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ._optional import missing_extra

try:
    import jax
    import jax.numpy as jnp
    from jax import lax
except ImportError:  # pragma: no cover - CI installs jax
    raise missing_extra("jax", "jax", "pebbles.jax") from None

import numpy as np

from ._errors import InfeasibleBudgetError, PebblesError, PebblesTypeError, PebblesValueError
from ._jax_scan import Rows, is_ref, make_scan, split_rows
from ._jax_while import MAX_STEPS, make_while
from ._lowering import SlotProgram, lower
from ._moves import Game, encode
from ._online import while_budget
from ._registry import Schedule, check_gradient_method, gradient_methods
from ._registry import schedule as _schedule
from ._simulator import SimulationResult, simulate
from ._validation import a_kind, check_bool, check_callable, check_choice, check_int, check_steps

__all__ = ["checkpointed_scan", "checkpointed_while_loop", "scan_program"]


def _check_ops(program: SlotProgram) -> SlotProgram:
    """``program`` in steps, seed and paints (OP_FREE rows dropped, OP_TAPE rows as
    OP_STEP: no graphs are kept); a two-level schedule is refused."""
    return program.in_memory("checkpointed_scan runs")


def _from_moves(moves: Any, n: int, budget: int | None) -> SlotProgram:
    """Lower a schedule passed as ``schedule=`` (checked against ``budget`` if given)."""
    played = None  # a plain stream's play in the in-place game, where legal there
    if isinstance(moves, Schedule):
        if moves.n != n:
            raise PebblesValueError(f"schedule is {str(moves)!r}, for n={moves.n} steps, but "
                                    f"the scan has {n}; make the schedule for n={n}")
        arr, game = moves.encode(), moves.game
    else:
        arr = encode(moves)
        played = _inplace_play(arr, n)
        game = None if played is None else Game.INPLACE
    program = lower(arr, n, game=game)
    if budget is not None:
        peak = (played or simulate(arr, n, program.game)).peak_pebbles
        if peak > budget:
            made = f" or a schedule made for budget={budget}" if budget >= 0 else ""
            raise InfeasibleBudgetError(
                f"the schedule passed holds {peak} carries at once, more than budget={budget}; "
                f"pass budget >= {peak}{made}", peak)
    return program


def _inplace_play(arr: np.ndarray, n: int) -> SimulationResult | None:
    """A plain move stream played in the in-place game, or None where it is not legal
    there. Such a stream is checked in that game (one without ``move`` rows may be legal
    in both; the in-place game counts the carry a walk steps once, as the slot buffer
    holds it), else in :func:`pebbles.lower`'s default, whose errors name the rule."""
    try:
        return simulate(arr, n, Game.INPLACE)
    except PebblesError:
        return None


def _check_schedule(schedule: Any) -> None:
    """Refuse a method name or a non-iterable passed as ``schedule=``."""
    takes = ("schedule= takes a pebbles.schedule(...) value, a move stream, an encoded (m, 3) "
             "array or a SlotProgram")
    if isinstance(schedule, str):
        name = schedule if schedule in gradient_methods() else "treeverse"
        raise PebblesTypeError(f"schedule={schedule!r} is a string; {takes}: to pick a method "
                               f"by name pass method={name!r}")
    if not hasattr(schedule, "__iter__"):
        raise PebblesTypeError(f"schedule={schedule!r} ({type(schedule).__name__}) is not a "
                               f"schedule; {takes}")


#: Bytes of arrays each program cache keeps (its most recent entry always, however
#: large), and its most entries: at n = 10**6 a program's ops take 80 MB and its rows
#: about 30 MB, and a jit per length would otherwise keep one of each per length traced.
_CACHE_BYTES, _CACHE_ENTRIES = 128 * 2**20, 64


def _nbytes(value: Any) -> int:
    """Bytes of the NumPy arrays among the fields of a dataclass (a program, its rows)."""
    arrays = (getattr(value, f.name) for f in dataclasses.fields(value))
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


def _trim(entries: OrderedDict[tuple, tuple[Any, int]], most: int, most_bytes: int) -> None:
    """Drop the least recently used of ``entries`` (values ``(value, bytes)``) while there
    are more than ``most`` or their bytes exceed ``most_bytes``; the most recent one
    always stays."""
    while len(entries) > 1 and (len(entries) > most or sum(
            b for _, b in entries.values()) > most_bytes):
        entries.popitem(last=False)


def _bytes_cache(fun: Callable) -> Callable:
    """``fun`` memoised by its (hashable) arguments, least recently used first out while
    the entries' arrays (:func:`_nbytes`) exceed :data:`_CACHE_BYTES` or the entries
    :data:`_CACHE_ENTRIES`; the most recent entry is always kept, so tracing the same
    length again never recomputes it.

    ``cache_clear()`` empties it, ``cache_bytes()`` tells the bytes held and
    ``__wrapped__`` is ``fun`` (for arguments that are not hashable).
    """
    entries: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
    lock = threading.Lock()

    @functools.wraps(fun)
    def cached(*args: Any) -> Any:
        with lock:
            if args in entries:
                entries.move_to_end(args)
                return entries[args][0]
        value = fun(*args)
        with lock:
            entries[args] = (value, _nbytes(value))
            entries.move_to_end(args)
            _trim(entries, _CACHE_ENTRIES, _CACHE_BYTES)
        return value

    cached.cache_clear = entries.clear
    cached.cache_bytes = lambda: sum(b for _, b in entries.values())
    return cached


@_bytes_cache
def _named(n: int, budget: int | None, method: str, options: tuple) -> SlotProgram:
    """``options``: (name, value, type) triples, so that ``True`` and ``1`` (equal, same
    hash) are different keys and each is checked by the registry."""
    try:
        chosen = _schedule(method, n, budget=budget, **{k: v for k, v, _ in options})
    except InfeasibleBudgetError as exc:
        if budget is not None and budget < 0:
            raise  # the registry's words: the least budget that finishes the n steps
        raise InfeasibleBudgetError(
            f"budget={budget} cannot finish method={method!r} with n={n} steps; pass budget >= "
            f"{exc.minimum} (pebbles: {exc})", exc.minimum) from exc
    return lower(chosen)


def scan_program(length: int, *, budget: int | None = None, method: str = "treeverse",
                 schedule: Any = None, **options: Any) -> SlotProgram:
    """The checked slot program :func:`checkpointed_scan` replays for ``length`` steps.

    Parameters
    ----------
    length : int
        Number of scan steps ``n``.
    budget : int, optional
        Most carries stored besides ``s_0`` (Treeverse's ``S``).
    method : str
        A checkpoint-game or in-place-game method of :func:`pebbles.schedule`, one
        of :func:`pebbles.gradient_methods` (``"treeverse"``, ``"treeverse-paper"``,
        ``"bennett-gradient"``, ``"reversible-gradient"``, ``"online"``,
        ``"periodic"``, ``"store-all"``, ``"recompute-all"``); ignored when
        ``schedule`` is given.
    schedule : Schedule, iterable of Move, encoded (m, 3) array or SlotProgram, optional
        A move stream of the checkpoint or in-place game for ``length`` steps to
        replay instead (checked against ``budget``; a SlotProgram takes no budget).
    **options
        Options of the method (``inplace=True`` for Treeverse, ``every=`` for periodic);
        refused with ``schedule``.

    Returns
    -------
    SlotProgram
        ``forward_steps`` and ``backward_steps`` count the calls of ``f`` and
        of its VJP that the gradient makes; ``nslots`` the carries it stores.

    Examples
    --------
    >>> p = scan_program(20, budget=4)
    >>> p.forward_steps, p.backward_steps, p.nslots
    (41, 20, 6)
    """
    n = check_steps(length, "length")
    if budget is not None:
        budget = check_int("budget", budget)  # a negative one: the registry tells the least
    if isinstance(schedule, SlotProgram) and schedule.n != n:
        raise PebblesValueError(f"schedule is a program for n={schedule.n} steps but the scan "
                                f"has {n}; lower the schedule for n={n}")
    if schedule is not None:
        _check_with_schedule(schedule, budget, options)
    if isinstance(schedule, SlotProgram):
        return _check_ops(schedule.check())
    if schedule is not None:
        _check_schedule(schedule)
        return _check_ops(_from_moves(schedule, n, budget))
    check_gradient_method(method, options, "checkpointed_scan")
    key = _options_key(options)
    try:
        hash(key)
    except TypeError:
        return _check_ops(_named.__wrapped__(n, budget, method, key))
    return _check_ops(_named(n, budget, method, key))


def _options_key(options: dict[str, Any]) -> tuple:
    """A cache key of method options: (name, value, type), sorted by name."""
    return tuple(sorted((k, v, type(v)) for k, v in options.items()))


def _check_with_schedule(schedule: Any, budget: int | None, options: dict[str, Any]) -> None:
    """Refuse what a given schedule would silently override: method options, and a budget
    for a built program (its slots are fixed; a move stream is checked against it)."""
    if options:
        raise PebblesTypeError(
            f"options {', '.join(f'{k}={v!r}' for k, v in options.items())} with schedule=: "
            f"the schedule passed is already made; pass its options when making it "
            f"(pebbles.schedule(method, n, ...)), or drop schedule= to use method=")
    if isinstance(schedule, SlotProgram) and budget is not None:
        raise PebblesTypeError(
            f"budget={budget} with schedule=SlotProgram (n={schedule.n}, nslots="
            f"{schedule.nslots}): a built program's memory is fixed; pass the schedule "
            f"before lowering (checked against budget) or leave budget out")


@_bytes_cache
def _named_rows(n: int, budget: int | None, method: str, options: tuple) -> Rows:
    program = _named(n, budget, method, options)
    return split_rows(program.ops, program.nslots)


def _rows(n: int, budget: int | None, method: str, schedule: Any, options: dict) -> Rows:
    """The expanded program of a call (cached for named methods with hashable options)."""
    program = scan_program(n, budget=budget, method=method, schedule=schedule, **options)
    key = _options_key(options)
    if schedule is None and all(isinstance(v, (bool, int, float, str)) for _, v, _ in key):
        return _named_rows(n, budget, method, key)
    return split_rows(program.ops, program.nslots)


def _rows_key(n: int, budget: int | None, method: str, schedule: Any, options: dict,
              rows: Rows) -> tuple:
    """What identifies the program ``rows`` of a call in the cache of traced loops: the
    key of the program cache for a named method (:func:`_rows`), else a digest of the
    rows themselves (a schedule passed, or options that are not plain values)."""
    key = _options_key(options)
    if schedule is None and all(isinstance(v, (bool, int, float, str)) for _, v, _ in key):
        return ("named", n, budget, method, key)
    digest = hashlib.blake2b(digest_size=16)
    for a in (rows.forward, rows.walks, rows.paints, rows.blocks):
        digest.update(repr(a.shape).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return ("rows", rows.seed, rows.nslots, digest.hexdigest())


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------
def _check_idle(budget: Any, method: Any, schedule: Any, options: dict[str, Any]) -> None:
    """:func:`scan_program`'s checks for a scan of no steps (no schedule to make)."""
    if schedule is None:
        scan_program(1, budget=budget, method=method, **options)
        return
    if budget is not None:
        check_int("budget", budget, 0)
    _check_with_schedule(schedule, budget, options)
    made_for = getattr(schedule, "n", None)  # a Schedule or a SlotProgram knows its n
    if made_for is not None:
        raise PebblesValueError(f"schedule is made for n={made_for} steps but the scan has "
                                f"0; leave schedule= out for an empty scan")
    _check_schedule(schedule)
    moves = encode(schedule)  # a stream is made for n >= 1 steps, as a scan of one step finds
    raise PebblesValueError(f"schedule is a move stream of {len(moves)} moves, made for a scan "
                            f"of at least one step, but the scan has 0; leave schedule= out "
                            f"for an empty scan")


def _arrays(name: str, tree: Any, call: str) -> Any:
    """The leaves of ``tree`` as arrays, each named by its path in an error: a mutable
    array reference (``jax.new_ref``) is refused, as ``lax.scan`` refuses to return one,
    and so is a leaf that is no array (a str)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: _array(name + jax.tree_util.keystr(path), leaf, call), tree)


def _array(name: str, leaf: Any, call: str) -> Any:
    if is_ref(getattr(leaf, "aval", None)):
        raise PebblesTypeError(
            f"{name} is a mutable array reference ({leaf.aval}); {call} takes arrays there, "
            f"as JAX's loops do (a step cannot return a reference). Pass its value (r[...] "
            f"for the reference r) and write the result back after the loop (r[...] = ...)")
    try:
        return jnp.asarray(leaf)
    except TypeError as exc:
        raise PebblesTypeError(
            f"{name}={leaf!r:.60} is not an array: {call} takes a pytree of arrays and "
            f"numbers there, as JAX's loops do; pass the value as an array (jnp.asarray) or "
            f"close over it in the step") from exc


def _static_int(name: str, value: Any, what: str) -> Any:
    """``value`` as an int when it is a concrete 0-d integer array (anything else as it
    is, for the caller's check); a traced one is refused, naming ``what`` it gives."""
    if isinstance(value, (jax.Array, np.ndarray)) and value.ndim == 0 \
            and jnp.issubdtype(value.dtype, jnp.integer):
        try:
            return operator.index(value)
        except jax.errors.JAXTypeError as exc:
            raise PebblesTypeError(
                f"{name}=<traced {value.aval}>: {what} must be known when the loop is "
                f"traced; pass a Python int, or make {name} a static argument "
                f"(jax.jit(..., static_argnums=...))") from exc
    return value


def _int_length(length: Any) -> int:
    """``length`` as an int: a Python or NumPy integer, or a concrete 0-d integer array."""
    n = check_int("length", _static_int("length", length, "the number of steps"), 0)
    return n and check_steps(n, "length")  # 0: an empty scan


def _budget(budget: Any) -> Any:
    """``budget`` as an int when it is a concrete 0-d integer array (as ``length``)."""
    return _static_int("budget", budget, "the number of stored carries")


def _length(xs: Any, length: Any) -> int:
    """The number of steps from ``xs``'s leading axes and ``length``."""
    leaves = jax.tree.leaves(xs)
    for leaf in leaves:
        if not hasattr(leaf, "shape"):
            raise PebblesTypeError(
                f"xs={xs!r:.60} holds {a_kind(leaf)}, {leaf!r:.40}, which is not an array; "
                f"every leaf of xs needs to be an array with a leading axis of length n (the "
                f"steps): pass e.g. xs=jnp.stack(per_step_inputs)")
    sizes = {int(jnp.shape(a)[0]) if jnp.ndim(a) else -1 for a in leaves}
    if -1 in sizes:
        raise PebblesValueError("xs has a scalar leaf; every leaf of xs needs a leading axis of "
                                "length n (the steps): stack the per-step inputs")
    if len(sizes) > 1:
        raise PebblesValueError(f"xs leaves have different leading axis lengths {sorted(sizes)}; "
                                f"every leaf of xs needs the same length n (the steps)")
    if length is not None:
        length = _int_length(length)
        if sizes and length not in sizes:
            raise PebblesValueError(
                f"length={length} disagrees with xs, whose leading axis has length "
                f"{sizes.pop()}; pass length=None or the length of xs")
        return length
    if not sizes:
        given = "xs=None" if xs is None else f"xs={xs!r}, which holds no arrays"
        raise PebblesValueError(f"length=None and {given}: the number of steps is unknown; "
                                "pass length=n or xs with a leading axis of length n")
    return sizes.pop()


def _shape_of(f: Callable, name: str, *args: Any) -> Any:
    """``jax.eval_shape(f, *args)``; an untraceable ``f`` gives a PebblesTypeError."""
    try:
        return jax.eval_shape(f, *args)
    except (jax.errors.JAXTypeError, jax.errors.JAXIndexError) as exc:
        raise PebblesTypeError(
            f"{name}={getattr(f, '__name__', f)!r} cannot be traced by JAX "
            f"({type(exc).__name__}); {name} must be a pure function of jax arrays: use jnp "
            "instead of numpy, lax.cond / jnp.where instead of Python if on values, no "
            "float()/int() of the carry") from exc


def _traced(f: Callable, init: Any, x0: Any) -> tuple[Any, Any] | list[Any]:
    """``jax.eval_shape`` of ``f(init, x0)``; untraceable ``f`` gives a PebblesTypeError."""
    out = _shape_of(f, "f", init, x0)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise PebblesTypeError(f"f returned {_returned(out)}; f(carry, x) must return a pair "
                               f"(new_carry, y) like the body of jax.lax.scan")
    return out


def _returned(out: Any) -> str:
    """What ``f`` returned, from ``jax.eval_shape``'s placeholders: 'an array float32[2]',
    'a tuple of 3', 'None', 'a dict'."""
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)}"
    if isinstance(out, jax.ShapeDtypeStruct):
        return f"an array {out.dtype}{list(out.shape)}"
    return "None" if out is None else f"a {type(out).__name__}"


def _describe(tree: Any) -> str:
    return str(jax.tree.map(lambda a: f"{jnp.result_type(a)}{list(jnp.shape(a))}", tree))


def _carry_change(init: Any, out: Any) -> str | None:
    """What ``f`` changes about the carry (structure, shape or dtype), or None."""
    if jax.tree.structure(init) != jax.tree.structure(out):
        return "structure"
    for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(out), strict=True):
        if jnp.shape(a) != b.shape:
            return "shape"
        if jnp.result_type(a) != b.dtype:
            return "dtype"
    return None


def _promote(init: Any, out: Any) -> tuple[Any, bool]:
    """Cast the weak-typed leaves of ``init`` (Python scalars) whose dtype ``f`` changes to
    the promoted dtype, as ``lax.scan`` does; the others keep their weak type.

    Returns the carry and whether a leaf was cast (then ``f`` is traced again).
    """
    if jax.tree.structure(init) != jax.tree.structure(out):
        return init, False
    leaves = jax.tree.leaves(init)
    cast = [lax.convert_element_type(a, jnp.result_type(a, b.dtype))
            if getattr(a, "weak_type", False) and a.dtype != b.dtype else a
            for a, b in zip(leaves, jax.tree.leaves(out), strict=True)]
    changed = any(c is not a for a, c in zip(leaves, cast, strict=True))
    return jax.tree.unflatten(jax.tree.structure(init), cast), changed


def _check_carry(init: Any, out: Any, name: str, call: str) -> None:
    """Check that ``name`` keeps the carry's structure, shapes and dtypes."""
    change = _carry_change(init, out)
    if change is not None:
        raise PebblesTypeError(
            f"{name} changes the carry's {change}: init is {_describe(init)} but {name} returns "
            f"the carry {_describe(out)}; {call} must return a new carry with the structure, "
            f"shapes and dtypes of the old one (cast with .astype, pass init with the right "
            f"shapes)")


def _carried(new_carry: Callable[[Any], Any], init: Any, name: str, call: str) -> Any:
    """``init`` checked against the carry ``new_carry(init)`` returns, its Python-scalar
    leaves promoted as ``lax.scan`` and ``lax.while_loop`` promote them: cast where the
    step changes their dtype, weakly typed otherwise."""
    out = new_carry(init)
    init, changed = _promote(init, out)
    if changed:
        out = new_carry(init)
    _check_carry(init, out, name, call)
    return init


def _hoisted(f: Callable, *args: Any) -> tuple[Callable, list[Any], bool]:
    """``f`` as ``fun(*args, *consts)`` with ``consts`` the arrays ``f`` closes over.

    ``jax.closure_convert`` hoists only the values that may carry a tangent: a
    ``vmap``-batched or integer tracer would stay inside ``fun`` and escape its trace
    when the reverse pass runs ``fun`` later. Here every traced value is an argument
    (integer and boolean ones get no cotangent), and so is every concrete array, so
    that a compiled loop takes them as inputs instead of embedding them; a mutable
    array reference (``jax.new_ref``) stays inside.

    Also returned: whether ``fun`` may be cached (:class:`_LoopCache`): no tracer among
    the consts (they belong to the trace that made them) and no reference kept inside.
    """
    closed, shape = jax.make_jaxpr(f, return_shape=True)(*args)
    is_tracer = [isinstance(c, jax.core.Tracer) for c in closed.consts]
    hoist = [t or (isinstance(c, (jax.Array, np.ndarray)) and not is_ref(getattr(c, "aval", None)))
             for c, t in zip(closed.consts, is_tracer, strict=True)]
    kept = [None if h else c for c, h in zip(closed.consts, hoist, strict=True)]
    out_tree = jax.tree.structure(shape)

    def fun(*args_consts: Any) -> Any:
        hoisted = iter(args_consts[len(args):])
        consts = [next(hoisted) if h else c for c, h in zip(kept, hoist, strict=True)]
        leaves = jax.tree.leaves(args_consts[:len(args)])
        return jax.tree.unflatten(out_tree, jax.core.eval_jaxpr(closed.jaxpr, consts, *leaves))

    cacheable = all(hoist) and not any(is_tracer)
    return fun, [c for c, h in zip(closed.consts, hoist, strict=True) if h], cacheable


def _convert(f: Callable, init: Any, x0: Any) -> tuple[Any, Callable, list[Any], bool]:
    """Checked carry and the closure-converted ``f(carry, x, *consts)`` with its consts,
    and whether it may be cached."""
    init = _carried(lambda c: _traced(f, c, x0)[0], init, "f", "f(carry, x)")
    fun, consts, cacheable = _hoisted(f, init, x0)
    return init, fun, consts, cacheable


def _convert_while(cond: Callable, body: Callable,
                   init: Any) -> tuple[Any, Callable, list[Any], Callable, list[Any], bool]:
    """Checked carry, closure-converted ``body(carry, *consts)`` and ``cond(carry, *cconsts)``,
    and whether they may be cached."""
    init = _carried(lambda c: _shape_of(body, "body", c), init, "body", "body(carry)")
    test = _shape_of(cond, "cond", init)
    if not hasattr(test, "dtype") or test.shape != () or test.dtype != jnp.bool_:
        raise PebblesTypeError(
            f"cond returns {_describe(test)}; cond(carry) must return a boolean scalar, as "
            f"jax.lax.while_loop's cond_fun (reduce with jnp.all / jnp.any, compare with > 0)")
    fun, consts, body_ok = _hoisted(body, init)
    cfun, cconsts, cond_ok = _hoisted(cond, init)
    return init, fun, consts, cfun, cconsts, body_ok and cond_ok


# ---------------------------------------------------------------------------
# the cache of traced loops
# ---------------------------------------------------------------------------
try:  # JAX's own trace caches add it to their keys: x64, dtype promotion, vmap axis names
    from jax._src.config import trace_context as _jax_trace_context
except ImportError:  # pragma: no cover - then nothing is cached
    _jax_trace_context = None

#: Most entries of the cache of traced loops (:class:`_LoopCache`), and the bytes of the
#: rows and consts they hold (the most recent entry always kept, however large).
_LOOP_ENTRIES, _LOOP_BYTES = 64, _CACHE_BYTES


class _Identity:
    """A weak reference as a key part: hashed and compared by the identity of its live
    object (a dead one equals nothing), so that the key keeps no function alive."""

    __slots__ = ("_hash", "ref")

    def __init__(self, obj: Any, callback: Callable) -> None:
        self.ref = weakref.ref(obj, callback)
        self._hash = id(obj)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Identity):
            return NotImplemented
        obj = self.ref()
        return obj is not None and obj is other.ref()


class _Held:
    """An attribute's value as a key part: held, and compared by identity (a value equal
    but not the same, as a new array, makes another key)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Held) and self.value is other.value


def _attributes(obj: Any) -> tuple:
    """The key part of a bound method's object: its attributes' names and the identity
    of their values, so that reassigning one the method reads (``model.w = new_w``)
    traces anew, as ``lax.scan`` does for a bound method, instead of reusing the values
    read at the first trace. A container changed in place (``model.params["w"] = ...``)
    is the same value: make a new one, as for a closure."""
    attrs = getattr(obj, "__dict__", None)
    if not isinstance(attrs, dict):
        return ()
    return tuple((name, _Held(value)) for name, value in attrs.items())


@dataclasses.dataclass(frozen=True)
class _Traced:
    """A traced loop: ``call(carry, ..., consts...)`` and what it is called with besides
    the user's arguments."""

    casts: tuple[Any, ...]  # per init leaf: the dtype f promotes a weak-typed leaf to, or None
    consts: tuple[Any, ...]  # the arrays the step closes over (body's for a while loop)
    cconsts: tuple[Any, ...]  # cond's, for a while loop
    call: Callable

    def carry(self, init: Any) -> Any:
        """``init`` with the leaves ``f`` promotes cast, as when it was traced."""
        leaves, tree = jax.tree.flatten(init)
        return jax.tree.unflatten(tree, [a if d is None else lax.convert_element_type(a, d)
                                         for a, d in zip(leaves, self.casts, strict=True)])


def _casts(init: Any, carried: Any) -> tuple[Any, ...]:
    """Per leaf of ``init``: the dtype :func:`_carried` cast it to, or None."""
    return tuple(None if b is a else b.dtype
                 for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(carried), strict=True))


def _avals(tree: Any) -> tuple:
    """A tree's structure and its leaves' shapes, dtypes and weak types (their avals)."""
    aval = getattr(jax, "typeof", None) or jax.core.get_aval
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple(aval(a) for a in leaves)


class _LoopCache:
    """Traced and jitted loops keyed, as ``lax.scan``'s trace cache is, on the identity of
    the user's functions (weakly: an entry goes when a function does) and on everything
    else that shapes the trace: the avals of the inputs, the program, the options, and
    JAX's trace context. A bound method is keyed on its ``__self__`` and ``__func__``,
    and on the identity of its object's attributes (:func:`_attributes`); a callable
    that takes no weak reference, or an unhashable key part, is not cached.

    Least recently used first out while there are more than :data:`_LOOP_ENTRIES`
    entries or their rows and consts exceed :data:`_LOOP_BYTES`; the most recent one
    always stays. ``cache_clear()`` empties it, ``len()`` counts its entries.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, tuple[_Traced, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._dead: list[weakref.ref] = []  # of functions gone, purged at the next access

    def _died(self, ref: weakref.ref) -> None:
        self._dead.append(ref)  # no lock here: the collector may run inside a locked block

    def _purge(self) -> None:
        """Drop the entries of functions gone (under the lock)."""
        while self._dead:
            ref = self._dead.pop()
            for key in [k for k in self._entries if any(p.ref is ref for p in k[0])]:
                del self._entries[key]

    def key(self, functions: tuple[Callable, ...], *rest: Any) -> tuple | None:
        """The key of a call of ``functions`` with ``rest``, or None (not cached)."""
        if _jax_trace_context is None:
            return None
        parts = []
        for fn in functions:
            objs = (fn.__self__, fn.__func__) if isinstance(fn, types.MethodType) else (fn,)
            try:
                parts.extend(_Identity(obj, self._died) for obj in objs)
            except TypeError:  # no weak reference to it
                return None
        attrs = tuple(_attributes(fn.__self__) for fn in functions
                      if isinstance(fn, types.MethodType))
        key = (tuple(parts), attrs, _jax_trace_context(), *rest)
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def get(self, key: tuple | None) -> _Traced | None:
        if key is None:
            return None
        with self._lock:
            self._purge()
            hit = self._entries.get(key)
            if hit is None:
                return None
            self._entries.move_to_end(key)
            return hit[0]

    def put(self, key: tuple, traced: _Traced, nbytes: int) -> None:
        with self._lock:
            self._purge()
            self._entries[key] = (traced, nbytes)
            self._entries.move_to_end(key)
            _trim(self._entries, _LOOP_ENTRIES, _LOOP_BYTES)

    def __len__(self) -> int:
        with self._lock:
            self._purge()
            return len(self._entries)

    def cache_clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._dead.clear()


_LOOPS = _LoopCache()


def _arrays_bytes(*groups: Any) -> int:
    return sum(int(getattr(a, "nbytes", 0)) for g in groups for a in g)


def _unroll(unroll: Any) -> int | bool:
    """``unroll`` checked as ``lax.scan`` takes it: True, False or an int >= 1."""
    if isinstance(unroll, (bool, np.bool_)):
        return bool(unroll)
    if not isinstance(unroll, numbers.Integral):
        raise PebblesTypeError(f"unroll={unroll!r} must be an int or a bool, as lax.scan's; "
                               f"pass unroll=1 (no unrolling) or unroll=True")
    return check_int("unroll", unroll, 1)


# ---------------------------------------------------------------------------
# the public functions
# ---------------------------------------------------------------------------
def checkpointed_scan(f: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any = None,
                      length: int | None = None, reverse: bool = False, unroll: int | bool = 1,
                      *, budget: int | None = None, method: str = "treeverse",
                      schedule: Any = None, _split_transpose: bool = False,
                      **options: Any) -> tuple[Any, Any]:
    """``jax.lax.scan`` whose reverse pass stores at most ``budget`` carries.

    Parameters
    ----------
    f : callable
        ``f(carry, x) -> (carry, y)``, traceable by JAX; the new carry has the
        structure, shapes and dtypes of ``carry``. Arrays ``f`` closes over
        (parameters) are differentiated like ``init`` and ``xs``.
    init : pytree
        The initial carry ``s_0``.
    xs : pytree, optional
        Per-step inputs stacked along a leading axis of length ``n``.
    length : int, optional
        ``n``; needed when ``xs`` is None, else it must agree with ``xs``. A
        Python or NumPy integer or a concrete 0-d integer array (not a traced one).
    reverse : bool
        Scan from the last step to the first, as ``lax.scan(..., reverse=True)``.
    unroll : int or bool
        As ``lax.scan``'s; passed to the ``lax.scan`` that runs when the call is
        not differentiated. The checkpointed forward and reverse passes do not
        unroll: it changes neither the schedule nor the gradient.
    budget : int
        Most carries stored at once besides ``s_0`` (the pebble budget ``S``);
        the gradient keeps at most ``budget + 2`` carries in its slot buffer
        (``s_0`` and the scratch ``s_n`` included). Needed by Treeverse;
        checked against the other methods' schedules. As ``length``, it may be a
        concrete 0-d integer array, not a traced one.
    method : str
        A checkpoint-game or in-place-game method of :func:`pebbles.schedule`, one
        of :func:`pebbles.gradient_methods`: ``"treeverse"`` (default, optimal),
        ``"treeverse-paper"``, ``"bennett-gradient"``, ``"reversible-gradient"``,
        ``"online"``, ``"periodic"``, ``"store-all"``, ``"recompute-all"``.
    schedule : Schedule, iterable of Move, encoded array or SlotProgram, optional
        Any checkpoint-game or in-place-game schedule for ``n`` steps,
        replayed instead of ``method``.
    _split_transpose : bool
        Accepted for ``lax.scan``'s signature, without effect: the reverse pass
        is the schedule's, not JAX's transpose of a scan.
    **options
        Options of the method, e.g. ``inplace=True`` for Treeverse's in-place
        game (fewer forward steps: a step may overwrite its input carry), or
        ``every=`` for ``"periodic"``.

    Returns
    -------
    carry, ys
        The final carry and the stacked outputs, as ``jax.lax.scan`` (with its
        dtypes and weak types: a Python-scalar carry stays weakly typed).

    Raises
    ------
    InfeasibleBudgetError
        If the budget cannot finish the game (the message names the minimum).
    PebblesValueError
        If ``length`` disagrees with ``xs`` or neither gives ``n``, or if
        ``method`` is a reversible-game or two-level (disk) method.
    PebblesTypeError
        If ``f`` is not traceable or changes the carry's structure, shape or
        dtype, if ``length`` is traced, if a leaf of ``xs`` is not an array, or if
        ``schedule`` is a method name.

    Notes
    -----
    A ``jax.custom_vjp``: reverse mode, and second derivatives forward-over-reverse
    (``jax.hessian``, ``jax.jacfwd(jax.grad(...))``); JAX refuses forward mode
    (``jax.jvp``) and ``jax.grad(jax.grad(...))``. As ``lax.scan``, ``f`` is
    differentiated only with respect to the perturbed inputs and the carry leaves it
    makes depend on them, so an operation JAX cannot differentiate may touch the others.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from pebbles.jax import checkpointed_scan
    >>> def loss(a, s0):
    ...     step = lambda s, _: (s + 0.01 * jnp.sin(a * s), None)
    ...     return checkpointed_scan(step, s0, length=100, budget=4)[0]
    >>> ref = jax.grad(lambda a, s0: jax.lax.scan(
    ...     lambda s, _: (s + 0.01 * jnp.sin(a * s), None), s0, length=100)[0])(1.5, 0.3)
    >>> bool(jnp.allclose(jax.grad(loss)(1.5, 0.3), ref))
    True
    """
    check_callable("f", f, "f(carry, x) -> (carry, y)")
    n = _length(xs, length)
    budget = _budget(budget)
    reverse = check_bool("reverse", reverse)
    unroll = _unroll(unroll)
    if unroll is True or unroll is False:  # lax.scan's meaning, not the int 1 or 0 it hashes as
        unroll = max(n, 1) if unroll else 1
    check_bool("_split_transpose", _split_transpose)
    init = _arrays("init", init, "checkpointed_scan")
    xs = _arrays("xs", xs, "checkpointed_scan")
    if n == 0:  # nothing to schedule: the arguments are checked as for one step
        _check_idle(budget, method, schedule, options)
        return lax.scan(f, init, xs, length=0, reverse=reverse, unroll=unroll)
    if reverse:
        xs = jax.tree.map(lambda a: jnp.flip(a, 0), xs)
    rows = _rows(n, budget, method, schedule, options)
    key = _LOOPS.key((f,), "scan", _avals(init), _avals(xs), n, unroll,
                     _rows_key(n, budget, method, schedule, options, rows))
    traced = _LOOPS.get(key)
    if traced is None:
        x0 = jax.tree.map(lambda a: a[0], xs)
        carried, fun, consts, cacheable = _convert(f, init, x0)
        scan = make_scan(fun, rows, n, unroll)
        traced = _Traced(_casts(init, carried), tuple(consts), (), scan)
        if key is not None and cacheable:  # jitted: JAX caches its traces and compiles
            traced = dataclasses.replace(traced, call=jax.jit(scan))
            _LOOPS.put(key, traced, _nbytes(rows) + _arrays_bytes(consts))
    carry, ys = traced.call(traced.carry(init), xs, list(traced.consts))
    if reverse:
        ys = jax.tree.map(lambda a: jnp.flip(a, 0), ys)
    return carry, ys


def checkpointed_while_loop(cond: Callable[[Any], Any], body: Callable[[Any], Any], init: Any,
                            *, budget: int, max_steps: int | None = None,
                            beyond: str = "greedy") -> Any:
    """``jax.lax.while_loop`` whose reverse pass stores at most ``budget`` carries.

    The number of steps ``n`` is known only when ``cond`` says stop, so no
    schedule can be made in advance: the online scheduler's controller runs
    inside the compiled program (store every state, then Stumm & Walther's
    r = 2 phase, optimal up to ``n = (budget + 1)(budget + 2)/2 - 1``, their
    r = 3 phase, at most 3 steps above the optimum up to ``n = beta(budget, 3)``,
    then the greedy rule with exact reversal costs, or Wang, Moin & Iaccarino's
    dynamic checkpointing), and the reverse pass reverses each interval
    between the kept carries with the optimal offline schedule (Treeverse).
    The forward steps are those of ``pebbles.online(n, budget, beyond=beyond)``
    (docs/online.md).

    Parameters
    ----------
    cond : callable
        ``cond(carry) -> bool`` scalar: keep going while true.
    body : callable
        ``body(carry) -> carry`` with the structure, shapes and dtypes of
        ``carry``. Arrays ``body`` closes over (parameters) are differentiated
        like ``init``.
    init : pytree
        The initial carry ``s_0``.
    budget : int
        Most carries stored besides ``init`` (``>= 2``), in one preallocated
        buffer per carry leaf; the working carry is the loop's own. It and
        ``max_steps`` may be concrete 0-d integer arrays, not traced ones.
    max_steps : int, optional
        Stop after ``max_steps`` steps even if ``cond`` is still true. Runs
        longer than ``2**30`` steps are not supported (int32 counters).
    beyond : {'greedy', 'wang-moin'}
        The rule past the r = 3 phase (``n > beta(S, 3)``), as
        :class:`pebbles.OnlineScheduler`'s.
        ``'greedy'`` (default) frees the checkpoint after which the reverse
        sweep is cheapest, O(budget) per step with costs in float64 under
        ``jax_enable_x64`` (float32 otherwise: exact while the costs stay
        below 2^24, about ``n`` times the repetition number); ``'wang-moin'``
        needs a few integer operations per step.

    Returns
    -------
    pytree
        The final carry, as ``jax.lax.while_loop`` (with its dtypes and weak
        types). Reverse-mode differentiable (``jax.grad``, ``jax.vjp``) with
        respect to ``init`` and the arrays ``body`` closes over; integer and
        boolean leaves get no cotangent, and ``body`` is differentiated only with
        respect to the perturbed inputs and the carry leaves it makes depend on
        them, as by ``lax.scan``. Second derivatives work
        forward-over-reverse (``jax.hessian``, ``jax.jacfwd(jax.grad(...))``);
        JAX refuses forward mode and ``jax.grad(jax.grad(...))``.

    Raises
    ------
    InfeasibleBudgetError
        If ``budget < 2``.
    PebblesTypeError
        If ``body`` or ``cond`` is not traceable, ``body`` changes the carry's
        structure, shape or dtype, or ``cond`` does not return a boolean scalar.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from pebbles.jax import checkpointed_while_loop
    >>> def final(a, x0):          # x <- x + 0.1 sin(a x) until x > 2
    ...     cond = lambda c: c[0] <= 2.0
    ...     body = lambda c: (c[0] + 0.1 * jnp.sin(a * c[0]), c[1] + 1)
    ...     return checkpointed_while_loop(cond, body, (x0, 0), budget=3)
    >>> x, n = jax.jit(final)(1.0, 0.5)
    >>> int(n)
    19
    >>> def ref(a, x0):
    ...     return jax.lax.scan(lambda x, _: (x + 0.1 * jnp.sin(a * x), None), x0,
    ...                         length=19)[0]
    >>> g = jax.jit(jax.grad(lambda a: final(a, 0.5)[0]))(1.0)  # jit: compiled once
    >>> bool(jnp.allclose(g, jax.grad(ref)(1.0, 0.5)))
    True
    """
    check_callable("cond", cond, "cond(carry) -> bool")
    check_callable("body", body, "body(carry) -> carry")
    budget = while_budget(_budget(budget), "checkpointed_while_loop", ("carry", "carries"))
    if max_steps is not None:
        max_steps = check_int("max_steps", _static_int("max_steps", max_steps, "the most "
                                                       "steps"), 0)
        if max_steps > MAX_STEPS:
            raise PebblesValueError(f"max_steps={max_steps} is more than the {MAX_STEPS} steps "
                                    f"the int32 counters allow; pass max_steps <= {MAX_STEPS}")
    beyond = check_choice("beyond", beyond, ("greedy", "wang-moin"))
    init = _arrays("init", init, "checkpointed_while_loop")
    key = _LOOPS.key((cond, body), "while", _avals(init), budget, max_steps, beyond)
    traced = _LOOPS.get(key)
    if traced is None:
        carried, fun, consts, cfun, cconsts, cacheable = _convert_while(cond, body, init)
        loop = make_while(fun, cfun, budget, max_steps, beyond == "greedy")
        traced = _Traced(_casts(init, carried), tuple(consts), tuple(cconsts), loop)
        if key is not None and cacheable:  # jitted: JAX caches its traces and compiles
            traced = dataclasses.replace(traced, call=jax.jit(loop))
            _LOOPS.put(key, traced, _arrays_bytes(consts, cconsts))
    return traced.call(traced.carry(init), list(traced.consts), list(traced.cconsts))
