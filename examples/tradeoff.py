"""Render the paper's Figure 8, extended: memory against time overhead T'/T.

For n = 10^2, 10^4 and 10^6 the top panels show the fewest pebbles each method
needs at a given T'/T = forward steps / n (exact counts from the library; the
paper's continuous approximations dashed); the bottom panel is Bennett's memory
over Treeverse's at equal T'/T (Liu & Xu, Figure 8). The three panels take about 8 s
on a 2-core machine.

Usage: python examples/tradeoff.py [OUTPUT.png] [--quick] [--dpi=N]
(docs/img/tradeoff.png is made with the default --dpi=100).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from _args import add_dpi, guarded, output, parser, require, visualize


@guarded
def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("output", nargs="?", default="tradeoff.png", metavar="OUTPUT",
                   help="image file; its extension picks the format (default tradeoff.png)")
    p.add_argument("--quick", action="store_true", help="n = 10^2 and 10^4 only")
    add_dpi(p)
    args = p.parse_args(argv)
    require("examples/tradeoff.py")
    out = output(p, args.output)
    ns = (100, 10**4) if args.quick else (100, 10**4, 10**6)
    start = time.perf_counter()
    fig = visualize.draw_tradeoff(ns)
    visualize.save(fig, out, dpi=args.dpi)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
