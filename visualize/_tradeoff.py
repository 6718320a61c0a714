"""Drawing memory against time overhead (Liu & Xu, Figure 8, extended with exact optima).

The numbers are :func:`pebbles.tradeoff_curves`'s; this module only draws them.

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

from collections.abc import Iterable
from math import log
from numbers import Integral

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogFormatter

from pebbles import TRADEOFF_S_CAP as S_CAP
from pebbles import (
    X_MAX,
    PebblesTypeError,
    PebblesValueError,
    memory_ratio,
    online_overhead,
    online_r2_range,
    tradeoff_curves,
)

from ._game import _new_figure
from ._overhead import check_overhead_work, first_unfinished

__all__ = ["X_MAX", "draw_online_overhead", "draw_tradeoff", "tradeoff_curves"]

Curve = tuple[np.ndarray, np.ndarray]

_STYLE = {  # name: (label, colour, marker, linestyle)
    "treeverse": ("treeverse (optimal, checkpoint game)", "#1f77b4", "o", "-"),
    "treeverse-inplace": ("treeverse (optimal, in-place game)", "#17becf", "", "-"),
    "treeverse-paper": ("treeverse_paper (Algorithm 3, simulated)", "#2ca02c", "s", ""),
    "online": ("online (n unknown, simulated)", "#9467bd", "d", "-"),
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
        order = np.argsort(x, kind="stable")  # a staircase runs along increasing T'/T:
        x, s = x[order], s[order]  # from each point, its S holds until the next one
        step = "post" if ls == "-" and name != "bennett" else None
        ax.plot(x, s, color=colour, marker=marker, ls=ls or "none", ms=3, lw=1.3,
                drawstyle=f"steps-{step}" if step else "default", label=label,
                alpha=0.85 if ls == "--" else 1.0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _set_xlim(ax, [x for x, _ in curves.values()])
    ax.set_title(f"n = {_exponent(n)}", fontsize=10)
    if n > paper_max_n:
        ax.text(0.97, 0.97, f"treeverse_paper and online\nnot simulated (n > {paper_max_n};"
                "\nseconds per point at n = $10^6$)", transform=ax.transAxes, ha="right",
                va="top", fontsize=6.5, color="#555", gid="not-simulated")
    ax.set_xlabel("time overhead $T'/T$ = forward steps / n", fontsize=8)
    ax.grid(True, which="major", color="#e6e6e6", lw=0.6)
    ax.tick_params(labelsize=7)


def _set_xlim(ax: Axes, xs: list[np.ndarray]) -> None:
    """T'/T from 0.9 to :data:`X_MAX`, further left where a point lies there: at n < 10 the
    store-all end of a curve, T'/T = (n - 1) / n, is below 0.9."""
    least = min((float(np.min(x)) for x in xs if len(x)), default=1.0)
    ax.set_xlim(min(0.9, 0.8 * least), X_MAX)  # a marker at the least T'/T shows whole
    low, high = ax.get_ylim()
    if high < 100 * low:  # a short memory axis: 1, 2, 10, not 2 x 10^0
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(1, 0.5)))


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
    _set_xlim(ax, [x for curves in all_curves for x, _ in curves.values()])
    ax.set_xlabel("time overhead $T'/T$ = forward steps / n", fontsize=8)
    ax.set_ylabel("Bennett pebbles / treeverse pebbles\n(at equal $T'/T$)", fontsize=8)
    ax.set_title("memory ratio (Figure 8 of the paper)", fontsize=10)
    ax.grid(True, color="#e6e6e6", lw=0.6)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)


def draw_tradeoff(ns: int | tuple[int, ...] = (100, 10**4, 10**6), *, paper_max_n: int = 10**4,
                  reversible_max_pebbles: int | None = None) -> Figure:
    """Minimum memory against time overhead, one panel per n, and the memory ratio.

    The paper's Figure 8 (memory of Bennett over memory of Treeverse at equal
    time overhead for n = 10^2, 10^4, 10^6), extended: the top panels show the
    exact minimum pebbles of each method against ``T'/T = forward steps / n``
    (see :func:`tradeoff_curves`), with the paper's continuous approximations
    dashed; the bottom panel is the ratio, exact (solid) and approximate (dashed).

    Parameters
    ----------
    ns : int or tuple of int
        The numbers of steps, one panel each, in the order given (a repeat is drawn
        once; the curves are cached).
    paper_max_n, reversible_max_pebbles
        Passed to :func:`tradeoff_curves`; a panel of n > ``paper_max_n`` has no
        treeverse_paper and no online curve, and a note says so.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import visualize
    >>> fig = visualize.draw_tradeoff((100, 200))
    >>> len(fig.axes)  # two panels, the ratio and the legend
    4
    >>> plt.close(fig)
    """
    drawn = {}  # one panel per distinct n, in the order given
    for n in _nonempty("ns", ns):
        curves_n = tradeoff_curves(n, paper_max_n=paper_max_n,  # checks n
                                   reversible_max_pebbles=reversible_max_pebbles)
        drawn.setdefault(int(n), curves_n)
    ns, curves = tuple(drawn), list(drawn.values())
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
    axes["legend"].text(0.5, 0.0, f"treeverse counted up to S = min(n - 1, {S_CAP});\n"
                        "reversible optimum up to S = ceil(log2(n+1))\n+ max(12, min(200, "
                        "10^7/n)); reversible counts: forward run to cell n",
                        transform=axes["legend"].transAxes, ha="center", va="bottom",
                        fontsize=6.5, color="#555")
    _ratio_panel(axes["ratio"], ns, curves)
    fig.suptitle("Fewest pebbles at a given time overhead (Liu & Xu, Figure 8, extended with "
                 "exact optima)", fontsize=11)
    return fig


def _nonempty(name: str, values: int | Iterable[int], example: str = "(100, 1000)"
              ) -> tuple[int, ...]:
    """``values`` as a tuple (one int: a tuple of it); raise when there are none (the
    library checks each value)."""
    if isinstance(values, Integral) and not isinstance(values, bool):
        values = (values,)
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise PebblesTypeError(f"{name}={values!r} must be a sequence of integers, got "
                               f"{type(values).__name__}; pass e.g. {name}={example}")
    out = tuple(values)
    if not out:
        raise PebblesValueError(f"{name}=() is empty; pass at least one value, e.g. "
                                f"{name}={example}")
    return out


def draw_online_overhead(ns: int | Iterable[int], budgets: int | Iterable[int] = (10, 20, 40)
                         ) -> Figure:
    """The online scheme's forward steps over the offline optimum against n.

    One line per budget S and game (the numbers of :func:`pebbles.online_overhead`),
    solid for the checkpoint game, dashed for the in-place game; the dotted
    verticals mark the end of the optimal range in the checkpoint game,
    (S+1)(S+2)/2 - 1 steps (:func:`pebbles.online_r2_range`; the in-place
    game's ends one step later). A budget that cannot finish some n (S = 1 in the
    checkpoint game past n = 2) has no points there, and its legend entry says from
    which n on (:func:`pebbles.min_pebbles`, whichever n are sampled).

    Parameters
    ----------
    ns : int or sequence of int
        The numbers of steps (drawn in increasing order, each once), at most
        ``MAX_OVERHEAD_N`` (10^5).
    budgets : int or sequence of int
        The budgets S >= 0, one colour each (any number of them; repeats drawn once).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    PebblesValueError
        Before anything is simulated, if the online streams would take more than
        ``MAX_OVERHEAD_STEPS`` (2e8) forward steps' work, about two minutes (a small
        S costs about n^2 / S steps, and each stream about 64 n more), or if an n
        exceeds ``MAX_OVERHEAD_N`` (``pebbles tradeoff --online-overhead`` applies the
        same limits).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import visualize
    >>> fig = visualize.draw_online_overhead((10, 20, 50), budgets=(3, 5))
    >>> fig.axes[0].get_title()
    'Online checkpointing against the offline optimum'
    >>> plt.close(fig)
    """
    ns, budgets = _nonempty("ns", ns), _nonempty("budgets", budgets, "(10, 20, 40)")
    online_overhead(ns, ())  # the library's checks of ns and budgets: nothing simulated
    online_overhead((), budgets)
    ns, budgets = tuple(sorted(set(ns))), tuple(dict.fromkeys(budgets))
    check_overhead_work(ns, budgets)
    many, ncol = len(budgets) > 8, 1 + (2 * len(budgets) - 1) // 16  # legend: 16 rows
    fig = _new_figure(7.0 + 1.8 * ncol * many, 4.2)  # a wide legend goes beside the axes
    ax = fig.add_subplot()
    x = np.array(ns, dtype=float)
    over = {inplace: online_overhead(ns, budgets, inplace=inplace)
            for inplace in (False, True)}
    for s, colour in zip(budgets, _colours(len(budgets)), strict=True):
        for inplace, style in ((False, "-"), (True, "--")):
            y = over[inplace][s] * 100
            game = "in-place" if inplace else "checkpoint"
            first = first_unfinished(s, "inplace" if inplace else "checkpoint", ns[-1])
            note = f" (cannot finish n >= {first})" if first is not None else ""
            ax.plot(x, y, style, color=colour, marker="o" if not inplace else "",
                    markersize=3, label=f"S = {s}, {game} game{note}",
                    gid=f"online-{s}-{game}")
        ax.axvline(online_r2_range(s), color=colour, linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    _plain_ticks(ax)
    ax.set_xlabel("n (steps when the run stops)")
    ax.set_ylabel("online forward steps over the optimum (%)")
    ax.set_title("Online checkpointing against the offline optimum", fontsize=10)
    ax.legend(fontsize=7, frameon=False, ncol=ncol,
              loc="upper left" if many else "best", bbox_to_anchor=(1.01, 1) if many else None)
    ax.grid(True, alpha=0.3)
    return fig


def _plain_ticks(ax: Axes) -> None:
    """Label a log x axis spanning less than a decade in plain numbers (2, 3, 5), not
    2x10^0, 3x10^0."""
    lo, hi = ax.get_xlim()
    if hi < 10 * lo:
        for set_formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
            set_formatter(FormatStrFormatter("%g"))


def _colours(k: int) -> list:
    """``k`` distinct colours: five fixed ones, or a colormap sampled for more."""
    fixed = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    if k <= len(fixed):
        return fixed[:k]
    return list(matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, k)))
