"""benchmarks/report.py and run.py on synthetic results: every section is written, present
numbers appear, and absent inputs give "Not measured in this run" lines, never a crash."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
MACHINE = {"cpu": "Synthetic CPU", "cores": 2, "python": "3.x", "command": "python x.py"}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def report() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        yield _load("report")
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture()
def paper(tmp_path: Path) -> Path:
    """The real paper values, with the costly computed parts shrunk (Figure 8 n, deltas)."""
    values = json.loads((BENCH / "paper_values.json").read_text())
    values["figure8"]["n"] = [100]
    values["figure5"]["treeverse_delta"] = [160, 320]
    values["figure5"]["treeverse_seconds"] = [70.6, 72.9]
    out = tmp_path / "paper.json"
    out.write_text(json.dumps(values))
    return out


def _results(tmp_path: Path, present: set[str]) -> Path:
    fig5 = {"records": [{"schedule": "treeverse S=5", "n": 400, "size": 100,
                         "forward_steps": 1234, "peak_states": 6, "seconds": 1.5,
                         "model_seconds": 1.4, "peak_mb": 12.0}]}
    files = {
        "bench_lorenz": {"n": 2000, "records": [
            {"method": "primal", "status": "ok", "seconds": 1e-3, "ratio_to_primal": 1.0},
            {"method": "store-all", "status": "ok", "seconds": 3.1e-3,
             "ratio_to_primal": 3.1, "peak_states": 2001},
            {"method": "jax grad", "status": "missing", "note": "missing: no jax"}],
            "goals": [{"goal": "store-all <= 3", "measured": 3.1, "limit": 3, "pass": False}]},
        "bench_pml": {"kernels": {"records": [{"kernel": "forward", "size": 300,
                                               "best_ms": 0.25, "gb_s": 20.5, "of_copy": 0.8}]},
                      "fig5": fig5},
        "bench_pml_jax": {"size": 64, "n": 300, "validation": {"size": 16, "n": 20,
                                                               "loss_rel_diff": 1e-14},
                          "records": [{"method": "jax grad (store-all)", "status": "ok",
                                       "seconds": 2.5, "peak_mb": 77.0}],
                          "paper_size_store_all_gb": 319.9},
        "bench_gpu": {**fig5, "machine": {**MACHINE, "gpu": "Synthetic GPU"}},
        "bench_schedules": {"rows": [{"n": 1000, "S": 10, "schedule": "cs.Multistage",
                                      "status": "ok", "seconds": 0.01, "forward_steps": 3636,
                                      "inplace_optimum": 3636, "ratio_ours_over_theirs": 0.2},
                                     {"n": 1000, "S": 10, "schedule": "pyrevolve.CRevolve",
                                      "status": "missing", "note": "missing: no module"}],
                            "mismatches": [], "peers": {"pyrevolve": "missing"}},
        "bench_scaling": {"fits": [{"method": "store-all", "time_exponent": 1.01,
                                    "memory_exponent": 0.99, "n_min": 100, "n_max": 10**5}]},
    }
    out = tmp_path / "results"
    out.mkdir()
    for name in present:
        (out / f"{name}.json").write_text(json.dumps({**files[name], "machine": MACHINE}
                                                     if name != "bench_gpu" else files[name]))
    return out


SECTIONS = ("## The run", "## Lorenz: paper Table 2", "## Lorenz Figures 3 and 4",
            "## PML Figure 5", "## PML: ours against jax.grad", "## Figure 7",
            "## Figure 8", "## Schedules", "## Scaling")


def test_all_present(report: ModuleType, tmp_path: Path, paper: Path) -> None:
    text = report.build(_results(tmp_path, set(report.SCRIPTS)), paper)
    for head in SECTIONS:
        assert head in text
    assert "bench_lorenz.json not found" not in text
    assert "| NiLang reverse, stores every step | 3.53 | 3.10 |" in text  # 6.70/1.90, ours
    assert "FAIL" in text and "Synthetic GPU" in text
    assert "at least 320 GB (the paper: 320 GB)" in text
    assert "| store-all | - | 1.01 | 0.99 |" in text
    assert "Revolve peers against our in-place optimum (same game): all equal" in text
    assert "| 45 | 45 |" in text and "| 81 | 81 |" in text  # Figure 7, simulated
    assert "ours 29836 and 29680 (DIFFERENT)" in text  # first delta shrunk to 160 here
    assert "Bennett needs at least as much memory in every row: yes" in text


def test_missing_inputs(report: ModuleType, tmp_path: Path, paper: Path) -> None:
    results = _results(tmp_path, {"bench_schedules"})
    (results / "run.json").write_text(json.dumps({"mode": "quick", "scripts": {
        "bench_gpu": {"status": "not run", "reason": "not run: no GPU (nvidia-smi not found)"},
        "bench_lorenz": {"status": "failed", "reason": "exit 1, no JSON: ZeroDivisionError"}}}))
    text = report.build(results, paper)
    for head in SECTIONS:
        assert head in text
    assert "Not measured in this run: not run: no GPU" in text
    assert "Not measured in this run: exit 1, no JSON: ZeroDivisionError" in text
    assert "Not measured in this run: bench_scaling.json not found" in text
    assert text.count("Not measured in this run") >= 6
    assert "| 1.9 | 1.00 | 1 |" in text  # the paper's Table 2 is still shown


def test_broken_and_partial_files(report: ModuleType, tmp_path: Path, paper: Path) -> None:
    results = tmp_path / "r"
    results.mkdir()
    (results / "bench_lorenz.json").write_text("{not json")
    (results / "bench_pml.json").write_text(json.dumps({"machine": MACHINE}))
    (results / "bench_schedules.json").write_text(json.dumps({"rows": [{"n": 5}]}))
    text = report.build(results, paper)
    assert "bench_lorenz.json not found" in text  # unreadable counts as absent
    assert "no records (CPU" in text


def test_algorithm3_matches_paper_call_count(report: ModuleType) -> None:
    (row,) = report.algorithm3_rows(9999, [5])
    assert row["calls"] == 123094 and row["peak_pebbles"] == 6
    assert row["checkpoint_optimum"] < row["forward_steps"]
    assert row["inplace_optimum"] <= row["checkpoint_optimum"]


def test_report_main_writes_file(report: ModuleType, tmp_path: Path, paper: Path) -> None:
    out = tmp_path / "REPORT.md"
    assert report.main(["--results", str(tmp_path / "none"), "--out", str(out),
                        "--paper", str(paper)]) == 0
    assert out.read_text().startswith("# Reproduction report")


def test_run_records_missing_and_failed(tmp_path: Path, monkeypatch) -> None:
    run = _load("run")
    assert run.run_script("no_such_bench", [], 10, tmp_path)["status"] == "missing"
    bad = tmp_path / "bench_bad.py"
    bad.write_text("raise SystemExit('boom: broken benchmark')\n")
    monkeypatch.setattr(run, "HERE", tmp_path)
    info = run.run_script("bench_bad", [], 30, tmp_path)
    assert info["status"] == "failed" and "boom: broken benchmark" in info["reason"]
    assert (tmp_path / "bench_bad.log").exists()


def test_run_section_shows_a_merge_note(report: ModuleType) -> None:
    info = {"mode": "full", "started": "t0", "seconds": 5.0, "note": "bench_pml rerun alone",
            "scripts": {"bench_pml": {"status": "ok", "seconds": 5.0}}}
    data = {name: {} for name in report.SCRIPTS}  # every input present
    text = "\n".join(report.section_run(data, {}, info))
    assert "Note: bench_pml rerun alone." in text and "| bench_pml | ok | 5 |" in text
    assert "Note:" not in "\n".join(report.section_run(data, {}, {**info, "note": ""}))


def test_command_line_hides_the_machine_directories() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _common import command_line
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    argv = [str(ROOT / "benchmarks" / "bench_pml.py"), "--fig5", "--json",
            str(ROOT / "benchmarks" / "results" / "x.json"), "--out", "/elsewhere/y.json"]
    assert command_line(argv) == ("python benchmarks/bench_pml.py --fig5 --json "
                                  "benchmarks/results/x.json --out /elsewhere/y.json")
