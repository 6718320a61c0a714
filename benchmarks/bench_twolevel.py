"""Two-level (memory + disk) checkpointing: DP speed and total times against checkpoint_schedules.

Measured in one run:

* the time of ``pebbles._twolevel.min_total_time`` (the dynamic programme, tables
  rebuilt each time) for n = 10^3 and 10^4, S = 10, unbounded disk, several
  (write_cost, read_cost), and of generating + simulating the optimal stream;
* checkpoint_schedules' pure-Python tables for the same problem: H-Revolve's
  ``get_hopt_table`` (2 levels, ``disk`` slots) and Disk-Revolve's
  ``get_opt_inf_table``, at ``--peer-sizes`` (default 10^3; their cost grows as n^2,
  so the n = 10^4 figure is the 10^3 time x 100 unless measured with
  ``--peer-sizes 1000 10000``, about 20-40 minutes here);
* total times: checkpoint_schedules' ``HRevolve`` and ``DiskRevolve`` schedules,
  translated move by move into this library's in-place game (their game: Revolve's
  snapshots include s_0, a step overwrites the working state) and measured by
  ``pebbles.simulate`` (forward steps + write_cost x disk writes + read_cost x disk
  reads; memory copies are free in both), against our optimum with the memory and
  disk peaks their stream reached; ours must be no worse;
* the periodic disk scheme (best period) against the optimum.

When checkpoint_schedules is not installed, ``checkpoint_schedules`` records it as
missing (with the import error), the peer tables and the grid are empty and
``grid_all_no_worse`` is null; the exit status then judges our own rows alone.

Usage: python benchmarks/bench_twolevel.py [--quick] [--repeats 3] [--peer-sizes N ...]
       [--json OUT]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from typing import Any

from _common import (
    best_of,
    import_peer,
    machine_info,
    machine_markdown,
    output_file,
    package_version,
    publish,
)

import pebbles
from pebbles import Move, MoveKind
from pebbles._twolevel import _solve, best_period, min_total_time, periodic_disk_time, two_level
from pebbles.cli import positive

COSTS = [(0.5, 0.5), (2.0, 2.0), (5.0, 5.0), (20.0, 5.0)]
GRID_N = [10, 30, 100, 300]
GRID_S = [3, 5]
GRID_COSTS = [(0.5, 0.5), (2.0, 2.0), (5.0, 1.0), (1.0, 8.0)]


def translate(ops: Sequence[Any]) -> Iterator[Move]:
    """checkpoint_schedules' H-Revolve / Disk-Revolve operations as in-place-game moves.

    Their chain has steps F_0..F_l and backward steps B_l+1..B_0; a backward step i
    re-runs F_i taped (``Write_Forward``, ``Forward [i, i+1]``) before ``Backward``:
    that pair is our ``paint i`` (which includes its own recomputation), on n = l + 1
    cells. A memory checkpoint is a pebble we keep; the working state is one more
    pebble, freed when the schedule reads another checkpoint into it. Their disk copy of
    s_0 is dropped (cell 0 is always in memory here), which can only lower their time.
    """
    kept: set[int] = {0}
    cur, taped = 0, False
    for op in ops:
        kind, idx = op.type, op.index
        level, cell = _level_cell(kind, idx)
        if cell == 0:
            level = 0  # s_0 never leaves memory in our game: its disk copy is free there
        if kind in ("Write_Forward", "Write_Forward_memory"):
            taped = True
        elif kind in ("Discard_Forward", "Discard_Forward_memory"):
            taped = False
        elif kind == "Forward":
            if taped:  # the taped re-run before a backward step: part of our paint
                continue
            a, b = idx
            if a in kept:
                yield Move(MoveKind.FORWARD, a, b)
            else:
                yield from (Move(MoveKind.MOVE, i) for i in range(a + 1, b + 1))
            cur = b
        elif kind == "Backward":
            yield Move(MoveKind.PAINT, idx[1])
        elif kind.startswith("Write"):
            if level == 0:
                kept.add(cell)
            else:
                yield Move(MoveKind.STORE, cell)
        elif kind.startswith("Read"):
            if cur not in kept and cur != cell:
                yield Move(MoveKind.REMOVE, cur)
            if level == 1:
                yield Move(MoveKind.LOAD, cell)
            cur = cell
        elif kind.startswith("Discard"):
            if level == 1:
                yield Move(MoveKind.DISCARD, cell)
            elif cell != 0:
                kept.discard(cell)
                if cell != cur:
                    yield Move(MoveKind.REMOVE, cell)


def _level_cell(kind: str, idx: Any) -> tuple[int, int]:
    """(storage level 0 memory / 1 disk, cell) of a Write/Read/Discard operation."""
    if isinstance(idx, list):
        return int(idx[0]), int(idx[1])
    return (1 if kind.endswith("_disk") else 0), int(idx if idx is not None else -1)


def peer_moves(name: str, n: int, ram: int, disk: int, wc: float, rc: float) -> list[Move]:
    """The translated stream of checkpoint_schedules' ``HRevolve`` or ``DiskRevolve``."""
    from checkpoint_schedules.hrevolve_sequences.disk_revolve import disk_revolve
    from checkpoint_schedules.hrevolve_sequences.hrevolve import hrevolve

    if name == "HRevolve":
        ops = list(hrevolve(n - 1, (ram, disk), (0, wc), (0, rc), 1, 1))
    else:
        ops = list(disk_revolve(n - 1, ram, rc, wc, 1, 1))
    return list(translate(ops))


def compare(name: str, n: int, ram: int, disk: int, wc: float, rc: float) -> dict:
    """Peer's measured total time against our optimum at its own memory and disk peaks."""
    moves = peer_moves(name, n, ram, disk, wc, rc)
    r = pebbles.simulate(moves, n, "inplace", write_cost=wc, read_cost=rc)
    ours = min_total_time(n, r.peak_states, r.peak_disk, write_cost=wc, read_cost=rc,
                          inplace=True)
    return {"peer": name, "n": n, "ram": ram, "disk": disk, "write_cost": wc, "read_cost": rc,
            "peak_states": r.peak_states, "peak_disk": r.peak_disk, "peer_time": r.time,
            "ours": ours, "no_worse": ours <= r.time + 1e-9}


def time_ours(n: int, s: int, wc: float, rc: float, repeats: int) -> dict:
    """Best-of time of the DP (cache cleared) and of generating + simulating the stream."""
    def dp() -> float:
        _solve.cache_clear()
        return min_total_time(n, s, None, write_cost=wc, read_cost=rc)

    best, median = best_of(dp, repeats)
    value = dp()
    t0 = time.perf_counter()
    arr = pebbles.encode(two_level(n, s, None, write_cost=wc, read_cost=rc))
    r = pebbles.simulate(arr, n, "checkpoint", s, write_cost=wc, read_cost=rc)
    stream = time.perf_counter() - t0
    return {"n": n, "S": s, "write_cost": wc, "read_cost": rc, "dp_seconds": best,
            "dp_median": median, "stream_seconds": stream, "total_time": value,
            "simulated_time": r.time, "equal": r.time == value, "writes": r.writes,
            "reads": r.reads, "peak_disk": r.peak_disk,
            "memory_only": pebbles.min_forward_steps(n, s),
            "periodic": _periodic(n, s, wc, rc)}


def _periodic(n: int, s: int, wc: float, rc: float) -> dict:
    period = best_period(n, s, write_cost=wc, read_cost=rc)
    return {"period": period,
            "time": periodic_disk_time(n, s, period, write_cost=wc, read_cost=rc)}


def time_peers(n: int, s: int, disk: int, wc: float, rc: float) -> dict:
    """checkpoint_schedules' table times (one run each: they take seconds to minutes)."""
    from checkpoint_schedules.hrevolve_sequences.disk_revolve import get_opt_inf_table
    from checkpoint_schedules.hrevolve_sequences.hrevolve import get_hopt_table

    t0 = time.perf_counter()
    get_hopt_table(n - 1, (s, disk), (0, wc), (0, rc), 1, 1)
    t1 = time.perf_counter()
    get_opt_inf_table(n - 1, s, 1, 1, rc, wc, True)
    t2 = time.perf_counter()
    return {"n": n, "S": s, "disk": disk, "write_cost": wc, "read_cost": rc,
            "hrevolve_table_seconds": t1 - t0, "disk_revolve_table_seconds": t2 - t1}


def run(quick: bool, repeats: int, peer_sizes: Sequence[int]) -> dict:
    sizes = [1000] if quick else [1000, 10000]
    ours = [time_ours(n, 10, wc, rc, repeats) for n in sizes for wc, rc in COSTS]
    _, missing = import_peer("checkpoint_schedules")
    peers = [] if missing else [time_peers(n, 10, 10, 2.0, 2.0) for n in peer_sizes]
    grid = [] if missing else [
        compare(name, n, s, 4, wc, rc) for name in ("HRevolve", "DiskRevolve")
        for n in (GRID_N[:2] if quick else GRID_N) for s in GRID_S for wc, rc in GRID_COSTS]
    return {"machine": machine_info(("numpy", "checkpoint_schedules")),
            "checkpoint_schedules": missing or package_version("checkpoint_schedules"),
            "ours": ours, "peers": peers, "grid": grid,
            "grid_all_no_worse": None if missing else all(g["no_worse"] for g in grid)}


def markdown(res: dict) -> str:
    lines = [machine_markdown(res["machine"]), "",
             "| n | S | w | r | DP s | stream s | total | memory only | periodic (period) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for o in res["ours"]:
        lines.append(f"| {o['n']} | {o['S']} | {o['write_cost']} | {o['read_cost']} | "
                     f"{o['dp_seconds']:.3f} | {o['stream_seconds']:.3f} | {o['total_time']:g} "
                     f"| {o['memory_only']} | {o['periodic']['time']:g} "
                     f"({o['periodic']['period']}) |")
    lines += ["", "| peer table n | H-Revolve s | Disk-Revolve s |", "|---:|---:|---:|"]
    for p in res["peers"]:
        lines.append(f"| {p['n']} | {p['hrevolve_table_seconds']:.2f} | "
                     f"{p['disk_revolve_table_seconds']:.2f} |")
    worse = [g for g in res["grid"] if not g["no_worse"]]
    lines += ["", f"grid: {len(res['grid'])} peer schedules, ours no worse in all: "
              f"{res['grid_all_no_worse']} ({len(worse)} exceptions); checkpoint_schedules: "
              f"{res['checkpoint_schedules']}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="n = 10^3 only, smaller grid")
    p.add_argument("--repeats", type=positive, default=3, help="timing repeats (best is kept)")
    p.add_argument("--peer-sizes", type=positive, nargs="+", default=[1000], metavar="N",
                   help="n of the peer table timings (default 1000)")
    p.add_argument("--json", type=output_file, default=None, metavar="OUT",
                   help="write the records as JSON")
    args = p.parse_args(argv)
    res = run(args.quick, args.repeats, args.peer_sizes)
    ok = res["grid_all_no_worse"] is not False and all(o["equal"] for o in res["ours"])
    return publish(args.json, res, markdown(res), failed=not ok)


if __name__ == "__main__":
    raise SystemExit(main())
