"""benchmarks/report.py, run.py and _common.py on synthetic results: every section is
written, present numbers appear, absent inputs give "Not measured in this run" lines, never a
crash, run.json is merged by run.py itself, and result files hold no machine paths."""

from __future__ import annotations

import importlib.util
import json
import re
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
        **{name: GENERIC_RESULT for name in ("bench_jax", "bench_torch",
                                             "bench_torch_segments", "bench_online",
                                             "bench_twolevel", "bench_lowering",
                                             "bench_pml_disk")},
    }
    out = tmp_path / "results"
    out.mkdir()
    for name in present:
        (out / f"{name}.json").write_text(json.dumps({**files[name], "machine": MACHINE}
                                                     if name != "bench_gpu" else files[name]))
    return out


GENERIC_RESULT = {"n": 100_000, "budget": 10, "goals": {"speedup": 3.25, "pass": True},
                  "records": [{"method": "pebbles", "seconds": 0.5, "peak_states": 11},
                              {"method": "peer", "seconds": 1.625, "note": "a|b\nc"}]}
SECTIONS = ("## The run", "## Lorenz: paper Table 2", "## Lorenz Figures 3 and 4",
            "## PML Figure 5", "## PML: ours against jax.grad", "## Figure 7",
            "## Figure 8", "## Schedules", "## Scaling", "## JAX adapter",
            "## PyTorch adapter", "## Online schedules", "## Two-level storage",
            "## Checked lowering", "## PML with memory plus disk")


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
    assert "bench_jax.json not found" not in text


def test_generic_section_shows_fields_and_records(report: ModuleType) -> None:
    text = "\n".join(report.section_generic("bench_jax", "JAX adapter",
                                            {**GENERIC_RESULT, "machine": MACHINE}, ""))
    assert text.startswith("## JAX adapter (`benchmarks/bench_jax.py`)")
    assert "| n | 1e+05 |" in text and "| budget | 10 |" in text
    assert "| goals.speedup | 3.25 |" in text and "| goals.pass | True |" in text
    assert "| method | seconds | peak_states | note |" in text
    assert "| pebbles | 0.5 | 11 | - |" in text and "| peer | 1.62 | - | a/b c |" in text
    assert "Synthetic CPU" in text
    missing = report.section_generic("bench_torch", "PyTorch adapter", None, "not run: --only")
    assert missing[-1] == "_Not measured in this run: not run: --only._"


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
    assert row["calls"] == 123094 and row["peak_states"] == 6
    assert row["checkpoint_optimum"] < row["forward_steps"]
    assert row["inplace_optimum"] <= row["checkpoint_optimum"]


def test_report_main_writes_file(report: ModuleType, tmp_path: Path, paper: Path) -> None:
    out, readme = tmp_path / "REPORT.md", tmp_path / "README.md"
    text = "x\n<!-- numbers:lorenz -->\nold 27x\n<!-- /numbers -->\ny\n"
    readme.write_text(text)
    (tmp_path / "none").mkdir()
    assert report.main(["--results", str(tmp_path / "none"), "--out", str(out),
                        "--paper", str(paper), "--readme", str(readme)]) == 0
    assert out.read_text().startswith("# Reproduction report")
    assert readme.read_text() == text  # no results: the passage stays as it was
    assert report.main(["--results", str(ROOT / "benchmarks" / "results"), "--check",
                        "--readme", str(readme)]) == 1


def test_check_fails_naming_blocks_without_results(report: ModuleType, tmp_path: Path,
                                                   paper: Path, capsys) -> None:
    """--check exits 1 and names each README block whose results file is absent or
    unreadable; writing leaves such a block as it is, with a warning on stderr."""
    readme = tmp_path / "README.md"
    text = ("<!-- numbers:lorenz -->\nold\n<!-- /numbers -->\n"
            "<!-- numbers:pml-jax -->\nold\n<!-- /numbers -->\n")
    readme.write_text(text)
    results = tmp_path / "empty"
    results.mkdir()
    (results / "bench_pml_jax.json").write_text("{not json")
    assert report.main(["--results", str(results), "--check", "--readme", str(readme)]) == 1
    out = capsys.readouterr().out
    assert "numbers:lorenz has no results" in out and "bench_lorenz.json" in out
    assert "numbers:pml-jax has no results" in out and "bench_pml_jax.json" in out
    assert "every number block matches" not in out
    assert report.main(["--results", str(results), "--out", str(tmp_path / "R.md"),
                        "--paper", str(paper), "--readme", str(readme)]) == 0
    err = capsys.readouterr().err
    assert "warning: README block numbers:lorenz has no results" in err
    assert "numbers:pml-jax" in err and readme.read_text() == text


def test_pml_jax_validation_grid_prints_as_a_size(report: ModuleType) -> None:
    d = {"size": 64, "n": 300, "validation": {"size": [40, 36], "n": 120}, "records": []}
    text = "\n".join(report.section_pml_jax(d, None, {}, {}))
    assert "validated at 40 x 36, n = 120" in text
    d["validation"]["size"] = 16
    assert "validated at 16 x 16, n = 120" in "\n".join(report.section_pml_jax(d, None, {}, {}))


def test_wide_records_lose_no_field(report: ModuleType) -> None:
    """More than 12 columns give several tables (each numbering the records); nested
    values are not cut."""
    nested = {"method": "plain autograd", "note": "x" * 200}
    recs = [{f"f{i}": i + 10 * k for i in range(15)} | {"nested": nested} for k in range(2)]
    text = "\n".join(report.records_table(recs))
    for i in range(15):
        assert f" f{i} |" in text
    assert "| 2 | 10 | 22 |" in text  # second table: record 2's f0 and f12
    assert json.dumps(nested) in text
    assert "\n\n| # | f0 | f12 |" in text


def test_run_keeps_the_earlier_result_when_a_script_fails(tmp_path: Path, monkeypatch,
                                                         report) -> None:
    """A script that fails or times out leaves the earlier result file; run.json says so
    and run.py exits 1; a script that writes its file replaces the earlier one."""
    run = _load("run")
    out = tmp_path / "results"
    out.mkdir()
    (tmp_path / "bench_bad.py").write_text("raise SystemExit('boom')\n")
    (tmp_path / "bench_slow.py").write_text("import time\ntime.sleep(30)\n")
    (tmp_path / "bench_good.py").write_text(
        "import json, sys\nopen(sys.argv[-1], 'w').write(json.dumps({'new': 1}))\n")
    for name in ("bench_bad", "bench_slow", "bench_good"):
        (out / f"{name}.json").write_text('{"old": 1}')
    monkeypatch.setattr(run, "HERE", tmp_path)
    assert run.run_script("bench_bad", [], 30, out)["status"] == "failed"
    assert run.run_script("bench_slow", [], 1, out)["status"] == "timeout"
    assert run.run_script("bench_good", [], 30, out)["status"] == "ok"
    assert json.loads((out / "bench_bad.json").read_text()) == {"old": 1}
    assert json.loads((out / "bench_slow.json").read_text()) == {"old": 1}
    assert json.loads((out / "bench_good.json").read_text()) == {"new": 1}
    assert sorted(p.name for p in out.glob("*.json*")) == [
        "bench_bad.json", "bench_good.json", "bench_slow.json"]
    assert "bench_good.json" in run.run_script("bench_good", [], 30, out)["command"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(run.subprocess, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.run_script("bench_bad", [], 30, out)
    assert json.loads((out / "bench_bad.json").read_text()) == {"old": 1}
    assert sorted(p.name for p in out.glob("*.json*")) == [
        "bench_bad.json", "bench_good.json", "bench_slow.json"]
    monkeypatch.undo()
    monkeypatch.setattr(run, "HERE", tmp_path)
    monkeypatch.setattr(run, "SUITE", {"bench_bad": ([], [], (30, 30)),
                                       "bench_good": ([], [], (30, 30))})
    monkeypatch.setattr(run, "has_gpu", lambda: (False, "no GPU (test)"))
    info = run.run_suite(["bench_bad", "bench_good"], True, out,
                         {"bench_bad": {"status": "ok", "mode": "full", "started": "t0"}})
    assert info["last_run"]["failed"] == ["bench_bad"]
    assert "from an earlier run (mode full, started t0)" in info["scripts"]["bench_bad"]["kept"]
    assert "kept" not in info["scripts"]["bench_good"]
    again = run.run_suite(["bench_bad"], True, out, info["scripts"])  # a second failure
    assert again["scripts"]["bench_bad"]["kept"] == info["scripts"]["bench_bad"]["kept"]
    status = {"bench_bad": "timeout", "bench_good": "ok"}
    monkeypatch.setattr(run, "run_script", lambda name, *a: {"status": status[name]})
    monkeypatch.setattr(run.subprocess, "run", lambda *a, **k: type("P", (), {"returncode": 0}))
    argv = ["--quick", "--out", str(out), "--report", str(tmp_path / "R.md")]
    assert run.main(argv) == 1  # report.py succeeded, but a script timed out
    status["bench_bad"] = "missing"  # a script not in the checkout does not count
    assert run.main(argv) == 0


def test_run_records_missing_and_failed(tmp_path: Path, monkeypatch, report) -> None:
    run = _load("run")
    assert run.run_script("no_such_bench", [], 10, tmp_path)["status"] == "missing"
    bad = tmp_path / "bench_bad.py"
    bad.write_text("raise SystemExit('boom: broken benchmark')\n")
    monkeypatch.setattr(run, "HERE", tmp_path)
    info = run.run_script("bench_bad", [], 30, tmp_path)
    assert info["status"] == "failed" and "boom: broken benchmark" in info["reason"]
    assert (tmp_path / "bench_bad.log").exists()
    assert str(tmp_path) not in info["command"]  # no machine directory in run.json


def test_run_merges_run_json_by_itself(tmp_path: Path, monkeypatch, report) -> None:
    """--only replaces the entries of the scripts it runs and keeps the others' earlier ones;
    a script never run says why, or names the command that wrote its results file; the
    GPU script without a GPU keeps an earlier GPU result."""
    run = _load("run")
    calls: list[str] = []

    def fake(name: str, args: list[str], timeout: int, out: Path) -> dict:
        calls.append(name)
        return {"status": "ok", "seconds": 1.0, "command": f"python benchmarks/{name}.py"}

    monkeypatch.setattr(run, "run_script", fake)
    monkeypatch.setattr(run, "has_gpu", lambda: (False, "no GPU (test)"))
    earlier = {"bench_lorenz": {"status": "ok", "mode": "full", "started": "t0"},
               "bench_gpu": {"status": "ok", "mode": "full", "started": "t-gpu"}}
    # results written by running the script itself, which no run.json records
    (tmp_path / "bench_jax.json").write_text(json.dumps(
        {"machine": {"command": "python benchmarks/bench_jax.py --json bench_jax.json"}}))
    info = run.run_suite(["bench_pml"], True, tmp_path, earlier)
    assert calls == ["bench_pml"]
    assert info["scripts"]["bench_pml"]["mode"] == "quick"
    assert info["scripts"]["bench_pml"]["started"] == info["last_run"]["started"]
    assert info["scripts"]["bench_lorenz"] == earlier["bench_lorenz"]
    assert info["scripts"]["bench_gpu"] == earlier["bench_gpu"]
    assert info["scripts"]["bench_scaling"] == {"status": "not run",
                                                "reason": "not run: --only"}
    jax = info["scripts"]["bench_jax"]
    assert jax["status"] == "earlier results" and "bench_jax.py --json" in jax["reason"]
    assert info["last_run"]["scripts_run"] == ["bench_pml"]
    info = run.run_suite(list(run.SUITE), False, tmp_path, {})
    assert info["scripts"]["bench_gpu"]["reason"] == "not run: no GPU (test)"
    # left out by --only on a machine without a GPU: the reason is still the GPU
    assert run.run_suite(["bench_pml"], True, tmp_path, {"bench_gpu": info["scripts"][
        "bench_gpu"]})["scripts"]["bench_gpu"]["reason"] == "not run: no GPU (test)"
    assert "bench_gpu" not in calls
    (tmp_path / "run.json").write_text(json.dumps(info))
    assert run.previous_entries(tmp_path / "run.json") == info["scripts"]
    assert run.previous_entries(tmp_path / "none.json") == {}


def test_run_section_shows_each_scripts_run(report: ModuleType) -> None:
    info = {"last_run": {"mode": "quick", "started": "t1", "seconds": 5.0, "gpu": "no GPU",
                         "scripts_run": ["bench_pml"]},
            "scripts": {"bench_pml": {"status": "ok", "seconds": 5.0, "mode": "quick",
                                      "started": "t1"},
                        "bench_lorenz": {"status": "ok", "seconds": 9.0, "mode": "full",
                                         "started": "t0"}}}
    data = {name: {} for name in report.SCRIPTS}  # every input present
    text = "\n".join(report.section_run(data, {}, info))
    assert "Last run: quick mode, started t1, 5 s, scripts run: bench_pml" in text
    assert "| bench_pml | ok | quick | t1 | 5 |" in text
    assert "| bench_lorenz | ok | full | t0 | 9 |" in text


def _common() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        import _common
    finally:
        sys.path.remove(str(BENCH))
    return _common


def test_command_line_hides_the_machine_directories() -> None:
    argv = [str(BENCH / "bench_pml.py"), "--fig5", "--json",
            str(BENCH / "results" / "x.json"), "--out", "/elsewhere/y.json"]
    assert _common().command_line(argv) == ("python benchmarks/bench_pml.py --fig5 --json "
                                            "benchmarks/results/x.json --out y.json")


def test_write_results_writes_one_json_without_machine_paths(tmp_path: Path) -> None:
    out = tmp_path / "r" / "bench_x.json"
    result = {"machine": {"command": f"python x.py --json {BENCH / 'results' / 'x.json'}"},
              "rows": [{"path": str(ROOT / "docs" / "img"), "n": 3}], "root": str(ROOT)}
    _common().write_results(out, result, "# printed table")
    assert [p.name for p in out.parent.iterdir()] == ["bench_x.json"]
    back = json.loads(out.read_text())
    assert back == {"machine": {"command": "python x.py --json benchmarks/results/x.json"},
                    "rows": [{"path": "docs/img", "n": 3}], "root": "."}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_committed_results_hold_no_machine_paths() -> None:
    # "/a/...", " /a/...", "=/a/..." (the kernel's /proc and /dev files are no machine paths)
    absolute = re.compile(r"(^|[\s=\"'])/(?!proc/|dev/)[\w.-]+/")
    paths = sorted((BENCH / "results").glob("*.json"))
    assert {p.name for p in paths} >= {"run.json", "bench_schedules.json"}
    for path in paths:
        bad = [t for t in _strings(json.loads(path.read_text())) if absolute.search(t)]
        assert not bad, (path.name, bad[:3])
    assert not absolute.search((BENCH / "REPORT.md").read_text())


def _numbers(report: ModuleType) -> ModuleType:
    return sys.modules["readme_numbers"]


QUICK_PML = {"machine": {**MACHINE, "command": "python benchmarks/bench_pml.py --size 300 "
                         "--repeat 5 --fig5 --json bench_pml.json"},
             "kernels": {"copy_gb_s": 10.0, "records": [
                 {"kernel": k, "size": 300, "best_ms": 0.5, "gb_s": 5.0, "of_copy": 0.5}
                 for k in ("forward (into buffer)", "in-place", "adjoint")]}}
QUICK_TWOLEVEL = {"machine": {**MACHINE, "command": "python benchmarks/bench_twolevel.py "
                              "--quick --json bench_twolevel.json"},
                  "ours": [{"n": 1000, "S": 10, "write_cost": 2.0, "read_cost": 2.0,
                            "dp_seconds": 0.1, "total_time": 2000.0, "memory_only": 5000.0}]}
LOWERING_ROW = {"n": 100000, "budget": 10, "lower_warm_s": 0.031, "lower_cold_process_s": 0.6,
                "count_ratio": 21.4, "process_ours_s": 0.3, "process_multistage_s": 2.5}
QUICK_LOWERING = {"machine": {**MACHINE, "command": "python benchmarks/bench_lowering.py "
                              "--quick --json bench_lowering.json"},
                  "mode": "quick", "rows": [LOWERING_ROW]}
BLOCKS_README = "".join(f"<!-- numbers:{b} -->\nold {b}\n<!-- /numbers -->\n"
                        for b in ("pml", "fig5", "two-level", "lowering", "lowering-short"))


def _quick_results(tmp_path: Path) -> Path:
    out = tmp_path / "quick"
    out.mkdir()
    for name, d in (("bench_pml", QUICK_PML), ("bench_twolevel", QUICK_TWOLEVEL),
                    ("bench_lowering", QUICK_LOWERING)):
        (out / f"{name}.json").write_text(json.dumps(d))
    return out


def test_quick_results_skip_readme_blocks_never_crash(report: ModuleType, tmp_path: Path,
                                                      paper: Path, capsys) -> None:
    """Quick-shaped results (bench_pml without `full`, bench_twolevel without n = 10^4,
    a quick bench_lowering with one row) leave each README block as it is, with a note
    naming it, instead of a KeyError or StopIteration; --check exits 1 naming them."""
    results = _quick_results(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(BLOCKS_README)
    assert report.main(["--results", str(results), "--out", str(tmp_path / "R.md"),
                        "--paper", str(paper), "--readme", str(readme)]) == 0
    err = capsys.readouterr().err
    assert readme.read_text() == BLOCKS_README
    assert "numbers:pml skipped: bench_pml.json is not from a full run" in err
    assert "numbers:two-level skipped: bench_twolevel.json is not from a full run" in err
    assert "numbers:lowering skipped: bench_lowering.json is not from a full run" in err
    assert "numbers:fig5" in err  # quick bench_pml.json has no fig5 section either
    assert (tmp_path / "R.md").read_text().startswith("# Reproduction report")
    assert report.main(["--results", str(results), "--check", "--readme", str(readme)]) == 1
    out = capsys.readouterr().out
    assert "numbers:pml skipped" in out and "numbers:two-level skipped" in out
    assert "every number block matches" not in out
    # twolevel without --quick in its command but without the n = 10^4 row: still skipped
    numbers = _numbers(report)
    partial = {**QUICK_TWOLEVEL, "machine": MACHINE}
    blocks, skipped = numbers._render_all({"bench_twolevel": partial})
    assert blocks == {} and "no row with n = 10000" in skipped["two-level"]
    # bench_pml from run.py --full's command but without its `full` section: still skipped
    full_cmd = {**QUICK_PML, "machine": {**MACHINE, "command": "python benchmarks/"
                                         "bench_pml.py --fig5 --full --loaded"}}
    blocks, skipped = numbers._render_all({"bench_pml": full_cmd})
    assert "pml" not in blocks and "no 'full' section" in skipped["pml"]
    # run.json's quick mode counts too, unless the file was kept from an earlier run
    (results / "run.json").write_text(json.dumps({"scripts": {
        "bench_pml": {"mode": "quick"}, "bench_lorenz": {"mode": "quick", "kept": "x"}}}))
    assert report.quick_scripts(results) == {"bench_pml"}


def test_lowering_blocks_from_one_row_and_from_the_data(report: ModuleType) -> None:
    numbers = _numbers(report)
    one = {"bench_lowering": {"machine": MACHINE, "mode": "full", "rows": [LOWERING_ROW]}}
    text = numbers._lowering(one)
    assert '`pebbles.schedule("treeverse", 10**5, budget=10, inplace=True)`' in text
    assert "takes 0.03 s" in text
    assert text.count("21x") == 1 and "21x (n = 100000) faster" in text
    assert "0.30 s at n = 100000 (Multistage: 2.5 s)." in text and " and " not in text[
        text.index("Whole process"):]
    assert numbers._lowering_short(one).startswith(
        'Lowering `pebbles.schedule("treeverse", 10**5, budget=10, ')
    big = {**LOWERING_ROW, "n": 10**6, "budget": 20, "lower_warm_s": 0.12, "count_ratio": 40}
    two = {"bench_lowering": {"machine": MACHINE, "rows": [LOWERING_ROW, big]}}
    text = numbers._lowering(two)
    assert '`pebbles.schedule("treeverse", 10**6, budget=20, inplace=True)`' in text
    assert "takes 0.12 s" in text
    assert "21x (n = 100000) and 40x (n = 1000000)" in text and "--pebbles 20" in text
    odd = {"bench_lowering": {"machine": MACHINE, "rows": [{**LOWERING_ROW, "n": 250000}]}}
    assert '"treeverse", 250000, budget=10,' in numbers._lowering_short(odd)
    assert numbers._pow10(10**4, caret=True) == "10^4" and numbers._pow10(1) == "1"


def _fake_report_run(report: ModuleType, calls: list[list[str]]):
    """A stand-in for subprocess.run that runs report.py in process (argv recorded)."""
    def fake(cmd, **kwargs):
        calls.append([str(c) for c in cmd])
        return type("P", (), {"returncode": report.main([str(c) for c in cmd[2:]])})
    return fake


def test_run_elsewhere_leaves_the_repository_readme_alone(report: ModuleType, tmp_path: Path,
                                                          monkeypatch, paper: Path) -> None:
    """run.py with --out/--report elsewhere passes --no-readme to report.py; with both at
    their defaults it names the repository README; --readme PATH wins."""
    run = _load("run")
    out = tmp_path / "out"
    out.mkdir()
    low = json.loads((BENCH / "results" / "bench_lowering.json").read_text())
    low["rows"][-1]["lower_warm_s"] = 9.99  # would change README's lowering blocks
    (out / "bench_lowering.json").write_text(json.dumps(low))
    copy = tmp_path / "README.md"
    copy.write_text((ROOT / "README.md").read_text())
    monkeypatch.setattr(report, "DEFAULT_README", copy)  # stands for the repository README
    monkeypatch.setattr(report, "PAPER", paper)
    monkeypatch.setattr(run, "run_suite", lambda names, quick, o, prev: {
        "last_run": {"seconds": 1.0, "failed": []}, "scripts": {}})
    calls: list[list[str]] = []
    monkeypatch.setattr(run.subprocess, "run", _fake_report_run(report, calls))
    before = copy.read_text()
    assert run.main(["--out", str(out), "--report", str(tmp_path / "R.md")]) == 0
    assert "--no-readme" in calls[-1] and copy.read_text() == before
    assert (tmp_path / "R.md").exists()
    # without --report the report goes next to the results, not into benchmarks/
    assert run.main(["--out", str(out)]) == 0
    assert calls[-1][calls[-1].index("--out") + 1] == str((out / "REPORT.md").resolve())
    assert "--no-readme" in calls[-1] and (out / "REPORT.md").exists()
    # the same results do change a README named with --readme
    assert run.main(["--out", str(out), "--report", str(tmp_path / "R.md"),
                     "--readme", str(copy)]) == 0
    assert calls[-1][-2:] == ["--readme", str(copy)] and copy.read_text() != before
    ns = run.argparse.Namespace(readme=None, report=str(BENCH / "REPORT.md"))
    assert run.readme_args(ns, (BENCH / "results").resolve()) == [
        "--readme", str(ROOT / "README.md")]
    assert run.readme_args(ns, out) == ["--no-readme"]
    ns.report = str(tmp_path / "R.md")
    assert run.readme_args(ns, (BENCH / "results").resolve()) == ["--no-readme"]
    # report.py alone: results elsewhere touch no README unless --readme is given
    copy.write_text(before)
    assert report.main(["--results", str(out), "--out", str(tmp_path / "R2.md")]) == 0
    assert copy.read_text() == before


def test_run_says_when_the_report_step_failed(tmp_path: Path, monkeypatch, report,
                                              capsys) -> None:
    run = _load("run")
    monkeypatch.setattr(run, "run_suite", lambda names, quick, o, prev: {
        "last_run": {"seconds": 1.0, "failed": []}, "scripts": {}})
    monkeypatch.setattr(run.subprocess, "run", lambda *a, **k: type("P", (), {"returncode": 1}))
    assert run.main(["--quick", "--out", str(tmp_path), "--report", str(tmp_path / "R.md")]) == 1
    out = capsys.readouterr().out
    assert "report.py failed (exit 1)" in out


def test_explicit_repeats_win_over_quick(monkeypatch) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        low = _load("bench_lowering")
    finally:
        sys.path.remove(str(BENCH))
    seen: list[int] = []

    def measure(n: int, s: int, repeats: int, peer: bool = True) -> dict:
        seen.append(repeats)
        raise SystemExit(0)
    monkeypatch.setattr(low, "measure", measure)
    for argv, want in ((["--quick", "--repeats", "5"], 5), (["--quick"], 2), ([], 3),
                       (["--repeats", "1"], 1)):
        with pytest.raises(SystemExit):
            low.main(argv)
        assert seen[-1] == want


def test_explicit_repeat_wins_over_quick_in_bench_torch() -> None:
    pytest.importorskip("torch")
    sys.path.insert(0, str(BENCH))
    try:
        bt = _load("bench_torch")
    finally:
        sys.path.remove(str(BENCH))
    assert bt.parse("doc", ["--quick", "--repeat", "5"]).repeat == 5
    assert bt.parse("doc", ["--quick"]).repeat == 2 and bt.parse("doc", []).repeat == 3


def test_bench_online_help_keeps_its_first_paragraph(capsys) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        online = _load("bench_online")
    finally:
        sys.path.remove(str(BENCH))
    with pytest.raises(SystemExit):
        online.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "against the offline optimum and against equinox's checkpointed while loop." in text


PML_JAX = {"size": 64, "n": 300, "validation": {"loss_rel_diff": 1e-9, "grad_rel_diff": 1e-6},
           "records": [{"method": "pebbles", "seconds": 1.0, "peak_mb": 50.0}]}


@pytest.mark.parametrize(("script", "command", "why"), [
    ("bench_pml_jax", "python benchmarks/bench_pml_jax.py --size 64 --steps 300 --json "
     "benchmarks/results/bench_pml_jax.json", "passes --size 64 --steps 300"),
    ("bench_pml", "python benchmarks/bench_pml.py --size 300 --repeat 5 --fig5 --fig5-size "
     "100 --fig5-steps 400 --fig5-rounds 1 --json x.json", "run.py --full passes --fig5"),
    ("bench_pml_disk", "python benchmarks/bench_pml_disk.py --size 300 --steps 500 "
     "--rounds 1", "passes --size 300"),
    ("bench_lorenz", "python benchmarks/bench_lorenz.py --quick", "passes --quick"),
])
def test_results_at_other_sizes_are_not_full_runs(report: ModuleType, script, command,
                                                  why) -> None:
    """Results of a command other than run.py --full's (the sizes run.py --quick passes
    to the PML scripts, which have no --quick) never reach the README."""
    numbers = _numbers(report)
    d = {**PML_JAX, "machine": {**MACHINE, "command": command}}
    assert why in numbers.not_full(script, d)
    blocks, skipped = numbers._render_all({script: d})
    assert blocks == {} and skipped
    assert all("is not from a full run" in v for v in skipped.values())
    full = {**d, "machine": {**MACHINE, "command": f"python benchmarks/{script}.py "
                             f"{' '.join(sys.modules['run'].SUITE[script][1])} --json a.json"}}
    assert numbers.not_full(script, full) is None


def test_quick_pml_jax_leaves_the_readme_block_alone(report: ModuleType, tmp_path: Path,
                                                     capsys) -> None:
    results = tmp_path / "r"
    results.mkdir()
    (results / "bench_pml_jax.json").write_text(json.dumps({**PML_JAX, "machine": {
        **MACHINE, "command": "python benchmarks/bench_pml_jax.py --size 64 --steps 300"}}))
    readme = tmp_path / "README.md"
    readme.write_text(text := "<!-- numbers:pml-jax -->\nold\n<!-- /numbers -->\n")
    assert report.main(["--results", str(results), "--out", str(tmp_path / "R.md"),
                        "--readme", str(readme)]) == 0
    assert readme.read_text() == text
    assert "numbers:pml-jax skipped: bench_pml_jax.json is not from a full run" in (
        capsys.readouterr().err)
    assert report.main(["--results", str(results), "--check", "--readme", str(readme)]) == 1
    assert "numbers:pml-jax skipped" in capsys.readouterr().out


def test_committed_results_are_full_runs(report: ModuleType) -> None:
    numbers = _numbers(report)
    data, _ = report.load_results(BENCH / "results")
    assert {k: numbers.not_full(k, d) for k, d in data.items() if d} == {
        k: None for k, d in data.items() if d}


@pytest.mark.parametrize(("argv", "words"), [
    (["--out", "nodir/r.md"],
     "argument --out: 'nodir/r.md' lies in directory 'nodir', which does not"),
    (["--out", "."], "argument --out: '.' is a directory"),
    (["--readme", "nonexistent.md"], "argument --readme: 'nonexistent.md' is not a file"),
    (["--readme", "nonexistent.md", "--check"], "argument --readme: 'nonexistent.md'"),
    (["--figure5", "nodir/f.png"], "argument --figure5: 'nodir/f.png' lies in directory 'nodir'"),
    (["--results", "no/such/dir"], "argument --results: 'no/such/dir' is not a directory"),
])
def test_report_refuses_bad_paths_before_writing(report: ModuleType, tmp_path: Path,
                                                 monkeypatch, capsys, argv, words) -> None:
    monkeypatch.chdir(tmp_path)
    if "--out" not in argv:
        argv = [*argv, "--out", "R.md"]
    with pytest.raises(SystemExit) as exc:
        report.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written, the README untouched
