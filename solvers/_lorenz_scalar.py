"""The scalar formulas of the Lorenz RK4 step, its tangent and its adjoint, written once.

Liu & Xu, section 4.1 (paper notes section 5): the Lorenz system
``dx/dt = sigma (y - x)``, ``dy/dt = x (rho - z) - y``, ``dz/dt = x y - beta z``
integrated with classical RK4. The functions below are plain Python on
scalars; :func:`compile_formulas` compiles all of them with one decorator, so
the CPU kernels (:mod:`solvers.lorenz`, ``numba.njit``) and the GPU kernels
(:mod:`solvers._cuda_lorenz`, ``numba.cuda.jit(device=True)``) run the same
source in the same operation order: bit for bit equal on the CPU and under
Numba's CUDA simulator, equal to rounding on a GPU (fused multiply-adds).

The RK4 weights are folded into ``h6 = dt/6``, ``h3 = dt/3``, ``h2 = dt/2``
(multiplications instead of divisions, off the step's critical path); the
results differ from the textbook order only by rounding.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

__all__ = ["compile_formulas"]


def f(x, y, z, s, r, b):
    """The Lorenz right-hand side at (x, y, z; sigma, rho, beta)."""
    return s * (y - x), x * (r - z) - y, x * y - b * z


def fdot(x, y, z, s, r, b, dx, dy, dz, ds, dr, db):
    """Directional derivative of f at (x, y, z; s, r, b) along (dx, dy, dz; ds, dr, db)."""
    gx = s * (dy - dx) + ds * (y - x)
    gy = dx * (r - z) + x * (dr - dz) - dy
    gz = dx * y + x * dy - b * dz - db * z
    return gx, gy, gz


def fvjp(x, y, z, s, r, b, vx, vy, vz):
    """(J_y^T v, J_theta^T v) of f at (x, y, z; s, r, b)."""
    gx = -s * vx + (r - z) * vy + y * vz
    gy = s * vx - vy + x * vz
    gz = -x * vy - b * vz
    return gx, gy, gz, (y - x) * vx, x * vy, -z * vz


def step3(x, y, z, s, r, b, dt):
    """One RK4 step on scalars: ``y + (dt/6 (f1 + f4) + dt/3 (f2 + f3))``.

    ``x + (dt/2) f`` equals ``x + (dt f)/2`` bit for bit (halving is exact).
    """
    h2, h3, h6 = 0.5 * dt, dt / 3, dt / 6
    f1x, f1y, f1z = f(x, y, z, s, r, b)
    f2x, f2y, f2z = f(x + h2 * f1x, y + h2 * f1y, z + h2 * f1z, s, r, b)
    f3x, f3y, f3z = f(x + h2 * f2x, y + h2 * f2y, z + h2 * f2z, s, r, b)
    f4x, f4y, f4z = f(x + dt * f3x, y + dt * f3y, z + dt * f3z, s, r, b)
    return (x + (h6 * (f1x + f4x) + h3 * (f2x + f3x)),
            y + (h6 * (f1y + f4y) + h3 * (f2y + f3y)),
            z + (h6 * (f1z + f4z) + h3 * (f2z + f3z)))


def stages(x, y, z, s, r, b, dt):
    """The RK4 stage points u2, u3, u4 of a step from (x, y, z) (bit-equal to the step's)."""
    h2 = 0.5 * dt
    f1 = f(x, y, z, s, r, b)
    u2 = (x + h2 * f1[0], y + h2 * f1[1], z + h2 * f1[2])
    f2 = f(u2[0], u2[1], u2[2], s, r, b)
    u3 = (x + h2 * f2[0], y + h2 * f2[1], z + h2 * f2[2])
    f3 = f(u3[0], u3[1], u3[2], s, r, b)
    return u2, u3, (x + dt * f3[0], y + dt * f3[1], z + dt * f3[2])


def jvp_col(x, y, z, u2, u3, u4, s, r, b, dt, dx, dy, dz, ds, dr, db):
    """Tangent of one RK4 step along (dx, dy, dz; ds, dr, db), given the stage points."""
    h2, h3, h6 = 0.5 * dt, dt / 3, dt / 6
    a1 = fdot(x, y, z, s, r, b, dx, dy, dz, ds, dr, db)
    a2 = fdot(u2[0], u2[1], u2[2], s, r, b,
              dx + h2 * a1[0], dy + h2 * a1[1], dz + h2 * a1[2], ds, dr, db)
    a3 = fdot(u3[0], u3[1], u3[2], s, r, b,
              dx + h2 * a2[0], dy + h2 * a2[1], dz + h2 * a2[2], ds, dr, db)
    a4 = fdot(u4[0], u4[1], u4[2], s, r, b,
              dx + dt * a3[0], dy + dt * a3[1], dz + dt * a3[2], ds, dr, db)
    return (dx + (h6 * (a1[0] + a4[0]) + h3 * (a2[0] + a3[0])),
            dy + (h6 * (a1[1] + a4[1]) + h3 * (a2[1] + a3[1])),
            dz + (h6 * (a1[2] + a4[2]) + h3 * (a2[2] + a3[2])))


def vjp3(x, y, z, s, r, b, dt, bx, by, bz):
    """Scalar vjp of one RK4 step: (d/dy, d/dtheta) of <(bx, by, bz), step(y)>.

    Reverse sweep through the stages (stage k's cotangent ``v_k = dt * kbar_k``).
    """
    h2, h3, h6 = 0.5 * dt, dt / 3, dt / 6
    u2, u3, u4 = stages(x, y, z, s, r, b, dt)
    c4 = fvjp(u4[0], u4[1], u4[2], s, r, b, h6 * bx, h6 * by, h6 * bz)
    c3 = fvjp(u3[0], u3[1], u3[2], s, r, b,
              h3 * bx + dt * c4[0], h3 * by + dt * c4[1], h3 * bz + dt * c4[2])
    c2 = fvjp(u2[0], u2[1], u2[2], s, r, b,
              h3 * bx + h2 * c3[0], h3 * by + h2 * c3[1], h3 * bz + h2 * c3[2])
    c1 = fvjp(x, y, z, s, r, b,
              h6 * bx + h2 * c2[0], h6 * by + h2 * c2[1], h6 * bz + h2 * c2[2])
    return (bx + (c4[0] + c3[0] + c2[0] + c1[0]), by + (c4[1] + c3[1] + c2[1] + c1[1]),
            bz + (c4[2] + c3[2] + c2[2] + c1[2]), c4[3] + c3[3] + c2[3] + c1[3],
            c4[4] + c3[4] + c2[4] + c1[4], c4[5] + c3[5] + c2[5] + c1[5])


#: Every formula, callees before callers (the order :func:`compile_formulas` compiles in).
_FORMULAS = (f, fdot, fvjp, step3, stages, jvp_col, vjp3)


def compile_formulas(jit: Callable[[Callable[..., Any]], Any]) -> types.SimpleNamespace:
    """Compile every formula with ``jit``; calls between formulas go to the compiled versions.

    Parameters
    ----------
    jit : decorator
        E.g. ``numba.njit(inline="always")`` or ``numba.cuda.jit(device=True)``.

    Returns
    -------
    types.SimpleNamespace
        Attributes ``f``, ``fdot``, ``fvjp``, ``step3``, ``stages``,
        ``jvp_col``, ``vjp3``: the compiled functions.

    Examples
    --------
    >>> from solvers._lorenz_scalar import compile_formulas
    >>> k = compile_formulas(lambda fn: fn)  # the identity "compiler": plain Python
    >>> k.step3(1.0, 0.0, 0.0, 10.0, 28.0, 8 / 3, 0.0)
    (1.0, 0.0, 0.0)
    """
    done: dict[str, Any] = {}
    for fn in _FORMULAS:
        rebound = types.FunctionType(fn.__code__, {**fn.__globals__, **done}, fn.__name__,
                                     fn.__defaults__, fn.__closure__)
        rebound.__qualname__, rebound.__doc__ = fn.__qualname__, fn.__doc__
        rebound.__module__ = fn.__module__
        done[fn.__name__] = jit(rebound)
    return types.SimpleNamespace(**done)
