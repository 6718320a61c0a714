"""Trade-off frontiers: the fewest states each method needs at each time overhead.

The numbers behind Liu & Xu's Figure 8 (memory against time overhead), extended with
the exact optima and the online scheme. For a number of steps n, each curve gives the
fewest pebbles S (states held besides s_0) with which a method finishes at time
overhead ``T'/T = forward steps / n``. Exact counts come from the library:

* treeverse, both checkpoint games -- :func:`pebbles.min_forward_steps`;
* reversible optimum -- the tables behind :func:`pebbles.min_forward_steps`
  (game ``'reversible'``), built once for all S;
* Bennett -- :func:`pebbles.bennett_steps` and :func:`pebbles.bennett_pebbles`
  without the top-level uncompute, over k: the game ends when cell n is first
  reached, ``(T + 1) / 2`` steps for ``n = k^l``, as the paper counts its n = 16
  example (41 steps), where its formula (5), ``T = (2k-1)^l``, includes the
  top-level uncompute;
* treeverse_paper -- :func:`pebbles.simulate` of Algorithm 3 over delta;
* online -- :func:`pebbles.simulate` of :func:`pebbles.online` (checkpoint game),
  the run stopping after n steps without having known n.

Reversible-game counts are those of the forward run (reaching cell n), as in the
paper. The paper's continuous approximations: Treeverse ``T'/T ~ tau, S = delta + 1``
with ``C(tau + delta, delta) = n``; Bennett ``n = k^l, T = (2k-1)^l, S = l(k-1) + 1``
(formula (5), with the top-level uncompute: about twice the exact curve's steps).
:mod:`visualize` draws them (``pebbles tradeoff``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from math import lgamma, log

import numpy as np

from ._bennett import bennett_pebbles, bennett_steps
from ._budget import min_pebbles
from ._errors import PebblesTypeError, PebblesValueError
from ._online import online
from ._optimal import min_forward_steps
from ._reversible import ReversibleTables
from ._simulator import simulate
from ._treeverse import paper_tau, treeverse_paper
from ._validation import a_kind, check_bool, check_int

__all__ = ["ONLINE_BUDGETS", "S_CAP", "X_MAX", "memory_ratio", "online_overhead",
           "tradeoff_curves"]

#: Largest time overhead T'/T the curves are computed up to.
X_MAX = 2000.0
#: Largest treeverse budget counted. min_forward_steps costs O(S) per call (no
#: recursion limit any more): the whole curve down to store-all (S = n - 1) takes
#: 0.05 s at n = 10^4, 0.5 s at n = 10^6 with S <= 10^5, 6 s per game with
#: S <= n - 1 = 10^6 - 1 (measured), so n = 10^6 stops at T'/T = 1.9.
S_CAP = 10**5
Curve = tuple[np.ndarray, np.ndarray]


def _budgets(lo: int, hi: int) -> list[int]:
    """Every S in lo..64, then a geometric sequence (ratio ~1.25) up to hi."""
    out = set(range(lo, min(hi, 64) + 1))
    s = 64.0
    while s < hi:
        out.add(int(s))
        s *= 1.25
    out.add(hi)
    return sorted(x for x in out if lo <= x <= hi)


def _treeverse(n: int, game: str) -> Curve:
    """Exact minimum S at each T'/T, from S = min(n - 1, S_CAP) down until T'/T > X_MAX."""
    lo = min_pebbles(n, game)
    xs, ys = [], []
    for s in reversed(_budgets(max(lo, 1), max(lo, min(n - 1, S_CAP)))):
        if game == "checkpoint" and s == 2 and n > 5000:
            break  # T'/T ~ n/4 > X_MAX, and slow to count
        x = min_forward_steps(n, s, game) / n
        if x > X_MAX:
            break
        xs.append(x)
        ys.append(s)
    return np.array(xs[::-1]), np.array(ys[::-1])


def _fewest(n: int, game: str, x: float, lo: int, hi: int) -> int:
    """The fewest S in ``lo..hi`` with ``min_forward_steps(n, S) / n <= x`` (``hi`` meets
    it; the steps fall as S grows), by bisection."""
    while lo < hi:
        mid = (lo + hi) // 2
        if min_forward_steps(n, mid, game) / n <= x * (1 + 1e-12):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _exact_at(n: int, game: str, curve: Curve, xs: np.ndarray) -> Curve:
    """``curve`` with the exact fewest S at each overhead in ``xs`` added (the sampled
    budgets of :func:`_budgets` may skip it: the next sampled S is up to 25 % more)."""
    tx, ts = curve
    add = {}
    for x in xs:
        meets = ts[tx <= x * (1 + 1e-12)]
        if meets.size:
            hi = int(meets.min())
            below = ts[ts < hi]
            lo = int(below.max()) + 1 if below.size else hi
            s = _fewest(n, game, float(x), lo, hi)
            add[s] = min_forward_steps(n, s, game) / n
    pts = dict(zip(ts.tolist(), tx.tolist(), strict=True)) | add
    ss = np.array(sorted(pts))
    return np.array([pts[s] for s in ss.tolist()]), ss


def _reversible(n: int, s_max: int) -> Curve:
    """Exact reversible optimum for S = ceil(log2(n+1)) .. s_max, one table build."""
    lo = min_pebbles(n, "reversible")
    hi = max(lo, min(n, s_max))
    tables = ReversibleTables.build(n, hi)
    ss = np.arange(lo, hi + 1)
    return np.array([tables.reach[s](n) / n for s in ss]), ss


def _bennett(n: int) -> Curve:
    """Bennett over k (no top-level uncompute): every k <= 12, then geometric."""
    ks = sorted({k for k in range(2, 13)} | {int(1.7 ** i) for i in range(5, 60)})
    ks = [k for k in ks if k <= n]
    pts = {(bennett_steps(n, k, uncompute=False) / n,
            bennett_pebbles(n, k, uncompute=False)) for k in ks}
    pts = [(x, s) for x, s in pts if x <= X_MAX]
    x, s = zip(*sorted(pts), strict=True) if pts else ((), ())
    return np.array(x), np.array(s)


def _treeverse_paper(n: int) -> Curve:
    """Simulated Algorithm 3 for delta = 1..12 and a geometric sample up to 223.

    Deltas whose tau exceeds X_MAX are skipped (their T'/T is off the plot).
    """
    xs, ys = [], []
    deltas = {d for d in range(1, 13)} | {int(1.35**i) for i in range(9, 19)}
    for delta in sorted(d for d in deltas if d <= n - 1):
        if paper_tau(n, delta) > X_MAX:
            continue
        r = simulate(treeverse_paper(n, delta), n)
        xs.append(r.forward_steps / n)
        ys.append(r.peak_states)
    return np.array(xs), np.array(ys)


def _log_binom(a: float, b: float) -> float:
    return lgamma(a + b + 1) - lgamma(a + 1) - lgamma(b + 1)


def _paper_treeverse(n: int) -> Curve:
    """Continuous tau(delta) with C(tau + delta, delta) = n (bisection on tau)."""
    deltas = np.geomspace(1, max(2, n / 2), 200)
    taus = []
    for d in deltas:
        lo, hi = 0.0, float(n)
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _log_binom(mid, d) < log(n) else (lo, mid)
        taus.append(hi)
    taus = np.array(taus)
    keep = (taus >= 1) & (taus <= X_MAX)
    return taus[keep], deltas[keep] + 1


def _paper_bennett(n: int) -> Curve:
    """Continuous Bennett: n = k^l, T'/T = ((2k-1)/k)^l, S = l(k-1)+1."""
    k = np.geomspace(2, n, 400)
    lev = np.log(n) / np.log(k)
    x = ((2 * k - 1) / k) ** lev
    keep = x <= X_MAX
    return x[keep], (lev * (k - 1) + 1)[keep]


#: Budgets of the online curve (each point plays the online stream once).
ONLINE_BUDGETS = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64)


def _online(n: int) -> Curve:
    """Simulated online checkpointing (checkpoint game) over :data:`ONLINE_BUDGETS`."""
    xs, ys = [], []
    for s in ONLINE_BUDGETS:
        if s > n - 1 or s < min_pebbles(n, "checkpoint"):
            continue
        r = simulate(online(n, s), n, "checkpoint", s)
        if r.forward_steps / n <= X_MAX:
            xs.append(r.forward_steps / n)
            ys.append(s)
    return np.array(xs), np.array(ys)


def tradeoff_curves(n: int, *, paper_max_n: int = 10**4,
                    reversible_max_pebbles: int | None = None) -> dict[str, Curve]:
    """Pebbles against T'/T for every method at one n (cached; the arrays are read-only).

    The optima (``treeverse``, ``treeverse-inplace``, ``reversible-optimal``) give the
    fewest pebbles at each T'/T; ``treeverse-paper``, ``bennett`` and ``online`` one
    point per value of their parameter (Algorithm 3's delta, Bennett's k, the online
    budget), as the paper's figure plots them, so one of their points may use as many
    pebbles as another with fewer steps.

    Parameters
    ----------
    n : int
        Number of steps.
    paper_max_n : int
        treeverse_paper and the online scheme are simulated only for n up to
        this (at n = 10^6 one simulation takes seconds per budget); above it
        their curves are empty.
    reversible_max_pebbles : int, optional
        Largest S of the reversible optimum (its tables cost O(n) per S: about
        56 s for n = 10^6 with S <= 32 on a busy two-core machine); default
        ``ceil(log2(n+1)) + max(12, min(200, 10^7 // n))``.

    Returns
    -------
    dict
        name -> (T'/T array, S array), a new dict at each call (the arrays are shared
        between calls, and read-only). Names: ``treeverse``,
        ``treeverse-inplace``, ``treeverse-paper``, ``online``, ``bennett``,
        ``reversible-optimal``, ``paper-treeverse``, ``paper-bennett`` (the
        last two are the paper's continuous approximations).

    Examples
    --------
    >>> import pebbles
    >>> c = pebbles.tradeoff_curves(100)
    >>> x, s = c["treeverse"]
    >>> float(x.min()), int(s.max())  # store-all: 99 steps with 99 states
    (0.99, 99)
    """
    return dict(_curves(*_check_curve_args(n, paper_max_n, reversible_max_pebbles)))


@cache
def _curves(n: int, paper_max_n: int, reversible_max_pebbles: int | None
            ) -> dict[str, Curve]:
    """:func:`tradeoff_curves` of checked arguments, cached (read-only arrays: every
    caller gets the same ones, in a copy of this dict)."""
    lg = min_pebbles(n, "reversible")
    s_max = reversible_max_pebbles or lg + max(12, min(200, 10**7 // n))
    empty = (np.array([]), np.array([]))
    bennett = _bennett(n)
    curves = {  # treeverse exact where memory_ratio compares it with Bennett
        "treeverse": _exact_at(n, "checkpoint", _treeverse(n, "checkpoint"), bennett[0]),
        "treeverse-inplace": _treeverse(n, "inplace"),
        "treeverse-paper": _treeverse_paper(n) if n <= paper_max_n else empty,
        "online": _online(n) if n <= paper_max_n else empty,
        "bennett": bennett,
        "reversible-optimal": _reversible(n, s_max),
        "paper-treeverse": _paper_treeverse(n),
        "paper-bennett": _paper_bennett(n),
    }
    for arrays in curves.values():
        for a in arrays:
            a.setflags(write=False)
    return curves


def _check_curve_args(n: object, paper_max_n: object,
                      reversible_max_pebbles: object) -> tuple[int, int, int | None]:
    """The arguments of :func:`tradeoff_curves`, checked."""
    n = check_int("n", n, 1)
    if n < 2:
        raise PebblesValueError(
            f"n={n} has no trade-off: one step is reversed with no stored state and no "
            f"forward step; pass n=2 or more")
    paper_max_n = check_int("paper_max_n", paper_max_n, 1)
    if reversible_max_pebbles is not None:
        reversible_max_pebbles = check_int("reversible_max_pebbles", reversible_max_pebbles, 1)
    return n, paper_max_n, reversible_max_pebbles


def memory_ratio(curves: dict[str, Curve]) -> tuple[Curve, Curve]:
    """Bennett memory / Treeverse memory at equal T'/T: exact and paper's approximation.

    Exact: for each Bennett point (x, S_B) the fewest treeverse pebbles with
    T'/T <= x (:func:`tradeoff_curves` adds that exact point to the sampled
    treeverse curve, so the ratio is exact). Approximation: the dashed curves,
    interpolated in log-log.

    Parameters
    ----------
    curves : dict
        name -> (T'/T array, S array), as :func:`tradeoff_curves` returns; the keys
        ``treeverse``, ``bennett``, ``paper-treeverse`` and ``paper-bennett`` are read.

    Returns
    -------
    exact : tuple of ndarray
        (T'/T, S_Bennett / S_treeverse) at each Bennett point that some treeverse
        point matches.
    approx : tuple of ndarray
        (T'/T, ratio) of the paper's continuous approximations, at the
        ``paper-bennett`` points inside the ``paper-treeverse`` range (empty arrays
        where that curve is empty).

    Raises
    ------
    PebblesTypeError
        If ``curves`` is not a dict, or one of the four curves read is not a pair of
        arrays.
    PebblesValueError
        If ``curves`` lacks one of the four keys read.

    Examples
    --------
    >>> import pebbles
    >>> (x, ratio), _ = pebbles.memory_ratio(pebbles.tradeoff_curves(100))
    >>> float(x[0]), round(float(ratio[0]), 3)  # Bennett at T'/T = 1.49: 51 vs 49 states
    (1.49, 1.041)
    """
    _check_curves(curves)
    tx, ts = curves["treeverse"]
    bx, bs = curves["bennett"]
    xs, rs = [], []
    for x, s in zip(bx, bs, strict=True):
        fit = ts[tx <= x * (1 + 1e-12)]
        if fit.size:
            xs.append(x)
            rs.append(s / fit.min())
    px, ps = curves["paper-treeverse"]
    qx, qs = curves["paper-bennett"]
    if not px.size:  # no continuous Treeverse curve to compare with
        return (np.array(xs), np.array(rs)), (np.array([]), np.array([]))
    order = np.argsort(px)
    inside = (qx >= px.min()) & (qx <= px.max())
    approx = np.exp(np.interp(np.log(qx[inside]), np.log(px[order]), np.log(ps[order])))
    return (np.array(xs), np.array(rs)), (qx[inside], qs[inside] / approx)


_RATIO_KEYS = ("treeverse", "bennett", "paper-treeverse", "paper-bennett")


def _check_curves(curves: object) -> None:
    """Refuse ``curves`` of :func:`memory_ratio` unless it has the four curves read."""
    fix = "pass pebbles.tradeoff_curves(n)"
    if not isinstance(curves, Mapping):
        raise PebblesTypeError(f"curves={curves!r:.60} must be the dict of "
                               f"pebbles.tradeoff_curves, got {a_kind(curves)}; {fix}")
    missing = [k for k in _RATIO_KEYS if k not in curves]
    if missing:
        raise PebblesValueError(f"curves lacks the key(s) {', '.join(map(repr, missing))}: "
                                f"it must be the dict of pebbles.tradeoff_curves; {fix}")
    for key in _RATIO_KEYS:
        pair = curves[key]
        if not (isinstance(pair, tuple) and len(pair) == 2
                and all(isinstance(a, np.ndarray) for a in pair)):
            raise PebblesTypeError(f"curves[{key!r}]={pair!r:.60} must be a pair of arrays "
                                   f"(T'/T, S); {fix}")


def _ints(name: str, values: object, least: int) -> list[int]:
    """``values`` as a list of ints ``>= least``, each checked by name and index."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise PebblesTypeError(f"{name}={values!r} must be a sequence of ints, e.g. "
                               f"{name}=(10, 20)")
    return [check_int(f"{name}[{k}]", v, least) for k, v in enumerate(values)]


def online_overhead(ns: tuple[int, ...], budgets: tuple[int, ...] = (10, 20, 40), *,
                    inplace: bool = False) -> dict[int, np.ndarray]:
    """Forward steps of the online scheme over the offline optimum, minus one, for each n.

    Parameters
    ----------
    ns : tuple of int
        Numbers of steps at which the run stops.
    budgets : tuple of int
        Budgets S, one curve each.
    inplace : bool
        The in-place game (else the checkpoint game).

    Returns
    -------
    dict
        S -> array over ``ns`` of ``online / optimum - 1`` (0: optimal), measured by
        :func:`pebbles.simulate` of :func:`pebbles.online`; NaN where S cannot finish n
        steps (S below :func:`pebbles.min_pebbles`, e.g. S = 1 in the checkpoint game).

    Examples
    --------
    >>> import pebbles
    >>> over = pebbles.online_overhead((10, 20, 100), budgets=(5,))
    >>> over[5][:2].tolist(), bool(over[5][2] > 0)  # exact up to (S+1)(S+2)/2 - 1 = 20
    ([0.0, 0.0], True)
    """
    game = "inplace" if check_bool("inplace", inplace) else "checkpoint"
    ns, budgets = _ints("ns", ns, 1), _ints("budgets", budgets, 0)
    out = {}
    for s in budgets:
        row = []
        for n in ns:
            if s < min_pebbles(n, game):
                row.append(np.nan)
                continue
            steps = simulate(online(n, s, inplace=inplace), n, game, s).forward_steps
            best = min_forward_steps(n, s, game)
            row.append(steps / best - 1 if best else 0.0)
        out[s] = np.array(row)
    return out
