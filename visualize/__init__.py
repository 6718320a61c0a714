"""Drawing pebble games and trade-off plots (matplotlib, Agg, no pyplot state).

* :func:`draw_game` -- a schedule as a pebble-game diagram (Liu & Xu, Figure 7);
* :func:`draw_fingerprint` -- the compact rasterised view for large schedules;
* :func:`draw_side_by_side` -- several schedules of one n on a common step scale;
* :func:`draw_tradeoff` -- minimum memory against time overhead T'/T for
  Treeverse, Bennett and the exact optima (Figure 8, extended);
* :func:`draw_lorenz_figure3`, :func:`draw_lorenz_figure4` -- the Lorenz
  sensitivity map and trajectories (Figure 3) and the adjoint-state error
  (Figure 4);
* :func:`draw_pml_snapshots`, :func:`draw_pml_gradient` -- PML wavefields with
  the shot gather, and dL/dc;
* :func:`draw_figure5` -- measured time against peak memory, from the PML
  benchmark's records (Figure 5);
* :func:`save` -- write a figure, format from the file extension.

:mod:`visualize.cli` holds the argument hooks of ``pebbles draw`` and
``pebbles tradeoff``; ``python -m visualize lorenz-fig3|lorenz-fig4|pml|fig5``
draws the solver figures. The data come from :mod:`solvers.experiments`; this
package only draws. Importing it is cheap: matplotlib is imported
only when a drawing function is first looked up.

Examples
--------
>>> import pebbles, visualize
>>> fig = visualize.draw_game(pebbles.treeverse_paper(20, 3), 20, title="treeverse-paper")
>>> path = visualize.save(fig, "figure7a.png")  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "CODES", "MAX_CELLS", "MAX_ROWS", "draw_figure5", "draw_fingerprint", "draw_game",
    "draw_lorenz_figure3", "draw_lorenz_figure4", "draw_pml_gradient", "draw_pml_snapshots",
    "draw_online_overhead", "draw_side_by_side", "draw_tradeoff", "fingerprint_array", "save",
    "trace_rows", "tradeoff_curves",
]

_WHERE = {
    "draw_game": "visualize._game", "draw_fingerprint": "visualize._game",
    "draw_side_by_side": "visualize._game", "save": "visualize._game",
    "MAX_CELLS": "visualize._rows", "MAX_ROWS": "visualize._rows",
    "trace_rows": "visualize._rows", "fingerprint_array": "visualize._rows",
    "CODES": "visualize._rows",
    "draw_tradeoff": "visualize._tradeoff", "draw_online_overhead": "visualize._tradeoff",
    "tradeoff_curves": "pebbles",
    "draw_lorenz_figure3": "visualize._lorenz_figs",
    "draw_lorenz_figure4": "visualize._lorenz_figs",
    "draw_pml_snapshots": "visualize._pml_figs", "draw_pml_gradient": "visualize._pml_figs",
    "draw_figure5": "visualize._fig5",
}
#: The modules of :data:`_WHERE` that need no matplotlib (numbers, not drawings).
_PLAIN = frozenset({"visualize._rows", "pebbles"})


def __getattr__(name: str) -> Any:
    """Import drawing functions (and matplotlib) on first use."""
    if name not in _WHERE:
        raise AttributeError(f"module 'visualize' has no attribute {name!r}")
    if _WHERE[name] not in _PLAIN:  # the others draw: a missing matplotlib names its extra
        from .cli import matplotlib_required

        matplotlib_required()
    value = getattr(import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
