"""Tests of the generic executor :func:`pebbles._executor.replay`."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from pebbles._baselines import recompute_all
from pebbles._bennett import bennett_gradient
from pebbles._errors import IllegalMoveError, PebblesTypeError, PebblesValueError
from pebbles._executor import CallbackError, NonFiniteError, ReplayResult, replay
from pebbles._moves import Move, MoveKind, encode
from pebbles._simulator import simulate
from pebbles._treeverse import treeverse, treeverse_paper

A = np.array([[0.9, 0.2, 0.0], [-0.1, 0.8, 0.3], [0.05, 0.0, 1.1]])
S0 = np.array([1.0, -2.0, 0.5])
W = np.array([1.0, 2.0, -1.0])  # L = W . s_n


def store_all(n: int) -> list[Move]:
    moves = [Move(MoveKind.FORWARD, i, i + 1) for i in range(n - 1)]
    for i in range(n - 1, 0, -1):
        moves += [Move(MoveKind.PAINT, i), Move(MoveKind.REMOVE, i)]
    return moves + [Move(MoveKind.PAINT, 0)]


def linear(moves, n, s0=S0, theta=None, **kw) -> ReplayResult:
    th = np.zeros(3) if theta is None else theta
    return replay(
        moves, n, s0,
        step=lambda i, s: A @ s + th,
        backward=lambda i, s, g: (A.T @ g, g.copy()),
        loss_grad=lambda s: W.copy(),
        loss=lambda s: float(W @ s),
        **kw,
    )


def schedules(n: int):
    yield "store-all", store_all(n), "checkpoint", n - 1
    for s in (2, 3, 5):
        yield f"treeverse-{s}", list(treeverse(n, s)), "checkpoint", s
    for s in (1, 2, 4):
        yield f"treeverse-inplace-{s}", list(treeverse(n, s, inplace=True)), "inplace", s
    for d in (2, 4):
        moves = list(treeverse_paper(n, d))
        yield f"paper-{d}", moves, "checkpoint", simulate(moves, n).peak_pebbles
    moves = list(bennett_gradient(n, 2))
    yield "bennett", moves, "checkpoint", simulate(moves, n).peak_pebbles


def test_exact_gradient_of_linear_map():
    n = 7
    theta = np.array([0.1, -0.2, 0.3])
    r = linear(store_all(n), n, theta=theta)
    ap = np.linalg.matrix_power
    assert np.allclose(r.grad_s0, ap(A.T, n) @ W, rtol=1e-14)
    exact_theta = sum(ap(A.T, k) @ W for k in range(n))
    assert np.allclose(r.grad_theta, exact_theta, rtol=1e-14)
    sn = ap(A, n) @ S0 + sum(ap(A, k) @ theta for k in range(n))
    assert r.loss == pytest.approx(float(W @ sn), rel=1e-14)
    assert (r.forward_steps, r.extra_steps, r.backward_steps) == (n, 1, n)


def test_finite_differences():
    n = 9
    theta = np.array([0.1, -0.2, 0.3])
    r = linear(list(treeverse(n, 3)), n, theta=theta)
    h = 1e-6
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        fd = (linear(store_all(n), n, S0 + e, theta).loss
              - linear(store_all(n), n, S0 - e, theta).loss) / (2 * h)
        assert fd == pytest.approx(r.grad_s0[k], rel=1e-7)
        fd = (linear(store_all(n), n, S0, theta + e).loss
              - linear(store_all(n), n, S0, theta - e).loss) / (2 * h)
        assert fd == pytest.approx(r.grad_theta[k], rel=1e-7)


@pytest.mark.parametrize("n", [1, 2, 13, 40])
def test_every_schedule_bit_for_bit(n):
    rng = np.random.default_rng(n)
    s0, theta = rng.standard_normal(3), rng.standard_normal(3)
    ref = linear(store_all(n), n, s0, theta)
    for name, moves, _, _ in schedules(n):
        r = linear(moves, n, s0, theta)
        assert np.array_equal(r.grad_s0, ref.grad_s0), name
        assert np.array_equal(r.grad_theta, ref.grad_theta), name
        assert r.loss == ref.loss, name
        assert r.backward_steps == n
        sim = simulate(moves, n)
        assert r.forward_steps == sim.forward_steps + r.extra_steps, name


@pytest.mark.parametrize("n", [13, 40])
def test_peak_states_within_budget(n):
    def step_into(i, s, out):
        out[:] = A @ s

    for name, moves, game, budget in schedules(n):
        r = linear(moves, n)
        extra_move = 1 if game == "inplace" else 0  # move without step_into
        assert r.peak_states <= budget + 1 + extra_move, name
        r2 = linear(moves, n, step_into=step_into)
        assert r2.peak_states <= budget + 1, name
        assert np.array_equal(r2.grad_s0, r.grad_s0), name


def test_encoded_schedule_and_running_loss():
    n = 12
    moves = list(treeverse(n, 3))
    kw = {"running_loss": lambda i, s: float(s @ s),
          "running_loss_grad": lambda i, s: 2 * s}
    a = linear(moves, n, **kw)
    b = linear(encode(moves), n, **kw)
    c = linear(store_all(n), n, **kw)
    assert np.array_equal(a.grad_s0, b.grad_s0) and np.array_equal(a.grad_s0, c.grad_s0)
    assert a.loss == c.loss
    # finite-difference check of the running loss gradient
    h = 1e-6
    e = np.array([h, 0.0, 0.0])
    fd = (linear(moves, n, S0 + e, **kw).loss - linear(moves, n, S0 - e, **kw).loss) / (2 * h)
    assert fd == pytest.approx(a.grad_s0[0], rel=1e-6)


class State(np.ndarray):
    """An ndarray subclass that can be weak-referenced."""


def test_callback_error_names_step_and_frees_states():
    n, k = 20, 11
    refs: list[weakref.ref] = []

    def step(i, s):
        if i == k:
            raise ZeroDivisionError("boom")
        out = (A @ s).view(State)
        refs.append(weakref.ref(out))
        return out

    moves = list(treeverse(n, 4))
    with pytest.raises(CallbackError, match=f"at step {k}") as info:
        replay(moves, n, S0.view(State), step, lambda i, s, g: (A.T @ g, None),
               lambda s: W.copy())
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.step == k and info.value.callback == "step"
    gc.collect()
    assert refs and all(r() is None for r in refs)


def test_backward_error_names_step():
    n = 6

    def backward(i, s, g):
        if i == 3:
            raise ValueError("bad")
        return A.T @ g, None

    with pytest.raises(CallbackError, match="'backward' raised ValueError at step 3"):
        replay(store_all(n), n, S0, lambda i, s: A @ s, backward, lambda s: W.copy())


def test_bad_return_shape_and_dtype():
    n = 5
    with pytest.raises(PebblesTypeError, match="step at step 0 returned shape=\\(2,\\)"):
        replay(store_all(n), n, S0, lambda i, s: s[:2], lambda i, s, g: (g, None),
               lambda s: W.copy())
    with pytest.raises(PebblesTypeError, match="dtype"):
        replay(store_all(n), n, S0, lambda i, s: s.astype(np.float32),
               lambda i, s, g: (g, None), lambda s: W.copy())
    with pytest.raises(PebblesTypeError, match="must return a tuple"):
        replay(store_all(n), n, S0, lambda i, s: A @ s, lambda i, s, g: g,
               lambda s: W.copy())


def test_a_python_float_where_a_numpy_value_belongs_is_named():
    """float and float64 read alike: the message says which side is the Python number."""
    n, back = 4, (lambda i, s, g: (0.5 * g, None))
    with pytest.raises(PebblesTypeError, match=r"loss_grad at step 4 returned shape=\(\), "
                       r"dtype=float; .*that is a Python float where s0 holds a float64 array: "
                       r"return .*np.ones_like\(s\) or np.float64\(x\)"):
        replay(store_all(n), n, np.array(0.3), lambda i, s: 0.5 * s, back, lambda s: 1.0)
    with pytest.raises(PebblesTypeError, match=r"s0 is a Python float, not a NumPy array .*"
                       r"pass s0=np.asarray\(s0, dtype=np.float64\)"):
        replay(store_all(n), n, 0.3, lambda i, s: 0.5 * s, back, np.ones_like)
    with pytest.raises(PebblesTypeError, match=r"s0 is a Python float, .*"  # the callback's
                       r"pass s0=np.asarray\(s0, dtype=np.float32\)"):  # dtype, not float64
        replay(store_all(n), n, 0.3, lambda i, s: np.float32(0.5 * s), back, np.ones_like)
    with pytest.raises(PebblesTypeError) as err:  # other mismatches get no such hint
        replay(store_all(n), n, S0, lambda i, s: s.astype(np.float32), back, np.ones_like)
    assert "Python" not in str(err.value)
    r = replay(store_all(n), n, np.asarray(0.3), lambda i, s: 0.5 * s, back, np.ones_like)
    assert r.grad_s0 == 0.5**n


def test_check_finite():
    n = 5

    def step(i, s):
        return s / 0.0 if i == 2 else A @ s

    with np.errstate(divide="ignore", invalid="ignore"):
        with pytest.raises(NonFiniteError, match="at step 2") as info:
            replay(store_all(n), n, S0, step, lambda i, s, g: (g, None),
                   lambda s: W.copy(), check_finite=True)
    assert (info.value.callback, info.value.step) == ("step", 2)
    with np.errstate(divide="ignore"), pytest.raises(NonFiniteError, match="theta_bar") as info:
        replay(store_all(n), n, S0, lambda i, s: A @ s, lambda i, s, g: (g, g / 0.0 * i),
               lambda s: W.copy(), check_finite=True)
    assert (info.value.callback, info.value.step) == ("backward", n - 1)
    with pytest.raises(NonFiniteError, match="loss at step") as info:
        replay(store_all(n), n, S0, lambda i, s: A @ s, lambda i, s, g: (g, None),
               lambda s: W.copy(), loss=lambda s: np.nan, check_finite=True)
    assert (info.value.callback, info.value.step) == ("loss", n)


def test_illegal_schedules():
    n = 4
    with pytest.raises(IllegalMoveError):
        linear([Move(MoveKind.PLACE, 2)], n)
    with pytest.raises(IllegalMoveError):
        linear([Move(MoveKind.PAINT, 0)], n)
    with pytest.raises(IllegalMoveError, match="unpainted"):
        linear(store_all(n)[:-1], n)


def test_progress_flag_is_harmless():
    n = 6
    r = linear(store_all(n), n, progress=True)
    assert r.backward_steps == n


# -- buffer pool ---------------------------------------------------------------
def _pool_run(moves, n, pool_size=None, keep=None):
    """Linear problem with step_into; records the buffers step_into writes into."""
    outs: list[int] = []
    made: list[int] = []

    def step(i, s):
        out = A @ s
        made.append(id(out))
        if keep is not None:
            keep.append(out)
        return out

    def step_into(i, s, out):
        if out is not s:
            outs.append(id(out))
        out[:] = A @ s

    r = replay(moves, n, S0, step, lambda i, s, g: (A.T @ g, g.copy()), lambda s: W.copy(),
               loss=lambda s: float(W @ s), step_into=step_into, pool_size=pool_size)
    return r, outs, made


@pytest.mark.parametrize("n", [13, 40])
def test_pool_reuses_freed_buffers_and_keeps_the_gradient(n):
    ref = linear(store_all(n), n)
    for name, moves, _, budget in schedules(n):
        r, outs, made = _pool_run(moves, n)
        r0, outs0, _ = _pool_run(moves, n, pool_size=0)
        assert np.array_equal(r.grad_s0, ref.grad_s0), name
        assert np.array_equal(r.grad_s0, r0.grad_s0) and r.loss == r0.loss, name
        assert r.forward_steps == r0.forward_steps, name
        # only buffers the executor got from step() are reused, and fewer are made
        assert set(outs) <= set(made), name
        assert r.allocations == len(made) <= r0.allocations, name
        assert r.allocations + len(outs) + r.inplace_steps == r.forward_steps, name
        assert r.peak_buffers <= r.peak_states <= budget + 1, name
        assert r0.peak_buffers == r0.peak_states, name
    r, outs, _ = _pool_run(list(treeverse(n, 3)), n)
    assert outs and r.allocations < r.forward_steps // 2
    # the default pool has no limit: exactly the peak of buffers is allocated
    assert r.allocations == r.peak_buffers
    capped, _, _ = _pool_run(list(treeverse(n, 3)), n, pool_size=1)
    assert capped.allocations >= r.allocations and capped.peak_buffers <= r.peak_buffers


def test_pool_off_leaves_kept_states_alone():
    n = 20
    kept: list[np.ndarray] = []
    moves = list(treeverse(n, 3))
    _pool_run(moves, n, pool_size=0, keep=kept)
    # without a pool, no array returned by step is ever overwritten
    ref = S0.copy()
    traj = [ref]
    for _ in range(n):
        traj.append(A @ traj[-1])
    assert all(any(np.array_equal(k, t) for t in traj) for k in kept)


def test_pool_failure_frees_pooled_buffers():
    n = 30
    refs: list[weakref.ref] = []
    pooled: list[int] = []

    def step(i, s):
        out = (A @ s).view(State)
        refs.append(weakref.ref(out))
        return out

    def step_into(i, s, out):
        if out is not s:
            pooled.append(i)
            if len(pooled) == 3:
                raise KeyError("pooled")
        out[:] = A @ s

    moves = list(treeverse(n, 4))
    with pytest.raises(CallbackError, match="'step_into' raised KeyError at step") as info:
        replay(moves, n, S0.view(State), step, lambda i, s, g: (A.T @ g, None),
               lambda s: W.copy(), step_into=step_into)
    assert info.value.callback == "step_into" and info.value.step == pooled[-1]
    gc.collect()
    assert refs and all(r() is None for r in refs)


@pytest.mark.parametrize("bad, error", [(-1, PebblesValueError), (1.5, PebblesTypeError),
                                        (True, PebblesTypeError), ("4", PebblesTypeError)])
def test_pool_size_is_checked(bad, error):
    with pytest.raises(error, match=f"pool_size={bad!r}"):
        linear(store_all(3), 3, pool_size=bad)


def test_pool_never_reuses_a_buffer_a_gradient_aliases():
    # theta_bar_i = s_i itself (a view): the executor's running sum starts as that
    # array, so s_i's buffer must not be reused while the sum still is it
    n = 12
    moves = list(recompute_all(n))  # a walk between every two paints

    def run(pool_size):
        def step_into(i, s, out):
            out[:] = A @ s
        return replay(moves, n, S0, lambda i, s: A @ s, lambda i, s, g: (A.T @ g, s[:]),
                      lambda s: W.copy(), step_into=step_into, pool_size=pool_size)

    exact = run(0).grad_theta
    np.testing.assert_allclose(exact, sum(np.linalg.matrix_power(A, k) @ S0 for k in range(n)),
                               rtol=1e-13)
    assert np.array_equal(run(None).grad_theta, exact)


@pytest.mark.parametrize(("method", "options"), [
    ("treeverse", {"budget": 3}),
    ("treeverse", {"budget": 3, "inplace": True}),
    ("online", {"budget": 4}),
    ("two-level", {"budget": 3, "disk_budget": 3, "write_cost": 1, "read_cost": 1}),
])
def test_program_lowered_without_frees_holds_the_schedules_states(method, options):
    """``replay(lower(s))`` (lower's default: no OP_FREE rows) holds what ``replay(s)`` does."""
    import pebbles

    s = pebbles.schedule(method, 30, **options)
    refs: list[weakref.ref] = []
    most = [0]

    def step(i, x):
        out = (A @ x).view(State)
        refs[:] = [r for r in refs if r() is not None] + [weakref.ref(out)]
        most[0] = max(most[0], len(refs))
        return out

    def run(moves, **kw):
        refs.clear()
        most[0] = 0
        r = replay(moves, None, S0, step, lambda i, x, g: (A.T @ g, None),
                   lambda x: W.copy(), **kw)
        return r, most[0]

    ref, ref_most = run(s)
    got, got_most = run(pebbles.lower(s))
    assert got.peak_states == ref.peak_states <= s.lower().peak_states + 1
    assert got_most == ref_most <= got.peak_states
    assert np.array_equal(got.grad_s0, ref.grad_s0)

    def step_into(i, x, out):
        out[:] = A @ x

    assert run(pebbles.lower(s), step_into=step_into)[0].allocations == \
        run(s, step_into=step_into)[0].allocations


@pytest.mark.parametrize("flag", ["check_finite", "check_states", "progress"])
@pytest.mark.parametrize("value", ["no", 1, None])
def test_switches_must_be_bools(flag, value):
    # progress="no" is refused: only True shows a bar, not any truthy value
    with pytest.raises(PebblesTypeError, match=f"{flag}=.* must be True or False"):
        linear(treeverse(10, 3), 10, **{flag: value})


def test_a_plain_stream_without_n_names_replay():
    # the message names replay, which the caller called, not lower()
    with pytest.raises(PebblesTypeError, match=r"replay\(moves, n=None, \.\.\.\) needs n="):
        linear(treeverse(10, 3), None)


@pytest.mark.parametrize("n, segments", [(4, 2), (9, 3), (12, 5)])
def test_schedules_with_tape_moves_replay_as_steps(n, segments):
    """A ``tape`` move (a kept graph) runs as the step it is: no graph is kept here, so
    its paint recomputes the step. Before, its OP_TAPE row was taken for a discard."""
    from pebbles import MemoryStore, sequential_segments

    moves = list(sequential_segments(n, segments))
    assert any(m.kind is MoveKind.TAPE for m in moves)
    theta = np.array([0.1, -0.2, 0.3])
    ref = linear(store_all(n), n, theta=theta)
    for kw in ({}, {"store": MemoryStore()}):
        r = linear(moves, n, theta=theta, **kw)
        assert np.array_equal(r.grad_s0, ref.grad_s0)
        assert np.array_equal(r.grad_theta, ref.grad_theta) and r.loss == ref.loss
        assert r.forward_steps == simulate(moves, n).forward_steps + r.extra_steps


def test_peak_buffers_counts_the_output_of_a_move_without_step_into():
    """A ``move`` without ``step_into`` holds its input and output: with every slot in
    use that is one buffer more than the program's slots besides s_0 (the docstring's
    bound); with ``step_into`` the bound is the slots."""
    from pebbles import lower, schedule

    s = schedule("periodic-disk", 7, budget=2, period=3, inplace=True)
    slots = lower(s).nslots - 1
    common = dict(backward=lambda i, x, g: (1.1 * g, None), loss_grad=np.ones_like)
    plain = replay(s, None, np.ones(2), step=lambda i, x: 1.1 * x, **common)
    into = replay(s, None, np.ones(2), step=lambda i, x: 1.1 * x,
                  step_into=lambda i, x, out: np.multiply(x, 1.1, out=out), **common)
    assert plain.peak_buffers == slots + 1 and into.peak_buffers <= slots
    assert np.array_equal(plain.grad_s0, into.grad_s0)


@pytest.mark.parametrize("s0", [np.array([1.0, 2.0], dtype=object),
                                {"a": np.ones(2), "b": np.array([None, 1])},
                                np.zeros(2, dtype=[("x", "f8"), ("y", "O")])])
def test_a_state_of_python_objects_is_refused_naming_s0_and_its_dtype(s0):
    """Before, NumPy's 'Cannot change data-type for array of references' came out of the
    checksum of s0, for every schedule, memory-only too."""
    import pebbles

    with pytest.raises(PebblesTypeError, match=r"^s0 holds an array of dtype .+ \(Python "
                                               r"objects.*np\.asarray\(s0, dtype=np\.float64\)"):
        replay(treeverse(5, 2), 5, s0, lambda i, s: s, lambda i, s, g: (g, None), lambda s: s)
    with pytest.raises(PebblesTypeError, match="^s0 holds an array of dtype"):
        pebbles.replay_until(lambda i, s: s, lambda i, s, g: (g, None), lambda s: s, s0,
                             lambda i, s: i >= 3, 2)


class _DictStore:
    """A store written to the documented protocol only: ``get(key)`` returns a new array,
    with no ``out`` parameter. Records the keyword arguments each get received."""

    def __init__(self):
        self.data, self.gets = {}, 0

    def put(self, key, array):
        self.data[key] = np.array(array, copy=True)

    def get(self, key):
        self.gets += 1
        return self.data[key].copy()

    def delete(self, key):
        del self.data[key]


class _KwargsStore(_DictStore):
    """A store whose ``get`` takes ``**kwargs``: offered buffers to read into."""

    def __init__(self):
        super().__init__()
        self.outs = 0

    def get(self, key, **kwargs):
        out = kwargs.get("out")
        if out is None:
            return super().get(key)
        self.gets, self.outs = self.gets + 1, self.outs + 1
        np.copyto(out, self.data[key])
        return out


@pytest.mark.parametrize("inplace, disk", [(False, None), (False, 2), (True, None),
                                           (True, 2)])
@pytest.mark.parametrize("pool_size", [None, 0])
def test_a_store_whose_get_takes_no_out_replays_two_level_schedules(inplace, disk,
                                                                    pool_size):
    """Before, the executor called ``get(key, out=...)`` on every store, and a store
    written to the documented protocol failed with a bare TypeError at its first load."""
    import pebbles

    n = 40
    s = pebbles.schedule("two-level", n, budget=3, disk_budget=disk, write_cost=0.5,
                         read_cost=0.5, inplace=inplace)
    into = dict(step_into=lambda i, x, out: np.copyto(out, A @ x), pool_size=pool_size)
    with pebbles.DiskStore() as disk_store:
        ref = linear(s, None, store=disk_store, **into)
    mine = _DictStore()
    r = linear(s, None, store=mine, **into)
    assert np.array_equal(r.grad_s0, ref.grad_s0) and r.loss == ref.loss
    assert np.array_equal(r.grad_theta, ref.grad_theta)
    assert r.reads == ref.reads == mine.gets > 0 and mine.data == {}
    assert np.array_equal(r.grad_s0, linear(store_all(n), n).grad_s0)


def test_a_store_whose_get_takes_kwargs_is_given_buffers_to_read_into():
    import pebbles

    n = 40
    s = pebbles.schedule("two-level", n, budget=3, write_cost=0.5, read_cost=0.5,
                         inplace=True)
    store = _KwargsStore()
    r = linear(s, None, store=store, step_into=lambda i, x, out: np.copyto(out, A @ x))
    assert store.outs > 0 and store.gets == r.reads
    assert np.array_equal(r.grad_s0, linear(store_all(n), n).grad_s0)


def _writes_into_its_input(i, s):
    s["x"] += 1.0  # at step 0, into s0
    return {"x": s["x"] * 2.0, "t": s["t"] + 1.0}


@pytest.mark.parametrize("t0", [np.float64(0.0), 0.0, np.asarray(0.0)],
                         ids=["numpy-scalar", "python-float", "0-d-array"])
def test_s0_changed_in_place_is_reported_beside_a_scalar_leaf(t0):
    """Before, a NumPy scalar or Python number anywhere in s0 turned the checksum of s0
    off, and a step that wrote into s0 gave a wrong gradient without a word."""
    import pebbles

    kw = dict(step=_writes_into_its_input, backward=lambda i, s, g: (g, None),
              loss_grad=lambda s: {"x": np.ones(2), "t": s["t"] * 0 + 1})
    with pytest.raises(PebblesValueError, match="^s0 changed during the replay"):
        replay(treeverse(3, 2), 3, {"x": np.ones(2), "t": t0}, **kw)
    with pytest.raises(PebblesValueError, match="^s0 changed during the replay"):
        pebbles.replay_until(s0={"x": np.ones(2), "t": t0}, done=lambda i, s: i >= 3,
                             budget=2, **kw)


@pytest.mark.parametrize("where", ["replay", "replay_until-forward", "replay_until-reverse"])
def test_a_keyboard_interrupt_in_the_executors_own_code_names_the_step(monkeypatch, where):
    """Before, a Ctrl-C got a note with the step only inside a callback or a store call;
    landing in the executor's own code (most of the time, with cheap callbacks) it came
    out with none. Here it comes from the executor's per-row helpers."""
    import pebbles
    from pebbles import _executor

    method = "keep" if where == "replay_until-forward" else "drop"
    real, count = getattr(_executor._Replay, method), [0]

    def interrupted(self, *args):
        count[0] += 1
        if count[0] == 7:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(_executor._Replay, method, interrupted)
    calls: list = []
    kw = dict(step=lambda i, s: (calls.append(("step", i)), 1.5 * s)[1],
              backward=lambda i, s, g: (calls.append(("backward", i)), (1.5 * g, None))[1],
              loss_grad=np.ones_like, s0=np.ones(2))
    with pytest.raises(KeyboardInterrupt) as info:
        if where == "replay":
            replay(pebbles.schedule("treeverse", 30, budget=3), None, **kw)
        else:
            pebbles.replay_until(done=lambda i, s: (calls.append(("done", i)), i >= 30)[1],
                                 budget=3, **kw)
    what, i = calls[-1]
    assert info.value.__notes__ == [
        f"pebbles: stopped at step {i} (in the executor, after callback {what!r} returned)"]


def test_a_keyboard_interrupt_before_the_first_step_says_so(monkeypatch):
    from pebbles import _executor

    def interrupted(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_executor._Replay, "walk", interrupted)
    with pytest.raises(KeyboardInterrupt) as info:
        linear(treeverse(5, 2), 5)
    assert info.value.__notes__ == ["pebbles: stopped before the first step"]
