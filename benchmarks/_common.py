"""Helpers shared by the benchmark scripts: machine info, timing, the result file.

Every script in ``benchmarks/`` reports what it measured together with the
machine and the command line that produced it (see ``machine_info``), prints a
Markdown rendering to stdout and writes one JSON file (``write_results``), so that
``benchmarks/report.py`` can build ``REPORT.md`` from the JSON files alone. Paths
in the JSON are relative to the repository root: results do not show the
directories of the machine they ran on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    """Installed version of distribution ``name``, or ``"missing"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def machine_info(packages: Sequence[str] = ("numpy", "numba")) -> dict:
    """CPU, cores, threads, Python, platform, package versions and the command."""
    info: dict = {"cpu": cpu_model(), "cores": os.cpu_count(),
                  "python": platform.python_version(), "platform": platform.platform()}
    if "numba" in sys.modules:
        info["numba_threads"] = sys.modules["numba"].get_num_threads()
    for name in packages:
        info[name] = package_version(name)
    info["command"] = command_line(sys.argv)
    return info


def command_line(argv: Sequence[str]) -> str:
    """``python`` and ``argv``, with the script and every absolute path written relative to
    the repository root (a path outside it by its file name alone), so that results do not
    show the machine's directories."""
    args = [_script_path(argv[0])]
    for i, a in enumerate(argv[1:], 1):  # the result file as seen from the root, wherever
        if a.startswith("--json="):        # run from (run.py runs the scripts in benchmarks/)
            args.append(f"--json={_script_path(os.path.abspath(a[7:]))}")
        elif i > 1 and argv[i - 1] == "--json":
            args.append(_script_path(os.path.abspath(a)))
        else:
            args.append(_script_path(a) if os.path.isabs(a) else a)
    return " ".join(["python", *args])


def _script_path(path: str) -> str:
    """``path`` relative to the repository root, or its name when it lies outside."""
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return Path(path).name if os.path.isabs(path) else path


def output_file(text: str) -> str:
    """argparse type of a file a script writes when it ends (``--json``, report.py's
    ``--out``): refused at once, not after the run, for the reasons of
    ``pebbles.cli.output_error`` (a directory, a directory that does not exist, a file
    that cannot be written, ...)."""
    from pebbles.cli import output_error

    reason = output_error(text, "results.json")
    if reason is not None:
        raise argparse.ArgumentTypeError(f"{text!r} {reason}")
    return text


def existing_file(text: str) -> str:
    """argparse type of a file read (and rewritten) in place, such as ``--readme``."""
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file; give an existing file, "
                                         "e.g. README.md")
    return text


def positive_seconds(text: str) -> float:
    """argparse type of a timeout: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds > 0")
    return value


def relative_paths(value: Any) -> Any:
    """``value`` with the repository root's absolute path removed from every string in it
    (dict values, list items): ``/x/repo/benchmarks/a.json`` becomes ``benchmarks/a.json``."""
    if isinstance(value, str):
        return "." if value == ROOT.as_posix() else value.replace(f"{ROOT.as_posix()}/", "")
    if isinstance(value, dict):
        return {k: relative_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [relative_paths(v) for v in value]
    return value


def best_of(fn: Callable[[], object], repeat: int, warmup: int = 1) -> tuple[float, float]:
    """(best, median) seconds of ``repeat`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def import_peer(name: str) -> tuple[Any, str | None]:
    """(module, None), or (None, ``"missing: <the import error>"``) when the peer package
    ``name`` cannot be imported: a missing peer is recorded, never dropped."""
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # noqa: BLE001 - any import failure means "missing"
        return None, f"missing: {type(exc).__name__}: {exc}"


def tail(text: str, lines: int = 8) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-lines:])


def child_env() -> dict[str, str]:
    """This process's environment with the repository root first on ``PYTHONPATH``, so
    that a child ``python -m pebbles`` (or ``solvers.pml``, or ``-c``) imports this
    checkout, not an installed copy."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _child(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """The Python command ``argv`` run from the repository root with :func:`child_env`,
    its output captured."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=child_env())


def json_record(argv: Sequence[str], timeout: float) -> dict:
    """Run the Python command ``argv`` (:func:`_child`); its record: ``{"status": "ok"}``
    and the JSON object of its last line of output, or ``{"status": "failed", "note":
    ...}`` (the exit status and the last line of stderr, or the timeout), so that a
    configuration that failed is reported in its row, not dropped."""
    try:
        out = _child(argv, timeout)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "note": f"timed out after {timeout:.0f} s"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "failed", "note": f"exit {out.returncode}: {last[-300:]}"}
    return {"status": "ok", **json.loads(out.stdout.strip().splitlines()[-1])}


def run_child(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """Run the Python command ``argv`` (:func:`_child`). A non-zero exit raises
    RuntimeError naming the command and the tail of its stderr."""
    proc = _child(argv, timeout)
    if proc.returncode:
        shown = relative_paths(" ".join(["python", *("'...'" if "\n" in a else a
                                                     for a in argv[1:])]))
        raise RuntimeError(f"`{shown}` exited with status {proc.returncode}:\n"
                           + tail(proc.stderr or proc.stdout))
    return proc


def machine_markdown(info: dict) -> str:
    """The command line in backticks, then the machine fields on one line."""
    fields = ", ".join(f"{k}: {v}" for k, v in info.items() if k != "command")
    return f"`{info['command']}`\n\n{fields}"


def rerun_with_env(name: str, value: str) -> None:
    """Run this script again in a fresh process with environment variable ``name`` set
    to ``value``, unless it already is (for settings read when a process starts, such as
    glibc's ``MALLOC_MMAP_THRESHOLD_``)."""
    if os.environ.get(name) != value:
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, **{name: value}))


def publish(path: str | os.PathLike | None, result: dict, markdown: str, *,
            failed: bool = False) -> int:
    """A script's last step: print its markdown, write ``result`` (:func:`write_results`)
    and return its exit status (1 when ``failed``: a check of the run did not hold)."""
    print(markdown)
    write_results(path, result)
    return 1 if failed else 0


def write_results(path: str | os.PathLike | None, result: dict,
                  markdown: str | None = None) -> None:
    """Write ``result`` as JSON to ``path`` (nothing when ``path`` is None).

    The text goes to a temporary file next to ``path``, which then replaces ``path`` in
    one step (``os.replace``): an interrupted write leaves the earlier file whole.
    Paths inside the repository are written relative to its root
    (:func:`relative_paths`). ``markdown`` is not written: the scripts print it, and
    ``benchmarks/run.py`` keeps stdout in an untracked log; the JSON is the one result.
    """
    del markdown  # accepted from callers that pass their printed text
    if path is None:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        tmp.write_text(json.dumps(relative_paths(result), indent=1, default=float) + "\n")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
