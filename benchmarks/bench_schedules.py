"""Schedule generation and step counts: pebbles vs checkpoint_schedules, pyrevolve, equinox.

For n = 10^3 ... 10^6 and S = 10, 20 (``--quick``: n <= 10^5, slow peers capped) it
measures, in one run, side by side:

* generation time (best of ``--repeats`` after one warm-up that is not timed; a row
  whose warm-up takes over 5 s reports that one run's time instead; a generator is
  streamed to exhaustion with ``deque(gen, maxlen=0)``) and forward-step counts of
  ``pebbles.treeverse(n, S, inplace=True)`` (the in-place game = Revolve's game),
  ``pebbles.treeverse(n, S)`` (the paper's checkpoint game) and the paper's Algorithm 3
  ``pebbles.treeverse_paper(n, delta=S)``;
* ``checkpoint_schedules.Revolve(n, S)`` and ``MultistageCheckpointSchedule(n, S, 0)``,
  iterated until ``EndReverse``;
* ``pyrevolve``'s ``CRevolve(S, n)`` (the C++ Revolve; its constructor walks the whole
  schedule into ``oplist``, which is what is timed);
* ``equinox.internal.while_loop(kind="checkpointed", checkpoints=S)`` (online
  Stumm-Walther checkpointing, as used by diffrax's RecursiveCheckpointAdjoint): it
  exposes no count, so the body's executions are counted with ``jax.debug.callback``
  during one ``jit(grad)`` of a scalar loop; its time is a compile + run, not a
  generation time, and is not used in ratios.

Step conventions. Ours: forward steps = cost of place/move/forward moves (a backward
step i, "paint", includes its own recomputation of step i). checkpoint_schedules also
runs each step once more with its adjoint dependencies taped before reversing it, so its
raw count minus n is compared; for equinox, body executions minus n + 1 (one vjp per
step, and the forward pass's step to s_n); pyrevolve's ADVANCE count already excludes
the taped step. equinox's online scheme does not know n in advance and plays another
game, so its count is not expected to equal the optimum. Where the games coincide (all
Revolve peers play the in-place game with S snapshots including s_0's) the counts must
equal the in-place optimum ``pebbles.min_forward_steps(n, S, "inplace")``; mismatches
are listed. Peers that are not installed are reported as missing, capped ones as skipped
with the reason.

Usage: python benchmarks/bench_schedules.py [--quick] [--repeats 3] [--sizes N ...]
       [--pebbles S ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import collections
import time
import tracemalloc
from collections.abc import Callable, Sequence
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
from pebbles.cli import positive

PEERS = ("checkpoint_schedules", "pyrevolve", "equinox", "jax")
# Largest n each slow peer runs at (measured here: cs.Revolve 3-9 s at n=10^3, > 3 min at
# 10^4; pyrevolve ~0.3-0.7 s at 10^4; equinox counts one Python callback per step).
CAPS = {"quick": {"cs.Revolve": 10**3, "pyrevolve.CRevolve": 10**5, "equinox": 10**3},
        "full": {"cs.Revolve": 10**3, "pyrevolve.CRevolve": 10**6, "equinox": 10**4}}
PEAK_MAX_N = 10**5  # tracemalloc run (slows the code down ~3x) only up to this n


def ours_forward_steps(moves) -> int:
    """Forward-step cost of a checkpoint/in-place stream (place, move: 1; forward a b)."""
    k = pebbles.MoveKind
    total = 0
    for m in moves:
        if m.kind is k.FORWARD:
            total += m.b - m.a
        elif m.kind is k.PLACE or m.kind is k.MOVE:
            total += 1
    return total


def _ours(n: int, s: int) -> dict[str, tuple[Callable[[], Any], str]]:
    return {"pebbles.treeverse inplace": (lambda: pebbles.treeverse(n, s, inplace=True),
                                          "inplace"),
            "pebbles.treeverse": (lambda: pebbles.treeverse(n, s), "checkpoint"),
            "pebbles.treeverse_paper": (lambda: pebbles.treeverse_paper(n, s), "checkpoint")}


def cs_run(cls: Callable[[], Any], n: int) -> int:
    """Iterate a checkpoint_schedules schedule to EndReverse; forward steps minus n."""
    import checkpoint_schedules as cs

    steps = 0
    for action in cls():
        if isinstance(action, cs.Forward):
            steps += action.n1 - action.n0
        elif isinstance(action, cs.EndReverse):
            break
    return steps - n


def pyrevolve_run(n: int, s: int) -> int:
    """Build pyrevolve's CRevolve(S, n) (walks the whole schedule); its ADVANCE steps."""
    from pyrevolve.schedulers import Action, CRevolve

    sched = CRevolve(s, n)
    return sum(a.capo - a.old_capo for a in sched.oplist if a.type == Action.ADVANCE)


def equinox_count(n: int, s: int) -> int:
    """Body executions of eqxi.while_loop(kind='checkpointed') under jit(grad), minus n + 1.

    Observed sequence at n = 10, S = 3: the forward pass runs steps 0..9, then every step's
    vjp re-runs it once (n executions) and recomputations fill the rest. Our count has
    neither the vjp executions nor the forward pass's last step (s_n is not stored).
    """
    import equinox.internal as eqxi
    import jax
    import jax.numpy as jnp

    calls = [0]

    def body(carry):
        i, x = carry
        jax.debug.callback(lambda _: calls.__setitem__(0, calls[0] + 1), i)
        return i + 1, jnp.sin(x) * 1.01

    def loss(x0):
        _, x = eqxi.while_loop(lambda c: c[0] < n, body, (jnp.asarray(0), x0), max_steps=n,
                               kind="checkpointed", checkpoints=s)
        return x

    jax.block_until_ready(jax.jit(jax.grad(loss))(jnp.asarray(0.3)))
    return calls[0] - n - 1


def _peak_bytes(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _row(n: int, s: int, name: str, game: str, **kw: Any) -> dict:
    row = {"n": n, "S": s, "schedule": name, "game": game, "status": "ok", "seconds": None,
           "forward_steps": None, "peak_bytes": None, "ratio_ours_over_theirs": None,
           "matches_inplace_optimum": None, "note": ""}
    row.update(kw)
    return row


def timed(fn: Callable[[], Any], repeats: int, slow: float = 5.0) -> tuple[float, Any, int]:
    """(seconds, fn's result, runs): the best of ``repeats`` timed runs after one warm-up
    run, whose time is not counted (it gives the result); when the warm-up took longer
    than ``slow`` seconds, its time alone, without repeats (runs = 1)."""
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    if first > slow:
        return first, result, 1
    best, _ = best_of(fn, repeats, warmup=0)
    return best, result, repeats + 1


def measure_ours(n: int, s: int, repeats: int) -> list[dict]:
    """Our three schedules at (n, S): time, forward steps, peak Python memory."""
    rows = []
    for name, (make, game) in _ours(n, s).items():
        def run(make=make) -> None:
            collections.deque(make(), maxlen=0)
        secs, _, runs = timed(run, repeats)
        peak = _peak_bytes(run) if n <= PEAK_MAX_N else None
        rows.append(_row(n, s, name, game, seconds=secs, runs=runs, peak_bytes=peak,
                         forward_steps=ours_forward_steps(make())))
    return rows


def peer_specs(n: int, s: int) -> list[tuple[str, str, Callable[[], int]]]:
    """(name, module it needs, call returning the comparable forward steps)."""
    def cs_cls(kind: str) -> Callable[[], Any]:
        import checkpoint_schedules as cs
        if kind == "revolve":
            return lambda: cs.Revolve(n, s)
        return lambda: cs.MultistageCheckpointSchedule(n, s, 0)

    return [("cs.Revolve", "checkpoint_schedules", lambda: cs_run(cs_cls("revolve"), n)),
            ("cs.Multistage", "checkpoint_schedules", lambda: cs_run(cs_cls("multi"), n)),
            ("pyrevolve.CRevolve", "pyrevolve", lambda: pyrevolve_run(n, s)),
            ("equinox", "equinox", lambda: equinox_count(n, s))]


def measure_peers(n: int, s: int, repeats: int, mode: str, missing: dict) -> list[dict]:
    """Every peer at (n, S): missing, skipped (cap) or measured; errors are reported."""
    rows = []
    for name, module, call in peer_specs(n, s):
        cap = CAPS[mode].get(name)
        if module in missing:
            rows.append(_row(n, s, name, "inplace", status="missing", note=missing[module]))
        elif cap is not None and n > cap:
            why = "skipped (quick)" if mode == "quick" else "skipped (too slow)"
            rows.append(_row(n, s, name, "inplace", status=why,
                             note=f"runs only up to n = {cap:,} in {mode} mode"))
        else:
            try:
                if name == "equinox":  # compile + run with a callback: count only
                    t0 = time.perf_counter()
                    steps, secs, runs = call(), None, 1
                    note = f"count only; jit+grad took {time.perf_counter() - t0:.1f} s"
                else:
                    secs, steps, runs = timed(call, repeats)
                    note = ""
                rows.append(_row(n, s, name, "inplace", seconds=secs, runs=runs,
                                 forward_steps=steps, note=note))
            except Exception as exc:  # noqa: BLE001 - a failing peer is reported
                rows.append(_row(n, s, name, "inplace", status="error",
                                 note=f"{type(exc).__name__}: {exc}"[:300]))
    return rows


def check_rows(rows: list[dict]) -> list[dict]:
    """Fill optimum comparisons and ratios; return the mismatches where games coincide."""
    mismatches = []
    for r in rows:
        n, s = r["n"], r["S"]
        r["inplace_optimum"] = pebbles.min_forward_steps(n, s, "inplace")
        r["checkpoint_optimum"] = pebbles.min_forward_steps(n, s, "checkpoint")
        if r["forward_steps"] is None:
            continue
        equal = r["forward_steps"] == r["inplace_optimum"]
        r["matches_inplace_optimum"] = equal
        revolve_game = r["schedule"].startswith(("cs.", "pyrevolve", "pebbles.treeverse inpl"))
        if revolve_game and not equal:
            mismatches.append({k: r[k] for k in ("n", "S", "schedule", "forward_steps",
                                                  "inplace_optimum")})
        if r["schedule"] == "pebbles.treeverse" and r["forward_steps"] != r["checkpoint_optimum"]:
            mismatches.append({k: r[k] for k in ("n", "S", "schedule", "forward_steps",
                                                  "checkpoint_optimum")})
    for r in rows:
        ours = next((o for o in rows if o["n"] == r["n"] and o["S"] == r["S"]
                     and o["schedule"] == "pebbles.treeverse inplace"), None)
        if r["schedule"].startswith(("cs.", "pyrevolve")) and r["seconds"] and ours:
            r["ratio_ours_over_theirs"] = ours["seconds"] / r["seconds"]
    return mismatches


def _fmt(v: Any, spec: str = ",") -> str:
    return "-" if v is None else format(v, spec)


def _ratio(v: float | None) -> str:
    return "-" if not v else f"{v:.3f} ({1 / v:.1f}x faster)" if v < 1 else f"{v:.3f}"


def _kib(b: int | None) -> str:
    return "-" if b is None else f"{b / 1024:.1f} KiB"


def markdown(result: dict) -> str:
    """The rows as one Markdown table, then mismatches, peers and the machine."""
    out = ["## Schedules: generation time and forward steps (one run, side by side)\n",
           f"Best of {result['repeats']} (+1 warm-up) per row; ratio = time of "
           "pebbles.treeverse inplace / the peer's (< 1: ours faster). Forward steps in "
           "our convention (see the script's docstring); `= opt` marks the in-place optimum.\n",
           "| n | S | schedule | status | time (s) | forward steps | = opt | in-place opt "
           "| checkpoint opt | ours/theirs | peak mem | note |",
           "|---:|---:|---|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        eq = {True: "yes", False: "no", None: "-"}[r["matches_inplace_optimum"]]
        out.append(f"| {r['n']:,} | {r['S']} | {r['schedule']} | {r['status']} | "
                   f"{_fmt(r['seconds'], '.4f')} | {_fmt(r['forward_steps'])} | {eq} | "
                   f"{_fmt(r.get('inplace_optimum'))} | {_fmt(r.get('checkpoint_optimum'))} | "
                   f"{_ratio(r['ratio_ours_over_theirs'])} | {_kib(r['peak_bytes'])} | "
                   f"{r['note']} |")
    mm = result["mismatches"]
    out.append("\nMismatches where the games coincide: "
               + ("none" if not mm else "; ".join(str(m) for m in mm)))
    out.append("\nPeers: " + ", ".join(f"{k} {v}" for k, v in result["peers"].items()))
    out.append("\n" + machine_markdown(result["machine"]))
    return "\n".join(out)


def run(sizes: Sequence[int], budgets: Sequence[int], repeats: int, mode: str) -> dict:
    missing = {}
    for name in PEERS:
        mod, why = import_peer(name)
        if mod is None:
            missing[name] = why
    for _, module, call in peer_specs(30, 3):  # untimed warm-up (Numba compiles, imports)
        if module not in missing and module != "equinox":
            call()
    rows: list[dict] = []
    for n in sizes:
        for s in budgets:
            rows += measure_ours(n, s, repeats)
            rows += measure_peers(n, s, repeats, mode, missing)
    mismatches = check_rows(rows)
    peers = {name: missing.get(name, package_version(name)) for name in PEERS}
    return {"mode": mode, "repeats": repeats, "sizes": list(sizes), "budgets": list(budgets),
            "rows": rows, "mismatches": mismatches, "peers": peers,
            "machine": machine_info(("numpy", "pebble-games", *PEERS))}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="n <= 10^5, slow peers capped")
    p.add_argument("--repeats", type=positive, default=3, help="timing repeats (best is kept)")
    p.add_argument("--sizes", type=positive, nargs="+", default=None, metavar="N",
                   help="n values (default 10^3..10^6, 10^3..10^5 with --quick)")
    p.add_argument("--pebbles", type=positive, nargs="+", default=[10, 20], metavar="S",
                   help="budgets (default 10 20)")
    p.add_argument("--json", type=output_file, default=None, metavar="OUT",
                   help="write the records as JSON")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "full"
    sizes = args.sizes or ([10**3, 10**4, 10**5] if args.quick else [10**3, 10**4, 10**5, 10**6])
    result = run(sizes, args.pebbles, args.repeats, mode)
    return publish(args.json, result, markdown(result), failed=bool(result["mismatches"]))


if __name__ == "__main__":
    raise SystemExit(main())
