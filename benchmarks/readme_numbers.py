"""The README's benchmark numbers, rendered from the JSON files in ``results/``.

The README marks each generated passage::

    <!-- numbers:NAME -->
    ...text rendered by BLOCKS[NAME] from the results...
    <!-- /numbers -->

``python benchmarks/report.py`` rewrites those passages together with REPORT.md,
and ``python benchmarks/report.py --check`` exits 1 when the README's numbers
differ from what the JSON files say (tests/test_readme.py runs the same check),
so no number in those passages is typed by hand.

A block is rendered only from a full run's results, and a full run is what
``run.py --full`` runs: the command a result records must pass the script the options
of ``run.SUITE``'s full arguments and no others (``--json``, where the file went, aside).
A block whose script's results come from any other command (``--quick``, or sizes of
its own such as ``bench_pml_jax.py --size 64 --steps 300``), that says ``"mode"`` other
than ``"full"``, that ``run.json`` records as run in quick mode, or that lack what the
block quotes (a quick ``bench_pml.json`` has no ``full`` section) is skipped: its
passage stays as it is, and ``skipped_blocks`` says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from run import SUITE

__all__ = ["BLOCKS", "missing_blocks", "not_full", "render_blocks", "skipped_blocks",
           "stale_blocks", "update_readme"]

Results = dict[str, Any]
_BLOCK = re.compile(r"(<!-- numbers:([a-z0-9-]+) -->\n)(.*?)(<!-- /numbers -->)", re.S)


def _span(values: Iterable[float], spec: str, unit: str = "") -> str:
    """``'a-b'`` (``'a'`` when both ends print the same) with ``unit`` appended."""
    vals = sorted(values)
    lo, hi = format(vals[0], spec), format(vals[-1], spec)
    return f"{lo}{unit}" if lo == hi else f"{lo}-{hi}{unit}"


def _pct(ratios: Iterable[float]) -> str:
    return _span((100 * (r - 1) for r in ratios), ".0f", " %")


def _record(records: Sequence[dict], method: str) -> dict:
    for r in records:
        if r.get("method") == method:
            return r
    raise KeyError(f"no record with method={method!r} in the results")


def _pow10(n: int, caret: bool = False) -> str:
    """``10**6`` (``10^6`` with ``caret``) for a power of ten from 10 up, else ``n``."""
    if not isinstance(n, int) or n < 10:
        return str(n)
    k = len(str(n)) - 1
    if n == 10**k:
        return f"10^{k}" if caret else f"10**{k}"
    return str(n)


def _machine(d: dict) -> str:
    m = d["machine"]
    cpu = "Intel Xeon" if "Xeon" in m["cpu"] else m["cpu"]
    return f"{cpu}, {m['cores']} cores"


def _lowering_short(r: Results) -> str:
    big = r["bench_lowering"]["rows"][-1]
    return (f"Lowering `pebbles.schedule(\"treeverse\", {_pow10(big['n'])}, "
            f"budget={big['budget']}, inplace=True)` takes {big['lower_warm_s']:.2f} s in "
            f"process with Numba installed (`benchmarks/bench_lowering.py`); a plain move "
            f"iterator such as `pebbles.treeverse(...)` is lowered move by move, about ten "
            f"times slower.")


def _jax(r: Results) -> str:
    d = r["bench_jax"]
    extra, speed, fewer, faster = [], {}, [], {}
    for prob in ("wave", "lorenz"):
        recs = d[prob]["records"]
        speed[prob], faster[prob] = [], []
        for b in d["budgets"]:
            at = [x for x in recs if x["budget"] == b]
            ours = _record(at, "pebbles checkpointed_scan")
            eqx = _record(at, "equinox checkpointed while")
            loop = _record(at, "pebbles checkpointed_while_loop")
            extra.append(eqx["evaluations"] / ours["evaluations"])
            speed[prob].append(eqx["cpu_seconds"] / ours["cpu_seconds"])
            fewer.append(1 - loop["evaluations"] / eqx["evaluations"])
            faster[prob].append(loop["cpu_seconds"] / eqx["cpu_seconds"])
    w = d["wave"]
    return (f"Measured side by side (`benchmarks/bench_jax.py`, budgets "
            f"{'/'.join(map(str, d['budgets']))}, CPU time, {_machine(d)}): equinox's "
            f"checkpointed while loop makes {_pct(extra)} more evaluations and takes "
            f"{_span(speed['wave'], '.1f', 'x')} the time on a {w['size']} x {w['size']} x "
            f"{w['n']} wave equation and {_span(speed['lorenz'], '.0f', 'x')} on Lorenz "
            f"n = {d['lorenz']['n']}. Where n is not known in advance, "
            f"`checkpointed_while_loop` makes {_span([100 * f for f in fewer], '.0f', ' %')} "
            f"fewer evaluations than equinox's loop and takes "
            f"{_span(faster['wave'], '.2f', 'x')} its time on the wave, "
            f"{_span(faster['lorenz'], '.2f', 'x')} on Lorenz.")


def _online(r: Results) -> str:
    d = r["bench_online"]
    ours = [row[f"online_{g}"] / row[f"optimum_{g}"] for row in d["rows"]
            for g in ("inplace", "checkpoint")]
    eqx = [row["equinox"] / row["optimum_inplace"] for row in d["rows"]
           if row.get("equinox") and row["n"] > row["r2_range_inplace"]]
    return (f"`benchmarks/bench_online.py` at S = {', '.join(map(str, d['budgets']))} and "
            f"n = {min(d['sizes'])} to {max(d['sizes'])} ({_machine(d)}) puts it at most "
            f"{100 * (max(ours) - 1):.1f} % above the offline optimum, and equinox "
            f"{_pct(eqx)} above it beyond (S+1)(S+2)/2.")


def _twolevel(r: Results) -> str:
    d = r["bench_twolevel"]
    row = next((x for x in d["ours"] if x["n"] == 10000 and x["write_cost"] == 2.0
                and x["read_cost"] == 2.0), None)
    if row is None:
        raise KeyError("no row with n = 10000 and w = r = 2 (a --quick run leaves it out)")
    return (f"n = {row['n']}, S = {row['S']}, unbounded disk, w = r = 2 "
            f"(`bench_twolevel.py`): {row['dp_seconds']:.1f} s to plan, total time "
            f"{row['total_time']:.0f} against {row['memory_only']:.0f} memory-only.")


def _pml_disk(r: Results) -> str:
    d = r["bench_pml_disk"]
    by = {x["config"]: x for x in d["rows"]}
    best = by[d["best_disk"]]
    met = [k for k, v in d["goals"].items() if v]
    missed = [k for k, v in d["goals"].items() if not v]
    return (f"The PML gradient at {d['size']} x {d['size']} x {d['steps']} "
            f"(`benchmarks/bench_pml_disk.py`, {_machine(d)}, each run in a fresh process, "
            f"median of {d.get('rounds', 1)} interleaved round(s), "
            f"states of {d['state_mb']:.0f} MB): memory-only Treeverse S = 20 takes "
            f"{by['memory S=20']['seconds']:.1f} s ({by['memory S=20 in-place']['seconds']:.1f} s "
            f"in the in-place game), S = 4 {by['memory S=4']['seconds']:.1f} s; with 4 states in "
            f"memory plus disk ({d['best_disk']}: {best['writes']} writes, {best['reads']} "
            f"reads, {best['bytes_written'] / 1e9:.1f} GB written) "
            f"{best['seconds']:.1f} s, {best['time_over_memory_s20']:.2f}x the faster S = 20 "
            f"run, at a peak RSS {best['rss_over_memory_s4_states']:.1f} states above "
            f"memory-only S = 4. Goals met: {'; '.join(met) or 'none'}. Not met: "
            f"{'; '.join(missed) or 'none'}.")


def _torch(r: Results) -> str:
    d = r["bench_torch"]
    met = [k for k, v in d["goals"].items() if v]
    missed = [k for k, v in d["goals"].items() if not v]
    mode = "--quick" if "--quick" in d["machine"]["command"] else "full"
    return (f"Against torch's `checkpoint_sequential` at equal peak memory "
            f"(`benchmarks/bench_torch.py`, {mode} mode, {_machine(d)}), goals met: "
            f"{'; '.join(met) or 'none'}. Not met: {'; '.join(missed) or 'none'}.")


_LORENZ_ROWS = (  # README label, record method(s), paper Table 2 row ("ours" key)
    ("primal (Numba)", ("primal",), "primal"),
    ("forward mode, 6 tangents", ("forward",), "forward"),
    ("reverse, store-all", ("store-all",), "store-all"),
    ("reverse, Treeverse S = 10 (checkpoint / in-place game)",
     ("treeverse S=10", "treeverse in-place S=10"), None),
    ("reverse, Treeverse S = 10, generic Python executor",
     ("treeverse S=10 (generic executor)",), None),
    ("reverse, Bennett k = 3", ("bennett k=3",), None),
    ("adjoint state, reload every 200", ("adjoint K=200",), "adjoint K=200"),
    ("JAX jit(grad), lax.scan (store-all)", ("jax grad",), None),
    ("JAX jit(grad) + jax.checkpoint per 100-step block", ("jax grad+checkpoint",), None),
    ("JAX jit(jacfwd)", ("jax jacfwd",), None),
)


def _states(k: int) -> str:
    return "10^4" if k in (10000, 10001) else str(k)


def _lorenz_table(d: dict) -> list[str]:
    paper = {p["ours"]: p for p in d["paper_table2"]}
    lines = ["| method | ours µs | ours x primal | peak states | paper (Table 2) ms "
             "| paper x primal | paper states |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, methods, ref in _LORENZ_ROWS:
        recs = [_record(d["records"], m) for m in methods]
        us = " / ".join(f"{1e6 * x['seconds']:.0f}" for x in recs)
        ratio = " / ".join(f"{x['ratio_to_primal']:.3g}" for x in recs)
        p = paper.get(ref) if ref else None
        tail = (f"{p['ms']:.3g} | {p['ratio_to_primal']:.2f} | {_states(p['memory_states'])}"
                if p else " | | ")
        lines.append(f"| {label} | {us} | {ratio} | {_states(recs[0]['peak_states'])} | {tail} |")
    return lines


def _lorenz(r: Results) -> str:
    d = r["bench_lorenz"]
    rec = {x["method"]: x for x in d["records"]}
    diffs = {k: rec[k]["max_rel_diff"] for k in ("jax grad", "adjoint K=200")}
    exact = max(rec[k]["max_rel_diff"] for k in ("store-all", "treeverse S=10", "bennett k=3"))
    model = d["interleaved_model"]
    tv, tvi = (model["rows"][k]["time_over_model"]
               for k in ("treeverse S=10", "treeverse in-place S=10"))
    jax, ben = rec["jax grad"]["seconds"], rec["bennett k=3"]
    head = (f"**Lorenz, n = {_pow10(d['n'], caret=True)}** (`bench_lorenz.py`, {_machine(d)}; "
            f"every gradient checked against store-all in the same run: exact methods differ by "
            f"{exact:.2g}, JAX by "
            f"{diffs['jax grad']:.2g}, the adjoint by {diffs['adjoint K=200']:.2g}):")
    tail = (f"Treeverse runs {tv:.3f} (checkpoint game) and {tvi:.3f} (in-place) times its step "
            f"model fwd_steps x t_step + n x t_vjp, timed in {model['rounds']} interleaved "
            "rounds (each round times the step loop, the vjp loop and the replays back to "
            "back, so the machine's drift hits both sides). The Numba executor runs a "
            "paint's vjp alongside the next walk's first step (the two are independent), bit "
            f"for bit the same gradient. JAX's store-all gradient is "
            f"{jax / rec['treeverse S=10']['seconds']:.0f}x slower than our Treeverse and "
            f"{jax / rec['store-all']['seconds']:.0f}x slower than our store-all; Bennett "
            f"k = 3 does {ben['forward_steps'] / d['n']:.0f} n forward steps, so it is only "
            f"{jax / ben['seconds']:.1f}x faster.")
    return "\n".join([head, "", *_lorenz_table(d), "", tail])


def _pml(r: Results) -> str:
    d = r["bench_pml"]
    k = {x["kernel"]: x for x in d["kernels"]["records"]}
    fwd, adj = k["forward (into buffer)"], k["adjoint"]
    if "full" not in d:
        raise KeyError("no 'full' section (written only by bench_pml.py --full)")
    full = d["full"]
    return (f"**PML** (`bench_pml.py`, {_machine(d)}): step kernels at {fwd['size']} x "
            f"{fwd['size']} against a copy bandwidth of {d['kernels']['copy_gb_s']:.1f} GB/s "
            f"measured in the same run: forward {fwd['best_ms']:.2f} ms "
            f"({100 * fwd['of_copy']:.0f} % of copy bandwidth), in-place "
            f"{k['in-place']['best_ms']:.2f} ms, adjoint {adj['best_ms']:.2f} ms "
            f"({adj['best_ms'] / fwd['best_ms']:.1f}x the forward step). The paper's full "
            f"problem, {full['size']} x {full['size']} x {full['n']} with Treeverse "
            f"S = {full['pebbles']}: **{full['seconds']:.0f} s** for the gradient (plus "
            f"{full['record_seconds']:.0f} s to record the observed data), **peak RSS "
            f"{full['peak_rss_mb']:.0f} MB** ({full['peak_states']} states of "
            f"{full['state_mb']:.0f} MB), where store-all would need "
            f"{full['n'] * full['state_mb'] / 1000:.0f} GB.")


def _pml_loaded(r: Results) -> str:
    d = r["bench_pml"]
    ratios = d["loaded"]["ratios"]
    mine = [x for x in ratios if x["variant"] == "solver default"]
    spin = [x for x in ratios if x["variant"] == "OpenMP, all threads"]
    cases = ", ".join(f"{x['size']} x {x['size']} x {x['n']}" for x in mine)
    return (f"Next to one competing CPU-bound process (`bench_pml.py --loaded`, {_machine(d)}, "
            f"{cases}) the gradient takes {_span([x['ratio'] for x in mine], '.2f')}x its "
            f"quiet time with the solver's default, against "
            f"{_span([x['ratio'] for x in spin], '.2f')}x on OpenMP with all threads.")


def _fig5(r: Results) -> str:
    d = r["bench_pml"]["fig5"]
    recs = d["records"]
    tv = [x["model_ratio"] for x in recs if x["schedule"].startswith("treeverse")]
    bn = [x["model_ratio"] for x in recs if x["schedule"].startswith("bennett")]
    rounds = [v for x in recs for v in x["model_ratio_rounds"]]
    rss = max(abs(x["peak_mb"] - (x["peak_states"] + 1) * d["state_mb"]) for x in recs)
    x0 = recs[0]
    return (f"Figure 5 at {x0['size']} x {x0['size']} x {x0['n']}: each schedule "
            f"{d['rounds']} times, each time in a fresh process. Measured time over the "
            "model (steps x step costs + executor time, the costs measured in the same "
            "process right after the run, with steps touching buffers at the LRU distances "
            f"the run's own steps had), the round with the median ratio: Treeverse "
            f"{_span(tv, '.2f')} in all {len(tv)} configurations, Bennett "
            f"{_span(bn, '.2f')}; single rounds spread from {min(rounds):.2f} to "
            f"{max(rounds):.2f} on this VM. Peak RSS is within {rss:.0f} MB of "
            f"(peak states + 1) x {d['state_mb']:.2f} MB.")


def _pml_jax(r: Results) -> str:
    d = r["bench_pml_jax"]
    v = d["validation"]
    lines = [f"**PML against JAX** (`bench_pml_jax.py`, {d['size']} x {d['size']} x {d['n']}, "
             f"{_machine(d)}, same loss validated to {v['loss_rel_diff']:.1g}, gradient to "
             f"{v['grad_rel_diff']:.2g}; each configuration in a fresh process):", "",
             "| method | s | peak MB |", "|---|---:|---:|"]
    lines += [f"| {x['method']} | {x['seconds']:.2f} | {x['peak_mb']:.0f} |"
              for x in d["records"]]
    return "\n".join(lines)


def _lowering(r: Results) -> str:
    d = r["bench_lowering"]
    rows = d["rows"]
    small, big = rows[0], rows[-1]
    s = big["budget"]
    if len(rows) == 1:
        count = f"{big['count_ratio']:.0f}x (n = {big['n']})"
        process = (f"{big['process_ours_s']:.2f} s at n = {big['n']} (Multistage: "
                   f"{big['process_multistage_s']:.1f} s)")
    else:
        count = (f"{small['count_ratio']:.0f}x (n = {small['n']}) and "
                 f"{big['count_ratio']:.0f}x (n = {big['n']})")
        process = (f"{small['process_ours_s']:.2f} s at n = {small['n']} (Multistage: "
                   f"{small['process_multistage_s']:.1f} s) and {big['process_ours_s']:.2f} s "
                   f"at n = {big['n']} ({big['process_multistage_s']:.1f} s)")
    return (f"**Checked lowering** (`bench_lowering.py`, {_machine(d)}, numba installed): "
            f"lowering `pebbles.schedule(\"treeverse\", {_pow10(big['n'])}, budget={s}, "
            f"inplace=True)` (generated by the block-cached encoder, checked by the compiled "
            f"rule loop, given slots) takes "
            f"{big['lower_warm_s']:.2f} s in process and {big['lower_cold_process_s']:.2f} s "
            f"as a fresh process (imports included). Generating and counting the in-place "
            f"schedule, both sides streamed: {count} faster than iterating "
            f"checkpoint_schedules' Multistage to EndReverse. Whole process, `pebbles "
            f"schedule treeverse --inplace -n N --pebbles {s} --format summary` (checked by "
            f"the rules): {process}.")


def _schedules(r: Results) -> str:
    d = r["bench_schedules"]
    rows = d["rows"]
    speed = {peer: [1 / x["ratio_ours_over_theirs"] for x in rows
                    if x["schedule"] == peer and x["ratio_ours_over_theirs"]]
             for peer in ("cs.Multistage", "pyrevolve.CRevolve")}
    eqx = [x["forward_steps"] / x["inplace_optimum"] for x in rows
           if x["schedule"] == "equinox" and x["status"] == "ok"]
    same = ("all four count the same forward steps" if not d["mismatches"]
            else f"{len(d['mismatches'])} rows count different forward steps")
    return (f"**Schedule generation** (`bench_schedules.py`, {_machine(d)}): our Treeverse "
            f"generates the same (optimal) schedule as Revolve "
            f"{_span(speed['cs.Multistage'], '.1f', 'x')} faster than checkpoint_schedules' "
            f"MultistageCheckpointSchedule and {_span(speed['pyrevolve.CRevolve'], '.0f', 'x')} "
            f"faster than pyrevolve's CRevolve (n = {min(d['sizes'])} to {max(d['sizes'])}, "
            f"S = {' and '.join(map(str, d['budgets']))}; {same}). equinox's online "
            f"checkpointing does {_pct(eqx)} more forward steps than the optimum (it does "
            "not know n).")


BLOCKS: dict[str, tuple[str, Callable[[Results], str]]] = {  # name: (script, renderer)
    "lowering-short": ("bench_lowering", _lowering_short),
    "jax": ("bench_jax", _jax),
    "online": ("bench_online", _online),
    "two-level": ("bench_twolevel", _twolevel),
    "torch": ("bench_torch", _torch),
    "pml-disk": ("bench_pml_disk", _pml_disk),
    "lorenz": ("bench_lorenz", _lorenz),
    "pml": ("bench_pml", _pml),
    "fig5": ("bench_pml", _fig5),
    "pml-loaded": ("bench_pml", _pml_loaded),
    "pml-jax": ("bench_pml_jax", _pml_jax),
    "lowering": ("bench_lowering", _lowering),
    "schedules": ("bench_schedules", _schedules),
}


def not_full(script: str, d: Any) -> str | None:
    """Why the results ``d`` of ``script`` are not from ``run.py --full``'s command for it,
    or None when they are (the module's docstring gives the rule)."""
    machine = d.get("machine") if isinstance(d, dict) else None
    command = machine.get("command") if isinstance(machine, dict) else None
    if not isinstance(command, str):
        return "it records no command"
    if d.get("mode", "full") != "full":
        return f"its mode is {d['mode']!r}"
    words = command.split()[2:]  # after "python SCRIPT"
    given = [w for i, w in enumerate(words) if not w.startswith("--json=")
             and w != "--json" and (i == 0 or words[i - 1] != "--json")]
    full = SUITE[script][1] if script in SUITE else []
    if given != full:
        return (f"its command `{command}` passes {' '.join(given) or 'no options'}, where "
                f"run.py --full passes {' '.join(full) or 'none'}")
    return None


def _render_all(results: Results, quick: Iterable[str] = ()) -> tuple[dict[str, str],
                                                                      dict[str, str]]:
    """({block: text}, {block: why it is skipped}) for the blocks whose script has results;
    ``quick`` names scripts known (from run.json) to have been run in quick mode."""
    quick = set(quick)
    blocks: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name, (script, render) in BLOCKS.items():
        d = results.get(script)
        if d is None:
            continue
        why = "run.json records it in quick mode" if script in quick else not_full(script, d)
        if why:
            skipped[name] = (f"{script}.json is not from a full run: {why}; the README "
                             f"quotes full runs only (run benchmarks/run.py --only {script})")
            continue
        try:
            blocks[name] = render(results).rstrip("\n") + "\n"
        except (KeyError, IndexError, TypeError, ValueError, StopIteration,
                ZeroDivisionError, AttributeError) as exc:
            what = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            skipped[name] = (f"{script}.json lacks what the block quotes "
                             f"({type(exc).__name__}: {what}); is it from a quick or partial "
                             f"run? (run benchmarks/run.py --only {script})")
    return blocks, skipped


def render_blocks(results: Results, quick: Iterable[str] = ()) -> dict[str, str]:
    """Each block's text from the loaded results (``report.load_results``); a block
    whose script has no results, or results from a quick run or without what the block
    quotes (see ``skipped_blocks``), is left out (its README passage stays as it is)."""
    return _render_all(results, quick)[0]


def skipped_blocks(readme: Path, results: Results, quick: Iterable[str] = ()) -> dict[str, str]:
    """{block name: why} for each README block whose script has results that cannot be
    rendered: from a quick run, or without what the block quotes. Never raises."""
    names = {m.group(2) for m in _BLOCK.finditer(readme.read_text())}
    return {k: v for k, v in _render_all(results, quick)[1].items() if k in names}


def _replace(text: str, blocks: dict[str, str]) -> tuple[str, list[str]]:
    stale: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group(2)
        if name not in BLOCKS:
            raise KeyError(f"README block numbers:{name} has no renderer; known: {sorted(BLOCKS)}")
        if name not in blocks:
            return m.group(0)
        if m.group(3) != blocks[name]:
            stale.append(name)
        return m.group(1) + blocks[name] + m.group(4)

    return _BLOCK.sub(sub, text), stale


def stale_blocks(readme: Path, results: Results, quick: Iterable[str] = ()) -> list[str]:
    """Names of the README blocks whose text differs from the results."""
    return _replace(readme.read_text(), render_blocks(results, quick))[1]


def missing_blocks(readme: Path, results: Results) -> dict[str, str]:
    """{block name: script} for each README block whose script has no results (its
    results file is absent or unreadable), so the block cannot be checked or rendered."""
    names = [m.group(2) for m in _BLOCK.finditer(readme.read_text())]
    return {name: BLOCKS[name][0] for name in names
            if name in BLOCKS and results.get(BLOCKS[name][0]) is None}


def update_readme(readme: Path, results: Results, quick: Iterable[str] = ()) -> list[str]:
    """Rewrite the README's blocks from the results; return the names that changed."""
    text, stale = _replace(readme.read_text(), render_blocks(results, quick))
    if stale:
        readme.write_text(text)
    return stale
