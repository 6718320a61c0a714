"""Benchmarks of the PML wave solver (Liu & Xu, section 4.2; paper notes section 6).

Two parts:

* step kernels (default): time per forward step (into a preallocated state and
  with a fresh allocation, as the executor calls it), in-place step and adjoint
  step at ``--size`` x ``--size`` (default 1000, the paper's grid), with the
  bytes each step must move at least and the achieved GB/s against a numpy copy
  bandwidth measured in the same run;
* ``--fig5``: a Figure-5-style sweep at reduced size (default 250 x 250, 2000
  steps): Treeverse in both games with S in {5, 10, 20, 40} and Bennett with
  k in {2, 3, 5, 10}. Each schedule runs in a fresh subprocess, which reports
  its wall time and peak RSS above its RSS after setup, next to the predicted
  step counts (:func:`pebbles.simulate`) and the step model

      model = n_new t_new + n_into t_into + n_inplace t_inplace
              + n (t_backward + t_loss) + (forward_steps + n) t_exec

  with the executor's counts of steps into a new array (``step``), into a
  pooled buffer (``step_into(i, s, out)``) and in place, and per-step times
  averaged over a real forward trajectory (not the zero state, whose reads hit
  the kernel's zero page and carry no subnormal numbers), the steps into a
  pooled buffer reading and writing buffers at the LRU stack distances the
  run's own steps had (logged during the run: Bennett's uncompute chains
  start from states that have left the private caches, Treeverse's in-place
  walks stay on one hot buffer). ``t_backward`` is
  the solver's backward callback (adjoint kernel, misfit gradient and source
  gradient), ``t_loss`` the running-loss callback, ``t_exec`` the executor's
  own Python time per step call or paint (the same schedule replayed with
  no-op callbacks on a tiny state). Every schedule runs ``--fig5-rounds``
  times (default 5, the rounds going through the sweep in turn); the run
  reported is the round with the median measured/model ratio (each round's
  run compared with the costs measured right after it).
  Time spent inside the callbacks is also measured during the run:
  ``overhead_seconds`` is the rest. ``--fig5-clock cpu`` times everything in
  process CPU time (use it with ``NUMBA_NUM_THREADS=1`` on a shared machine);
* ``--full``: the paper's problem once (default 1000 x 1000, 9999 steps,
  Treeverse S = 20 in the checkpoint game): wall time, peak RSS, step counts,
  with a tqdm progress bar when tqdm is installed;
* ``--loaded``: the gradient under load. Each case (default 150 x 150 x 1000
  and 1000 x 1000 x 100, Treeverse S = 20) runs in a fresh process, on the
  quiet machine and next to one competing CPU-bound process (a Python busy
  loop started before the run and killed after it; it also ends by itself
  after ``--loaded-timeout`` seconds), with the solver's default (Numba's TBB
  threading layer where the ``tbb`` package is installed, else OpenMP with
  thread counts chosen per kernel, :mod:`solvers._threading`), on OpenMP with
  the thread chooser (:class:`solvers.pml.ThreadChooser`), on OpenMP with all
  threads throughout, and on one thread. The rounds go through all variants
  in turn; the median of each is reported with the load average before each
  run. Goal: with the solver's default, loaded at most 2x quiet at both sizes,
  and quiet no slower than before.

Output: a Markdown table on stdout (machine info and the command line
included) and, with ``--json OUT``, the same records as JSON.

Run ``python benchmarks/bench_pml.py --size 500``,
``python benchmarks/bench_pml.py --fig5 --json fig5.json`` (about 6 min),
``python benchmarks/bench_pml.py --full --json full.json`` (about 4 min) or
``python benchmarks/bench_pml.py --loaded --json loaded.json`` (about 2 min on a
quiet machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from _common import (
    best_of,
    machine_info,
    machine_markdown,
    output_file,
    positive_seconds,
    publish,
)

import pebbles
from pebbles.cli import at_least, positive
from solvers import pml


def copy_bandwidth(nbytes: int, repeat: int = 5) -> float:
    """GB/s of ``np.copyto`` on arrays of ``nbytes`` (read + write counted)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    best, _ = best_of(lambda: np.copyto(dst, src), repeat)
    return 2 * src.nbytes / best / 1e9


def kernel_records(size: int, repeat: int, copy_mb: int = 256) -> tuple[list[dict], dict]:
    """Time the step kernels at ``size`` x ``size``, against the copy bandwidth of at
    least ``copy_mb`` MiB (larger than the caches, so it is the memory's)."""
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
    copy_gbs = copy_bandwidth(max(4 * s.nbytes, copy_mb << 20))
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


def rss_mb() -> float:
    """Current resident set size in MB (``/proc/self/statm``; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * resource.getpagesize() / 1e6


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB.

    ``VmHWM`` of ``/proc/self/status`` (which :func:`reset_peak_rss` resets),
    else ``getrusage`` (Linux units: KiB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0: ``5 > /proc/self/clear_refs``).

    Imports and Numba's compiler raise the peak before a run; resetting it
    makes ``peak_rss_mb() - rss_mb()`` the run's own growth. Returns whether
    the reset worked.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def step_costs(sol: pml.PMLSolver, n: int, samples: int = 40, clock: str = "wall",
               pattern: Sequence[tuple[int, int]] = ()) -> dict:
    """Mean seconds per call of each step path along a real trajectory of ``n`` steps.

    Even steps write into another buffer (``step_into(i, s, out)``), odd
    steps run in place; every ``n // samples``-th state is kept, and the
    new-array step, the backward callback (chained from ``loss_grad``) and the
    running loss are timed on those states. ``clock``: ``"wall"`` or ``"cpu"``
    (process CPU time, robust on a shared machine with one Numba thread).

    ``pattern`` makes the even steps touch memory as a run did: pairs
    ``(d_src, d_dst)`` of LRU stack distances (:func:`stack_distances` of the
    run's buffer log), taken evenly along it. Each even step reads the buffer
    used ``d_src`` distinct buffers ago and writes the one used ``d_dst``
    ago, so a schedule whose steps start from states that have left the
    private caches (Bennett's uncompute chains) is timed with those misses.
    (At 250 x 250, 2 MB a state, a step into the next of 11 buffers taken in
    turn took 10 % longer than with 2, of 29 buffers 33 % longer: medians
    over 8 interleaved rounds on the 2-core VM of benchmarks/results.)
    Without ``pattern`` the even steps alternate between two buffers.
    """
    now = CLOCKS[clock]
    pattern = list(pattern) or [(0, 1)]
    pool = [sol.zero_state() for _ in range(max(max(a, b) for a, b in pattern) + 2)]
    for b in pool:
        b[...] = 0.0  # touch the pages: a calloc'ed array reads the kernel's zero page
    lru = list(range(len(pool)))  # buffer indices, most recently used last
    s = pool[lru[-1]]
    t_into, t_inp, kept = [], [], []
    every = max(n // samples, 1)
    for i in range(n):
        if i % 2 == 0:
            d_src, d_dst = pattern[(i // 2) * len(pattern) // ((n + 1) // 2)]
            src, dst = lru[-1 - d_src], lru[-1 - d_dst]
            if dst == src:
                dst = lru[-2 - d_src]
            for b in (src, dst):
                lru.remove(b)
                lru.append(b)
            t0 = now()
            sol.step_into(i, pool[src], pool[dst])
            t_into.append(now() - t0)
            s = pool[dst]
        else:
            t0 = now()
            sol.step_into(i, s, s)
            t_inp.append(now() - t0)
        if (i + 1) % every == 0:
            kept.append((i + 1, s.copy()))
    t_new, t_bwd, t_loss = [], [], []
    g = sol.loss_grad(s).copy()
    saved_c, saved_src = sol.grad_c.copy(), sol.grad_source.copy()
    for i, st in reversed(kept):
        t0 = now()
        sol.step(min(i, n - 1), st)
        t_new.append(now() - t0)
        t0 = now()
        g = sol.backward(min(i, n - 1), st, g)[0]
        t_bwd.append(now() - t0)
        t0 = now()
        sol.running_loss(i, st)
        t_loss.append(now() - t0)
    sol.grad_c[...], sol.grad_source[...] = saved_c, saved_src
    mean = statistics.mean
    return {"t_into": mean(t_into), "t_inplace": mean(t_inp) if t_inp else mean(t_into),
            "t_new": mean(t_new), "t_backward": mean(t_bwd), "t_loss": mean(t_loss)}


def executor_cost(n: int, clock: str = "wall", moves: list | None = None) -> float:
    """Seconds the executor itself spends per step call or paint (trivial callbacks).

    A replay of ``moves`` (default Treeverse S = 10) with no-op callbacks on a
    3-vector, the callbacks wrapped by the same timers as in :func:`run_one`;
    best of 3.
    """
    now = CLOCKS[clock]
    acc = [0.0]
    moves = list(pebbles.treeverse(n, 10)) if moves is None else moves

    def step_into(i, s, out):
        out[...] = s

    cbs = [_timed(f, acc, now) for f in (lambda i, s: s.copy(), step_into,
                                          lambda i, s, g: (g, None), lambda s: np.ones(3),
                                          lambda i, s: 0.0)]
    best = math.inf
    for _ in range(3):
        t0 = now()
        r = pebbles.replay(moves, n, np.zeros(3), cbs[0], cbs[2], cbs[3], step_into=cbs[1],
                           running_loss=cbs[4])
        best = min(best, now() - t0)
    return best / (r.forward_steps + r.backward_steps)


def model_seconds(counts: dict, costs: dict, n: int) -> float:
    """The step model: each step path's count times its cost, n backward steps, and the
    executor's own time per step call and paint (``t_exec``, 0 when not measured)."""
    into = counts["forward_steps"] - counts["allocations"] - counts["inplace_steps"]
    return (counts["allocations"] * costs["t_new"] + into * costs["t_into"]
            + counts["inplace_steps"] * costs["t_inplace"]
            + n * (costs["t_backward"] + costs["t_loss"])
            + (counts["forward_steps"] + n) * costs.get("t_exec", 0.0))


def _timed(fn: Callable, acc: list[float], now: Callable[[], float]) -> Callable:
    """``fn`` with its time (clock ``now``) added to ``acc[0]``."""
    def wrapper(*args):
        t0 = now()
        try:
            return fn(*args)
        finally:
            acc[0] += now() - t0
    return wrapper


class _BufferLog:
    """Buffer ids ``(src, dst)`` of each step or backward call, in a preallocated array.

    Allocated and touched before the run's RSS baseline, so that logging does
    not count in the peak memory; ``dst`` is -1 for a read-only call.
    """

    def __init__(self, calls: int) -> None:
        self.rows = np.full((calls, 2), -1, dtype=np.int64)
        self.count = 0

    def wrap(self, fn: Callable, kind: str) -> Callable:
        """``fn`` logging its buffers (``kind``: step, step_into or backward)."""
        def wrapper(*args):
            out = fn(*args)
            k = self.count
            if k < len(self.rows):
                dst = args[2] if kind == "step_into" else out if kind == "step" else None
                self.rows[k, 0] = id(args[1])
                self.rows[k, 1] = -1 if dst is None else id(dst)
                self.count = k + 1
            return out
        return wrapper

    def entries(self) -> list[tuple[int, int | None]]:
        return [(int(a), None if b == -1 else int(b)) for a, b in self.rows[:self.count]]


def stack_distances(log: Sequence[tuple[int, int | None]]) -> list[tuple[int, int]]:
    """LRU stack distances ``(d_src, d_dst)`` of each step into another existing buffer.

    ``log`` holds ``(src, dst)`` buffer ids per callback (``dst`` None for a
    read only). A distance is the number of distinct buffers used since that
    buffer's last use (0: the last one used); steps in place and into new
    arrays are not counted.
    """
    lru: list[int] = []
    out = []
    for src, dst in log:
        d_src = len(lru) - 1 - lru.index(src) if src in lru else -1
        d_dst = len(lru) - 1 - lru.index(dst) if dst in lru else -1
        if dst is not None and dst != src and d_src >= 0 and d_dst >= 0:
            out.append((d_src, d_dst))
        for b in (src,) if dst is None else (src, dst):
            if b in lru:
                lru.remove(b)
            lru.append(b)
    return out


def run_one(spec: dict) -> dict:
    """One schedule of the sweep (in a fresh process): counts, time, peak RSS, breakdown."""
    size, n = spec["size"], spec["n"]
    cfg = pml.PMLConfig(nx=size, ny=size, steps=n)
    c = pml.uniform_model(cfg)
    observed = np.load(spec["observed"])
    moves = list(pml.schedule(spec["method"], n, budget=spec.get("pebbles"),
                              inplace=spec["inplace"], k=spec.get("k")))
    pml.warm_up()
    sol = pml.PMLSolver(cfg, c, observed=observed)
    acc = [0.0]
    now = CLOCKS[spec.get("clock", "wall")]
    game = "inplace" if spec["inplace"] else "checkpoint"
    log = _BufferLog(pebbles.simulate(moves, n, game).forward_steps + n + 2)
    for name in ("step", "step_into", "backward", "running_loss", "loss_grad"):
        fn = _timed(getattr(sol, name), acc, now)
        setattr(sol, name, log.wrap(fn, name) if name in ("step", "step_into", "backward")
                else fn)
    s0 = sol.zero_state()
    s0[...] = 0.0
    reset = reset_peak_rss()
    base = rss_mb()
    t0 = now()
    r = pebbles.replay(moves, n, s0, sol.step, sol.backward, sol.loss_grad,
                       step_into=sol.step_into, running_loss=sol.running_loss)
    measured = now() - t0
    peak = peak_rss_mb()
    # the model's costs, measured right after the run in the same process (the load of a
    # shared machine drifts); after the peak RSS was read, so they do not inflate it
    pattern = stack_distances(log.entries())
    costs = step_costs(pml.PMLSolver(cfg, c, observed=observed), n,
                       clock=spec.get("clock", "wall"), pattern=pattern)
    costs["mean_src_distance"] = statistics.mean(d for d, _ in pattern) if pattern else 0.0
    costs["mean_dst_distance"] = statistics.mean(d for _, d in pattern) if pattern else 0.0
    costs["t_exec"] = executor_cost(n, spec.get("clock", "wall"), moves)
    return {"forward_steps": r.forward_steps, "backward_steps": r.backward_steps,
            "peak_states": r.peak_states, "peak_buffers": r.peak_buffers,
            "allocations": r.allocations, "inplace_steps": r.inplace_steps,
            "seconds": r.seconds, "measured_seconds": measured, "callback_seconds": acc[0],
            "overhead_seconds": measured - acc[0], "loss": r.loss,
            "grad_c_norm": float(np.linalg.norm(sol.grad_c)),
            "rss_base_mb": base, "peak_rss_mb": peak, "peak_reset": reset, "costs": costs}


def _subprocess(spec: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median_round(runs: list[dict], n: int) -> tuple[dict, float, dict, list[float]]:
    """The round whose measured/model ratio is the median, its model, costs, and all ratios.

    Each round compares a run with step costs measured right after it, in the
    same process, so a slow episode of the machine (other tenants) lasting
    the round hits both sides; the median drops a round that an episode split.
    """
    models = [model_seconds(r, r["costs"], n) for r in runs]
    ratios = [r["measured_seconds"] / m for r, m in zip(runs, models, strict=True)]
    order = sorted(range(len(runs)), key=ratios.__getitem__)
    mid = order[(len(runs) - 1) // 2]
    return runs[mid], models[mid], runs[mid]["costs"], ratios


def fig5_records(size: int, n: int, clock: str = "wall",
                 rounds: int = 5) -> tuple[list[dict], dict]:
    """Run the sweep; return records and the per-step times used by the model.

    Every schedule runs ``rounds`` times, each time in a fresh process that
    measures the model's step costs right after its run; the rounds go
    through the whole sweep in turn, so that drift of the machine spreads over
    all schedules. A record keeps the round with the median measured/model
    ratio (:func:`_median_round`: ``measured_seconds``, ``model_seconds``,
    costs ``t_into_ms`` ...; every round's time and ratio in
    ``measured_rounds`` and ``model_ratio_rounds``);
    ``model_seconds_shared_costs`` uses the costs measured once here
    (``extra``). ``clock="cpu"`` measures in process CPU time instead of wall
    time.
    """
    cfg = pml.PMLConfig(nx=size, ny=size, steps=n)
    observed = pml.record(cfg)
    costs = step_costs(pml.PMLSolver(cfg, pml.uniform_model(cfg), observed=observed), n,
                       clock=clock)
    costs["t_exec"] = executor_cost(n, clock)
    state_mb = 4 * cfg.shape[0] * cfg.shape[1] * 8 / 1e6
    configs = fig5_configs(n)
    runs: dict[str, list[dict]] = {label: [] for label, _ in configs}
    with tempfile.TemporaryDirectory() as tmp:
        obs_path = str(Path(tmp) / "observed.npy")
        np.save(obs_path, observed)
        for _ in range(max(1, rounds)):
            for label, kw in configs:
                runs[label].append(_subprocess({"size": size, "n": n, "observed": obs_path,
                                                "clock": clock, **kw}))
    records = []
    for label, kw in configs:
        game = "inplace" if kw["inplace"] else "checkpoint"
        sim = pml.schedule(kw["method"], n, budget=kw.get("pebbles"), inplace=kw["inplace"],
                           k=kw.get("k")).simulate()
        best, model, own, ratios = _median_round(runs[label], n)
        res = {k: v for k, v in best.items() if k != "costs"}
        records.append({"schedule": label, "n": n, "size": size, "game": game,
                        "predicted_forward_steps": sim.forward_steps,
                        "predicted_peak_pebbles": sim.peak_states, **res,
                        "rounds": len(runs[label]),
                        "measured_rounds": [r["measured_seconds"] for r in runs[label]],
                        "model_ratio_rounds": ratios,
                        "model_seconds": model,
                        "model_ratio": res["measured_seconds"] / model,
                        "model_seconds_shared_costs": model_seconds(res, costs, n),
                        **{(k + "_ms" if k.startswith("t_") else k):
                           (v * 1e3 if k.startswith("t_") else v) for k, v in own.items()},
                        "peak_mb": res["peak_rss_mb"] - res["rss_base_mb"],
                        "peak_states_mb": (res["peak_states"] + 1) * state_mb})
    extra = {"t_forward_ms": costs["t_into"] * 1e3, "t_inplace_ms": costs["t_inplace"] * 1e3,
             "t_new_ms": costs["t_new"] * 1e3, "t_backward_ms": costs["t_backward"] * 1e3,
             "t_loss_ms": costs["t_loss"] * 1e3, "t_exec_us": costs["t_exec"] * 1e6,
             "state_mb": state_mb, "clock": clock, "rounds": max(1, rounds),
             "t_forward_meaning": "step_into(i, s, out) into a pooled buffer, mean over a "
                                  "real trajectory (the executor's out-of-place step path)",
             "peak_mb_meaning": "peak RSS of a fresh process minus its RSS after setup"}
    return records, extra


def fig5_table(records: list[dict], extra: dict) -> str:
    lines = [f"clock: {extra['clock']}; the median of {extra.get('rounds', 1)} rounds by "
             "measured/model (a fresh process each, its model from step costs measured right "
             "after its run); per step (mean over a real trajectory, measured once before "
             "the sweep): "
             f"forward into a buffer "
             f"{extra['t_forward_ms']:.3f} ms, new array {extra['t_new_ms']:.3f} ms, in-place "
             f"{extra['t_inplace_ms']:.3f} ms, backward {extra['t_backward_ms']:.3f} ms, "
             f"running loss {extra['t_loss_ms']:.4f} ms, executor {extra['t_exec_us']:.1f} us "
             f"per step call or paint; state {extra['state_mb']:.2f} MB", "",
             "| schedule | predicted fwd | predicted peak | fwd calls | in place | new arrays | "
             "bwd | peak states | wall s | measured s | model s | measured/model | "
             "executor overhead s | "
             "peak RSS MB | (peak+1) x state MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['schedule']} | {r['predicted_forward_steps']} | "
                     f"{r['predicted_peak_pebbles']} | {r['forward_steps']} | "
                     f"{r['inplace_steps']} | {r['allocations']} | "
                     f"{r['backward_steps']} | {r['peak_states']} | {r['seconds']:.2f} | "
                     f"{r['measured_seconds']:.2f} | {r['model_seconds']:.2f} | "
                     f"{r['model_ratio']:.3f} | "
                     f"{r['overhead_seconds']:.3f} | {r['peak_mb']:.1f} | "
                     f"{r['peak_states_mb']:.1f} |")
    return "\n".join(lines)


def full_record(size: int, n: int, pebbles_: int, game: str) -> dict:
    """The paper's problem once: Treeverse with ``pebbles_`` states, wall time and peak RSS."""
    inplace = game == "inplace"
    cfg = pml.PMLConfig(nx=size, ny=size, steps=n)
    c = pml.uniform_model(cfg)
    pml.warm_up()
    t0 = time.perf_counter()
    observed = pml.record(cfg)
    t_record = time.perf_counter() - t0
    moves = pebbles.schedule("treeverse", n, budget=pebbles_, inplace=inplace)
    sim = moves.simulate()
    base = rss_mb()
    g = pml.gradient(cfg, c, moves, observed, inplace=inplace, progress=True)
    state_mb = 4 * cfg.shape[0] * cfg.shape[1] * 8 / 1e6
    return {"size": size, "n": n, "pebbles": pebbles_, "game": game, "seconds": g.seconds,
            "record_seconds": t_record, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base,
            "predicted_forward_steps": sim.forward_steps, "forward_steps": g.forward_steps,
            "backward_steps": g.backward_steps, "peak_states": g.peak_states,
            "peak_buffers": g.peak_buffers, "allocations": g.allocations,
            "inplace_steps": g.inplace_steps, "loss": g.loss,
            "grad_c_norm": float(np.linalg.norm(g.grad_c)), "state_mb": state_mb,
            "states_mb": (g.peak_states + 1) * state_mb,
            "nan_free": bool(np.all(np.isfinite(g.grad_c)) and math.isfinite(g.loss))}


def full_table(r: dict) -> str:
    return "\n".join([
        "| grid | n | S | game | replay s | record s | peak RSS MB | RSS before MB | "
        "fwd (predicted) | bwd | peak states | (peak+1) x state MB | loss | norm dL/dc |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['size']}x{r['size']} | {r['n']} | {r['pebbles']} | {r['game']} | "
        f"{r['seconds']:.1f} | {r['record_seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
        f"{r['rss_before_mb']:.0f} | {r['forward_steps']} ({r['predicted_forward_steps']}) | "
        f"{r['backward_steps']} | {r['peak_states']} | {r['states_mb']:.0f} | "
        f"{r['loss']:.6g} | {r['grad_c_norm']:.6g} |"])

# ---------------------------------------------------------------------------
# under load
# ---------------------------------------------------------------------------
#: Variants of the loaded benchmark: environment of the measured process, and whether
#: the solver chooses thread counts (``gradient(choose_threads=)``).
LOAD_VARIANTS: dict[str, tuple[dict[str, str], bool]] = {
    "solver default": ({}, True),
    "OpenMP, thread chooser": ({"NUMBA_THREADING_LAYER": "omp"}, True),
    "OpenMP, all threads": ({"NUMBA_THREADING_LAYER": "omp"}, False),
    "one thread": ({"NUMBA_NUM_THREADS": "1"}, False),
}


def gradient_seconds(spec: dict) -> dict:
    """One Treeverse gradient (in a fresh process): replay seconds, threads, layer."""
    import numba

    cfg = pml.PMLConfig(nx=spec["size"], ny=spec["size"], steps=spec["n"])
    pml.warm_up()
    observed = pml.record(cfg)
    moves = pebbles.schedule("treeverse", cfg.steps, budget=spec["pebbles"])
    g = pml.gradient(cfg, pml.uniform_model(cfg), moves, observed,
                     choose_threads=spec.get("choose_threads", True))
    return {"seconds": g.seconds, "threads": numba.get_num_threads(),
            "threading_layer": numba.threading_layer(), "loss": g.loss,
            "wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def busy_loop(seconds: float) -> subprocess.Popen:
    """Start one competing CPU-bound process that ends by itself after ``seconds``."""
    code = f"import time\nend = time.monotonic() + {float(seconds)!r}\n" \
           "while time.monotonic() < end:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def _one_gradient(spec: dict, env: dict[str, str], loaded: bool, timeout: float) -> dict:
    """Run :func:`gradient_seconds` in a fresh process, next to a busy loop if ``loaded``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one-gradient", json.dumps(spec)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    busy = busy_loop(timeout + 5) if loaded else None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, **env})
        if out.returncode != 0:
            return {"status": "failed", "seconds": None, "error": out.stderr[-400:],
                    "load_1min": load}
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        return {"status": "ok", **rec, "load_1min": load}
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "seconds": None, "load_1min": load}
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def loaded_records(cases: Sequence[tuple[int, int]], budget: int, rounds: int,
                   timeout: float) -> tuple[list[dict], dict]:
    """Each case, each variant, quiet and next to one busy loop, ``rounds`` times in turn.

    Each round starts the variants one further along and flips quiet/loaded (a fresh
    process's first writes into memory cost more right after another large run, so a
    fixed order would favour some variants)."""
    runs: dict[tuple, list[dict]] = {}
    names = list(LOAD_VARIANTS)
    for k in range(max(1, rounds)):
        for size, n in cases:
            for variant in names[k % len(names):] + names[:k % len(names)]:
                env, choose = LOAD_VARIANTS[variant]
                for loaded in ((False, True) if k % 2 == 0 else (True, False)):
                    spec = {"size": size, "n": n, "pebbles": budget, "choose_threads": choose}
                    runs.setdefault((size, n, variant, loaded), []).append(
                        _one_gradient(spec, env, loaded, timeout))
    records = []
    for (size, n, variant, loaded) in sorted(runs, key=lambda key: (
            cases.index(key[:2]), names.index(key[2]), key[3])):
        rs = runs[(size, n, variant, loaded)]
        secs = [r["seconds"] for r in rs if r["seconds"] is not None]
        env, choose = LOAD_VARIANTS[variant]
        records.append({"size": size, "n": n, "pebbles": budget, "variant": variant,
                        "env": env, "choose_threads": choose, "loaded": loaded,
                        "seconds": statistics.median(secs) if secs else None,
                        "rounds_seconds": [r["seconds"] for r in rs],
                        "statuses": [r["status"] for r in rs],
                        "load_1min": [r["load_1min"] for r in rs],
                        "threads": rs[0].get("threads"),
                        "threading_layer": rs[0].get("threading_layer")})
    return records, {"ratios": _load_ratios(records), "rounds": max(1, rounds),
                     "timeout_s": timeout, "cores": os.cpu_count(),
                     "competing": "one Python busy loop (while True: pass)"}


def _load_ratios(records: list[dict]) -> list[dict]:
    """Loaded over quiet median seconds per case and variant (goal: at most 2)."""
    quiet = {(r["size"], r["n"], r["variant"]): r["seconds"] for r in records if not r["loaded"]}
    out = []
    for r in records:
        q = quiet.get((r["size"], r["n"], r["variant"]))
        if r["loaded"] and q and r["seconds"]:
            out.append({"size": r["size"], "n": r["n"], "variant": r["variant"],
                        "quiet_seconds": q, "loaded_seconds": r["seconds"],
                        "ratio": r["seconds"] / q})
    return out


def loaded_table(records: list[dict], extra: dict) -> str:
    lines = [f"one competing CPU-bound process on {extra['cores']} cores; median of "
             f"{extra['rounds']} rounds; load = 1-minute load average before each run", "",
             "| grid | n | S | variant | quiet s | loaded s | loaded / quiet | load (quiet) | "
             "load (loaded) |", "|---|---|---|---|---|---|---|---|---|"]
    by = {(r["size"], r["n"], r["variant"], r["loaded"]): r for r in records}
    for ratio in extra["ratios"]:
        q = by[(ratio["size"], ratio["n"], ratio["variant"], False)]
        lo = by[(ratio["size"], ratio["n"], ratio["variant"], True)]
        lines.append(f"| {ratio['size']}x{ratio['size']} | {ratio['n']} | {q['pebbles']} | "
                     f"{ratio['variant']} | {ratio['quiet_seconds']:.3f} | "
                     f"{ratio['loaded_seconds']:.3f} | {ratio['ratio']:.2f} | "
                     f"{_loads(q)} | {_loads(lo)} |")
    return "\n".join(lines)


def _loads(record: dict) -> str:
    return " ".join(f"{x:.1f}" for x in record["load_1min"])


def _case(text: str) -> tuple[int, int]:
    """``--loaded-cases``: ``SIZExSTEPS`` (``150x1000``)."""
    try:
        size, n = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SIZExSTEPS, e.g. 150x1000") from None
    if size < 2 or n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need size >= 2 and steps >= 1")
    return size, n



def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=at_least(2), default=1000, help="grid for the kernel timings")
    p.add_argument("--repeat", type=positive, default=10)
    p.add_argument("--copy-mb", type=int, default=256,
                   help="least buffer (MiB) of the copy-bandwidth reference (default 256: "
                   "above the caches)")
    p.add_argument("--fig5", action="store_true", help="run the Figure-5-style sweep")
    p.add_argument("--fig5-size", type=at_least(2), default=250)
    p.add_argument("--fig5-steps", type=positive, default=2000)
    p.add_argument("--fig5-clock", choices=tuple(CLOCKS), default="wall",
                   help="clock of the model comparison: wall, or process CPU time ('cpu', "
                        "with NUMBA_NUM_THREADS=1 on a shared machine)")
    p.add_argument("--fig5-rounds", type=positive, default=5,
                   help="runs of each schedule (the one with the median measured/model "
                        "ratio is reported; default 5)")
    p.add_argument("--full", action="store_true",
                   help="the paper's problem once (1000 x 1000, 9999 steps, Treeverse S=20)")
    p.add_argument("--full-size", type=at_least(2), default=1000)
    p.add_argument("--full-steps", type=positive, default=9999)
    p.add_argument("--full-pebbles", type=positive, default=20)
    p.add_argument("--full-game", choices=("checkpoint", "inplace"), default="checkpoint")
    p.add_argument("--loaded", action="store_true",
                   help="the gradient quiet and next to one competing CPU-bound process")
    p.add_argument("--loaded-cases", type=_case, nargs="+",
                   default=[(150, 1000), (1000, 100)], metavar="SIZExSTEPS")
    p.add_argument("--loaded-pebbles", type=positive, default=20)
    p.add_argument("--loaded-rounds", type=positive, default=3)
    p.add_argument("--loaded-timeout", type=positive_seconds, default=300.0,
                   help="seconds one run may take (the busy loop ends 5 s after)")
    p.add_argument("--no-kernels", action="store_true", help="skip the step-kernel timings")
    p.add_argument("--json", type=output_file, default=None, metavar="OUT")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # one fig5 run (internal)
    p.add_argument("--one-gradient", default=None, help=argparse.SUPPRESS)  # (internal)
    args = p.parse_args(argv)
    if args.copy_mb < 0:
        p.error(f"--copy-mb={args.copy_mb}: a buffer size in MiB must be >= 0; "
                "pass e.g. --copy-mb 256")
    if args.one is not None:
        print(json.dumps(run_one(json.loads(args.one))))
        return 0
    if args.one_gradient is not None:
        print(json.dumps(gradient_seconds(json.loads(args.one_gradient))))
        return 0
    info = machine_info()
    result: dict = {"machine": info}
    parts = ["# PML benchmark\n\n" + machine_markdown(info)]
    if args.full:  # first, so that the peak RSS is the run's and not the kernels'
        full = full_record(args.full_size, args.full_steps, args.full_pebbles, args.full_game)
        result["full"] = full
        full_part = "## Full problem\n\n" + full_table(full)
    if args.loaded:  # before anything else of this process loads the machine
        recs, extra = loaded_records(args.loaded_cases, args.loaded_pebbles,
                                     args.loaded_rounds, args.loaded_timeout)
        result["loaded"] = {"records": recs, **extra}
        loaded_part = "## Under load\n\n" + loaded_table(recs, extra)
    if not args.no_kernels:
        recs, extra = kernel_records(args.size, args.repeat, args.copy_mb)
        result["kernels"] = {"records": recs, **extra}
        parts.append("## Step kernels\n\n" + kernel_table(recs, extra))
    if args.fig5:
        recs, extra = fig5_records(args.fig5_size, args.fig5_steps, args.fig5_clock,
                                   args.fig5_rounds)
        result["fig5"] = {"records": recs, **extra}
        parts.append(f"## Figure 5 sweep ({args.fig5_size}x{args.fig5_size}, "
                     f"{args.fig5_steps} steps)\n\n" + fig5_table(recs, extra))
    if args.full:
        parts.append(full_part)
    if args.loaded:
        parts.append(loaded_part)
    text = "\n\n".join(parts)
    return publish(args.json, result, text)


if __name__ == "__main__":
    sys.exit(main())
