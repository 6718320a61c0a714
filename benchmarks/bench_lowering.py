"""The schedule path's speed: generating, checking and lowering Treeverse, against Multistage.

Measured side by side in one run (ratios come from the same run):

* ``lower``: ``pebbles.lower(pebbles.schedule("treeverse", n, budget=S, inplace=True))``
  -- generate (the block-cached encoder), check with the simulator's rules and assign
  every state a slot -- in process, warm (best of ``--repeats``), and cold: a fresh
  process that imports pebbles and lowers once (Numba's import and its cached compiled
  rule loop included).
* ``count``: generating and counting the forward steps of the in-place Treeverse
  schedule, both sides streamed and counted: ours as encoded chunks
  (``pebbles._treeverse.treeverse_chunks``), checkpoint_schedules'
  ``MultistageCheckpointSchedule(n, S, 0)`` iterated to ``EndReverse``, counting its
  ``Forward`` actions' steps.
* ``process``: whole processes, ``python -m pebbles schedule treeverse --inplace -n N
  --pebbles S --format summary`` (checked by the simulator's rules; the same Python as
  this script) against a process that imports checkpoint_schedules and iterates
  Multistage(N, S) to EndReverse.

The processes run from the repository root with it first on ``PYTHONPATH``, so they
time this checkout's pebbles. When checkpoint_schedules is not installed, its columns are
empty and ``checkpoint_schedules`` records it as missing (with the import error).

Every in-process timing is the best of ``--repeats`` calls after one untimed warm-up
call. The script prints a Markdown table with the machine and the command; a file is
written only with ``--json OUT``.

Usage: python benchmarks/bench_lowering.py [--quick] [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _common import (
    best_of,
    import_peer,
    machine_info,
    machine_markdown,
    output_file,
    package_version,
    publish,
    run_child,
)

import pebbles
from pebbles._treeverse import treeverse_chunks
from pebbles.cli import positive

MULTISTAGE = """
import sys
sys.path.insert(0, sys.argv[3])
from bench_lowering import count_multistage
print(count_multistage(int(sys.argv[1]), int(sys.argv[2])))
"""

LOWER_COLD = """
import sys, pebbles
n, s = int(sys.argv[1]), int(sys.argv[2])
p = pebbles.lower(pebbles.schedule("treeverse", n, budget=s, inplace=True))
print(p.forward_steps)
"""


def count_ours(n: int, s: int) -> int:
    """Forward steps of the streamed in-place Treeverse chunks."""
    total = 0
    for c in treeverse_chunks(n, s, inplace=True):
        fwd = c[:, 0] == pebbles.MoveKind.FORWARD
        total += int((c[fwd, 2] - c[fwd, 1]).sum())
    return total


def count_multistage(n: int, s: int) -> int:
    """Forward steps of checkpoint_schedules' Multistage schedule (in process)."""
    from checkpoint_schedules import EndReverse, Forward, MultistageCheckpointSchedule

    steps = 0
    for action in MultistageCheckpointSchedule(n, s, 0):
        if isinstance(action, Forward):
            steps += action.n1 - action.n0
        elif isinstance(action, EndReverse):
            break
    return steps


def wall(argv: list[str], repeats: int) -> tuple[float, str]:
    """Best wall time of a whole process and its output."""
    best, out = float("inf"), ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = run_child(argv, timeout=600)
        best = min(best, time.perf_counter() - t0)
        out = res.stdout.strip().splitlines()[-1]
    return best, out


def measure(n: int, s: int, repeats: int, peer: bool = True) -> dict:
    """One row at (n, S); the Multistage columns are None when not ``peer`` (missing)."""
    row: dict = {"n": n, "budget": s}
    sched = pebbles.schedule("treeverse", n, budget=s, inplace=True)
    prog = pebbles.lower(sched)
    row["lower_warm_s"] = best_of(lambda: pebbles.lower(sched), repeats)[0]
    row["lower_cold_process_s"], _ = wall([sys.executable, "-c", LOWER_COLD, str(n), str(s)],
                                          repeats)
    row["forward_steps"] = prog.forward_steps - 1  # the extra step of the seed left out
    row["optimum"] = pebbles.min_forward_steps(n, s, "inplace")
    row["count_ours_s"] = best_of(lambda: count_ours(n, s), repeats)[0]
    row["count_ours"] = count_ours(n, s)
    row.update(count_multistage_s=None, count_multistage=None, count_ratio=None)
    if peer:
        row["count_multistage_s"] = best_of(lambda: count_multistage(n, s), repeats)[0]
        row["count_multistage"] = count_multistage(n, s) - n  # it tapes each step once more
        row["count_ratio"] = row["count_multistage_s"] / row["count_ours_s"]
    ours = [sys.executable, "-m", "pebbles", "schedule", "treeverse", "--inplace", "-n", str(n),
            "--pebbles", str(s), "--format", "summary"]
    row["process_ours_s"], _ = wall(ours, repeats)
    row.update(process_multistage_s=None, process_ratio=None)
    if peer:
        here = str(Path(__file__).resolve().parent)
        row["process_multistage_s"], _ = wall(
            [sys.executable, "-c", MULTISTAGE, str(n), str(s), here], repeats)
        row["process_ratio"] = row["process_multistage_s"] / row["process_ours_s"]
    return row


def _s(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(result: dict) -> str:
    """The rows as a Markdown table, the peer's version, the command and the machine."""
    lines = ["| n | S | lower warm s | lower cold process s | count ours s | count Multistage s "
             "| ratio | process ours s | process Multistage s | ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['n']} | {r['budget']} | {_s(r['lower_warm_s'])} | "
                     f"{_s(r['lower_cold_process_s'])} | {_s(r['count_ours_s'])} | "
                     f"{_s(r['count_multistage_s'])} | {_s(r['count_ratio'], '.1f')} | "
                     f"{_s(r['process_ours_s'])} | {_s(r['process_multistage_s'])} | "
                     f"{_s(r['process_ratio'], '.2f')} |")
    return "\n".join([*lines, "", f"checkpoint_schedules: {result['checkpoint_schedules']}",
                      "", machine_markdown(result["machine"])])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="n = 10^5 only, 2 repeats")
    p.add_argument("--repeats", type=positive, default=None,
                   help="timing repeats, best kept (default 3, 2 with --quick)")
    p.add_argument("--json", type=output_file, default=None, metavar="OUT",
                   help="write the result as JSON to OUT (default: no file)")
    args = p.parse_args(argv)
    sizes = [10**5] if args.quick else [10**5, 10**6]
    repeats = args.repeats if args.repeats is not None else 2 if args.quick else 3
    _, missing = import_peer("checkpoint_schedules")
    rows = [measure(n, 10, repeats, peer=missing is None) for n in sizes]
    info = machine_info(("numpy", "numba", "checkpoint_schedules"))
    result = {"machine": info, "mode": "quick" if args.quick else "full", "rows": rows,
              "checkpoint_schedules": missing or package_version("checkpoint_schedules")}
    return publish(args.json, result, markdown(result))


if __name__ == "__main__":
    sys.exit(main())
