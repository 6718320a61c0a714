"""Memory against time overhead (Liu & Xu, Figure 8, extended with exact optima).

For a number of steps n, each curve gives the fewest pebbles S (states held
besides s_0) with which a method finishes at time overhead
``T'/T = forward steps / n``. Exact counts come from the library:

* treeverse, both checkpoint games -- :func:`pebbles.min_forward_steps`;
* reversible optimum -- the tables behind :func:`pebbles.min_forward_steps`
  (game ``'reversible'``), built once for all S;
* Bennett -- :func:`pebbles.bennett_steps` and :func:`pebbles.bennett_pebbles`
  without the top-level uncompute, over k (the paper's T = (2k-1)^l);
* treeverse_paper -- :func:`pebbles.simulate` of Algorithm 3 over delta.

Reversible-game counts are those of the forward run (reaching cell n), as in the
paper. The paper's continuous approximations are drawn dashed: Treeverse
``T'/T ~ tau, S = delta + 1`` with ``C(tau + delta, delta) = n``; Bennett
``n = k^l, T = (2k-1)^l, S = l(k-1) + 1``.
"""

from __future__ import annotations

from functools import cache
from math import lgamma, log

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import pebbles
from pebbles._reversible import ReversibleTables

from ._game import _new_figure

__all__ = ["draw_tradeoff", "tradeoff_curves", "X_MAX"]

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
    lo = pebbles.min_pebbles(n, game)
    xs, ys = [], []
    for s in reversed(_budgets(max(lo, 1), max(lo, min(n - 1, S_CAP)))):
        if game == "checkpoint" and s == 2 and n > 5000:
            break  # T'/T ~ n/4 > X_MAX, and slow to count
        x = pebbles.min_forward_steps(n, s, game) / n
        if x > X_MAX:
            break
        xs.append(x)
        ys.append(s)
    return np.array(xs[::-1]), np.array(ys[::-1])


def _reversible(n: int, s_max: int) -> Curve:
    """Exact reversible optimum for S = ceil(log2(n+1)) .. s_max, one table build."""
    lo = pebbles.min_pebbles(n, "reversible")
    hi = max(lo, min(n, s_max))
    tables = ReversibleTables.build(n, hi)
    ss = np.arange(lo, hi + 1)
    return np.array([tables.reach[s](n) / n for s in ss]), ss


def _bennett(n: int) -> Curve:
    """Bennett over k (no top-level uncompute): every k <= 12, then geometric."""
    ks = sorted({k for k in range(2, 13)} | {int(1.7 ** i) for i in range(5, 60)})
    ks = [k for k in ks if k <= n]
    pts = {(pebbles.bennett_steps(n, k, uncompute=False) / n,
            pebbles.bennett_pebbles(n, k, uncompute=False)) for k in ks}
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
        if pebbles.paper_tau(n, delta) > X_MAX:
            continue
        r = pebbles.simulate(pebbles.treeverse_paper(n, delta), n)
        xs.append(r.forward_steps / n)
        ys.append(r.peak_pebbles)
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


@cache
def tradeoff_curves(n: int, *, paper_max_n: int = 10**4,
                    reversible_max_pebbles: int | None = None) -> dict[str, Curve]:
    """Minimum pebbles against T'/T for every method at one n (cached).

    Parameters
    ----------
    n : int
        Number of steps.
    paper_max_n : int
        treeverse_paper is simulated only for n up to this (at n = 10^6 one
        simulation takes about 8 s per delta); above it the curve is empty.
    reversible_max_pebbles : int, optional
        Largest S of the reversible optimum (its tables cost O(n) per S: about
        56 s for n = 10^6 with S <= 32 on a busy two-core machine, so this cap
        stays); default ``ceil(log2(n+1)) + max(12, min(200, 10^7 // n))``.

    Returns
    -------
    dict
        name -> (T'/T array, S array). Names: ``treeverse``,
        ``treeverse-inplace``, ``treeverse-paper``, ``bennett``,
        ``reversible-optimal``, ``paper-treeverse``, ``paper-bennett`` (the
        last two are the paper's continuous approximations).
    """
    lg = pebbles.min_pebbles(n, "reversible")
    s_max = reversible_max_pebbles or lg + max(12, min(200, 10**7 // n))
    empty = (np.array([]), np.array([]))
    return {
        "treeverse": _treeverse(n, "checkpoint"),
        "treeverse-inplace": _treeverse(n, "inplace"),
        "treeverse-paper": _treeverse_paper(n) if n <= paper_max_n else empty,
        "bennett": _bennett(n),
        "reversible-optimal": _reversible(n, s_max),
        "paper-treeverse": _paper_treeverse(n),
        "paper-bennett": _paper_bennett(n),
    }


def memory_ratio(curves: dict[str, Curve]) -> tuple[Curve, Curve]:
    """Bennett memory / Treeverse memory at equal T'/T: exact and paper's approximation.

    Exact: for each Bennett point (x, S_B) the fewest treeverse pebbles with
    T'/T <= x. Approximation: the dashed curves, interpolated in log-log.
    """
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
    order = np.argsort(px)
    inside = (qx >= px.min()) & (qx <= px.max()) if px.size else qx < 0
    approx = np.exp(np.interp(np.log(qx[inside]), np.log(px[order]), np.log(ps[order])))
    return (np.array(xs), np.array(rs)), (qx[inside], qs[inside] / approx)


_STYLE = {  # name: (label, colour, marker, linestyle)
    "treeverse": ("treeverse (optimal, checkpoint game)", "#1f77b4", "o", "-"),
    "treeverse-inplace": ("treeverse (optimal, in-place game)", "#17becf", "", "-"),
    "treeverse-paper": ("treeverse_paper (Algorithm 3, simulated)", "#2ca02c", "s", ""),
    "bennett": ("bennett (Algorithm 2, over k)", "#d62728", "^", "-"),
    "reversible-optimal": ("reversible optimum", "#ff7f0e", "", "-"),
    "paper-treeverse": ("paper: Treeverse, $T'/T\\approx\\tau$, $S=\\delta+1$", "#1f77b4", "",
                        "--"),
    "paper-bennett": ("paper: Bennett, $T'/T=((2k-1)/k)^l$, $S=l(k-1)+1$", "#d62728", "",
                      "--"),
}


def _exponent(n: int) -> str:
    e = round(log(n, 10))
    return f"$10^{{{e}}}$" if 10**e == n else str(n)


def _panel(ax: Axes, n: int, curves: dict[str, Curve], paper_max_n: int) -> None:
    for name, (label, colour, marker, ls) in _STYLE.items():
        x, s = curves[name]
        step = "post" if ls == "-" and name != "bennett" else None
        ax.plot(x, s, color=colour, marker=marker, ls=ls or "none", ms=3, lw=1.3,
                drawstyle=f"steps-{step}" if step else "default", label=label,
                alpha=0.85 if ls == "--" else 1.0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.9, X_MAX)
    ax.set_title(f"n = {_exponent(n)}", fontsize=10)
    if n > paper_max_n:
        ax.text(0.97, 0.97, f"treeverse_paper not simulated\n(n > {paper_max_n}; about 8 s\n"
                "per delta at n = $10^6$)", transform=ax.transAxes, ha="right", va="top",
                fontsize=6.5, color=_STYLE["treeverse-paper"][1])
    ax.set_xlabel("time overhead $T'/T$ = forward steps / n", fontsize=8)
    ax.grid(True, which="major", color="#e6e6e6", lw=0.6)
    ax.tick_params(labelsize=7)


def _ratio_panel(ax: Axes, ns: tuple[int, ...], all_curves: list[dict[str, Curve]]) -> None:
    colours = ["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#c44e52"]
    for i, (n, curves) in enumerate(zip(ns, all_curves, strict=True)):
        (ex, er), (ax_, ar) = memory_ratio(curves)
        c = colours[i % len(colours)]
        ax.plot(ex, er, color=c, marker="o", ms=3.5, lw=1.3, label=f"n = {_exponent(n)}")
        ax.plot(ax_, ar, color=c, ls="--", lw=1.1, alpha=0.8)
    ax.plot([], [], color="grey", ls="--", label="paper's approximations")
    ax.axhline(1, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.9, X_MAX)
    ax.set_xlabel("time overhead $T'/T$ = forward steps / n", fontsize=8)
    ax.set_ylabel("Bennett pebbles / treeverse pebbles\n(at equal $T'/T$)", fontsize=8)
    ax.set_title("memory ratio (Figure 8 of the paper)", fontsize=10)
    ax.grid(True, color="#e6e6e6", lw=0.6)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)


def draw_tradeoff(ns: tuple[int, ...] = (100, 10**4, 10**6), *, paper_max_n: int = 10**4,
                  reversible_max_pebbles: int | None = None) -> Figure:
    """Minimum memory against time overhead, one panel per n, and the memory ratio.

    The paper's Figure 8 (memory of Bennett over memory of Treeverse at equal
    time overhead for n = 10^2, 10^4, 10^6), extended: the top panels show the
    exact minimum pebbles of each method against ``T'/T = forward steps / n``
    (see :func:`tradeoff_curves`), with the paper's continuous approximations
    dashed; the bottom panel is the ratio, exact (solid) and approximate (dashed).

    Parameters
    ----------
    ns : tuple of int
        The numbers of steps; n = 10^6 takes about a minute (cached afterwards).
    paper_max_n, reversible_max_pebbles
        Passed to :func:`tradeoff_curves`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    ns = tuple(ns)
    curves = [tradeoff_curves(n, paper_max_n=paper_max_n,
                              reversible_max_pebbles=reversible_max_pebbles) for n in ns]
    fig = _new_figure(3.6 * max(len(ns), 2) + 0.8, 7.6)
    top = [f"n{i}" for i in range(len(ns))] if len(ns) > 1 else ["n0", "n0"]
    bottom = ["ratio"] * (len(top) - 1) + ["legend"]
    axes = fig.subplot_mosaic([top, bottom], height_ratios=[1.25, 1])
    for i, (n, c) in enumerate(zip(ns, curves, strict=True)):
        _panel(axes[f"n{i}"], n, c, paper_max_n)
    axes["n0"].set_ylabel("memory: fewest pebbles S\n(states besides $s_0$)", fontsize=8)
    handles, labels = axes["n0"].get_legend_handles_labels()
    axes["legend"].axis("off")
    axes["legend"].legend(handles, labels, fontsize=7, frameon=False, loc="center",
                          title="exact counts (solid, markers); paper (dashed)",
                          title_fontsize=7)
    axes["legend"].text(0.5, 0.02, f"treeverse counted up to S = min(n - 1, {S_CAP}); "
                        "reversible optimum up to S = ceil(log2(n+1))\n+ max(12, min(200, "
                        "10^7/n)); "
                        "reversible counts: forward run to cell n",
                        transform=axes["legend"].transAxes, ha="center", va="bottom",
                        fontsize=6.5, color="#555")
    _ratio_panel(axes["ratio"], ns, curves)
    fig.suptitle("Fewest pebbles at a given time overhead (Liu & Xu, Figure 8, extended with "
                 "exact optima)", fontsize=11)
    return fig
