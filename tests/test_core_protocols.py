"""Python protocols of the core values and errors: pickle, copy, str, equality.

Library errors cross process boundaries (a worker's error reaches its parent), values
keep their read-only arrays through pickle and ``copy.deepcopy``, a Schedule built
directly is checked as ``pebbles.schedule`` checks one, and its options are plain
Python values.
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import pebbles
from pebbles import Game, Move, Schedule
from pebbles._executor import CallbackError
from pebbles._storage import DiskFullError

ROUND_TRIPS = [lambda x: pickle.loads(pickle.dumps(x)), copy.deepcopy]


def _infeasible() -> pebbles.InfeasibleBudgetError:
    with pytest.raises(pebbles.InfeasibleBudgetError) as info:
        pebbles.schedule("treeverse", 20, budget=1)
    return info.value


def _illegal() -> pebbles.IllegalMoveError:
    with pytest.raises(pebbles.IllegalMoveError) as info:
        pebbles.simulate([pebbles.forward(0, 2)], 2, budget=1)
    info.value.add_note("a note")
    return info.value


def _callback_error() -> CallbackError:
    def step(i, s):
        raise ZeroDivisionError("boom")

    with pytest.raises(CallbackError) as info:
        pebbles.replay(pebbles.schedule("treeverse", 4, budget=2), None, np.ones(2), step,
                       lambda i, s, g: (g, None), np.ones_like)
    return info.value


def _non_finite_error() -> pebbles.NonFiniteError:
    with pytest.raises(pebbles.NonFiniteError) as info:
        pebbles.replay(pebbles.schedule("treeverse", 4, budget=2), None, np.ones(2),
                       lambda i, s: s * np.inf if i == 2 else 2 * s,
                       lambda i, s, g: (g, None), np.ones_like, check_finite=True)
    assert (info.value.callback, info.value.step) == ("step", 2)
    return info.value


ERRORS = {
    "infeasible": _infeasible,
    "non-finite": _non_finite_error,
    "illegal": _illegal,
    "callback": _callback_error,
    "disk-full": lambda: DiskFullError("/tmp/d", 80, 3),
    "disk-full-fix": lambda: DiskFullError("/tmp/d", 80, "io-probe-0", fix="Free 1 GiB"),
}
ATTRIBUTES = ("minimum", "index", "move", "rule", "code", "callback", "step", "directory",
              "needed", "key", "errno", "__notes__")


@pytest.mark.parametrize("make", ERRORS.values(), ids=ERRORS.keys())
@pytest.mark.parametrize("trip", ROUND_TRIPS, ids=["pickle", "deepcopy"])
def test_library_errors_survive_pickle_and_deepcopy(make, trip):
    err = make()
    back = trip(err)
    assert type(back) is type(err)
    assert str(back) == str(err) and back.args == err.args
    for name in ATTRIBUTES:
        assert getattr(back, name, None) == getattr(err, name, None), name


def test_worker_error_reaches_the_parent_process():
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        future = pool.submit(pebbles.schedule, "treeverse", 20, budget=1)
        err = future.exception(timeout=120)
    assert isinstance(err, pebbles.InfeasibleBudgetError)
    assert err.minimum == 2


def _grad_theta(backward):
    sched = pebbles.schedule("treeverse", 8, budget=3)
    return pebbles.replay(sched, None, np.ones(3), lambda i, s: 2.0 * s, backward,
                          np.ones_like).grad_theta


def test_grad_theta_is_right_when_backward_reuses_one_buffer():
    buf = np.zeros(3)

    def reusing(i, s, g):
        buf[:] = g
        return 2.0 * g, buf

    fresh = _grad_theta(lambda i, s, g: (2.0 * g, g.copy()))
    np.testing.assert_array_equal(fresh, np.full(3, 255.0))
    np.testing.assert_array_equal(_grad_theta(reusing), fresh)


def test_grad_theta_of_pytrees_with_a_reused_buffer():
    buf = np.zeros(3)

    def reusing(i, s, g):
        buf[:] = g
        return 2.0 * g, {"w": (buf,)}

    got = _grad_theta(reusing)
    np.testing.assert_array_equal(got["w"][0], np.full(3, 255.0))


def test_grad_theta_of_torch_tensors_with_a_reused_buffer():
    """copy.copy of a torch tensor shares its storage: the sum starts from a clone."""
    torch = pytest.importorskip("torch")
    buf = torch.zeros(3, dtype=torch.float64)

    def reusing(i, s, g):
        buf[:] = g
        return 2.0 * g, buf

    got = pebbles.replay(pebbles.schedule("treeverse", 8, budget=3), None,
                         torch.ones(3, dtype=torch.float64), lambda i, s: 2.0 * s, reusing,
                         torch.ones_like).grad_theta
    assert torch.equal(got, torch.full((3,), 255.0, dtype=torch.float64))


def test_a_schedule_replaced_to_a_budget_below_its_need_is_refused():
    """dataclasses.replace builds a Schedule: the need check of pebbles.schedule runs."""
    import dataclasses

    s = pebbles.schedule("store-all", 10, budget=9)
    with pytest.raises(pebbles.InfeasibleBudgetError, match="store-all holds 9 states"):
        dataclasses.replace(s, budget=3)
    with pytest.raises(pebbles.InfeasibleBudgetError, match="the least budget"):
        dataclasses.replace(pebbles.schedule("treeverse", 10, budget=3), budget=-1)

def _chain_costs():
    return pebbles.ChainCosts(np.ones(3), np.full(3, 2.0), np.array([8, 8, 16, 8]),
                              grads=np.array([1.0, 0.0, 4.0]))


@pytest.mark.parametrize("trip", ROUND_TRIPS, ids=["pickle", "deepcopy"])
def test_values_keep_read_only_arrays(trip):
    program = pebbles.lower(pebbles.schedule("treeverse", 10, budget=3))
    costs = _chain_costs()
    q, c = trip(program), trip(costs)
    assert not q.ops.flags.writeable
    assert not any(a.flags.writeable for a in (c.forward, c.backward, c.sizes, c.grads))
    assert (q, hash(q)) == (program, hash(program))
    assert (c, hash(c)) == (costs, hash(costs))
    moves = list(pebbles.store_all(3))
    assert pebbles.simulate(moves, 3, costs=c) == pebbles.simulate(moves, 3, costs=costs)


def test_tradeoff_curves_gives_a_new_dict_each_call():
    first = pebbles.tradeoff_curves(20)
    treeverse = first["treeverse"]
    first["treeverse"] = first["bennett"]
    again = pebbles.tradeoff_curves(20)
    assert type(again) is dict and again is not first
    assert again["treeverse"] is treeverse
    assert not treeverse[0].flags.writeable


def test_schedule_built_directly_refuses_an_unknown_method():
    with pytest.raises(pebbles.PebblesValueError, match="did you mean 'treeverse'"):
        Schedule("trevers", 5, Game.CHECKPOINT, 3)


def test_schedule_built_directly_refuses_a_game_its_options_contradict():
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"game=.*INPLACE.*contradicts.*pebbles\.schedule"):
        Schedule("treeverse", 20, Game.INPLACE, 4)


@pytest.mark.parametrize("args, error", [
    (("treeverse", 20, Game.CHECKPOINT, None), pebbles.PebblesTypeError),
    (("treeverse", 20, Game.CHECKPOINT, -1), pebbles.PebblesValueError),
    (("treeverse", 0, Game.CHECKPOINT, 3), pebbles.PebblesValueError),
    (("treeverse", 20, Game.CHECKPOINT, 3, 5), pebbles.PebblesTypeError),
    (("treeverse", 20, Game.CHECKPOINT, 3, (("depth", 2),)), pebbles.PebblesTypeError),
    (("periodic", 20, Game.CHECKPOINT, None, (("every", 0),)), pebbles.PebblesValueError),
])
def test_schedule_built_directly_is_checked(args, error):
    with pytest.raises(error):
        Schedule(*args)


def test_schedule_built_directly_equals_the_one_schedule_makes():
    made = pebbles.schedule("treeverse", 20, budget=4, inplace=True)
    direct = Schedule("treeverse", 20, "inplace", np.int64(4), (("inplace", np.True_),))
    assert direct == made and repr(direct) == repr(made)
    assert direct.simulate().forward_steps == made.simulate().forward_steps


def test_unpickled_schedule_works():
    s = pebbles.schedule("two-level", 12, budget=2, disk_budget=2, write_cost=1,
                         read_cost=1)
    back = pickle.loads(pickle.dumps(s))
    assert back == s and str(back) == str(s)
    assert back.simulate() == s.simulate()


def test_schedule_options_are_plain_python_values():
    inf = pebbles.schedule("two-level", 30, budget=3, disk_budget=math.inf, write_cost=2,
                           read_cost=np.float32(1))
    none = pebbles.schedule("two-level", 30, budget=3, disk_budget=None, write_cost=2.0,
                            read_cost=1)
    assert inf == none and hash(inf) == hash(none)
    assert "inf" not in str(inf)
    made = pebbles.schedule("treeverse", 20, budget=np.int64(3), inplace=np.True_)
    assert "np." not in repr(made)
    assert type(made.budget) is int and type(dict(made.options)["inplace"]) is bool
    assert all(type(v) is float for k, v in inf.options if k.endswith("_cost"))


def test_str_of_a_move_of_no_kind():
    assert str(Move(99, 1)) == "kind=99 1 -1"
    assert str(Move("x", 1, 2)) == "kind='x' 1 2"
    assert str(Move(True, 1)) == "kind=True 1 -1"
    assert str(Move(np.int64(2), 4)) == "paint 4"


def _refusals(moves):
    """The error class each entry point raises for ``moves``."""
    out = []
    for call in (lambda: pebbles.simulate(moves, 2), lambda: pebbles.lower(moves, 2),
                 lambda: pebbles.encode(moves), lambda: pebbles.format_move(moves[0])):
        with pytest.raises(pebbles.PebblesError) as info:
            call()
        out.append(type(info.value))
    return out


def test_a_bad_kind_is_one_error_class_everywhere():
    assert _refusals([Move(99, 1)]) == [pebbles.PebblesValueError] * 4
    assert _refusals([(-1, 1, -1)]) == [pebbles.PebblesValueError] * 4
    assert _refusals([Move("x", 1)]) == [pebbles.PebblesTypeError] * 4
    assert _refusals([Move(2.0, 1)]) == [pebbles.PebblesTypeError] * 4


FITLESS = {"online", "periodic", "two-level", "periodic-disk"}


def test_candidates_offers_exactly_the_methods_with_a_fit_rule():
    fitless = {m for m in pebbles.methods() if pebbles.describe(m).fit is None}
    assert fitless == FITLESS
    offered = {s.method for s in pebbles.candidates(8, 7)}
    assert offered == set(pebbles.methods()) - FITLESS
    assert pebbles.schedule("online", 8, budget=7).simulate().peak_states <= 7


def test_candidates_docs_name_the_methods_never_offered():
    doc = " ".join(pebbles.candidates.__doc__.split())
    never = doc[doc.index("The others are never offered"):]
    for name in FITLESS:
        assert name in never
    for name in set(pebbles.methods()) - FITLESS:
        assert name in doc[:doc.index("The others")]


@pytest.mark.parametrize("m,needs", [((5,), "i and j"), ((5, 0), "i and j"), ((0,), "a cell")])
def test_format_move_of_a_short_tuple_says_what_the_move_needs(m, needs):
    with pytest.raises(pebbles.PebblesValueError, match=f"is not a move: .* needs {needs}"):
        pebbles.format_move(m)


def test_plans_no_disk_error_survives_pickle():
    from pebbles._planner import NoDiskError

    err = NoDiskError("background_writes", "needs a disk to write to", "give write_cost")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.argument, back.rule) == \
        (NoDiskError, str(err), err.argument, err.rule)


@pytest.mark.parametrize("method,kw", [
    ("treeverse", dict(budget=4)), ("treeverse", dict(budget=4, inplace=True)),
    ("treeverse-paper", dict(delta=3, tau=5)), ("bennett", dict(k=2)), ("bennett", dict(k=3)),
    ("bennett-gradient", dict(k=2)), ("reversible-optimal", dict(budget=6)),
    ("reversible-gradient", dict(budget=6)), ("store-all", {}), ("recompute-all", {}),
    ("online", dict(budget=4)), ("periodic", dict(every=5)),
    ("two-level", dict(budget=3, write_cost=1, read_cost=1)),
    ("periodic-disk", dict(budget=3, period=10))])
@pytest.mark.parametrize("n", [1, 7, 30])
def test_most_moves_bounds_every_methods_stream(method, kw, n):
    """pebbles.most_moves: None or at least the stream's length (exact with a formula)."""
    s = pebbles.schedule(method, n, **kw)
    most, length = pebbles.most_moves(s), len(s.encode())
    assert most is None or most >= length
    if pebbles.describe(method).moves is not None:
        assert most == length


def test_public_errors_are_named_from_pebbles():
    """Every exception class ``pebbles`` exports shows as ``pebbles.NAME`` (tracebacks,
    reprs) and pickles by that name."""
    errors = [getattr(pebbles, name) for name in pebbles.__all__
              if isinstance(getattr(pebbles, name), type)
              and issubclass(getattr(pebbles, name), BaseException)]
    assert len(errors) >= 10
    for cls in errors:
        assert cls.__module__ == "pebbles", cls
        assert pickle.loads(pickle.dumps(cls)) is cls
