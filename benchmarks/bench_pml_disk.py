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

The script prints a Markdown table of the rows with the machine and the command, and
exits 1 when a goal does not hold; a file is written only with ``--json OUT``.

Usage: python benchmarks/bench_pml_disk.py [--size 1000] [--steps 2000] [--rounds 3]
       [--disk-dir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _common import machine_info, machine_markdown, output_file, publish, run_child

from pebbles.cli import at_least, positive

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
    """One gradient in a fresh process of this checkout's solvers (:func:`run_child`);
    its JSON record."""
    argv = [sys.executable, "-m", "solvers.pml", "gradient", "--nx", str(size), "--ny",
            str(size), "--steps", str(steps), "--json", *extra]
    out = run_child(argv, timeout=3600)
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


def markdown(result: dict) -> str:
    """The rows as a Markdown table, the goals, then the command and the machine."""
    lines = [f"PML gradient, {result['size']} x {result['size']} x {result['steps']} steps, "
             f"{result['rounds']} round(s), median round per row:", "",
             "| config | s | x memory S=20 | peak RSS MB | peak states | forward | writes "
             "| reads |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['config']} | {r['seconds']:.2f} | "
                     f"{r['time_over_memory_s20']:.2f} | {r['peak_rss_mb']:.1f} | "
                     f"{r.get('peak_states')} | {r.get('forward_steps')} | "
                     f"{r.get('writes') or 0} | {r.get('reads') or 0} |")
    lines += ["", f"Fastest with disk: {result['best_disk']}. Goals: " + "; ".join(
        f"{goal}: {'yes' if met else 'NO'}" for goal, met in result["goals"].items()),
        "", machine_markdown(result["machine"])]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=at_least(2), default=1000, help="nx = ny")
    p.add_argument("--steps", type=positive, default=2000, help="time steps")
    p.add_argument("--rounds", type=positive, default=3,
                   help="interleaved rounds; a configuration's time is its median")
    p.add_argument("--disk-dir", default=None)
    p.add_argument("--json", type=output_file, default=None, metavar="OUT",
                   help="write the result as JSON to OUT (default: no file)")
    args = p.parse_args(argv)
    if args.disk_dir is not None and not Path(args.disk_dir).is_dir():
        p.error(f"argument --disk-dir: {args.disk_dir!r} is not a directory; give an "
                "existing directory for the disk states, or leave the flag out for a "
                "temporary one")
    state_mb = 4 * (args.size + 2) ** 2 * 8 / 1e6
    rows = run_all(args.size, args.steps, args.disk_dir, args.rounds)
    summary = summarize(rows, state_mb)
    result = {"machine": machine_info(), "size": args.size, "steps": args.steps,
              "rounds": args.rounds, "state_mb": state_mb, "rows": rows, **summary}
    return publish(args.json, result, markdown(result),
                   failed=not all(summary["goals"].values()))


if __name__ == "__main__":
    sys.exit(main())
