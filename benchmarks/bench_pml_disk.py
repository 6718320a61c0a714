"""The PML gradient with memory plus disk against memory only (issue: two-level checkpointing).

Each configuration runs ``python -m solvers.pml gradient ... --json`` in a fresh
process (so its peak RSS is its own), side by side in one run:

* memory only, Treeverse with S = 4 and S = 20;
* two-level with 4 memory states plus an unbounded disk in ``--disk-dir`` (a temporary
  directory by default; the write and read costs are measured on it by the solver).

Recorded: wall time of the gradient, peak RSS, forward steps, disk writes and reads and
the bytes moved. Goal: with 4 memory states plus disk, within 1.3x the time of
memory-only S = 20 while its peak RSS stays near 5 states.

Usage: python benchmarks/bench_pml_disk.py [--size 1000] [--steps 2000] [--disk-dir DIR]
       [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from _common import machine_info, write_results


def run_one(size: int, steps: int, extra: list[str]) -> dict:
    """One gradient in a fresh process; its JSON record."""
    argv = [sys.executable, "-m", "solvers.pml", "gradient", "--nx", str(size), "--ny",
            str(size), "--steps", str(steps), "--json", *extra]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--disk-dir", default=None)
    p.add_argument("--json", default="benchmarks/results/bench_pml_disk.json")
    args = p.parse_args(argv)
    state_mb = 4 * (args.size + 2) ** 2 * 8 / 1e6
    with tempfile.TemporaryDirectory(dir=args.disk_dir) as disk:
        configs = {
            "memory S=20": ["--method", "treeverse", "--pebbles", "20"],
            "memory S=4": ["--method", "treeverse", "--pebbles", "4"],
            "memory 4 + disk": ["--method", "two-level", "--pebbles", "4", "--disk-slots",
                                "inf", "--disk-dir", disk],
        }
        rows = []
        for name, extra in configs.items():
            r = run_one(args.size, args.steps, extra)
            rows.append({"config": name, **{k: r.get(k) for k in (
                "seconds", "peak_rss_mb", "forward_steps", "peak_states", "writes", "reads",
                "bytes_written", "bytes_read", "options")}})
            print(f"{name:<18} {r['seconds']:8.2f} s  peak RSS {r['peak_rss_mb']:8.1f} MB  "
                  f"forward {r['forward_steps']}  writes {r.get('writes', 0)}", flush=True)
    base = rows[0]["seconds"]
    for r in rows:
        r["time_over_memory_s20"] = r["seconds"] / base
        r["peak_rss_states"] = r["peak_rss_mb"] / state_mb
    write_results(args.json, {"machine": machine_info(), "size": args.size,
                              "steps": args.steps, "state_mb": state_mb, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
