"""Online checkpointing (pebbles._online): legality, optimality, bounds, prefix property.

Every stream is checked by the simulator; optima come from min_forward_steps.
"""

from __future__ import annotations

from functools import cache
from itertools import accumulate, islice

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pebbles
from pebbles._online import OnlineScheduler, online, online_r2_range

GAMES = ("inplace", "checkpoint")


def _beta(s: int, r: int, game: str) -> int:
    from pebbles._binomial import BetaTable

    return BetaTable(pebbles.Game(game)).beta(s, r)


def _grid(lo: int, hi: int, count: int) -> list[int]:
    """``count`` roughly even values in lo..hi, both ends and their neighbours included."""
    step = max(1, (hi - lo) // count)
    values = set(range(lo, hi + 1, step)) | {lo, lo + 1, hi - 1, hi}
    return sorted(v for v in values if lo <= v <= hi)


def _check(n: int, s: int, game: str) -> pebbles.SimulationResult:
    r = pebbles.simulate(online(n, s, inplace=game == "inplace"), n, game, budget=s)
    assert r.backward_steps == n and r.peak_pebbles <= s
    return r


def _overhead(n: int, s: int, game: str) -> int:
    return _check(n, s, game).forward_steps - pebbles.min_forward_steps(n, s, game)


def test_r2_range_is_revolves_beta_s_2():
    # Revolve's c checkpoints (s_0 included, working state not) = our S (the
    # reverse): both hold S + 1 states, so beta(c, 2) = (S + 1)(S + 2) / 2.
    for s in range(1, 65):
        assert online_r2_range(s, inplace=True) == _beta(s, 2, "inplace") == (s + 1) * (s + 2) // 2
        assert online_r2_range(s) == _beta(s, 2, "checkpoint")


@pytest.mark.parametrize("game", GAMES)
@pytest.mark.parametrize("s", range(1, 13))
def test_optimal_on_whole_r2_range_small_budgets(game, s):
    lo = pebbles.min_pebbles  # every feasible n from 1 to the end of the range
    for n in range(1, online_r2_range(s, inplace=game == "inplace") + 1):
        if lo(n, game) <= s:
            assert _overhead(n, s, game) == 0, (n, s)


@pytest.mark.parametrize("game", GAMES)
def test_optimal_on_r2_range_budgets_to_64(game):
    for s in [*range(13, 33), 40, 48, 64]:  # each one's range on a coarse grid
        top = online_r2_range(s, inplace=game == "inplace")
        for n in _grid(1, top, 4) + [s, s + 1, s + 2, 2 * s + 1]:
            assert _overhead(n, s, game) == 0, (n, s)


def test_r2_optimality_ends_at_the_range():
    # one step past beta(S, 2) the chained scheme is no longer optimal (S >= 3)
    for game in GAMES:
        for s in (3, 5, 8):
            top = online_r2_range(s, inplace=game == "inplace")
            assert max(_overhead(n, s, game) for n in range(top + 1, top + 4)) > 0


#: Most steps above the optimum up to beta(S, 3): the r = 3 phase never accepts more
#: (docs/online.md).
R3_LIMIT = {"inplace": 2, "checkpoint": 3}


@pytest.mark.parametrize("game", GAMES)
@pytest.mark.parametrize("s", range(2, 11))
def test_r3_range_bound_every_n(game, s):
    worst = 0
    for n in range(online_r2_range(s, inplace=game == "inplace") + 1,
                   _beta(s, 3, game) + 1):
        over = _overhead(n, s, game)
        assert over <= R3_LIMIT[game], (n, s, over)
        worst = max(worst, over)
    # measured maxima: in-place 1 step up to S = 9, then 2; checkpoint 0 at S = 2, then 2
    assert worst == ((1 if s <= 9 else 2) if game == "inplace" else (0 if s == 2 else 2))


@pytest.mark.parametrize("game", GAMES)
@pytest.mark.parametrize("s", [16, 24, 32])
def test_r3_range_bound_on_a_grid(game, s):
    lo, top = online_r2_range(s, inplace=game == "inplace"), _beta(s, 3, game)
    for n in _grid(lo, top, 4):
        assert _overhead(n, s, game) <= R3_LIMIT[game], (n, s)


def _online_cost(cells: tuple[int, ...], s: int, game: str) -> int:
    """Forward steps of the stream that stops now: n - 1, then each interval's optimum."""
    from pebbles._binomial import BetaTable

    table, bounds = BetaTable(pebbles.Game(game)), (0, *cells)
    return cells[-1] + sum(table.min_steps(bounds[j + 1] - bounds[j], s - j)
                           for j in range(len(cells)))


@pytest.mark.parametrize("game", GAMES)
def test_r3_phase_covers_the_range_budgets_to_64(game):
    from pebbles._online import _R3_PHASE

    inplace = game == "inplace"
    for s in [*range(2, 33), 40, 48, 64]:
        sched, n, top = OnlineScheduler(s, inplace=inplace), 1, _beta(s, 3, game)
        lo = online_r2_range(s, inplace=inplace)
        grid = set(_grid(lo + 1, top, 12))
        while n < top:
            sched.advance()
            n += 1
            if n > lo:
                assert sched._phase == _R3_PHASE and sched._r3.over <= R3_LIMIT[game], (s, n)
            if n in grid:  # the phase's bookkeeping against the closed forms
                over = (_online_cost(sched.checkpoints, s, game)
                        - pebbles.min_forward_steps(n, s, game))
                assert over == sched._r3.over, (s, n, over)
        assert sched._r3.over == 0  # every level at the top of its band at beta(S, 3)
        sched.advance()
        assert sched._phase != _R3_PHASE  # the greedy rule from beta(S, 3) on


@pytest.mark.parametrize("game", GAMES)
@pytest.mark.parametrize("s", [2, 3, 4, 6])
def test_beyond_r3_relative_overhead(game, s):
    # measured (every n): 16.7 % (checkpoint, S = 3, n = 24), 13.9 % (in-place, S = 2),
    # at most 6.8 % for S >= 4 (checkpoint, S = 4, n = 49)
    bound = 0.17 if s <= 3 else 0.07
    lo, top = _beta(s, 3, game), _beta(s, 5, game)
    for n in _grid(lo, top, 60):
        over = _overhead(n, s, game)
        assert over <= bound * pebbles.min_forward_steps(n, s, game), (n, s)


def _sweep_cost(cells: list[int], s: int, game: str) -> float:
    """Forward steps of the reverse sweep from this board: interval j between held
    cells reversed optimally with s - j pebbles (inf where it cannot be)."""
    bounds = (0, *cells)
    return sum(_least(bounds[j + 1] - bounds[j], s - j, game) for j in range(len(cells)))


@cache
def _least(n: int, s: int, game: str) -> float:
    try:
        return pebbles.min_forward_steps(n, s, game)
    except pebbles.InfeasibleBudgetError:
        return float("inf")


@pytest.mark.parametrize("game", GAMES)
@pytest.mark.parametrize("s", [3, 5, 12])
def test_greedy_takes_the_step_with_the_cheapest_reverse_sweep(game, s):
    """Past the r = 3 phase each step of the default rule leaves the board whose reverse
    sweep costs least: ties to the latest checkpoint freed, an in-place step last."""
    from pebbles._online import _BEYOND

    sched, judged = OnlineScheduler(s, inplace=game == "inplace"), 0
    for _ in range(_beta(s, 3, game) + 1500):
        cells, f = list(sched.checkpoints), sched.front
        moves = sched.advance()
        if sched._phase != _BEYOND:
            continue
        boards = {i: [*cells[:i - 1], *cells[i:], f + 1] for i in range(len(cells) - 1, 0, -1)}
        costs = {i: _sweep_cost(b, s, game) for i, b in boards.items()}
        best = min(costs, key=lambda i: (costs[i], -i))
        least = costs[best]
        if game == "inplace" and _sweep_cost([*cells[:-1], f + 1], s, game) < least:
            best = 0
        if least < float("inf"):
            judged += 1
            freed = cells[best - 1] if best else None
            assert [m.a for m in moves if m.kind is pebbles.MoveKind.REMOVE] == \
                ([freed] if best else []), (f, cells)
    assert judged >= 1000
    assert sched.checkpoints != tuple(range(1, s + 1))


def _full_scan(cells: list[int], s: int, cost, inplace: bool) -> int:
    """The greedy rule by its definition: every delta, scanned from the latest."""
    gaps = [cells[0]] + [cells[j] - cells[j - 1] for j in range(1, len(cells))]
    best, best_delta, gained = 0, float("inf"), 0.0
    for i in range(len(cells) - 1, 0, -1):
        a, b = gaps[i - 1], gaps[i]
        delta = cost(a + b, s - i + 1) - cost(a, s - i + 1) - cost(b, s - i) - gained
        if delta < best_delta:
            best, best_delta = i, delta
        gained += cost(b, s - i) - cost(b, s - i + 1)
    if inplace and cost(gaps[-1] + 1, s - len(cells) + 1) - cost(gaps[-1], s - len(cells) + 1) \
            < best_delta:
        best = 0
    return best


@settings(max_examples=300, deadline=None)
@given(s=st.integers(1, 9), inplace=st.booleans(), data=st.data())
def test_greedy_choice_with_memo_is_the_full_scan(s, inplace, data):
    """Any board (infinite costs included), with the memo empty, kept from a board with the
    same intervals before the last two, or from another board."""
    from pebbles._online import _cheapest_next, _interval_costs

    cost = _interval_costs(pebbles.Game.INPLACE if inplace else pebbles.Game.CHECKPOINT)
    gaps = st.lists(st.integers(1, 40), min_size=1, max_size=s)
    board = list(accumulate(data.draw(gaps)))
    memo: list = []
    assert _cheapest_next(board, s, cost, inplace, memo) == _full_scan(board, s, cost, inplace)
    tail = data.draw(st.lists(st.integers(1, 40), min_size=0, max_size=2))
    base = board[-3] if len(board) >= 3 else 0
    same = [*board[:max(len(board) - 2, 0)], *list(accumulate(tail, initial=base))[1:]]
    other = list(accumulate(data.draw(gaps)))
    for b in (same, other):
        if b and b == sorted(set(b)) and b[0] >= 1 and len(b) <= s:
            assert _cheapest_next(b, s, cost, inplace, memo) == _full_scan(b, s, cost, inplace)


@pytest.mark.parametrize(("s", "n", "beyond"), [(10, 10**4, "greedy"), (10, 10**5, "greedy"),
                                                (20, 10**5, "greedy"),
                                                (10, 10**5, "wang-moin")])
def test_long_runs_are_legal_within_budget(s, n, beyond):
    r = pebbles.simulate(online(n, s, beyond=beyond), n, "checkpoint", budget=s)
    assert r.backward_steps == n and r.peak_pebbles == s
    limit = 1.02 if beyond == "greedy" else 1.1
    assert r.forward_steps <= limit * pebbles.min_forward_steps(n, s, "checkpoint")


def test_long_inplace_run_is_legal_within_budget():
    r = _check(10**5, 10, "inplace")
    assert r.forward_steps <= 1.02 * pebbles.min_forward_steps(10**5, 10, "inplace")


@pytest.mark.parametrize("game", GAMES)
def test_wang_moin_option_is_legal_and_keeps_the_r2_optimum(game):
    inplace = game == "inplace"
    for s in (2, 3, 5, 8):
        for n in _grid(2, _beta(s, 4, game), 10):
            if pebbles.min_pebbles(n, game) > s:
                continue
            r = pebbles.simulate(online(n, s, inplace=inplace, beyond="wang-moin"), n, game,
                                 budget=s)
            assert r.backward_steps == n and r.peak_pebbles <= s
            if n <= online_r2_range(s, inplace=inplace):
                assert r.forward_steps == pebbles.min_forward_steps(n, s, game)



@pytest.mark.parametrize("s,n,game,low,high", [
    (5, 56, "checkpoint", 0.21, 0.22), (10, 286, "checkpoint", 0.30, 0.31),
    (20, 1771, "checkpoint", 0.33, 0.34), (20, 1800, "inplace", 0.32, 0.33)])
def test_wang_moin_overhead_just_past_beta3_is_as_docs_online_says(s, n, game, low, high):
    """docs/online.md: just past beta(S, 3) Wang-Moin is 22-25 % above the optimum at
    S = 5 and 30-34 % for S from 10 to 40 (these n are the sampled maxima)."""
    r = pebbles.simulate(online(n, s, inplace=game == "inplace", beyond="wang-moin"), n,
                         game, budget=s)
    assert low < r.forward_steps / pebbles.min_forward_steps(n, s, game) - 1 < high


def _forward_phase(n: int, s: int, inplace: bool, beyond: str = "greedy") -> list:
    sched = OnlineScheduler(s, inplace=inplace, beyond=beyond)
    return [m for _ in range(n - 1) for m in sched.advance()]


@settings(max_examples=60, deadline=None)
@given(s=st.integers(2, 20), n=st.integers(1, 600), extra=st.integers(1, 600),
       inplace=st.booleans(), beyond=st.sampled_from(["greedy", "wang-moin"]))
def test_prefix_property(s, n, extra, inplace, beyond):
    fwd = _forward_phase(n, s, inplace, beyond)
    for m in (n, n + extra):
        head = list(islice(online(m, s, inplace=inplace, beyond=beyond), len(fwd)))
        assert head == fwd
    assert fwd == _forward_phase(n + extra, s, inplace, beyond)[: len(fwd)]


def test_scheduler_tracks_front_and_checkpoints():
    sched = OnlineScheduler(3)
    assert (sched.front, sched.checkpoints) == (0, ())
    for _ in range(7):
        sched.advance()
    assert sched.front == 7 and len(sched.checkpoints) == 3 and sched.checkpoints[-1] == 7
    moves = list(sched.reverse())
    assert str(moves[0]) == "paint 7" and str(moves[-1]) == "paint 0"


def test_reverse_at_the_start_is_one_paint():
    assert [str(m) for m in OnlineScheduler(2).reverse()] == ["paint 0"]


@pytest.mark.parametrize("where", ["step", "backward"])
def test_replay_until_checks_finite_values_when_asked(where):
    def step(i, s):
        return s * np.nan if where == "step" and i == 3 else s * 1.1

    def backward(i, s, g):
        return (g * np.inf if where == "backward" and i == 2 else 1.1 * g), None

    kw = dict(step=step, backward=backward, loss_grad=np.ones_like, s0=np.ones(2),
              done=lambda i, s: i == 6, budget=3)
    assert pebbles.replay_until(**kw).n == 6  # unchecked: the values go on
    at = 3 if where == "step" else 2
    with pytest.raises(pebbles.NonFiniteError,
                       match=rf"^{where} at step {at} returned NaN or infinity"):
        pebbles.replay_until(check_finite=True, **kw)
    with pytest.raises(pebbles.PebblesTypeError, match="check_finite=1"):
        pebbles.replay_until(check_finite=1, **kw)


def test_a_schedulers_settings_are_fixed_for_the_run_and_shown():
    """Setting budget mid-run was taken silently from then on (a stream of another
    budget's rules); the settings are read-only, and the repr shows them and the step."""
    sched = OnlineScheduler(3, inplace=True, beyond="wang-moin")
    _advanced(sched, 20)
    for name, value in (("budget", 5), ("game", "checkpoint"), ("beyond", "greedy")):
        with pytest.raises(AttributeError):
            setattr(sched, name, value)
    assert repr(sched) == "OnlineScheduler(3, inplace=True, beyond='wang-moin') at step 20"
    assert repr(OnlineScheduler(2)) == "OnlineScheduler(2, beyond='greedy') at step 0"


def _advanced(sched: OnlineScheduler, steps: int) -> list:
    return [m for _ in range(steps) for m in sched.advance()]


@pytest.mark.parametrize("game", GAMES)
@pytest.mark.parametrize("beyond", ["greedy", "wang-moin"])
@pytest.mark.parametrize("done", [3, 20, 60, 200])   # S = 4: r = 2, r = 3, beyond (twice)
def test_scheduler_pickles_and_deepcopies_mid_run(game, beyond, done):
    """A scheduler saved mid-run (a job stopped and restarted) goes on as the original."""
    import copy
    import pickle

    from pebbles._online import _BEYOND, _R2, _R3_PHASE, _WANG_MOIN

    inplace = game == "inplace"
    sched = OnlineScheduler(4, inplace=inplace, beyond=beyond)
    _advanced(sched, done)
    phase = {3: {_R2}, 20: {_R3_PHASE}}.get(done, {_BEYOND, _WANG_MOIN})
    assert sched._phase in phase
    started = sched.reverse()  # a reverse sweep under way: the scheduler still pickles
    sweep = [next(started)]
    copies = [copy.deepcopy(sched), copy.copy(sched), pickle.loads(pickle.dumps(sched)),
              *(pickle.loads(pickle.dumps(sched, protocol=p)) for p in (0, 2))]
    sweep += started
    assert all(list(other.reverse()) == sweep for other in copies)
    moves = _advanced(sched, 150)
    for other in copies:
        assert (other.budget, other.game, other.beyond) == (4, sched.game, beyond)
        assert _advanced(other, 150) == moves
        assert other.checkpoints == sched.checkpoints and other.front == sched.front
        assert list(other.reverse()) == list(sched.reverse())
    assert [str(m) for m in moves] == [str(m) for m in _forward_phase(done + 151, 4, inplace,
                                                                      beyond)[-len(moves):]]


@pytest.mark.parametrize("game", GAMES)
def test_interval_costs_match_the_table(game):
    """Against the table's own sum, ``r (d - 1) - sum_{i<r} (beta(s, i) - 1)`` with r
    walked up row by row (the Pascal recurrence, not the closed forms)."""
    from pebbles._binomial import BetaTable
    from pebbles._online import _interval_costs

    table, cost = BetaTable(pebbles.Game(game)), _interval_costs(pebbles.Game(game))

    def walked(d, s):
        r = 0
        while table.beta(s, r) < d:
            r += 1
        return r * (d - 1) - sum(table.beta(s, i) - 1 for i in range(r))

    for s in range(1, 30):
        for d in [*range(2, 300), 1000, 4097, 10**4 + 1]:
            if game == "checkpoint" and s == 1 and d > 2:
                assert cost(d, s) == float("inf")
            else:
                assert cost(d, s) == walked(d, s), (d, s)
    assert cost(0, 3) == cost(1, 0) == 0 and cost(2, 0) == float("inf")


def test_interval_costs_of_long_intervals_are_closed_forms():
    """Lookups take O(log r) binomials, so ``r ~ d / 2`` (S = 2, checkpoint) is no cost."""
    from pebbles._online import _interval_costs

    d = 10**12 + 1
    r = d // 2   # checkpoint game: beta(2, r) = 2r + 1, and the first r rows sum to r**2
    assert _interval_costs(pebbles.Game.CHECKPOINT)(d, 2) == r * d - r * r
    assert _interval_costs(pebbles.Game.INPLACE)(d, 1) == d * (d - 1) // 2


def test_budget_one_inplace_walks_in_place():
    r = _check(50, 1, "inplace")
    assert r.forward_steps == pebbles.min_forward_steps(50, 1, "inplace")


@pytest.mark.parametrize(("n", "s", "game"), [(3, 1, "checkpoint"), (2, 0, "inplace")])
def test_infeasible_budget_raises(n, s, game):
    with pytest.raises(pebbles.InfeasibleBudgetError, match=f"budget={s} cannot finish"):
        list(online(n, s, inplace=game == "inplace"))
    sched = OnlineScheduler(s, inplace=game == "inplace")
    least = 1 if game == "inplace" else 2  # the budget that goes on for every n
    with pytest.raises(pebbles.InfeasibleBudgetError,
                       match=f"budget={s} cannot go past .*; pass budget >= {least}") as info:
        for _ in range(n - 1):
            sched.advance()
    assert info.value.minimum == least
    if game == "checkpoint":  # budget 0 is refused at its first step with the same advice
        with pytest.raises(pebbles.InfeasibleBudgetError, match="pass budget >= 2"):
            OnlineScheduler(0).advance()


def test_bad_arguments():
    with pytest.raises(pebbles.PebblesTypeError, match="inplace"):
        OnlineScheduler(3, inplace="yes")
    with pytest.raises(pebbles.PebblesValueError, match="budget=-1"):
        OnlineScheduler(-1)
    with pytest.raises(pebbles.PebblesValueError, match="n=0"):
        online(0, 3)
    with pytest.raises(pebbles.PebblesValueError, match="beyond"):
        OnlineScheduler(3, beyond="moin")


def _problem(dim: int = 3):
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.normal(size=(dim, dim)) / dim

    def step(i, s):
        return np.tanh(a @ s) + 0.01 * (i + 1)

    def backward(i, s, g):
        d = (1 - np.tanh(a @ s) ** 2) * g
        return a.T @ d, np.outer(d, s)

    return step, backward, (lambda s: 2 * s), (lambda s: float(s @ s)), rng.normal(size=dim)


@pytest.mark.parametrize("budget", [2, 3, 5])
@pytest.mark.parametrize("stop", [1, 2, 7, 40, 130])
def test_replay_until_matches_store_all_bit_for_bit(budget, stop):
    import numpy as np

    from pebbles._online import replay_until

    step, backward, loss_grad, loss, s0 = _problem()
    r = replay_until(step, backward, loss_grad, s0, lambda i, s: i == stop, budget, loss=loss)
    ref = pebbles.replay(pebbles.store_all(stop), stop, s0, step, backward, loss_grad,
                         loss=loss)
    assert r.n == stop and r.backward_steps == stop and r.loss == ref.loss
    assert np.array_equal(r.grad_s0, ref.grad_s0)
    assert np.array_equal(r.grad_theta, ref.grad_theta)
    # one replay of online(stop, budget): its step calls and s_n, nothing more
    sim = pebbles.simulate(online(stop, budget), stop, budget=budget)
    assert r.forward_steps == sim.forward_steps + 1
    assert r.forward_steps == pebbles.lower(online(stop, budget), stop).forward_steps


@pytest.mark.parametrize("stop", [1, 2, 40])
def test_replay_until_running_loss_matches_store_all_bit_for_bit(stop):
    """A running loss sum l_i(s_i) up to the stop: the loss and gradients of replay's
    store-everything run, and l_i asked for each i in 1..n once, in the reverse sweep."""
    from pebbles._online import replay_until

    step, backward, loss_grad, loss, s0 = _problem()
    asked = {"until": [], "replay": []}

    def running(key):
        return lambda i, s: asked[key].append(i) or float(np.sin(s).sum() * i)

    def running_grad(i, s):
        return np.cos(s) * i

    r = replay_until(step, backward, loss_grad, s0, lambda i, s: i == stop, 3, loss=loss,
                     running_loss=running("until"), running_loss_grad=running_grad)
    ref = pebbles.replay(pebbles.store_all(stop), stop, s0, step, backward, loss_grad,
                         loss=loss, running_loss=running("replay"),
                         running_loss_grad=running_grad)
    plain = pebbles.replay(pebbles.store_all(stop), stop, s0, step, backward, loss_grad,
                           loss=loss)
    assert r.loss == ref.loss != plain.loss
    assert not np.array_equal(r.grad_s0, plain.grad_s0)
    assert np.array_equal(r.grad_s0, ref.grad_s0)
    assert np.array_equal(r.grad_theta, ref.grad_theta)
    assert sorted(asked["until"]) == sorted(asked["replay"]) == list(range(1, stop + 1))
    with pytest.raises(pebbles.PebblesTypeError, match=r"^running_loss=3 must be a function"):
        replay_until(step, backward, loss_grad, s0, lambda i, s: i == stop, 3, running_loss=3)


def test_replay_until_check_states_names_a_done_that_writes_into_its_state():
    """A ``done`` that changes the state it reads makes the gradient wrong (the reverse
    sweep recomputes states without it): check_states=True names it and the step;
    an honest ``done`` gives the same gradient with the check on as off."""
    import numpy as np

    from pebbles._online import replay_until

    step, backward, loss_grad, loss, s0 = _problem()

    def writes(i, s):
        if i == 3:
            s[0] = 0.0
        return i == 20

    kw = dict(step=step, backward=backward, loss_grad=loss_grad, budget=3)
    with pytest.raises(pebbles.PebblesValueError,
                       match="done at step 3 modified the state it was given"):
        replay_until(s0=s0.copy(), done=writes, check_states=True, **kw)
    honest = lambda i, s: i == 20  # noqa: E731
    on = replay_until(s0=s0, done=honest, check_states=True, **kw)
    off = replay_until(s0=s0, done=honest, **kw)
    assert np.array_equal(on.grad_s0, off.grad_s0)
    with pytest.raises(pebbles.PebblesTypeError, match="check_states"):
        replay_until(s0=s0, done=honest, check_states=1, **kw)


def test_replay_until_max_steps_and_errors():
    from pebbles._online import replay_until

    step, backward, loss_grad, _, s0 = _problem()
    r = replay_until(step, backward, loss_grad, s0, lambda i, s: False, 4, max_steps=25)
    assert r.n == 25
    with pytest.raises(pebbles.PebblesValueError, match="budget=1"):
        replay_until(step, backward, loss_grad, s0, lambda i, s: True, 1)
    with pytest.raises(pebbles.PebblesValueError, match="max_steps=0"):
        replay_until(step, backward, loss_grad, s0, lambda i, s: True, 3, max_steps=0)


def _failing(when, what, stop=40):
    """Callbacks of ``_problem`` whose ``what`` raises at the call that ``when(i, calls)``
    picks, and weak references to every state ``step`` made."""
    import collections
    import weakref

    import numpy as np

    class State(np.ndarray):
        """An ndarray subclass that can be weak-referenced."""

    step, backward, loss_grad, _, s0 = _problem()
    calls, refs = collections.Counter(), []

    def check(name, i):
        calls[name, i] += 1
        if name == what and when(i, calls[name, i]):
            raise ZeroDivisionError("boom")

    def my_step(i, s):
        check("step", i)
        out = step(i, s).view(State)
        refs.append(weakref.ref(out))
        return out

    def my_backward(i, s, g):
        check("backward", i)
        return backward(i, s, g)

    def my_done(i, s):
        check("done", i)
        return i == stop

    return (my_step, my_backward, loss_grad, s0.view(State), my_done), refs


@pytest.mark.parametrize(("what", "when", "k"), [
    ("step", lambda i, c: i == 17, 17),                  # forward phase
    ("step", lambda i, c: i == 30 and c == 2, 30),       # replayed in interval 21..38
    ("backward", lambda i, c: i == 23, 23),
    ("done", lambda i, c: i == 9, 9),
])
def test_replay_until_errors_name_the_step_and_free_states(what, when, k):
    import gc

    from pebbles._executor import CallbackError
    from pebbles._online import replay_until

    args, refs = _failing(when, what)
    with pytest.raises(CallbackError, match=f"{what}' raised ZeroDivisionError at step {k}:"
                       ) as info:
        replay_until(*args, 3)
    assert (info.value.callback, info.value.step) == (what, k)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    del info
    gc.collect()
    assert refs and all(r() is None for r in refs)


def test_replay_until_checks_what_callbacks_return():
    import numpy as np

    from pebbles._online import replay_until

    step, backward, loss_grad, _, s0 = _problem()
    stop = lambda i, s: i == 30  # noqa: E731
    wide = lambda k: lambda i, s: np.ones(4) if i == k else step(i, s)  # noqa: E731
    with pytest.raises(pebbles.PebblesTypeError, match="step at step 5 returned shape=.4"):
        replay_until(wide(5), backward, loss_grad, s0, stop, 3)  # forward phase
    flat = lambda i, s, g: (np.ones(4), None) if i == 23 else backward(i, s, g)  # noqa: E731
    with pytest.raises(pebbles.PebblesTypeError, match="backward at step 23 returned"):
        replay_until(step, flat, loss_grad, s0, stop, 3)
    with pytest.raises(pebbles.PebblesValueError, match="step at step 0 returned its input"):
        replay_until(lambda i, s: s, backward, loss_grad, s0, stop, 3)
    for bad, match in [(lambda i, s: s > 0, "done at step 1 returned ndarray of shape .3,."),
                       (lambda i, s: None, "done at step 1 returned NoneType")]:
        with pytest.raises(pebbles.PebblesTypeError, match=match):
            replay_until(step, backward, loss_grad, s0, bad, 3)
    for bad, shown in [(lambda i, s: np.float64(np.nan if i == 2 else 0.0), "2 returned np.fl"
                        "oat64.nan."), (lambda i, s: 0j, "1 returned 0j")]:  # true in Python
        with pytest.raises(pebbles.PebblesValueError, match=rf"^done at step {shown}; it must "
                           r"return a bool, and a NaN or a complex number is neither"):
            replay_until(step, backward, loss_grad, s0, bad, 3)

    class Undecided:
        def __bool__(self):
            raise ValueError("ambiguous")

    with pytest.raises(pebbles.PebblesTypeError, match=r"must return a bool \(one value") as info:
        replay_until(step, backward, loss_grad, s0, lambda i, s: Undecided(), 3)
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(pebbles.PebblesTypeError, match="help.pebbles.replay_until"):
        replay_until(step, backward, loss_grad, s0, None, 3)
    r = replay_until(step, backward, loss_grad, s0, lambda i, s: np.bool_(i == 4), 3)
    assert r.n == 4


@pytest.mark.parametrize("budget", [2, 5])
def test_replay_until_holds_what_the_online_schedule_holds(budget):
    """The states the run keeps are released as the reverse sweep frees them."""
    import weakref

    import numpy as np

    from pebbles._online import replay_until

    class State(np.ndarray):
        """An ndarray subclass that can be weak-referenced."""

    step, backward, loss_grad, _, s0 = _problem()
    refs: list[weakref.ref] = []
    most = [0]

    def counted(i, s):
        out = step(i, s).view(State)
        refs[:] = [r for r in refs if r() is not None] + [weakref.ref(out)]
        most[0] = max(most[0], len(refs))
        return out

    r = replay_until(counted, backward, loss_grad, s0.view(State), lambda i, s: i == 130,
                     budget)
    got, most[0] = most[0], 0
    ref = pebbles.replay(pebbles.schedule("online", 130, budget=budget), None, s0.view(State),
                         counted, backward, loss_grad)
    assert got == most[0] == ref.peak_states == budget + 1
    assert np.array_equal(r.grad_s0, ref.grad_s0)


def _recorded(step, backward, calls):
    """``step`` and ``backward`` that append ``(name, i)`` to ``calls``."""
    def rec_step(i, s):
        calls.append(("step", i))
        return step(i, s)

    def rec_backward(i, s, g):
        calls.append(("backward", i))
        return backward(i, s, g)

    return rec_step, rec_backward


@pytest.mark.parametrize(("budget", "stop", "beyond"), [
    (2, 1, "greedy"), (2, 2, "greedy"), (3, 9, "greedy"), (3, 700, "greedy"),
    (4, 1500, "wang-moin"), (10, 3000, "greedy")])
def test_replay_until_calls_are_those_of_the_online_schedule(budget, stop, beyond):
    """The reverse sweep runs piece by piece (subtrees of at most 256 steps): the calls of
    step and backward, in order, and the gradients are those of one replay of
    ``online(stop, budget)``, bit for bit (long intervals split into many pieces)."""
    step, backward, loss_grad, loss, s0 = _problem()
    got, want = [], []
    r = pebbles.replay_until(*_recorded(step, backward, got), loss_grad, s0,
                             lambda i, s: i == stop, budget, loss=loss, beyond=beyond,
                             check_states=stop == 700)
    ref = pebbles.replay(online(stop, budget, beyond=beyond), stop, s0,
                         *_recorded(step, backward, want), loss_grad, loss=loss)
    assert got == want and r.forward_steps == ref.forward_steps
    assert r.n == stop and r.loss == ref.loss
    assert np.array_equal(r.grad_s0, ref.grad_s0)
    assert np.array_equal(r.grad_theta, ref.grad_theta)


def _stop_programs(monkeypatch, run_them: bool) -> list[int]:
    """Patch the executor to record the rows of every slot program it is handed (and run
    them, or not); return the list it records into."""
    from pebbles._executor import _Replay

    sizes, run = [], _Replay.run

    def recorded(self, ops, bar):
        sizes.append(len(ops))
        if run_them:
            run(self, ops, bar)

    monkeypatch.setattr(_Replay, "run", recorded)
    return sizes


def _trivial(stop: int) -> dict:
    return dict(step=lambda i, s: s * 1.0, backward=lambda i, s, g: (g * 1.0, None),
                loss_grad=np.ones_like, s0=np.ones(1), done=lambda i, s: i == stop)


@pytest.mark.parametrize("stop", [2000, 20000])
def test_replay_until_hands_the_executor_pieces_of_bounded_size(monkeypatch, stop):
    """At the stop the executor gets the reverse sweep in pieces of at most 3 * 256 - 2
    rows (a subtree of 256 steps: its walks, frees and paints), whatever ``n``; it got
    the whole sweep at once (3 rows a step) before."""
    sizes = _stop_programs(monkeypatch, run_them=True)
    r = pebbles.replay_until(budget=10, **_trivial(stop))
    assert r.n == stop and r.backward_steps == stop
    assert len(sizes) > stop // 256 and max(sizes) <= 3 * 256 - 2


def test_replay_until_stop_memory_does_not_grow_with_n(monkeypatch):
    """Peak memory of building the reverse sweep at the stop (its slot programs; the
    states are bounded by the budget, tested above): under 2 MiB at n = 2000 and
    n = 40000 (0.4 and 0.8 MiB measured). Making the whole sweep's program took 1.1 KB
    a step: 2.1 and 44 MiB."""
    import tracemalloc

    import pebbles._online as on

    pebbles.replay_until(budget=5, **_trivial(300))  # imports, not counted below
    peaks, reverse = [], on._reverse_until

    def traced(r, kept, sched, bar):
        tracemalloc.start()
        try:
            reverse(r, kept, sched, bar)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()

    sizes = _stop_programs(monkeypatch, run_them=False)  # the programs, not their steps
    monkeypatch.setattr(on, "_reverse_until", traced)
    for stop in (2000, 40000):
        pebbles.replay_until(budget=5, **_trivial(stop))
    small, large = peaks
    assert small < 2 * 2**20 and large < 2 * 2**20, (small, large)
    assert sizes and max(sizes) <= 3 * 256 - 2


def test_replay_until_errors_suggest_only_what_it_takes():
    """Its errors named step_into and check_states, which replay takes and it does not."""
    def inplace(i, s):
        s *= 1.5
        return s

    with pytest.raises(pebbles.PebblesValueError, match="returned its input") as info:
        pebbles.replay_until(inplace, lambda i, s, g: (1.5 * g, None), np.ones_like,
                             np.ones(2), lambda i, s: i < 5, 3)
    assert "step_into" not in str(info.value)
    with pytest.raises(pebbles.InfeasibleBudgetError, match="budget=1 is too small for "
                                                            "replay_until.*2 stored states"):
        pebbles.replay_until(lambda i, s: 2 * s, lambda i, s, g: (2 * g, None), np.ones_like,
                             np.ones(2), lambda i, s: i < 5, 1)


def test_r2_range_checks_inplace():
    with pytest.raises(pebbles.PebblesTypeError, match=r"^inplace='x' must be True or False"):
        online_r2_range(3, inplace="x")


def test_replay_until_check_states_names_a_kept_state_changed_before_the_stop():
    """A step that keeps a reference to a state the forward phase keeps (s_21 of a run
    stopping at 40 with budget 3) and writes into it later gave a wrong gradient under
    check_states=True, found by no check (replay of the same schedule names it)."""
    def step_writing_into(kept_at):
        saved = {}

        def step(i, s):
            if i == kept_at:
                saved["s"] = s
            if i == kept_at + 5:
                saved.pop("s")[:] = 123.0
            return s * 0.9 + 0.1
        return step

    kw = dict(backward=lambda i, s, g: (g * 0.9, np.sum(s * g, keepdims=True)),
              loss_grad=np.ones_like, done=lambda i, s: i == 40, budget=3, check_states=True)
    with pytest.raises(pebbles.PebblesValueError, match=r"^a stored state changed while it "
                       r"was stored \(found as the reverse sweep began, in the state of step "
                       r"21, kept since that step\)"):
        pebbles.replay_until(step=step_writing_into(21), s0=np.ones(2), **kw)
    honest = pebbles.replay_until(step=step_writing_into(10**6), s0=np.ones(2), **kw)
    assert honest.n == 40


def test_replay_until_holds_no_more_than_its_steps_need(monkeypatch):
    """A budget far above n (10**7 for 10 steps) sized the executor's slot lists and the
    reverse sweep's free slots by the budget: 0.6 s and 500 MB for ten steps."""
    import tracemalloc

    pebbles.replay_until(budget=3, **_trivial(10))  # imports, not counted below
    tracemalloc.start()
    try:
        r = pebbles.replay_until(budget=10**7, **_trivial(10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.n == 10 and r.backward_steps == 10 and peak < 2**20, peak


def test_replay_until_progress_bar_counts_the_steps_then_the_reverse_sweep(monkeypatch):
    """progress=True: one bar without a total (n is not known), updated once per forward
    step until the stop, then once per slot operation of the reverse sweep, and closed;
    the result is that of a run without it."""
    import sys
    import types

    import pebbles._executor as ex

    bars = []

    class Bar:
        def __init__(self, total, unit):
            self.total, self.count, self.closed = total, 0, False
            bars.append(self)

        def update(self, k):
            self.count += k

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=Bar))
    step, backward, loss_grad, loss, s0 = _problem()
    kw = dict(step=step, backward=backward, loss_grad=loss_grad, s0=s0,
              done=lambda i, s: i == 40, budget=3, loss=loss)
    plain, shown = pebbles.replay_until(**kw), pebbles.replay_until(**kw, progress=True)
    assert np.array_equal(plain.grad_s0, shown.grad_s0) and plain.loss == shown.loss
    (bar,) = bars
    assert bar.total is None and bar.closed and bar.count > 40
    assert ex._progress_bar(None, False) is None
    with pytest.raises(pebbles.PebblesTypeError, match=r"^progress='yes' must be True or"):
        pebbles.replay_until(**kw, progress="yes")
