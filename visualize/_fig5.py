"""Measured time against peak memory for Treeverse and Bennett (Liu & Xu, Figure 5).

The paper's Figure 5 plots, for the 1000 x 1000 PML gradient on a V100, the
run time of Treeverse (delta = 5 ... 320 checkpoints) and of Bennett
(k = 5 ... 160) against the states they keep. :func:`draw_figure5` draws the
same from measurement records (one dict per run, with ``schedule`` such as
``"treeverse S=10"``, ``"treeverse in-place S=10"`` or ``"bennett k=3"``,
``seconds``, ``peak_states`` and optionally ``model_seconds``, ``peak_mb``,
``n`` and ``size``; ``python benchmarks/bench_pml.py --fig5 --json OUT`` writes
them under ``["fig5"]["records"]``, and ``python benchmarks/report.py
--figure5 PNG`` or ``python -m visualize fig5 OUT -o PNG`` read that file):
one line per family, each point labelled with its S or k, the step-count model
dashed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from pebbles import PebblesTypeError, PebblesValueError

from ._game import _new_figure, check_title

__all__ = ["draw_figure5", "fig5_families"]

_REQUIRED = ("schedule", "seconds", "peak_states")
_COLOURS = {"treeverse": "#1f77b4", "treeverse in-place": "#17becf", "bennett": "#d62728"}
_X = {"peak_states": "peak states held (stored + working)",
      "peak_mb": "peak memory traced (MB)"}
_FIX = ("records come from `python benchmarks/bench_pml.py --fig5 --json OUT`, run in a "
        "source checkout of pebbles (the benchmarks are not installed)")


def _checked(records: Iterable[Mapping[str, Any]], where: str) -> list[dict[str, Any]]:
    # not iterable at all (None, 3): a type error; a str or dict is iterable, of the
    # wrong items (characters, keys): a value error
    error = PebblesValueError if isinstance(records, Iterable) else PebblesTypeError
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise error(f"{where} must be a sequence of dicts (one a run), got "
                    f"{type(records).__name__}; {_FIX}")
    records = list(records)  # once: a generator is read a single time
    bad = next((i for i, r in enumerate(records) if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise PebblesTypeError(f"{where} must be a sequence of dicts (one a run); record "
                               f"{bad} is a {type(records[bad]).__name__}; {_FIX}")
    records = [dict(r) for r in records]
    if not records:
        raise PebblesValueError(f"{where} is empty; a Figure 5 needs at least one record; "
                                f"{_FIX}")
    for i, r in enumerate(records):
        missing = [k for k in _REQUIRED if k not in r]
        if missing:
            raise PebblesValueError(f"record {i} in {where} lacks keys {missing} (every record "
                                    f"needs {list(_REQUIRED)}); {_FIX}")
        for key in ("seconds", "measured_seconds", "peak_states", "model_seconds"):
            if key in r and not _positive(r[key]):
                raise PebblesValueError(f"record {i} in {where} has {key}={r[key]!r}; the axes "
                                        f"are logarithmic, so it must be a finite number > 0")
    return records


def _positive(value: Any) -> bool:
    """True for a finite real number > 0 (not a bool)."""
    return (isinstance(value, Real) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def fig5_families(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group records by schedule family: ``"treeverse in-place S=10"`` -> ``"treeverse in-place"``.

    The last word of ``schedule`` (``S=10``, ``k=3``) is the point's label and
    is stored as ``param``; each family is sorted by that number (S or k).
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        family, _, param = str(r["schedule"]).rpartition(" ")
        out.setdefault(family or param, []).append({**r, "param": param if family else ""})
    for rs in out.values():
        rs.sort(key=lambda r: (_number(r["param"]), r["peak_states"]))
    return out


def _number(param: str) -> float:
    """The value of ``'S=10'`` (10.0); ``inf`` when there is none."""
    try:
        return float(param.partition("=")[2])
    except ValueError:
        return float("inf")


def _panel(ax: Axes, families: dict[str, list[dict[str, Any]]], key: str, model: bool) -> None:
    """One line per family (points labelled S or k), the model dashed where every record
    of the family has ``model_seconds``; the legend's model entry only when one is drawn."""
    extra = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    for i, (family, rs) in enumerate(families.items()):
        colour = _COLOURS.get(family, extra[i % len(extra)])
        x = np.array([r[key] for r in rs], dtype=float)
        # measured_seconds is on the same clock as model_seconds (wall or CPU time)
        y = np.array([r.get("measured_seconds", r["seconds"]) for r in rs], dtype=float)
        ax.plot(x, y, color=colour, marker="o", ms=4, lw=1.3, label=family, gid="measured")
        for r, xi, yi in zip(rs, x, y, strict=True):
            ax.annotate(r["param"], (xi, yi), xytext=(3, 3), textcoords="offset points",
                        fontsize=6.5, color=colour)
        if model and all("model_seconds" in r for r in rs):
            ax.plot(x, [r["model_seconds"] for r in rs], color=colour, ls="--", lw=0.9,
                    alpha=0.8, gid="model", marker="x" if len(rs) == 1 else None, ms=4)
    if any(line.get_gid() == "model" for line in ax.lines):
        ax.plot([], [], color="grey", ls="--", lw=0.9,
                label="model: fwd steps x t_fwd + n x t_bwd")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.autoscale_view()
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        narrow = hi < 4 * lo  # less than a few minor ticks: label them all
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}") if narrow
                                 else FuncFormatter(_minor_label))
    ax.set_xlabel(_X.get(key, key), fontsize=8)
    ax.grid(True, which="both", color="#eeeeee", lw=0.5)
    ax.tick_params(which="both", labelsize=7)


def _minor_label(value: float, _pos: int) -> str:
    """Label the minor log ticks 2 and 5 of each decade (``'0.2'``, ``'50'``), no others."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
    return f"{value:g}" if mantissa in (2.0, 5.0) else ""


def draw_figure5(records: Iterable[Mapping[str, Any]], *, model: bool = True,
                 title: str | None = None) -> Figure:
    """Paper Figure 5: measured gradient time against peak memory, per schedule family.

    Parameters
    ----------
    records : iterable of dict
        One dict a run (``["fig5"]["records"]`` of the benchmark JSON).
    model : bool
        Draw the step-count model ``model_seconds`` dashed, for each family
        whose records all have it (the legend lists the model only then).
    title : str, optional
        Figure title; ``None``: from the grid size and n of the records, ``""``: no
        title. Its ``$...$`` is checked as mathtext (:func:`visualize.check_title`).

    Returns
    -------
    matplotlib.figure.Figure
        Left: time against peak states; right (when every record has a
        ``peak_mb`` > 0): time against the traced peak memory in MB.

    Raises
    ------
    PebblesTypeError
        If ``records`` is not iterable (None, a number), an item is not a dict, or
        ``model`` is not True or False.
    PebblesValueError
        If ``records`` is a string or a single dict, or empty, a record lacks
        ``schedule``, ``seconds`` or ``peak_states``, or a value drawn on a log axis
        is not a finite number > 0.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import visualize
    >>> records = [{"schedule": "treeverse S=5", "seconds": 9.0, "peak_states": 6},
    ...            {"schedule": "treeverse S=10", "seconds": 6.0, "peak_states": 11},
    ...            {"schedule": "bennett k=2", "seconds": 60.0, "peak_states": 12}]
    >>> fig = visualize.draw_figure5(records, title="Figure 5")
    >>> len(fig.axes)  # no peak_mb: the peak-states panel only
    1
    >>> plt.close(fig)
    """
    check_title(title)
    if not isinstance(model, (bool, np.bool_)):
        raise PebblesTypeError(f"model={model!r:.60} must be True or False (draw the step-count "
                               f"model); pass model=True or model=False")
    records = _checked(records, "records")
    families = fig5_families(records)
    # RSS differences can be <= 0 on tiny runs: then no MB panel, as without peak_mb
    keys = ["peak_states"] + (["peak_mb"] if all(_positive(r.get("peak_mb")) for r in records)
                              else [])
    fig = _new_figure(5.0 * len(keys) + 0.5, 4.2)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=True):
        _panel(ax, families, key, model)
    axes[0].set_ylabel("gradient time (s, measured)", fontsize=8)
    axes[0].legend(fontsize=7, frameon=False)
    r0 = records[0]
    size, n = r0.get("size"), r0.get("n")
    default = "PML gradient: time against peak memory (Liu & Xu, Figure 5)"
    if size is not None and n is not None:
        default += f", {size} x {size}, n = {n}"
    fig.suptitle(default if title is None else title, fontsize=10)
    return fig
