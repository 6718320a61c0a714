"""The ``pebbles draw`` and ``pebbles tradeoff`` subcommands (entry points ``DRAW``, ``TRADEOFF``).

The ``pebbles`` command line (:mod:`pebbles.cli`) finds them through the
``pebbles.commands`` entry-point group. This module imports no matplotlib at
import time, so the command line stays fast; without matplotlib, running them
says which ``pip install`` brings it.

Examples::

    pebbles draw treeverse-paper -n 20 --delta 3 -o fig7a.png
    pebbles draw treeverse -n 20 --pebbles 4 --side-by-side treeverse-paper --delta 3 -o cmp.svg
    pebbles draw treeverse -n 2000 --pebbles 10 --fingerprint -o big.png
    pebbles tradeoff -n 100 10000 -o tradeoff.pdf
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

import numpy as np

import pebbles
from pebbles import PebblesValueError
from pebbles.cli import (
    Command,
    add_schedule_arguments,
    at_least,
    count,
    in_flags,
    method_choice,
    missing_extra,
    output_error,
    positive,
    schedule_from_args,
    unused_flags,
)

from ._overhead import MAX_OVERHEAD_N, MAX_OVERHEAD_STEPS, check_overhead_work, first_unfinished

__all__ = ["DRAW", "MAX_OVERHEAD_N", "MAX_OVERHEAD_STEPS", "TRADEOFF", "add_draw_arguments",
           "add_tradeoff_arguments", "check_output", "dpi", "matplotlib_required", "run_draw",
           "run_tradeoff"]

#: Resolutions drawn (``--dpi``, :func:`visualize.save`): below about 10 dpi FreeType
#: cannot size the labels of a raster, above 1200 a raster has gigapixels.
MIN_DPI, MAX_DPI = 10, 1200
#: Help of every ``-o`` (``pebbles draw``, ``pebbles tradeoff``, ``python -m visualize``).
OUTPUT_HELP = ("output file; its extension picks the format: .png, .svg, .pdf, .tif, .jpg, "
               ".eps, ... (any matplotlib writes; .pgf needs TeX)")
#: Largest n a trade-off panel covers: the paper's largest.
MAX_TRADEOFF_N = 10**6


def matplotlib_required(what: str = "drawing", solvers: bool = False) -> None:
    """Raise one ImportError naming every extra ``what`` lacks: matplotlib (``plot``) and,
    with ``solvers``, Numba (``solvers``: the figures the solvers compute)."""
    lacking = {"plot": "matplotlib"} if find_spec("matplotlib") is None else {}
    if solvers and find_spec("numba") is None:
        lacking["solvers"] = "Numba"
    if lacking:
        raise missing_extra(list(lacking.values()), list(lacking), what)


def formats() -> list[str]:
    """The file extensions (no dot) :func:`visualize.save` writes: those of matplotlib's
    Agg canvas (png, svg, pdf, tif, webp, ...); without matplotlib, png, svg and pdf, so
    that the output is checked before saying matplotlib is needed."""
    if find_spec("matplotlib") is None:
        return ["pdf", "png", "svg"]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return sorted(FigureCanvasAgg.get_supported_filetypes())


def format_error(fmt: str) -> str | None:
    """Why matplotlib cannot write the format ``fmt`` (an extension, no dot) on this
    machine, or None: pgf lays out its text with the TeX program named in
    ``rcParams['pgf.texsystem']`` (xelatex by default), which must be on PATH.
    :func:`check_output` and :func:`visualize.save` both refuse with it."""
    if fmt.lower() != "pgf" or find_spec("matplotlib") is None:
        return None
    import matplotlib

    tex = matplotlib.rcParams["pgf.texsystem"]
    if shutil.which(tex) is not None:
        return None
    return (f"the pgf format needs the TeX program {tex!r} (matplotlib's "
            f"rcParams['pgf.texsystem']) on PATH, and it is not found; install it (a TeX "
            f"distribution), or write .pdf or .svg")


def check_output(path: str) -> Path:
    """Check an output path before anything is computed: a known extension that can be
    written here (:func:`format_error`), a directory that exists, and not a directory
    itself."""
    reason = output_error(path, "figure.png")
    if reason is not None:
        raise PebblesValueError(f"-o {path!r} {reason}")
    out = Path(path)
    if out.suffix[1:].lower() not in formats():
        raise PebblesValueError(f"-o {path!r}: cannot tell the format; give it one of the "
                                f"extensions .{', .'.join(formats())}")
    reason = format_error(out.suffix[1:])
    if reason is not None:
        raise PebblesValueError(f"-o {path!r}: {reason}")
    return out


def dpi(text: str) -> int:
    """argparse type: a resolution from :data:`MIN_DPI` to :data:`MAX_DPI` dots per inch."""
    value = at_least(MIN_DPI)(text)  # its message names the lower bound
    if value > MAX_DPI:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a whole number from {MIN_DPI} to {MAX_DPI} (dots per inch)")
    return value


def add_draw_arguments(parser: argparse.ArgumentParser,
                       methods: Sequence[str] | None = None) -> None:
    """Add the ``schedule`` options plus output options to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The ``draw`` subparser.
    methods : sequence of str, optional
        Method names; default every method of the registry.
    """
    if methods is None:
        methods = pebbles.methods()
    add_schedule_arguments(parser, methods)
    parser.add_argument("-o", "--output", required=True,
                        help=OUTPUT_HELP)
    parser.add_argument("--side-by-side", metavar="METHOD2", choices=methods,
                        type=method_choice(methods),
                        help="draw a second method next to the first (METHOD2 differs from "
                             "METHOD); each other option (--pebbles, --inplace, --delta, ...) "
                             "goes to the panels whose method takes it, and one neither takes "
                             "is refused (--pebbles that neither takes is the limit both are "
                             "checked against, as for one method)")
    parser.add_argument("--fingerprint", action="store_true",
                        help="compact rasterised view (for large n or long schedules)")
    parser.add_argument("--title", help="header text (default: method and options); with "
                             "--side-by-side, a title over both panels")
    parser.add_argument("--dpi", type=dpi, default=120, help="raster resolution (120)")


def describe(args: argparse.Namespace) -> str:
    """A short label such as ``'treeverse-paper delta=3'`` for the figure header."""
    return label(schedule_from_args(args, args.method))


def label(s: pebbles.Schedule) -> str:
    """``s`` in a few words: its method, ``S=`` its budget, and the options that differ
    from the method's defaults (``'online S=3 beyond=wang-moin inplace'``)."""
    parts = [s.method] + ([f"S={s.budget}"] if s.budget is not None else [])
    flags = s.option_flags()
    for k, flag in enumerate(flags):
        if flag.startswith("--"):
            value = flags[k + 1] if k + 1 < len(flags) and not flags[k + 1].startswith("--") \
                else None
            parts.append(flag[2:] if value is None else f"{flag[2:]}={value}")
    return " ".join(parts)


def _schedules(args: argparse.Namespace) -> list[tuple]:
    """(label, schedule, game, budget) for the method and the optional side-by-side one."""
    names = [args.method] + ([args.side_by_side] if args.side_by_side else [])
    if args.side_by_side == args.method:
        raise PebblesValueError(
            f"--side-by-side {args.method} with method {args.method}: the two panels share "
            f"every flag, so both would draw the same schedule; pick another method to "
            f"compare with (e.g. --side-by-side "
            f"{'treeverse' if args.method == 'treeverse-paper' else 'treeverse-paper'}), "
            f"or draw one")
    _check_flags(args, names)
    panels = []
    for name in names:
        s = schedule_from_args(_budget_for(args, name, names), name)
        _check_size(args, s)
        panels.append((args.title if args.title and len(names) == 1 else label(s), s, s.game,
                       s.budget))
    return panels


def _budget_for(args: argparse.Namespace, name: str, names: list[str]) -> argparse.Namespace:
    """``args`` for the panel of method ``name``: ``--pebbles`` goes to the panels whose
    method takes a budget; where none does, every panel is checked against it (a method
    that takes no budget refuses one it would exceed)."""
    takers = [m for m in names if pebbles.describe(m).takes_budget]
    if args.budget is None or not takers or name in takers:
        return args
    return argparse.Namespace(**{**vars(args), "budget": None})


def _check_flags(args: argparse.Namespace, names: list[str]) -> None:
    """Refuse schedule flags that none of the drawn methods takes (``--k`` for treeverse);
    ``--side-by-side`` shares the flags, so each needs one taker."""
    unused = [f for f in unused_flags(args, names[0])
              if all(f in unused_flags(args, name) for name in names[1:])]
    if unused:
        it = "it" if len(unused) == 1 else "them"
        raise PebblesValueError(
            f"{' '.join(unused)}: not taken by method {' or '.join(names)}; leave {it} out "
            f"or pick a method that takes {it} (pebbles methods)")


def _check_size(args: argparse.Namespace, s: pebbles.Schedule) -> None:
    """Refuse a diagram of too many cells before building anything (a fingerprint's limits
    are :func:`visualize._rows.trace_fingerprint`'s, applied by :func:`_traced`)."""
    from ._rows import MAX_CELLS

    if not args.fingerprint and s.n > MAX_CELLS:
        raise PebblesValueError(
            f"pebbles draw draws at most {MAX_CELLS} cells, got -n {s.n}; use -n {MAX_CELLS} "
            f"or less, or add --fingerprint for a compact view of a large schedule")


def _traced(panels: list[tuple]) -> list:
    """The fingerprint rows of every panel, within the limits ``draw_fingerprint`` has (the
    same function), traced before matplotlib is imported."""
    from ._rows import trace_fingerprint

    try:
        return [trace_fingerprint(s, s.n, game, budget) for _, s, game, budget in panels]
    except PebblesValueError as err:
        raise in_flags(err) from None


def _figure(args: argparse.Namespace, panels: list[tuple], traced: list | None):
    """The figure of ``panels``; with two, ``--title`` goes over both (each keeps its
    own label: method and options)."""
    fig = _panels_figure(args, panels, traced)
    if args.title and len(panels) > 1:
        fig.suptitle(args.title, fontsize=10)
    return fig


def _panels_figure(args: argparse.Namespace, panels: list[tuple], traced: list | None):
    from . import _game

    if traced is not None:
        fig = _game._new_figure(6.5 * len(panels), 7.5)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (label, *_), t in zip(axes, panels, traced, strict=True):
            _game.fingerprint_into(ax, t, label)
        last = max(ax.images[0].get_extent()[2] for ax in axes)  # the longest's last row
        for ax in axes:  # one step scale, as draw_side_by_side has
            ax.set_ylim(last, -0.5)
        return fig
    try:
        if len(panels) == 1:
            label, moves, game, budget = panels[0]
            return _game.draw_game(moves, args.n, game, title=label, budget=budget)
        return _game.draw_side_by_side(panels, args.n)
    except PebblesValueError as err:
        if _game.SIZE_FIX in str(err):  # worded in flags
            err = PebblesValueError(str(err).replace("draw_game", "pebbles draw").replace(
                _game.SIZE_FIX, "use --fingerprint for a compact view of a large schedule"))
        raise in_flags(err) from None


def run_draw(args: argparse.Namespace) -> int:
    """Run ``pebbles draw``: build the schedule(s), draw, save; return 0.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by a parser set up with :func:`add_draw_arguments`.
    """
    check_output(args.output)
    if args.title is not None:  # reading its $...$ takes matplotlib
        matplotlib_required()
        from ._game import check_title

        check_title(args.title, "--title")
    panels = _schedules(args)  # every size check before matplotlib is imported
    traced = _traced(panels) if args.fingerprint else None
    matplotlib_required()
    from . import _game

    fig = _figure(args, panels, traced)
    path = _game.save(fig, args.output, dpi=args.dpi)
    if sys.stdout is not None:  # closed (``>&-``): the file is the result
        sys.stdout.write(f"wrote {path}\n")
    return 0


def add_tradeoff_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``tradeoff`` options: ``-n N [N ...]``, ``-o``, ``--paper-max-n``, ``--dpi``."""
    parser.add_argument("-n", type=_tradeoff_n, nargs="+", default=[100, 10**4, 10**6],
                        help="numbers of steps, one panel each (100 10000 1000000)")
    parser.add_argument("-o", "--output", required=True,
                        help=OUTPUT_HELP)
    parser.add_argument("--paper-max-n", type=positive,
                        help="simulate treeverse-paper and the online scheme only up to this "
                             "n (10000; a panel of larger n has neither curve, and says so; "
                             "not with --online-overhead)")
    parser.add_argument("--dpi", type=dpi, default=100, help="raster resolution (100)")
    parser.add_argument("--online-overhead", type=count, nargs="+", metavar="S",
                        help="instead: the online scheme's overhead over the optimum against "
                             f"n (1 up to the largest -n, at most {MAX_OVERHEAD_N}: each point "
                             "is simulated) for these budgets")


def _tradeoff_n(text: str) -> int:
    value = positive(text)
    if value > MAX_TRADEOFF_N:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a panel covers at most n={MAX_TRADEOFF_N} (the paper's largest)")
    return value


def _overhead_ns(top: int) -> tuple[int, ...]:
    """The n of ``--online-overhead``: 1 to 10 each, then 40 points spaced evenly on a log
    scale up to ``top`` (at most :data:`MAX_OVERHEAD_N`)."""
    top = min(top, MAX_OVERHEAD_N)
    ns = set(range(1, min(top, 10) + 1))
    if top > 10:
        ns |= {int(round(v)) for v in np.geomspace(10, top, 40)}
    return tuple(sorted(ns))


def _note_unfinished(ns: tuple[int, ...], budgets: tuple[int, ...]) -> None:
    """Say on stderr which ``--online-overhead`` budgets cannot finish the largest n of a
    game (S = 1 in the checkpoint game past n = 2): their curve of that game stops early."""
    for s in dict.fromkeys(budgets):
        for game, name in (("checkpoint", "checkpoint"), ("inplace", "in-place")):
            first = first_unfinished(s, game, max(ns))
            if first is not None:
                least = pebbles.min_pebbles(max(ns), game)
                sys.stderr.write(
                    f"pebbles tradeoff: note: --online-overhead {s}: S = {s} cannot finish "
                    f"the {name} game past n = {first - 1} (it needs S >= "
                    f"{least}: pebbles.min_pebbles), so that curve stops there and its "
                    f"legend entry says so; pass S >= {least} for a whole curve\n")


def run_tradeoff(args: argparse.Namespace) -> int:
    """Run ``pebbles tradeoff``: draw the Figure 8 panels for ``args.n``; return 0."""
    check_output(args.output)
    if args.online_overhead and args.paper_max_n is not None:
        raise PebblesValueError("--paper-max-n: not used with --online-overhead (which draws "
                                "the online scheme only); leave it out")
    if args.online_overhead:  # checked before matplotlib is imported
        ns = _overhead_ns(max(args.n))
        check_overhead_work(ns, tuple(args.online_overhead), max(args.n))
    matplotlib_required()
    from . import _game, _tradeoff

    if args.online_overhead:
        if max(args.n) > MAX_OVERHEAD_N:
            sys.stderr.write(f"pebbles tradeoff: note: --online-overhead plots n up to "
                             f"{MAX_OVERHEAD_N}, not {max(args.n)} (every point simulates "
                             f"the online schedule: n = 10^6 takes minutes)\n")
        _note_unfinished(ns, tuple(args.online_overhead))
        fig = _tradeoff.draw_online_overhead(ns, tuple(args.online_overhead))
    else:
        paper = 10**4 if args.paper_max_n is None else args.paper_max_n
        try:  # one panel per distinct -n, in the order given
            fig = _tradeoff.draw_tradeoff(tuple(args.n), paper_max_n=paper)
        except PebblesValueError as err:
            raise in_flags(err) from None
    path = _game.save(fig, args.output, dpi=args.dpi)
    if sys.stdout is not None:  # closed (``>&-``): the file is the result
        sys.stdout.write(f"wrote {path}\n")
    return 0


DRAW = Command("draw", "draw a schedule as a pebble-game diagram (PNG/SVG/PDF)",
               add_draw_arguments, run_draw)
TRADEOFF = Command("tradeoff", "plot memory against time overhead (Figure 8)",
                   add_tradeoff_arguments, run_tradeoff)
