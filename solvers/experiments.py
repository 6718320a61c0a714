"""The numerical experiments behind the paper's solver figures (Liu & Xu, sections 4.1, 4.2).

Each function runs an experiment with the public API of :mod:`solvers.lorenz`
and :mod:`solvers.pml` and returns plain arrays; :mod:`visualize` draws them.

* Figure 3 (paper notes section 5): :func:`sensitivity_grid` -- the mean
  |gradient| of the final x-coordinate over the six inputs on a
  ``(sigma, rho)`` grid (forward mode), as a :class:`SensitivityGrid` that
  saves to and loads from ``.npz`` (the file ``python -m solvers.lorenz
  sensitivity --out`` writes); :func:`lorenz_trajectory` -- the states of one
  run for panel (b).
* Figure 4: :func:`adjoint_errors_vs_steps`, :func:`adjoint_errors_vs_reload`
  -- the relative error of the adjoint-state gradient (paper Algorithm 1)
  against forward mode, over the number of steps and over the reload
  interval K.
* The PML experiment (paper notes section 6): :func:`scaled_config` shrinks
  the paper's 1000 x 1000 run to a smaller grid with the same physical
  domain, cells per wavelength and final time; :func:`pml_experiment` records
  wavefield snapshots and the shot gather and computes dL/dc through a
  Treeverse schedule, as a :class:`PMLExperiment`.

Examples
--------
>>> from solvers.experiments import sensitivity_grid
>>> g = sensitivity_grid(3, n=20)
>>> g.mean_abs_grad.shape, g.steps
((3, 3), 20)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import pebbles
from pebbles import PebblesTypeError, PebblesValueError
from pebbles.cli import output_error
from solvers import lorenz
from solvers._checks import MAX_STEPS, real, reals, whole

if TYPE_CHECKING:
    from solvers.pml import PMLConfig

__all__ = ["PMLExperiment", "RELOAD_INTERVALS", "SensitivityGrid", "adjoint_errors_vs_reload",
           "adjoint_errors_vs_steps", "load_sensitivity", "lorenz_trajectory",
           "pml_experiment", "scaled_config", "sensitivity_grid", "snapshot_steps"]

#: Reload intervals K of Figure 4(b).
RELOAD_INTERVALS = (1, 20, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500)
_BETA = lorenz.DEFAULT_THETA[2]


# ---------------------------------------------------------------------------
# Figure 3: sensitivity map and trajectories
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SensitivityGrid:
    """The Figure 3 grid: mean |d x_n / d (x0, y0, z0, sigma, rho, beta)| over (sigma, rho).

    Attributes
    ----------
    sigmas, rhos : numpy.ndarray
        The evenly spaced axes.
    mean_abs_grad : numpy.ndarray
        Shape ``(len(sigmas), len(rhos))``; inf or NaN where the run overflowed.
    beta, dt : float
    steps : int
        Number of RK4 steps n.
    """

    sigmas: np.ndarray
    rhos: np.ndarray
    mean_abs_grad: np.ndarray
    beta: float = _BETA
    steps: int = lorenz.DEFAULT_STEPS
    dt: float = lorenz.DEFAULT_DT

    def save(self, path: str | Path) -> Path:
        """Write the grid to ``path`` (an ``.npz`` file, exactly that name); return it."""
        path = Path(path)
        reason = output_error(str(path), "map.npz", probe=False)  # open() raises OSError
        if reason is not None:
            raise PebblesValueError(f"path={str(path)!r} {reason}")
        with open(path, "wb") as f:
            np.savez(f, sigmas=self.sigmas, rhos=self.rhos, mean_abs_grad=self.mean_abs_grad,
                     beta=self.beta, steps=self.steps, dt=self.dt)
        return path


def load_sensitivity(path: str | Path) -> SensitivityGrid:
    """Read a grid written by :meth:`SensitivityGrid.save` (or ``solvers.lorenz sensitivity``).

    Files without ``beta``, ``steps`` or ``dt`` get the paper's 8/3, 10^4 and 3e-3.

    Raises
    ------
    pebbles.PebblesTypeError
        If ``path`` is neither a string nor an :class:`os.PathLike`.
    pebbles.PebblesValueError
        If ``path`` is no readable ``.npz`` archive (missing, truncated, corrupted),
        lacks a field, or a field breaks its rule (naming the file and the field):
        ``sigmas`` and ``rhos`` 1-D real arrays, ``mean_abs_grad`` a real array of
        shape ``(len(sigmas), len(rhos))``, ``steps`` a whole number >= 0, ``dt``
        finite and > 0, ``beta`` finite.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise PebblesTypeError(f"path={path!r:.80} must be a str or os.PathLike, the .npz "
                               f"file of a grid; pass e.g. path='map.npz'")
    if Path(path).is_file() and not zipfile.is_zipfile(path):  # .npy, JSON: no grid
        raise PebblesValueError(
            f"path={str(path)!r} is not an .npz grid (not a NumPy .npz archive); it must "
            f"hold sigmas, rhos and mean_abs_grad; {_WRITE_GRID}")
    fields = _npz_fields(path)
    sigmas, rhos = (_grid_axis(path, fields, name) for name in ("sigmas", "rhos"))
    grid = _grid_field(path, fields, "mean_abs_grad")
    if grid.dtype.kind not in "iuf" or grid.shape != (len(sigmas), len(rhos)):
        raise _bad_field(path, f"its mean_abs_grad is a {grid.dtype} array of shape "
                         f"{grid.shape}; it must be a real array of shape (len(sigmas), "
                         f"len(rhos)) = ({len(sigmas)}, {len(rhos)})")
    return SensitivityGrid(
        sigmas, rhos, grid,
        _grid_number(path, fields, "beta", _BETA,
                     lambda v: real(v, "beta", "parameter beta", _BETA)),
        _grid_number(path, fields, "steps", lorenz.DEFAULT_STEPS,
                     lambda v: whole(v, 0, "steps", "the number of RK4 steps")),
        _grid_number(path, fields, "dt", lorenz.DEFAULT_DT,
                     lambda v: real(v, "dt", "time step", lorenz.DEFAULT_DT, positive=True)))


_WRITE_GRID = "write one with `python -m solvers.lorenz sensitivity --out map.npz`"


def _npz_fields(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, read (decompressed) here: a missing,
    truncated or corrupted archive is refused naming ``path``."""
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise PebblesValueError(
            f"path={str(path)!r} is not a Figure 3 grid ({type(err).__name__}: {err}); it "
            f"must be an .npz with sigmas, rhos and mean_abs_grad; {_WRITE_GRID}") from None


def _bad_field(path: str | Path, problem: str) -> PebblesValueError:
    return PebblesValueError(f"path={str(path)!r} is not a Figure 3 grid: {problem}; "
                             f"{_WRITE_GRID}")


def _grid_field(path: str | Path, fields: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in fields:
        raise _bad_field(path, f"it has no {name} (it must hold sigmas, rhos and "
                         f"mean_abs_grad)")
    return fields[name]


def _grid_axis(path: str | Path, fields: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The axis ``name``: a 1-D array of real numbers."""
    axis = _grid_field(path, fields, name)
    if axis.dtype.kind not in "iuf" or axis.ndim != 1:
        raise _bad_field(path, f"its {name} is a {axis.dtype} array of shape {axis.shape}; "
                         f"it must be a 1-D array of real numbers")
    return axis


def _grid_number(path: str | Path, fields: dict[str, np.ndarray], name: str, default: Any,
                 check: Callable[[object], Any]) -> Any:
    """The number ``name`` (``default`` if absent), checked by ``check`` (with
    :func:`solvers._checks.real` or :func:`~solvers._checks.whole`)."""
    if name not in fields:
        return default
    value = fields[name]
    try:
        return check(value[()] if value.ndim == 0 else value)
    except pebbles.PebblesError as err:
        raise _bad_field(path, str(err).split("; pass")[0]) from None


def sensitivity_grid(resolution: int = 201, *,
                     sigma_range: tuple[float, float] = (0.0, 20.0),
                     rho_range: tuple[float, float] = (0.0, 50.0), beta: float = _BETA,
                     n: int = lorenz.DEFAULT_STEPS,
                     dt: float = lorenz.DEFAULT_DT) -> SensitivityGrid:
    """Compute the Figure 3 grid with :func:`solvers.lorenz.sensitivity_map` (forward mode).

    The default is the paper's grid: sigma = 0:0.1:20, rho = 0:0.25:50 (201 x
    201), n = 10^4 steps of dt = 3e-3, beta = 8/3 (about 15 s on two cores).
    """
    resolution = whole(resolution, 2, "resolution", "grid points per axis")
    sigmas = np.linspace(*_axis_range(sigma_range, "sigma_range"), resolution)
    rhos = np.linspace(*_axis_range(rho_range, "rho_range"), resolution)
    grid = lorenz.sensitivity_map(sigmas, rhos, beta, dt=dt, n=n)
    return SensitivityGrid(sigmas, rhos, grid, float(beta), int(n), float(dt))


#: The paper's axes of Figure 3 (the examples of :func:`_axis_range`'s messages).
_PAPER_AXES = {"sigma_range": (0.0, 20.0), "rho_range": (0.0, 50.0)}


def _axis_range(bounds: object, name: str, flag: str | None = None) -> tuple[float, float]:
    """``bounds`` as ``(low, high)``: two finite real numbers, ``low < high`` (Figure 3
    draws increasing axes); ``name``: ``sigma_range`` or ``rho_range``. ``flag``: the
    command-line flag that gave ``bounds`` (``--sigma-range``): the messages then name
    it and its values, ``--sigma-range 20 0``, instead of ``sigma_range=(20, 0)``, and
    write the fix as a flag too.

    Raises
    ------
    pebbles.PebblesTypeError
        If ``bounds`` does not hold real numbers.
    pebbles.PebblesValueError
        If it does not hold exactly two, one is not finite, ``low >= high``, or
        ``high - low`` overflows.
    """
    what, example = "the (low, high) ends of a grid axis", _PAPER_AXES[name]
    arr = reals(bounds, name, what, example, finite=True)
    if arr.shape != (2,) or not arr[0] < arr[1]:
        fix = example
        if arr.shape == (2,):  # swapped or equal ends: suggest them in order
            low, high = sorted(arr.tolist())
            high = high if high > low else low + 1
            fix = (low, high) if high > low else example
        raise PebblesValueError(
            f"{_spelled(name, bounds, flag)} must be two finite numbers (low, high) with "
            f"low < high ({what}); pass e.g. {_spelled(name, fix, flag)}")
    if not math.isfinite(float(arr[1]) - float(arr[0])):  # np.linspace would make NaN
        raise PebblesValueError(
            f"{_spelled(name, bounds, flag)}: high - low overflows to inf (the axis is wider "
            f"than a float holds); pass ends closer together, e.g. "
            f"{_spelled(name, example, flag)}")
    return float(arr[0]), float(arr[1])


def _spelled(name: str, bounds: object, flag: str | None) -> str:
    """``bounds`` as the caller wrote them: ``name=(low, high)``, or ``--flag LOW HIGH``."""
    if flag is None:
        return f"{name}={bounds!r:.80}"
    return " ".join([flag, *(f"{float(v):g}" for v in bounds)])


def lorenz_trajectory(sigma: float, rho: float, beta: float = _BETA, *,
                      n: int = lorenz.DEFAULT_STEPS,
                      x0: Sequence[float] = lorenz.DEFAULT_X0,
                      dt: float = lorenz.DEFAULT_DT) -> np.ndarray:
    """The RK4 states ``s_0..s_n`` of the Lorenz system, shape ``(n + 1, 3)``.

    Computed by a compiled loop (24 bytes a state), bit for bit the states of
    :func:`solvers.lorenz.rk4_step` applied ``n`` times.

    Examples
    --------
    >>> from solvers.experiments import lorenz_trajectory
    >>> lorenz_trajectory(10.0, 27.0, n=2).shape
    (3, 3)
    """
    theta = np.array([real(v, name, f"parameter {name}", default) for v, name, default
                      in zip((sigma, rho, beta), ("sigma", "rho", "beta"),
                             lorenz.DEFAULT_THETA, strict=True)])
    n = whole(n, 0, "n", "the number of RK4 steps")
    return lorenz._trajectory(x0, theta, dt, n)  # compiled; checks x0 and dt


# ---------------------------------------------------------------------------
# Figure 4: error of the adjoint-state method
# ---------------------------------------------------------------------------
def _relative_errors(n: int, starts: np.ndarray, reload_every: int | None) -> np.ndarray:
    """Relative l2 error of the adjoint d x_n / d x0 for each start (inf where it overflows)."""
    out = np.empty(len(starts))
    with np.errstate(all="ignore"):
        for k, x0 in enumerate(starts):
            exact = lorenz.gradient_forward(x0, n=n).gradient[:3]
            adj = lorenz.gradient_adjoint(x0, n=n, reload_every=reload_every).gradient[:3]
            err = np.linalg.norm(adj - exact) / np.linalg.norm(exact)
            out[k] = err if np.isfinite(err) else np.inf
    return out


def _starts(count: int, seed: int) -> np.ndarray:
    """``count`` random starts x0 ~ N(0, I) drawn with ``seed`` (both checked)."""
    count = whole(count, 1, "starts", "random x0 ~ N(0, I) per point")
    seed = whole(seed, 0, "seed", "the random seed of the starts x0 ~ N(0, I)")
    return np.random.default_rng(seed).standard_normal((count, 3))


def adjoint_errors_vs_steps(steps: Sequence[int] | np.ndarray = range(1, 1001), *,
                            starts: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Figure 4(a) data: ``(steps, errors)``, errors of shape ``(len(steps), starts)``.

    Each entry is ``|g_adj - g| / |g|`` for the gradient of x_n with respect to
    x0, adjoint state without reloads against forward mode, at the paper's
    defaults (sigma, rho, beta) = (10, 27, 8/3), dt = 3e-3, from
    ``x0 ~ N(0, I)`` (``seed``); ``inf`` marks overflow (inf/NaN).

    Examples
    --------
    >>> from solvers.experiments import adjoint_errors_vs_steps
    >>> steps, err = adjoint_errors_vs_steps([1, 10], starts=2)
    >>> err.shape, bool((err < 1e-8).all())
    ((2, 2), True)
    """
    st = _whole_numbers(steps, "steps", "numbers of RK4 steps", 1, None,
                        "pass e.g. steps=range(1, 1001)")
    x0s = _starts(starts, seed)
    return st, np.array([_relative_errors(int(n), x0s, None) for n in st])


def adjoint_errors_vs_reload(intervals: Sequence[int] = RELOAD_INTERVALS, *,
                             n: int = lorenz.DEFAULT_STEPS, starts: int = 20,
                             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Figure 4(b) data: ``(intervals, errors)`` for ``n`` steps with reloads every K.

    As :func:`adjoint_errors_vs_steps`, but the adjoint run resets its state to
    the stored forward state every K steps (``reload_every=K``).
    """
    ks = _whole_numbers(intervals, "intervals", "numbers (reload intervals K)", 1, None,
                        "pass e.g. intervals=(1, 20, 50, 100, 200)")
    x0s = _starts(starts, seed)
    return ks, np.array([_relative_errors(n, x0s, int(k)) for k in ks])


# ---------------------------------------------------------------------------
# the PML experiment
# ---------------------------------------------------------------------------
def snapshot_steps(times: object, n: int) -> np.ndarray:
    """``times`` as an int64 array after checking it holds whole step numbers in 1..n
    (the snapshot steps of :func:`pml_experiment` and ``visualize.draw_pml_snapshots``).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``n`` is not an integer, ``times`` is a string or not a sequence, or an
        entry is not an integer (a bool, a float such as 1.7).
    pebbles.PebblesValueError
        If ``n`` is below 1, ``times`` is empty or a step lies outside 1..n.

    Examples
    --------
    >>> from solvers.experiments import snapshot_steps
    >>> snapshot_steps([1, 50, 100], 100).tolist()
    [1, 50, 100]
    """
    n = whole(n, 1, "n", "the number of steps, cfg.steps", 100)
    return _whole_numbers(times, "times", "step numbers", 1, (n, "cfg.steps"),
                          f"pass e.g. times=[1, {max(n // 2, 1)}, {n}]")


def _whole_numbers(values: object, name: str, what: str, least: int,
                   most: tuple[int, str] | None, fix: str) -> np.ndarray:
    """``values`` as an int64 array after checking it is a non-empty sequence of
    integers in ``least..most`` (``most``: the bound and what it is, or None).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``values`` is a string or not a sequence, or an entry is not an integer
        (a bool, a float such as 1.7, a string).
    pebbles.PebblesValueError
        If it is empty or an entry lies outside the range.
    """
    bound = f">= {least} (at most 2**63 - 1)" if most is None else \
        f"in {least}..{most[0]} ({most[1]})"
    rule = f"must be a sequence of whole {what} {bound}"
    items = None
    if not isinstance(values, (str, bytes)):
        with contextlib.suppress(TypeError):
            items = list(values)
    if items is None:
        raise PebblesTypeError(f"{name}={values!r:.80} {rule}; {fix}")
    for t in items:
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
            raise PebblesTypeError(f"{name} holds {t!r:.40} ({type(t).__name__}); it {rule}; "
                                   f"{fix}")
    top = MAX_STEPS if most is None else most[0]
    if not items or not all(least <= t <= top for t in items):
        raise PebblesValueError(f"{name}={[int(t) for t in items][:10]} {rule}; {fix}")
    return np.array(items, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class PMLExperiment:
    """What :func:`pml_experiment` computed.

    Attributes
    ----------
    cfg : PMLConfig
    times : numpy.ndarray
        The steps of the snapshots.
    snapshots : numpy.ndarray
        ``u`` at those steps, shape ``(len(times), nx + 2, ny + 2)``.
    traces : numpy.ndarray
        The recording at the detectors, shape ``(n + 1, n_detectors)``.
    c_true : numpy.ndarray
        The three-layer true model.
    grad_c : numpy.ndarray or None
        dL/dc at the uniform starting model (None when not asked for).
    loss : float or None
        The misfit at the uniform model.
    """

    cfg: PMLConfig
    times: np.ndarray
    snapshots: np.ndarray
    traces: np.ndarray
    c_true: np.ndarray
    grad_c: np.ndarray | None = None
    loss: float | None = None


def scaled_config(size: int = 200, **changes: Any) -> PMLConfig:
    """The paper's run on a ``size x size`` grid: dt and steps scaled by ``999 / (size - 1)``.

    The domain stays 200 x 200 and the Ricker wavelet keeps its length in
    steps, so the picture is the paper's at a coarser resolution (200 x 200:
    dt = 5.02e-5, 1992 steps). ``changes`` override any ``PMLConfig`` field (a name
    that is not one raises ``PebblesTypeError`` listing them).
    """
    from solvers.pml import PMLConfig

    fields = [f.name for f in dataclasses.fields(PMLConfig)]
    unknown = [name for name in changes if name not in fields]
    if unknown:
        raise PebblesTypeError(
            f"{unknown[0]}={changes[unknown[0]]!r} is not a PMLConfig field; the fields "
            f"are {', '.join(fields)}; leave it out or correct its name")
    size = whole(size, 2 * 12 + 8, "size", "two 12-cell PML bands and an interior")
    scale = 999 / (size - 1)
    base = {"nx": size, "ny": size, "dt": 1e-5 * scale, "steps": int(round(9999 / scale))}
    return PMLConfig(**{**base, **changes})


def pml_experiment(cfg: PMLConfig, times: Sequence[int], *,
                   budget: int | None = 20) -> PMLExperiment:
    """Snapshots of ``u`` in the true model, the recording and (optionally) dL/dc.

    Parameters
    ----------
    cfg : PMLConfig
    times : sequence of int
        Steps (1..cfg.steps) at which ``u`` is copied; integers only (bools,
        floats and strings are refused).
    budget : int or None
        Budget S of the Treeverse schedule for the gradient at the uniform
        model (:func:`solvers.pml.gradient`); ``None`` skips it.

    Returns
    -------
    PMLExperiment

    Raises
    ------
    pebbles.PebblesTypeError
        If ``cfg`` is not a :class:`~solvers.pml.PMLConfig`, or ``times`` does not
        hold integers.
    pebbles.PebblesValueError
        If ``times`` is empty or a step lies outside 1..cfg.steps.
    """
    from solvers import pml

    if not isinstance(cfg, pml.PMLConfig):
        raise PebblesTypeError(f"cfg={cfg!r:.80} ({type(cfg).__name__}) must be a PMLConfig, "
                               f"the run's grid and time steps; pass e.g. "
                               f"cfg=scaled_config(200)")
    steps = snapshot_steps(times, cfg.steps)
    moves = None if budget is None else pebbles.schedule("treeverse", cfg.steps, budget=budget)
    c_true = pml.true_model(cfg)
    sol = pml.PMLSolver(cfg, c_true)
    s = sol.zero_state()
    traces = np.empty((cfg.steps + 1, cfg.n_detectors))
    traces[0] = s[1, sol.det_i, sol.det_j]
    snaps = np.empty((steps.size, *cfg.shape))
    for i in range(cfg.steps):
        sol.step_into(i, s, s)
        traces[i + 1] = s[1, sol.det_i, sol.det_j]
        snaps[steps == i + 1] = s[1]
    if moves is None:
        return PMLExperiment(cfg, steps, snaps, traces, c_true)
    g = pml.gradient(cfg, pml.uniform_model(cfg), moves, traces)
    return PMLExperiment(cfg, steps, snaps, traces, c_true, g.grad_c, float(g.loss))
