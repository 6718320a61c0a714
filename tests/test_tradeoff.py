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
    assert "-n 1 has no trade-off" in res.stderr and "pass -n 2 or more" in res.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("n", [100, 1000, 10**4])
def test_memory_ratio_uses_the_fewest_treeverse_pebbles_at_each_bennett_point(n):
    """The sampled treeverse budgets skip up to 25 %: the ratio took the next sampled S
    (0.82 at n = 10^4 just below T'/T = 2); the exact fewest S never lets Bennett win."""
    c = pebbles.tradeoff_curves(n, paper_max_n=10)
    (ex, er), _ = pebbles.memory_ratio(c)
    assert ex.size >= 5
    least = pebbles.min_pebbles(n, "checkpoint")
    for x, r, sb in zip(ex, er, c["bennett"][1][-len(ex):], strict=True):
        s = int(round(sb / r))  # the treeverse S the ratio divides by
        assert pebbles.min_forward_steps(n, s) / n <= x * (1 + 1e-12)
        assert s == least or pebbles.min_forward_steps(n, s - 1) / n > x * (1 + 1e-12)
    assert er.min() >= 1.0


def test_curves_are_read_only_and_arguments_checked_before_the_cache():
    c = pebbles.tradeoff_curves(50)
    with pytest.raises(ValueError, match="read-only"):
        c["treeverse"][1][0] = 1
    with pytest.raises(pebbles.PebblesTypeError, match=r"n=\[5\] must be an integer"):
        pebbles.tradeoff_curves([5])


def test_online_overhead_refuses_budgets_too_slow_to_simulate(tmp_path, capsys):
    # S = 2 costs about n^2 / 4 steps a point: -n 10^5 ran for many minutes
    from pebbles.cli import main

    out = tmp_path / "o.png"
    assert main(["tradeoff", "-n", "100000", "--online-overhead", "2", "10",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--online-overhead 2 with -n 100000" in err and "larger budgets" in err
    assert not out.exists()


def test_online_overhead_refusals_are_one_line_and_name_the_n_given(tmp_path, capsys):
    from pebbles.cli import main

    out = str(tmp_path / "o.png")
    assert main(["tradeoff", "-n", "1000000", "--online-overhead", "2", "-o", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "with -n 1000000 (plotted up to n = 100000)" in err
    assert main(["tradeoff", "-n", "100", "--online-overhead", "2", "--paper-max-n", "50",
                 "-o", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--paper-max-n: not used with --online-overhead" in err


def test_online_overhead_marks_a_budget_that_cannot_finish_the_checkpoint_game(tmp_path,
                                                                               capsys):
    """S = 1 finishes the checkpoint game only up to n = 2: its curve stops there, the
    legend and a note on stderr say so; the in-place curve is whole."""
    import visualize
    from pebbles.cli import main

    fig = visualize.draw_online_overhead((1, 2, 3, 10, 100), (1, 3))
    labels = {ln.get_gid(): ln.get_label() for ln in fig.axes[0].lines if ln.get_gid()}
    assert labels["online-1-checkpoint"] == "S = 1, checkpoint game (cannot finish n >= 3)"
    assert labels["online-1-in-place"] == "S = 1, in-place game"
    assert labels["online-3-checkpoint"] == "S = 3, checkpoint game"
    out = tmp_path / "o.png"
    assert main(["tradeoff", "-n", "100", "--online-overhead", "1", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and out.exists()
    assert ("--online-overhead 1: S = 1 cannot finish the checkpoint game past n = 2 (it "
            "needs S >= 2: pebbles.min_pebbles)" in err and "pass S >= 2" in err)
