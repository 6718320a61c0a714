"""Tests of pebbles.jax.checkpointed_scan against jax.lax.scan, the simulator and the optima."""

from __future__ import annotations

import functools
import subprocess
import sys

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from jaxref import count_eqns, rel, rk4

import pebbles
from pebbles.jax import checkpointed_scan, checkpointed_while_loop, scan_program

jax.config.update("jax_enable_x64", True)


def cscan(budget: int | None = None, **kw):
    return lambda f, init, xs=None, length=None, **more: checkpointed_scan(
        f, init, xs, length, budget=budget, **kw, **more)


# ---------------------------------------------------------------------------
# Lorenz (paper section 4.1): RK4, closed-over parameters
# ---------------------------------------------------------------------------


def lorenz_loss(scan, n):
    def loss(theta, s0):
        s, _ = scan(lambda s, _: (rk4(theta, s), None), s0, None, n)
        return jnp.sum(s ** 2)
    return loss


THETA = jnp.array([10.0, 28.0, 8.0 / 3.0])
S0 = jnp.array([1.0, 0.0, 0.0])


def test_lorenz_1e4_matches_lax_scan():
    n = 10_000
    ref = jax.jit(jax.grad(lorenz_loss(jax.lax.scan, n), argnums=(0, 1)))(THETA, S0)
    got = jax.jit(jax.grad(lorenz_loss(cscan(10), n), argnums=(0, 1)))(THETA, S0)
    assert rel(got, ref) < 1e-12
    assert float(jnp.max(jnp.abs(ref[0]))) > 1.0  # a real gradient, not zeros


def test_vmap_over_initial_states():
    n = 300
    batch = S0 + jnp.linspace(0.0, 0.5, 4)[:, None]
    g = jax.vmap(jax.grad(lorenz_loss(jax.lax.scan, n), argnums=(0, 1)), in_axes=(None, 0))
    h = jax.vmap(jax.grad(lorenz_loss(cscan(5), n), argnums=(0, 1)), in_axes=(None, 0))
    ref, got = jax.jit(g)(THETA, batch), jax.jit(h)(THETA, batch)
    assert got[1].shape == (4, 3)
    assert rel(got, ref) < 1e-12


def test_float32():
    n = 200
    theta, s0 = THETA.astype(jnp.float32), S0.astype(jnp.float32)
    ref = jax.jit(jax.grad(lorenz_loss(jax.lax.scan, n), argnums=(0, 1)))(theta, s0)
    got = jax.jit(jax.grad(lorenz_loss(cscan(4), n), argnums=(0, 1)))(theta, s0)
    assert got[0].dtype == got[1].dtype == jnp.float32
    assert rel(got, ref) < 1e-5


# ---------------------------------------------------------------------------
# pytree carry, xs, ys, closed-over parameters; every lowerable method
# ---------------------------------------------------------------------------
def tree_loss(scan, n):
    def loss(p, s0, xs):
        def f(c, x):
            (a, b), d = c
            t, w = x
            a2 = a + 0.01 * jnp.sin(p["k"] * b) + w[0] * jnp.cos(t * 0.01)
            b2 = b - 0.02 * a2 * p["m"]
            u = d["u"] * 0.99 + 0.01 * jnp.tanh(jnp.sum(a2))
            y = {"e": jnp.sum(a2 ** 2) * w[1], "i": t}
            return ((a2, b2), {"u": u, "k": d["k"] + 1}), y
        c, ys = scan(f, s0, xs)
        (a, b), d = c
        return jnp.sum(a * b) + d["u"] + jnp.sum(ys["e"] * jnp.arange(n) / n)
    return loss


def tree_args(n):
    p = {"k": jnp.linspace(0.5, 1.5, 4), "m": jnp.asarray(0.7)}
    s0 = ((jnp.linspace(0.0, 1.0, 4), jnp.ones(4)), {"u": jnp.asarray(0.5), "k": jnp.asarray(0)})
    xs = (jnp.arange(n), jnp.stack([jnp.linspace(0, 0.1, n), jnp.cos(jnp.arange(n))], axis=1))
    return p, s0, xs


METHODS = [("treeverse", {"budget": 3}), ("treeverse", {"budget": 3, "inplace": True}),
           ("treeverse-paper", {"delta": 3}), ("bennett-gradient", {"k": 2}),
           ("periodic", {"every": 6}), ("store-all", {}), ("recompute-all", {})]


@functools.cache
def tree_reference(n):
    grad = jax.grad(tree_loss(jax.lax.scan, n), argnums=(0, 1, 2), allow_int=True)
    return jax.jit(grad)(*tree_args(n))


@pytest.mark.parametrize("method,kw", METHODS, ids=lambda v: str(v))
def test_pytree_carry_xs_ys_params(method, kw):
    n = 37
    ours = jax.grad(tree_loss(cscan(method=method, **kw), n), argnums=(0, 1, 2), allow_int=True)
    ref, got = tree_reference(n), jax.jit(ours)(*tree_args(n))
    assert jax.tree.structure(got) == jax.tree.structure(ref)
    assert rel(got, ref) < 1e-12
    assert float(jnp.abs(got[2][1]).max()) > 0  # xs and ys carry real gradients


def small_f(p, c, x):
    a, t = c
    return (a + 0.01 * jnp.sin(p * a) * x, t + 1), jnp.sum(a) * x


def small_scan(scan, p, xs, **kw):
    return scan(lambda c, x: small_f(p, c, x), (jnp.linspace(0.1, 1.0, 3), jnp.asarray(0)), xs,
                **kw)


P, XS = jnp.asarray(1.3), jnp.linspace(0.0, 1.0, 40)


def test_value_and_grad_and_vjp_match():
    def loss(scan):
        return lambda p, xs: jnp.sum(small_scan(scan, p, xs)[1] ** 2)

    vg = jax.jit(jax.value_and_grad(loss(cscan(4)), argnums=(0, 1)))(P, XS)
    vg_ref = jax.jit(jax.value_and_grad(loss(jax.lax.scan), argnums=(0, 1)))(P, XS)
    assert float(vg[0]) == pytest.approx(float(vg_ref[0]), rel=1e-14)
    assert rel(vg[1], vg_ref[1]) < 1e-12

    def vjp(scan):
        out, pull = jax.vjp(lambda p, xs: small_scan(scan, p, xs), P, XS)
        ct = jax.tree.map(lambda a: jnp.ones_like(a) if jnp.issubdtype(a.dtype, jnp.inexact)
                          else np.zeros(a.shape, jax.dtypes.float0), out)
        return out, pull(ct)

    got, ref = jax.jit(lambda: vjp(cscan(4)))(), jax.jit(lambda: vjp(jax.lax.scan))()
    assert rel(got, ref) < 1e-12


def test_reverse_and_primal_without_grad():
    for reverse in (False, True):
        def run(scan, p, xs, reverse=reverse):
            return small_scan(scan, p, xs, reverse=reverse)

        ref = jax.jit(lambda p, xs: run(jax.lax.scan, p, xs))(P, XS)
        got = jax.jit(lambda p, xs: run(cscan(3), p, xs))(P, XS)
        assert rel(got, ref) < 1e-14
        g_ref = jax.jit(jax.grad(lambda p, xs: jnp.sum(run(jax.lax.scan, p, xs)[1] ** 2),
                                 argnums=(0, 1)))(P, XS)
        g = jax.jit(jax.grad(lambda p, xs: jnp.sum(run(cscan(3), p, xs)[1] ** 2),
                             argnums=(0, 1)))(P, XS)
        assert rel(g, g_ref) < 1e-12


def test_f_returning_a_list_pair_differentiates_like_lax_scan():
    """lax.scan takes f returning [carry, y]; the gradient's forward rule did not."""
    f = lambda c, x: [c * jnp.sin(x) + x, c]  # noqa: E731
    xs = jnp.arange(1.0, 5.0)

    def loss(scan):
        return lambda c: (lambda r: r[0] + jnp.sum(r[1]))(scan(f, c, xs))

    got = jax.value_and_grad(loss(cscan(2)))(0.5)
    ref = jax.value_and_grad(loss(jax.lax.scan))(0.5)
    assert rel(got, ref) < 1e-12
    assert rel(jax.hessian(loss(cscan(2)))(0.5), jax.hessian(loss(jax.lax.scan))(0.5)) < 1e-12


@pytest.mark.parametrize("x64", [True, False])
def test_strict_dtype_and_rank_promotion(x64):
    """A strict-clean step needs no implicit promotion from the scan (float, bool and
    int32 leaves)."""
    def f(c, x):
        v, b, i = c
        return (jnp.where(b, v * 1.1, v * 0.9) + x, ~b, i + 2), (v, b, i)

    def loss(scan):
        return lambda v, xs: jnp.sum(scan(f, (v, True, jnp.int32(0)), xs)[1][0])

    with jax.enable_x64(x64), jax.numpy_dtype_promotion("strict"), \
            jax.numpy_rank_promotion("raise"):
        v, xs = jnp.asarray(0.4), jnp.linspace(0.1, 1.0, 9)
        ref = jax.grad(loss(jax.lax.scan), argnums=(0, 1))(v, xs)
        for scan in (cscan(2), cscan(3, inplace=True)):
            assert rel(jax.jit(jax.grad(loss(scan), argnums=(0, 1)))(v, xs), ref) < 1e-12


def test_length_may_be_a_concrete_integer_array():
    f = lambda c, _: (c + 0.01 * jnp.sin(c), c)  # noqa: E731
    ref = jax.lax.scan(f, 0.3, None, 7)
    for length in (np.int64(7), jnp.int32(7), np.asarray(7)):
        assert rel(checkpointed_scan(f, 0.3, None, length, budget=2), ref) == 0.0
    with pytest.raises(pebbles.PebblesTypeError, match=r"length=<traced int32\[\]>.*static"):
        jax.jit(lambda n: checkpointed_scan(f, 0.3, None, n, budget=2))(jnp.int32(7))
    with pytest.raises(pebbles.PebblesTypeError, match=r"length=.* must be an integer"):
        checkpointed_scan(f, 0.3, None, jnp.asarray(7.0), budget=2)


def test_budget_may_be_a_concrete_integer_array_as_length():
    f = lambda c, _: (c + 0.01 * jnp.sin(c), c)  # noqa: E731
    ref = jax.lax.scan(f, 0.3, None, 7)
    for budget in (np.int64(2), jnp.int32(2), np.asarray(2)):
        assert rel(checkpointed_scan(f, 0.3, None, 7, budget=budget), ref) == 0.0
        g = checkpointed_while_loop(lambda c: c[1] < 7, lambda c: (f(c[0], None)[0], c[1] + 1),
                                    (0.3, 0), budget=budget, max_steps=jnp.int32(9))
        assert rel(g[0], ref[0]) == 0.0
    with pytest.raises(pebbles.PebblesTypeError, match=r"budget=<traced int32\[\]>.*static"):
        jax.jit(lambda b: checkpointed_scan(f, 0.3, None, 7, budget=b))(jnp.int32(2))
    with pytest.raises(pebbles.PebblesTypeError, match=r"budget=.* must be an integer"):
        checkpointed_scan(f, 0.3, None, 7, budget=jnp.asarray(2.0))


def test_lax_scan_positional_reverse_and_unroll():
    init = (jnp.linspace(0.1, 1.0, 3), jnp.asarray(0))
    xs = XS[:12]  # unroll=True: every step in the program (short, so it compiles fast)

    def loss(scan, *args, **kw):
        return lambda p: jnp.sum(scan(lambda c, x: small_f(p, c, x), init, xs, None, *args,
                                      **kw)[1] ** 2)

    for reverse, unroll in ((True, 2), (False, True), (True, False)):
        ref = jax.lax.scan(lambda c, x: small_f(P, c, x), init, xs, None, reverse, unroll)
        got = checkpointed_scan(lambda c, x: small_f(P, c, x), init, xs, None, reverse, unroll,
                                budget=3, _split_transpose=False)
        assert rel(got, ref) < 1e-14
        g = jax.jit(jax.grad(loss(checkpointed_scan, reverse, unroll, budget=3)))(P)
        assert rel(g, jax.jit(jax.grad(loss(jax.lax.scan, reverse, unroll)))(P)) < 1e-12
    # unroll reaches the lax.scan that runs without differentiation
    jaxpr = jax.make_jaxpr(lambda: checkpointed_scan(step, 0.0, XS, unroll=4, budget=3))()
    assert "unroll=4" in str(jaxpr)


@pytest.mark.parametrize("kw,err,match", [
    ({"unroll": 0}, pebbles.PebblesValueError, r"unroll=0 must be >= 1"),
    ({"unroll": 1.5}, pebbles.PebblesTypeError, r"unroll=1.5 must be an int or a bool"),
    ({"reverse": "yes"}, pebbles.PebblesTypeError, r"reverse='yes' must be True or False"),
    ({"_split_transpose": None}, pebbles.PebblesTypeError, r"_split_transpose=None"),
])
def test_lax_scan_arguments_are_checked(kw, err, match):
    with pytest.raises(err, match=match):
        checkpointed_scan(step, 0.0, XS, budget=3, **kw)


def hessian_loss(scan):
    def loss(p):
        f = lambda x, u: (x + 0.1 * jnp.sin(p[0] * x) * u, x ** 2)  # noqa: E731
        x, ys = scan(f, p[1], XS)
        return x + jnp.sum(ys)
    return loss


def test_second_derivatives_forward_over_reverse():
    p = jnp.array([1.3, 0.4])
    ref, ours = jax.jit(jax.hessian(hessian_loss(jax.lax.scan)))(p), hessian_loss(cscan(3))
    assert rel(jax.jit(jax.jacfwd(jax.grad(ours)))(p), ref) < 1e-12  # = jax.hessian
    assert float(jnp.abs(ref).min()) > 0.1
    # what JAX says to reverse-over-reverse and to forward mode (docs/jax.md)
    with pytest.raises(ValueError, match=r"Reverse-mode differentiation does not work for "
                                         r"lax.while_loop or lax.fori_loop"):
        jax.jit(jax.grad(lambda q: jax.grad(ours)(q)[0]))(p)  # refused while tracing
    with pytest.raises(TypeError, match=r"can't apply forward-mode autodiff \(jvp\) to a "
                                        r"custom_vjp function"):
        jax.jvp(ours, (p,), (p,))
    with pytest.raises(TypeError, match=r"can't apply forward-mode autodiff"):
        jax.jacfwd(ours)(p)


def test_linearize_returns_the_value_and_refuses_the_linear_map():
    """docs/jax.md: jax.linearize succeeds; calling its linear function raises."""
    p = jnp.array([1.3, 0.4])
    ours = hessian_loss(cscan(3))
    y, lin = jax.linearize(ours, p)
    assert rel(y, hessian_loss(jax.lax.scan)(p)) < 1e-12
    with pytest.raises(TypeError, match=r"can't apply forward-mode autodiff \(jvp\) to a "
                                        r"custom_vjp function"):
        lin(p)


@jax.custom_vjp
def smooth(x):
    return jnp.sin(x)


smooth.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(x),))


def custom_vjp_loss(scan):
    def loss(p):
        def f(s, u):
            inner = scan(lambda t, _: (t + 0.05 * jnp.sin(p[1] * t), None), s, None, 3)[0]
            return inner + 0.1 * smooth(p[0] * s) * u, s ** 2
        s, ys = scan(f, jnp.array([0.3, 0.2]), XS)
        return s.sum() + ys.sum()
    return loss


def test_second_derivatives_when_f_calls_custom_vjp_functions():
    """A custom_vjp op and a nested checkpointed_scan inside f: forward mode meets their
    forward rules, not the custom_vjp functions themselves."""
    p = jnp.array([1.3, 0.4])
    ref = jax.hessian(custom_vjp_loss(jax.lax.scan))(p)
    assert float(jnp.abs(ref).min()) > 1e-3
    assert rel(jax.hessian(custom_vjp_loss(cscan(2)))(p), ref) < 1e-12
    assert rel(jax.jit(jax.jacfwd(jax.grad(custom_vjp_loss(cscan(3)))))(p), ref) < 1e-12


def ensemble_loss(scan):
    def loss(a, k, s0):  # f closes over a float and an int batched by vmap, not differentiated
        f = lambda s, x: (s + 0.1 * jnp.sin(a * s) * x + 0.01 * k, s.sum())  # noqa: E731
        s, ys = scan(f, s0, XS)
        return s.sum() + ys.sum()
    return lambda s0, As, ks: jax.vmap(loss, (0, 0, None))(As, ks, s0).sum()


def test_grad_of_vmap_over_closed_over_parameters():
    """Arrays f closes over that vmap batches and grad does not differentiate stay
    arguments of the custom_vjp: no tracer escapes into the reverse pass."""
    s0, As, ks = jnp.array([0.3, 0.2]), jnp.array([1.0, 1.5, 2.0]), jnp.array([1, 2, 3])
    ref = jax.grad(ensemble_loss(jax.lax.scan))(s0, As, ks)
    for grad in (jax.grad(ensemble_loss(cscan(2))), jax.jit(jax.grad(ensemble_loss(cscan(3))))):
        assert rel(grad(s0, As, ks), ref) < 1e-12
    ref2 = jax.grad(ensemble_loss(jax.lax.scan), (0, 1))(s0, As, ks)
    assert rel(jax.grad(ensemble_loss(cscan(2)), (0, 1))(s0, As, ks), ref2) < 1e-12


def test_length_zero_is_lax_scan():
    c, ys = checkpointed_scan(lambda c, x: (c + x, c), jnp.ones(2), jnp.zeros((0, 2)), budget=3)
    assert ys.shape == (0, 2) and np.array_equal(c, jnp.ones(2))


def test_schedule_values_moves_and_programs():
    n = len(XS)

    def grad(scan):
        return jax.jit(jax.grad(lambda p, xs: jnp.sum(small_scan(scan, p, xs)[0][0] ** 2),
                                argnums=(0, 1)))(P, XS)

    ref = grad(jax.lax.scan)
    sched = pebbles.schedule("treeverse", n, budget=3, inplace=True)
    for given in (sched, list(sched), pebbles.encode(sched), pebbles.lower(sched)):
        assert rel(grad(cscan(None, schedule=given)), ref) < 1e-12


def test_inplace_streams_are_checked_in_the_inplace_game():
    """A move stream records no game: an in-place Treeverse stream passed as moves or as
    an encoded array fits the budget it was made for, as the Schedule does."""
    sched = pebbles.schedule("treeverse", 9, budget=3, inplace=True)
    made = scan_program(9, budget=3, schedule=sched)
    for given in (list(sched), sched.encode()):
        program = scan_program(9, budget=3, schedule=given)
        assert program.nslots == made.nslots and np.array_equal(program.ops, made.ops)
        with pytest.raises(pebbles.InfeasibleBudgetError, match=r"holds 3 carries at once, "
                                                               r"more than budget=2"):
            scan_program(9, budget=2, schedule=given)


# ---------------------------------------------------------------------------
# evaluations of f: the schedule's counts, the optimum
# ---------------------------------------------------------------------------
def counted(calls):
    def f(c, _):
        jax.debug.callback(lambda _: calls.__setitem__(0, calls[0] + 1), c)
        return c + 0.01 * jnp.sin(c), None
    return f


@pytest.mark.parametrize("n,budget,inplace", [(20, 4, False), (100, 5, False), (100, 5, True),
                                              (64, 2, False)])
def test_evaluations_are_the_optimum(n, budget, inplace):
    calls = [0]
    loss = jax.jit(jax.grad(lambda s: checkpointed_scan(
        counted(calls), s, length=n, budget=budget, inplace=inplace)[0].sum()))
    jax.block_until_ready(loss(jnp.ones(3)))
    game = "inplace" if inplace else "checkpoint"
    sim = pebbles.simulate(pebbles.treeverse(n, budget, inplace=inplace), n, game, budget)
    assert sim.forward_steps == pebbles.min_forward_steps(n, budget, game)
    prog = scan_program(n, budget=budget, inplace=inplace)
    extra = int(prog.ops[prog.ops[:, 0] == pebbles.OP_SEED][0, 4])  # s_n computed for the seed
    assert calls[0] == sim.forward_steps + extra + n
    assert calls[0] == prog.forward_steps + prog.backward_steps
    calls[0] = 0
    jax.block_until_ready(jax.jit(lambda s: checkpointed_scan(
        counted(calls), s, length=n, budget=budget)[0])(jnp.ones(3)))
    assert calls[0] == n  # no gradient: a plain scan


def test_store_all_evaluations():
    calls = [0]
    n = 25
    g = jax.grad(lambda s: checkpointed_scan(counted(calls), s, length=n, method="store-all")[0]
                 .sum())(jnp.ones(2))
    jax.block_until_ready(g)
    assert calls[0] == 2 * n  # every step once forward, once in its VJP


# ---------------------------------------------------------------------------
# memory and program size
# ---------------------------------------------------------------------------
def big_loss(n, budget):
    def loss(p, s0):
        return checkpointed_scan(lambda c, _: (c + 1e-3 * jnp.sin(p * c), None), s0, length=n,
                                 budget=budget)[0].sum()
    return loss


@pytest.mark.parametrize("budget", [5, 10])
def test_temp_memory_within_budget_plus_four_carries(budget):
    n, m = 10_000, 100_000
    carry = m * 8
    compiled = jax.jit(jax.grad(big_loss(n, budget), argnums=(0, 1))).lower(
        jnp.ones(m), jnp.ones(m)).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp <= (budget + 4) * carry + carry  # + the parameters p (one carry's size)
    assert temp >= (budget + 1) * carry  # the slot buffer is really there


def test_program_size_independent_of_n_and_budget():
    sizes = set()
    for n, budget in ((100, 5), (3000, 5), (3000, 40)):
        closed = jax.make_jaxpr(jax.grad(big_loss(n, budget), argnums=(0, 1)))(
            jnp.ones(8), jnp.ones(8))
        sizes.add(count_eqns(closed.jaxpr))
    assert len(sizes) == 1


# ---------------------------------------------------------------------------
# errors and the optional import
# ---------------------------------------------------------------------------
def step(c, x):
    return c + x, None


def test_budget_too_small():
    with pytest.raises(pebbles.InfeasibleBudgetError, match=r"budget=1 .*budget >= 2"):
        checkpointed_scan(step, 0.0, jnp.ones(10), budget=1)
    with pytest.raises(pebbles.InfeasibleBudgetError, match=r"budget=3"):
        checkpointed_scan(step, 0.0, jnp.ones(10), budget=3, method="store-all")
    with pytest.raises(pebbles.InfeasibleBudgetError, match=r"budget=2"):
        checkpointed_scan(step, 0.0, jnp.ones(10), budget=2,
                          schedule=pebbles.schedule("treeverse", 10, budget=4))


def test_length_and_xs_must_agree():
    with pytest.raises(pebbles.PebblesValueError, match=r"length=5 disagrees with xs.*10"):
        checkpointed_scan(step, 0.0, jnp.ones(10), 5, budget=3)
    with pytest.raises(pebbles.PebblesValueError, match=r"length=None and xs=None"):
        checkpointed_scan(step, 0.0, budget=3)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"length=None and xs=\(\), which holds no arrays"):
        checkpointed_scan(step, 0.0, (), budget=3)
    with pytest.raises(pebbles.PebblesValueError, match=r"different leading axis"):
        checkpointed_scan(step, 0.0, (jnp.ones(10), jnp.ones(9)), budget=3)
    with pytest.raises(pebbles.PebblesValueError, match=r"n=12 steps"):
        checkpointed_scan(step, 0.0, jnp.ones(10), budget=3,
                          schedule=pebbles.lower(pebbles.schedule("treeverse", 12, budget=3)))


@pytest.mark.parametrize("f,what", [
    (lambda c, x: (c.astype(jnp.float32), None), "dtype"),
    (lambda c, x: (jnp.stack([c, c]), None), "shape"),
    (lambda c, x: ((c, c), None), "structure"),
])
def test_f_must_keep_the_carry(f, what):
    with pytest.raises(pebbles.PebblesTypeError, match=rf"f changes the carry's {what}: init"):
        checkpointed_scan(f, jnp.ones(3), jnp.ones(5), budget=2)


def out_types(tree):
    """(dtype, weak_type) of every leaf: what the result promotes to when combined."""
    return jax.tree.map(lambda a: (str(a.dtype), a.aval.weak_type), tree)


WEAK_CASES = {  # step(p) -> f, init, xs, length
    "weak float": (lambda p: lambda c, x: (c * p + 1.0, c), 0.3, None, 4),
    "float32 xs": (lambda p: lambda c, x: (c + p * x, c), 0.3, jnp.ones(4, jnp.float32), None),
    "int to float": (lambda p: lambda c, x: (c + p * x, c), 0, jnp.linspace(0.0, 1.0, 4), None),
    "weak counter": (lambda p: lambda c, x: ((c[0] * p, c[1] + 1), c[1]), (0.3, 0), None, 4),
}


@pytest.mark.parametrize("case", WEAK_CASES)
def test_python_scalar_init_is_promoted_like_lax_scan(case):
    step, init, xs, length = WEAK_CASES[case]
    ref = jax.lax.scan(step(0.5), init, xs, length)
    got = checkpointed_scan(step(0.5), init, xs, length, budget=2)
    assert out_types(got) == out_types(ref)
    assert rel(got, ref) == 0.0

    def grad(scan):  # the outputs' types inside a gradient, and the gradient
        seen = []

        def loss(p):
            out = scan(step(p), init, xs, length)
            seen.append(out_types(out))
            return jnp.sum(jax.tree.leaves(out[0])[0])
        return seen, jax.grad(loss)(0.5)

    (seen_ref, g_ref), (seen, g) = grad(jax.lax.scan), grad(cscan(2))
    assert seen == seen_ref and g.dtype == g_ref.dtype and rel(g, g_ref) < 1e-14


def test_python_scalar_carry_stays_weak_like_lax_scan():
    f = WEAK_CASES["weak float"][0](0.5)
    carry, ys = checkpointed_scan(f, 0.3, None, 4, budget=2)
    assert carry.aval.weak_type and ys.aval.weak_type
    assert (carry * jnp.ones(2, jnp.float32)).dtype == jnp.float32  # not float64 under x64
    assert (ys * jnp.ones(2, jnp.bfloat16)[0]).dtype == jnp.bfloat16
    g = jax.grad(lambda x: jnp.sum(checkpointed_scan(f, x, None, 4, budget=2)[0]
                                   * jnp.ones(2, jnp.bfloat16)))(0.3)
    assert g.dtype == jax.grad(lambda x: jnp.sum(jax.lax.scan(f, x, None, 4)[0]
                                                 * jnp.ones(2, jnp.bfloat16)))(0.3).dtype


def test_f_changing_a_python_scalar_carry_to_int_is_refused():
    with pytest.raises(pebbles.PebblesTypeError, match=r"f changes the carry's dtype"):
        checkpointed_scan(lambda c, x: (jnp.int32(1), None), 0.5, None, 3, budget=2)


def test_a_leaf_that_is_no_array_is_named_by_its_path():
    with pytest.raises(pebbles.PebblesTypeError, match=r"^init='abc' is not an array: "
                                                       r"checkpointed_scan takes a pytree"):
        checkpointed_scan(lambda c, x: (c, None), "abc", length=5, budget=2)
    with pytest.raises(pebbles.PebblesTypeError, match=r"^init\[1\]='x' is not an array: "
                                                       r"checkpointed_while_loop"):
        checkpointed_while_loop(lambda i, c: i < 3, lambda i, c: c, (1.0, "x"), budget=2)


def test_f_must_be_traceable_and_return_a_pair():
    with pytest.raises(pebbles.PebblesTypeError, match=r"cannot be traced by JAX"):
        checkpointed_scan(lambda c, x: (c + float(x), None), jnp.ones(3), jnp.ones(5), budget=2)
    with pytest.raises(pebbles.PebblesTypeError, match=r"f returned an array float64\[3\]; "
                                                       r"f\(carry, x\) must return a pair"):
        checkpointed_scan(lambda c, x: c + x, jnp.ones(3), jnp.ones(5), budget=2)
    with pytest.raises(pebbles.PebblesTypeError, match=r"f returned a tuple of 3; "):
        checkpointed_scan(lambda c, x: (c, x, x), jnp.ones(3), jnp.ones(5), budget=2)


@pytest.mark.parametrize("method,kw,what", [
    ("bennett", {"k": 2}, "plays the reversible game"),
    ("bennett", {"budget": 3}, "plays the reversible game"),  # too small: refused first anyway
    ("bennett", {"budget": 5}, "plays the reversible game"),
    ("reversible-optimal", {"budget": 3}, "plays the reversible game"),
    ("reversible-optimal", {"budget": 4}, "plays the reversible game"),
    ("two-level", {"budget": 3}, "is a two-level method"),
])
def test_reversible_and_disk_methods_are_refused_up_front(method, kw, what):
    with pytest.raises(pebbles.PebblesValueError,
                       match=rf"method='{method}' {what}.*method='treeverse'") as info:
        checkpointed_scan(step, 0.0, jnp.ones(12), method=method, **kw)
    assert not isinstance(info.value, pebbles.InfeasibleBudgetError)


@pytest.mark.parametrize(("method", "hint"), [("Treeverse", "did you mean 'treeverse'? "),
                                              ("store_all", "did you mean 'store-all'? "),
                                              ("Bennett", "did you mean 'bennett-gradient'? "),
                                              ("revolve", "")])
def test_unknown_method_lists_only_the_methods_the_scan_takes(method, hint):
    """Not the registry's whole list: it holds reversible and disk methods, refused here."""
    with pytest.raises(pebbles.PebblesValueError) as info:
        checkpointed_scan(step, 0.0, jnp.ones(4), method=method, budget=2)
    message = str(info.value)
    assert message.startswith(f"method={method!r} is not a method name; {hint}checkpointed_scan")
    assert message.endswith(", ".join(map(repr, pebbles.gradient_methods())))
    for refused in ("'bennett'", "reversible-optimal", "two-level", "periodic-disk"):
        assert refused not in message


def test_schedule_takes_schedules_not_method_names():
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"schedule='treeverse' is a string.*pass method='treeverse'"):
        checkpointed_scan(step, 0.0, jnp.ones(12), budget=3, schedule="treeverse")
    with pytest.raises(pebbles.PebblesTypeError, match=r"schedule=42 \(int\) is not a schedule"):
        checkpointed_scan(step, 0.0, jnp.ones(12), budget=3, schedule=42)
    disk = pebbles.schedule("two-level", 12, budget=3, write_cost=1.0, read_cost=1.0)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^checkpointed_scan runs schedules held in memory; .*on disk"):
        checkpointed_scan(step, 0.0, jnp.ones(12), schedule=disk)


def test_programs_with_frees_and_tape_rows_run_as_steps_seed_and_paints():
    """frees=True programs and schedules with tape moves (kept graphs): OP_FREE rows are
    dropped and OP_TAPE rows run as OP_STEP; before, both were refused as disk copies."""
    xs = jnp.linspace(0.1, 1.0, 10)
    ref = jax.grad(lambda c: jax.lax.scan(step2, c, xs)[0])(0.3)
    for schedule in (pebbles.lower(pebbles.schedule("treeverse", 10, budget=3), frees=True),
                     list(pebbles.sequential_segments(10, 3))):
        got = jax.grad(lambda c, s=schedule: checkpointed_scan(step2, c, xs, schedule=s)[0])
        assert rel(got(0.3), ref) < 1e-14


def step2(c, x):
    return c + 0.1 * jnp.sin(x * c), None


def test_a_program_cut_by_hand_is_refused_not_run_with_clamped_slots():
    import dataclasses

    prog = pebbles.lower(pebbles.schedule("treeverse", 10, budget=3))
    xs = jnp.linspace(0.1, 1.0, 10)
    for bad, match in ((dataclasses.replace(prog, ops=prog.ops[1:]), r"reads slot 1 before"),
                       (dataclasses.replace(prog, nslots=3), r"names a slot outside 0\.\.2")):
        with pytest.raises(pebbles.PebblesValueError, match=match):
            checkpointed_scan(step2, 0.3, xs, schedule=bad)


def test_schedule_mismatches_and_options_are_refused_not_ignored():
    xs = jnp.ones(11)
    with pytest.raises(pebbles.PebblesValueError, match=r"for n=13 steps, but the scan has 11"):
        checkpointed_scan(step, 0.0, xs, schedule=pebbles.schedule("treeverse", 13, budget=3))
    prog = scan_program(11, budget=6)
    with pytest.raises(pebbles.PebblesTypeError, match=r"budget=2 with schedule=SlotProgram"):
        checkpointed_scan(step, 0.0, xs, schedule=prog, budget=2)
    s = pebbles.schedule("treeverse", 11, budget=3)
    with pytest.raises(pebbles.PebblesTypeError, match=r"options inplace=True with schedule="):
        checkpointed_scan(step, 0.0, xs, schedule=s, inplace=True)
    with pytest.raises(pebbles.InfeasibleBudgetError, match=r"more than budget=2"):
        checkpointed_scan(step, 0.0, xs, schedule=s, budget=2)


def test_options_are_checked_whatever_ran_before_and_for_empty_scans():
    """True == 1 and 2.0 == 2 as cache keys: each value is still checked."""
    scan_program(10, budget=3, inplace=True)
    with pytest.raises(pebbles.PebblesTypeError, match=r"inplace=1 must be True or False"):
        scan_program(10, budget=3, inplace=1)
    scan_program(10, method="periodic", every=2)
    with pytest.raises(pebbles.PebblesTypeError, match=r"every=2.0 must be an integer"):
        scan_program(10, method="periodic", every=2.0)
    empty = jnp.ones(0)
    for kw, error in [({"budget": -1}, pebbles.PebblesValueError),
                      ({"budget": 3, "method": "nonsense"}, pebbles.PebblesValueError),
                      ({"method": "bennett"}, pebbles.PebblesValueError),
                      ({"budget": 3, "foo": 1}, pebbles.PebblesTypeError),
                      ({"schedule": "treeverse"}, pebbles.PebblesTypeError),
                      ({"schedule": pebbles.schedule("treeverse", 5, budget=2)},
                       pebbles.PebblesValueError)]:
        with pytest.raises(error):
            checkpointed_scan(step, 0.0, empty, **kw)
    carry, ys = checkpointed_scan(step, 0.5, empty, budget=3)
    assert float(carry) == 0.5 and ys is None  # step returns no ys, as lax.scan gives


@pytest.mark.parametrize("form", [list, pebbles.encode])
def test_empty_scan_refuses_a_move_stream(form):
    """A stream is made for n >= 1 steps: refused at length 0 as at any other length."""
    given = form(pebbles.schedule("treeverse", 5, budget=2))
    for n in (3, 7):
        with pytest.raises(pebbles.IllegalMoveError):
            checkpointed_scan(step, 0.0, None, n, schedule=form(given))
    with pytest.raises(pebbles.PebblesValueError, match=r"schedule is a move stream of \d+ "
                                                        r"moves.*the scan has 0"):
        checkpointed_scan(step, 0.0, None, 0, schedule=given)


def test_core_does_not_import_jax_and_missing_jax_names_the_extra():
    code = ("import sys; import pebbles; assert 'jax' not in sys.modules; sys.modules['jax'] = "
            "None\ntry:\n    import pebbles.jax\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert 'pip install "pebble-games[jax]"' in out


def test_collectives_over_a_vmap_axis_name():
    """A step with pmean over a vmap axis: vmap outside grad matches lax.scan; vmap
    inside the differentiated function (JAX binds no axis name in a custom_vjp backward
    rule) raises JAX's NameError with a note that says what to do, for both loops."""
    def f(c, x):
        return jnp.sin(c) + jax.lax.pmean(c, "b"), c.sum()

    def loss(scan):
        return lambda c0: scan(f, c0, None, length=12)[0].sum()

    x = jnp.arange(6.0).reshape(3, 2)
    want = jax.vmap(jax.grad(loss(jax.lax.scan)), axis_name="b")(x)
    got = jax.vmap(jax.grad(loss(cscan(3))), axis_name="b")(x)
    np.testing.assert_allclose(got, want, rtol=1e-12)

    def body(c):
        return c[0] + 1, f(c[1], None)[0]

    inner = (lambda c0: cscan(3)(f, c0, None, length=12)[0],
             lambda c0: checkpointed_while_loop(lambda c: c[0] < 12, body, (0, c0),
                                                budget=3)[1])
    for g in inner:
        with pytest.raises(NameError) as err:
            jax.grad(lambda x, g=g: jax.vmap(g, axis_name="b")(x).sum())(x)
        assert "Apply jax.vmap outside jax.grad" in "".join(err.value.__notes__)


def test_only_perturbed_inputs_are_differentiated_as_by_lax_scan():
    """A lax.while_loop (a Newton solve) on a time leaf of the carry that depends on
    nothing differentiated: both loops differentiate only the perturbed leaves, as lax.scan
    does, and give its gradient, with or without lax.stop_gradient. On a differentiated
    leaf JAX refuses, as for lax.scan, and the error gets a note naming stop_gradient."""
    def root(t):  # a Newton solve
        return jax.lax.while_loop(lambda y: jnp.abs(y * y - (1 + t)) > 1e-12,
                                  lambda y: 0.5 * (y + (1 + t) / y), 2.0 + t)

    def step(th, c, stop):
        u, t = c
        return u + 0.01 * jnp.sin(th * u) * root(jax.lax.stop_gradient(t) if stop else t), t + 0.01

    def losses(step):
        return (lambda th: cscan(2)(lambda c, _: (step(th, c), None), (0.3, 0.0),
                                    None, length=6)[0][0],
                lambda th: checkpointed_while_loop(lambda c: c[1] < 0.055,
                                                   lambda c: step(th, c), (0.3, 0.0),
                                                   budget=2)[0])

    want = jax.grad(lambda th: jax.lax.scan(lambda c, _: (step(th, c, False), None),
                                            (0.3, 0.0), None, length=6)[0][0])(0.7)
    for stop in (False, True):
        for loss in losses(functools.partial(step, stop=stop)):
            np.testing.assert_allclose(jax.grad(loss)(0.7), want, rtol=1e-12)
            np.testing.assert_allclose(jax.jit(jax.grad(loss))(0.7), want, rtol=1e-12)

    def on_u(th, c):
        u, t = c
        return u + 0.01 * jnp.sin(th * u) * root(u), t + 0.01

    for loss in losses(on_u):
        with pytest.raises(ValueError, match="Reverse-mode differentiation") as err:
            jax.grad(loss)(0.7)
        assert "jax.lax.stop_gradient" in "".join(err.value.__notes__)


def test_a_loop_in_the_step_counts_as_a_whole_for_what_is_differentiated():
    """An inner lax.scan swaps its carry twice: its outputs are taken to depend on all
    its inputs (one pass through its body would say the swapped one), so the gradient
    through the first leaf is lax.scan's, not zero."""
    def step(th, c, _):
        u, w = c
        (p, _), _ = jax.lax.scan(lambda d, _: ((d[1], d[0]), None), (jnp.sin(th * u), w),
                                 None, length=2)
        return (u + 0.1 * p, w + 0.01), None

    def loss(scan):
        return jax.grad(lambda th: scan(functools.partial(step, th), (0.3, 0.0), None,
                                        length=5)[0][0])

    want = loss(jax.lax.scan)(0.7)
    assert abs(want) > 1e-3
    np.testing.assert_allclose(loss(cscan(2))(0.7), want, rtol=1e-12)


def test_a_pure_callback_on_xs_data_under_jit():
    """jax.pure_callback (no derivative rule) on xs leaves nothing is differentiated for:
    the gradient with respect to a parameter equals lax.scan's, under jit."""
    def forcing(x):
        return jax.pure_callback(np.cos, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    def loss(scan):
        def total(th):
            def f(c, x):
                c = c + 0.1 * jnp.sin(th * c) * forcing(x["w"]) + x["k"]
                return c, c * forcing(x["w"])

            xs = {"w": jnp.linspace(0.0, 1.0, 9), "k": jnp.arange(9) % 2}
            c, ys = scan(f, 0.5, xs)
            return c + ys.sum()
        return jax.jit(jax.grad(total))

    want = loss(jax.lax.scan)(0.7)
    np.testing.assert_allclose(loss(cscan(3))(0.7), want, rtol=1e-12)
    np.testing.assert_allclose(loss(cscan(2))(0.7), want, rtol=1e-12)


def test_a_step_that_is_not_callable_is_named():
    with pytest.raises(pebbles.PebblesTypeError, match=r"f=None is not callable; pass a "
                                                        r"function f\(carry, x\)"):
        checkpointed_scan(None, 0.0, length=3, budget=2)
    for cond, body, name in ((None, lambda c: c, "cond"), (lambda c: c < 1, 3, "body")):
        with pytest.raises(pebbles.PebblesTypeError, match=f"{name}=.* is not callable"):
            checkpointed_while_loop(cond, body, 0.0, budget=2)


@pytest.mark.parametrize(("kw", "least", "by"), [
    ({}, 2, ""), ({"inplace": True}, 1, ""),
    ({"method": "periodic", "every": 5}, 7, " with method='periodic'"),
])
def test_a_negative_budget_is_told_the_least_budget_in_the_registrys_words(kw, least, by):
    """scan_program said "budget=-3 must be >= 0; pass budget=0 or more", and 0 was then
    refused too (wrapped as "cannot finish method=... (pebbles: ...)")."""
    with pytest.raises(pebbles.InfeasibleBudgetError,
                       match=rf"^budget=-3 must be >= {least}, the least budget that finishes "
                             rf"n=20 steps{by}; pass budget={least} or more$") as err:
        scan_program(20, budget=np.int64(-3), **kw)
    assert err.value.minimum == least
    with pytest.raises(pebbles.InfeasibleBudgetError, match=r"^budget=-1 must be >= 2, "):
        checkpointed_scan(lambda c, x: (c, None), 0.0, jnp.ones(5), budget=-1)
    scan_program(20, budget=least, **kw)  # which it is


def test_a_negative_budget_with_a_schedule_is_told_its_peak():
    """A move stream checked against budget=-3 was told "must be >= 0" (0 refused too)."""
    s = pebbles.schedule("treeverse", 20, budget=3)
    for given in (s, list(s)):
        with pytest.raises(pebbles.InfeasibleBudgetError,
                           match=r"^the schedule passed holds 3 carries at once, more than "
                                 r"budget=-3; pass budget >= 3$"):
            scan_program(20, budget=-3, schedule=given)


@pytest.mark.parametrize("fn", [checkpointed_scan, scan_program])
def test_the_docstrings_name_every_method_the_scan_takes(fn):
    for method in pebbles.gradient_methods():
        assert f'``"{method}"``' in fn.__doc__, method
        options = dict.fromkeys(pebbles.describe(method).required, 2)  # delta=, every=
        budget = 4 if pebbles.describe(method).takes_budget else None
        assert scan_program(5, budget=budget, method=method, **options).n == 5  # taken
