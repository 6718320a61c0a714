"""Render the paper's Figure 4: the error of the adjoint-state method (Lorenz).

(a) Relative l2 error of the adjoint-state gradient d x_n / d x0 against the
exact (forward-mode) gradient for n = 1..1000 steps, median over 20 random
starts x0 ~ N(0, I) with the 25-75 % band; it grows exponentially until the
backward integration overflows. (b) The same at n = 10^4 when the adjoint run
reloads the stored forward state every K steps, K in {1, 20, 50, 100, ..., 500}
(Liu & Xu, Figure 4; paper: about 1e-10 at 1 step, 4e-8 at 100, 3e-4 at 500,
0.6 at 700, overflow beyond ~760; 1e-5 at K = 200). About 10 s.

Usage: python examples/lorenz_figure4.py [OUTPUT.png] [--starts=N] [--quick] [--dpi=N]
(docs/img/lorenz_figure4.png is made with --dpi=80)
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from _args import add_dpi, guarded, output, parser, require, visualize

from pebbles.cli import positive

require("examples/lorenz_figure4.py", solvers=True)  # names both extras before the import
from solvers import experiments  # noqa: E402


@guarded
def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("output", nargs="?", default="lorenz_figure4.png", metavar="OUTPUT",
                   help="image file; its extension picks the format (default "
                   "lorenz_figure4.png)")
    p.add_argument("--starts", type=positive, default=20, metavar="N",
                   help="random starts x0 (default 20, the paper's)")
    p.add_argument("--quick", action="store_true", help="every 10th n in panel (a)")
    add_dpi(p)
    args = p.parse_args(argv)
    out = output(p, args.output)
    start = time.perf_counter()
    a = experiments.adjoint_errors_vs_steps(range(1, 1001, 10 if args.quick else 1),
                                            starts=args.starts)
    b = experiments.adjoint_errors_vs_reload(starts=args.starts)
    visualize.save(visualize.draw_lorenz_figure4(a, b), out, dpi=args.dpi)
    med = dict(zip(a[0].tolist(), np.median(a[1], axis=1), strict=True))
    kb = dict(zip(b[0].tolist(), np.median(b[1], axis=1), strict=True))
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s; median error at n=1: "
          f"{med.get(1, np.nan):.2g}, n=101: {med.get(101, np.nan):.2g}, n=501: "
          f"{med.get(501, np.nan):.2g}, n=701: {med.get(701, np.nan):.2g}; K=200 at "
          f"n=10^4: {kb.get(200, np.nan):.2g}")


if __name__ == "__main__":
    main()
