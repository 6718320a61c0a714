"""A negative pebble budget is told the least budget that finishes, in one wording.

Each case names the least budget by the function's own rule, and that budget runs.
"""

from __future__ import annotations

import re

import pytest

import pebbles
from pebbles import InfeasibleBudgetError, min_pebbles
from pebbles.cli import in_flags

COSTS = {"write_cost": 1, "read_cost": 1}


def _least(call) -> int:
    """The least budget the refusal of ``call()`` (a budget of -3) names, checked against
    the one wording."""
    with pytest.raises(InfeasibleBudgetError) as info:
        call()
    least = info.value.minimum
    assert re.fullmatch(rf"budget=-3 must be >= {least}, the least budget that finishes "
                        rf"n=\d+ steps[^;]*; pass budget={least} or more", str(info.value))
    return least


@pytest.mark.parametrize("game", ["checkpoint", "inplace", "reversible"])
def test_min_forward_steps(game):
    least = _least(lambda: pebbles.min_forward_steps(20, -3, game))
    assert least == min_pebbles(20, game)
    assert pebbles.min_forward_steps(20, least, game) >= 20


def test_min_forward_steps_one_step_keeps_budget_zero():
    with pytest.raises(pebbles.PebblesValueError, match=r"^budget=-3 must be >= 0; pass "
                                                        r"budget=0 or more$"):
        pebbles.min_forward_steps(1, -3)
    assert pebbles.min_forward_steps(1, 0) == 0


@pytest.mark.parametrize("name", ["reversible_optimal", "reversible_min_steps"])
def test_reversible(name):
    func = getattr(pebbles, name)
    least = _least(lambda: func(20, -3))
    assert least == min_pebbles(20, "reversible")
    if name == "reversible_optimal":
        result = pebbles.simulate(func(20, least), 20, "reversible", least)
        assert result.forward_steps == pebbles.reversible_min_steps(20, least)
    else:
        assert func(20, least) >= 20


@pytest.mark.parametrize(("period", "inplace"), [(2, False), (1, False), (1, True), (7, False),
                                                 (20, False), (30, True)])
def test_periodic_disk(period, inplace):
    least = _least(lambda: pebbles.periodic_disk(20, -3, period, inplace=inplace))
    assert f"with period={period};" in _message(
        lambda: pebbles.periodic_disk(20, -3, period, inplace=inplace))
    game = "inplace" if inplace else "checkpoint"
    result = pebbles.simulate(pebbles.periodic_disk(20, least, period, inplace=inplace), 20,
                              game, least, **COSTS)
    assert result.time == pebbles.periodic_disk_time(20, least, period, inplace=inplace,
                                                     **COSTS)
    if least > 0:
        with pytest.raises(InfeasibleBudgetError, match=rf"budget={least} or more|>= {least}"):
            pebbles.periodic_disk(20, least - 1, period, inplace=inplace)


@pytest.mark.parametrize("period", [1, 2, 5])
def test_periodic_disk_time(period):
    least = _least(lambda: pebbles.periodic_disk_time(20, -3, period, **COSTS))
    assert pebbles.periodic_disk_time(20, least, period, **COSTS) >= 20


@pytest.mark.parametrize("period", [1, 2, 3])
def test_schedule_periodic_disk_names_a_budget_that_runs(period):
    """The registry's least (from the refusal of budget 0) is the one that runs."""
    least = _least(lambda: pebbles.schedule("periodic-disk", 20, budget=-3, period=period))
    pebbles.schedule("periodic-disk", 20, budget=least, period=period).simulate()


def test_periodic_disk_below_least_names_it():
    """Every rule a budget breaks names the least budget that runs, not its own bound."""
    with pytest.raises(InfeasibleBudgetError, match=r"budget=1 cannot reverse a period of 3 "
                                                    r"steps .*budget=3 or more") as info:
        pebbles.periodic_disk(10, 1, 3)
    assert info.value.minimum == 3
    pebbles.schedule("periodic-disk", 10, budget=3, period=3).simulate()


@pytest.mark.parametrize("name", ["two_level", "two_level_steps", "min_total_time",
                                  "best_period"])
def test_two_level(name):
    func = getattr(pebbles, name)
    least = _least(lambda: func(20, -3, **COSTS))
    assert least == min_pebbles(20, "checkpoint")
    out = func(20, least, **COSTS)
    if name == "two_level":
        pebbles.simulate(out, 20, "checkpoint", least, **COSTS)


def _message(call) -> str:
    with pytest.raises(pebbles.PebblesError) as info:
        call()
    return str(info.value)


def test_in_flags_drops_a_unit_that_repeats_the_flag():
    err = in_flags(InfeasibleBudgetError("budget=-3 must be >= 2, the least budget that "
                                         "finishes n=20 steps; pass budget=2 or more", 2),
                   "--steps")
    assert str(err) == ("--pebbles -3 must be >= 2, the least budget that finishes --steps 20;"
                        " pass --pebbles 2 or more")
    err = in_flags(InfeasibleBudgetError("budget=-3 must be >= 2, the least budget that "
                                         "finishes n=20 steps; pass budget=2 or more", 2))
    assert "finishes -n 20;" in str(err)


def test_visualize_pml(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("numba")
    from visualize.__main__ import main

    argv = ["pml", "--panel", "gradient", "--size", "32", "--steps", "20", "-o",
            str(tmp_path / "g.png")]
    least = min_pebbles(20, "checkpoint")
    for bad in ("-3", "0"):
        assert main([*argv, "--pebbles", bad]) == 2
        err = capsys.readouterr().err
        assert f"use --pebbles {least} or more" in err or f"pass --pebbles {least} or more" in err
    assert main([*argv, "--pebbles", "-3"]) == 2
    err = capsys.readouterr().err
    assert (f"--pebbles -3 must be >= {least}, the least budget that finishes --steps 20; "
            f"pass --pebbles {least} or more") in err
    pebbles.schedule("treeverse", 20, budget=least).simulate()  # the schedule it makes


def test_solvers_pml_wording(capsys):
    pytest.importorskip("numba")
    from solvers import pml

    assert pml.main(["gradient", "--nx", "20", "--ny", "20", "--steps", "20", "--method",
                     "treeverse", "--pebbles", "-3"]) == 2
    err = capsys.readouterr().err
    assert "the least budget that finishes --steps 20; pass --pebbles 2 or more" in err
    assert "--steps 20 steps" not in err
