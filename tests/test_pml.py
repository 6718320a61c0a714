"""Tests of the PML wave experiment (Liu & Xu, section 4.2), :mod:`solvers.pml`."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numba
import numpy as np
import pytest

import pebbles
from solvers import _pml_kernels as kern
from solvers import pml
from solvers._threading import threading_layer

ROOT = Path(__file__).resolve().parents[1]

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
    e0 = _energy_history(dataclasses.replace(cfg, npml=0))
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


TINY = ["--nx", "20", "--ny", "20", "--steps", "10", "--h", "0.11"]


@pytest.mark.parametrize("argv, words", [
    (["gradient", "--nx", "20", "--ny", "20", "--steps", "10", "--dt", "1e-2"],
     ["CFL", "--dt 0.01,", "use --dt <= ", "or --h >= "]),
    (["gradient", *TINY, "--c", "/nonexistent.npy"], ["--c"]),
    (["gradient", "--nx", "20", "--ny", "20", "--steps", "0"], ["--steps 0", "pass --steps 1"]),
    (["loss", "--nx", "0", "--steps", "10"], ["--nx 0", "pass --nx 2"]),
    (["loss", "--ny", "1", "--steps", "10"], ["--ny 1", "pass --ny 2"]),
    (["gradient", "--method", "nope"], ["--method"]),
    (["gradient", *TINY, "--dt", "nan"], ["--dt nan", "finite", "pass e.g. --dt 1e-05"]),
    (["gradient", *TINY, "--dt", "inf"], ["--dt inf", "finite"]),
    (["gradient", "--nx", "20", "--ny", "20", "--steps", "10", "--h", "inf"],
     ["--h inf", "pass e.g. --h "]),
    (["loss", "--nx", "20", "--ny", "20", "--steps", "10", "--h", "nan"], ["--h nan"]),
    (["gradient", *TINY, "--method", "store-all", "--pebbles", "3"], ["--pebbles 3", "store-all"]),
    (["gradient", *TINY, "--pebbles", "-1"], ["--pebbles -1"]),
    (["gradient", *TINY, "--method", "treeverse-paper"],
     ["--method treeverse-paper needs --delta D"]),
    (["gradient", *TINY, "--method", "store-all", "--inplace"],
     ["--inplace is not an option of --method store-all (its options: none)"]),
    (["gradient", *TINY, "--method", "bennett", "--inplace"],
     ["--inplace is not an option of --method bennett-gradient (its options: --k)"]),
    (["gradient", *TINY, "--method", "two-level", "--k", "2", "--write-cost", "1",
      "--read-cost", "1"], ["--k 2 is not an option of --method two-level (its options: "
                            "--pebbles, --disk-slots, --write-cost, --read-cost, --inplace, "
                            "--background-writes, --backward-cost)"]),
    (["gradient", *TINY, "--method", "periodic-disk", "--every", "0"],
     ["argument --every/--period: '0' must be a whole number >= 1"]),
    (["gradient", *TINY, "--method", "periodic-disk", "--period", "0"],
     ["argument --every/--period: '0' must be a whole number >= 1"]),
    (["gradient", *TINY, "--method", "bennett", "--k", "1"],
     ["argument --k: '1' must be a whole number >= 2"]),
    (["gradient", *TINY, "--method", "periodic", "--every", str(10**22)],
     [f"argument --every/--period: '{10**22}' must be at most 2^62"]),
    (["gradient", *TINY, "--method", "treeverse-paper", "--delta", "1e3"],
     ["argument --delta: '1e3' is not an integer"]),
    (["gradient", *TINY, "--method", "treeverse", "--pebbles", str(10**20)],
     [f"argument --pebbles/--budget: '{10**20}' must be at most 2^62"]),
    (["gradient", *TINY, "--no-such-flag"],
     ["gradient: error: unrecognized arguments: --no-such-flag (see 'python -m solvers.pml "
      "gradient --help')"]),
    (["gradient", *TINY, "--method", "treeverse", "--k", "3"], ["--k 3", "treeverse"]),
    (["gradient", *TINY, "--method", "treeverse", "--tau", "3"],
     ["--tau 3 is not an option of --method treeverse (its options: --pebbles, --inplace)"]),
    (["gradient", *TINY, "--method", "treeverse-paper", "--delta", "2", "--beyond", "greedy"],
     ["--beyond greedy is not an option of --method treeverse-paper (its options: --delta, "
      "--tau)"]),
    (["gradient", *TINY, "--method", "online", "--beyond", "newest"],
     ["argument --beyond: invalid choice: 'newest'"]),
    (["gradient", *TINY, "--method", "treeverse-paper", "--delta", "2", "--tau", "1"],
     ["--tau 1 with --delta 2 covers C(tau+delta, delta)=3 < --steps 10; use --tau 3 or more"]),
    (["gradient", *TINY, "--save", "out.txt"], ["--save", ".npz"]),
    (["gradient", *TINY, "--save", "/nonexistent-dir/g.npz"], ["--save", "does not exist"]),
    (["gradient", *TINY, "--method", "treeverse", "--write-cost", "1"],
     ["--write-cost: not used by --method treeverse"]),
    (["gradient", *TINY, "--disk-dir", "/tmp", "--keep-disk"],
     ["--disk-dir --keep-disk: not used by --method treeverse"]),
    (["gradient", *TINY, "--method", "periodic-disk", "--pebbles", "4", "--every", "5",
      "--read-cost", "1"], ["--read-cost: not used by --method periodic-disk"]),
    (["gradient", *TINY, "--dt", "-1e-5"], ["--dt -1e-05 must be a finite number > 0"]),
    (["gradient", "--nx", "40", "--ny", "40", "--steps", "100", "--h", "1e300"],
     ["--h 1e+300 must be between 1.49e-154 and 6.7e+153", "pass e.g. --h 0.2"]),
    (["loss", "--nx", "40", "--ny", "40", "--steps", "100", "--h", "1e200"], ["--h 1e+200"]),
    (["loss", "--nx", "40", "--ny", "40", "--steps", "100", "--h", "1e-300"],
     ["--h 1e-300 must be between", "pass e.g. --h 0.2"]),
    (["gradient", "--nx", "40", "--ny", "40", "--steps", "100", "--h", "1e-200"], ["--h 1e-200"]),
    (["gradient", "--nx", "40", "--ny", "40", "--steps", "100", "--h", "1e-150"],
     ["--dt 1e-05", "hx=hy=1e-150", "use --dt <= 2.11434e-154 or --h >= 0.047296"]),
    *[([cmd, "--nx", "40", "--ny", "40", "--steps", "99999999999999999999", "--force"],
       ["argument --steps: '99999999999999999999' must be at most 2^62"])
      for cmd in ("gradient", "loss")],
    (["loss", "--nx", "99999999999999999999", "--force"], ["argument --nx: '9", "at most 2^62"]),
    (["gradient", "--ny", "99999999999999999999"], ["argument --ny: '9", "at most 2^62"]),
    (["loss", "--nx", "-3"], ["--nx -3 must be an integer >= 2", "pass --nx 2 or more"]),
    (["loss", "--nx", str(2**62), "--ny", "40", "--steps", "10", "--force"],
     ["more than any machine can address", "--force cannot run it"]),
    (["gradient", *TINY, "--save", ""],
     ["--save '' is an empty path", "name a file, e.g. out.npz"]),
    (["gradient", *TINY, "--save", __file__ + "/x.npz"],
     [f"--save '{__file__}/x.npz' lies under '{__file__}', which is a file, not a "
      "directory"]),
    (["gradient", *TINY, "--save", __file__ + "/a/b/x.npz"],
     [f"lies under '{__file__}', which is a file"]),
    (["gradient", *TINY, "--save", ".npz"],
     ["--save '.npz' names no file: the file needs a name before .npz, e.g. --save out.npz"]),
    (["gradient", *TINY, "--save", "/tmp/.npz"], ["e.g. --save /tmp/out.npz"]),
    (["gradient", *TINY, "--method", "two-level", "--write-cost", "1", "--read-cost", "1",
      "--disk-dir", ""], ["--disk-dir '' is an empty path", "leave --disk-dir out"]),
    (["gradient", *TINY, "--method", "periodic-disk", "--every", "5", "--disk-dir", " "],
     ["--disk-dir ' ' is an empty path"]),
    (["gradient", *TINY, "--dt", "1e-170"],
     ["--dt 1e-170 must be between 1.49e-154 and ", "pass e.g. --dt 1e-05"]),
    (["loss", *TINY, "--dt", "1e-160"], ["--dt 1e-160 must be between"]),
    # a negative budget is told the least that finishes, not "--pebbles 0 or more"
    (["gradient", *TINY, "--method", "treeverse", "--pebbles", "-3"],
     ["--pebbles -3 must be >= 2, the least budget that finishes --steps 10; pass "
      "--pebbles 2 or more"]),
    (["gradient", *TINY, "--method", "two-level", "--write-cost", "1", "--read-cost", "1",
      "--pebbles", "-3"], ["--pebbles -3 must be >= 2", "pass --pebbles 2 or more"]),
])
def test_cli_bad_input(argv, words, capsys):
    assert pml.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m solvers.pml"), err
    assert "error: " in err
    for word in words:
        assert word in err, (word, err)


@pytest.mark.parametrize("method", [["periodic-disk", "--every", "5"],
                                    ["two-level", "--write-cost", "1", "--read-cost", "1"],
                                    ["two-level"]])
def test_cli_disk_dir_that_is_a_file_is_refused_before_computing(method, monkeypatch,
                                                                capsys):
    monkeypatch.setattr(pml, "record", lambda *a: pytest.fail("recorded before the check"))
    monkeypatch.setattr(pml, "warm_up", lambda: pytest.fail("compiled before the check"))
    for disk_dir in (__file__, __file__ + "/sub"):
        argv = ["gradient", *TINY, "--method", *method, "--disk-dir", disk_dir]
        assert pml.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--disk-dir {disk_dir!r} is a file" in err, err


def test_cli_c_of_strings_and_save_to_directory(tmp_path, capsys):
    strings = tmp_path / "c.npy"
    np.save(strings, np.full((22, 22), "abc"))
    assert pml.main(["gradient", *TINY, "--c", str(strings)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--c {strings}" in err and "real numbers" in err
    negative = tmp_path / "neg.npy"
    c = np.ones((22, 22))
    c[3, 4], c[5, 6] = -2.0, np.nan
    np.save(negative, c)
    assert pml.main(["loss", *TINY, "--c", str(negative)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--c {negative}: 2 of 484 cells are negative or not " \
        f"finite (the first at [3, 4]: -2)" in err
    adir = tmp_path / "adir"
    adir.mkdir()
    assert pml.main(["gradient", *TINY, "--save", str(adir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--save" in err and "is a directory" in err
    assert set(tmp_path.iterdir()) == {adir, strings, negative}
    assert not (tmp_path / "adir.npz").exists()


def test_cli_refuses_a_run_bigger_than_memory():
    """The issue's case, as a user runs it: refused at once, nothing allocated."""
    out = subprocess.run([sys.executable, "-m", "solvers.pml", "gradient", "--nx", "100000",
                          "--ny", "100000"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    line = out.stderr
    assert line.count("\n") == 1 and "needs about" in line and "TB" in line
    assert "is available (MemAvailable)" in line and "--force" in line


def test_cli_memory_check_and_force(monkeypatch, capsys):
    # store-all at 300^2 x 20000: 20000 states of 2.9 MB
    cfg = pml.PMLConfig(nx=300, ny=300, steps=20000)
    est = pml.memory_estimate(cfg, pml.schedule("store-all", cfg.steps))
    state = 4 * 302 * 302 * 8
    assert est.state_bytes == state and est.states == 19999 + 1 + 4
    assert 58e9 < est.total < 59e9
    monkeypatch.setattr(pml, "available_memory", lambda: 8 * 10**9)
    argv = ["gradient", "--nx", "300", "--ny", "300", "--steps", "20000", "--method",
            "store-all"]
    assert pml.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{est.total / 1e9:.3g} GB" in err and "20004 states of 2.92 MB" in err
    assert "8 GB is available" in err
    # a tiny run that does not fit is refused, and runs with --force
    monkeypatch.setattr(pml, "available_memory", lambda: 1000)
    assert pml.main(["loss", *TINY]) == 2
    assert "is available" in capsys.readouterr().err
    assert pml.main(["loss", *TINY, "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] > 0


def test_memory_estimate_counts_what_the_executor_holds():
    cfg = cfg_of(nx=20, ny=20, steps=40)
    for method, kw in (("treeverse", {"budget": 4}), ("periodic", {"every": 7}),
                       ("bennett", {"k": 2}), ("treeverse-paper", {"delta": 3})):
        moves = pml.schedule(method, cfg.steps, **kw)
        est = pml.memory_estimate(cfg, moves)
        g = pml.gradient(cfg, pml.uniform_model(cfg), moves, pml.record(cfg))
        assert est.states >= g.peak_states + 1 + 2, method  # + s_0 and gradient buffers
        assert est.states <= g.peak_states + 6, method
    with pytest.raises(pml.NotEnoughMemoryError, match="is available"):
        pml.check_memory(est, available=est.total - 1)
    pml.check_memory(est, available=est.total)


def test_schedule_by_name_uses_the_registry():
    n = 50
    s = pml.schedule("treeverse", n, budget=5, inplace=True)
    assert isinstance(s, pebbles.Schedule) and (s.method, s.budget, s.game) == (
        "treeverse", 5, pebbles.schedule("treeverse", n, budget=5, inplace=True).game)
    assert list(s) == list(pebbles.treeverse(n, 5, inplace=True))
    assert pml.schedule("treeverse", n).budget == 10  # the default budget
    assert list(pml.schedule("bennett", n, k=3)) == list(pebbles.bennett_gradient(n, 3))
    # the older keyword: budget of treeverse, delta of treeverse-paper
    assert pml.schedule("treeverse", n, pebbles=4).budget == 4
    assert list(pml.schedule("treeverse-paper", n, pebbles=3)) == list(
        pebbles.treeverse_paper(n, 3))
    assert list(pml.schedule("periodic", n)) == list(pebbles.periodic(n, 8))
    with pytest.raises(pebbles.InfeasibleBudgetError, match="budget=3"):
        pml.schedule("store-all", n, budget=3)
    with pytest.raises(pebbles.PebblesValueError, match="method='reversible-optimal'"):
        pml.schedule("reversible-optimal", n, budget=8)


def test_cli_treeverse_paper_delta_and_pebbles_agree(capsys):
    base = ["gradient", *TINY, "--method", "treeverse-paper", "--json"]
    assert pml.main([*base, "--delta", "3"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert pml.main([*base, "--pebbles", "3"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert a["options"] == b["options"] == {"delta": 3, "tau": None} and a["loss"] == b["loss"]
    assert a["forward_steps"] == pebbles.simulate(pebbles.treeverse_paper(10, 3), 10,
                                                  "checkpoint").forward_steps + 1


@pytest.mark.parametrize("method, flags, options, default", [
    ("treeverse-paper", ["--delta", "2", "--tau", "7"], {"delta": 2, "tau": 7}, {"delta": 2}),
    ("online", ["--pebbles", "3", "--beyond", "wang-moin"],
     {"budget": 3, "beyond": "wang-moin"}, {"budget": 3}),
])
def test_cli_tau_and_beyond_reach_the_schedule(method, flags, options, default, capsys):
    """--tau and --beyond run the registry's schedule with that option (whose forward
    steps differ from the schedule without it)."""
    n = 20
    s, other = pebbles.schedule(method, n, **options), pebbles.schedule(method, n, **default)
    assert s.simulate().forward_steps != other.simulate().forward_steps  # the flag matters
    argv = ["gradient", "--nx", "20", "--ny", "20", "--steps", str(n), "--h", "0.11",
            "--method", method, *flags, "--json"]
    assert pml.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["options"] == dict(s.options)
    assert out["forward_steps"] == s.simulate().forward_steps + 1  # + s_n


def test_cli_memory_fix_names_the_commands_flags(monkeypatch, capsys):
    """Too big a run is told the fixes its command has: --pebbles for gradient only."""
    monkeypatch.setattr(pml, "available_memory", lambda: 1000)
    assert pml.main(["loss", *TINY]) == 2
    err = capsys.readouterr().err
    assert "use a smaller grid or fewer steps, or pass --force to run anyway" in err
    assert "--pebbles" not in err
    assert pml.main(["gradient", *TINY]) == 2
    assert ("use a smaller grid, fewer steps or a smaller budget (--pebbles), or pass --force "
            "to run anyway") in capsys.readouterr().err


def test_gradient_result_composes_the_replay_result(problem):
    cfg, c, obs = problem
    g = pml.gradient(cfg, c, pebbles.schedule("treeverse", cfg.steps, budget=4), obs)
    assert isinstance(g.replay, pebbles.ReplayResult)
    assert g.loss == g.replay.loss and g.grad_s0 is g.replay.grad_s0
    assert (g.forward_steps, g.backward_steps, g.peak_states, g.seconds) == (
        g.replay.forward_steps, g.replay.backward_steps, g.replay.peak_states, g.replay.seconds)
    sim = pebbles.simulate(pebbles.treeverse(cfg.steps, 4), cfg.steps, "checkpoint")
    assert g.forward_steps == sim.forward_steps + 1
    with pytest.raises(AttributeError, match="no_such"):
        g.no_such  # noqa: B018


def test_cell_formulas_are_one_source(small):
    """The formulas compiled for another target (here plain Python) give the kernels' cells."""
    cfg, c, sol, rng = small
    py = kern.compile_cells(lambda f: f)
    s, g = rng.standard_normal((2, 4, *cfg.shape))
    out = sol.step(0, s)
    adj, gc = np.empty_like(s), np.zeros(cfg.shape)
    kern.adjoint_kernel(s, g, sol.c, sol.sig, sol.tau, sol.k, sol.mrow, sol.mcol, adj, gc)
    nxx, nyy = cfg.shape
    un, v = np.zeros(cfg.shape), np.zeros(cfg.shape)
    for i in range(1, nxx - 1):
        for j in range(1, nyy - 1):
            un[i, j] = py.u_new(s[1], s[0], s[2], s[3], sol.c, i, j, sol.sig[i], sol.tau[j],
                                sol.k)
            v[i, j] = py.v_adj(g[1], g[2], g[3], sol.c, sol.sig, sol.tau, sol.mrow, sol.mcol,
                               i, j, sol.k)
    src = np.zeros(cfg.shape)
    src[sol.isrc, sol.jsrc] = sol.source[0] * cfg.dt**2
    assert np.array_equal(un + src, out[1])
    phi = np.zeros(cfg.shape)
    mine, gc2 = np.empty_like(s), np.zeros(cfg.shape)
    for i in range(nxx):
        for j in range(nyy):
            if 0 < i < nxx - 1 and 0 < j < nyy - 1:
                phi[i, j] = py.phi_new(s[2], un, sol.c, i, j, sol.sig[i], sol.tau[j], sol.k)
                py.inner_cell(s[1], g[0], g[2], g[3], sol.c, sol.sig[i], sol.tau[j], sol.k,
                              v, un, i, i, j, mine, gc2)
            else:
                py.ring_cell(i, j, i, g[0], sol.c, v, sol.k, mine)
    assert np.array_equal(phi, out[2])
    assert np.array_equal(mine, adj) and np.array_equal(gc2, gc)
    assert py.u_new.__code__ is kern.u_new.__code__


class _FakeClock:
    """A clock that a fake kernel advances by the cost of the current thread count."""

    def __init__(self, costs):
        self.now, self.costs, self.log = 0.0, costs, []

    def __call__(self):
        return self.now

    def kernel(self):
        threads = numba.get_num_threads()
        self.log.append(threads)
        self.now += self.costs[threads]


def test_thread_chooser_follows_the_faster_count():
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2) if numba.config.NUMBA_NUM_THREADS >= 2 else None
        most = numba.get_num_threads()
        if most < 2:  # one core: nothing to choose
            return
        clock = _FakeClock({most: 1e-3, 1: 2e-3})  # quiet: all threads faster
        chooser = pml.ThreadChooser(most, clock=clock)
        for _ in range(300):
            chooser.run("step", clock.kernel)
        assert clock.log[-100:].count(most) >= 95 and 1 in clock.log
        clock.costs[most] = 30e-3  # a competing process takes a core: barriers wait
        for _ in range(300):
            chooser.run("step", clock.kernel)
        late = clock.log[-250:]
        assert late.count(1) >= 245
        assert chooser.calls[most] < 340  # the lost probes back off
        clock.costs[most] = 0.5e-3  # quiet again: found by a probe
        for _ in range(6000):
            chooser.run("step", clock.kernel)
        assert clock.log[-100:].count(most) >= 95
    finally:
        numba.set_num_threads(before)


def test_thread_chooser_learns_calls_that_fault_in_new_memory_apart():
    """First writes into fresh arrays are slow on any thread count: not a signal."""
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2) if numba.config.NUMBA_NUM_THREADS >= 2 else None
        most = numba.get_num_threads()
        if most < 2:
            return
        clock, faults = _FakeClock({most: 1e-3, 1: 2e-3}), [0]

        def kernel():  # the first 20 calls write fresh memory: 10x slower
            clock.kernel()
            if len(clock.log) <= 20:
                clock.now += 9e-3
                faults[0] += 2000

        chooser = pml.ThreadChooser(most, clock=clock, faults=lambda: faults[0])
        for _ in range(60):
            chooser.run("adjoint", kernel)
        assert clock.log[:60].count(1) == 4  # two probes in the faulting run, two after
        assert clock.log[-30:] == [most] * 30
        assert chooser.best == {"adjoint": most, "adjoint/new": most}
        clock.costs[most] = 30e-3  # loaded: the next change of choice goes to one thread
        for _ in range(40):
            chooser.run("adjoint", kernel)
        assert chooser.belief == 1
        chooser.run("step", kernel)  # a new kind starts where the last change went
        assert clock.log[-1] == 1
    finally:
        numba.set_num_threads(before)


def test_kernels_run_during_disk_writes_are_learned_apart():
    class Writing(pebbles.MemoryStore):
        writing = True

    cfg = pml.PMLConfig(nx=80, ny=80, steps=8)
    sol = pml.PMLSolver(cfg, pml.uniform_model(cfg))
    with sol.threads() as chooser:
        if chooser is None:  # one thread: nothing to choose
            return
        s = sol.step(0, sol.zero_state())
        sol.store = Writing()
        sol.step_into(1, s, s)
        assert {k.removesuffix("/new") for k, _ in chooser.mean} <= {"step", "inplace+io"}
        assert "inplace+io" in {k for k, _ in chooser.mean}


def test_thread_chooser_keeps_gradients(problem):
    """The chosen counts change nothing: the kernels have one writer per output cell."""
    cfg = pml.PMLConfig(nx=70, ny=66, steps=30, h=0.11, width=6.0, delay=10.0, n_detectors=9)
    assert cfg.shape[0] * cfg.shape[1] >= pml.PARALLEL_MIN_CELLS
    obs = pml.record(cfg)
    moves = pebbles.schedule("treeverse", cfg.steps, budget=4)
    ref = pml.gradient(cfg, pml.uniform_model(cfg), moves, obs)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = pml.gradient(cfg, pml.uniform_model(cfg), moves, obs)
    finally:
        numba.set_num_threads(before)
    assert one.loss == ref.loss and np.array_equal(one.grad_c, ref.grad_c)
    assert numba.get_num_threads() == before


def test_small_grids_run_on_one_thread(problem):
    cfg = problem[0]
    assert cfg.shape[0] * cfg.shape[1] < pml.PARALLEL_MIN_CELLS
    before = numba.get_num_threads()
    with pml.PMLSolver(cfg, pml.uniform_model(cfg)).threads() as chooser:
        assert chooser is None and numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    big = pml.PMLConfig(nx=80, ny=80, steps=8)
    sol = pml.PMLSolver(big, pml.uniform_model(big))
    layer = threading_layer()
    with sol.threads() as chooser:
        s = sol.step(0, sol.zero_state())
        for i in range(6):
            sol.step_into(i, s, s)
        if before > 1 and layer == "omp":
            assert chooser.choices == (before, 1) and sum(chooser.calls.values()) == 7
        else:  # TBB splits each loop dynamically: all threads, no chooser
            assert chooser is None and numba.get_num_threads() == before
    assert numba.get_num_threads() == before


_LAYER_CODE = '''
from solvers import pml
from solvers._threading import threading_layer
cfg = pml.PMLConfig(nx=80, ny=80, steps=8)
sol = pml.PMLSolver(cfg, pml.uniform_model(cfg))
with sol.threads() as chooser:
    sol.step(0, sol.zero_state())
print(threading_layer(), chooser is not None)
'''


@pytest.mark.parametrize("layer", ["default", "omp"])
def test_tbb_is_the_layer_where_installed_and_openmp_gets_the_chooser(layer):
    """The solvers extra installs TBB on Linux x86-64 (pip puts its library outside the
    loader's path: solvers._threading loads it); on OpenMP the thread chooser runs."""
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", _LAYER_CODE], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    try:
        has_tbb = sys.platform.startswith("linux") and bool(metadata.version("tbb"))
    except metadata.PackageNotFoundError:
        has_tbb = False
    want = "omp" if layer == "omp" else ("tbb" if has_tbb else out[0])
    assert out == [want, str(want == "omp")]


def test_tbb_is_found_where_pip_recorded_it_outside_the_prefixes():
    """pip install --user (or to /usr/local) puts libtbb outside sys.prefix/lib: the
    library is found through the files pip recorded for the tbb distribution."""
    try:
        metadata.version("tbb")
    except metadata.PackageNotFoundError:
        pytest.skip("the tbb wheel is not installed here (the solvers extra installs it "
                    "on Linux x86-64)")
    code = ("import sys; sys.prefix = sys.base_prefix = '/no/such/prefix'; "
            "from solvers._threading import load_tbb; print(load_tbb())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(sys.platform.startswith("linux"))]


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


def test_two_level_gradient_through_a_disk_store_is_bit_for_bit(tmp_path, capsys):
    cfg = pml.PMLConfig(nx=20, ny=20, steps=60, h=0.11, width=6.0, delay=10.0,
                        n_detectors=5)
    obs = pml.record(cfg)
    c = pml.uniform_model(cfg)
    ref = pml.gradient(cfg, c, pebbles.schedule("store-all", 60), obs)
    s = pebbles.schedule("two-level", 60, budget=3, disk_budget=4, write_cost=2.0,
                         read_cost=1.0)
    folder = tmp_path / "disk"
    with pebbles.DiskStore(folder) as store:
        g = pml.gradient(cfg, c, s, obs, store=store)
        assert store.bytes_written == g.replay.writes * 4 * 22 * 22 * 8 > 0
    assert not folder.exists()
    assert g.loss == ref.loss and np.array_equal(g.grad_c, ref.grad_c)
    assert np.array_equal(g.grad_s0, ref.grad_s0)
    # the command line: costs given or measured on the directory, no file left behind
    argv = ["gradient", "--nx", "20", "--ny", "20", "--steps", "60", "--method", "two-level",
            "--pebbles", "3", "--disk-slots", "4", "--disk-dir", str(tmp_path), "--json"]
    assert pml.main([*argv, "--write-cost", "2", "--read-cost", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["writes"] > 0 and out["options"]["disk_budget"] == 4
    assert pml.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["options"]["write_cost"] > 0
    # the schedule for background writes: another stream, the same gradient
    assert pml.main([*argv, "--write-cost", "40", "--read-cost", "1",
                     "--background-writes"]) == 0
    back = json.loads(capsys.readouterr().out)
    assert back["options"]["background_writes"] is True
    assert (back["loss"], back["grad_c_norm"]) == (out["loss"], out["grad_c_norm"])
    assert list(tmp_path.iterdir()) == []
    # --backward-cost: the registry's schedule for backward steps of that cost
    slow = [*argv, "--write-cost", "40", "--read-cost", "1", "--background-writes",
            "--backward-cost", "3"]
    assert pml.main(slow) == 0
    back3 = json.loads(capsys.readouterr().out)
    assert back3["options"]["backward_cost"] == 3.0
    assert (back3["loss"], back3["grad_c_norm"]) == (out["loss"], out["grad_c_norm"])
    # --keep-disk: the store's own folder stays (the schedule discarded every state in
    # it), printed as disk_folder
    assert pml.main([*argv, "--write-cost", "2", "--read-cost", "1", "--keep-disk"]) == 0
    kept = Path(json.loads(capsys.readouterr().out)["disk_folder"])
    assert kept.parent == tmp_path and kept.is_dir()


def test_every_gradient_method_of_the_registry_runs_from_the_command_line(tmp_path, capsys):
    """pml.METHODS comes from pebbles.gradient_methods: each gives store-all's gradient."""
    assert set(pebbles.gradient_methods(disk=True)) <= set(pml.METHODS)
    base = ["gradient", "--nx", "20", "--ny", "20", "--steps", "40", "--json"]
    assert pml.main([*base, "--method", "store-all"]) == 0
    ref = json.loads(capsys.readouterr().out)
    extra = {"two-level": ["--write-cost", "2", "--read-cost", "1"], "periodic-disk":
             ["--every", "10"], "treeverse-paper": ["--delta", "3"]}
    for method in pebbles.gradient_methods(disk=True):
        budget = ["--pebbles", "6"] if pebbles.describe(method).takes_budget else []
        disk = ["--disk-dir", str(tmp_path)] if pebbles.describe(method).uses_disk else []
        assert pml.main([*base, "--method", method, *budget, *extra.get(method, []),
                         *disk]) == 0, method
        out = json.loads(capsys.readouterr().out)
        assert (out["loss"], out["grad_c_norm"]) == (ref["loss"], ref["grad_c_norm"]), method
        assert (out.get("writes", 0) > 0) == pebbles.describe(method).uses_disk, method
    assert list(tmp_path.iterdir()) == []
    assert pml.main([*base, "--method", "periodic-disk", "--pebbles", "4"]) == 2
    assert "needs --every" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# NaN through the flush to zero; observed, schedule() and PMLConfig arguments
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("flush", [1e-140, 0.0])
def test_nan_in_the_state_stays_nan(flush):
    cfg = cfg_of(nx=20, ny=20, steps=5, npml=4, n_detectors=5, flush=flush)
    sol = pml.PMLSolver(cfg, pml.uniform_model(cfg))
    s = sol.zero_state()
    s[1, 10, 10] = np.nan
    out = sol.step(0, s)
    assert np.isnan(out[1, 10, 10]) and np.isnan(out[1, 11, 10])
    s0 = np.full((4, *cfg.shape), np.nan)  # the runs refuse it before any step
    with pytest.raises(pebbles.PebblesValueError, match=r"^s0=.* has a non-finite entry"):
        pml.loss(cfg, pml.uniform_model(cfg), pml.record(cfg), s0=s0)
    assert np.isnan(sol.vjp(sol.zero_state(), s)[1, 10, 10])  # the adjoint too


def test_flush_keeps_every_finite_value_and_infinity_as_before():
    """The NaN-passing form gives the old ``x if |x| >= k[7] else 0`` on every non-NaN x."""
    k = cfg_of().constants()
    values = [0.0, -0.0, 1e-141, -1e-141, 1e-140, -1e-140, 2e-140, 5e-324, 1.0, -3.5,
              1e308, np.inf, -np.inf]
    for threshold in (1e-140, 0.0):
        k[7] = threshold
        for x in values:
            got = kern._cpu.flush(x, k)
            want = x if abs(x) >= threshold else 0.0
            assert got == want and np.signbit(got) == np.signbit(want), (threshold, x)
        assert np.isnan(kern._cpu.flush(np.nan, k))


@pytest.mark.parametrize("bad, shape", [
    (lambda o: o[:, :1], r"\(31, 1\)"), (lambda o: np.zeros((31, 9)), r"\(31, 9\)"),
    (lambda o: o[:10], r"\(10, 5\)"), (lambda o: o.T, r"\(5, 31\)"),
])
def test_observed_shape_is_checked_before_the_run(bad, shape):
    cfg = cfg_of(nx=20, ny=20, steps=30, npml=4, n_detectors=5)
    obs, c = pml.record(cfg), pml.uniform_model(cfg)
    moves = pebbles.schedule("treeverse", 30, budget=3)
    expect = rf"^observed has shape {shape}; expected \(31, 5\) = \(steps\+1, n_detectors\)"
    with pytest.raises(pebbles.PebblesValueError, match=expect):
        pml.gradient(cfg, c, moves, bad(obs))
    with pytest.raises(pebbles.PebblesValueError, match=expect):
        pml.loss(cfg, c, bad(obs))
    with pytest.raises(pebbles.PebblesValueError, match=r"^observed=None: expected .*\(31, 5\)"):
        pml.gradient(cfg, c, moves, None)
    with pytest.raises(pebbles.PebblesTypeError, match=r"^observed='x' must hold real numbers"):
        pml.loss(cfg, c, "x")


def test_schedule_builds_the_disk_methods_from_keyword_arguments():
    cfg = cfg_of(nx=20, ny=20, steps=40, npml=4, n_detectors=5)
    obs, c = pml.record(cfg), pml.uniform_model(cfg)
    ref = pml.gradient(cfg, c, pml.schedule("store-all", 40), obs)
    two = pml.schedule("two-level", 40, budget=3, disk_budget=4, write_cost=2.0, read_cost=1.0)
    assert two == pebbles.schedule("two-level", 40, budget=3, disk_budget=4, write_cost=2.0,
                                   read_cost=1.0, background_writes=False)
    per = pml.schedule("periodic-disk", 40, budget=3, period=10)
    assert per == pebbles.schedule("periodic-disk", 40, budget=3, period=10)
    assert pml.schedule("periodic-disk", 40, budget=3, every=10) == per  # the CLI's name
    for moves in (two, per):
        g = pml.gradient(cfg, c, moves, obs)
        assert g.loss == ref.loss and np.array_equal(g.grad_c, ref.grad_c)
    for kw, match in [({"read_cost": 1.0}, r"^method two-level needs write_cost= "),
                      ({"write_cost": 1.0}, r"^method two-level needs read_cost= ")]:
        with pytest.raises(pebbles.PebblesValueError, match=match):
            pml.schedule("two-level", 40, budget=3, **kw)
    with pytest.raises(pebbles.PebblesValueError, match=r"^method periodic-disk needs period="):
        pml.schedule("periodic-disk", 40, budget=3)
    with pytest.raises(pebbles.PebblesValueError, match="pass only period"):
        pml.schedule("periodic-disk", 40, budget=3, period=10, every=5)
    with pytest.raises(pebbles.PebblesValueError, match=r"^write_cost=2\.0 is not an option"):
        pml.schedule("treeverse", 40, write_cost=2.0)


@pytest.mark.parametrize("field, value, error, match", [
    ("dt", True, pebbles.PebblesTypeError, r"^dt=True must be a finite number > 0"),
    ("npml", True, pebbles.PebblesTypeError, r"^npml=True must be an integer >= 0"),
    ("amp", True, pebbles.PebblesTypeError, r"^amp=True must be a finite number"),
    ("dt", "a", pebbles.PebblesTypeError, r"^dt='a' must be .*\(the time step\); pass"),
    ("vp_ref", None, pebbles.PebblesTypeError, r"^vp_ref=None must be a finite number > 0"),
    ("h", "1", pebbles.PebblesTypeError, r"^h='1' must be a finite number > 0.*h=0\.2"),
    ("reflection", "x", pebbles.PebblesTypeError, r"^reflection='x' must be a finite number"),
    ("flush", "a", pebbles.PebblesTypeError, r"^flush='a' must be a finite number"),
    ("nx", 2.0, pebbles.PebblesTypeError, r"^nx=2\.0 must be an integer >= 2.*such as nx=1000$"),
    ("nx", 2**63, pebbles.PebblesValueError, r"^nx=9223372036854775808 must be an integer in "
     r"2\.\.2\*\*63 - 1 \(interior grid points.*pass e\.g\. nx=1000$"),
    ("nx", 1, pebbles.PebblesValueError, r"^nx=1 must be an integer >= 2.*pass nx=2 or more"),
    ("steps", 0, pebbles.PebblesValueError, r"^steps=0 must be an integer >= 1"),
    ("reflection", 1.0, pebbles.PebblesValueError, r"^reflection=1\.0 must be in \(0, 1\)"),
    ("reflection", 0.0, pebbles.PebblesValueError, r"^reflection=0\.0 must be in \(0, 1\)"),
    ("width", -1.0, pebbles.PebblesValueError, r"^width=-1\.0 must be a finite number > 0"),
    ("delay", float("nan"), pebbles.PebblesValueError, r"^delay=nan must be a finite number"),
    ("dt", 1e-170, pebbles.PebblesValueError,
     r"^dt=1e-170 must be between 1\.49e-154 and 1\.34e\+153 at grid spacing 0\.2002 .*dt=1e-05$"),
])
def test_config_fields_are_checked_by_name(field, value, error, match):
    with pytest.raises(error, match=match):
        pml.PMLConfig(**{field: value})


def test_memory_estimate_counts_at_most_n_states_whatever_the_budget(monkeypatch, capsys):
    """--pebbles 10^11 for 20 steps holds at most 20 states: not 3.28e+03 TB (refused)."""
    cfg = cfg_of(nx=30, ny=30, steps=20)
    est = pml.memory_estimate(cfg, pml.schedule("treeverse", 20, budget=10**11))
    assert est.states == 20 + 1 + 4
    assert est.states - 1 == pml.memory_estimate(cfg, pml.schedule("store-all", 20)).states
    monkeypatch.setattr(pml, "available_memory", lambda: 10**8)
    assert pml.main(["gradient", *TINY, "--pebbles", str(10**11), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["peak_states"] <= 10


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_cli_save_that_cannot_be_created_is_refused_before_the_run(monkeypatch, capsys):
    """os.access says yes to root; opening /proc/x.npz fails: refused before the run."""
    monkeypatch.setattr(pml, "gradient", lambda *a, **k: pytest.fail("computed"))
    assert pml.main(["gradient", *TINY, "--save", "/proc/x.npz"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--save '/proc/x.npz' cannot be written (" in err


# ---------------------------------------------------------------------------
# s0's shape, the order of the command line's checks, memory of bounded methods,
# --keep-disk
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 30, 30), (4, 22, 15), (3, 22, 16), (4, 22)])
def test_s0_shape_is_checked_by_every_entry(shape):
    """forward and loss ran a wrong s0 on another grid or read past c (NaN)."""
    cfg = cfg_of(nx=20, ny=14, steps=5, n_detectors=3)
    c, obs = pml.uniform_model(cfg), pml.record(cfg)
    expect = rf"^s0 has shape {re.escape(str(shape))}; expected \(4, 22, 16\) = \(4, nx\+2, ny\+2\)"
    s0 = np.zeros(shape)
    with pytest.raises(pebbles.PebblesValueError, match=expect):
        pml.forward(cfg, c, s0=s0)
    with pytest.raises(pebbles.PebblesValueError, match=expect):
        pml.loss(cfg, c, obs, s0=s0)
    with pytest.raises(pebbles.PebblesValueError, match=expect):
        pml.gradient(cfg, c, pml.schedule("store-all", cfg.steps), obs, s0=s0)
    with pytest.raises(pebbles.PebblesTypeError, match=r"^s0='x' must hold real numbers"):
        pml.forward(cfg, c, s0="x")
    s0 = np.zeros((4, *cfg.shape))
    assert pml.forward(cfg, c, s0=s0)[0] is not s0 and not s0.any()  # a copy is stepped


def test_two_level_measures_the_disk_only_when_the_run_goes_ahead(monkeypatch, tmp_path,
                                                                  capsys):
    """Refused by memory or budget: no state-sized file in --disk-dir, no step run."""
    monkeypatch.setattr(pebbles, "measure_io", lambda *a: pytest.fail("disk measured"))
    monkeypatch.setattr(pml, "_step_seconds", lambda cfg: pytest.fail("step measured"))
    argv = ["gradient", "--nx", "20", "--ny", "14", "--steps", "40", "--method", "two-level",
            "--disk-dir", str(tmp_path / "d")]
    monkeypatch.setattr(pml, "available_memory", lambda: 1000)
    assert pml.main([*argv, "--pebbles", "3"]) == 2
    assert "1 kB is available" in capsys.readouterr().err
    monkeypatch.setattr(pml, "available_memory", lambda: 10**9)
    assert pml.main([*argv, "--pebbles", "1"]) == 2
    assert "--pebbles 1 cannot finish the checkpoint game" in capsys.readouterr().err
    assert pml.main([*argv, "--pebbles", "3", "--dt", "1"]) == 2
    assert "unstable" in capsys.readouterr().err
    assert pml.main([*argv, "--pebbles", "3", "--k", "3"]) == 2
    assert "--k 3 is not an option of --method two-level" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("budget", [["--pebbles", "1"], ["--pebbles", "0", "--inplace"]])
def test_two_level_budget_is_refused_alike_whether_its_costs_are_measured_or_given(
        budget, monkeypatch, tmp_path, capsys):
    """Before its disk costs are measured, two-level's budget was checked by a copy of the
    registry's rule in other words; now the registry checks it in both cases."""
    monkeypatch.setattr(pebbles, "measure_io", lambda *a: pytest.fail("disk measured"))
    argv = ["gradient", *TINY, "--method", "two-level", *budget]
    assert pml.main([*argv, "--disk-dir", str(tmp_path / "d")]) == 2  # costs to measure
    measured = capsys.readouterr().err
    assert pml.main([*argv, "--write-cost", "1", "--read-cost", "1"]) == 2
    assert measured == capsys.readouterr().err
    assert f"{' '.join(budget[:2])} cannot finish the " in measured


@pytest.mark.parametrize("method, kw", [("bennett", {}), ("periodic", {}),
                                        ("treeverse-paper", {"delta": 3})])
def test_memory_estimate_of_a_method_that_takes_no_budget_ignores_a_larger_one(method, kw):
    """--pebbles only caps these methods: the estimate is what their schedule holds."""
    cfg = cfg_of(nx=40, ny=40, steps=200, n_detectors=5)
    free = pml.memory_estimate(cfg, pml.schedule(method, cfg.steps, **kw))
    capped = pml.memory_estimate(cfg, pml.schedule(method, cfg.steps, budget=200, **kw))
    assert capped == free
    g = pml.gradient(cfg, pml.uniform_model(cfg), pml.schedule(method, cfg.steps, **kw),
                     pml.record(cfg))
    assert g.peak_states + 1 + 2 <= capped.states <= g.peak_states + 6
    paper = pml.PMLConfig()
    est = pml.memory_estimate(paper, pml.schedule("bennett", paper.steps, budget=1000))
    assert est.states == 19 and est.total < 2e9  # not 1005 states, 32 GB
    pml.check_memory(est, available=2 * 10**9)


def test_keep_disk_help_says_what_is_kept(tmp_path, capsys):
    """The schedule deletes every state file it wrote: the kept folder is empty, as said."""
    argv = ["gradient", "--nx", "20", "--ny", "14", "--steps", "40", "--method", "two-level",
            "--pebbles", "3", "--write-cost", "0", "--read-cost", "0", "--disk-dir",
            str(tmp_path), "--keep-disk", "--json"]
    assert pml.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    kept = Path(out["disk_folder"])
    assert out["writes"] > 0 and kept.parent == tmp_path and list(kept.iterdir()) == []
    help_text = " ".join(pml._parser()._subparsers._group_actions[0].choices["gradient"]
                         .format_help().split())
    assert "--keep-disk keep the store's folder" in help_text
    assert "it is left empty" in help_text


def test_courant_and_damping_near_both_limits_are_refused_together():
    """C = 0.99 with dt max(zeta) = 0.977 passed both rules and grew without bound."""
    h = 200 / 39
    cfg = pml.PMLConfig(nx=40, ny=40, steps=200, dt=0.99 * h / (3300 * 2**0.5), npml=8,
                        vp_ref=2000.0, delay=20.0, width=5.0)
    with pytest.raises(pml.UnstableError, match=r"C\^2 \+ \(dt max\(zeta\)/2\)\^2 = 1\.2"):
        pml.check_stability(cfg, pml.uniform_model(cfg))
    refused = 0
    for vp_ref in np.linspace(1500.0, 3300.0, 37):  # the dt it suggests passes
        bad = dataclasses.replace(cfg, vp_ref=vp_ref)
        try:
            pml.check_stability(bad, pml.uniform_model(bad))
            continue
        except pml.UnstableError as err:
            found = re.search(r"C\^2 .* use dt <= ([0-9.e+-]+),", str(err))
        if found is None:  # refused by the rule dt max(zeta) < 1 alone
            continue
        suggested = float(found.group(1))
        refused += 1
        fixed = dataclasses.replace(bad, dt=suggested)
        pml.check_stability(fixed, pml.uniform_model(fixed))
    assert refused >= 2
    for ok in (pml.PMLConfig(), pml.PMLConfig(nx=200, ny=200, dt=5.02e-5, steps=1992),
               cfg_of()):
        pml.check_stability(ok, pml.true_model(ok))
        pml.check_stability(ok, pml.uniform_model(ok))


def test_numpy_scalar_fields_run_in_double_precision():
    """A float32 dt or velocity is read as a Python float: the run is double precision,
    and the stability check takes its models."""
    fields = dict(dt=np.float32(1e-5), velocity=np.float32(3300.0), nx=np.int64(12))
    cfg = cfg_of(ny=12, steps=20, **fields)
    plain = cfg_of(ny=12, steps=20, **{k: v.item() for k, v in fields.items()})
    assert (type(cfg.dt), type(cfg.velocity), type(cfg.nx)) == (float, float, int)
    assert cfg == plain and cfg.constants().dtype == np.float64
    for model in (pml.true_model, pml.uniform_model):
        assert model(cfg).dtype == np.float64
        pml.check_stability(cfg, model(cfg))  # not refused as dtype=float32
    assert pml.loss(cfg, pml.uniform_model(cfg), pml.record(cfg)) == pml.loss(
        plain, pml.uniform_model(plain), pml.record(plain))


def test_c_of_any_real_dtype_runs_on_its_float64_copy():
    cfg = cfg_of(nx=12, ny=12, steps=20)
    obs = pml.record(cfg)
    ref = pml.loss(cfg, pml.uniform_model(cfg), obs)
    for c in (np.full(cfg.shape, 3300**2), np.full(cfg.shape, 3300.0**2, dtype=np.float32)):
        pml.check_stability(cfg, c)
        assert pml.loss(cfg, c, obs) == ref
    for bad in (pml.uniform_model(cfg) + 0j, np.ones(cfg.shape, dtype=bool),
                np.full(cfg.shape, None)):
        with pytest.raises(pebbles.PebblesTypeError,
                           match=r"^c=.* must hold real numbers.*uniform_model\(cfg\)"):
            pml.check_stability(cfg, bad)
    with pytest.raises(pebbles.PebblesValueError, match=r"^c has shape \(3, 3\); expected"):
        pml.PMLSolver(cfg, np.ones((3, 3)))


@pytest.mark.parametrize("kw", [
    dict(nx=10, ny=10, steps=5, npml=0, width=3.0, delay=3.0, n_detectors=3, dt=3e-5,
         h=0.11001005025125628),  # suggested dt <= 2.35724e-05, above the bound
    dict(nx=10, ny=10, steps=5, npml=0, width=3.0, delay=3.0, n_detectors=3, dt=3e-5,
         h=0.11),  # suggested h >= 0.140007, below the bound
    dict(nx=30, ny=30, npml=3, h=1.0, dt=2e-4, vp_ref=10001.507537688442),  # dt < 1.62836e-05
    dict(nx=30, ny=30, npml=3, h=0.11, dt=3e-5, vp_ref=3000.0),  # CFL with a PML
], ids=["cfl-dt", "cfl-h", "damping", "cfl-with-pml"])
def test_following_a_stability_suggestion_passes(kw):
    cfg = pml.PMLConfig(**kw)
    with pytest.raises(pml.UnstableError) as err:
        pml.check_stability(cfg, pml.uniform_model(cfg))
    found = re.findall(r"\b(dt|h) (?:<=|<|>=) ([0-9.e+-]+)", str(err.value))
    assert found and all(name != "dt" or float(v) < cfg.dt for name, v in found)
    for name, value in found:
        fixed = dataclasses.replace(cfg, **{name: float(value)})
        pml.check_stability(fixed, pml.uniform_model(fixed))


def test_source_is_checked_like_the_other_arrays():
    cfg = cfg_of(nx=12, ny=12, steps=20)
    c = pml.uniform_model(cfg)
    with pytest.raises(pebbles.PebblesTypeError, match=r"^source='abc' must hold real numbers"):
        pml.PMLSolver(cfg, c, source="abc")
    with pytest.raises(pebbles.PebblesTypeError, match=r"^source=.* must hold real numbers"):
        pml.forward(cfg, c, source=pml.ricker(cfg) + 1j)  # refused, not cast (dropping i)
    with pytest.raises(pebbles.PebblesValueError, match=r"^source has shape \(3,\)"):
        pml.PMLSolver(cfg, c, source=[1.0, 2.0, 3.0])
    ints = np.arange(20)
    assert np.array_equal(pml.PMLSolver(cfg, c, source=ints).source, ints.astype(float))


def test_schedule_refuses_two_names_that_differ():
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^budget=4 and pebbles=5 both give the budget S and differ; "
                             r"pass only budget"):
        pml.schedule("treeverse", 30, budget=4, pebbles=5)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^delta=3 and pebbles=4 both give treeverse-paper's delta"):
        pml.schedule("treeverse-paper", 30, delta=3, pebbles=4)
    assert pml.schedule("treeverse", 30, budget=4, pebbles=4).budget == 4
    assert dict(pml.schedule("treeverse-paper", 30, delta=3, pebbles=3).options)["delta"] == 3


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("method", [["periodic-disk", "--every", "5"],
                                    ["two-level", "--write-cost", "1", "--read-cost", "1"]])
def test_cli_disk_dir_that_cannot_be_written_is_refused_before_computing(method, monkeypatch,
                                                                         capsys):
    """No folder can be made under /proc (not even by root): refused before the recording,
    the message naming --disk-dir, not the library's directory=."""
    monkeypatch.setattr(pml, "record", lambda *a: pytest.fail("recorded before the check"))
    monkeypatch.setattr(pml, "warm_up", lambda: pytest.fail("compiled before the check"))
    monkeypatch.setattr(pebbles, "measure_io", lambda *a: pytest.fail("disk measured"))
    disk_dir = "/proc/pebbles-no-such-dir/sub"
    assert pml.main(["gradient", *TINY, "--method", *method, "--disk-dir", disk_dir]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--disk-dir {disk_dir!r} cannot hold" in err, err
    assert "directory=" not in err


def test_disk_dir_probe_removes_all_it_made(tmp_path):
    pml._check_disk_dir(str(tmp_path / "a" / "b"))
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "c").mkdir()
    pml._check_disk_dir(str(tmp_path / "c"))
    assert list(tmp_path.iterdir()) == [tmp_path / "c"] and not any((tmp_path / "c").iterdir())


def test_stability_message_never_fails_on_extreme_values():
    """The largest safe dt of a tiny h with a huge c is no normal float64: the message
    names h alone (``a^2`` overflowing to a dt of 0 must not make ``log10(0)`` fail)."""
    cfg = pml.PMLConfig(nx=10, ny=10, steps=5, h=pml._H_RANGE[0])
    with pytest.raises(pml.UnstableError, match=r"Courant number .* use h >= [0-9.e+]+$") as e:
        pml.check_stability(cfg, np.full(cfg.shape, 1e308))
    assert "dt <=" not in str(e.value)
    assert pml._rounded(0.0, up=False) is None and pml._rounded(math.inf, up=True) is None
    for h in (1e300, 1e-300, math.ldexp(1.0, 512)):
        shown = re.escape(repr(h))
        with pytest.raises(pebbles.PebblesValueError, match=rf"^h={shown} must be between"):
            pml.PMLConfig(h=h)
    low, high = pml._H_RANGE
    for h in (low, high):  # dt=1e-05 at h=2^511 would make dt^2/h^2 0: refused
        dt = max(1e-5, pml._dt_range(h)[0])
        assert np.isfinite(pml.PMLConfig(nx=4, ny=4, h=h, dt=dt).constants()).all()


# ---------------------------------------------------------------------------
# the solver's entries check their states and step numbers; memory_estimate takes
# gradient's schedules; bool flags; the range of dt
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_solver():
    cfg = cfg_of(nx=12, ny=12, steps=10, n_detectors=3, npml=2)
    return pml.PMLSolver(cfg, pml.uniform_model(cfg), observed=pml.record(cfg))


@pytest.mark.parametrize("shape", [(4, 30, 30), (4, 5, 5), (3, 14, 14), (4, 14, 15), (4, 14)])
def test_solver_entries_refuse_a_state_of_another_shape(tiny_solver, shape):
    """The kernels loop over the state's shape and index c of cfg's: a larger state
    crashed the process (free(): invalid next size), a smaller one ran on another grid."""
    sol, good, bad = tiny_solver, tiny_solver.zero_state(), np.ones(shape)
    grad_c = sol.grad_c.copy()

    def refused(name, call):
        expect = rf"^{name} has shape {re.escape(str(shape))}; expected \(4, 14, 14\) = "
        with pytest.raises(pebbles.PebblesValueError, match=expect):
            call()

    refused("s", lambda: sol.step(0, bad))
    refused("s", lambda: sol.step_into(0, bad, bad))
    refused("s", lambda: sol.step_into(0, bad, good))
    refused("out", lambda: sol.step_into(0, good, bad))
    refused("s", lambda: sol.vjp(bad, good))
    refused("g", lambda: sol.vjp(good, bad))
    refused("out", lambda: sol.vjp(good, good, bad))
    refused("g", lambda: sol.backward(3, good, bad))
    assert np.array_equal(sol.grad_c, grad_c) and not sol.grad_source.any()


def test_solver_entries_refuse_states_that_are_not_float64_arrays(tiny_solver):
    sol, good = tiny_solver, tiny_solver.zero_state()
    with pytest.raises(pebbles.PebblesValueError, match=r"^s has dtype float32; expected float64"):
        sol.step(0, good.astype(np.float32))
    with pytest.raises(pebbles.PebblesValueError, match=r"^out has dtype int64; expected float64"):
        sol.step_into(0, good, np.zeros(good.shape, dtype=np.int64))
    with pytest.raises(pebbles.PebblesTypeError, match=r"^g=\[\[\[0\.0, .* \(list\) is not a NumPy "
                                                       r"array; expected a float64 NumPy"):
        sol.vjp(good, good.tolist())
    view = np.zeros((4, 14, 14), dtype=">f8" if sys.byteorder == "little" else "<f8")
    with pytest.raises(pebbles.PebblesValueError, match=r"^s has dtype >f8|^s has dtype <f8"):
        sol.step(0, view)
    assert np.array_equal(sol.step(0, good), sol.step(0, good.view(np.ndarray)))


_OUTSIDE = r"must be a step number in 0\.\.9 .*pass 0 <= i < 10$"
_NOT_INT = r"must be an integer, a step number in 0\.\.9 .*i=0$"


@pytest.mark.parametrize("i, error, rule", [
    *[(i, pebbles.PebblesValueError, _OUTSIDE) for i in (10, 11, -1, -10)],
    *[(i, pebbles.PebblesTypeError, _NOT_INT)
      for i in (1.5, 2.0, True, np.bool_(False), None, "1", np.float64(3.0))]])
def test_step_number_that_is_not_one_of_the_run_is_refused(tiny_solver, i, error, rule):
    """step(i=steps) raised an IndexError, step(i=-1) silently took source[-1],
    step_into(1.5, ...) raised NumPy's IndexError on source[1.5], step(True, ...) a
    TypeError of float() on source[True] (an array): every entry names i."""
    sol, s = tiny_solver, tiny_solver.zero_state()
    for call in (lambda: sol.step(i, s), lambda: sol.step_into(i, s, s),
                 lambda: sol.step_into(i, s, sol.zero_state()),
                 lambda: sol.backward(i, s, sol.loss_grad(s))):
        with pytest.raises(error, match=rf"^i={re.escape(repr(i))} {rule}"):
            call()
    assert not sol.grad_source.any() and not s.any()
    sol.step(9, s)  # the last step runs
    assert np.array_equal(sol.step(np.int64(3), s), sol.step(3, s))  # NumPy integers run


def test_read_only_out_is_refused_before_the_kernels(tiny_solver):
    """A read-only out failed in Numba's typing of the kernel (a page of 'No
    implementation of function setitem(readonly array...)'); now one line names out."""
    sol, s = tiny_solver, tiny_solver.zero_state()
    frozen = sol.zero_state()
    frozen.flags.writeable = False
    expect = r"^out is a read-only array \(flags.writeable is False\); .*writeable array"
    grad_c = sol.grad_c.copy()
    for call in (lambda: sol.step_into(0, s, frozen), lambda: sol.step_into(0, frozen, frozen),
                 lambda: sol.vjp(s, s, frozen)):
        with pytest.raises(pebbles.PebblesValueError, match=expect):
            call()
    assert not frozen.any() and np.array_equal(sol.grad_c, grad_c)
    assert np.array_equal(sol.step(0, frozen), sol.step(0, s))  # read-only inputs are fine
    sol.vjp(frozen, frozen)
    sol.grad_c[:] = grad_c


def test_memory_estimate_takes_the_forms_gradient_takes():
    """A list of moves or an encoded array raised AttributeError; a schedule for another
    n was accepted (54 states for a 10-step run)."""
    cfg = cfg_of(nx=12, ny=12, steps=10, n_detectors=3)
    for s in (pebbles.schedule("treeverse", 10, budget=3), pebbles.schedule("store-all", 10)):
        want = pml.memory_estimate(cfg, s)
        assert want.states == pebbles.lower(s).peak_states + 4
        for form in (list(s), iter(list(s)), pebbles.encode(s)):
            assert pml.memory_estimate(cfg, form) == want
        program = pml.memory_estimate(cfg, pebbles.lower(s))  # its rows count as moves
        assert program.states == want.states and program.other_bytes <= want.other_bytes
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^moves is a schedule for n=50 steps but cfg\.steps=10; pass one "
                             r"for 10 steps"):
        pml.memory_estimate(cfg, pebbles.schedule("store-all", 50))
    with pytest.raises(pebbles.PebblesValueError, match=r"^moves is a program for n=11 steps"):
        pml.memory_estimate(cfg, pebbles.lower(pebbles.schedule("store-all", 11)))
    with pytest.raises(pebbles.IllegalMoveError):
        pml.memory_estimate(cfg, list(pebbles.schedule("store-all", 50)))
    with pytest.raises(pebbles.PebblesTypeError, match=r"^moves='x' is a string"):
        pml.memory_estimate(cfg, "x")


@pytest.mark.parametrize("available, error, match", [
    ("1", pebbles.PebblesTypeError, r"^available='1' must be a real number, the number of bytes"),
    (True, pebbles.PebblesTypeError, r"^available=True must be a real number"),
    (0, pebbles.PebblesValueError, r"^available=0 must be a finite number > 0"),
    (-5.0, pebbles.PebblesValueError, r"^available=-5\.0 must be a finite number > 0"),
    (float("nan"), pebbles.PebblesValueError, r"^available=nan is not finite"),
])
def test_check_memory_checks_available(available, error, match):
    est = pml.memory_estimate(cfg_of(nx=12, ny=12, steps=10, n_detectors=3))
    with pytest.raises(error, match=match):
        pml.check_memory(est, available=available)
    pml.check_memory(est, available=8e9)
    pml.check_memory(est, available=np.int64(est.total))
    with pytest.raises(pml.NotEnoughMemoryError):
        pml.check_memory(est, available=est.total - 1.0)


@pytest.mark.parametrize("flag", ["inplace", "reuse", "progress", "choose_threads"])
def test_gradient_refuses_bool_flags_that_are_not_bools(tiny_solver, flag, monkeypatch):
    """gradient(inplace="no") ran as inplace=True."""
    cfg = tiny_solver.cfg
    monkeypatch.setattr(pml, "PMLSolver", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(pebbles.PebblesTypeError,
                       match=rf"^{flag}='no' must be True or False; pass {flag}=True"):
        pml.gradient(cfg, pml.uniform_model(cfg), pml.schedule("store-all", 10),
                     tiny_solver.observed, **{flag: "no"})


@pytest.mark.parametrize("flag", ["inplace", "background_writes"])
def test_schedule_refuses_bool_options_that_are_not_bools(flag):
    """schedule(inplace="no") built the in-place game's schedule."""
    with pytest.raises(pebbles.PebblesTypeError, match=rf"^{flag}='no' must be True or False"):
        pml.schedule("two-level", 10, write_cost=1.0, read_cost=1.0, **{flag: "no"})


def test_schedule_tells_a_negative_budget_the_least_budget():
    with pytest.raises(pebbles.InfeasibleBudgetError, match=r"^budget=-3 must be >= 7, the "
                       r"least budget .* with method='periodic'; pass budget=7 or more"):
        pml.schedule("periodic", 20, budget=-3, every=5)


def test_solvers_and_drawings_import_only_public_pebbles_modules():
    """solvers.pml imported pebbles._validation: the solvers and the drawing code use the
    library's public API (pebbles, pebbles.cli, pebbles.torch, ...)."""
    root = Path(__file__).resolve().parents[1]
    private = []
    for path in sorted([*(root / "solvers").rglob("*.py"), *(root / "visualize").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:  # from pebbles import _x
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            private += [f"{path.relative_to(root)}: {name}" for name in names
                        if name.split(".")[0] == "pebbles"
                        and any(part.startswith("_") for part in name.split(".")[1:])]
    assert not private, private


def test_dt_range_keeps_the_kernel_constants_normal():
    """dt=1e-170 ran with dt^2/h^2 = 0: loss 0 and gradient 0."""
    rng = np.random.default_rng(0)
    low_h, high_h = pml._H_RANGE
    for h in [low_h, high_h, 0.5, 1.0, 2.0, *np.exp2(rng.uniform(-511, 511, 2000))]:
        low, high = pml._dt_range(float(h))
        for dt in (low, high):
            k = np.array([dt * dt, *pml.PMLConfig(nx=4, ny=4, h=float(h), dt=dt).constants()[:7]])
            assert np.all((k >= sys.float_info.min) & np.isfinite(k)), (h, dt, k)
        for dt in (low / 2, high * 2):
            with pytest.raises(pebbles.PebblesValueError, match=r"^dt=.* must be between"):
                pml.PMLConfig(nx=4, ny=4, h=float(h), dt=dt)
    expect = r"between 1 and .* spacing 6\.7039e\+153 .*dt=1\.00001$"
    with pytest.raises(pebbles.PebblesValueError, match=expect):
        pml.PMLConfig(h=high_h)  # the default dt is out of range there: a bound is suggested


def test_period_is_the_same_flag_as_every():
    """``--period P`` (as in ``pebbles schedule periodic-disk``) is ``--every P``."""
    parse = pml._parser().parse_args
    base = ["gradient", "--method", "periodic-disk"]
    assert parse([*base, "--period", "7"]).every == parse([*base, "--every", "7"]).every == 7


def test_disk_slots_inf_is_the_unbounded_disk_none():
    """``--disk-slots inf`` reaches the schedule as None (``null`` in ``--json``, not
    ``Infinity``), as ``pebbles schedule`` passes it."""
    args = pml._parser().parse_args(["gradient", "--method", "two-level", "--disk-slots",
                                     "inf", "--write-cost", "2", "--read-cost", "1"])
    assert pml._disk_options(args, None)["disk_budget"] is None


def test_measured_step_time_of_a_short_run():
    """Two-level costs measured on a run of 1 to 3 steps (the timing steps wrap)."""
    for steps in (1, 2, 3):
        assert pml._step_seconds(cfg_of(steps=steps)) > 0
