"""Scaling with n: measured exponents of time and memory next to the paper's Table 1.

For the Lorenz gradient (:mod:`solvers.lorenz`, RK4, physical time fixed at T = 30 so
``dt = 30 / n`` and the gradient stays finite) and n = 10^2 ... 10^6 (``--quick``:
10^2 ... 10^5; Bennett, whose move streams grow like n^1.5, stops at 10^4 / 10^3) it
times each method (best of ``--repeats``) and records its memory as the executor's
peak number of live states (a count of 3-float64 states):

* forward mode (6 tangents), the adjoint-state method without reloading;
* reverse mode through store-all, treeverse with S = ceil(log2 n) and with S = 10
  (checkpoint game), Bennett k = 2 and k = 3 (``bennett_gradient``), all replayed by the
  Numba executor ``replay_lorenz`` (schedules encoded and lowered before timing).

It also fits the exact step counts of the schedules (pebbles' closed forms, no run) for
n = 10^2 ... 10^6 (in both modes: they cost nothing), or for the ``--sizes`` given.
Exponents are least-squares slopes of log(y) against log(n); the paper's Table 1 (paper
notes section 1, in ``paper_values.json``) is printed next to them: log factors show up
as small positive slopes over a finite range. Fits use n >= 10^3 where that leaves two
points (fixed per-call overheads dominate below).

Usage: python benchmarks/bench_scaling.py [--quick] [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import best_of, machine_info, machine_markdown, output_file, publish

import pebbles
from pebbles.cli import positive
from solvers import lorenz as lz

PAPER = Path(__file__).resolve().parent / "paper_values.json"
T_END = 30.0
FIT_MIN = 1000  # fit only n >= FIT_MIN when that leaves two points or more
# method -> row of the paper's Table 1 (notes section 1) it measures
PAPER_ROW = {"forward": "forward mode", "adjoint": "adjoint state",
             "treeverse S=log2 n": "reverse mode, Treeverse",
             "treeverse S=10": "reverse mode, Treeverse",
             "bennett k=2": "reverse mode, Bennett", "bennett k=3": "reverse mode, Bennett"}


def log2_pebbles(n: int) -> int:
    return max(2, math.ceil(math.log2(n)))


def methods(n: int, bennett_max: int) -> dict[str, Callable[[], Any] | None]:
    """Zero-argument calls for each method at n (None: not run at this n)."""
    dt = T_END / n
    enc = {"store-all": lambda: pebbles.store_all(n),
           "treeverse S=log2 n": lambda: pebbles.treeverse(n, log2_pebbles(n)),
           "treeverse S=10": lambda: pebbles.treeverse(n, 10),
           "bennett k=2": lambda: pebbles.bennett_gradient(n, 2),
           "bennett k=3": lambda: pebbles.bennett_gradient(n, 3)}
    out: dict[str, Callable[[], Any] | None] = {
        "forward": lambda: lz.gradient_forward(n=n, dt=dt),
        "adjoint": lambda: lz.gradient_adjoint(n=n, dt=dt)}
    for name, make in enc.items():
        if name.startswith("bennett") and n > bennett_max:
            out[name] = None
            continue
        prog = pebbles.lower(pebbles.encode(make()), n)  # lowered once, outside the timing
        out[name] = lambda p=prog: lz.replay_lorenz(p, dt=dt)
    return out


def measure(sizes: Sequence[int], bennett_max: int, repeats: int) -> list[dict]:
    records = []
    for n in sizes:
        for name, call in methods(n, bennett_max).items():
            if call is None:
                records.append({"method": name, "n": n, "status": "skipped",
                                "note": f"Bennett runs only up to n = {bennett_max:,}"})
                continue
            best, _ = best_of(call, repeats)
            res = call()
            records.append({"method": name, "n": n, "status": "ok", "seconds": best,
                            "peak_states": int(res.peak_states),
                            "forward_steps": int(res.forward_steps)})
    return records


def count_records(sizes: Sequence[int]) -> list[dict]:
    """Exact forward steps and pebbles of the schedules (closed forms, no run)."""
    out = []
    for n in sizes:
        s = log2_pebbles(n)
        rows = [("count: treeverse S=log2 n", pebbles.min_forward_steps(n, s), s),
                ("count: treeverse S=10", pebbles.min_forward_steps(n, 10), 10)]
        for k in (2, 3):
            rows.append((f"count: bennett k={k}", pebbles.bennett_steps(n, k),
                         pebbles.bennett_pebbles(n, k)))
        out += [{"method": m, "n": n, "status": "ok", "forward_steps": f, "peak_states": p}
                for m, f, p in rows]
    return out


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y and y > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


def fits(records: list[dict], paper: dict) -> list[dict]:
    """One exponent fit per method: time (or steps for counts) and memory."""
    rows = {r["method"]: r for r in paper.get("table1", {}).get("rows", [])}
    out = []
    for method in dict.fromkeys(r["method"] for r in records):
        ok = [r for r in records if r["method"] == method and r["status"] == "ok"]
        if len([r for r in ok if r["n"] >= FIT_MIN]) >= 2:  # fixed overheads dominate below
            ok = [r for r in ok if r["n"] >= FIT_MIN]
        if not ok:
            continue
        ns = [r["n"] for r in ok]
        count = method.startswith("count: ")
        time_key = "forward_steps" if count else "seconds"
        prow = rows.get(PAPER_ROW.get(method.removeprefix("count: "), ""), {})
        out.append({"method": method, "n_min": min(ns), "n_max": max(ns),
                    "time_exponent": slope(ns, [r[time_key] for r in ok]),
                    "time_kind": "forward steps (exact)" if count else "seconds",
                    "memory_exponent": slope(ns, [r["peak_states"] for r in ok]),
                    "memory_kind": "pebbles" if count else "peak live states (count)",
                    "paper_row": prow.get("method", "not in Table 1 (store-all)"
                                          if "store-all" in method else "-"),
                    "paper_time": prow.get("time", "O(T)" if "store-all" in method else "-"),
                    "paper_memory": prow.get("memory",
                                             "O(S T)" if "store-all" in method else "-")})
    return out


def markdown(result: dict) -> str:
    out = ["## Scaling exponents (log-log least squares) next to the paper's Table 1\n",
           "| method | n range | time exponent | of | memory exponent | of | paper time "
           "| paper memory |", "|---|---|---:|---|---:|---|---|---|"]
    for f in result["fits"]:
        te, me = f["time_exponent"], f["memory_exponent"]
        out.append(f"| {f['method']} | {f['n_min']:,}..{f['n_max']:,} | "
                   f"{'-' if te is None else f'{te:.2f}'} | {f['time_kind']} | "
                   f"{'-' if me is None else f'{me:.2f}'} | {f['memory_kind']} | "
                   f"{f['paper_time']} | {f['paper_memory']} |")
    out += ["\n| method | n | status | seconds | peak states | forward steps |",
            "|---|---:|---|---:|---:|---:|"]
    for r in result["records"]:
        secs = r.get("seconds")
        out.append(f"| {r['method']} | {r['n']:,} | {r['status']} | "
                   f"{'-' if secs is None else f'{secs:.4g}'} | {r.get('peak_states', '-')} | "
                   f"{r.get('forward_steps', '-')} |")
    return "\n".join(out) + "\n\n" + machine_markdown(result["machine"])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="n <= 10^5, Bennett n <= 10^3")
    p.add_argument("--repeats", type=positive, default=3, help="timing repeats (best kept)")
    p.add_argument("--sizes", type=positive, nargs="+", default=None, metavar="N",
                   help="n values of the timings and the step counts (default "
                   "10^2..10^6; timings n <= 10^5 with --quick)")
    p.add_argument("--json", type=output_file, default=None, metavar="OUT")
    args = p.parse_args(argv)
    sizes = args.sizes or [10**k for k in range(2, 6 if args.quick else 7)]
    bennett_max = 1000 if args.quick else 10_000
    paper = json.loads(PAPER.read_text()) if PAPER.exists() else {}
    records = measure(sizes, bennett_max, args.repeats)
    records += count_records(args.sizes or [10**k for k in range(2, 7)])
    result = {"sizes": sizes, "t_end": T_END, "records": records,
              "fits": fits(records, paper), "machine": machine_info(("numpy", "numba"))}
    md = markdown(result)
    return publish(args.json, result, md)


if __name__ == "__main__":
    raise SystemExit(main())
