"""Differentiate two simulations written in plain ``jax.numpy`` with ``checkpointed_scan``.

1. The Lorenz system of Liu & Xu, section 4.1: classical RK4, ``(x0, y0, z0) =
   (1, 0, 0)``, ``(sigma, rho, beta) = (10, 27, 8/3)``, ``dt = 3e-3``,
   ``n = 10^4`` steps; the loss is the final x-coordinate and the gradient is
   taken with respect to the six inputs. ``checkpointed_scan`` stores 10
   states (optimal Treeverse); the result is checked against ``jax.grad`` of
   the plain ``lax.scan`` (which stores all 10^4) and against the Numba
   executor of :mod:`solvers.lorenz` replaying the same schedule (the system is
   chaotic over 10^4 steps, so a different order of floating-point operations
   shows up at about 1e-9).
2. A 2D acoustic wave equation (leapfrog, 5-point Laplacian, zero boundary),
   a Ricker source in the middle and a line of receivers: the loss is the
   misfit of the recorded traces (the scan's per-step outputs ``ys``) against
   those of a model with a slow inclusion, and the gradient is taken with
   respect to the squared-velocity field that the step closes over (full
   waveform inversion's gradient).

Both print the gradient's agreement with ``lax.scan`` and the compiled
temporary memory of the two (``memory_analysis``). About 20 s.

Usage: python examples/jax_lorenz.py [--quick]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from _args import agrees, guarded, lacking, parser
except ImportError:  # loaded from its path, not run: put examples/ on the path for _args
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _args import agrees, guarded, lacking, parser

try:
    import jax
except ImportError:  # the extra is missing: one line naming it, not a traceback
    lacking("JAX", "jax", "examples/jax_lorenz.py")
import jax.numpy as jnp
import numpy as np

try:
    import pebbles
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pebbles
from pebbles.jax import checkpointed_scan

jax.config.update("jax_enable_x64", True)

LORENZ_X0 = (1.0, 0.0, 0.0)
LORENZ_THETA = (10.0, 27.0, 8.0 / 3.0)
LORENZ_DT = 3e-3


# ---------------------------------------------------------------------------
# Lorenz (section 4.1)
# ---------------------------------------------------------------------------
def lorenz_rhs(u: jax.Array, theta: jax.Array) -> jax.Array:
    """dx/dt = sigma (y - x), dy/dt = x (rho - z) - y, dz/dt = x y - beta z."""
    x, y, z = u[0], u[1], u[2]
    return jnp.stack([theta[0] * (y - x), x * (theta[1] - z) - y, x * y - theta[2] * z])


def lorenz_step(theta: jax.Array, u: jax.Array, dt: float = LORENZ_DT) -> jax.Array:
    """One classical RK4 step."""
    k1 = dt * lorenz_rhs(u, theta)
    k2 = dt * lorenz_rhs(u + k1 / 2, theta)
    k3 = dt * lorenz_rhs(u + k2 / 2, theta)
    k4 = dt * lorenz_rhs(u + k3, theta)
    return u + k1 / 6 + k2 / 3 + k3 / 3 + k4 / 6


def lorenz_loss(scan: Callable, n: int) -> Callable:
    """``loss(inputs)`` with ``inputs = (x0, y0, z0, sigma, rho, beta)``: final x."""
    def loss(inputs: jax.Array) -> jax.Array:
        u0, theta = inputs[:3], inputs[3:]
        u, _ = scan(lambda u, _: (lorenz_step(theta, u), None), u0, None, n)
        return u[0]
    return loss


def checkpointed(budget: int, **options: Any) -> Callable:
    """A ``lax.scan``-like ``scan(f, init, xs, length)`` that stores ``budget`` carries."""
    return lambda f, init, xs=None, length=None: checkpointed_scan(
        f, init, xs, length, budget=budget, **options)


# ---------------------------------------------------------------------------
# 2D wave equation
# ---------------------------------------------------------------------------
def laplacian(u: jax.Array) -> jax.Array:
    """5-point Laplacian (grid units) with zero values outside the grid."""
    p = jnp.pad(u, 1)
    return p[2:, 1:-1] + p[:-2, 1:-1] + p[1:-1, 2:] + p[1:-1, :-2] - 4.0 * u


def wave_step(c2: jax.Array, state: tuple[jax.Array, jax.Array], src: jax.Array,
              ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """Leapfrog ``u+ = 2u - u- + c2 * lap(u)`` (``c2 = (c dt / h)^2``), a point source in
    the middle; the output is the new field along the receiver row (row 8)."""
    u_prev, u = state
    m = u.shape[0] // 2
    u_next = (2.0 * u - u_prev + c2 * laplacian(u)).at[m, m].add(src)
    return (u, u_next), u_next[8, :]


def ricker(n: int, dt: float = 0.5, f0: float = 0.04, delay: float = 40.0) -> jax.Array:
    """Ricker wavelet of ``n`` samples (time in units of the step)."""
    a = (np.pi * f0 * (np.arange(n) * dt * 2 - delay)) ** 2
    return jnp.asarray((1 - 2 * a) * np.exp(-a))


def wave_models(size: int) -> tuple[jax.Array, jax.Array]:
    """(background, true) squared Courant numbers: 0.2, with a slower disc in the true model."""
    i, j = np.mgrid[:size, :size]
    disc = (i - 0.6 * size) ** 2 + (j - 0.5 * size) ** 2 < (0.12 * size) ** 2
    background = np.full((size, size), 0.2)
    return jnp.asarray(background), jnp.asarray(np.where(disc, 0.12, background))


def wave_problem(size: int, n: int) -> tuple[Callable, jax.Array, tuple, jax.Array, jax.Array]:
    """(loss_for(scan), c2 background, s0, source, observed traces) of a size x size x n run."""
    background, true = wave_models(size)
    s0 = (jnp.zeros((size, size)), jnp.zeros((size, size)))
    src = ricker(n)
    observed = jax.jit(lambda c2: jax.lax.scan(lambda s, f: wave_step(c2, s, f), s0, src)[1])(
        true)

    def loss_for(scan: Callable) -> Callable:
        def loss(c2: jax.Array, s0: tuple, src: jax.Array, observed: jax.Array) -> jax.Array:
            _, traces = scan(lambda s, f: wave_step(c2, s, f), s0, src)
            return 0.5 * jnp.sum((traces - observed) ** 2)
        return loss

    return loss_for, background, s0, src, observed


# ---------------------------------------------------------------------------
# running both
# ---------------------------------------------------------------------------
def compiled_grad(loss: Callable, *args: Any) -> tuple[Any, float, float]:
    """(gradient, seconds of the compiled run, temp MB) of ``jax.jit(jax.grad(loss))``."""
    fn = jax.jit(jax.grad(loss)).lower(*args).compile()
    temp = fn.memory_analysis().temp_size_in_bytes / 2**20
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    g = jax.block_until_ready(fn(*args))
    return g, time.perf_counter() - t0, temp


def relative(a: Any, b: Any) -> float:
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def lorenz_demo(n: int, budget: int) -> None:
    inputs = jnp.asarray(LORENZ_X0 + LORENZ_THETA)
    ours, t_ours, m_ours = compiled_grad(lorenz_loss(checkpointed(budget), n), inputs)
    ref, t_ref, m_ref = compiled_grad(lorenz_loss(jax.lax.scan, n), inputs)
    print(f"Lorenz, n = {n}, budget = {budget}: d x_n / d (x0, y0, z0, sigma, rho, beta) =")
    print("  " + np.array2string(np.asarray(ours), precision=6))
    print(f"  vs jax.grad(lax.scan): relative difference {relative(ours, ref):.1e}; "
          f"{t_ours * 1e3:.1f} ms vs {t_ref * 1e3:.1f} ms, temp {m_ours:.2f} MB vs {m_ref:.2f} MB")
    agrees("the Lorenz gradient vs jax.grad(lax.scan)", relative(ours, ref))
    try:
        from solvers import lorenz
    except ImportError:
        return
    sched = pebbles.schedule("treeverse", n, budget=budget)
    numba = lorenz.gradient_reverse(sched, LORENZ_X0, LORENZ_THETA, LORENZ_DT, n)
    print(f"  vs the Numba executor on the same schedule: relative difference "
          f"{relative(ours, jnp.asarray(numba.gradient)):.1e} (another order of operations: "
          f"the chaotic system amplifies round-off; it made {numba.forward_steps} forward and "
          f"{numba.backward_steps} backward steps)")


def wave_demo(size: int, n: int, budget: int) -> None:
    loss_for, c2, s0, src, observed = wave_problem(size, n)
    args = (c2, s0, src, observed)
    ours, t_ours, m_ours = compiled_grad(loss_for(checkpointed(budget)), *args)
    ref, t_ref, m_ref = compiled_grad(loss_for(jax.lax.scan), *args)
    state_mb = 2 * size * size * 8 / 2**20
    print(f"Wave {size} x {size} x {n} steps, budget = {budget} (one carry {state_mb:.2f} MB):")
    print(f"  |dL/dc2| = {float(jnp.linalg.norm(ours)):.4e}, vs jax.grad(lax.scan): relative "
          f"difference {relative(ours, ref):.1e}")
    print(f"  {t_ours:.2f} s vs {t_ref:.2f} s; temp {m_ours:.1f} MB "
          f"({m_ours / state_mb:.1f} carries) vs {m_ref:.1f} MB ({m_ref / state_mb:.0f} carries)")
    agrees("the wave gradient vs jax.grad(lax.scan)", relative(ours, ref))


@guarded
def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--quick", action="store_true",
                   help="Lorenz n = 1000 and a 64 x 64 x 300 wave instead of n = 10^4 and "
                        "128 x 128 x 1000")
    quick = p.parse_args(argv).quick
    lorenz_demo(1000 if quick else 10_000, 10)
    wave_demo(64 if quick else 128, 300 if quick else 1000, 10)


if __name__ == "__main__":
    main()
