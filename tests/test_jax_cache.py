"""The cache of traced loops of pebbles.jax: a plain call (outside jax.jit) with the same
function, shapes and options traces and compiles once, as lax.scan does."""

import functools
import gc
import weakref

import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

import pebbles  # noqa: E402
import pebbles.jax as pj  # noqa: E402
from pebbles.jax import checkpointed_scan, checkpointed_while_loop  # noqa: E402


@pytest.fixture(autouse=True)
def x64():
    """float64 for this module's tests only (a context, not the global flag)."""
    with jax.enable_x64(True):
        yield


class Counted:
    """A step ``f(c, x)`` that counts the times Python runs it (its traces)."""

    def __init__(self, a=0.9):
        self.a = a
        self.traces = [0]  # one list, updated in place: a bound method's object keeps its
        # attributes (reassigning one traces the method anew)

    @property
    def calls(self) -> int:
        return self.traces[0]

    def __call__(self, c, x):
        self.traces[0] += 1
        return jnp.sin(c) * self.a + x, c * x


def calls_after_the_first(scan, f, *args, repeat=3):
    """The traces of ``f`` made by calls 2 .. ``repeat`` of ``scan(f, *args)``."""
    jax.block_until_ready(scan(f, *args))
    before = f.calls
    for _ in range(repeat - 1):
        jax.block_until_ready(scan(f, *args))
    return f.calls - before


def ckpt(budget=3):
    return lambda f, init, xs: checkpointed_scan(f, init, xs, budget=budget)


def test_repeated_plain_calls_trace_f_as_often_as_lax_scan():
    xs = jnp.linspace(0.0, 1.0, 20)
    ref = calls_after_the_first(lax.scan, Counted(), 0.3, xs)
    assert calls_after_the_first(ckpt(), Counted(), 0.3, xs) == ref == 0


def test_repeated_plain_gradients_trace_f_as_often_as_lax_scan():
    xs = jnp.linspace(0.0, 1.0, 20)

    def grad(scan):
        return lambda f, s, xs: jax.grad(lambda s: scan(f, s, xs)[0])(s)

    ref = calls_after_the_first(grad(lax.scan), Counted(), 0.3, xs)
    assert calls_after_the_first(grad(ckpt()), Counted(), 0.3, xs) <= ref
    assert calls_after_the_first(grad(ckpt()), Counted(), 0.3, xs) == 0


def test_a_new_shape_dtype_or_budget_traces_again():
    """A new entry for each; ``f`` itself runs again where its inputs' avals change (JAX
    caches the trace of ``f`` by its arguments' avals, which a length or budget leaves)."""
    pj._LOOPS.cache_clear()
    f = Counted()
    xs = jnp.linspace(0.0, 1.0, 20)
    checkpointed_scan(f, 0.3, xs, budget=3)
    assert len(pj._LOOPS) == 1
    seen = f.calls
    cases = [((0.3, xs[:10]), 3, False), ((0.3, xs), 4, False),
             ((0.3, xs), None, False),  # store-all's program: another budget
             ((jnp.float32(0.3), xs.astype(jnp.float32)), 3, True),
             ((jnp.ones(2), xs[:, None]), 3, True)]
    for k, (args, budget, new_avals) in enumerate(cases):
        kw = {"budget": budget} if budget is not None else {"method": "store-all"}
        checkpointed_scan(f, *args, **kw)
        assert len(pj._LOOPS) == k + 2
        assert (f.calls > seen) == new_avals
        seen = f.calls
    checkpointed_scan(f, 0.3, xs, budget=4)  # all still cached
    checkpointed_scan(f, 0.3, xs[:10], budget=3)
    assert len(pj._LOOPS) == len(cases) + 1
    assert f.calls == seen


def test_a_schedule_passed_again_is_not_traced_again():
    pj._LOOPS.cache_clear()
    f = Counted()
    xs = jnp.linspace(0.0, 1.0, 12)
    sched = pebbles.schedule("periodic", 12, every=3)
    checkpointed_scan(f, 0.3, xs, schedule=sched)
    checkpointed_scan(f, 0.3, xs, schedule=pebbles.schedule("periodic", 12, every=3))
    checkpointed_scan(f, 0.3, xs, schedule=list(sched))  # the same moves, as a stream
    assert len(pj._LOOPS) == 1
    checkpointed_scan(f, 0.3, xs, schedule=pebbles.schedule("periodic", 12, every=4))
    assert len(pj._LOOPS) == 2


@pytest.mark.parametrize("budget", [2, 5])
def test_cached_gradients_equal_lax_scans(budget):
    xs = jnp.linspace(0.0, 1.0, 30)
    f = Counted(1.1)
    want = jax.grad(lambda s, xs: lax.scan(f, s, xs)[1].sum(), argnums=(0, 1))(0.3, xs)
    loss = jax.grad(lambda s, xs: checkpointed_scan(f, s, xs, budget=budget)[1].sum(),
                    argnums=(0, 1))
    for _ in range(3):  # the first traces, the others use the cache
        got = loss(0.3, xs)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == jnp.float64
            assert jnp.allclose(g, w, rtol=0, atol=1e-12)


def make_step(a):
    def step(c, x):
        return c * a + x, jnp.sum(c)
    return step


def test_closures_over_different_arrays_follow_their_values():
    """Two closures over arrays of one shape: each its own result and gradient."""
    xs = jnp.linspace(0.0, 1.0, 8)
    init = jnp.ones(3)
    for a in (jnp.full(3, 0.5), jnp.full(3, 1.5), jnp.arange(3.0)):
        step = make_step(a)
        got = checkpointed_scan(step, init, xs, budget=2)
        want = lax.scan(step, init, xs)
        assert jnp.allclose(got[0], want[0], rtol=0, atol=1e-12)
        assert jnp.allclose(got[1], want[1], rtol=0, atol=1e-12)
        g = jax.grad(lambda s, f=step: checkpointed_scan(f, s, xs, budget=2)[0].sum())(init)
        w = jax.grad(lambda s, f=step: lax.scan(f, s, xs)[0].sum())(init)
        assert jnp.allclose(g, w, rtol=0, atol=1e-12)


def test_a_gradient_through_closed_over_parameters_follows_their_values():
    """A step made inside the loss closes over a tracer: nothing stale is reused."""
    xs = jnp.linspace(0.0, 1.0, 8)
    for a in (0.5, 1.5):
        got = jax.grad(lambda a: checkpointed_scan(make_step(a), 1.0, xs, budget=2)[0])(a)
        want = jax.grad(lambda a: lax.scan(make_step(a), 1.0, xs)[0])(a)
        assert jnp.allclose(got, want, rtol=0, atol=1e-12)


def test_a_replaced_closed_over_array_is_read_as_lax_scan_reads_it():
    """One function object whose closed-over array is replaced between calls: like
    lax.scan (whose trace JAX caches by the function's identity), the loop keeps what
    the function read when first traced for these shapes; a new function object, or
    new shapes, read the current value. Checked side by side with lax.scan."""
    xs = jnp.linspace(0.0, 1.0, 8)

    def make(cell):
        return lambda c, x: (c * cell[0] + x, c)

    cell = [jnp.float64(0.5)]
    f_ref, f_ckpt = make(cell), make(cell)
    first = [lax.scan(f_ref, 1.0, xs)[0], checkpointed_scan(f_ckpt, 1.0, xs, budget=2)[0]]
    cell[0] = jnp.float64(2.0)
    again = [lax.scan(f_ref, 1.0, xs)[0], checkpointed_scan(f_ckpt, 1.0, xs, budget=2)[0]]
    assert float(first[0]) == float(first[1])
    assert float(again[0]) == float(again[1])
    fresh = make(cell)  # a new function object reads the current value
    assert float(checkpointed_scan(fresh, 1.0, xs, budget=2)[0]) == \
        float(lax.scan(fresh, 1.0, xs)[0]) == float(lax.scan(make(cell), 1.0, xs)[0])


def test_a_dropped_function_frees_its_entry():
    xs = jnp.linspace(0.0, 1.0, 8)
    step = make_step(jnp.float64(0.7))
    checkpointed_scan(step, 1.0, xs, budget=2)
    held = len(pj._LOOPS)
    ref = weakref.ref(step)
    del step
    gc.collect()
    assert ref() is None
    assert len(pj._LOOPS) == held - 1


def test_bound_methods_and_partials_are_cached_by_their_objects():
    xs = jnp.linspace(0.0, 1.0, 8)
    f = Counted()
    assert calls_after_the_first(lambda f, *a: checkpointed_scan(f.__call__, *a, budget=2),
                                 f, 1.0, xs) == 0

    def step(c, x, k):
        step.calls += 1
        return c * k + x, c
    step.calls = 0
    part = functools.partial(step, k=0.5)
    part.calls = 0
    checkpointed_scan(part, 1.0, xs, budget=2)
    seen = step.calls
    checkpointed_scan(part, 1.0, xs, budget=2)
    assert step.calls == seen
    other = functools.partial(step, k=1.5)  # another object: traced, with its own value
    got = checkpointed_scan(other, 1.0, xs, budget=2)[0]
    assert step.calls > seen
    assert jnp.allclose(got, lax.scan(other, 1.0, xs)[0], rtol=0, atol=1e-12)


def test_a_bound_method_sees_its_objects_reassigned_attributes_as_lax_does():
    """A bound method was keyed on its object and function only: after model.w = new_w
    the loop reused the w read at the first trace (lax.scan and lax.while_loop trace a
    bound method again and see the new value). Reassigning an attribute now traces
    anew; calling again with nothing changed still hits the cache."""
    class Model:
        def __init__(self, w):
            self.w = jnp.asarray(w)

        def step(self, c, x):
            return c * self.w + x, None

        def body(self, c):
            return c * self.w

        def cond(self, c):
            return c < 100.0

    m, xs = Model(2.0), jnp.ones(4)
    for w in (2.0, 3.0, 1.5):
        m.w = jnp.asarray(w)
        for _ in range(2):
            assert checkpointed_scan(m.step, 1.0, xs, budget=2)[0] == lax.scan(m.step, 1.0,
                                                                                xs)[0]
            assert checkpointed_while_loop(m.cond, m.body, 1.0, budget=2) == \
                lax.while_loop(m.cond, m.body, 1.0)
    pj._LOOPS.cache_clear()
    checkpointed_scan(m.step, 1.0, xs, budget=2)
    checkpointed_scan(m.step, 1.0, xs, budget=2)
    assert len(pj._LOOPS) == 1


def test_unroll_true_and_unroll_one_are_different_loops():
    """unroll=True hashes as 1: the two shared one cache entry, so whichever came second
    ran the first's unrolling."""
    xs = jnp.linspace(0.0, 1.0, 8)

    def f(c, x):
        return jnp.sin(c) * x + c, c

    def whiles(unroll):
        return jax.jit(lambda c: checkpointed_scan(f, c, xs, budget=2, unroll=unroll)[0]
                       ).lower(jnp.asarray(1.0)).as_text().count("stablehlo.while")

    pj._LOOPS.cache_clear()
    checkpointed_scan(f, jnp.asarray(1.0), xs, budget=2, unroll=1)
    checkpointed_scan(f, jnp.asarray(1.0), xs, budget=2, unroll=True)
    assert len(pj._LOOPS) == 2
    assert whiles(True) == whiles(8) < whiles(1)


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(pj, "_LOOP_ENTRIES", 2)
    xs = jnp.linspace(0.0, 1.0, 8)
    steps = [make_step(jnp.float64(a)) for a in (0.1, 0.2, 0.3, 0.4)]
    for step in steps:
        checkpointed_scan(step, 1.0, xs, budget=2)
    assert len(pj._LOOPS) <= 2
    pj._LOOPS.cache_clear()
    assert len(pj._LOOPS) == 0


def test_repeated_while_loops_trace_body_and_cond_once():
    calls = {"body": 0, "cond": 0}

    def body(c):
        calls["body"] += 1
        return c[0] + 0.1 * jnp.sin(c[1] * c[0]), c[1]

    def cond(c):
        calls["cond"] += 1
        return c[0] <= 2.0

    steps = int(lax.while_loop(lambda c: c[0] <= 2.0,
                               lambda c: (body(c[:2])[0], 1.0, c[2] + 1), (0.5, 1.0, 0))[2])

    def ref_loss(p):  # lax.while_loop is not reverse differentiable: a scan of its steps
        return lax.scan(lambda c, _: (c + 0.1 * jnp.sin(p * c), None), 0.5, length=steps)[0]

    calls.update(body=0, cond=0)
    loss = jax.grad(lambda p: checkpointed_while_loop(cond, body, (0.5, p), budget=3)[0])
    for i in range(3):
        out = checkpointed_while_loop(cond, body, (0.5, 1.0), budget=3)
        assert jnp.allclose(loss(1.0), jax.grad(ref_loss)(1.0), rtol=0, atol=1e-12)
        if i == 0:
            seen = dict(calls)
    assert calls == seen
    ref = lax.while_loop(cond, body, (0.5, 1.0))
    assert float(out[0]) == float(ref[0])
    checkpointed_while_loop(cond, body, (0.5, 1.0), budget=4)
    assert calls["body"] > seen["body"]
