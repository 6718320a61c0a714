"""Heterogeneous chains (pebbles._chain): the dynamic programme against its oracles.

Oracles: the simulator (every stream is replayed by ``pebbles.simulate`` with
``costs=``), the closed-form optimum ``min_forward_steps`` for uniform chains,
exhaustive search of the configuration graph (``hetero_brute_force``) for small
random chains, and an independent walk of the stream written here.
"""

from __future__ import annotations

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
    held, peak, time = set(), 0.0, 0.0
    for kind, a, _ in pebbles.expand(moves):
        if kind == MoveKind.PLACE:
            held.add(a)
            time += f[a - 1]
            peak = max(peak, sum(s[c] for c in held))
        elif kind == MoveKind.REMOVE:
            held.discard(a)
        else:
            time += b[a]
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
