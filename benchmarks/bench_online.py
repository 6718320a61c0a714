"""Online checkpointing: forward steps of pebbles' online scheduler against the offline
optimum and against equinox's checkpointed while loop.

For S = 10, 20, 40 and n on a log grid from 10 to 10^5 it counts, for a run that stops
after n steps:

* ``pebbles._online.online(n, S, beyond=...)`` in both games (in-place = Revolve's game,
  and the paper's checkpoint game), with the default greedy rule and with Wang-Moin past
  the r = 2 range, counted from the move stream and, up to ``--check-max``, checked by
  ``pebbles.simulate`` for legality and budget;
* the offline optimum ``pebbles.min_forward_steps(n, S, game)``;
* ``equinox.internal.while_loop(kind="checkpointed", checkpoints=S)`` (Stumm-Walther
  algorithm I, then Wang-Moin; it plays the in-place game: S slots including s_0's, plus
  the working state), counted with ``benchmarks/bench_schedules.equinox_count`` (body
  executions under ``jit(grad)`` minus n + 1; one compile per (n, S)). equinox runs up to
  ``--equinox-max`` (default 10^5, ``--quick`` 10^3).

Usage: python benchmarks/bench_online.py [--quick] [--sizes N ...] [--pebbles S ...]
       [--equinox-max N] [--check-max N] [--json OUT]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from _common import machine_info, machine_markdown, output_file, package_version, publish
from bench_schedules import equinox_count, ours_forward_steps

import pebbles
from pebbles._online import online, online_r2_range
from pebbles.cli import count, positive

GRID = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10**4, 2 * 10**4, 5 * 10**4, 10**5]


def measure(n: int, s: int, equinox_max: int, check_max: int) -> dict:
    """One row: optimum and online counts in both games, equinox's count (or None)."""
    row: dict = {"n": n, "budget": s}
    for game in ("inplace", "checkpoint"):
        inplace = game == "inplace"
        for beyond, key in (("greedy", f"online_{game}"), ("wang-moin", f"wang_moin_{game}")):
            t0 = time.perf_counter()
            steps = ours_forward_steps(online(n, s, inplace=inplace, beyond=beyond))
            row[f"{key}_s"] = time.perf_counter() - t0
            if n <= check_max:
                r = pebbles.simulate(online(n, s, inplace=inplace, beyond=beyond), n, game,
                                     budget=s)
                assert r.forward_steps == steps and r.peak_pebbles <= s
            row[key] = steps
        row[f"optimum_{game}"] = pebbles.min_forward_steps(n, s, game)
        row[f"r2_range_{game}"] = online_r2_range(s, inplace=inplace)
    row["equinox"] = equinox_count(n, s) if n <= equinox_max else None
    return row


def _pct(a: int, b: int) -> str:
    return f"{100 * (a - b) / b:+.1f}%" if b else "0"


def markdown(result: dict) -> str:
    lines = [machine_markdown(result["machine"]), "",
             "| S | n | opt in-place | online in-place | over | online W-M | over | "
             "equinox | over | opt checkpoint | online checkpoint | over | online W-M | over |",
             "|" + "---|" * 14]
    for r in result["rows"]:
        eq = r["equinox"]
        lines.append(
            f"| {r['budget']} | {r['n']:,} | {r['optimum_inplace']:,} | "
            f"{r['online_inplace']:,} | {_pct(r['online_inplace'], r['optimum_inplace'])} | "
            f"{r['wang_moin_inplace']:,} | "
            f"{_pct(r['wang_moin_inplace'], r['optimum_inplace'])} | "
            f"{'-' if eq is None else f'{eq:,}'} | "
            f"{'-' if eq is None else _pct(eq, r['optimum_inplace'])} | "
            f"{r['optimum_checkpoint']:,} | {r['online_checkpoint']:,} | "
            f"{_pct(r['online_checkpoint'], r['optimum_checkpoint'])} | "
            f"{r['wang_moin_checkpoint']:,} | "
            f"{_pct(r['wang_moin_checkpoint'], r['optimum_checkpoint'])} |")
    worse = [(r["n"], r["budget"]) for r in result["rows"]
             if r["equinox"] is not None and r["online_inplace"] > r["equinox"]]
    lines += ["", f"online in-place above equinox at (n, S): {worse or 'none'}"]
    return "\n".join(lines)


def run(sizes: Sequence[int], budgets: Sequence[int], equinox_max: int,
        check_max: int) -> dict:
    rows = [measure(n, s, equinox_max, check_max) for s in budgets for n in sizes]
    return {"sizes": list(sizes), "budgets": list(budgets), "equinox_max": equinox_max,
            "check_max": check_max, "rows": rows,
            "peers": {"equinox": package_version("equinox"), "jax": package_version("jax")},
            "machine": machine_info(("numpy", "pebble-games", "equinox", "jax"))}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--quick", action="store_true", help="equinox only up to n = 10^3")
    p.add_argument("--sizes", type=positive, nargs="+", default=None, metavar="N",
                   help="n values (default: the grid 10..10^5)")
    p.add_argument("--pebbles", type=positive, nargs="+", default=[10, 20, 40], metavar="S",
                   help="budgets (default 10 20 40)")
    p.add_argument("--equinox-max", type=count, default=None, metavar="N",
                   help="run equinox up to this n (default 10^5, 10^3 with --quick)")
    p.add_argument("--check-max", type=count, default=10**4, metavar="N",
                   help="check streams with the simulator up to this n")
    p.add_argument("--json", type=output_file, default=None, metavar="OUT",
                   help="write the records as JSON")
    args = p.parse_args(argv)
    eq_max = args.equinox_max if args.equinox_max is not None else (
        10**3 if args.quick else 10**5)
    result = run(args.sizes or GRID, args.pebbles, eq_max, args.check_max)
    md = markdown(result)
    return publish(args.json, result, md)


if __name__ == "__main__":
    raise SystemExit(main())
