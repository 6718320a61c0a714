"""The PML wave figures of Liu & Xu, section 4.2 (paper notes section 6).

* :func:`draw_pml_snapshots` -- wavefield snapshots ``u`` at a few steps in the
  three-layer true model, the 12-cell PML band outlined, the source and the
  detector row marked; optionally the detector recordings (shot gather, time
  against detector) as a last panel;
* :func:`draw_pml_gradient` -- the gradient of the running misfit with respect
  to ``c`` (the squared velocity) at the uniform starting model, computed by
  reverse mode through a Treeverse schedule (:func:`solvers.pml.gradient`), as
  an image with a symmetric diverging colour scale; optionally next to the
  true model.

Drawing only: ``solvers.experiments.pml_experiment`` computes the data for one
``solvers.pml.PMLConfig`` and ``solvers.experiments.scaled_config`` shrinks the
paper's 1000 x 1000 run to a smaller grid with the same physical domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pebbles import PebblesValueError

from ._game import _new_figure

if TYPE_CHECKING:
    from solvers.pml import PMLConfig

__all__ = ["draw_pml_gradient", "draw_pml_snapshots"]


def _extent(cfg: PMLConfig) -> tuple[float, float, float, float]:
    """Image extent in metres-like domain units: first index across, second down."""
    h = cfg.spacing
    return (-0.5 * h, (cfg.nx + 1.5) * h, (cfg.ny + 1.5) * h, -0.5 * h)


def _overlay(ax: Axes, cfg: PMLConfig, *, layers: bool = True) -> None:
    """PML band (dashed box at its inner edge), source (star), detector row, layer interfaces."""
    h, p = cfg.spacing, cfg.npml
    ax.add_patch(Rectangle(((p + 0.5) * h, (p + 0.5) * h), (cfg.nx - 2 * p) * h,
                           (cfg.ny - 2 * p) * h, fill=False, ec="#333", ls="--", lw=0.9,
                           gid="pml-edge"))
    i, j = cfg.source_position
    ax.plot(i * h, j * h, marker="*", ms=9, color="gold", mec="black", mew=0.5, ls="none")
    ax.axhline(max(cfg.ny // 5, 1) * h, color="#2ca02c", lw=0.7, ls=":")
    if layers:
        nyy = cfg.ny + 2
        for jj in (nyy // 3, 2 * nyy // 3):
            ax.axhline((jj - 0.5) * h, color="#777", lw=0.6)
    ax.set_xlabel("x (first index)", fontsize=8)
    ax.tick_params(labelsize=7)


def _image(ax: Axes, field: np.ndarray, cfg: PMLConfig, clip: float, cmap: str, gid: str):
    return ax.imshow(field.T, cmap=cmap, vmin=-clip, vmax=clip, extent=_extent(cfg),
                     interpolation="nearest", gid=gid)


def _gather(fig: Figure, ax: Axes, traces: np.ndarray, cfg: PMLConfig) -> None:
    """Shot gather: time (steps) down, detector across, clipped at the 99th percentile."""
    data = traces[1:]
    clip = float(np.percentile(np.abs(data), 99)) or 1.0
    im = ax.imshow(data, aspect="auto", cmap="gray_r", vmin=-clip, vmax=clip,
                   extent=(0.5, cfg.n_detectors + 0.5, cfg.steps + 0.5, 0.5),
                   interpolation="nearest", gid="shot-gather")
    fig.colorbar(im, ax=ax, shrink=0.8, label="u at detector (clipped at 99th pct.)")
    ax.set_xlabel("detector", fontsize=8)
    ax.set_ylabel("step", fontsize=8)
    ax.set_title(f"shot gather (true model), {cfg.n_detectors} detectors", fontsize=9)
    ax.tick_params(labelsize=7)


def draw_pml_snapshots(snapshots: np.ndarray, times: Sequence[int], cfg: PMLConfig, *,
                       traces: np.ndarray | None = None) -> Figure:
    """Wavefield snapshots with the PML band outlined, and the shot gather.

    Parameters
    ----------
    snapshots : ndarray, shape ``(k, nx + 2, ny + 2)``
        ``u`` at the steps ``times`` (``solvers.experiments.pml_experiment``).
    times : sequence of int
    cfg : PMLConfig
    traces : ndarray ``(n + 1, n_detectors)``, optional
        Detector recordings; adds the shot-gather panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    snapshots = np.asarray(snapshots, dtype=float)
    times = list(times)
    if snapshots.ndim != 3 or snapshots.shape[1:] != cfg.shape or len(times) != len(snapshots):
        raise PebblesValueError(
            f"snapshots.shape={snapshots.shape} must be (len(times)={len(times)}, "
            f"{cfg.shape[0]}, {cfg.shape[1]}) (cfg.shape); pass PMLExperiment.snapshots")
    k = len(times) + (traces is not None)
    fig = _new_figure(2.9 * k + 0.8, 3.6)
    axes = fig.subplots(1, k, squeeze=False)[0]
    clip = float(np.percentile(np.abs(snapshots), 99.5)) or 1.0
    for ax, snap, t in zip(axes, snapshots, times, strict=False):
        im = _image(ax, snap, cfg, clip, "seismic", "snapshot")
        _overlay(ax, cfg)
        ax.set_title(f"u at step {t} (t = {t * cfg.dt:.3g})", fontsize=9)
    axes[0].set_ylabel("depth (second index)", fontsize=8)
    fig.colorbar(im, ax=axes[:len(times)].tolist(), shrink=0.8, pad=0.01,
                 label="u (common scale, clipped at 99.5th pct.)")
    if traces is not None:
        _gather(fig, axes[-1], np.asarray(traces, dtype=float), cfg)
    fig.suptitle(f"PML wave experiment, {cfg.nx} x {cfg.ny}, {cfg.npml}-cell PML (dashed: its "
                 "inner edge), star: source, dotted: detectors, grey: layer interfaces",
                 fontsize=9)
    return fig


def draw_pml_gradient(grad_c: np.ndarray, cfg: PMLConfig, *, c_true: np.ndarray | None = None,
                      title: str | None = None) -> Figure:
    """The gradient dL/dc as an image (symmetric diverging scale), optionally beside c_true.

    The colour scale is clipped at the 98th percentile of |dL/dc| (the cells
    next to the source and the detectors are far larger than the rest).

    Returns
    -------
    matplotlib.figure.Figure
    """
    grad_c = np.asarray(grad_c, dtype=float)
    if grad_c.shape != cfg.shape:
        raise PebblesValueError(f"grad_c.shape={grad_c.shape} must be cfg.shape={cfg.shape}; "
                                "pass PMLGradient.grad_c for the same config")
    k = 1 + (c_true is not None)
    fig = _new_figure(4.4 * k + 0.6, 4.0)
    axes = fig.subplots(1, k, squeeze=False)[0]
    if c_true is not None:
        im = axes[0].imshow(np.sqrt(np.asarray(c_true)).T, cmap="viridis", extent=_extent(cfg),
                            interpolation="nearest", gid="true-model")
        fig.colorbar(im, ax=axes[0], shrink=0.8, label="velocity sqrt(c)")
        _overlay(axes[0], cfg, layers=False)
        axes[0].set_title("true model (three layers)", fontsize=9)
    clip = float(np.percentile(np.abs(grad_c), 98)) or 1.0
    im = _image(axes[-1], grad_c, cfg, clip, "RdBu_r", "gradient")
    fig.colorbar(im, ax=axes[-1], shrink=0.8, label="dL/dc (clipped at 98th pct. of |.|)")
    _overlay(axes[-1], cfg)
    axes[-1].set_title(title or "gradient of the misfit w.r.t. c at c = 3300$^2$", fontsize=9)
    axes[0].set_ylabel("depth (second index)", fontsize=8)
    return fig
