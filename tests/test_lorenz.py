"""Tests of the Lorenz experiment (Liu & Xu, section 4.1), :mod:`solvers.lorenz`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pebbles._bennett import bennett_gradient
from pebbles._moves import Move, MoveKind, encode
from pebbles._simulator import simulate
from pebbles._treeverse import treeverse, treeverse_paper
from solvers import lorenz as lz


def store_all(n: int) -> list[Move]:
    moves = [Move(MoveKind.PLACE, i) for i in range(1, n)]
    for i in range(n - 1, 0, -1):
        moves += [Move(MoveKind.PAINT, i), Move(MoveKind.REMOVE, i)]
    return moves + [Move(MoveKind.PAINT, 0)]


def loss(x0, theta, n, dt=lz.DEFAULT_DT):
    return lz.primal(x0, theta, dt, n)[0]


def rel(a, b):
    return np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b)


def test_forward_matches_reverse():
    n = 1000
    f = lz.gradient_forward(n=n)
    r = lz.replay_lorenz(encode(store_all(n)), n)
    g = lz.gradient_reverse(treeverse(n, 6), n=n)
    assert f.loss == r.loss == g.loss
    assert np.allclose(r.gradient, f.gradient, rtol=1e-10, atol=0)
    assert np.array_equal(r.gradient, g.gradient)


def test_finite_differences():
    n = 50
    x0, theta = np.array(lz.DEFAULT_X0), np.array(lz.DEFAULT_THETA)
    f = lz.gradient_forward(x0, theta, n=n).gradient
    r = lz.replay_lorenz(encode(treeverse(n, 3)), n, x0, theta).gradient
    h = 1e-6
    fd = np.empty(6)
    for k in range(6):
        e = np.zeros(6)
        e[k] = h
        hi = loss(x0 + e[:3], theta + e[3:], n)
        lo = loss(x0 - e[:3], theta - e[3:], n)
        fd[k] = (hi - lo) / (2 * h)
    assert np.allclose(f, fd, rtol=1e-6, atol=1e-8)
    assert np.allclose(r, fd, rtol=1e-6, atol=1e-8)


def test_vjp_is_transpose_of_jvp():
    rng = np.random.default_rng(1)
    y, th = rng.standard_normal(3) * 5, np.array(lz.DEFAULT_THETA)
    tan = rng.standard_normal((3, 6))
    ybar = rng.standard_normal(3)
    jt = lz.rk4_jvp(y, th, 0.01, tan)
    yb, tb = lz.rk4_vjp(y, th, 0.01, ybar)
    lhs = ybar @ jt  # <ybar, J t> for each column
    rhs = yb @ tan[:, :] + np.concatenate([np.zeros(3), tb])
    assert np.allclose(lhs, rhs, rtol=1e-12)


def _schedules(n):
    yield "store-all", store_all(n)
    for s in (2, 4, 8):
        yield f"treeverse-{s}", treeverse(n, s)
        yield f"treeverse-inplace-{s}", treeverse(n, s, inplace=True)
    for d in (3, 6):
        yield f"paper-{d}", treeverse_paper(n, d)
    yield "bennett", bennett_gradient(n, 2)


@pytest.mark.parametrize("n", [1, 7, 300])
def test_numba_executor_bit_for_bit(n):
    ref = lz.replay_lorenz(encode(store_all(n)), n)
    generic = lz.gradient_reverse(store_all(n), n=n)
    assert np.array_equal(ref.gradient, generic.gradient)
    for name, moves in _schedules(n):
        enc = encode(moves)
        g = lz.replay_lorenz(enc, n)
        assert np.array_equal(g.gradient, ref.gradient), name
        assert g.loss == ref.loss
        sim = simulate(list(moves_of(enc)), n, "inplace")
        # never more than the schedule's pebbles plus the working state
        assert g.peak_states <= sim.peak_pebbles + 1, name
        assert g.backward_steps == n
        assert g.forward_steps - sim.forward_steps in (0, 1), name


def moves_of(enc):
    from pebbles._moves import decode

    return decode(enc)


def test_numba_executor_rejects_bad_schedules():
    from pebbles._errors import IllegalMoveError

    with pytest.raises(IllegalMoveError):
        lz.replay_lorenz(encode([Move(MoveKind.PLACE, 3)]), 5)
    with pytest.raises(IllegalMoveError, match="unpainted"):
        lz.replay_lorenz(encode(store_all(5)[:-1]), 5)
    with pytest.raises(IllegalMoveError, match="slots"):
        lz.replay_lorenz(encode(store_all(5)), 5, slots=2)


def test_sensitivity_map_matches_forward():
    sig, rho = np.array([5.0, 10.0]), np.array([15.0, 27.0, 40.0])
    m = lz.sensitivity_map(sig, rho, 8 / 3, n=200)
    assert m.shape == (2, 3)
    for i, s in enumerate(sig):
        for j, r in enumerate(rho):
            g = lz.gradient_forward(theta=(s, r, 8 / 3), n=200).gradient
            assert m[i, j] == pytest.approx(np.mean(np.abs(g)), rel=1e-14)


def _adjoint_error(n, rng, k=5):
    errs = []
    for _ in range(k):
        x0 = rng.standard_normal(3)
        exact = lz.gradient_forward(x0, n=n).gradient[:3]
        approx = lz.gradient_adjoint(x0, n=n).gradient[:3]
        errs.append(rel(approx, exact))
    return float(np.median(errs))


def test_adjoint_error_grows_with_steps():
    rng = np.random.default_rng(0)
    e = [_adjoint_error(n, rng) for n in (10, 200, 600)]
    assert e[0] < 1e-7 and e[0] < e[1] < e[2]


def test_adjoint_error_falls_with_reload_interval():
    n = 1000
    exact = lz.gradient_forward(n=n).gradient
    errs = [rel(lz.gradient_adjoint(n=n, reload_every=k).gradient, exact)
            for k in (500, 300, 100)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-7
    with pytest.raises(ValueError):
        lz.gradient_adjoint(n=10, reload_every=0)


def test_rk4_fourth_order():
    t_end = 0.5
    ref = lz.primal(n=6400, dt=t_end / 6400)
    errs = [np.linalg.norm(lz.primal(n=m, dt=t_end / m) - ref) for m in (100, 200, 400)]
    orders = np.log2(np.array(errs[:-1]) / errs[1:])
    assert np.all((orders > 3.7) & (orders < 4.3)), orders


def test_rk4_step_matches_formula():
    y, th, dt = np.array([1.0, 2.0, 3.0]), np.array(lz.DEFAULT_THETA), 0.01

    def f(v):
        s, r, b = th
        return np.array([s * (v[1] - v[0]), v[0] * (r - v[2]) - v[1], v[0] * v[1] - b * v[2]])

    k1 = dt * f(y)
    k2 = dt * f(y + k1 / 2)
    k3 = dt * f(y + k2 / 2)
    k4 = dt * f(y + k3)
    assert np.allclose(lz.rk4_step(y, th, dt), y + k1 / 6 + k2 / 3 + k3 / 3 + k4 / 6,
                       rtol=1e-15)


@pytest.mark.parametrize("method,extra", [
    ("forward", []), ("store-all", []), ("treeverse", ["--pebbles", "4"]),
    ("treeverse", ["--pebbles", "3", "--inplace"]), ("treeverse-paper", ["--delta", "3"]),
    ("adjoint", ["--every", "10"]), ("periodic", ["--every", "10"]),
    ("bennett", ["--k", "2"]),
])
def test_cli_methods(method, extra, capsys):
    status = lz.main(["gradient", "--method", method, "--steps", "64", "--json", *extra])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    exact = lz.gradient_forward(n=64).gradient
    assert np.allclose(out["gradient"], exact, rtol=1e-6)
    assert {"loss", "forward_steps", "backward_steps", "peak_states", "seconds"} <= set(out)


def test_cli_text_and_bad_input(capsys):
    assert lz.main(["gradient", "--method", "treeverse", "--steps", "30"]) == 0
    assert "peak_states" in capsys.readouterr().out
    assert lz.main(["gradient", "--method", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err
    assert lz.main(["gradient", "--steps", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert lz.main(["gradient", "--method", "treeverse", "--pebbles", "0",
                    "--steps", "10"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_sensitivity_cli_writes_the_figure3_grid(tmp_path):
    from solvers.lorenz import main, sensitivity_map

    out = tmp_path / "map.npz"
    code = main(["sensitivity", "--sigma-range", "5", "10", "--rho-range", "10", "30",
                 "--resolution", "3", "--steps", "50", "--out", str(out)])
    data = np.load(out)
    assert code == 0 and data["mean_abs_grad"].shape == (3, 3)
    expected = sensitivity_map(data["sigmas"], data["rhos"], n=50)
    assert np.array_equal(data["mean_abs_grad"], expected)
    assert main(["sensitivity", "--resolution", "1", "--out", str(out)]) == 2
