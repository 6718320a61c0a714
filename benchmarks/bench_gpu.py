"""GPU Figure 5 benchmark: the PML gradient through checkpoint schedules (Liu & Xu, section 4.2).

The paper's run (paper notes section 6): a 1000 x 1000 grid, 9999 steps, the
gradient of the running detector loss with respect to the squared velocity,
through Treeverse with S in {5, 10, 20, 40, 80} and Bennett with k in
{5, 10, 20, 40}; the paper's V100 took 78-115 s for Treeverse. Here every run
is :func:`solvers.gpu.pml_gradient` (CuPy memory, numba.cuda kernels, the
S + 2 slots preallocated). Records have the keys of ``bench_pml.py --fig5``
(schedule, n, size, predicted_forward_steps, predicted_peak_states,
forward_steps, backward_steps, peak_states, seconds, model_seconds, peak_mb,
peak_states_mb); ``peak_mb`` is the peak of CuPy's memory pool during the run,
and the model is ``forward_steps t_forward + n t_backward`` (the steps the
replay ran, the one computing s_n for the loss included) with per-step times
measured on the device in the same run.

Run ``python benchmarks/bench_gpu.py --json gpu_fig5.json`` on a machine with
one CUDA GPU and cupy (``pip install ".[gpu]"``); ``--size/--steps`` shrink the
problem. Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) it refuses
to run unless given ``--allow-simulator`` and a tiny problem (a smoke test).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from types import ModuleType

import numpy as np
from _common import machine_info, machine_markdown, output_file, publish

import pebbles
from pebbles.cli import count, positive
from solvers import gpu, pml

#: Largest problem (cells x steps) the simulator smoke test may run.
SIMULATOR_LIMIT = 16 * 16 * 50


def gpu_name(xp: ModuleType) -> str:
    """The device's name, or ``simulator (...)`` under the CUDA simulator."""
    if xp.__name__ != "cupy":
        return "simulator (NUMBA_ENABLE_CUDASIM=1, no GPU)"
    props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def device_best(fn: Callable[[], object], xp: ModuleType, repeat: int = 10) -> float:
    """Best seconds of ``fn`` (device synchronised) after one warm-up call."""
    fn()
    gpu._sync(xp)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        gpu._sync(xp)
        best = min(best, time.perf_counter() - t0)
    return best


def step_times(cfg: pml.PMLConfig, c: np.ndarray, xp: ModuleType) -> dict:
    """Per-step device times: forward (into another slot), in-place, backward."""
    sol = pml.PMLSolver(cfg, c)
    dev = gpu._PMLDevice(xp, sol, sol.zero_state(), np.zeros((cfg.steps + 1,
                                                              cfg.n_detectors)), 2)
    repeat = 10 if xp.__name__ == "cupy" else 1
    with gpu._quiet():
        t_fwd = device_best(lambda: dev.step(0, 1, 0), xp, repeat)
        t_inp = device_best(lambda: dev.step(1, 1, 0), xp, repeat)
        t_bwd = device_best(lambda: dev.paint(1, 1), xp, repeat)
    state_mb = 4 * cfg.shape[0] * cfg.shape[1] * 8 / 1e6
    return {"t_forward_ms": t_fwd * 1e3, "t_inplace_ms": t_inp * 1e3,
            "t_backward_ms": t_bwd * 1e3, "state_mb": state_mb}


def configs(treeverse: Sequence[int], bennett: Sequence[int]) -> list[tuple[str, dict]]:
    out = [(f"treeverse S={s}", {"method": "treeverse", "pebbles": s}) for s in treeverse]
    out += [(f"bennett k={k}", {"method": "bennett", "k": k}) for k in bennett]
    return out


class _PeakMemory:
    """Peak bytes during a run: CuPy's memory pool on a GPU, tracemalloc otherwise."""

    def __init__(self, xp: ModuleType) -> None:
        self.xp = xp

    def __enter__(self) -> _PeakMemory:
        if self.xp.__name__ == "cupy":
            self.pool = self.xp.get_default_memory_pool()
            self.pool.free_all_blocks()
        else:
            tracemalloc.start()
            tracemalloc.reset_peak()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.xp.__name__ == "cupy":
            self.peak = self.pool.total_bytes()  # freed blocks stay in the pool
        else:
            self.peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()


def record_of(label: str, kw: dict, cfg: pml.PMLConfig, c: np.ndarray, observed: np.ndarray,
              extra: dict, xp: ModuleType) -> dict:
    n = cfg.steps
    s = (pebbles.schedule("treeverse", n, budget=kw.get("pebbles", 10))
         if kw["method"] == "treeverse" else pebbles.schedule("bennett-gradient", n,
                                                               k=kw.get("k", 2)))
    moves, sim = s.encode(), s.simulate()
    with _PeakMemory(xp) as mem:
        res = gpu.pml_gradient(cfg, c, moves, observed, xp=xp)
    model = (res.forward_steps * extra["t_forward_ms"] + n * extra["t_backward_ms"]) / 1e3
    return {"schedule": label, "n": n, "size": cfg.nx,
            "predicted_forward_steps": sim.forward_steps,
            "predicted_peak_states": sim.peak_states,
            "forward_steps": res.forward_steps, "backward_steps": res.backward_steps,
            "peak_states": res.peak_states, "seconds": res.seconds, "model_seconds": model,
            "peak_mb": mem.peak / 1e6,
            "peak_states_mb": (res.peak_states + 1) * extra["state_mb"],
            "loss": res.loss, "grad_c_norm": float(np.linalg.norm(res.grad_c))}


def lorenz_record(grid: int, n: int, xp: ModuleType) -> dict:
    """Figure 3 on the device: the forward-mode map and batched reverse mode (Treeverse S=10).

    ``grid`` x ``grid`` points on sigma in [0, 20], rho in [0, 50] (the paper:
    201 x 201), beta = 8/3, ``n`` RK4 steps; both timed after a one-step warm-up.
    """
    sig, rho = np.linspace(0.0, 20.0, grid), np.linspace(0.0, 50.0, grid)
    gpu.sensitivity_map(sig[:1], rho[:1], n=1, xp=xp)
    t0 = time.perf_counter()
    fmap = gpu.sensitivity_map(sig, rho, n=n, xp=xp)
    t_map = time.perf_counter() - t0
    theta = np.column_stack([np.repeat(sig, grid), np.tile(rho, grid), np.full(grid**2, 8 / 3)])
    moves = pebbles.encode(pebbles.treeverse(n, min(10, n)))
    gpu.lorenz_gradient(pebbles.encode(pebbles.treeverse(2, 1)), 2, xp=xp)
    rev = gpu.lorenz_gradient(moves, n, (1.0, 0.0, 0.0), theta, xp=xp)
    rmap = np.abs(rev.gradient).mean(axis=1).reshape(grid, grid)
    ok = np.isfinite(fmap) & np.isfinite(rmap)
    diff = float(np.max(np.abs(rmap - fmap)[ok] / np.maximum(np.abs(fmap[ok]), 1e-300)))
    return {"grid": grid, "n": n, "map_seconds": t_map, "reverse_seconds": rev.seconds,
            "reverse_schedule": f"treeverse S={min(10, n)}", "slots_per_thread": rev.nslots,
            "reverse_forward_steps": rev.forward_steps, "max_rel_diff_map": diff,
            "finite_points": int(ok.sum())}


def fig5_table(records: list[dict], extra: dict) -> str:
    lines = [f"per step on the device: forward {extra['t_forward_ms']:.3f} ms, in-place "
             f"{extra['t_inplace_ms']:.3f} ms, backward {extra['t_backward_ms']:.3f} ms; "
             f"state {extra['state_mb']:.2f} MB", "",
             "| schedule | predicted fwd | predicted peak | fwd calls | bwd | peak states | "
             "time s | model s | peak MB (pool) | (peak+1) x state MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['schedule']} | {r['predicted_forward_steps']} | "
                     f"{r['predicted_peak_states']} | {r['forward_steps']} | "
                     f"{r['backward_steps']} | {r['peak_states']} | {r['seconds']:.2f} | "
                     f"{r['model_seconds']:.2f} | {r['peak_mb']:.1f} | "
                     f"{r['peak_states_mb']:.1f} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=positive, default=1000, help="nx = ny (paper: 1000)")
    p.add_argument("--steps", type=positive, default=9999, help="time steps n (paper: 9999)")
    p.add_argument("--treeverse", type=positive, nargs="+", default=[5, 10, 20, 40, 80],
                   metavar="S", help="Treeverse budgets")
    p.add_argument("--bennett", type=positive, nargs="+", default=[5, 10, 20, 40], metavar="K",
                   help="Bennett's k values")
    p.add_argument("--lorenz-grid", type=count, default=0, metavar="G",
                   help="also run the Lorenz Figure 3 map on G x G points (paper: 201)")
    p.add_argument("--lorenz-steps", type=positive, default=10_000, metavar="N")
    p.add_argument("--json", type=output_file, default=None, metavar="OUT")
    p.add_argument("--allow-simulator", action="store_true",
                   help=f"run under the CUDA simulator (size^2 x steps <= {SIMULATOR_LIMIT})")
    return p


def _refusal(args: argparse.Namespace) -> str | None:
    """Why this machine may not run the benchmark, or None."""
    if gpu.simulator_mode():
        if not args.allow_simulator:
            return ("NUMBA_ENABLE_CUDASIM=1: the CUDA simulator is not a GPU; pass "
                    "--allow-simulator with a tiny --size/--steps for a smoke test")
        if (args.size * args.size * args.steps > SIMULATOR_LIMIT
                or args.lorenz_grid**2 * args.lorenz_steps > SIMULATOR_LIMIT):
            return (f"--size {args.size} --steps {args.steps} (or --lorenz-grid/--lorenz-steps)"
                    f" is too big for the simulator (size^2 x steps <= {SIMULATOR_LIMIT})")
        return None
    if not gpu.gpu_available():
        return ("no CUDA GPU (cupy not installed or no device); pip install '.[gpu]' on a "
                "machine with one, or smoke-test the script without a GPU under Numba's CUDA "
                "simulator: NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_gpu.py "
                "--allow-simulator --size 4 --steps 6 --treeverse 2 --bennett 2 (docs/gpu.md)")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    why = _refusal(args)
    if why is not None:
        print(f"bench_gpu.py: refusing to run: {why}", file=sys.stderr)
        return 2
    xp = gpu.array_module()
    cfg = pml.PMLConfig(nx=args.size, ny=args.size, steps=args.steps)
    c = pml.uniform_model(cfg)
    info = {**machine_info(("numpy", "numba")), "gpu": gpu_name(xp),
            "cupy": getattr(xp, "__version__", "missing") if xp.__name__ == "cupy" else "missing"}
    t0 = time.perf_counter()
    observed = gpu.pml_record(cfg, xp=xp)
    record_s = time.perf_counter() - t0
    extra = {**step_times(cfg, c, xp), "record_seconds": record_s}
    records = [record_of(label, kw, cfg, c, observed, extra, xp)
               for label, kw in configs(args.treeverse, args.bennett)]
    result = {"machine": info, "fig5": {"records": records, **extra}}
    text = (f"# PML gradient on the GPU ({cfg.nx}x{cfg.ny}, {cfg.steps} steps)\n\n"
            f"{machine_markdown(info)}\n\n{fig5_table(records, extra)}")
    if args.lorenz_grid > 0:
        result["lorenz"] = lorenz_record(args.lorenz_grid, args.lorenz_steps, xp)
        text += "\n\n## Lorenz Figure 3 map\n\n" + ", ".join(
            f"{k}: {v}" for k, v in result["lorenz"].items())
    return publish(args.json, result, text)


if __name__ == "__main__":
    sys.exit(main())
