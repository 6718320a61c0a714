"""Render the paper's Figure 5: PML gradient time against peak memory.

Reads the JSON of ``python benchmarks/bench_pml.py --fig5 --json bench.json``
(or the GPU benchmark's, which writes the same record keys under ``"fig5"``)
and draws, per schedule family (treeverse, treeverse in-place, bennett), the
measured time against the peak number of states held and against the traced
peak memory in MB, each point labelled with its S or k, the step-count model
dashed (Liu & Xu, Figure 5). Instant.

Usage: python examples/figure5.py BENCH.json [OUTPUT.png] [--dpi=N]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

try:
    import visualize
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import visualize


def main(argv: list[str]) -> None:
    dpi = next((int(a.split("=")[1]) for a in argv if a.startswith("--dpi=")), 100)
    paths = [a for a in argv if not a.startswith("--")]
    if not paths:
        sys.exit("usage: python examples/figure5.py BENCH.json [OUTPUT.png] [--dpi=N]")
    out = paths[1] if len(paths) > 1 else "figure5.png"
    start = time.perf_counter()
    records = json.loads(Path(paths[0]).read_text())["fig5"]["records"]
    visualize.save(visualize.draw_figure5(records), out, dpi=dpi)
    print(f"wrote {out} from {len(records)} records in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
