"""The Lorenz figures of Liu & Xu, section 4.1 (paper notes section 5): Figures 3 and 4.

* Figure 3 -- :func:`draw_lorenz_figure3`: (a) the mean |gradient| of the final
  x-coordinate over the six inputs ``(x0, y0, z0, sigma, rho, beta)`` on a
  ``(sigma, rho)`` grid, log colour scale, with the curve
  ``rho = sigma (sigma + beta + 3) / (sigma - beta - 1)`` and two marked points;
  (b) the trajectories at those two points in 3D. The grid comes from
  :func:`solvers.lorenz.sensitivity_map` (forward mode), either computed by
  :func:`lorenz_sensitivity` or loaded by :func:`load_sensitivity` from the
  ``.npz`` written by ``python -m solvers.lorenz sensitivity --out map.npz``.
* Figure 4 -- :func:`draw_lorenz_figure4`: the relative error of the
  adjoint-state gradient with respect to ``x0`` (paper Algorithm 1,
  :func:`solvers.lorenz.gradient_adjoint`) against the forward-mode gradient,
  (a) against the number of steps (median over random starts ``x0 ~ N(0, I)``),
  (b) at a fixed number of steps against the reload interval K
  (data: :func:`adjoint_errors_vs_steps`, :func:`adjoint_errors_vs_reload`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from pebbles import PebblesValueError

from ._game import _new_figure

__all__ = ["adjoint_errors_vs_reload", "adjoint_errors_vs_steps", "draw_lorenz_figure3",
           "draw_lorenz_figure4", "load_sensitivity", "lorenz_sensitivity",
           "lorenz_trajectory", "POINTS", "RELOAD_INTERVALS"]

#: The two marked parameter points of Figure 3: (sigma, rho).
POINTS = ((10.0, 27.0), (10.0, 15.0))
#: Reload intervals K of Figure 4(b).
RELOAD_INTERVALS = (1, 20, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500)
BETA = 8.0 / 3.0
#: Relative errors above this are drawn as overflow (the adjoint state has diverged).
DIVERGED = 1e3
_COLOURS = ("#d62728", "#ff7f0e")


def lorenz_sensitivity(resolution: int = 201, *, sigma_range: tuple[float, float] = (0.0, 20.0),
                       rho_range: tuple[float, float] = (0.0, 50.0), beta: float = BETA,
                       n: int = 10_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Figure 3 grid: ``(sigmas, rhos, mean |gradient|)``, shape ``(len(sigmas), len(rhos))``.

    The paper's grid is the default: sigma = 0:0.1:20, rho = 0:0.25:50 (201 x
    201), n = 10^4 steps of dt = 3e-3, beta = 8/3 (about 15 s on two cores).
    """
    if not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise PebblesValueError(f"resolution={resolution!r} must be an integer >= 2 (grid "
                                "points per axis); use e.g. resolution=201 (the paper's grid)")
    from solvers.lorenz import sensitivity_map

    sigmas = np.linspace(*sigma_range, resolution)
    rhos = np.linspace(*rho_range, resolution)
    return sigmas, rhos, sensitivity_map(sigmas, rhos, beta, n=n)


def load_sensitivity(
    path: str | Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Read ``(sigmas, rhos, mean_abs_grad, beta, steps)`` from ``solvers.lorenz sensitivity
    --out`` (files without ``beta`` or ``steps`` get the paper's 8/3 and 10^4)."""
    try:
        with np.load(path) as data:
            sigmas, rhos, grid = data["sigmas"], data["rhos"], data["mean_abs_grad"]
            beta = float(data["beta"]) if "beta" in data else BETA
            steps = int(data["steps"]) if "steps" in data else 10_000
    except (OSError, KeyError, ValueError) as err:
        raise PebblesValueError(
            f"path={str(path)!r} is not a Figure 3 grid ({err}); it must be an .npz with "
            "sigmas, rhos and mean_abs_grad; write one with `python -m solvers.lorenz "
            "sensitivity --out map.npz`") from None
    return sigmas, rhos, grid, beta, steps


def lorenz_trajectory(sigma: float, rho: float, beta: float = BETA, *, n: int = 10_000,
                      x0: Sequence[float] = (1.0, 0.0, 0.0), dt: float = 3e-3) -> np.ndarray:
    """The RK4 states ``s_0..s_n`` of the Lorenz system, shape ``(n + 1, 3)``."""
    from solvers.lorenz import rk4_step

    theta = np.array([sigma, rho, beta], dtype=float)
    out = np.empty((n + 1, 3))
    out[0] = x0
    for i in range(n):
        out[i + 1] = rk4_step(out[i], theta, dt)
    return out


def _check_grid(sigmas: np.ndarray, rhos: np.ndarray, grid: np.ndarray) -> None:
    if grid.shape != (sigmas.size, rhos.size) or min(grid.shape) < 2:
        raise PebblesValueError(
            f"grid.shape={grid.shape} must be (len(sigmas), len(rhos)) = "
            f"({sigmas.size}, {rhos.size}) with at least 2 points per axis; pass the arrays "
            "returned by lorenz_sensitivity or load_sensitivity")


def _critical_curve(ax: Axes, beta: float, sigmas: np.ndarray, rhos: np.ndarray) -> None:
    """``rho = sigma (sigma + beta + 3) / (sigma - beta - 1)`` for sigma > beta + 1."""
    s = np.linspace(beta + 1 + 1e-3, sigmas.max(), 400)
    r = s * (s + beta + 3) / (s - beta - 1)
    keep = r <= rhos.max()
    ax.plot(s[keep], r[keep], color="white", lw=2.4, zorder=3)
    ax.plot(s[keep], r[keep], color="black", lw=1.2, ls="--", zorder=4, gid="critical-curve",
            label=r"$\rho = \sigma(\sigma+\beta+3)/(\sigma-\beta-1)$")


def _heat_map(fig: Figure, ax: Axes, sigmas: np.ndarray, rhos: np.ndarray, grid: np.ndarray,
              beta: float, points: Sequence[tuple[float, float]]) -> None:
    bad = ~np.isfinite(grid) | (grid <= 0)
    data = np.ma.masked_array(grid, bad).T
    good = grid[~bad]
    norm = LogNorm(vmin=good.min(), vmax=good.max()) if good.size else None
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#ff00ff")
    ds, dr = (sigmas[1] - sigmas[0]) / 2, (rhos[1] - rhos[0]) / 2
    im = ax.imshow(data, origin="lower", aspect="auto", cmap=cmap, norm=norm,
                   interpolation="nearest", gid="sensitivity",
                   extent=(sigmas[0] - ds, sigmas[-1] + ds, rhos[0] - dr, rhos[-1] + dr))
    label = r"mean $|\partial x_n / \partial(x_0,y_0,z_0,\sigma,\rho,\beta)|$ (log)"
    if bad.any():
        label += f"\nmagenta: {int(bad.sum())} cells overflow (inf/NaN) or are 0"
    fig.colorbar(im, ax=ax, label=label, shrink=0.9)
    _critical_curve(ax, beta, sigmas, rhos)
    for (s, r), c in zip(points, _COLOURS, strict=False):
        ax.plot(s, r, marker="o", ms=8, mfc=c, mec="white", mew=1.5, ls="none", zorder=5,
                gid="marked-point", label=rf"$(\sigma, \rho) = ({s:g}, {r:g})$")
    ax.set_xlim(sigmas[0] - ds, sigmas[-1] + ds)
    ax.set_ylim(rhos[0] - dr, rhos[-1] + dr)
    ax.set_xlabel(r"$\sigma$")
    ax.set_ylabel(r"$\rho$")
    ax.legend(loc="upper left", fontsize=7, framealpha=0.85)


def _trajectories(ax: Axes, points: Sequence[tuple[float, float]], beta: float, n: int) -> None:
    for (s, r), c in zip(points, _COLOURS, strict=False):
        path = lorenz_trajectory(s, r, beta, n=n)
        ax.plot(path[:, 0], path[:, 1], path[:, 2], color=c, lw=0.6, gid="trajectory",
                label=rf"$\sigma={s:g}$, $\rho={r:g}$")
        ax.scatter(*path[-1], color=c, s=18, depthshade=False)
    ax.set_xlabel("x", labelpad=-2)
    ax.set_ylabel("y", labelpad=-2)
    ax.set_zlabel("z", labelpad=-2)
    ax.tick_params(labelsize=7, pad=0)
    ax.legend(loc="upper left", fontsize=7, frameon=False)


def draw_lorenz_figure3(sigmas: np.ndarray, rhos: np.ndarray, grid: np.ndarray, *,
                        beta: float = BETA, points: Sequence[tuple[float, float]] = POINTS,
                        n: int = 10_000, trajectories: bool = True) -> Figure:
    """Paper Figure 3: (a) mean |gradient| over (sigma, rho), (b) two trajectories in 3D.

    Parameters
    ----------
    sigmas, rhos : ndarray
        Evenly spaced grid axes.
    grid : ndarray, shape ``(len(sigmas), len(rhos))``
        Mean |gradient| (:func:`lorenz_sensitivity`); cells that overflowed
        (inf/NaN) or are 0 are drawn magenta and counted in the colour-bar label.
    beta : float
        The beta of the grid (for the critical curve and the trajectories).
    points : sequence of (sigma, rho)
        Marked on the map; their trajectories (``n`` steps from (1, 0, 0)) in (b).
    trajectories : bool
        Draw panel (b).

    Returns
    -------
    matplotlib.figure.Figure
    """
    sigmas, rhos, grid = (np.asarray(a, dtype=float) for a in (sigmas, rhos, grid))
    _check_grid(sigmas, rhos, grid)
    fig = _new_figure(11.5 if trajectories else 6.2, 4.8)
    ax = fig.add_subplot(1, 2 if trajectories else 1, 1)
    _heat_map(fig, ax, sigmas, rhos, grid, beta, points)
    b = "8/3" if abs(beta - BETA) < 1e-12 else f"{beta:.4g}"
    ax.set_title(f"(a) sensitivity of $x_n$, n = {n}, $\\beta$ = {b}", fontsize=10)
    if trajectories:
        ax3 = fig.add_subplot(1, 2, 2, projection="3d")
        _trajectories(ax3, points, beta, n)
        ax3.set_title(f"(b) trajectories from (1, 0, 0), {n} RK4 steps", fontsize=10)
    return fig


def _relative_errors(n: int, starts: np.ndarray, reload_every: int | None) -> np.ndarray:
    """Relative l2 error of the adjoint d x_n / d x0 for each start (inf where it overflows)."""
    from solvers.lorenz import gradient_adjoint, gradient_forward

    out = np.empty(len(starts))
    with np.errstate(all="ignore"):
        for k, x0 in enumerate(starts):
            exact = gradient_forward(x0, n=n).gradient[:3]
            adj = gradient_adjoint(x0, n=n, reload_every=reload_every).gradient[:3]
            err = np.linalg.norm(adj - exact) / np.linalg.norm(exact)
            out[k] = err if np.isfinite(err) else np.inf
    return out


def _starts(count: int, seed: int) -> np.ndarray:
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise PebblesValueError(f"starts={count!r} must be an integer >= 1 (random x0 ~ N(0, I)"
                                " per point); use e.g. starts=20")
    return np.random.default_rng(seed).standard_normal((count, 3))


def adjoint_errors_vs_steps(steps: Sequence[int] | np.ndarray = range(1, 1001), *,
                            starts: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Figure 4(a) data: ``(steps, errors)``, errors of shape ``(len(steps), starts)``.

    Each entry is ``|g_adj - g| / |g|`` for the gradient of x_n with respect to
    x0, adjoint state without reloads against forward mode, at the paper's
    defaults (sigma, rho, beta) = (10, 27, 8/3), dt = 3e-3, from
    ``x0 ~ N(0, I)`` (``seed``); ``inf`` marks overflow (inf/NaN).
    """
    st = np.asarray(list(steps), dtype=np.int64)
    if st.size == 0 or st.min() < 1:
        raise PebblesValueError(f"steps={st.tolist()[:5]}... must be non-empty and >= 1; "
                                "use e.g. range(1, 1001)")
    x0s = _starts(starts, seed)
    return st, np.array([_relative_errors(int(n), x0s, None) for n in st])


def adjoint_errors_vs_reload(intervals: Sequence[int] = RELOAD_INTERVALS, *, n: int = 10_000,
                             starts: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Figure 4(b) data: ``(intervals, errors)`` for ``n`` steps with reloads every K.

    As :func:`adjoint_errors_vs_steps`, but the adjoint run resets its state to
    the stored forward state every K steps (``reload_every=K``).
    """
    ks = np.asarray(list(intervals), dtype=np.int64)
    if ks.size == 0 or ks.min() < 1:
        raise PebblesValueError(f"intervals={ks.tolist()} must be non-empty and >= 1 (reload "
                                "interval K); use e.g. (1, 20, 50, 100, 200)")
    x0s = _starts(starts, seed)
    return ks, np.array([_relative_errors(n, x0s, int(k)) for k in ks])


def _median_panel(ax: Axes, x: np.ndarray, errors: np.ndarray, marker: str) -> None:
    """Median (line) and the 25-75 % band; errors above :data:`DIVERGED` count as overflow."""
    errors = np.where(errors > DIVERGED, np.inf, errors)
    with np.errstate(invalid="ignore"):
        med = np.median(errors, axis=1)
        q1, q3 = np.percentile(errors, [25, 75], axis=1)
    fin = np.isfinite(med)
    ax.fill_between(x, q1, np.where(np.isfinite(q3), q3, DIVERGED), color="#1f77b4",
                    alpha=0.2, lw=0, label="25-75 % of starts")
    ax.plot(x[fin], med[fin], color="#1f77b4", marker=marker, ms=4, lw=1.4, gid="median",
            label=f"median over {errors.shape[1]} starts")
    if not fin.all():
        first = x[~fin][0]
        ax.axvline(first, color="#d62728", ls="--", lw=1, gid="overflow")
        ax.text(first, 0.55, f"median > {DIVERGED:g}\nor inf/NaN\nfrom n = {first} ",
                color="#d62728", transform=ax.get_xaxis_transform(), fontsize=8, ha="right",
                va="center")
    ax.set_yscale("log")
    if np.nanmax(np.where(np.isfinite(errors), errors, DIVERGED)) > 10:
        ax.set_ylim(top=DIVERGED * 10)
    ax.set_xlim(0, x.max() * 1.02)
    ax.grid(True, which="major", color="#e6e6e6", lw=0.6)
    ax.legend(fontsize=8, loc="lower right")


def draw_lorenz_figure4(steps_data: tuple[np.ndarray, np.ndarray] | None = None,
                        reload_data: tuple[np.ndarray, np.ndarray] | None = None, *,
                        reload_steps: int = 10_000) -> Figure:
    """Paper Figure 4: adjoint-state error (a) against steps, (b) against reload interval K.

    Parameters
    ----------
    steps_data, reload_data : (x, errors), optional
        From :func:`adjoint_errors_vs_steps` and :func:`adjoint_errors_vs_reload`
        (default: computed with their defaults, about 10 s).
    reload_steps : int
        The n of ``reload_data`` (for the title).

    Returns
    -------
    matplotlib.figure.Figure
    """
    steps_data = steps_data or adjoint_errors_vs_steps()
    reload_data = reload_data or adjoint_errors_vs_reload(n=reload_steps)
    fig = _new_figure(10.5, 4.2)
    ax1, ax2 = fig.subplots(1, 2)
    _median_panel(ax1, *steps_data, "")
    ax1.set_xlabel("number of steps n")
    ax1.set_ylabel(r"relative error of $\partial x_n/\partial x_0$ (adjoint vs exact)")
    ax1.set_title("(a) adjoint state without reloads", fontsize=10)
    _median_panel(ax2, *reload_data, "o")
    ax2.set_xlabel("reload interval K (steps)")
    ax2.set_title(f"(b) n = {reload_steps}, forward state reloaded every K steps", fontsize=10)
    fig.suptitle(r"Lorenz, $(\sigma, \rho, \beta) = (10, 27, 8/3)$, dt = 3e-3, "
                 r"$x_0 \sim N(0, I)$; exact = forward mode", fontsize=10)
    return fig
