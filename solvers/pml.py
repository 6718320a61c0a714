"""The PML wave experiment of Liu & Xu, "Automatic differentiation in physics simulation".

Section 4.2 of the paper (paper notes section 6): ``u_tt - div(c grad u) = f``
(``c`` the squared velocity) on an ``(nx+2) x (ny+2)`` grid with a zero outer
ring and a 12-point perfectly matched layer, in the consistent discretisation of
the authors' code. A Ricker
source at ``(nx/2, ny/5)``, 200 detectors on row ``ny/5``, and the running loss

    L = sum_{k=1..n} sum_d (u_true^(k)_d - u^(k)_d)^2,

where ``u_true`` is the recording in the three-layer true model. The gradient
of ``L`` with respect to ``c`` (every cell), the source values and the initial
state is computed by reverse mode through any checkpoint-game schedule replayed
by the generic executor :func:`pebbles.replay`, with hand-derived adjoint
Numba kernels. The executor gets the out-of-place/in-place step
``step_into`` and reuses the buffers of freed states (no allocation per step;
``gradient(..., reuse=False)`` restores one new array per step).

* :class:`PMLConfig` -- grid, time step, PML, source and detector parameters
  (defaults: the paper's run, 1000 x 1000, 9999 steps, dt = 1e-5).
* :class:`PMLSolver` -- the step / in-place step / adjoint-step callbacks.
* :func:`forward`, :func:`record`, :func:`loss`, :func:`gradient` -- the
  experiment; :func:`schedule` picks a schedule from the registry
  (:func:`pebbles.schedule`); :func:`memory_estimate` and
  :func:`check_memory` size a run before it starts. Each function that takes a
  ``cfg`` raises :class:`pebbles.PebblesTypeError` unless it is a :class:`PMLConfig`.

Run ``python -m solvers.pml gradient --nx 100 --ny 100 --steps 500 --method
treeverse --pebbles 10`` for the command line. It estimates the memory a run
needs before allocating anything and refuses, naming the estimate and the
available memory, when the run would not fit (``--force`` goes ahead).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib.util import find_spec

import numpy as np

import pebbles
from pebbles import PebblesTypeError, PebblesValueError
from pebbles.cli import (
    MAX_INT,
    OneLineParser,
    SubcommandParser,
    add_background_argument,
    add_disk_arguments,
    at_least,
    budget_flag,
    check_path_given,
    count,
    disk_budget,
    in_flags,
    method_flags,
    positive,
    run_command,
)
from solvers import _refuse_without_numba
from solvers._checks import _shown, boolean, periodic_every, real, reals, whole
from solvers._memory import available_memory, program_bytes, release_freed_memory, schedule_moves
from solvers._paths import check_npz_output

# Numba (numba, solvers._pml_kernels as kern, solvers._threading) is imported after the
# command line's parser (see _parser): `python -m solvers.pml --help` answers without it.

__all__ = [
    "METHODS",
    "PARALLEL_MIN_CELLS",
    "MemoryEstimate",
    "ThreadChooser",
    "NotEnoughMemoryError",
    "PMLConfig",
    "PMLGradient",
    "PMLSolver",
    "UnstableError",
    "available_memory",
    "check_memory",
    "check_stability",
    "detectors",
    "forward",
    "gradient",
    "loss",
    "main",
    "memory_estimate",
    "pml_profiles",
    "record",
    "ricker",
    "schedule",
    "true_model",
    "uniform_model",
    "warm_up",
]

#: Registry methods whose moves the gradient can replay (:func:`pebbles.gradient_methods`,
#: the two-level ones through a disk store); ``bennett`` names ``bennett-gradient``.
METHODS = (*pebbles.gradient_methods(disk=True), "bennett")

_ALIASES = {"bennett": "bennett-gradient"}


class UnstableError(PebblesValueError):
    """The time step, grid spacing and velocities violate the stability rule."""


class NotEnoughMemoryError(PebblesValueError):
    """A run needs more memory than the machine has available."""


#: Grids with fewer cells run their kernels on one thread (:meth:`PMLSolver.threads`).
PARALLEL_MIN_CELLS = 64 * 64


class ThreadChooser:
    """Run each kind of kernel on all threads or on one, whichever its calls show faster.

    Used on Numba's OpenMP layer only (solvers picks TBB where the ``tbb`` package
    is installed, whose dynamic split needs no choice). Why: Numba's OpenMP threads spin while
    they wait for the next kernel, so
    when another process takes a core, the scheduler shares it between a
    spinning thread and that process in slices of milliseconds and every
    kernel's closing barrier waits for a slice (on 2 cores with one competing
    process a 150 x 150 gradient took 30 to 80 times as long). Sleeping
    instead of spinning (``OMP_WAIT_POLICY=PASSIVE``) avoids that but makes
    every kernel wake a thread (at 150 x 150 on a 2-core VM, 2.5x slower than
    spinning when no other process ran). So: keep spinning, and measure.

    Each call's wall time updates a moving average per (kind, thread count);
    the faster count runs, the other is tried again after ``probe`` calls (and
    taken when its probe is ``margin`` times faster, so that one lucky call does
    not flip a choice),
    after twice as many (and at least 20 times its cost ratio, so that probes
    take about 5 % of the time) after each probe that loses, up to
    ``most_probe``; the choice flips at once when the running count's average
    grows past ``switch`` times the other's. The first call of a count is not
    counted (it may compile). A call that touches more than ``fault_pages`` new
    pages of memory (a first write into a fresh array: page faults, on any thread
    count, often 10x the kernel's own time) is learned apart, as kind
    ``kind + "/new"``: such calls come in runs (the first steps of a run fill its
    checkpoints), so the chooser expects one when the kind's last call was one,
    and learns nothing from a call that was not what it expected. A kind seen for
    the first time starts on the count the last change of choice went to (load is
    the machine's, not a kind's: under load every kind's first calls on all
    threads would cost a barrier wait each). Results do not depend on the thread
    count (one writer per output cell).

    Parameters
    ----------
    threads : int
        The most threads (Numba's count), from 1 to ``numba.config.NUMBA_NUM_THREADS``;
        the other choice is 1.
    clock : callable, optional
        Seconds (default :func:`time.perf_counter`).
    faults : callable, optional
        The process's minor page faults so far (default: ``getrusage``).
    probe : int
        Calls of a kind on its chosen count, after a change of choice, before the
        other count is tried again.
    most_probe : int
        Most calls between two tries of the other count (the wait at least doubles
        after each try that loses, up to this).
    switch : float
        The choice flips at once when the chosen count's average grows past
        ``switch`` times the other's.
    margin : float
        A try of the other count wins, and becomes the choice, when it is more than
        ``margin`` times faster than the chosen count's average.
    fault_pages : int
        More new pages than this in one call: a call that faulted in fresh memory.

    Raises
    ------
    pebbles.PebblesTypeError
        If ``threads``, ``probe``, ``most_probe`` or ``fault_pages`` is not an integer,
        ``switch`` or ``margin`` not a real number, ``clock`` not callable, or
        ``faults`` neither callable nor None.
    pebbles.PebblesValueError
        If ``threads`` is not in ``1..numba.config.NUMBA_NUM_THREADS`` (Numba refuses
        other counts when a kernel runs), ``probe`` is below 1, ``most_probe`` below
        ``probe``, ``fault_pages`` below 0, or ``switch`` or ``margin`` not a finite
        number >= 1.
    """

    def __init__(self, threads: int, clock: Callable[[], float] = time.perf_counter,
                 probe: int = 16, most_probe: int = 4096, switch: float = 4.0,
                 margin: float = 1.25, faults: Callable[[], int] | None = None,
                 fault_pages: int = 64) -> None:
        self.choices = (_check_threads(threads), 1)
        self.probe, self.most_probe, self.fault_pages = _chooser_counts(probe, most_probe,
                                                                        fault_pages)
        self.switch, self.margin = (_at_least_one(switch, "switch", 4.0),
                                    _at_least_one(margin, "margin", 1.25))
        self.clock = _callable(clock, "clock", "time.perf_counter")
        self.faults = _minor_faults if faults is None else _callable(faults, "faults", "None")
        self.fresh: dict[str, bool] = {}  # did the kind's last call fault in new memory
        self.mean: dict[tuple[str, int], float] = {}
        self.best: dict[str, int] = {}
        self.wait: dict[str, int] = {}
        self.interval: dict[str, int] = {}
        self.calls: dict[int, int] = {t: 0 for t in self.choices}
        self.belief = self.choices[0]  # the count the last change of choice went to
        self._current = 0

    def run(self, kind: str, kernel: Callable[..., None], *args: object) -> None:
        """Call ``kernel(*args)`` on the chosen thread count and time it."""
        label = kind + "/new" if self.fresh.get(kind) else kind
        best = self.best.setdefault(label, self.belief)
        other = self.choices[1] if best == self.choices[0] else self.choices[0]
        probing = self.wait.get(label, 2) <= 0
        threads = other if probing else best
        if threads != self._current:
            numba.set_num_threads(threads)
            self._current = threads
        f0, t0 = self.faults(), self.clock()
        kernel(*args)
        seconds = self.clock() - t0
        self.calls[threads] += 1
        fresh = self.faults() - f0 > self.fault_pages
        if fresh != self.fresh.get(kind, False):  # not the call expected: not learned
            self.fresh[kind] = fresh
            return
        self._learn(label, threads, other if threads == best else best, seconds, probing)

    def _learn(self, kind: str, threads: int, other: int, seconds: float,
               probing: bool) -> None:
        key, wait = (kind, threads), self.wait.get(kind, 2)
        if key not in self.mean:  # the first call of a count may compile: not counted
            self.mean[key] = math.nan
            self.wait[kind] = 0 if probing else wait - 1
            return
        mean = self.mean[key]
        self.mean[key] = seconds if probing or math.isnan(mean) else mean + 0.25 * (seconds - mean)
        rival = self.mean.get((kind, other), math.nan)
        if probing:
            if self.mean[key] * self.margin < rival or math.isnan(rival):
                self.best[kind] = self.belief = threads
                self.interval[kind] = self.wait[kind] = self.probe
                return
            # a lost probe costs its excess over the best: keep probes to ~5 % of the time
            excess = math.ceil(20 * self.mean[key] / rival) if rival > 0 else self.most_probe
            step = min(max(2 * self.interval.get(kind, self.probe), excess), self.most_probe)
            self.interval[kind] = self.wait[kind] = step
        elif self.mean[key] > self.switch * rival:
            self.best[kind] = self.belief = other
            self.interval[kind] = self.wait[kind] = self.probe
        else:
            self.wait[kind] = wait - 1


def _check_threads(threads: object) -> int:
    """``threads`` as an int in ``1..numba.config.NUMBA_NUM_THREADS``, the counts
    ``numba.set_num_threads`` takes (:class:`ThreadChooser`)."""
    most = numba.config.NUMBA_NUM_THREADS
    fix = f"pass e.g. threads=numba.get_num_threads() ({numba.get_num_threads()} here)"
    what = f"the most threads a kernel runs on, at most numba.config.NUMBA_NUM_THREADS={most}"
    value = whole(threads, 1, "threads", what, most)
    if value > most:
        raise PebblesValueError(f"threads={value} must be an integer from 1 to {most} "
                                f"({what}); {fix}")
    return value


def _chooser_counts(probe: object, most_probe: object, fault_pages: object
                    ) -> tuple[int, int, int]:
    """``probe`` (>= 1), ``most_probe`` (>= ``probe``) and ``fault_pages`` (>= 0) of a
    :class:`ThreadChooser`, checked."""
    probe = whole(probe, 1, "probe", "calls before the other thread count is tried", 16)
    most = whole(most_probe, probe, "most_probe", f"the most calls between two tries, at "
                 f"least probe={probe}", max(probe, 4096))
    pages = whole(fault_pages, 0, "fault_pages", "new pages that mark a call as faulting in "
                  "fresh memory", 64)
    return probe, most, pages


def _at_least_one(value: object, name: str, example: float) -> float:
    """``switch`` or ``margin`` of a :class:`ThreadChooser`: a finite number >= 1 (a
    ratio of two averages; below 1 the choice would flip to the slower count)."""
    ratio = real(value, name, "ratio of two thread counts' times", example)
    if ratio < 1:
        raise PebblesValueError(f"{name}={value!r} must be a finite number >= 1 (a ratio of "
                                f"two thread counts' times); pass e.g. {name}={example}")
    return ratio


def _callable(value: object, name: str, example: str) -> Callable:
    """``clock`` or ``faults`` of a :class:`ThreadChooser`, refused unless callable."""
    if not callable(value):
        raise PebblesTypeError(f"{_shown(name, value)} must be a function taking no "
                               f"arguments; pass e.g. {name}={example}")
    return value


def _minor_faults() -> int:
    """Minor page faults of this process so far (all its threads)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@dataclass(frozen=True, slots=True)
class PMLConfig:
    """Parameters of the PML experiment (defaults: the paper's run).

    Attributes
    ----------
    nx, ny : int
        Interior grid points; arrays are ``(nx + 2, ny + 2)``.
    steps : int
        Number of time steps n.
    dt : float
        Time step.
    h : float or None
        Grid spacing ``hx = hy``; ``None`` means ``200 / (nx - 1)``.
    npml : int
        PML thickness in points (on every side). Cells ``1..npml-1`` and
        ``m+2-npml..m`` of each axis of ``m`` cells are damped, so a layer with
        ``2 npml > m + 1`` damps the whole axis (accepted: small test grids keep the
        default 12).
    vp_ref, reflection : float
        Reference velocity and target reflection R of the damping
        ``xi = vp_ref / L ln(1 / R)``, ``L = npml h``.
    velocity : float
        Reference velocity; the true model has 0.5, 0.75, 1.0 times it and the
        gradient is taken at ``c = velocity^2``.
    amp, width, delay : float
        Ricker source ``amp A (1 - x^2/a^2) exp(-x^2 / (2 a^2))``, ``a = width``,
        ``x = k - delay`` at step number ``k = 1..n``.
    n_detectors : int
        Detectors evenly spaced along the first index on row ``ny // 5``, rounded to
        cells: with more detectors than ``nx`` several share a cell, and each counts in
        the loss (the default 200 on grids of ``nx < 200`` does this; the gradient is
        that loss's).
    flush : float
        The kernels write values of magnitude below ``flush`` as 0, which keeps
        subnormal numbers (slow on x86) out of the fields; 0 turns it off.
    """

    nx: int = 1000
    ny: int = 1000
    steps: int = 9999
    dt: float = 1e-5
    h: float | None = None
    npml: int = 12
    vp_ref: float = 1000.0
    reflection: float = 1e-8
    velocity: float = 3300.0
    amp: float = 1e6
    width: float = 30.0
    delay: float = 200.0
    n_detectors: int = 200
    flush: float = 1e-140

    def __post_init__(self) -> None:
        """Check every field; store integers as int and reals as float (a NumPy scalar
        such as ``np.float32(1e-5)`` would otherwise carry its precision into the run)."""
        for name, least in (("nx", 2), ("ny", 2), ("steps", 1), ("n_detectors", 1),
                            ("npml", 0)):
            value = whole(getattr(self, name), least, name, _FIELDS[name], _example(name))
            object.__setattr__(self, name, value)
        positive = ("dt", "vp_ref", "velocity", "width") + (("h",) if self.h is not None else ())
        for name in (*positive, "amp", "delay", "flush", "reflection"):
            _real_field(name, getattr(self, name), positive=name in positive)
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.h is not None:
            _spacing_in_range(self.h)
        _time_step_in_range(self.dt, self.spacing)
        if not 0 < self.reflection < 1:
            raise PebblesValueError(
                f"reflection={self.reflection!r} must be in (0, 1) ({_FIELDS['reflection']}); "
                f"pass e.g. reflection=1e-08")
        if not 0 <= self.flush < 1e-100:
            raise PebblesValueError(
                f"flush={self.flush!r} must be in [0, 1e-100): values below it are set to 0, "
                f"so it must stay far below the field; use the default 1e-140 or 0 (off)")

    @property
    def spacing(self) -> float:
        """The grid spacing ``h`` (``200 / (nx - 1)`` unless given)."""
        return 200.0 / (self.nx - 1) if self.h is None else float(self.h)

    @property
    def shape(self) -> tuple[int, int]:
        """``(nx + 2, ny + 2)``."""
        return (self.nx + 2, self.ny + 2)

    @property
    def source_position(self) -> tuple[int, int]:
        """Array index of the source, ``(nx // 2, ny // 5)`` (at least 1)."""
        return (max(self.nx // 2, 1), max(self.ny // 5, 1))

    def constants(self) -> np.ndarray:
        """The kernel constants ``dt, ax, ay, bx, by, ex, ey, flush``."""
        dt, h = self.dt, self.spacing
        return np.array([dt, dt * dt / (h * h), dt * dt / (h * h), dt * dt / (2 * h),
                         dt * dt / (2 * h), dt / (2 * h), dt / (2 * h), self.flush])


#: What each checked field of PMLConfig means, for the messages.
_FIELDS = {
    "nx": "interior grid points along the first index",
    "ny": "interior grid points along the second index",
    "steps": "the number of time steps", "n_detectors": "the number of detectors",
    "npml": "the PML thickness in points", "dt": "the time step",
    "h": "the grid spacing, or None for 200 / (nx - 1)",
    "vp_ref": "the PML's reference velocity", "velocity": "the reference velocity",
    "width": "the Ricker source's width", "amp": "the source amplitude",
    "delay": "the Ricker source's delay in steps", "flush": "the flush-to-zero threshold",
    "reflection": "the PML's target reflection R",
}


def _example(name: str) -> object:
    """A value to suggest for field ``name``: its default (0.2 for ``h``)."""
    default = {f.name: f.default for f in dataclasses.fields(PMLConfig)}[name]
    return 0.2 if default is None else default


#: The grid spacings ``h`` whose square is a normal float64 (2^-511 to 2^511): the
#: kernel constants ``dt^2 / h^2`` and the stability rules stay finite and nonzero.
_H_RANGE = (2.0**-511, 2.0**511)


def _spacing_in_range(h: float) -> None:
    """Refuse a grid spacing outside :data:`_H_RANGE` (``h**2`` would overflow or be 0)."""
    low, high = _H_RANGE
    if not low <= h <= high:
        raise PebblesValueError(
            f"h={h!r} must be between {low:.3g} and {high:.3g} (the grid spacing: its "
            f"square must be a normal float64, so that the constants dt^2/h^2 stay finite "
            f"and nonzero); pass e.g. h={_example('h')}")


def _dt_range(h: float) -> tuple[float, float]:
    """The time steps ``dt`` whose kernel constants are normal float64 numbers at grid
    spacing ``h`` (in :data:`_H_RANGE`): ``dt^2``, ``dt^2 / h^2`` and ``dt^2 / (2 h)``
    between 2^-1022 and 2^1022 (``dt / (2 h)`` follows). A smaller ``dt`` makes them 0
    or subnormal (the step then multiplies the field by 0: loss and gradient 0), a
    larger one infinite; the stability rules bound ``dt`` far below the top."""
    scale = max(1.0, h, math.sqrt(2.0 * h))
    return 2.0**-511 * scale * (1 + 2.0**-50), 2.0**511 * min(1.0, h, math.sqrt(2.0 * h))


def _time_step_in_range(dt: float, h: float) -> None:
    """Refuse a time step outside :func:`_dt_range` of ``h``."""
    low, high = _dt_range(h)
    if low <= dt <= high:
        return
    default = _example("dt")
    fix = (default if low <= default <= high
           else _rounded(low, up=True) if dt < low else _rounded(high, up=False))
    raise PebblesValueError(
        f"dt={dt!r} must be between {low:.3g} and {high:.3g} at grid spacing {h:.6g} (the "
        f"time step: dt^2, dt^2/h^2 and dt^2/(2h) must be normal float64 numbers, or the "
        f"kernels multiply the field by 0 or infinity); pass e.g. dt={fix}")


def _real_field(name: str, v: object, *, positive: bool) -> None:
    """Refuse a PMLConfig field that is not a real number (bools neither), finite
    (and > 0 when ``positive``)."""
    rule = f"must be a finite number{' > 0' if positive else ''} ({_FIELDS[name]})"
    real = isinstance(v, (int, float, np.integer, np.floating))
    if isinstance(v, (bool, np.bool_)) or not real:
        raise PebblesTypeError(f"{name}={v!r} {rule}; pass a number such as "
                               f"{name}={_example(name)}")
    if not (math.isfinite(v) and (v > 0 or not positive)):
        raise PebblesValueError(f"{name}={v!r} {rule}; pass e.g. {name}={_example(name)}")


def _check_cfg(cfg: object) -> PMLConfig:
    """``cfg`` unchanged if it is a :class:`PMLConfig` (every public function that takes
    one checks it first: anything else would fail on a missing attribute)."""
    if not isinstance(cfg, PMLConfig):
        raise PebblesTypeError(
            f"{_shown('cfg', cfg)} ({type(cfg).__name__}) must be a solvers.pml.PMLConfig, "
            f"the experiment's grid, time step and source; pass e.g. "
            f"cfg=solvers.pml.PMLConfig(nx=100, ny=100, steps=500)")
    return cfg


def _profile(m: int, npml: int, h: float, xi: float) -> np.ndarray:
    """Damping on indices ``0..m+1``: depth ``d`` into a layer of ``npml`` points."""
    idx = np.arange(m + 2, dtype=float)
    depth = np.maximum(np.maximum(npml - idx, idx - (m + 1 - npml)), 0.0) * h
    big_l = npml * h
    if big_l == 0:
        return np.zeros(m + 2)
    r = depth / big_l
    return xi * (r - np.sin(2 * np.pi * r) / (2 * np.pi))


def pml_profiles(cfg: PMLConfig) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(zeta_1, zeta_2)``: damping along the first and the second index.

    At depth ``d`` into the layer (``d = (npml - i) h`` on the low side),
    ``zeta = xi (d/L - sin(2 pi d/L) / (2 pi))``, ``xi = vp_ref/L ln(1/R)``.
    """
    h = _check_cfg(cfg).spacing
    big_l = max(cfg.npml, 1) * h
    xi = cfg.vp_ref / big_l * math.log(1.0 / cfg.reflection)
    return _profile(cfg.nx, cfg.npml, h, xi), _profile(cfg.ny, cfg.npml, h, xi)


def ricker(cfg: PMLConfig) -> np.ndarray:
    """Source values ``f_k``, ``k = 1..n`` (index ``k - 1``); ``f_k dt^2`` joins ``u^(k)``."""
    a = _check_cfg(cfg).width
    x = np.arange(1, cfg.steps + 1, dtype=float) - cfg.delay
    big_a = 2.0 / (math.sqrt(3.0 * a) * math.pi**0.25)
    return cfg.amp * big_a * (1 - x**2 / a**2) * np.exp(-(x**2) / (2 * a**2))


def true_model(cfg: PMLConfig) -> np.ndarray:
    """Three layers along the second index: velocities 0.5, 0.75, 1.0 x ``velocity``, squared."""
    nyy = _check_cfg(cfg).ny + 2
    v = np.full(nyy, cfg.velocity, dtype=np.float64)
    v[: nyy // 3] *= 0.5
    v[nyy // 3: 2 * nyy // 3] *= 0.75
    return np.ascontiguousarray(np.broadcast_to(v**2, cfg.shape))


def uniform_model(cfg: PMLConfig) -> np.ndarray:
    """``c = velocity^2`` everywhere (where the paper takes the gradient)."""
    return np.full(_check_cfg(cfg).shape, cfg.velocity**2, dtype=np.float64)


def detectors(cfg: PMLConfig) -> tuple[np.ndarray, np.ndarray]:
    """Array indices ``(i, j)`` of the detectors (they may repeat when ``nx`` is small)."""
    i = np.rint(np.linspace(1, _check_cfg(cfg).nx, cfg.n_detectors)).astype(np.int64)
    return i, np.full_like(i, max(cfg.ny // 5, 1))


def check_stability(cfg: PMLConfig, c: np.ndarray) -> None:
    """Refuse inputs for which the scheme is unstable.

    Rules: ``c`` finite and ``>= 0`` on every cell; the Courant number
    ``C = sqrt(max c) dt sqrt(1/hx^2 + 1/hy^2) <= 1`` (CFL); ``dt max(zeta) < 1``
    (the damping factors ``1 - dt zeta`` stay positive); and, combining both,
    ``C^2 + (dt max(zeta) / 2)^2 <= 1``.

    What is guaranteed: the last rule is exactly the von Neumann condition of
    the scheme with ``c``, ``zeta_1``, ``zeta_2`` constant (any values up to
    ``max c`` and ``max(zeta)``): no Fourier mode grows. For the PML, whose
    damping varies in space, it is the frozen-coefficient criterion, which
    holds at every cell but is not a proof; it refused every growing run we
    found (e.g. ``C = 0.99``, ``dt max(zeta) = 0.977``) and may refuse some
    runs near both limits that would have stayed bounded.

    ``c`` may hold any real numbers (integers, float32: the solver runs on
    their float64 copy).

    Raises
    ------
    UnstableError
        Naming the values, the broken rule and a fix: a ``dt`` (or ``h``) with
        which every rule holds.
    pebbles.PebblesTypeError
        If ``c`` does not hold real numbers (complex, bool, objects).
    pebbles.PebblesValueError
        If ``c`` has not the shape ``(nx + 2, ny + 2)``.
    """
    _stable_c(cfg, c)


def _stable_c(cfg: PMLConfig, c: object, name: str = "c") -> np.ndarray:
    """``c`` as a float64 array after every check of :func:`check_stability` (the
    messages call it ``name``)."""
    _check_cfg(cfg)
    c = reals(c, name, f"the squared velocity on the grid, shape {cfg.shape}",
              "solvers.pml.uniform_model(cfg)")
    if c.shape != cfg.shape:
        raise PebblesValueError(
            f"{name} has shape {c.shape}; expected {cfg.shape} = (nx+2, ny+2), the squared "
            f"velocity on every cell; pass an array of that shape, e.g. "
            f"{name}=solvers.pml.uniform_model(cfg)")
    if not np.all(np.isfinite(c)) or c.min() < 0:
        raise UnstableError(f"{name} (the squared velocity) must be finite and >= 0 on every "
                            f"cell")
    h, dt = cfg.spacing, cfg.dt
    vmax = math.sqrt(float(c.max()))
    courant = vmax * dt * math.sqrt(2.0) / h
    zmax = max(float(p.max()) for p in pml_profiles(cfg))
    if courant > 1.0:
        raise UnstableError(
            f"unstable: max velocity sqrt(max c)={vmax:.6g}, dt={dt:.6g}, hx=hy={h:.6g} give "
            f"Courant number {courant:.6g} > 1 (CFL rule: sqrt(max c) dt sqrt(1/hx^2 + 1/hy^2)"
            f" <= 1); use "
            f"{_either(_safe_dt(cfg, vmax, zmax, '<='), _safe_h(cfg, vmax, zmax))}")
    if dt * zmax >= 1.0:
        raise UnstableError(
            f"unstable: dt={dt:.6g} times the largest PML damping {zmax:.6g} is "
            f"{dt * zmax:.6g} >= 1 (rule: dt max(zeta) < 1); use "
            f"{_either(_safe_dt(cfg, vmax, zmax, '<'), _safe_h(cfg, vmax, zmax))} or a "
            f"thicker PML (npml={cfg.npml})")
    _check_combined(cfg, courant, vmax, zmax)
    return c


def _check_combined(cfg: PMLConfig, courant: float, vmax: float, zmax: float) -> None:
    """Refuse ``C^2 + (dt max(zeta) / 2)^2 > 1`` (see :func:`check_stability`)."""
    damping = cfg.dt * zmax
    if courant**2 + (damping / 2) ** 2 <= 1.0:
        return
    raise UnstableError(
        f"unstable: Courant number C={courant:.6g} and dt max(zeta)={damping:.6g} (dt="
        f"{cfg.dt:.6g}) give C^2 + (dt max(zeta)/2)^2 = {courant**2 + damping**2 / 4:.6g} > 1 "
        f"(rule: C^2 + (dt max(zeta)/2)^2 <= 1, the von Neumann condition of the damped "
        f"scheme); use {_safe_dt(cfg, vmax, zmax, '<=') or 'a larger h'}, or a thicker PML "
        f"(npml={cfg.npml}) or smaller vp_ref={cfg.vp_ref:g}")


def _either(dt_fix: str | None, h_fix: str | None) -> str:
    """``dt <= X or h >= Y``, either part left out where no float64 meets it."""
    return " or ".join(f for f in (dt_fix, h_fix) if f) or "a larger h or a smaller c"


def _safe_dt(cfg: PMLConfig, vmax: float, zmax: float, rule: str) -> str | None:
    """``dt {rule} X``, ``X`` the largest ``dt`` meeting every rule of
    :func:`check_stability` at this ``h``, printed rounded down (strictly below the
    damping bound); ``None`` when ``X`` is no positive normal float64 (a tiny ``h``:
    enlarge that instead).

    With ``a = vmax sqrt(2) / h`` the Courant number is ``a dt``, so the combined rule
    reads ``dt <= 1 / sqrt(a^2 + zmax^2 / 4)`` (which implies the CFL rule); the damping
    rule ``dt < 1 / zmax``. ``math.hypot`` keeps the root finite where ``a^2`` is not.
    """
    a = vmax * math.sqrt(2.0) / cfg.spacing
    bound = 1.0 / math.hypot(a, zmax / 2)
    bound = min(bound, 1.0 / zmax) if zmax > 0 else bound
    shown = _rounded(bound, up=False)
    return None if shown is None else f"dt {rule} {shown}"


def _safe_h(cfg: PMLConfig, vmax: float, zmax: float) -> str | None:
    """``h >= X``, ``X`` the smallest ``h`` meeting every rule of :func:`check_stability`
    at this ``dt``, printed rounded up (strictly above the damping bound); ``None`` when
    ``X`` is no normal float64 inside the range of ``h``.

    The damping scales as ``1 / h`` (``K = zmax h`` is fixed), so the combined rule
    reads ``h >= dt sqrt(2 vmax^2 + K^2 / 4)`` (which implies the CFL rule) and the
    damping rule ``h > dt K``.
    """
    k = zmax * cfg.spacing
    shown = _rounded(cfg.dt * max(math.hypot(math.sqrt(2.0) * vmax, k / 2), k), up=True)
    if shown is None or float(shown) > _H_RANGE[1]:
        return None
    return f"h >= {shown}"


def _rounded(exact: float, *, up: bool) -> str | None:
    """``exact`` to 6 significant digits, rounded away from the unsafe side: down
    (``up=False``, an upper bound such as dt's) or up (a lower bound such as h's), a
    hair inside so that the number printed meets a strict bound too; ``None`` unless
    ``exact`` is a positive normal float64 (0, a subnormal or inf: no such bound)."""
    if not sys.float_info.min <= exact <= sys.float_info.max / 10:
        return None
    digit = 10.0 ** (math.floor(math.log10(exact)) - 5)
    if up:
        return f"{math.ceil(exact * (1 + 1e-9) / digit) * digit:.6g}"
    return f"{math.floor(exact * (1 - 1e-9) / digit) * digit:.6g}"


class PMLSolver:
    """Step, in-place step and adjoint step of one PML problem (callbacks of ``replay``).

    Parameters
    ----------
    cfg : PMLConfig
    c : ndarray, shape ``(nx + 2, ny + 2)``
        Squared velocity (checked by :func:`check_stability`).
    source : ndarray, shape ``(n,)``, optional
        Source values ``f_1..f_n`` (default :func:`ricker`).
    observed : ndarray, shape ``(n + 1, n_detectors)``, optional
        Recording ``u_true^(k)`` at the detectors (row 0 unused); needed for the
        loss callbacks (its shape is checked here).

    Attributes
    ----------
    grad_c : ndarray
        ``dL/dc`` accumulated by :meth:`backward` (zero on the ring).
    grad_source : ndarray
        ``dL/df_k`` (index ``k - 1``), filled by :meth:`backward`.
    """

    def __init__(self, cfg: PMLConfig, c: np.ndarray, source: np.ndarray | None = None,
                 observed: np.ndarray | None = None) -> None:
        self.cfg = _check_cfg(cfg)
        self.c = np.ascontiguousarray(_stable_c(cfg, c))
        self.sig, self.tau = pml_profiles(cfg)
        self.k = cfg.constants()
        self.source = ricker(cfg) if source is None else _check_source(cfg, source)
        self.isrc, self.jsrc = cfg.source_position
        self.det_i, self.det_j = detectors(cfg)
        self.observed = None if observed is None else _check_observed(cfg, observed)
        nxx, nyy = cfg.shape
        self.mrow = np.ones(nxx)
        self.mrow[[0, -1]] = 0.0
        self.mcol = np.ones(nyy)
        self.mcol[[0, -1]] = 0.0
        self.grad_c = np.zeros(cfg.shape)
        self.grad_source = np.zeros(cfg.steps)
        self._buffers = [_state_array(cfg), _state_array(cfg)]
        self._turn = 0
        self._state_shape = (4, *cfg.shape)
        self._chooser: ThreadChooser | None = None
        #: A store whose background writes (``pebbles.Store.writing``) share the machine
        #: with the kernels: the chooser learns kernels run meanwhile apart.
        self.store: pebbles.Store | None = None

    @contextlib.contextmanager
    def threads(self, choose: bool = True) -> Iterator[ThreadChooser | None]:
        """Run the kernels inside on thread counts chosen from their measured times.

        Grids of fewer than :data:`PARALLEL_MIN_CELLS` cells run on one thread
        (a kernel there is shorter than waking a second thread); on larger
        ones, when Numba runs on OpenMP, a :class:`ThreadChooser` (yielded)
        picks, per kernel, all of Numba's threads or one (``choose=False``:
        all). On TBB (Numba's threading layer where the ``tbb`` package is
        installed) every kernel runs on all threads: its
        dynamic split copes with a competing process by itself. Numba's
        setting is restored on exit.
        """
        before = numba.get_num_threads()
        nxx, nyy = self.cfg.shape
        small = nxx * nyy < PARALLEL_MIN_CELLS
        chosen = choose and not small and before > 1 and threading_layer() == "omp"
        self._chooser = ThreadChooser(before) if chosen else None
        numba.set_num_threads(1 if small else before)
        try:
            yield self._chooser
        finally:
            self._chooser = None
            numba.set_num_threads(before)

    def _run(self, kind: str, kernel: Callable[..., None], *args: object) -> None:
        if self._chooser is None:
            kernel(*args)
        else:
            busy = self.store is not None and self.store.writing
            self._chooser.run(kind + "+io" if busy else kind, kernel, *args)

    def zero_state(self) -> np.ndarray:
        """The initial state of the experiment: everything at rest."""
        s = _state_array(self.cfg)
        s.fill(0.0)
        return s

    def _fsrc(self, i: int) -> float:
        return float(self.source[i]) * self.cfg.dt ** 2

    def _check(self, name: str, a: object, written: bool = False) -> None:
        """Refuse a state that is not a float64 array of shape ``(4, nx+2, ny+2)``: the
        kernels take their loop bounds from its shape and index ``c`` and the PML
        profiles of ``cfg``'s grid (past their ends otherwise); ``written``: nor a
        read-only one (the kernels write into it). The usual case costs a type, a
        shape, a dtype identity and a flag check."""
        if type(a) is np.ndarray and a.shape == self._state_shape and a.dtype is _FLOAT64 \
                and (not written or a.flags.writeable):
            return
        _check_state(name, a, self._state_shape, written)

    def _check_step(self, i: object) -> None:
        """Refuse a step number that is not an integer (``source[1.5]`` raises NumPy's
        IndexError, ``source[True]`` picks an array) or lies outside ``0 <= i < steps``
        (``source[i]`` would raise an IndexError, or a negative ``i`` take a value from
        the end)."""
        steps = self.cfg.steps
        if type(i) is int and 0 <= i < steps:
            return
        rule = f"a step number in 0..{steps - 1} (step i maps s_i to s_{{i+1}}, " \
               f"cfg.steps={steps})"
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise PebblesTypeError(f"i={i!r:.80} must be an integer, {rule}; pass an int "
                                   f"such as i=0")
        if not 0 <= i < steps:
            raise PebblesValueError(f"i={i!r} must be {rule}; pass 0 <= i < {steps}")

    def step(self, i: int, s: np.ndarray) -> np.ndarray:
        """Return ``s_{i+1}`` (a new array) from ``s_i``; step ``i`` adds ``f_{i+1} dt^2``.

        Raises
        ------
        pebbles.PebblesValueError
            If ``i`` is not in ``0..steps-1``, or ``s`` is not a float64 array of
            shape ``(4, nx+2, ny+2)`` (the kernels would index past the grid's ends).
        pebbles.PebblesTypeError
            If ``i`` is not an integer (bools neither), or ``s`` is not a NumPy array.
        """
        self._check_step(i)
        self._check("s", s)
        out = _state_array(self.cfg)
        self._run("step", kern.step_kernel, s, self.c, self.sig, self.tau, self.k, self.isrc,
                  self.jsrc, self._fsrc(i), out)
        return out

    def step_into(self, i: int, s: np.ndarray, out: np.ndarray) -> None:
        """Write ``s_{i+1}`` into ``out``; ``out`` the same memory as ``s`` (``out is s``,
        or another array object with the same data pointer and strides, such as
        ``states[0]`` twice) runs the in-place kernel.

        ``i``, ``s`` and ``out`` are checked as in :meth:`step`, and ``out`` must be
        writeable (a :class:`pebbles.PebblesValueError` otherwise).

        Raises
        ------
        pebbles.PebblesValueError
            Also if ``out`` overlaps ``s`` otherwise (a shifted or reordered view of
            its memory): the out-of-place kernel would overwrite ``s`` before reading it.
        """
        self._check_step(i)
        self._check("s", s)
        self._check("out", out, written=True)
        if out is s or _same_memory(out, s, "step_into", "out", "s"):
            self._run("inplace", kern.step_inplace_kernel, s, self.c, self.sig, self.tau,
                      self.k, self.isrc, self.jsrc, self._fsrc(i))
        else:
            self._run("step", kern.step_kernel, s, self.c, self.sig, self.tau, self.k,
                      self.isrc, self.jsrc, self._fsrc(i), out)

    def vjp(self, s: np.ndarray, g: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(d step / d s)^T g`` (returned) and ``(d step / d c)^T g`` (added to ``grad_c``).

        ``s``, ``g`` and ``out`` (when given) are checked as ``s`` in :meth:`step`, and
        ``out`` must be writeable and share no memory with ``s`` or ``g`` (the kernel
        reads both after writing ``out``; ``s`` and ``g`` may share memory).

        Raises
        ------
        pebbles.PebblesValueError
            If ``out`` overlaps ``s`` or ``g``, or an array's shape is wrong or ``out``
            is read-only.
        pebbles.PebblesTypeError
            If an array is not a NumPy array.
        """
        self._check("s", s)
        self._check("g", g)
        if out is None:
            out = np.empty_like(s)
        else:
            self._check("out", out, written=True)
            _refuse_overlap(out, s, "vjp", "out", "s")
            _refuse_overlap(out, g, "vjp", "out", "g")
        self._run("adjoint", kern.adjoint_kernel, s, g, self.c, self.sig, self.tau, self.k,
                  self.mrow, self.mcol, out, self.grad_c)
        return out

    def misfit(self, i: int, s: np.ndarray) -> np.ndarray:
        """``u^(i)_d - u_true^(i)_d`` at the detectors (``i`` in ``0..steps``).

        Raises
        ------
        pebbles.PebblesValueError
            If the solver has no ``observed`` recording, ``i`` lies outside
            ``0..steps`` or ``s`` has the wrong shape.
        pebbles.PebblesTypeError
            If ``i`` is not an integer or ``s`` not a NumPy array.
        """
        self._check_time(i)
        self._check("s", s)
        return self._misfit(i, s)

    def _misfit(self, i: int, s: np.ndarray) -> np.ndarray:
        """:meth:`misfit` for ``i`` and ``s`` checked already (the backward steps)."""
        return s[1, self.det_i, self.det_j] - self._observed()[i]

    def running_loss(self, i: int, s: np.ndarray) -> float:
        """``l_i = sum_d (u_true^(i)_d - u^(i)_d)^2``; checked as :meth:`misfit`."""
        r = self.misfit(i, s)
        return float(r @ r)

    def _observed(self) -> np.ndarray:
        """The recording the loss callbacks compare with; refused when there is none."""
        if self.observed is None:
            raise PebblesValueError(
                "observed=None: the loss callbacks (running_loss, loss_grad, misfit) compare "
                "with a recording; pass observed= to PMLSolver, e.g. "
                "PMLSolver(cfg, c, observed=solvers.pml.record(cfg))")
        return self.observed

    def _check_time(self, i: object) -> None:
        """Refuse a time index of the recording outside ``0..steps`` (``observed[-1]``
        would read the last row, ``observed[steps + 1]`` raise NumPy's IndexError)."""
        steps = self.cfg.steps
        if type(i) is int and 0 <= i <= steps:
            return
        rule = f"a time index in 0..{steps} (row i of observed, cfg.steps={steps})"
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise PebblesTypeError(f"i={i!r:.80} must be an integer, {rule}; pass an int "
                                   f"such as i=1")
        if not 0 <= i <= steps:
            raise PebblesValueError(f"i={i!r} must be {rule}; pass 0 <= i <= {steps}")

    def _add_misfit_grad(self, i: int, s: np.ndarray, g: np.ndarray) -> None:
        np.add.at(g[1], (self.det_i, self.det_j), 2.0 * self._misfit(i, s))  # i, s checked

    def loss_grad(self, s: np.ndarray) -> np.ndarray:
        """``d l_n / d s_n`` (the last term of the running loss); checked as
        :meth:`misfit`."""
        self._check("s", s)
        self._observed()
        g = _state_array(self.cfg)
        g.fill(0.0)
        self._add_misfit_grad(self.cfg.steps, s, g)
        return g

    def backward(self, i: int, s: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, None]:
        """Backward step i: ``gbar_i = vjp(gbar_{i+1}) + d l_i / d s_i``.

        Accumulates ``grad_c`` and ``grad_source[i]``; returns ``(gbar_i, None)``.
        The result lives in one of two buffers used in turn (the executor drops
        ``gbar_{i+1}`` once it has ``gbar_i``): copy it to keep it.
        """
        self._check_step(i)
        out = self._buffers[self._turn]
        if out is g or np.may_share_memory(out, g):
            self._turn ^= 1
            out = self._buffers[self._turn]
        self._turn ^= 1
        self.vjp(s, g, out)  # checks s and g before anything is accumulated
        self.grad_source[i] += self.cfg.dt ** 2 * g[1, self.isrc, self.jsrc]
        if i >= 1 and self.observed is not None:
            self._add_misfit_grad(i, s, out)
        return out, None


_FLOAT64 = np.dtype(np.float64)


def _same_memory(out: np.ndarray, s: np.ndarray, method: str, out_name: str,
                 s_name: str) -> bool:
    """Whether ``out`` is ``s``'s memory laid out alike (same data pointer and strides;
    the shapes are checked equal): a step then runs in place. False when they share no
    memory; any other overlap is refused (:func:`_refuse_overlap`)."""
    if not np.may_share_memory(out, s):  # bounds only: O(1)
        return False
    if out.ctypes.data == s.ctypes.data and out.strides == s.strides:
        return True
    _refuse_overlap(out, s, method, out_name, s_name)
    return False


#: The work :func:`numpy.shares_memory` may spend telling interleaved views apart.
_OVERLAP_WORK = 10_000
#: NumPy's error for an overlap too hard to decide (``numpy.exceptions`` from NumPy 1.25).
_TOO_HARD = getattr(np, "exceptions", np).TooHardError


def _refuse_overlap(out: np.ndarray, a: np.ndarray, method: str, out_name: str,
                    a_name: str) -> None:
    """Raise naming ``out`` and ``a`` if they share memory (an overlap too hard to rule
    out counts as one): the kernel would read ``a`` after writing ``out``."""
    if not np.may_share_memory(out, a):
        return
    try:
        shared = np.shares_memory(out, a, max_work=_OVERLAP_WORK)
    except _TOO_HARD:
        shared = True
    if shared:
        raise PebblesValueError(
            f"{method}: {out_name} shares memory with {a_name} (the kernel reads {a_name} "
            f"after writing {out_name}, so the result would be wrong); pass an {out_name} "
            f"array of its own, e.g. solver.zero_state()"
            + (f", or {out_name}={a_name} itself to step in place" if method == "step_into"
               else ""))


def _check_state(name: str, a: object, expected: tuple[int, ...],
                 written: bool = False) -> None:
    """Raise naming ``name``, its type, shape or dtype and ``expected`` unless ``a`` is
    a float64 NumPy array of shape ``expected`` (a state of :class:`PMLSolver`);
    ``written``: and writeable (a step or vjp writes its result into it)."""
    fix = "pass an array of that shape, e.g. solver.zero_state()"
    if not isinstance(a, np.ndarray):
        raise PebblesTypeError(
            f"{_shown(name, a)} ({type(a).__name__}) is not a NumPy array; expected a "
            f"float64 NumPy array of shape {expected} = (4, nx+2, ny+2), the slots (u_prev, "
            f"u, phi, psi); {fix}")
    if a.shape != expected:
        raise PebblesValueError(
            f"{name} has shape {a.shape}; expected {expected} = (4, nx+2, ny+2), the slots "
            f"(u_prev, u, phi, psi) on cfg's grid (the kernels take their loop bounds from it "
            f"and index c there); {fix}")
    if a.dtype != _FLOAT64:
        raise PebblesValueError(
            f"{name} has dtype {a.dtype}; expected float64 (the kernels compute in double "
            f"precision); pass {name}.astype(numpy.float64)")
    if written and not a.flags.writeable:
        raise PebblesValueError(
            f"{name} is a read-only array (flags.writeable is False); the solver writes its "
            f"result into {name}: pass a writeable array, e.g. solver.zero_state() or "
            f"{name}.copy()")


def _check_source(cfg: PMLConfig, source: object) -> np.ndarray:
    """``source`` as a float64 array of shape ``(steps,)``, finite real numbers only."""
    arr = reals(source, "source", f"the source values f_1..f_n, shape ({cfg.steps},)",
                "solvers.pml.ricker(cfg)", finite=True)
    if arr.shape != (cfg.steps,):
        raise PebblesValueError(
            f"source has shape {arr.shape}; expected ({cfg.steps},) (one per step); pass "
            f"an array of that shape, e.g. solvers.pml.ricker(cfg)")
    return arr


def _state_array(cfg: PMLConfig) -> np.ndarray:
    """A new uninitialised state, in memory of its own (:func:`pebbles.mapped_empty`):
    freed, it goes back to the system at once, whatever the heap held before."""
    return pebbles.mapped_empty((4, *cfg.shape))


def _initial_state(sol: PMLSolver, s0: object) -> np.ndarray:
    """A new C-ordered float64 copy of ``s0`` after checking its shape (at rest if None).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``s0`` does not hold real numbers.
    pebbles.PebblesValueError
        If an entry is not finite, or its shape is not ``(4, nx+2, ny+2)``: the
        kernels would run on another grid or read past the ends of ``c`` and the
        PML profiles.
    """
    if s0 is None:
        return sol.zero_state()
    expected = (4, *sol.cfg.shape)
    arr = reals(s0, "s0", f"the initial state (u_prev, u, phi, psi), shape {expected}",
                "None (at rest)", finite=True)
    if arr.shape != expected:
        raise PebblesValueError(
            f"s0 has shape {arr.shape}; expected {expected} = (4, nx+2, ny+2), the slots "
            f"(u_prev, u, phi, psi) on the grid; pass an array of that shape or None (at rest)")
    return np.ascontiguousarray(arr)


def forward(cfg: PMLConfig, c: np.ndarray, s0: np.ndarray | None = None,
            source: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run n steps with the in-place kernel; return ``(s_n, traces)``.

    ``traces[k]`` is ``u^(k)`` at the detectors, ``k = 0..n``. ``s0`` (default
    at rest) must have shape ``(4, nx+2, ny+2)`` (checked before any step:
    ``PebblesValueError`` otherwise).
    """
    sol = PMLSolver(cfg, c, source)  # checks cfg first
    s = _initial_state(sol, s0)
    traces = np.empty((cfg.steps + 1, cfg.n_detectors))
    traces[0] = s[1, sol.det_i, sol.det_j]
    with sol.threads():
        for i in range(cfg.steps):
            sol.step_into(i, s, s)
            traces[i + 1] = s[1, sol.det_i, sol.det_j]
    return s, traces


def record(cfg: PMLConfig, c_true: np.ndarray | None = None,
           source: np.ndarray | None = None) -> np.ndarray:
    """The recording ``u_true`` at the detectors in the true model (default :func:`true_model`).

    ``c_true`` is checked as :func:`forward`'s ``c`` (messages name it ``c_true``)."""
    c = true_model(_check_cfg(cfg)) if c_true is None else _stable_c(cfg, c_true, "c_true")
    return forward(cfg, c, source=source)[1]


def _check_observed(cfg: PMLConfig, observed: object) -> np.ndarray:
    """``observed`` as a float64 array after checking its shape, before any step runs.

    The recording must be :func:`record`'s: shape ``(steps + 1, n_detectors)``,
    row ``k`` the detectors' ``u_true^(k)`` (row 0 unused).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``observed`` does not hold real numbers.
    pebbles.PebblesValueError
        If an entry is not finite, or its shape is not ``(cfg.steps + 1,
        cfg.n_detectors)`` (``None`` included).
    """
    expected = (cfg.steps + 1, cfg.n_detectors)
    fix = "pass the recording of solvers.pml.record(cfg)"
    if observed is None:
        raise PebblesValueError(f"observed=None: expected an array of shape {expected} = "
                                f"(steps+1, n_detectors); {fix}")
    obs = reals(observed, "observed", "the recording u_true at the detectors",
                "solvers.pml.record(cfg)", finite=True)
    if obs.shape != expected:
        raise PebblesValueError(f"observed has shape {obs.shape}; expected {expected} = "
                                f"(steps+1, n_detectors), row k the detectors' u_true^(k); {fix}")
    return obs


def loss(cfg: PMLConfig, c: np.ndarray, observed: np.ndarray,
         s0: np.ndarray | None = None, source: np.ndarray | None = None) -> float:
    """The running loss ``sum_{k=1..n} sum_d (u_true^(k)_d - u^(k)_d)^2``.

    ``observed`` (shape ``(n+1, n_detectors)``, from :func:`record`) and ``s0``
    (shape ``(4, nx+2, ny+2)``, default at rest) are checked before the run: a
    wrong shape or ``observed=None`` raises ``PebblesValueError``.
    """
    observed = _check_observed(_check_cfg(cfg), observed)
    traces = forward(cfg, c, s0, source)[1]
    r = traces[1:] - observed[1:]
    return float(np.sum(r * r))


@dataclass(frozen=True, slots=True)
class PMLGradient:
    """Result of :func:`gradient`: the executor's result and the PML gradients.

    Attributes
    ----------
    replay : pebbles.ReplayResult
        What the executor computed and measured: ``loss``, ``grad_s0``
        (``dL/ds_0``, slots ``(u_prev, u, phi, psi)``), the step counts,
        ``peak_states``, ``seconds`` (wall-clock time of the replay),
        ``peak_buffers``, ``allocations``, ``inplace_steps``, ``writes``, ``reads``
        (states written to and read back from a store). Each is also
        readable here as an attribute (``g.loss``, ``g.forward_steps``, ...).
    grad_c : ndarray ``(nx+2, ny+2)``
        ``dL/dc`` (zero on the ring, which the scheme never reads).
    grad_source : ndarray ``(n,)``
        ``dL/df_k`` (index ``k - 1``).
    """

    replay: pebbles.ReplayResult
    grad_c: np.ndarray
    grad_source: np.ndarray

    @property
    def loss(self) -> float:
        """The running loss ``L``."""
        return float(self.replay.loss)

    @property
    def grad_s0(self) -> np.ndarray:
        """``dL/ds_0`` ``(4, nx+2, ny+2)``."""
        return self.replay.grad_s0

    def __getattr__(self, name: str):
        """The executor's counts and time (``forward_steps``, ``seconds``, ...)."""
        if name in _REPLAY_FIELDS:
            return getattr(self.replay, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


_REPLAY_FIELDS = frozenset(("forward_steps", "extra_steps", "backward_steps", "peak_states",
                            "seconds", "peak_buffers", "allocations", "inplace_steps",
                            "writes", "reads"))


def gradient(cfg: PMLConfig, c: np.ndarray,
             moves: pebbles.Schedule | Iterable[pebbles.Move] | np.ndarray,
             observed: np.ndarray, *, s0: np.ndarray | None = None,
             source: np.ndarray | None = None, inplace: bool = False, reuse: bool = True,
             progress: bool = False, choose_threads: bool = True,
             store: pebbles.Store | None = None) -> PMLGradient:
    """Gradient of the running loss by replaying a checkpoint-game schedule.

    Parameters
    ----------
    cfg : PMLConfig
    c : ndarray ``(nx+2, ny+2)``
        Squared velocity where the gradient is taken.
    moves : pebbles.Schedule, iterable of Move or encoded moves
        Any checkpoint-game (or in-place-game) schedule for ``cfg.steps``
        steps, e.g. ``pebbles.schedule("treeverse", n, budget=10)``.
    observed : ndarray ``(n+1, n_detectors)``
        Recording from :func:`record` (checked before any step: a wrong
        shape or ``None`` raises ``PebblesValueError``).
    s0, source : optional
        Initial state ``(4, nx+2, ny+2)`` (default zero; its shape is checked
        before any step) and source values (default :func:`ricker`).
    inplace : bool
        Give the executor the in-place step, needed by ``move`` moves (the
        in-place game) unless ``reuse`` gives it anyway.
    reuse : bool
        Give the executor :meth:`PMLSolver.step_into` and a pool of freed
        state buffers: new states are written into freed ones instead of
        fresh arrays, and ``forward`` walks step in place after their first
        step. ``reuse=False, inplace=False`` allocates a new array per step.
    progress : bool
        tqdm progress bar (if installed).
    choose_threads : bool
        On Numba's OpenMP layer, run each kind of kernel on the thread count
        its calls show faster (:class:`ThreadChooser`; robust when other
        processes take cores); ``False``: Numba's count throughout. On TBB
        (installed by the ``solvers`` extra on Linux x86-64) kernels always
        run on all threads.
    store : pebbles.Store, optional
        Where a two-level schedule keeps its disk states (e.g.
        ``pebbles.DiskStore(directory)``); default a memory store.

    Examples
    --------
    >>> import pebbles
    >>> from solvers import pml
    >>> cfg = pml.PMLConfig(nx=20, ny=20, steps=30, h=0.11, width=6.0, delay=10.0,
    ...                     n_detectors=5)
    >>> obs = pml.record(cfg)
    >>> g = pml.gradient(cfg, pml.uniform_model(cfg), pebbles.schedule("treeverse", 30,
    ...                  budget=4), obs)
    >>> g.forward_steps, g.backward_steps, g.peak_states, g.peak_buffers, g.allocations
    (71, 30, 5, 5, 5)

    Raises
    ------
    pebbles.PebblesTypeError
        If ``inplace``, ``reuse``, ``progress`` or ``choose_threads`` is not True or
        False (``inplace="no"`` would read as True).
    """
    inplace, reuse, progress, choose_threads = (
        boolean(value, name) for name, value in (
            ("inplace", inplace), ("reuse", reuse), ("progress", progress),
            ("choose_threads", choose_threads)))
    sol = PMLSolver(cfg, c, source, _check_observed(_check_cfg(cfg), observed))
    sol.store = store
    s0 = _initial_state(sol, s0)
    with sol.threads(choose_threads):
        r = pebbles.replay(moves, cfg.steps, s0, sol.step, sol.backward, sol.loss_grad,
                           step_into=sol.step_into if inplace or reuse else None,
                           running_loss=sol.running_loss, progress=progress,
                           pool_size=None if reuse else 0, store=store)
    r = dataclasses.replace(r, loss=float(r.loss), grad_s0=np.array(r.grad_s0))
    return PMLGradient(r, sol.grad_c, sol.grad_source)


def schedule(method: str, n: int, *, budget: int | None = None, pebbles: int | None = None,
             inplace: bool = False, k: int | None = None, every: int | None = None,
             delta: int | None = None, period: int | None = None,
             disk_budget: int | None = None, write_cost: float | None = None,
             read_cost: float | None = None, background_writes: bool = False,
             backward_cost: float | None = None) -> pebbles.Schedule:
    """The registry's schedule (:func:`pebbles.schedule`) of ``method`` for the gradient.

    ``method`` is one of :data:`METHODS` (``bennett`` names
    ``bennett-gradient``). ``budget`` is the budget S of the methods that take
    one (default 10); a method that takes none is checked against it when
    given. ``pebbles`` is the older name of ``budget``, and of ``delta`` for
    ``treeverse-paper``. ``k``, ``every``, ``delta``, ``inplace``: the
    method's options. The two-level methods keep states on disk (run them
    with :func:`gradient`'s ``store``): ``two-level`` needs ``write_cost``
    and ``read_cost`` (a state's write and read times in forward steps, e.g.
    from :func:`pebbles.measure_io`) and takes ``disk_budget``,
    ``background_writes`` and, with it, ``backward_cost`` (a backward step's time in
    forward steps: the write price is chosen for it; default 1); ``periodic-disk``
    needs ``period`` (``every`` is read as it too, as on the command line).

    Raises
    ------
    pebbles.PebblesTypeError
        If ``method`` is not a string, ``n`` not an integer, ``budget``, ``pebbles``,
        ``k``, ``every``, ``delta`` or ``period`` neither an integer nor None,
        ``disk_budget`` neither an integer, ``math.inf`` nor None,
        ``write_cost``, ``read_cost`` or ``backward_cost`` neither a real number nor
        None, or ``inplace`` or ``background_writes`` not True or False.
    pebbles.PebblesValueError
        If ``method`` is not in :data:`METHODS`, an option it needs is missing,
        or one it does not take is given (each named as its keyword argument).

    Examples
    --------
    >>> from solvers import pml
    >>> s = pml.schedule("treeverse", 100, budget=5)
    >>> s.method, s.budget, s.simulate().forward_steps
    ('treeverse', 5, 323)
    >>> pml.schedule("periodic-disk", 100, budget=3, period=25).options
    (('inplace', False), ('period', 25))
    """
    inplace = boolean(inplace, "inplace")  # bool() below would read "no" as True
    background_writes = boolean(background_writes, "background_writes")
    _check_kinds(method, n=n, budget=budget, pebbles=pebbles, k=k, every=every, delta=delta,
                 period=period, write_cost=write_cost, read_cost=read_cost,
                 backward_cost=backward_cost)
    return _registry_schedule(method, n, budget=budget, old=pebbles, inplace=inplace, k=k,
                              every=every, delta=delta, period=period,
                              disk_budget=disk_budget, write_cost=write_cost,
                              read_cost=read_cost, background_writes=background_writes,
                              backward_cost=backward_cost)


#: The real-valued options of :func:`schedule` (the others are integers).
_REAL_OPTIONS = ("write_cost", "read_cost", "backward_cost")


def _check_kinds(method: object, **values: object) -> None:
    """Refuse a ``method`` that is no string, and a value of :func:`schedule` (given, not
    None) of the wrong type: an integer (a bool is none), or a real number for
    :data:`_REAL_OPTIONS`. Ranges are the registry's to check, after a value a method
    does not take is refused as such."""
    if not isinstance(method, str):
        raise PebblesTypeError(f"{_shown('method', method)} must be a string, one of "
                               f"{', '.join(METHODS)}; pass e.g. method='treeverse'")
    for key, value in values.items():
        if value is None or isinstance(value, (bool, np.bool_)):
            wrong = key == "n" or value is not None
        elif key in _REAL_OPTIONS:
            wrong = not isinstance(value, (int, float, np.integer, np.floating))
        else:
            wrong = not isinstance(value, (int, np.integer))
        if wrong:
            kind, example = ("a real number", 2.0) if key in _REAL_OPTIONS else \
                ("an integer", 10)
            raise PebblesTypeError(f"{_shown(key, value)} must be {kind}"
                                   f"{'' if key == 'n' else ' or None'}; pass e.g. "
                                   f"{key}={example}")


#: The options the two-level methods need: (command-line wording, keyword wording).
_DISK_NEEDS = {
    "write_cost": ("--write-cost (in forward steps), or --disk-dir to measure it",
                   "write_cost= (a state's write time in forward steps, e.g. write_cost=2.0; "
                   "pebbles.measure_io measures it)"),
    "read_cost": ("--read-cost (in forward steps), or --disk-dir to measure it",
                  "read_cost= (a state's read time in forward steps, e.g. read_cost=1.0; "
                  "pebbles.measure_io measures it)"),
    "period": ("--every (its period: a state goes to disk every that many steps)",
               "period= (a state goes to disk every that many steps), e.g. period=10"),
}


def _disk_needs(name: str, options: dict, cli: bool) -> None:
    """Check (and for periodic-disk, gather) the options a two-level method needs."""
    if name == "periodic-disk":
        options["period"] = _one_value("period", options.get("period"), "every",
                                       options.pop("every", None), "periodic-disk's period")
    needed = {"two-level": ("write_cost", "read_cost"), "periodic-disk": ("period",)}
    for key in needed.get(name, ()):
        if options.get(key) is None:
            raise PebblesValueError(f"method {name} needs {_DISK_NEEDS[key][0 if cli else 1]}")


def _one_value(name: str, value: object, alias: str, other: object, what: str) -> object:
    """The value of an option given under two names (``name`` and its older
    ``alias``): either one, or both when equal; refused when they differ."""
    if None not in (value, other) and value != other:
        raise PebblesValueError(f"{name}={value!r} and {alias}={other!r} both give {what} and "
                                f"differ; pass only {name}")
    return other if value is None else value


def _registry_schedule(method: str, n: int, *, budget: int | None, old: int | None,
                       cli: bool = False, **options: object) -> pebbles.Schedule:
    """The schedule of :func:`schedule` and ``--method``; ``cli``: messages name flags."""
    if method not in METHODS:
        raise PebblesValueError(f"method={method!r} is not one of {', '.join(METHODS)}")
    name = _ALIASES.get(method, method)
    entry = pebbles.describe(name)
    if name == "treeverse-paper":  # pebbles: the older name of its delta
        options["delta"] = _one_value("delta", options.get("delta"), "pebbles", old,
                                      "treeverse-paper's delta")
    else:
        budget = _one_value("budget", budget, "pebbles", old, "the budget S")
    if entry.takes_budget and budget is None:
        budget = 10
    _disk_needs(name, options, cli)
    if name == "periodic" and options.get("every") is None:
        options["every"] = periodic_every(n)
    known = _check_options(name, options, cli)
    opts = {key: value for key, value in options.items()
            if key in known and value is not None}
    if "inplace" in known:
        opts["inplace"] = bool(options.get("inplace"))
    return pebbles.schedule(name, n, budget=budget, **opts)


#: ``python -m solvers.pml gradient``'s flags for the registry's option names.
_CLI_FLAGS = {"inplace": "--inplace", "k": "--k", "delta": "--delta", "tau": "--tau",
              "beyond": "--beyond", "every": "--every",
              "period": "--every", "disk_budget": "--disk-slots", "write_cost": "--write-cost",
              "read_cost": "--read-cost", "background_writes": "--background-writes",
              "backward_cost": "--backward-cost"}
#: The flags of the command line besides the schedule's, for :func:`pebbles.cli.in_flags`.
_CONFIG_FLAGS = {"steps": "--steps", "nx": "--nx", "ny": "--ny", "dt": "--dt", "h": "--h",
                 "directory": "--disk-dir", **_CLI_FLAGS}


def _check_options(name: str, options: dict, cli: bool = False) -> dict:
    """Refuse options given (not None, not False) that method ``name`` does not take;
    return its options and their defaults. ``cli``: the message names the flags."""
    known = dict(pebbles.describe(name).options)
    for key, value in options.items():
        if key not in known and value not in (None, False):
            if cli:
                given = _CLI_FLAGS[key] + ("" if isinstance(value, bool) else f" {value}")
                takes = method_flags(name, _CLI_FLAGS, offered=_CLI_FLAGS)
                raise PebblesValueError(
                    f"{given} is not an option of --method {name} (its options: "
                    f"{', '.join(takes) or 'none'}); leave it out or pick a method that "
                    f"takes it")
            raise PebblesValueError(
                f"{key}={value!r} is not an option of method {name} (its options: "
                f"{', '.join(known) or 'none'}); leave it out or pick a method that takes it")
    return known


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Memory a run needs, estimated before it starts.

    Attributes
    ----------
    states : int
        State-sized arrays held at once: the schedule's peak, ``s_0`` and the
        three gradient-sized buffers of the reverse sweep (1 for ``loss``).
    state_bytes : int
        Bytes of one state, ``4 (nx+2) (ny+2) 8``.
    other_bytes : int
        Grids (``c``, the true model, ``dL/dc``), the detector recordings and the
        lowered schedule (the slot program of its moves).
    """

    states: int
    state_bytes: int
    other_bytes: int

    @property
    def total(self) -> int:
        """Bytes in all."""
        return self.states * self.state_bytes + self.other_bytes


def memory_estimate(cfg: PMLConfig,
                    moves: pebbles.Schedule | pebbles.SlotProgram | Iterable[pebbles.Move]
                    | np.ndarray | None = None) -> MemoryEstimate:
    """Memory of :func:`gradient` with schedule ``moves`` (of :func:`loss` when ``None``).

    Counted before anything is allocated: the schedule's peak of stored
    states (:func:`_held_states`) plus the working state, ``s_0`` and the
    gradient buffers, three grids and the recordings, and the lowering of its
    moves (a schedule's moves are counted; a program's rows are counted as
    moves). ``moves`` takes the forms
    :func:`gradient` takes: a schedule (or a ``pebbles.SlotProgram``) for
    ``cfg.steps`` steps, an iterable of moves or an encoded array (played by
    :func:`pebbles.lower`: an iterator is used up, pass a list).

    The states a two-level or periodic-disk schedule keeps on disk are not
    counted: :func:`gradient` keeps them in its ``store``, a ``pebbles.DiskStore``
    on the command line; with the default ``store=None``, a ``pebbles.MemoryStore``,
    they are in memory too, up to the schedule's ``disk_budget`` states more.

    Raises
    ------
    pebbles.PebblesValueError
        If ``moves`` is a schedule or program for another number of steps than
        ``cfg.steps`` (both named).
    pebbles.IllegalMoveError
        If plain moves break a rule of the game for ``cfg.steps`` steps.

    Examples
    --------
    >>> from solvers import pml
    >>> cfg = pml.PMLConfig(nx=300, ny=300, steps=20000)
    >>> est = pml.memory_estimate(cfg, pml.schedule("store-all", cfg.steps))
    >>> est.states, round(est.total / 1e9, 1)
    (20004, 58.5)
    >>> pml.memory_estimate(cfg, pml.schedule("bennett", cfg.steps, budget=1000)).states
    20
    """
    _check_cfg(cfg)
    if moves is None:
        return _estimate(cfg, 1)
    peak, count = _peak_of(cfg, moves)
    return _estimate(cfg, peak + 4, program_bytes(count, cfg.steps))


def _peak_of(cfg: PMLConfig, moves: object) -> tuple[int, int]:
    """States ``moves`` holds at its peak, ``s_0`` included, and its moves (a program's
    rows), read as :func:`gradient` reads it (:func:`pebbles.replay`): a schedule or
    program for ``cfg.steps`` steps, else plain moves lowered for ``cfg.steps`` steps."""
    if isinstance(moves, (pebbles.Schedule, pebbles.SlotProgram)) and moves.n != cfg.steps:
        kind = "schedule" if isinstance(moves, pebbles.Schedule) else "program"
        raise PebblesValueError(
            f"moves is a {kind} for n={moves.n} steps but cfg.steps={cfg.steps}; pass one "
            f"for {cfg.steps} steps, e.g. solvers.pml.schedule(\"treeverse\", cfg.steps)")
    if isinstance(moves, pebbles.Schedule):
        return _held_states(moves), schedule_moves(moves)
    if isinstance(moves, pebbles.SlotProgram):
        return moves.peak_states, len(moves.ops)
    arr = pebbles.encode(moves)
    return pebbles.lower(arr, cfg.steps).peak_states, len(arr)


def _estimate(cfg: PMLConfig, states: int, program: int = 0) -> MemoryEstimate:
    """``states`` state-sized arrays, three grids and the recordings of ``cfg``, and
    ``program`` bytes of the lowered schedule."""
    nxx, nyy = cfg.shape
    grid = 8 * nxx * nyy
    other = 3 * grid + 8 * (cfg.steps + 1) * cfg.n_detectors * 2 + 16 * cfg.steps + program
    return MemoryEstimate(states, 4 * grid, other)


def _held_states(moves: pebbles.Schedule) -> int:
    """Peak of states ``moves`` holds, ``s_0`` included, found without playing them
    where possible.

    The least of: the budget (at most ``n`` states besides ``s_0``, whatever S),
    which bounds the methods that take one and merely caps those that take
    none; and what the method is known to need (its registry ``need``, cheap:
    a formula, or a short stream played). With neither,
    :func:`pebbles.lower`'s count (the moves played).
    """
    need = pebbles.describe(moves.method).need
    held = None if need is None else need(moves.n, **dict(moves.options))
    if moves.budget is not None:  # never more than n states besides s_0, whatever S
        cap = min(moves.budget, moves.n)
        held = cap if held is None else min(held, cap)
    if held is None:
        return pebbles.lower(moves).peak_states
    return held + 1


def _size(nbytes: float) -> str:
    """``nbytes`` in kB, MB, GB or TB (powers of 1000), three significant digits."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes / 1e3:.3g} kB"


def check_memory(estimate: MemoryEstimate, available: float | None = None) -> None:
    """Refuse a run whose estimate exceeds the available memory.

    ``available`` (bytes, a number > 0) defaults to :func:`available_memory` (no
    check where it is unknown).

    Raises
    ------
    NotEnoughMemoryError
        Naming the estimate, its parts and the available memory.
    pebbles.PebblesTypeError
        If ``estimate`` is not a :class:`MemoryEstimate`, or ``available`` not a number.
    pebbles.PebblesValueError
        If ``available`` is not a finite number of bytes > 0.
    """
    if not isinstance(estimate, MemoryEstimate):
        raise PebblesTypeError(
            f"{_shown('estimate', estimate)} ({type(estimate).__name__}) must be a "
            f"solvers.pml.MemoryEstimate, the memory a run needs; pass "
            f"estimate=solvers.pml.memory_estimate(cfg, moves)")
    if available is not None:
        available = real(available, "available",
                         "number of bytes of memory available to the run",
                         "8e9", positive=True)
    _check_fits(estimate, available, "use a smaller grid (cfg.nx, cfg.ny), fewer steps "
                "(cfg.steps) or a schedule of a smaller budget, or leave check_memory out to "
                "run anyway")


def _check_fits(estimate: MemoryEstimate, available: float | None, fix: str) -> None:
    """Raise :class:`NotEnoughMemoryError` ending in ``fix`` unless ``estimate`` fits in
    ``available`` bytes (None: :func:`available_memory`, the system's MemAvailable; no
    check where that is unknown)."""
    where = "MemAvailable" if available is None else f"available={available:g}"
    if available is None:
        available = available_memory()
    if available is None or estimate.total <= available:
        return
    raise NotEnoughMemoryError(
        f"the run needs about {_size(estimate.total)} ({estimate.states} "
        f"state{'s' * (estimate.states != 1)} of "
        f"{_size(estimate.state_bytes)} plus {_size(estimate.other_bytes)} of grids and "
        f"recordings) but {_size(available)} is available ({where}); {fix}")


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def _whole(text: str) -> int:
    """argparse type of ``--nx``, ``--ny`` and ``--steps``: an integer of at most 2^62,
    checked by :func:`pebbles.cli.count` as Lorenz's and visualize's are (its message);
    a negative one is left to :class:`PMLConfig`, whose message names the least value."""
    with contextlib.suppress(ValueError):
        if int(text) < 0:
            return int(text)
    return count(text)


def _common(p: argparse.ArgumentParser) -> None:
    d = PMLConfig()
    p.add_argument("--nx", type=_whole, default=d.nx, help=f"grid cells along x ({d.nx})")
    p.add_argument("--ny", type=_whole, default=d.ny, help=f"grid cells along y ({d.ny})")
    p.add_argument("--steps", type=_whole, default=d.steps, help=f"time steps ({d.steps})")
    p.add_argument("--dt", type=float, default=d.dt, help=f"time step ({d.dt:g})")
    p.add_argument("--h", type=float, default=None, help="grid spacing (default 200/(nx-1))")
    p.add_argument("--c", default=None, metavar="FILE.npy",
                   help="squared velocity (nx+2, ny+2); default 3300^2 everywhere")
    p.add_argument("--force", action="store_true",
                   help="run even when the estimated memory exceeds the available memory")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m solvers.pml",
                      description="PML wave experiment (Liu & Xu, section 4.2).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=SubcommandParser)
    g = sub.add_parser("gradient", help="dL/dc, dL/df, dL/ds0 through a schedule")
    _common(g)
    g.add_argument("--method", choices=METHODS, default="treeverse",
                   help="a registry method (pebbles methods); bennett = bennett-gradient")
    g.add_argument("--pebbles", "--budget", dest="budget", type=budget_flag, default=None,
                   help="budget S: states held at once besides s_0, the working state included "
                        "(default 10 for treeverse; "
                        "treeverse-paper reads it as --delta when --delta is not given)")
    g.add_argument("--inplace", action="store_true",
                   help="in-place game and in-place step (methods " + ", ".join(
                       m for m in METHODS if m in pebbles.methods()
                       and "inplace" in dict(pebbles.describe(m).options)) + ")")
    g.add_argument("--k", type=at_least(2), default=None, help="bennett: blocks per level (2)")
    g.add_argument("--delta", type=positive, default=None, help="treeverse-paper: delta")
    g.add_argument("--tau", type=count, default=None,
                   help="treeverse-paper: tau (default: the least that covers --steps)")
    g.add_argument("--beyond", choices=("greedy", "wang-moin"), default=None,
                   help="online: the rule past the r = 3 phase (greedy)")
    g.add_argument("--every", "--period", type=positive, default=None, dest="every",
                   help="periodic: checkpoint interval (default ceil(sqrt(n))); "
                   "periodic-disk: its disk period (required; --period, as in `pebbles "
                   "schedule periodic-disk`, is the same flag)")
    add_disk_arguments(g)
    add_background_argument(g, backward_cost=True)
    g.add_argument("--disk-dir", default=None,
                   help="two-level: directory of the disk states (default: a temporary one, "
                        "removed at the end)")
    g.add_argument("--keep-disk", action="store_true",
                   help="keep the store's folder (a new pebbles-store-* folder inside "
                        "--disk-dir, printed as disk_folder) instead of removing it; it is "
                        "left empty: the schedule deletes each state file once done with "
                        "it, and a failed run deletes those left")
    g.add_argument("--save", default=None, metavar="OUT.npz",
                   help="write the loss, the gradients (grad_c, grad_u0, grad_s0, "
                        "grad_source) and the step counts")
    lo = sub.add_parser("loss", help="the running loss at c")
    _common(lo)
    return p


if __name__ == "__main__" and find_spec("numba") is None:  # --help and usage errors answer
    sys.exit(run_command(_parser(), None, _refuse_without_numba))

import numba  # noqa: E402  (after the parser: see the imports at the top)

from solvers import _pml_kernels as kern  # noqa: E402
from solvers._threading import threading_layer  # noqa: E402


def _load_c(path: str, cfg: PMLConfig) -> np.ndarray:
    """``--c``: a real ``(nx+2, ny+2)`` array from a .npy file."""
    try:
        c = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise PebblesValueError(f"--c {path}: cannot read a .npy array of numbers ({err}); "
                                f"save one with numpy.save(path, c)") from None
    if not isinstance(c, np.ndarray) or c.dtype.kind not in "fiu":
        raise PebblesValueError(
            f"--c {path} holds {getattr(c, 'dtype', type(c).__name__)} values; expected "
            f"real numbers (the squared velocity, float64)")
    if c.shape != cfg.shape:
        raise PebblesValueError(
            f"--c {path} holds shape {c.shape}; expected {cfg.shape} = (nx+2, ny+2)")
    bad = ~np.isfinite(c) | (c < 0) if c.dtype.kind == "f" else c < 0
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise PebblesValueError(
            f"--c {path}: {int(bad.sum())} of {c.size} cells are negative or not finite "
            f"(the first at [{i}, {j}]: {float(c[i, j]):g}); the squared velocity must be finite "
            f"and >= 0 on every cell")
    return np.ascontiguousarray(c, dtype=np.float64)


def _config(args: argparse.Namespace) -> tuple[PMLConfig, pebbles.Schedule | None]:
    """The configuration and schedule, validated, memory checked; nothing allocated yet.

    The schedule is ``None`` for ``loss``, and for ``two-level`` when a disk cost
    is still to be measured (:func:`_cli_schedule` makes it once every
    check that needs no measurement has passed).
    """
    cfg = PMLConfig(nx=args.nx, ny=args.ny, steps=args.steps, dt=args.dt, h=args.h)
    moves, estimate = None, memory_estimate(cfg)
    if args.command == "gradient":
        check_npz_output("--save", args.save)
        _check_disk_flags(args)
        _check_disk_dir(args.disk_dir)
        if _measures_disk(args):
            estimate = _two_level_estimate(args, cfg)
        else:
            moves = _cli_schedule(args, cfg, _disk_options(args, None))
            estimate = memory_estimate(cfg, moves)
    _check_addressable(estimate)
    if not args.force:
        _check_fits(estimate, None, _memory_fix(args.command))
    return cfg, moves


def _memory_fix(command: str) -> str:
    """How to fit a run in memory, in the flags ``command`` has (``loss`` has no
    ``--pebbles``)."""
    fewer = ("a smaller grid, fewer steps or a smaller budget (--pebbles)"
             if command == "gradient" else "a smaller grid or fewer steps")
    return f"use {fewer}, or pass --force to run anyway"


def _check_addressable(estimate: MemoryEstimate) -> None:
    """Refuse, even with ``--force``, a run whose memory no machine can address (more
    than 2^62 bytes: NumPy cannot make its arrays)."""
    if estimate.total > MAX_INT:
        raise PebblesValueError(
            f"--nx, --ny and --steps ask for about {_size(estimate.total)}, more than any "
            f"machine can address (2^62 bytes), so --force cannot run it either; use a "
            f"smaller grid or fewer steps")


def _cli_schedule(args: argparse.Namespace, cfg: PMLConfig, disk: dict) -> pebbles.Schedule:
    """``--method`` and its flags as a schedule; ``disk``: the two-level options."""
    budget, old = args.budget, None
    if args.method == "treeverse-paper" and args.delta is None:
        if args.budget is None:
            raise PebblesValueError("--method treeverse-paper needs --delta D (the paper's "
                                    "delta; --pebbles D is its older name here)")
        budget, old = None, args.budget  # the older meaning of --pebbles here
    return _registry_schedule(args.method, cfg.steps, budget=budget, old=old, cli=True,
                              inplace=args.inplace, k=args.k, every=args.every,
                              delta=args.delta, tau=args.tau, beyond=args.beyond, **disk)


def _measures_disk(args: argparse.Namespace) -> bool:
    """Whether ``--method two-level`` measures a disk cost (one of them not given)."""
    return args.method == "two-level" and None in (args.write_cost, args.read_cost)


def _two_level_estimate(args: argparse.Namespace, cfg: PMLConfig) -> MemoryEstimate:
    """The checks and memory estimate of ``two-level`` before its costs are measured:
    both depend on ``--pebbles`` and the game alone (the method holds at most S states
    in memory), so the registry runs them on the schedule with a disk it never uses
    (``disk_budget=0``: the memory-only optimum, no disk tables solved)."""
    unused_disk = {"disk_budget": 0, "write_cost": 0.0, "read_cost": 0.0,
                   "background_writes": False}
    return memory_estimate(cfg, _cli_schedule(args, cfg, unused_disk))


def _check_disk_flags(args: argparse.Namespace) -> None:
    """Refuse disk flags that ``--method`` would leave unused."""
    entry = pebbles.describe(_ALIASES.get(args.method, args.method))
    known = {name for name, _ in entry.options}
    flags = {"--disk-slots": ("disk_budget", args.disk_budget),
             "--write-cost": ("write_cost", args.write_cost),
             "--read-cost": ("read_cost", args.read_cost),
             "--background-writes": ("background_writes", args.background_writes),
             "--backward-cost": ("backward_cost", args.backward_cost),
             "--disk-dir": ("", args.disk_dir), "--keep-disk": ("", args.keep_disk)}
    unused = [flag for flag, (name, value) in flags.items() if value not in (None, False)
              and not (name in known if name else entry.uses_disk)]
    if unused:
        raise PebblesValueError(
            f"{' '.join(unused)}: not used by --method {args.method} (disk flags: "
            f"two-level takes them all, periodic-disk --disk-dir and --keep-disk); leave "
            f"{'it' if len(unused) == 1 else 'them'} out or pick a disk method")


def _check_disk_dir(disk_dir: str | None) -> None:
    """Refuse a ``--disk-dir`` that is empty (it would mean the working directory), or
    where no store can make its folder (a file, or a path under one; not writable:
    :func:`_probe_disk_dir`), before any computing (the store is opened after the
    forward recording, the disk measured after a timed step)."""
    if disk_dir is None:
        return
    check_path_given("--disk-dir", disk_dir, "name a directory, e.g. --disk-dir "
                     "/tmp/pml-states, or leave --disk-dir out for a temporary one")
    _probe_disk_dir(disk_dir)


def _probe_disk_dir(disk_dir: str) -> None:
    """Open and close a store in ``disk_dir``: it makes the directory's missing parents
    and its folder by the run's rules, and removes all it made (an error names
    ``--disk-dir``)."""
    try:
        pebbles.DiskStore(disk_dir).close()
    except pebbles.PebblesError as err:
        raise in_flags(err, "--steps", _CONFIG_FLAGS) from None


def _disk_options(args: argparse.Namespace, cfg: PMLConfig | None) -> dict:
    """The two-level options (``{}`` for the other methods): ``--disk-slots``,
    ``--write-cost``, ``--read-cost``, ``--background-writes``; with ``cfg``, costs
    not given are measured on ``--disk-dir`` (states written and read back to back,
    :func:`pebbles.measure_io`, against one timed in-place step)."""
    if args.method != "two-level":
        return {}
    wc, rc = args.write_cost, args.read_cost
    if cfg is not None and (wc is None or rc is None):
        io = pebbles.measure_io(args.disk_dir, 4 * (cfg.nx + 2) * (cfg.ny + 2) * 8)
        mwc, mrc = io.costs(_step_seconds(cfg))
        release_freed_memory()  # the probes' state-sized arrays: not part of the run
        wc, rc = (mwc if wc is None else wc), (mrc if rc is None else rc)
    return {"disk_budget": disk_budget(args), "write_cost": wc, "read_cost": rc,
            "background_writes": args.background_writes, "backward_cost": args.backward_cost}


def _step_seconds(cfg: PMLConfig) -> float:
    """Best of three timed in-place steps of this grid (after a warm-up step)."""
    sol = PMLSolver(cfg, uniform_model(cfg))
    s = sol.zero_state()
    sol.step_into(0, s, s)
    best = math.inf
    for i in range(3):
        t0 = time.perf_counter()
        sol.step_into((i + 1) % cfg.steps, s, s)  # a run of 1 to 3 steps has no step 3
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-9)


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (10^6 bytes, as the benchmarks report).

    ``ru_maxrss`` counts KiB on Linux and bytes on macOS.
    """
    unit = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 1e6


def warm_up() -> None:
    """Compile (or load from Numba's cache) every kernel, so that timings exclude it."""
    cfg = PMLConfig(nx=4, ny=4, steps=2, h=1.0)
    sol = PMLSolver(cfg, uniform_model(cfg))
    s = sol.step(0, sol.zero_state())
    sol.step_into(1, s, s)
    sol.vjp(s, s)


def _run(args: argparse.Namespace) -> dict:
    cfg, moves = _config(args)
    c = uniform_model(cfg) if args.c is None else _load_c(args.c, cfg)
    check_stability(cfg, c)
    check_stability(cfg, true_model(cfg))
    warm_up()
    if args.command == "gradient" and moves is None:  # every check passed: measure the disk
        moves = _cli_schedule(args, cfg, _disk_options(args, cfg))
    observed = record(cfg)
    if args.command == "loss":
        t0 = time.perf_counter()
        value = loss(cfg, c, observed)
        return {"command": "loss", "loss": value, "seconds": time.perf_counter() - t0,
                "peak_rss_mb": _peak_rss_mb()}
    big = cfg.steps * cfg.nx * cfg.ny > 2e8 and sys.stderr.isatty()
    if pebbles.describe(moves.method).uses_disk:
        with pebbles.DiskStore(args.disk_dir, keep=args.keep_disk, queue_size=1) as store:
            g = gradient(cfg, c, moves, observed, inplace=args.inplace, progress=big,
                         store=store)
            disk = {"writes": g.replay.writes, "reads": g.replay.reads,
                    "bytes_written": store.bytes_written, "bytes_read": store.bytes_read}
            if args.keep_disk:
                disk["disk_folder"] = store.directory
    else:
        g, disk = gradient(cfg, c, moves, observed, inplace=args.inplace, progress=big), {}
    if args.save:
        np.savez(args.save, loss=g.loss, grad_c=g.grad_c, grad_u0=g.grad_s0[1],
                 grad_s0=g.grad_s0, grad_source=g.grad_source, forward_steps=g.forward_steps,
                 backward_steps=g.backward_steps, peak_states=g.peak_states)
    return {"command": "gradient", "method": moves.method, "inplace": args.inplace,
            "budget": moves.budget, "options": dict(moves.options), "nx": cfg.nx,
            "ny": cfg.ny, "steps": cfg.steps, "loss": g.loss,
            "grad_c_norm": float(np.linalg.norm(g.grad_c)),
            "forward_steps": g.forward_steps, "backward_steps": g.backward_steps,
            "peak_states": g.peak_states, "seconds": g.seconds, "peak_rss_mb": _peak_rss_mb(),
            **disk}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad input)."""
    def run(args: argparse.Namespace) -> str:
        try:
            out = _run(args)
        except pebbles.PebblesError as err:  # the library's argument names as flags
            raise in_flags(err, "--steps", _CONFIG_FLAGS) from None
        if args.json:
            return json.dumps(out)
        return "\n".join(f"{key:<15} {value}" for key, value in out.items())

    return run_command(_parser(), argv, run)


if __name__ == "__main__":
    sys.exit(main())
