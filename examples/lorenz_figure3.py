"""Render the paper's Figure 3: Lorenz sensitivity map and two trajectories.

(a) Mean |d x_n / d (x0, y0, z0, sigma, rho, beta)| by forward mode on the
paper's grid sigma = 0:0.1:20, rho = 0:0.25:50 (201 x 201), n = 10^4 RK4 steps
of dt = 3e-3, beta = 8/3, log colour scale, with the curve
rho = sigma (sigma + beta + 3) / (sigma - beta - 1) and the points (10, 27) and
(10, 15); (b) the trajectories at those points (Liu & Xu, Figure 3). The data
come from ``solvers.experiments``, the drawing from ``visualize``.
About 15 s on two cores (the grid), or instant from a saved grid.

Usage: python examples/lorenz_figure3.py [OUTPUT.png] [--npz=map.npz] [--resolution=R]
       [--dpi=N]   (docs/img/lorenz_figure3.png is made with --dpi=80)
The grid can be saved with
``python -m solvers.lorenz sensitivity --resolution 201 --out map.npz``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from _args import add_dpi, flag_errors, guarded, output, parser, require, visualize

from pebbles.cli import positive

require("examples/lorenz_figure3.py", solvers=True)  # names both extras before the import
from solvers import experiments  # noqa: E402

POINTS = ((10.0, 27.0), (10.0, 15.0))  # the marked (sigma, rho) of the paper's Figure 3


@guarded
def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("output", nargs="?", default="lorenz_figure3.png", metavar="OUTPUT",
                   help="image file; its extension picks the format (default "
                   "lorenz_figure3.png)")
    p.add_argument("--npz", default=None, metavar="MAP.npz",
                   help="a saved grid (python -m solvers.lorenz sensitivity --out MAP.npz) "
                   "instead of computing one")
    p.add_argument("--resolution", type=positive, default=201, metavar="R",
                   help="grid points per axis when computing (default 201, the paper's)")
    add_dpi(p)
    args = p.parse_args(argv)
    out = output(p, args.output)
    start = time.perf_counter()
    g = grid(p, args)
    paths = [experiments.lorenz_trajectory(s, r, g.beta, n=g.steps, dt=g.dt) for s, r in POINTS]
    fig = visualize.draw_lorenz_figure3(g.sigmas, g.rhos, g.mean_abs_grad, beta=g.beta,
                                        n=g.steps, points=POINTS, trajectories=paths)
    visualize.save(fig, out, dpi=args.dpi)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s; mean |gradient| from "
          f"{g.mean_abs_grad.min():.2g} to {g.mean_abs_grad.max():.2g}")


def grid(p: argparse.ArgumentParser, args: argparse.Namespace) -> experiments.SensitivityGrid:
    """The saved grid of ``--npz``, or one computed at ``--resolution``; the library's
    refusal of either is ``p.error`` naming the flag."""
    if args.npz is None:
        with flag_errors(p, "--resolution"):
            return experiments.sensitivity_grid(args.resolution)
    with flag_errors(p, "--npz"):
        return experiments.load_sensitivity(args.npz)


if __name__ == "__main__":
    main()
