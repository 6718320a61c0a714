"""The PML wave figures of Liu & Xu, section 4.2 (paper notes section 6).

* :func:`draw_pml_snapshots` -- wavefield snapshots ``u`` at a few steps in the
  three-layer true model, the boundary between the damped PML band and the
  undamped interior dashed, the source and the detector row marked; optionally
  the detector recordings (shot gather, time against detector) as a last panel
  (alone when there are no snapshots);
* :func:`draw_pml_gradient` -- the gradient of the running misfit with respect
  to ``c`` (the squared velocity) at the uniform starting model, computed by
  reverse mode through a Treeverse schedule (:func:`solvers.pml.gradient`), as
  an image with a symmetric diverging colour scale; optionally next to the
  true model.

The colour scales are clipped at a percentile of the finite values; NaN and
inf cells are drawn magenta and counted in the colour-bar label.

Drawing only: ``solvers.experiments.pml_experiment`` computes the data for one
``solvers.pml.PMLConfig`` and ``solvers.experiments.scaled_config`` shrinks the
paper's 1000 x 1000 run to a smaller grid with the same physical domain.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence, Sized
from textwrap import fill
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pebbles import PebblesTypeError, PebblesValueError

from ._game import _new_figure, as_floats, check_title

if TYPE_CHECKING:
    from solvers.pml import PMLConfig

__all__ = ["check_times", "draw_pml_gradient", "draw_pml_snapshots"]


def _extent(cfg: PMLConfig) -> tuple[float, float, float, float]:
    """Image extent in metres-like domain units: first index across, second down."""
    h = cfg.spacing
    return (-0.5 * h, (cfg.nx + 1.5) * h, (cfg.ny + 1.5) * h, -0.5 * h)


def _axis_label(name: str, which: str, cfg: PMLConfig) -> str:
    """An image axis's label: domain units (what :func:`_extent` puts on the ticks), the
    grid index they come from and the spacing ``h``."""
    return f"{name} (domain units: {which} index \u00d7 h, h = {cfg.spacing:.3g})"


def _overlay(ax: Axes, cfg: PMLConfig, *, layers: bool = True) -> None:
    """PML band (dashed box at its inner edge), source (star), detector row, layer interfaces.

    The damped cells are indices ``0..npml-1`` and ``n+2-npml..n+1`` of each axis
    (:func:`solvers.pml.pml_profiles`); the box runs between them and the undamped
    cells ``npml..n+1-npml``, cell ``i`` covering ``(i - 1/2) h .. (i + 1/2) h``.
    """
    h, p = cfg.spacing, cfg.npml
    ax.add_patch(Rectangle(((p - 0.5) * h, (p - 0.5) * h), (cfg.nx + 2 - 2 * p) * h,
                           (cfg.ny + 2 - 2 * p) * h, fill=False, ec="#333", ls="--", lw=0.9,
                           gid="pml-edge"))
    i, j = cfg.source_position
    ax.plot(i * h, j * h, marker="*", ms=9, color="gold", mec="black", mew=0.5, ls="none")
    ax.axhline(max(cfg.ny // 5, 1) * h, color="#2ca02c", lw=0.7, ls=":")
    if layers:
        nyy = cfg.ny + 2
        for jj in (nyy // 3, 2 * nyy // 3):
            ax.axhline((jj - 0.5) * h, color="#777", lw=0.6)
    ax.set_xlabel(_axis_label("x", "first", cfg), fontsize=8)
    ax.tick_params(labelsize=7)


def _clip(data: np.ndarray, percentile: float) -> tuple[float, str]:
    """Colour limit from the finite values only, and a label note counting the others.

    The ``percentile`` of the finite ``|data|``; their maximum where that is 0, 1
    where there are none or all are 0.
    """
    finite = np.isfinite(data)
    vals = np.abs(data[finite])
    clip = float(np.percentile(vals, percentile)) if vals.size else 0.0
    clip = clip or (float(vals.max()) if vals.size else 0.0) or 1.0
    bad = int(data.size - finite.sum())
    return clip, f"\nmagenta: {bad} non-finite cells (NaN/inf)" if bad else ""


def _image(ax: Axes, field: np.ndarray, clip: float, cmap: str, gid: str, **kw: object):
    """``field`` drawn as is (first index across for the grids), NaN/inf in magenta."""
    colours = matplotlib.colormaps[cmap].with_extremes(bad="#ff00ff")
    return ax.imshow(field, cmap=colours, vmin=-clip, vmax=clip, interpolation="nearest",
                     gid=gid, **kw)


def _gather(fig: Figure, ax: Axes, traces: np.ndarray, cfg: PMLConfig) -> None:
    """Shot gather: time (steps) down, detector across, clipped at the 99th percentile."""
    data = traces[1:]
    clip, note = _clip(data, 99)
    im = _image(ax, data, clip, "gray_r", "shot-gather", aspect="auto",
                extent=(0.5, cfg.n_detectors + 0.5, cfg.steps + 0.5, 0.5))
    fig.colorbar(im, ax=ax, shrink=0.8, label="u at detector (clipped at 99th pct.)" + note)
    ax.set_xlabel("detector", fontsize=8)
    ax.set_ylabel("step", fontsize=8)
    ax.set_title(f"shot gather (true model), {cfg.n_detectors} detectors", fontsize=9)
    ax.tick_params(labelsize=7)


def _checked(name: str, value: object, expected: tuple[int, int], meaning: str,
             fix: str) -> np.ndarray:
    """``value`` as a float array of shape ``expected`` (``meaning`` names its axes)."""
    a = as_floats(name, value, fix)
    if a.shape != expected:
        raise PebblesValueError(f"{name}.shape={a.shape} must be {expected} = {meaning} of "
                                f"cfg; {fix}")
    return a


def _check_cfg(cfg: object) -> None:
    """Refuse a ``cfg`` that is not a :class:`solvers.pml.PMLConfig` (without importing the
    solvers: a config exists only once they are imported)."""
    pml = sys.modules.get("solvers.pml")
    if pml is None or not isinstance(cfg, pml.PMLConfig):
        raise PebblesTypeError(f"cfg={cfg!r:.80} ({type(cfg).__name__}) must be a "
                               f"solvers.pml.PMLConfig, the run's grid and time steps; pass "
                               f"e.g. cfg=solvers.experiments.scaled_config(200)")


def check_times(times: object, cfg: PMLConfig, flag: str | None = None) -> list[int]:
    """The snapshot steps ``times`` as a list, each a whole step in 1..cfg.steps (the rule
    of ``solvers.experiments.pml_experiment``, whose check this is); empty is allowed.

    ``flag``: the command line's flag for ``times`` (whose type argparse has checked),
    which the message then names with the steps past the run.
    """
    if flag is not None:
        late = [t for t in times if t > cfg.steps]
        if late:
            raise PebblesValueError(f"{flag} {' '.join(map(str, late))}: past the last step "
                                    f"{cfg.steps} of the run; give steps in 1..{cfg.steps} "
                                    f"or a larger --steps")
        return list(times)
    if isinstance(times, Sized) and not isinstance(times, (str, bytes)) and len(times) == 0:
        return []
    from solvers.experiments import snapshot_steps

    return snapshot_steps(times, cfg.steps).tolist()


def _snapshot_panels(fig: Figure, axes: Sequence[Axes], snapshots: np.ndarray,
                     times: Sequence[int], cfg: PMLConfig) -> None:
    """One image per snapshot, on a common colour scale."""
    clip, note = _clip(snapshots, 99.5)
    for ax, snap, t in zip(axes, snapshots, times, strict=True):
        im = _image(ax, snap.T, clip, "seismic", "snapshot", extent=_extent(cfg))
        _overlay(ax, cfg)
        ax.set_title(f"u at step {t} (t = {t * cfg.dt:.3g})", fontsize=9)
    axes[0].set_ylabel(_axis_label("depth", "second", cfg), fontsize=8)
    fig.colorbar(im, ax=list(axes), shrink=0.8, pad=0.01,
                 label="u (common scale, clipped at 99.5th pct.)" + note)


def draw_pml_snapshots(snapshots: np.ndarray, times: Sequence[int] | np.ndarray, cfg: PMLConfig, *,
                       traces: np.ndarray | None = None) -> Figure:
    """Wavefield snapshots with the PML band outlined, and the shot gather.

    Parameters
    ----------
    snapshots : ndarray, shape ``(k, nx + 2, ny + 2)``
        ``u`` at the steps ``times`` (``solvers.experiments.pml_experiment``).
        With ``k = 0`` (``times`` empty) only the shot gather is drawn.
    times : sequence of int
        Whole steps in 1..cfg.steps (:func:`check_times`).
    cfg : PMLConfig
    traces : ndarray ``(steps + 1, n_detectors)``, optional
        Detector recordings, row ``k`` at step ``k`` (``PMLExperiment.traces``,
        ``solvers.pml.record``); adds the shot-gather panel.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    pebbles.PebblesTypeError
        If ``cfg`` is not a ``PMLConfig``, or an argument holds no numbers.
    pebbles.PebblesValueError
        If a shape does not match ``cfg``, a step of ``times`` lies outside
        1..cfg.steps, or there is nothing to draw (no snapshot and no ``traces``).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> import visualize
    >>> from solvers.experiments import scaled_config
    >>> cfg = scaled_config(32, steps=10)
    >>> fig = visualize.draw_pml_snapshots(np.zeros((2, 34, 34)), [5, 10], cfg)
    >>> len(fig.axes)  # two snapshots and a colour bar
    3
    >>> plt.close(fig)
    """
    _check_cfg(cfg)
    times = check_times(times, cfg)
    snapshots = as_floats("snapshots", snapshots, "pass PMLExperiment.snapshots")
    if snapshots.ndim != 3 or snapshots.shape[1:] != cfg.shape or len(times) != len(snapshots):
        raise PebblesValueError(
            f"snapshots.shape={snapshots.shape} must be (len(times)={len(times)}, "
            f"{cfg.shape[0]}, {cfg.shape[1]}) (cfg.shape); pass PMLExperiment.snapshots")
    if traces is not None:
        traces = _checked("traces", traces, (cfg.steps + 1, cfg.n_detectors),
                          "(steps + 1, n_detectors)", "pass PMLExperiment.traces for the same "
                          "config, or solvers.pml.record(cfg)")
    elif not times:
        raise PebblesValueError("times=[] and traces=None leave nothing to draw; pass at least "
                                "one snapshot (a step in times) or the traces")
    k = len(times) + (traces is not None)
    fig = _new_figure(2.9 * k + 0.8, 3.6 + 0.3 * (k < 3))
    axes = fig.subplots(1, k, squeeze=False)[0]
    if times:
        _snapshot_panels(fig, axes[:len(times)], snapshots, times, cfg)
    if traces is not None:
        _gather(fig, axes[-1], traces, cfg)
    head = f"PML wave experiment, {cfg.nx} x {cfg.ny}, {cfg.npml}-cell PML"
    keys = ("dashed: inner edge of the PML, star: source, dotted: detectors, grey: layer "
            "interfaces")
    width = fig.get_figwidth()  # about 12 characters of 9 pt an inch: wrap to fit
    fig.suptitle(head if not times else fill(f"{head}, {keys}", int(12 * width)), fontsize=9)
    return fig


def _true_model_panel(fig: Figure, ax: Axes, c_true: np.ndarray, cfg: PMLConfig) -> None:
    if not (np.isfinite(c_true) & (c_true > 0)).all():
        raise PebblesValueError(
            f"c_true holds {int((~(np.isfinite(c_true) & (c_true > 0))).sum())} values that "
            f"are not finite and > 0; it is the squared velocity: pass PMLExperiment.c_true "
            f"or solvers.pml.true_model(cfg)")
    im = ax.imshow(np.sqrt(c_true).T, cmap="viridis", extent=_extent(cfg),
                   interpolation="nearest", gid="true-model")
    fig.colorbar(im, ax=ax, shrink=0.8, label="velocity sqrt(c)")
    _overlay(ax, cfg, layers=False)
    ax.set_title("true model (three layers)", fontsize=9)


def draw_pml_gradient(grad_c: np.ndarray, cfg: PMLConfig, *, c_true: np.ndarray | None = None,
                      title: str | None = None) -> Figure:
    """The gradient dL/dc as an image (symmetric diverging scale), optionally beside c_true.

    The colour scale is clipped at the 98th percentile of the finite |dL/dc|
    (the cells next to the source and the detectors are far larger than the
    rest); NaN and inf cells are drawn magenta and counted in the colour-bar label.

    Parameters
    ----------
    grad_c : ndarray, shape ``(nx + 2, ny + 2)``
        ``PMLGradient.grad_c`` (or ``PMLExperiment.grad_c``).
    cfg : PMLConfig
    c_true : ndarray, shape ``(nx + 2, ny + 2)``, optional
        The squared velocity of the true model (finite, > 0), drawn as
        ``sqrt(c)`` in a first panel.
    title : str, optional
        Title of the gradient panel; ``None``: the gradient at the uniform
        model ``c = cfg.velocity^2``, ``""``: no title. Its ``$...$`` is checked as
        mathtext (:func:`visualize.check_title`).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> import visualize
    >>> from solvers.experiments import scaled_config
    >>> cfg = scaled_config(32, steps=10)
    >>> fig = visualize.draw_pml_gradient(np.ones((34, 34)), cfg, title="dL/dc")
    >>> fig.axes[0].get_title(), len(fig.axes)  # the image and its colour bar
    ('dL/dc', 2)
    >>> plt.close(fig)
    """
    _check_cfg(cfg)
    check_title(title)
    grad_c = _checked("grad_c", grad_c, cfg.shape, "(nx + 2, ny + 2)",
                      "pass PMLGradient.grad_c for the same config")
    if c_true is not None:
        c_true = _checked("c_true", c_true, cfg.shape, "(nx + 2, ny + 2)",
                          "pass PMLExperiment.c_true or solvers.pml.true_model(cfg)")
    k = 1 + (c_true is not None)
    fig = _new_figure(4.4 * k + 0.6, 4.0)
    axes = fig.subplots(1, k, squeeze=False)[0]
    if c_true is not None:
        _true_model_panel(fig, axes[0], c_true, cfg)
    clip, note = _clip(grad_c, 98)
    im = _image(axes[-1], grad_c.T, clip, "RdBu_r", "gradient", extent=_extent(cfg))
    fig.colorbar(im, ax=axes[-1], shrink=0.8,
                 label="dL/dc (clipped at 98th pct. of |.|)" + note)
    _overlay(axes[-1], cfg)
    default = f"gradient of the misfit w.r.t. c at c = {cfg.velocity:g}$^2$"
    axes[-1].set_title(default if title is None else title, fontsize=9)
    axes[0].set_ylabel(_axis_label("depth", "second", cfg), fontsize=8)
    return fig
