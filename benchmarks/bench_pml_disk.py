"""The PML gradient with memory plus disk against memory only (issue: two-level checkpointing).

Each configuration runs ``python -m solvers.pml gradient ... --json`` in a fresh
process (so its peak RSS is its own), side by side in one run, in ``--rounds``
interleaved rounds (each round runs every configuration once). A configuration's row
is its median-time round (with an even number of rounds, the faster of the two middle
ones): its time, peak RSS, steps, writes, reads and bytes all come from that one run,
``median_round`` says which (counted from 1), and ``seconds_each``, ``peak_rss_mb_each``
and ``writes_each`` list every round's:

* memory only, Treeverse with S = 4 and S = 20;
* memory only, Treeverse with S = 20 in the in-place game (``--inplace``: a step may
  overwrite its input, which the PML kernels do faster than a step into another buffer);
* two-level with 4 memory states plus an unbounded disk in ``--disk-dir`` (a temporary
  directory by default; the write and read costs are measured on it by the solver), in
  the checkpoint and in the in-place game, and in the in-place game with the schedule
  picked for writes in the background (``--background-writes``: the executor's writer
  thread hides a write behind the steps, so the optimum of a lower write price may be
  faster; :mod:`pebbles._background`).

Recorded: wall time of the gradient, peak RSS, forward steps, disk writes and reads and
the bytes moved. Goal: with 4 memory states plus disk, within 1.3x the time of
memory-only S = 20 (the faster game) while its peak RSS stays near that of memory-only
S = 4 (the store copies each state into a free buffer of the executor's when there is
one, and adds at most ``queue_size = 1`` state of its own when there is none).

A file is written only with ``--json OUT``.

Usage: python benchmarks/bench_pml_disk.py [--size 1000] [--steps 2000] [--rounds 3]
       [--disk-dir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from _common import machine_info, write_results

CONFIGS = {
    "memory S=20": ["--method", "treeverse", "--pebbles", "20"],
    "memory S=20 in-place": ["--method", "treeverse", "--pebbles", "20", "--inplace"],
    "memory S=4": ["--method", "treeverse", "--pebbles", "4"],
    "memory 4 + disk": ["--method", "two-level", "--pebbles", "4", "--disk-slots", "inf"],
    "memory 4 + disk in-place": ["--method", "two-level", "--pebbles", "4", "--disk-slots",
                                 "inf", "--inplace"],
    "memory 4 + disk in-place, background writes": [
        "--method", "two-level", "--pebbles", "4", "--disk-slots", "inf", "--inplace",
        "--background-writes"],
}
FIELDS = ("seconds", "peak_rss_mb", "forward_steps", "peak_states", "writes", "reads",
          "bytes_written", "bytes_read", "options")


def run_one(size: int, steps: int, extra: list[str]) -> dict:
    """One gradient in a fresh process; its JSON record."""
    argv = [sys.executable, "-m", "solvers.pml", "gradient", "--nx", str(size), "--ny",
            str(size), "--steps", str(steps), "--json", *extra]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_all(size: int, steps: int, disk_dir: str | None, rounds: int) -> list[dict]:
    """Every configuration, one fresh process each, in interleaved rounds; one row a
    configuration (:func:`median_row`)."""
    runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory(dir=disk_dir) as disk:
        for k in range(rounds):
            for name, extra in CONFIGS.items():
                where = ["--disk-dir", disk] if "disk" in name else []
                r = run_one(size, steps, [*extra, *where])
                runs[name].append(r)
                print(f"round {k + 1}/{rounds}  {name:<26} {r['seconds']:8.2f} s  peak RSS "
                      f"{r['peak_rss_mb']:8.1f} MB  forward {r['forward_steps']}  writes "
                      f"{r.get('writes', 0)}", flush=True)
    return [median_row(name, rs) for name, rs in runs.items()]


def median_row(name: str, runs: list[dict]) -> dict:
    """The row of one configuration: every field of its median-time run (the lower
    median, a run that happened), then each round's time, peak RSS and writes."""
    order = sorted(range(len(runs)), key=lambda k: runs[k]["seconds"])
    mid = order[(len(runs) - 1) // 2]
    return {"config": name, **{k: runs[mid].get(k) for k in FIELDS},
            "median_round": mid + 1, "seconds_each": [r["seconds"] for r in runs],
            "peak_rss_mb_each": [r["peak_rss_mb"] for r in runs],
            "writes_each": [r.get("writes") for r in runs]}


def summarize(rows: list[dict], state_mb: float) -> dict:
    """Ratios to the faster memory-only S = 20 run and RSS above memory-only S = 4."""
    by = {r["config"]: r for r in rows}
    base = min(by["memory S=20"]["seconds"], by["memory S=20 in-place"]["seconds"])
    small = by["memory S=4"]["peak_rss_mb"]
    for r in rows:
        r["time_over_memory_s20"] = r["seconds"] / base
        r["peak_rss_states"] = r["peak_rss_mb"] / state_mb
        r["rss_over_memory_s4_states"] = (r["peak_rss_mb"] - small) / state_mb
    best = min((r for r in rows if "disk" in r["config"]), key=lambda r: r["seconds"])
    return {"best_disk": best["config"], "goals": {
        "memory 4 + disk within 1.3x the time of memory-only S=20":
            best["time_over_memory_s20"] <= 1.3,
        "its peak RSS within half a state of memory-only S=4 (5 states)":
            best["rss_over_memory_s4_states"] <= 0.5}}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds; a configuration's time is its median")
    p.add_argument("--disk-dir", default=None)
    p.add_argument("--json", default=None, metavar="OUT",
                   help="write the result as JSON to OUT (default: no file)")
    args = p.parse_args(argv)
    state_mb = 4 * (args.size + 2) ** 2 * 8 / 1e6
    rows = run_all(args.size, args.steps, args.disk_dir, max(1, args.rounds))
    summary = summarize(rows, state_mb)
    print(json.dumps(summary["goals"]))
    write_results(args.json, {"machine": machine_info(), "size": args.size,
                              "steps": args.steps, "rounds": max(1, args.rounds),
                              "state_mb": state_mb, "rows": rows,
                              **summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
