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

import sys
import time
from pathlib import Path

try:
    import visualize
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import visualize
from solvers import experiments

POINTS = ((10.0, 27.0), (10.0, 15.0))  # the marked (sigma, rho) of the paper's Figure 3


def _option(argv: list[str], name: str, default: str | None) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), default)


def main(argv: list[str]) -> None:
    dpi = int(_option(argv, "dpi", "100"))
    paths = [a for a in argv if not a.startswith("--")]
    out = paths[0] if paths else "lorenz_figure3.png"
    start = time.perf_counter()
    npz = _option(argv, "npz", None)
    if npz:
        g = experiments.load_sensitivity(npz)
    else:
        g = experiments.sensitivity_grid(int(_option(argv, "resolution", "201")))
    paths = [experiments.lorenz_trajectory(s, r, g.beta, n=g.steps, dt=g.dt) for s, r in POINTS]
    fig = visualize.draw_lorenz_figure3(g.sigmas, g.rhos, g.mean_abs_grad, beta=g.beta,
                                        n=g.steps, points=POINTS, trajectories=paths)
    visualize.save(fig, out, dpi=dpi)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s; mean |gradient| from "
          f"{g.mean_abs_grad.min():.2g} to {g.mean_abs_grad.max():.2g}")


if __name__ == "__main__":
    main(sys.argv[1:])
