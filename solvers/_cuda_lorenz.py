"""numba.cuda kernels of the batched Lorenz experiment (Liu & Xu, section 4.1; notes section 5).

One thread per parameter set ``(x0, sigma, rho, beta)``:

* :func:`forward_kernel` / :func:`sensitivity_kernel` -- forward mode with the
  six tangents (the Figure 3 map: mean |gradient| on a (sigma, rho) grid);
* :func:`reverse_kernel` -- reverse mode: every thread replays the same
  precomputed checkpoint schedule (a Treeverse move stream lowered to slot
  operations by :func:`solvers.gpu.lower_schedule`) from device memory, with
  its own ``S + 2`` checkpoint slots.

The paper (section 4.1) runs the forward-mode map on a GPU and notes that
Treeverse cannot run inside a GPU kernel because its recursion needs a global
stack. The recursion is only needed to *decide* the moves; the decisions do
not depend on the data. Computed once on the host, the schedule is a flat
array that every thread reads in lock step (no divergence, no stack, no
allocation): a thread needs only its ``S + 2`` states.

The device functions are line-for-line copies of the scalar kernels of
:mod:`solvers.lorenz` (same operation order): bit for bit equal under the CUDA
simulator, equal to rounding on a GPU (fused multiply-adds).
"""

from __future__ import annotations

from numba import cuda, float64

__all__ = ["OP_PAINT", "OP_SEED", "OP_STEP", "forward_kernel", "reverse_kernel",
           "sensitivity_kernel"]

#: Slot-program operations (column 0 of the program; see ``solvers.gpu.lower_schedule``).
OP_STEP, OP_SEED, OP_PAINT = 0, 1, 2


@cuda.jit(device=True, inline=True)
def _f(x, y, z, s, r, b):  # pragma: no cover - compiled
    return s * (y - x), x * (r - z) - y, x * y - b * z


@cuda.jit(device=True, inline=True)
def _step3(x, y, z, s, r, b, dt):  # pragma: no cover - compiled
    """One RK4 step on scalars (``solvers.lorenz._step3``)."""
    h2, h3, h6 = 0.5 * dt, dt / 3, dt / 6
    f1x, f1y, f1z = _f(x, y, z, s, r, b)
    f2x, f2y, f2z = _f(x + h2 * f1x, y + h2 * f1y, z + h2 * f1z, s, r, b)
    f3x, f3y, f3z = _f(x + h2 * f2x, y + h2 * f2y, z + h2 * f2z, s, r, b)
    f4x, f4y, f4z = _f(x + dt * f3x, y + dt * f3y, z + dt * f3z, s, r, b)
    return (x + (h6 * (f1x + f4x) + h3 * (f2x + f3x)),
            y + (h6 * (f1y + f4y) + h3 * (f2y + f3y)),
            z + (h6 * (f1z + f4z) + h3 * (f2z + f3z)))


@cuda.jit(device=True, inline=True)
def _stages(x, y, z, s, r, b, dt):  # pragma: no cover - compiled
    """The RK4 stage points u2, u3, u4 (``solvers.lorenz._stages``)."""
    h2 = 0.5 * dt
    f1 = _f(x, y, z, s, r, b)
    u2 = (x + h2 * f1[0], y + h2 * f1[1], z + h2 * f1[2])
    f2 = _f(u2[0], u2[1], u2[2], s, r, b)
    u3 = (x + h2 * f2[0], y + h2 * f2[1], z + h2 * f2[2])
    f3 = _f(u3[0], u3[1], u3[2], s, r, b)
    return u2, u3, (x + dt * f3[0], y + dt * f3[1], z + dt * f3[2])


@cuda.jit(device=True, inline=True)
def _fdot(x, y, z, s, r, b, dx, dy, dz, ds, dr, db):  # pragma: no cover - compiled
    gx = s * (dy - dx) + ds * (y - x)
    gy = dx * (r - z) + x * (dr - dz) - dy
    gz = dx * y + x * dy - b * dz - db * z
    return gx, gy, gz


@cuda.jit(device=True, inline=True)
def _jvp_col(x, y, z, u2, u3, u4, s, r, b, dt, dx, dy, dz, ds, dr, db):  # pragma: no cover
    """Tangent of one RK4 step along one direction (``solvers.lorenz._jvp_col``)."""
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


@cuda.jit(device=True, inline=True)
def _fvjp(x, y, z, s, r, b, vx, vy, vz):  # pragma: no cover - compiled
    gx = -s * vx + (r - z) * vy + y * vz
    gy = s * vx - vy + x * vz
    gz = -x * vy - b * vz
    return gx, gy, gz, (y - x) * vx, x * vy, -z * vz


@cuda.jit(device=True, inline=True)
def _vjp3(x, y, z, s, r, b, dt, bx, by, bz):  # pragma: no cover - compiled
    """Scalar vjp of one RK4 step (``solvers.lorenz._vjp3``)."""
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


@cuda.jit(device=True, inline=True)
def _tangents(x, y, z, s, r, b, dt, n, t):  # pragma: no cover - compiled
    """n steps carrying the six tangent columns ``t`` (3, 6); returns the final state.

    ``solvers.lorenz._forward_mode``: the tangents of (sigma, rho, beta) are
    the constant unit vectors, the state's start as the identity.
    """
    for i in range(3):
        for j in range(6):
            t[i, j] = 1.0 if i == j else 0.0
    for _ in range(n):
        u2, u3, u4 = _stages(x, y, z, s, r, b, dt)
        for j in range(6):
            ds = 1.0 if j == 3 else 0.0
            dr = 1.0 if j == 4 else 0.0
            db = 1.0 if j == 5 else 0.0
            t[0, j], t[1, j], t[2, j] = _jvp_col(x, y, z, u2, u3, u4, s, r, b, dt,
                                                 t[0, j], t[1, j], t[2, j], ds, dr, db)
        x, y, z = _step3(x, y, z, s, r, b, dt)
    return x, y, z


@cuda.jit
def forward_kernel(x0, theta, dt, n, state, tangent):  # pragma: no cover - compiled
    """Thread b: ``state[b] = s_n`` and ``tangent[b] = d s_n / d (x0, sigma, rho, beta)``."""
    b = cuda.grid(1)
    if b >= x0.shape[0]:
        return
    t = cuda.local.array((3, 6), float64)
    x, y, z = _tangents(x0[b, 0], x0[b, 1], x0[b, 2], theta[b, 0], theta[b, 1],
                        theta[b, 2], dt, n, t)
    state[b, 0], state[b, 1], state[b, 2] = x, y, z
    for i in range(3):
        for j in range(6):
            tangent[b, i, j] = t[i, j]


@cuda.jit
def sensitivity_kernel(sigmas, rhos, beta, x0, dt, n, out):  # pragma: no cover - compiled
    """Thread k = i * len(rhos) + j: ``out[i, j]`` = mean |d x_n / d input| (Figure 3)."""
    k = cuda.grid(1)
    nr = rhos.shape[0]
    if k >= sigmas.shape[0] * nr:
        return
    i, j = k // nr, k % nr
    t = cuda.local.array((3, 6), float64)
    _tangents(x0[0], x0[1], x0[2], sigmas[i], rhos[j], beta, dt, n, t)
    acc = 0.0
    for c in range(6):
        acc += abs(t[0, c])
    out[i, j] = acc / 6


@cuda.jit
def reverse_kernel(prog, x0, theta, dt, slots, loss, grad):  # pragma: no cover - compiled
    """Thread b replays the slot program ``prog`` with its own slots ``slots[:, :, b]``.

    ``prog`` rows are ``(op, src, dst, first_step, count)``: ``OP_STEP`` walks
    ``count`` RK4 steps from slot ``src`` into slot ``dst`` (in registers),
    ``OP_SEED`` takes the loss ``x_n`` from slot ``src`` and seeds the
    gradient, ``OP_PAINT`` is a backward step from the state in slot ``src``.
    ``slots`` is ``(nslots, 3, batch)`` so that a warp's accesses coalesce.
    Writes ``loss[b] = x_n`` and ``grad[b] = d x_n / d (x0, sigma, rho, beta)``.
    """
    b = cuda.grid(1)
    if b >= x0.shape[0]:
        return
    s, r, be = theta[b, 0], theta[b, 1], theta[b, 2]
    slots[0, 0, b], slots[0, 1, b], slots[0, 2, b] = x0[b, 0], x0[b, 1], x0[b, 2]
    gx = gy = gz = ts = tr = tb = 0.0
    lo = 0.0
    for k in range(prog.shape[0]):
        op, src = prog[k, 0], prog[k, 1]
        if op == OP_STEP:
            x, y, z = slots[src, 0, b], slots[src, 1, b], slots[src, 2, b]
            for _ in range(prog[k, 4]):
                x, y, z = _step3(x, y, z, s, r, be, dt)
            dst = prog[k, 2]
            slots[dst, 0, b], slots[dst, 1, b], slots[dst, 2, b] = x, y, z
        elif op == OP_SEED:
            lo = slots[src, 0, b]
            gx = 1.0
        else:
            g = _vjp3(slots[src, 0, b], slots[src, 1, b], slots[src, 2, b], s, r, be, dt,
                      gx, gy, gz)
            gx, gy, gz = g[0], g[1], g[2]
            ts, tr, tb = ts + g[3], tr + g[4], tb + g[5]
    loss[b] = lo
    grad[b, 0], grad[b, 1], grad[b, 2] = gx, gy, gz
    grad[b, 3], grad[b, 4], grad[b, 5] = ts, tr, tb
