"""pebbles.lower (the checked slot program) and the one rule loop, run as Python and compiled."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pebbles
from pebbles import (
    OP_FREE,
    OP_LOAD,
    OP_PAINT,
    OP_SEED,
    OP_STEP,
    OP_STORE,
    ChainCosts,
    IllegalMoveError,
    Move,
    MoveKind,
    PebblesValueError,
    discard,
    forward,
    load,
    lower,
    paint,
    place,
    remove,
    schedule,
    simulate,
    store,
)
from pebbles import _rules as R
from pebbles import _simulator as S
from pebbles._chain import hetero_optimal
from pebbles._lowering import OP_TAPE


def interpret(prog: pebbles.SlotProgram) -> dict:
    """Run a slot program on cell numbers: every slot holds the index of its state."""
    slots = [None] * prog.nslots
    slots[0] = 0
    disk: dict[int, int] = {}
    seen_seed, paints, steps = False, [], 0
    for op, src, dst, first, count in prog.ops.tolist():
        if op == OP_STEP or (op == OP_TAPE and count == 1):
            assert slots[src] == first, (op, src, first)
            assert dst != 0
            slots[dst] = first + count
            steps += count
        elif op == OP_SEED:
            assert slots[src] == prog.n and not seen_seed
            seen_seed = True
        elif op == OP_PAINT:
            assert seen_seed and slots[src] == first
            paints.append(first)
        elif op == OP_FREE:
            slots[src] = None
        elif op == OP_STORE:
            disk[first] = slots[src]
        elif op == OP_LOAD:
            slots[dst] = disk[first]
        else:
            del disk[first]
    return {"paints": paints, "steps": steps}


SCHEDULES = [
    schedule("treeverse", 60, budget=4), schedule("treeverse", 60, budget=3, inplace=True),
    schedule("treeverse-paper", 30, delta=3), schedule("store-all", 12),
    schedule("recompute-all", 9), schedule("periodic", 40, every=7),
    schedule("bennett-gradient", 27, k=3), schedule("reversible-gradient", 20, budget=6),
    schedule("treeverse", 1, budget=0), schedule("treeverse", 2, budget=1),
]


@pytest.mark.parametrize("s", SCHEDULES, ids=str)
@pytest.mark.parametrize("frees", [False, True])
def test_program_does_what_the_moves_say(s, frees):
    prog = lower(s, frees=frees)
    r = s.simulate()
    out = interpret(prog)
    assert out["paints"] == list(range(s.n - 1, -1, -1))
    assert out["steps"] == prog.forward_steps
    extra = int(prog.ops[prog.ops[:, 0] == OP_SEED, 4].sum())
    assert prog.forward_steps == r.forward_steps + extra
    assert prog.backward_steps == r.backward_steps == s.n
    # slots are exactly the most states held at once (s_0 aside), never more than the
    # simulator's peak plus the scratch s_n
    assert prog.nslots == prog.peak_states + 1 <= r.peak_states + 2
    removes = any(m.kind is MoveKind.REMOVE for m in s)
    assert (OP_FREE in prog.ops[:, 0]) == (frees and (removes or extra == 1))


def test_too_few_slots_and_bad_input_are_named():
    s = schedule("treeverse", 10, budget=3)
    need = lower(s).nslots
    with pytest.raises(IllegalMoveError, match=f"slots={need - 1} .* this schedule needs "
                                               f"slots={need} at least; pass slots={need}"):
        lower(s, slots=need - 1)
    assert lower(s, slots=need + 3).nslots == need + 3
    with pytest.raises(PebblesValueError, match="reversible"):
        lower(schedule("bennett", 8))
    with pytest.raises(TypeError, match="needs n="):
        lower(list(s))
    with pytest.raises(PebblesValueError, match="n=11"):
        lower(s, 11)
    with pytest.raises(IllegalMoveError, match="one for n=10 steps, but n=12 was given"):
        lower(list(s), 12)
    with pytest.raises(IllegalMoveError, match=r"move #1 \(paint 1\)"):
        lower([forward(0, 1), paint(1)], 3)


def test_the_fast_encoding_is_lowered_like_the_stream():
    s = schedule("treeverse", 5000, budget=7, inplace=True)
    a = lower(s)
    b = lower(pebbles.treeverse(5000, 7, inplace=True), 5000)
    assert np.array_equal(a.ops, b.ops) and a.nslots == b.nslots


# -- the rule loop: plain Python and compiled agree ------------------------------------------
def _both(moves, n, game="checkpoint", budget=None, **kw):
    """Simulate with the Python loop and with the compiled one; return both outcomes."""
    arr = pebbles.encode(moves)
    outcomes = []
    for jit in (False, True):
        old = S.JIT_MIN_MOVES
        S.JIT_MIN_MOVES = 0 if jit else 10**12
        try:
            outcomes.append(simulate(arr, n, game, budget, **kw))
        except IllegalMoveError as err:
            outcomes.append(("illegal", err.index, str(err)))
        finally:
            S.JIT_MIN_MOVES = old
    return outcomes


@given(data=st.data())
@settings(max_examples=80, deadline=None)
def test_compiled_and_python_rules_agree_on_mutated_streams(data):
    n = data.draw(st.integers(2, 40))
    budget = data.draw(st.integers(2, 6))
    inplace = data.draw(st.booleans())
    moves = list(pebbles.treeverse(n, budget, inplace=inplace))
    for _ in range(data.draw(st.integers(0, 3))):
        k = data.draw(st.integers(0, len(moves) - 1))
        kind = data.draw(st.sampled_from(list(MoveKind)))
        a = data.draw(st.integers(-1, n + 1))
        moves[k] = Move(kind, a, data.draw(st.integers(a, n + 2)))
    py, jit = _both(moves, n, "inplace" if inplace else "checkpoint", budget)
    assert py == jit


@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_compiled_and_python_rules_agree_on_long_walks(data):
    """Walks of up to thousands of cells, over empty cells or onto a pebble at any offset
    from their start (across the compiled scan's 8-cell words): both loops find the same
    first broken rule, over a pebble exactly when one is in the way."""
    n = data.draw(st.integers(2, 3000))
    cells = sorted(set(data.draw(st.lists(st.integers(1, n), max_size=6))), reverse=True)
    moves = [forward(0, c) for c in cells]  # a pebble on each, placed right to left
    a = data.draw(st.sampled_from([c for c in (0, *cells) if c < n]))
    near = [min(max(c + d, a + 1), n) for c in cells if c > a for d in (-9, -1, 0, 1, 8)]
    b = data.draw(st.sampled_from(near) | st.integers(a + 1, n) if near else
                  st.integers(a + 1, n))
    py, jit = _both([*moves, forward(a, b)], n, check_end=False)
    assert py == jit
    if any(a < c <= b for c in cells):
        assert py[:2] == ("illegal", len(cells)) and "walks over a pebble" in py[2]
    else:
        assert py.forward_steps == sum(cells) + b - a


def test_compiled_and_python_rules_agree_on_recompute_all():
    """Every walk of ``recompute-all`` starts at 0 and ends at the cell to paint."""
    py, jit = _both(schedule("recompute-all", 5000), 5000)
    assert py == jit and py.forward_steps == 5000 * 4999 // 2


def test_every_scan_finds_the_first_pebble_in_the_way():
    """The rule loop's scan of the cells a walk goes over, compiled (by 8-cell words past
    40 cells), as Python over the same NumPy board, and its plain-Python twin on a
    bytearray and on the sparse board: a lone pebble at each offset from the start, across
    words, and random boards, from every start in the first two words."""
    numba = pytest.importorskip("numba")
    jit = numba.njit(R._first_set)
    rng = np.random.default_rng(5)
    lone = [np.eye(1, 128, p, dtype=np.uint8)[0] for p in range(100)]
    full = [np.zeros(128, np.uint8), *((rng.random(128) < d).astype(np.uint8)
                                        for d in (0.01, 0.05, 0.3))]
    for occ in lone + full:
        sparse = S._SparseBoard()
        sparse.cells = np.flatnonzero(occ).tolist()
        boards = (occ, occ, bytearray(occ.tobytes()), sparse)
        scans = (jit, R._first_set, S._first_set, S._first_set)
        p = int(np.argmax(occ))
        for lo in range(17):
            ends = range(lo, 128) if occ is full[0] or len(sparse.cells) != 1 else [
                h for h in (lo, p - 1, p, p + 1, 127) if h >= lo]
            for hi in ends:
                hits = np.flatnonzero(occ[lo:hi + 1])
                want = lo + int(hits[0]) if len(hits) else -1
                assert [f(b, lo, hi) for f, b in zip(scans, boards, strict=True)] == [want] * 4


def test_a_long_walk_is_checked_eight_cells_at_a_time():
    """The compiled loop checks the cells of a walk a uint64 word (8 cells) at a time, as
    fast as bytearray.find in plain Python: a walk over 10**4 cells reads about 10**4 / 8
    entries of the board, 5000 / 8 when a pebble is in the way 5000 cells on."""
    reads = []

    class Counting(np.ndarray):
        def __getitem__(self, i):
            reads.append(i)
            return super().__getitem__(i)

    occ = np.zeros(10**4 + 9, np.uint8).view(Counting)
    assert R._first_set(occ, 3, 10**4) == -1 and len(reads) < 10**4 // 8 + 20
    occ[5003], reads[:] = 1, []
    assert R._first_set(occ, 3, 10**4) == 5003 and len(reads) < 5000 // 8 + 20


def test_two_level_moves_and_io_costs():
    n = 6
    moves = [forward(0, 3), store(3), remove(3), forward(0, 5), paint(5), remove(5),
             forward(0, 4), paint(4), remove(4), load(3), discard(3), paint(3), remove(3),
             forward(0, 2), paint(2), remove(2), forward(0, 1), paint(1), remove(1), paint(0)]
    r = simulate(moves, n, budget=2, disk_budget=1, write_cost=2.5, read_cost=1.5)
    assert (r.writes, r.reads, r.peak_disk) == (1, 1, 1)
    assert r.time == r.forward_steps + 2.5 + 1.5
    assert _both(moves, n, "checkpoint", 2, disk_budget=1)[0] == _both(
        moves, n, "checkpoint", 2, disk_budget=1)[1]
    prog = lower(moves, n, frees=True)
    assert interpret(prog)["paints"] == list(range(n - 1, -1, -1))
    assert list(prog.ops[:, 0]).count(OP_STORE) == 1 == list(prog.ops[:, 0]).count(OP_LOAD)
    bad = [
        ([store(2)], "needs a pebble in memory on cell 2"),
        ([forward(0, 2), store(2), store(2)], "already has a disk pebble"),
        ([load(2)], "cell 2 has no disk pebble"),
        ([forward(0, 2), store(2), load(2)], "already has a pebble in memory"),
        ([discard(1)], "no disk pebble"),
        ([forward(0, 2), store(2), forward(0, 1), store(1)], "disk budget is 1"),
    ]
    for stream, words in bad:
        with pytest.raises(IllegalMoveError, match=words):
            simulate(stream, n, disk_budget=1, check_end=False)
    with pytest.raises(IllegalMoveError, match="not a move of the reversible game"):
        simulate([store(1)], n, "reversible", check_end=False)


def test_chain_costs_measure_time_and_bytes():
    n = 4
    c = ChainCosts(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 0.5, 0.5, 0.5]),
                   np.array([10.0, 1.0, 100.0, 1.0, 1.0]))
    r = simulate(pebbles.store_all(n), n, costs=c)
    assert r.time == 1 + 2 + 3 + 4 * 0.5  # steps 0..2, four paints
    assert r.peak_bytes == 1 + 100 + 1
    # a walk over the big state holds it with its neighbour for a moment
    r = simulate([forward(0, 3), paint(3), remove(3), forward(0, 2), paint(2), remove(2),
                  forward(0, 1), paint(1), remove(1), paint(0)], n, costs=c)
    assert r.peak_bytes == 101 and r.time == (1 + 2 + 3) + (1 + 2) + 1 + 2.0
    uniform = ChainCosts(np.ones(n), np.zeros(n), np.ones(n + 1))
    moves = list(pebbles.treeverse(n, 2))
    a, b = simulate(moves, n, costs=uniform), simulate(moves, n)
    assert (a.time, a.peak_bytes) == (b.forward_steps, b.peak_states)
    with pytest.raises(PebblesValueError, match="n=4"):
        simulate(moves, 5, costs=uniform, check_end=False)
    with pytest.raises(PebblesValueError, match="sizes"):
        ChainCosts(np.ones(3), np.ones(3), np.ones(3))


def test_huge_boards_are_checked_without_O_n_memory():
    n = 10**12
    moves = [forward(0, 10**11), forward(10**11, 5 * 10**11), remove(5 * 10**11),
             place(10**11 + 1)]
    r = simulate(moves, n, check_end=False)
    assert r.forward_steps == 5 * 10**11 + 1 and r.peak_states == 3
    with pytest.raises(IllegalMoveError, match="walks over a pebble"):
        simulate([forward(0, 10), forward(0, 20)], n, check_end=False)


def test_kept_graph_schedules_lower_to_tape_rows():
    """``tape i`` becomes an OP_TAPE row (one step, its graph kept); a taped s_n seeds."""
    n = 12
    costs = ChainCosts(np.arange(1.0, n + 1), np.arange(2.0, n + 2), np.full(n + 1, 2.0),
                       graph=np.tile([np.inf, 5.0, 1.0], n // 3))
    for memory in (14, 100):
        moves = list(hetero_optimal(costs, memory))
        tapes = [m.a - 1 for m in moves if m.kind == MoveKind.TAPE]
        prog = lower(moves, n, frees=True)
        rows = prog.ops.tolist()
        assert tapes and sorted(r[3] for r in rows if r[0] == OP_TAPE) == sorted(tapes)
        seed = next(r for r in rows if r[0] == OP_SEED)
        assert seed[4] == (n - 1 not in tapes)  # a taped s_n needs no extra step
        assert interpret(prog)["paints"] == list(range(n - 1, -1, -1))
        r = simulate(moves, n, costs=costs)
        assert prog.forward_steps == r.forward_steps + seed[4] and r.taped == len(tapes)
        py, jit = _both(moves, n, costs=costs)
        assert py == jit
    assert n - 1 in tapes


def test_compiled_and_python_rules_agree_on_held_gradients():
    """The rule loop's size array with parameter gradients and cotangents (and without a
    graph: tapes cost nothing) is read the same by both loops."""
    rng = np.random.default_rng(8)
    for graph in (None, rng.integers(0, 3, 30).astype(float)):
        costs = pebbles.ChainCosts(np.ones(30), np.full(30, 2.0), rng.integers(1, 5, 31) * 1.0,
                                   graph=graph, grads=rng.integers(0, 4, 30) * 1.0,
                                   cotangents=rng.integers(0, 4, 30) * 1.0)
        moves = list(pebbles.hetero_optimal(costs, pebbles.hetero_min_memory(costs) + 9))
        py, jit = _both(moves, 30, costs=costs)
        assert py == jit and py.peak_bytes > 0


def test_programs_compare_and_hash_by_value():
    # == and hash() work (no "truth value of an array is ambiguous", no "unhashable")
    s = pebbles.schedule("treeverse", 20, budget=4)
    p, q = s.lower(), s.lower()
    assert p == q and hash(p) == hash(q) and len({p, q}) == 1
    assert p != s.lower(frees=True) and p != pebbles.lower(s, slots=9) and p != "p"
    assert pickle.loads(pickle.dumps(p)) == p


@pytest.mark.parametrize("frees", [1, "no", None])
def test_frees_must_be_a_bool(frees):
    with pytest.raises(pebbles.PebblesTypeError, match=r"frees=.* must be True or False"):
        pebbles.lower(pebbles.schedule("treeverse", 20, budget=4), frees=frees)


def test_a_walk_may_fill_every_slot_and_one_more_slot_leaves_one_free():
    """SlotProgram's docstring: nslots holds no spare buffer for a walk, and
    ``slots=nslots + 1`` leaves one free at every walk."""
    from pebbles import forward, paint, place, remove

    moves = [forward(0, 5), paint(5), remove(5), place(1), forward(1, 4), paint(4), remove(4),
             forward(1, 3), paint(3), remove(3), place(2), paint(2), remove(2), paint(1),
             remove(1), paint(0)]

    def walks_without_a_free_slot(prog):
        held, count = {0}, 0
        for op, src, dst, _, steps in prog.ops.tolist():
            if op == OP_STEP:
                count += steps > 1 and src != dst and not set(range(prog.nslots)) - held - {dst}
                held.add(dst)
            elif op == OP_FREE:
                held.discard(src)
        return count

    prog = lower(moves, 6, frees=True)
    assert walks_without_a_free_slot(prog) == 2
    assert walks_without_a_free_slot(lower(moves, 6, frees=True, slots=prog.nslots + 1)) == 0


def test_the_seed_row_says_whether_lower_added_the_step_to_s_n():
    """SlotProgram's docstring: count = 1 and an OP_STEP into a scratch slot just before
    the seed when the schedule never places s_n, else 0 and no added step."""
    for s, added in ((schedule("treeverse", 20, budget=4), 1),
                     (schedule("online", 20, budget=4), 1),
                     (schedule("bennett-gradient", 20, k=2), 0),
                     (schedule("reversible-gradient", 20, budget=5), 0)):
        prog, sim = lower(s), s.simulate()
        k = int(np.flatnonzero(prog.ops[:, 0] == OP_SEED)[0])
        assert prog.ops[k].tolist()[2:] == [0, 20, added]
        if added:
            assert prog.ops[k - 1].tolist() == [OP_STEP, prog.ops[k + 1, 1], prog.ops[k, 1], 19, 1]
        assert prog.forward_steps == sim.forward_steps + added


@pytest.mark.parametrize("compiled", [False, True])
def test_many_slots_cost_no_time_or_memory(compiled, monkeypatch):
    """slots=k far beyond the need is as cheap as the need: more than n + 2 are taken as
    n + 2 (a game holds n + 1 states at most), so slots=10**18 neither runs out of memory
    nor takes time, in the lowering or the replay; the program is the one of a snug fit + 1."""
    if compiled:
        pytest.importorskip("numba")
        monkeypatch.setattr(S, "JIT_MIN_MOVES", 1)  # the compiled loop, on a short stream
    s = schedule("treeverse", 20, budget=4)
    snug = lower(s, slots=lower(s).nslots + 1)
    for slots in (10**8, 10**18, 2**80):
        p = lower(s, slots=slots)
        assert p.nslots == 22 and p.peak_states == snug.peak_states
        np.testing.assert_array_equal(p.ops, snug.ops)
    r = pebbles.replay(p, 20, np.ones(2), lambda i, x: 2 * x, lambda i, x, g: (2 * g, None),
                       np.ones_like)
    assert r.grad_s0.tolist() == [2.0**20] * 2


# -- long streams: the rule loop in chunks, so that Ctrl-C is raised between them -----------
def _compiled_or_python(compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if compiled:
        pytest.importorskip("numba")
        monkeypatch.setattr(S, "JIT_MIN_MOVES", 1)  # the compiled loop, on a short stream
    else:
        monkeypatch.setattr(S, "JIT_MIN_MOVES", 10**18)


def test_work_runs_cover_the_moves_in_runs_of_bounded_work_and_length():
    from pebbles._simulator import _work_runs

    arr = schedule("recompute-all", 50).encode()  # walks 0 -> i: work 1..49, paints 1
    aa, bb = arr[:, 1], arr[:, 2]
    work = np.where(arr[:, 0] == MoveKind.FORWARD, bb - aa, 1)
    for limit in (1, 7, 100, 10**6):
        for most in (None, 1, 3, 40, 10**6):
            bounds = _work_runs(aa, bb, limit, most)
            assert bounds[0][0] == 0 and bounds[-1][1] == len(arr)
            assert all(0 < hi - lo <= (most or len(arr)) for lo, hi in bounds)
            assert all(b[1] == c[0] for b, c in zip(bounds[:-1], bounds[1:], strict=True))
            assert all(work[lo:hi].sum() <= limit + work[lo:hi].max() for lo, hi in bounds)
    assert _work_runs(aa, bb, 10**6) == [(0, len(arr))]
    assert len(_work_runs(aa, bb, 100)) == work.sum() // 100 + 1
    assert _work_runs(aa, bb, 10**6, 40)[:2] == [(0, 40), (40, 80)]
    assert _work_runs(aa[:0], bb[:0]) == []
    huge = np.zeros(3, dtype=np.int64), np.array([2**62, 2**62, 5])  # sums past int64
    assert _work_runs(*huge, 4) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize("compiled", [False, True])
def test_lowering_in_chunks_gives_the_program_of_one_chunk(compiled, monkeypatch):
    """The rule loop is run in chunks of bounded work (Python, and Ctrl-C, in between):
    the program, its counts and the errors are those of one run over every move."""
    _compiled_or_python(compiled, monkeypatch)
    cases = [(schedule("recompute-all", 60), {}), (schedule("treeverse", 300, budget=5), {}),
             (schedule("treeverse", 200, budget=4, inplace=True), {"frees": True}),
             (schedule("two-level", 120, budget=3, disk_budget=4, write_cost=2, read_cost=2),
              {"frees": True}),
             (schedule("online", 150, budget=4), {"slots": 9})]
    for s, kw in cases:
        whole = lower(s, **kw)
        for limit in (1, 5, 64):
            monkeypatch.setattr(S, "_CHUNK_WORK", limit)
            assert lower(s, **kw) == whole
        monkeypatch.setattr(S, "_CHUNK_WORK", 2**26)
    bad = [*schedule("recompute-all", 30)]
    bad[-6] = forward(0, 29)  # an illegal walk near the end: over a pebble
    with pytest.raises(IllegalMoveError) as one:
        lower(bad, 30)
    monkeypatch.setattr(S, "_CHUNK_WORK", 3)
    with pytest.raises(IllegalMoveError) as chunked:
        lower(bad, 30)
    assert str(chunked.value) == str(one.value) and chunked.value.index == len(bad) - 6


@pytest.mark.parametrize("call", ["lower", "simulate"])
def test_keyboard_interrupt_between_chunks_stops_the_check(call, monkeypatch):
    """A long stream returns to Python after every chunk of the compiled rule loop, where
    a pending Ctrl-C is raised: here the third chunk raises it, and nothing more is
    played, in lower and in simulate of an encoded array (the plain-Python loop, which
    moves are always checked by, returns to the interpreter at every move)."""
    _compiled_or_python(True, monkeypatch)
    monkeypatch.setattr(S, "_CHUNK_WORK", 50)
    played = []

    class Interrupted(S._Game):
        def play(self, kinds, aa, bb, ops=None):
            played.append(len(kinds))
            if len(played) == 3:
                raise KeyboardInterrupt
            super().play(kinds, aa, bb, ops)

    monkeypatch.setattr("pebbles._lowering._Game", Interrupted)
    monkeypatch.setattr(S, "_Game", Interrupted)
    s = schedule("recompute-all", 100)
    with pytest.raises(KeyboardInterrupt):
        {"lower": lower, "simulate": simulate}[call](s.encode(), 100)
    assert len(played) == 3 and sum(played) < 3 * 100


@pytest.mark.parametrize("compiled", [False, True])
def test_simulation_in_chunks_gives_the_result_of_one_chunk(compiled, monkeypatch):
    """simulate cuts a stream as lower does (by work; in plain Python also at most
    SIMULATE_CHUNK moves a chunk): the results, and the index and text of an illegal move
    late in the stream, are those of one run over every move, moves or encoded array."""
    _compiled_or_python(compiled, monkeypatch)
    rng = np.random.default_rng(3)
    costs = ChainCosts(rng.random(60) + 0.5, rng.random(60) + 1.5, rng.random(61) * 8,
                       graph=rng.random(60), grads=rng.random(60), cotangents=rng.random(60))
    cases = [(s, s.n, {"game": s.game, "budget": s.budget, **s.simulator_options})
             for s in (schedule("recompute-all", 60), schedule("treeverse", 300, budget=5),
                       schedule("treeverse", 200, budget=4, inplace=True),
                       schedule("two-level", 120, budget=3, disk_budget=4, write_cost=2,
                                read_cost=3), schedule("bennett", 40, k=2))]
    cases.append((schedule("recompute-all", 60), 60, {"costs": costs}))
    over, kept = [*schedule("recompute-all", 30)], [*schedule("recompute-all", 30)]
    over[-6] = forward(0, 29)  # an illegal walk near the end: over a pebble
    del kept[-8]  # remove 3: the walk to 2 then holds three pebbles, one over the budget
    cases += [(over, 30, {}), (kept, 30, {"budget": 2})]
    for moves, n, kw in cases:
        arr = pebbles.encode(moves)
        outcomes = []
        for limit, most in ((2**26, 8192), (1, 8192), (2, 8192), (7, 3), (2**26, 2)):
            monkeypatch.setattr(S, "_CHUNK_WORK", limit)
            monkeypatch.setattr(S, "SIMULATE_CHUNK", most)
            for stream in (arr, list(moves)):
                try:
                    outcomes.append(simulate(stream, n, **kw))
                except IllegalMoveError as err:
                    outcomes.append((err.index, str(err)))
        assert all(o == outcomes[0] for o in outcomes), moves
    assert outcomes[0][0] == len(kept) - 7 and "budget is 2" in outcomes[0][1]
