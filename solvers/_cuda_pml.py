"""numba.cuda kernels of the PML wave solver (Liu & Xu, section 4.2; paper notes section 6).

GPU twins of :mod:`solvers._pml_kernels`: the same state layout (one
``(4, NX, NY)`` float64 array: ``wold, w, phi, psi``), one thread per grid
cell. The per-cell formulas are the CPU kernels' own
(:data:`solvers._pml_kernels.CELL_FORMULAS`), compiled here as device
functions by :func:`solvers._pml_kernels.compile_cells`, so under Numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``, NumPy arrays) the results are equal bit
for bit to the CPU kernels; on a GPU the compiler may contract ``a * b + c``
into fused multiply-adds, so they agree to rounding.

The 2D kernels are grid-stride loops with x (the fastest thread index)
along the contiguous axis, so a warp's accesses coalesce; a GPU launch covers
the grid with one cell a thread, the simulator runs a few threads that loop.
Kernels (every output cell has exactly one writer, so there are no races and
no atomics):

* :func:`unew_kernel` -- ``u'`` into ``un`` (may alias ``wold``) and,
  optionally, the copy ``w -> out[0]`` of the out-of-place step;
* :func:`aux_kernel` -- ``phi', psi'`` from ``u'`` (may alias ``phi, psi``);
* :func:`swap_source_kernel` -- the slot swap of the in-place step plus the
  source; :func:`add_source_kernel` -- the source of the out-of-place step;
* :func:`vu_kernel` then :func:`adjoint_out_kernel` -- the adjoint step as a
  gather: first ``u'`` and ``V = dL/d(numerator of u')`` on every cell, then
  each output cell (and its ``dL/dc`` term) from its neighbours' values;
* :func:`residual_kernel`, :func:`misfit_grad_kernel`,
  :func:`source_grad_kernel` -- the running loss at the detectors.
"""

from __future__ import annotations

from numba import cuda

from solvers._pml_kernels import compile_cells

__all__ = [
    "add_source_kernel",
    "adjoint_out_kernel",
    "aux_kernel",
    "misfit_grad_kernel",
    "residual_kernel",
    "source_grad_kernel",
    "swap_source_kernel",
    "unew_kernel",
    "vu_kernel",
]

_dev = compile_cells(cuda.jit(device=True, inline=True))
_unew, _phinew, _psinew = _dev.u_new, _dev.phi_new, _dev.psi_new
_vadj, _ring_cell, _inner_cell = _dev.v_adj, _dev.ring_cell, _dev.inner_cell


@cuda.jit
def unew_kernel(s, c, sig, tau, k, un, wcopy, do_copy):  # pragma: no cover - compiled
    """``un = u'`` (zero ring); with ``do_copy`` also ``wcopy = w`` (the shifted slot)."""
    j0, i0 = cuda.grid(2)
    sj, si = cuda.gridsize(2)
    nxx, nyy = s.shape[1], s.shape[2]
    for i in range(i0, nxx, si):
        for j in range(j0, nyy, sj):
            if do_copy:
                wcopy[i, j] = s[1, i, j]
            if i == 0 or i == nxx - 1 or j == 0 or j == nyy - 1:
                un[i, j] = 0.0
            else:
                un[i, j] = _unew(s[1], s[0], s[2], s[3], c, i, j, sig[i], tau[j], k)


@cuda.jit
def aux_kernel(ph, ps, un, c, sig, tau, k, phn, psn):  # pragma: no cover - compiled
    """``phn, psn = phi', psi'`` from ``u' = un`` (zero ring); may alias ``ph, ps``."""
    j0, i0 = cuda.grid(2)
    sj, si = cuda.gridsize(2)
    nxx, nyy = un.shape[0], un.shape[1]
    for i in range(i0, nxx, si):
        for j in range(j0, nyy, sj):
            if i == 0 or i == nxx - 1 or j == 0 or j == nyy - 1:
                phn[i, j] = 0.0
                psn[i, j] = 0.0
            else:
                a = _phinew(ph, un, c, i, j, sig[i], tau[j], k)
                b = _psinew(ps, un, c, i, j, sig[i], tau[j], k)
                phn[i, j] = a
                psn[i, j] = b


@cuda.jit
def swap_source_kernel(s, isrc, jsrc, fsrc):  # pragma: no cover - compiled
    """Swap ``s[0]`` and ``s[1]``, then ``s[1, isrc, jsrc] += fsrc`` (in-place step)."""
    j0, i0 = cuda.grid(2)
    sj, si = cuda.gridsize(2)
    for i in range(i0, s.shape[1], si):
        for j in range(j0, s.shape[2], sj):
            t = s[0, i, j]
            s[0, i, j] = s[1, i, j]
            if i == isrc and j == jsrc:
                s[1, i, j] = t + fsrc
            else:
                s[1, i, j] = t


@cuda.jit
def add_source_kernel(u, isrc, jsrc, fsrc):  # pragma: no cover - compiled
    """``u[isrc, jsrc] += fsrc`` (one thread)."""
    if cuda.grid(1) == 0:
        u[isrc, jsrc] += fsrc


@cuda.jit
def vu_kernel(s, g, c, sig, tau, k, mrow, mcol, v, u):  # pragma: no cover - compiled
    """``v = V``, ``u = u'`` on every cell (zero on the ring): pass 1 of the adjoint."""
    j0, i0 = cuda.grid(2)
    sj, si = cuda.gridsize(2)
    nxx, nyy = s.shape[1], s.shape[2]
    for i in range(i0, nxx, si):
        for j in range(j0, nyy, sj):
            if i == 0 or i == nxx - 1 or j == 0 or j == nyy - 1:
                v[i, j] = 0.0
                u[i, j] = 0.0
            else:
                v[i, j] = _vadj(g[1], g[2], g[3], c, sig, tau, mrow, mcol, i, j, k)
                u[i, j] = _unew(s[1], s[0], s[2], s[3], c, i, j, sig[i], tau[j], k)


@cuda.jit
def adjoint_out_kernel(s, g, c, sig, tau, k, v, u, out, gc):  # pragma: no cover - compiled
    """Pass 2 of the adjoint: ``out = (d step/d s)^T g``, ``gc += (d step/d c)^T g``.

    Every cell of ``out`` and ``gc`` is written by its own thread only
    (a gather over the neighbours' ``V`` and ``u'``): race-free, no atomics.
    """
    q0, p0 = cuda.grid(2)
    sq, sp = cuda.gridsize(2)
    nxx, nyy = s.shape[1], s.shape[2]
    for p in range(p0, nxx, sp):
        for q in range(q0, nyy, sq):
            if p == 0 or p == nxx - 1 or q == 0 or q == nyy - 1:
                _ring_cell(p, q, p, g[0], c, v, k, out)
            else:
                _inner_cell(s[1], g[0], g[2], g[3], c, sig[p], tau[q], k, v, u, p, p, q,
                            out, gc)


@cuda.jit
def residual_kernel(s, obs, det_i, det_j, step, res):  # pragma: no cover - compiled
    """``res[step, d] = u^(step) - u_true^(step)`` at detector ``d``."""
    d = cuda.grid(1)
    if d < det_i.shape[0]:
        res[step, d] = s[1, det_i[d], det_j[d]] - obs[step, d]


@cuda.jit
def misfit_grad_kernel(g, res, step, cell_i, cell_j, start, members):  # pragma: no cover
    """``g[1] += 2 res[step]`` at the detectors, one thread per distinct cell.

    Detectors on the same cell (CSR lists ``members[start[t]:start[t+1]]``) are
    added in detector order by one thread, as ``numpy.add.at`` does on the CPU.
    """
    t = cuda.grid(1)
    if t < cell_i.shape[0]:
        i, j = cell_i[t], cell_j[t]
        acc = g[1, i, j]
        for m in range(start[t], start[t + 1]):
            acc = acc + 2.0 * res[step, members[m]]
        g[1, i, j] = acc


@cuda.jit
def source_grad_kernel(gsrc, step, dt2, g, isrc, jsrc):  # pragma: no cover - compiled
    """``gsrc[step] += dt^2 g[1, isrc, jsrc]`` (one thread)."""
    if cuda.grid(1) == 0:
        gsrc[step] += dt2 * g[1, isrc, jsrc]
