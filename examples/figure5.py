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

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from _args import add_dpi, guarded, output, parser, require, visualize


@guarded
def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("bench", metavar="BENCH.json",
                   help="results of benchmarks/bench_pml.py --fig5 (or of bench_gpu.py)")
    p.add_argument("output", nargs="?", default="figure5.png", metavar="OUTPUT",
                   help="image file; its extension picks the format (default figure5.png)")
    add_dpi(p)
    args = p.parse_args(argv)
    require("examples/figure5.py")
    records = fig5_records(p, args.bench)
    out = output(p, args.output)
    start = time.perf_counter()
    visualize.save(visualize.draw_figure5(records), out, dpi=args.dpi)
    print(f"wrote {out} from {len(records)} records in {time.perf_counter() - start:.1f} s")


def fig5_records(p: argparse.ArgumentParser, path: str) -> list[dict]:
    """The ``fig5`` records of the results file ``path``; ``p.error`` when it cannot be
    read, is not JSON or has none."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        p.error(f"argument BENCH.json: cannot read {path!r} as JSON ({exc}); give the file "
                "benchmarks/bench_pml.py --fig5 --json wrote")
    records = data.get("fig5", {}).get("records") if isinstance(data, dict) else None
    if not records:
        p.error(f"argument BENCH.json: {path} has no fig5 records; run "
                "benchmarks/bench_pml.py --fig5 --json FILE and give FILE")
    return records


if __name__ == "__main__":
    main()
