"""Run the whole benchmark suite, then write benchmarks/REPORT.md.

Each benchmark script runs as its own subprocess (one at a time, so timings do not
compete) with ``--json RESULTS/<script>.json``; its stdout goes to
``RESULTS/<script>.log``. Scripts that fail, time out, are missing or need absent
hardware (the GPU benchmark without a GPU) are recorded in ``RESULTS/run.json`` with
the reason or the error's tail, and ``report.py`` then turns every result (or its
absence) into the report.

Modes: ``--quick`` (about 5 minutes on 2 cores: small sizes everywhere) and ``--full``
(the default: the long cases, including the 1000 x 1000 x 9999 PML run; hours).

Usage: python benchmarks/run.py [--quick|--full] [--out benchmarks/results]
       [--only NAME ...] [--report benchmarks/REPORT.md]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent

# script -> (quick arguments, full arguments, timeout in seconds quick/full)
SUITE: dict[str, tuple[list[str], list[str], tuple[int, int]]] = {
    "bench_schedules": (["--quick"], [], (240, 7200)),
    "bench_lorenz": (["--quick"], [], (300, 3600)),
    "bench_pml": (["--size", "300", "--repeat", "5", "--fig5", "--fig5-size", "100",
                   "--fig5-steps", "400", "--fig5-rounds", "1"],
                  ["--fig5", "--full"], (300, 6 * 3600)),
    "bench_pml_jax": (["--size", "64", "--steps", "300"], [], (300, 4 * 3600)),
    "bench_scaling": (["--quick"], [], (240, 3600)),
    "bench_gpu": (["--size", "250", "--steps", "2000"], [], (600, 3600)),
}
NEEDS_GPU = {"bench_gpu"}


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


def tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_script(name: str, args: list[str], timeout: int, out: Path) -> dict:
    """Run one script; its status, seconds and the reason when it did not produce JSON."""
    script = HERE / f"{name}.py"
    if not script.exists():
        return {"status": "missing", "reason": f"missing: {script.name} not in benchmarks/"}
    dest = out / f"{name}.json"
    dest.unlink(missing_ok=True)
    cmd = [sys.executable, str(script), *args, "--json", str(dest)]
    print(f"[run] {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE)
    except subprocess.TimeoutExpired as exc:
        log = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        (out / f"{name}.log").write_text(log)
        return {"status": "timeout", "seconds": time.perf_counter() - t0, "command": cmd[1:],
                "reason": f"timed out after {timeout} s"}
    secs = time.perf_counter() - t0
    (out / f"{name}.log").write_text(proc.stdout + ("\n--- stderr ---\n" + proc.stderr
                                                    if proc.stderr else ""))
    info = {"status": "ok", "seconds": secs, "returncode": proc.returncode, "command": cmd[1:]}
    if not dest.exists():
        info.update(status="failed", reason=f"exit {proc.returncode}, no JSON: "
                    + tail(proc.stderr or proc.stdout))
    elif proc.returncode != 0:
        info.update(status=f"ok (exit {proc.returncode})",
                    reason="wrote JSON but exited non-zero: " + tail(proc.stderr or proc.stdout))
    return info


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="about 5 min on 2 cores")
    mode.add_argument("--full", action="store_true", help="the long cases (default)")
    p.add_argument("--out", default=str(HERE / "results"), help="results directory")
    p.add_argument("--only", nargs="*", default=None, choices=sorted(SUITE), metavar="NAME")
    p.add_argument("--report", default=str(HERE / "REPORT.md"), help="report path")
    args = p.parse_args(argv)
    quick = args.quick
    out = Path(args.out).resolve()  # the scripts run with cwd=benchmarks/
    out.mkdir(parents=True, exist_ok=True)
    gpu, gpu_why = has_gpu()
    summary = {"mode": "quick" if quick else "full", "gpu": gpu_why if not gpu else gpu_why,
               "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "scripts": {}}
    t0 = time.perf_counter()
    for name, (q_args, f_args, (q_to, f_to)) in SUITE.items():
        if args.only is not None and name not in args.only:
            summary["scripts"][name] = {"status": "not run", "reason": "not run: --only"}
        elif name in NEEDS_GPU and not gpu:
            summary["scripts"][name] = {"status": "not run", "reason": f"not run: {gpu_why}"}
        else:
            summary["scripts"][name] = run_script(name, q_args if quick else f_args,
                                                  q_to if quick else f_to, out)
        print(f"[run] {name}: {summary['scripts'][name]['status']}", flush=True)
    summary["seconds"] = time.perf_counter() - t0
    (out / "run.json").write_text(json.dumps(summary, indent=1))
    rep = subprocess.run([sys.executable, str(HERE / "report.py"), "--results", str(out),
                          "--out", args.report], cwd=HERE)
    failed = [k for k, v in summary["scripts"].items() if v["status"] in ("failed", "timeout")]
    print(f"[run] done in {summary['seconds']:.0f} s; failed: {failed or 'none'}")
    return 1 if rep.returncode else 0


if __name__ == "__main__":
    raise SystemExit(main())
