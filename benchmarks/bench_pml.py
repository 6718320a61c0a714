"""Benchmarks of the PML wave solver (Liu & Xu, section 4.2; paper notes section 6).

Two parts:

* step kernels (default): time per forward step (into a preallocated state and
  with a fresh allocation, as the executor calls it), in-place step and adjoint
  step at ``--size`` x ``--size`` (default 1000, the paper's grid), with the
  bytes each step must move at least and the achieved GB/s against a numpy copy
  bandwidth measured in the same run;
* ``--fig5``: a Figure-5-style sweep at reduced size (default 250 x 250, 2000
  steps): Treeverse in both games with S in {5, 10, 20, 40} and Bennett with
  k in {2, 3, 5, 10}, measured time and peak memory (tracemalloc) next to the
  predicted step counts (:func:`pebbles.simulate`) and the model
  ``forward_steps * t_forward + n * t_backward``.

Output: a Markdown table on stdout (machine info and the command line
included) and, with ``--json OUT``, the same records as JSON.

Run ``python benchmarks/bench_pml.py --size 500`` or
``python benchmarks/bench_pml.py --fig5 --json fig5.json``.
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from collections.abc import Sequence

import numpy as np
from _common import best_of, machine_info, machine_markdown, write_results

import pebbles
from solvers import pml


def copy_bandwidth(nbytes: int, repeat: int = 5) -> float:
    """GB/s of ``np.copyto`` on arrays of ``nbytes`` (read + write counted)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    best, _ = best_of(lambda: np.copyto(dst, src), repeat)
    return 2 * src.nbytes / best / 1e9


def kernel_records(size: int, repeat: int) -> tuple[list[dict], dict]:
    """Time the step kernels at ``size`` x ``size``."""
    cfg = pml.PMLConfig(nx=size, ny=size, steps=10)
    sol = pml.PMLSolver(cfg, pml.uniform_model(cfg))
    rng = np.random.default_rng(0)
    s = rng.standard_normal((4, *cfg.shape))
    g = rng.standard_normal(s.shape)
    out = np.empty_like(s)
    cells = cfg.shape[0] * cfg.shape[1]
    # compulsory traffic, in float64 arrays of (nx+2) x (ny+2)
    arrays = {"forward (into buffer)": 9, "forward (new array)": 9, "in-place": 9,
              "adjoint": 15}
    fns = {
        "forward (into buffer)": lambda: sol.step_into(0, s, out),
        "forward (new array)": lambda: sol.step(0, s),
        "in-place": lambda: sol.step_into(0, s, s),
        "adjoint": lambda: sol.vjp(s, g, out),
    }
    copy_gbs = copy_bandwidth(max(4 * s.nbytes, 256 << 20))
    records = []
    for name, fn in fns.items():
        best, med = best_of(fn, repeat)
        nbytes = arrays[name] * cells * 8
        records.append({"kernel": name, "size": size, "best_ms": best * 1e3,
                        "median_ms": med * 1e3, "bytes": nbytes,
                        "gb_s": nbytes / best / 1e9, "of_copy": nbytes / best / 1e9 / copy_gbs})
    return records, {"copy_gb_s": copy_gbs}


def kernel_table(records: list[dict], extra: dict) -> str:
    lines = [f"copy bandwidth (np.copyto, read + write): {extra['copy_gb_s']:.2f} GB/s", "",
             "| kernel | grid | best ms | median ms | MB moved (min) | GB/s | of copy |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['kernel']} | {r['size']}x{r['size']} | {r['best_ms']:.2f} | "
                     f"{r['median_ms']:.2f} | {r['bytes'] / 1e6:.1f} | {r['gb_s']:.2f} | "
                     f"{100 * r['of_copy']:.0f}% |")
    return "\n".join(lines)


def fig5_configs(n: int) -> list[tuple[str, dict]]:
    out = []
    for inplace in (False, True):
        for s in (5, 10, 20, 40):
            out.append((f"treeverse{' in-place' if inplace else ''} S={s}",
                        {"method": "treeverse", "pebbles": s, "inplace": inplace}))
    for k in (2, 3, 5, 10):
        out.append((f"bennett k={k}", {"method": "bennett", "k": k, "inplace": False}))
    return out


def fig5_records(size: int, n: int) -> tuple[list[dict], dict]:
    """Run the sweep; return records and the per-step times used by the model."""
    cfg = pml.PMLConfig(nx=size, ny=size, steps=n)
    c = pml.uniform_model(cfg)
    observed = pml.record(cfg)
    sol = pml.PMLSolver(cfg, c, observed=observed)
    s = sol.zero_state()
    g = np.ones_like(s)
    t_fwd = best_of(lambda: sol.step(0, s), 10)[1]
    t_inp = best_of(lambda: sol.step_into(0, s, s), 10)[1]
    t_bwd = best_of(lambda: sol.backward(1, s, g), 10)[1]
    state_mb = s.nbytes / 1e6
    records = []
    for label, kw in fig5_configs(n):
        game = "inplace" if kw["inplace"] else "checkpoint"
        moves = list(pml.schedule(kw["method"], n, pebbles=kw.get("pebbles", 10),
                                  inplace=kw["inplace"], k=kw.get("k", 2)))
        sim = pebbles.simulate(moves, n, game)
        tracemalloc.start()
        tracemalloc.reset_peak()
        res = pml.gradient(cfg, c, moves, observed, inplace=kw["inplace"])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        t_step = t_inp if kw["inplace"] else t_fwd
        model = (sim.forward_steps + 1) * t_step + n * t_bwd
        records.append({"schedule": label, "n": n, "size": size,
                        "predicted_forward_steps": sim.forward_steps,
                        "predicted_peak_pebbles": sim.peak_pebbles,
                        "forward_steps": res.forward_steps, "backward_steps": res.backward_steps,
                        "peak_states": res.peak_states, "seconds": res.seconds,
                        "model_seconds": model, "peak_mb": peak / 1e6,
                        "peak_states_mb": (res.peak_states + 1) * state_mb})
    return records, {"t_forward_ms": t_fwd * 1e3, "t_inplace_ms": t_inp * 1e3,
                     "t_backward_ms": t_bwd * 1e3, "state_mb": state_mb}


def fig5_table(records: list[dict], extra: dict) -> str:
    lines = [f"per step: forward {extra['t_forward_ms']:.3f} ms (new array), in-place "
             f"{extra['t_inplace_ms']:.3f} ms, backward {extra['t_backward_ms']:.3f} ms; "
             f"state {extra['state_mb']:.2f} MB", "",
             "| schedule | predicted fwd | predicted peak | fwd calls | bwd | peak states | "
             "time s | model s | peak MB (traced) | (peak+1) x state MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['schedule']} | {r['predicted_forward_steps']} | "
                     f"{r['predicted_peak_pebbles']} | {r['forward_steps']} | "
                     f"{r['backward_steps']} | {r['peak_states']} | {r['seconds']:.2f} | "
                     f"{r['model_seconds']:.2f} | {r['peak_mb']:.1f} | "
                     f"{r['peak_states_mb']:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1000, help="grid for the kernel timings")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--fig5", action="store_true", help="run the Figure-5-style sweep")
    p.add_argument("--fig5-size", type=int, default=250)
    p.add_argument("--fig5-steps", type=int, default=2000)
    p.add_argument("--json", default=None, metavar="OUT")
    args = p.parse_args(argv)
    info = machine_info()
    result: dict = {"machine": info}
    parts = ["# PML benchmark\n\n" + machine_markdown(info)]
    recs, extra = kernel_records(args.size, args.repeat)
    result["kernels"] = {"records": recs, **extra}
    parts.append("## Step kernels\n\n" + kernel_table(recs, extra))
    if args.fig5:
        recs, extra = fig5_records(args.fig5_size, args.fig5_steps)
        result["fig5"] = {"records": recs, **extra}
        parts.append(f"## Figure 5 sweep ({args.fig5_size}x{args.fig5_size}, "
                     f"{args.fig5_steps} steps)\n\n" + fig5_table(recs, extra))
    text = "\n\n".join(parts)
    print(text)
    write_results(args.json, result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
