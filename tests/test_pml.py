"""Tests of the PML wave experiment (Liu & Xu, section 4.2), :mod:`solvers.pml`."""

from __future__ import annotations

import json

import numba
import numpy as np
import pytest

import pebbles
from solvers import _pml_kernels as kern
from solvers import pml

# A small, fast problem: 0.42 of the CFL limit, a narrow Ricker pulse.
SMALL = dict(h=0.11, width=6.0, delay=25.0)


def cfg_of(nx=30, ny=30, steps=60, **kw) -> pml.PMLConfig:
    kw = {**SMALL, "n_detectors": min(nx, 200), **kw}
    return pml.PMLConfig(nx=nx, ny=ny, steps=steps, **kw)


def ref_step(s, c, sol, fsrc=0.0):
    """Plain numpy step (complex-capable) written from the paper-notes formulas."""
    dt, ax, ay, bx, by, ex, ey = sol.k[:7]
    wo, w, ph, ps = s
    i_ = slice(1, -1)
    sg, tu = sol.sig[1:-1, None], sol.tau[None, 1:-1]
    half = 0.5 * dt * (sg + tu)
    cc = c[1:-1, 1:-1]
    un = np.zeros_like(w)
    un[i_, i_] = ((2 - sg * tu * dt * dt - 2 * cc * (ax + ay)) * w[i_, i_]
                  + cc * ax * (w[2:, i_] + w[:-2, i_]) + cc * ay * (w[i_, 2:] + w[i_, :-2])
                  + bx * (ph[2:, i_] - ph[:-2, i_]) + by * (ps[i_, 2:] - ps[i_, :-2])
                  - (1 - half) * wo[i_, i_]) / (1 + half)
    phn, psn = np.zeros_like(w), np.zeros_like(w)
    phn[i_, i_] = (1 - dt * sg) * ph[i_, i_] + cc * (tu - sg) * ex * (un[2:, i_] - un[:-2, i_])
    psn[i_, i_] = (1 - dt * tu) * ps[i_, i_] + cc * (sg - tu) * ey * (un[i_, 2:] - un[i_, :-2])
    out = np.stack([w, un, phn, psn])
    out[1, sol.isrc, sol.jsrc] += fsrc
    return out


@pytest.fixture(scope="module")
def small():
    cfg = cfg_of(nx=28, ny=24)
    rng = np.random.default_rng(1)
    c = pml.uniform_model(cfg) * (1 + 0.2 * rng.random(cfg.shape))
    return cfg, c, pml.PMLSolver(cfg, c), rng


def test_step_matches_reference_and_inplace(small):
    cfg, c, sol, rng = small
    s = rng.standard_normal((4, *cfg.shape))
    s[2:] *= 1e7  # phi, psi carry c-sized values
    out = sol.step(3, s)
    ref = ref_step(s, c, sol, sol.source[3] * cfg.dt**2)
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-13 * np.abs(ref).max())
    t = s.copy()
    sol.step_into(3, t, t)
    assert np.array_equal(t, out)
    o = np.empty_like(s)
    sol.step_into(3, s, o)
    assert np.array_equal(o, out)


def _jvp(s, c, ds, dc, sol):
    """Exact Jacobian-vector product by the complex step (the step is a polynomial)."""
    h = 1e-30
    return ref_step(s + 1j * h * ds, c + 1j * h * dc, sol).imag / h


@pytest.mark.parametrize("part", ["state", "c", "both"])
def test_adjoint_dot_product(small, part):
    cfg, c, sol, rng = small
    s = rng.standard_normal((4, *cfg.shape))
    s[2:] *= 1e7
    ds = rng.standard_normal(s.shape) * (part != "c")
    ds[2:] *= 1e7
    dc = rng.standard_normal(c.shape) * 1e6 * (part != "state")
    w = rng.standard_normal(s.shape)
    lhs = np.vdot(_jvp(s, c, ds, dc, sol), w)
    sol.grad_c[:] = 0
    gs = sol.vjp(s, w)
    rhs = np.vdot(ds, gs) + np.vdot(dc, sol.grad_c)
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    assert np.all(sol.grad_c[[0, -1]] == 0) and np.all(sol.grad_c[:, [0, -1]] == 0)


def test_adjoint_independent_of_strip_size(small):
    cfg, c, sol, rng = small
    s, g = rng.standard_normal((2, 4, *cfg.shape))
    outs = []
    for rows in (1, 3, 8, 64):
        out, gc = np.empty_like(s), np.zeros(cfg.shape)
        kern.adjoint_kernel(s, g, sol.c, sol.sig, sol.tau, sol.k, sol.mrow, sol.mcol, out, gc,
                            rows)
        outs.append((out, gc))
    for out, gc in outs[1:]:
        assert np.array_equal(out, outs[0][0]) and np.array_equal(gc, outs[0][1])


@pytest.fixture(scope="module")
def problem():
    cfg = cfg_of(nx=30, ny=30, steps=60)
    return cfg, pml.uniform_model(cfg), pml.record(cfg)


def _grad(problem, moves, inplace=False):
    cfg, c, obs = problem
    return pml.gradient(cfg, c, moves, obs, inplace=inplace)


def test_gradients_bit_for_bit_across_schedules(problem):
    n = problem[0].steps
    ref = _grad(problem, pebbles.store_all(n))
    assert ref.backward_steps == n and np.linalg.norm(ref.grad_c) > 0
    runs = {
        "treeverse": _grad(problem, pebbles.treeverse(n, 3)),
        "treeverse-inplace": _grad(problem, pebbles.treeverse(n, 3, inplace=True), True),
        "treeverse-paper": _grad(problem, pebbles.treeverse_paper(n, 2)),
        "periodic": _grad(problem, pebbles.periodic(n, 8)),
        "bennett2": _grad(problem, pebbles.bennett_gradient(n, 2)),
        "bennett3": _grad(problem, pebbles.bennett_gradient(n, 3)),
        "store-all-inplace": _grad(problem, pebbles.store_all(n), True),
    }
    for name, g in runs.items():
        assert g.loss == ref.loss, name
        assert np.array_equal(g.grad_c, ref.grad_c), name
        assert np.array_equal(g.grad_source, ref.grad_source), name
        assert np.array_equal(g.grad_s0, ref.grad_s0), name
        assert g.backward_steps == n
    tv = pebbles.simulate(pebbles.treeverse(n, 3), n, "checkpoint")
    assert runs["treeverse"].forward_steps == tv.forward_steps + 1  # + s_n


def test_gradient_independent_of_thread_count(problem):
    n = problem[0].steps
    ref = _grad(problem, pebbles.treeverse(n, 4))
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = _grad(problem, pebbles.treeverse(n, 4))
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(one.grad_c, ref.grad_c) and np.array_equal(one.grad_s0, ref.grad_s0)


def _smooth(cfg, rng):
    x = np.linspace(0, 1, cfg.shape[0])[:, None]
    y = np.linspace(0, 1, cfg.shape[1])[None, :]
    a = rng.standard_normal(4)
    return (a[0] * np.sin(np.pi * x) * np.sin(2 * np.pi * y)
            + a[1] * np.cos(3 * x + 1) * np.sin(np.pi * y) + a[2] * x * y + a[3])


def test_loss_matches_executor(problem):
    cfg, c, obs = problem
    g = _grad(problem, pebbles.treeverse(cfg.steps, 4))
    assert g.loss == pytest.approx(pml.loss(cfg, c, obs), rel=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
def test_grad_c_finite_differences(problem, seed):
    cfg, c, obs = problem
    g = _grad(problem, pebbles.treeverse(cfg.steps, 5))
    dc = _smooth(cfg, np.random.default_rng(seed)) * c
    e = 1e-4
    fd = (pml.loss(cfg, c + e * dc, obs) - pml.loss(cfg, c - e * dc, obs)) / (2 * e)
    assert np.vdot(g.grad_c, dc) == pytest.approx(fd, rel=1e-6)


def test_grad_source_and_s0_finite_differences(problem):
    cfg, c, obs = problem
    g = _grad(problem, pebbles.treeverse(cfg.steps, 5))
    rng = np.random.default_rng(3)
    f0 = pml.ricker(cfg)
    df = rng.standard_normal(cfg.steps) * np.abs(f0).max()
    e = 1e-3
    fd = (pml.loss(cfg, c, obs, source=f0 + e * df)
          - pml.loss(cfg, c, obs, source=f0 - e * df)) / (2 * e)
    assert np.vdot(g.grad_source, df) == pytest.approx(fd, rel=1e-7)
    ds = np.zeros((4, *cfg.shape))
    ds[:2, 1:-1, 1:-1] = rng.standard_normal((2, cfg.nx, cfg.ny)) * 1e-4
    ds[2:, 1:-1, 1:-1] = rng.standard_normal((2, cfg.nx, cfg.ny)) * 1e3
    fd = (pml.loss(cfg, c, obs, s0=ds) - pml.loss(cfg, c, obs, s0=-ds)) / 2
    assert np.vdot(g.grad_s0, ds) == pytest.approx(fd, rel=1e-7)


def test_pulse_arrival_time():
    cfg = cfg_of(nx=160, ny=40, steps=300, n_detectors=160, width=10.0, delay=40.0)
    traces = pml.forward(cfg, pml.uniform_model(cfg))[1]
    det_i = pml.detectors(cfg)[0]
    isrc = cfg.source_position[0]
    v_steps = cfg.velocity * cfg.dt / cfg.spacing  # cells per step
    peaks = {}
    for dist in (20, 40, 60):
        d = int(np.flatnonzero(det_i == isrc + dist)[0])
        peaks[dist] = int(np.argmax(np.abs(traces[:, d])))
    for a, b in ((20, 40), (40, 60), (20, 60)):
        expected = (b - a) / v_steps
        assert abs((peaks[b] - peaks[a]) - expected) <= 2, (peaks, expected)
    for dist, t in peaks.items():
        # source peak + travel time; the 2D Green's function delays the peak a little
        lag = t - cfg.delay - dist / v_steps
        assert 0 <= lag <= cfg.width, (peaks, dist, lag)


def _energy_history(cfg):
    sol = pml.PMLSolver(cfg, pml.uniform_model(cfg))
    s = sol.zero_state()
    c = sol.c[1:-1, 1:-1]
    h, dt = cfg.spacing, cfg.dt
    energy = []
    for i in range(cfg.steps):
        sol.step_into(i, s, s)
        u, up = s[1], s[0]
        kin = ((u - up)[1:-1, 1:-1] / dt) ** 2
        gx = (u[2:, 1:-1] - u[:-2, 1:-1]) / (2 * h)
        gy = (u[1:-1, 2:] - u[1:-1, :-2]) / (2 * h)
        energy.append(float(np.sum(kin + c * (gx**2 + gy**2))))
    return np.array(energy)


def test_pml_absorbs():
    cfg = cfg_of(nx=60, ny=60, steps=600)
    e = _energy_history(cfg)
    e0 = _energy_history(pml.PMLConfig(**{**cfg.__dict__, "npml": 0}))
    assert e[-50:].max() < 1e-3 * e.max()
    assert e0[-50:].max() > 0.1 * e0.max()  # without damping the ring reflects it all


def test_cfl_refused():
    cfg = cfg_of(dt=1e-4)
    with pytest.raises(pml.UnstableError, match="CFL") as info:
        pml.PMLSolver(cfg, pml.uniform_model(cfg))
    assert isinstance(info.value, ValueError) and "dt=0.0001" in str(info.value)
    with pytest.raises(ValueError, match="finite"):
        pml.check_stability(cfg_of(), np.full(cfg_of().shape, -1.0))


def test_cli_gradient_and_loss(tmp_path, capsys):
    cfg = cfg_of(nx=20, ny=20, steps=30)
    cfile = tmp_path / "c.npy"
    np.save(cfile, pml.uniform_model(cfg))
    base = ["--nx", "20", "--ny", "20", "--steps", "30", "--h", "0.11", "--c", str(cfile)]
    out = tmp_path / "g.npz"
    assert pml.main(["gradient", *base, "--method", "treeverse", "--pebbles", "3",
                     "--inplace", "--save", str(out), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["backward_steps"] == 30 and rec["peak_rss_mb"] > 0
    data = np.load(out)
    assert data["grad_c"].shape == cfg.shape and data["grad_u0"].shape == cfg.shape
    assert np.linalg.norm(data["grad_c"]) == pytest.approx(rec["grad_c_norm"])
    assert pml.main(["gradient", *base, "--method", "bennett", "--k", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(rec["loss"])
    assert pml.main(["loss", *base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(rec["loss"])


@pytest.mark.parametrize("argv", [
    ["gradient", "--nx", "20", "--ny", "20", "--steps", "10", "--dt", "1e-2"],
    ["gradient", "--nx", "20", "--ny", "20", "--steps", "10", "--c", "/nonexistent.npy"],
    ["gradient", "--nx", "20", "--ny", "20", "--steps", "0"],
    ["gradient", "--method", "nope"],
])
def test_cli_bad_input(argv, capsys):
    assert pml.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err


def test_reuse_pool_same_gradient_fewer_arrays(problem):
    n = problem[0].steps
    moves = list(pebbles.treeverse(n, 4))
    fresh = _grad(problem, moves)  # the pool is on by default
    cfg, c, obs = problem
    old = pml.gradient(cfg, c, moves, obs, reuse=False)
    assert old.allocations == old.forward_steps and old.inplace_steps == 0
    assert fresh.allocations < fresh.forward_steps // 2
    assert fresh.peak_buffers <= fresh.peak_states
    assert fresh.loss == old.loss
    assert np.array_equal(fresh.grad_c, old.grad_c) and np.array_equal(fresh.grad_s0, old.grad_s0)


def _subnormals(a):
    a = np.abs(a)
    return int(np.count_nonzero((a > 0) & (a < np.finfo(np.float64).tiny)))


def test_flush_keeps_subnormals_out_and_changes_nothing_visible():
    # h = 20: the stencil's precursor falls 1e-5.6 per cell and reaches 1e-308 in the grid
    kw = dict(nx=80, ny=80, steps=80, h=20.0, n_detectors=20)
    counts = {}
    for flush in (0.0, 1e-140):
        cfg = pml.PMLConfig(flush=flush, **kw)
        sol = pml.PMLSolver(cfg, pml.uniform_model(cfg))
        s, worst = sol.zero_state(), 0
        for i in range(cfg.steps):
            sol.step_into(i, s, s)
            worst = max(worst, _subnormals(s))
        g = sol.vjp(s, s * 1e-150)  # adjoint outputs are flushed too
        counts[flush] = (worst, _subnormals(g))
    assert counts[0.0][0] > 100 and counts[1e-140] == (0, 0)
    on, off = pml.PMLConfig(**kw), pml.PMLConfig(flush=0.0, **kw)
    obs = pml.record(on, pml.true_model(on))
    moves = list(pebbles.treeverse(kw["steps"], 5))
    a = pml.gradient(on, pml.uniform_model(on), moves, obs)
    b = pml.gradient(off, pml.uniform_model(off), moves, obs)
    assert a.loss == pytest.approx(b.loss, rel=1e-14)
    np.testing.assert_allclose(a.grad_c, b.grad_c, rtol=0, atol=1e-13 * np.abs(b.grad_c).max())


@pytest.mark.parametrize("bad", [-1e-300, 1e-50, float("nan")])
def test_flush_is_checked(bad):
    with pytest.raises(pebbles.PebblesValueError, match="flush="):
        pml.PMLConfig(flush=bad)
