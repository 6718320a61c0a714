"""Render the PML figures: wavefield snapshots with the shot gather, and dL/dc.

The paper's PML experiment (Liu & Xu, section 4.2) scaled to 200 x 200: the
same 200 x 200 domain, 12-cell PML, Ricker source at (nx/2, ny/5), 200
detectors on row ny/5 and three-layer true model, with dt and the number of
steps scaled so the wavelet keeps its cells per wavelength and the run its
final time (dt = 5.02e-5, 1992 steps). Writes

* pml_snapshots.png -- u at four steps in the true model (PML band dashed,
  source, detector row and layer interfaces marked) and the shot gather;
* pml_gradient.png -- the true model and the gradient of the running misfit
  with respect to c at the uniform model c = 3300^2, by reverse mode through
  treeverse with S = 20 (symmetric diverging colour scale).

About 5 s. Usage: python examples/pml_figures.py [OUTPUT_DIR] [--size=N] [--dpi=N]
(docs/img/ holds the two images made with --dpi=80).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from _args import add_dpi, guarded, parser, require, visualize

from pebbles.cli import at_least

require("examples/pml_figures.py", solvers=True)  # names both extras before the import
from solvers import experiments  # noqa: E402


@guarded
def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("outdir", nargs="?", default=".", metavar="OUTPUT_DIR",
                   help="directory of the two images, created when absent (default .)")
    p.add_argument("--size", type=at_least(32), default=200, metavar="N",
                   help="grid points a side (default 200; at least 32: two 12-cell PML "
                        "bands and an interior)")
    add_dpi(p)
    args = p.parse_args(argv)
    outdir, dpi = Path(args.outdir), args.dpi
    if outdir.exists() and not outdir.is_dir():
        p.error(f"argument OUTPUT_DIR: {args.outdir!r} is a file; name a directory")
    cfg = experiments.scaled_config(args.size)  # --size >= 32: checked by its type
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    times = [round(cfg.steps * f) for f in (0.2, 0.35, 0.5, 0.7)]
    data = experiments.pml_experiment(cfg, times, budget=20)
    fig = visualize.draw_pml_snapshots(data.snapshots, times, cfg, traces=data.traces)
    visualize.save(fig, outdir / "pml_snapshots.png", dpi=dpi)
    fig = visualize.draw_pml_gradient(data.grad_c, cfg, c_true=data.c_true)
    visualize.save(fig, outdir / "pml_gradient.png", dpi=dpi)
    print(f"wrote {outdir / 'pml_snapshots.png'} and {outdir / 'pml_gradient.png'} in "
          f"{time.perf_counter() - start:.1f} s ({cfg.nx} x {cfg.ny}, {cfg.steps} steps, "
          f"loss {data.loss:.4g})")


if __name__ == "__main__":
    main()
