"""Numba CPU kernels of the PML wave solver (Liu & Xu, section 4.2; paper notes section 6).

The state is one C-contiguous ``(4, NX, NY)`` float64 array ``s`` with
``NX = nx + 2``, ``NY = ny + 2`` (a zero outer ring) and slots

* ``s[0]`` -- ``u^(k-1)`` (``wold``), ``s[1]`` -- ``u^(k)`` (``w``),
* ``s[2]`` -- ``phi``, ``s[3]`` -- ``psi``.

One step maps ``(wold, w, phi, psi)`` to ``(w, u' + f e_src, phi', psi')`` with,
on the interior ``1 <= i <= nx``, ``1 <= j <= ny`` (``c`` the squared velocity,
``sg = zeta_1(i)``, ``tu = zeta_2(j)``, ``half = (sg + tu) dt / 2``)::

    u'   = ((2 - sg tu dt^2 - 2 c (ax + ay)) w + c ax (w[i+1,j] + w[i-1,j])
            + c ay (w[i,j+1] + w[i,j-1]) + bx (phi[i+1,j] - phi[i-1,j])
            + by (psi[i,j+1] - psi[i,j-1]) - (1 - half) wold) / (1 + half)
    phi' = (1 - dt sg) phi + c (tu - sg) ex (u'[i+1,j] - u'[i-1,j])
    psi' = (1 - dt tu) psi + c (sg - tu) ey (u'[i,j+1] - u'[i,j-1])

with ``ax = dt^2/hx^2``, ``ay = dt^2/hy^2``, ``bx = dt^2/(2 hx)``,
``by = dt^2/(2 hy)``, ``ex = dt/(2 hx)``, ``ey = dt/(2 hy)`` (the vector ``k``
of the kernels holds ``dt, ax, ay, bx, by, ex, ey, flush``). ``u'``, ``phi'``
and ``psi'`` are zero on the ring; the source is added after ``phi'``/``psi'``.

Flush to zero: every value a kernel writes (``u'``, ``phi'``, ``psi'``, the
adjoint state) whose magnitude is below ``k[7]`` (default ``1e-140``, 0 turns
it off) is written as 0; NaN and infinities pass unchanged. The stencil's
domain of influence grows one cell per step while the wave moves
``sqrt(c) dt / h`` (0.165 in the paper's run) cells per step, so without it a
band of cells ahead of the wave holds subnormal numbers, whose arithmetic is
some 100x slower on x86: a step then took 1.4-1.8x as long as on a state
without them (250 x 250, measured). Flushed values are
more than 100 orders of magnitude below the field, so the loss and gradients
do not change at double precision.

Every kernel writes each output cell from exactly one thread (``prange`` over
rows), so results do not depend on the thread count, and the forward and
in-place kernels share the per-cell arithmetic: they agree bit for bit.

Thread counts: :meth:`solvers.pml.PMLSolver.threads` runs these kernels on
the thread count that its calls show faster (:class:`solvers.pml.ThreadChooser`:
a competing process on a small machine makes OpenMP's spinning threads wait
for scheduler slices at every barrier).

Single source: the per-cell formulas (:func:`u_new`, :func:`phi_new`,
:func:`psi_new` of the step; :func:`v_adj`, :func:`ring_cell`,
:func:`inner_cell` of the adjoint) are plain Python functions, compiled here by
``njit`` into the parallel row loops and in :mod:`solvers._cuda_pml` by
``numba.cuda.jit(device=True)`` into the one-cell-a-thread kernels
(:func:`compile_cells`). Under Numba's CUDA simulator both do the same
arithmetic in the same order, bit for bit.
"""

from __future__ import annotations

import builtins
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numba import njit, prange

from solvers import _threading  # noqa: F401  (TBB for the parallel kernels when installed)

__all__ = ["CELL_FORMULAS", "adjoint_kernel", "compile_cells", "step_inplace_kernel",
           "step_kernel"]


# ---------------------------------------------------------------------------
# per-cell formulas, written once: compiled here by ``njit`` and in
# :mod:`solvers._cuda_pml` by ``numba.cuda.jit(device=True)`` (:func:`compile_cells`)
# ---------------------------------------------------------------------------
def flush(x, k):  # pragma: no cover - compiled
    """``x``, or 0 when ``|x| < k[7]`` (keeps subnormal numbers out of the fields).

    Written so that NaN passes (``abs(nan) < k[7]`` is False): a NaN in the
    state stays NaN instead of turning into 0, with any ``k[7]``.
    """
    return 0.0 if abs(x) < k[7] else x


def u_new(w, wo, ph, ps, c, i, j, sg, tu, k):  # pragma: no cover - compiled
    """``u'`` at interior cell ``(i, j)`` (``sg = zeta_1(i)``, ``tu = zeta_2(j)``)."""
    dt, ax, ay, bx, by = k[0], k[1], k[2], k[3], k[4]
    half = 0.5 * dt * (sg + tu)
    cij = c[i, j]
    r = ((2.0 - sg * tu * dt * dt - 2.0 * cij * (ax + ay)) * w[i, j]
         + cij * ax * (w[i + 1, j] + w[i - 1, j])
         + cij * ay * (w[i, j + 1] + w[i, j - 1])
         + bx * (ph[i + 1, j] - ph[i - 1, j])
         + by * (ps[i, j + 1] - ps[i, j - 1])
         - (1.0 - half) * wo[i, j])
    return flush(r / (1.0 + half), k)


def phi_new(ph, un, c, i, j, sg, tu, k):  # pragma: no cover - compiled
    """``phi'`` at interior cell ``(i, j)`` from ``u' = un``."""
    r = (1.0 - k[0] * sg) * ph[i, j] + c[i, j] * (tu - sg) * k[5] * (un[i + 1, j] - un[i - 1, j])
    return flush(r, k)


def psi_new(ps, un, c, i, j, sg, tu, k):  # pragma: no cover - compiled
    """``psi'`` at interior cell ``(i, j)`` from ``u' = un``."""
    r = (1.0 - k[0] * tu) * ps[i, j] + c[i, j] * (sg - tu) * k[6] * (un[i, j + 1] - un[i, j - 1])
    return flush(r, k)


def v_adj(g1, g2, g3, c, sig, tau, mrow, mcol, i, j, k):  # pragma: no cover - compiled
    """``V = dL/d(numerator of u')`` at interior cell ``(i, j)`` (``g1..g3 = g[1..3]``)."""
    dt, ex, ey = k[0], k[5], k[6]
    sg, tu = sig[i], tau[j]
    ub = (g1[i, j]
          + ex * (mrow[i - 1] * c[i - 1, j] * (tu - sig[i - 1]) * g2[i - 1, j]
                  - mrow[i + 1] * c[i + 1, j] * (tu - sig[i + 1]) * g2[i + 1, j])
          + ey * (mcol[j - 1] * c[i, j - 1] * (sg - tau[j - 1]) * g3[i, j - 1]
                  - mcol[j + 1] * c[i, j + 1] * (sg - tau[j + 1]) * g3[i, j + 1]))
    return flush(ub / (1.0 + 0.5 * dt * (sg + tu)), k)


def v_at(v, lp, q):  # pragma: no cover - compiled
    """``V`` at row ``lp`` of ``v`` and column ``q``, zero outside the array."""
    if lp < 0 or q < 0 or lp >= v.shape[0] or q >= v.shape[1]:
        return 0.0
    return v[lp, q]


def cv_at(c, v, p, lp, q):  # pragma: no cover - compiled
    """``c[p, q] V[p, q]`` (``V[p, q]`` at row ``lp`` of ``v``), zero outside ``c``."""
    if p < 0 or q < 0 or p >= c.shape[0] or q >= c.shape[1]:
        return 0.0
    return c[p, q] * v[lp, q]


def ring_cell(p, q, lp, g0, c, v, k, out):  # pragma: no cover - compiled
    """Adjoint output cell ``(p, q)`` on the ring, ``V[p, q]`` at row ``lp`` of ``v``.

    Only ``wold`` (via the copy) and the neighbours' ``V`` contribute.
    """
    ax, ay, bx, by = k[1], k[2], k[3], k[4]
    out[0, p, q] = 0.0
    out[1, p, q] = flush(g0[p, q] + ax * (cv_at(c, v, p + 1, lp + 1, q)
                                          + cv_at(c, v, p - 1, lp - 1, q))
                         + ay * (cv_at(c, v, p, lp, q + 1) + cv_at(c, v, p, lp, q - 1)), k)
    out[2, p, q] = flush(bx * (v_at(v, lp - 1, q) - v_at(v, lp + 1, q)), k)
    out[3, p, q] = flush(by * (v_at(v, lp, q - 1) - v_at(v, lp, q + 1)), k)


def inner_cell(w, g0, g2, g3, c, sg, tu, k, v, u, p, lp, q, out, gc):  # pragma: no cover
    """Adjoint output cell ``(p, q)`` in the interior and its ``dL/dc`` term.

    ``w = s[1]``, ``g0, g2, g3 = g[0], g[2], g[3]``; ``V`` and ``u'`` of row
    ``p`` are rows ``lp`` of ``v`` and ``u``.
    """
    dt, ax, ay, bx, by, ex, ey = k[0], k[1], k[2], k[3], k[4], k[5], k[6]
    vv = v[lp, q]
    cpq = c[p, q]
    half = 0.5 * dt * (sg + tu)
    a = 2.0 - sg * tu * dt * dt - 2.0 * cpq * (ax + ay)
    out[0, p, q] = flush(-(1.0 - half) * vv, k)
    out[1, p, q] = flush(g0[p, q] + a * vv
                         + ax * (c[p + 1, q] * v[lp + 1, q] + c[p - 1, q] * v[lp - 1, q])
                         + ay * (c[p, q + 1] * v[lp, q + 1] + c[p, q - 1] * v[lp, q - 1]), k)
    out[2, p, q] = flush((1.0 - dt * sg) * g2[p, q] + bx * (v[lp - 1, q] - v[lp + 1, q]), k)
    out[3, p, q] = flush((1.0 - dt * tu) * g3[p, q] + by * (v[lp, q - 1] - v[lp, q + 1]), k)
    lap = (-2.0 * (ax + ay) * w[p, q] + ax * (w[p + 1, q] + w[p - 1, q])
           + ay * (w[p, q + 1] + w[p, q - 1]))
    gc[p, q] += (vv * lap
                 + (tu - sg) * ex * g2[p, q] * (u[lp + 1, q] - u[lp - 1, q])
                 + (sg - tu) * ey * g3[p, q] * (u[lp, q + 1] - u[lp, q - 1]))


#: The per-cell formulas, in the order :func:`compile_cells` compiles them.
CELL_FORMULAS: tuple[Callable[..., Any], ...] = (
    flush, u_new, phi_new, psi_new, v_adj, v_at, cv_at, ring_cell, inner_cell)


def compile_cells(jit: Callable[[Callable[..., Any]], Any],
                  formulas: Sequence[Callable[..., Any]] = CELL_FORMULAS) -> types.SimpleNamespace:
    """Compile the per-cell formulas with ``jit``; a namespace of the compiled functions.

    Each formula is rebuilt with its own globals, in which the other formulas'
    names refer to their compiled versions, so that one source compiles for
    the CPU (``njit``, inlined into the row loops) and for the GPU
    (``numba.cuda.jit(device=True, inline=True)``).
    """
    names: dict[str, Any] = {"__builtins__": builtins}
    out = {}
    for f in formulas:
        g = types.FunctionType(f.__code__, names, f.__name__, f.__defaults__, f.__closure__)
        g.__qualname__, g.__module__, g.__doc__ = f.__qualname__, f.__module__, f.__doc__
        names[f.__name__] = out[f.__name__] = jit(g)
    return types.SimpleNamespace(**out)


def _cpu_jit(formula: Callable[..., Any]) -> Any:
    """``njit`` for the CPU: inlined into the row loops, except the ring cells.

    The ring cells are O(nx + ny) of the O(nx ny) cells; inlining their three
    calls into the adjoint's parallel loop made its first compilation take 130 s
    instead of 47 s, at the same speed (1000 x 1000).
    """
    if formula.__name__ == "ring_cell":
        return njit(formula)
    return njit(inline="always")(formula)


_cpu = compile_cells(_cpu_jit)
_unew, _phinew, _psinew = _cpu.u_new, _cpu.phi_new, _cpu.psi_new
_vadj, _ring_cell, _inner_cell = _cpu.v_adj, _cpu.ring_cell, _cpu.inner_cell


@njit(cache=True, parallel=True)
def _unew_pass(s, c, sig, tau, k, un):  # pragma: no cover - compiled
    """``un = u'`` (zero ring); ``un`` may be ``s[0]`` (each cell reads only its own wold)."""
    nxx, nyy = s.shape[1], s.shape[2]
    wo, w, ph, ps = s[0], s[1], s[2], s[3]
    for i in prange(nxx):
        if i == 0 or i == nxx - 1:
            for j in range(nyy):
                un[i, j] = 0.0
        else:
            sg = sig[i]
            for j in range(1, nyy - 1):
                un[i, j] = _unew(w, wo, ph, ps, c, i, j, sg, tau[j], k)
            un[i, 0] = 0.0
            un[i, nyy - 1] = 0.0


@njit(cache=True, parallel=True)
def _aux_pass(ph, ps, un, c, sig, tau, k, phn, psn):  # pragma: no cover - compiled
    """``phn, psn = phi', psi'`` from ``u' = un`` (zero ring); may alias ``ph, ps``."""
    nxx, nyy = un.shape[0], un.shape[1]
    for i in prange(nxx):
        if i == 0 or i == nxx - 1:
            for j in range(nyy):
                phn[i, j] = 0.0
                psn[i, j] = 0.0
        else:
            sg = sig[i]
            for j in range(1, nyy - 1):
                phn[i, j] = _phinew(ph, un, c, i, j, sg, tau[j], k)
                psn[i, j] = _psinew(ps, un, c, i, j, sg, tau[j], k)
            phn[i, 0] = 0.0
            psn[i, 0] = 0.0
            phn[i, nyy - 1] = 0.0
            psn[i, nyy - 1] = 0.0


@njit(cache=True, parallel=True)
def _copy(src, dst):  # pragma: no cover - compiled
    for i in prange(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@njit(cache=True, parallel=True)
def _swap(a, b):  # pragma: no cover - compiled
    for i in prange(a.shape[0]):
        for j in range(a.shape[1]):
            t = a[i, j]
            a[i, j] = b[i, j]
            b[i, j] = t


def step_kernel(s, c, sig, tau, k, isrc, jsrc, fsrc, out):
    """Write the step of ``s`` into ``out`` (no aliasing); ``fsrc = f dt^2``."""
    _copy(s[1], out[0])
    _unew_pass(s, c, sig, tau, k, out[1])
    _aux_pass(s[2], s[3], out[1], c, sig, tau, k, out[2], out[3])
    out[1, isrc, jsrc] += fsrc


def step_inplace_kernel(s, c, sig, tau, k, isrc, jsrc, fsrc):
    """Overwrite ``s`` with its step: ``u'`` replaces ``wold``, then the slots swap."""
    _unew_pass(s, c, sig, tau, k, s[0])
    _aux_pass(s[2], s[3], s[0], c, sig, tau, k, s[2], s[3])
    _swap(s[0], s[1])
    s[1, isrc, jsrc] += fsrc


@njit(cache=True, inline="always")
def _row_vu(s, g, c, sig, tau, k, mrow, mcol, i, vr, ur):  # pragma: no cover - compiled
    """Row i of ``u'`` (into ``ur``) and of ``V = dL/d(numerator of u')`` (into ``vr``)."""
    nxx, nyy = s.shape[1], s.shape[2]
    if i <= 0 or i >= nxx - 1:
        for j in range(nyy):
            vr[j] = 0.0
            ur[j] = 0.0
        return
    wo, w, ph, ps = s[0], s[1], s[2], s[3]
    g1, g2, g3 = g[1], g[2], g[3]
    sg = sig[i]
    vr[0] = 0.0
    ur[0] = 0.0
    vr[nyy - 1] = 0.0
    ur[nyy - 1] = 0.0
    for j in range(1, nyy - 1):
        ur[j] = _unew(w, wo, ph, ps, c, i, j, sg, tau[j], k)
        vr[j] = _vadj(g1, g2, g3, c, sig, tau, mrow, mcol, i, j, k)


@njit(cache=True, inline="always")
def _row_out(s, g, c, sig, tau, k, vl, ul, p, lp, out, gc):  # pragma: no cover - compiled
    """Row p of ``gbar_i`` and of the ``c`` gradient from ``V``/``u'`` rows ``lp - 1..lp + 1``."""
    nxx, nyy = s.shape[1], s.shape[2]
    g0 = g[0]
    if p == 0 or p == nxx - 1:
        for q in range(nyy):
            _ring_cell(p, q, lp, g0, c, vl, k, out)
        return
    _ring_cell(p, 0, lp, g0, c, vl, k, out)
    _ring_cell(p, nyy - 1, lp, g0, c, vl, k, out)
    w, g2, g3 = s[1], g[2], g[3]
    sg = sig[p]
    for q in range(1, nyy - 1):
        _inner_cell(w, g0, g2, g3, c, sg, tau[q], k, vl, ul, p, lp, q, out, gc)


@njit(cache=True, parallel=True)
def _adjoint_strips(s, g, c, sig, tau, k, mrow, mcol, out, gc, rows):  # pragma: no cover
    nxx, nyy = s.shape[1], s.shape[2]
    nstrips = (nxx + rows - 1) // rows
    for st in prange(nstrips):
        r0 = st * rows
        r1 = min(r0 + rows, nxx)
        vl = np.empty((r1 - r0 + 2, nyy))
        ul = np.empty((r1 - r0 + 2, nyy))
        for i in range(r0 - 1, r1 + 1):
            _row_vu(s, g, c, sig, tau, k, mrow, mcol, i, vl[i - r0 + 1], ul[i - r0 + 1])
        for p in range(r0, r1):
            _row_out(s, g, c, sig, tau, k, vl, ul, p, p - r0 + 1, out, gc)


def adjoint_kernel(s, g, c, sig, tau, k, mrow, mcol, out, gc, rows=8):
    """Vector-Jacobian product of one step (the source shift drops out).

    Writes ``out = (d step / d s)^T g`` and adds ``(d step / d c)^T g`` to
    ``gc`` (interior cells; the ring of ``c`` is never read). ``mrow``/``mcol``
    are 1 on interior rows/columns and 0 on the ring.

    Race-free gather: strips of ``rows`` rows go to the threads; each strip
    first computes ``u'`` and ``V = dL/d(numerator of u')`` on its rows plus
    one halo row either side (thread-local, cache-resident), then writes its
    own rows of ``out`` and ``gc``. Every output cell is written by exactly one
    thread, and the arithmetic of a cell does not depend on the strip size.
    """
    _adjoint_strips(s, g, c, sig, tau, k, mrow, mcol, out, gc, rows)


