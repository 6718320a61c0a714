"""The generic executor with stores of one's own, streams that end with states on disk,
leaves that cannot alias, and interrupts met in the store's calls."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import pebbles
from pebbles import DiskStore, MemoryStore
from pebbles import _states as T

A = np.linspace(0.5, 1.1, 6)
S0 = np.linspace(0.0, 1.0, 6)


def step(i, s):
    return np.sin(s) * A + 0.1 * i


def step_into(i, s, out):
    out[...] = np.sin(s) * A + 0.1 * i


def backward(i, s, g):
    return np.cos(s) * A * g, None


def run(schedule, n=None, **kw):
    return pebbles.replay(schedule, n, S0, step, backward, np.ones_like, **kw)


# -- stores that keep the arrays they are given --------------------------------------
class _KeepsArrays:
    """A store that keeps the very array put and hands it out again from ``get``."""

    def __init__(self):
        self.data = {}

    def put(self, key, array):
        self.data[key] = array

    def get(self, key):
        return self.data[key]

    def delete(self, key):
        del self.data[key]


class _KeepsArraysIgnoresOut(_KeepsArrays):
    """As :class:`_KeepsArrays`, with a ``get`` that takes ``out=`` and ignores it."""

    def get(self, key, out=None):
        return self.data[key]


@pytest.mark.parametrize("store_type", [_KeepsArrays, _KeepsArraysIgnoresOut])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("check_states", [False, True])
def test_a_store_that_keeps_the_arrays_it_is_given_gives_the_store_all_gradient(
        store_type, inplace, check_states):
    n = 30
    s = pebbles.schedule("two-level", n, budget=2, disk_budget=3, write_cost=1, read_cost=1,
                         inplace=inplace)
    ref = run(pebbles.schedule("store-all", n))
    store = store_type()
    r = run(s, step_into=step_into, store=store, check_states=check_states)
    assert r.writes > 0 and r.reads > 0 and store.data == {}
    assert np.array_equal(r.grad_s0, ref.grad_s0)


def test_a_store_of_ones_own_is_given_copies_and_the_built_in_ones_the_states():
    """MemoryStore and DiskStore copy on put and get: the executor adds no copy for them."""
    made, seen = [], []

    def fwd(i, s):
        made.append(step(i, s))
        return made[-1]

    class Watched(MemoryStore):
        def put(self, key, array, into=None):
            seen.append(array)
            super().put(key, array, into=into)

    from pebbles._executor import _copying

    with DiskStore() as disk:
        assert all(_copying(st, name) for st in (MemoryStore(), disk)
                   for name in ("put", "get"))
    assert not _copying(Watched(), "put") and _copying(Watched(), "get")
    assert not any(_copying(_KeepsArrays(), name) for name in ("put", "get"))
    s = pebbles.schedule("two-level", 20, budget=2, write_cost=1, read_cost=1)
    pebbles.replay(s, None, S0, fwd, backward, np.ones_like, store=Watched())
    assert seen and not any(a is m for a in seen for m in made)


# -- a stream that leaves states on disk -------------------------------------------
ENDS_ON_DISK = ["place 1", "store 1", "place 2", "paint 2", "remove 2", "paint 1",
                "remove 1", "paint 0"]


@pytest.mark.parametrize("store_type", [DiskStore, MemoryStore])
def test_a_stream_that_ends_with_a_state_on_disk_leaves_the_store_empty(store_type):
    moves = [pebbles.parse_move(m) for m in ENDS_ON_DISK]
    assert pebbles.simulate(moves, 3, "checkpoint", budget=3, disk_budget=1).writes == 1
    ref = run(pebbles.schedule("store-all", 3))
    with store_type() as store:
        for _ in range(2):  # the store serves a second replay
            r = run(moves, 3, store=store)
            assert r.writes == 1 and len(store) == 0
            assert np.array_equal(r.grad_s0, ref.grad_s0)
            if store_type is DiskStore:
                store.reclaim(wait=True)
                assert os.listdir(store.directory) == []


# -- leaves that cannot be written into never alias --------------------------------
@pytest.mark.parametrize("flag", [np.False_, np.True_, np.float64(0.5), 3, 2.5, None],
                         ids=repr)
def test_scalar_leaves_shared_between_states_are_not_taken_for_aliases(flag):
    """A NumPy bool is one of two objects and a small int one of a few: a step that
    computes a fresh one returns the same object as its input's, which is no alias."""
    s0 = (np.ones(2), flag)

    def fwd(i, s):
        return s[0] * 1.5, (np.bool_(s[0][0] > 2.0) if isinstance(flag, np.bool_) else s[1])

    r = pebbles.replay(pebbles.schedule("treeverse", 6, budget=2), None, s0, fwd,
                       lambda i, s, g: ((1.5 * g[0], g[1]), None),
                       lambda s: (np.ones(2), s[1]))
    assert np.array_equal(r.grad_s0[0], np.full(2, 1.5 ** 6))


def test_only_leaves_that_can_be_written_into_alias():
    x = np.ones(3)
    assert not T.aliases((np.ones(1), np.True_), (np.ones(1), np.True_))
    assert not T.aliases(np.True_, np.True_) and not T.aliases((1, 2.5), (1, 2.5))
    assert T.aliases((x, np.True_), (x[1:], np.False_)) and T.aliases(x, x)
    held = T.Holdings()
    held.add((x, np.True_, 7))
    assert not held.clash((np.ones(3), np.True_, 7)) and held.clash((x[:1], np.True_, 7))
    held.discard((x, np.True_, 7))
    assert held.by_owner == {}


def test_a_step_that_returns_its_input_with_a_scalar_leaf_is_refused():
    def fwd(i, s):
        s[0][...] *= 1.5
        return s[0], s[1]

    with pytest.raises(pebbles.PebblesValueError, match="returned its input"):
        pebbles.replay(pebbles.schedule("store-all", 4), None, (np.ones(2), np.True_), fwd,
                       lambda i, s, g: (g, None), lambda s: (np.ones(2), np.False_))


# -- a KeyboardInterrupt in the store's calls --------------------------------------
class _Interrupts(MemoryStore):
    """A store whose ``op`` (put, get or delete) raises KeyboardInterrupt once, for
    ``key``."""

    def __init__(self, op, key):
        super().__init__()
        self.op, self.key = op, key

    def _stop(self, op, key):
        if (op, key) == (self.op, self.key):
            self.op = None
            raise KeyboardInterrupt

    def put(self, key, array, into=None):
        self._stop("put", key)
        super().put(key, array, into=into)

    def get(self, key, out=None):
        self._stop("get", key)
        return super().get(key) if out is None else super().get(key, out=out)

    def delete(self, key):
        self._stop("delete", key)
        super().delete(key)


@pytest.mark.parametrize("op, kind", [("put", "STORE"), ("get", "LOAD"),
                                      ("delete", "DISCARD")])
def test_a_keyboard_interrupt_in_a_stores_call_names_the_step_and_leaves_nothing(op, kind):
    s = pebbles.schedule("two-level", 40, budget=3, write_cost=0.1, read_cost=0.1)
    key = sorted(m.a for m in s if m.kind.name == kind)[1]  # after a state is stored
    store = _Interrupts(op, key)
    with pytest.raises(KeyboardInterrupt) as info:
        run(s, store=store, step_into=step_into)
    what = {"put": "store", "get": "load", "delete": "discard"}[op]
    assert info.value.__notes__ == [f"pebbles: stopped at the {what} of the state of step "
                                    f"{key}"]
    assert len(store) == 0 and store.reclaim() == []
    assert np.array_equal(run(s, store=store).grad_s0, run(s).grad_s0)  # usable again


class _InterruptsWaiting(MemoryStore):
    """A store that borrows, and whose first ``reclaim`` (the replay fetching a free
    buffer) raises KeyboardInterrupt, as a Ctrl-C while waiting for a write would."""

    borrows = True
    armed = True

    def reclaim(self, wait=False):
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return super().reclaim(wait)


def test_a_keyboard_interrupt_waiting_for_a_lent_buffer_names_the_step():
    s = pebbles.schedule("two-level", 40, budget=3, write_cost=1, read_cost=1)
    store = _InterruptsWaiting()
    with pytest.raises(KeyboardInterrupt) as info:
        run(s, store=store, step_into=step_into)
    assert len(info.value.__notes__) == 1, info.value.__notes__
    assert re.fullmatch(r"pebbles: stopped (before step \d+|at the (store|load) of the "
                        r"state of step \d+)", info.value.__notes__[0])
    assert len(store) == 0 and store.reclaim() == []


# -- a DiskStore whose background write failed -----------------------------------------
def _full_beyond(monkeypatch, nbytes):
    """Make every write of a DiskStore of more than ``nbytes`` bytes fail as a full disk."""
    import errno

    from pebbles import _storage

    real = _storage._Writer.write

    def write(self, key, array):
        if array.nbytes > nbytes:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, key, array)

    monkeypatch.setattr(_storage._Writer, "write", write)


def test_a_disk_store_whose_write_failed_in_a_replay_serves_the_next_one(tmp_path,
                                                                          monkeypatch):
    """Before, the store stayed failed: the next replay ran a step, then raised the same
    DiskFullError object again, naming the earlier replay's state and carrying its note."""
    _full_beyond(monkeypatch, 1000)
    s = pebbles.schedule("two-level", 12, budget=2, write_cost=0.2, read_cost=0.2)
    big = dict(step=lambda i, x: 0.5 * x, backward=lambda i, x, g: (0.5 * g, None),
               loss_grad=np.ones_like)
    with DiskStore(tmp_path) as st:
        folder = st.directory
        with pytest.raises(pebbles.DiskFullError):
            pebbles.replay(s, None, np.zeros(200), store=st, **big)
        assert not os.path.exists(folder) and len(st) == 0 and not st.closed
        r = run(s, store=st, step_into=step_into)
        assert np.array_equal(r.grad_s0, run(s).grad_s0) and r.writes > 0
        assert st.directory != folder and os.listdir(st.directory) == []
        with pytest.raises(pebbles.DiskFullError) as info:  # fails anew, and is reported
            pebbles.replay(s, None, np.zeros(200), store=st, **big)
        assert np.array_equal(run(s, store=st).grad_s0, r.grad_s0)
    assert os.listdir(tmp_path) == [] and info.value.key is not None


def test_a_ctrl_c_while_a_replay_frees_a_failed_store_leaves_it_to_the_next(tmp_path,
                                                                          monkeypatch):
    """A Ctrl-C landing in the cleanup after a failed write (as the store makes its folder
    anew) left the store failed, refused by the next replay, and the interrupt without
    the step; the next replay now makes the store usable first."""
    from pebbles import _storage

    _full_beyond(monkeypatch, 1000)
    s = pebbles.schedule("two-level", 12, budget=2, write_cost=0.2, read_cost=0.2)
    big = dict(step=lambda i, x: 0.5 * x, backward=lambda i, x, g: (0.5 * g, None),
               loss_grad=np.ones_like)
    made = _storage._make_folder

    def interrupted(*args):
        raise KeyboardInterrupt

    with DiskStore(tmp_path) as st:
        monkeypatch.setattr(_storage, "_make_folder", interrupted)
        with pytest.raises(KeyboardInterrupt) as info:
            pebbles.replay(s, None, np.zeros(200), store=st, **big)
        assert isinstance(info.value.__context__, pebbles.DiskFullError)
        assert any(re.match(r"pebbles: stopped at step \d+", note)
                   for note in info.value.__notes__)
        monkeypatch.setattr(_storage, "_make_folder", made)
        assert np.array_equal(run(s, store=st).grad_s0, run(s).grad_s0)
    assert os.listdir(tmp_path) == []


def test_a_disk_store_that_failed_outside_a_replay_is_refused_before_any_step(tmp_path,
                                                                               monkeypatch):
    _full_beyond(monkeypatch, 1000)
    s = pebbles.schedule("two-level", 12, budget=2, write_cost=0.2, read_cost=0.2)
    calls: list = []
    with DiskStore(tmp_path) as st:
        st.put("big", np.zeros(200))
        with pytest.raises(pebbles.DiskFullError):
            st.get("big")
        with pytest.raises(pebbles.StoreError, match=r"^store=<DiskStore on .+> failed before "
                                                     r"this replay \(DiskFullError: .+close it "
                                                     r"and make a new one"):
            pebbles.replay(s, None, S0, lambda i, x: calls.append(i) or step(i, x), backward,
                           np.ones_like, store=st)
    assert calls == []


def test_a_store_serving_a_replay_is_refused_by_a_second_one(tmp_path):
    """Two replays sharing one store mixed their states (the second's put met the first's
    key: "the store already holds 2"), in threads or from a callback: the second is now
    refused before any step, naming the rule; the store serves again once the first ends."""
    s = pebbles.schedule("two-level", 12, budget=2, write_cost=0.2, read_cost=0.2)
    with DiskStore(tmp_path) as st:
        inner: list = []

        def nested(i, x):
            if i == 3 and not inner:
                with pytest.raises(pebbles.PebblesValueError,
                                   match=r"^store=<DiskStore on .+> is serving another replay "
                                         r"now .+one replay at a time") as info:
                    pebbles.replay(s, None, S0, step, backward, np.ones_like, store=st)
                inner.append(info.value)
            return step(i, x)

        r = pebbles.replay(s, None, S0, nested, backward, np.ones_like, store=st)
        assert inner and np.array_equal(r.grad_s0, run(s).grad_s0)
        again = pebbles.replay(s, None, S0, step, backward, np.ones_like, store=st)
        assert np.array_equal(again.grad_s0, r.grad_s0) and len(st) == 0


def test_a_store_whose_get_returns_none_is_named_with_what_get_must_return():
    class _Forgets(_KeepsArrays):
        def get(self, key):
            return None

    s = pebbles.schedule("periodic-disk", 8, budget=2, period=2)
    with pytest.raises(pebbles.PebblesTypeError) as info:
        run(s, store=_Forgets())
    assert re.search(r"^the store's get at step \d+ returned None; expected shape=\(6,\), "
                     r"dtype=float64 \(those of s0\): get\(key\) must return the array put "
                     r"under key$", str(info.value)), str(info.value)
    assert "step_into" not in str(info.value)


@pytest.mark.parametrize("method, options", [
    ("periodic-disk", dict(period=2)),
    ("two-level", dict(disk_budget=3, write_cost=1, read_cost=1))])
def test_one_number_as_a_numpy_scalar_is_stored_on_disk_as_a_0d_array(method, options):
    """replay's docstring offers np.float64(x) for one number: the disk methods take it too
    (their store keeps a 0-d array), with the store-everything gradient."""
    def scalar_step(i, s):
        return np.sin(s) * 1.1 + 0.1 * i

    def scalar_backward(i, s, g):
        return np.cos(s) * 1.1 * g, None

    n, s0 = 8, np.float64(0.3)
    s = pebbles.schedule(method, n, budget=2, **options)
    r = pebbles.replay(s, n, s0, scalar_step, scalar_backward, np.ones_like)
    ref = pebbles.replay(pebbles.store_all(n), n, s0, scalar_step, scalar_backward,
                         np.ones_like)
    assert r.writes > 0 and float(r.grad_s0) == float(ref.grad_s0)
    with pytest.raises(pebbles.PebblesTypeError, match=r"one number: s0=np.asarray\(x\)"):
        pebbles.replay(s, n, 0.3, scalar_step, scalar_backward, np.ones_like)
