"""Smoke tests of benchmarks/bench_pml.py and benchmarks/bench_pml_jax.py at tiny sizes:
the JSON contracts that benchmarks/report.py and visualize read, the step model's
bookkeeping, and JAX's gradient against ours."""

from __future__ import annotations

import json

import numpy as np
import pytest

KERNEL_KEYS = {"kernel", "size", "best_ms", "median_ms", "bytes", "gb_s", "of_copy"}
FIG5_KEYS = {"schedule", "n", "size", "predicted_forward_steps", "predicted_peak_pebbles",
             "forward_steps", "backward_steps", "peak_states", "seconds", "model_seconds",
             "peak_mb", "peak_states_mb", "allocations", "inplace_steps", "overhead_seconds",
             "measured_seconds", "model_ratio"}
FULL_KEYS = {"size", "n", "pebbles", "game", "seconds", "peak_rss_mb", "forward_steps",
             "backward_steps", "peak_states", "loss", "grad_c_norm", "state_mb"}


@pytest.fixture(scope="module")
def benches(load_bench):
    return load_bench("bench_pml"), load_bench("bench_pml_jax")


def test_kernels_and_full(benches, tmp_path):
    bench = benches[0]
    out = tmp_path / "pml.json"
    argv = ["--size", "16", "--repeat", "1", "--copy-mb", "1", "--full", "--full-size", "16",
            "--full-steps", "24", "--full-pebbles", "3", "--json", str(out)]
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    assert {"machine", "kernels", "full"} <= set(result)
    assert len(result["kernels"]["records"]) == 4 and result["kernels"]["copy_gb_s"] > 0
    assert all(KERNEL_KEYS <= set(r) for r in result["kernels"]["records"])
    full = result["full"]
    assert FULL_KEYS <= set(full)
    assert (full["size"], full["n"], full["pebbles"], full["game"]) == (16, 24, 3, "checkpoint")
    assert full["forward_steps"] == full["predicted_forward_steps"] + 1  # + s_n
    assert full["backward_steps"] == 24 and full["peak_states"] <= 3 + 1
    assert full["peak_rss_mb"] > 0 and full["nan_free"]


def test_fig5_records_and_model(benches, monkeypatch):
    bench = benches[0]
    configs = [("treeverse S=3", {"method": "treeverse", "pebbles": 3, "inplace": False}),
               ("treeverse in-place S=3", {"method": "treeverse", "pebbles": 3, "inplace": True})]
    monkeypatch.setattr(bench, "fig5_configs", lambda n: configs)
    recs, extra = bench.fig5_records(16, 30, rounds=2)
    assert {"t_forward_ms", "t_inplace_ms", "t_backward_ms", "state_mb"} <= set(extra)
    assert extra["rounds"] == 2
    assert [r["schedule"] for r in recs] == ["treeverse S=3", "treeverse in-place S=3"]
    for r in recs:
        assert FIG5_KEYS <= set(r)
        assert r["forward_steps"] == r["predicted_forward_steps"] + 1
        assert r["peak_buffers"] <= r["peak_states"] <= r["predicted_peak_pebbles"] + 1
        assert 0 < r["allocations"] <= r["peak_buffers"]
        assert r["callback_seconds"] <= r["measured_seconds"] and r["model_ratio"] > 0
        assert len(r["measured_rounds"]) == 2 == r["rounds"]
        assert r["measured_seconds"] in r["measured_rounds"]
        assert r["model_ratio"] == pytest.approx(sorted(r["model_ratio_rounds"])[0])
        assert r["mean_dst_distance"] >= 0 and r["t_into_ms"] > 0
    assert recs[0]["loss"] == pytest.approx(recs[1]["loss"], rel=1e-14)
    assert "measured/model" in bench.fig5_table(recs, extra)


def test_median_round_pairs_each_run_with_its_own_costs(benches):
    bench = benches[0]
    counts = {"forward_steps": 10, "allocations": 0, "inplace_steps": 0}
    costs = {"t_new": 0.0, "t_inplace": 0.0, "t_backward": 0.0, "t_loss": 0.0}
    # models 2.0, 3.0, 1.0 -> ratios 1.5, 1.0, 2.5: the median is the first round
    runs = [{**counts, "measured_seconds": 3.0, "costs": {**costs, "t_into": 0.2}},
            {**counts, "measured_seconds": 3.0, "costs": {**costs, "t_into": 0.3}},
            {**counts, "measured_seconds": 2.5, "costs": {**costs, "t_into": 0.1}}]
    run, model, own, ratios = bench._median_round(runs, 4)
    assert run is runs[0] and model == pytest.approx(2.0) and own["t_into"] == 0.2
    assert ratios == pytest.approx([1.5, 1.0, 2.5])


def test_model_counts_each_step_path(benches):
    costs = {"t_new": 5.0, "t_into": 2.0, "t_inplace": 1.0, "t_backward": 10.0, "t_loss": 0.5}
    counts = {"forward_steps": 10, "allocations": 2, "inplace_steps": 5}
    assert benches[0].model_seconds(counts, costs, 4) == 2 * 5 + 3 * 2 + 5 * 1 + 4 * 10.5
    costs["t_exec"] = 0.25
    assert benches[0].model_seconds(counts, costs, 4) == 63.0 + (10 + 4) * 0.25
    assert 0 < benches[0].executor_cost(50) < 1e-3


def test_jax_missing_is_reported(benches, tmp_path):
    jx = benches[1]
    out = tmp_path / "jax.json"
    assert jx.main(["--no-jax", "--size", "12", "--steps", "16", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {"machine", "size", "n", "validation", "records", "paper_size_store_all_gb"} <= set(
        result)
    assert (result["size"], result["n"]) == (12, 16)
    rows = {r["method"]: r for r in result["records"]}
    assert set(rows) == {*jx.JAX_METHODS, *jx.OURS}
    for r in rows.values():
        assert {"method", "status", "seconds", "peak_mb", "note"} <= set(r)
    assert all(rows[m]["status"] == "missing" for m in jx.JAX_METHODS)
    assert all(rows[m]["status"] == "ok" and rows[m]["seconds"] > 0 for m in jx.OURS)
    ours = [rows[m]["loss"] for m in jx.OURS]
    assert ours[0] == pytest.approx(ours[1], rel=1e-14)
    assert result["paper_size_store_all_gb"] == pytest.approx(321.3, rel=1e-3)


def test_jax_gradient_matches_ours(benches):
    import pebbles
    from solvers import pml

    jx = benches[1]
    cfg = pml.PMLConfig(nx=12, ny=10, steps=30, h=0.11, width=4.0, delay=8.0, n_detectors=12)
    c = pml.uniform_model(cfg) * (1 + 0.1 * np.random.default_rng(0).random(cfg.shape))
    obs = pml.record(cfg)
    ours = pml.gradient(cfg, c, pebbles.treeverse(cfg.steps, 4), obs)
    j = jx.jax_gradient(cfg, c, obs, remat=True)  # 30 = 5 x 6: no tail; checks the remat path
    assert j["loss"] == pytest.approx(ours.loss, rel=1e-12)
    inner = np.s_[1:-1, 1:-1]
    diff = np.linalg.norm(j["grad_c"][inner] - ours.grad_c[inner])
    assert diff <= 1e-12 * np.linalg.norm(ours.grad_c[inner])


def test_stack_distances(benches):
    bench = benches[0]
    # buffers 1, 2, 3 written in turn, then 1 -> 2 (1 used 2 buffers ago, 2 one ago),
    # an in-place step and a read of 3 (neither counted), then 2 -> 3
    log = [(0, 1), (1, 2), (2, 3), (1, 2), (2, 2), (3, None), (2, 3)]
    assert bench.stack_distances(log) == [(2, 1), (1, 0)]


def test_step_costs_follow_a_pattern(benches):
    from solvers import pml

    bench = benches[0]
    cfg = pml.PMLConfig(nx=12, ny=12, steps=20)
    sol = pml.PMLSolver(cfg, pml.uniform_model(cfg), observed=pml.record(cfg))
    costs = bench.step_costs(sol, 20, samples=4, pattern=[(3, 5), (0, 1)])
    assert set(costs) == {"t_into", "t_inplace", "t_new", "t_backward", "t_loss"}
    assert all(v > 0 for v in costs.values())


def test_loaded_runs_kill_the_busy_loop(benches, monkeypatch):
    bench = benches[0]
    started = []

    def busy(seconds):
        proc = bench_busy(seconds)
        started.append(proc)
        return proc

    bench_busy = bench.busy_loop
    monkeypatch.setattr(bench, "busy_loop", busy)
    monkeypatch.setattr(bench, "LOAD_VARIANTS", {"solver default": ({}, True)})
    recs, extra = bench.loaded_records([(12, 16)], budget=3, rounds=1, timeout=120)
    assert len(started) == 1 and started[0].poll() is not None  # killed and reaped
    assert [(r["loaded"], r["statuses"]) for r in recs] == [(False, ["ok"]), (True, ["ok"])]
    assert all(r["seconds"] > 0 and r["threading_layer"] for r in recs)
    (ratio,) = extra["ratios"]
    assert ratio["ratio"] == pytest.approx(recs[1]["seconds"] / recs[0]["seconds"])
    table = bench.loaded_table(recs, extra)
    assert "12x12" in table and "loaded / quiet" in table


def test_busy_loop_ends_by_itself(benches):
    proc = benches[0].busy_loop(0.2)
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_pml_disk_rounds_take_the_median_round(monkeypatch, tmp_path, load_bench):
    """bench_pml_disk runs every configuration once a round, interleaved; a row holds the
    fields of its median-time round; the goals are judged on those."""
    bench = load_bench("bench_pml_disk")
    calls = []

    def fake(size, steps, extra):
        calls.append(extra)
        k = sum(1 for e in calls if e == extra)  # round of this configuration
        disk = "two-level" in extra
        return {"seconds": (30.0 if disk else 25.0) + k, "peak_rss_mb": 100.0 + k,
                "forward_steps": 10, "peak_states": 5, "writes": 3 if disk else None}

    monkeypatch.setattr(bench, "run_one", fake)
    rows = bench.run_all(8, 10, str(tmp_path), rounds=3)
    names = list(bench.CONFIGS)
    assert [bench.CONFIGS[n] == c[: len(bench.CONFIGS[n])] for n, c in
            zip(names * 3, calls, strict=True)] == [True] * (3 * len(names))  # in order
    by = {r["config"]: r for r in rows}
    assert by["memory S=4"]["seconds_each"] == [26.0, 27.0, 28.0]
    assert by["memory S=4"]["seconds"] == 27.0 and by["memory S=4"]["peak_rss_mb"] == 102.0
    assert by["memory S=4"]["median_round"] == 2
    assert by["memory S=4"]["peak_rss_mb_each"] == [101.0, 102.0, 103.0]
    goals = bench.summarize(rows, state_mb=10.0)["goals"]
    assert by["memory 4 + disk"]["time_over_memory_s20"] == pytest.approx(32.0 / 27.0)
    assert list(goals.values()) == [True, True]


def test_pml_disk_row_does_not_mix_rounds(load_bench):
    """Time, writes, reads and bytes of a row all come from its median-time run (the
    stored data once had writes_each [57, 29, 57] with the 29-write run's time)."""
    bench = load_bench("bench_pml_disk")
    runs = [{"seconds": s, "writes": w, "reads": w, "bytes_written": 10 * w,
             "peak_rss_mb": 100.0 + w} for s, w in ((30.0, 57), (25.0, 29), (20.0, 57))]
    row = bench.median_row("memory 4 + disk", runs)
    assert (row["seconds"], row["writes"], row["reads"], row["bytes_written"],
            row["peak_rss_mb"], row["median_round"]) == (25.0, 29, 29, 290, 129.0, 2)
    assert row["writes_each"] == [57, 29, 57]
    two = bench.median_row("x", runs[:2])  # an even count: the faster middle run
    assert (two["seconds"], two["writes"]) == (25.0, 29)


def test_pml_disk_writes_a_file_only_with_json(load_bench, monkeypatch):
    bench = load_bench("bench_pml_disk")
    seen = []
    monkeypatch.setattr(bench, "run_all", lambda *a: [
        {"config": c, "seconds": 1.0, "peak_rss_mb": 1.0} for c in bench.CONFIGS])
    monkeypatch.setattr(bench, "publish", lambda path, result, md, failed: seen.append(
        (path, md, failed)) or 0)
    assert bench.main(["--size", "8", "--steps", "4"]) == 0
    (path, md, failed), = seen
    assert path is None and not failed
    assert "| memory 4 + disk |" in md and "python" in md  # the table, then the command
