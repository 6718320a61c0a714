"""GPU executors for the paper's experiments (Liu & Xu, sections 4.1 and 4.2; notes 5, 6).

CuPy owns the device memory (states, the ``S + 2`` preallocated checkpoint
slots, parameters, gradients and the lowered schedule); the kernels are
``numba.cuda`` kernels, compiled from the same formulas as the CPU kernels of
:mod:`solvers.pml` and :mod:`solvers.lorenz`, that read CuPy arrays through
``__cuda_array_interface__``. Without a GPU the same code runs on NumPy arrays
under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which is how CI tests
the kernels' arithmetic.

Every executor runs the slot program of :func:`pebbles.lower` (the schedule
checked once with the simulator's rules, each state assigned to a slot). The
slot assignment does not depend on the data, so it is computed once on the
host.

* :func:`pml_gradient` -- the PML gradient (``dL/dc``, ``dL/df``, ``dL/ds_0``)
  through any checkpoint-game schedule; the host walks the program and
  launches one set of kernels per step.
* :func:`pml_record` -- the recording in the true model (the forward run).
* :func:`lorenz_gradient` -- batched reverse mode: one thread per parameter
  set, each replaying the program from device memory with its own slots.
* :func:`lorenz_forward`, :func:`sensitivity_map` -- batched forward mode
  (paper Figure 3).

``cupy`` is optional (``pip install "pebble-games[gpu]"``); importing this module
needs neither cupy nor a GPU. Every executor checks its input as its CPU twin does
before it touches the device (bad input raises the same errors with or without a GPU).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

import pebbles
from pebbles import Move, PebblesTypeError, PebblesValueError
from solvers import lorenz as _lz
from solvers import pml as _pml
from solvers._checks import triples

__all__ = [
    "LorenzBatch",
    "array_module",
    "gpu_available",
    "lorenz_forward",
    "lorenz_gradient",
    "pml_gradient",
    "pml_record",
    "sensitivity_map",
    "simulator_mode",
]

# ---------------------------------------------------------------------------
# array module
# ---------------------------------------------------------------------------
def simulator_mode() -> bool:
    """True when Numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def _cupy() -> ModuleType | None:
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def gpu_available() -> bool:
    """True when cupy is installed, a CUDA device is present and the simulator is off."""
    cp = _cupy()
    if cp is None or simulator_mode():
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # cupy raises CUDARuntimeError without a driver
        return False


def array_module(xp: ModuleType | None = None) -> ModuleType:
    """The array module of the executors: ``xp`` if given, else cupy on a GPU, else numpy.

    numpy is only useful under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``);
    on a real GPU without cupy, Numba would copy NumPy arrays to the device
    and back at every kernel launch (correct, but slow).
    """
    if xp is not None:
        if getattr(xp, "__name__", None) not in ("numpy", "cupy"):
            raise PebblesTypeError(f"xp={xp!r} must be the numpy or the cupy module (or None)")
        return xp
    return _cupy() if gpu_available() else np


def _host(a: Any) -> Any:
    """``a`` copied to the host if it is a device array (CuPy's ``get``, Numba's
    ``copy_to_host``); anything else as it is. CuPy refuses ``np.asarray`` on its arrays."""
    if hasattr(a, "__cuda_array_interface__"):
        for name in ("get", "copy_to_host"):
            copy = getattr(a, name, None)
            if callable(copy):
                return copy()
    return a


def _to_host(a: Any) -> np.ndarray:
    return np.asarray(_host(a))


def _cuda() -> ModuleType:
    from numba import cuda

    return cuda


# ---------------------------------------------------------------------------
# schedule lowering
# ---------------------------------------------------------------------------
def _program(schedule: Any, n: int | None, slots: int | None) -> pebbles.SlotProgram:
    """The checked slot program of a memory-only schedule (:func:`pebbles.lower`), as
    :func:`solvers.lorenz.replay_lorenz` takes it (``slots`` below a SlotProgram's
    ``nslots`` refused).

    ``OP_FREE`` rows (``frees=True``) are dropped and ``OP_TAPE`` rows run as
    ``OP_STEP``; disk operations are refused (:meth:`pebbles.SlotProgram.in_memory`).
    """
    return _lz._program(schedule, n, slots, "the GPU executor", "the GPU executors run")


# ---------------------------------------------------------------------------
# launching
# ---------------------------------------------------------------------------
def _sync(xp: ModuleType) -> None:
    """Wait for every kernel (Numba's and CuPy's) on the device; nothing under the simulator."""
    if xp.__name__ == "cupy":
        xp.cuda.Device().synchronize()


def _device_view(xp: ModuleType) -> Any:
    """How to hand ``xp`` arrays to the kernels without copies (memory shared).

    cupy: Numba device arrays over the same memory (through
    ``__cuda_array_interface__``, made once: cheaper launches). numpy: the
    simulator's fake device arrays over the same memory (a bare NumPy argument
    would be copied in and out per launch, which breaks aliased arguments).
    """
    if xp.__name__ == "cupy":
        return _cuda().as_cuda_array
    if not simulator_mode():
        raise PebblesValueError(
            'the GPU executors run on cupy arrays and a CUDA GPU: install cupy (pip install '
            '"pebble-games[gpu]") on a machine with one; xp=numpy (the default without cupy '
            "or a GPU) runs only under Numba's CUDA simulator (set NUMBA_ENABLE_CUDASIM=1 "
            "before numba is imported)")
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    return FakeCUDAArray


def _blocks(count: int, threads: int) -> int:
    return max(1, (count + threads - 1) // threads)


def _launch2(xp: ModuleType, nxx: int, nyy: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid, block) of a 2D launch, x along the contiguous axis.

    On a GPU one thread a cell, blocks of 32 x 8; under the simulator (every
    thread a Python thread) one block of 2 x 2 threads looping over the cells.
    """
    if xp.__name__ != "cupy":
        return (1, 1), (2, 2)
    block = (32, 8)
    return (_blocks(nyy, block[0]), _blocks(nxx, block[1])), block


def _threads(xp: ModuleType, count: int) -> tuple[int, int]:
    """(blocks, threads) of a 1D launch: 128 a block on a GPU, one block in the simulator."""
    threads = 128 if xp.__name__ == "cupy" else max(1, min(count, 64))
    return _blocks(count, threads), threads


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Numba's low-occupancy warnings (the one-thread kernels are meant so)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Grid size.*")
        warnings.filterwarnings("ignore", message=".*under-utilization.*")
        yield


# ---------------------------------------------------------------------------
# PML
# ---------------------------------------------------------------------------
class _PMLDevice:
    """Device arrays and configured kernels of one PML gradient (slots preallocated)."""

    def __init__(self, xp: ModuleType, sol: _pml.PMLSolver, s0: np.ndarray,
                 observed: np.ndarray, nslots: int) -> None:
        from solvers import _cuda_pml as kp

        cfg, dv = sol.cfg, _device_view(xp)
        nxx, nyy = cfg.shape
        self.xp, self.n = xp, cfg.steps
        put = lambda a: dv(xp.asarray(np.ascontiguousarray(a)))  # noqa: E731
        self.c, self.sig, self.tau, self.k = put(sol.c), put(sol.sig), put(sol.tau), put(sol.k)
        self.mrow, self.mcol = put(sol.mrow), put(sol.mcol)
        self.isrc, self.jsrc = sol.isrc, sol.jsrc
        self.fsrc = [float(f) * cfg.dt ** 2 for f in sol.source]
        self.dt2 = cfg.dt ** 2
        self.slots_xp = xp.empty((nslots, 4, nxx, nyy))
        self.slots_xp[0] = xp.asarray(s0)
        self.slots = [dv(self.slots_xp[i]) for i in range(nslots)]
        self.gbuf_xp = [xp.zeros((4, nxx, nyy)), xp.zeros((4, nxx, nyy))]
        self.gbuf = [dv(g) for g in self.gbuf_xp]
        self.turn = 0
        self.v, self.u = dv(xp.empty((nxx, nyy))), dv(xp.empty((nxx, nyy)))
        self.gc_xp, self.gsrc_xp = xp.zeros((nxx, nyy)), xp.zeros(cfg.steps)
        self.gc, self.gsrc = dv(self.gc_xp), dv(self.gsrc_xp)
        self.obs = put(observed)
        self.res_xp = xp.zeros((cfg.steps + 1, cfg.n_detectors))
        self.res = dv(self.res_xp)
        self.det_i, self.det_j = put(sol.det_i), put(sol.det_j)
        self._detector_cells(sol, put)
        grid, block = _launch2(xp, nxx, nyy)
        self.unew, self.aux = kp.unew_kernel[grid, block], kp.aux_kernel[grid, block]
        self.swap, self.vu = kp.swap_source_kernel[grid, block], kp.vu_kernel[grid, block]
        self.adj = kp.adjoint_out_kernel[grid, block]
        self.src, self.gsrc_k = kp.add_source_kernel[1, 1], kp.source_grad_kernel[1, 1]
        self.resid = kp.residual_kernel[_threads(xp, cfg.n_detectors)]
        self.mgrad = kp.misfit_grad_kernel[_threads(xp, self.ncells)]

    def _detector_cells(self, sol: _pml.PMLSolver, put: Any) -> None:
        """Distinct detector cells and, per cell, its detectors in order (CSR)."""
        cells = {}
        for d, (i, j) in enumerate(zip(sol.det_i.tolist(), sol.det_j.tolist(), strict=True)):
            cells.setdefault((i, j), []).append(d)
        keys = list(cells)
        self.ncells = len(keys)
        self.cell_i = put(np.array([k[0] for k in keys], dtype=np.int64))
        self.cell_j = put(np.array([k[1] for k in keys], dtype=np.int64))
        self.start = put(np.cumsum([0] + [len(cells[k]) for k in keys]).astype(np.int64))
        self.members = put(np.array([d for k in keys for d in cells[k]], dtype=np.int64))

    def step(self, src: int, dst: int, i: int) -> None:
        s, out = self.slots[src], self.slots[dst]
        if src == dst:
            self.unew(s, self.c, self.sig, self.tau, self.k, s[0], s[0], False)
            self.aux(s[2], s[3], s[0], self.c, self.sig, self.tau, self.k, s[2], s[3])
            self.swap(s, self.isrc, self.jsrc, self.fsrc[i])
        else:
            self.unew(s, self.c, self.sig, self.tau, self.k, out[1], out[0], True)
            self.aux(s[2], s[3], out[1], self.c, self.sig, self.tau, self.k, out[2], out[3])
            self.src(out[1], self.isrc, self.jsrc, self.fsrc[i])

    def misfit(self, slot: int, i: int, g: Any) -> None:
        """``res[i]`` from the state in ``slot``; ``g[1] += 2 res[i]`` at the detectors."""
        self.resid(self.slots[slot], self.obs, self.det_i, self.det_j, i, self.res)
        self.mgrad(g, self.res, i, self.cell_i, self.cell_j, self.start, self.members)

    def seed(self, slot: int) -> None:
        self.gbuf_xp[self.turn].fill(0.0)
        self.misfit(slot, self.n, self.gbuf[self.turn])

    def paint(self, slot: int, i: int) -> None:
        s, g, out = self.slots[slot], self.gbuf[self.turn], self.gbuf[1 - self.turn]
        self.gsrc_k(self.gsrc, i, self.dt2, g, self.isrc, self.jsrc)
        self.vu(s, g, self.c, self.sig, self.tau, self.k, self.mrow, self.mcol, self.v, self.u)
        self.adj(s, g, self.c, self.sig, self.tau, self.k, self.v, self.u, out, self.gc)
        if i >= 1:
            self.misfit(slot, i, out)
        self.turn = 1 - self.turn

    def run(self, prog: pebbles.SlotProgram) -> None:
        for op, src, dst, first, count in prog.rows():
            if op == pebbles.OP_STEP:
                if src != dst:
                    self.step(src, dst, first)
                    first, count = first + 1, count - 1
                for i in range(first, first + count):
                    self.step(dst, dst, i)
            elif op == pebbles.OP_SEED:
                self.seed(src)
            else:
                self.paint(src, first)

    def loss(self) -> float:
        """``l_n + l_{n-1} + ... + l_1`` in the CPU executor's order."""
        res = _to_host(self.res_xp)
        total = None
        for i in range(self.n, 0, -1):
            value = float(res[i] @ res[i])
            total = value if total is None else total + value
        return float(total)


def pml_gradient(cfg: _pml.PMLConfig, c: np.ndarray,
                 schedule: pebbles.Schedule | pebbles.SlotProgram | Iterable[Move] | np.ndarray,
                 observed: np.ndarray, *, s0: np.ndarray | None = None,
                 source: np.ndarray | None = None, slots: int | None = None,
                 xp: ModuleType | None = None) -> _pml.PMLGradient:
    """GPU twin of :func:`solvers.pml.gradient`: the same loss and gradients, on the device.

    Parameters
    ----------
    cfg, c, observed, s0, source
        As for :func:`solvers.pml.gradient`; the arrays may be NumPy or CuPy
        arrays (the setup reads them on the host, then copies them to the device).
    schedule : Schedule, SlotProgram, iterable of Move, or int64 (m, 3) array
        Any checkpoint-game or in-place-game schedule for ``cfg.steps`` steps,
        checked and lowered by :func:`pebbles.lower` before anything runs.
    slots : int, optional
        Checkpoint slots, ``s_0`` included (default: as many as the schedule
        needs, peak stored states + 2); allocated once, before the replay. A
        SlotProgram runs on its own slots: ``slots`` below its ``nslots`` is refused.
    xp : module, optional
        ``cupy`` (GPU) or ``numpy`` (CUDA simulator); default
        :func:`array_module`.

    Returns
    -------
    solvers.pml.PMLGradient
        Host (NumPy) arrays; its ``replay`` (a :class:`pebbles.ReplayResult`)
        holds the loss, ``dL/ds_0`` and the counts. ``peak_states`` counts
        slots in use besides ``s_0`` (a walk steps in place, so it holds one
        working state). ``seconds`` is the replay's wall-clock time, device
        synchronised, without allocation and the final copies to the host; the
        first call in a process also compiles the kernels it launches (Numba's
        JIT) within it, so time a later call.
    """
    xp = array_module(xp)
    c, source, observed, s0 = (_host(a) for a in (c, source, observed, s0))
    obs = _pml._check_observed(cfg, observed)
    sol = _pml.PMLSolver(cfg, c, source, obs)
    s0 = _pml._initial_state(sol, s0)  # the CPU solver's check: shape, real numbers
    prog = _program(schedule, cfg.steps, slots)
    dev = _PMLDevice(xp, sol, s0, obs, prog.nslots)
    with _quiet():
        _sync(xp)
        t0 = time.perf_counter()
        dev.run(prog)
        _sync(xp)
        seconds = time.perf_counter() - t0
    return _pml.PMLGradient(_replay_result(prog, dev.loss(), _to_host(dev.gbuf_xp[dev.turn]),
                                           seconds),
                            _to_host(dev.gc_xp), _to_host(dev.gsrc_xp))


def _replay_result(prog: pebbles.SlotProgram, loss: float, grad_s0: np.ndarray,
                   seconds: float) -> pebbles.ReplayResult:
    """What the device replay did, in the generic executor's terms.

    The slots are allocated once (``nslots - 1`` buffers besides ``s_0``); a
    step writes out of place only when an ``OP_STEP`` moves to another slot.
    """
    ops = prog.ops
    step = ops[ops[:, 0] == pebbles.OP_STEP]
    extra = int(ops[ops[:, 0] == pebbles.OP_SEED, 4].sum())
    inplace = int(step[:, 4].sum() - (step[:, 1] != step[:, 2]).sum())
    return pebbles.ReplayResult(loss, grad_s0, None, prog.forward_steps, extra,
                                prog.backward_steps, prog.peak_states, seconds,
                                peak_buffers=prog.nslots - 1, allocations=prog.nslots - 1,
                                inplace_steps=inplace)


def pml_record(cfg: _pml.PMLConfig, c_true: np.ndarray | None = None,
               source: np.ndarray | None = None, *,
               xp: ModuleType | None = None) -> np.ndarray:
    """GPU twin of :func:`solvers.pml.record`: ``u^(k)`` at the detectors, ``k = 0..n``.

    Runs the in-place step kernel n times on one device state (from rest).
    """
    xp = array_module(xp)
    c = _pml.true_model(cfg) if c_true is None else _host(c_true)
    sol = _pml.PMLSolver(cfg, c, _host(source))
    zeros = np.zeros((cfg.steps + 1, cfg.n_detectors))
    dev = _PMLDevice(xp, sol, sol.zero_state(), zeros, 1)
    with _quiet():
        for i in range(cfg.steps + 1):
            if i:
                dev.step(0, 0, i - 1)
            dev.resid(dev.slots[0], dev.obs, dev.det_i, dev.det_j, i, dev.res)
    return _to_host(dev.res_xp)


# ---------------------------------------------------------------------------
# Lorenz, batched
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LorenzBatch:
    """Result of :func:`lorenz_gradient` (one row per parameter set).

    Attributes
    ----------
    loss : ndarray (B,)
        x-coordinate of each final state.
    gradient : ndarray (B, 6)
        d loss / d (x0, y0, z0, sigma, rho, beta).
    forward_steps, backward_steps, peak_states : int
        Per thread (every thread replays the same program).
    nslots : int
        Slots each thread owns (``s_0`` included).
    seconds : float
        Kernel wall-clock time, device synchronised; the first call in a process
        also compiles the kernel (Numba's JIT) within it, so time a later call.
    """

    loss: np.ndarray
    gradient: np.ndarray
    forward_steps: int
    backward_steps: int
    peak_states: int
    nslots: int
    seconds: float


def _batch(x0: Sequence[float] | np.ndarray,
           theta: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast ``x0`` and ``theta`` to C-contiguous float64 ``(B, 3)`` arrays, checked
    as the CPU checks its 3-vectors: real, finite (:func:`solvers._checks.triples`)."""
    a = np.atleast_2d(triples(_host(x0), "x0", "initial states (x, y, z), one row per set",
                              _lz.DEFAULT_X0, batch=True))
    b = np.atleast_2d(triples(_host(theta), "theta", "(sigma, rho, beta), one row per set",
                              _lz.DEFAULT_THETA, batch=True))
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise PebblesValueError(
            f"x0 has {a.shape[0]} rows and theta {b.shape[0]}; give equal batch sizes "
            f"(or one row to broadcast)") from None
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def lorenz_gradient(schedule: pebbles.Schedule | pebbles.SlotProgram | Iterable[Move] | np.ndarray,
                    n: int | None = None,
                    x0: Sequence[float] | np.ndarray = _lz.DEFAULT_X0,
                    theta: Sequence[float] | np.ndarray = _lz.DEFAULT_THETA,
                    dt: float = _lz.DEFAULT_DT, *, slots: int | None = None,
                    xp: ModuleType | None = None) -> LorenzBatch:
    """Batched reverse mode: thread b replays ``schedule`` for parameter set b.

    The schedule (e.g. ``pebbles.schedule("treeverse", n, budget=S)``) is
    checked and lowered once (:func:`pebbles.lower`), copied to the device
    once, and walked by every thread from device memory; each thread keeps its ``nslots`` states
    in its own column of one ``(nslots, 3, B)`` array. The same computation
    as :func:`solvers.lorenz.replay_lorenz`, per row.

    Parameters
    ----------
    schedule : Schedule, SlotProgram, iterable of Move, or int64 (m, 3) array
    n : int, optional
        Number of RK4 steps (needed unless ``schedule`` carries its own).
    x0, theta : array_like, shape (3,) or (B, 3)
        Initial states and (sigma, rho, beta); broadcast against each other.
        NumPy or CuPy arrays, or sequences.
    dt : float
    slots : int, optional
        Slots per thread, ``s_0`` included (default: as many as needed); below a
        SlotProgram's ``nslots`` refused.
    xp : module, optional
        ``cupy`` or ``numpy`` (simulator); default :func:`array_module`.
    """
    from solvers import _cuda_lorenz as kl

    xp = array_module(xp)
    a, b = _batch(x0, theta)
    dt = _lz._dt(dt)
    prog = _program(schedule, n, slots)
    dv = _device_view(xp)  # after every input check: bad input fails alike without a GPU
    nb = a.shape[0]
    ops = dv(xp.asarray(prog.ops))
    slot_arr = dv(xp.empty((prog.nslots, 3, nb)))
    loss_xp, grad_xp = xp.empty(nb), xp.empty((nb, 6))
    args = (ops, dv(xp.asarray(a)), dv(xp.asarray(b)), dt, slot_arr, dv(loss_xp),
            dv(grad_xp))
    with _quiet():
        _sync(xp)
        t0 = time.perf_counter()
        kl.reverse_kernel[_threads(xp, nb)](*args)
        _sync(xp)
        seconds = time.perf_counter() - t0
    return LorenzBatch(_to_host(loss_xp), _to_host(grad_xp), prog.forward_steps,
                       prog.backward_steps, prog.peak_states, prog.nslots, seconds)


def lorenz_forward(x0: Sequence[float] | np.ndarray = _lz.DEFAULT_X0,
                   theta: Sequence[float] | np.ndarray = _lz.DEFAULT_THETA,
                   dt: float = _lz.DEFAULT_DT, n: int = _lz.DEFAULT_STEPS, *,
                   xp: ModuleType | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Batched forward mode: ``(s_n, d s_n / d inputs)`` per parameter set.

    Returns
    -------
    state : ndarray (B, 3)
    tangent : ndarray (B, 3, 6)
        Columns: d/d (x0, y0, z0, sigma, rho, beta); row 0 of ``tangent[b]``
        is :func:`solvers.lorenz.gradient_forward`'s gradient.
    """
    from solvers import _cuda_lorenz as kl

    xp = array_module(xp)
    a, b = _batch(x0, theta)
    dt, n = _lz._dt(dt), _lz._n(n)
    dv = _device_view(xp)  # after every input check
    nb = a.shape[0]
    state, tangent = xp.empty((nb, 3)), xp.empty((nb, 3, 6))
    with _quiet():
        kl.forward_kernel[_threads(xp, nb)](dv(xp.asarray(a)), dv(xp.asarray(b)), dt, n,
                                            dv(state), dv(tangent))
    return _to_host(state), _to_host(tangent)


def sensitivity_map(sigmas: Sequence[float] | np.ndarray, rhos: Sequence[float] | np.ndarray,
                    beta: float = _lz.DEFAULT_THETA[2], *,
                    x0: Sequence[float] = _lz.DEFAULT_X0, dt: float = _lz.DEFAULT_DT,
                    n: int = _lz.DEFAULT_STEPS, xp: ModuleType | None = None) -> np.ndarray:
    """GPU twin of :func:`solvers.lorenz.sensitivity_map` (paper Figure 3), one thread a point.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(sigmas), len(rhos))``: mean |d x_n / d input| over the six inputs.
    """
    from solvers import _cuda_lorenz as kl

    xp = array_module(xp)
    s, r, beta, y0, dt, n = _lz._sensitivity_inputs(_host(sigmas), _host(rhos), beta,
                                                    _host(x0), dt, n)  # the CPU's checks
    dv = _device_view(xp)  # after every input check
    out = xp.empty((s.size, r.size))
    with _quiet():
        kl.sensitivity_kernel[_threads(xp, s.size * r.size)](
            dv(xp.asarray(s)), dv(xp.asarray(r)), beta, dv(xp.asarray(y0)), dt, n, dv(out))
    return _to_host(out)
