"""Drawing pebble games and trade-off plots (matplotlib, Agg, no pyplot state).

* :func:`draw_game` -- a schedule as a pebble-game diagram (Liu & Xu, Figure 7);
* :func:`draw_fingerprint` -- the compact rasterised view for large schedules;
* :func:`draw_side_by_side` -- several schedules of one n on a common step scale;
* :func:`draw_tradeoff` -- minimum memory against time overhead T'/T for
  Treeverse, Bennett and the exact optima (Figure 8, extended);
* :func:`save` -- write a figure, format from the file extension.

:mod:`visualize.cli` holds the argument hooks of ``pebbles draw`` and
``pebbles tradeoff``. Importing this package is cheap: matplotlib is imported
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
    "CODES", "MAX_CELLS", "MAX_ROWS", "draw_fingerprint", "draw_game", "draw_side_by_side",
    "draw_tradeoff", "fingerprint_array", "save", "trace_rows", "tradeoff_curves",
]

_WHERE = {
    "draw_game": "_game", "draw_fingerprint": "_game", "draw_side_by_side": "_game",
    "save": "_game", "MAX_CELLS": "_game", "MAX_ROWS": "_game",
    "trace_rows": "_rows", "fingerprint_array": "_rows", "CODES": "_rows",
    "draw_tradeoff": "_tradeoff", "tradeoff_curves": "_tradeoff",
}


def __getattr__(name: str) -> Any:
    """Import drawing functions (and matplotlib) on first use."""
    if name not in _WHERE:
        raise AttributeError(f"module 'visualize' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
