"""The simulator's rules, one by one, and its behaviour on mutated streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pebbles
from pebbles import (
    IllegalMoveError,
    Move,
    MoveKind,
    PebblesTypeError,
    PebblesValueError,
    bennett,
    bennett_gradient,
    decode,
    encode,
    expand,
    format_move,
    forward,
    min_forward_steps,
    min_pebbles,
    move,
    paint,
    parse_move,
    periodic,
    place,
    recompute_all,
    remove,
    reversible_gradient,
    reversible_optimal,
    simulate,
    store_all,
    treeverse,
    treeverse_paper,
    unplace,
)


def _illegal(moves, n, game="checkpoint", budget=None, check_end=True) -> IllegalMoveError:
    with pytest.raises(IllegalMoveError) as info:
        simulate(moves, n, game, budget, check_end=check_end)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, PebblesValueError)
    return err


def _check_err(err: IllegalMoveError, index: int, bad: Move, *words: str) -> None:
    assert err.index == index
    assert err.move == bad
    text = str(err)
    assert str(bad) in text  # the move as it stands (format_move refuses what no text reads back)
    assert f"#{index}" in text
    assert err.rule in text
    for w in words:
        assert w in err.rule, (w, err.rule)


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize("game", ["checkpoint", "inplace", "reversible"])
def test_place_on_occupied_cell(game: str) -> None:
    err = _illegal([place(1), place(1)], 5, game, check_end=False)
    _check_err(err, 1, place(1), "already has a pebble")


@pytest.mark.parametrize("game", ["checkpoint", "inplace", "reversible"])
def test_place_without_predecessor(game: str) -> None:
    err = _illegal([place(1), place(3)], 5, game, check_end=False)
    _check_err(err, 1, place(3), "cell 2")


@pytest.mark.parametrize("game", ["checkpoint", "inplace", "reversible"])
@pytest.mark.parametrize("cell", [0, 6, -1, 100])
def test_place_outside_board(game: str, cell: int) -> None:
    bad = Move(MoveKind.PLACE, cell)  # place(-1) itself is refused at construction
    err = _illegal([bad], 5, game, check_end=False)
    _check_err(err, 0, bad)


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_paint_out_of_order(game: str) -> None:
    # cell 5 is painted at the start; paint 3 skips cell 4
    moves = [place(1), place(2), place(3), place(4), remove(1), paint(3)]
    err = _illegal(moves, 5, game, check_end=False)
    _check_err(err, 5, paint(3), "painted")
    # painting the same cell twice
    moves = [forward(0, 4), paint(4), paint(4)]
    err = _illegal(moves, 5, game, check_end=False)
    _check_err(err, 2, paint(4))
    # painting cell n (already painted)
    err = _illegal([paint(5)], 5, game, check_end=False)
    _check_err(err, 0, paint(5))


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_paint_without_pebble(game: str) -> None:
    err = _illegal([forward(0, 3), paint(4)], 5, game, check_end=False)
    _check_err(err, 1, paint(4), "pebble on cell 4")


def test_paint_cell_zero_needs_no_pebble_placed() -> None:
    r = simulate([paint(0)], 1, "checkpoint", budget=0)
    assert (r.forward_steps, r.backward_steps, r.peak_states) == (0, 1, 0)


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_remove_empty(game: str) -> None:
    err = _illegal([place(1), remove(2)], 5, game, check_end=False)
    _check_err(err, 1, remove(2), "no pebble")
    err = _illegal([remove(0)], 5, game, check_end=False)  # cell 0 is never emptied
    _check_err(err, 0, remove(0))


def test_move_cell_one() -> None:
    err = _illegal([move(1)], 5, "inplace", check_end=False)
    _check_err(err, 0, move(1), "cell 0")


def test_move_rules_inplace() -> None:
    r = simulate([place(1), move(2), move(3)], 5, "inplace", budget=1, check_end=False)
    assert r.forward_steps == 3 and r.peak_states == 1
    tr = simulate([place(1), move(2)], 5, "inplace", trace=True, check_end=False).trace
    assert tr[-1].pebbles == (2,)
    err = _illegal([place(1), move(3)], 5, "inplace", check_end=False)
    _check_err(err, 1, move(3), "cell 2")
    err = _illegal([place(1), place(2), move(2)], 5, "inplace", check_end=False)
    _check_err(err, 2, move(2), "already has a pebble")


def test_move_in_checkpoint_game() -> None:
    err = _illegal([place(1), move(2)], 5, "checkpoint", check_end=False)
    _check_err(err, 1, move(2), "move", "checkpoint")


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_unplace_in_checkpoint_games(game: str) -> None:
    err = _illegal([place(1), place(2), unplace(2)], 5, game, check_end=False)
    _check_err(err, 2, unplace(2), "unplace", game)


@pytest.mark.parametrize("bad", [remove(1), paint(1), move(2), forward(0, 1)])
def test_checkpoint_moves_in_reversible_game(bad: Move) -> None:
    moves = [place(1), place(2), bad]
    err = _illegal(moves, 2, "reversible", check_end=False)
    _check_err(err, 2, bad, "reversible")


def test_unplace_rules() -> None:
    r = simulate([place(1), place(2), unplace(1)], 2, "reversible", budget=2, check_end=False)
    assert r.forward_steps == 3
    err = _illegal([place(1), place(2), unplace(1), unplace(2)], 2, "reversible", check_end=False)
    _check_err(err, 3, unplace(2), "cell 1")
    err = _illegal([place(1), unplace(2)], 2, "reversible", check_end=False)
    _check_err(err, 1, unplace(2), "no pebble")


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_forward_over_pebble(game: str) -> None:
    err = _illegal([forward(0, 3), forward(0, 5)], 6, game, check_end=False)
    _check_err(err, 1, forward(0, 5), "walks over")
    err = _illegal([forward(0, 3), forward(0, 3)], 6, game, check_end=False)
    _check_err(err, 1, forward(0, 3))


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
@pytest.mark.parametrize("i,j", [(2, 2), (3, 2), (0, 0), (0, 7), (-1, 2)])
def test_forward_bad_range(game: str, i: int, j: int) -> None:
    bad = Move(MoveKind.FORWARD, i, j)
    err = _illegal([forward(0, 3), bad], 6, game, check_end=False)
    _check_err(err, 1, bad)


@pytest.mark.parametrize("make,args,error", [
    (place, (-1,), PebblesValueError), (place, ("3",), PebblesTypeError),
    (place, (2.0,), PebblesTypeError), (place, (True,), PebblesTypeError),
    (forward, (3, 3), PebblesValueError), (forward, (4, 2), PebblesValueError),
    (remove, (-2,), PebblesValueError), (pebbles.store, ("1",), PebblesTypeError),
])
def test_move_constructors_check_their_cells(make, args, error) -> None:
    with pytest.raises(error, match="=") as info:
        make(*args)
    assert "cell" in str(info.value) or "forward" in str(info.value)


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_forward_from_empty_cell(game: str) -> None:
    err = _illegal([forward(2, 4)], 6, game, check_end=False)
    _check_err(err, 0, forward(2, 4), "cell 2")


def test_budget_transient_walking_pebble() -> None:
    # checkpoint game: a walk of two or more cells holds two pebbles
    err = _illegal([forward(0, 5)], 5, "checkpoint", budget=1, check_end=False)
    _check_err(err, 0, forward(0, 5), "2 pebbles", "budget is 1")
    r = simulate([forward(0, 5)], 5, "checkpoint", budget=2, check_end=False)
    assert r.peak_states == 2 and r.forward_steps == 5
    # a one-cell walk holds one
    r = simulate([forward(0, 1)], 5, "checkpoint", budget=1, check_end=False)
    assert r.peak_states == 1
    # in-place game: one
    r = simulate([forward(0, 5)], 5, "inplace", budget=1, check_end=False)
    assert r.peak_states == 1 and r.forward_steps == 5
    # transient counts on top of stored pebbles
    err = _illegal([forward(0, 2), forward(2, 5)], 5, "checkpoint", budget=2, check_end=False)
    _check_err(err, 1, forward(2, 5), "3 pebbles")
    err = _illegal([forward(0, 2), forward(2, 5)], 5, "inplace", budget=1, check_end=False)
    _check_err(err, 1, forward(2, 5), "2 pebbles")


def test_budget_exceeded_by_place() -> None:
    err = _illegal([place(1), place(2), place(3)], 5, "reversible", budget=2, check_end=False)
    _check_err(err, 2, place(3), "budget is 2")


def test_budget_exact_schedule_fails_one_lower() -> None:
    r = simulate(treeverse(30, 4), 30, "checkpoint", budget=4)
    assert r.peak_states == 4
    with pytest.raises(IllegalMoveError) as info:
        simulate(treeverse(30, 4), 30, "checkpoint", budget=3)
    assert "budget is 3" in info.value.rule
    assert info.value.index >= 0


@pytest.mark.parametrize(
    "moves,n,game",
    [
        ([], 3, "checkpoint"),
        ([forward(0, 2), paint(2)], 3, "checkpoint"),
        ([place(1), place(2)], 3, "reversible"),
        ([], 1, "reversible"),
        ([place(1), place(2), place(3), unplace(3)], 3, "reversible"),
    ],
)
def test_end_condition_not_met(moves, n, game) -> None:
    err = _illegal(moves, n, game)
    assert err.index == -1
    assert err.move is None
    assert "end" in str(err)
    # the same stream passes when the end is not checked
    simulate(moves, n, game, check_end=False)


def test_not_a_move() -> None:
    with pytest.raises(PebblesTypeError) as info:
        simulate([place(1), "place 2"], 3, check_end=False)
    assert "#1" in str(info.value)
    with pytest.raises(PebblesValueError):  # an integer that is no kind: a value error
        simulate([(int(max(MoveKind)) + 1, 1, -1)], 3, check_end=False)


def test_bad_game_and_budget() -> None:
    with pytest.raises(PebblesValueError):
        simulate([], 3, "revers")
    with pytest.raises(PebblesValueError):
        simulate([], 3, budget=-1)
    with pytest.raises(PebblesTypeError):
        simulate([], 3, budget=2.0)


def test_moves_tuples_accepted() -> None:
    # plain tuples (kind, a, b) are moves too, as decode's rows are
    r = simulate([(int(MoveKind.FORWARD), 0, 2), (2, 2, -1), (1, 2, -1), (5, 0, 1), (2, 1, -1),
                  (1, 1, -1), (2, 0, -1)], 3, budget=2)
    assert (r.forward_steps, r.backward_steps) == (3, 3)


# --------------------------------------------------------------------------- mutations


def _legal_streams():
    return st.sampled_from(
        [
            ("tv-c", lambda: treeverse(23, 3), 23, "checkpoint", 3),
            ("tv-i", lambda: treeverse(23, 2, inplace=True), 23, "inplace", 2),
            ("tv-c5", lambda: treeverse(40, 5), 40, "checkpoint", 5),
            ("paper", lambda: treeverse_paper(20, 3), 20, "checkpoint", 4),
            ("bg", lambda: bennett_gradient(19, 3), 19, "checkpoint", None),
            ("ro", lambda: reversible_optimal(21, 6), 21, "reversible", 6),
            ("ro-g", lambda: reversible_gradient(reversible_optimal(13, 4), 13), 13,
             "checkpoint", 4),
            ("bennett", lambda: bennett(17, 2), 17, "reversible", None),
            ("store", lambda: store_all(12), 12, "checkpoint", None),
            ("periodic", lambda: periodic(17, 4), 17, "checkpoint", None),
            ("exp-i", lambda: expand(treeverse(15, 3, inplace=True), "inplace"), 15, "inplace", 3),
            ("exp-c", lambda: expand(treeverse(15, 3), "checkpoint"), 15, "checkpoint", 3),
        ]
    )


def _mutate(moves: list, op: str, pos: int, delta: int, which: int) -> list:
    out = list(moves)
    i = pos % len(out)
    if op == "drop":
        del out[i]
    elif op == "swap":
        if len(out) >= 2:
            i = min(i, len(out) - 2)
            out[i], out[i + 1] = out[i + 1], out[i]
    else:  # shift a cell index
        kind, a, b = out[i]
        if kind == MoveKind.FORWARD and which:
            out[i] = Move(kind, a, b + delta)
        else:
            out[i] = Move(kind, a + delta, b)
    return out


@settings(max_examples=300, deadline=None)
@given(
    case=_legal_streams(),
    op=st.sampled_from(["drop", "swap", "shift"]),
    pos=st.integers(0, 10**6),
    delta=st.sampled_from([-1, 1]),
    which=st.integers(0, 1),
)
def test_mutations_rejected(case, op, pos, delta, which) -> None:
    _, make, n, game, budget = case
    original = list(make())
    base = simulate(original, n, game, budget)
    mutated = _mutate(original, op, pos, delta, which)
    if mutated == original:
        return
    try:
        r = simulate(mutated, n, game, budget)
    except IllegalMoveError as err:
        assert err.index == -1 or 0 <= err.index < len(mutated)
        if err.index >= 0:
            assert tuple(err.move) == tuple(mutated[err.index])
        return
    # still legal: the result must be that of a finished game
    assert r.moves == len(mutated)
    if budget is not None:
        assert r.peak_states <= budget
    if game == "reversible":
        assert r.first_reach_n is not None
        assert r.backward_steps == 0
    else:
        assert r.backward_steps == n
    # no legal stream beats the optimum for the memory it used
    assert r.forward_steps >= min_forward_steps(n, max(r.peak_states, min_pebbles(n, game)), game)
    if op == "drop":
        dropped = original[pos % len(original)]
        assert dropped[0] not in (MoveKind.PAINT,)
        # a dropped costly move cannot make the stream both legal and dearer
        assert r.forward_steps <= base.forward_steps


@settings(max_examples=100, deadline=None)
@given(case=_legal_streams(), pos=st.integers(0, 10**6))
def test_dropping_a_paint_always_raises(case, pos) -> None:
    _, make, n, game, budget = case
    original = list(make())
    paints = [i for i, m in enumerate(original) if m[0] == MoveKind.PAINT]
    if not paints:
        assert game == "reversible"
        return
    i = paints[pos % len(paints)]
    mutated = original[:i] + original[i + 1:]
    with pytest.raises(IllegalMoveError):
        simulate(mutated, n, game, budget)


# --------------------------------------------------------------------------- trace / expand


@pytest.mark.parametrize(
    "make,n,game",
    [
        (lambda: treeverse(20, 4), 20, "checkpoint"),
        (lambda: treeverse(20, 3, inplace=True), 20, "inplace"),
        (lambda: treeverse_paper(20, 3), 20, "checkpoint"),
        (lambda: periodic(20, 4), 20, "checkpoint"),
        (lambda: recompute_all(9), 9, "checkpoint"),
        (lambda: bennett_gradient(20, 2), 20, "checkpoint"),
        (lambda: bennett(20, 3), 20, "reversible"),
    ],
)
def test_trace(make, n, game) -> None:
    r = simulate(make(), n, game, trace=True)
    assert r.trace is not None
    assert len(r.trace) == r.moves == len(list(make()))
    assert all(isinstance(b, pebbles.Board) for b in r.trace)
    assert max(len(b.pebbles) for b in r.trace) <= r.peak_states
    for b in r.trace:
        assert list(b.pebbles) == sorted(set(b.pebbles))
        assert all(1 <= c <= n for c in b.pebbles)
    paints = [b.painted_from for b in r.trace]
    assert paints == sorted(paints, reverse=True)
    if game == "reversible":
        assert n in r.trace[-1].pebbles
        assert all(p == n for p in paints)
    else:
        assert r.trace[-1].painted_from == 0
    assert simulate(make(), n, game).trace is None


@pytest.mark.parametrize(
    "make,n,game",
    [
        (lambda: treeverse(40, 4), 40, "checkpoint"),
        (lambda: treeverse(40, 2), 40, "checkpoint"),
        (lambda: treeverse(40, 3, inplace=True), 40, "inplace"),
        (lambda: treeverse(40, 1, inplace=True), 40, "inplace"),
        (lambda: treeverse_paper(40, 3), 40, "checkpoint"),
        (lambda: periodic(40, 6), 40, "checkpoint"),
        (lambda: recompute_all(12), 12, "checkpoint"),
        (lambda: bennett(20, 2), 20, "reversible"),
    ],
)
def test_expand(make, n, game) -> None:
    a = simulate(make(), n, game)
    expanded = list(expand(make(), game))
    assert all(m[0] != MoveKind.FORWARD for m in expanded)
    b = simulate(expanded, n, game, budget=a.peak_states)
    assert (b.forward_steps, b.backward_steps, b.peak_states) == (
        a.forward_steps, a.backward_steps, a.peak_states,
    )
    # the trace of the expanded stream shows the walking pebbles
    tr = simulate(expand(make(), game), n, game, trace=True).trace
    assert max(len(x.pebbles) for x in tr) == a.peak_states


def test_expand_refuses_what_is_not_a_stream_at_the_call() -> None:
    with pytest.raises(pebbles.PebblesTypeError, match=r"moves=None is not a stream"):
        expand(None)  # type: ignore[arg-type]


def test_expand_walk_shapes() -> None:
    assert [str(m) for m in expand([forward(0, 3)], "checkpoint")] == [
        "place 1", "place 2", "remove 1", "place 3", "remove 2",
    ]
    assert [str(m) for m in expand([forward(2, 5)], "inplace")] == [
        "place 3", "move 4", "move 5",
    ]
    assert [str(m) for m in expand([forward(2, 3)], "inplace")] == ["place 3"]


# --------------------------------------------------------------------------- encode / decode / text


_SCHEDULE_MAKERS = [
    lambda n: treeverse(n, 3),
    lambda n: treeverse(n, 2, inplace=True),
    lambda n: treeverse_paper(n, 2),
    lambda n: bennett(n, 2),
    lambda n: bennett_gradient(n, 3),
    lambda n: reversible_optimal(n, n.bit_length() + 1),
    lambda n: store_all(n),
    lambda n: recompute_all(n),
    lambda n: periodic(n, 3),
]


@settings(max_examples=60, deadline=None)
@given(which=st.integers(0, len(_SCHEDULE_MAKERS) - 1), n=st.integers(1, 80))
def test_encode_decode_round_trip(which: int, n: int) -> None:
    moves = list(_SCHEDULE_MAKERS[which](n))
    arr = encode(iter(moves))
    assert arr.dtype == np.int64
    assert arr.shape == (len(moves), 3)
    back = list(decode(arr))
    assert back == moves
    assert all(isinstance(m, Move) and isinstance(m.kind, MoveKind) for m in back)
    assert [str(m) for m in back] == [str(m) for m in moves]


def test_encode_empty() -> None:
    arr = encode([])
    assert arr.shape == (0, 3)
    assert list(decode(arr)) == []


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 2), dtype=np.int64),
        np.zeros((4, 3, 1), dtype=np.int64),
        np.zeros(12, dtype=np.int64),
        np.zeros((4, 3), dtype=np.float64),
        np.array([["place", "1", "-1"]]),
    ],
)
def test_decode_rejects_wrong_shape(bad) -> None:
    with pytest.raises(PebblesTypeError) as info:
        list(decode(bad))
    assert isinstance(info.value, TypeError)
    assert "shape" in str(info.value)


ALL_KINDS = [place(3), remove(3), paint(0), move(4), unplace(2), forward(0, 7), forward(5, 6)]


@pytest.mark.parametrize("m", ALL_KINDS, ids=str)
def test_parse_format_round_trip(m: Move) -> None:
    text = format_move(m)
    assert text == str(m)
    assert parse_move(text) == m
    assert parse_move("  " + text.replace(" ", "   ") + "\n") == m
    assert format_move(parse_move(text)) == text


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(list(MoveKind)), a=st.integers(0, 10**12), b=st.integers(0, 10**12))
def test_parse_format_round_trip_random(kind: MoveKind, a: int, b: int) -> None:
    m = Move(kind, a, a + 1 + b) if kind is MoveKind.FORWARD else Move(kind, a)
    assert parse_move(format_move(m)) == m


@pytest.mark.parametrize(
    "text",
    ["", "   ", "jump 3", "place", "place x", "place 1 2", "forward 1", "forward 1 2 3",
     "PLACE 1", "place 1.5", "place --1", "place \u00b2", "forward 1 \u00b3"],
)
def test_parse_move_rejects_garbage(text: str) -> None:
    with pytest.raises(PebblesValueError) as info:
        parse_move(text)
    assert repr(text) in str(info.value)
    assert "place 3" in str(info.value)  # shows an example of the right form


@pytest.mark.parametrize("thing", [3, None, ["place", 1]])
def test_parse_move_rejects_non_text(thing) -> None:
    with pytest.raises(PebblesTypeError):
        parse_move(thing)


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=20),
        st.lists(
            st.sampled_from(["place", "forward", "paint", "move", "1", "-2", "--1", "0",
                             "\u00b2", "\u0661", "+3", "x", " ", "\t"]),
            max_size=4,
        ).map(" ".join),
    )
)
def test_parse_move_total(text: str) -> None:
    # any text either parses to a move whose text form parses back the same,
    # or is refused with the library's error -- never another exception
    try:
        m = parse_move(text)
    except PebblesValueError:
        return
    assert parse_move(format_move(m)) == m


@pytest.mark.parametrize("move", [(0, 2**70, -1), (5, 0, 2**64), (0, -(2**70), -1)])
def test_a_cell_outside_int64_is_a_value_error_naming_the_move(move) -> None:
    """Before, simulate raised a bare RuntimeError (StopIteration in a generator) and
    encode said the move was not a Move."""
    stream = [pebbles.Move(*move)]
    for call in (lambda: pebbles.simulate(stream, 3), lambda: pebbles.encode(stream),
                 lambda: pebbles.lower(stream, 3)):
        with pytest.raises(pebbles.PebblesValueError, match="names a cell outside int64"):
            call()
    with pytest.raises(pebbles.PebblesValueError, match=r"from 0 to 2\^63 - 1"):
        pebbles.place(2**63)
    assert pebbles.encode([pebbles.place(2**63 - 1)])[0, 1] == 2**63 - 1


def test_parse_move_refuses_what_the_move_builders_refuse() -> None:
    with pytest.raises(pebbles.PebblesValueError, match="walks nowhere"):
        pebbles.parse_move("forward 3 3")
    assert pebbles.parse_move("move 2") == pebbles.move(2)


def test_lower_checks_n_before_comparing_it() -> None:
    s = pebbles.schedule("treeverse", 20, budget=4)
    for bad in ("20", 20.0):
        with pytest.raises(pebbles.PebblesTypeError, match=f"n={bad!r} must be an integer"):
            pebbles.lower(s, n=bad)


def test_an_unsigned_encoding_past_int64_is_refused_not_wrapped() -> None:
    arr = np.array([[0, 1, 0], [0, 2**64 - 1, 0]], dtype=np.uint64)
    for call in (pebbles.as_encoded, lambda a: pebbles.simulate(a, 3), pebbles.decode):
        with pytest.raises(pebbles.PebblesValueError,
                           match=r"^row 1 of the encoding, \[0, 18446744073709551615, 0\], "
                                 r"names a cell outside int64"):
            list(call(arr))
    ok = pebbles.as_encoded(np.array([[0, 2**63 - 1, 0]], dtype=np.uint64))
    assert ok.dtype == np.int64 and ok[0, 1] == 2**63 - 1


@pytest.mark.parametrize("compiled", [False, True])
def test_a_budget_past_int64_plays_like_no_budget(compiled, monkeypatch) -> None:
    """A budget or disk budget of 2**63 or more never binds: the compiled rule loop (int64)
    gets it clamped to a bound no game reaches, instead of raising a bare OverflowError."""
    if compiled:
        pytest.importorskip("numba")
        monkeypatch.setattr("pebbles._simulator.JIT_MIN_MOVES", 1)
    s = pebbles.schedule("treeverse", 30, budget=2**63)
    free = pebbles.simulate(s, 30)
    for budget in (2**63, 2**64, 10**40):
        r = pebbles.simulate(s, 30, budget=budget, disk_budget=budget)
        assert (r.forward_steps, r.peak_states) == (free.forward_steps, free.peak_states)
    big = pebbles.schedule("treeverse", 30, budget=30)  # the same moves, a budget that fits
    np.testing.assert_array_equal(pebbles.lower(s).ops, pebbles.lower(big).ops)
    with pytest.raises(IllegalMoveError, match="budget is 3"):  # a small one still binds
        pebbles.simulate(s, 30, budget=3)
