"""Heterogeneous chains (pebbles._chain): the dynamic programme against its oracles.

Oracles: the simulator (every stream is replayed by ``pebbles.simulate`` with
``costs=``), the closed-form optimum ``min_forward_steps`` for uniform chains,
exhaustive search of the configuration graph (``hetero_brute_force``) for small
random chains, and an independent walk of the stream written here.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from taping import taped_steps

import pebbles
from pebbles import ChainCosts, MoveKind
from pebbles._chain import hetero_brute_force, hetero_min_memory, hetero_optimal, hetero_time


def unit_chain(n: int) -> ChainCosts:
    return ChainCosts(np.ones(n), np.zeros(n), np.ones(n + 1))


def random_chain(rng: np.random.Generator, n: int, integer: bool = True) -> ChainCosts:
    fwd = rng.integers(1, 6, n).astype(float) if integer else rng.random(n) * 3
    sizes = rng.integers(0, 6, n + 1) if integer else rng.random(n + 1) * 5
    return ChainCosts(fwd, rng.random(n), sizes.astype(float))


def walk_measure(moves: list, costs: ChainCosts) -> tuple[float, float]:
    """(total time, peak bytes) by walking the expanded stream: an oracle for simulate."""
    f, b, s = costs.forward, costs.backward, costs.sizes
    grads, cot = (np.zeros(costs.n) if v is None else v for v in (costs.grads, costs.cotangents))
    held, peak, time, produced = set(), 0.0, 0.0, 0.0
    for kind, a, _ in pebbles.expand(moves):
        incoming = 0.0
        if kind == MoveKind.PLACE:
            held.add(a)
            time += f[a - 1]
        elif kind == MoveKind.REMOVE:
            held.discard(a)
        else:
            time += b[a]
            incoming = cot[a + 1] if a + 1 < costs.n else 0.0
            produced += grads[a] + cot[a] - incoming
        peak = max(peak, sum(s[c] for c in held) + produced + incoming)
    return time, peak


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 21, 34, 40])
def test_uniform_chain_gives_the_optimal_step_count(n):
    costs = unit_chain(n)
    for s in range(pebbles.min_pebbles(n, "checkpoint"), 9):
        moves = list(hetero_optimal(costs, s))
        r = pebbles.simulate(moves, n, "checkpoint", budget=s, costs=costs)
        assert r.forward_steps == pebbles.min_forward_steps(n, s, "checkpoint")
        assert r.time == hetero_time(costs, s) == r.forward_steps
        assert r.peak_bytes <= s
        assert len(moves) <= 3 * n


def test_uniform_bytes_scale_like_pebbles():
    """Sizes of 4096 bytes and a limit of 5 states: the same optimum as 5 pebbles."""
    n = 60
    costs = ChainCosts(np.ones(n), np.ones(n), np.full(n + 1, 4096.0))
    r = pebbles.simulate(hetero_optimal(costs, 5 * 4096), n, costs=costs)
    assert r.forward_steps == pebbles.min_forward_steps(n, 5)
    assert r.peak_bytes <= 5 * 4096


@pytest.mark.parametrize("seed", range(12))
def test_small_random_chains_match_exhaustive_search(seed):
    """These draws (small integer costs and sizes) have a persistent optimum; chains
    without one exist (test_a_non_persistent_schedule_can_beat_the_programme*)."""
    rng = np.random.default_rng(seed)
    for _ in range(8):
        n = int(rng.integers(1, 7 if seed < 10 else 9))
        costs = random_chain(rng, n)
        memory = hetero_min_memory(costs) + int(rng.integers(0, 12))
        moves = list(hetero_optimal(costs, memory))
        r = pebbles.simulate(moves, n, "checkpoint", costs=costs)
        best = hetero_brute_force(costs, memory)
        assert r.time == pytest.approx(best, abs=1e-9)
        assert r.time == pytest.approx(hetero_time(costs, memory), abs=1e-9)
        assert r.peak_bytes <= memory


@pytest.mark.parametrize("seed", range(4))
def test_rounded_levels_stay_feasible(seed):
    """Real-valued sizes: sizes are rounded up to levels, the limit still holds."""
    rng = np.random.default_rng(100 + seed)
    for _ in range(6):
        n = int(rng.integers(2, 7))
        costs = random_chain(rng, n, integer=False)
        memory = hetero_min_memory(costs) * 1.1 + rng.random() * 6
        moves = list(hetero_optimal(costs, memory, levels=50))
        r = pebbles.simulate(moves, n, costs=costs)
        assert r.peak_bytes <= memory * (1 + 1e-12)  # the simulator sums in another order
        assert r.time >= hetero_brute_force(costs, memory) - 1e-9


def test_least_memory_is_finishable_with_real_sizes():
    """At exactly hetero_min_memory bytes, rounding to levels must not lose the schedule."""
    rng = np.random.default_rng(5)
    for _ in range(30):
        n = int(rng.integers(2, 25))
        costs = random_chain(rng, n, integer=False)
        need = hetero_min_memory(costs)
        r = pebbles.simulate(hetero_optimal(costs, need, levels=10), n, costs=costs)
        assert r.peak_bytes <= need * (1 + 1e-12)


def test_least_memory_is_finishable_with_real_held_bytes():
    """The same with real-valued parameter gradients and cotangents (and graphs): a walk
    with the bytes held meanwhile is rounded as one sum, so is a state with its paint."""
    rng = np.random.default_rng(6)
    for k in range(30):
        n = int(rng.integers(1, 12))
        fwd = rng.random(n) * 3 + 0.1
        costs = ChainCosts(fwd, fwd + rng.random(n), rng.random(n + 1) * 5,
                           graph=rng.random(n) * 3 if k % 2 else None,
                           grads=rng.random(n) * 2, cotangents=rng.random(n) * 3)
        need = hetero_min_memory(costs) * (1 + 1e-9)  # the sums differ in the last bit
        moves = list(hetero_optimal(costs, need, levels=10))
        assert pebbles.simulate(moves, n, costs=costs).peak_bytes <= need


def test_simulator_measure_matches_an_independent_walk():
    rng = np.random.default_rng(7)
    for n, s in [(9, 2), (17, 3), (30, 4)]:
        costs = random_chain(rng, n)
        for moves in (list(pebbles.treeverse(n, s)),
                      list(hetero_optimal(costs, hetero_min_memory(costs) + 7))):
            r = pebbles.simulate(moves, n, costs=costs)
            time, peak = walk_measure(moves, costs)
            assert r.time == pytest.approx(time) and r.peak_bytes == pytest.approx(peak)


def test_never_slower_than_treeverse_at_the_same_memory():
    rng = np.random.default_rng(3)
    n = 60
    costs = ChainCosts(rng.random(n) * 5 + 0.1, rng.random(n), np.ones(n + 1))
    for s in (2, 3, 5, 8):
        tree = pebbles.simulate(pebbles.treeverse(n, s), n, costs=costs)
        assert hetero_time(costs, s) <= tree.time + 1e-9


def test_large_states_are_stored_less_often():
    """One huge state in a chain of cheap ones: the optimum never checkpoints it."""
    n = 12
    sizes = np.ones(n + 1)
    sizes[6] = 5.0
    costs = ChainCosts(np.ones(n), np.zeros(n), sizes)
    moves = list(hetero_optimal(costs, 7))
    kept = {m.b if m.kind == MoveKind.FORWARD else m.a for m in moves
            if m.kind in (MoveKind.FORWARD, MoveKind.PLACE)}
    assert 5 in kept and 7 in kept  # the neighbours of the large state are stored
    r = pebbles.simulate(moves, n, costs=costs)
    assert r.peak_bytes <= 7 and r.time == hetero_brute_force(costs, 7)


def test_zero_size_states_and_single_step():
    costs = ChainCosts(np.ones(4), np.ones(4), np.zeros(5))
    r = pebbles.simulate(hetero_optimal(costs, 0), 4, costs=costs)
    assert r.forward_steps == 3 and r.peak_bytes == 0  # store everything for free
    one = ChainCosts(np.array([2.0]), np.array([3.0]), np.array([1.0, 9.0]))
    assert [str(m) for m in hetero_optimal(one, 0)] == ["paint 0"]
    assert hetero_time(one, 0) == 3.0


def test_min_memory_is_tight():
    rng = np.random.default_rng(11)
    for _ in range(10):
        n = int(rng.integers(2, 7))
        costs = random_chain(rng, n)
        need = hetero_min_memory(costs)
        assert hetero_brute_force(costs, need) is not None
        if need > 0:
            assert hetero_brute_force(costs, need - 0.5) is None
            with pytest.raises(pebbles.PebblesValueError, match=r"memory=.* pass memory >="):
                hetero_optimal(costs, need - 0.5)


def test_bad_arguments_raise_clear_errors():
    costs = unit_chain(5)
    with pytest.raises(pebbles.PebblesTypeError, match="ChainCosts"):
        hetero_optimal([1, 2, 3], 4)
    with pytest.raises(pebbles.PebblesTypeError, match="memory="):
        hetero_optimal(costs, "4GB")
    with pytest.raises(pebbles.PebblesValueError, match="levels=0"):
        hetero_optimal(costs, 4, levels=0)
    with pytest.raises(pebbles.PebblesValueError, match="memory=1 bytes cannot finish"):
        hetero_optimal(costs, 1)


def test_a_chain_of_no_step_is_refused_by_every_entry_point():
    for solve in (hetero_min_memory, lambda c: hetero_time(c, 1.0),
                  lambda c: hetero_optimal(c, 1.0), lambda c: hetero_brute_force(c, 1.0)):
        with pytest.raises(pebbles.PebblesValueError, match=r"n=0 steps.*n >= 1"):
            solve(ChainCosts([], [], [1.0]))  # refused here or, at the latest, by solve


def test_tape_must_be_a_bool():
    costs = unit_chain(5)
    for solve in (hetero_time, hetero_optimal):
        with pytest.raises(pebbles.PebblesTypeError, match="tape='no' must be True or False"):
            solve(costs, 3, tape="no")
        with pytest.raises(pebbles.PebblesValueError, match="memory=nan.*not NaN"):
            solve(costs, float("nan"))
    assert hetero_time(costs, 3, tape=np.True_) == hetero_time(costs, 3, tape=True)


def _ragged(n: int) -> ChainCosts:
    """A chain of n steps whose sizes differ (the general tables, not the uniform ones)."""
    return ChainCosts(np.ones(n), np.ones(n), np.r_[1.0, np.arange(1, n + 1) % 7 + 1.0])


def test_tables_past_the_size_guard_are_refused_at_once():
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"n=20000 steps at levels=100 .*GB each.*too long at any levels.*"
                             r"treeverse.*segments"):
        hetero_time(_ragged(20000), 100.0)
    with pytest.raises(pebbles.PebblesValueError, match=r"n=5 steps at levels=10{12}"):
        hetero_time(ChainCosts(np.ones(5), np.ones(5), np.r_[1.0, np.arange(1, 6) % 7 + 1.5]),
                    17.5, levels=10**12)  # sizes not whole bytes: rounded to the levels
    with pytest.raises(pebbles.PebblesValueError, match=r"n=1000 steps.*pass levels=24 or fewer"):
        list(hetero_optimal(_ragged(1000), 100.0))
    uniform = ChainCosts(np.ones(4000), np.ones(4000), np.ones(4001), graph=np.ones(4000))
    with pytest.raises(pebbles.PebblesValueError, match=r"n=4000 steps at levels=2000"):
        hetero_time(uniform, 3000.5, levels=2000)


def test_size_guard_keeps_the_goal_and_what_it_suggests():
    from pebbles._chain import _check_size

    _check_size(500, 100, 100, uniform=False)  # the goal: n = 500 at 100 levels
    _check_size(1000, 24, 24, uniform=False)  # what the n = 1000 refusal suggests
    _check_size(2000, 2000, 2000, uniform=True)  # pebbles.torch's uniform chains
    with pytest.raises(pebbles.PebblesValueError, match="levels=24 or fewer"):
        _check_size(1000, 25, 25, uniform=False)
    exact = ChainCosts(np.ones(60), np.ones(60), np.full(61, 4.0))  # 4 levels, not 10^9
    assert hetero_time(exact, 16, levels=10**9) == hetero_time(exact, 16)


def test_brute_force_checks_its_arguments_and_size():
    costs = unit_chain(3)
    with pytest.raises(pebbles.PebblesTypeError, match=r"memory='100' must be a number"):
        hetero_brute_force(costs, "100")
    with pytest.raises(pebbles.PebblesTypeError, match=r"costs=\[1, 2\] must be a ChainCosts"):
        hetero_brute_force([1, 2], 100)
    with pytest.raises(pebbles.PebblesValueError, match=r"n=13 steps .* n <= 12"):
        hetero_brute_force(unit_chain(13), 100)
    kept = ChainCosts(np.ones(9), np.ones(9), np.ones(10), graph=np.ones(9))
    with pytest.raises(pebbles.PebblesValueError, match=r"n=9 steps .*kept; pass .*n <= 8"):
        hetero_brute_force(kept, 100)
    never = ChainCosts(np.ones(9), np.ones(9), np.ones(10), graph=np.full(9, np.inf))
    assert hetero_brute_force(never, 2) == hetero_time(never, 2)  # no graph kept: n <= 12


@pytest.mark.parametrize("seed", range(4))
def test_taped_model_counts_what_its_stream_saves(seed):
    rng = np.random.default_rng(200 + seed)
    for _ in range(6):
        n = int(rng.integers(2, 30))
        costs = random_chain(rng, n)
        memory = hetero_min_memory(costs) + int(rng.integers(0, 20))
        moves = list(hetero_optimal(costs, memory, tape=True))
        r = pebbles.simulate(moves, n, costs=costs)
        saved = sum(costs.forward[i] for i in taped_steps(moves, n))
        assert r.peak_bytes <= memory
        assert hetero_time(costs, memory, tape=True) == pytest.approx(r.time - saved)
        assert hetero_time(costs, memory, tape=True) <= hetero_time(costs, memory) + 1e-9


def test_taped_uniform_chain_with_room_for_everything_runs_each_step_once():
    n = 12
    costs = unit_chain(n)
    moves = list(hetero_optimal(costs, n, tape=True))
    r = pebbles.simulate(moves, n, costs=costs)
    assert r.forward_steps - len(taped_steps(moves, n)) == 0


# -- kept graphs (``tape`` moves, ChainCosts.graph) ----------------------------------------
def kept_chain(rng: np.random.Generator, n: int) -> ChainCosts:
    """A random integer chain whose steps may keep their graph (some never: inf)."""
    fwd = rng.integers(1, 6, n).astype(float)
    graph = rng.integers(0, 6, n).astype(float)
    if n > 1 and rng.random() < 0.3:
        graph[rng.integers(0, n)] = np.inf
    return ChainCosts(fwd, fwd + rng.integers(0, 4, n), rng.integers(0, 6, n + 1).astype(float),
                      graph=graph)


def kept_walk(moves: list, costs: ChainCosts) -> tuple[float, float, int]:
    """(time, peak bytes, step runs of an executor that replays each unserved paint's step),
    walking the expanded stream with kept graphs (a replay holds the step's output and
    graph for the moment): an oracle for simulate."""
    f, b, s, g, n = costs.forward, costs.backward, costs.sizes, costs.graph, costs.n
    grads, cot = (np.zeros(n) if v is None else v for v in (costs.grads, costs.cotangents))
    held, kept, peak, time, runs, made = set(), set(), 0.0, 0.0, 0, 0.0
    for kind, a, _ in pebbles.expand(moves):
        if kind in (MoveKind.PLACE, MoveKind.TAPE):
            held.add(a)
            kept |= {a - 1} if kind == MoveKind.TAPE else set()
            time, runs = time + f[a - 1], runs + 1
            peak = max(peak, sum(s[c] for c in held) + sum(g[i] for i in kept) + made)
        elif kind == MoveKind.REMOVE:
            held.discard(a)
        else:
            time += b[a] - f[a] * (a in kept)
            runs += a not in kept
            replay = 0.0 if a in kept or np.isinf(g[a]) else s[a + 1] + g[a]
            made += grads[a] + cot[a]  # while the paint runs: with the incoming cotangent
            peak = max(peak, sum(s[c] for c in held) + sum(g[i] for i in kept) + replay + made)
            made -= cot[a + 1] if a + 1 < n else 0.0
            kept.discard(a)
    return time, peak, runs


@pytest.mark.parametrize("seed", range(8))
def test_kept_graphs_match_exhaustive_search(seed):
    """The two-branch programme against Dijkstra over (pebbles, painted, kept graphs):
    never below it (a bug), equal on all but the rare non-persistent wins (next test)."""
    rng = np.random.default_rng(300 + seed)
    equal = 0
    for _ in range(5):
        n = int(rng.integers(1, 6 if seed < 7 else 8))
        costs = kept_chain(rng, n)
        memory = hetero_min_memory(costs) + int(rng.integers(0, 14))
        moves = list(hetero_optimal(costs, memory))
        r = pebbles.simulate(moves, n, costs=costs)
        best = hetero_brute_force(costs, memory)
        assert r.time >= best - 1e-9
        equal += r.time == pytest.approx(best, abs=1e-9)
        assert r.time == pytest.approx(hetero_time(costs, memory), abs=1e-9)
        assert r.peak_bytes <= memory
        time, peak, runs = kept_walk(moves, costs)
        assert (r.time, r.peak_bytes) == (pytest.approx(time), pytest.approx(peak))
        assert runs == r.forward_steps + r.backward_steps - r.taped
    assert equal >= 4


def test_a_non_persistent_schedule_can_beat_the_programme():
    """The programme keeps each checkpoint until its segment is reversed (Beaumont et al.'s
    persistent schedules). With replays that need room, dropping a checkpoint to paint and
    recomputing it afterwards can be cheaper: here s_1 is dropped before paint 2."""
    costs = ChainCosts(np.array([2.0, 1, 3, 3, 1, 3]), np.array([5.0, 3, 6, 3, 3, 6]),
                       np.array([3.0, 4, 5, 3, 1, 2, 1]), graph=np.array([4.0, 1, 3, 2, 1, 0]))
    assert hetero_brute_force(costs, 13) == 36.0 and hetero_time(costs, 13) == 37.0


def test_a_non_persistent_schedule_can_beat_the_programme_without_graphs():
    """Also in the plain model (no kept graphs, no gradients, free backward steps): under
    10 bytes, dropping s_2 for s_3 before s_2's segment is reversed (and recomputing s_2
    from s_0 afterwards) beats every persistent schedule."""
    costs = ChainCosts(np.array([246.0, 60, 319, 135, 87, 231, 126, 330]), np.zeros(8),
                       np.array([4.0, 3, 3, 6, 1, 1, 1, 6, 3]))
    better = ("place 1|place 2|remove 1|place 3|place 4|remove 3|place 5|remove 4|place 6|"
              "remove 5|place 7|paint 7|remove 7|place 3|remove 2|paint 6|place 4|place 5|"
              "paint 5|paint 4|paint 3|remove 3|place 1|place 2|paint 2|paint 1|paint 0")
    r = pebbles.simulate([pebbles.parse_move(m) for m in better.split("|")], 8, costs=costs)
    assert (r.time, r.peak_bytes) == (2051.0, 10.0)
    assert hetero_brute_force(costs, 10) == 2051.0 and hetero_time(costs, 10) == 2075.0


def test_smaller_graphs_never_cost_time_and_infinite_graphs_change_nothing():
    rng = np.random.default_rng(17)
    for _ in range(10):
        n = int(rng.integers(2, 30))
        costs = random_chain(rng, n)
        costs = ChainCosts(costs.forward, costs.backward + costs.forward, costs.sizes)
        memory = hetero_min_memory(costs) + int(rng.integers(0, 20))
        for graph in (np.full(n, np.inf), rng.integers(0, 4, n).astype(float)):
            with_graph = ChainCosts(costs.forward, costs.backward, costs.sizes, graph=graph)
            if np.isinf(graph).all():
                assert list(hetero_optimal(with_graph, memory)) == list(
                    hetero_optimal(costs, memory))
                continue
            half = ChainCosts(costs.forward, costs.backward, costs.sizes, graph=graph // 2)
            need = hetero_min_memory(with_graph)
            assert hetero_time(half, need) <= hetero_time(with_graph, need) + 1e-9


@pytest.mark.parametrize("graph", [0.0, 1.0, 3.0])
def test_uniform_kept_graphs_by_length_equal_the_general_tables(graph, monkeypatch):
    """Uniform chains use length-only tables (O(n^2 M)); the general ones agree."""
    for n in (1, 2, 7, 25):
        costs = ChainCosts(np.full(n, 2.0), np.full(n, 3.0), np.full(n + 1, 2.0),
                           graph=np.full(n, graph))
        for memory in (4, 6, 9, 14, 40):
            if memory < hetero_min_memory(costs):
                continue
            fast = pebbles.simulate(hetero_optimal(costs, memory), n, costs=costs)
            with monkeypatch.context() as m:
                m.setattr(pebbles._chain, "_is_uniform", lambda c: False)
                slow = pebbles.simulate(hetero_optimal(costs, memory), n, costs=costs)
            assert fast.time == slow.time == hetero_time(costs, memory)
            assert fast.peak_bytes <= memory and slow.peak_bytes <= memory


def test_room_for_every_graph_runs_each_step_once():
    """Rotor's store-all: every step keeps its graph, nothing is replayed."""
    n = 10
    costs = ChainCosts(np.ones(n), np.full(n, 2.0), np.full(n + 1, 4.0), graph=np.full(n, 4.0))
    moves = list(hetero_optimal(costs, 8 * n))
    r = pebbles.simulate(moves, n, costs=costs)
    assert [m.kind for m in moves[:n]] == [MoveKind.TAPE] * n
    assert r.forward_steps == n == r.taped and r.time == costs.backward.sum()
    assert r.peak_bytes == 8 * n


def test_kept_graph_rules_and_costs():
    n = 3
    costs = ChainCosts(np.ones(n), np.full(n, 2.0), np.full(n + 1, 4.0), graph=np.full(n, 1.0))
    tape = pebbles.Move(MoveKind.TAPE, 1)
    assert str(tape) == "tape 1" and pebbles.parse_move("tape 1") == tape
    for stream, words in (([tape, pebbles.remove(1)], "kept graph of step 0 holds s_1"),
                          ([tape, pebbles.place(2), pebbles.paint(2), pebbles.paint(1),
                            pebbles.remove(1)], "kept graph of step 0 holds s_1")):
        with pytest.raises(pebbles.IllegalMoveError, match=words):
            pebbles.simulate(stream, n, costs=costs, check_end=False)
    with pytest.raises(pebbles.PebblesValueError, match=r"backward\[0\]=0 < forward\[0\]=1"):
        ChainCosts(np.ones(n), np.zeros(n), np.ones(n + 1), graph=np.zeros(n))
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"got forward 3, backward 3, sizes 4, graph 4; pass sizes of "
                             r"length 4 and the others of length 3"):
        ChainCosts(np.ones(n), np.ones(n), np.ones(n + 1), graph=np.zeros(n + 1))


def grads_chain(rng: np.random.Generator, n: int, graph: bool = False) -> ChainCosts:
    """A random chain whose backward steps produce held gradients (some of size 0) and,
    one time in two, cotangents (those of the states' sizes, or none for s_0)."""
    fwd = rng.integers(1, 5, n).astype(float)
    sizes = rng.integers(1, 5, n + 1).astype(float)
    cot = sizes[:n] * (np.arange(n) > rng.integers(0, 2)) if rng.integers(2) else None
    return ChainCosts(fwd, fwd + rng.integers(0, 4, n), sizes,
                      graph=rng.integers(0, 4, n).astype(float) if graph else None,
                      grads=rng.integers(0, 4, n).astype(float), cotangents=cot)


def persistent_schedules(i: int, j: int):
    """Every persistent schedule of cells i..j (s_i held): walk to a first checkpoint k,
    reverse k..j, drop s_k, reverse i..k -- the class the programme searches."""
    if j == i + 1:
        yield [pebbles.paint(i)]
        return
    for k in range(i + 1, j):
        walk = [pebbles.place(k)] if k == i + 1 else [pebbles.Move(MoveKind.FORWARD, i, k)]
        for right in persistent_schedules(k, j):
            for left in persistent_schedules(i, k):
                yield walk + right + [pebbles.remove(k)] + left


@pytest.mark.parametrize("seed", range(6))
def test_held_gradients_match_every_persistent_schedule(seed):
    """With held gradients, the programme's time is the least over all persistent schedules
    that fit (enumerated), its stream fits, and simulate agrees with an independent walk."""
    rng = np.random.default_rng(400 + seed)
    for _ in range(6):
        n = int(rng.integers(1, 7))
        costs = grads_chain(rng, n)
        memory = hetero_min_memory(costs) + int(rng.integers(0, 10))
        moves = list(hetero_optimal(costs, memory))
        r = pebbles.simulate(moves, n, costs=costs)
        fits = [pebbles.simulate(m, n, costs=costs) for m in persistent_schedules(0, n)]
        assert r.time == min(f.time for f in fits if f.peak_bytes <= memory)
        assert r.time == pytest.approx(hetero_time(costs, memory), abs=1e-9)
        assert r.peak_bytes <= memory
        assert (r.time, r.peak_bytes) == pytest.approx(walk_measure(moves, costs))


@pytest.mark.parametrize("seed", range(6))
def test_held_gradients_against_exhaustive_search(seed):
    """With kept graphs too: never below Dijkstra over all schedules, equal but for the
    rare non-persistent wins."""
    rng = np.random.default_rng(500 + seed)
    equal = 0
    for _ in range(6):
        n = int(rng.integers(1, 6))
        costs = grads_chain(rng, n, graph=True)
        memory = hetero_min_memory(costs) + int(rng.integers(0, 12))
        moves = list(hetero_optimal(costs, memory))
        r = pebbles.simulate(moves, n, costs=costs)
        best = hetero_brute_force(costs, memory)
        assert r.time >= best - 1e-9 and r.peak_bytes <= memory
        assert (r.time, r.peak_bytes) == pytest.approx(kept_walk(moves, costs)[:2])
        assert r.time == pytest.approx(hetero_time(costs, memory), abs=1e-9)
        equal += r.time == pytest.approx(best, abs=1e-9)
    assert equal >= 5


def test_zero_gradients_change_nothing_and_gradients_need_room():
    rng = np.random.default_rng(23)
    for _ in range(8):
        n = int(rng.integers(2, 30))
        costs = grads_chain(rng, n, graph=bool(rng.integers(2)))
        plain = ChainCosts(costs.forward, costs.backward, costs.sizes, graph=costs.graph)
        zero = ChainCosts(costs.forward, costs.backward, costs.sizes, graph=costs.graph,
                          grads=np.zeros(n))
        memory = hetero_min_memory(plain) + int(rng.integers(0, 20))
        assert list(hetero_optimal(zero, memory)) == list(hetero_optimal(plain, memory))
        # they take room: the plain optimum's limit plus all gradients and two cotangents
        cot = 0.0 if costs.cotangents is None else costs.cotangents.max()
        extra = costs.grads.sum() + 2 * cot
        assert hetero_time(costs, memory + extra) <= hetero_time(plain, memory) + 1e-9
        assert hetero_min_memory(costs) <= hetero_min_memory(plain) + extra


def test_held_gradients_least_memory():
    """hetero_min_memory is finishable; below the paints' own need (s_l and G(l)) no
    schedule finishes."""
    rng = np.random.default_rng(29)
    for _ in range(12):
        n = int(rng.integers(1, 6))
        costs = grads_chain(rng, n)
        need = hetero_min_memory(costs)
        r = pebbles.simulate(hetero_optimal(costs, need), n, costs=costs)
        assert r.peak_bytes <= need
        held = np.cumsum(costs.grads[::-1])[::-1]
        if costs.cotangents is not None:  # paint l makes s_l's and holds s_{l+1}'s
            held = held + costs.cotangents + np.append(costs.cotangents[1:], 0.0)
        paints = costs.sizes[:n] * (np.arange(n) > 0) + held
        assert hetero_brute_force(costs, paints.max() - 0.5) is None
        with pytest.raises(pebbles.PebblesValueError, match="cannot finish"):
            hetero_optimal(costs, paints.max() - 0.5)
        below = need - 0.5  # the programme is tried: a schedule within it, or it says so
        try:
            moves = list(hetero_optimal(costs, below))
        except pebbles.PebblesValueError as e:
            assert "hetero_min_memory(costs)" in str(e)
            assert "found no schedule" in str(e) or "cannot finish" in str(e)
        else:
            assert pebbles.simulate(moves, n, costs=costs).peak_bytes <= below


def test_simulator_counts_cotangents_from_their_paint_to_the_next():
    n = 3
    costs = ChainCosts(np.ones(n), np.full(n, 2.0), np.full(n + 1, 4.0),
                       cotangents=np.array([2.0, 10.0, 100.0]))
    r = pebbles.simulate(pebbles.store_all(n), n, costs=costs)
    assert r.peak_bytes == 4 + 110  # paint 1: s_1, the cotangents of s_2 and s_1
    assert hetero_time(costs, 114) == 2 + 6 and hetero_min_memory(costs) == 4 + 110
    assert hetero_brute_force(costs, 113) is None


def test_simulator_counts_gradients_from_their_paint_on():
    n = 3
    costs = ChainCosts(np.ones(n), np.full(n, 2.0), np.full(n + 1, 4.0),
                       grads=np.array([1.0, 10.0, 100.0]))
    r = pebbles.simulate(pebbles.store_all(n), n, costs=costs)
    assert r.peak_bytes == 4 + 110  # paint 1: s_1 and the gradients of steps 1 and 2
    taped = [pebbles.Move(MoveKind.TAPE, 1), pebbles.place(2), pebbles.paint(2),
             pebbles.remove(2), pebbles.paint(1), pebbles.paint(0), pebbles.remove(1)]
    r = pebbles.simulate(taped, n, costs=costs)  # no graph model: a tape holds no more
    assert (r.taped, r.peak_bytes) == (1, 4 + 111)  # paint 0 from the graph: s_1 held


def test_sequential_segments_is_pytorchs_split():
    """PyTorch's checkpoint_sequential: n // s steps a piece, the last piece the rest;
    n + (s - 1) * (n // s) step runs (the pieces but the last recomputed once, graphs
    kept), at most s - 1 piece inputs and the last piece's states held; the
    kept-graph optimum at the split's measured memory is never slower (a persistent
    schedule: one the programme searches, with whole sizes)."""
    from pebbles import sequential_segments

    rng = np.random.default_rng(3)
    for n in range(1, 26):
        for s in range(1, n + 1):
            size, last = n // s, n - (s - 1) * (n // s)
            r = pebbles.simulate(sequential_segments(n, s), n)
            assert r.forward_steps + r.backward_steps - r.taped == n + (s - 1) * size
            assert r.peak_states == s - 1 + last
            stored = pebbles.simulate(sequential_segments(n, s, kept=False), n)
            assert stored.taped == 0 and stored.peak_states <= s - 1 + last
    for _ in range(20):
        n = int(rng.integers(2, 12))
        costs = ChainCosts(rng.random(n) + 0.1, rng.random(n) + 1.1,  # exact levels:
                           rng.integers(0, 6, n + 1).astype(float),  # whole sizes
                           graph=rng.integers(0, 4, n).astype(float))
        s = int(rng.integers(1, n + 1))
        split = pebbles.simulate(sequential_segments(n, s), n, costs=costs)
        best = hetero_optimal(costs, split.peak_bytes, levels=400)
        assert pebbles.simulate(best, n, costs=costs).time <= split.time + 1e-9
    with pytest.raises(pebbles.PebblesValueError, match="segments <= 4"):
        sequential_segments(4, 5)



def test_chaincosts_bad_fields_are_named():
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"ChainCosts.forward=\['a'\] is not an array of numbers"):
        ChainCosts(["a"], [1], [1, 1])
    with pytest.raises(pebbles.PebblesTypeError, match=r"ChainCosts.forward=None: .* required"):
        ChainCosts(None, [1.0], [1.0, 1.0])
    with pytest.raises(pebbles.PebblesValueError, match=r"n=0 steps.*n >= 1"):
        ChainCosts([], [], [1.0])
    for value, why in ((["1", "2"], "it holds non-numbers"), ([True, False], "it holds bools"),
                       ([1, None], "it holds non-numbers"),
                       ((x for x in [1, 2]), "it is no sequence")):
        with pytest.raises(pebbles.PebblesTypeError, match=rf"^ChainCosts.forward=.*\({why}\)"):
            ChainCosts(value, [1, 1], [1, 1, 1])
    with pytest.raises(pebbles.PebblesValueError, match=r"got shape=\(3,\) with sizes\[1\]=nan$"):
        ChainCosts([1, 2], [1, 1], [1, np.nan, 1])
    with pytest.raises(pebbles.PebblesValueError, match=r"with backward\[0\]=-2\.0$"):
        ChainCosts([1, 2], [-2, 1], [1, 1, 1])
    assert ChainCosts(np.array([1, 2], dtype=object), [1, np.float32(1)], [1, 1, 1]).n == 2


def test_equal_chaincosts_hash_alike():
    a = ChainCosts(np.array([0.0]), np.ones(1), np.ones(2), graph=np.array([-0.0]))
    b = ChainCosts(np.array([-0.0]), np.ones(1), np.ones(2), graph=np.array([0.0]))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1


# -- regressions: rounding to memory levels, messages, simple schedules --------------------


@pytest.mark.parametrize("costs", [
    ChainCosts(np.ones(2), np.full(2, 2.0), np.array([0.0, 1001, 1000]), graph=np.zeros(2)),
    ChainCosts(np.ones(6), np.full(6, 2.0), np.full(7, 0.3), graph=np.zeros(6)),
    ChainCosts(np.ones(5), np.full(5, 2.0), np.array([0.0, 7, 3, 9, 1, 5]),
               graph=np.array([1.5, 0.3, 2.0, 0.7, 1.1])),
])
@pytest.mark.parametrize("levels", [1, 3, 100, 400])
def test_kept_graphs_finish_at_the_least_memory(costs, levels):
    """A stored state and the replay of its paint are rounded as one sum."""
    need = hetero_min_memory(costs)
    moves = list(hetero_optimal(costs, need, levels=levels))
    r = pebbles.simulate(moves, costs.n, costs=costs)
    assert r.peak_bytes <= need
    assert r.time == hetero_time(costs, need, levels=levels)


@pytest.mark.parametrize("memory, levels, budget",
                         [(0.6, 100, 2), (0.9, 90, 3), (0.9, 3, 3), (1.2, 100, 4), (1.5, 100, 5)])
def test_decimal_sizes_round_exactly(memory, levels, budget):
    """0.3 * (100 / 0.6) is 50.00000000000001 in floats: still 50 units."""
    n = 30
    costs = ChainCosts(np.ones(n), np.zeros(n), np.full(n + 1, 0.3))
    moves = list(hetero_optimal(costs, memory, levels=levels))
    r = pebbles.simulate(moves, n, costs=costs)
    assert r.time == hetero_time(costs, memory, levels=levels)
    assert r.time == pebbles.min_forward_steps(n, budget)
    assert r.peak_bytes <= memory


def test_rounding_never_lets_a_sum_pass_the_limit():
    """Sizes a hair above a quantum take the next unit: 0.1 * 3 > 0.3 in floats."""
    n = 12
    costs = ChainCosts(np.ones(n), np.zeros(n), np.full(n + 1, 0.1))
    for memory, levels in [(0.3, 3), (0.3, 100), (0.7, 7), (1.1, 100)]:
        r = pebbles.simulate(hetero_optimal(costs, memory, levels=levels), n, costs=costs)
        assert r.peak_bytes <= memory


def test_size_of_s0_changes_nothing():
    kw = dict(grads=np.ones(5), cotangents=np.ones(5))
    f = np.arange(1, 6.0)
    times = [hetero_time(ChainCosts(f, f + 3, np.array([s0, 3, 4, 2, 5, 1.0]), **kw), 13)
             for s0 in (0.0, 0.5, 7.0)]
    assert times == [41.0] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hetero_time(ChainCosts(f, f + 3, np.array([1e300, 3, 4, 2, 5, 1.0]), **kw),
                           13) == 41.0


def test_messages_print_bytes_that_are_accepted_back():
    costs = ChainCosts(np.ones(3), np.ones(3), np.array([0, 1e6 + 1, 1e6 + 2, 0]))
    with pytest.raises(pebbles.PebblesValueError, match=r"pass memory >= 2000003\b") as e:
        hetero_time(costs, 2e6 + 2)
    assert "memory=2000002 bytes" in str(e.value)
    odd = ChainCosts(np.ones(3), np.ones(3), np.array([0, 0.1, 0.7, 0.2]),
                     grads=np.array([0.1, 0.2, 0.3]))
    with pytest.raises(pebbles.PebblesValueError, match="pass memory >= ") as e:
        hetero_time(odd, 0.5)
    printed = float(re.search(r"pass memory >= (\S+?)[.;]?(\s|$)", str(e.value)).group(1))
    assert printed == hetero_min_memory(odd)
    assert hetero_time(odd, printed) > 0


def test_a_memory_below_hetero_min_memory_is_tried_by_the_programme():
    """hetero_min_memory (recomputing from s_0 with the later gradients held) is 14, but a
    schedule keeping s_2 finishes with 11 bytes in time 28, the optimum."""
    costs = ChainCosts(np.array([2.0, 2, 4, 3]), np.array([4.0, 3, 7, 4]),
                       np.array([5.0, 4, 5, 0, 0]), grads=np.array([1.0, 1, 1, 3]),
                       cotangents=np.array([0.0, 1, 0, 2]))
    assert hetero_min_memory(costs) == 14
    assert hetero_time(costs, 11) == hetero_brute_force(costs, 11) == 28
    assert pebbles.simulate(hetero_optimal(costs, 11), 4, costs=costs).peak_bytes <= 11
    with pytest.raises(pebbles.PebblesValueError, match="cannot finish"):
        hetero_time(costs, 10.5)  # paint 0 holds s_1's cotangent and every gradient: 11
    assert hetero_brute_force(costs, 10.5) is None


def test_a_memory_below_the_programmes_need_with_no_schedule_says_so():
    costs = ChainCosts(np.array([1.0, 1, 1, 3]), np.array([2.0, 1, 2, 1]),
                       np.array([2.0, 4, 5, 4, 0]), grads=np.array([2.0, 2, 2, 0]),
                       cotangents=np.array([1.0, 1, 0, 2]))
    assert hetero_min_memory(costs) == 11 and hetero_brute_force(costs, 10) is None
    with pytest.raises(pebbles.PebblesValueError) as e:
        hetero_time(costs, 10)
    words = str(e.value)
    assert "cannot finish" not in words and "found no schedule within it" in words
    assert "hetero_min_memory(costs)=11" in words and "no schedule with under 9" in words


def test_never_slower_than_storing_everything_when_that_fits():
    rng = np.random.default_rng(1)
    n = 200
    s = rng.integers(10**6, 2 * 10**6, n + 1).astype(float)
    costs = ChainCosts(np.ones(n), np.ones(n), s)
    everything = pebbles.simulate(pebbles.store_all(n), n, costs=costs)
    memory = s[1:].sum() + 10**6
    r = pebbles.simulate(hetero_optimal(costs, memory), n, costs=costs)
    assert r.time == hetero_time(costs, memory) == everything.time == 399
    assert r.peak_bytes <= memory
    kept = ChainCosts(np.ones(n), np.full(n, 2.0), s, graph=s[1:] / 3)
    every_graph = pebbles.simulate(pebbles.sequential_segments(n, 1), n, costs=kept)
    memory = every_graph.peak_bytes
    r = pebbles.simulate(hetero_optimal(kept, memory), n, costs=kept)
    assert r.time == hetero_time(kept, memory) == every_graph.time == 2 * n
    assert r.peak_bytes <= memory
    assert hetero_time(costs, memory, tape=True) == pytest.approx(n)


def test_odd_memories_and_sizes():
    costs = ChainCosts(np.ones(3), np.ones(3), np.ones(4))
    assert hetero_time(costs, 10**400) == hetero_time(costs, math.inf) == 5.0
    with pytest.raises(pebbles.PebblesValueError, match="cannot finish"):
        hetero_time(costs, -10**400)
    huge = ChainCosts(np.ones(2), np.ones(2), np.array([0, 1.7e308, 1.7e308]))
    for call in (lambda: hetero_min_memory(huge), lambda: hetero_time(huge, math.inf)):
        with pytest.raises(pebbles.PebblesValueError, match=r"sizes\[1\]=1.7e\+308.*rescale"):
            call()


def test_the_time_is_the_simulators_without_simulating_every_step(monkeypatch):
    """hetero_time sums the schedule's costs as pebbles.simulate does, exactly (walks from
    many cells, kept graphs served, float costs), without the simulator's Python loop over
    every step of every walk: near the least memory a long chain walks from s_0 again and
    again (n^2 / 2 steps, minutes at n = 20000), which the size guard does not count."""
    from pebbles import _chain

    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(1, 30))
        fwd = rng.random(n) * 3 + 0.1
        graph = None if trial % 3 == 0 else np.where(rng.random(n) < 0.3, np.inf,
                                                     rng.random(n) * 2)
        costs = ChainCosts(fwd, fwd + rng.random(n) * 4, rng.random(n + 1) * 2 + 0.1,
                           graph=graph)
        for factor in (1.0, 1.4, 3.0):
            memory = factor * hetero_min_memory(costs)
            levels = int(rng.integers(3, 40))
            moves = list(hetero_optimal(costs, memory, levels=levels))
            want = pebbles.simulate(moves, n, costs=costs).time
            assert _chain._time(moves, costs) == want == hetero_time(costs, memory,
                                                                     levels=levels)
    steps = []
    real = _chain.simulate
    monkeypatch.setattr(_chain, "simulate", lambda m, n, **kw: steps.append(
        real(m, n).forward_steps) or real(m, n, **kw))
    n = 3000
    uniform = ChainCosts(np.ones(n), np.full(n, 2.0), np.ones(n + 1), graph=np.ones(n))
    moves = list(hetero_optimal(uniform, hetero_min_memory(uniform)))
    assert pebbles.simulate(moves, n).forward_steps > n * (n - 1) // 2  # walks from s_0
    assert sum(steps) <= 2 * n  # only the simple schedules are simulated


def test_uniform_tables_split_over_contiguous_rows():
    """The uniform fill's split (a sum and a min over d - 1 entries for every level) reads
    one contiguous row a level of E and of D (D reversed in the length): the same cost an
    entry at any number of levels; by length first, rows of M + 1 entries, it took
    10-15 ns an entry at M = 3, a minute at n = 20000 on a busy machine."""
    from pebbles import _chain

    n = 50
    costs = ChainCosts(np.ones(n), np.full(n, 2.0), np.ones(n + 1), graph=np.ones(n))
    q = _chain._quantum(costs.sizes, 4.0, 100, costs.graph)
    plan, _ = _chain._uniform_plan(1.0, q, n)
    assert plan.e.shape == plan.d_.shape == plan.kk.shape == (q.mmax + 1, n + 1)
    assert plan.e[2, 1:n].flags.c_contiguous and plan.d_[2, 1:n].flags.c_contiguous


def test_size_guard_lets_through_the_long_uniform_loops_it_names():
    """pebbles.torch's long uniform loops: n = 20000 steps at the 20 levels levels_fit
    names pass the guard (n^2 (M + 1) / 2 = 4.2e9 operations, about 1 ns each), 21 not."""
    from pebbles._chain import _check_size, levels_fit

    n = 20000
    loop = ChainCosts(np.ones(n), np.full(n, 2.0), np.full(n + 1, 8.0), graph=np.full(n, 8.0))
    assert levels_fit(loop) == 20
    _check_size(n, 20, 20, uniform=True)
    _check_size(n, 3, 3, uniform=True)  # at its least memory: 3 levels
    with pytest.raises(pebbles.PebblesValueError, match=r"n=20000 steps at levels=21 .*"
                                                        r"pass levels=20 or fewer"):
        _check_size(n, 21, 21, uniform=True)
    with pytest.raises(pebbles.PebblesValueError, match=r"n=20000 steps .*too long at any"):
        _check_size(n, 3, 3, uniform=False)


class _PlainPlan:
    """The programme's recurrence written out plainly (memoised ``C(i, j)`` as a vector over
    the levels, one split at a time; :mod:`pebbles._chain`'s docstring), on the chain in
    units of :func:`pebbles._chain._quantum`: a reference for the table fill, whatever
    its layout, asked ``split`` and ``kept`` by ``_chain._moves`` as a table plan is."""

    def __init__(self, costs: ChainCosts, memory: float, levels: int, tape: bool):
        from pebbles import _chain

        self.graph = _chain._graph(costs)
        self.taped = tape and self.graph is None
        self.q = _chain._quantum(costs.sizes, memory, levels, self.graph, _chain._held(costs))
        self.lev = np.arange(self.q.mmax + 1)
        self.prefix = np.concatenate(([0.0], np.cumsum(costs.forward)))
        self.memo: dict = {}
        self.splits: dict = {}

    def walk(self, i: int, k: int) -> int:
        """Peak units of the walk i -> k."""
        q = self.q
        return max([int(q.units[i + 1])] + [int(q.pairs[c]) for c in range(i + 2, k + 1)])

    def cost(self, i: int, j: int) -> np.ndarray:
        """C(i, j, .) over the levels."""
        if (i, j) not in self.memo:
            q, lev = self.q, self.lev
            if j == i + 1:
                c = np.where(lev >= q.paints[i], 0.0, np.inf)
            else:
                c = self.split_costs(i, j).min(axis=0)
                if self.graph is not None:
                    c = np.minimum(c, self.kept_costs(i, j))
            self.memo[i, j] = c
        return self.memo[i, j]

    def split_costs(self, i: int, j: int) -> np.ndarray:
        """[k - i - 1, m]: the checkpoint branch with first checkpoint k."""
        if (i, j) not in self.splits:
            q, lev, rows = self.q, self.lev, []
            for k in range(i + 1, j):
                if k == i + 1:
                    fits = (lev >= q.units[i + 1]) & (lev >= q.paints[i])
                    step = 0.0 if self.taped else self.prefix[i + 1] - self.prefix[i]
                    left = np.where(fits, step, np.inf)
                else:
                    left = np.where(lev >= self.walk(i, k),
                                    self.cost(i, k) + (self.prefix[k] - self.prefix[i]), np.inf)
                if j == k + 1:
                    right = np.where(lev >= q.stored_paint[k], 0.0, np.inf)
                else:
                    u = int(q.units[k])
                    right = np.where(lev >= u, self.cost(k, j)[np.maximum(lev - u, 0)], np.inf)
                row = left + right
                if q.held is not None:
                    fits = q.held.scale(q.held.walks[i, k - i] + q.held.h[j]) <= lev
                    row = np.where(fits, row, np.inf)
                rows.append(row)
            self.splits[i, j] = np.array(rows)
        return self.splits[i, j]

    def kept_costs(self, i: int, j: int) -> np.ndarray:
        q, lev = self.q, self.lev
        t = int(q.tunits[i])
        c = np.where(lev >= t, self.cost(i + 1, j)[np.maximum(lev - t, 0)], np.inf)
        if q.held is not None:
            c = np.where((lev >= q.paints[i]) & q.held.tape_fits(i, j, lev), c, np.inf)
        return c

    def split(self, i: int, j: int, m: int) -> tuple[float, int]:
        col = self.split_costs(i, j)[:, m]
        t = int(np.argmin(col))
        return float(col[t]), i + 1 + t

    def tape_units(self, i: int) -> int:
        return 1 << 62 if self.q.tunits is None else int(self.q.tunits[i])

    def kept(self, i: int, j: int, m: int) -> float:
        return math.inf if self.graph is None else float(self.kept_costs(i, j)[m])


def _random_general_chain(rng: np.random.Generator, trial: int) -> ChainCosts:
    """Integer or float costs and sizes (multiples of the unit or not), some uniform, some
    with kept graphs (one never kept at times), some with held gradients and cotangents."""
    n = int(rng.integers(1, 41)) if trial % 4 else int(rng.integers(1, 9))
    integer = trial % 2 == 0
    fwd = rng.integers(1, 6, n).astype(float) if integer else rng.random(n) * 3 + 0.05
    sizes = rng.integers(0, 6, n + 1).astype(float) if integer else rng.random(n + 1) * 5
    if trial % 5 == 0:
        fwd, sizes = np.full(n, fwd[0]), np.full(n + 1, sizes[-1])
    graph = grads = cot = None
    if trial % 3 == 1:
        graph = rng.integers(0, 5, n).astype(float) if integer else rng.random(n) * 3
        graph[rng.integers(0, n)] = np.inf if rng.random() < 0.3 else graph[0]
    if trial % 6 == 2:
        grads = rng.integers(0, 3, n).astype(float)
        cot = sizes[:n] * (np.arange(n) > 0) if rng.random() < 0.5 else None
    return ChainCosts(fwd, fwd + rng.random(n) * 2, sizes, graph=graph, grads=grads,
                      cotangents=cot)


@pytest.mark.parametrize("seed", range(4))
def test_table_fill_equals_the_plain_recurrence(seed, monkeypatch):
    """The vectorised fill (tables by length, start cell and level, the split summed and
    folded a slab of every start cell at a time) gives exactly the plain recurrence's times
    and, through the same reconstruction, the same moves: at 3, 10 and 100 levels, with
    and without kept graphs, held gradients and the taped model; the returned schedule is
    the recurrence's unless a simple one is faster (hetero_optimal's rule). Odd seeds
    split the fill's temporary array into many small chunks, as long chains do."""
    from pebbles import _chain

    if seed % 2:
        monkeypatch.setattr(_chain, "_CHUNK", 40)
    rng = np.random.default_rng(900 + seed)
    for trial in range(12):
        costs = _random_general_chain(rng, trial)
        n, backward = costs.n, float(costs.backward.sum())
        need = hetero_min_memory(costs)
        for levels in (3, 10, 100):
            memory = need * float(rng.choice([1.0, 1.3, 2.0, 4.0])) + (trial % 2) * int(
                rng.integers(0, 3))
            tape = bool(rng.integers(2))
            plain = _PlainPlan(costs, memory, levels, tape)
            mmax = plain.q.mmax
            best = float(plain.cost(0, n)[mmax]) if n > 1 else math.nan
            if n > 1:
                e, d_, kk = _chain._tables(costs.forward, plain.q, plain.taped)
                plan = _chain._Plan(e, d_, kk, plain.q.tunits, plain.q.held, plain.q.paints)
                got = min(plan.split(0, n, mmax)[0], plan.kept(0, n, mmax))  # any layout
                assert got == best
            if n == 1 and plain.graph is None or not math.isfinite(best):
                continue
            want = _chain._moves(plain, n, mmax, plain.q.units)
            simple = _chain._simple(costs, memory, plain.taped)
            if simple is not None and simple[0] < best + backward:
                want = simple[1]
            moves = list(hetero_optimal(costs, memory, levels=levels, tape=tape))
            assert moves == want
            time = hetero_time(costs, memory, levels=levels, tape=tape)
            if simple is not None and want is simple[1]:
                assert time == simple[0]
            elif plain.taped:
                assert time == best + backward
            else:
                assert time == pebbles.simulate(moves, n, costs=costs).time


def test_general_tables_split_over_contiguous_slabs():
    """The general fill stores its tables by length first, then start cell, then level:
    for each split the terms of every start cell and level are one contiguous slab of E
    and one of D, m (M + 1) entries, so numpy sums and folds long rows at any number of
    levels (by start cell first, D's rows ran backwards and the sum went M + 1 entries at
    a time: 10-15 ns an entry at M = 3, where it now takes about what it does at M = 100)."""
    from pebbles import _chain

    n, d, i = 30, 12, 5
    rng = np.random.default_rng(3)
    costs = random_chain(rng, n, integer=False)
    q = _chain._quantum(costs.sizes, 2 * hetero_min_memory(costs), 3)
    e, d_, kk = _chain._tables(costs.forward, q)
    assert kk is None and e.shape == d_.shape == (n + 1, n + 1, q.mmax + 1)
    m = n - d + 1
    assert e[3, :m].flags.c_contiguous and d_[d - 3, d:].flags.c_contiguous
    plan = _chain._Plan(e, d_, kk, q.tunits)
    for level in range(q.mmax + 1):  # E[i, d, m] at [d, i, m], D[j, d, m] at [d, j, m]
        cost, k = plan.split(i, i + d, level)
        terms = [e[s - i, i, level] + d_[i + d - s, i + d, level] for s in range(i + 1, i + d)]
        assert cost == min(terms) == terms[k - i - 1]
        assert cost == _PlainPlan(costs, 2 * hetero_min_memory(costs), 3, False).split(
            i, i + d, level)[0]
