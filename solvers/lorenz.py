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
  (the generic :func:`pebbles._executor.replay`) and :func:`replay_lorenz`
  (a Numba executor of the compact move encoding);
* the adjoint-state method, paper Algorithm 1: :func:`gradient_adjoint`
  (backward RK4 integration of the augmented dynamics, optionally reloading
  stored forward states every K steps; Figure 4).

Run ``python -m solvers.lorenz gradient --method treeverse --pebbles 10`` for
the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from pebbles._executor import replay
from pebbles._moves import Move, MoveKind, encode
from pebbles.cli import OneLineParser, run_command

__all__ = [
    "DEFAULT_DT",
    "DEFAULT_STEPS",
    "DEFAULT_THETA",
    "DEFAULT_X0",
    "LorenzGradient",
    "gradient_adjoint",
    "gradient_forward",
    "gradient_reverse",
    "main",
    "primal",
    "replay_lorenz",
    "rk4_jvp",
    "rk4_step",
    "rk4_vjp",
    "schedule_slots",
    "sensitivity_map",
]

DEFAULT_X0 = (1.0, 0.0, 0.0)
DEFAULT_THETA = (10.0, 27.0, 8.0 / 3.0)
DEFAULT_DT = 3e-3
DEFAULT_STEPS = 10_000

_PLACE, _REMOVE, _PAINT = int(MoveKind.PLACE), int(MoveKind.REMOVE), int(MoveKind.PAINT)
_MOVE, _FORWARD = int(MoveKind.MOVE), int(MoveKind.FORWARD)


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
# scalar kernels
# ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _f(x, y, z, s, r, b):
    return s * (y - x), x * (r - z) - y, x * y - b * z


@njit(cache=True, inline="always")
def _step3(x, y, z, s, r, b, dt):
    """One RK4 step on scalars (the single source of every primal step).

    ``y' = y + k1/6 + k2/3 + k3/3 + k4/6`` is evaluated as
    ``y + (dt/6 (f1 + f4) + dt/3 (f2 + f3))``: the same formula with its
    rounding in a different order, which takes a division and a multiplication
    off the step's critical path (about 20 % faster; the step is latency-bound).
    ``x + (dt/2) f`` equals ``x + (dt f)/2`` bit for bit (halving is exact).
    """
    h2, h3, h6 = 0.5 * dt, dt / 3, dt / 6
    f1x, f1y, f1z = _f(x, y, z, s, r, b)
    f2x, f2y, f2z = _f(x + h2 * f1x, y + h2 * f1y, z + h2 * f1z, s, r, b)
    f3x, f3y, f3z = _f(x + h2 * f2x, y + h2 * f2y, z + h2 * f2z, s, r, b)
    f4x, f4y, f4z = _f(x + dt * f3x, y + dt * f3y, z + dt * f3z, s, r, b)
    return (x + (h6 * (f1x + f4x) + h3 * (f2x + f3x)),
            y + (h6 * (f1y + f4y) + h3 * (f2y + f3y)),
            z + (h6 * (f1z + f4z) + h3 * (f2z + f3z)))


@njit(cache=True)
def _step_into(src, theta, dt, out):
    x, y, z = _step3(src[0], src[1], src[2], theta[0], theta[1], theta[2], dt)
    out[0] = x
    out[1] = y
    out[2] = z


@njit(cache=True)
def rk4_step(y: np.ndarray, theta: np.ndarray, dt: float) -> np.ndarray:
    """Return the RK4 successor of the state ``y`` (a new array of shape (3,)).

    Parameters
    ----------
    y : numpy.ndarray
        State (x, y, z), float64.
    theta : numpy.ndarray
        (sigma, rho, beta), float64.
    dt : float
        Time step.
    """
    out = np.empty(3)
    _step_into(y, theta, dt, out)
    return out


@njit(cache=True)
def _primal(y0, theta, dt, n):
    y = y0.copy()
    for _ in range(n):
        _step_into(y, theta, dt, y)
    return y


def _as3(v: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float64)
    if arr.shape != (3,):
        raise ValueError(f"{name} must have 3 components, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


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
    return _primal(_as3(x0, "x0"), _as3(theta, "theta"), float(dt), int(n))


# ---------------------------------------------------------------------------
# forward mode
# ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _fdot(x, y, z, s, r, b, dx, dy, dz, ds, dr, db):
    """Directional derivative of f at (x, y, z; s, r, b) along (dx, dy, dz; ds, dr, db)."""
    gx = s * (dy - dx) + ds * (y - x)
    gy = dx * (r - z) + x * (dr - dz) - dy
    gz = dx * y + x * dy - b * dz - db * z
    return gx, gy, gz


@njit(cache=True)
def rk4_jvp(y: np.ndarray, theta: np.ndarray, dt: float, tangent: np.ndarray) -> np.ndarray:
    """Push a (3, 6) tangent matrix through one RK4 step (all six inputs at once).

    Column j of ``tangent`` is d y / d input_j; inputs 3, 4, 5 are sigma, rho,
    beta, whose own tangents are unit vectors. Returns the tangent of the
    successor (a new (3, 6) array).
    """
    out = np.empty((3, 6))
    _jvp_into(y, theta, dt, tangent, out)
    return out


@njit(cache=True, inline="always")
def _stages(x, y, z, s, r, b, dt):
    """The RK4 stage points u2, u3, u4 of a step from (x, y, z) (bit-equal to the step's)."""
    h2 = 0.5 * dt
    f1 = _f(x, y, z, s, r, b)
    u2 = (x + h2 * f1[0], y + h2 * f1[1], z + h2 * f1[2])
    f2 = _f(u2[0], u2[1], u2[2], s, r, b)
    u3 = (x + h2 * f2[0], y + h2 * f2[1], z + h2 * f2[2])
    f3 = _f(u3[0], u3[1], u3[2], s, r, b)
    return u2, u3, (x + dt * f3[0], y + dt * f3[1], z + dt * f3[2])


@njit(cache=True, inline="always")
def _jvp_col(x, y, z, u2, u3, u4, s, r, b, dt, dx, dy, dz, ds, dr, db):
    """Tangent of one RK4 step along (dx, dy, dz; ds, dr, db), given the stage points.

    The weights are folded into ``h6 = dt/6``, ``h3 = dt/3``, ``h2 = dt/2``:
    multiplications instead of divisions; the result differs from the textbook
    order only by rounding.
    """
    h2, h3, h6 = 0.5 * dt, dt / 3, dt / 6
    a1 = _fdot(x, y, z, s, r, b, dx, dy, dz, ds, dr, db)
    a2 = _fdot(u2[0], u2[1], u2[2], s, r, b,
               dx + h2 * a1[0], dy + h2 * a1[1], dz + h2 * a1[2], ds, dr, db)
    a3 = _fdot(u3[0], u3[1], u3[2], s, r, b,
               dx + h2 * a2[0], dy + h2 * a2[1], dz + h2 * a2[2], ds, dr, db)
    a4 = _fdot(u4[0], u4[1], u4[2], s, r, b,
               dx + dt * a3[0], dy + dt * a3[1], dz + dt * a3[2], ds, dr, db)
    return (dx + (h6 * (a1[0] + a4[0]) + h3 * (a2[0] + a3[0])),
            dy + (h6 * (a1[1] + a4[1]) + h3 * (a2[1] + a3[1])),
            dz + (h6 * (a1[2] + a4[2]) + h3 * (a2[2] + a3[2])))


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
    s, r, b = theta[0], theta[1], theta[2]
    x, y, z = y0[0], y0[1], y0[2]
    t = np.zeros((6, 8))
    for k in range(6):
        t[k, k] = 1.0
    for _ in range(n):
        u2, u3, u4 = _stages(x, y, z, s, r, b, dt)
        for j in range(8):
            t[0, j], t[1, j], t[2, j] = _jvp_col(
                x, y, z, u2, u3, u4, s, r, b, dt,
                t[0, j], t[1, j], t[2, j], t[3, j], t[4, j], t[5, j])
        x, y, z = _step3(x, y, z, s, r, b, dt)
    return np.array([x, y, z]), t[:3, :6].copy()


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
    y, tan = _forward_mode(_as3(x0, "x0"), _as3(theta, "theta"), float(dt), int(n))
    return LorenzGradient(
        float(y[0]), tan[0].copy(), int(n), 0, 7, time.perf_counter() - t0
    )


@njit(cache=True, parallel=True)
def _sensitivity(sigmas, rhos, beta, x0, dt, n):
    ns, nr = sigmas.size, rhos.size
    out = np.empty((ns, nr))
    for k in prange(ns * nr):
        i, j = k // nr, k % nr
        theta = np.array([sigmas[i], rhos[j], beta])
        _, tan = _forward_mode(x0, theta, dt, n)
        acc = 0.0
        for c in range(6):
            acc += abs(tan[0, c])
        out[i, j] = acc / 6
    return out


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

    Returns
    -------
    numpy.ndarray
        Shape ``(len(sigmas), len(rhos))``.
    """
    s = np.ascontiguousarray(sigmas, dtype=np.float64).ravel()
    r = np.ascontiguousarray(rhos, dtype=np.float64).ravel()
    return _sensitivity(s, r, float(beta), _as3(x0, "x0"), float(dt), int(n))


# ---------------------------------------------------------------------------
# reverse mode
# ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _fvjp(x, y, z, s, r, b, vx, vy, vz):
    """(J_y^T v, J_theta^T v) of f at (x, y, z; s, r, b)."""
    gx = -s * vx + (r - z) * vy + y * vz
    gy = s * vx - vy + x * vz
    gz = -x * vy - b * vz
    return gx, gy, gz, (y - x) * vx, x * vy, -z * vz


@njit(cache=True, inline="always")
def _vjp3(x, y, z, s, r, b, dt, bx, by, bz):
    """Scalar vjp of one RK4 step: (d/dy, d/dtheta) of <(bx, by, bz), step(y)>.

    Reverse sweep through the stages with the weights folded into ``h6 = dt/6``,
    ``h3 = dt/3``, ``h2 = dt/2`` (stage k's cotangent ``v_k = dt * kbar_k``); no
    divisions in the sweep.
    """
    h2, h3, h6 = 0.5 * dt, dt / 3, dt / 6
    u2, u3, u4 = _stages(x, y, z, s, r, b, dt)
    c4 = _fvjp(u4[0], u4[1], u4[2], s, r, b, h6 * bx, h6 * by, h6 * bz)
    c3 = _fvjp(u3[0], u3[1], u3[2], s, r, b,
               h3 * bx + dt * c4[0], h3 * by + dt * c4[1], h3 * bz + dt * c4[2])
    c2 = _fvjp(u2[0], u2[1], u2[2], s, r, b,
               h3 * bx + h2 * c3[0], h3 * by + h2 * c3[1], h3 * bz + h2 * c3[2])
    c1 = _fvjp(x, y, z, s, r, b,
               h6 * bx + h2 * c2[0], h6 * by + h2 * c2[1], h6 * bz + h2 * c2[2])
    return (bx + (c4[0] + c3[0] + c2[0] + c1[0]), by + (c4[1] + c3[1] + c2[1] + c1[1]),
            bz + (c4[2] + c3[2] + c2[2] + c1[2]), c4[3] + c3[3] + c2[3] + c1[3],
            c4[4] + c3[4] + c2[4] + c1[4], c4[5] + c3[5] + c2[5] + c1[5])


@njit(cache=True)
def _vjp_into(yv, theta, dt, ybar, out, tbar):
    """Write d/dy of <ybar, step(y)> into ``out`` and d/dtheta into ``tbar``."""
    g = _vjp3(yv[0], yv[1], yv[2], theta[0], theta[1], theta[2], dt,
              ybar[0], ybar[1], ybar[2])
    out[0], out[1], out[2] = g[0], g[1], g[2]
    tbar[0], tbar[1], tbar[2] = g[3], g[4], g[5]


@njit(cache=True)
def rk4_vjp(
    y: np.ndarray, theta: np.ndarray, dt: float, ybar: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hand-derived vector-Jacobian product of :func:`rk4_step`.

    Parameters
    ----------
    y : numpy.ndarray
        The state the step started from.
    theta : numpy.ndarray
        (sigma, rho, beta).
    dt : float
        Time step.
    ybar : numpy.ndarray
        Gradient with respect to the step's output.

    Returns
    -------
    ybar_prev, thetabar : numpy.ndarray
        Gradients with respect to ``y`` and ``theta`` (shape (3,) each).
    """
    out = np.empty(3)
    tbar = np.empty(3)
    _vjp_into(y, theta, dt, ybar, out, tbar)
    return out, tbar


def _moves_of(schedule: Iterable[Move] | np.ndarray) -> np.ndarray:
    if isinstance(schedule, np.ndarray):
        arr = np.ascontiguousarray(schedule, dtype=np.int64)
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ValueError(f"an encoded schedule has shape (m, 3), got {arr.shape}")
        return arr
    return encode(schedule)


def gradient_reverse(
    schedule: Iterable[Move] | np.ndarray,
    x0: Sequence[float] = DEFAULT_X0,
    theta: Sequence[float] = DEFAULT_THETA,
    dt: float = DEFAULT_DT,
    n: int = DEFAULT_STEPS,
) -> LorenzGradient:
    """Reverse-mode gradient through the generic executor :func:`pebbles._executor.replay`.

    ``schedule`` is any checkpoint-game (or in-place game) schedule for ``n``
    steps, as moves or as an encoded array.

    Examples
    --------
    >>> from pebbles._treeverse import treeverse
    >>> from solvers.lorenz import gradient_reverse, gradient_forward
    >>> import numpy as np
    >>> g = gradient_reverse(treeverse(100, 5), n=100)
    >>> bool(np.allclose(g.gradient, gradient_forward(n=100).gradient, rtol=1e-12))
    True
    """
    y0, th, dt = _as3(x0, "x0"), _as3(theta, "theta"), float(dt)
    moves = schedule if not isinstance(schedule, np.ndarray) else _moves_of(schedule)
    unit = np.array([1.0, 0.0, 0.0])
    r = replay(
        moves, int(n), y0,
        step=lambda i, s: rk4_step(s, th, dt),
        step_into=lambda i, s, out: _step_into(s, th, dt, out),
        backward=lambda i, s, g: rk4_vjp(s, th, dt, g),
        loss_grad=lambda s: unit.copy(),
        loss=lambda s: float(s[0]),
    )
    grad = np.concatenate([r.grad_s0, r.grad_theta])
    return LorenzGradient(
        float(r.loss), grad, r.forward_steps, r.backward_steps, r.peak_states, r.seconds
    )


@njit(cache=True)
def _scan_peak(moves):
    """Most states on cells 1..n at once (besides the working one), or -1 if ill-formed."""
    held = 0
    peak = 0
    for k in range(moves.shape[0]):
        kind = moves[k, 0]
        if kind == _PLACE or kind == _FORWARD:
            held += 1
        elif kind == _REMOVE:
            held -= 1
        peak = max(peak, held)
    return peak


def schedule_slots(encoded: np.ndarray) -> int:
    """Slots :func:`replay_lorenz` allocates for a schedule: its peak stored states + 2."""
    return int(_scan_peak(_moves_of(encoded))) + 2


@njit(cache=True, inline="always")
def _walk(x, y, z, count, theta, dt):
    """``count`` RK4 steps from (x, y, z), in registers."""
    for _ in range(count):
        x, y, z = _step3(x, y, z, theta[0], theta[1], theta[2], dt)
    return x, y, z


@njit(cache=True, inline="always")
def _row(slots, row):
    return slots[row, 0], slots[row, 1], slots[row, 2]


@njit(cache=True, inline="always")
def _vjp_acc(x, y, z, theta, dt, gx, gy, gz, ts, tr, tb):
    """Paint at (x, y, z): the new gradient (gx, gy, gz) and theta's sums (ts, tr, tb)."""
    g = _vjp3(x, y, z, theta[0], theta[1], theta[2], dt, gx, gy, gz)
    return g[0], g[1], g[2], ts + g[3], tr + g[4], tb + g[5]


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
def _replay(moves, n, x0, theta, dt, nslots):
    """Replay an encoded schedule; returns (status, grad, loss, fsteps, bsteps, peak).

    status 0: done; k > 0: move #k-1 is illegal; -1: cells left unpainted;
    -2: out of slots. States are rows of ``slots``; the extra last row holds
    s_0 (cell 0) and is not counted. Steps and vjps run on scalars, and the
    state last computed (cell ``last``) stays in registers, so a walk that
    continues from it does not wait for its own store.

    A paint is deferred: its state is copied to registers (``px, py, pz``)
    and its vjp runs with the first step of the next walk (:func:`_walk_vjp`),
    or before the next paint. Gradients are chained in the schedule's order,
    so the result is bit for bit that of painting at once; Treeverse S=10
    replays 4-6 % faster (n = 10^4, measured here).
    """
    slots = np.empty((nslots + 1, 3))
    slots[nslots] = x0
    slot_of = np.full(n + 1, -1, dtype=np.int64)
    slot_of[0] = nslots
    free = np.arange(nslots - 1, -1, -1).astype(np.int64)
    nfree = nslots
    grad = np.zeros(6)
    gx = gy = gz = ts = tr = tb = 0.0
    loss = np.nan
    painted_from = n
    fsteps = bsteps = peak = 0
    last, lx, ly, lz = -1, 0.0, 0.0, 0.0
    pend, px, py, pz = False, 0.0, 0.0, 0.0
    for k in range(moves.shape[0]):
        kind, a, b = moves[k, 0], moves[k, 1], moves[k, 2]
        if kind == _FORWARD or kind == _PLACE or kind == _MOVE:
            src = a if kind == _FORWARD else a - 1
            dst = b if kind == _FORWARD else a
            if kind == _MOVE:
                if a < 2 or a > n or slot_of[a - 1] < 0 or slot_of[a] >= 0:
                    return k + 1, grad, loss, fsteps, bsteps, peak
            else:
                if src < 0 or dst <= src or dst > n or slot_of[dst] >= 0 or slot_of[src] < 0:
                    return k + 1, grad, loss, fsteps, bsteps, peak
                if nfree == 0:
                    return -2, grad, loss, fsteps, bsteps, peak
                peak = max(peak, nslots - nfree + 1)
            if src != last:
                lx, ly, lz = _row(slots, slot_of[src])
            if pend:
                lx, ly, lz, g = _walk_vjp(lx, ly, lz, dst - src, theta, dt,
                                           px, py, pz, gx, gy, gz)
                gx, gy, gz = g[0], g[1], g[2]
                ts, tr, tb = ts + g[3], tr + g[4], tb + g[5]
                pend = False
            else:
                lx, ly, lz = _walk(lx, ly, lz, dst - src, theta, dt)
            last = dst
            if kind == _MOVE:
                slot_of[a] = slot_of[a - 1]
                slot_of[a - 1] = -1
            else:
                nfree -= 1
                slot_of[dst] = free[nfree]
            r = slot_of[dst]
            slots[r, 0], slots[r, 1], slots[r, 2] = lx, ly, lz
            fsteps += dst - src
        elif kind == _REMOVE:
            if a < 1 or a > n or slot_of[a] < 0:
                return k + 1, grad, loss, fsteps, bsteps, peak
            free[nfree] = slot_of[a]
            nfree += 1
            slot_of[a] = -1
            last = -1 if a == last else last
        elif kind == _PAINT:
            if a != painted_from - 1 or slot_of[a] < 0:
                return k + 1, grad, loss, fsteps, bsteps, peak
            if pend:
                gx, gy, gz, ts, tr, tb = _vjp_acc(px, py, pz, theta, dt, gx, gy, gz,
                                                  ts, tr, tb)
            px, py, pz = _row(slots, slot_of[a])
            pend = True
            if a == n - 1:
                if slot_of[n] >= 0:
                    loss = slots[slot_of[n], 0]
                else:
                    peak = max(peak, nslots - nfree + 1)
                    loss = _walk(px, py, pz, 1, theta, dt)[0]
                    fsteps += 1
                gx = 1.0
            bsteps += 1
            painted_from = a
        else:
            return k + 1, grad, loss, fsteps, bsteps, peak
        peak = max(peak, nslots - nfree)
    if pend:
        gx, gy, gz, ts, tr, tb = _vjp_acc(px, py, pz, theta, dt, gx, gy, gz, ts, tr, tb)
    if painted_from != 0:
        return -1, grad, loss, fsteps, bsteps, peak
    grad[0], grad[1], grad[2], grad[3], grad[4], grad[5] = gx, gy, gz, ts, tr, tb
    return 0, grad, loss, fsteps, bsteps, peak


def replay_lorenz(
    encoded: np.ndarray | Iterable[Move],
    n: int,
    x0: Sequence[float] = DEFAULT_X0,
    theta: Sequence[float] = DEFAULT_THETA,
    dt: float = DEFAULT_DT,
    *,
    slots: int | None = None,
) -> LorenzGradient:
    """Reverse-mode gradient by replaying an encoded schedule in one Numba function.

    States live in a preallocated ``(slots, 3)`` array; a free list maps cells
    to slots. Handles ``place``, ``remove``, ``paint``, ``move`` and
    ``forward``; at the first paint it computes ``s_n`` itself (one extra
    step) unless the schedule left a state on cell n.

    Parameters
    ----------
    encoded : numpy.ndarray or iterable of Move
        The schedule, preferably as :func:`pebbles._moves.encode` made it.
    n : int
        Number of steps.
    x0, theta, dt
        Initial state, (sigma, rho, beta) and time step.
    slots : int, optional
        Number of slots; default :func:`schedule_slots` (peak + 2).

    Raises
    ------
    pebbles.IllegalMoveError
        If the schedule breaks a rule or needs more than ``slots`` states.

    Examples
    --------
    >>> from pebbles._moves import encode
    >>> from pebbles._treeverse import treeverse
    >>> from solvers.lorenz import replay_lorenz
    >>> g = replay_lorenz(encode(treeverse(20, 4)), 20)
    >>> g.forward_steps, g.backward_steps, g.peak_states
    (41, 20, 5)
    """
    from pebbles._errors import IllegalMoveError

    moves = _moves_of(encoded)
    nslots = schedule_slots(moves) if slots is None else int(slots)
    t0 = time.perf_counter()
    status, grad, loss, fs, bs, peak = _replay(
        moves, int(n), _as3(x0, "x0"), _as3(theta, "theta"), float(dt), max(nslots, 1)
    )
    seconds = time.perf_counter() - t0
    if status > 0:
        row = moves[status - 1]
        raise IllegalMoveError(
            status - 1, Move(MoveKind(int(row[0])), int(row[1]), int(row[2])),
            "the move is not legal here",
        )
    if status == -1:
        raise IllegalMoveError(-1, None, "the schedule left cells unpainted")
    if status == -2:
        raise IllegalMoveError(-1, None, f"the schedule needs more than {nslots} slots")
    return LorenzGradient(float(loss), grad, int(fs), int(bs), int(peak), seconds)


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
def _adjoint(y0, theta, dt, n, every):
    nstore = n // every + 1 if every > 0 else 1
    stored = np.empty((nstore, 3))
    y = y0.copy()
    if every > 0:
        stored[0] = y
    for i in range(n):
        _step_into(y, theta, dt, y)
        if every > 0 and (i + 1) % every == 0:
            stored[(i + 1) // every] = y
    z = np.zeros(9)
    z[:3] = y
    z[3] = 1.0
    k1, k2, k3, k4, tmp = (np.empty(9), np.empty(9), np.empty(9), np.empty(9),
                           np.empty(9))
    for i in range(n - 1, -1, -1):
        _aug_rk4(z, theta, -dt, k1, k2, k3, k4, tmp)
        if every > 0 and i % every == 0:
            z[:3] = stored[i // every]
    return y[0], z[3:].copy(), nstore


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
    backward ``y`` is reset to it (paper Figure 4b).

    Examples
    --------
    >>> from solvers.lorenz import gradient_adjoint, gradient_forward
    >>> import numpy as np
    >>> a = gradient_adjoint(n=100, reload_every=10).gradient
    >>> e = gradient_forward(n=100).gradient
    >>> bool(np.linalg.norm(a - e) < 1e-6 * np.linalg.norm(e))
    True
    """
    every = 0 if reload_every is None else int(reload_every)
    if every < 0 or (reload_every is not None and every == 0):
        raise ValueError(f"reload_every must be a positive integer, got {reload_every}")
    t0 = time.perf_counter()
    loss, grad, nstore = _adjoint(_as3(x0, "x0"), _as3(theta, "theta"), float(dt),
                                  int(n), every)
    return LorenzGradient(float(loss), grad, int(n), int(n), int(nstore) + 3,
                          time.perf_counter() - t0)


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
_METHODS = ("forward", "store-all", "treeverse", "treeverse-paper", "adjoint",
            "periodic", "bennett")


def _schedule(args: argparse.Namespace) -> Iterable[Move]:
    n = args.steps
    if args.method == "store-all":
        return _store_all(n)
    if args.method == "treeverse":
        from pebbles._treeverse import treeverse
        return treeverse(n, args.pebbles, inplace=args.inplace)
    if args.method == "treeverse-paper":
        from pebbles._treeverse import treeverse_paper
        return treeverse_paper(n, args.delta)
    if args.method == "periodic":
        from pebbles._baselines import periodic
        return periodic(n, args.every)
    from pebbles._bennett import bennett_gradient
    return bennett_gradient(n, args.k)


def _store_all(n: int) -> Iterable[Move]:
    """The store-everything schedule (n - 1 places, then paints and removes)."""
    for i in range(1, n):
        yield Move(MoveKind.PLACE, i)
    for i in range(n - 1, 0, -1):
        yield Move(MoveKind.PAINT, i)
        yield Move(MoveKind.REMOVE, i)
    yield Move(MoveKind.PAINT, 0)


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m solvers.lorenz",
        description="Gradient of the Lorenz experiment (Liu & Xu, section 4.1).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gradient", help="compute d x_n / d (x0, y0, z0, sigma, rho, beta)")
    g.add_argument("--method", choices=_METHODS, default="treeverse")
    g.add_argument("--pebbles", type=int, default=10, help="budget S for treeverse")
    g.add_argument("--inplace", action="store_true", help="treeverse in-place game")
    g.add_argument("--delta", type=int, default=10, help="delta for treeverse-paper")
    g.add_argument("--every", type=int, default=None,
                   help="periodic checkpoint interval / adjoint reload interval K")
    g.add_argument("--k", type=int, default=2, help="Bennett's k")
    g.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    g.add_argument("--dt", type=float, default=DEFAULT_DT)
    g.add_argument("--sigma", type=float, default=DEFAULT_THETA[0])
    g.add_argument("--rho", type=float, default=DEFAULT_THETA[1])
    g.add_argument("--beta", type=float, default=DEFAULT_THETA[2])
    g.add_argument("--x0", type=float, nargs=3, default=list(DEFAULT_X0),
                   metavar=("X", "Y", "Z"))
    g.add_argument("--executor", choices=("numba", "generic"), default="numba",
                   help="executor for schedule methods")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    m = sub.add_parser("sensitivity", help="mean |gradient| on a (sigma, rho) grid (Figure 3)")
    m.add_argument("--sigma-range", type=float, nargs=2, default=[0.0, 20.0], metavar=("LO", "HI"))
    m.add_argument("--rho-range", type=float, nargs=2, default=[0.0, 50.0], metavar=("LO", "HI"))
    m.add_argument("--resolution", type=int, default=201, help="grid points per axis (201)")
    m.add_argument("--beta", type=float, default=DEFAULT_THETA[2])
    m.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    m.add_argument("--dt", type=float, default=DEFAULT_DT)
    m.add_argument("--out", required=True, help="output .npz (sigmas, rhos, mean_abs_grad)")
    return p


def _sensitivity_cli(args: argparse.Namespace) -> str:
    """Write the Figure 3 grid to ``args.out``; return a one-line report."""
    if args.resolution < 2 or args.steps < 1:
        raise ValueError(f"--resolution={args.resolution} must be >= 2 and "
                         f"--steps={args.steps} >= 1")
    sigmas = np.linspace(*args.sigma_range, args.resolution)
    rhos = np.linspace(*args.rho_range, args.resolution)
    t0 = time.perf_counter()
    grid = sensitivity_map(sigmas, rhos, args.beta, dt=args.dt, n=args.steps)
    np.savez(args.out, sigmas=sigmas, rhos=rhos, mean_abs_grad=grid, beta=args.beta,
             steps=args.steps, dt=args.dt)
    return f"wrote {args.out}: {grid.shape} grid in {time.perf_counter() - t0:.2f} s"


def _run(args: argparse.Namespace) -> LorenzGradient:
    """Compute the gradient, after a 2-step warm-up so ``seconds`` excludes JIT compiling."""
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    _warm_up()
    return _compute(args)


def _warm_up() -> None:
    """Compile (or load from cache) every Numba kernel the CLI may time."""
    gradient_forward(n=1)
    gradient_adjoint(n=2, reload_every=1)
    replay_lorenz(encode(_store_all(2)), 2)


def _compute(args: argparse.Namespace) -> LorenzGradient:
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    theta = (args.sigma, args.rho, args.beta)
    common = {"x0": args.x0, "theta": theta, "dt": args.dt}
    if args.method == "forward":
        return gradient_forward(n=args.steps, **common)
    if args.method == "adjoint":
        return gradient_adjoint(n=args.steps, reload_every=args.every, **common)
    if args.method == "periodic" and args.every is None:
        raise ValueError("--method periodic needs --every K")
    moves = encode(_schedule(args))
    if args.executor == "generic":
        return gradient_reverse(moves, n=args.steps, **common)
    return replay_lorenz(moves, args.steps, **common)


def _report(args: argparse.Namespace, g: LorenzGradient) -> str:
    record = {
        "method": args.method, "steps": args.steps, "loss": g.loss,
        "gradient": [float(v) for v in g.gradient],
        "forward_steps": g.forward_steps, "backward_steps": g.backward_steps,
        "peak_states": g.peak_states, "seconds": g.seconds,
    }
    if args.json:
        return json.dumps(record)
    names = ("x0", "y0", "z0", "sigma", "rho", "beta")
    lines = [f"method          {args.method} ({args.steps} steps)",
             f"loss            {g.loss:.17g}"]
    lines += [f"d/d{name:<12} {v: .17g}" for name, v in zip(names, g.gradient, strict=True)]
    lines += [f"forward_steps   {g.forward_steps}", f"backward_steps  {g.backward_steps}",
              f"peak_states     {g.peak_states}", f"seconds         {g.seconds:.6f}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad input)."""
    def run(args: argparse.Namespace) -> str:
        if args.command == "sensitivity":
            return _sensitivity_cli(args)
        return _report(args, _run(args))

    return run_command(_parser(), argv, run, (ValueError, TypeError, ImportError, OSError))


if __name__ == "__main__":
    sys.exit(main())
