"""Tests of the Lorenz experiment (Liu & Xu, section 4.1), :mod:`solvers.lorenz`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pebbles
from pebbles import (
    IllegalMoveError,
    Move,
    MoveKind,
    bennett_gradient,
    decode,
    encode,
    simulate,
    store_all,
    treeverse,
    treeverse_paper,
)
from solvers import lorenz as lz

ROOT = Path(__file__).resolve().parents[1]


def loss(x0, theta, n, dt=lz.DEFAULT_DT):
    return lz.primal(x0, theta, dt, n)[0]


def rel(a, b):
    return np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b)


def test_replay_lorenz_refuses_a_program_cut_by_hand():
    import dataclasses

    prog = pebbles.lower(pebbles.schedule("treeverse", 20, budget=3))
    with pytest.raises(pebbles.PebblesValueError, match=r"^row 0 of the program.*reads slot"):
        lz.replay_lorenz(dataclasses.replace(prog, ops=prog.ops[1:]))


def test_forward_matches_reverse():
    n = 1000
    f = lz.gradient_forward(n=n)
    r = lz.replay_lorenz(encode(store_all(n)), n)
    g = lz.gradient_reverse(pebbles.schedule("treeverse", n, budget=6))
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
        sim = simulate(list(decode(enc)), n, "inplace")
        # never more than the schedule's pebbles plus the working state
        assert g.peak_states <= sim.peak_states + 1, name
        assert g.backward_steps == n
        assert g.forward_steps - sim.forward_steps in (0, 1), name
        prog = pebbles.lower(enc, n)
        assert (g.forward_steps, g.backward_steps, g.peak_states) == (
            prog.forward_steps, prog.backward_steps, prog.peak_states), name


def test_numba_executor_takes_schedules_and_programs():
    s = pebbles.schedule("treeverse", 40, budget=4, inplace=True)
    ref = lz.replay_lorenz(encode(s), 40)
    for g in (lz.replay_lorenz(s), lz.replay_lorenz(pebbles.lower(s)),
              lz.replay_lorenz(list(s), 40)):
        assert np.array_equal(g.gradient, ref.gradient) and g.loss == ref.loss
    with pytest.raises(pebbles.PebblesValueError, match="n=41"):
        lz.replay_lorenz(pebbles.lower(s), 41)
    disk = [pebbles.place(1), pebbles.store(1), pebbles.remove(1), pebbles.load(1),
            pebbles.paint(1), pebbles.remove(1), pebbles.paint(0)]
    with pytest.raises(pebbles.PebblesValueError, match="on disk"):
        lz.replay_lorenz(disk, 2)


def test_numba_executor_rejects_bad_schedules_before_running():
    with pytest.raises(IllegalMoveError) as err:
        lz.replay_lorenz(encode([Move(MoveKind.PLACE, 3)]), 5)
    assert err.value.index == 0 and "place 3 needs a pebble on cell 2" in str(err.value)
    with pytest.raises(IllegalMoveError, match="unpainted"):
        lz.replay_lorenz(encode(list(store_all(5))[:-1]), 5)
    with pytest.raises(IllegalMoveError, match="slots=2") as err:
        lz.replay_lorenz(store_all(5), 5, slots=2)
    assert err.value.index == 1


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
    with pytest.raises(pebbles.PebblesValueError, match="reload_every=0"):
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


@pytest.mark.parametrize("method, flags, options, default", [
    ("treeverse-paper", ["--delta", "2", "--tau", "7"], {"delta": 2, "tau": 7}, {"delta": 2}),
    ("online", ["--pebbles", "3", "--beyond", "wang-moin"],
     {"budget": 3, "beyond": "wang-moin"}, {"budget": 3}),
    ("online", ["--pebbles", "3", "--beyond", "greedy"], {"budget": 3, "beyond": "greedy"},
     {"budget": 3, "beyond": "wang-moin"}),
])
def test_cli_tau_and_beyond_reach_the_schedule(method, flags, options, default, capsys):
    """--tau and --beyond run the registry's schedule with that option: its forward
    steps (which the option changes) and the gradient of store-all, bit for bit."""
    n = 20
    s, other = pebbles.schedule(method, n, **options), pebbles.schedule(method, n, **default)
    assert s.lower().forward_steps != other.lower().forward_steps  # the flag matters
    assert lz.main(["gradient", "--method", method, "--steps", str(n), "--json", *flags]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["forward_steps"] == s.lower().forward_steps
    assert out["gradient"] == lz.replay_lorenz(pebbles.schedule("store-all", n)).gradient.tolist()


def test_cli_treeverse_paper_lower_delta_fits(capsys):
    """The fix the refusal of --pebbles 3 offers (--delta 2) runs."""
    assert lz.main(["gradient", "--steps", "5", "--method", "treeverse-paper", "--pebbles",
                    "3", "--delta", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["peak_states"] <= 3 + 1  # + the working state


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


@pytest.mark.parametrize("args, message", [
    (["--out", "{tmp}/missing/map.npz"], "lies in directory '{tmp}/missing', which does not exist"),
    (["--out", "{tmp}/map.txt"], "must end in .npz"),
    (["--out", "{tmp}"], "is a directory"),
    (["--out", "{tmp}/file.npz/map.npz"],
     "lies under '{tmp}/file.npz', which is a file, not a directory"),
    (["--out", ""], "--out '' is an empty path"),
    (["--dt", "0", "--out", "{tmp}/map.npz"], "--dt 0.0 must be a finite number > 0"),
    (["--dt", "-1e-3", "--out", "{tmp}/map.npz"], "--dt -0.001 must be a finite number > 0"),
    (["--resolution", "100000000", "--out", "{tmp}/map.npz"], "use a smaller --resolution"),
    (["--sigma-range", "20", "0", "--out", "{tmp}/map.npz"], "pass e.g. --sigma-range 0 20"),
    (["--rho-range", "5", "5", "--out", "{tmp}/map.npz"],
     "--rho-range 5 5 must be two finite numbers (low, high) with low < high (the (low, "
     "high) ends of a grid axis); pass e.g. --rho-range 5 6"),
    (["--sigma-range", "20", "0", "--out", "{tmp}/map.npz"],
     "--sigma-range 20 0 must be two finite numbers"),
    (["--rho-range", "-1e308", "1e308", "--out", "{tmp}/map.npz"],
     "--rho-range -1e+308 1e+308: high - low overflows to inf"),
])
def test_sensitivity_cli_checks_before_it_computes(args, message, tmp_path, capsys,
                                                   monkeypatch):
    """A bad --out or a grid larger than memory is refused before the grid is computed."""
    import solvers.experiments
    from solvers.lorenz import main

    def never(*_a, **_k):
        raise AssertionError("the grid was computed")

    monkeypatch.setattr(solvers.experiments, "sensitivity_grid", never)
    (tmp_path / "file.npz").write_bytes(b"")
    argv = ["sensitivity", *(a.format(tmp=tmp_path) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(tmp=tmp_path) in err


BAD_CLI = [
    (["--dt", "nan"], "argument --dt: 'nan' is not finite"),
    (["--rho", "inf"], "argument --rho: 'inf' is not finite"),
    (["--x0", "1", "nan", "0"], "argument --x0: 'nan' is not finite"),
    (["--dt", "10", "--steps", "100"], "the trajectory overflows at step 3 of 100"),
    (["--method", "forward", "--dt", "10", "--steps", "100"], "overflows at step 3 of 100"),
    (["--method", "store-all", "--pebbles", "3", "--steps", "10"],
     "store-all holds 9 states at once for --steps 10"),
    (["--method", "treeverse", "--pebbles", "0", "--steps", "10"], "use --pebbles 2 or more"),
    (["--method", "treeverse", "--k", "3", "--every", "4"],
     "--k --every: not options of method treeverse (its options: --pebbles, --inplace)"),
    (["--method", "forward", "--pebbles", "3"], "--pebbles: not used by --method forward"),
    (["--method", "adjoint", "--every", "5", "--inplace"],
     "--inplace: not used by --method adjoint"),
    (["--method", "bennett", "--delta", "3"], "--delta: not an option of method bennett"),
    (["--steps", "-1e3"], "argument --steps: '-1e3' is not an integer"),
    (["--sigma", "-1e-3", "--dt", "-2.5E+1"], "--dt -25.0 must be a finite number > 0"),
    (["--dt", "0", "--steps", "200"],
     "--dt 0.0 must be a finite number > 0, the time step; pass e.g. --dt 0.003"),
    (["--method", "forward", "--dt", "-0.01"], "--dt -0.01 must be a finite number > 0"),
    (["--method", "forward", "--executor", "generic"],
     "--executor: not used by --method forward (it stores no schedule"),
    (["--method", "adjoint", "--executor", "numba"], "--executor: not used by --method adjoint"),
    (["--until-x", "18.5", "--method", "online", "--executor", "generic"],
     "pass --method online without --executor generic"),
    (["--method", "treeverse", "--tau", "3"],
     "--tau: not an option of method treeverse (its options: --pebbles, --inplace)"),
    (["--method", "treeverse-paper", "--beyond", "greedy"],
     "--beyond: not an option of method treeverse-paper (its options: --delta, --tau)"),
    (["--method", "adjoint", "--beyond", "wang-moin"], "--beyond: not used by --method adjoint"),
    (["--method", "online", "--beyond", "newest"], "argument --beyond: invalid choice: 'newest'"),
    (["--method", "treeverse-paper", "--tau", "-1"],
     "argument --tau: '-1' must be a whole number >= 0"),
    (["--method", "treeverse-paper", "--delta", "1", "--tau", "0", "--steps", "50"],
     "--tau 0 with --delta 1 covers C(tau+delta, delta)=1 < --steps 50; use --tau 49 or more"),
    (["--steps", "5", "--method", "treeverse-paper", "--pebbles", "3"],
     "treeverse-paper holds 4 states at once for --steps 5, more than --pebbles 3; pass "
     "--pebbles >= 4, or --delta 2 (then it holds at most 3), or pick a method that takes a "
     "budget (treeverse)"),
    (["--steps", "5", "--method", "treeverse-paper", "--pebbles", "1"],  # no delta fits
     "more than --pebbles 1; pass --pebbles >= 4, or pick a method that takes a budget"),
]


@pytest.mark.parametrize("argv, first_line", BAD_CLI, ids=[" ".join(a) for a, _ in BAD_CLI])
def test_cli_bad_input_is_one_line_exit_2(argv, first_line, capsys):
    assert lz.main(["gradient", "--json", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("python -m solvers.lorenz") and "error: " in err
    assert first_line in err


def test_cli_nan_parameter_as_a_process():
    r = subprocess.run([sys.executable, "-m", "solvers.lorenz", "gradient", "--dt", "nan",
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "python -m solvers.lorenz gradient: error: argument --dt: 'nan' is not finite; pass a "
        "finite number (see 'python -m solvers.lorenz gradient --help')"]


def test_library_rejects_non_finite_parameters():
    with pytest.raises(pebbles.PebblesValueError, match="theta="):
        lz.gradient_forward(theta=(10.0, np.inf, 8 / 3), n=5)
    with pytest.raises(pebbles.PebblesValueError, match="dt=nan"):
        lz.replay_lorenz(store_all(5), 5, dt=float("nan"))
    with pytest.raises(pebbles.PebblesValueError, match="x0="):
        lz.primal((np.nan, 0.0, 0.0), n=3)
    assert lz.overflow_step(dt=10.0, n=2) is None
    assert lz.overflow_step(dt=10.0, n=3) == 3
    assert not np.isfinite(lz.primal(dt=10.0, n=3)).all()
    assert np.isfinite(lz.primal(dt=10.0, n=2)).all()


def test_cli_store_all_refuses_what_memory_cannot_hold(monkeypatch, capsys):
    monkeypatch.setattr(lz, "available_memory", lambda: 8 * 10**9)
    argv = ["gradient", "--method", "store-all", "--steps", "1000000000", "--json"]
    assert lz.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    need = lz.memory_estimate("store-all", 10**9, states=10**9)
    assert f"needs about {need / 1e9:.3g} GB" in err and "8 GB available" in err
    assert "--force" in err
    # a small run with too little memory is refused, and runs with --force
    monkeypatch.setattr(lz, "available_memory", lambda: 1000)
    small = ["gradient", "--method", "store-all", "--steps", "50", "--json"]
    assert lz.main(small) == 2 and "--force" in capsys.readouterr().err
    assert lz.main([*small, "--force"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert np.array_equal(out["gradient"], lz.replay_lorenz(store_all(50), 50).gradient)
    monkeypatch.setattr(lz, "available_memory", lambda: None)  # unknown: no refusal
    assert lz.main(small) == 0


def test_memory_estimate_and_available_memory():
    assert lz.memory_estimate("store-all", 10**6, states=10**6) > 24 * 10**6
    assert lz.memory_estimate("forward", 10**9) < 10**4
    assert lz.memory_estimate("treeverse", 2000, states=10) < lz.memory_estimate(
        "treeverse", 4000, states=10)
    free = lz.available_memory()
    assert free is None or free > 0


def test_numba_executor_runs_programs_lowered_with_frees():
    """A memory-only program with OP_FREE rows runs; its gradient is bit for bit the same."""
    s = pebbles.schedule("treeverse", 50, budget=4)
    prog = pebbles.lower(s, frees=True)
    assert (prog.ops[:, 0] == pebbles.OP_FREE).any() and prog.writes == prog.reads == 0
    ref, g = lz.replay_lorenz(s), lz.replay_lorenz(prog)
    assert np.array_equal(g.gradient, ref.gradient) and g.loss == ref.loss
    assert (g.forward_steps, g.peak_states) == (ref.forward_steps, ref.peak_states)
    # a tape move is a step whose graph a graph-keeping executor would keep: run as a step
    taped = [pebbles.place(1), pebbles.place(2), pebbles.tape(3), pebbles.paint(2),
             pebbles.paint(1), pebbles.paint(0)]
    assert np.array_equal(lz.replay_lorenz(taped, 3).gradient,
                          lz.replay_lorenz(store_all(3), 3).gradient)


def test_memory_program_keeps_refusing_disk_operations():
    disk = pebbles.lower([pebbles.place(1), pebbles.store(1), pebbles.remove(1),
                          pebbles.load(1), pebbles.paint(1), pebbles.remove(1),
                          pebbles.paint(0)], 2, frees=True)
    with pytest.raises(pebbles.PebblesValueError, match="^replay_lorenz runs .* on disk"):
        lz.replay_lorenz(disk)
    with pytest.raises(pebbles.PebblesValueError, match="^the GPU executors run sch.* on disk"):
        disk.in_memory("the GPU executors run")
    prog = pebbles.lower(treeverse(20, 3), 20)
    assert prog.in_memory("x runs") is prog  # nothing to drop: the same program


@pytest.mark.parametrize("value, error, match", [
    (2.5, pebbles.PebblesTypeError, r"reload_every=2\.5 must be an integer >= 1"),
    (True, pebbles.PebblesTypeError, r"reload_every=True must be an integer >= 1"),
    ("a", pebbles.PebblesTypeError, r"reload_every='a' must be an integer >= 1"),
    (-3, pebbles.PebblesValueError, r"reload_every=-3 must be an integer >= 1.*reload_every=1"),
])
def test_reload_every_is_checked_as_an_integer(value, error, match):
    with pytest.raises(error, match=match):
        lz.gradient_adjoint(n=10, reload_every=value)
    assert lz.gradient_adjoint(n=10, reload_every=np.int64(2)).peak_states == 9


def test_max_steps_is_named():
    with pytest.raises(pebbles.PebblesValueError, match=r"^max_steps=0 must be .*max_steps=1"):
        lz.gradient_until_crossing(10.0, 3, max_steps=0)
    with pytest.raises(pebbles.PebblesTypeError, match=r"^max_steps=2\.0 must be an integer"):
        lz.gradient_until_crossing(10.0, 3, max_steps=2.0)


@pytest.mark.parametrize("call, error, match", [
    (lambda: lz.primal(x0=[1j, 0, 0]), pebbles.PebblesTypeError,
     r"^x0=\[1j, 0, 0\] must hold real numbers.*pass e\.g\. x0="),
    (lambda: lz.primal(x0=np.array([1j, 0, 0])), pebbles.PebblesTypeError, r"^x0="),
    (lambda: lz.primal(x0=[1.0, 2.0]), pebbles.PebblesValueError,
     r"^x0=\[1\.0, 2\.0\] must have 3 components.*shape \(2,\)"),
    (lambda: lz.primal(dt=None), pebbles.PebblesTypeError,
     r"^dt=None must be a real number.*dt=0\.003"),
    (lambda: lz.primal(dt="0.1"), pebbles.PebblesTypeError, r"^dt='0\.1'"),
    (lambda: lz.primal(theta="abc"), pebbles.PebblesTypeError,
     r"^theta='abc' must hold real numbers: \(sigma, rho, beta\)"),
    (lambda: lz.primal(n=True), pebbles.PebblesTypeError, r"^n=True must be an integer"),
    (lambda: lz.sensitivity_map([1.0], [1.0], beta="a"), pebbles.PebblesTypeError,
     r"^beta='a' must be a real number"),
    (lambda: lz.sensitivity_map([1.0], [1.0], beta=np.nan), pebbles.PebblesValueError,
     r"^beta=nan is not finite"),
    (lambda: lz.sensitivity_map(["x"], [1.0]), pebbles.PebblesTypeError, r"^sigmas=\['x'\]"),
    (lambda: lz.memory_estimate("bogus", 10), pebbles.PebblesValueError,
     r"^method='bogus' is not a Lorenz gradient method; pass one of forward, adjoint"),
    (lambda: lz.memory_estimate("store-all", -10), pebbles.PebblesValueError, r"^n=-10"),
    (lambda: lz.memory_estimate("store-all", 10, states=-1), pebbles.PebblesValueError,
     r"^states=-1"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_public_kernels_refuse_vectors_without_three_components():
    th, y = np.array(lz.DEFAULT_THETA), np.ones(3)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^y=array\(\[1\., 1\.\]\) must have shape \(3,\): the state"):
        lz.rk4_step(np.ones(2), th, 0.003)
    with pytest.raises(pebbles.PebblesValueError, match=r"^theta=array\(.* must have shape \(3,\)"):
        lz.rk4_step(y, th[:2], 0.003)
    with pytest.raises(pebbles.PebblesValueError, match=r"^ybar=array\(.* must have shape \(3,\)"):
        lz.rk4_vjp(y, th, 0.003, np.ones(1))
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^tangent=<float64 array of shape \(3, 5\)> must have shape "
                             r"\(3, 6\)"):
        lz.rk4_jvp(y, th, 0.003, np.ones((3, 5)))
    assert lz.rk4_step(y, th, 0.003).shape == (3,)


#: The public kernels with float64 arguments: (function, arguments).
_KERNEL_CALLS = {
    "rk4_step": (lz.rk4_step, ([1.0, -2.0, 30.0], [10.0, 28.0, 3.0], 0.01)),
    "rk4_jvp": (lz.rk4_jvp, ([1.0, -2.0, 30.0], [10.0, 28.0, 3.0], 0.01,
                             np.arange(18.0).reshape(3, 6) - 4)),
    "rk4_vjp": (lz.rk4_vjp, ([1.0, -2.0, 30.0], [10.0, 28.0, 3.0], 0.01, [1.0, 2.0, -3.0])),
}


def _as(args, kind):
    """The array arguments of a kernel call as ``kind`` (dt kept)."""
    def conv(a):
        if kind == "list":
            return np.asarray(a).tolist()
        if kind == "tuple":
            return tuple(map(tuple, a)) if np.ndim(a) == 2 else tuple(a)
        return np.asarray(a).astype(kind)
    return tuple(a if i == 2 else conv(a) for i, a in enumerate(args))


@pytest.mark.parametrize("name", sorted(_KERNEL_CALLS))
@pytest.mark.parametrize("kind", ["list", "tuple", "int64", "int32", "float32", "uint8"])
def test_public_kernels_convert_array_likes_to_float64(name, kind):
    """Lists, tuples, int and float32 arrays give, bit for bit, the float64 array's result,
    and compile no new specialisation of the kernel."""
    fn, args = _KERNEL_CALLS[name]
    kernel = getattr(lz, "_" + name)
    ref = fn(*_as(args, "float64"))
    given = _as(args, kind)
    expected = fn(*(np.asarray(a, dtype=np.float64) if i != 2 else a
                    for i, a in enumerate(given)))  # the values given, widened to float64
    compiled = len(kernel.signatures)
    got = fn(*given)
    assert len(kernel.signatures) == compiled
    for g, e in zip(*(((x,) if isinstance(x, np.ndarray) else x) for x in (got, expected)),
                    strict=True):
        assert g.dtype == np.float64 and g.tobytes() == e.tobytes()
    if kind in ("list", "tuple", "int64", "int32"):  # the values are the same: the result too
        for g, r in zip(*(((x,) if isinstance(x, np.ndarray) else x) for x in (got, ref)),
                        strict=True):
            assert g.tobytes() == r.tobytes()


def test_public_kernels_take_float64_arrays_of_any_layout_and_integer_dt():
    y = np.array([1.0, -2.0, 30.0])
    th = np.array([10.0, 28.0, 3.0])
    ref = lz.rk4_step(y, th, 0.25)
    strided = np.zeros((3, 2))
    strided[:, 0] = y
    frozen = y.copy()
    frozen.flags.writeable = False
    assert lz.rk4_step(strided[:, 0], th, 0.25).tobytes() == ref.tobytes()
    assert lz.rk4_step(frozen, th, np.float64(0.25)).tobytes() == ref.tobytes()
    assert lz.rk4_step(y.astype(">f8"), th, 0.25).tobytes() == ref.tobytes()
    assert lz.rk4_step(y, th, 1).tobytes() == lz.rk4_step(y, th, 1.0).tobytes()
    assert lz.rk4_step(y, th, np.int32(1)).tobytes() == lz.rk4_step(y, th, 1.0).tobytes()


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: lz.rk4_step([1.0, 2.0], [10, 28, 3], 0.01), pebbles.PebblesValueError,
     r"^y=\[1\.0, 2\.0\] must have shape \(3,\): the state \(x, y, z\); got shape \(2,\); "
     r"pass e\.g\. y=\[1\.0, 0\.0, 0\.0\]$"),
    (lambda: lz.rk4_step((1, 2, 3, 4), [10, 28, 3], 0.01), pebbles.PebblesValueError,
     r"^y=\(1, 2, 3, 4\) must have shape \(3,\)"),
    (lambda: lz.rk4_step([[1, 2, 3]], [10, 28, 3], 0.01), pebbles.PebblesValueError,
     r"^y=\[\[1, 2, 3\]\] must have shape \(3,\): the state \(x, y, z\); got shape \(1, 3\)"),
    (lambda: lz.rk4_step([1, 2, 3], [10, 28], 0.01), pebbles.PebblesValueError,
     r"^theta=\[10, 28\] must have shape \(3,\): the parameters \(sigma, rho, beta\)"),
    (lambda: lz.rk4_vjp([1, 2, 3], [10, 28, 3], 0.01, [1.0]), pebbles.PebblesValueError,
     r"^ybar=\[1\.0\] must have shape \(3,\)"),
    (lambda: lz.rk4_jvp([1, 2, 3], [10, 28, 3], 0.01, [[0.0] * 6] * 2),
     pebbles.PebblesValueError, r"^tangent=\[\[0\.0.* must have shape \(3, 6\)"),
    (lambda: lz.rk4_jvp([1, 2], [10, 28, 3], 0.01, np.zeros((3, 6))),
     pebbles.PebblesValueError, r"^y=\[1, 2\] must have shape \(3,\)"),
    (lambda: lz.rk4_step("abc", [10, 28, 3], 0.01), pebbles.PebblesTypeError,
     r"^y='abc' must hold real numbers: the state \(x, y, z\); pass e\.g\. "
     r"y=\[1\.0, 0\.0, 0\.0\]$"),
    (lambda: lz.rk4_step(["1", 2, 3], [10, 28, 3], 0.01), pebbles.PebblesTypeError,
     r"^y=\['1', 2, 3\] must hold real numbers"),
    (lambda: lz.rk4_step(None, [10, 28, 3], 0.01), pebbles.PebblesTypeError,
     r"^y=None must hold real numbers"),
    (lambda: lz.rk4_step([1, 2, 3], [10, None, 3], 0.01), pebbles.PebblesTypeError,
     r"^theta=\[10, None, 3\] must hold real numbers: the parameters"),
    (lambda: lz.rk4_step([1, 2, 3], [10j, 28, 3], 0.01), pebbles.PebblesTypeError,
     r"^theta=\[10j, 28, 3\] must hold real numbers"),
    (lambda: lz.rk4_step([True, False, True], [10, 28, 3], 0.01), pebbles.PebblesTypeError,
     r"^y=\[True, False, True\] must hold real numbers"),
    (lambda: lz.rk4_step([[1], [2, 3], 4], [10, 28, 3], 0.01), pebbles.PebblesTypeError,
     r"^y=\[\[1\], \[2, 3\], 4\] must hold real numbers"),
    (lambda: lz.rk4_vjp([1, 2, 3], [10, 28, 3], 0.01, {"x": 1}), pebbles.PebblesTypeError,
     r"^ybar=\{'x': 1\} must hold real numbers: the gradient of the step's output"),
    (lambda: lz.rk4_jvp([1, 2, 3], [10, 28, 3], 0.01, "tangent"), pebbles.PebblesTypeError,
     r"^tangent='tangent' must hold real numbers"),
    (lambda: lz.rk4_step([1, 2, 3], [10, 28, 3], "0.01"), pebbles.PebblesTypeError,
     r"^dt='0\.01' must be a real number, the time step; pass e\.g\. dt=0\.003$"),
    (lambda: lz.rk4_vjp([1, 2, 3], [10, 28, 3], None, [1, 0, 0]), pebbles.PebblesTypeError,
     r"^dt=None must be a real number"),
    (lambda: lz.rk4_jvp([1, 2, 3], [10, 28, 3], True, np.zeros((3, 6))),
     pebbles.PebblesTypeError, r"^dt=True must be a real number"),
    (lambda: lz.rk4_step([1, 2, 3], [10, 28, 3], float("nan")), pebbles.PebblesValueError,
     r"^dt=nan is not finite; pass a finite time step such as 0\.003$"),
])
def test_public_kernels_name_the_bad_argument(call, error, match):
    """Wrong shapes and non-numbers are pebbles errors naming the argument and its value
    (the built-in ValueError / TypeError too), never Numba's TypingError."""
    with pytest.raises(error, match=match) as info:
        call()
    assert isinstance(info.value, ValueError if error is pebbles.PebblesValueError
                      else TypeError)


def test_public_kernels_pass_non_finite_states_through():
    """Values are not checked: an overflowed state steps to non-finite values, as in NumPy."""
    th = np.array(lz.DEFAULT_THETA)
    assert np.isnan(lz.rk4_step(np.array([np.nan, 0.0, 0.0]), th, 0.01)).any()
    assert not np.isfinite(lz.rk4_vjp([np.inf, 0, 0], th, 0.01, [1, 0, 0])[0]).all()


def test_compiled_callers_call_the_compiled_kernels():
    """Numba code calls ``_rk4_step``, ``_rk4_jvp``, ``_rk4_vjp`` (the public names are
    Python wrappers): same results, bit for bit."""
    from numba import njit

    @njit
    def chain(y, theta, dt, tangent, ybar):
        s = lz._rk4_step(y, theta, dt)
        return s, lz._rk4_jvp(s, theta, dt, tangent), lz._rk4_vjp(s, theta, dt, ybar)

    y, th, tan = np.array([1.0, -2.0, 30.0]), np.array([10.0, 28.0, 3.0]), np.ones((3, 6))
    yb = np.array([1.0, 2.0, -3.0])
    s, t, (a, b) = chain(y, th, 0.01, tan, yb)
    assert s.tobytes() == lz.rk4_step(y, th, 0.01).tobytes()
    assert t.tobytes() == lz.rk4_jvp(s, th, 0.01, tan).tobytes()
    a2, b2 = lz.rk4_vjp(s, th, 0.01, yb)
    assert a.tobytes() == a2.tobytes() and b.tobytes() == b2.tobytes()


def test_cli_memory_counts_at_most_n_states_whatever_the_budget(monkeypatch, capsys):
    """--pebbles 10^10 for 100 steps holds at most 100 states: not 240 GB (refused)."""
    monkeypatch.setattr(lz, "available_memory", lambda: 10**6)
    assert lz.main(["gradient", "--steps", "100", "--pebbles", str(10**10), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert np.array_equal(out["gradient"], lz.replay_lorenz(store_all(100), 100).gradient)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_cli_out_that_cannot_be_created_is_refused_before_the_run(monkeypatch, capsys,
                                                                  tmp_path):
    """os.access says yes to root; opening /proc/s.npz fails: refused before computing."""
    monkeypatch.setattr(lz, "sensitivity_map", lambda *a, **k: pytest.fail("computed"))
    argv = ["sensitivity", "--resolution", "40", "--steps", "20000", "--out", "/proc/s.npz"]
    assert lz.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out '/proc/s.npz' cannot be written (" in err
    from solvers._paths import check_npz_output

    new, old = tmp_path / "new.npz", tmp_path / "old.npz"
    old.write_bytes(b"keep")
    check_npz_output("--out", str(new))
    check_npz_output("--out", str(old))
    assert not new.exists() and old.read_bytes() == b"keep"  # the probe leaves no trace


def test_forward_mode_in_chunks_is_bit_for_bit_one_call(monkeypatch):
    """Kernels run in chunks (Ctrl-C is handled between them); the results do not change."""
    x0, th = lz._as3(lz.DEFAULT_X0, "x0"), lz._as3(lz.DEFAULT_THETA, "theta")
    whole = lz._forward_mode(x0, th, lz.DEFAULT_DT, 5000)
    s, r = np.linspace(0.0, 20.0, 7), np.linspace(0.0, 50.0, 5)
    grid = lz.sensitivity_map(s, r, n=300)
    monkeypatch.setattr(lz, "CHUNK_POINT_STEPS", 777)
    g = lz.gradient_forward(n=5000)
    assert g.loss == whole[0][0] and np.array_equal(g.gradient, whole[1][0])
    assert np.array_equal(lz.sensitivity_map(s, r, n=300), grid)
    ref = [[np.abs(lz._forward_mode(x0, np.array([a, b, 8 / 3]), lz.DEFAULT_DT, 300)[1][0])
            .mean() for b in r] for a in s]
    assert np.allclose(grid, ref, rtol=1e-15)


def test_adjoint_replay_and_search_in_chunks_are_bit_for_bit_one_call(monkeypatch):
    """The adjoint, a schedule's replay and the crossing search also run in chunks of
    CHUNK_POINT_STEPS steps (Ctrl-C works between them), with the results of one call."""
    def runs():
        adj = [lz.gradient_adjoint(n=n, reload_every=k) for n, k in ((300, None), (301, 7))]
        rep = [lz.replay_lorenz(pebbles.schedule(m, 300, **kw)) for m, kw in
               (("treeverse", {"budget": 4}), ("bennett-gradient", {"k": 3}))]
        return ([(g.loss, g.gradient, g.peak_states) for g in adj + rep],
                lz.gradient_until_crossing(10.0, 5, max_steps=500).n)
    whole = runs()
    calls = []
    for name in ("_adjoint_forward", "_adjoint_backward", "_replay_rows", "_crossing_in"):
        kernel = getattr(lz, name)
        monkeypatch.setattr(lz, name, lambda *a, _k=kernel, _n=name: (calls.append(_n), _k(*a))[1])
    for chunk in (1, 7, 64):
        monkeypatch.setattr(lz, "CHUNK_POINT_STEPS", chunk)
        calls.clear()
        chunked = runs()
        assert chunked[1] == whole[1] == 98
        for (loss, grad, peak), (loss0, grad0, peak0) in zip(chunked[0], whole[0], strict=True):
            assert loss == loss0 and peak == peak0
            assert np.array_equal(grad, grad0, equal_nan=True)
        assert calls.count("_adjoint_forward") >= (300 + 301) // chunk
        assert calls.count("_crossing_in") >= 98 // chunk
        assert calls.count("_replay_rows") > 600 // max(chunk, 8)


@pytest.mark.parametrize("argv, match", [
    (["gradient", "--method", "forward", "--steps", str(2**62)],
     r"--method forward --steps 4611686018427387904 is 4.61e\+18 RK4 steps: at least .* years"),
    (["gradient", "--method", "adjoint", "--steps", str(10**13)], r"--method adjoint"),
    (["sensitivity", "--resolution", "3000", "--steps", "100000", "--out", "s.npz"],
     r"--resolution 3000 --steps 100000 is 9e\+11 RK4 steps"),
])
def test_cli_refuses_runs_of_hours_at_once(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lz.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(match, err) and "--force" in err


@pytest.mark.parametrize("method", ["forward", "adjoint"])
def test_cli_ctrl_c_stops_a_long_run(method):
    """The compiled loops run in chunks from Python: SIGINT exits 130 within seconds."""
    lz._warm_up()  # compiled into the cache the subprocess loads
    ctrl_c = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
              "runpy.run_module('solvers.lorenz', run_name='__main__', alter_sys=True)")
    proc = subprocess.Popen([sys.executable, "-c", ctrl_c, "gradient", "--method", method,
                             "--steps", str(10**13), "--force"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == "python -m solvers.lorenz: interrupted\n"


def test_cli_sensitivity_refuses_a_grid_that_overflows(tmp_path, capsys):
    out = tmp_path / "s4.npz"
    argv = ["sensitivity", "--resolution", "3", "--steps", "1000", "--dt", "1",
            "--out", str(out)]
    assert lz.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not finite at" in err and "overflows at step" in err
    assert "--dt 1" in err and "smaller --dt or fewer --steps" in err
    assert not out.exists()


def test_cli_sensitivity_overflow_names_beta_where_it_is_off_its_default(tmp_path, capsys):
    """--beta 1e300 overflows at any --dt: the fix names --beta, not only --dt and --steps."""
    out = tmp_path / "b.npz"
    argv = ["sensitivity", "--resolution", "2", "--steps", "10", "--out", str(out)]
    assert lz.main([*argv, "--beta", "1e300"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "with --dt 0.003 and --beta 1e+300;" in err
    assert err.endswith("use a smaller --dt or fewer --steps, or --beta nearer 2.66667\n")
    assert not out.exists()


def test_cli_gradient_overflow_names_the_parameters_off_their_defaults(capsys):
    assert lz.main(["gradient", "--steps", "10", "--beta", "1e300", "--rho", "-1e200"]) == 2
    assert capsys.readouterr().err.endswith(
        "use a smaller --dt or fewer --steps, or --rho nearer 27 and --beta nearer 2.66667\n")
    assert lz.main(["gradient", "--steps", "100", "--dt", "10"]) == 2
    assert capsys.readouterr().err.endswith("use a smaller --dt or fewer --steps\n")


@pytest.mark.parametrize("level, error, match", [
    ("10", pebbles.PebblesTypeError, r"^level='10' must be a real number"),
    (True, pebbles.PebblesTypeError, r"^level=True must be a real number"),
    (None, pebbles.PebblesTypeError, r"^level=None must be a real number.*level=10\.0"),
    (float("inf"), pebbles.PebblesValueError, r"^level=inf is not finite"),
])
def test_crossing_level_is_checked(level, error, match):
    with pytest.raises(error, match=match):
        lz.gradient_until_crossing(level, 3)


def test_crossing_budget_that_is_not_an_integer_is_a_type_error():
    with pytest.raises(pebbles.PebblesTypeError, match=r"^budget=3\.0 must be an integer >= 2"):
        lz.gradient_until_crossing(10.0, 3.0)
    with pytest.raises(pebbles.PebblesValueError, match=r"^budget=0 must be an integer >= 1 "
                                                        r"\(.*in-place game"):
        lz.gradient_until_crossing(10.0, 0, inplace=True)


def test_crossing_inplace_is_a_bool_numpys_too():
    """inplace=np.True_ was refused; the refusal of others named no fix."""
    assert lz.gradient_until_crossing(10.0, 1, inplace=np.True_).crossed
    with pytest.raises(pebbles.PebblesTypeError, match=r"^inplace='no' must be True or False; "
                                                       r"pass inplace=True or inplace=False$"):
        lz.gradient_until_crossing(10.0, 3, inplace="no")


def test_cli_options_list_names_only_this_parsers_flags(capsys):
    argv = ["gradient", "--until-x", "5", "--method", "online", "--steps", "1000", "--k", "2"]
    assert lz.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(its options: --pebbles, --inplace, --beyond)" in err, err


def _refused_at_once(argv, monkeypatch, capsys) -> str:
    """``argv`` is refused in under a few seconds, nothing compiled or run: its error."""
    for name in ("_warm_up", "replay_lorenz", "gradient_reverse", "gradient_until_crossing"):
        monkeypatch.setattr(lz, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} ran"))
    t0 = time.perf_counter()
    assert lz.main(["gradient", *argv, "--json"]) == 2
    assert time.perf_counter() - t0 < 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err
    return err


@pytest.mark.parametrize("argv, words", [
    (["--method", "online", "--pebbles", "2", "--steps", "3000000"],
     ["--method online --steps 3000000 is at least 2.25e+12 RK4 steps (no formula",
      "optimal Treeverse's count with the same 2 stored states", "6.25 hours"]),
    (["--method", "treeverse-paper", "--delta", "1", "--steps", "3000000"],
     ["--method treeverse-paper --steps 3000000 is at least 2.25e+12 RK4 steps"]),
    (["--method", "online", "--pebbles", "2", "--until-x", "18.5", "--steps", "3000000"],
     ["--method online --until-x 18.5 --steps 3000000 is at least 2.25e+12 RK4 steps if x "
      "does not reach 18.5 sooner (no formula"]),
])
def test_cli_refuses_hours_of_a_method_without_a_step_formula_at_once(argv, words,
                                                                      monkeypatch, capsys):
    err = _refused_at_once(argv, monkeypatch, capsys)
    for word in words:
        assert word in err, (word, err)


def test_cli_time_estimate_is_the_generic_executors(monkeypatch, capsys):
    """The generic executor runs about 500 times slower than the Numba one: its own rate."""
    argv = ["--pebbles", "2", "--steps", "900000"]
    err = _refused_at_once([*argv, "--executor", "generic"], monkeypatch, capsys)
    assert ("--method treeverse --steps 900000 --executor generic is 2.03e+11 RK4 steps: "
            "at least 2.34 days at 1e+06 steps a second") in err
    assert "or --executor numba" in err
    args = lz._parser().parse_args(["gradient", *argv])
    lz._check_time(args, lz._schedule(args))  # 34 minutes with the Numba executor: started


@pytest.mark.parametrize("method, kw", [
    ("online", {"budget": 2}), ("online", {"budget": 3}), ("online", {"budget": 5}),
    ("online", {"budget": 1, "inplace": True}), ("online", {"budget": 3, "inplace": True}),
])
def test_time_estimate_without_a_formula_is_a_lower_bound(method, kw):
    for n in (1, 2, 30, 257):
        s = pebbles.schedule(method, n, **kw)
        steps, least = lz._forward_steps(s)
        assert least and steps <= s.simulate().forward_steps


@pytest.mark.parametrize("kw", [{"delta": 1}, {"delta": 3}, {"delta": 2, "tau": 40}])
def test_time_estimate_of_treeverse_paper_is_its_recursions_count(kw):
    for n in (1, 2, 30, 257):
        s = pebbles.schedule("treeverse-paper", n, **kw)
        assert lz._forward_steps(s) == (s.simulate().forward_steps, "")


def test_time_estimate_of_periodic_is_its_formulas_count():
    for n, every in ((1, 1), (30, 7), (10_000, 100)):
        s = pebbles.schedule("periodic", n, every=every)
        steps, least = lz._forward_steps(s)
        assert (steps, least) == (s.simulate().forward_steps, "")


def test_cli_negative_numbers_in_e_notation_are_values(capsys):
    argv = ["gradient", "--steps", "20", "--json", "--x0", "-1e-3", "-2.5E+1", "1"]
    assert lz.main([*argv, "--sigma", "-1e-3"]) == 0
    want = lz.gradient_forward((-1e-3, -25.0, 1.0), (-1e-3, *lz.DEFAULT_THETA[1:]), n=20)
    assert np.allclose(json.loads(capsys.readouterr().out)["gradient"], want.gradient,
                       rtol=1e-9)


def test_cli_executor_defaults_to_numba_for_schedule_methods(monkeypatch, capsys):
    """--executor is None unless given: schedule methods run on Numba, and an explicit
    --executor still picks the executor."""
    calls = []
    monkeypatch.setattr(lz, "replay_lorenz", lambda s, **kw: calls.append("numba") or
                        lz.gradient_forward(n=s.n, **kw))
    monkeypatch.setattr(lz, "gradient_reverse", lambda s, **kw: calls.append("generic") or
                        lz.gradient_forward(n=s.n, **kw))
    monkeypatch.setattr(lz, "_warm_up", lambda: None)
    for extra in ([], ["--executor", "numba"], ["--executor", "generic"]):
        assert lz.main(["gradient", "--steps", "20", "--json", *extra]) == 0
    assert calls == ["numba", "numba", "generic"]
    assert lz._parser().parse_args(["gradient"]).executor is None
    assert lz.main(["gradient", "--method", "forward", "--steps", "20", "--json"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("call", [
    lambda dt: lz.primal(dt=dt, n=5),
    lambda dt: lz.overflow_step(dt=dt, n=5),
    lambda dt: lz.gradient_forward(dt=dt, n=5),
    lambda dt: lz.gradient_reverse(store_all(5), dt=dt, n=5),
    lambda dt: lz.replay_lorenz(store_all(5), 5, dt=dt),
    lambda dt: lz.gradient_adjoint(dt=dt, n=5),
    lambda dt: lz.gradient_until_crossing(18.5, 4, dt=dt, max_steps=5),
    lambda dt: lz.sensitivity_map([10.0], [27.0], dt=dt, n=5),
])
@pytest.mark.parametrize("dt", [0.0, -0.003, 0])
def test_runs_refuse_a_time_step_not_above_zero(call, dt):
    """A run of dt <= 0 has no gradient of the experiment: refused, naming dt."""
    with pytest.raises(pebbles.PebblesValueError,
                       match=rf"^dt={dt!r} must be a finite number > 0, the time step; "
                             r"pass e\.g\. dt=0\.003$"):
        call(dt)


def test_one_step_kernels_take_any_finite_time_step():
    """rk4_step, rk4_jvp and rk4_vjp are maps of one step: 0 is the identity, a negative
    dt steps back (as the adjoint does)."""
    y, th = np.array([1.0, 2.0, 3.0]), np.array(lz.DEFAULT_THETA)
    assert np.array_equal(lz.rk4_step(y, th, 0), y)
    back = lz.rk4_step(lz.rk4_step(y, th, 1e-3), th, -1e-3)
    assert np.allclose(back, y, rtol=1e-9)
    assert lz.rk4_jvp(y, th, -1e-3, np.zeros((3, 6))).shape == (3, 6)
    assert lz.rk4_vjp(y, th, 0, np.ones(3))[0].shape == (3,)


def test_generic_executor_overflow_leaks_no_numpy_warning():
    """An overflowing replay on the generic executor returns inf/NaN quietly (as the Numba
    one); the command line says so in one line, not a RuntimeWarning first."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = lz.gradient_reverse(store_all(50_000), dt=0.03, n=50_000)
    assert not np.isfinite(g.gradient).all()
    r = subprocess.run([sys.executable, "-m", "solvers.lorenz", "gradient", "--method",
                        "store-all", "--steps", "50000", "--dt", "0.03", "--executor",
                        "generic"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == "" and "Warning" not in r.stderr
    assert r.stderr.splitlines() == [
        "python -m solvers.lorenz: error: the gradient overflows (the trajectory is finite "
        "through step 50000); use fewer --steps or a smaller --dt"]


def test_cli_memory_check_prices_the_generic_executor(monkeypatch, capsys):
    """The generic executor holds about 1.2 kB a step for store-all (measured), not the
    ~300 bytes of the Numba replay: refused where the Numba run fits."""
    assert lz.memory_estimate("store-all", 500_000, states=500_000, executor="generic") \
        >= 4 * lz.memory_estimate("store-all", 500_000, states=500_000)
    monkeypatch.setattr(lz, "available_memory", lambda: 300 * 10**6)
    argv = ["gradient", "--method", "store-all", "--steps", "500000"]
    args = lz._parser().parse_args(argv)
    lz._check_memory(args, lz._schedule(args))  # Numba: 152 MB, fits
    monkeypatch.setattr(lz, "_warm_up", lambda: pytest.fail("ran"))
    assert lz.main([*argv, "--executor", "generic", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert ("--method store-all --steps 500000 --executor generic needs about 0.61 GB"
            in err and "--executor numba" in err)


@pytest.mark.parametrize("call, error, match", [
    (lambda: lz.check_run_time("x", 10**6, "fix", threads=0), pebbles.PebblesValueError,
     r"^threads=0 must be an integer >= 1"),
    (lambda: lz.check_run_time("x", 10**6, "fix", threads=2.0), pebbles.PebblesTypeError,
     r"^threads=2\.0 must be an integer"),
    (lambda: lz.check_run_time("x", 10**6, "fix", rate=0), pebbles.PebblesValueError,
     r"^rate=0 must be a finite number > 0"),
    (lambda: lz.memory_estimate("treeverse", 10, executor="cuda"), pebbles.PebblesValueError,
     r"^executor='cuda' is not a Lorenz executor"),
])
def test_more_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


_ORDER = ("must be two finite numbers (low, high) with low < high (the (low, high) ends of a "
          "grid axis); pass e.g. ")
_WIDE = ": high - low overflows to inf (the axis is wider than a float holds); pass ends " \
        "closer together, e.g. "


@pytest.mark.parametrize("bounds, library, command_line", [
    ((20, 0), f"sigma_range=(20, 0) {_ORDER}sigma_range=(0.0, 20.0)",
     f"--sigma-range 20 0 {_ORDER}--sigma-range 0 20"),
    ((5, 5), f"sigma_range=(5, 5) {_ORDER}sigma_range=(5.0, 6.0)",
     f"--sigma-range 5 5 {_ORDER}--sigma-range 5 6"),
    ((-1e308, 1e308), f"sigma_range=(-1e+308, 1e+308){_WIDE}sigma_range=(0.0, 20.0)",
     f"--sigma-range -1e+308 1e+308{_WIDE}--sigma-range 0 20"),
])
def test_axis_rule_is_one_for_the_library_and_the_command_line(bounds, library, command_line,
                                                                tmp_path, capsys):
    """The command line checked --sigma-range and --rho-range with a copy of the library's
    rule: both now run solvers.experiments._axis_range, the command line's message
    naming the flag and its values where the library's names the argument."""
    from solvers import experiments

    with pytest.raises(pebbles.PebblesValueError) as err:
        experiments.sensitivity_grid(3, n=2, sigma_range=bounds)
    assert str(err.value) == library
    argv = ["sensitivity", "--sigma-range", *map(str, bounds), "--out", str(tmp_path / "m.npz")]
    assert lz.main(argv) == 2
    assert capsys.readouterr().err == f"python -m solvers.lorenz: error: {command_line}\n"


@pytest.mark.parametrize("module", ["solvers.lorenz", "solvers.pml"])
def test_help_answers_without_numba_and_a_command_names_the_install(module, tmp_path):
    """--help answered with the install line; now the parser (defined before Numba is
    imported) answers --help and usage errors, and only a command needs Numba."""
    from test_optional import _without  # the suite's one way to hide a package

    usage = f"usage: python -m {module} "
    for argv in (["--help"], ["gradient", "--help"]):
        r = _without("numba", tmp_path, "-m", module, *argv)
        assert (r.returncode, r.stderr) == (0, "") and r.stdout.startswith(usage), r
    r = _without("numba", tmp_path, "-m", module, "gradient", "--steps", "10")
    assert (r.returncode, r.stdout) == (2, "") and r.stderr == (
        f'python -m {module}: error: the solvers package needs Numba: pip install '
        f'"pebble-games[solvers]"\n')
    r = _without("numba", tmp_path, "-m", module, "gradient", "--no-such-flag")
    assert r.returncode == 2 and r.stderr == (
        f"python -m {module} gradient: error: unrecognized arguments: --no-such-flag (see "
        f"'python -m {module} gradient --help')\n")  # the subcommand's help lists its flags
    r = _without("numba", tmp_path, "-c", f"import {module}")  # the library still refuses
    assert r.returncode == 1 and r.stderr.splitlines()[-1] == (
        'ImportError: the solvers package needs Numba: pip install "pebble-games[solvers]"')


def test_cli_sensitivity_axis_wider_than_a_float_is_one_line(tmp_path):
    """hi - lo overflowing made np.linspace warn twice and the error name library
    arguments; now the flag is named, before anything is computed."""
    out = tmp_path / "never.npz"
    r = subprocess.run([sys.executable, "-m", "solvers.lorenz", "sensitivity", "--resolution",
                        "3", "--steps", "10", "--sigma-range", "-1e308", "1e308", "--out",
                        str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and not out.exists()
    assert r.stderr.splitlines() == [
        "python -m solvers.lorenz: error: --sigma-range -1e+308 1e+308: high - low overflows "
        "to inf (the axis is wider than a float holds); pass ends closer together, e.g. "
        "--sigma-range 0 20"]


def test_memory_estimate_counts_the_moves_of_the_schedule():
    """bennett-gradient makes about 300 moves a step at n = 1e4: the estimate holds its
    lowered program, measured."""
    from solvers._memory import schedule_moves

    s = pebbles.schedule("bennett-gradient", 10**4, k=2)
    ops = s.lower().ops
    held = ops.base.nbytes if ops.base is not None else ops.nbytes  # the row buffer kept
    need = lz.memory_estimate(s.method, s.n, states=10, moves=schedule_moves(s))
    assert need >= max(ops.nbytes, held) + len(s.encode()) * 3 * 8


def test_cli_refuses_a_bennett_run_its_program_cannot_fit(monkeypatch, capsys):
    """About 0.8 GB of lowered program at 20 000 steps (3 moves a step would be 6 MB):
    refused under 30 MB; a run that slipped through would still be short."""
    monkeypatch.setattr(lz, "available_memory", lambda: 30 * 10**6)
    argv = ["gradient", "--method", "bennett", "--steps", "20000", "--json"]
    assert lz.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--method bennett --steps 20000 needs about" in err
    assert "0.03 GB available" in err and "--force" in err
