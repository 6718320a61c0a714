"""Pebble-game diagrams (Liu & Xu, Figure 7) and their compact fingerprint view.

Cells run across (0..n), rows go down: row 0 is the starting board and every
further row is one step (``place``, ``move``, ``unplace`` or ``tape``) together with
the free moves (``remove``, ``paint``) that follow it. Markers:

* filled dark circle -- pebble placed in this row (a step);
* open circle -- pebble removed in this row;
* light filled circle -- pebble lying from an earlier row;
* red shading -- painted cells (checkpoint games; darker where painted in this row);
* a gold column -- the end cell n of the reversible game;
* an orange square frame -- a copy of the state on disk (two-level game);
* orange diamond -- pebble loaded from disk in this row (two-level game).

All figures are :class:`matplotlib.figure.Figure` objects drawn with the Agg
canvas; no pyplot global state is touched.
"""

from __future__ import annotations

import os
import shlex
import textwrap
import uuid
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cbook import is_math_text
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.mathtext import MathTextParser
from matplotlib.patches import Patch, Rectangle

from pebbles import Game, Move, PebblesTypeError, PebblesValueError
from pebbles.cli import output_error

from ._rows import (
    CODES,
    MAX_CELLS,
    MAX_ROWS,
    Traced,
    fingerprint_array,
    schedule_defaults,
    trace_fingerprint,
    traced_within,
)
from .cli import MAX_DPI, MIN_DPI, format_error, formats

__all__ = ["draw_game", "draw_fingerprint", "draw_side_by_side", "save", "check_title",
           "MAX_CELLS", "MAX_ROWS", "MAX_DPI", "MIN_DPI", "GIDS"]


#: gid of each marker collection (tests count their offsets).
GIDS = {"placed": "pebbles-placed", "removed": "pebbles-removed",
        "kept": "pebbles-kept", "input": "pebbles-input", "on_disk": "pebbles-disk",
        "loaded": "pebbles-loaded"}

DARK, LIGHT, PAINT, PAINT_NEW, FLAG = "#1f2d3d", "#9db4cc", "#f4b6b0", "#e0625a", "#f2c14e"
DISK = "#e07b00"
_STYLE = {
    "placed": {"c": DARK, "edgecolors": DARK},
    "removed": {"facecolors": "white", "edgecolors": DARK},
    "kept": {"c": LIGHT, "edgecolors": "#6f8aa6"},
    "input": {"c": LIGHT, "edgecolors": "#6f8aa6", "marker": "s"},
    "on_disk": {"facecolors": "none", "edgecolors": DISK, "marker": "s"},
    "loaded": {"c": DISK, "edgecolors": DARK, "marker": "D"},
}


#: Characters of the 8-point header per inch of axes width (DejaVu Sans, with margin).
_HEADER_CHARS_PER_INCH = 14


def _header(traced: Traced, title: str | None, ax: Axes) -> str:
    """Method name, then the counts, wrapped to the width of ``ax``."""
    r = traced.result
    s = "\u2014" if traced.budget is None else str(traced.budget)
    parts = [f"n={traced.n}", f"{traced.game.value} game", f"S={s}",
             f"steps={r.forward_steps}", f"peak={r.peak_pebbles}"]
    if traced.game is not Game.REVERSIBLE:
        parts.insert(-1, f"paints={r.backward_steps}")
    if r.writes or r.reads:
        parts += [f"disk writes={r.writes}", f"reads={r.reads}", f"disk peak={r.peak_disk}"]
    inches = ax.bbox.width / _root(ax).dpi
    most = max(20, int(inches * _HEADER_CHARS_PER_INCH))
    lines = [part for line in ("schedule" if title is None else title).splitlines()
             for part in textwrap.wrap(line, most, break_on_hyphens=False) or [""]]
    return "\n".join([*lines, *_wrap(parts, most)])


def _root(ax: Axes) -> Figure:
    """The figure ``ax`` is drawn in, through any subfigures (``fig.subfigures``)."""
    fig = ax.figure
    while not isinstance(fig, Figure):  # a SubFigure's .figure is its parent or the root
        fig = fig.figure
    return fig


def check_title(title: object, name: str = "title") -> None:
    """Refuse a title that is not a string, or whose ``$...$`` matplotlib cannot parse
    (``name``: how the caller names it, e.g. ``--title``)."""
    if title is None:
        return
    if not isinstance(title, str):
        raise PebblesTypeError(f"{name}={title!r} must be a string, got "
                               f"{type(title).__name__}; pass e.g. {name}='treeverse'")
    if is_math_text(title):
        try:
            MathTextParser("path").parse(title)
        except ValueError as err:
            reason = " ".join(str(err).split())
            given = f"{name} {shlex.quote(title)}" if name.startswith("--") else \
                f"{name}={title!r}"
            raise PebblesValueError(
                f"{given}: matplotlib cannot read its $...$ as mathtext "
                f"({reason}); fix the formula, or write a literal dollar sign as "
                f"\\$") from None


def as_floats(name: str, value: object, fix: str) -> np.ndarray:
    """``value`` as a float array; ``name`` and ``fix`` word the error when it holds
    anything but real numbers (a string, None, ragged lists)."""
    try:
        if isinstance(value, (str, bytes)) or value is None:  # numpy reads "12" as 12.0
            raise TypeError
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise PebblesTypeError(f"{name} (of type {type(value).__name__}) is not an array "
                               f"of real numbers; {fix}") from None


def _wrap(parts: list[str], most: int) -> list[str]:
    """Join ``parts`` with commas into lines of at most ``most`` characters."""
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 2 + len(part) <= most:
            lines[-1] += ", " + part
        else:
            lines[-1] += ","
            lines.append(part)
    return lines


#: The fix of a diagram too large for :func:`draw_game` (``pebbles draw`` words it in flags).
SIZE_FIX = "use visualize.draw_fingerprint for a compact image of large schedules"


def _check_cells(n: object) -> None:
    """Refuse more than :data:`MAX_CELLS` cells before tracing anything (a large n
    traced for minutes before the size check)."""
    if isinstance(n, (int, np.integer)) and n > MAX_CELLS:
        raise PebblesValueError(
            f"draw_game draws at most n={MAX_CELLS} cells, got n={n}; {SIZE_FIX}")


def _check_ax(ax: object) -> None:
    """Refuse an ``ax`` that is not a flat (rectilinear) matplotlib Axes, before drawing:
    cells and rows are x and y, which a polar or 3-D axes would misplace or refuse."""
    if ax is not None and not isinstance(ax, Axes):
        raise PebblesTypeError(f"ax={ax!r:.40} must be a matplotlib Axes (e.g. "
                               f"fig.add_subplot()), or None for a new figure")
    if ax is not None and ax.name != "rectilinear":
        raise PebblesValueError(f"ax={ax!r:.40} has projection {ax.name!r}; the diagram "
                                f"needs a flat x-y axes: pass fig.add_subplot() without "
                                f"projection=, or None for a new figure")


def _drawn_rows(moves: Iterable[Move], n: int, game: Game | str | None,
                budget: int | None) -> Traced:
    """:func:`trace_rows` within :data:`MAX_ROWS` rows (the starting board's and one a
    step), refused as soon as more steps stream in (an endless stream too)."""
    game, budget = schedule_defaults(moves, n, game, budget)

    def refuse(steps: int) -> None:
        raise PebblesValueError(
            f"draw_game draws at most n={MAX_CELLS} cells and {MAX_ROWS} rows, got n={n} "
            f"with at least {steps + 1} rows; {SIZE_FIX}")

    return traced_within(moves, n, game, budget, MAX_ROWS - 1, refuse)


def _cell_inches(n: int, rows: int) -> float:
    """Side of one cell in inches: 0.22 for small games, smaller for large ones."""
    return float(np.clip(min(14.0 / (n + 1), 28.0 / max(rows, 1)), 0.05, 0.22))


def _paint_shading(ax: Axes, traced: Traced) -> None:
    """Shade painted cells row by row (checkpoint games) or flag cell n (reversible)."""
    n = traced.n
    if traced.game is Game.REVERSIBLE:
        ax.add_patch(Rectangle((n - 0.5, -0.5), 1, len(traced.rows), color=FLAG,
                               alpha=0.35, lw=0, zorder=0, gid="end-cell"))
        return
    for r, row in enumerate(traced.rows):
        old = n + 1 - row.painted_from - len(row.newly_painted)
        ax.add_patch(Rectangle((row.painted_from - 0.5 + len(row.newly_painted), r - 0.5),
                               old, 1, color=PAINT, lw=0, zorder=0))
        if row.newly_painted:
            ax.add_patch(Rectangle((row.painted_from - 0.5, r - 0.5),
                                   len(row.newly_painted), 1, color=PAINT_NEW, lw=0, zorder=0))


def _markers(ax: Axes, traced: Traced, size: float) -> None:
    """One scatter collection per marker kind, tagged with :data:`GIDS`."""
    loads = _has_loads([traced])
    for kind in ("kept", "removed", "placed") + ("loaded",) * loads:
        xs, ys = _cells(traced, kind)
        ax.scatter(xs, ys, s=size * (0.7 if kind == "loaded" else 1), linewidths=0.9,
                   zorder=3, gid=GIDS[kind], label=kind, **_STYLE[kind])
    if _has_disk([traced]):  # a frame around the cell, behind its pebble
        xs, ys = _cells(traced, "on_disk")
        ax.scatter(xs, ys, s=size * 2.2, linewidths=1.2, zorder=2, gid=GIDS["on_disk"],
                   label="on_disk", **_STYLE["on_disk"])
    rows = len(traced.rows)
    ax.scatter([0] * rows, range(rows), s=size * 0.8, linewidths=0.9, zorder=3,
               gid=GIDS["input"], **_STYLE["input"])


def _cells(traced: Traced, kind: str) -> tuple[list[int], list[int]]:
    """x (cell) and y (row) of every cell of ``kind`` in every row (``placed``: those a
    step computed, not ``loaded`` ones)."""
    xs: list[int] = []
    ys: list[int] = []
    for r, row in enumerate(traced.rows):
        cells = sorted(getattr(row, kind) - (row.loaded if kind == "placed" else set()))
        xs += cells
        ys += [r] * len(cells)
    return xs, ys


def _has_disk(traced: Iterable[Traced]) -> bool:
    return any(row.on_disk for t in traced for row in t.rows)


def _has_loads(traced: Iterable[Traced]) -> bool:
    return any(row.loaded for t in traced for row in t.rows)


def _reach_line(ax: Axes, traced: Traced) -> None:
    """Mark the row where cell n first holds a pebble (reversible game)."""
    first = traced.result.first_reach_n
    if traced.game is not Game.REVERSIBLE or first is None or first == len(traced.rows) - 1:
        return
    ax.axhline(first, color=FLAG, lw=1.2, ls="--", zorder=1)
    ax.annotate(f"cell {traced.n} reached\nafter {first} steps", (traced.n + 0.6, first),
                fontsize=7, va="center", ha="left", annotation_clip=False)


def _format_axes(ax: Axes, traced: Traced, nrows: int) -> None:
    """Cells across on top, steps going down, a light grid."""
    n = traced.n
    ax.set_xlim(-0.6, n + 0.6)
    ax.set_ylim(nrows - 0.5, -0.5)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    step = max(1, int(np.ceil((n + 1) / 21)))
    ax.set_xticks(range(0, n + 1, step))
    ax.set_xlabel("cell i (state $s_i$)")
    ax.set_ylabel("step (row 0: start)")
    ax.yaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)
    ax.set_xticks(np.arange(-0.5, n + 1), minor=True)
    ax.grid(which="minor", axis="x", color="#e4e4e4", lw=0.5)
    ax.tick_params(which="minor", length=0)
    ax.tick_params(labelsize=7)
    for side in ("right", "bottom"):
        ax.spines[side].set_visible(False)


def _legend_entries(games: set[Game], disk: bool, loads: bool = False
                    ) -> tuple[list, list[str]]:
    """Handles and labels of the markers and shadings drawn for ``games``."""
    def dot(face: str, edge: str, marker: str = "o") -> Line2D:
        return Line2D([], [], ls="", marker=marker, mfc=face, mec=edge, ms=7)

    handles = [dot(DARK, DARK), dot("white", DARK), dot(LIGHT, "#6f8aa6"),
               dot(LIGHT, "#6f8aa6", "s")]
    labels = ["placed this step", "removed this step", "lying from before", "input $s_0$"]
    if Game.REVERSIBLE in games:
        handles.append(Patch(color=FLAG, alpha=0.5))
        labels.append("end cell n")
    if games - {Game.REVERSIBLE}:
        handles += [Patch(color=PAINT_NEW), Patch(color=PAINT)]
        labels += ["painted this step", "painted before"]
    if disk:
        handles.append(Line2D([], [], ls="", marker="s", mfc="none", mec=DISK, ms=10))
        labels.append("copy on disk")
    if loads:
        handles.append(dot(DISK, DARK, "D"))
        labels.append("loaded from disk")
    return handles, labels


def _legend(fig: Figure, traced: list[Traced]) -> None:
    """The figure's legend, in a band below its axes."""
    handles, labels = _legend_entries({t.game for t in traced}, _has_disk(traced),
                                      _has_loads(traced))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=7,
               frameon=False)
    # keep the legend's two rows (about 0.5 inch) below the axes, however short the figure
    bottom = min(0.5 / fig.get_figheight(), 0.4)
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))


def _axes_legend(ax: Axes, traced: Traced) -> None:
    """The legend of a diagram drawn into a given axes: below it (the cells run along the
    top), two entries a row."""
    handles, labels = _legend_entries({traced.game}, _has_disk([traced]),
                                      _has_loads([traced]))
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2,
              fontsize=7, frameon=False)


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _draw_traced(ax: Axes, traced: Traced, title: str | None, nrows: int,
                 cell: float) -> None:
    _paint_shading(ax, traced)
    _markers(ax, traced, (0.62 * cell * 72) ** 2)
    _reach_line(ax, traced)
    _format_axes(ax, traced, nrows)
    ax.set_title(_header(traced, title, ax), fontsize=8, loc="left")


def draw_game(
    moves: Iterable[Move], n: int, game: Game | str | None = None, *,
    title: str | None = None, budget: int | None = None, ax: Axes | None = None,
) -> Figure:
    """Draw a schedule as a pebble-game diagram (Liu & Xu, Figure 7).

    Parameters
    ----------
    moves : iterable of Move
        Any schedule (generators are fine); it is checked by
        :func:`pebbles.simulate`, which raises on an illegal move.
    n : int
        Number of steps (cells ``0..n``); at most :data:`MAX_CELLS`.
    game : {'checkpoint', 'inplace', 'reversible'}, optional
        Default: the game of a :class:`pebbles.Schedule`, else ``'checkpoint'``.
    title : str, optional
        Method name for the header (which also shows n, S, steps and peak), its line
        breaks kept; ``None``: ``'schedule'``, ``""``: no name, the counts only.
    budget : int, optional
        Budget S, checked by the simulator and shown in the header (default: a
        :class:`pebbles.Schedule`'s own).
    ax : matplotlib Axes, optional
        Draw into this flat (rectilinear, not polar or 3-D) axes, with the legend
        below it (its figure is returned: the top-level one for an axes in a
        subfigure); default a new figure, with the legend along its bottom.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    PebblesValueError
        If the diagram would exceed :data:`MAX_CELLS` cells or :data:`MAX_ROWS`
        rows (:func:`draw_fingerprint` is meant for those), or if ``ax`` is polar
        or 3-D.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import pebbles, visualize
    >>> fig = visualize.draw_game(pebbles.treeverse(10, 3), 10, title="treeverse")
    >>> len(fig.axes)
    1
    >>> plt.close(fig)
    """
    _check_cells(n)
    _check_ax(ax)
    check_title(title)
    traced = _drawn_rows(moves, n, game, budget)
    nrows = len(traced.rows)
    cell = _cell_inches(n, nrows)
    if ax is None:
        fig = _new_figure(max(5.6, cell * (n + 1) + 1.6), cell * nrows + 1.6)
        ax = fig.add_subplot()
        _legend(fig, [traced])
    else:
        fig = _root(ax)
        cell = min(ax.bbox.width / fig.dpi / (n + 1.2), ax.bbox.height / fig.dpi / nrows)
        _axes_legend(ax, traced)
    _draw_traced(ax, traced, title, nrows, cell)
    return fig


_FP_COLORS = ["#ffffff", PAINT, "#a77cc4", "#5b86b3", "#f0b35a", DARK]  # in CODES' order
_FP_NAMES = ["empty", "painted", "on disk only", "lying", "removed", "placed"]


def _bin(img: np.ndarray, most: int, axis: int) -> np.ndarray:
    """Merge neighbouring rows or columns (keeping the highest code) down to ``most``."""
    size = img.shape[axis]
    if size <= most:
        return img
    edges = np.linspace(0, size, most + 1).astype(int)
    return np.maximum.reduceat(img, edges[:-1], axis=axis)


def whole(name: str, value: object, least: int, example: int) -> int:
    """``value``, checked to be an integer (not a bool) ``>= least``; ``example`` is the
    value the fix suggests."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise PebblesTypeError(f"{name}={value!r:.60} must be an integer, got "
                               f"{type(value).__name__}; pass e.g. {name}={example}")
    if value < least:
        raise PebblesValueError(f"{name}={value!r} must be >= {least}; pass e.g. "
                                f"{name}={example}")
    return int(value)


def _check_bins(name: str, value: object) -> None:
    """``max_rows`` and ``max_cols`` are whole numbers >= 1 (image rows or columns after
    binning)."""
    whole(name, value, 1, 800)


def draw_fingerprint(
    moves: Iterable[Move], n: int, game: Game | str | None = None, *,
    title: str | None = None, budget: int | None = None, ax: Axes | None = None,
    max_rows: int = 800, max_cols: int = 800,
) -> Figure:
    """Draw a schedule as a rasterised image: cells across, steps down.

    The compact view of Figure 7 for schedules too large for :func:`draw_game`:
    pixel (row, i) shows what happened to cell i in that row, coloured by
    :data:`visualize.CODES` (placed, removed, lying, on disk only, painted, empty).

    Parameters
    ----------
    moves, n, game, title, budget, ax
        As for :func:`draw_game`, without its limit on cells and rows.
    max_rows, max_cols : int
        Longer schedules (wider boards) are binned to this many image rows
        (columns), about the pixels available; each pixel shows the most
        eventful code of its bin, so thin features stay visible.

    Returns
    -------
    matplotlib.figure.Figure
        The image is ``fig.axes[0].images[0]`` with ``gid='fingerprint'``.

    Raises
    ------
    PebblesValueError
        Before the boards are traced, if the image would have more than 2 x 10^8
        pixels (rows x cells) before binning or the trace more than 10^7 pebbles
        (rows x peak): a :class:`pebbles.Schedule` whose method predicts its steps
        is refused before any move is made, a plain stream once its rows pass the
        limit; also if ``ax`` is polar or 3-D.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import pebbles, visualize
    >>> fig = visualize.draw_fingerprint(pebbles.treeverse(100, 4), 100)
    >>> fig.axes[0].images[0].get_gid()
    'fingerprint'
    >>> plt.close(fig)
    """
    for name, value in (("max_rows", max_rows), ("max_cols", max_cols)):
        _check_bins(name, value)
    _check_ax(ax)
    check_title(title)
    traced = trace_fingerprint(moves, n, game, budget)
    if ax is None:
        ax = _new_figure(7.0, 7.5).add_subplot()
    fingerprint_into(ax, traced, title, max_rows, max_cols)
    return _root(ax)


def fingerprint_into(ax: Axes, traced: Traced, title: str | None, max_rows: int = 800,
                     max_cols: int = 800) -> None:
    """Draw the fingerprint of ``traced`` (:func:`trace_fingerprint`'s) into ``ax``."""
    n = traced.n
    img = _bin(_bin(fingerprint_array(traced), max_rows, 0), max_cols, 1)
    ax.imshow(img, cmap=ListedColormap(_FP_COLORS), vmin=0, vmax=len(CODES) - 1,
              interpolation="nearest", aspect="auto", rasterized=True, gid="fingerprint",
              extent=(-0.5, n + 0.5, len(traced.rows) - 0.5, -0.5))
    ax.set_xlabel("cell i")
    ax.set_ylabel("step (row 0: start)")
    for axis in (ax.xaxis, ax.yaxis):  # cells and rows are whole numbers
        axis.get_major_locator().set_params(integer=True, min_n_ticks=1)
    ax.set_title(_header(traced, title, ax), fontsize=8, loc="left")
    left_out = {CODES["painted"]} if traced.game is Game.REVERSIBLE else set()
    if not _has_disk([traced]):
        left_out.add(CODES["disk"])
    keep = [i for i in range(len(CODES)) if i not in left_out]
    ax.legend([Patch(facecolor=_FP_COLORS[i], edgecolor="#888") for i in keep],
              [_FP_NAMES[i] for i in keep], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1), frameon=False)


def _panels(panels: object) -> list[tuple[str, Iterable[Move], Game | str, int | None]]:
    """``panels`` as (label, moves, game, budget) tuples, each checked."""
    if isinstance(panels, (str, bytes)) or not isinstance(panels, Iterable):
        raise PebblesTypeError(f"panels={panels!r:.60} must be a sequence of (label, moves, "
                               f"game) tuples, got {type(panels).__name__}; pass e.g. "
                               f"panels=[('treeverse', pebbles.treeverse(20, 3), "
                               f"'checkpoint')]")
    return [_panel(k, item) for k, item in enumerate(panels)]


def _panel(k: int, item: object) -> tuple[str, Iterable[Move], Game | str, int | None]:
    if isinstance(item, (str, bytes)) or not isinstance(item, Sequence):
        raise PebblesTypeError(f"panels[{k}]={item!r:.60} must be a tuple (label, moves, "
                               f"game) or (label, moves, game, budget), got "
                               f"{type(item).__name__}")
    if len(item) not in (3, 4):
        raise PebblesValueError(f"panels[{k}] has {len(item)} items; each panel is (label, "
                                "moves, game) or (label, moves, game, budget)")
    check_title(item[0], f"panels[{k}][0]")
    return item[0], item[1], item[2], item[3] if len(item) == 4 else None


def _panel_ns(n: int | Sequence[int], panels: int) -> list[int]:
    """``n`` for every panel: one integer shared, or one a panel."""
    if isinstance(n, Integral):
        return [n] * panels
    if isinstance(n, (str, bytes)) or not isinstance(n, Iterable):
        raise PebblesTypeError(f"n={n!r} must be an integer or a sequence of integers (one "
                               f"a panel), got {type(n).__name__}; pass e.g. n=20")
    return list(n)


def draw_side_by_side(panels: Sequence[Sequence], n: int | Sequence[int]) -> Figure:
    """Draw several schedules next to each other, on one step scale.

    Parameters
    ----------
    panels : sequence of (label, moves, game) or (label, moves, game, budget)
        One diagram each, as :func:`draw_game` draws it (e.g. Figure 7(a) beside
        the optimal schedule with the same pebbles).
    n : int or sequence of int
        Number of steps, shared by all panels or one per panel.

    Returns
    -------
    matplotlib.figure.Figure
        Rows and cells have the same size in every panel, so longer schedules
        are taller.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import pebbles, visualize
    >>> fig = visualize.draw_side_by_side(
    ...     [("treeverse", pebbles.treeverse(10, 3), "checkpoint"),
    ...      ("store-all", pebbles.store_all(10), "checkpoint")], 10)
    >>> len(fig.axes)
    2
    >>> plt.close(fig)
    """
    parsed = _panels(panels)
    if not parsed:
        raise PebblesValueError("panels is empty; pass at least one (label, moves, game)")
    ns = _panel_ns(n, len(parsed))
    if len(ns) != len(parsed):
        raise PebblesValueError(f"got {len(parsed)} panels but {len(ns)} values of n")
    for k in ns:
        _check_cells(k)
    traced = [_drawn_rows(m, k, g, b) for (_, m, g, b), k in zip(parsed, ns, strict=True)]
    nrows = max(len(t.rows) for t in traced)
    cell = _cell_inches(sum(k + 1 for k in ns), nrows)
    width = cell * sum(k + 1 for k in ns) + 1.2 * len(ns) + 0.6
    # at least 3.4 inches a panel: room for its two-line header
    fig = _new_figure(max(5.6, 3.4 * len(ns), width), cell * nrows + 1.7)
    axes = fig.subplots(1, len(traced), squeeze=False,
                        width_ratios=[k + 1.2 for k in ns])[0]
    for ax, t, (label, *_) in zip(axes, traced, parsed, strict=True):
        _draw_traced(ax, t, label, nrows, cell)
    _legend(fig, traced)
    return fig


def _check_save(fig: Figure, path: Path, dpi: float) -> str:
    """The format of ``path``; raise on a missing or unknown extension or a bad dpi."""
    if not isinstance(fig, Figure):
        raise PebblesTypeError(f"fig={fig!r} is not a matplotlib Figure; pass the figure a "
                               "visualize.draw_* function returned")
    reason = output_error(str(path), "figure.png", probe=False)  # open() raises OSError
    if reason is not None:  # a directory too, which has no extension either
        raise PebblesValueError(f"path={str(path)!r} {reason}")
    if not path.suffix:
        raise PebblesValueError(f"cannot tell the format of {str(path)!r}: give it an "
                                "extension such as .png, .svg or .pdf")
    fmt = path.suffix[1:].lower()
    known = formats()
    if fmt not in known:
        raise PebblesValueError(f"path={str(path)!r}: {path.suffix!r} is not a format "
                                f"matplotlib writes; use one of .{', .'.join(sorted(known))}")
    reason = format_error(fmt)
    if reason is not None:
        raise PebblesValueError(f"path={str(path)!r}: {reason}")
    if isinstance(dpi, bool) or not isinstance(dpi, Real):
        raise PebblesTypeError(f"dpi={dpi!r} must be a number, got {type(dpi).__name__}; "
                               "pass e.g. dpi=120")
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise PebblesValueError(f"dpi={dpi!r} must be from {MIN_DPI} to {MAX_DPI}; "
                                "pass e.g. dpi=120")
    return fmt


def save(fig: Figure, path: str | os.PathLike[str], *, dpi: float = 120) -> Path:
    """Write a figure; the format (png, svg, pdf, ...) follows the file extension.

    The figure is written to a temporary file next to ``path`` and renamed, so a
    failure (or Ctrl-C) while drawing leaves no partial file and keeps an older
    file of that name.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure, e.g. from a ``visualize.draw_*`` function.
    path : str or os.PathLike
        File to write, in an existing directory; its extension names the format.
    dpi : float, default 120
        Resolution, from :data:`MIN_DPI` to :data:`MAX_DPI`.

    Returns
    -------
    pathlib.Path
        ``path``, as given (not resolved).

    Raises
    ------
    PebblesTypeError
        If ``fig`` is not a Figure, ``path`` not a str or path, or ``dpi`` not a number.
    PebblesValueError
        On a missing or unknown extension, a format this machine cannot write (pgf
        without its TeX program), a ``path`` that is a directory or whose directory
        does not exist, or a dpi outside :data:`MIN_DPI` .. :data:`MAX_DPI`.
    OSError
        If the file cannot be written (its ``filename`` is ``path``, not the
        temporary file).

    Examples
    --------
    >>> import os, tempfile
    >>> import matplotlib.pyplot as plt
    >>> import pebbles, visualize
    >>> fig = visualize.draw_game(pebbles.store_all(3), 3)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = visualize.save(fig, os.path.join(d, "game.svg"))
    ...     path.name, path.stat().st_size > 0
    ('game.svg', True)
    >>> plt.close(fig)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise PebblesTypeError(f"path={path!r:.60} must be a str or a path, got "
                               f"{type(path).__name__}; pass e.g. path='figure.png'")
    path = Path(path)
    fmt = _check_save(fig, path, dpi)
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    dest = path.resolve()  # through a symbolic link to its target
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(tmp, "xb") as out:
            fig.savefig(out, dpi=dpi, format=fmt)
        os.replace(tmp, dest)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(path)) from None  # its subclass
        raise
    return path
