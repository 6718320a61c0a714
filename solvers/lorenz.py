"""The Lorenz experiment of Liu & Xu, "Automatic differentiation in physics simulation".

Section 4.1 of the paper (paper-notes section 5): the Lorenz system

    dx/dt = sigma (y - x),  dy/dt = x (rho - z) - y,  dz/dt = x y - beta z

integrated with classical RK4 (``k1 = dt f(y)``, ``k2 = dt f(y + k1/2)``,
``k3 = dt f(y + k2/2)``, ``k4 = dt f(y + k3)``,
``y' = y + k1/6 + k2/3 + k3/3 + k4/6``), loss = x-coordinate of the final
state, gradient with respect to ``(x0, y0, z0, sigma, rho, beta)``. Four ways
to get it (paper Table 1):

* forward mode: :func:`gradient_forward` (hand-written JVP carrying all six
  tangents), batched and parallel in :func:`sensitivity_map` (Figure 3);
* reverse mode through any checkpoint-game schedule: :func:`gradient_reverse`
  (the generic executor :func:`pebbles.replay`) and :func:`replay_lorenz`
  (a Numba executor of the slot program :func:`pebbles.lower` makes);
* reverse mode for a run of unknown length, "until x first reaches a level":
  :func:`gradient_until_crossing` (the online schedule, replayed by the Numba
  executor);
* the adjoint-state method, paper Algorithm 1: :func:`gradient_adjoint`
  (backward RK4 integration of the augmented dynamics, optionally reloading
  stored forward states every K steps; Figure 4).

The scalar formulas (step, tangent, adjoint) are written once, as plain Python on
scalars, and compiled here with ``numba.njit`` and with ``numba.cuda.jit`` for the
GPU (:mod:`solvers.gpu`). Non-finite parameters are rejected, and so
is a time step ``dt <= 0`` of a run (the one-step kernels :func:`rk4_step`,
:func:`rk4_jvp` and :func:`rk4_vjp` take any finite ``dt``);
:func:`overflow_step` finds the step at which a trajectory overflows.

Run ``python -m solvers.lorenz gradient --method treeverse --pebbles 10`` for
the command line (``--until-x LEVEL --method online``: run until x reaches LEVEL).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import numpy as np

import pebbles
from pebbles.cli import (
    OneLineParser,
    SubcommandParser,
    at_least,
    budget_flag,
    count,
    in_flags,
    positive,
    run_command,
    schedule_from_args,
)
from solvers import _refuse_without_numba
from solvers._checks import _shown, boolean, periodic_every, reals, triples, whole
from solvers._checks import real as _real
from solvers._memory import available_memory, program_bytes, schedule_moves
from solvers._paths import check_npz_output

# Numba comes after the command line's parser (below DEFAULT_STEPS): `python -m
# solvers.lorenz --help` answers without it.

__all__ = [
    "DEFAULT_DT",
    "DEFAULT_STEPS",
    "DEFAULT_THETA",
    "DEFAULT_X0",
    "LorenzCrossing",
    "LorenzGradient",
    "available_memory",
    "check_run_time",
    "gradient_adjoint",
    "gradient_forward",
    "gradient_reverse",
    "gradient_until_crossing",
    "main",
    "memory_estimate",
    "overflow_step",
    "primal",
    "replay_lorenz",
    "rk4_jvp",
    "rk4_step",
    "rk4_vjp",
    "sensitivity_map",
]

DEFAULT_X0 = (1.0, 0.0, 0.0)
DEFAULT_THETA = (10.0, 27.0, 8.0 / 3.0)
DEFAULT_DT = 3e-3
DEFAULT_STEPS = 10_000

_STEP, _SEED, _PAINT = pebbles.OP_STEP, pebbles.OP_SEED, pebbles.OP_PAINT


# ---------------------------------------------------------------------------
# command line: the parser (needs no Numba; the commands are at the end)
# ---------------------------------------------------------------------------
#: ``--method bennett``: Bennett's schedule with paints (``bennett-gradient``).
_ALIASES = {"bennett": "bennett-gradient"}


def _gradient_methods() -> tuple[str, ...]:
    """The methods of ``gradient --method`` and :func:`memory_estimate`."""
    return ("forward", "adjoint", *_ALIASES, *pebbles.gradient_methods())


def _finite(text: str) -> float:
    """argparse type: a finite real number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not finite; pass a finite number")
    return value


def _gradient_parser(sub: Any) -> None:
    g = sub.add_parser("gradient", help="compute d x_n / d (x0, y0, z0, sigma, rho, beta)")
    g.add_argument("--method", default="treeverse", choices=_gradient_methods(),
                   help="how the gradient is computed: forward mode, the adjoint, or a "
                        "checkpoint schedule (treeverse)")
    g.add_argument("--pebbles", "--budget", dest="budget", type=budget_flag, default=None,
                   help="budget S: states held at once besides s_0, the working state "
                   "included (treeverse: 10)")
    g.add_argument("--inplace", action="store_true",
                   help="in-place game (methods " + ", ".join(
                       m for m in _gradient_methods() if m in pebbles.methods()
                       and "inplace" in dict(pebbles.describe(m).options)) + ")")
    g.add_argument("--delta", type=positive, default=None, help="delta for treeverse-paper (10)")
    g.add_argument("--tau", type=count, default=None,
                   help="tau for treeverse-paper (default: the least that covers --steps)")
    g.add_argument("--beyond", choices=("greedy", "wang-moin"), default=None,
                   help="online: the rule past the r = 3 phase (greedy)")
    g.add_argument("--every", type=positive, default=None,
                   help="periodic: checkpoint interval (default ceil(sqrt(steps))); "
                        "adjoint: reload the stored state every K steps (default: no "
                        "reloads)")
    g.add_argument("--k", type=at_least(2), default=None, help="Bennett's k (2)")
    g.add_argument("--steps", type=positive, default=DEFAULT_STEPS,
                   help="steps (with --until-x: the most steps)")
    g.add_argument("--until-x", type=_finite, default=None, metavar="LEVEL",
                   help="run until x first reaches LEVEL (n unknown; needs --method online)")
    g.add_argument("--dt", type=_finite, default=DEFAULT_DT,
                   help=f"RK4 time step ({DEFAULT_DT:g})")
    g.add_argument("--sigma", type=_finite, default=DEFAULT_THETA[0],
                   help=f"Lorenz sigma ({DEFAULT_THETA[0]:g})")
    g.add_argument("--rho", type=_finite, default=DEFAULT_THETA[1],
                   help=f"Lorenz rho ({DEFAULT_THETA[1]:g})")
    g.add_argument("--beta", type=_finite, default=DEFAULT_THETA[2],
                   help=f"Lorenz beta ({DEFAULT_THETA[2]:.6g})")
    g.add_argument("--x0", type=_finite, nargs=3, default=list(DEFAULT_X0),
                   metavar=("X", "Y", "Z"), help="initial state (%(default)s)")
    g.add_argument("--executor", choices=("numba", "generic"), default=None,
                   help="executor for schedule methods (numba; not with --method forward "
                        "or adjoint)")
    g.add_argument("--force", action="store_true",
                   help="run even if the memory estimate exceeds the memory available, or "
                        "the time estimate an hour")
    g.add_argument("--json", action="store_true", help="print one JSON object")


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m solvers.lorenz",
        description="Gradient of the Lorenz experiment (Liu & Xu, section 4.1).",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=SubcommandParser)
    _gradient_parser(sub)
    m = sub.add_parser("sensitivity", help="mean |gradient| on a (sigma, rho) grid (Figure 3)")
    m.add_argument("--sigma-range", type=_finite, nargs=2, default=[0.0, 20.0],
                   metavar=("LO", "HI"), help="sigma axis of the grid (0 20)")
    m.add_argument("--rho-range", type=_finite, nargs=2, default=[0.0, 50.0],
                   metavar=("LO", "HI"), help="rho axis of the grid (0 50)")
    m.add_argument("--resolution", type=int, default=201, help="grid points per axis (201)")
    m.add_argument("--beta", type=_finite, default=DEFAULT_THETA[2],
                   help=f"Lorenz beta ({DEFAULT_THETA[2]:.6g})")
    m.add_argument("--steps", type=positive, default=DEFAULT_STEPS,
                   help=f"steps per grid point ({DEFAULT_STEPS})")
    m.add_argument("--dt", type=_finite, default=DEFAULT_DT,
                   help=f"RK4 time step ({DEFAULT_DT:g})")
    m.add_argument("--out", required=True, help="output .npz (sigmas, rhos, mean_abs_grad)")
    m.add_argument("--force", action="store_true",
                   help="run even if the grid needs more memory than is available, or "
                        "more than an hour")
    return p


if __name__ == "__main__" and find_spec("numba") is None:  # --help and usage errors answer
    sys.exit(run_command(_parser(), None, _refuse_without_numba))

import numba  # noqa: E402  (after the parser: see the imports above)
from numba import njit, prange  # noqa: E402

from solvers import _threading  # noqa: E402, F401  (TBB for the parallel kernel when installed)
from solvers._lorenz_scalar import compile_formulas  # noqa: E402


@dataclass(frozen=True, slots=True)
class LorenzGradient:
    """A gradient of the final x-coordinate and what it cost.

    Attributes
    ----------
    loss : float
        x-coordinate of the final state.
    gradient : numpy.ndarray
        Shape (6,): d loss / d (x0, y0, z0, sigma, rho, beta).
    forward_steps, backward_steps : int
        RK4 steps and backward (vjp or augmented) steps taken.
    peak_states : int
        Most state-sized arrays held at once (stored states plus working ones).
    seconds : float
        Wall-clock time.
    """

    loss: float
    gradient: np.ndarray
    forward_steps: int
    backward_steps: int
    peak_states: int
    seconds: float


# ---------------------------------------------------------------------------
# scalar kernels (the formulas of solvers._lorenz_scalar, compiled for the CPU)
# ---------------------------------------------------------------------------
_CPU = compile_formulas(njit(cache=True, inline="always"))
_f, _fvjp, _step3 = _CPU.f, _CPU.fvjp, _CPU.step3
_stages, _jvp_col, _vjp3 = _CPU.stages, _CPU.jvp_col, _CPU.vjp3


@njit(cache=True)
def _step_into(src, theta, dt, out):
    x, y, z = _step3(src[0], src[1], src[2], theta[0], theta[1], theta[2], dt)
    out[0] = x
    out[1] = y
    out[2] = z


@njit(cache=True, inline="always")
def _check_vectors(y, theta, ybar):
    """Refuse state, parameter and gradient vectors without 3 components (read by index).

    The compiled kernels' own guard, for compiled callers; the public wrappers check
    first, naming the value (:func:`_float64`).
    """
    if y.shape[0] != 3:
        raise pebbles.PebblesValueError("y must have shape (3,): the state (x, y, z)")
    if theta.shape[0] != 3:
        raise pebbles.PebblesValueError("theta must have shape (3,): (sigma, rho, beta)")
    if ybar.shape[0] != 3:
        raise pebbles.PebblesValueError(
            "ybar must have shape (3,): the gradient of the step's output")


@njit(cache=True)
def _rk4_step(y, theta, dt):
    """Compiled :func:`rk4_step` (float64 arrays; for compiled callers and checked input)."""
    _check_vectors(y, theta, y)
    out = np.empty(3)
    _step_into(y, theta, dt, out)
    return out


#: Looked up once: the public kernels' checks run per step (:func:`rk4_step`).
_NDARRAY, _F64 = np.ndarray, np.dtype(np.float64)

#: The array arguments of :func:`rk4_step`, :func:`rk4_jvp` and :func:`rk4_vjp`: what
#: each holds, its shape and an example (for the messages of :func:`_float64`).
_KERNEL_ARRAYS = {
    "y": ("the state (x, y, z)", (3,), "[1.0, 0.0, 0.0]"),
    "theta": ("the parameters (sigma, rho, beta)", (3,), "[10.0, 27.0, 8 / 3]"),
    "ybar": ("the gradient of the step's output", (3,), "[1.0, 0.0, 0.0]"),
    "tangent": ("d y / d (x0, y0, z0, sigma, rho, beta)", (3, 6), "np.zeros((3, 6))"),
}


def _float64(v: object, name: str) -> np.ndarray:
    """``v`` as a float64 array of the shape :data:`_KERNEL_ARRAYS` gives ``name``.

    The public kernels' slow path, taken when ``v`` is not already a float64
    NumPy array of that shape: lists, tuples and int or float32 arrays are
    converted (exactly: every int of magnitude up to 2**53 and every float32
    is a float64). Values are not checked (a non-finite entry gives non-finite
    results, as in NumPy).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``v`` does not hold real numbers (bools, complex numbers, strings, None).
    pebbles.PebblesValueError
        If its shape is wrong.
    """
    what, shape, example = _KERNEL_ARRAYS[name]
    if type(v) is _NDARRAY and v.dtype == _F64 and v.shape == shape:
        return v  # the fast path: as it is
    arr = reals(v, name, what, example)
    if arr.shape != shape:
        raise pebbles.PebblesValueError(
            f"{_shown(name, v)} must have shape {shape}: {what}; got shape {arr.shape}; pass "
            f"e.g. {name}={example}")
    return arr


def _kernel_args(y: object, theta: object, dt: object) -> tuple[np.ndarray, np.ndarray, float]:
    """``y``, ``theta`` and ``dt`` of a public kernel, checked and converted."""
    y, theta = _float64(y, "y"), _float64(theta, "theta")
    return y, theta, (dt if type(dt) is float and math.isfinite(dt) else _step_dt(dt))


def rk4_step(y: Sequence[float] | np.ndarray, theta: Sequence[float] | np.ndarray,
             dt: float) -> np.ndarray:
    """Return the RK4 successor of the state ``y`` (a new float64 array of shape (3,)).

    Parameters
    ----------
    y : sequence of float or numpy.ndarray
        State (x, y, z): 3 real numbers.
    theta : sequence of float or numpy.ndarray
        (sigma, rho, beta): 3 real numbers.
    dt : float
        Time step: a finite real number.

    Returns
    -------
    numpy.ndarray
        The state one step on, float64, shape (3,).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``y`` or ``theta`` does not hold real numbers, or ``dt`` is not a real number.
    pebbles.PebblesValueError
        If ``y`` or ``theta`` does not have 3 components, or ``dt`` is not finite.

    Notes
    -----
    Float64 NumPy arrays of shape (3,) go to the compiled kernel as they are;
    lists, tuples and int or float32 arrays are converted to float64 first
    (the step always computes in float64, so the result is that of the
    converted array, bit for bit). The values of ``y`` and ``theta`` are not
    checked: a non-finite entry gives a non-finite result
    (:func:`overflow_step` finds where a trajectory overflows). Compiled
    (``numba.njit``) code cannot call this function; it calls ``_rk4_step``
    with float64 arrays.

    Examples
    --------
    >>> from solvers.lorenz import rk4_step
    >>> rk4_step([1, 0, 0], (10.0, 27.0, 8 / 3), 0.0)
    array([1., 0., 0.])
    """
    y, theta, dt = _kernel_args(y, theta, dt)
    return _rk4_step(y, theta, dt)


@njit(cache=True)
def _primal(y0, theta, dt, n):
    y = y0.copy()
    for _ in range(n):
        _step_into(y, theta, dt, y)
    return y


@njit(cache=True)
def _first_nonfinite(y0, theta, dt, n):
    """The first i in 1..n with s_i not finite, or -1."""
    x, y, z = y0[0], y0[1], y0[2]
    for i in range(1, n + 1):
        x, y, z = _step3(x, y, z, theta[0], theta[1], theta[2], dt)
        if not (np.isfinite(x) and np.isfinite(y) and np.isfinite(z)):
            return i
    return -1


@njit(cache=True)
def _trajectory_rows(out, theta, dt, i0, i1):
    """``out[i + 1]`` = one RK4 step of ``out[i]`` for i in ``i0..i1 - 1`` (the kernel of
    :func:`rk4_step`: bit for bit its states)."""
    for i in range(i0, i1):
        _step_into(out[i], theta, dt, out[i + 1])


def _trajectory(x0: object, theta: np.ndarray, dt: object, n: int) -> np.ndarray:
    """The RK4 states ``s_0..s_n`` from ``x0`` (checked here, as ``dt``; ``theta`` and
    ``n`` checked by the caller), shape ``(n + 1, 3)``: compiled, in chunks of
    :data:`CHUNK_POINT_STEPS` steps (Ctrl-C works between them).
    :func:`solvers.experiments.lorenz_trajectory` is the public function."""
    y0, dt = _as3(x0, "x0"), _dt(dt)
    out = np.empty((n + 1, 3))
    out[0] = y0
    for start in range(0, n, CHUNK_POINT_STEPS):
        _trajectory_rows(out, theta, dt, start, min(start + CHUNK_POINT_STEPS, n))
    return out


#: What the 3-vector arguments hold, and an example (for the messages of :func:`_as3`).
_VECTORS = {"x0": ("the initial state (x, y, z)", DEFAULT_X0),
            "theta": ("(sigma, rho, beta)", DEFAULT_THETA)}


def _as3(v: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """``x0`` or ``theta`` as a finite float64 3-vector (:func:`solvers._checks.triples`)."""
    what, example = _VECTORS[name]
    return triples(v, name, what, example)


def _dt(dt: float) -> float:
    """The time step of a run: a finite number > 0 (``dt <= 0`` integrates nothing or
    backward in time: no gradient of the experiment)."""
    return _real(dt, "dt", "time step", DEFAULT_DT, positive=True)


def _step_dt(dt: float) -> float:
    """The time step of one kernel call (:func:`rk4_step`, ...): any finite number (0 is
    the identity, a negative one steps back)."""
    return _real(dt, "dt", "time step", DEFAULT_DT)


def _n(n: int, minimum: int = 0, name: str = "n", what: str = "the number of RK4 steps") -> int:
    """``n`` as an int >= ``minimum`` (:func:`solvers._checks.whole`), named ``name``."""
    return whole(n, minimum, name, what)


def primal(
    x0: Sequence[float] = DEFAULT_X0,
    theta: Sequence[float] = DEFAULT_THETA,
    dt: float = DEFAULT_DT,
    n: int = DEFAULT_STEPS,
) -> np.ndarray:
    """Integrate ``n`` RK4 steps from ``x0`` and return the final state.

    Examples
    --------
    >>> from solvers.lorenz import primal
    >>> primal((1.0, 0.0, 0.0), n=0)
    array([1., 0., 0.])
    """
    return _primal(_as3(x0, "x0"), _as3(theta, "theta"), _dt(dt), _n(n))


def overflow_step(
    x0: Sequence[float] = DEFAULT_X0,
    theta: Sequence[float] = DEFAULT_THETA,
    dt: float = DEFAULT_DT,
    n: int = DEFAULT_STEPS,
) -> int | None:
    """The first step ``i`` (1..n) whose state ``s_i`` is not finite, or None.

    Examples
    --------
    >>> from solvers.lorenz import overflow_step
    >>> overflow_step(n=100) is None, overflow_step(dt=10.0, n=100)
    (True, 3)
    """
    i = int(_first_nonfinite(_as3(x0, "x0"), _as3(theta, "theta"), _dt(dt), _n(n)))
    return None if i < 0 else i


# ---------------------------------------------------------------------------
# forward mode
# ---------------------------------------------------------------------------
@njit(cache=True)
def _rk4_jvp(y, theta, dt, tangent):
    """Compiled :func:`rk4_jvp` (float64 arrays; for compiled callers and checked input)."""
    _check_vectors(y, theta, y)
    if tangent.shape[0] != 3 or tangent.shape[1] != 6:
        raise pebbles.PebblesValueError("tangent must have shape (3, 6): d y / d inputs")
    out = np.empty((3, 6))
    _jvp_into(y, theta, dt, tangent, out)
    return out


def rk4_jvp(y: Sequence[float] | np.ndarray, theta: Sequence[float] | np.ndarray, dt: float,
            tangent: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Push a (3, 6) tangent matrix through one RK4 step (all six inputs at once).

    Parameters
    ----------
    y : sequence of float or numpy.ndarray
        State (x, y, z) the step starts from: 3 real numbers.
    theta : sequence of float or numpy.ndarray
        (sigma, rho, beta): 3 real numbers.
    dt : float
        Time step: a finite real number.
    tangent : sequence of sequences of float or numpy.ndarray
        Shape (3, 6): column j is d y / d input_j, inputs (x0, y0, z0, sigma,
        rho, beta). The tangents of sigma, rho and beta themselves are the unit
        vectors (added by the step).

    Returns
    -------
    numpy.ndarray
        The tangent of the successor, a new float64 array of shape (3, 6).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``y``, ``theta`` or ``tangent`` does not hold real numbers, or ``dt`` is
        not a real number.
    pebbles.PebblesValueError
        If ``y`` or ``theta`` does not have 3 components, ``tangent`` is not (3, 6),
        or ``dt`` is not finite.

    Notes
    -----
    Array-likes are converted to float64 as by :func:`rk4_step` (float64
    arrays of the right shape go to the compiled kernel as they are); values
    are not checked.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.lorenz import rk4_jvp
    >>> rk4_jvp([1, 0, 0], [10, 27, 8 / 3], 0.0, np.eye(3, 6)).shape
    (3, 6)
    """
    y, theta, dt = _kernel_args(y, theta, dt)
    return _rk4_jvp(y, theta, dt, _float64(tangent, "tangent"))


@njit(cache=True)
def _jvp_into(yv, theta, dt, tan, out):
    """Tangent (3, 6) of one RK4 step into ``out``."""
    s, r, b = theta[0], theta[1], theta[2]
    x, y, z = yv[0], yv[1], yv[2]
    u2, u3, u4 = _stages(x, y, z, s, r, b, dt)
    for j in range(6):
        ds = 1.0 if j == 3 else 0.0
        dr = 1.0 if j == 4 else 0.0
        db = 1.0 if j == 5 else 0.0
        out[0, j], out[1, j], out[2, j] = _jvp_col(
            x, y, z, u2, u3, u4, s, r, b, dt, tan[0, j], tan[1, j], tan[2, j], ds, dr, db)


@njit(cache=True)
def _forward_mode(y0, theta, dt, n):
    """n steps with six tangents; returns (s_n, d s_n / d inputs as (3, 6)).

    The tangents are the columns of one (6, 8) array: rows 0-2 the state's
    tangent, rows 3-5 the constant one-hot tangents of (sigma, rho, beta), two
    zero columns of padding. The column loop then has a trip count LLVM
    vectorises (SIMD over columns: about 2.5x faster than six scalar columns).
    """
    xyz, t = y0.copy(), np.zeros((6, 8))
    for k in range(6):
        t[k, k] = 1.0
    _forward_chunk(xyz, t, theta, dt, n)
    return xyz, t[:3, :6].copy()


@njit(cache=True)
def _forward_chunk(xyz, t, theta, dt, n):
    """``n`` steps of :func:`_forward_mode`'s loop from ``xyz`` (3,) and ``t`` (6, 8), in
    place: a run split into chunks is bit for bit the same as one call."""
    s, r, b = theta[0], theta[1], theta[2]
    x, y, z = xyz[0], xyz[1], xyz[2]
    w = np.zeros((6, 8))  # a local array, as in _forward_mode: LLVM vectorises it
    w[:, :] = t
    for _ in range(n):
        u2, u3, u4 = _stages(x, y, z, s, r, b, dt)
        for j in range(8):
            w[0, j], w[1, j], w[2, j] = _jvp_col(
                x, y, z, u2, u3, u4, s, r, b, dt,
                w[0, j], w[1, j], w[2, j], w[3, j], w[4, j], w[5, j])
        x, y, z = _step3(x, y, z, s, r, b, dt)
    xyz[0], xyz[1], xyz[2] = x, y, z
    t[:, :] = w


#: Point-steps (one RK4 step with six tangents at one point) per compiled call of the
#: long-running kernels: about a second, so that Ctrl-C is handled between calls.
CHUNK_POINT_STEPS = 2**24


def _forward_chunked(y0: np.ndarray, theta: np.ndarray, dt: float, n: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_forward_mode` run in chunks of :data:`CHUNK_POINT_STEPS` steps (Ctrl-C
    works between them; the result is bit for bit the same)."""
    xyz, t = y0.copy(), np.zeros((6, 8))
    for k in range(6):
        t[k, k] = 1.0
    for start in range(0, n, CHUNK_POINT_STEPS):
        _forward_chunk(xyz, t, theta, dt, min(CHUNK_POINT_STEPS, n - start))
    return xyz, t[:3, :6].copy()


def gradient_forward(
    x0: Sequence[float] = DEFAULT_X0,
    theta: Sequence[float] = DEFAULT_THETA,
    dt: float = DEFAULT_DT,
    n: int = DEFAULT_STEPS,
) -> LorenzGradient:
    """Forward-mode gradient (six tangents carried together; O(6 T) time, O(S) memory).

    Examples
    --------
    >>> from solvers.lorenz import gradient_forward
    >>> g = gradient_forward(n=1)
    >>> g.gradient.shape, g.forward_steps
    ((6,), 1)
    """
    t0 = time.perf_counter()
    y, tan = _forward_chunked(_as3(x0, "x0"), _as3(theta, "theta"), _dt(dt), _n(n))
    return LorenzGradient(
        float(y[0]), tan[0].copy(), int(n), 0, 7, time.perf_counter() - t0
    )


@njit(cache=True, parallel=True)
def _sensitivity_steps(sigmas, rhos, beta, dt, k0, xyz, t, steps):
    """``steps`` steps of :func:`_forward_chunk` at grid points ``k0 + p`` (row-major),
    ``p < len(xyz)``, from their states ``xyz[p]`` and tangents ``t[p]``, in parallel
    and in place (a point's run split into calls is bit for bit one call's)."""
    nr = rhos.size
    for p in prange(xyz.shape[0]):
        k = k0 + p
        theta = np.array([sigmas[k // nr], rhos[k % nr], beta])
        _forward_chunk(xyz[p], t[p], theta, dt, steps)


def _sensitivity(sigmas, rhos, beta, x0, dt, n):
    """The grid, computed in blocks of points (at least a few a thread) and, within a
    block, in calls of about :data:`CHUNK_POINT_STEPS` point-steps, so that Ctrl-C is
    handled between calls however large ``n`` is."""
    out = np.empty((sigmas.size, rhos.size))
    flat = out.reshape(-1)
    most = min(CHUNK_POINT_STEPS // max(n, 1), _BLOCK_POINTS)
    per = max(4 * numba.get_num_threads(), most)
    for k0 in range(0, flat.size, per):
        count = min(per, flat.size - k0)
        xyz = np.repeat(x0[None, :], count, axis=0)
        t = np.zeros((count, 6, 8))
        t[:, range(6), range(6)] = 1.0  # the inputs' one-hot tangents, as _forward_mode
        steps = max(1, CHUNK_POINT_STEPS // count)
        for start in range(0, n, steps):
            _sensitivity_steps(sigmas, rhos, beta, dt, k0, xyz, t, min(steps, n - start))
        acc = np.zeros(count)
        for c in range(6):  # in _forward_mode's order: the sums are bit for bit its
            acc += np.abs(t[:, 0, c])
        flat[k0:k0 + count] = acc / 6
    return out


#: The most grid points :func:`_sensitivity` runs at once (their states and tangents take
#: 416 bytes a point: 27 MB).
_BLOCK_POINTS = 2**16


def sensitivity_map(
    sigmas: Sequence[float] | np.ndarray,
    rhos: Sequence[float] | np.ndarray,
    beta: float = DEFAULT_THETA[2],
    *,
    x0: Sequence[float] = DEFAULT_X0,
    dt: float = DEFAULT_DT,
    n: int = DEFAULT_STEPS,
) -> np.ndarray:
    """Mean |gradient| over the six inputs on a (sigma, rho) grid (paper Figure 3).

    Forward mode, parallel over grid points (Numba ``prange``).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``sigmas``, ``rhos``, ``beta``, ``x0``, ``dt`` or ``n`` is not made of
        (real, for ``n`` integer) numbers.
    pebbles.PebblesValueError
        If a value is not finite, ``sigmas`` or ``rhos`` is not 1-D, or ``n`` lies
        outside ``0..2**63 - 1``.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(sigmas), len(rhos))``.
    """
    return _sensitivity(*_sensitivity_inputs(sigmas, rhos, beta, x0, dt, n))


def _sensitivity_inputs(sigmas: object, rhos: object, beta: object, x0: object, dt: object,
                       n: object) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, float,
                                            int]:
    """The arguments of :func:`sensitivity_map`, checked as it checks them: flat
    contiguous float64 grids, ``beta``, ``x0``, ``dt`` and ``n`` (the GPU twin's checks too).

    Raises
    ------
    pebbles.PebblesTypeError, pebbles.PebblesValueError
        As :func:`sensitivity_map`.
    """
    s = _axis(sigmas, "sigmas", "the sigma grid", [5.0, 10.0])
    r = _axis(rhos, "rhos", "the rho grid", [20.0, 27.0])
    b = _real(beta, "beta", "parameter beta", DEFAULT_THETA[2])
    return s, r, b, _as3(x0, "x0"), _dt(dt), _n(n)


def _axis(values: object, name: str, what: str, example: list[float]) -> np.ndarray:
    """One axis of :func:`sensitivity_map`: a 1-D sequence of finite real numbers, as a
    contiguous float64 array (a 2-D one would be flattened, a scalar make a 1-point axis:
    the map's shape would not be ``(len(sigmas), len(rhos))``)."""
    arr = reals(values, name, what, example, finite=True)
    if arr.ndim != 1:
        raise pebbles.PebblesValueError(
            f"{_shown(name, values)} has shape {arr.shape}; it must be 1-D ({what}, one "
            f"value a grid row or column); pass e.g. {name}={example} or "
            f"{name}=np.ravel({name})")
    return np.ascontiguousarray(arr)


# ---------------------------------------------------------------------------
# reverse mode
# ---------------------------------------------------------------------------
@njit(cache=True)
def _vjp_into(yv, theta, dt, ybar, out, tbar):
    """Write d/dy of <ybar, step(y)> into ``out`` and d/dtheta into ``tbar``."""
    g = _vjp3(yv[0], yv[1], yv[2], theta[0], theta[1], theta[2], dt,
              ybar[0], ybar[1], ybar[2])
    out[0], out[1], out[2] = g[0], g[1], g[2]
    tbar[0], tbar[1], tbar[2] = g[3], g[4], g[5]


@njit(cache=True)
def _rk4_vjp(y, theta, dt, ybar):
    """Compiled :func:`rk4_vjp` (float64 arrays; for compiled callers and checked input)."""
    _check_vectors(y, theta, ybar)
    out = np.empty(3)
    tbar = np.empty(3)
    _vjp_into(y, theta, dt, ybar, out, tbar)
    return out, tbar


def rk4_vjp(
    y: Sequence[float] | np.ndarray, theta: Sequence[float] | np.ndarray, dt: float,
    ybar: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Hand-derived vector-Jacobian product of :func:`rk4_step`.

    Parameters
    ----------
    y : sequence of float or numpy.ndarray
        The state the step started from: 3 real numbers.
    theta : sequence of float or numpy.ndarray
        (sigma, rho, beta): 3 real numbers.
    dt : float
        Time step: a finite real number.
    ybar : sequence of float or numpy.ndarray
        Gradient with respect to the step's output: 3 real numbers.

    Returns
    -------
    ybar_prev, thetabar : numpy.ndarray
        Gradients with respect to ``y`` and ``theta`` (new float64 arrays of
        shape (3,) each).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``y``, ``theta`` or ``ybar`` does not hold real numbers, or ``dt`` is not
        a real number.
    pebbles.PebblesValueError
        If ``y``, ``theta`` or ``ybar`` does not have 3 components, or ``dt`` is not
        finite.

    Notes
    -----
    Array-likes are converted to float64 as by :func:`rk4_step` (float64
    arrays of shape (3,) go to the compiled kernel as they are); values are
    not checked.

    Examples
    --------
    >>> from solvers.lorenz import rk4_vjp
    >>> ybar_prev, thetabar = rk4_vjp([1, 0, 0], [10, 27, 8 / 3], 0.0, [1, 0, 0])
    >>> ybar_prev, thetabar.shape
    (array([1., 0., 0.]), (3,))
    """
    y, theta, dt = _kernel_args(y, theta, dt)
    return _rk4_vjp(y, theta, dt, _float64(ybar, "ybar"))


def gradient_reverse(
    schedule: pebbles.Schedule | Iterable[pebbles.Move] | np.ndarray,
    x0: Sequence[float] = DEFAULT_X0,
    theta: Sequence[float] = DEFAULT_THETA,
    dt: float = DEFAULT_DT,
    n: int | None = None,
) -> LorenzGradient:
    """Reverse-mode gradient through the generic executor :func:`pebbles.replay`.

    ``schedule`` is any checkpoint-game (or in-place game) schedule: a
    :func:`pebbles.schedule` value (it carries its ``n``), or moves or an
    encoded array for ``n`` steps (default :data:`DEFAULT_STEPS`). A run that
    overflows returns inf or NaN without NumPy warnings, as :func:`replay_lorenz`.

    Examples
    --------
    >>> import numpy as np, pebbles
    >>> from solvers.lorenz import gradient_reverse, gradient_forward
    >>> g = gradient_reverse(pebbles.schedule("treeverse", 100, budget=5))
    >>> bool(np.allclose(g.gradient, gradient_forward(n=100).gradient, rtol=1e-12))
    True
    """
    y0, th, dt = _as3(x0, "x0"), _as3(theta, "theta"), _dt(dt)
    if n is None and not isinstance(schedule, (pebbles.Schedule, pebbles.SlotProgram)):
        n = DEFAULT_STEPS
    unit = np.array([1.0, 0.0, 0.0])
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: inf/NaN, as the Numba
        r = pebbles.replay(                               # executor (callers check them)
            schedule, n, y0,
            step=lambda i, s: _rk4_step(s, th, dt),  # the compiled kernels: checked above
            step_into=lambda i, s, out: _step_into(s, th, dt, out),
            backward=lambda i, s, g: _rk4_vjp(s, th, dt, g),
            loss_grad=lambda s: unit.copy(),
            loss=lambda s: float(s[0]),
        )
    grad = np.concatenate([r.grad_s0, r.grad_theta])
    return LorenzGradient(
        float(r.loss), grad, r.forward_steps, r.backward_steps, r.peak_states, r.seconds
    )


@njit(cache=True, inline="always")
def _walk(x, y, z, count, theta, dt):
    """``count`` RK4 steps from (x, y, z), in registers."""
    for _ in range(count):
        x, y, z = _step3(x, y, z, theta[0], theta[1], theta[2], dt)
    return x, y, z


@njit(cache=True, inline="always")
def _walk_vjp(x, y, z, count, theta, dt, px, py, pz, gx, gy, gz):
    """``count >= 1`` steps from (x, y, z) and, alongside, the vjp at (px, py, pz).

    The vjp and the walk are independent, so the core runs both latency chains
    at once: a deferred paint costs about nothing next to a walk.
    """
    g = _vjp3(px, py, pz, theta[0], theta[1], theta[2], dt, gx, gy, gz)
    x, y, z = _step3(x, y, z, theta[0], theta[1], theta[2], dt)
    for _ in range(count - 1):
        x, y, z = _step3(x, y, z, theta[0], theta[1], theta[2], dt)
    return x, y, z, g


@njit(cache=True)
def _replay_rows(ops, k0, chunk, slots, reg, theta, dt):
    """Run rows of a slot program (``pebbles.lower``) over ``slots`` from row ``k0`` until
    about ``chunk`` steps have run (a row runs whole); returns the next row.

    States are rows of ``slots``; slot 0 holds s_0. Steps and vjps run on
    scalars, and the state last computed (slot ``last``) stays in registers,
    so a walk that continues from it does not wait for its own store (only a
    step writes a slot, so the registers stay valid until the next step).

    A paint is deferred: its state is copied to registers (``px, py, pz``)
    and its vjp runs with the first step of the next walk (:func:`_walk_vjp`),
    or before the next paint. Gradients are chained in the program's order,
    so the result is bit for bit that of painting at once; Treeverse S=10
    replays 4-6 % faster (n = 10^4).

    The registers live in ``reg`` between calls: (gx, gy, gz, ts, tr, tb, loss,
    lx, ly, lz, px, py, pz, last, pend), so a program run in chunks
    (:func:`_replay`) is bit for bit one run.
    """
    gx, gy, gz, ts, tr, tb, loss = reg[0], reg[1], reg[2], reg[3], reg[4], reg[5], reg[6]
    lx, ly, lz, px, py, pz = reg[7], reg[8], reg[9], reg[10], reg[11], reg[12]
    last, pend = int(reg[13]), reg[14] != 0.0
    k, steps = k0, 0
    while k < ops.shape[0] and steps < chunk:
        op, src = ops[k, 0], ops[k, 1]
        if op == _STEP:
            dst, count = ops[k, 2], ops[k, 4]
            steps += count
            if src != last:
                lx, ly, lz = slots[src, 0], slots[src, 1], slots[src, 2]
            if pend:
                lx, ly, lz, g = _walk_vjp(lx, ly, lz, count, theta, dt, px, py, pz, gx, gy, gz)
                gx, gy, gz = g[0], g[1], g[2]
                ts, tr, tb = ts + g[3], tr + g[4], tb + g[5]
                pend = False
            else:
                lx, ly, lz = _walk(lx, ly, lz, count, theta, dt)
            slots[dst, 0], slots[dst, 1], slots[dst, 2] = lx, ly, lz
            last = dst
        elif op == _SEED:
            loss = slots[src, 0]
            gx = 1.0
        elif op == _PAINT:
            if pend:
                g = _vjp3(px, py, pz, theta[0], theta[1], theta[2], dt, gx, gy, gz)
                gx, gy, gz = g[0], g[1], g[2]
                ts, tr, tb = ts + g[3], tr + g[4], tb + g[5]
            px, py, pz = slots[src, 0], slots[src, 1], slots[src, 2]
            pend = True
        k += 1
        steps += 1
    reg[0], reg[1], reg[2], reg[3], reg[4], reg[5], reg[6] = gx, gy, gz, ts, tr, tb, loss
    reg[7], reg[8], reg[9], reg[10], reg[11], reg[12] = lx, ly, lz, px, py, pz
    reg[13], reg[14] = last, 1.0 if pend else 0.0
    return k


@njit(cache=True)
def _paint_last(reg, theta, dt):
    """The vjp of the paint :func:`_replay_rows` deferred past the program's end."""
    if reg[14] != 0.0:
        g = _vjp3(reg[10], reg[11], reg[12], theta[0], theta[1], theta[2], dt,
                  reg[0], reg[1], reg[2])
        reg[0], reg[1], reg[2] = g[0], g[1], g[2]
        reg[3], reg[4], reg[5] = reg[3] + g[3], reg[4] + g[4], reg[5] + g[5]
        reg[14] = 0.0


def _replay(ops: np.ndarray, nslots: int, x0: np.ndarray, theta: np.ndarray,
            dt: float) -> tuple[float, np.ndarray]:
    """Run a slot program in chunks of rows (:func:`_replay_rows`; Ctrl-C works between
    them); returns (loss, gradient (6,))."""
    slots = np.empty((nslots, 3))
    slots[0] = x0
    reg = np.zeros(15)
    reg[6], reg[13] = np.nan, -1.0
    k = 0
    while k < len(ops):
        k = _replay_rows(ops, k, CHUNK_POINT_STEPS, slots, reg, theta, dt)
    _paint_last(reg, theta, dt)
    return float(reg[6]), reg[:6].copy()


def _program(schedule: Any, n: int | None, slots: int | None, who: str = "replay_lorenz",
             runs: str = "replay_lorenz runs") -> pebbles.SlotProgram:
    """The checked, memory-only slot program of ``schedule`` (raises before any step):
    a SlotProgram as it is, anything else lowered by :func:`pebbles.lower` with ``slots``.
    ``who`` names the executor in the messages, ``runs`` starts the disk one
    (:meth:`pebbles.SlotProgram.in_memory`)."""
    if isinstance(schedule, pebbles.SlotProgram):
        if n is not None and n != schedule.n:
            raise pebbles.PebblesValueError(
                f"this program is for n={schedule.n}, {who} got n={n}; drop n or "
                f"pass n={schedule.n}")
        _check_program_slots(schedule, slots)
        prog = schedule.check()
    else:
        prog = pebbles.lower(schedule, n, slots=slots)
    return prog.in_memory(runs)


def _check_program_slots(prog: pebbles.SlotProgram, slots: object) -> None:
    """Refuse ``slots`` (when given) below ``prog.nslots``: a lowered program has its
    slots assigned, as :func:`pebbles.lower` refuses too few for a schedule."""
    if slots is None:
        return
    count = whole(slots, 2, "slots", "state slots, s_0 included")
    if count < prog.nslots:
        raise pebbles.PebblesValueError(
            f"slots={slots!r} is fewer than this program's nslots={prog.nslots} (it was "
            f"lowered onto {prog.nslots} slots, s_0 included); pass slots={prog.nslots} or "
            f"more, or leave slots out: a program runs on its own slots")


def replay_lorenz(
    schedule: pebbles.Schedule | pebbles.SlotProgram | Iterable[pebbles.Move] | np.ndarray,
    n: int | None = None,
    x0: Sequence[float] = DEFAULT_X0,
    theta: Sequence[float] = DEFAULT_THETA,
    dt: float = DEFAULT_DT,
    *,
    slots: int | None = None,
) -> LorenzGradient:
    """Reverse-mode gradient by running a schedule's slot program in one Numba function.

    The schedule is checked and lowered by :func:`pebbles.lower` before any
    step runs (an illegal move raises there, naming its index, the move and
    the rule); the compiled loop then runs the program's steps, seed and
    paints over a preallocated ``(nslots, 3)`` array.

    Parameters
    ----------
    schedule : Schedule, SlotProgram, iterable of Move, or encoded (m, 3) array
        Any checkpoint-game or in-place-game schedule.
    n : int, optional
        Number of steps (needed unless ``schedule`` carries its own).
    x0, theta, dt
        Initial state, (sigma, rho, beta) and time step.
    slots : int, optional
        Slots, ``s_0`` included; default exactly as many as the schedule needs. A
        SlotProgram runs on the slots it was lowered onto: ``slots`` below its
        ``nslots`` is refused.

    Returns
    -------
    LorenzGradient
        The counts are the program's (``forward_steps`` includes the step that
        computes ``s_n`` for the seed); ``seconds`` times the compiled replay
        only (lower once and pass the SlotProgram to replay it repeatedly).

    Raises
    ------
    pebbles.IllegalMoveError
        If the schedule breaks a rule or needs more than ``slots`` states.
    pebbles.PebblesValueError
        If the schedule keeps states on disk (two-level storage), or ``slots`` is
        below a SlotProgram's ``nslots``. A program lowered with ``frees=True``
        runs (its ``OP_FREE`` rows are skipped).

    Examples
    --------
    >>> import pebbles
    >>> from solvers.lorenz import replay_lorenz
    >>> g = replay_lorenz(pebbles.schedule("treeverse", 20, budget=4))
    >>> g.forward_steps, g.backward_steps, g.peak_states
    (41, 20, 5)
    """
    y0, th, dt = _as3(x0, "x0"), _as3(theta, "theta"), _dt(dt)
    prog = _program(schedule, n, slots)
    t0 = time.perf_counter()
    loss, grad = _replay(prog.ops, prog.nslots, y0, th, dt)
    seconds = time.perf_counter() - t0
    return LorenzGradient(float(loss), grad, prog.forward_steps, prog.backward_steps,
                          prog.peak_states, seconds)


# ---------------------------------------------------------------------------
# online: run until x crosses a level (n unknown when the run starts)
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LorenzCrossing:
    """A gradient at the step where x first reached a level.

    Attributes
    ----------
    n : int
        The stopping step: the first ``i >= 1`` with ``x_i >= level``, or
        ``max_steps`` if there was none.
    crossed : bool
        Whether x reached the level (False: the run stopped at ``max_steps``).
    result : LorenzGradient
        Loss ``x_n``, its gradient and the costs. ``forward_steps`` counts the
        search's ``n`` steps plus the replayed program's; ``seconds`` is the
        sum of the three times below.
    search_seconds, plan_seconds, replay_seconds : float
        Compiled search for ``n``; the online stream and its lowering (Python);
        the compiled replay.
    """

    n: int
    crossed: bool
    result: LorenzGradient
    search_seconds: float
    plan_seconds: float
    replay_seconds: float


@njit(cache=True)
def _crossing_in(xyz, theta, dt, level, i0, i1):
    """The first i in i0..i1-1 with x_i >= level, or -1, stepping ``xyz`` (s_{i0-1}) in
    place; the state is in registers within the call."""
    x, y, z = xyz[0], xyz[1], xyz[2]
    for i in range(i0, i1):
        x, y, z = _step3(x, y, z, theta[0], theta[1], theta[2], dt)
        if x >= level:
            return i
    xyz[0], xyz[1], xyz[2] = x, y, z
    return -1


def _first_crossing(y0: np.ndarray, theta: np.ndarray, dt: float, level: float,
                    max_steps: int) -> int:
    """The first i in 1..max_steps with x_i >= level, or -1: chunks of
    :data:`CHUNK_POINT_STEPS` steps, so that Ctrl-C works between them."""
    xyz = y0.copy()
    for i0 in range(1, max_steps + 1, CHUNK_POINT_STEPS):
        i = _crossing_in(xyz, theta, dt, level, i0, min(max_steps + 1, i0 + CHUNK_POINT_STEPS))
        if i >= 0:
            return int(i)
    return -1


def _online_budget(budget: int, inplace: bool) -> int:
    inplace = boolean(inplace, "inplace")
    game = "in-place" if inplace else "checkpoint"
    return _n(budget, 1 if inplace else 2, "budget",
              f"states stored besides s_0 by an online schedule in the {game} game: a run "
              f"of unknown length may need to walk")


def gradient_until_crossing(
    level: float,
    budget: int,
    x0: Sequence[float] = DEFAULT_X0,
    theta: Sequence[float] = DEFAULT_THETA,
    dt: float = DEFAULT_DT,
    *,
    max_steps: int = DEFAULT_STEPS,
    inplace: bool = False,
    beyond: str = "greedy",
) -> LorenzCrossing:
    """Run RK4 until ``x_i >= level``, then return ``d x_n / d (x0, y0, z0, sigma, rho, beta)``.

    The stopping condition is an event on a fixed-step run, so every step is
    the same differentiable map as in :func:`replay_lorenz`; the stopping step
    ``n`` is held fixed (it is piecewise constant in the inputs, and the
    gradient is that of ``x_n`` for this ``n``, as a fixed-``n`` schedule gives).
    Adaptive ``dt`` was not chosen: it would make the step depend on the
    error estimate, a different map to differentiate.

    No ``n`` is given. A compiled search runs the steps keeping only the
    current state and finds ``n``; then :func:`pebbles.schedule` ``("online",
    n, budget=budget)`` is lowered and replayed by the Numba executor. Its
    forward phase is the online scheduler's, which never looks at ``n``, so
    at most ``budget`` states besides ``s_0`` are held. Cost: the forward
    phase is computed twice (``n`` search steps, then the stream's), but a
    Lorenz step takes nanoseconds while generating the online stream in
    Python takes microseconds per step, so the search is a small part of the
    time (see ``plan_seconds``). The lowered program takes memory in
    proportion to ``n`` (its ops), as every program :func:`replay_lorenz`
    runs does. The gradient is bit for bit that of any offline schedule for
    this ``n`` (store-all, Treeverse) and of :func:`pebbles.replay_until`.

    Parameters
    ----------
    level : float
        Stop at the first ``i >= 1`` with ``x_i >= level`` (``s_0`` is not tested).
    budget : int
        States stored besides ``s_0``, the working state included (>= 2; in-place >= 1).
    x0, theta, dt
        Initial state, (sigma, rho, beta) and time step.
    max_steps : int
        Stop at ``n = max_steps`` if x never reaches the level (``crossed`` is False).
    inplace : bool
        Play the in-place game (steps may overwrite their input).
    beyond : {'greedy', 'wang-moin'}
        The online rule past its optimal range (:class:`pebbles.OnlineScheduler`).

    Returns
    -------
    LorenzCrossing

    Examples
    --------
    >>> import numpy as np, pebbles
    >>> from solvers.lorenz import gradient_until_crossing, replay_lorenz
    >>> c = gradient_until_crossing(10.0, budget=5)
    >>> c.n, c.crossed, c.result.peak_states     # s_0 and 5 stored states
    (98, True, 6)
    >>> g = replay_lorenz(pebbles.schedule("treeverse", c.n, budget=5))
    >>> bool(np.array_equal(c.result.gradient, g.gradient))
    True
    """
    value = _real(level, "level", "x level at which the run stops", 10.0)
    budget = _online_budget(budget, inplace)
    if beyond not in ("greedy", "wang-moin"):
        raise pebbles.PebblesValueError(
            f"beyond={beyond!r} is not an online rule; pass 'greedy' or 'wang-moin'")
    max_steps = _n(max_steps, 1, "max_steps", "the most RK4 steps, the run's length if x "
                   "never reaches the level")
    y0, th, dt = _as3(x0, "x0"), _as3(theta, "theta"), _dt(dt)
    t0 = time.perf_counter()
    i = _first_crossing(y0, th, dt, value, max_steps)
    t1 = time.perf_counter()
    n = max_steps if i < 0 else int(i)
    prog = pebbles.schedule("online", n, budget=budget, inplace=inplace, beyond=beyond).lower()
    t2 = time.perf_counter()
    g = replay_lorenz(prog, None, y0, th, dt)
    t3 = time.perf_counter()
    result = LorenzGradient(g.loss, g.gradient, n + g.forward_steps, g.backward_steps,
                            g.peak_states, t3 - t0)
    return LorenzCrossing(n, i >= 0, result, t1 - t0, t2 - t1, t3 - t2)


# ---------------------------------------------------------------------------
# adjoint-state method (Algorithm 1)
# ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _aug(z, theta, out):
    """Augmented dynamics: (f(y), -J_y^T a, -J_theta^T a) for z = (y, a, g)."""
    s, r, b = theta[0], theta[1], theta[2]
    fx, fy, fz = _f(z[0], z[1], z[2], s, r, b)
    c = _fvjp(z[0], z[1], z[2], s, r, b, z[3], z[4], z[5])
    out[0], out[1], out[2] = fx, fy, fz
    for k in range(6):
        out[3 + k] = -c[k]


@njit(cache=True)
def _aug_rk4(z, theta, h, k1, k2, k3, k4, tmp):
    """One RK4 step of the augmented system in place, with explicit loops (no temporaries)."""
    _aug(z, theta, k1)
    for i in range(9):
        k1[i] *= h
        tmp[i] = z[i] + k1[i] / 2
    _aug(tmp, theta, k2)
    for i in range(9):
        k2[i] *= h
        tmp[i] = z[i] + k2[i] / 2
    _aug(tmp, theta, k3)
    for i in range(9):
        k3[i] *= h
        tmp[i] = z[i] + k3[i]
    _aug(tmp, theta, k4)
    for i in range(9):
        k4[i] *= h
        z[i] += k1[i] / 6 + k2[i] / 3 + k3[i] / 3 + k4[i] / 6


@njit(cache=True)
def _adjoint_forward(y, theta, dt, i0, i1, every, stored):
    """Steps ``i0..i1-1`` from ``y`` in place, storing every ``every``-th state (0: none)."""
    for i in range(i0, i1):
        _step_into(y, theta, dt, y)
        if every > 0 and (i + 1) % every == 0:
            stored[(i + 1) // every] = y


@njit(cache=True)
def _adjoint_backward(z, theta, dt, i1, i0, every, stored, work):
    """Backward steps ``i1-1`` down to ``i0`` of the augmented system ``z`` in place,
    resetting its ``y`` to each stored state; ``work`` is five scratch rows of 9."""
    k1, k2, k3, k4, tmp = work[0], work[1], work[2], work[3], work[4]  # views made once
    for i in range(i1 - 1, i0 - 1, -1):
        _aug_rk4(z, theta, -dt, k1, k2, k3, k4, tmp)
        if every > 0 and i % every == 0:
            z[:3] = stored[i // every]


def _adjoint(y0: np.ndarray, theta: np.ndarray, dt: float, n: int, every: int
             ) -> tuple[float, np.ndarray, int]:
    """Algorithm 1 in chunks of :data:`CHUNK_POINT_STEPS` steps (Ctrl-C works between
    them; the result is bit for bit one run); returns (x_n, gradient (6,), states held)."""
    nstore = n // every + 1 if every > 0 else 1
    stored = np.empty((nstore, 3))
    y = y0.copy()
    if every > 0:
        stored[0] = y
    for i0 in range(0, n, CHUNK_POINT_STEPS):
        _adjoint_forward(y, theta, dt, i0, min(n, i0 + CHUNK_POINT_STEPS), every, stored)
    z = np.zeros(9)
    z[:3], z[3] = y, 1.0
    work = np.empty((5, 9))
    for i1 in range(n, 0, -CHUNK_POINT_STEPS):
        _adjoint_backward(z, theta, dt, i1, max(0, i1 - CHUNK_POINT_STEPS), every, stored, work)
    return float(y[0]), z[3:].copy(), nstore


def gradient_adjoint(
    x0: Sequence[float] = DEFAULT_X0,
    theta: Sequence[float] = DEFAULT_THETA,
    dt: float = DEFAULT_DT,
    n: int = DEFAULT_STEPS,
    *,
    reload_every: int | None = None,
) -> LorenzGradient:
    """Adjoint-state gradient (paper Algorithm 1): approximate, O(T) time.

    The augmented system ``(y, a = dL/dy, g = dL/dtheta)`` with
    ``dy/dt = f``, ``da/dt = -J_y^T a``, ``dg/dt = -J_theta^T a`` is integrated
    backward from ``(y_n, e_x, 0)`` with RK4 (step ``-dt``). RK4 is not
    time-reversible, so the backward ``y`` drifts from the forward trajectory;
    with ``reload_every=K`` the forward pass stores every K-th state and the
    backward ``y`` is reset to it (paper Figure 4b). ``reload_every`` must
    be an integer >= 1 or None (no reloads); other values raise
    :class:`pebbles.PebblesTypeError` or :class:`pebbles.PebblesValueError`.

    Examples
    --------
    >>> from solvers.lorenz import gradient_adjoint, gradient_forward
    >>> import numpy as np
    >>> a = gradient_adjoint(n=100, reload_every=10).gradient
    >>> e = gradient_forward(n=100).gradient
    >>> bool(np.linalg.norm(a - e) < 1e-6 * np.linalg.norm(e))
    True
    """
    every = 0 if reload_every is None else _n(
        reload_every, 1, "reload_every", "the reload interval K, or None for no reloads")
    t0 = time.perf_counter()
    loss, grad, nstore = _adjoint(_as3(x0, "x0"), _as3(theta, "theta"), _dt(dt), _n(n),
                                  every)
    return LorenzGradient(float(loss), grad, int(n), int(n), int(nstore) + 3,
                          time.perf_counter() - t0)


# ---------------------------------------------------------------------------
# memory needed and available
# ---------------------------------------------------------------------------
_STATE_BYTES = 3 * 8
#: ``--executor generic`` (:func:`gradient_reverse`, :func:`pebbles.replay`): bytes a step
#: and bytes a state held, from the peak RSS growth of runs at n = 1e5, 3e5 and 1e6
#: (x86-64, NumPy 2): treeverse S = 10 (states negligible) grew 627-651 bytes a step,
#: store-all (n states) 1195-1227; a state is a NumPy array and its Python references.
_GENERIC_BYTES_PER_STEP = 660
_GENERIC_STATE_BYTES = 560
_EXECUTORS = ("numba", "generic")


def memory_estimate(method: str, n: int, *, states: int = 0, executor: str = "numba",
                    moves: int | None = None) -> int:
    """Bytes a gradient of ``n`` steps needs (an estimate made before it starts).

    Parameters
    ----------
    method : str
        ``forward`` (constant memory), ``adjoint`` (the ``states`` reloaded
        states) or any schedule method (the lowering of its ``moves``
        into a slot program, plus ``states`` stored states,
        24 bytes each, with the Numba executor; with the generic one at least
        660 bytes a step and 560 a state).
    n : int
        Number of steps.
    states : int
        States held at once besides ``s_0``.
    executor : {'numba', 'generic'}
        The executor of a schedule method (:func:`replay_lorenz` or
        :func:`gradient_reverse`); ignored by ``forward`` and ``adjoint``.
    moves : int, optional
        Moves of the schedule's stream; default ``3 n``, a walk, a paint and a remove a
        cell (treeverse, store-all). Ignored by ``forward`` and ``adjoint``.

    Raises
    ------
    pebbles.PebblesValueError
        If ``method`` is not one of ``python -m solvers.lorenz gradient
        --method``'s choices, ``executor`` not one of the two, or ``n``,
        ``states`` or ``moves`` is negative.
    pebbles.PebblesTypeError
        If ``n``, ``states`` or ``moves`` is not an integer.

    Examples
    --------
    >>> from solvers.lorenz import memory_estimate
    >>> memory_estimate("store-all", 10**9, states=10**9) > 10**11
    True
    """
    methods = _gradient_methods()
    if method not in methods:
        raise pebbles.PebblesValueError(
            f"method={method!r} is not a Lorenz gradient method; pass one of "
            f"{', '.join(methods)}")
    if executor not in _EXECUTORS:
        raise pebbles.PebblesValueError(
            f"executor={executor!r:.40} is not a Lorenz executor; pass executor='numba' "
            f"(replay_lorenz) or executor='generic' (gradient_reverse)")
    n = _n(n)
    states = _n(states, 0, "states", "the states held at once besides s_0")
    moves = 3 * n if moves is None else _n(moves, 0, "moves", "the moves of the schedule")
    fixed = _STATE_BYTES * (states + 2)
    if method in ("forward", "adjoint"):
        return fixed + (8 * 6 * 8 if method == "forward" else 0)
    program = program_bytes(moves, n)
    if executor == "generic":
        return max(_GENERIC_BYTES_PER_STEP * n, program) + _GENERIC_STATE_BYTES * (states + 2)
    return fixed + program


def _gigabytes(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def _states_held(args: argparse.Namespace, s: pebbles.Schedule | None) -> int:
    """States held at once besides ``s_0``: the reloaded ones of ``adjoint``; a schedule's
    :func:`_stored_states` (a schedule never holds more than ``n``)."""
    if args.method == "adjoint":
        return 0 if args.every is None else args.steps // args.every + 1
    return 0 if s is None else min(_stored_states(s), args.steps)


def _check_memory(args: argparse.Namespace, s: pebbles.Schedule | None) -> None:
    """Refuse a run that needs more memory than is available (unless ``--force``); with
    ``--until-x``, of a run of all ``--steps``, as :func:`_check_time` words it (only
    ``--method online`` takes the flag: no ``--method forward`` to suggest)."""
    generic = s is not None and _executor(args) == "generic"
    need = memory_estimate(args.method, args.steps, states=_states_held(args, s),
                           executor=_executor(args),
                           moves=None if s is None else schedule_moves(s))
    free = available_memory()
    if args.force or free is None or need <= free:
        return
    until = sooner = ""
    fix = f"{', --executor numba' * generic} or --method forward (constant memory)"
    if args.until_x is not None:
        until, sooner = (f" --until-x {args.until_x:g}",
                         f" if x does not reach {args.until_x:g} sooner")
        fix = f"{', --executor numba' * generic} (the most steps the run takes)"
    raise pebbles.PebblesValueError(
        f"--method {args.method}{until} --steps {args.steps}{' --executor generic' * generic} "
        f"needs about {_gigabytes(need)} of memory{sooner} (the lowered schedule and the "
        f"stored states), more than the {_gigabytes(free)} available; pass --force to run "
        f"anyway, or use fewer --steps{fix}")


#: Point-steps (an RK4 step, with or without tangents, at one grid point) a thread is
#: assumed to run a second: faster than measured (about 1e7 for forward mode, 3e7 for a
#: schedule's replay), so that :func:`check_run_time`'s estimate is a lower bound.
POINT_STEPS_PER_SECOND = 1e8
#: RK4 steps (forward or backward) ``--executor generic`` (:func:`gradient_reverse`, a
#: Python loop over the moves) is assumed to run a second: faster than measured (4e4 to
#: 2e5 on an x86-64 core, 500 times slower than the Numba replay), for a lower bound too.
GENERIC_STEPS_PER_SECOND = 1e6
#: Longest estimated run the command lines start without ``--force`` (seconds).
MAX_RUN_SECONDS = 3600


def _duration(seconds: float) -> str:
    for unit, scale in (("years", 3.15e7), ("days", 86400.0), ("hours", 3600.0)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 60:.3g} minutes"


def check_run_time(what: str, point_steps: int, fix: str, *, threads: int = 1,
                   rate: float = POINT_STEPS_PER_SECOND, least: str = "",
                   extra: tuple[float, str] | None = None) -> None:
    """Refuse a run of more than :data:`MAX_RUN_SECONDS` at ``rate`` point-steps a second
    per thread: one error naming ``what``, the estimate and ``fix``. ``least``: why
    ``point_steps`` is only a lower bound (the message then says "at least");
    ``extra``: the seconds of other work the run does and what it is (counted in, named
    after the steps).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``what``, ``fix`` or ``least`` is not a string, ``point_steps``, ``threads``
        or ``rate`` not a number (``threads`` not an integer), or ``extra`` not None or
        a pair (seconds, description).
    pebbles.PebblesValueError
        If the run is estimated at more than :data:`MAX_RUN_SECONDS`, ``point_steps`` is
        not a finite number >= 0, ``threads`` is below 1, ``rate`` not a finite number
        above 0 or ``extra``'s seconds not a finite number >= 0.
    """
    _text(what, "what", "--steps 1000"), _text(fix, "fix", "use fewer --steps")
    _text(least, "least", "(a lower bound)")
    steps = _real(point_steps, "point_steps", "count of RK4 steps (summed over the run's "
                  "points)", 1e9)
    if steps < 0:
        raise pebbles.PebblesValueError(
            f"point_steps={point_steps!r} must be a finite number >= 0 (the RK4 steps the "
            f"run takes, summed over its points); pass e.g. point_steps=1e9")
    threads = whole(threads, 1, "threads", "the threads the run uses")
    rate = _real(rate, "rate", "point-steps a thread runs a second", POINT_STEPS_PER_SECOND,
                 positive=True)
    more, also = _extra(extra)
    seconds = steps / (rate * threads) + more
    if seconds > MAX_RUN_SECONDS:
        count = f"at least {steps:.3g} RK4 steps {least}" if least else \
            f"{steps:.3g} RK4 steps"
        raise pebbles.PebblesValueError(
            f"{what} is {count}{f' and {also}' if also else ''}: at least "
            f"{_duration(seconds)} at {rate:.0e} steps a second per thread on {threads} "
            f"thread{'s' if threads > 1 else ''}, more than the {MAX_RUN_SECONDS // 60} "
            f"minutes started without asking; {fix}")


def _text(value: object, name: str, example: str = "use fewer --steps") -> str:
    """``value``, refused unless a string (an argument of :func:`check_run_time`)."""
    if not isinstance(value, str):
        raise pebbles.PebblesTypeError(
            f"{_shown(name, value)} must be a string (words of check_run_time's message); "
            f"pass e.g. {name}={example!r}")
    return value


def _extra(extra: object) -> tuple[float, str]:
    """``extra`` of :func:`check_run_time` as (seconds, what): (0.0, "") for None."""
    if extra is None:
        return 0.0, ""
    if not isinstance(extra, tuple) or len(extra) != 2:
        raise pebbles.PebblesTypeError(
            f"{_shown('extra', extra)} must be None or a pair (seconds, what they are "
            f"spent on); pass e.g. extra=(60.0, 'the drawing')")
    more = _real(extra[0], "extra[0]", "seconds of other work", 60.0)
    if more < 0:
        raise pebbles.PebblesValueError(
            f"extra[0]={extra[0]!r} must be a finite number >= 0 (seconds of other work); "
            f"pass e.g. extra=(60.0, 'the drawing')")
    return more, _text(extra[1], "extra[1]", "the drawing")


def _stored_states(s: pebbles.Schedule) -> int:
    """At least the most states ``s`` holds at once besides s_0, found at once: its
    budget; for treeverse-paper delta + 1 (Algorithm 3 stores at most delta
    checkpoints, and the working state); else what the registry says the method
    needs (:attr:`pebbles.Method.need`, a formula for the methods that take no
    budget); else n.

    Not the registry's ``need`` for treeverse-paper: it plays the stream (up to a
    second before the run starts) and knows nothing past two million moves, the long
    runs whose time this bound prices."""
    if s.budget is not None:
        return s.budget
    if s.method == "treeverse-paper":
        return dict(s.options)["delta"] + 1
    need = pebbles.describe(s.method).need
    held = None if need is None else need(s.n, **dict(s.options))
    return s.n if held is None else held


def _forward_steps(s: pebbles.Schedule) -> tuple[int, str]:
    """Forward steps of ``s`` and ``""`` from its method's formula; without one (online;
    treeverse-paper where counting takes too long), at once, those of the optimal
    Treeverse holding as many states (:func:`pebbles.min_forward_steps`, which no
    schedule beats) and why that is a lower bound (playing the stream to count them may
    take as long as the run)."""
    steps = pebbles.predicted_steps(s)
    if steps is not None:
        return steps, ""
    states = min(_stored_states(s), s.n)
    return pebbles.min_forward_steps(s.n, states, s.game), (
        f"(no formula counts --method {s.method}'s steps: this is the optimal Treeverse's "
        f"count with the same {states} stored state{'s' if states > 1 else ''}, which no "
        f"schedule beats)")


def _check_time(args: argparse.Namespace, s: pebbles.Schedule | None) -> None:
    """Refuse a gradient whose steps take longer than :data:`MAX_RUN_SECONDS` (unless
    ``--force``): forward and backward steps of the method (a lower bound for a method
    without a formula; with ``--until-x``, of a run of all ``--steps``) at the speed of
    the executor."""
    if args.force:
        return
    n = args.steps
    if s is None:
        steps, least = {"forward": n, "adjoint": 2 * n}[args.method], ""
    else:
        steps, least = _forward_steps(s)
        steps += n  # one backward step a cell
    generic = s is not None and _executor(args) == "generic"
    until = "" if args.until_x is None else f" --until-x {args.until_x:g}"
    if until:
        least = f"if x does not reach {args.until_x:g} sooner {least}".rstrip()
    check_run_time(
        f"--method {args.method}{until} --steps {n}{' --executor generic' * generic}", steps,
        f"use fewer --steps{', or --executor numba' * generic}, or pass --force to run "
        f"anyway (Ctrl-C stops it)",
        rate=GENERIC_STEPS_PER_SECOND if generic else POINT_STEPS_PER_SECOND, least=least)


# ---------------------------------------------------------------------------
# command line: the commands (the parser is at the top, before Numba)
# ---------------------------------------------------------------------------
def _sensitivity_cli(args: argparse.Namespace) -> str:
    """Write the Figure 3 grid to ``args.out``; return a one-line report."""
    from solvers.experiments import _axis_range, sensitivity_grid

    check_npz_output("--out", args.out)  # before the grid is computed, not after
    for name in ("sigma_range", "rho_range"):  # the library's rule, worded as the flags
        _axis_range(getattr(args, name), name, "--" + name.replace("_", "-"))
    if args.resolution < 2:
        raise pebbles.PebblesValueError(
            f"--resolution {args.resolution} must be >= 2 (grid points per axis), e.g. 201")
    need, free = 8 * args.resolution**2, available_memory()
    if not args.force and free is not None and need > free:
        raise pebbles.PebblesValueError(
            f"--resolution {args.resolution} needs about {_gigabytes(need)} for the grid, "
            f"more than the {_gigabytes(free)} available; use a smaller --resolution, or "
            f"pass --force to run anyway")
    if not args.force:
        check_run_time(f"--resolution {args.resolution} --steps {args.steps}",
                       args.resolution**2 * args.steps, "use a smaller --resolution or "
                       "fewer --steps, or pass --force to run anyway (Ctrl-C stops it)",
                       threads=numba.get_num_threads())
    t0 = time.perf_counter()
    grid = sensitivity_grid(args.resolution, sigma_range=tuple(args.sigma_range),
                            rho_range=tuple(args.rho_range), beta=args.beta, n=args.steps,
                            dt=args.dt)
    _check_finite_grid(args, grid)
    path = grid.save(args.out)
    return (f"wrote {path}: {grid.mean_abs_grad.shape} grid in "
            f"{time.perf_counter() - t0:.2f} s")


def _check_finite_grid(args: argparse.Namespace, grid: Any) -> None:
    """An overflowed grid point is an error naming it, the step, --dt and --steps (never
    NaN in the file)."""
    bad = ~np.isfinite(grid.mean_abs_grad)
    if not bad.any():
        return
    i, j = np.argwhere(bad)[0]
    sigma, rho = float(grid.sigmas[i]), float(grid.rhos[j])
    k = overflow_step(DEFAULT_X0, (sigma, rho, args.beta), args.dt, args.steps)
    where = (f"the trajectory overflows at step {k} of {args.steps}" if k is not None
             else f"its tangents overflow within {args.steps} steps")
    raise pebbles.PebblesValueError(
        f"the gradient is not finite at {int(bad.sum())} of {bad.size} grid points (at "
        f"(sigma, rho) = ({sigma:g}, {rho:g}) {where}) with --dt {args.dt:g} and --beta "
        f"{args.beta:g}; use a smaller --dt or fewer --steps{_theta_fix(args, ('beta',))}")


def _theta_fix(args: argparse.Namespace, names: Sequence[str]) -> str:
    """The overflow's fix for the Lorenz parameters ``names`` (of sigma, rho, beta) given
    off their defaults: ``", or --beta nearer 2.66667"`` (``""`` for none)."""
    off = [f"--{name} nearer {default:.6g}"
           for name, default in zip(("sigma", "rho", "beta"), DEFAULT_THETA, strict=True)
           if name in names and getattr(args, name) != default]
    return f", or {' and '.join(off)}" if off else ""


def _schedule(args: argparse.Namespace) -> pebbles.Schedule:
    """The registry's schedule for ``--method`` and its options."""
    method = _ALIASES.get(args.method, args.method)
    budget = args.budget
    if budget is None and pebbles.describe(method).takes_budget:
        budget = 10
    ns = argparse.Namespace(**{**vars(args), "n": args.steps, "budget": budget})
    if method == "treeverse-paper" and ns.delta is None:
        ns.delta = 10
    if method == "periodic" and ns.every is None:
        ns.every = periodic_every(args.steps)
    return schedule_from_args(ns, method, strict=True, n_flag="--steps")


#: ``--method forward`` and ``adjoint`` are no schedules: the flags they take.
_PLAIN_FLAGS = {"forward": (), "adjoint": ("every",)}


def _check_plain(args: argparse.Namespace) -> None:
    """Refuse schedule flags given to ``--method forward`` or ``adjoint``."""
    given = [f"--{name}" if name != "budget" else "--pebbles"
             for name in ("budget", "inplace", "delta", "tau", "every", "k", "beyond",
                         "executor")
             if getattr(args, name) not in (None, False)
             and name not in _PLAIN_FLAGS[args.method]]
    if given:
        takes = ", ".join(f"--{f}" for f in _PLAIN_FLAGS[args.method]) or "none"
        raise pebbles.PebblesValueError(
            f"{' '.join(given)}: not used by --method {args.method} (it stores no schedule; "
            f"its options: {takes}); leave {'it' if len(given) == 1 else 'them'} out")


def _executor(args: argparse.Namespace) -> str:
    """``--executor``, ``numba`` when not given (only schedule methods take the flag:
    :func:`_check_plain`)."""
    return getattr(args, "executor", None) or "numba"


def _check_dt(args: argparse.Namespace) -> None:
    """Refuse ``--dt <= 0`` before anything runs, as the API's ``dt`` (:func:`_dt`)."""
    try:
        _dt(args.dt)
    except pebbles.PebblesError as err:
        raise in_flags(err, "--steps", {"dt": "--dt"}) from None


def _warm_up() -> None:
    """Compile (or load from cache) every Numba kernel the CLI may time."""
    gradient_forward(n=1)
    gradient_adjoint(n=2, reload_every=1)
    replay_lorenz(pebbles.schedule("store-all", 2))
    _first_crossing(np.zeros(3), np.zeros(3), 0.0, 0.0, 1)


def _compute(args: argparse.Namespace) -> LorenzGradient:
    """Check the memory, compile, then compute (``seconds`` excludes compiling)."""
    theta = (args.sigma, args.rho, args.beta)
    common = {"x0": args.x0, "theta": theta, "dt": args.dt}
    plain = args.method in _PLAIN_FLAGS
    if plain:
        _check_plain(args)
    s = None if plain else _schedule(args)
    _check_memory(args, s)
    _check_time(args, s)
    _warm_up()
    if args.method == "forward":
        return gradient_forward(n=args.steps, **common)
    if args.method == "adjoint":
        return gradient_adjoint(n=args.steps, reload_every=args.every, **common)
    if _executor(args) == "generic":
        return gradient_reverse(s, **common)
    return replay_lorenz(s, **common)


def _check_finite(args: argparse.Namespace, g: LorenzGradient) -> None:
    """An overflowed run is an error naming the step (never NaN in the output)."""
    if math.isfinite(g.loss) and np.isfinite(g.gradient).all():
        return
    theta, names = (args.sigma, args.rho, args.beta), ("sigma", "rho", "beta")
    i = overflow_step(args.x0, theta, args.dt, args.steps)
    if i is not None:
        raise pebbles.PebblesValueError(
            f"the trajectory overflows at step {i} of {args.steps} (s_{i} is not finite) with "
            f"--dt {args.dt:g}, (sigma, rho, beta) = ({args.sigma:g}, {args.rho:g}, "
            f"{args.beta:g}); use a smaller --dt or fewer --steps{_theta_fix(args, names)}")
    raise pebbles.PebblesValueError(
        f"the gradient overflows (the trajectory is finite through step {args.steps}); "
        f"{_reload_fix(args)}use fewer --steps or a smaller --dt{_theta_fix(args, names)}")


def _reload_fix(args: argparse.Namespace) -> str:
    """For ``--method adjoint``, the first fix of an overflowed gradient: reloads of the
    stored trajectory (``--every K``; a smaller K when given), since its backward RK4,
    run without them, drifts from the forward trajectory (``""`` for other methods)."""
    if args.method != "adjoint":
        return ""
    drift = "the adjoint's backward RK4 drifts from the forward trajectory"
    if args.every is None:
        return (f"{drift} without reloads: pass --every K to reload the stored state every "
                f"K steps (e.g. --every {periodic_every(args.steps)}), or ")
    smaller = max(1, args.every // 4)
    return f"{drift} between reloads: pass a smaller --every (e.g. --every {smaller}), or "


def _until(args: argparse.Namespace) -> str:
    """``gradient --until-x LEVEL --method online``: run until x reaches LEVEL."""
    if args.method != "online" or _executor(args) != "numba":
        raise pebbles.PebblesValueError(
            f"--until-x needs --method online (the run's length is unknown until it stops) "
            f"and the numba executor, got --method {args.method} --executor "
            f"{_executor(args)}; pass --method online"
            f"{' without --executor generic' * (_executor(args) == 'generic')}")
    s = _schedule(args)
    _check_memory(args, s)
    _check_time(args, s)
    _warm_up()
    c = gradient_until_crossing(
        args.until_x, 10 if args.budget is None else args.budget, args.x0,
        (args.sigma, args.rho, args.beta), args.dt, max_steps=args.steps,
        inplace=args.inplace, beyond=dict(s.options)["beyond"])
    at_n = argparse.Namespace(**{**vars(args), "steps": c.n})
    _check_finite(at_n, c.result)
    return _report(at_n, c.result, {"until_x": args.until_x, "crossed": c.crossed,
                                    "max_steps": args.steps})


def _report(args: argparse.Namespace, g: LorenzGradient,
            extra: dict[str, Any] | None = None) -> str:
    record = {
        "method": args.method, "steps": args.steps, **(extra or {}), "loss": g.loss,
        "gradient": [float(v) for v in g.gradient],
        "forward_steps": g.forward_steps, "backward_steps": g.backward_steps,
        "peak_states": g.peak_states, "seconds": g.seconds,
    }
    if args.json:
        return json.dumps(record, allow_nan=False)
    names = ("x0", "y0", "z0", "sigma", "rho", "beta")
    lines = [f"method          {args.method} ({args.steps} steps)"]
    lines += [f"{key:<15} {value}" for key, value in (extra or {}).items()]
    lines += [f"loss            {g.loss:.17g}"]
    lines += [f"d/d{name:<12} {v: .17g}" for name, v in zip(names, g.gradient, strict=True)]
    lines += [f"forward_steps   {g.forward_steps}", f"backward_steps  {g.backward_steps}",
              f"peak_states     {g.peak_states}", f"seconds         {g.seconds:.6f}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad input, 130 on Ctrl-C)."""
    def run(args: argparse.Namespace) -> str:
        _check_dt(args)
        if args.command == "sensitivity":
            return _sensitivity_cli(args)
        if args.until_x is not None:
            return _until(args)
        g = _compute(args)
        _check_finite(args, g)
        return _report(args, g)

    return run_command(_parser(), argv, run, (ValueError, TypeError, OSError))


if __name__ == "__main__":
    sys.exit(main())
