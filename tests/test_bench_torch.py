"""benchmarks/bench_torch.py's matching and timing logic, with fake measurements: the
memory search falls back when a limit's full measurement no longer fits, the side-by-side
timing interleaves the rows of a level, and the time goal is judged on it."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("bench_torch")


def test_fitted_takes_the_next_limit_when_the_full_measurement_does_not_fit(bench,
                                                                              monkeypatch):
    """Peaks in the search: limit + 10 (fits up to 100 against torch's 110); the full
    measurement of the largest limit that fit comes out 5 higher (over torch's), so the
    next largest that fit is measured and kept."""
    seen: list[float] = []

    def make(m):
        def fn():
            seen.append(m)
            return torch.ones(1, requires_grad=True)
        return fn

    def fake_peak(fn, params, repeat=1):
        fn()
        return seen[-1] + 10

    def run(label, fn, memory, **extra):
        top = memory == max(m for m in seen if m + 10 <= 110)
        return {"method": label, "memory": memory, "peak_bytes": memory + (15 if top else 10)}

    monkeypatch.setattr(bench, "peak_bytes", fake_peak)
    row = bench.fitted({"peak_bytes": 110}, "x", make, (0.0, 128.0), run, [],
                       lambda m: {}, steps=7)
    fitting = sorted({m for m in seen if m + 10 <= 110}, reverse=True)
    assert fitting[0] == 100.0  # the bisection's largest fitting limit (a grid of 1)
    assert row["memory"] == fitting[1] and row["peak_bytes"] <= 110


def test_fitted_none_when_the_lower_bound_does_not_fit(bench, monkeypatch):
    monkeypatch.setattr(bench, "peak_bytes", lambda fn, params, repeat=1: 200)
    assert bench.fitted({"peak_bytes": 110}, "x", lambda m: (lambda: None), (10.0, 50.0),
                        None, [], lambda m: {}, steps=3) is None


def test_side_by_side_interleaves_rotating_rows_and_keeps_the_best(bench, monkeypatch):
    order: list[str] = []
    clock = iter(range(1000))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(clock)))
    rows = {k: {"method": k, "seconds": 1.0} for k in ("torch", "pebbles_memory")}
    for k, r in rows.items():
        bench.PASSES[id(r)] = lambda k=k: order.append(k)
    level = {**rows, "pebbles_budget": None}
    bench.side_by_side([level], rounds=3)
    assert order == ["torch", "pebbles_memory", "pebbles_memory", "torch", "torch",
                     "pebbles_memory"]
    assert level["side_by_side_ms"] == {"torch": 1000.0, "pebbles_memory": 1000.0}


def test_time_goal_uses_the_side_by_side_times(bench):
    def level(torch_ms, ours_ms, side):
        t = {"method": "torch", "recomputed": 10, "evaluations": 20, "seconds": torch_ms / 1e3}
        p = {"method": "pebbles", "recomputed": 9, "evaluations": 19, "seconds": ours_ms / 1e3}
        return {"torch": t, "pebbles_memory": p, "pebbles_budget": None,
                "side_by_side_ms": side}

    faster_first = level(100, 90, {"torch": 95.0, "pebbles_memory": 97.0})
    res = {"matched": [faster_first], "pebbles_budget": []}
    goals = bench.goals(res, {"matched": [level(100, 90, {"torch": 95.0,
                                                          "pebbles_memory": 94.0})]})
    assert goals["mlp: less time at every level (side by side)"] is False
    assert goals["ode: less time at every level (side by side)"] is True
    assert goals["mlp: fewer recomputed at every level"] is True


def test_segments_bench_rows_compare_torch_and_pebbles_at_each_level(load_bench):
    """bench_torch_segments.py on a 6-layer MLP: PyTorch's recomputed runs are its split's
    (s - 1) * (n // s), counted; each record's comparisons follow its numbers."""
    import functools

    seg = load_bench("bench_torch_segments")
    base = load_bench("bench_torch")
    net, counters, x = base.mlp(6, 4)
    run = functools.partial(base.measure, params=list(net.parameters()), counters=counters,
                            n=6, repeat=1)
    costs = seg.profile_layers(net, x)
    levels = [seg.level(s, net, x, costs, run) for s in (2, 3)]
    base.side_by_side(levels, 1)
    rows = seg.rows(levels)
    assert [r["segments"] for r in rows] == [2, 3]
    assert [r["torch recomputed"] for r in rows] == [3, 4]
    for r in rows:
        assert r["model MiB"] > 0 and r["pebbles recomputed"] >= 0
        assert r["peak no more"] == (r["pebbles peak MiB"] <= r["torch peak MiB"])
        assert r["recomputed no more"] == (r["pebbles recomputed"] <= r["torch recomputed"])
        assert r["less time"] == (r["pebbles ms"] < r["torch ms"])
    text = seg.markdown({"machine": {"command": "x"}, "rows": rows})
    assert text.count("\n| 2 |") == 1 and text.count("\n| 3 |") == 1
