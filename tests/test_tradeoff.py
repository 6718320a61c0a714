"""pebbles.tradeoff_curves: the numbers of the trade-off plot, online curve included."""

from __future__ import annotations

import numpy as np

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
