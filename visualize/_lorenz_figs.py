"""The Lorenz figures of Liu & Xu, section 4.1 (paper notes section 5): Figures 3 and 4.

Drawing only; the data come from :mod:`solvers.experiments`.

* Figure 3 -- :func:`draw_lorenz_figure3`: (a) the mean |gradient| of the final
  x-coordinate over the six inputs ``(x0, y0, z0, sigma, rho, beta)`` on a
  ``(sigma, rho)`` grid, log colour scale, with the curve
  ``rho = sigma (sigma + beta + 3) / (sigma - beta - 1)`` and the marked points
  (two by default); (b) the trajectories at those points in 3D (data:
  ``solvers.experiments.sensitivity_grid`` or ``load_sensitivity``, and
  ``lorenz_trajectory``).
* Figure 4 -- :func:`draw_lorenz_figure4`: the relative error of the
  adjoint-state gradient with respect to ``x0`` (paper Algorithm 1) against
  the forward-mode gradient, (a) against the number of steps (median over
  random starts), (b) at a fixed number of steps against the reload interval K
  (data: ``solvers.experiments.adjoint_errors_vs_steps`` and
  ``adjoint_errors_vs_reload``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import cycle
from numbers import Real

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from pebbles import PebblesTypeError, PebblesValueError

from ._game import _new_figure, as_floats, whole

__all__ = ["DIVERGED", "POINTS", "draw_lorenz_figure3", "draw_lorenz_figure4"]

#: The two marked parameter points of Figure 3: (sigma, rho).
POINTS = ((10.0, 27.0), (10.0, 15.0))
BETA = 8.0 / 3.0
#: Relative errors above this are drawn as overflow (the adjoint state has diverged).
DIVERGED = 1e3
#: Colours of the marked points and their trajectories, reused in turn past the last.
_COLOURS = ("#d62728", "#ff7f0e", "#e377c2", "#17becf", "#bcbd22", "#8c564b", "#7f7f7f")
_GRID_FIX = ("pass the sigmas, rhos and mean_abs_grad of solvers.experiments.sensitivity_grid "
             "or load_sensitivity (or the axes given to solvers.lorenz.sensitivity_map and "
             "its result)")


def _short(a: np.ndarray) -> str:
    """A few values of ``a`` for a message (never the whole array)."""
    flat = a.ravel()
    head = ", ".join(f"{v:g}" for v in flat[:4])
    return f"[{head}{', ...' if flat.size > 4 else ''}] (shape {a.shape})"


def _check_axis(name: str, axis: np.ndarray) -> None:
    """A 1-D, finite, increasing, evenly spaced grid axis (imshow draws it so)."""
    if axis.ndim != 1 or axis.size < 2:
        raise PebblesValueError(f"{name}={_short(axis)} must be a 1-D array of at least 2 grid "
                                f"points; {_GRID_FIX}")
    if not np.isfinite(axis).all():
        raise PebblesValueError(f"{name}={_short(axis)} holds {int((~np.isfinite(axis)).sum())}"
                                f" non-finite values (NaN or inf); {_GRID_FIX}")
    step = np.diff(axis)
    if not (step > 0).all() or not np.allclose(step, step[0], rtol=1e-6, atol=0):
        raise PebblesValueError(
            f"{name}={_short(axis)} must be increasing and evenly spaced (its steps run from "
            f"{step.min():g} to {step.max():g}), or the cells are drawn at the wrong place; "
            f"use np.linspace for {name}, or {_GRID_FIX}")


def _check_grid(sigmas: np.ndarray, rhos: np.ndarray, grid: np.ndarray) -> None:
    _check_axis("sigmas", sigmas)
    _check_axis("rhos", rhos)
    if grid.shape != (sigmas.size, rhos.size):
        raise PebblesValueError(
            f"grid.shape={grid.shape} must be (len(sigmas), len(rhos)) = "
            f"({sigmas.size}, {rhos.size}); {_GRID_FIX}")


def _critical_curve(ax: Axes, beta: float, sigmas: np.ndarray, rhos: np.ndarray) -> None:
    """``rho = sigma (sigma + beta + 3) / (sigma - beta - 1)`` for sigma > beta + 1."""
    s = np.linspace(max(beta + 1 + 1e-3, sigmas[0]), sigmas[-1], 400)
    r = s * (s + beta + 3) / (s - beta - 1)
    keep = (s > beta + 1) & (r >= rhos[0]) & (r <= rhos[-1])
    if not keep.any():  # outside the view: no line, no legend entry
        return
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
    for (s, r), c in zip(points, cycle(_COLOURS)):
        ax.plot(s, r, marker="o", ms=8, mfc=c, mec="white", mew=1.5, ls="none", zorder=5,
                gid="marked-point", label=rf"$(\sigma, \rho) = ({s:g}, {r:g})$")
    ax.set_xlim(sigmas[0] - ds, sigmas[-1] + ds)
    ax.set_ylim(rhos[0] - dr, rhos[-1] + dr)
    ax.set_xlabel(r"$\sigma$")
    ax.set_ylabel(r"$\rho$")
    ax.legend(loc="upper left", fontsize=7, framealpha=0.85)


def _trajectories(ax: Axes, points: Sequence[tuple[float, float]],
                  paths: Sequence[np.ndarray]) -> None:
    for (s, r), path, c in zip(points, paths, cycle(_COLOURS)):
        ax.plot(path[:, 0], path[:, 1], path[:, 2], color=c, lw=0.6, gid="trajectory",
                label=rf"$\sigma={s:g}$, $\rho={r:g}$")
        ax.scatter(*path[-1], color=c, s=18, depthshade=False)
    ax.set_xlabel("x", labelpad=-2)
    ax.set_ylabel("y", labelpad=-2)
    ax.set_zlabel("z", labelpad=-2)
    ax.tick_params(labelsize=7, pad=0)
    ax.legend(loc="upper left", fontsize=7, frameon=False)


def _real(name: str, value: object, fix: str) -> float:
    """``value`` as a finite real number (``fix`` words the error's remedy)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise PebblesTypeError(f"{name}={value!r:.60} must be a number, got "
                               f"{type(value).__name__}; pass {fix}")
    if not math.isfinite(value):
        raise PebblesValueError(f"{name}={value!r} must be finite; pass {fix}")
    return float(value)


def _check_points(points: Sequence[tuple[float, float]]) -> None:
    pts = np.asarray(points, dtype=object)
    try:
        ok = pts.ndim == 2 and pts.shape[1] == 2 and np.isfinite(pts.astype(float)).all()
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise PebblesValueError(f"points={points!r:.80} must be a sequence of finite "
                                f"(sigma, rho) pairs, e.g. points={POINTS}")


def _check_paths(points: Sequence[tuple[float, float]],
                 trajectories: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    if not isinstance(trajectories, (list, tuple, np.ndarray)):
        raise PebblesTypeError(f"trajectories has type {type(trajectories).__name__}; it must be a "
                               f"list of (n + 1, 3) arrays (or one (points, n + 1, 3) array), "
                               f"one per point, or None (no panel (b))")
    if isinstance(trajectories, np.ndarray) and trajectories.ndim != 3:
        raise PebblesValueError(f"trajectories has shape {trajectories.shape}; pass one "
                                f"(points, n + 1, 3) array or a list of (n + 1, 3) arrays")
    paths = [as_floats(f"trajectories[{k}]", p, "pass solvers.experiments.lorenz_trajectory's")
             for k, p in enumerate(trajectories)]
    if len(paths) != len(points) or any(p.ndim != 2 or p.shape[0] < 1 or p.shape[1] != 3
                                        for p in paths):
        raise PebblesValueError(
            f"trajectories has {len(paths)} arrays of shapes {[p.shape for p in paths]}; pass "
            f"one (n + 1, 3) array per point, with at least one row ({len(points)} points), "
            f"e.g. from solvers.experiments.lorenz_trajectory")
    return paths


def draw_lorenz_figure3(sigmas: np.ndarray, rhos: np.ndarray, grid: np.ndarray, *,
                        beta: float = BETA, points: Sequence[tuple[float, float]] = POINTS,
                        n: int = 10_000,
                        trajectories: Sequence[np.ndarray] | np.ndarray | None = None) -> Figure:
    """Paper Figure 3: (a) mean |gradient| over (sigma, rho), (b) the trajectories in 3D.

    Parameters
    ----------
    sigmas, rhos : ndarray
        Increasing, evenly spaced, finite 1-D grid axes (others raise
        ``PebblesValueError`` naming the axis: the cells would be drawn at the
        wrong place).
    grid : ndarray, shape ``(len(sigmas), len(rhos))``
        Mean |gradient|; cells that overflowed (inf/NaN) or are 0 are drawn
        magenta and counted in the colour-bar label.
    beta : float
        The beta of the grid (for the critical curve).
    points : sequence of (sigma, rho)
        Marked on the map, each in its own colour (the colours are reused in
        turn past the seventh).
    n : int
        Number of steps (for the titles).
    trajectories : sequence of ndarray (m, 3), or ndarray (points, m, 3), optional
        One path per point (``solvers.experiments.lorenz_trajectory``): panel (b).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> import visualize
    >>> sigmas, rhos = np.linspace(0, 20, 5), np.linspace(0, 50, 6)
    >>> fig = visualize.draw_lorenz_figure3(sigmas, rhos, np.ones((5, 6)), n=300)
    >>> len(fig.axes)  # the map and its colour bar
    2
    >>> plt.close(fig)
    """
    sigmas, rhos, grid = (as_floats(name, a, _GRID_FIX) for name, a in
                          (("sigmas", sigmas), ("rhos", rhos), ("grid", grid)))
    _check_grid(sigmas, rhos, grid)
    beta = _real("beta", beta, "the Lorenz parameter beta of the grid, e.g. beta=8/3")
    n = whole("n", n, 1, 10_000)
    _check_points(points)
    paths = None if trajectories is None else _check_paths(points, trajectories)
    fig = _new_figure(11.5 if paths else 6.2, 4.8)
    ax = fig.add_subplot(1, 2 if paths else 1, 1)
    _heat_map(fig, ax, sigmas, rhos, grid, beta, points)
    b = "8/3" if abs(beta - BETA) < 1e-12 else f"{beta:.4g}"
    ax.set_title(f"(a) sensitivity of $x_n$, n = {n}, $\\beta$ = {b}", fontsize=10)
    if paths:
        ax3 = fig.add_subplot(1, 2, 2, projection="3d")
        _trajectories(ax3, points, paths)
        ax3.set_title(f"(b) trajectories from (1, 0, 0), {n} RK4 steps", fontsize=10)
    return fig


def _median_panel(ax: Axes, x: np.ndarray, errors: np.ndarray, marker: str, name: str) -> None:
    """Median (line) and the 25-75 % band; errors above :data:`DIVERGED` count as overflow.

    ``name`` is the x axis's symbol (``n`` or ``K``), for the overflow note.
    """
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
        ax.text(first, 0.55, f"median > {DIVERGED:g}\nor inf/NaN\nfrom {name} = {first} ",
                color="#d62728", transform=ax.get_xaxis_transform(), fontsize=8, ha="right",
                va="center")
    ax.set_yscale("log")
    if not (np.isfinite(errors) & (errors > 0)).any():  # all overflowed: nothing to scale by
        ax.set_ylim(1e-16, DIVERGED * 10)
    elif np.nanmax(np.where(np.isfinite(errors), errors, DIVERGED)) > 10:
        ax.set_ylim(top=DIVERGED * 10)
    ax.set_xlim(0, x.max() * 1.02)
    ax.grid(True, which="major", color="#e6e6e6", lw=0.6)
    ax.legend(fontsize=8, loc="lower right")


_ERRORS_FIX = "e.g. from solvers.experiments.adjoint_errors_vs_steps"


def _errors(data: object, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``data`` as the pair ``(x, errors)``: real ``x`` of shape (k,), k >= 1, and
    ``errors`` of shape (k, starts), starts >= 1."""
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise PebblesTypeError(f"{name}={data!r:.60} ({type(data).__name__}) must be a pair "
                               f"(x, errors); pass the tuple {_ERRORS_FIX}")
    if len(data) != 2:
        raise PebblesValueError(f"{name} has {len(data)} items; it must be the pair (x, "
                                f"errors), {_ERRORS_FIX}")
    x = np.asarray(data[0])
    if x.dtype.kind not in "iuf":
        raise PebblesTypeError(f"{name}[0] (x) has dtype {x.dtype}; it must hold real "
                               f"numbers (steps or reload intervals), {_ERRORS_FIX}")
    errors = as_floats(f"{name}[1]", data[1], _ERRORS_FIX)
    if x.ndim != 1 or errors.ndim != 2 or errors.shape[0] != x.size or 0 in errors.shape:
        raise PebblesValueError(
            f"{name} has shapes {x.shape} and {errors.shape}; pass (x, errors) with errors of "
            f"shape (len(x), starts), both at least 1, {_ERRORS_FIX}")
    return x, errors


def draw_lorenz_figure4(steps_data: tuple[np.ndarray, np.ndarray],
                        reload_data: tuple[np.ndarray, np.ndarray], *,
                        reload_steps: int = 10_000) -> Figure:
    """Paper Figure 4: adjoint-state error (a) against steps, (b) against reload interval K.

    Parameters
    ----------
    steps_data, reload_data : (x, errors)
        ``x`` of shape (k,), ``errors`` of shape (k, starts): from
        ``solvers.experiments.adjoint_errors_vs_steps`` and
        ``adjoint_errors_vs_reload``.
    reload_steps : int
        The n of ``reload_data`` (for the title).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> import visualize
    >>> x, errors = np.arange(1, 4), np.full((3, 2), 1e-8)
    >>> fig = visualize.draw_lorenz_figure4((x, errors), (x, errors), reload_steps=100)
    >>> [ax.get_title() for ax in fig.axes][1]
    '(b) n = 100, forward state reloaded every K steps'
    >>> plt.close(fig)
    """
    steps_data, reload_data = _errors(steps_data, "steps_data"), _errors(reload_data,
                                                                         "reload_data")
    reload_steps = whole("reload_steps", reload_steps, 1, 10_000)
    fig = _new_figure(10.5, 4.2)
    ax1, ax2 = fig.subplots(1, 2)
    _median_panel(ax1, *steps_data, "", "n")
    ax1.set_xlabel("number of steps n")
    ax1.set_ylabel(r"relative error of $\partial x_n/\partial x_0$ (adjoint vs exact)")
    ax1.set_title("(a) adjoint state without reloads", fontsize=10)
    _median_panel(ax2, *reload_data, "o", "K")
    ax2.set_xlabel("reload interval K (steps)")
    ax2.set_title(f"(b) n = {reload_steps}, forward state reloaded every K steps", fontsize=10)
    fig.suptitle(r"Lorenz, $(\sigma, \rho, \beta) = (10, 27, 8/3)$, dt = 3e-3, "
                 r"$x_0 \sim N(0, I)$; exact = forward mode", fontsize=10)
    return fig
