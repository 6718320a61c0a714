"""Argument hooks for the ``pebbles draw`` and ``pebbles tradeoff`` subcommands.

This module imports neither matplotlib nor :mod:`pebbles._cli` at import time,
so the command line stays fast. ``pebbles._cli._add_drawing`` wires these hooks into
the ``pebbles`` command.

Examples::

    pebbles draw treeverse-paper -n 20 --delta 3 -o fig7a.png
    pebbles draw treeverse -n 20 --pebbles 4 --side-by-side treeverse-paper --delta 3 -o cmp.svg
    pebbles draw treeverse -n 2000 --pebbles 10 --fingerprint -o big.png
    pebbles tradeoff -n 100 10000 -o tradeoff.pdf
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable, Iterator, Sequence

from pebbles import Game, Move, PebblesValueError

__all__ = ["add_draw_arguments", "run_draw", "add_tradeoff_arguments", "run_tradeoff"]

BuildSchedule = Callable[[argparse.Namespace], tuple[Iterator[Move], Game, "int | None"]]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def add_draw_arguments(parser: argparse.ArgumentParser,
                       methods: Sequence[str] | None = None) -> None:
    """Add the ``schedule`` options plus output options to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The ``draw`` subparser.
    methods : sequence of str, optional
        Method names; default ``pebbles._cli.METHODS`` (imported on call).
    """
    from pebbles._cli import METHODS, add_schedule_arguments

    add_schedule_arguments(parser)
    if methods is None:
        methods = METHODS
    parser.add_argument("-o", "--output", required=True,
                        help="output file; format from the extension (.png, .svg, .pdf)")
    parser.add_argument("--side-by-side", metavar="METHOD2", choices=methods,
                        help="draw a second method with the same options next to the first")
    parser.add_argument("--fingerprint", action="store_true",
                        help="compact rasterised view (for large n or long schedules)")
    parser.add_argument("--title", help="header text (default: method and options)")
    parser.add_argument("--dpi", type=_positive, default=120, help="raster resolution (120)")


def describe(args: argparse.Namespace) -> str:
    """A short label such as ``'treeverse-paper delta=3'`` for the figure header."""
    options = {"treeverse": ("pebbles", "inplace"), "treeverse-paper": ("delta", "tau"),
               "bennett": ("k", "no_uncompute"), "bennett-gradient": ("k",),
               "reversible-optimal": ("pebbles",), "periodic": ("every",)}
    parts = [args.method]
    for name in options.get(args.method, ()):
        value = getattr(args, name, None)
        if value is True:
            parts.append(name.replace("_", "-"))
        elif value not in (None, False):
            parts.append(f"{'S' if name == 'pebbles' else name}={value}")
    return " ".join(parts)


def _schedules(args: argparse.Namespace, build_schedule: BuildSchedule) -> list[tuple]:
    """(label, moves, game, budget) for the method and the optional side-by-side one."""
    runs = [args]
    if args.side_by_side:
        other = copy.copy(args)
        other.method = args.side_by_side
        runs.append(other)
    panels = []
    for a in runs:
        moves, game, budget = build_schedule(a)
        label = args.title if (args.title and a is args) else describe(a)
        panels.append((label, moves, game, budget))
    return panels


def _figure(args: argparse.Namespace, panels: list[tuple]):
    from . import _game

    if args.fingerprint:
        fig = _game._new_figure(6.5 * len(panels), 7.5)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (label, moves, game, budget) in zip(axes, panels, strict=True):
            _game.draw_fingerprint(moves, args.n, game, title=label, budget=budget, ax=ax)
        return fig
    try:
        if len(panels) == 1:
            label, moves, game, budget = panels[0]
            return _game.draw_game(moves, args.n, game, title=label, budget=budget)
        return _game.draw_side_by_side(panels, args.n)
    except PebblesValueError as err:
        if "draw_fingerprint" in str(err):
            raise PebblesValueError(f"{err} (on the command line: add --fingerprint)") from None
        raise


def run_draw(args: argparse.Namespace, build_schedule: BuildSchedule) -> int:
    """Run ``pebbles draw``: build the schedule(s), draw, save; return 0.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by a parser set up with :func:`add_draw_arguments`.
    build_schedule : callable
        ``pebbles._cli.build_schedule``: args -> (moves, game, budget).
    """
    from . import _game

    fig = _figure(args, _schedules(args, build_schedule))
    path = _game.save(fig, args.output, dpi=args.dpi)
    sys.stdout.write(f"wrote {path}\n")
    return 0


def add_tradeoff_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``tradeoff`` options: ``-n N [N ...]``, ``-o``, ``--paper-max-n``, ``--dpi``."""
    parser.add_argument("-n", type=_positive, nargs="+", default=[100, 10**4, 10**6],
                        help="numbers of steps, one panel each (100 10000 1000000)")
    parser.add_argument("-o", "--output", required=True,
                        help="output file; format from the extension (.png, .svg, .pdf)")
    parser.add_argument("--paper-max-n", type=_positive, default=10**4,
                        help="simulate treeverse-paper only up to this n (10000)")
    parser.add_argument("--dpi", type=_positive, default=100, help="raster resolution (100)")


def run_tradeoff(args: argparse.Namespace) -> int:
    """Run ``pebbles tradeoff``: draw the Figure 8 panels for ``args.n``; return 0."""
    from . import _game, _tradeoff

    fig = _tradeoff.draw_tradeoff(tuple(args.n), paper_max_n=args.paper_max_n)
    path = _game.save(fig, args.output, dpi=args.dpi)
    sys.stdout.write(f"wrote {path}\n")
    return 0
