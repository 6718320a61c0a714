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
