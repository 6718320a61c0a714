"""The PML wave experiment of Liu & Xu, "Automatic differentiation in physics simulation".

Section 4.2 of the paper (paper notes section 6): ``u_tt - div(c grad u) = f``
(``c`` the squared velocity) on an ``(nx+2) x (ny+2)`` grid with a zero outer
ring and a 12-point perfectly matched layer, in the consistent discretisation of
the authors' code (see :mod:`solvers._pml_kernels` for the formulas). A Ricker
source at ``(nx/2, ny/5)``, 200 detectors on row ``ny/5``, and the running loss

    L = sum_{k=1..n} sum_d (u_true^(k)_d - u^(k)_d)^2,

where ``u_true`` is the recording in the three-layer true model. The gradient
of ``L`` with respect to ``c`` (every cell), the source values and the initial
state is computed by reverse mode through any checkpoint-game schedule replayed
by the generic executor :func:`pebbles._executor.replay`, with hand-derived
adjoint Numba kernels. The executor gets the out-of-place/in-place step
``step_into`` and reuses the buffers of freed states (no allocation per step;
``gradient(..., reuse=False)`` restores one new array per step).

* :class:`PMLConfig` -- grid, time step, PML, source and detector parameters
  (defaults: the paper's run, 1000 x 1000, 9999 steps, dt = 1e-5).
* :class:`PMLSolver` -- the step / in-place step / adjoint-step callbacks.
* :func:`forward`, :func:`record`, :func:`loss`, :func:`gradient`,
  :func:`schedule` -- the experiment.

Run ``python -m solvers.pml gradient --nx 100 --ny 100 --steps 500 --method
treeverse --pebbles 10`` for the command line.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pebbles._errors import PebblesValueError
from pebbles._executor import replay
from pebbles._moves import Move
from solvers import _pml_kernels as kern
from pebbles.cli import OneLineParser, run_command

__all__ = [
    "METHODS",
    "PMLConfig",
    "PMLGradient",
    "PMLSolver",
    "UnstableError",
    "check_stability",
    "detectors",
    "forward",
    "gradient",
    "loss",
    "main",
    "pml_profiles",
    "record",
    "ricker",
    "schedule",
    "true_model",
    "uniform_model",
]

METHODS = ("store-all", "treeverse", "treeverse-paper", "bennett", "periodic")


class UnstableError(PebblesValueError):
    """The time step, grid spacing and velocities violate the stability rule."""


@dataclass(frozen=True)
class PMLConfig:
    """Parameters of the PML experiment (defaults: the paper's run).

    Attributes
    ----------
    nx, ny : int
        Interior grid points; arrays are ``(nx + 2, ny + 2)``.
    steps : int
        Number of time steps n.
    dt : float
        Time step.
    h : float or None
        Grid spacing ``hx = hy``; ``None`` means ``200 / (nx - 1)``.
    npml : int
        PML thickness in points (on every side).
    vp_ref, reflection : float
        Reference velocity and target reflection R of the damping
        ``xi = vp_ref / L ln(1 / R)``, ``L = npml h``.
    velocity : float
        Reference velocity; the true model has 0.5, 0.75, 1.0 times it and the
        gradient is taken at ``c = velocity^2``.
    amp, width, delay : float
        Ricker source ``amp A (1 - x^2/a^2) exp(-x^2 / (2 a^2))``, ``a = width``,
        ``x = k - delay`` at step number ``k = 1..n``.
    n_detectors : int
        Detectors evenly spaced along the first index on row ``ny // 5``.
    flush : float
        The kernels write values of magnitude below ``flush`` as 0, which keeps
        subnormal numbers (slow on x86) out of the fields; 0 turns it off (see
        :mod:`solvers._pml_kernels`).
    """

    nx: int = 1000
    ny: int = 1000
    steps: int = 9999
    dt: float = 1e-5
    h: float | None = None
    npml: int = 12
    vp_ref: float = 1000.0
    reflection: float = 1e-8
    velocity: float = 3300.0
    amp: float = 1e6
    width: float = 30.0
    delay: float = 200.0
    n_detectors: int = 200
    flush: float = 1e-140

    def __post_init__(self) -> None:
        for name in ("nx", "ny", "steps", "n_detectors"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise PebblesValueError(f"{name}={v!r} must be an integer >= 1")
        if self.nx < 2 or self.ny < 2:
            raise PebblesValueError(f"nx={self.nx}, ny={self.ny} must both be >= 2")
        if not isinstance(self.npml, (int, np.integer)) or self.npml < 0:
            raise PebblesValueError(f"npml={self.npml!r} must be an integer >= 0")
        for name in ("dt", "vp_ref", "velocity", "width"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise PebblesValueError(f"{name}={v!r} must be a finite number > 0")
        if self.h is not None and not (math.isfinite(self.h) and self.h > 0):
            raise PebblesValueError(f"h={self.h!r} must be a finite number > 0 (or None)")
        if not 0 < self.reflection < 1:
            raise PebblesValueError(f"reflection={self.reflection!r} must be in (0, 1)")
        if not (math.isfinite(self.flush) and 0 <= self.flush < 1e-100):
            raise PebblesValueError(
                f"flush={self.flush!r} must be in [0, 1e-100): values below it are set to 0, "
                f"so it must stay far below the field; use the default 1e-140 or 0 (off)")

    @property
    def spacing(self) -> float:
        """The grid spacing ``h`` (``200 / (nx - 1)`` unless given)."""
        return 200.0 / (self.nx - 1) if self.h is None else float(self.h)

    @property
    def shape(self) -> tuple[int, int]:
        """``(nx + 2, ny + 2)``."""
        return (self.nx + 2, self.ny + 2)

    @property
    def source_position(self) -> tuple[int, int]:
        """Array index of the source, ``(nx // 2, ny // 5)`` (at least 1)."""
        return (max(self.nx // 2, 1), max(self.ny // 5, 1))

    def constants(self) -> np.ndarray:
        """The kernel constants ``dt, ax, ay, bx, by, ex, ey, flush``."""
        dt, h = self.dt, self.spacing
        return np.array([dt, dt * dt / h**2, dt * dt / h**2, dt * dt / (2 * h),
                         dt * dt / (2 * h), dt / (2 * h), dt / (2 * h), self.flush])


def _profile(m: int, npml: int, h: float, xi: float) -> np.ndarray:
    """Damping on indices ``0..m+1``: depth ``d`` into a layer of ``npml`` points."""
    idx = np.arange(m + 2, dtype=float)
    depth = np.maximum(np.maximum(npml - idx, idx - (m + 1 - npml)), 0.0) * h
    big_l = npml * h
    if big_l == 0:
        return np.zeros(m + 2)
    r = depth / big_l
    return xi * (r - np.sin(2 * np.pi * r) / (2 * np.pi))


def pml_profiles(cfg: PMLConfig) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(zeta_1, zeta_2)``: damping along the first and the second index.

    At depth ``d`` into the layer (``d = (npml - i) h`` on the low side),
    ``zeta = xi (d/L - sin(2 pi d/L) / (2 pi))``, ``xi = vp_ref/L ln(1/R)``.
    """
    h = cfg.spacing
    big_l = max(cfg.npml, 1) * h
    xi = cfg.vp_ref / big_l * math.log(1.0 / cfg.reflection)
    return _profile(cfg.nx, cfg.npml, h, xi), _profile(cfg.ny, cfg.npml, h, xi)


def ricker(cfg: PMLConfig) -> np.ndarray:
    """Source values ``f_k``, ``k = 1..n`` (index ``k - 1``); ``f_k dt^2`` joins ``u^(k)``."""
    a = cfg.width
    x = np.arange(1, cfg.steps + 1, dtype=float) - cfg.delay
    big_a = 2.0 / (math.sqrt(3.0 * a) * math.pi**0.25)
    return cfg.amp * big_a * (1 - x**2 / a**2) * np.exp(-(x**2) / (2 * a**2))


def true_model(cfg: PMLConfig) -> np.ndarray:
    """Three layers along the second index: velocities 0.5, 0.75, 1.0 x ``velocity``, squared."""
    nyy = cfg.ny + 2
    v = np.full(nyy, cfg.velocity)
    v[: nyy // 3] *= 0.5
    v[nyy // 3: 2 * nyy // 3] *= 0.75
    return np.ascontiguousarray(np.broadcast_to(v**2, cfg.shape))


def uniform_model(cfg: PMLConfig) -> np.ndarray:
    """``c = velocity^2`` everywhere (where the paper takes the gradient)."""
    return np.full(cfg.shape, cfg.velocity**2)


def detectors(cfg: PMLConfig) -> tuple[np.ndarray, np.ndarray]:
    """Array indices ``(i, j)`` of the detectors (they may repeat when ``nx`` is small)."""
    i = np.rint(np.linspace(1, cfg.nx, cfg.n_detectors)).astype(np.int64)
    return i, np.full_like(i, max(cfg.ny // 5, 1))


def check_stability(cfg: PMLConfig, c: np.ndarray) -> None:
    """Refuse inputs for which the scheme is unstable.

    Rules: ``c`` finite and ``>= 0`` on every cell; the Courant number
    ``sqrt(max c) dt sqrt(1/hx^2 + 1/hy^2) <= 1`` (CFL); ``dt max(zeta) < 1``
    (the damping factors ``1 - dt zeta`` stay positive).

    Raises
    ------
    UnstableError
        Naming the values, the broken rule and a fix.
    """
    c = np.asarray(c)
    if c.shape != cfg.shape or c.dtype != np.float64:
        raise PebblesValueError(
            f"c has shape={c.shape}, dtype={c.dtype}; expected shape={cfg.shape} "
            f"(nx+2, ny+2) and dtype=float64 (the squared velocity)")
    if not np.all(np.isfinite(c)) or c.min() < 0:
        raise UnstableError("c (the squared velocity) must be finite and >= 0 on every cell")
    h, dt = cfg.spacing, cfg.dt
    vmax = math.sqrt(float(c.max()))
    courant = vmax * dt * math.sqrt(2.0) / h
    if courant > 1.0:
        raise UnstableError(
            f"unstable: max velocity sqrt(max c)={vmax:.6g}, dt={dt:.6g}, hx=hy={h:.6g} give "
            f"Courant number {courant:.6g} > 1 (CFL rule: sqrt(max c) dt sqrt(1/hx^2 + 1/hy^2)"
            f" <= 1); use dt <= {h / (vmax * math.sqrt(2.0)):.6g} or h >= "
            f"{vmax * dt * math.sqrt(2.0):.6g}")
    zmax = max(float(p.max()) for p in pml_profiles(cfg))
    if dt * zmax >= 1.0:
        raise UnstableError(
            f"unstable: dt={dt:.6g} times the largest PML damping {zmax:.6g} is "
            f"{dt * zmax:.6g} >= 1 (rule: dt max(zeta) < 1); use dt < {1 / zmax:.6g} or a "
            f"thicker PML (npml={cfg.npml})")


class PMLSolver:
    """Step, in-place step and adjoint step of one PML problem (callbacks of ``replay``).

    Parameters
    ----------
    cfg : PMLConfig
    c : ndarray, shape ``(nx + 2, ny + 2)``
        Squared velocity (checked by :func:`check_stability`).
    source : ndarray, shape ``(n,)``, optional
        Source values ``f_1..f_n`` (default :func:`ricker`).
    observed : ndarray, shape ``(n + 1, n_detectors)``, optional
        Recording ``u_true^(k)`` at the detectors (row 0 unused); needed for the
        loss callbacks.

    Attributes
    ----------
    grad_c : ndarray
        ``dL/dc`` accumulated by :meth:`backward` (zero on the ring).
    grad_source : ndarray
        ``dL/df_k`` (index ``k - 1``), filled by :meth:`backward`.
    """

    def __init__(self, cfg: PMLConfig, c: np.ndarray, source: np.ndarray | None = None,
                 observed: np.ndarray | None = None) -> None:
        check_stability(cfg, c)
        self.cfg = cfg
        self.c = np.ascontiguousarray(c, dtype=np.float64)
        self.sig, self.tau = pml_profiles(cfg)
        self.k = cfg.constants()
        self.source = ricker(cfg) if source is None else np.asarray(source, dtype=float)
        if self.source.shape != (cfg.steps,):
            raise PebblesValueError(
                f"source has shape {self.source.shape}; expected ({cfg.steps},) (one per step)")
        self.isrc, self.jsrc = cfg.source_position
        self.det_i, self.det_j = detectors(cfg)
        self.observed = observed
        nxx, nyy = cfg.shape
        self.mrow = np.ones(nxx)
        self.mrow[[0, -1]] = 0.0
        self.mcol = np.ones(nyy)
        self.mcol[[0, -1]] = 0.0
        self.grad_c = np.zeros(cfg.shape)
        self.grad_source = np.zeros(cfg.steps)
        self._buffers = [np.empty((4, nxx, nyy)), np.empty((4, nxx, nyy))]
        self._turn = 0

    def zero_state(self) -> np.ndarray:
        """The initial state of the experiment: everything at rest."""
        return np.zeros((4, *self.cfg.shape))

    def _fsrc(self, i: int) -> float:
        return float(self.source[i]) * self.cfg.dt ** 2

    def step(self, i: int, s: np.ndarray) -> np.ndarray:
        """Return ``s_{i+1}`` (a new array) from ``s_i``; step ``i`` adds ``f_{i+1} dt^2``."""
        out = np.empty_like(s)
        kern.step_kernel(s, self.c, self.sig, self.tau, self.k, self.isrc, self.jsrc,
                         self._fsrc(i), out)
        return out

    def step_into(self, i: int, s: np.ndarray, out: np.ndarray) -> None:
        """Write ``s_{i+1}`` into ``out``; ``out is s`` runs the in-place kernel."""
        if out is s:
            kern.step_inplace_kernel(s, self.c, self.sig, self.tau, self.k, self.isrc,
                                     self.jsrc, self._fsrc(i))
        else:
            kern.step_kernel(s, self.c, self.sig, self.tau, self.k, self.isrc, self.jsrc,
                             self._fsrc(i), out)

    def vjp(self, s: np.ndarray, g: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(d step / d s)^T g`` (returned) and ``(d step / d c)^T g`` (added to ``grad_c``)."""
        out = np.empty_like(s) if out is None else out
        kern.adjoint_kernel(s, g, self.c, self.sig, self.tau, self.k, self.mrow, self.mcol,
                            out, self.grad_c)
        return out

    def misfit(self, i: int, s: np.ndarray) -> np.ndarray:
        """``u^(i)_d - u_true^(i)_d`` at the detectors."""
        return s[1, self.det_i, self.det_j] - self.observed[i]

    def running_loss(self, i: int, s: np.ndarray) -> float:
        """``l_i = sum_d (u_true^(i)_d - u^(i)_d)^2``."""
        r = self.misfit(i, s)
        return float(r @ r)

    def _add_misfit_grad(self, i: int, s: np.ndarray, g: np.ndarray) -> None:
        np.add.at(g[1], (self.det_i, self.det_j), 2.0 * self.misfit(i, s))

    def loss_grad(self, s: np.ndarray) -> np.ndarray:
        """``d l_n / d s_n`` (the last term of the running loss)."""
        g = np.zeros_like(s)
        self._add_misfit_grad(self.cfg.steps, s, g)
        return g

    def backward(self, i: int, s: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, None]:
        """Backward step i: ``gbar_i = vjp(gbar_{i+1}) + d l_i / d s_i``.

        Accumulates ``grad_c`` and ``grad_source[i]``; returns ``(gbar_i, None)``.
        The result lives in one of two buffers used in turn (the executor drops
        ``gbar_{i+1}`` once it has ``gbar_i``): copy it to keep it.
        """
        self.grad_source[i] += self.cfg.dt ** 2 * g[1, self.isrc, self.jsrc]
        out = self._buffers[self._turn]
        if out is g:
            self._turn ^= 1
            out = self._buffers[self._turn]
        self._turn ^= 1
        self.vjp(s, g, out)
        if i >= 1 and self.observed is not None:
            self._add_misfit_grad(i, s, out)
        return out, None


def forward(cfg: PMLConfig, c: np.ndarray, s0: np.ndarray | None = None,
            source: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run n steps with the in-place kernel; return ``(s_n, traces)``.

    ``traces[k]`` is ``u^(k)`` at the detectors, ``k = 0..n``.
    """
    sol = PMLSolver(cfg, c, source)
    s = sol.zero_state() if s0 is None else np.array(s0, dtype=np.float64, order="C")
    traces = np.empty((cfg.steps + 1, cfg.n_detectors))
    traces[0] = s[1, sol.det_i, sol.det_j]
    for i in range(cfg.steps):
        sol.step_into(i, s, s)
        traces[i + 1] = s[1, sol.det_i, sol.det_j]
    return s, traces


def record(cfg: PMLConfig, c_true: np.ndarray | None = None,
           source: np.ndarray | None = None) -> np.ndarray:
    """The recording ``u_true`` at the detectors in the true model (default :func:`true_model`)."""
    return forward(cfg, true_model(cfg) if c_true is None else c_true, source=source)[1]


def loss(cfg: PMLConfig, c: np.ndarray, observed: np.ndarray,
         s0: np.ndarray | None = None, source: np.ndarray | None = None) -> float:
    """The running loss ``sum_{k=1..n} sum_d (u_true^(k)_d - u^(k)_d)^2``."""
    traces = forward(cfg, c, s0, source)[1]
    r = traces[1:] - observed[1:]
    return float(np.sum(r * r))


@dataclass(frozen=True)
class PMLGradient:
    """Result of :func:`gradient`.

    Attributes
    ----------
    loss : float
    grad_c : ndarray ``(nx+2, ny+2)``
        ``dL/dc`` (zero on the ring, which the scheme never reads).
    grad_source : ndarray ``(n,)``
        ``dL/df_k`` (index ``k - 1``).
    grad_s0 : ndarray ``(4, nx+2, ny+2)``
        ``dL/ds_0``, slots ``(u_prev, u, phi, psi)`` of the initial state.
    forward_steps, backward_steps, peak_states : int
        Counts from the executor.
    seconds : float
        Wall-clock time of the replay.
    peak_buffers, allocations, inplace_steps : int
        State buffers the executor held at most (live plus pooled), states it
        allocated and steps it took in place (see :class:`pebbles.ReplayResult`).
    """

    loss: float
    grad_c: np.ndarray
    grad_source: np.ndarray
    grad_s0: np.ndarray
    forward_steps: int
    backward_steps: int
    peak_states: int
    seconds: float
    peak_buffers: int = 0
    allocations: int = 0
    inplace_steps: int = 0


def gradient(cfg: PMLConfig, c: np.ndarray, moves: Iterable[Move], observed: np.ndarray,
             *, s0: np.ndarray | None = None, source: np.ndarray | None = None,
             inplace: bool = False, reuse: bool = True,
             progress: bool = False) -> PMLGradient:
    """Gradient of the running loss by replaying a checkpoint-game schedule.

    Parameters
    ----------
    cfg : PMLConfig
    c : ndarray ``(nx+2, ny+2)``
        Squared velocity where the gradient is taken.
    moves : iterable of Move
        Any checkpoint-game (or, with ``inplace``, in-place-game) schedule for
        ``cfg.steps`` steps, e.g. from :func:`schedule`.
    observed : ndarray ``(n+1, n_detectors)``
        Recording from :func:`record`.
    s0, source : optional
        Initial state (default zero) and source values (default :func:`ricker`).
    inplace : bool
        Give the executor the in-place step, needed by ``move`` moves (the
        in-place game) unless ``reuse`` gives it anyway.
    reuse : bool
        Give the executor :meth:`PMLSolver.step_into` and a pool of freed
        state buffers: new states are written into freed ones instead of
        fresh arrays, and ``forward`` walks step in place after their first
        step. ``reuse=False, inplace=False`` allocates a new array per step.
    progress : bool
        tqdm progress bar (if installed).

    Examples
    --------
    >>> import pebbles
    >>> from solvers import pml
    >>> cfg = pml.PMLConfig(nx=20, ny=20, steps=30, h=0.11, width=6.0, delay=10.0,
    ...                     n_detectors=5)
    >>> obs = pml.record(cfg)
    >>> g = pml.gradient(cfg, pml.uniform_model(cfg), pebbles.treeverse(30, 4), obs)
    >>> g.forward_steps, g.backward_steps, g.peak_states, g.peak_buffers, g.allocations
    (71, 30, 5, 5, 5)
    """
    sol = PMLSolver(cfg, c, source, observed)
    s0 = sol.zero_state() if s0 is None else np.array(s0, dtype=np.float64, order="C")
    if s0.shape != (4, *cfg.shape):
        raise PebblesValueError(f"s0 has shape {s0.shape}; expected {(4, *cfg.shape)}")
    r = replay(moves, cfg.steps, s0, sol.step, sol.backward, sol.loss_grad,
               step_into=sol.step_into if inplace or reuse else None,
               running_loss=sol.running_loss, progress=progress, pool_size=None if reuse else 0)
    return PMLGradient(float(r.loss), sol.grad_c, sol.grad_source, np.array(r.grad_s0),
                       r.forward_steps, r.backward_steps, r.peak_states, r.seconds,
                       r.peak_buffers, r.allocations, r.inplace_steps)


def schedule(method: str, n: int, *, pebbles: int = 10, inplace: bool = False, k: int = 2,
             every: int | None = None) -> Iterable[Move]:
    """The move stream of ``method`` (one of :data:`METHODS`) for n steps.

    ``pebbles`` is the budget S of ``treeverse`` and the delta of
    ``treeverse-paper``; ``k`` is Bennett's k; ``every`` the period of
    ``periodic`` (default ``ceil(sqrt(n))``).
    """
    import pebbles as pb

    if method == "store-all":
        return pb.store_all(n)
    if method == "treeverse":
        return pb.treeverse(n, pebbles, inplace=inplace)
    if method == "treeverse-paper":
        return pb.treeverse_paper(n, pebbles)
    if method == "bennett":
        return pb.bennett_gradient(n, k)
    if method == "periodic":
        return pb.periodic(n, every if every is not None else math.isqrt(n - 1) + 1)
    raise PebblesValueError(f"method={method!r} is not one of {', '.join(METHODS)}")


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser) -> None:
    d = PMLConfig()
    p.add_argument("--nx", type=int, default=d.nx)
    p.add_argument("--ny", type=int, default=d.ny)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--dt", type=float, default=d.dt)
    p.add_argument("--h", type=float, default=None, help="grid spacing (default 200/(nx-1))")
    p.add_argument("--c", default=None, metavar="FILE.npy",
                   help="squared velocity (nx+2, ny+2); default 3300^2 everywhere")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m solvers.pml",
                description="PML wave experiment (Liu & Xu, section 4.2).")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gradient", help="dL/dc, dL/df, dL/ds0 through a schedule")
    _common(g)
    g.add_argument("--method", choices=METHODS, default="treeverse")
    g.add_argument("--pebbles", type=int, default=10,
                   help="budget S (treeverse) or delta (treeverse-paper)")
    g.add_argument("--inplace", action="store_true", help="in-place game and in-place step")
    g.add_argument("--k", type=int, default=2, help="Bennett's k")
    g.add_argument("--every", type=int, default=None, help="period of 'periodic'")
    g.add_argument("--save", default=None, metavar="OUT.npz")
    lo = sub.add_parser("loss", help="the running loss at c")
    _common(lo)
    return p


def _config(args: argparse.Namespace) -> tuple[PMLConfig, np.ndarray]:
    cfg = PMLConfig(nx=args.nx, ny=args.ny, steps=args.steps, dt=args.dt, h=args.h)
    if args.c is None:
        c = uniform_model(cfg)
    else:
        try:
            c = np.load(args.c, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise PebblesValueError(f"--c {args.c}: cannot read a .npy array ({err})") from None
        if not isinstance(c, np.ndarray) or c.shape != cfg.shape:
            raise PebblesValueError(
                f"--c {args.c} holds shape {getattr(c, 'shape', None)}; expected "
                f"{cfg.shape} = (nx+2, ny+2)")
        c = np.ascontiguousarray(c, dtype=np.float64)
    check_stability(cfg, c)
    check_stability(cfg, true_model(cfg))
    return cfg, c


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (10^6 bytes, as the benchmarks report).

    ``ru_maxrss`` counts KiB on Linux and bytes on macOS.
    """
    unit = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 1e6


def _warm_up() -> None:
    """Compile (or load from Numba's cache) every kernel, so ``seconds`` excludes it."""
    cfg = PMLConfig(nx=4, ny=4, steps=2, h=1.0)
    sol = PMLSolver(cfg, uniform_model(cfg))
    s = sol.step(0, sol.zero_state())
    sol.step_into(1, s, s)
    sol.vjp(s, s)


def _run(args: argparse.Namespace) -> dict:
    cfg, c = _config(args)
    _warm_up()
    moves = None
    if args.command == "gradient":
        moves = schedule(args.method, cfg.steps, pebbles=args.pebbles, inplace=args.inplace,
                         k=args.k, every=args.every)
    observed = record(cfg)
    if args.command == "loss":
        t0 = time.perf_counter()
        value = loss(cfg, c, observed)
        return {"command": "loss", "loss": value, "seconds": time.perf_counter() - t0,
                "peak_rss_mb": _peak_rss_mb()}
    big = cfg.steps * cfg.nx * cfg.ny > 2e8 and sys.stderr.isatty()
    g = gradient(cfg, c, moves, observed, inplace=args.inplace, progress=big)
    if args.save:
        np.savez(args.save, loss=g.loss, grad_c=g.grad_c, grad_u0=g.grad_s0[1],
                 grad_s0=g.grad_s0, grad_source=g.grad_source, forward_steps=g.forward_steps,
                 backward_steps=g.backward_steps, peak_states=g.peak_states)
    return {"command": "gradient", "method": args.method, "inplace": args.inplace,
            "nx": cfg.nx, "ny": cfg.ny, "steps": cfg.steps, "loss": g.loss,
            "grad_c_norm": float(np.linalg.norm(g.grad_c)), "forward_steps": g.forward_steps,
            "backward_steps": g.backward_steps, "peak_states": g.peak_states,
            "seconds": g.seconds, "peak_rss_mb": _peak_rss_mb()}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad input)."""
    def run(args: argparse.Namespace) -> str:
        out = _run(args)
        if args.json:
            return json.dumps(out)
        return "\n".join(f"{key:<15} {value}" for key, value in out.items())

    return run_command(_parser(), argv, run)


if __name__ == "__main__":
    sys.exit(main())
