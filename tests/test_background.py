"""Two-level schedules for stores written in the background (pebbles._background)."""

from __future__ import annotations

import json
import random

import pytest

import pebbles
from pebbles import Move, simulate
from pebbles import MoveKind as K
from pebbles._background import (
    PRICES,
    BackgroundClock,
    background_time,
    background_two_level,
)
from pebbles._twolevel import periodic_disk, periodic_disk_time, two_level


def game(inplace):
    return "inplace" if inplace else "checkpoint"


def paints(moves):
    return sum(m.kind == K.PAINT for m in moves)


def test_a_store_waits_only_for_a_full_writer():
    # three stores back to back, writes of 4: with room for one state the second and
    # third store wait for the write before them; with room for three none waits
    moves = [Move(K.FORWARD, 0, 1), Move(K.STORE, 1), Move(K.PLACE, 2), Move(K.STORE, 2),
             Move(K.PLACE, 3), Move(K.STORE, 3), Move(K.PLACE, 4)]
    assert background_time(moves, write_cost=4, read_cost=0, queue=3) == 4
    # store 2 at t=2 waits for write 1 (done at 5); store 3 at t=6 waits for write 2 (9)
    assert background_time(moves, write_cost=4, read_cost=0, queue=1) == 10
    # a discard waits for its write, a load also pays the read
    assert background_time([*moves, Move(K.DISCARD, 3)], write_cost=4, read_cost=0,
                           queue=3) == 13
    assert background_time([*moves, Move(K.LOAD, 2)], write_cost=4, read_cost=0.5,
                           queue=3) == 9.5
    assert background_time([Move(K.PAINT, 0)] * 3, write_cost=1, read_cost=1,
                           backward_cost=2.5) == 7.5


def test_clock_times_a_stream_as_the_simulator_walks_it():
    """One walk gives the simulator's counts and the background time: the moves pass
    through unchanged, and the clock's time is background_time's, after every move."""
    moves = list(two_level(200, 4, write_cost=5, read_cost=1.5, inplace=True))
    kw = {"write_cost": 20, "read_cost": 1.5, "backward_cost": 2.0, "queue": 1}
    clock = BackgroundClock(**kw)
    r = simulate(clock.timed(iter(moves)), 200, "inplace", 4, write_cost=20, read_cost=1.5)
    assert r == simulate(moves, 200, "inplace", 4, write_cost=20, read_cost=1.5)
    assert clock.time == background_time(moves, **kw) > r.forward_steps
    clock = BackgroundClock(**kw)
    for i, m in enumerate(clock.timed(moves[:60])):
        assert m is moves[i] and clock.time == background_time(moves[:i + 1], **kw)
    list(clock.timed(moves))  # a second stream on the clock is timed from 0
    assert clock.time == background_time(moves, **kw)
    with pytest.raises(pebbles.PebblesValueError, match="queue=0"):
        BackgroundClock(write_cost=1, read_cost=1, queue=0)


@pytest.mark.parametrize("inplace", [False, True])
def test_hidden_writes_cost_nothing(inplace):
    """Periodic disk checkpoints: a write no longer than the walk to the next one is
    hidden, so the time is the serial time with free writes."""
    n, s, period = 120, 4, 20
    moves = list(periodic_disk(n, s, period, inplace=inplace))
    for w in (1, 10, period):
        t = background_time(moves, write_cost=w, read_cost=1.5, backward_cost=2)
        free = periodic_disk_time(n, s, period, write_cost=0, read_cost=1.5, inplace=inplace)
        assert t == free + 2 * paints(moves), w
    # a write longer than the walk shows: the last period's reversal waits for none of
    # them, but the next load waits for its state
    slow = background_time(moves, write_cost=200, read_cost=1.5, backward_cost=2)
    assert slow > free + 2 * paints(moves)


@pytest.mark.parametrize("seed", range(6))
def test_between_free_writes_and_serial_writes(seed):
    """The background time lies between the serial time with free writes and the serial
    time (the simulator's) with the writes priced in full."""
    rng = random.Random(seed)
    n, s = rng.randint(20, 300), rng.randint(2, 6)
    inplace, w, r = rng.random() < 0.5, rng.choice([0.5, 3, 20, 80]), rng.choice([0.5, 2])
    disk = rng.choice([None, 3, 10]) if n <= 120 else None
    moves = list(two_level(n, s, disk, write_cost=w / 4, read_cost=r, inplace=inplace))
    sim = simulate(moves, n, game(inplace), s, disk_budget=disk, write_cost=w, read_cost=r)
    bc = rng.choice([1.0, 2.3])
    t = background_time(moves, write_cost=w, read_cost=r, backward_cost=bc,
                        queue=rng.randint(1, 3))
    low = sim.forward_steps + r * sim.reads + bc * sim.backward_steps
    assert low <= t <= sim.time + bc * sim.backward_steps


@pytest.mark.parametrize(("n", "s", "disk", "w", "inplace"),
                         [(2000, 4, None, 60, True), (2000, 4, None, 50, False),
                          (300, 3, 5, 12, False), (500, 5, None, 0, True)])
def test_background_choice_is_legal_and_no_slower(n, s, disk, w, inplace):
    priced = list(two_level(n, s, disk, write_cost=w, read_cost=1.2, inplace=inplace))
    chosen = list(background_two_level(n, s, disk, write_cost=w, read_cost=1.2,
                                       inplace=inplace))
    r = simulate(chosen, n, game(inplace), s, disk_budget=disk, write_cost=w, read_cost=1.2)
    assert r.backward_steps == n and r.peak_pebbles <= s
    assert (disk is None or r.peak_disk <= disk)
    tb = [background_time(m, write_cost=w, read_cost=1.2) for m in (priced, chosen)]
    assert tb[1] <= tb[0]
    if w == 0:  # every price is the same: the DP's stream itself
        assert chosen == priced
    cheapest = list(two_level(n, s, disk, write_cost=w * PRICES[-1], read_cost=1.2,
                              inplace=inplace))
    assert tb[1] <= background_time(cheapest, write_cost=w, read_cost=1.2)


def test_writes_hidden_by_the_walks_buy_fewer_steps():
    """4 memory states, writes of 60 steps, 2000 steps in-place: the DP priced in full
    writes 28 times; the background choice writes more and walks about 1500 steps less."""
    priced = simulate(two_level(2000, 4, write_cost=60, read_cost=1.2, inplace=True), 2000,
                      "inplace", 4)
    chosen = simulate(background_two_level(2000, 4, write_cost=60, read_cost=1.2,
                                           inplace=True), 2000, "inplace", 4)
    assert chosen.writes > priced.writes
    assert chosen.forward_steps < priced.forward_steps - 1000


def test_registry_and_command_line(capsys):
    s = pebbles.schedule("two-level", 2000, budget=4, write_cost=60, read_cost=1.2,
                         inplace=True, background_writes=True)
    assert "--background-writes" in str(s)
    assert list(s) == list(background_two_level(2000, 4, write_cost=60, read_cost=1.2,
                                                inplace=True))
    plain = pebbles.schedule("two-level", 2000, budget=4, write_cost=60, read_cost=1.2,
                             inplace=True)
    assert "--background-writes" not in str(plain)
    from pebbles.cli import main

    argv = ["schedule", "two-level", "-n", "2000", "--pebbles", "4", "--inplace",
            "--write-cost", "60", "--read-cost", "1.2", "--format", "summary"]
    assert main([*argv, "--background-writes"]) == 0
    background = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    priced = json.loads(capsys.readouterr().out)
    assert background["forward_steps"] < priced["forward_steps"]
    assert background["writes"] > priced["writes"]


def test_bad_input_is_named():
    with pytest.raises(pebbles.PebblesValueError, match="queue=0"):
        background_time([], write_cost=1, read_cost=1, queue=0)
    with pytest.raises(pebbles.PebblesTypeError, match="background_writes='yes'"):
        pebbles.schedule("two-level", 10, budget=3, write_cost=1, read_cost=1,
                         background_writes="yes")
    with pytest.raises(pebbles.PebblesValueError, match="write_cost"):
        list(background_two_level(10, 3, write_cost=-1, read_cost=1))
    with pytest.raises(pebbles.PebblesValueError, match="backward_cost=nan"):
        background_time([], write_cost=1, read_cost=1, backward_cost=float("nan"))
    with pytest.raises(pebbles.PebblesTypeError, match="read_cost='1'"):
        background_time([], write_cost=1, read_cost="1")
    with pytest.raises(pebbles.PebblesValueError, match="queue=0"):
        list(background_two_level(10, 3, write_cost=1, read_cost=1, queue=0))


def test_plan_costs_two_level_by_background_time(capsys, monkeypatch):
    kw = dict(write_cost=60, read_cost=1.2, backward_cost=2.3)
    priced = pebbles.plan(2000, 4, **kw)
    back = pebbles.plan(2000, 4, **kw, background_writes=True)
    two = [c for c in back.candidates if c.method == "two-level"]
    assert len(two) == 2 and all(dict(c.schedule.options)["background_writes"] for c in two)
    for c in two:
        moves = list(c.schedule)
        assert c.cost == background_time(moves, write_cost=60, read_cost=1.2,
                                         backward_cost=2.3)
        assert c.forward_steps == simulate(moves, 2000, c.game, 4).forward_steps
        same = next(p for p in priced.candidates if p.method == "two-level"
                    and p.game == c.game)
        assert c.cost <= background_time(list(same.schedule), write_cost=60, read_cost=1.2,
                                          backward_cost=2.3)
    assert back.best.method == "two-level" and back.best.cost < priced.best.cost
    from pebbles.cli import main

    assert main(["plan", "-n", "2000", "--pebbles", "4", "--write-cost", "60",
                 "--read-cost", "1.2", "--background-writes"]) == 0
    assert "recommended: pebbles schedule two-level" in capsys.readouterr().out
    import pebbles._planner as planner

    monkeypatch.setattr(planner, "BACKGROUND_MAX_N", 100)
    far = pebbles.plan(200, 4, **kw, background_writes=True)
    assert any("background writes" in s for s in far.skipped)
    assert not any(dict(c.schedule.options).get("background_writes") for c in far.candidates)
    with pytest.raises(pebbles.PebblesTypeError, match="background_writes=1"):
        pebbles.plan(200, 4, **kw, background_writes=1)


@pytest.mark.parametrize("n,s,w,r,disk,bc", [(8, 1, 3, 0.5, 2, 0), (50, 2, 60, 1, None, 20)])
def test_plan_picks_the_write_price_for_its_backward_cost(n, s, w, r, disk, bc):
    """The background schedule's price was chosen for backward_cost=1 whatever the plan
    was given: a schedule of another price was faster under the plan's own model."""
    p = pebbles.plan(n, s, write_cost=w, read_cost=r, disk_budget=disk, backward_cost=bc,
                     background_writes=True)
    for c in (c for c in p.candidates if c.method == "two-level"):
        best = min(background_time(two_level(n, s, disk, write_cost=w * f, read_cost=r,
                                             inplace=c.game == "inplace"),
                                   write_cost=w, read_cost=r, backward_cost=bc)
                   for f in PRICES)
        assert c.cost == best, (c.game, c.cost, best)
        assert dict(c.schedule.options)["backward_cost"] == bc
    flags = p.best.schedule.option_flags()
    assert ("--backward-cost" in flags) == (bc != 1 and p.best.method == "two-level")
    with pytest.raises(pebbles.PebblesValueError, match=r"^backward_cost=2\.0 changes only the "
                                                       r"schedule of background_writes=True"):
        pebbles.schedule("two-level", 10, budget=2, write_cost=1, read_cost=1,
                         backward_cost=2.0)
