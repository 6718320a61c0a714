"""Generate benchmarks/REPORT.md: the paper's results next to ours, from files only.

Inputs: the JSON files that ``benchmarks/run.py`` writes into the results directory
(one per script: ``bench_schedules.json``, ``bench_lorenz.json``, ``bench_pml.json``,
``bench_pml_jax.json``, ``bench_gpu.json``, ``bench_scaling.json``, and, when present,
``bench_jax.json``, ``bench_torch.json``, ``bench_torch_segments.json``,
``bench_online.json``, ``bench_twolevel.json``,
which get a generic section each; and ``run.json``, how each result came about), the
paper's numbers in ``benchmarks/paper_values.json`` (the only place with typed numbers,
each with its section of the paper notes), the committed images under ``docs/img/`` and
counts computed here by ``pebbles`` (Figure 5's optimality comparison, Figures 7, 8).
A missing file or key gives a "not measured in this run: <reason>" line, never a crash.

It also rewrites the README's measured passages (``readme_numbers.py``) from full-run
results only: a passage whose results are absent, from a quick run or lack what it
quotes is left as it is, with a warning naming the block and why (``--check`` exits 1
for such a block). ``--readme`` defaults to the repository README only when
``--results`` is the default directory (``--check`` always checks it): results
elsewhere rewrite no README unless ``--readme PATH`` is given; ``--no-readme`` writes
none.

Figure 5 belongs to this report: ``--figure5 docs/img/figure5.png`` also draws it
(``visualize.draw_figure5``) from the ``fig5`` records of ``bench_pml.json``.

Usage: python benchmarks/report.py [--results benchmarks/results] [--out benchmarks/REPORT.md]
       [--figure5 docs/img/figure5.png] [--readme README.md | --no-readme] [--check]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import readme_numbers
from _common import ROOT, existing_file, output_file

import pebbles

HERE = Path(__file__).resolve().parent
PAPER = HERE / "paper_values.json"
# scripts without a section of their own: the title of their generic section
GENERIC = {"bench_jax": "JAX adapter", "bench_torch": "PyTorch adapter",
           "bench_torch_segments": "PyTorch: segments= against checkpoint_sequential",
           "bench_online": "Online schedules", "bench_twolevel": "Two-level storage",
           "bench_lowering": "Checked lowering", "bench_pml_disk": "PML with memory plus disk"}
SCRIPTS = ("bench_schedules", "bench_lorenz", "bench_pml", "bench_pml_jax", "bench_gpu",
           "bench_scaling", *GENERIC)


def load_results(results: Path) -> tuple[dict[str, dict | None], dict[str, str]]:
    """{script: data or None} and {script: why it is missing}."""
    run_info = _read(results / "run.json") or {}
    data: dict[str, dict | None] = {}
    why: dict[str, str] = {}
    for name in SCRIPTS:
        data[name] = _read(results / f"{name}.json")
        if data[name] is None:
            st = run_info.get("scripts", {}).get(name, {})
            why[name] = st.get("reason") or f"{name}.json not found in {_rel(results)}"
    return data, why


def _read(path: Path) -> dict | None:
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


def get(d: Any, *keys: Any, default: Any = None) -> Any:
    """d[k1][k2]... or ``default`` when any level is missing."""
    for k in keys:
        try:
            d = d[k]
        except (KeyError, IndexError, TypeError):
            return default
    return default if d is None else d


def fmt(v: Any, spec: str = ".3g") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    return format(v, spec)


def _ratio(v: Any) -> str:
    if not isinstance(v, (int, float)) or v <= 0:
        return "-"
    return f"{v:.3f} ({1 / v:.1f}x faster)" if v < 1 else f"{v:.3f} ({v:.1f}x slower)"


def not_measured(reason: str) -> str:
    return f"_Not measured in this run: {reason}._"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def image(rel: str, caption: str) -> str:
    if (ROOT / rel).exists():
        return f"![{caption}](../{rel})"
    return not_measured(f"image {rel} is not in the checkout")


def machine_line(d: dict | None) -> str:
    m = get(d, "machine", default={})
    if not m:
        return "Machine: not recorded."
    keys = ("cpu", "gpu", "cores", "numba_threads", "python", "jax", "checkpoint_schedules")
    fields = ", ".join(f"{k}: {m[k]}" for k in keys if k in m)
    return f"Machine: {fields}; command `{m.get('command', '?')}`."


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------
def section_run(data: dict, why: dict, run_info: dict | None) -> list[str]:
    out = ["## The run\n"]
    if run_info:
        last = get(run_info, "last_run", default={})
        out.append(f"Last run: {last.get('mode', '?')} mode, started {last.get('started', '?')}, "
                   f"{fmt(last.get('seconds'), '.0f')} s, scripts run: "
                   f"{', '.join(last.get('scripts_run', [])) or '?'}; GPU: "
                   f"{last.get('gpu', '?')}. The other scripts' results are from the run "
                   "named in their row.\n")
        rows = [(name, st.get("status", "?"), st.get("mode", "-"), st.get("started", "-"),
                 fmt(st.get("seconds"), ".0f"),
                 (st.get("reason") or "").replace("|", "/").replace("\n", " ")[:200])
                for name, st in get(run_info, "scripts", default={}).items()]
        out += table(("script", "status", "mode", "started", "seconds",
                      "reason / error tail"), rows)
    else:
        out.append(not_measured("run.json not found (report.py was run on loose files)"))
    for name in SCRIPTS:
        if data[name] is None:
            out.append(f"\n- {name}: " + not_measured(why[name]))
    return out


def _cell(v: Any) -> str:
    """One table cell: numbers formatted, text without pipes or newlines, nothing cut."""
    if isinstance(v, (list, tuple)):
        v = ", ".join(_cell(x) for x in v)
    elif isinstance(v, dict):
        v = json.dumps(v)
    text = fmt(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
    return text.replace("|", "/").replace("\n", " ")


def _is_records(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(r, dict) for r in v)


def _column_groups(cols: list[str], most: int) -> list[list[str]]:
    """``cols`` in groups of at most ``most``; every group after the first starts again
    with the first column, so that each table of a split one names its rows."""
    groups, rest = [cols[:most]], cols[most:]
    while rest:
        groups.append([cols[0], *rest[:most - 1]])
        rest = rest[most - 1:]
    return groups


def records_table(recs: Sequence[dict], most: int = 12) -> list[str]:
    """A table of ``recs`` with the union of their keys (first seen first) as columns; a
    key a record lacks gives "-". More than ``most`` columns give several tables, one
    after another, each with a ``#`` column numbering the records, so no field is left out."""
    cols: list[str] = []
    for r in recs:
        cols += [k for k in r if k not in cols and not _is_records(r[k])]
    groups = _column_groups(cols, max(2, most))
    out: list[str] = []
    for group in groups:
        number = ["#"] if len(groups) > 1 else []
        rows = [[*([str(i)] if number else []),
                 *(_cell(r[c]) if r.get(c) is not None else "-" for c in group)]
                for i, r in enumerate(recs, 1)]
        out += ([""] if out else []) + table([*number, *group], rows)
    return out


def section_generic(name: str, title: str, d: dict | None, why: str) -> list[str]:
    """A section for a result file of any schema: its scalar fields (one level of nested
    dicts flattened as ``a.b``), then a table for every list of records in it."""
    out = [f"## {title} (`benchmarks/{name}.py`)\n"]
    if d is None:
        return out + [not_measured(why)]
    scalars: list[tuple[str, str]] = []
    tables: list[tuple[str, list[dict]]] = []
    for key, value in d.items():
        if key == "machine":
            continue
        inner = value.items() if isinstance(value, dict) else [("", value)]
        for sub, v in inner:
            label = f"{key}.{sub}" if sub else key
            if _is_records(v):
                tables.append((label, v))
            else:
                scalars.append((label, _cell(v)))
    if scalars:
        out += [*table(("field", "value"), scalars), ""]
    for label, recs in tables:
        out += [f"`{label}`:\n", *records_table(recs), ""]
    return out + [machine_line(d)]


def section_schedules(d: dict | None, why: str) -> list[str]:
    out = ["## Schedules: generation speed and step counts against peers\n"]
    if d is None:
        return out + [not_measured(why)]
    rows = []
    for r in get(d, "rows", default=[]):
        status = r.get("status", "?")
        rows.append((f"{r.get('n', 0):,}", r.get("S"), r.get("schedule"), status,
                     fmt(r.get("seconds"), ".4f"), fmt(r.get("forward_steps"), ","),
                     fmt(r.get("inplace_optimum"), ","), fmt(r.get("checkpoint_optimum"), ","),
                     _ratio(r.get("ratio_ours_over_theirs")),
                     str(r.get("note", "")).replace("|", "/")[:120]))
    out += table(("n", "S", "schedule", "status", "time (s)", "forward steps", "in-place opt",
                  "checkpoint opt", "ours/theirs time", "note"), rows)
    mm = get(d, "mismatches")
    out.append("\nForward steps of the Revolve peers against our in-place optimum "
               "(same game): " + ("**mismatches: " + json.dumps(mm) + "**" if mm else
                                  ("all equal" if mm == [] else "not checked")) + ".")
    peers = get(d, "peers", default={})
    out.append("Peers: " + (", ".join(f"{k} {v}" for k, v in peers.items()) or "not recorded")
               + ".")
    return out + ["", machine_line(d)]


def section_table2(d: dict | None, why: str, paper: dict) -> list[str]:
    out = ["## Lorenz: paper Table 2 and JAX (paper section 4.1)\n"]
    p = get(paper, "table2", default={})
    base = get(p, "rows", 0, "ms")
    prow = [(r["paper_method"], r["ms"], fmt(r["ms"] / base, ".2f"), r["memory_states"])
            for r in get(p, "rows", default=[])]
    out.append(f"Paper ({p.get('section', '?')}):\n")
    out += table(("paper method", "ms", "ratio to primal", "memory (states)"), prow)
    if d is None:
        return out + ["", not_measured(why)]
    out.append(f"\nOurs: n = {get(d, 'n', default='?')}, one run, ratios to our Numba primal:\n")
    rows = [(r.get("method"), r.get("status"), fmt(get(r, "seconds") and r["seconds"] * 1e3),
             fmt(r.get("ratio_to_primal"), ".2f"), fmt(r.get("peak_states"), ","),
             fmt(r.get("forward_steps"), ","), fmt(r.get("max_rel_diff"), ".1e"),
             str(r.get("note", "")).replace("|", "/")[:100])
            for r in get(d, "records", default=[])]
    out += table(("method", "status", "ms", "ratio to primal", "peak states", "forward steps",
                  "max rel diff", "note"), rows)
    ours = {r.get("method"): r for r in get(d, "records", default=[])}
    cmp = [(r["paper_method"], fmt(r["ms"] / base, ".2f"),
            fmt(get(ours, r["method"], "ratio_to_primal"), ".2f"),
            r["memory_states"], fmt(get(ours, r["method"], "peak_states"), ","))
           for r in get(p, "rows", default=[])]
    out.append("\nSide by side (ratio to each one's own primal; the paper's hardware is not "
               "stated, so only ratios compare):\n")
    out += table(("method", "paper ratio", "our ratio", "paper states", "our states"), cmp)
    out.append(f"\nWhat differs: the paper's primal is Julia on unstated hardware, ours a Numba "
               f"loop on the machine below; our n = {get(d, 'n', default='?')} (paper "
               f"{p.get('n', '?')}). Our adjoint row reloads every 200 steps as the paper's; our "
               "peak states are counts from the executors, the paper's a stated memory.")
    gl = [(g.get("goal"), fmt(g.get("measured")), fmt(g.get("limit")),
           "pass" if g.get("pass") else "FAIL", fmt(g.get("best_possible")))
          for g in get(d, "goals", default=[])]
    if gl:
        out += ["\nGoals of the Lorenz issue (best possible: JAX's time over the schedule's "
                "forward steps alone at the primal's step time):\n",
                *table(("goal", "measured", "limit", "", "best possible"), gl)]
    return out + ["", machine_line(d)]


def section_fig34(paper: dict) -> list[str]:
    f3, f4 = get(paper, "figure3", default={}), get(paper, "figure4", default={})
    out = ["## Lorenz Figures 3 and 4\n",
           f"Figure 3 (paper, {f3.get('section', '?')}): mean |gradient| over the 6 inputs on "
           f"sigma = {f3.get('sigma_grid')}, rho = {f3.get('rho_grid')} "
           f"({f3.get('resolution')} x {f3.get('resolution')}), n = {f3.get('n')}, "
           f"dt = {f3.get('dt')}; the curve {f3.get('separatrix')} bounds the stable region; "
           f"trajectories at (sigma, rho) = {f3.get('trajectories')}. Ours:\n",
           image("docs/img/lorenz_figure3.png", "Figure 3: gradient map and trajectories"),
           "\nWhat differs: ours is computed by forward mode (`python -m solvers.lorenz "
           "sensitivity`), which gives the same exact gradient as the paper's; the grid "
           "resolution used for the committed image is stated in its caption/visualize CLI.\n"]
    pts = ", ".join(f"{p['rel_error']:g} at {p['steps']} steps"
                    for p in f4.get("adjoint_error_vs_steps", []))
    out += [f"Figure 4 (paper, {f4.get('section', '?')}): adjoint-state relative error {pts}; "
            f"overflow beyond about {f4.get('overflow_beyond_steps')} steps; reloading every "
            f"{f4.get('reload_every')} steps gives about {f4.get('reload_rel_error'):g}. Ours:\n",
            image("docs/img/lorenz_figure4.png", "Figure 4: adjoint error"),
            "\nWhat differs: the exact reference is one of our exact gradients (forward and "
            "reverse mode agree to 1e-10); the random x0 sample differs from the paper's."]
    return out


def algorithm3_rows(n: int, deltas: Sequence[int]) -> list[dict]:
    """Algorithm 3's forward steps and peak pebbles against both optima at that peak."""
    rows = []
    for delta in deltas:
        r = pebbles.simulate(pebbles.treeverse_paper(n, delta), n)
        peak = r.peak_states
        ck = pebbles.min_forward_steps(n, peak, "checkpoint")
        ip = pebbles.min_forward_steps(n, peak, "inplace")
        rows.append({"delta": delta, "forward_steps": r.forward_steps,
                     "backward_steps": r.backward_steps, "peak_states": peak,
                     "checkpoint_optimum": ck, "inplace_optimum": ip,
                     "calls": r.forward_steps + r.backward_steps})
    return rows


def section_fig5(pml: dict | None, gpu: dict | None, why: dict, paper: dict) -> list[str]:
    f5 = get(paper, "figure5", default={})
    n, deltas = f5.get("n", 9999), f5.get("treeverse_delta", [])
    rows = algorithm3_rows(n, deltas)
    calls = f5.get("treeverse_calls_first_last", [None, None])
    out = ["## PML Figure 5 and the optimality of Algorithm 3\n",
           f"Paper ({f5.get('section', '?')}): Treeverse delta = {deltas} took "
           f"{f5.get('treeverse_seconds')} s with {calls[0]} ... {calls[-1]} forward+backward "
           f"calls; Bennett k = {f5.get('bennett_k_first_last')} took "
           f"{f5.get('bennett_seconds_first_last')} s with peak "
           f"{f5.get('bennett_peak_states_first_last')} states; per step on the GPU "
           f"{f5.get('gpu_forward_ms')} ms forward, {f5.get('gpu_backward_ms_range')} ms "
           f"backward.\n",
           f"Forward steps of the paper's Algorithm 3 (`pebbles.treeverse_paper`, exact) against "
           f"the optimal treeverse with the same peak memory, n = {n}, computed by pebbles:\n"]
    trs = []
    for r, secs in zip(rows, f5.get("treeverse_seconds", [None] * len(rows)), strict=False):
        trs.append((r["delta"], r["peak_states"], f"{r['forward_steps']:,}",
                    f"{r['checkpoint_optimum']:,}",
                    fmt(r["forward_steps"] / r["checkpoint_optimum"] - 1, ".1%"),
                    f"{r['inplace_optimum']:,}",
                    fmt(r["forward_steps"] / r["inplace_optimum"] - 1, ".1%"),
                    f"{r['calls']:,}", fmt(secs, "g")))
    out += table(("delta", "peak pebbles", "Alg. 3 forward", "checkpoint-game opt", "above",
                  "in-place opt", "above", "our calls (fwd+bwd)", "paper s"), trs)
    if rows:
        ok = [rows[0]["calls"] == calls[0], rows[-1]["calls"] == calls[-1]]
        out.append(f"\nPaper's call counts {calls[0]} (delta={deltas[0]}) and {calls[-1]} "
                   f"(delta={deltas[-1]}): ours {rows[0]['calls']} and {rows[-1]['calls']} "
                   f"({'equal' if all(ok) else 'DIFFERENT'}).")
    out += ["", image("docs/img/figure5.png", "Figure 5 from our measurements"), "",
            "What differs: the paper ran a V100 at 1000 x 1000 x 9999; our CPU sweep runs the "
            "size and n in its rows (and the GPU sweep only where a GPU was lent), so seconds "
            "compare only as ratios and against each run's own step model; step counts are "
            "exact and comparable."]
    out += _fig5_measured("CPU (bench_pml.py --fig5)", get(pml, "fig5"), pml,
                          why.get("bench_pml", "bench_pml.json has no fig5 section"))
    out += _fig5_measured("GPU (bench_gpu.py)", gpu, gpu,
                          why.get("bench_gpu", "bench_gpu.json not found"))
    return out


def _fig5_measured(title: str, sec: dict | None, whole: dict | None, why: str) -> list[str]:
    out = [f"\n### Measured, {title}\n"]
    recs = get(sec, "records", default=[])
    if not recs:
        return out + [not_measured(why if whole is None else f"no records ({title})")]
    rows = [(r.get("schedule"), r.get("n"), r.get("size"), fmt(r.get("forward_steps"), ","),
             fmt(r.get("peak_states")), fmt(r.get("seconds"), ".2f"),
             fmt(r.get("model_seconds"), ".2f"), fmt(r.get("peak_mb"), ".0f")) for r in recs]
    out += table(("schedule", "n", "size", "forward steps", "peak states", "s", "model s",
                  "peak MB"), rows)
    gpu = get(whole, "machine", "gpu")
    return out + ["", machine_line(whole) + (f" GPU: {gpu}." if gpu else "")]


def _grid(size: Any) -> str:
    """``[40, 36]`` as ``40 x 36``; one number ``s`` as ``s x s``."""
    if isinstance(size, (list, tuple)):
        return " x ".join(str(x) for x in size)
    return f"{size} x {size}"


def section_pml_jax(d: dict | None, pml: dict | None, why: dict, paper: dict) -> list[str]:
    f5 = get(paper, "figure5", default={})
    out = ["## PML: ours against jax.grad (paper section 4.2)\n"]
    if d is None:
        out.append(not_measured(why.get("bench_pml_jax", "bench_pml_jax.json not found")))
    else:
        v = get(d, "validation", default={})
        out.append(f"Size {get(d, 'size')} x {get(d, 'size')}, n = {get(d, 'n')}; validated at "
                   f"{_grid(v.get('size'))}, n = {v.get('n')}: loss rel diff "
                   f"{fmt(v.get('loss_rel_diff'), '.1e')}, gradient rel diff "
                   f"{fmt(v.get('grad_rel_diff'), '.1e')}.\n")
        rows = [(r.get("method"), r.get("status"), fmt(r.get("seconds"), ".2f"),
                 fmt(r.get("peak_mb"), ".0f"), str(r.get("note", "")).replace("|", "/")[:120])
                for r in get(d, "records", default=[])]
        out += table(("method", "status", "s", "peak MB", "note"), rows)
        out.append(f"\nJAX store-all at the paper's size would need at least "
                   f"{fmt(get(d, 'paper_size_store_all_gb'), '.0f')} GB (the paper: "
                   f"{f5.get('store_all_gb')} GB). " + machine_line(d))
    full = get(pml, "full")
    out.append("\nOur full-size run (`bench_pml.py --full`): " + (
        not_measured(why.get("bench_pml", "no 'full' section in bench_pml.json"))
        if not full else
        f"{full.get('size')} x {full.get('size')} x {full.get('n')} steps, "
        f"{full.get('game')} game, S = {full.get('pebbles')}: {fmt(full.get('seconds'), '.0f')} s, "
        f"peak RSS {fmt(full.get('peak_rss_mb'), '.0f')} MB, peak states "
        f"{full.get('peak_states')} ({fmt(full.get('state_mb'), '.0f')} MB each)."))
    out += _pml_loaded(get(pml, "loaded"))
    kern = get(pml, "kernels", "records", default=[])
    if kern:
        out += ["\nStep kernels (`bench_pml.py`):\n", *table(
            ("kernel", "size", "best ms", "GB/s", "of copy"),
            [(k.get("kernel"), k.get("size"), fmt(k.get("best_ms"), ".2f"),
              fmt(k.get("gb_s"), ".1f"), fmt(k.get("of_copy"), ".2f")) for k in kern])]
    return out


def _pml_loaded(loaded: dict | None) -> list[str]:
    """The PML gradient quiet and next to a busy loop (``bench_pml.py --loaded``)."""
    if not loaded:
        return ["\nUnder load (`bench_pml.py --loaded`): "
                + not_measured("no 'loaded' section in bench_pml.json")]
    by = {(r["size"], r["n"], r["variant"], r["loaded"]): r for r in loaded["records"]}
    rows = [(f"{q['size']} x {q['size']} x {q['n']}", q["variant"],
             by[(q["size"], q["n"], q["variant"], False)].get("threading_layer") or "-",
             fmt(q["quiet_seconds"], ".2f"), fmt(q["loaded_seconds"], ".2f"),
             fmt(q["ratio"], ".2f")) for q in loaded["ratios"]]
    return [f"\nUnder load (`bench_pml.py --loaded`): the Treeverse gradient (S = "
            f"{loaded['records'][0]['pebbles']}) in a fresh process, quiet and next to "
            f"{loaded['competing']}, on {loaded['cores']} cores; median of "
            f"{loaded['rounds']} rounds each:\n",
            *table(("problem", "threading", "layer", "quiet s", "loaded s", "loaded / quiet"),
                   rows)]


def section_fig7(paper: dict) -> list[str]:
    f7 = get(paper, "figure7", default={})
    n, delta = f7.get("treeverse_n", 20), f7.get("treeverse_delta", 3)
    tv = pebbles.simulate(pebbles.treeverse_paper(n, delta), n)
    nb, k = f7.get("bennett_n", 16), f7.get("bennett_k", 2)
    bn = pebbles.simulate(pebbles.bennett(nb, k), nb, "reversible")
    S = tv.peak_states
    rows = [("Treeverse (Alg. 3) forward steps", f7.get("treeverse_forward_steps"),
             tv.forward_steps),
            ("Treeverse pebbles", f7.get("treeverse_pebbles"), S),
            (f"optimum, checkpoint game, S={S}", f7.get("checkpoint_optimum_n20_S4"),
             pebbles.min_forward_steps(n, S, "checkpoint")),
            (f"optimum, in-place game, S={S}", f7.get("inplace_optimum_n20_S4"),
             pebbles.min_forward_steps(n, S, "inplace")),
            ("Bennett steps", f7.get("bennett_steps"), bn.forward_steps),
            ("Bennett first reach of cell n", f7.get("bennett_first_reach"), bn.first_reach_n),
            ("Bennett pebbles", f7.get("bennett_pebbles"), bn.peak_states),
            (f"reversible optimum with {bn.peak_states} pebbles", "-",
             pebbles.reversible_min_steps(nb, bn.peak_states))]
    out = [f"## Figure 7: pebble games (paper {f7.get('section', '?')})\n",
           *table(("quantity", "paper", "ours (simulated)"), rows),
           f"\nThe paper's figure shows {f7.get('treeverse_steps_shown')} rows for Treeverse: "
           "the forward steps plus the first row. Optimum rows are from the notes' worked "
           "example; the reversible optimum is not in the paper.\n",
           image("docs/img/figure7.png", "Figure 7: the paper's schedules next to the optimal")]
    return out


def treeverse_pebbles_for(n: int, steps: int, most: int) -> int | None:
    """Fewest pebbles with which optimal treeverse (checkpoint game) needs <= steps."""
    lo = pebbles.min_pebbles(n, "checkpoint")
    if pebbles.min_forward_steps(n, most, "checkpoint") > steps:
        return None
    hi = most
    while lo < hi:
        mid = (lo + hi) // 2
        if pebbles.min_forward_steps(n, mid, "checkpoint") <= steps:
            hi = mid
        else:
            lo = mid + 1
    return lo


def figure8_rows(sizes: Sequence[int], ks: Sequence[int] = (2, 3, 4, 8, 16)) -> list[dict]:
    rows = []
    for n in sizes:
        for k in ks:
            if k > n:
                continue
            steps, sb = pebbles.bennett_steps(n, k), pebbles.bennett_pebbles(n, k)
            st = treeverse_pebbles_for(n, steps, sb)
            rows.append({"n": n, "k": k, "overhead": steps / n, "bennett_pebbles": sb,
                         "treeverse_pebbles": st})
    return rows


def section_fig8(paper: dict) -> list[str]:
    f8 = get(paper, "figure8", default={})
    rows = figure8_rows(f8.get("n", [100, 10_000, 1_000_000]))
    trs = [(f"{r['n']:,}", r["k"], fmt(r["overhead"], ".1f"), r["bennett_pebbles"],
            fmt(r["treeverse_pebbles"]), fmt(r["treeverse_pebbles"] and
                                              r["bennett_pebbles"] / r["treeverse_pebbles"],
                                              ".2f")) for r in rows]
    more = all(r["treeverse_pebbles"] is not None and r["bennett_pebbles"] >= r[
        "treeverse_pebbles"] for r in rows)
    return [f"## Figure 8: Bennett against Treeverse at equal time overhead "
            f"(paper {f8.get('section', '?')})\n",
            f"Paper: {f8.get('claim')}. Ours, exact counts from pebbles: Bennett k-ary "
            "(reversible game, steps T' and peak pebbles from the recursion) against the fewest "
            "pebbles with which optimal treeverse (checkpoint game) needs at most T' forward "
            "steps:\n",
            *table(("n", "k", "T'/T", "Bennett pebbles", "Treeverse pebbles", "ratio"), trs),
            f"\nBennett needs at least as much memory in every row: {'yes' if more else 'NO'}.\n",
            image("docs/img/tradeoff.png", "Figure 8 extended: memory against time overhead")]


def section_scaling(d: dict | None, why: str, paper: dict) -> list[str]:
    t1 = get(paper, "table1", default={})
    out = [f"## Scaling: measured exponents next to the paper's Table 1 "
           f"({t1.get('section', '?')})\n"]
    prow = [(r["method"], r["time"], r["memory"], r["exact"]) for r in t1.get("rows", [])]
    out += table(("paper method", "time", "memory", "exact"), prow)
    out.append(f"\n{t1.get('exponent_note', '')}\n")
    if d is None:
        return out + [not_measured(why)]
    rows = [(f.get("method"), f.get("paper_row", "-"), fmt(f.get("time_exponent"), ".2f"),
             fmt(f.get("memory_exponent"), ".2f"), f.get("memory_kind", "-"),
             f.get("paper_time", "-"), f.get("paper_memory", "-"),
             f"{f.get('n_min', '?')}..{f.get('n_max', '?')}")
            for f in get(d, "fits", default=[])]
    out += table(("method", "paper row", "time exponent", "memory exponent", "memory measure",
                  "paper time", "paper memory", "n range"), rows)
    return out + ["", machine_line(d)]


def build(results: Path, paper_path: Path = PAPER) -> str:
    """The whole report as Markdown."""
    paper = _read(paper_path) or {}
    data, why = load_results(results)
    run_info = _read(results / "run.json")
    parts: list[list[str]] = [
        ["# Reproduction report: Liu & Xu, *Automatic differentiation in physics simulation*\n",
         "Generated by `python benchmarks/report.py` from the JSON files in "
         f"`{_rel(results)}` and `benchmarks/paper_values.json`; every paper number comes "
         "from that file (section of the paper notes cited), every other number from a "
         "measurement or a pebbles computation. Do not edit by hand.\n"],
        section_run(data, why, run_info),
        section_table2(data["bench_lorenz"], why.get("bench_lorenz", ""), paper),
        section_fig34(paper),
        section_fig5(data["bench_pml"], data["bench_gpu"], why, paper),
        section_pml_jax(data["bench_pml_jax"], data["bench_pml"], why, paper),
        section_fig7(paper),
        section_fig8(paper),
        section_schedules(data["bench_schedules"], why.get("bench_schedules", "")),
        section_scaling(data["bench_scaling"], why.get("bench_scaling", ""), paper),
        *(section_generic(name, title, data[name], why.get(name, ""))
          for name, title in GENERIC.items()),
    ]
    return "\n".join("\n".join(p) + "\n" for p in parts)


def _rel(p: Path) -> str:
    try:
        return p.resolve().relative_to(ROOT).as_posix()
    except ValueError:  # outside the repository: no machine directories in the report
        return p.name


def draw_figure5(results: Path, out: Path, dpi: int = 80) -> str:
    """Draw Figure 5 from the ``fig5`` records of ``bench_pml.json``; return what was done."""
    records = get(_read(results / "bench_pml.json"), "fig5", "records", default=None)
    if not records:
        return f"Figure 5 not drawn: {_rel(results / 'bench_pml.json')} has no fig5 records"
    import visualize  # matplotlib: only when the figure is asked for

    visualize.save(visualize.draw_figure5(records), out, dpi=dpi)
    return f"wrote {out} from {len(records)} records"


def _missing_lines(missing: dict[str, str], results: Path, outcome: str,
                   skipped: dict[str, str] | None = None) -> list[str]:
    out = [f"README block numbers:{name} has no results: {results / f'{script}.json'} "
           f"is absent or unreadable; {outcome} (run benchmarks/run.py --only {script} "
           "to measure it)" for name, script in missing.items()]
    return out + [f"README block numbers:{name} skipped: {why}; {outcome}"
                  for name, why in (skipped or {}).items()]


def quick_scripts(results: Path) -> set[str]:
    """The scripts that ``RESULTS/run.json`` records as run in quick mode (and whose
    results file is from that run, not kept from an earlier one)."""
    scripts = get(_read(results / "run.json"), "scripts", default={})
    if not isinstance(scripts, dict):
        return set()
    return {name for name, e in scripts.items()
            if isinstance(e, dict) and e.get("mode") == "quick" and not e.get("kept")}


def check_readme(readme: Path, data: dict, missing: dict[str, str], results: Path,
                 skipped: dict[str, str] | None = None, quick: set[str] | None = None) -> int:
    """``--check``: 1 when a README block differs from the results, has no results or
    has results it cannot be rendered from (a quick run's, or lacking a key)."""
    stale = readme_numbers.stale_blocks(readme, data, quick or ())
    for line in _missing_lines(missing, results, "its numbers cannot be checked", skipped):
        print(f"{readme}: {line}")
    if stale:
        print(f"{readme}: stale numbers in {', '.join(stale)}")
    if not stale and not missing and not skipped:
        print(f"{readme}: every number block matches the results")
    return 1 if stale or missing or skipped else 0


DEFAULT_RESULTS = HERE / "results"
DEFAULT_README = ROOT / "README.md"


def results_dir(text: str) -> str:
    """argparse type of ``--results``: an existing directory (a missing one would give a
    report of nothing but "not measured")."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory; give the directory "
                                         "benchmarks/run.py wrote, e.g. benchmarks/results")
    return text


def image_file(text: str) -> str:
    """argparse type of ``--figure5``: an image file ``visualize.save`` can write (checked
    by ``visualize.cli.check_output``), with matplotlib installed, before any writing."""
    from visualize.cli import check_output, matplotlib_required

    try:
        check_output(text)
        matplotlib_required("--figure5")
    except (ValueError, ImportError) as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("-o ")) from None
    return text


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=results_dir, default=str(DEFAULT_RESULTS),
                   help="directory of JSON files")
    p.add_argument("--out", type=output_file, default=str(HERE / "REPORT.md"))
    p.add_argument("--figure5", type=image_file, help="also draw Figure 5 into this image "
                   "(e.g. docs/img/figure5.png)")
    readme = p.add_mutually_exclusive_group()
    readme.add_argument("--readme", type=existing_file, default=None,
                        help="README whose <!-- numbers:NAME --> passages are rendered from "
                        "the results (default: the repository's README.md when --results is "
                        "the default directory or with --check, else none)")
    readme.add_argument("--no-readme", action="store_true",
                        help="rewrite no README (only with --results elsewhere is that the "
                        "default)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when the README's numbers differ from the results")
    p.add_argument("--paper", default=str(PAPER), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    results = Path(args.results)
    if args.check and args.no_readme:
        p.error("--check checks a README; it cannot go with --no-readme")
    readme_path = (Path(args.readme) if args.readme else None if args.no_readme
                   else DEFAULT_README if args.check or _same(results, DEFAULT_RESULTS)
                   else None)
    data, _ = load_results(results)
    quick = quick_scripts(results)
    if readme_path is not None:
        missing = readme_numbers.missing_blocks(readme_path, data)
        skipped = readme_numbers.skipped_blocks(readme_path, data, quick)
        if args.check:
            return check_readme(readme_path, data, missing, results, skipped, quick)
        for line in _missing_lines(missing, results, "left as it is", skipped):
            print(f"warning: {line}", file=sys.stderr)
        changed = readme_numbers.update_readme(readme_path, data, quick)
        print(f"updated {readme_path}: {', '.join(changed) or 'no change'}")
    else:
        print(f"README not touched (results from {_rel(results)}; --readme PATH rewrites one)")
    text = build(Path(args.results), Path(args.paper))
    Path(args.out).write_text(text)
    print(f"wrote {args.out} ({len(text.splitlines())} lines)")
    if args.figure5:
        print(draw_figure5(Path(args.results), Path(args.figure5)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
