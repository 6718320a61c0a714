"""Smoke tests of benchmarks/bench_lorenz.py at tiny n: the JSON contract that
benchmarks/report.py reads, gradient agreement of every method, and the goal logic."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

N = 60

OURS = ["primal", "forward", "store-all", "treeverse S=10", "treeverse S=10 (generic executor)",
        "treeverse in-place S=10", "bennett k=3", "adjoint K=200"]
JAX = ["jax grad", "jax grad+checkpoint", "jax jacfwd"]
RECORD_KEYS = {"method", "status", "seconds", "ratio_to_primal", "peak_states", "state_bytes",
               "forward_steps", "backward_steps", "model_seconds", "max_rel_diff", "note"}


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("bench_lorenz")


def run_main(bench, tmp_path, *extra: str) -> dict:
    out = tmp_path / "lorenz.json"
    assert bench.main(["--steps", str(N), "--repeat", "1", "--json", str(out), *extra]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["lorenz.json"]  # one result file
    return json.loads(out.read_text())


def check_contract(result: dict) -> None:
    assert {"machine", "n", "t_step_ns", "t_vjp_ns", "records", "goals",
            "paper_table2", "interleaved_model"} <= set(result)
    assert set(result["interleaved_model"]["rows"]) == {"store-all", "treeverse S=10",
                                                        "treeverse in-place S=10", "bennett k=3"}
    assert result["n"] == N and result["t_step_ns"] > 0 and result["t_vjp_ns"] > 0
    assert [r["method"] for r in result["records"]] == OURS + JAX
    for r in result["records"]:
        assert RECORD_KEYS <= set(r), r["method"]
        assert r["status"] in ("ok", "missing")
    for g in result["goals"]:
        assert set(g) - {"best_possible"} == {"goal", "measured", "limit", "pass"}
        assert isinstance(g["pass"], bool)
    paper = {p["method"]: p for p in result["paper_table2"]}
    assert len(paper) == 4 and paper["plain Julia primal"]["ratio_to_primal"] == 1.0
    assert {p["memory_states"] for p in paper.values()} == {1, 6, 10_000, 50}


def check_ours(by: dict) -> None:
    for name in OURS:
        r = by[name]
        assert r["status"] == "ok" and r["seconds"] > 0, name
        assert r["ratio_to_primal"] == pytest.approx(r["seconds"] / by["primal"]["seconds"])
        assert r["state_bytes"] == 24 * r["peak_states"], name
    # exact methods: every schedule gives the store-all gradient bit for bit
    for name in OURS[2:7]:
        assert by[name]["max_rel_diff"] == 0.0, name
        assert by[name]["backward_steps"] == N and by[name]["model_seconds"] > 0
    assert by["forward"]["max_rel_diff"] < 1e-12
    assert 0 < by["adjoint K=200"]["max_rel_diff"] < 1e-5  # approximate, but close
    assert by["store-all"]["peak_states"] == N
    assert by["treeverse S=10"]["peak_states"] <= 11
    assert by["primal"]["max_rel_diff"] is None


def test_without_jax(bench, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax raises ImportError
    result = run_main(bench, tmp_path)
    check_contract(result)
    by = {r["method"]: r for r in result["records"]}
    check_ours(by)
    for name in JAX:
        r = by[name]
        assert r["status"] == "missing" and "missing" in r["note"]
        assert all(r[k] is None for k in RECORD_KEYS - {"method", "status", "note"})
    goals = {g["goal"] for g in result["goals"]}
    assert "forward: ratio to primal <= 5" in goals
    assert not any("jax" in g for g in goals)


def test_no_jax_flag(bench, tmp_path):
    result = run_main(bench, tmp_path, "--no-jax")
    assert all(r["status"] == "missing" for r in result["records"] if r["method"] in JAX)


def test_with_jax(bench, tmp_path):
    result = run_main(bench, tmp_path)
    check_contract(result)
    by = {r["method"]: r for r in result["records"]}
    check_ours(by)
    for name in JAX:
        assert by[name]["status"] == "ok", name
        assert by[name]["max_rel_diff"] < 1e-12, name
        assert by[name]["xla_temp_bytes"] >= 0
    assert by["jax grad"]["peak_states"] == N + 1
    assert sum("jax grad time / ours" in g["goal"] for g in result["goals"]) == 4


def fake(method: str, seconds: float, **kw) -> dict:
    return {"method": method, "status": "ok", "seconds": seconds,
            "ratio_to_primal": seconds, **kw}


def test_goal_directions(bench):
    records = [fake("primal", 1.0), fake("forward", 6.0),
               fake("store-all", 2.0, forward_steps=10),
               fake("treeverse S=10", 5.0, model_seconds=4.0, forward_steps=40),
               fake("jax grad", 120.0)]
    model = {"rows": {"treeverse S=10": {"time_over_model": 1.25}}, "t_step_ns": 1e9}
    goals = {g["goal"].split(":")[0] + (" jax" if "jax" in g["goal"] else ""): g
             for g in bench.goals(records, model)}
    assert goals["forward"]["pass"] is False and goals["forward"]["measured"] == 6.0
    assert goals["store-all"]["pass"] is True
    assert goals["treeverse S=10"]["measured"] == 1.25 and not goals["treeverse S=10"]["pass"]
    assert goals["store-all jax"]["measured"] == 60.0 and goals["store-all jax"]["pass"]
    assert goals["treeverse S=10 jax"]["measured"] == 24.0 and goals["treeverse S=10 jax"]["pass"]
    # 120 s of JAX over 40 forward steps of 1 s each: no replay of that schedule beats 3x
    assert goals["treeverse S=10 jax"]["best_possible"] == pytest.approx(3.0)
    assert "best_possible" not in goals["forward"]


def test_interleaved_model(bench):
    """Every replay is timed in each round; the ratio is best time / best-timed model."""
    import solvers.lorenz as lz
    from pebbles import encode, treeverse

    enc = encode(treeverse(N, 3))
    calls = {"tv": lambda: lz.replay_lorenz(enc, N)}
    out = bench.interleaved_model(N, 4, calls)
    assert out["rounds"] == 4 and out["t_step_ns"] > 0 and out["t_vjp_ns"] > 0
    g = lz.replay_lorenz(enc, N)
    m = out["rows"]["tv"]
    model = (g.forward_steps * out["t_step_ns"] + N * out["t_vjp_ns"]) * 1e-9
    assert m["model_seconds"] == pytest.approx(model)
    assert m["time_over_model"] == pytest.approx(m["seconds"] / m["model_seconds"])
    assert "| tv |" in bench.model_table(out)


def test_wrong_gradient_is_reported(bench):
    import numpy as np

    recs = [{**fake("primal", 1.0), "_gradient": None},
            {**fake("store-all", 2.0), "_gradient": np.array([1.0, -4.0, 0, 0, 0, 0])},
            {**fake("forward", 3.0), "_gradient": np.array([1.0, -4.0, 0, 0, 0, 0.5])}]
    for r in recs:
        r.update(dict.fromkeys(("peak_states", "forward_steps", "backward_steps"), 1))
    bench.finish(recs, 10, 1e-9, 1e-9)
    assert recs[2]["max_rel_diff"] == pytest.approx(0.125)
    assert recs[1]["max_rel_diff"] == 0.0


def test_bad_arguments(bench):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--steps", "1"])
    assert exc.value.code == 2


def test_model_kernels_are_the_executors(bench):
    """t_vjp is timed on the kernel the executor runs: same gradient, bit for bit."""
    import numpy as np

    from pebbles import encode, store_all
    from solvers import lorenz as lz

    x0, th = np.array(lz.DEFAULT_X0), np.array(lz.DEFAULT_THETA)
    traj = bench._trajectory(x0, th, lz.DEFAULT_DT, N)
    assert np.array_equal(traj[-1], lz.primal(n=N))
    ref = lz.replay_lorenz(encode(store_all(N)), N).gradient
    assert np.array_equal(bench._vjp_chain(traj, th, lz.DEFAULT_DT), ref)


def test_paper_table_comes_from_paper_values(bench, tmp_path):
    """Table 2 is read from paper_values.json, the one file of typed paper numbers."""
    values = json.loads((Path(bench.__file__).parent / "paper_values.json").read_text())
    rows = values["table2"]["rows"]
    table = bench.paper_table()
    assert [(r["ours"], r["method"], r["ms"], r["memory_states"]) for r in table] == [
        (r["method"], r["paper_method"], r["ms"], r["memory_states"]) for r in rows]
    assert not hasattr(bench, "PAPER_TABLE2")
    rows[0]["ms"] = 3.8  # a changed value in the file shows up in the table
    (tmp_path / "p.json").write_text(json.dumps(values))
    assert bench.paper_table(tmp_path / "p.json")[0]["ratio_to_primal"] == 1.0
    assert bench.paper_table(tmp_path / "p.json")[1]["ratio_to_primal"] == 2.88 / 3.8
