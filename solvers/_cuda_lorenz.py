"""numba.cuda kernels of the batched Lorenz experiment (Liu & Xu, section 4.1; notes section 5).

One thread per parameter set ``(x0, sigma, rho, beta)``:

* :func:`forward_kernel` / :func:`sensitivity_kernel` -- forward mode with the
  six tangents (the Figure 3 map: mean |gradient| on a (sigma, rho) grid);
* :func:`reverse_kernel` -- reverse mode: every thread runs the same slot
  program (a checkpoint schedule checked and lowered once on the host by
  :func:`pebbles.lower`) from device memory, with its own slots.

The paper (section 4.1) runs the forward-mode map on a GPU and notes that
Treeverse cannot run inside a GPU kernel because its recursion needs a global
stack. The recursion is only needed to *decide* the moves; the decisions do
not depend on the data. Lowered once on the host, the schedule is a flat
array that every thread reads in lock step (no divergence, no stack, no
allocation): a thread needs only its ``S + 2`` states.

The scalar formulas are those of :mod:`solvers._lorenz_scalar`, compiled here
as device functions (the CPU kernels of :mod:`solvers.lorenz` compile the same
source with ``njit``): bit for bit equal under the CUDA simulator, equal to
rounding on a GPU (fused multiply-adds).
"""

from __future__ import annotations

from numba import cuda, float64

from pebbles import OP_SEED, OP_STEP
from solvers._lorenz_scalar import compile_formulas

__all__ = ["forward_kernel", "reverse_kernel", "sensitivity_kernel"]

_DEV = compile_formulas(cuda.jit(device=True, inline=True))
_step3, _stages, _jvp_col, _vjp3 = _DEV.step3, _DEV.stages, _DEV.jvp_col, _DEV.vjp3


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
    """Thread b runs the slot program ``prog`` with its own slots ``slots[:, :, b]``.

    ``prog`` is ``pebbles.lower(...).ops``, rows ``(op, src, dst, first_step,
    count)``: ``OP_STEP`` walks ``count`` RK4 steps from slot ``src`` into slot
    ``dst`` (in registers), ``OP_SEED`` takes the loss ``x_n`` from slot ``src``
    and seeds the gradient, ``OP_PAINT`` is a backward step from the state in
    slot ``src``.
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
