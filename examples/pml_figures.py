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

import sys
import time
from pathlib import Path

try:
    import visualize
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import visualize
from solvers import experiments


def main(argv: list[str]) -> None:
    dpi = next((int(a.split("=")[1]) for a in argv if a.startswith("--dpi=")), 100)
    size = next((int(a.split("=")[1]) for a in argv if a.startswith("--size=")), 200)
    paths = [a for a in argv if not a.startswith("--")]
    outdir = Path(paths[0] if paths else ".")
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cfg = experiments.scaled_config(size)
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
    main(sys.argv[1:])
