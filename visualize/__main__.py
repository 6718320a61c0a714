"""``python -m visualize``: the solver figures of Liu & Xu (Figures 3, 4, 5 and the PML images).

The data of Figures 3 and 4 and of the PML images are computed by
:mod:`solvers.experiments`; Figure 5 reads the records of a benchmark JSON file.

Subcommands (each writes one figure, format from the extension of ``-o``)::

    python -m visualize lorenz-fig3 [--npz map.npz | --resolution 201 --steps 10000] -o fig3.png
    python -m visualize lorenz-fig4 [--max-steps 1000 --starts 20 --reload-steps 10000] -o fig4.png
    python -m visualize pml [--size 200] [--times 400 700 1000 1400] -o pml.png
    python -m visualize pml [--size 200] --panel gradient [--pebbles 20] -o grad.png
    python -m visualize fig5 bench.json -o fig5.png

Bad input exits with status 2 and one line on stderr, before anything is
computed: flags the others leave unused, a Lorenz run estimated at more than an
hour, and a PML run needing more memory than is available are refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pebbles import PebblesError, PebblesValueError
from pebbles.cli import (
    OneLineParser,
    SubcommandParser,
    budget_flag,
    check_path_given,
    count,
    in_flags,
    positive,
    run_command,
)

from .cli import OUTPUT_HELP, check_output, dpi, matplotlib_required

__all__ = ["fig5_records", "main"]


def _at_least(minimum: int, why: str):
    """argparse type: a whole number >= ``minimum`` (``why`` says what needs it)."""
    def parse(text: str) -> int:
        value = positive(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= {minimum} "
                                             f"({why})")
        return value
    return parse


def _output(p: argparse.ArgumentParser, default_dpi: int = 100) -> None:
    p.add_argument("-o", "--output", required=True,
                   help=OUTPUT_HELP)
    p.add_argument("--dpi", type=dpi, default=default_dpi,
                   help=f"raster resolution ({default_dpi})")


#: The least ``pml --size`` (two 12-cell PML bands and an interior of 8 cells).
_LEAST_SIZE = 32


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m visualize", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=SubcommandParser)
    f3 = sub.add_parser("lorenz-fig3", help="Figure 3: sensitivity map and trajectories")
    f3.add_argument("--npz", help="grid from `python -m solvers.lorenz sensitivity --out`")
    f3.add_argument("--resolution", type=_at_least(2, "grid points per axis"),
                    help="grid points per axis (201; not with --npz)")
    f3.add_argument("--steps", type=positive, help="RK4 steps n (10000; not with --npz)")
    f3.add_argument("--no-trajectories", action="store_true", help="omit panel (b)")
    _output(f3)
    f4 = sub.add_parser("lorenz-fig4", help="Figure 4: adjoint-state error")
    f4.add_argument("--max-steps", type=positive, default=1000,
                    help="panel (a) up to n, drawn (1000)")
    f4.add_argument("--stride", type=positive, default=1,
                    help="panel (a) every this n from 1 (1)")
    f4.add_argument("--starts", type=positive, default=20, help="random x0 per point (20)")
    f4.add_argument("--reload-steps", type=positive, default=10_000,
                    help="panel (b) n, >= 20 (10000)")
    f4.add_argument("--seed", type=count, default=0, help="random seed, >= 0 (0)")
    _output(f4)
    pm = sub.add_parser("pml", help="PML snapshots + shot gather, or the gradient w.r.t. c")
    pm.add_argument("--size", type=_at_least(_LEAST_SIZE, "two 12-cell PML bands and an interior"),
                    default=200, help="grid nx = ny, >= 32 (200)")
    pm.add_argument("--steps", type=positive, help="time steps (default: scaled paper run)")
    pm.add_argument("--times", type=positive, nargs="+", help="snapshot steps")
    pm.add_argument("--pebbles", "--budget", dest="budget", type=budget_flag,
                    help="treeverse budget S of --panel gradient (20)")
    pm.add_argument("--panel", choices=("snapshots", "gradient"), default="snapshots",
                    help="wavefield snapshots with the shot gather, or dL/dc (snapshots)")
    _output(pm)
    f5 = sub.add_parser("fig5", help="Figure 5: time against peak memory from a benchmark JSON")
    f5.add_argument("json", help="output of `python benchmarks/bench_pml.py --fig5 --json "
                                 "OUT` (a script of the source checkout)")
    f5.add_argument("--no-model", action="store_true", help="omit the dashed model times")
    f5.add_argument("--title", help="figure title (default: from the benchmark's size)")
    _output(f5)
    return p


#: Panel (b) of ``lorenz-fig3`` (a 3-D line of n + 1 points per marked point): points
#: computed and drawn a second, faster than measured (3-D lines of 1e5 to 1e6 points
#: saved as PNG drew 2e5 to 6e5 a second) for a lower bound, and bytes a point (the
#: state, 24, and matplotlib's copies: the peak RSS grew 160 to 195 bytes a point).
_PANEL_B_POINTS_PER_SECOND = 1e6
_PANEL_B_BYTES_PER_POINT = 24 + 160


def _lorenz_fig3(args: argparse.Namespace):
    from solvers import experiments as ex

    from ._lorenz_figs import POINTS, draw_lorenz_figure3

    g = _sensitivity(args)
    paths = None if args.no_trajectories else [
        ex.lorenz_trajectory(s, r, g.beta, n=g.steps, dt=g.dt) for s, r in POINTS]
    return draw_lorenz_figure3(g.sigmas, g.rhos, g.mean_abs_grad, beta=g.beta, n=g.steps,
                               trajectories=paths)


def _sensitivity(args: argparse.Namespace):
    """The Figure 3 grid: read from ``--npz`` (finite values only) or computed, after
    :func:`_check_fig3` (a run of hours or more memory than is available is refused)."""
    from solvers import experiments as ex

    if args.npz is not None:
        check_path_given("--npz", args.npz, "name the .npz file of `python -m solvers.lorenz "
                         "sensitivity --out`, e.g. --npz map.npz, or leave --npz out to "
                         "compute the grid")
        try:
            g = ex.load_sensitivity(args.npz)
        except PebblesError as err:
            raise in_flags(err, flags={"path": "--npz"}) from None
        bad = int((~np.isfinite(g.mean_abs_grad)).sum())
        if bad:
            raise PebblesValueError(
                f"--npz {args.npz}: mean_abs_grad holds {bad} non-finite values (NaN or inf) "
                f"of {g.mean_abs_grad.size}; recompute it with `python -m solvers.lorenz "
                f"sensitivity` and a smaller --dt or fewer --steps")
        _check_fig3(args, f"--npz {args.npz} (--steps {g.steps} in the file)", 0, g.steps)
        return g
    resolution, steps = args.resolution or 201, args.steps or 10_000
    _check_fig3(args, f"--resolution {resolution} --steps {steps}", resolution, steps)
    return ex.sensitivity_grid(resolution, n=steps)


def _check_fig3(args: argparse.Namespace, what: str, resolution: int, steps: int) -> None:
    """Refuse a Figure 3 of more than an hour (:func:`solvers.lorenz.check_run_time`) or
    needing more memory than is available: the grid computed (``resolution`` points per
    axis, 0 when read from ``--npz``) and panel (b), its trajectories of ``steps + 1``
    points computed and drawn (unless ``--no-trajectories``)."""
    import numba

    from solvers import lorenz

    from ._lorenz_figs import POINTS

    paths = 0 if args.no_trajectories else len(POINTS)
    points, fix = paths * (steps + 1), _fig3_fix(resolution, paths)
    drawn = (points / _PANEL_B_POINTS_PER_SECOND, f"{points:.3g} points of panel (b) to "
             f"draw (at most {_PANEL_B_POINTS_PER_SECOND:.0e} a second)")
    lorenz.check_run_time(what, (resolution**2 + paths) * steps, fix,
                          threads=numba.get_num_threads() if resolution else 1,
                          extra=drawn if points else None)
    need = 8 * resolution**2 + _PANEL_B_BYTES_PER_POINT * points
    free = lorenz.available_memory()
    if free is not None and need > free:
        parts = ["the grid"] * bool(resolution) + [
            f"{points:.3g} points of panel (b), about {_PANEL_B_BYTES_PER_POINT} bytes each "
            "computed and drawn"] * bool(points)
        raise PebblesValueError(
            f"{what} needs about {need / 1e9:.3g} GB ({' and '.join(parts)}) but "
            f"{free / 1e9:.3g} GB is available; {fix}")


def _fig3_fix(resolution: int, paths: int) -> str:
    """What to change when :func:`_check_fig3` refuses (``resolution`` 0: ``--npz``)."""
    if not resolution:
        return ("pass --no-trajectories, or write a grid of fewer steps with `python -m "
                "solvers.lorenz sensitivity --steps N --out map.npz`")
    return ("use a smaller --resolution or fewer --steps" + ", or --no-trajectories" * bool(paths)
            + ", or compute the grid with `python -m solvers.lorenz sensitivity --force --out "
            "map.npz` and pass --npz map.npz")


def _lorenz_fig4(args: argparse.Namespace):
    from solvers import experiments as ex

    from ._lorenz_figs import draw_lorenz_figure4

    _check_fig4_points(args)
    steps = range(1, args.max_steps + 1, args.stride)
    last = [] if steps[-1] == args.max_steps else [args.max_steps]  # "up to n": n drawn
    ks = [k for k in ex.RELOAD_INTERVALS if k <= args.reload_steps]  # K > n: no reload
    _check_fig4_time(args, steps, last, ks)
    a = ex.adjoint_errors_vs_steps([*steps, *last], starts=args.starts, seed=args.seed)
    b = ex.adjoint_errors_vs_reload(ks, n=args.reload_steps, starts=args.starts,
                                    seed=args.seed)
    return draw_lorenz_figure4(a, b, reload_steps=args.reload_steps)


def _check_fig4_points(args: argparse.Namespace) -> None:
    """Refuse a panel of Figure 4 that would have one point: (a) draws n = 1, 1 +
    stride, ... and ``--max-steps`` (two points at least from ``--max-steps 2``); (b) the
    reload intervals K <= ``--reload-steps``."""
    from solvers.experiments import RELOAD_INTERVALS

    if args.max_steps < 2:
        raise PebblesValueError(f"--max-steps {args.max_steps} leaves panel (a) one "
                                f"point; give --max-steps 2 or more")
    if args.reload_steps < RELOAD_INTERVALS[1]:
        raise PebblesValueError(
            f"--reload-steps {args.reload_steps} leaves panel (b) one point (its reload "
            f"intervals K <= n: only K = 1 of {', '.join(map(str, RELOAD_INTERVALS))}); give "
            f"--reload-steps {RELOAD_INTERVALS[1]} or more")


def _check_fig4_time(args: argparse.Namespace, steps: range, last: list[int],
                     ks: list[int]) -> None:
    """Refuse a Figure 4 of more than an hour (:func:`solvers.lorenz.check_run_time`): each
    start and point (``steps`` and ``last``) runs forward mode (n steps) and the adjoint
    state (2n steps)."""
    from solvers.lorenz import check_run_time

    total = len(steps) * (steps[0] + steps[-1]) // 2 + sum(last)  # no loop over steps
    point_steps = 3 * args.starts * (total + len(ks) * args.reload_steps)
    check_run_time(f"--max-steps {args.max_steps} --stride {args.stride} --starts "
                   f"{args.starts} --reload-steps {args.reload_steps}", point_steps,
                   "use a smaller --max-steps or --reload-steps, a larger --stride or fewer "
                   "--starts")


def _check_pml(args: argparse.Namespace, cfg: Any, times: list[int], budget: int | None
               ) -> None:
    """Refuse ``--times`` past the last step, and a run needing more memory than is
    available (:func:`solvers.pml.memory_estimate` plus the snapshots)."""
    from pebbles import schedule
    from solvers import pml

    from ._pml_figs import check_times

    check_times(times, cfg, "--times")
    try:
        moves = None if budget is None else schedule("treeverse", cfg.steps, budget=budget)
    except PebblesError as err:
        raise in_flags(err, "--steps") from None
    est = pml.memory_estimate(cfg, moves)
    need = est.total + 8 * len(times) * cfg.shape[0] * cfg.shape[1]
    available = pml.available_memory()
    if available is not None and need > available:
        flags = (f"--size {args.size}" + (f" --steps {args.steps}" if args.steps else "")
                 + (f" --pebbles {budget}" if moves else ""))
        fixes = (["a smaller --size"] * (args.size > _LEAST_SIZE)
                 + ["fewer --steps"] * (cfg.steps > 1)
                 + (["a smaller --pebbles"] if moves else ["fewer --times"]))
        raise PebblesValueError(
            f"{flags} needs about {need / 1e9:.3g} GB ({est.states} state arrays, the grids, "
            f"the recordings of {cfg.steps} steps and {len(times)} snapshots) but "
            f"{available / 1e9:.3g} GB is available; use "
            + " or ".join(filter(None, (", ".join(fixes[:-1]), fixes[-1]))))


def _scaled_config(args: argparse.Namespace) -> Any:
    """The run of ``--size`` (and ``--steps``); the library's refusal worded in flags
    (:func:`~pebbles.cli.in_flags`), ``--size`` named where it set the steps."""
    from solvers import experiments as ex

    try:
        return ex.scaled_config(args.size, **({} if args.steps is None
                                               else {"steps": args.steps}))
    except PebblesError as err:
        worded = in_flags(err, "--steps", {"steps": "--steps"})
        if args.steps is not None:
            raise worded from None
        raise PebblesValueError(f"--size {args.size} (the run's steps scaled to it, no "
                                f"--steps given): {worded}; or use a smaller --size") from None


def _pml(args: argparse.Namespace):
    from solvers import experiments as ex

    from . import _pml_figs as pf

    cfg = _scaled_config(args)
    times = args.times or [max(1, round(cfg.steps * f)) for f in (0.2, 0.35, 0.5, 0.7)]
    budget = (20 if args.budget is None else args.budget) if args.panel == "gradient" else None
    _check_pml(args, cfg, times, budget)
    data = ex.pml_experiment(cfg, times, budget=budget)
    if args.panel == "gradient":
        return pf.draw_pml_gradient(data.grad_c, cfg, c_true=data.c_true)
    return pf.draw_pml_snapshots(data.snapshots, data.times, cfg, traces=data.traces)


def fig5_records(path: str | Path) -> list[dict[str, Any]]:
    """The ``["fig5"]["records"]`` of a benchmark JSON file (``bench_pml.py --fig5 --json``)."""
    try:
        records = json.loads(Path(path).read_text())["fig5"]["records"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PebblesValueError(
            f"path={str(path)!r} has no readable ['fig5']['records'] ({type(err).__name__}: "
            f"{err}); write it with `python benchmarks/bench_pml.py --fig5 --json OUT` in a "
            f"source checkout of pebbles (the benchmarks are not installed)") from None
    return records


def _fig5(args: argparse.Namespace):
    from ._fig5 import draw_figure5
    from ._game import check_title

    check_title(args.title, "--title")
    try:
        records = fig5_records(args.json)
    except PebblesError as err:
        raise in_flags(err, flags={"path": "the JSON file"}) from None
    return draw_figure5(records, model=not args.no_model, title=args.title)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, draw, save; return the exit status (2 on bad input, 130 on Ctrl-C)."""
    return run_command(_parser(), argv, _run)


#: Flags a subcommand leaves unused in some cases:
#: command -> [({flag: dest}, unused?, when), ...].
_UNUSED = {"lorenz-fig3": [({"--resolution": "resolution", "--steps": "steps"},
                            lambda a: a.npz is not None,
                            "with --npz (the grid is read from the file)")],
           "pml": [({"--pebbles": "budget"}, lambda a: a.panel != "gradient",
                    "without --panel gradient (the snapshots take no schedule)"),
                   ({"--times": "times"}, lambda a: a.panel == "gradient",
                    "with --panel gradient (it draws no snapshots)")]}


def _check_unused(args: argparse.Namespace) -> None:
    """Refuse flags that the other flags leave unused (one line naming them)."""
    for flags, unused, when in _UNUSED.get(args.command, ()):
        given = [flag for flag, dest in flags.items() if getattr(args, dest) is not None]
        if given and unused(args):
            it = "it" if len(given) == 1 else "them"
            raise PebblesValueError(f"{' '.join(given)}: not used {when}; leave {it} out")


def _run(args: argparse.Namespace) -> str:
    _check_unused(args)
    check_output(args.output)
    matplotlib_required(args.command, solvers=args.command != "fig5")
    draw = {"lorenz-fig3": _lorenz_fig3, "lorenz-fig4": _lorenz_fig4, "pml": _pml,
            "fig5": _fig5}[args.command]
    from ._game import save

    return f"wrote {save(draw(args), args.output, dpi=args.dpi)}"


if __name__ == "__main__":
    sys.exit(main())
