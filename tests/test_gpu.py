"""Tests of the GPU executors (:mod:`solvers.gpu`; Liu & Xu sections 4.1, 4.2).

Without a GPU (CI) the numba.cuda kernels run under Numba's CUDA simulator
(tests/conftest.py sets ``NUMBA_ENABLE_CUDASIM=1``) on NumPy arrays; there the
device functions do the CPU kernels' arithmetic in the same order, so results
are compared bit for bit. On a GPU the same tests run on the device (the
compiler may fuse multiply-adds: compared to 1e-12), and the tests marked
``gpu`` also run with CuPy arrays. Problems are tiny: the simulator runs every
GPU thread as a Python thread.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pebbles
from pebbles import IllegalMoveError, PebblesTypeError, PebblesValueError
from solvers import _pml_kernels as kern
from solvers import gpu, lorenz, pml

ROOT = Path(__file__).resolve().parents[1]
SIM = gpu.simulator_mode()
NO_GPU = "no CUDA GPU (cupy not installed or no device)"
needs_gpu = pytest.mark.skipif(not gpu.gpu_available(), reason=NO_GPU)


def same(a, b, rtol=1e-12):
    """Bit for bit under the simulator; to ``rtol`` of the largest entry on a GPU."""
    a, b = np.asarray(a), np.asarray(b)
    if SIM:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * max(np.abs(b).max(), 1e-300))


# ---------------------------------------------------------------------------
# module, array module, schedule lowering
# ---------------------------------------------------------------------------
def test_import_without_cupy():
    code = ("import sys; sys.modules['cupy'] = None; import pebbles, solvers, solvers.gpu as g; "
            "import numpy as np; assert g.array_module() is np and not g.gpu_available(); "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_array_module_choice(monkeypatch):
    assert gpu.array_module(np) is np
    with pytest.raises(PebblesTypeError, match="xp="):
        gpu.array_module(json)
    if not gpu.gpu_available():
        assert gpu.array_module() is np
    monkeypatch.setattr(gpu, "simulator_mode", lambda: False)
    with pytest.raises(PebblesValueError, match="NUMBA_ENABLE_CUDASIM") as e:
        gpu._device_view(np)
    assert 'install cupy (pip install "pebble-games[gpu]")' in str(e.value)  # the extra
    assert "xp=numpy (the default without cupy or a GPU)" in str(e.value)


def test_the_kernels_run_the_core_lowering():
    """One slot program for every executor: pebbles.lower's ops and constants."""
    from solvers import _cuda_lorenz

    assert not hasattr(gpu, "lower_schedule") and not hasattr(gpu, "SlotProgram")
    assert (_cuda_lorenz.OP_STEP, _cuda_lorenz.OP_SEED) == (pebbles.OP_STEP, pebbles.OP_SEED)
    s = pebbles.schedule("treeverse", 60, budget=5, inplace=True)
    p = pebbles.lower(s)
    ref = lorenz.replay_lorenz(s)
    r = gpu.lorenz_gradient(p, None, (1.0, 0.0, 0.0), lorenz.DEFAULT_THETA)
    same(r.gradient[0], ref.gradient)
    assert (r.forward_steps, r.backward_steps, r.peak_states, r.nslots) == (
        ref.forward_steps, ref.backward_steps, ref.peak_states, p.nslots)
    assert set(np.unique(p.ops[:, 0])) <= {pebbles.OP_STEP, pebbles.OP_SEED, pebbles.OP_PAINT}


def test_executors_run_programs_lowered_with_frees(pml_small):
    """OP_FREE rows (``lower(..., frees=True)``) are dropped, not taken for disk states."""
    s = pebbles.schedule("treeverse", 12, budget=3)
    prog = pebbles.lower(s, frees=True)
    assert (prog.ops[:, 0] == pebbles.OP_FREE).any()
    ran = gpu._program(prog, None, None)
    assert not (ran.ops[:, 0] == pebbles.OP_FREE).any() and ran.nslots == prog.nslots
    ref = gpu.lorenz_gradient(s, None, (1.0, 0.0, 0.0), lorenz.DEFAULT_THETA)
    r = gpu.lorenz_gradient(prog, None, (1.0, 0.0, 0.0), lorenz.DEFAULT_THETA)
    assert np.array_equal(r.gradient, ref.gradient)
    cfg, c, s0, observed, _ = pml_small
    moves = pebbles.schedule("treeverse", cfg.steps, budget=3)
    g = gpu.pml_gradient(cfg, c, pebbles.lower(moves, frees=True), observed, s0=s0)
    assert np.array_equal(g.grad_c, gpu.pml_gradient(cfg, c, moves, observed, s0=s0).grad_c)
    disk = pebbles.lower([pebbles.place(1), pebbles.store(1), pebbles.remove(1),
                          pebbles.load(1), pebbles.paint(1), pebbles.remove(1),
                          pebbles.paint(0)], 2, frees=True)
    with pytest.raises(PebblesValueError, match="^the GPU executors run schedules held in .* disk"):
        gpu._program(disk, None, None)


def test_pml_executor_lists_a_long_program_in_chunks():
    """The host walk listed a whole program at once (ops.tolist(): memory in proportion to
    the program); now it lists 4096 rows at a time, as the CPU executor does, and runs
    the same calls."""
    class Rows(np.ndarray):
        listed: list[int] = []

        def tolist(self):
            Rows.listed.append(len(self))
            return super().tolist()

    prog = pebbles.lower(pebbles.schedule("store-all", 5000))
    calls = []
    dev = object.__new__(gpu._PMLDevice)  # the walk alone: no device, no kernels
    dev.step = lambda src, dst, i: calls.append(("step", src, dst, i))
    dev.seed = lambda slot: calls.append(("seed", slot))
    dev.paint = lambda slot, i: calls.append(("paint", slot, i))
    dev.run(dataclasses.replace(prog, ops=prog.ops.view(Rows)))
    assert len(prog.ops) > 4096 and max(Rows.listed) == 4096
    assert sum(Rows.listed) == len(prog.ops)
    assert sum(c[0] == "step" for c in calls) == prog.forward_steps
    assert [c[2] for c in calls if c[0] == "paint"] == list(range(4999, -1, -1))


def test_cpu_and_gpu_kernels_compile_one_source():
    """The Lorenz formulas exist once: njit and cuda.jit compile the same code objects."""
    from solvers import _cuda_lorenz, _lorenz_scalar

    for name in ("step3", "stages", "jvp_col", "vjp3"):
        code = getattr(_lorenz_scalar, name).__code__
        assert getattr(lorenz, "_" + name).py_func.__code__ is code, name
        assert getattr(_cuda_lorenz, "_" + name).py_func.__code__ is code, name
    plain = _lorenz_scalar.compile_formulas(lambda fn: fn)  # the formulas as plain Python
    y = (1.5, -0.5, 20.0, 10.0, 28.0, 8 / 3, 3e-3)
    assert np.array_equal(plain.step3(*y), lorenz.rk4_step(np.array(y[:3]),
                                                           np.array(y[3:6]), y[6]))


@pytest.mark.parametrize("moves, index", [
    ([(0, 2, 0)], 0),                                   # place 2 without s_1
    ([(0, 1, 0), (0, 1, 0)], 1),                        # cell 1 placed twice
    ([(1, 1, 0)], 0),                                   # remove an empty cell
    ([(0, 1, 0), (2, 0, 0)], 1),                        # paint 0 before paint 1
    ([(3, 1, 0)], 0),                                   # move from cell 0
])
def test_executors_reject_illegal_moves_before_running(moves, index):
    enc = np.array(moves, dtype=np.int64)
    with pytest.raises(IllegalMoveError) as err:
        gpu.lorenz_gradient(enc, 2)
    assert err.value.index == index


def test_executors_reject_bad_input():
    with pytest.raises(IllegalMoveError, match="unpainted"):
        gpu.lorenz_gradient(pebbles.encode(pebbles.treeverse(4, 2))[:-1], 4)
    with pytest.raises(IllegalMoveError, match="slots=3"):
        gpu.lorenz_gradient(pebbles.treeverse(10, 3), 10, slots=3)
    with pytest.raises(PebblesValueError, match="slots=1"):
        gpu.lorenz_gradient(pebbles.treeverse(10, 3), 10, slots=1)
    with pytest.raises(PebblesTypeError, match="shape"):
        gpu.lorenz_gradient(np.zeros((3, 2), dtype=np.int64), 3)
    with pytest.raises(PebblesValueError, match="n=11"):
        gpu.lorenz_gradient(pebbles.lower(pebbles.treeverse(10, 3), 10), 11)
    disk = [pebbles.place(1), pebbles.store(1), pebbles.remove(1), pebbles.load(1),
            pebbles.paint(1), pebbles.remove(1), pebbles.paint(0)]
    with pytest.raises(PebblesValueError, match="on disk"):
        gpu.lorenz_gradient(disk, 2)


# ---------------------------------------------------------------------------
# Lorenz, batched (one thread per parameter set)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lorenz_batch():
    rng = np.random.default_rng(3)
    b = 5
    x0 = rng.standard_normal((b, 3))
    theta = np.column_stack([rng.uniform(5, 15, b), rng.uniform(10, 30, b),
                             rng.uniform(1, 3, b)])
    return x0, theta


@pytest.mark.parametrize("method, options", [
    ("treeverse", {"budget": 4}), ("treeverse", {"budget": 3, "inplace": True}),
    ("bennett-gradient", {"k": 3}), ("store-all", {})],
    ids=["treeverse", "treeverse-inplace", "bennett", "store-all"])
def test_lorenz_reverse_batch_matches_cpu(lorenz_batch, method, options):
    x0, theta = lorenz_batch
    enc = pebbles.schedule(method, 50, **options).encode()
    r = gpu.lorenz_gradient(enc, 50, x0, theta, 3e-3)
    assert r.gradient.shape == (5, 6) and r.loss.shape == (5,)
    for b in range(5):
        ref = lorenz.replay_lorenz(enc, 50, x0[b], theta[b], 3e-3)
        same(r.gradient[b], ref.gradient)
        same(r.loss[b], ref.loss)
        assert (r.forward_steps, r.backward_steps, r.peak_states) == (
            ref.forward_steps, ref.backward_steps, ref.peak_states)
    fwd = lorenz.gradient_forward(x0[1], theta[1], 3e-3, 50).gradient
    np.testing.assert_allclose(r.gradient[1], fwd, rtol=1e-9, atol=1e-12)


def test_lorenz_reverse_broadcasts_and_validates(lorenz_batch):
    _, theta = lorenz_batch
    r = gpu.lorenz_gradient(pebbles.treeverse(10, 2), 10, (1.0, 0.0, 0.0), theta[:2])
    for b in range(2):
        same(r.gradient[b], lorenz.replay_lorenz(
            pebbles.encode(pebbles.treeverse(10, 2)), 10, (1.0, 0.0, 0.0), theta[b]).gradient)
    with pytest.raises(PebblesValueError, match="shape"):
        gpu.lorenz_gradient(pebbles.treeverse(10, 2), 10, np.zeros((2, 4)), theta[:2])
    with pytest.raises(PebblesValueError, match="batch"):
        gpu.lorenz_gradient(pebbles.treeverse(10, 2), 10, np.zeros((3, 3)), theta[:2])
    with pytest.raises(IllegalMoveError):
        gpu.lorenz_gradient(pebbles.treeverse(10, 2), 11)


def test_lorenz_forward_batch_matches_cpu(lorenz_batch):
    x0, theta = lorenz_batch
    state, tangent = gpu.lorenz_forward(x0, theta, 3e-3, 40)
    assert state.shape == (5, 3) and tangent.shape == (5, 3, 6)
    for b in range(5):
        ref = lorenz.gradient_forward(x0[b], theta[b], 3e-3, 40)
        same(tangent[b, 0], ref.gradient)
        same(state[b], lorenz.primal(x0[b], theta[b], 3e-3, 40))
    with pytest.raises(PebblesValueError, match="n=-1"):
        gpu.lorenz_forward(n=-1)


def test_sensitivity_map_matches_cpu():
    sig, rho = np.array([2.0, 10.0, 18.0]), np.array([5.0, 15.0, 27.0, 45.0])
    m = gpu.sensitivity_map(sig, rho, 8 / 3, n=30)
    assert m.shape == (3, 4) and np.all(m > 0)
    same(m, lorenz.sensitivity_map(sig, rho, 8 / 3, n=30))


# ---------------------------------------------------------------------------
# PML
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pml_small():
    """A 5 x 4 interior (non-square: catches swapped axes), 6 steps, 3 detectors."""
    cfg = pml.PMLConfig(nx=5, ny=4, steps=6, h=0.3, width=2.0, delay=3.0, n_detectors=3,
                        npml=1)
    rng = np.random.default_rng(5)
    c = pml.uniform_model(cfg) * (1 + 0.2 * rng.random(cfg.shape))
    s0 = rng.standard_normal((4, *cfg.shape))
    s0[2:] *= 1e6
    return cfg, c, s0, pml.record(cfg), rng


def _device_step(cfg, sol, s, inplace):
    """One forward step through the GPU kernels (the executor's step), on NumPy arrays."""
    dev = gpu._PMLDevice(np, sol, s, np.zeros((cfg.steps + 1, cfg.n_detectors)), 2)
    dev.step(0, 0 if inplace else 1, 3)
    return dev.slots_xp[0 if inplace else 1]


# scale 1e-145: every value the kernels write lies below the flush threshold (PMLConfig.flush,
# 1e-140), so the CPU kernels write zeros and the GPU twins must flush the same way.
SCALES = [1.0, 1e-145]


@pytest.mark.skipif(not SIM, reason="NumPy arrays on the kernels need the CUDA simulator")
@pytest.mark.parametrize("scale", SCALES)
def test_pml_step_kernels_match_cpu(pml_small, scale):
    cfg, c, _, _, rng = pml_small
    sol = pml.PMLSolver(cfg, c)
    s = scale * rng.standard_normal((4, *cfg.shape))
    ref = sol.step(3, s)
    assert np.array_equal(_device_step(cfg, sol, s, False), ref)
    assert np.array_equal(_device_step(cfg, sol, s, True), ref)


@pytest.mark.skipif(not SIM, reason="NumPy arrays on the kernels need the CUDA simulator")
@pytest.mark.parametrize("scale", SCALES)
def test_pml_adjoint_kernels_match_cpu(pml_small, scale):
    cfg, c, _, _, rng = pml_small
    sol = pml.PMLSolver(cfg, c)
    s, g = scale * rng.standard_normal((2, 4, *cfg.shape))
    out, gc = np.empty_like(s), rng.standard_normal(cfg.shape)
    gc_ref = gc.copy()
    kern.adjoint_kernel(s, g, sol.c, sol.sig, sol.tau, sol.k, sol.mrow, sol.mcol, out, gc_ref)
    dev = gpu._PMLDevice(np, sol, s, np.zeros((cfg.steps + 1, cfg.n_detectors)), 2)
    v, u, o2 = np.empty(cfg.shape), np.empty(cfg.shape), np.empty_like(s)
    args = (s, g, sol.c, sol.sig, sol.tau, sol.k)
    dev.vu(*args, sol.mrow, sol.mcol, v, u)
    dev.adj(*args, v, u, o2, gc)
    assert np.array_equal(o2, out)
    assert np.array_equal(gc, gc_ref)


@pytest.mark.parametrize("method", ["treeverse", "treeverse-inplace", "bennett"])
def test_pml_gradient_matches_cpu(pml_small, method):
    cfg, c, s0, observed, _ = pml_small
    inplace = method == "treeverse-inplace"
    name = "bennett-gradient" if method == "bennett" else "treeverse"
    opts = {"k": 2} if method == "bennett" else {"budget": 3, "inplace": inplace}
    moves = list(pebbles.schedule(name, cfg.steps, **opts))
    ref = pml.gradient(cfg, c, moves, observed, s0=s0, inplace=inplace)
    g = gpu.pml_gradient(cfg, c, pebbles.encode(moves), observed, s0=s0)
    g2 = gpu.pml_gradient(cfg, c, pebbles.lower(moves, cfg.steps), observed, s0=s0)
    assert np.array_equal(g2.grad_c, g.grad_c)
    assert np.abs(ref.grad_c).max() > 0 and np.abs(ref.grad_source).max() > 0
    same(g.grad_c, ref.grad_c)
    same(g.grad_source, ref.grad_source)
    same(g.grad_s0, ref.grad_s0)
    assert g.loss == pytest.approx(ref.loss, rel=1e-10)
    if SIM:
        assert g.loss == ref.loss
    assert (g.forward_steps, g.backward_steps) == (ref.forward_steps, ref.backward_steps)
    assert g.peak_states <= ref.peak_states
    assert isinstance(g.grad_c, np.ndarray)


def test_pml_gradient_validates(pml_small):
    cfg, c, s0, observed, _ = pml_small
    moves = pebbles.encode(pebbles.treeverse(cfg.steps, 3))
    with pytest.raises(PebblesValueError, match="observed has shape"):
        gpu.pml_gradient(cfg, c, moves, observed[1:])
    with pytest.raises(PebblesValueError, match="^observed=None"):
        gpu.pml_gradient(cfg, c, moves, None)
    with pytest.raises(PebblesValueError, match="s0 has shape"):
        gpu.pml_gradient(cfg, c, moves, observed, s0=s0[:3])
    with pytest.raises(PebblesTypeError, match="s0="):  # the CPU solver's check: complex
        gpu.pml_gradient(cfg, c, moves, observed, s0=s0 + 1j)  # refused, not cast (dropping i)
    with pytest.raises(IllegalMoveError, match="slots=2"):
        gpu.pml_gradient(cfg, c, moves, observed, slots=2)


# ---------------------------------------------------------------------------
# real GPU only: CuPy owns the memory
# ---------------------------------------------------------------------------
@needs_gpu
def test_gpu_pml_cupy_matches_cpu():
    import cupy

    cfg = pml.PMLConfig(nx=40, ny=36, steps=60, h=0.11, width=6.0, delay=25.0,
                        n_detectors=20)
    c = pml.uniform_model(cfg)
    observed = pml.record(cfg)
    moves = list(pebbles.treeverse(cfg.steps, 5))
    ref = pml.gradient(cfg, c, moves, observed)
    g = gpu.pml_gradient(cfg, cupy.asarray(c), moves, observed, xp=cupy)
    for name in ("grad_c", "grad_source", "grad_s0"):
        a, b = getattr(g, name), getattr(ref, name)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.abs(b).max())
    assert g.loss == pytest.approx(ref.loss, rel=1e-10)


@needs_gpu
def test_gpu_lorenz_cupy_matches_cpu():
    import cupy

    rng = np.random.default_rng(0)
    theta = np.column_stack([rng.uniform(5, 15, 300), rng.uniform(10, 30, 300),
                             np.full(300, 8 / 3)])
    enc = pebbles.encode(pebbles.treeverse(200, 6))
    r = gpu.lorenz_gradient(enc, 200, (1.0, 0.0, 0.0), cupy.asarray(theta), xp=cupy)
    for b in (0, 137, 299):
        ref = lorenz.replay_lorenz(enc, 200, (1.0, 0.0, 0.0), theta[b])
        np.testing.assert_allclose(r.gradient[b], ref.gradient, rtol=1e-8,
                                   atol=1e-10 * np.abs(ref.gradient).max())
    m = gpu.sensitivity_map(np.linspace(1, 20, 16), np.linspace(1, 50, 16), n=300, xp=cupy)
    ref = lorenz.sensitivity_map(np.linspace(1, 20, 16), np.linspace(1, 50, 16), n=300)
    np.testing.assert_allclose(m, ref, rtol=1e-8)


# ---------------------------------------------------------------------------
# benchmark script
# ---------------------------------------------------------------------------
def _bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return bench_gpu


@pytest.mark.skipif(not SIM, reason="smoke test of the simulator path")
def test_bench_gpu_smoke(tmp_path, capsys):
    bench = _bench()
    assert bench.main(["--size", "4", "--steps", "6"]) == 2
    assert "--allow-simulator" in capsys.readouterr().err
    out = tmp_path / "gpu.json"
    assert bench.main(["--allow-simulator", "--size", "3", "--steps", "4", "--treeverse", "2",
                       "--bennett", "2", "--lorenz-grid", "2", "--lorenz-steps", "12",
                       "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    recs = data["fig5"]["records"]
    assert [r["schedule"] for r in recs] == ["treeverse S=2", "bennett k=2"]
    keys = {"schedule", "n", "size", "predicted_forward_steps", "predicted_peak_states",
            "forward_steps", "backward_steps", "peak_states", "seconds", "model_seconds",
            "peak_mb", "peak_states_mb"}
    assert all(keys <= set(r) for r in recs)
    assert recs[0]["forward_steps"] == recs[0]["predicted_forward_steps"] + 1
    f = data["fig5"]
    for r in recs:  # the model counts the steps each replay ran (Bennett's include s_n's)
        model = r["forward_steps"] * f["t_forward_ms"] + r["n"] * f["t_backward_ms"]
        assert r["model_seconds"] == pytest.approx(model / 1e3, rel=1e-12)
    assert data["machine"]["gpu"].startswith("simulator")
    lz = data["lorenz"]
    assert lz["grid"] == 2 and lz["finite_points"] == 4 and lz["max_rel_diff_map"] < 1e-10


def test_bench_gpu_without_a_gpu_names_the_install_and_the_simulator_smoke_run(
        capsys, monkeypatch):
    bench = _bench()
    monkeypatch.setattr(bench.gpu, "simulator_mode", lambda: False)
    monkeypatch.setattr(bench.gpu, "gpu_available", lambda: False)
    assert bench.main(["--size", "4", "--steps", "6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bench_gpu.py: refusing to run: no CUDA GPU")
    assert "pip install '.[gpu]'" in err
    assert ("NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_gpu.py --allow-simulator --size 4 "
            "--steps 6 --treeverse 2 --bennett 2" in err)
    assert "NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_gpu.py --allow-simulator --size 4 " \
        "--steps 6 \\\n    --treeverse 2 --bennett 2" in (ROOT / "docs" / "gpu.md").read_text()


class DeviceArray:
    """Stands in for a CuPy array given as input: it refuses ``np.asarray`` as CuPy
    does ("Implicit conversion to a NumPy array is not allowed") and copies with ``get``."""

    __cuda_array_interface__: dict = {}  # only its presence is read

    def __init__(self, a):
        self.a = np.array(a, dtype=np.float64)
        self.shape = self.a.shape

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed")

    def get(self):
        return self.a.copy()


def test_executors_read_device_arrays_given_as_input(lorenz_batch, pml_small):
    dev = DeviceArray
    with pytest.raises(TypeError, match="Implicit"):
        np.asarray(dev([1.0]))
    x0, theta = lorenz_batch
    enc = pebbles.encode(pebbles.treeverse(12, 3))
    ref = gpu.lorenz_gradient(enc, 12, x0, theta)
    got = gpu.lorenz_gradient(enc, 12, dev(x0), dev(theta))
    assert np.array_equal(got.gradient, ref.gradient) and np.array_equal(got.loss, ref.loss)
    for a, b in zip(gpu.lorenz_forward(dev(x0), dev(theta), n=9),
                    gpu.lorenz_forward(x0, theta, n=9), strict=True):
        assert np.array_equal(a, b)
    sig, rho = np.array([2.0, 10.0]), np.array([5.0, 27.0])
    assert np.array_equal(gpu.sensitivity_map(dev(sig), dev(rho), x0=dev(x0[0]), n=8),
                          gpu.sensitivity_map(sig, rho, x0=x0[0], n=8))
    cfg, c, s0, observed, _ = pml_small
    src = pml.ricker(cfg) * 1.5
    moves = pebbles.encode(pebbles.treeverse(cfg.steps, 3))
    ref = gpu.pml_gradient(cfg, c, moves, observed, s0=s0, source=src)
    got = gpu.pml_gradient(cfg, dev(c), moves, dev(observed), s0=dev(s0), source=dev(src))
    for name in ("grad_c", "grad_source", "grad_s0"):
        assert np.array_equal(getattr(got, name), getattr(ref, name))
    assert np.array_equal(gpu.pml_record(cfg, dev(c), dev(src)), gpu.pml_record(cfg, c, src))


def test_pml_record_matches_cpu(pml_small):
    cfg = pml_small[0]
    rec = gpu.pml_record(cfg)
    assert rec.shape == (cfg.steps + 1, cfg.n_detectors) and np.abs(rec).max() > 0
    same(rec, pml.record(cfg))


S8 = pebbles.schedule("treeverse", 8, budget=3)


@pytest.mark.parametrize("call, error, match", [
    (lambda: gpu.lorenz_gradient(S8, None, (1.0, 0.0, np.nan), xp=np), PebblesValueError,
     r"^x0=.* has a non-finite entry \(x0\[2\]=nan\)"),
    (lambda: gpu.lorenz_gradient(S8, None, theta=[[10, 27, np.inf]], xp=np), PebblesValueError,
     r"^theta=.* non-finite entry \(theta\[0, 2\]=inf\)"),
    (lambda: gpu.lorenz_gradient(S8, None, theta=[10, 27, "a"], xp=np), PebblesTypeError,
     r"^theta=\[10, 27, 'a'\] must hold real numbers"),
    (lambda: gpu.lorenz_gradient(S8, None, dt=np.nan, xp=np), PebblesValueError,
     r"^dt=nan is not finite"),
    (lambda: gpu.lorenz_gradient(S8, None, dt="0.003", xp=np), PebblesTypeError,
     r"^dt='0\.003' must be a real number"),
    (lambda: gpu.lorenz_gradient(S8, 9, xp=np), PebblesValueError, r"n=9"),
    (lambda: gpu.lorenz_forward(n=3.0, xp=np), PebblesTypeError, r"^n=3\.0 must be an integer"),
    (lambda: gpu.lorenz_forward(n=True, xp=np), PebblesTypeError, r"^n=True must be an integer"),
    (lambda: gpu.lorenz_forward(dt=np.nan, n=3, xp=np), PebblesValueError, r"^dt=nan"),
    (lambda: gpu.lorenz_forward(np.zeros((2, 4)), n=3, xp=np), PebblesValueError,
     r"^x0=.* must have shape \(3,\) or \(B, 3\)"),
    (lambda: gpu.sensitivity_map([np.nan], [27.0], n=3, xp=np), PebblesValueError,
     r"^sigmas=\[nan\] has a non-finite entry"),
    (lambda: gpu.sensitivity_map([10.0], [27.0], beta="x", n=3, xp=np), PebblesTypeError,
     r"^beta='x' must be a real number"),
    (lambda: gpu.sensitivity_map([10.0], [27.0], x0=(1.0, 0.0), n=3, xp=np),
     PebblesValueError, r"^x0=\(1\.0, 0\.0\) must have 3 components"),
    (lambda: gpu.sensitivity_map([10.0], [27.0], n=-1, xp=np), PebblesValueError, r"^n=-1"),
])
def test_lorenz_executors_check_input_as_the_cpu_before_the_device(monkeypatch, call, error,
                                                                   match):
    """The CPU twins' checks, before any device use: with no GPU and the simulator off
    (where the first device use raises the no-GPU error), bad input names itself."""
    monkeypatch.setattr(gpu, "simulator_mode", lambda: False)
    with pytest.raises(error, match=match):
        call()
    with pytest.raises(PebblesValueError, match="NUMBA_ENABLE_CUDASIM"):  # good input
        gpu.lorenz_forward(n=3, xp=np)


def test_lorenz_executors_refuse_what_the_cpu_refuses():
    """Under the simulator too: NaN and strings are refused, not run (NaN results) nor
    failing bare."""
    with pytest.raises(PebblesValueError, match="sigmas"):
        lorenz.sensitivity_map([np.nan], [27.0], n=3)
    with pytest.raises(PebblesValueError, match="sigmas"):
        gpu.sensitivity_map([np.nan], [27.0], n=3)
    with pytest.raises(PebblesValueError, match="theta"):
        gpu.lorenz_gradient(S8, None, theta=[10.0, np.nan, 8 / 3])
