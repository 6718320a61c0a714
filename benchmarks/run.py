"""Run the whole benchmark suite, then write benchmarks/REPORT.md.

Each benchmark script runs as its own subprocess (one at a time, so timings do not
compete) with ``--json RESULTS/<script>.json``: that JSON is the script's one result
file. The earlier file is moved aside while the script runs and put back when the script
wrote none (failed, timed out or was interrupted; run.json says the run failed and that
the file is from an earlier run). Its stdout and stderr go to
``RESULTS/<script>.log``, which git ignores.

``RESULTS/run.json`` records, for every script, how its result came about: status,
mode, start time, seconds, the command (paths relative to the repository) and, when it
failed, timed out, is missing or needs absent hardware (the GPU benchmark without a
GPU), the reason or the error's tail. A run with ``--only`` replaces the entries of the
scripts it runs and keeps the others' entries from the previous run.json, so the file
always describes the result files next to it. ``report.py`` then turns every result
(or its absence) into the report. The exit status is 1 when a script run failed, timed
out or exited non-zero (a script not in the checkout, or the GPU benchmark without a
GPU, is recorded but does not count), or when report.py failed.

The report goes to ``--report``: by default benchmarks/REPORT.md, or ``OUT/REPORT.md``
with another ``--out`` (a run elsewhere leaves the repository's report alone).
``report.py`` also rewrites the repository README's measured passages, but only when
``--out`` and ``--report`` are both their defaults (or with ``--readme PATH``, which
names the README to rewrite): a run into another directory leaves README.md alone.
``report.py`` renders those passages from full-run results only; quick results leave
them as they are, with a warning. When report.py fails, run.py says so and exits 1.

Modes: ``--quick`` (small sizes everywhere; about 15-20 minutes on 2 cores: ten of its
scripts took 552 s together in one measured run, bench_online alone 148 s) and
``--full`` (the default: the long cases, including the 1000 x 1000 x 9999 PML run;
about 2 hours on 2 cores: the nine scripts results/run.json records in full mode took
6,740 s together by the ``seconds`` of their entries, bench_torch alone 4,120 s).

Usage: python benchmarks/run.py [--quick|--full] [--out benchmarks/results]
       [--only NAME ...] [--report PATH] [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _common import command_line, existing_file, output_file, tail

HERE = Path(__file__).resolve().parent

# script -> (quick arguments, full arguments, timeout in seconds quick/full)
SUITE: dict[str, tuple[list[str], list[str], tuple[int, int]]] = {
    "bench_schedules": (["--quick"], [], (240, 7200)),
    "bench_lowering": (["--quick"], [], (300, 1800)),
    "bench_lorenz": (["--quick"], [], (300, 3600)),
    "bench_pml": (["--size", "300", "--repeat", "5", "--fig5", "--fig5-size", "100",
                   "--fig5-steps", "400", "--fig5-rounds", "1"],
                  ["--fig5", "--full", "--loaded"], (300, 6 * 3600)),
    "bench_pml_jax": (["--size", "64", "--steps", "300"], [], (300, 4 * 3600)),
    "bench_scaling": (["--quick"], [], (240, 3600)),
    "bench_jax": (["--quick"], [], (600, 3600)),
    "bench_torch": (["--quick"], [], (600, 2 * 3600)),
    "bench_torch_segments": (["--quick"], [], (600, 3600)),
    "bench_online": (["--quick"], [], (600, 3600)),
    "bench_twolevel": ([], [], (600, 3600)),
    "bench_pml_disk": (["--size", "300", "--steps", "500", "--rounds", "1"], [], (600, 3600)),
    "bench_gpu": (["--size", "250", "--steps", "2000"], [], (600, 3600)),
}
NEEDS_GPU = {"bench_gpu"}
FAILED = ("failed", "timeout")  # statuses of a script that wrote no result this run


def has_gpu() -> tuple[bool, str]:
    """(True, name) when nvidia-smi lists a GPU; else (False, why not)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False, "no GPU (nvidia-smi not found)"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"no GPU (nvidia-smi failed: {exc})"
    first = out.stdout.strip().splitlines()[:1]
    return (True, first[0]) if out.returncode == 0 and first else (False, "no GPU listed")


def run_script(name: str, args: list[str], timeout: int, out: Path) -> dict:
    """Run one script; its status, seconds and the reason when it did not produce JSON.

    The earlier ``OUT/<name>.json`` is moved aside while the script runs with
    ``--json OUT/<name>.json``; it is dropped when the script wrote a new file and
    put back when it did not (failed, timed out or interrupted)."""
    script = HERE / f"{name}.py"
    if not script.exists():
        return {"status": "missing", "reason": f"missing: {script.name} not in benchmarks/"}
    dest = out / f"{name}.json"
    aside = dest.with_name(dest.name + ".earlier")
    if dest.exists():
        os.replace(dest, aside)
    try:
        return _execute([sys.executable, str(script), *args, "--json", str(dest)], name,
                        timeout, out)
    finally:
        if aside.exists():
            if dest.exists():
                aside.unlink()
            else:
                os.replace(aside, dest)


def _execute(cmd: list[str], name: str, timeout: int, out: Path) -> dict:
    """Run ``cmd`` (a script writing ``OUT/<name>.json``), its output to ``<name>.log``."""
    dest = out / f"{name}.json"
    shown = command_line(cmd[1:])
    print(f"[run] {shown}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE)
    except subprocess.TimeoutExpired as exc:
        dest.unlink(missing_ok=True)  # a partial file is not a result
        log = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        (out / f"{name}.log").write_text(log)
        return {"status": "timeout", "seconds": time.perf_counter() - t0, "command": shown,
                "reason": f"timed out after {timeout} s"}
    secs = time.perf_counter() - t0
    (out / f"{name}.log").write_text(proc.stdout + ("\n--- stderr ---\n" + proc.stderr
                                                    if proc.stderr else ""))
    info = {"status": "ok", "seconds": secs, "returncode": proc.returncode, "command": shown}
    if not dest.exists():
        info.update(status="failed", reason=f"exit {proc.returncode}, no JSON: "
                    + tail(proc.stderr or proc.stdout))
    elif proc.returncode != 0:
        info.update(status=f"ok (exit {proc.returncode})",
                    reason="wrote JSON but exited non-zero: " + tail(proc.stderr or proc.stdout))
    return info


def kept_result(entry: dict, name: str, out: Path, earlier: dict | None) -> dict:
    """``entry`` of a script that failed or timed out, saying whether ``OUT/<name>.json``
    is still there from an earlier run (and which one, when run.json recorded it)."""
    if entry["status"] not in FAILED or not (out / f"{name}.json").exists():
        return entry
    if earlier and earlier.get("kept"):  # that run failed too: the file is older still
        return {**entry, "kept": earlier["kept"]}
    how = ", ".join(f"{k} {earlier[k]}" for k in ("mode", "started", "command")
                    if earlier and earlier.get(k))
    return {**entry, "kept": f"results/{name}.json is from an earlier run"
            + (f" ({how})" if how else "") + ", not from this one"}


def previous_entries(path: Path) -> dict[str, dict]:
    """The per-script entries of an earlier run.json (empty when there is none)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    scripts = old.get("scripts") if isinstance(old, dict) else None
    return scripts if isinstance(scripts, dict) else {}


def earlier_results(name: str, out: Path, why: str) -> dict:
    """The entry of a script not run now that no earlier run.json records: when its
    results file exists (written by running the script itself), the command that wrote it;
    else why it was not run."""
    try:
        command = json.loads((out / f"{name}.json").read_text())["machine"]["command"]
    except (OSError, ValueError, KeyError, TypeError):
        return {"status": "not run", "reason": why}
    return {"status": "earlier results", "command": command,
            "reason": f"{why}; results/{name}.json is from an earlier `{command}`"}


def run_suite(names: Sequence[str], quick: bool, out: Path, previous: dict[str, dict]) -> dict:
    """Run ``names`` (in SUITE order) and return run.json's content; the entries of the
    scripts not run are kept from ``previous`` (else they say why they were not run)."""
    gpu, gpu_why = has_gpu()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    mode = "quick" if quick else "full"
    scripts: dict[str, dict] = {}
    failed: list[str] = []  # failed, timed out or exited non-zero in this run
    t0 = time.perf_counter()
    for name, (q_args, f_args, (q_to, f_to)) in SUITE.items():
        if name not in names or (name in NEEDS_GPU and not gpu):
            why = f"not run: {gpu_why}" if name in NEEDS_GPU and not gpu else "not run: --only"
            kept = previous.get(name)
            scripts[name] = (kept if kept and kept.get("status") != "not run"
                             else earlier_results(name, out, why))
            continue
        entry = run_script(name, q_args if quick else f_args, q_to if quick else f_to, out)
        scripts[name] = {**kept_result(entry, name, out, previous.get(name)),
                         "mode": mode, "started": started}
        print(f"[run] {name}: {entry['status']}", flush=True)
        if entry["status"] in FAILED or entry["status"].startswith("ok (exit"):
            failed.append(name)
    last = {"mode": mode, "started": started, "seconds": time.perf_counter() - t0,
            "gpu": gpu_why, "scripts_run": [n for n in SUITE if n in names],
            "failed": failed}
    return {"last_run": last, "scripts": scripts}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="small sizes; about 15-20 min on 2 cores")
    mode.add_argument("--full", action="store_true", help="the long cases (default)")
    p.add_argument("--out", default=str(HERE / "results"),
                   help="results directory (default: benchmarks/results)")
    p.add_argument("--only", nargs="+", default=None, choices=sorted(SUITE), metavar="NAME",
                   help="run only these scripts (one or more); the others' run.json entries "
                   "are kept")
    p.add_argument("--report", type=output_file, default=None,
                   help="report path (default: benchmarks/REPORT.md, or OUT/REPORT.md with "
                   "another --out)")
    p.add_argument("--readme", type=existing_file, default=None, metavar="PATH",
                   help="README whose measured passages report.py rewrites (default: the "
                   "repository's README.md when --out and --report are their defaults, "
                   "else none)")
    args = p.parse_args(argv)
    check_paths(p, args)  # before the runs: a bad path fails now, not hours later
    out = Path(args.out).resolve()  # the scripts run with cwd=benchmarks/
    out.mkdir(parents=True, exist_ok=True)
    names = list(SUITE) if args.only is None else args.only
    summary = run_suite(names, args.quick, out, previous_entries(out / "run.json"))
    (out / "run.json").write_text(json.dumps(summary, indent=1) + "\n")
    rep = subprocess.run([sys.executable, str(HERE / "report.py"), "--results", str(out),
                          "--out", args.report, *readme_args(args, out)], cwd=HERE)
    failed = summary["last_run"]["failed"]
    print(f"[run] done in {summary['last_run']['seconds']:.0f} s; failed, timed out or "
          f"exited non-zero: {', '.join(failed) or 'none'}")
    if rep.returncode:
        print(f"[run] report.py failed (exit {rep.returncode}): {args.report} and the "
              "README may not be written; see its error above")
    return 1 if rep.returncode or failed else 0


def check_paths(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, with ``p.error``, an ``--out`` that is a file (``--report`` and ``--readme``
    were checked by their types), then resolve ``--report`` and ``--readme`` against the
    caller's directory (report.py runs with cwd=benchmarks/)."""
    if Path(args.out).exists() and not Path(args.out).is_dir():
        p.error(f"argument --out: {args.out} is not a directory; give a results directory")
    if args.report is None:  # the repository's report only for the repository's results
        elsewhere = Path(args.out).resolve() != (HERE / "results").resolve()
        args.report = str(Path(args.out, "REPORT.md") if elsewhere else HERE / "REPORT.md")
    args.report = str(Path(args.report).resolve())
    if args.readme is not None:
        args.readme = str(Path(args.readme).resolve())


def readme_args(args: argparse.Namespace, out: Path) -> list[str]:
    """report.py's README option: ``--readme PATH`` when given; the repository README
    (report.py's default) only when --out and --report are both their defaults; else
    ``--no-readme``, so a run elsewhere leaves README.md alone."""
    if args.readme:
        return ["--readme", args.readme]
    default = (out == (HERE / "results").resolve()
               and Path(args.report).resolve() == (HERE / "REPORT.md").resolve())
    return ["--readme", str(HERE.parent / "README.md")] if default else ["--no-readme"]


if __name__ == "__main__":
    raise SystemExit(main())
