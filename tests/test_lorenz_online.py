"""Tests of :func:`solvers.lorenz.gradient_until_crossing` (online checkpointing, Numba)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pebbles
from solvers import lorenz as lz

THETA = np.array(lz.DEFAULT_THETA)


def trajectory_x(n, x0=lz.DEFAULT_X0, dt=lz.DEFAULT_DT):
    """x_1 .. x_n, step by step with the compiled single step."""
    y, xs = np.array(x0, dtype=float), []
    for _ in range(n):
        y = lz.rk4_step(y, THETA, dt)
        xs.append(y[0])
    return np.array(xs)


@pytest.mark.parametrize(("level", "budget", "dt", "inplace", "beyond"), [
    (10.0, 5, lz.DEFAULT_DT, False, "greedy"),      # n = 98 > beta(5, 2): greedy phase
    (18.5, 4, 1e-4, False, "greedy"),               # n = 3756
    (18.5, 6, 1e-4, True, "greedy"),                # in-place game: band, then greedy
    (18.5, 3, 1e-4, False, "wang-moin"),
    (-5.0, 3, lz.DEFAULT_DT, False, "greedy"),      # x_1 >= -5: stops at once
])
def test_gradient_equals_offline_bit_for_bit(level, budget, dt, inplace, beyond):
    c = lz.gradient_until_crossing(level, budget, dt=dt, inplace=inplace, beyond=beyond)
    n, game = c.n, "inplace" if inplace else "checkpoint"
    assert c.crossed
    xs = trajectory_x(n, dt=dt)
    assert xs[-1] >= level and (xs[:-1] < level).all()  # the first crossing
    assert c.result.loss == xs[-1]
    tree = lz.replay_lorenz(pebbles.schedule("treeverse", n, budget=budget, inplace=inplace),
                            dt=dt)
    every = lz.replay_lorenz(pebbles.schedule("store-all", n), dt=dt)
    assert c.result.loss == tree.loss == every.loss
    assert np.array_equal(c.result.gradient, tree.gradient)
    assert np.array_equal(c.result.gradient, every.gradient)
    stream = list(pebbles.online(n, budget, inplace=inplace, beyond=beyond))
    sim = pebbles.simulate(stream, n, game, budget=budget)
    prog = pebbles.lower(stream, n, game=game)
    # the search's n steps, then the online program (its steps and the seed's step)
    assert c.result.forward_steps == n + prog.forward_steps == n + sim.forward_steps + 1
    assert c.result.backward_steps == sim.backward_steps == n
    assert c.result.peak_states == prog.peak_states <= budget + 1


def test_gradient_matches_forward_mode():
    c = lz.gradient_until_crossing(15.0, 4)
    f = lz.gradient_forward(n=c.n)
    assert f.loss == c.result.loss
    assert np.allclose(c.result.gradient, f.gradient, rtol=1e-10, atol=0)


def test_max_steps_guard():
    c = lz.gradient_until_crossing(100.0, 4, max_steps=300)
    assert (c.n, c.crossed) == (300, False)
    assert (trajectory_x(300) < 100.0).all()
    g = lz.replay_lorenz(pebbles.schedule("treeverse", 300, budget=4))
    assert np.array_equal(c.result.gradient, g.gradient)
    assert lz.gradient_until_crossing(10.0, 4, max_steps=98).crossed  # crosses at step 98
    assert not lz.gradient_until_crossing(10.0, 4, max_steps=97).crossed


@pytest.mark.parametrize(("level", "budget"), [(10.0, 3), (18.0, 6)])
def test_agrees_with_generic_replay_until(level, budget):
    """The generic online executor finds the same n and the same gradient, bit for bit."""
    c = lz.gradient_until_crossing(level, budget)
    dt = lz.DEFAULT_DT
    r = pebbles.replay_until(
        lambda i, s: lz.rk4_step(s, THETA, dt),
        lambda i, s, g: lz.rk4_vjp(s, THETA, dt, g),
        lambda s: np.array([1.0, 0.0, 0.0]),
        np.array(lz.DEFAULT_X0), lambda i, s: s[0] >= level, budget,
        loss=lambda s: float(s[0]))
    assert r.n == c.n and r.loss == c.result.loss
    assert np.array_equal(np.concatenate([r.grad_s0, r.grad_theta]), c.result.gradient)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"level": float("nan"), "budget": 4}, "level"),
    ({"level": 1.0, "budget": 1}, "budget=1"),
    ({"level": 1.0, "budget": 0, "inplace": True}, "budget=0"),
    ({"level": 1.0, "budget": 4, "max_steps": 0}, "max_steps=0"),
    ({"level": 1.0, "budget": 4, "beyond": "best"}, "beyond"),
    ({"level": 1.0, "budget": 4, "x0": (1.0, 0.0)}, "x0"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(pebbles.PebblesValueError, match=match):
        lz.gradient_until_crossing(**kwargs)


def test_bad_inplace_type():
    with pytest.raises(pebbles.PebblesTypeError, match="inplace"):
        lz.gradient_until_crossing(1.0, 4, inplace=1)


def test_cli_until_x(capsys):
    assert lz.main(["gradient", "--until-x", "10", "--method", "online", "--pebbles", "5",
                    "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    c = lz.gradient_until_crossing(10.0, 5)
    assert record["steps"] == c.n and record["crossed"] is True
    assert record["gradient"] == c.result.gradient.tolist()
    assert record["forward_steps"] == c.result.forward_steps


def test_cli_until_x_takes_beyond(capsys):
    """--beyond reaches the online schedule of --until-x (wang-moin's steps differ)."""
    argv = ["gradient", "--until-x", "10", "--method", "online", "--pebbles", "3", "--json"]
    assert lz.main([*argv, "--beyond", "wang-moin"]) == 0
    record = json.loads(capsys.readouterr().out)
    c = lz.gradient_until_crossing(10.0, 3, beyond="wang-moin")
    greedy = lz.gradient_until_crossing(10.0, 3)
    assert c.result.forward_steps != greedy.result.forward_steps
    assert record["forward_steps"] == c.result.forward_steps
    assert record["gradient"] == c.result.gradient.tolist()


def test_cli_until_x_memory_refusal_words_the_early_stop(monkeypatch, capsys):
    """With --until-x the estimate is of all --steps: the message says so, and suggests no
    --method forward (refused with --until-x); without it the advice stays."""
    monkeypatch.setattr(lz, "available_memory", lambda: 8 * 10**9)
    argv = ["gradient", "--steps", "1000000000", "--method", "online", "--json"]
    assert lz.main([*argv, "--until-x", "18.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--method forward" not in err
    assert err.startswith("python -m solvers.lorenz: error: --method online --until-x 18.5 "
                          "--steps 1000000000 needs about 456 GB of memory if x does not "
                          "reach 18.5 sooner (")
    assert err.endswith("pass --force to run anyway, or use fewer --steps (the most steps "
                        "the run takes)\n")
    assert lz.main(argv) == 2
    assert "or --method forward (constant memory)\n" in capsys.readouterr().err


def test_cli_until_x_needs_online(capsys):
    assert lz.main(["gradient", "--until-x", "10", "--method", "treeverse"]) == 2
    assert "--method online" in capsys.readouterr().err


@pytest.mark.parametrize(("module", "takes"), [
    ("lorenz", "in-place game (methods treeverse, online)"),
    ("pml", "in-place game and in-place step (methods treeverse, online, two-level, "
            "periodic-disk)")])
def test_inplace_help_names_every_method_that_takes_it(module, takes):
    """The --inplace help names every method that takes it: online too, not only treeverse."""
    import importlib

    mod = importlib.import_module(f"solvers.{module}")
    sub = mod._parser()._subparsers._group_actions[0].choices["gradient"]
    assert takes in " ".join(sub.format_help().split())
