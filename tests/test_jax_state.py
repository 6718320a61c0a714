"""Tests of pebbles.jax with mutable array references (jax.new_ref) in the step, of the
notes added to JAX's errors by nested loops and of the bounded program caches."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxref import rel

import pebbles.jax as pj
from pebbles import PebblesTypeError
from pebbles.jax import checkpointed_scan, checkpointed_while_loop

jax.config.update("jax_enable_x64", True)

N = 7


def unrolled(step, p, init, xs):
    """The reference: ``step(p, c, x)`` in a Python loop, differentiated by JAX (its
    ``lax.scan`` drops the carry's dependence through a reference in the body)."""
    c, ys = init, []
    for x in xs:
        c, y = step(p, c, x)
        ys.append(y)
    return c, jnp.stack(ys)


def through_ref(p, c, x):
    """The hunter's step: the carry and ``y`` depend on ``p`` only through a reference."""
    r = jax.new_ref(jnp.zeros_like(c))
    r[...] = c * p
    return c + 0.1 * r[...], r[...] * x


def _write(r, v):
    r[...] = v


def in_jit(p, c, x):
    """A write inside a ``jax.jit`` call, read outside it."""
    r = jax.new_ref(jnp.zeros_like(c))
    jax.jit(_write)(r, jnp.sin(c) * p)
    return c + 0.1 * r[...], x * c


def in_fori(p, c, x):
    """Accumulated into by a loop in the step whose own carry is an integer."""
    r = jax.new_ref(jnp.zeros_like(c))

    def add(i, k):
        jax.ref.addupdate(r, ..., c * p * x)
        return k + 1

    jax.lax.fori_loop(0, 3, add, 0)
    return c + 0.05 * r[...], r[...]


def in_cond(p, c, x):
    """Written in one branch of a conditional on a non-differentiated value (JAX does not
    reverse-differentiate it: for the dependence analysis only)."""
    r = jax.new_ref(jnp.zeros_like(c))

    def write(_):
        r[...] = jnp.cos(c) * p

    def keep(_):
        r[...] = c

    jax.lax.cond(x > 0, write, keep, None)
    return c + 0.1 * r[...], r[...] + x


def indexed(p, c, x):
    """An array reference written and read by index, one element from another's value."""
    r = jax.new_ref(jnp.zeros_like(c))
    r[0] = c[1] * p
    r[1] = c[0] * p + x
    return c + 0.1 * r[...], r[0] * c[1]


STEPS = [through_ref, in_jit, in_fori, indexed]
XS = jnp.array([1.0, -0.5, 2.0, 0.25, -1.0, 1.5, 0.5])


def _init(step):
    return jnp.array([0.3, -0.7]) if step is indexed else jnp.array(0.8)


@pytest.mark.parametrize("wrt", ["p", "all"])
@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.__name__)
def test_a_reference_in_the_step_is_differentiated_through(step, wrt):
    def loss(scan, p, c0, xs):
        c, ys = scan(lambda c, x: step(p, c, x), c0, xs)
        return jnp.sum(c ** 2) + jnp.sum(jnp.sin(ys))

    def ckpt(f, c0, xs):
        return checkpointed_scan(f, c0, xs, budget=2)

    def ref_scan(f, c0, xs):
        return unrolled(lambda _, c, x: f(c, x), None, c0, xs)

    argnums = 0 if wrt == "p" else (0, 1, 2)
    args = (0.6, _init(step), XS)
    ref = jax.grad(lambda *a: loss(ref_scan, *a), argnums)(*args)
    got = jax.jit(jax.grad(lambda *a: loss(ckpt, *a), argnums))(*args)
    assert float(jnp.abs(jax.tree.leaves(ref)[0])) > 1e-3  # a real gradient
    assert rel(got, ref) < 1e-12


def test_the_hunters_step_matches_lax_scan_of_the_same_step_without_a_reference():
    def plain(p, c, x):
        return c + 0.1 * c * p, c * p * x

    def loss(scan, step, p):
        c, ys = scan(lambda c, x: step(p, c, x), 1.0, jnp.ones(3))
        return c + ys.sum()

    ref = jax.grad(lambda p: loss(jax.lax.scan, plain, p))(0.5)
    got = jax.grad(lambda p: loss(lambda *a: checkpointed_scan(*a, budget=2), through_ref,
                                  p))(0.5)
    assert float(got) == pytest.approx(float(ref), rel=1e-14)  # 3.63825
    assert float(ref) == pytest.approx(3.63825, rel=1e-14)


@pytest.mark.parametrize("wrt", ["p", "all"])
@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.__name__)
def test_a_reference_in_the_body_of_a_while_loop_is_differentiated_through(step, wrt):
    def body(p, s):
        c, k = s
        return step(p, c, XS[k])[0], k + 1

    def loss(p, c0):
        c = checkpointed_while_loop(lambda s: s[1] < N, lambda s: body(p, s), (c0, 0),
                                    budget=2)[0]
        return jnp.sum(c ** 2)

    def ref(p, c0):
        return jnp.sum(unrolled(lambda p, c, x: (step(p, c, x)[0], 0.0), p, c0, XS)[0] ** 2)

    argnums = 0 if wrt == "p" else (0, 1)
    args = (0.6, _init(step))
    want = jax.grad(ref, argnums)(*args)
    assert float(jnp.abs(jax.tree.leaves(want)[0])) > 1e-3
    assert rel(jax.jit(jax.grad(loss, argnums))(*args), want) < 1e-12


def test_the_dependence_analysis_follows_writes_into_references():
    from pebbles._jax_scan import _depends

    jaxpr = jax.make_jaxpr(lambda c, x, p: through_ref(p, c, x))(1.0, 1.0, 0.5).jaxpr
    assert _depends(jaxpr, [False, False, True]) == [True, True]
    assert _depends(jaxpr, [False, True, False]) == [False, True]
    jaxpr = jax.make_jaxpr(lambda c, x, p: in_jit(p, c, x))(1.0, 1.0, 0.5).jaxpr
    assert _depends(jaxpr, [False, False, True]) == [True, False]
    jaxpr = jax.make_jaxpr(lambda c, x, p: in_cond(p, c, x))(1.0, 1.0, 0.5).jaxpr
    assert _depends(jaxpr, [False, False, True]) == [True, True]
    assert _depends(jaxpr, [False, True, False]) == [False, True]


GLOBAL = jax.new_ref(jnp.zeros(()))


def _outside(kind):
    """A loss whose step uses a reference made outside it: in the traced function
    (``traced``) or at module level (``global``)."""
    def loss(scan, p):
        r = GLOBAL if kind == "global" else jax.new_ref(jnp.zeros(()))

        def step(c, x):
            r[...] = r[...] + 1.0
            return c * r[...] * p, None

        return scan(step, 1.0, None, length=4)[0]
    return loss


@pytest.mark.parametrize("kind", ["traced", "global"])
def test_a_reference_made_outside_the_step_is_refused_when_differentiated(kind):
    loss = _outside(kind)
    ckpt = lambda *a, **k: checkpointed_scan(*a, budget=2, **k)  # noqa: E731
    with pytest.raises(PebblesTypeError, match=r"made outside it \(Ref\{float64\[\]\}\).*"
                       r"Make the reference inside the step"):
        jax.grad(lambda p: loss(ckpt, p))(0.5)
    GLOBAL[...] = 0.0
    want = loss(jax.lax.scan, 0.5)  # not differentiated: lax.scan's run, writes and all
    GLOBAL[...] = 0.0
    assert float(loss(ckpt, 0.5)) == float(want)


def test_a_reference_made_outside_a_while_body_is_refused_when_differentiated():
    def loss(p):
        r = jax.new_ref(jnp.ones(()))
        return checkpointed_while_loop(lambda s: s[1] < 3, lambda s: (s[0] * r[...] * p,
                                                                      s[1] + 1),
                                       (1.0, 0), budget=2)[0]
    with pytest.raises(PebblesTypeError, match="made outside it"):
        jax.grad(loss)(0.5)


@pytest.mark.parametrize("call", [
    lambda r: checkpointed_scan(lambda c, x: (c, None), {"a": r}, None, length=2, budget=2),
    lambda r: checkpointed_scan(lambda c, x: (c, x), 1.0, r, budget=2),
    lambda r: checkpointed_while_loop(lambda c: c < 3, lambda c: c + 1, r, budget=2),
], ids=["init", "xs", "while-init"])
def test_a_reference_as_a_carry_or_xs_leaf_is_refused(call):
    with pytest.raises(PebblesTypeError, match=r"is a mutable array reference \(Ref\{float64"
                       r"\[3\]\}\).*Pass its value"):
        call(jax.new_ref(jnp.zeros(3)))


def test_nested_loops_note_an_error_once():
    def f(c, x):  # a while_loop on the differentiated carry: JAX cannot reverse it
        r = jax.lax.while_loop(lambda s: s[1] < 3, lambda s: (s[0] * 0.5 + c, s[1] + 1),
                               (c, 0))[0]
        return c + 0.1 * r, None

    def outer(c, x):
        return checkpointed_scan(f, c, None, length=3, budget=2)[0], None

    with pytest.raises(ValueError, match="Reverse-mode differentiation") as info:
        jax.grad(lambda c0: checkpointed_scan(outer, c0, None, length=3, budget=2)[0])(0.3)
    notes = [n for n in info.value.__notes__ if n.startswith("pebbles.jax:")]
    assert len(notes) == 1


@pytest.fixture
def empty_caches():
    pj._named.cache_clear()
    pj._named_rows.cache_clear()
    yield
    pj._named.cache_clear()
    pj._named_rows.cache_clear()


def test_program_caches_are_bounded_by_bytes_and_keep_the_latest(empty_caches, monkeypatch):
    one = pj._nbytes(pj._named(3000, 5, "treeverse", ()))
    monkeypatch.setattr(pj, "_CACHE_BYTES", int(2.5 * one))
    for n in range(3001, 3008):
        pj._rows(n, 5, "treeverse", None, {})
    assert pj._named.cache_bytes() <= 2.5 * one
    assert pj._named_rows.cache_bytes() <= int(2.5 * one)
    again = pj._named(3007, 5, "treeverse", ())
    assert pj._named(3007, 5, "treeverse", ()) is again  # the latest is a hit
    monkeypatch.setattr(pj, "_CACHE_BYTES", 0)  # even over the limit, one entry is kept
    big = pj._named_rows(5000, 5, "treeverse", ())
    assert pj._named_rows(5000, 5, "treeverse", ()) is big
    assert pj._named_rows.cache_bytes() == pj._nbytes(big)


def test_program_caches_are_bounded_in_entries(empty_caches, monkeypatch):
    monkeypatch.setattr(pj, "_CACHE_ENTRIES", 3)
    programs = [pj._named(n, 3, "treeverse", ()) for n in range(10, 16)]
    assert pj._named.cache_bytes() == sum(pj._nbytes(p) for p in programs[-3:])
    assert pj._named(15, 3, "treeverse", ()) is programs[-1]
    assert pj._named(10, 3, "treeverse", ()) is not programs[0]  # evicted, made again
    assert np.array_equal(pj._named(10, 3, "treeverse", ()).ops, programs[0].ops)


def _weak(tree):
    return [(a.dtype, a.weak_type) for a in jax.tree.leaves(tree)]


@pytest.mark.parametrize("a", [1.3, np.float64(1.3), jnp.float32(1.3)])
def test_a_parameter_gradient_keeps_the_parameters_weak_type(a):
    """The gradient with respect to a Python-scalar parameter is weakly typed, as with
    lax.scan / lax.fori_loop (g * float32_array stays float32); a typed one stays typed."""
    def body(p, s):
        return s + 0.1 * jnp.sin(p * s)

    def scan(run):
        return lambda p, s0: run(lambda s, x: (body(p, s), None), s0, length=5)[0]

    def fori(p, s0):
        return jax.lax.fori_loop(0, 5, lambda i, s: body(p, s), s0)

    def until(p, s0):
        return checkpointed_while_loop(lambda c: c[1] < 5, lambda c: (body(p, c[0]), c[1] + 1),
                                       (s0, 0), budget=2)[0]

    pebbles_scan = scan(lambda *a, **k: checkpointed_scan(*a, **k, budget=2))
    for ours, ref in ((pebbles_scan, scan(jax.lax.scan)), (until, fori)):
        got, want = (jax.grad(f, (0, 1))(a, 0.4) for f in (ours, ref))
        assert _weak(got) == _weak(want)
        assert np.array_equal(np.asarray(got[0]), np.asarray(want[0]))
