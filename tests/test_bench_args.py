"""The benchmark scripts' and figure examples' command lines: a bad value is a usage error
(exit status 2) naming the flag; children of the benchmarks import this checkout; a peer
that is not installed is recorded as missing. Nothing here runs a benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _refused(main, argv, capsys) -> str:
    """``main(argv)`` must exit 2; its stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(("script", "argv", "words"), [
    ("bench_lorenz", ["--steps", "0"], "argument --steps: '0'"),
    ("bench_lorenz", ["--steps", "1"], "argument --steps: '1' must be a whole number >= 2"),
    ("bench_lorenz", ["--repeat", "0"], "argument --repeat: '0'"),
    ("bench_scaling", ["--sizes", "0"], "argument --sizes: '0'"),
    ("bench_scaling", ["--sizes", "-5"], "argument --sizes: '-5'"),
    ("bench_scaling", ["--repeats", "-3"], "argument --repeats: '-3'"),
    ("bench_scaling", ["--sizes"], "argument --sizes: expected at least one"),
    ("bench_pml", ["--size", "0"], "argument --size: '0'"),
    ("bench_pml", ["--size", "1"], "argument --size: '1' must be a whole number >= 2"),
    ("bench_pml", ["--repeat", "0"], "argument --repeat: '0'"),
    ("bench_pml", ["--fig5-rounds", "0"], "argument --fig5-rounds: '0'"),
    ("bench_online", ["--sizes", "0"], "argument --sizes: '0'"),
    ("bench_online", ["--pebbles"], "argument --pebbles: expected at least one"),
    ("bench_online", ["--check-max", "-1"], "argument --check-max: '-1'"),
    ("bench_online", ["--equinox-max", "-1"], "argument --equinox-max: '-1'"),
    ("bench_schedules", ["--pebbles"], "argument --pebbles: expected at least one"),
    ("bench_schedules", ["--sizes"], "argument --sizes: expected at least one"),
    ("bench_twolevel", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_twolevel", ["--peer-sizes"], "argument --peer-sizes: expected at least one"),
    ("bench_pml_disk", ["--rounds", "0"], "argument --rounds: '0'"),
    ("bench_pml_disk", ["--size", "1"], "argument --size: '1' must be a whole number >= 2"),
    ("bench_pml_disk", ["--disk-dir", "/nonexistent/pebbles"], "argument --disk-dir"),
    ("bench_lowering", ["--repeats", "0"], "argument --repeats: '0'"),
    ("run", ["--only"], "argument --only: expected at least one"),
    ("bench_jax", ["--timeout", "0"], "argument --timeout: '0' must be a finite number"),
    ("bench_pml_jax", ["--timeout", "nan"], "argument --timeout: 'nan' must be a finite"),
    ("bench_pml", ["--loaded-timeout", "-1"], "argument --loaded-timeout: '-1' must be"),
    ("bench_jax", ["--timeout", "x"], "argument --timeout: 'x' is not a number of seconds"),
])
def test_bad_values_name_the_flag(load_bench, capsys, script, argv, words) -> None:
    err = _refused(load_bench(script).main, argv, capsys)
    assert words in err


def test_lorenz_takes_the_given_steps_not_the_default(load_bench, monkeypatch) -> None:
    bench = load_bench("bench_lorenz")
    seen = []
    monkeypatch.setattr(bench, "run", lambda n, repeat, jax: seen.append((n, repeat)) or {})
    monkeypatch.setattr(bench, "markdown", lambda result: "")
    monkeypatch.setattr(bench, "publish", lambda *a: 0)
    bench.main(["--quick", "--steps", "7", "--repeat", "2"])
    bench.main(["--quick"])
    assert seen == [(7, 2), (2000, 3)]


def test_children_import_this_checkout(load_bench) -> None:
    common = load_bench("_common")
    env = common.child_env()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    out = common.run_child([sys.executable, "-c", "import pebbles; print(pebbles.__file__)"],
                           timeout=120)
    assert Path(out.stdout.strip()).resolve().is_relative_to(ROOT)
    with pytest.raises(RuntimeError, match=r"(?s)exited with status 1.*child says no"):
        common.run_child([sys.executable, "-c", "import sys; sys.exit('child says no')"],
                         timeout=120)


def test_json_records_of_children_report_failures_in_the_row(load_bench) -> None:
    """bench_jax / bench_pml_jax measure each configuration in a child: its last line of
    JSON, or a failed record naming the exit status and the last line of stderr."""
    common = load_bench("_common")
    code = "import json, pebbles; print('noise'); print(json.dumps({'f': pebbles.__file__}))"
    ok = common.json_record([sys.executable, "-c", code], timeout=120)
    assert ok["status"] == "ok" and Path(ok["f"]).resolve().is_relative_to(ROOT)
    failed = common.json_record([sys.executable, "-c", "import sys; sys.exit('no luck')"],
                                timeout=120)
    assert failed == {"status": "failed", "note": "exit 1: no luck"}

def test_disk_and_lowering_children_go_through_run_child(load_bench, monkeypatch) -> None:
    disk, low = load_bench("bench_pml_disk"), load_bench("bench_lowering")
    seen = []

    def fake(argv, timeout):
        seen.append(argv)
        return type("P", (), {"stdout": '{"seconds": 1.0}\n'})

    monkeypatch.setattr(disk, "run_child", fake)
    monkeypatch.setattr(low, "run_child", fake)
    assert disk.run_one(8, 4, ["--inplace"]) == {"seconds": 1.0}
    low.wall([sys.executable, "-m", "pebbles", "--help"], 1)
    assert seen[0][1:4] == ["-m", "solvers.pml", "gradient"] and seen[1][1:3] == ["-m", "pebbles"]


def test_run_resolves_and_checks_paths_first(load_bench, monkeypatch, tmp_path,
                                             capsys) -> None:
    run = load_bench("run")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run, "run_suite", lambda *a: pytest.fail("ran before checking"))
    err = _refused(run.main, ["--out", "o", "--report", "no/such/dir/R.md"], capsys)
    assert "argument --report" in err and "does not exist" in err
    err = _refused(run.main, ["--out", "o", "--readme", "missing.md"], capsys)
    assert "argument --readme" in err
    calls = []
    monkeypatch.setattr(run, "run_suite", lambda names, quick, out, prev: {
        "last_run": {"seconds": 1.0, "failed": []}, "scripts": {}})
    monkeypatch.setattr(run.subprocess, "run", lambda cmd, **k: calls.append(cmd) or type(
        "P", (), {"returncode": 0}))
    assert run.main(["--quick", "--only", "bench_lorenz", "--out", "o", "--report", "R.md"]) == 0
    cmd = calls[-1]
    assert cmd[cmd.index("--out") + 1] == str(tmp_path / "R.md")


def test_a_missing_peer_is_recorded(load_bench, monkeypatch) -> None:
    common = load_bench("_common")
    mod, why = common.import_peer("pebbles_no_such_peer")
    assert mod is None and why.startswith("missing: ModuleNotFoundError")
    two, low = load_bench("bench_twolevel"), load_bench("bench_lowering")
    monkeypatch.setattr(two, "import_peer", lambda name: (None, "missing: test"))
    monkeypatch.setattr(two, "time_ours", lambda *a: {"equal": True})
    res = two.run(True, 1, [1000])
    assert (res["checkpoint_schedules"], res["peers"], res["grid"],
            res["grid_all_no_worse"]) == ("missing: test", [], [], None)
    monkeypatch.setattr(low, "best_of", lambda fn, repeat, warmup=1: (1.0, 1.0))
    monkeypatch.setattr(low, "wall", lambda argv, repeats: (1.0, ""))
    row = low.measure(100, 3, 1, peer=False)
    assert row["count_multistage"] is None and row["process_ratio"] is None
    md = low.markdown({"rows": [row], "checkpoint_schedules": "missing: test",
                       "machine": {"command": "python x"}})
    assert "| 100 | 3 |" in md and "missing: test" in md


@pytest.fixture
def example(monkeypatch, tmp_path):
    """``example(name)``: the module ``examples/<name>.py``, run in ``tmp_path``; the
    example modules it imported (``_args`` too) leave ``sys.modules`` afterwards."""
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)

    def load(name: str):
        import importlib
        return importlib.import_module(name)

    yield load
    folder = str(ROOT / "examples")
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(folder):
            del sys.modules[name]


@pytest.mark.parametrize(("name", "argv", "words"), [
    ("tradeoff", ["--dpi=x"], "argument --dpi: 'x'"),
    ("tradeoff", ["--bogus"], "unrecognized arguments: --bogus"),
    ("tradeoff", ["out.txt"], "argument OUTPUT: 'out.txt': cannot tell the format"),
    ("figure5", [], "BENCH.json"),
    ("lorenz_figure4", ["--starts=0"], "argument --starts: '0'"),
    ("lorenz_figure3", ["--resolution", "1"], "argument --resolution: resolution=1"),
    ("pml_figures", ["--size=5"], "argument --size: '5' must be a whole number >= 32"),
    ("draw_figure7", ["--bogus"], "unrecognized arguments: --bogus"),
    ("draw_figure7", ["a", "b"], "unrecognized arguments: b"),
])
def test_examples_refuse_bad_flags(example, capsys, name, argv, words) -> None:
    assert words in _refused(example(name).main, argv, capsys)


def test_example_dpi_takes_a_separate_value(example, monkeypatch) -> None:
    mod = example("tradeoff")
    saved = []
    monkeypatch.setattr(mod.visualize, "draw_tradeoff", lambda ns: ns)
    monkeypatch.setattr(mod.visualize, "save", lambda fig, out, dpi: saved.append((out, dpi)))
    mod.main(["--dpi", "80", "--quick"])
    assert saved == [(Path("tradeoff.png"), 80)]


def test_figure5_without_fig5_records_says_what_to_run(example, tmp_path, capsys) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"kernels": {}}))
    err = _refused(example("figure5").main, [str(bench)], capsys)
    assert f"{bench} has no fig5 records; run benchmarks/bench_pml.py --fig5" in err


def test_figure7_help_writes_nothing(example, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        example("draw_figure7").main(["--help"])
    assert info.value.code == 0 and "OUTPUT_DIR" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_figure7_refuses_a_file_as_its_folder(example, tmp_path, capsys) -> None:
    (tmp_path / "f.png").write_bytes(b"")
    err = _refused(example("draw_figure7").main, ["f.png"], capsys)
    assert "argument OUTPUT_DIR: 'f.png' is a file, not a folder" in err


def test_jax_lorenz_takes_its_flags_from_argparse(tmp_path) -> None:
    """In a subprocess: importing the example switches on JAX's x64 mode."""
    pytest.importorskip("jax")
    script = str(ROOT / "examples" / "jax_lorenz.py")
    run = [subprocess.run([sys.executable, script, flag], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120) for flag in ("--help", "--bogus")]
    assert run[0].returncode == 0 and "--quick" in run[0].stdout
    assert run[1].returncode == 2 and "unrecognized arguments: --bogus" in run[1].stderr


BENCH_SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("script", ["bench_online", "bench_lowering", "bench_pml",
                                    "bench_pml_jax", "bench_scaling", "bench_schedules"])
def test_json_path_is_checked_before_the_run(load_bench, capsys, tmp_path, script) -> None:
    """A --json naming a directory, or a file under a file, is refused at once (exit 2),
    not after the run with the results lost."""
    (tmp_path / "afile").write_text("")
    err = _refused(load_bench(script).main, ["--json", str(tmp_path)], capsys)
    assert "argument --json:" in err and "is a directory" in err
    err = _refused(load_bench(script).main, ["--json", str(tmp_path / "afile" / "x.json")],
                   capsys)
    assert "argument --json:" in err and "which is a file, not a directory" in err


def test_every_script_checks_its_json_path_with_the_shared_type() -> None:
    for script in BENCH_SCRIPTS:
        text = (ROOT / "benchmarks" / f"{script}.py").read_text()
        for line in text.splitlines():
            if 'add_argument("--json"' in line:
                assert "type=output_file" in line, (script, line)


def test_run_refuses_a_directory_as_its_report(load_bench, monkeypatch, tmp_path,
                                               capsys) -> None:
    run = load_bench("run")
    monkeypatch.setattr(run, "run_suite", lambda *a: pytest.fail("ran before checking"))
    err = _refused(run.main, ["--out", str(tmp_path / "o"), "--report", str(tmp_path)],
                   capsys)
    assert "argument --report:" in err and "is a directory" in err


def test_command_line_records_the_json_path_from_the_root(load_bench, monkeypatch) -> None:
    common = load_bench("_common")
    monkeypatch.chdir(ROOT / "benchmarks" / "results")
    got = common.command_line(["../bench_online.py", "--json", "bench_online.json"])
    assert got == "python benchmarks/bench_online.py --json benchmarks/results/bench_online.json"
    got = common.command_line(["../bench_online.py", "--json=x.json", "--quick"])
    assert got == "python benchmarks/bench_online.py --json=benchmarks/results/x.json --quick"
    monkeypatch.chdir(ROOT / "benchmarks")  # as run.py runs it, with an absolute path
    got = common.command_line([str(ROOT / "benchmarks" / "bench_online.py"), "--json",
                               str(ROOT / "benchmarks" / "results" / "bench_online.json")])
    assert got == "python benchmarks/bench_online.py --json benchmarks/results/bench_online.json"


@pytest.mark.parametrize(("name", "draw"), [("tradeoff", "draw_tradeoff"),
                                            ("figure5", "draw_figure5")])
def test_figure_examples_without_matplotlib_say_what_to_install(example, monkeypatch,
                                                                  tmp_path, capsys, name,
                                                                  draw) -> None:
    mod = example(name)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"fig5": {"records": [{"schedule": "treeverse S=5"}]}}))

    def lacking(what: str, solvers: bool = False) -> None:
        raise ImportError(f'{what} needs matplotlib: pip install "pebble-games[plot]"')

    monkeypatch.setattr(sys.modules["_args"], "matplotlib_required", lacking)
    monkeypatch.setattr(mod.visualize, draw, lambda *a: pytest.fail("drew without matplotlib"))
    with pytest.raises(SystemExit) as exc:
        mod.main([str(bench)] if name == "figure5" else ["--quick"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"examples/{name}.py needs matplotlib" in err and "pip install" in err
    assert "Traceback" not in err


def test_scaling_sizes_apply_to_the_count_rows(load_bench, monkeypatch) -> None:
    scaling = load_bench("bench_scaling")
    seen = {}
    monkeypatch.setattr(scaling, "measure", lambda sizes, bennett_max, repeats: [])
    monkeypatch.setattr(scaling, "publish", lambda path, result, md: seen.update(result))
    scaling.main(["--sizes", "100", "200"])
    assert {r["n"] for r in seen["records"]} == {100, 200}
    assert {f["n_max"] for f in seen["fits"]} == {200}
