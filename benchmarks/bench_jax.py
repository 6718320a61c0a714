"""Checkpointed gradients in JAX side by side: ``pebbles.jax.checkpointed_scan`` and its peers.

Two problems written in plain ``jax.numpy`` (``examples/jax_lorenz.py``), in
float64:

* ``lorenz`` -- the paper's Lorenz system (section 4.1), RK4, n = 10^4 steps,
  loss = final x, gradient w.r.t. (x0, y0, z0, sigma, rho, beta); a step is a
  few dozen flops, so the loop's own per-iteration cost dominates;
* ``wave`` -- a 2D acoustic wave equation, 200 x 200 x 2000 steps, loss = the
  misfit of the receiver traces, gradient w.r.t. the squared-velocity field
  (a step is a stencil over 80 000 cells).

Methods, at equal numbers of stored carries (``--budgets``, default 10 20 40):

* ``jax store-all`` -- ``jax.grad`` of ``lax.scan`` (keeps every step's residuals;
  one row, no budget);
* ``jax.checkpoint nested scan`` -- an outer ``lax.scan`` over ``budget``
  segments, each an inner ``lax.scan`` wrapped in ``jax.checkpoint`` (stores the
  ``budget`` segment starts, then one segment's residuals at a time);
* ``equinox checkpointed while`` -- ``equinox.internal.while_loop(kind=
  "checkpointed", checkpoints=budget)``, what diffrax's ``RecursiveCheckpointAdjoint``
  uses (an online scheme: n is not known in advance; the wave's traces are
  accumulated in the carry since the loop has no per-step outputs);
* ``pebbles checkpointed_scan`` -- optimal Treeverse for the budget;
* ``pebbles checkpointed_while_loop`` -- the online counterpart of equinox's loop
  (``pebbles.jax.checkpointed_while_loop``: n unknown in advance, the online
  controller runs in the compiled loop, the wave's traces accumulated in the
  carry as for equinox). The goal: never more ``f`` evaluations than equinox at
  the same budget, and no more run time.

Every configuration runs in a fresh subprocess, which reports compile time
(trace + lower + XLA compile), the compiled temporary memory
(``memory_analysis().temp_size_in_bytes``, in carries), the best of
``--repeat`` runs and the peak RSS growth during the runs. ``f`` evaluations
are counted with a ``jax.debug.callback`` in the step (on a scalar stand-in
with the same n and budget; the count depends on nothing else): every
evaluation of ``f``'s forward computation, those inside VJPs included
(store-all: n; a schedule: its forward steps + n). The step model
(``--no-model`` skips it) times one ``f`` (a forward ``lax.scan``) and one VJP
(``jax.grad`` of a scan over ``jax.checkpoint(f)``, minus the forward) and
predicts ``(evaluations - n) x t_f + n x t_vjp`` for every method (for the
two JAX scans the prediction is only a reference: their VJPs reuse stored
residuals). Seconds are the best wall-clock time of the runs; CPU seconds
(all threads) are given next to them because a shared machine inflates wall
time. A last table
shows the compile time of ``checkpointed_scan`` against n at one budget.

Run ``python benchmarks/bench_jax.py --json benchmarks/results/bench_jax.json``
(about 5 minutes on 2 cores) or with ``--quick`` (n = 10^3 and 64 x 64 x 300, a
few minutes: most of it is compiling).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    json_record,
    machine_info,
    machine_markdown,
    output_file,
    positive_seconds,
    write_results,
)
from bench_pml import peak_rss_mb, reset_peak_rss, rss_mb

from pebbles.cli import positive

sys.path.insert(0, str(ROOT / "examples"))

STORE_ALL, NESTED = "jax store-all", "jax.checkpoint nested scan"
EQUINOX, OURS = "equinox checkpointed while", "pebbles checkpointed_scan"
WHILE = "pebbles checkpointed_while_loop"
METHODS = (STORE_ALL, NESTED, EQUINOX, OURS, WHILE)
LOOPS = (EQUINOX, WHILE)  # while loops: a scan written as a loop with a counter


# ---------------------------------------------------------------------------
# the four ways to run a scan
# ---------------------------------------------------------------------------
def nested_scan(budget: int) -> Callable:
    """``lax.scan`` as ``budget`` checkpointed segments (a shorter plain tail if needed)."""
    import jax

    def scan(f, init, xs=None, length=None):
        n = length if xs is None else jax.tree.leaves(xs)[0].shape[0]
        seg = max(n // budget, 1)
        nseg = n // seg
        head = None if xs is None else jax.tree.map(
            lambda a: a[: nseg * seg].reshape(nseg, seg, *a.shape[1:]), xs)
        segment = jax.checkpoint(lambda c, x: jax.lax.scan(f, c, x, length=seg))
        carry, ys = jax.lax.scan(segment, init, head, length=nseg)
        ys = jax.tree.map(lambda a: a.reshape(nseg * seg, *a.shape[2:]), ys)
        if nseg * seg == n:
            return carry, ys
        tail = None if xs is None else jax.tree.map(lambda a: a[nseg * seg:], xs)
        carry, yt = jax.lax.scan(f, carry, tail, length=n - nseg * seg)
        return carry, jax.tree.map(lambda a, b: jax.numpy.concatenate([a, b]), ys, yt)

    return scan


def ours(budget: int) -> Callable:
    from pebbles.jax import checkpointed_scan

    return lambda f, init, xs=None, length=None: checkpointed_scan(
        f, init, xs, length, budget=budget)


def scan_for(method: str, budget: int | None) -> Callable:
    import jax

    return {STORE_ALL: lambda: jax.lax.scan, NESTED: lambda: nested_scan(budget),
            OURS: lambda: ours(budget)}[method]()


def equinox_scan(budget: int, n: int, method: str = EQUINOX) -> Callable:
    """``scan(f, init, xs)`` for a scalar-output ``f``: (carry, sum of ys) by a checkpointed
    while loop, equinox's or (``method=WHILE``) ``pebbles.jax.checkpointed_while_loop``."""
    import equinox.internal as eqxi
    import jax
    import jax.numpy as jnp

    from pebbles.jax import checkpointed_while_loop

    def loop(cond, body, init):
        if method == WHILE:
            return checkpointed_while_loop(cond, body, init, budget=budget, max_steps=n)
        return eqxi.while_loop(cond, body, init, max_steps=n, kind="checkpointed",
                               checkpoints=budget)

    def scan(f, init, xs=None, length=None):
        def body(c):
            i, s, acc = c
            x = None if xs is None else jax.tree.map(lambda a: a[i], xs)
            s, y = f(s, x)
            return i + 1, s, acc + (0.0 if y is None else y)
        _, s, acc = loop(lambda c: c[0] < n, body, (jnp.asarray(0), init, jnp.asarray(0.0)))
        return s, acc
    return scan


# ---------------------------------------------------------------------------
# the two problems: (loss, args, bytes of one carry)
# ---------------------------------------------------------------------------
def lorenz(n: int, method: str, budget: int | None) -> tuple[Callable, tuple, int]:
    import jax.numpy as jnp
    import jax_lorenz as ex

    scan = equinox_scan(budget, n, method) if method in LOOPS else scan_for(method, budget)
    inputs = jnp.asarray(ex.LORENZ_X0 + ex.LORENZ_THETA)
    return ex.lorenz_loss(scan, n), (inputs,), 3 * 8


def wave(size: int, n: int, method: str, budget: int | None) -> tuple[Callable, tuple, int]:
    import jax.numpy as jnp
    import jax_lorenz as ex

    loss_for, c2, s0, src, observed = ex.wave_problem(size, n)
    if method not in LOOPS:
        return loss_for(scan_for(method, budget)), (c2, s0, src, observed), 2 * size * size * 8
    scan = equinox_scan(budget, n, method)

    def loss(c2, s0, src, observed):
        def f(s, x):
            s, trace = ex.wave_step(c2, s, x[0])
            return s, 0.5 * jnp.sum((trace - x[1]) ** 2)
        return scan(f, s0, (src, observed))[1]

    return loss, (c2, s0, src, observed), 2 * size * size * 8


def problem(spec: dict) -> tuple[Callable, tuple, int]:
    if spec["problem"] == "lorenz":
        return lorenz(spec["n"], spec["method"], spec["budget"])
    return wave(spec["size"], spec["n"], spec["method"], spec["budget"])


# ---------------------------------------------------------------------------
# one configuration (in a fresh subprocess)
# ---------------------------------------------------------------------------
def _enable_x64() -> Any:
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def run_config(spec: dict) -> dict:
    """Compile, measure memory, run ``repeat`` times: the record of one configuration."""
    import numpy as np

    jax = _enable_x64()
    loss, args, carry_bytes = problem(spec)
    t0 = time.perf_counter()
    fn = jax.jit(jax.value_and_grad(loss)).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    temp = fn.memory_analysis().temp_size_in_bytes
    reset = reset_peak_rss()
    base = rss_mb()
    times, cpu = [], []
    for _ in range(spec["repeat"] + 1):  # the first run warms up
        t0, c0 = time.perf_counter(), time.process_time()
        value, grad = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    grad = np.asarray(grad, dtype=np.float64)
    return {"seconds": min(times[1:]), "cpu_seconds": min(cpu[1:]), "compile_s": compile_s,
            "temp_bytes": temp, "temp_mb": temp / 1e6,
            "temp_carries": temp / carry_bytes, "peak_rss_mb": peak_rss_mb() - base,
            "peak_reset": reset, "loss": float(value), "grad_norm": float(np.linalg.norm(grad)),
            "grad": grad.ravel()[:: max(1, grad.size // 64)].tolist()}


def count_evaluations(method: str, n: int, budget: int | None) -> int:
    """Evaluations of ``f``'s forward computation under ``jax.jit(jax.grad)`` (scalar stand-in)."""
    jax = _enable_x64()
    calls = [0]

    def f(s, _):
        jax.debug.callback(lambda _: calls.__setitem__(0, calls[0] + 1), s)
        return jax.numpy.sin(s) * 1.01, None

    scan = equinox_scan(budget, n, method) if method in LOOPS else scan_for(method, budget)
    jax.block_until_ready(jax.jit(jax.grad(lambda s: scan(f, s, None, n)[0]))(0.3))
    return calls[0]


def step_model(spec: dict) -> dict:
    """Seconds of one ``f`` and of one VJP (forward re-evaluation included), in compiled loops."""
    jax = _enable_x64()
    import jax_lorenz as ex

    _, args, _ = problem({**spec, "method": STORE_ALL, "budget": None})
    n = spec["n"]

    def remat_scan(f, init, xs=None, length=None):
        return jax.lax.scan(jax.checkpoint(f), init, xs, length)

    if spec["problem"] == "lorenz":
        fwd, grad = ex.lorenz_loss(jax.lax.scan, n), jax.grad(ex.lorenz_loss(remat_scan, n))
    else:
        loss_for = ex.wave_problem(spec["size"], n)[0]
        fwd, grad = loss_for(jax.lax.scan), jax.grad(loss_for(remat_scan))
    t_fwd = _best(jax.jit(fwd).lower(*args).compile(), args, spec["repeat"])
    t_grad = _best(jax.jit(grad).lower(*args).compile(), args, spec["repeat"])
    return {"t_f": t_fwd[0] / n, "t_vjp": (t_grad[0] - t_fwd[0]) / n,
            "t_f_cpu": t_fwd[1] / n, "t_vjp_cpu": (t_grad[1] - t_fwd[1]) / n}


def _best(fn: Callable, args: tuple, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of ``repeat`` runs after a warm-up."""
    import jax

    jax.block_until_ready(fn(*args))
    wall = cpu = math.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def compile_scaling(spec: dict) -> dict:
    """Seconds to build the schedule's program on the host (pebbles.schedule, lower and
    grouping) and then to trace, lower and compile ``checkpointed_scan``'s gradient (Lorenz)."""
    jax = _enable_x64()
    from pebbles.jax import _rows

    t0 = time.perf_counter()
    _rows(spec["n"], spec["budget"], "treeverse", None, {})  # cached for the call below
    host = time.perf_counter() - t0
    loss, args, _ = lorenz(spec["n"], OURS, spec["budget"])
    t0 = time.perf_counter()
    jax.jit(jax.grad(loss)).lower(*args).compile()
    xla = time.perf_counter() - t0
    return {"host_s": host, "jax_compile_s": xla, "compile_s": host + xla}


ONE = {"config": run_config, "count": lambda s: {"evaluations": count_evaluations(
    s["method"], s["n"], s["budget"])}, "model": step_model, "compile": compile_scaling}


def subprocess_one(kind: str, spec: dict, timeout: float) -> dict:
    """One configuration's record, measured in a fresh process (:func:`json_record`)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps([kind, spec])]
    return json_record(cmd, timeout)


# ---------------------------------------------------------------------------
# the whole run
# ---------------------------------------------------------------------------
def configs(budgets: Sequence[int]) -> list[tuple[str, int | None]]:
    return [(STORE_ALL, None)] + [(m, b) for b in budgets
                                  for m in (NESTED, EQUINOX, OURS, WHILE)]


def optimum(n: int, budget: int | None) -> int | None:
    """Fewest f evaluations of a gradient with ``budget`` stored carries: the checkpoint
    game's optimum + the step to s_n (Treeverse does not store it) + n VJPs."""
    import pebbles

    if budget is None:
        return None
    return pebbles.min_forward_steps(n, budget, "checkpoint") + 1 + n


def problem_records(spec: dict, budgets: Sequence[int], args: argparse.Namespace) -> dict:
    """Every method at every budget on one problem, with counts, model and agreement."""
    import numpy as np

    n = spec["n"]
    model = {} if args.no_model else subprocess_one("model", spec, args.timeout)
    rows = []
    for method, budget in configs(budgets):
        one = {**spec, "method": method, "budget": budget}
        row = {"method": method, "budget": budget, **subprocess_one("config", one, args.timeout)}
        count = subprocess_one("count", one, args.timeout)
        row["evaluations"] = count.get("evaluations")
        row["optimal_evaluations"] = optimum(n, budget)
        if model.get("status") == "ok" and row["evaluations"] is not None:
            row["model_s"] = (row["evaluations"] - n) * model["t_f"] + n * model["t_vjp"]
            row["model_cpu_s"] = ((row["evaluations"] - n) * model["t_f_cpu"]
                                  + n * model["t_vjp_cpu"])
        rows.append(row)
        print(f"  {spec['problem']:6s} {method:28s} budget {budget}: {row.get('status')}",
              file=sys.stderr, flush=True)
    ref = np.asarray(rows[0].get("grad", []))
    for row in rows:
        if row.get("status") == "ok" and ref.size:
            got = np.asarray(row["grad"])
            row["grad_rel_diff"] = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
        if row.get("status") == "ok" and row.get("model_s"):
            row["model_ratio"] = row["seconds"] / row["model_s"]
            row["model_cpu_ratio"] = row["cpu_seconds"] / row["model_cpu_s"]
        row.pop("grad", None)
    rows = [ordered(row) for row in rows]
    us = {f"{k}_us": model.get(k, math.nan) * 1e6 for k in ("t_f", "t_vjp", "t_f_cpu",
                                                             "t_vjp_cpu")}
    return {**spec, "model_status": model.get("status", "skipped"), **us, "records": rows}


FIRST = ("method", "budget", "status", "evaluations", "optimal_evaluations", "seconds",
         "cpu_seconds", "model_cpu_ratio", "compile_s", "temp_carries", "peak_rss_mb",
         "grad_rel_diff")


def ordered(row: dict) -> dict:
    """The record with the fields a report table shows first."""
    return {**{k: row[k] for k in FIRST if k in row}, **row}


def scaling(args: argparse.Namespace) -> list[dict]:
    rows = []
    for n in args.scaling_n:
        spec = {"n": n, "budget": args.scaling_budget}
        rows.append({**spec, **subprocess_one("compile", spec, args.timeout)})
    return rows


def fmt(v: Any, spec: str) -> str:
    return "" if v is None else format(v, spec)


def problem_table(p: dict) -> str:
    head = (f"### {p['problem']} (n = {p['n']}" + (f", {p['size']} x {p['size']}" if
                                                   p["problem"] == "wave" else "") + ")")
    if p["model_status"] == "ok":
        head += (f"\n\nstep model: one f {p['t_f_us']:.2f} us, one VJP {p['t_vjp_us']:.2f} us "
                 f"(CPU: {p['t_f_cpu_us']:.2f} us, {p['t_vjp_cpu_us']:.2f} us)")
    lines = [head, "", "| method | budget | f evaluations | optimum | seconds | model s | /model "
             "| CPU s | CPU /model | compile s | temp (carries) | peak RSS MB | grad rel diff "
             "| status |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in p["records"]:
        lines.append(
            f"| {r['method']} | {fmt(r['budget'], 'd')} | {fmt(r.get('evaluations'), 'd')} | "
            f"{fmt(r.get('optimal_evaluations'), 'd')} | {fmt(r.get('seconds'), '.3f')} | "
            f"{fmt(r.get('model_s'), '.3f')} | {fmt(r.get('model_ratio'), '.2f')} | "
            f"{fmt(r.get('cpu_seconds'), '.3f')} | {fmt(r.get('model_cpu_ratio'), '.2f')} | "
            f"{fmt(r.get('compile_s'), '.2f')} | {fmt(r.get('temp_carries'), '.1f')} | "
            f"{fmt(r.get('peak_rss_mb'), '.0f')} | {fmt(r.get('grad_rel_diff'), '.1e')} | "
            f"{r.get('status')} {r.get('note', '')} |")
    return "\n".join(lines)


def table(result: dict) -> str:
    parts = [problem_table(result[name]) for name in ("lorenz", "wave")]
    scaling = result["compile_scaling"]
    lines = [f"### compile time of checkpointed_scan's gradient (Lorenz, budget "
             f"{scaling[0]['budget'] if scaling else ''})", "",
             "| n | host program s | trace + compile s | total s | status |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {fmt(r.get('host_s'), '.2f')} | {fmt(r.get('jax_compile_s'), '.2f')} "
              f"| {fmt(r.get('compile_s'), '.2f')} | {r.get('status')} |" for r in scaling]
    return "\n\n".join(parts + ["\n".join(lines)])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="n = 10^3 and 64 x 64 x 300")
    p.add_argument("--budgets", type=positive, nargs="+", default=[10, 20, 40])
    p.add_argument("--repeat", type=positive, default=3, help="timed runs (best kept)")
    p.add_argument("--no-model", action="store_true", help="skip the step model")
    p.add_argument("--timeout", type=positive_seconds, default=900.0, help="seconds per subprocess")
    p.add_argument("--json", type=output_file, default=None, metavar="OUT")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:
        kind, spec = json.loads(args.one)
        print(json.dumps(ONE[kind](spec)))
        return 0
    lorenz_n, size, wave_n = (1000, 64, 300) if args.quick else (10_000, 200, 2000)
    args.scaling_n = [1000, 10_000] if args.quick else [1000, 10_000, 100_000]
    args.scaling_budget = 10
    info = machine_info(("numpy", "jax", "jaxlib", "equinox"))
    result: dict = {"machine": info, "mode": "quick" if args.quick else "full",
                    "budgets": args.budgets}
    for spec in ({"problem": "lorenz", "n": lorenz_n}, {"problem": "wave", "size": size,
                                                         "n": wave_n}):
        result[spec["problem"]] = problem_records({**spec, "repeat": args.repeat},
                                                  args.budgets, args)
    result["compile_scaling"] = scaling(args)
    text = (f"# JAX checkpointed gradients ({result['mode']})\n\n{machine_markdown(info)}\n\n"
            f"{table(result)}")
    print(text)
    write_results(args.json, result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
