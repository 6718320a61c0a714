"""Shared references of the JAX adapter tests: a relative difference over pytrees and the
Lorenz RK4 step written in jax.numpy (paper section 4.1)."""

from __future__ import annotations

from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np


def rel(a: Any, b: Any) -> float:
    """Largest relative difference (max-norm per leaf) over the float leaves of two pytrees."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if x.dtype == jax.dtypes.float0:
            continue
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        worst = max(worst, float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-300)))
    return worst


def rk4(theta: Any, s: Any, dt: float = 1e-3) -> Any:
    """One classical Runge-Kutta step of the Lorenz system with parameters ``theta``."""
    def rhs(u: Any) -> Any:
        return jnp.stack([theta[0] * (u[1] - u[0]), u[0] * (theta[1] - u[2]) - u[1],
                          u[0] * u[1] - theta[2] * u[2]])
    k1 = rhs(s)
    k2 = rhs(s + 0.5 * dt * k1)
    k3 = rhs(s + 0.5 * dt * k2)
    k4 = rhs(s + dt * k3)
    return s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def count_eqns(jaxpr: Any) -> int:
    """Equations of a jaxpr, those of its sub-jaxprs (loop bodies, custom rules) included."""
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += count_eqns(sub)
    return total
