"""pebbles.tradeoff_curves: the numbers of the trade-off plot, online curve included."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import pebbles


def test_online_curve_never_beats_the_offline_optimum():
    n = 1000
    c = pebbles.tradeoff_curves(n)
    x, s = c["online"]
    assert len(x) >= 8
    for xi, si in zip(x, s, strict=True):
        opt = pebbles.min_forward_steps(n, int(si), "checkpoint") / n
        assert xi >= opt - 1e-12
        # the online stream is exact up to the end of its r = 2 range
        if n <= pebbles.online_r2_range(int(si)):
            assert xi == opt
    assert np.all(np.diff(x) <= 1e-12)  # more memory, never more time


def test_curves_are_frontiers_of_the_exact_counts():
    c = pebbles.tradeoff_curves(200)
    x, s = c["treeverse"]
    assert np.array_equal(x, [pebbles.min_forward_steps(200, int(k)) / 200 for k in s])
    assert c["online"][0].size
    assert pebbles.tradeoff_curves(200, paper_max_n=100)["online"][0].size == 0


def test_online_overhead_is_zero_on_the_r2_range_and_never_negative():
    ns = (5, 20, 60, 66, 100, 300)
    for inplace in (False, True):
        over = pebbles.online_overhead(ns, (5, 10), inplace=inplace)
        for s, row in over.items():
            assert np.all(row >= 0)
            for n, value in zip(ns, row, strict=True):
                if n <= pebbles.online_r2_range(s, inplace=inplace):
                    assert value == 0, (s, n, inplace)
    assert pebbles.online_overhead((100,), (5,))[5][0] > 0  # past the range: not exact


def test_online_overhead_figure_draws_one_line_per_budget_and_game():
    import visualize

    fig = visualize.draw_online_overhead((10, 100, 1000), (5, 10))
    gids = sorted(line.get_gid() for line in fig.axes[0].lines if line.get_gid())
    assert gids == ["online-10-checkpoint", "online-10-in-place", "online-5-checkpoint",
                    "online-5-in-place"]
    line = next(ln for ln in fig.axes[0].lines if ln.get_gid() == "online-5-checkpoint")
    np.testing.assert_allclose(line.get_ydata(),
                               pebbles.online_overhead((10, 100, 1000), (5,))[5] * 100)


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"n": 1}, pebbles.PebblesValueError, "n=1 has no trade-off.*pass n=2 or more"),
    ({"n": 100, "paper_max_n": 0}, pebbles.PebblesValueError, "paper_max_n=0 must be >= 1"),
    ({"n": 100, "paper_max_n": 2.5}, pebbles.PebblesTypeError, "paper_max_n=2.5"),
    ({"n": 100, "reversible_max_pebbles": -5}, pebbles.PebblesValueError,
     "reversible_max_pebbles=-5"),
])
def test_tradeoff_arguments_are_checked(kwargs, error, words):
    with pytest.raises(error, match=words):
        pebbles.tradeoff_curves(**kwargs)


def test_smallest_n_has_curves_and_a_ratio():
    c = pebbles.tradeoff_curves(2)
    assert c["treeverse"][0].tolist() == [0.5]  # one step, one state
    _, (qx, _) = pebbles.memory_ratio(c | {"paper-treeverse": (np.array([]),) * 2})
    assert qx.size == 0


def test_tradeoff_command_refuses_one_step_in_one_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pebbles", "tradeoff", "-n", "1", "-o",
                          str(tmp_path / "t.png")], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "pass n=2 or more" in res.stderr and not list(tmp_path.iterdir())
