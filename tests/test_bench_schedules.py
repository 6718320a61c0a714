"""benchmarks/bench_schedules.py at tiny n: it runs, counts our forward steps right, and the
peers' forward steps equal our in-place optimum where the games coincide (Revolve's game)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

import pebbles

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
CASES = [(10, 3), (20, 4), (57, 5)]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("_bench_schedules", BENCH /
                                                      "bench_schedules.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("n,s", CASES)
def test_our_counter_matches_simulator(bench: ModuleType, n: int, s: int) -> None:
    for inplace in (False, True):
        game = "inplace" if inplace else "checkpoint"
        sim = pebbles.simulate(pebbles.treeverse(n, s, inplace=inplace), n, game)
        assert bench.ours_forward_steps(pebbles.treeverse(n, s, inplace=inplace)) \
            == sim.forward_steps == pebbles.min_forward_steps(n, s, game)


@pytest.mark.parametrize("n,s", CASES)
def test_checkpoint_schedules_revolve_equals_inplace_optimum(bench, n: int, s: int) -> None:
    import checkpoint_schedules as cs  # a peer: pip install -r benchmarks/requirements.txt

    want = pebbles.min_forward_steps(n, s, "inplace")
    assert bench.cs_run(lambda: cs.Revolve(n, s), n) == want
    assert bench.cs_run(lambda: cs.MultistageCheckpointSchedule(n, s, 0), n) == want


@pytest.mark.parametrize("n,s", CASES)
def test_pyrevolve_equals_inplace_optimum(bench: ModuleType, n: int, s: int) -> None:
    import pyrevolve  # noqa: F401  a peer: pip install -r benchmarks/requirements.txt

    assert bench.pyrevolve_run(n, s) == pebbles.min_forward_steps(n, s, "inplace")


def test_run_reports_missing_skipped_and_no_mismatch(bench: ModuleType, tmp_path) -> None:
    missing = {"equinox": "missing: pretend", "checkpoint_schedules": "missing: pretend"}
    rows = bench.measure_ours(30, 4, 1) + bench.measure_peers(30, 4, 1, "quick", missing)
    rows += bench.measure_peers(10**6, 4, 1, "quick", missing)
    by = {(r["n"], r["schedule"]): r for r in rows}
    assert by[(30, "cs.Multistage")]["status"] == "missing"
    assert by[(30, "equinox")]["note"] == "missing: pretend"
    assert by[(10**6, "pyrevolve.CRevolve")]["status"] == "skipped (quick)"
    assert bench.check_rows(rows) == []
    assert by[(30, "pebbles.treeverse")]["forward_steps"] == by[(30, "pebbles.treeverse")][
        "checkpoint_optimum"]
    assert by[(30, "pyrevolve.CRevolve")]["status"] == "ok"
    assert by[(30, "pyrevolve.CRevolve")]["ratio_ours_over_theirs"] > 0
    result = {"mode": "quick", "repeats": 1, "rows": rows, "mismatches": [],
              "peers": {"equinox": "missing: pretend"}, "machine": {"command": "x"}}
    md = bench.markdown(result)
    assert "| 30 | 4 | cs.Multistage | missing |" in md and "none" in md
    json.dumps(result)  # the JSON contract is plain data


def test_check_rows_flags_a_wrong_peer_count(bench: ModuleType) -> None:
    row = bench._row(20, 4, "cs.Revolve", "inplace", forward_steps=40)
    assert bench.check_rows([row]) == [{"n": 20, "S": 4, "schedule": "cs.Revolve",
                                        "forward_steps": 40, "inplace_optimum": 39}]


def test_equinox_online_count_is_at_least_the_offline_optimum(bench: ModuleType) -> None:
    import equinox  # noqa: F401  a peer: pip install -r benchmarks/requirements.txt

    # Online checkpointing cannot beat the offline in-place optimum with the same memory;
    # a count below it would mean the conversion to our convention subtracts too much.
    n, s = 10, 3
    got = bench.equinox_count(n, s)
    assert pebbles.min_forward_steps(n, s, "inplace") <= got < 3 * n


def test_timed_leaves_the_warm_up_out(bench: ModuleType) -> None:
    """The best of the repeats after the warm-up: a fast first call does not count."""
    calls = []

    def fn() -> int:
        calls.append(1)
        if len(calls) > 1:
            time.sleep(0.02)
        return 7

    secs, result, runs = bench.timed(fn, 2)
    assert result == 7 and runs == 3 and len(calls) == 3
    assert secs >= 0.02


def test_lowering_times_both_counts_alike_and_runs_our_python(load_bench, monkeypatch):
    """bench_lowering: the same warm-up for both counts, the CLI under this Python, and
    no file unless --json is given."""
    low = load_bench("bench_lowering")
    warmups, argvs, written = {}, [], []

    def best_of(fn, repeat, warmup=1):
        warmups[len(warmups)] = warmup
        return 1.0, 1.0

    monkeypatch.setattr(low, "best_of", best_of)
    monkeypatch.setattr(low, "wall", lambda argv, repeats: (argvs.append(argv) or 1.0, ""))
    monkeypatch.setattr(low, "count_multistage", lambda n, s: 2 * n)
    row = low.measure(100, 3, 1)
    assert row["count_multistage"] == 100
    assert warmups == {0: 1, 1: 1, 2: 1}  # lower, count ours, count Multistage
    ours = next(a for a in argvs if "schedule" in a)
    assert ours[:3] == [sys.executable, "-m", "pebbles"]
    monkeypatch.setattr(low, "measure", lambda n, s, r, peer=True: row)
    monkeypatch.setattr(low, "publish", lambda path, result, md: written.append(path) or 0)
    assert low.main(["--quick"]) == 0 and written == [None]


def test_scaling_help_states_the_quick_sizes(load_bench, capsys) -> None:
    scaling = load_bench("bench_scaling")
    with pytest.raises(SystemExit):
        scaling.main(["--help"])
    assert "n <= 10^5" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv", [["--pebbles", "0", "--sizes", "10"], ["--sizes", "0"],
                                  ["--sizes", "10", "--pebbles", "-3"], ["--repeats", "0"]])
def test_bad_values_are_a_one_line_error(bench: ModuleType, argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --" in err and "Traceback" not in err
