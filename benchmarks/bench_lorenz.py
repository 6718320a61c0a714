"""Speed and memory of every Lorenz gradient method (Liu & Xu, section 4.1, Table 2).

The Lorenz experiment of paper-notes section 5: RK4, ``n`` steps (default
10^4), loss = final x, gradient with respect to (x0, y0, z0, sigma, rho, beta).
One run times, after a warm-up, each method as best of ``--repeat`` calls:

* the Numba primal (the unit of every ratio), forward mode with 6 tangents,
  reverse mode through store-all, Treeverse S=10 in both games (Numba executor
  :func:`solvers.lorenz.replay_lorenz`, and the checkpoint game once more through
  the generic Python executor :func:`pebbles.replay`), Bennett k=3
  (:func:`pebbles.bennett_gradient`) and the adjoint-state method reloading
  every K=200 steps;
* when JAX is installed (else the rows say ``missing``): ``jit(grad)`` over
  ``lax.scan`` (store-all), the same with ``jax.checkpoint`` around blocks of
  ``B = round(sqrt(n))`` steps (two-level remat: the outer scan keeps one state
  per block, a block's steps are recomputed in the backward pass), and
  ``jit(jacfwd)``.

Every gradient is checked against the store-all one in the same run
(``max_rel_diff = max|g - g_ref| / max|g_ref|``). Schedules are encoded before
timing (their generation time is reported separately). The step model of a
schedule is ``forward_steps * t_step + backward_steps * t_vjp`` with
``t_step`` (the primal: n chained steps in one @njit loop) and ``t_vjp`` (n
chained vjps along the stored trajectory, one @njit loop) measured in the same
run by :func:`interleaved_model`, where every round times the two loops and
each Numba replay back to back, so that the machine's drift between rows
(about 15 % here) does not land on one side of the ratio only; the goal
"Treeverse within 10 % of its step model" is judged on those rounds. Goals from the issue
are reported as pass/fail, never asserted ("every reverse schedule at least
20x faster than JAX's store-all gradient" is checked for the Numba-executor
rows: store-all, both Treeverse games, Bennett). The paper's Table 2 is
printed next to ours as ratios to each one's primal.

Memory: ``peak_states`` are counts from the executors (stored states plus
working ones; for forward mode and the adjoint method, and for JAX, counts of
state-sized arrays), ``state_bytes = 24 * peak_states``; for JAX the compiled
program's temporary buffers (``Compiled.memory_analysis().temp_size_in_bytes``)
are reported as ``xla_temp_bytes`` (they include the RK4 stage residuals).

Run ``python benchmarks/bench_lorenz.py [--steps 10000] [--repeat R] [--quick]
[--no-jax] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from _common import best_of, machine_info, machine_markdown, output_file, publish
from numba import njit

import pebbles
from pebbles.cli import at_least, positive
from solvers import lorenz as lz

STATE_BYTES = 24  # one Lorenz state: 3 float64
PEBBLES = 10
BENNETT_K = 3
RELOAD_EVERY = 200

# Paper Table 2 (paper-notes section 5: minimum times on unstated hardware, Julia; memory
# in states) is read from this file, where every paper number is typed.
PAPER_VALUES = Path(__file__).resolve().parent / "paper_values.json"

JAX_ROWS = ("jax grad", "jax grad+checkpoint", "jax jacfwd")
_NULL_FIELDS = ("seconds", "ratio_to_primal", "peak_states", "state_bytes", "forward_steps",
                "backward_steps", "model_seconds", "max_rel_diff")


# ---------------------------------------------------------------------------
# per-step times for the step model
# ---------------------------------------------------------------------------
@njit(cache=True)
def _trajectory(x0, theta, dt, n):
    out = np.empty((n + 1, 3))
    out[0] = x0
    for i in range(n):
        lz._step_into(out[i], theta, dt, out[i + 1])
    return out


@njit(cache=True)
def _vjp_chain(traj, theta, dt):
    """n chained vjps along the trajectory, as a store-all backward sweep does them.

    The scalar kernel ``_vjp3`` the Numba executor calls, gradient in registers.
    """
    gx, gy, gz = 1.0, 0.0, 0.0
    ts = tr = tb = 0.0
    for i in range(traj.shape[0] - 2, -1, -1):
        g = lz._vjp3(traj[i, 0], traj[i, 1], traj[i, 2], theta[0], theta[1], theta[2], dt,
                     gx, gy, gz)
        gx, gy, gz = g[0], g[1], g[2]
        ts, tr, tb = ts + g[3], tr + g[4], tb + g[5]
    return np.array([gx, gy, gz, ts, tr, tb])


def _step_calls(n: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The two timed loops of the step model: n chained steps, n chained vjps."""
    x0, th = np.array(lz.DEFAULT_X0), np.array(lz.DEFAULT_THETA)
    dt = lz.DEFAULT_DT
    traj = _trajectory(x0, th, dt, n)
    return (lambda: lz._primal(x0, th, dt, n)), (lambda: _vjp_chain(traj, th, dt))


PER_ROUND = 3  # calls of each quantity per round of interleaved_model


def interleaved_model(n: int, rounds: int, calls: dict[str, Callable[[], Any]]) -> dict:
    """Time / step model of each replay, with the model timed in the same rounds.

    Each of ``rounds`` rounds times the step loop, the vjp loop and every call
    of ``calls`` ``PER_ROUND`` times in a row, back to back; each quantity
    keeps its best time over the rounds. (Calls in a row: the first call after
    another replay runs with the caches and branch predictors that replay left,
    which a step loop timed alone never sees.) Drift of the machine (frequency,
    neighbours) then hits the model and the replays alike, which a model timed
    once before all rows does not.
    Returns ``rounds``, ``t_step_ns`` and ``t_vjp_ns`` of these rounds and
    ``rows``: ``{name: {"seconds", "model_seconds", "time_over_model"}}``.
    """
    primal, vjps = _step_calls(n)
    results = {name: call() for name, call in calls.items()}  # warm, and the step counts
    best = dict.fromkeys(["step", "vjp", *calls], float("inf"))
    for _ in range(max(1, rounds)):
        for name, call in [("step", primal), ("vjp", vjps), *calls.items()]:
            best[name] = min(best[name], best_of(call, PER_ROUND, warmup=0)[0])
    t_step, t_vjp = best["step"] / n, best["vjp"] / n
    rows = {}
    for name, g in results.items():
        model = g.forward_steps * t_step + g.backward_steps * t_vjp
        rows[name] = {"seconds": best[name], "model_seconds": model,
                      "time_over_model": best[name] / model}
    return {"rounds": max(1, rounds), "t_step_ns": t_step * 1e9, "t_vjp_ns": t_vjp * 1e9,
            "rows": rows}


# ---------------------------------------------------------------------------
# our methods
# ---------------------------------------------------------------------------
def _schedules(n: int) -> dict[str, tuple[np.ndarray, float]]:
    """Encoded schedules and the seconds to generate + encode each (lowering: see
    :func:`_programs`)."""
    makers = {
        "store-all": lambda: pebbles.store_all(n),
        f"treeverse S={PEBBLES}": lambda: pebbles.treeverse(n, PEBBLES),
        f"treeverse in-place S={PEBBLES}": lambda: pebbles.treeverse(n, PEBBLES, inplace=True),
        f"bennett k={BENNETT_K}": lambda: pebbles.bennett_gradient(n, BENNETT_K),
    }
    out = {}
    for name, make in makers.items():
        t0 = time.perf_counter()
        enc = pebbles.encode(make())
        out[name] = (enc, time.perf_counter() - t0)
    return out


def our_methods(n: int) -> list[tuple[str, Callable[[], Any], dict]]:
    """(method, call, extra record fields) for each of our rows, primal first."""
    sch = _schedules(n)
    rows: list[tuple[str, Callable[[], Any], dict]] = [
        ("primal", lambda: lz.primal(n=n), {"note": "Numba @njit loop, state updated in place"}),
        ("forward", lambda: lz.gradient_forward(n=n),
         {"note": "6 tangents carried together; peak = state + 6 tangents (count; the "
                  "kernel holds them in a padded (6, 8) float64 array, 384 bytes, for SIMD)"}),
    ]
    for name, (enc, gen_s) in sch.items():
        t0 = time.perf_counter()
        prog = pebbles.lower(enc, n)  # checked and given slots once, outside the timing
        low_s = time.perf_counter() - t0
        rows.append((name, lambda p=prog: lz.replay_lorenz(p),
                     {"note": "Numba executor replay_lorenz over pebbles.lower's program",
                      "schedule_seconds": gen_s + low_s, "moves": int(enc.shape[0])}))
        if name == f"treeverse S={PEBBLES}":
            rows.append((f"{name} (generic executor)", lambda e=enc: lz.gradient_reverse(e, n=n),
                         {"note": "generic Python executor pebbles.replay",
                          "schedule_seconds": gen_s, "moves": int(enc.shape[0])}))
    rows.append((f"adjoint K={RELOAD_EVERY}",
                 lambda: lz.gradient_adjoint(n=n, reload_every=RELOAD_EVERY),
                 {"note": "approximate; peak = stored states + 3 working (count)"}))
    return rows


# ---------------------------------------------------------------------------
# JAX side by side
# ---------------------------------------------------------------------------
def _jax_losses(n: int) -> tuple[Callable, Callable, int]:
    """JAX loss(p) over lax.scan, and the same with jax.checkpoint around blocks of B steps."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    dt = lz.DEFAULT_DT

    def f(u, th):
        x, y, z = u[0], u[1], u[2]
        return jnp.stack([th[0] * (y - x), x * (th[1] - z) - y, x * y - th[2] * z])

    def step(u, th):
        k1 = dt * f(u, th)
        k2 = dt * f(u + k1 / 2, th)
        k3 = dt * f(u + k2 / 2, th)
        k4 = dt * f(u + k3, th)
        return u + k1 / 6 + k2 / 3 + k3 / 3 + k4 / 6

    def run(u, th, length):
        return lax.scan(lambda c, _: (step(c, th), None), u, None, length=length)[0]

    def loss(p):
        return run(p[:3], p[3:], n)[0]

    block = max(1, round(n ** 0.5))

    def loss_ckpt(p):
        th = p[3:]
        inner = jax.checkpoint(lambda c: run(c, th, block))
        u = lax.scan(lambda c, _: (inner(c), None), p[:3], None, length=n // block)[0]
        return run(u, th, n % block)[0]

    return loss, loss_ckpt, block


def jax_methods(n: int) -> list[tuple[str, Callable[[], Any] | None, dict]]:
    """JAX rows: (method, compiled call or None if JAX is missing, extra fields)."""
    try:
        import jax
    except ImportError as err:
        return [(m, None, {"note": f"missing: {err}"}) for m in JAX_ROWS]
    loss, loss_ckpt, block = _jax_losses(n)
    p = np.array([*lz.DEFAULT_X0, *lz.DEFAULT_THETA])
    nb = n // block + block + 1
    specs = [
        ("jax grad", jax.grad(loss), n + 1,
         "jit(grad) over lax.scan (store-all); peak = n+1 states (count)"),
        ("jax grad+checkpoint", jax.grad(loss_ckpt), nb,
         f"jit(grad), jax.checkpoint around each block of {block} steps inside an outer "
         f"scan; peak = n/B + B + 1 states (count)"),
        ("jax jacfwd", jax.jacfwd(loss), 7, "jit(jacfwd) over lax.scan; peak = 7 (count)"),
    ]
    rows = []
    for name, fn, peak, note in specs:
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(p).compile()
        compile_s = time.perf_counter() - t0
        mem = compiled.memory_analysis()
        temp = None if mem is None else int(mem.temp_size_in_bytes)
        rows.append((name, lambda c=compiled: np.asarray(c(p).block_until_ready()),
                     {"note": note, "compile_seconds": compile_s, "peak_states": peak,
                      "xla_temp_bytes": temp, "forward_steps": None}))
    return rows


# ---------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------
def _gradient_of(result: Any) -> np.ndarray | None:
    if isinstance(result, lz.LorenzGradient):
        return np.asarray(result.gradient)
    arr = np.asarray(result)
    return arr if arr.shape == (6,) else None


def measure(name: str, call: Callable[[], Any] | None, extra: dict, repeat: int) -> dict:
    """One record: first call (compile / cache load), then best and median of ``repeat``."""
    rec: dict = {"method": name, "status": "missing", **dict.fromkeys(_NULL_FIELDS),
                 "note": ""}
    rec.update(extra)
    if call is None:
        return rec
    t0 = time.perf_counter()
    result = call()
    rec["first_call_seconds"] = time.perf_counter() - t0
    best, med = best_of(call, repeat, warmup=0)
    rec.update(status="ok", seconds=best, median_seconds=med)
    rec["_gradient"] = _gradient_of(result)
    if isinstance(result, lz.LorenzGradient):
        rec.update(peak_states=result.peak_states, forward_steps=result.forward_steps,
                   backward_steps=result.backward_steps)
    if rec["peak_states"] is not None:
        rec["state_bytes"] = rec["peak_states"] * STATE_BYTES
    return rec


def finish(records: list[dict], n: int, t_step: float, t_vjp: float) -> None:
    """Fill in ratios, the step model and the gradient check (against store-all)."""
    by = {r["method"]: r for r in records}
    t_primal = by["primal"]["seconds"]
    by["primal"].update(peak_states=1, state_bytes=STATE_BYTES, forward_steps=n,
                        backward_steps=0)
    ref = by["store-all"]["_gradient"]
    for r in records:
        g = r.pop("_gradient", None)
        if r["status"] != "ok":
            continue
        r["ns_per_step"] = r["seconds"] / n * 1e9
        r["ratio_to_primal"] = r["seconds"] / t_primal
        if g is not None:
            r["max_rel_diff"] = float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))
        if r["method"].startswith(("store-all", "treeverse", "bennett")):
            r["model_seconds"] = r["forward_steps"] * t_step + r["backward_steps"] * t_vjp
        elif r["method"] == "primal":
            r["model_seconds"] = n * t_step
        if r.get("model_seconds"):
            r["time_over_model"] = r["seconds"] / r["model_seconds"]


# ---------------------------------------------------------------------------
# goals and tables
# ---------------------------------------------------------------------------
REVERSE_ROWS = ("store-all", f"treeverse S={PEBBLES}", f"treeverse in-place S={PEBBLES}",
                f"bennett k={BENNETT_K}")


def _goal(goal: str, measured: float, limit: float, at_most: bool = True) -> dict:
    ok = measured <= limit if at_most else measured >= limit
    return {"goal": goal, "measured": float(measured), "limit": float(limit), "pass": bool(ok)}


def goals(records: list[dict], model: dict) -> list[dict]:
    """The issue's goals, computed from the records (rows that did not run are skipped).

    The step-model goals use ``model``, the :func:`interleaved_model` timings.
    The JAX goals also give ``best_possible``: JAX's time over the replay's
    forward steps alone at ``t_step``, a bound no executor of that schedule
    can beat (Bennett k=3's 47 n steps keep it far below 20).
    """
    by = {r["method"]: r for r in records if r["status"] == "ok"}
    out = []
    for name, limit in (("forward", 5.0), ("store-all", 3.0), (f"adjoint K={RELOAD_EVERY}", 10.0)):
        if name in by:
            out.append(_goal(f"{name}: ratio to primal <= {limit:g}",
                             by[name]["ratio_to_primal"], limit))
    for name in (f"treeverse S={PEBBLES}", f"treeverse in-place S={PEBBLES}"):
        if name in model["rows"]:
            out.append(_goal(f"{name}: time / step model <= 1.1 (interleaved rounds)",
                             model["rows"][name]["time_over_model"], 1.1))
    if "jax grad" in by:
        t_jax = by["jax grad"]["seconds"]
        for name in REVERSE_ROWS:
            if name in by:
                g = _goal(f"{name}: jax grad time / ours >= 20", t_jax / by[name]["seconds"],
                          20.0, at_most=False)
                # no replay beats its forward steps at the step loop's speed (the vjps
                # may overlap them): the most this ratio can reach
                floor = by[name]["forward_steps"] * model["t_step_ns"] * 1e-9
                out.append({**g, "best_possible": t_jax / floor})
    return out


def paper_table(path: Path = PAPER_VALUES) -> list[dict]:
    """Paper Table 2 (``table2`` of paper_values.json, the one file of typed paper
    numbers) with ratios to the paper's own primal; ``ours`` is our record's method."""
    rows = json.loads(path.read_text())["table2"]["rows"]
    base = next(r["ms"] for r in rows if r["method"] == "primal")
    return [{"method": r["paper_method"], "ours": r["method"], "ms": r["ms"],
             "memory_states": r["memory_states"], "ratio_to_primal": r["ms"] / base}
            for r in rows]


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _state_bytes(r: dict) -> str:
    """Counted bytes, and for JAX the compiled program's temp buffers (XLA memory_analysis)."""
    text = _fmt(r["state_bytes"], "d")
    if r.get("xla_temp_bytes") is not None:
        text += f" (XLA temp {r['xla_temp_bytes']})"
    return text


def records_table(records: list[dict]) -> str:
    paper = {row["ours"]: row for row in paper_table()}
    lines = ["| method | status | µs | ns/step | x primal | peak states | state bytes | "
             "fwd steps | bwd steps | model µs | / model | max rel diff | paper ms | "
             "paper x primal | paper states |", "|" + "---|" * 15]
    for r in records:
        p = paper.get(r["method"], {})
        sec = r["seconds"]
        lines.append(
            f"| {r['method']} | {r['status']} | {_fmt(sec and sec * 1e6, '.1f')} | "
            f"{_fmt(r.get('ns_per_step'), '.1f')} | {_fmt(r['ratio_to_primal'], '.2f')} | "
            f"{_fmt(r['peak_states'], 'd')} | {_state_bytes(r)} | "
            f"{_fmt(r['forward_steps'], 'd')} | {_fmt(r['backward_steps'], 'd')} | "
            f"{_fmt(r['model_seconds'] and r['model_seconds'] * 1e6, '.1f')} | "
            f"{_fmt(r.get('time_over_model'), '.2f')} | "
            f"{_fmt(r['max_rel_diff'], '.1e')} | {_fmt(p.get('ms'), '.2f')} | "
            f"{_fmt(p.get('ratio_to_primal'), '.2f')} | {_fmt(p.get('memory_states'), 'd')} |")
    return "\n".join(lines)


def notes_list(records: list[dict]) -> str:
    lines = []
    for r in records:
        extra = [r["note"]] if r["note"] else []
        for key in ("first_call_seconds", "compile_seconds", "schedule_seconds"):
            if r.get(key) is not None:
                extra.append(f"{key.replace('_', ' ')} {r[key]:.3f}")
        if r.get("xla_temp_bytes") is not None:
            extra.append(f"XLA temp buffers {r['xla_temp_bytes']} bytes (memory_analysis)")
        lines.append(f"- {r['method']}: " + "; ".join(extra))
    return "\n".join(lines)


def model_table(model: dict) -> str:
    lines = [f"{model['rounds']} rounds; each times the step loop, the vjp loop and every "
             f"replay below {PER_ROUND} times in a row. Best over the rounds: "
             f"t_step = {model['t_step_ns']:.2f} ns, t_vjp = {model['t_vjp_ns']:.2f} ns.", "",
             "| method | µs | model µs | / model |", "|---|---|---|---|"]
    lines += [f"| {name} | {m['seconds'] * 1e6:.1f} | {m['model_seconds'] * 1e6:.1f} | "
              f"{m['time_over_model']:.3f} |"
              for name, m in model["rows"].items()]
    return "\n".join(lines)


def goals_table(gs: list[dict]) -> str:
    lines = ["| goal | measured | limit | pass | best possible |", "|---|---|---|---|---|"]
    lines += [f"| {g['goal']} | {g['measured']:.3g} | {g['limit']:g} | "
              f"{'pass' if g['pass'] else 'FAIL'} | {_fmt(g.get('best_possible'), '.3g')} |"
              for g in gs]
    return "\n".join(lines)


def markdown(result: dict) -> str:
    paper = "\n".join(["| paper method | ms | x primal | memory (states) |", "|---|---|---|---|"]
                      + [f"| {p['method']} | {p['ms']:.2f} | {p['ratio_to_primal']:.2f} | "
                         f"{p['memory_states']} |" for p in result["paper_table2"]])
    return "\n\n".join([
        f"# Lorenz gradient benchmark (n = {result['n']})", machine_markdown(result["machine"]),
        f"t_step = {result['t_step_ns']:.2f} ns, t_vjp = {result['t_vjp_ns']:.2f} ns "
        "(n chained calls in one @njit loop, best over the interleaved rounds below); "
        "model = fwd * t_step + bwd * t_vjp; "
        "max rel diff = max|g - g_store-all| / max|g_store-all|",
        records_table(result["records"]), notes_list(result["records"]),
        "## Step model, timed in interleaved rounds", model_table(result["interleaved_model"]),
        "## Goals (computed, not asserted)", goals_table(result["goals"]),
        "## Paper Table 2 (paper-notes section 5; Julia, hardware not stated)", paper])


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def run(n: int, repeat: int, use_jax: bool) -> dict:
    """Measure everything; return the JSON-ready result."""
    records, replays = [], {}
    for name, call, extra in our_methods(n):
        slow = name.endswith("(generic executor)")
        records.append(measure(name, call, extra, min(repeat, 3) if slow else repeat))
        if name in REVERSE_ROWS:
            replays[name] = call
    model = interleaved_model(n, 2 * repeat, replays)
    t_step, t_vjp = model["t_step_ns"] * 1e-9, model["t_vjp_ns"] * 1e-9
    with _x64():  # JAX compiles and runs in float64, without changing the global setting
        jax_rows = (jax_methods(n) if use_jax else
                    [(m, None, {"note": "missing: --no-jax"}) for m in JAX_ROWS])
        records += [measure(name, call, extra, repeat) for name, call, extra in jax_rows]
    finish(records, n, t_step, t_vjp)
    return {"machine": machine_info(("numpy", "numba", "jax", "jaxlib")), "n": n,
            "t_step_ns": t_step * 1e9, "t_vjp_ns": t_vjp * 1e9, "records": records,
            "interleaved_model": model, "goals": goals(records, model),
            "paper_table2": paper_table()}


def _x64() -> Any:
    try:
        import jax
    except ImportError:
        return nullcontext()
    return jax.enable_x64(True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=at_least(2), default=None,
                   help="n >= 2 (default 10000; 2000 with --quick)")
    p.add_argument("--repeat", type=positive, default=None, help="R (default 20; 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="small n and few repeats")
    p.add_argument("--no-jax", action="store_true", help="skip JAX (rows say missing)")
    p.add_argument("--json", type=output_file, default=None, metavar="OUT")
    args = p.parse_args(argv)
    n = args.steps if args.steps is not None else 2000 if args.quick else lz.DEFAULT_STEPS
    repeat = args.repeat if args.repeat is not None else 3 if args.quick else 20
    result = run(n, repeat, not args.no_jax)
    text = markdown(result)
    return publish(args.json, result, text)


if __name__ == "__main__":
    sys.exit(main())
