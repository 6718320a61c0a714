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

import sys
import time
from pathlib import Path

try:
    import visualize
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import visualize


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    dpi = next((int(a.split("=")[1]) for a in argv if a.startswith("--dpi=")), 100)
    paths = [a for a in argv if not a.startswith("--")]
    out = paths[0] if paths else "tradeoff.png"
    ns = (100, 10**4) if quick else (100, 10**4, 10**6)
    start = time.perf_counter()
    fig = visualize.draw_tradeoff(ns)
    visualize.save(fig, out, dpi=dpi)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
