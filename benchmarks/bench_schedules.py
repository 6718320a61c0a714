"""Schedule-generation benchmark: pebbles vs checkpoint_schedules, side by side.

Measures, for S = 10 and n = 10^5, 10^6 (``--quick``: 10^4, 10^5):

* streaming generation of the optimal in-place schedule
  ``pebbles.treeverse(n, S, inplace=True)``, consumed with ``deque(gen, maxlen=0)``;
* ``checkpoint_schedules.MultistageCheckpointSchedule(n, 0, S)`` (Revolve's
  binomial schedule; the same game), iterated until its ``EndReverse`` action;
* the paper-game ``pebbles.treeverse(n, S)`` and ``pebbles.treeverse_paper(n, S)``.

Time is the best of ``--repeats`` runs; peak Python memory is measured with
tracemalloc in a separate run (tracing slows the code down). Prints a Markdown
table and the machine it ran on; ``--json OUT`` also writes the rows.

Usage: python benchmarks/bench_schedules.py [--quick] [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable

try:
    import pebbles
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    import pebbles

try:
    import checkpoint_schedules as _cs
except ImportError:  # reported as missing in the table, never dropped
    _cs = None


def _run_ours_inplace(n: int, s: int) -> None:
    collections.deque(pebbles.treeverse(n, s, inplace=True), maxlen=0)


def _run_ours_checkpoint(n: int, s: int) -> None:
    collections.deque(pebbles.treeverse(n, s), maxlen=0)


def _run_ours_paper(n: int, s: int) -> None:
    collections.deque(pebbles.treeverse_paper(n, s), maxlen=0)


def _run_theirs(n: int, s: int) -> None:
    schedule = _cs.MultistageCheckpointSchedule(n, 0, s)
    end = _cs.EndReverse
    for action in schedule:
        if isinstance(action, end):
            break


def _count_ours(make) -> int:
    return sum(1 for _ in make())


def _count_theirs(n: int, s: int) -> int:
    k = 0
    for action in _cs.MultistageCheckpointSchedule(n, 0, s):
        k += 1
        if isinstance(action, _cs.EndReverse):
            break
    return k


def _best_time(fn: Callable[[], None], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _peak_memory(fn: Callable[[], None]) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt_bytes(b: int | None) -> str:
    if b is None:
        return "-"
    if b < 1 << 20:
        return f"{b / 1024:.1f} KiB"
    return f"{b / (1 << 20):.2f} MiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n = 10^4, 10^5 instead of 10^5, 10^6")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    ap.add_argument("--pebbles", type=int, default=10, help="budget S")
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = ap.parse_args(argv)

    s = args.pebbles
    sizes = [10**4, 10**5] if args.quick else [10**5, 10**6]
    rows = []
    for n in sizes:
        cases: list[tuple[str, Callable[[], None] | None, Callable[[], int] | None]] = [
            ("pebbles.treeverse(inplace=True)", lambda n=n: _run_ours_inplace(n, s),
             lambda n=n: _count_ours(lambda: pebbles.treeverse(n, s, inplace=True))),
            ("checkpoint_schedules.Multistage(n,0,S)",
             (lambda n=n: _run_theirs(n, s)) if _cs is not None else None,
             (lambda n=n: _count_theirs(n, s)) if _cs is not None else None),
            ("pebbles.treeverse (checkpoint game)", lambda n=n: _run_ours_checkpoint(n, s),
             lambda n=n: _count_ours(lambda: pebbles.treeverse(n, s))),
            ("pebbles.treeverse_paper(delta=S)", lambda n=n: _run_ours_paper(n, s),
             lambda n=n: _count_ours(lambda: pebbles.treeverse_paper(n, s))),
        ]
        times: dict[str, float | None] = {}
        for name, fn, count in cases:
            if fn is None:
                rows.append({"n": n, "S": s, "schedule": name, "status": "missing",
                             "seconds": None, "actions": None, "peak_bytes": None,
                             "ratio_vs_theirs": None})
                times[name] = None
                continue
            secs = _best_time(fn, args.repeats)
            peak = _peak_memory(fn)
            rows.append({"n": n, "S": s, "schedule": name, "status": "ok",
                         "seconds": secs, "actions": count(), "peak_bytes": peak,
                         "ratio_vs_theirs": None})
            times[name] = secs
        theirs = times.get("checkpoint_schedules.Multistage(n,0,S)")
        for row in rows:
            if row["n"] == n and row["seconds"] is not None and theirs:
                row["ratio_vs_theirs"] = row["seconds"] / theirs

    forward = {}
    for n in sizes:
        forward[n] = {
            "inplace optimum": pebbles.min_forward_steps(n, s, "inplace"),
            "checkpoint optimum": pebbles.min_forward_steps(n, s, "checkpoint"),
        }

    print(f"## Schedule generation (best of {args.repeats}; peak = tracemalloc, separate run)\n")
    print("| n | S | schedule | time (s) | actions | ns/action "
          "| peak Python memory | ours/theirs |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["status"] == "missing":
            print(f"| {r['n']:,} | {r['S']} | {r['schedule']} | MISSING (not installed) "
                  f"| - | - | - | - |")
            continue
        per = r["seconds"] / r["actions"] * 1e9 if r["actions"] else float("nan")
        ratio = f"{r['ratio_vs_theirs']:.2f}" if r["ratio_vs_theirs"] is not None else "-"
        print(f"| {r['n']:,} | {r['S']} | {r['schedule']} | {r['seconds']:.4f} | "
              f"{r['actions']:,} | {per:.0f} | {_fmt_bytes(r['peak_bytes'])} | {ratio} |")
    print()
    for n in sizes:
        print(f"- n={n:,}, S={s}: min forward steps inplace={forward[n]['inplace optimum']:,}, "
              f"checkpoint={forward[n]['checkpoint optimum']:,}")
    print()
    cs_version = getattr(_cs, "__version__", None)
    if _cs is not None and cs_version is None:
        try:
            from importlib.metadata import version
            cs_version = version("checkpoint_schedules")
        except Exception:  # noqa: BLE001
            cs_version = "unknown"
    machine = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        "pebbles": pebbles.__version__,
        "checkpoint_schedules": cs_version if _cs is not None else "missing",
        "command": " ".join([sys.executable, *sys.argv]),
    }
    print("Machine:")
    for k, v in machine.items():
        print(f"- {k}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "machine": machine, "forward_steps": forward}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
