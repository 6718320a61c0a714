"""The compiled loops behind :func:`pebbles.jax.checkpointed_scan` (needs JAX).

A checked slot program (``pebbles.lower``: rows ``(op, src, dst, first,
count)`` over ``nslots`` slots, slot 0 holding ``s_0``) is split at its one
``OP_SEED`` row:

* the walks before the seed (``OP_STEP`` rows only) run in the
  ``custom_vjp`` forward pass, which thereby computes the scan's outputs
  ``ys`` and final carry while it places the schedule's first checkpoints;
* the rows after it run in the reverse pass as blocks of walks (recomputation)
  followed by blocks of paints (the VJP of step ``first`` at the state in slot
  ``src``): an outer ``lax.fori_loop`` over the blocks, an inner loop over
  each block's walks and another over its paints.

Each walk reads its start state out of the slot buffer once, steps it as
``lax.scan`` would (the working carry in the loop) and writes the state it
reaches once. Two layouts are avoided because XLA then copies the whole buffer
at every step: a ``lax.cond`` that passes the buffer through (between a step
and a paint), and a fusion that reads one slot while it writes another in
place.

The slots are one preallocated buffer per carry leaf with a leading slot axis;
``f`` and its VJP are traced a fixed number of times, whatever ``n`` and the
budget. Integer and boolean leaves (counters, indices) are carried and stored
like the others but get no cotangent; nor do the floating-point leaves that are not
perturbed (``symbolic_zeros``: the step is differentiated, as by ``lax.scan``, only
with respect to the perturbed leaves and those it makes depend on them). The
schedules are the pebble games of Liu & Xu, "Automatic differentiation in physics
simulation" (appendix), Treeverse being Griewank's binomial checkpointing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.extend.core import Jaxpr, Literal

from ._errors import PebblesTypeError, add_note
from ._lowering import OP_PAINT, OP_SEED

__all__ = ["Rows", "instantiate", "is_ref", "make_scan", "primal", "split_rows", "unwrap"]


@dataclass(frozen=True, slots=True)
class Rows:
    """A slot program split at its seed and grouped for the loops.

    Attributes
    ----------
    forward : ndarray, int32, shape (p, 4)
        The walks ``(src, dst, first, count)`` before the seed: steps
        ``first .. first + count - 1`` from the state in slot ``src``, leaving
        the last state in slot ``dst``.
    seed : int
        The slot that holds ``s_n`` when the forward walks are done.
    walks : ndarray, int32, shape (a, 4)
        The walks after the seed, in order.
    paints : ndarray, int32, shape (b, 2)
        The paint rows ``(src, i)`` (backward step ``i`` from slot ``src``), in order.
    blocks : ndarray, int32, shape (B, 4)
        ``(w0, w1, p0, p1)``: the rows after the seed are block after block of
        ``walks[w0:w1]`` followed by ``paints[p0:p1]``.
    nslots : int
        Slots of the buffer, slot 0 (``s_0``) included.
    """

    forward: np.ndarray
    seed: int
    walks: np.ndarray
    paints: np.ndarray
    blocks: np.ndarray
    nslots: int


def _blocks(is_paint: np.ndarray) -> np.ndarray:
    """``(w0, w1, p0, p1)`` of each run of walks followed by a run of paints."""
    start = np.r_[True, ~is_paint[1:] & is_paint[:-1]]
    block = np.cumsum(start) - 1
    nwalks = np.bincount(block[~is_paint], minlength=int(block[-1]) + 1)
    npaints = np.bincount(block[is_paint], minlength=int(block[-1]) + 1)
    w1, p1 = np.cumsum(nwalks), np.cumsum(npaints)
    return np.stack([w1 - nwalks, w1, p1 - npaints, p1], axis=1)


def split_rows(ops: np.ndarray, nslots: int) -> Rows:
    """Split a slot program's ``ops`` at its one ``OP_SEED`` row and group the rest.

    Examples
    --------
    Two steps with one slot besides ``s_0`` (recompute-all): walk to ``s_2``
    in slot 1, seed there, recompute ``s_1`` into slot 1, paint 1, paint 0.

    >>> import numpy as np
    >>> ops = np.array([[0, 0, 1, 0, 2], [1, 1, 0, 2, 0], [0, 0, 1, 0, 1],
    ...                 [2, 1, 0, 1, 0], [2, 0, 0, 0, 0]])
    >>> r = split_rows(ops, 2)
    >>> r.forward.tolist(), r.seed, r.walks.tolist(), r.paints.tolist(), r.blocks.tolist()
    ([[0, 1, 0, 2]], 1, [[0, 1, 0, 1]], [[1, 1], [0, 0]], [[0, 1, 0, 2]])
    """
    ops = np.asarray(ops, dtype=np.int64).reshape(-1, 5)
    k = int(np.nonzero(ops[:, 0] == OP_SEED)[0][0])
    tail = ops[k + 1:]
    is_paint = tail[:, 0] == OP_PAINT
    arrays = (ops[:k, 1:], tail[~is_paint, 1:], tail[is_paint][:, [1, 3]], _blocks(is_paint))
    forward, walks, paints, blocks = (np.ascontiguousarray(a, dtype=np.int32) for a in arrays)
    if not len(walks):  # no recomputation (store-all): a row that never runs keeps shapes legal
        walks = np.zeros((1, 4), dtype=np.int32)
    return Rows(forward, int(ops[k, 1]), walks, paints, blocks, int(nslots))


# ---------------------------------------------------------------------------
# pytree helpers: inexact leaves get cotangents, the others do not
# ---------------------------------------------------------------------------
def _inexact(leaf: Any) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def _split(leaves: Sequence[Any], mask: Sequence[bool]) -> list[Any]:
    return [a for a, m in zip(leaves, mask, strict=True) if m]


def _merge(diff: Sequence[Any], full: Sequence[Any], mask: Sequence[bool]) -> list[Any]:
    it = iter(diff)
    return [next(it) if m else a for a, m in zip(full, mask, strict=True)]


def _at(tree: Any, i: Any) -> Any:
    return jax.tree.map(lambda a: lax.dynamic_index_in_dim(a, i, 0, keepdims=False), tree)


def _put(tree: Any, value: Any, i: Any) -> Any:
    return jax.tree.map(lambda a, v: lax.dynamic_update_index_in_dim(a, v, i, 0), tree, value)


def _slots(tree: Any, nslots: int) -> Any:
    """A zero slot buffer: one array per leaf of ``tree`` with a leading axis of ``nslots``."""
    return jax.tree.map(lambda a: jnp.zeros((nslots, *jnp.shape(a)), jnp.result_type(a)), tree)


def _weak_like(tree: Any, avals: Any) -> Any:
    """``tree`` with the weak types of ``avals`` (``lax.scan``'s outputs of a Python-scalar
    carry are weak-typed; the buffer writes are not).

    A scatter into zeros filled from a Python scalar keeps the zeros' weak type; XLA
    reduces it to a copy.
    """
    def weak(a: Any, aval: Any) -> Any:
        if not getattr(aval, "weak_type", False) or getattr(a, "weak_type", False):
            return a
        zeros = lax.full(jnp.shape(a), np.zeros((), aval.dtype).item())
        return zeros.at[...].set(a) if zeros.dtype == aval.dtype else a
    return jax.tree.map(weak, tree, avals)


def _const_cotangents(gcs: list[Any], consts: Sequence[Any]) -> list[Any]:
    """The cotangents ``gcs`` of ``consts`` (None: not differentiated) with the consts'
    weak types, as ``lax.scan`` gives them: a Python-scalar parameter's gradient stays
    weakly typed (``g * float32_array`` is float32); the summed vjps are not."""
    aval = getattr(jax, "typeof", None) or jax.core.get_aval  # jax.typeof: JAX >= 0.4.36
    return [g if g is None else _weak_like(g, aval(c)) for g, c in zip(gcs, consts, strict=True)]


@jax.tree_util.register_static
@dataclass(frozen=True, slots=True)
class _Shapes:
    """Tree structure of the carry and the masks of its leaves, of ``xs``'s, of ``y``'s and
    of the consts: True for the leaves the rules differentiate (inexact and perturbed).

    A static pytree (no leaves): the forward rule passes it to the backward rule among
    the residuals.
    """

    carry: Any
    carry_mask: tuple[bool, ...]
    x_mask: tuple[bool, ...]
    y_mask: tuple[bool, ...]
    const_mask: tuple[bool, ...]


def unwrap(tree: Any) -> tuple[Any, list[bool]]:
    """The values of a ``custom_vjp`` forward rule's argument (leaves
    ``CustomVJPPrimal``, ``symbolic_zeros=True``) and whether each leaf is perturbed."""
    leaves, tree_def = jax.tree.flatten(tree)
    return (jax.tree.unflatten(tree_def, [a.value for a in leaves]),
            [bool(a.perturbed) for a in leaves])


def instantiate(ct: Any) -> Any:
    """A cotangent with a ``SymbolicZero`` (an unperturbed output's) made zeros."""
    if type(ct) is SymbolicZero:
        return jnp.zeros(ct.aval.shape, ct.aval.dtype)
    return ct


#: Primitives that call a jaxpr once on their inputs (``jax.jit``, ``jax.checkpoint``).
_CALLS = frozenset({"jit", "pjit", "closed_call", "core_call", "remat2", "checkpoint"})


def _inner(eqn: Any) -> Any:
    """The jaxpr a call equation runs on its own inputs and outputs, or None (loops,
    conditionals and custom derivatives are not looked into)."""
    if eqn.primitive.name not in _CALLS:
        return None
    for name in ("jaxpr", "call_jaxpr"):
        inner = eqn.params.get(name)
        inner = getattr(inner, "jaxpr", inner)
        if (isinstance(inner, Jaxpr) and len(inner.invars) == len(eqn.invars)
                and len(inner.outvars) == len(eqn.outvars)):
            return inner
    return None


def is_ref(aval: Any) -> bool:
    """Whether ``aval`` (a jaxpr variable's, a tracer's or a ``jax.ref.Ref``'s) is a
    mutable array reference's (``jax.ref.AbstractRef``; by its class's name where
    ``jax.ref`` is missing)."""
    ref_type = getattr(getattr(jax, "ref", None), "AbstractRef", None)
    if ref_type is not None:
        return isinstance(aval, ref_type)
    return type(aval).__name__ == "AbstractRef"


def _is_ref(v: Any) -> bool:
    """Whether the jaxpr variable or literal ``v`` is a mutable array reference."""
    return is_ref(v.aval)


def _flow(jaxpr: Any, perturbed: Sequence[bool]) -> tuple[list[bool], list[bool]]:
    """Which outputs and which inputs of ``jaxpr`` depend on its perturbed inputs,
    forward through its equations (:func:`_depends`); an input depends on them when it
    is a reference (``jax.new_ref``) that the equations write a dependent value into."""
    hit = {v for v, p in zip(jaxpr.invars, perturbed, strict=True) if p}

    def is_hit(v: Any) -> bool:
        return not isinstance(v, Literal) and v in hit

    for eqn in jaxpr.eqns:
        ins = [is_hit(v) for v in eqn.invars]
        if eqn.primitive.name == "stop_gradient" or not any(ins):
            continue
        inner = _inner(eqn)
        outs, refs = (_flow(inner, ins) if inner is not None
                      else ([True] * len(eqn.outvars), [True] * len(eqn.invars)))
        hit.update(v for v, o in zip(eqn.outvars, outs, strict=True)
                   if o and _inexact(v.aval.dtype))
        hit.update(v for v, r in zip(eqn.invars, refs, strict=True)
                   if r and _is_ref(v) and _inexact(v.aval.dtype))
    return [is_hit(v) for v in jaxpr.outvars], [is_hit(v) for v in jaxpr.invars]


def _depends(jaxpr: Any, perturbed: Sequence[bool]) -> list[bool]:
    """Which outputs of ``jaxpr`` depend on its perturbed inputs, forward through its
    equations: an inexact output of an equation depends on every input of it (nothing
    through ``stop_gradient``; the jaxprs of ``jax.jit`` and ``jax.checkpoint`` calls are
    followed). Conservative where ``lax.scan``'s own analysis looks into loops.

    State is followed too: an equation with a dependent input makes every reference
    (``jax.new_ref``) among its inputs dependent (a write of a dependent value, or any
    use of the reference by a loop or conditional), and a read of a dependent reference
    is dependent; a reference is one variable of the jaxpr, so every later read sees it.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> def step(c, p):
    ...     r = jax.new_ref(jnp.zeros(()))
    ...     r[...] = c * p
    ...     return r[...]
    >>> _depends(jax.make_jaxpr(step)(1.0, 0.5).jaxpr, [False, True])
    [True]
    """
    return _flow(jaxpr, perturbed)[0]


def _outer_refs(closed: Any) -> list[Any]:
    """The types of the references (``jax.new_ref``) a step's jaxpr gets from outside:
    its inputs and its constants (a reference made outside any trace)."""
    return [v.aval for v in (*closed.jaxpr.constvars, *closed.jaxpr.invars) if _is_ref(v)]


def _refuse_outer_refs(closed: Any) -> None:
    """Refuse a step that uses a reference made outside it: the reverse pass reruns
    steps, which would repeat their reads and writes of it out of order (a wrong
    gradient), and a ``jax.custom_vjp`` gives no cotangent to a reference."""
    refs = _outer_refs(closed)
    if refs:
        raise PebblesTypeError(
            f"the step uses mutable array references made outside it ({', '.join(map(str, refs))}"
            f"); a checkpointed loop reruns steps in its reverse pass, which would repeat "
            f"their reads and writes of a reference out of order, so it is not differentiated "
            f"through one. Make the reference inside the step (jax.new_ref there), or read it "
            f"outside the loop (r[...]) and pass the value in (carry it if the step updates it)")


def _shapes(fun: Callable, init: Any, x: Any, consts: Sequence[Any],
            perturbed: tuple[list[bool], list[bool], list[bool]]) -> tuple[_Shapes, Any]:
    """The structures and masks for ``fun(carry, x, *consts) -> (carry, y)`` given which
    leaves of ``init``, ``x`` and ``consts`` are perturbed: a carry leaf is differentiated
    if its initial value is perturbed or the step makes it depend on a differentiated
    leaf (a fixed point, as ``lax.scan`` finds); a ``y`` leaf if it depends on one.

    Only inexact leaves are differentiated. ``fun`` is traced once into a jaxpr, here in
    the forward rule: a step using a collective over a ``jax.vmap`` axis name cannot be
    traced in the backward rule (no name is bound there). Also returned: the shapes,
    dtypes and weak types of ``fun``'s output, from that trace."""
    def mask(leaves: Sequence[Any], flags: Sequence[bool]) -> tuple[bool, ...]:
        return tuple(f and _inexact(a) for a, f in zip(leaves, flags, strict=True))

    c_leaves = jax.tree.leaves(init)
    carry, x_mask = mask(c_leaves, perturbed[0]), mask(jax.tree.leaves(x), perturbed[1])
    const_mask = mask(consts, perturbed[2])
    closed, shapes = jax.make_jaxpr(fun, return_shape=True)(init, x, *consts)
    _refuse_outer_refs(closed)
    jaxpr = closed.jaxpr
    while True:
        out = _depends(jaxpr, [*carry, *x_mask, *const_mask])
        new = tuple(a or b for a, b in zip(carry, out, strict=False))
        if new == carry:
            break
        carry = new
    return _Shapes(jax.tree.structure(init), carry, x_mask, tuple(out[len(carry):]),
                   const_mask), shapes


# ---------------------------------------------------------------------------
# the loops
# ---------------------------------------------------------------------------
def _restricted(fun: Callable, sh: _Shapes, c: Any, x: Any,
                consts: Sequence[Any]) -> tuple[Callable, tuple[list[Any], ...]]:
    """``fun`` as a function of the differentiated leaves of ``c``, ``x`` and ``consts``
    (the masks of ``sh``; it closes over the others), and those leaves."""
    c_leaves, x_leaves = jax.tree.leaves(c), jax.tree.leaves(x)
    x_tree = jax.tree.structure(x)

    def diff_fun(cd: list[Any], xd: list[Any], cs: list[Any]) -> Any:
        c_full = jax.tree.unflatten(sh.carry, _merge(cd, c_leaves, sh.carry_mask))
        x_full = jax.tree.unflatten(x_tree, _merge(xd, x_leaves, sh.x_mask))
        return fun(c_full, x_full, *_merge(cs, consts, sh.const_mask))

    return diff_fun, (_split(c_leaves, sh.carry_mask), _split(x_leaves, sh.x_mask),
                      _split(consts, sh.const_mask))


def primal(fun: Callable, sh: _Shapes) -> Callable:
    """``fun(carry, x, *consts)`` run as the forward pass of its VJP with respect to the
    leaves ``sh`` marks: a ``jax.custom_vjp`` function it calls on them runs its forward
    rule, ordinary code that an enclosing forward mode (``jax.hessian``,
    ``jax.jacfwd(jax.grad(...))``) can differentiate, where calling it directly would be
    refused. The unused residuals are dead code in XLA."""
    def run(c: Any, x: Any, *consts: Any) -> Any:
        diff_fun, args = _restricted(fun, sh, c, x, consts)
        return jax.vjp(diff_fun, *args)[0]
    return run


#: Words of the errors JAX raises for an operation it cannot differentiate.
_NOT_DIFFERENTIABLE = ("Reverse-mode differentiation does not work", "do not support JVP",
                       "Differentiation rule for")


def _note(err: BaseException, text: str) -> None:
    """Add ``text`` to ``err``'s notes unless a note of pebbles.jax is there already (an
    error of a nested checkpointed loop passes through the rules of each level)."""
    if not any(note.startswith("pebbles.jax:") for note in getattr(err, "__notes__", ())):
        add_note(err, text)


@contextlib.contextmanager
def jax_errors_noted() -> Iterator[None]:
    """Run a checkpointed loop's forward or backward rule; two JAX errors get a note that
    says why they arise here and what to do.

    An unbound axis name (``NameError``): the step uses ``psum``, ``pmean`` or
    ``axis_index`` over a ``jax.vmap`` axis whose vmap is inside the differentiated
    function, and JAX binds no such name while it runs a ``custom_vjp`` backward rule
    (jax-ml/jax#7047). An operation JAX cannot differentiate (``lax.while_loop``,
    ``pure_callback``) on an input the rules differentiate: the perturbed ones and those
    the step makes depend on them, found conservatively (:func:`_shapes`), so possibly
    more than ``lax.scan`` differentiates."""
    try:
        yield
    except NameError as err:
        if "axis name" in str(err):
            _note(err,
                "pebbles.jax: the step uses a collective over a jax.vmap axis name, and that "
                "vmap is inside the function being differentiated; JAX does not bind the "
                "name in a custom_vjp backward rule (jax-ml/jax#7047), which checkpointed "
                "loops are. Apply jax.vmap outside jax.grad (jax.vmap(jax.grad(f), "
                "axis_name=...)), or compute the collective outside the loop and pass it in")
        raise
    except (ValueError, TypeError, NotImplementedError) as err:
        if any(words in str(err) for words in _NOT_DIFFERENTIABLE):
            _note(err,
                "pebbles.jax: a checkpointed loop differentiates its step with respect to "
                "the perturbed floating-point inputs and those the step makes depend on them, "
                "following its operations forward (the outputs of a loop, a conditional or a "
                "custom derivative counted as depending on all its inputs), so possibly more "
                "than lax.scan differentiates. If no gradient should flow through the "
                "operation, pass its inputs through jax.lax.stop_gradient (e.g. "
                "forcing(lax.stop_gradient(t))), make them integers, or compute it outside "
                "the loop")
        raise


def _walks(fun: Callable, prog: Any, lo: Any, hi: Any, buf: Any, xs: Any,
           consts: Sequence[Any], ys: Any = None) -> tuple[Any, Any]:
    """Run the walks ``prog[lo:hi]`` (rows ``(src, dst, first, count)``) over the slot buffer.

    Each walk reads its start state out of the buffer once, steps it in a loop
    of its own (the working carry, as in ``lax.scan``) and writes the state it
    reaches into its slot once. With ``ys``, every step stores its output ``y``.
    """
    def walk(k: Any, state: tuple) -> tuple:
        buf, ys = state

        def step(i: Any, state: tuple) -> tuple:
            c, ys = state
            c, y = fun(c, _at(xs, i), *consts)
            return c, (ys if ys is None else _put(ys, y, i))

        first = prog[k, 2]
        c, ys = lax.fori_loop(first, first + prog[k, 3], step, (_at(buf, prog[k, 0]), ys))
        return _put(buf, c, prog[k, 1]), ys

    return lax.fori_loop(lo, hi, walk, (buf, ys))


def _forward(fun: Callable, sh: _Shapes, out: Any, rows: Rows, n: int, init: Any, xs: Any,
             consts: Sequence[Any]) -> tuple[Any, Any, Any]:
    """Run the forward rows: (slot buffer, final carry, ys), the last two with the weak
    types ``lax.scan`` gives them (``out``: the step's output shapes, :func:`_shapes`)."""
    ys = jax.tree.map(lambda s: jnp.zeros((n, *s.shape), s.dtype), out[1])
    buf = _put(_slots(init, rows.nslots), init, 0)
    prog = jnp.asarray(rows.forward)
    buf, ys = _walks(primal(fun, sh), prog, 0, len(rows.forward), buf, xs, consts, ys)
    # ``out`` is as ``fun`` returned it: a list [carry, y] is a pair too (as lax.scan's)
    return buf, *_weak_like((_at(buf, rows.seed), ys), tuple(out))


def _vjp_step(fun: Callable, sh: _Shapes, c: Any, x: Any, consts: Sequence[Any], g: list[Any],
              ct_y: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """Cotangents of the differentiated leaves of ``c`` and ``x`` and ``consts`` for one
    step, given those of the differentiated leaves of the new carry (``g``) and of ``y``
    (``ct_y``)."""
    diff_fun, args = _restricted(fun, sh, c, x, consts)

    def diff_step(*args: list[Any]) -> tuple[list[Any], list[Any]]:
        c2, y = diff_fun(*args)
        return _split(jax.tree.leaves(c2), sh.carry_mask), _split(jax.tree.leaves(y), sh.y_mask)

    _, pull = jax.vjp(diff_step, *args)
    return pull((g, ct_y))


def _backward(fun: Callable, sh: _Shapes, rows: Rows, buf: Any, xs: Any, consts: Sequence[Any],
              g: list[Any], ct_ys: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """Run the backward rows from the cotangent ``g`` of ``s_n``: (g_s0, g_xs, g_consts).

    ``g``, ``ct_ys`` and the returned cotangents hold the differentiated leaves only
    (the masks of ``sh``).
    Blocks of walks then paints are two inner loops, so that no buffer passes
    through a ``lax.cond`` (XLA would copy it at every row).
    """
    walks, paints = jnp.asarray(rows.walks), jnp.asarray(rows.paints)
    blocks = jnp.asarray(rows.blocks)
    xd = _split(jax.tree.leaves(xs), sh.x_mask)
    grads = (g, [jnp.zeros_like(a) for a in xd],
             [jnp.zeros_like(a) for a in _split(consts, sh.const_mask)])

    def step(c: Any, x: Any, *cs: Any) -> tuple[Any, None]:
        return primal(fun, sh)(c, x, *cs)[0], None

    def paint(buf: Any) -> Callable:
        def body(k: Any, grads: tuple) -> tuple:
            g, gxs, gcs = grads
            src, i = paints[k, 0], paints[k, 1]
            gc, gx, gk = _vjp_step(fun, sh, _at(buf, src), _at(xs, i), consts, g, _at(ct_ys, i))
            gxs = [a.at[i].add(b) for a, b in zip(gxs, gx, strict=True)]
            return gc, gxs, [a + b for a, b in zip(gcs, gk, strict=True)]
        return body

    def block(k: Any, state: tuple) -> tuple:
        buf, grads = state
        buf, _ = _walks(step, walks, blocks[k, 0], blocks[k, 1], buf, xs, consts)
        return buf, lax.fori_loop(blocks[k, 2], blocks[k, 3], paint(buf), grads)

    _, grads = lax.fori_loop(0, len(rows.blocks), block, (buf, grads))
    return grads


def make_scan(fun: Callable, rows: Rows, n: int, unroll: int | bool = 1) -> Callable:
    """``scan(init, xs, consts) -> (carry, ys)`` with the slot program's reverse pass.

    ``fun(carry, x, *consts) -> (carry, y)`` must be closure-converted: every
    array it should differentiate with respect to is in ``consts``. ``unroll``
    goes to the ``lax.scan`` that runs when the call is not differentiated.
    """

    @jax.custom_vjp
    def scan(init: Any, xs: Any, consts: list[Any]) -> tuple[Any, Any]:
        carry, ys = lax.scan(lambda c, x: fun(c, x, *consts), init, xs, length=n, unroll=unroll)
        return carry, ys  # a pair as the forward rule's, also where f returns a list

    def scan_fwd(init: Any, xs: Any, consts: list[Any]) -> tuple:
        (init, init_p), (xs, xs_p), (consts, consts_p) = map(unwrap, (init, xs, consts))
        with jax_errors_noted():
            sh, out = _shapes(fun, init, _at(xs, 0), consts, (init_p, xs_p, consts_p))
            buf, carry, ys = _forward(fun, sh, out, rows, n, init, xs, consts)
        return (carry, ys), (buf, xs, consts, sh)

    def scan_bwd(res: tuple, ct: tuple) -> tuple:
        buf, xs, consts, sh = res
        ct_carry, ct_ys = ct
        ct_ys = jax.tree.leaves(ct_ys)  # an unused y (a SymbolicZero) gets no cotangent
        sh = replace(sh, y_mask=tuple(m and type(a) is not SymbolicZero
                                      for m, a in zip(sh.y_mask, ct_ys, strict=True)))
        g = [instantiate(a) for a in _split(jax.tree.leaves(ct_carry), sh.carry_mask)]
        with jax_errors_noted():
            g0, gxs, gcs = _backward(fun, sh, rows, buf, xs, consts, g,
                                     _split(ct_ys, sh.y_mask))
        none_c = [None] * len(sh.carry_mask)
        g_init = jax.tree.unflatten(sh.carry, _merge(g0, none_c, sh.carry_mask))
        x_leaves = [None] * len(sh.x_mask)
        g_xs = jax.tree.unflatten(jax.tree.structure(xs), _merge(gxs, x_leaves, sh.x_mask))
        return g_init, g_xs, _const_cotangents(_merge(gcs, [None] * len(consts), sh.const_mask),
                                               consts)

    scan.defvjp(scan_fwd, scan_bwd, symbolic_zeros=True)
    return scan
