"""Edges of the core: the reach of cell n, the game of expand, n past int64, frozen
costs and programs, and arguments refused with the library's errors."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

import pebbles
from pebbles import (
    Move,
    MoveKind,
    PebblesTypeError,
    PebblesValueError,
    _registry,
    forward,
    load,
    move,
    place,
    remove,
    simulate,
    store,
)


@pytest.fixture(params=[False, True], ids=["python", "compiled"])
def compiled(request, monkeypatch) -> bool:
    """Run the rule loop as plain Python, or compiled (when Numba is installed)."""
    if request.param:
        pytest.importorskip("numba")
        monkeypatch.setattr("pebbles._simulator.JIT_MIN_MOVES", 1)
    else:
        monkeypatch.setattr("pebbles._simulator.JIT_MIN_MOVES", 10**12)
    return request.param


@pytest.mark.parametrize(("moves", "game", "reach"), [
    ([place(1), place(2), place(3)], "checkpoint", 3),
    ([forward(0, 3)], "checkpoint", 3),
    ([place(1), forward(1, 3)], "checkpoint", 3),
    ([place(1), move(2), move(3)], "inplace", 3),
    ([forward(0, 3), store(3), remove(3), load(3)], "checkpoint", 3),
    ([place(1), place(2), place(3), store(3), remove(3), load(3)], "checkpoint", 3),
    ([forward(0, 2), store(2), remove(2)], "checkpoint", None),
    ([place(1), forward(1, 3)], "inplace", 3),
])
def test_first_reach_n_counts_every_move_that_brings_a_pebble_to_n(
        moves, game, reach, compiled) -> None:
    r = simulate(pebbles.encode(moves), 3, game, check_end=False)
    assert r.first_reach_n == reach


def test_first_reach_n_of_a_load_is_the_steps_taken_by_then(compiled) -> None:
    moves = [forward(0, 2), store(2), remove(2), forward(0, 1), load(2), place(3)]
    assert simulate(pebbles.encode(moves), 3, check_end=False).first_reach_n == 4


def test_first_reach_n_of_the_reversible_game_is_unchanged(compiled) -> None:
    r = simulate(pebbles.encode(pebbles.bennett(16, 2)), 16, "reversible")
    assert r.first_reach_n == 41


def test_expand_defaults_to_the_game_of_a_schedule() -> None:
    s = pebbles.schedule("treeverse", 12, budget=2, inplace=True)
    assert list(pebbles.expand(s)) == list(pebbles.expand(s, s.game))
    assert simulate(pebbles.expand(s), 12, s.game, 2).peak_states == 2
    plain = [forward(0, 3)]
    assert list(pebbles.expand(plain)) == list(pebbles.expand(plain, "checkpoint"))


@pytest.mark.parametrize("n", [2**63, 2**64, 2**70])
def test_n_past_int64_is_refused_naming_n(n) -> None:
    calls = (lambda: simulate([], n, check_end=False), lambda: pebbles.lower([], n),
             lambda: pebbles.schedule("treeverse", n, budget=3),
             lambda: pebbles.candidates(n, 3))
    for call in calls:
        with pytest.raises(PebblesValueError, match=rf"^n={n} names a cell outside int64"):
            call()


def test_n_at_the_int64_limit_is_played() -> None:
    n = 2**63 - 1
    r = simulate([place(1), forward(1, n)], n, check_end=False)
    assert (r.forward_steps, r.first_reach_n) == (n, n)


def test_chain_costs_keep_a_read_only_copy_of_the_arrays() -> None:
    f = np.ones(3)
    c = pebbles.ChainCosts(f, np.ones(3), np.ones(4), graph=np.ones(3))
    h = hash(c)
    f[0] = -5.0
    assert c.forward[0] == 1.0 and hash(c) == h
    assert simulate(pebbles.store_all(3), 3, costs=c).time == 5.0
    for name in ("forward", "backward", "sizes", "graph"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(c, name)[0] = 2.0


def test_chain_costs_refuse_complex_numbers() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PebblesTypeError, match=r"ChainCosts.forward=.*complex"):
            pebbles.ChainCosts(np.array([1 + 5j, 2 + 0j]), np.ones(2), np.ones(3))
        with pytest.raises(PebblesTypeError, match=r"ChainCosts.sizes=.*complex"):
            pebbles.ChainCosts(np.ones(2), np.ones(2), np.ones(3, dtype=complex))


def test_a_slot_program_keeps_read_only_rows() -> None:
    p = pebbles.lower(pebbles.schedule("treeverse", 20, budget=4))
    h = hash(p)
    with pytest.raises(ValueError, match="read-only"):
        p.ops[0, 0] = 3
    ops = p.ops.copy()
    q = pebbles.SlotProgram(ops, p.n, p.game, p.nslots, p.forward_steps, p.backward_steps,
                            p.peak_states)
    ops[0, 0] = 3
    assert q == p and hash(q) == h and not q.ops.flags.writeable
    cut = dataclasses.replace(p, ops=p.ops[1:])  # a read-only view: kept as it is
    assert np.shares_memory(cut.ops, p.ops)
    tape = pebbles.lower(pebbles.sequential_segments(4, 2), 4)
    assert not tape.in_memory().ops.flags.writeable


def test_sequential_segments_checks_kept() -> None:
    with pytest.raises(PebblesTypeError, match=r"kept='False' must be True or False"):
        pebbles.sequential_segments(4, 2, kept="False")
    assert list(pebbles.sequential_segments(4, 2, kept=np.bool_(False))) == list(
        pebbles.sequential_segments(4, 2, kept=False))


@pytest.mark.parametrize("who", [pebbles.predicted_steps, _registry.predicted_moves])
def test_predicted_counts_need_a_schedule(who) -> None:
    with pytest.raises(PebblesTypeError, match=rf"^{who.__name__}\(s=.*needs a pebbles.Schedule"):
        who([place(1)])


def test_schedule_simulate_refuses_what_the_schedule_fixes() -> None:
    s = pebbles.schedule("treeverse", 10, budget=3)
    for key in ("n", "moves"):
        with pytest.raises(PebblesTypeError, match=rf"Schedule.simulate\({key}=.*fixes"):
            s.simulate(**{key: 11})
    assert s.simulate(budget=4).forward_steps == s.simulate().forward_steps


@pytest.mark.parametrize("bad", [(0, True, -1), (5, 0, True), (5, False, 2)])
def test_a_bool_is_no_cell(bad) -> None:
    stream = [place(1), bad]
    for call in (lambda: simulate(stream, 2, check_end=False), lambda: pebbles.encode(stream),
                 lambda: pebbles.lower(stream, 2)):
        with pytest.raises(PebblesTypeError, match=r"move #1 of the stream.*not a bool"):
            call()
    with pytest.raises(PebblesTypeError):
        simulate(np.array([[0, 1, -1]], dtype=bool), 2)


def test_format_move_writes_only_what_parse_move_reads_back() -> None:
    for m in (Move(MoveKind.FORWARD, 0), Move(MoveKind.FORWARD, 3, 2),
              Move(MoveKind.PLACE, -1)):
        with pytest.raises(PebblesValueError, match="no text form that parse_move reads"):
            pebbles.format_move(m)
    with pytest.raises(PebblesTypeError, match="got bool"):
        pebbles.format_move(Move(MoveKind.PLACE, True))
    assert str(Move(MoveKind.FORWARD, 0)) == "forward 0 -1"  # for messages, as it stands
    m = Move(MoveKind.FORWARD, np.int64(2), np.int64(5))
    assert pebbles.parse_move(pebbles.format_move(m)) == forward(2, 5)


def test_an_illegal_move_without_a_text_form_is_still_named() -> None:
    with pytest.raises(pebbles.IllegalMoveError, match=r"move #0 \(forward 3 2\)"):
        simulate(np.array([[5, 3, 2]]), 4)


def test_encode_keeps_its_rows() -> None:
    moves = list(pebbles.decode(pebbles.schedule("treeverse", 3000, budget=5).encode()))
    arr = pebbles.encode(moves)
    assert arr.tolist() == [list(m) for m in moves]
    assert pebbles.encode([]).shape == (0, 3)


def test_a_program_over_a_read_only_view_of_writable_rows_keeps_its_own_copy():
    """A read-only view of an array someone can still write is copied: the program's
    rows, equality and hash cannot change behind it."""
    from dataclasses import replace

    p = pebbles.lower(pebbles.schedule("treeverse", 20, budget=4))
    base = p.ops.copy()
    view = base.view()
    view.flags.writeable = False
    q = replace(p, ops=view)
    before = hash(q)
    base[0, 0] += 1
    assert hash(q) == before and q == p
    own = replace(p, ops=p.ops[:])  # a view of read-only rows: no copy
    assert np.shares_memory(own.ops, p.ops)


def test_costs_beyond_any_float_are_the_librarys_errors():
    """An int or Fraction cost beyond any float raised a bare OverflowError (float()), not
    a ValueError naming the argument; a backward_cost whose n backward steps overflow gave
    every candidate cost inf."""
    from fractions import Fraction

    for kw in (dict(backward_cost=10**400), dict(backward_cost=-10**400),
               dict(backward_cost=Fraction(10**400, 3)),
               dict(write_cost=10**400, read_cost=1)):
        name = next(iter(kw))
        with pytest.raises(pebbles.PebblesValueError, match=rf"^{name}=.{{1,60}} must be a "
                                                            rf"finite number >= 0"):
            pebbles.plan(100, 5, **kw)
    with pytest.raises(pebbles.PebblesValueError, match=r"^write_cost=.* must be a finite"):
        pebbles.simulate(pebbles.treeverse(10, 3), 10, "checkpoint", 3, write_cost=10**400)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^backward_cost=1e\+308 with n=10: .* beyond any float; pass a "
                             r"backward_cost below 1.8e\+307"):
        pebbles.plan(10, 5, backward_cost=1e308)
    assert all(math.isfinite(c.cost) for c in pebbles.plan(10, 5, backward_cost=1e300)
               .candidates)
