"""The generic executor running two-level schedules through a store (memory or disk)."""

from __future__ import annotations

import dataclasses
import errno
import gc
import os
import re
import threading
import traceback
import weakref

import numpy as np
import pytest

import pebbles
from pebbles import CallbackError, DiskFullError, DiskStore, MemoryStore

A = np.array([[0.9, 0.2, 0.0], [-0.1, 0.8, 0.3], [0.05, 0.0, 1.1]])
W = np.array([1.0, 2.0, -1.0])
S0 = np.array([1.0, -2.0, 0.5])


def run(schedule, step=None, **kw):
    return pebbles.replay(schedule, None, S0, step or (lambda i, s: A @ s + 0.01 * i),
                          lambda i, s, g: (A.T @ g, g.copy()), lambda s: W.copy(), **kw)


@pytest.mark.parametrize("disk", [None, 2, 5])
@pytest.mark.parametrize("inplace", [False, True])
def test_disk_gradients_equal_memory_only_bit_for_bit(tmp_path, disk, inplace):
    n = 150
    ref = run(pebbles.schedule("store-all", n))
    s = pebbles.schedule("two-level", n, budget=3, disk_budget=disk, write_cost=1.5,
                         read_cost=0.5, inplace=inplace)
    sim = s.simulate()
    with DiskStore(tmp_path / "d") as store:
        r = run(s, store=store, step_into=(lambda i, x, out: np.copyto(out, A @ x + 0.01 * i))
                if inplace else None)
        assert store.bytes_written == sim.writes * S0.nbytes
    assert not (tmp_path / "d").exists()
    assert np.array_equal(r.grad_s0, ref.grad_s0) and np.array_equal(r.grad_theta,
                                                                    ref.grad_theta)
    assert (r.writes, r.reads) == (sim.writes, sim.reads) and sim.writes > 0
    assert r.forward_steps == sim.forward_steps + r.extra_steps
    # the default store lives in memory and is closed by the replay
    assert np.array_equal(run(s).grad_s0, ref.grad_s0)


def test_a_failing_callback_leaves_no_files_and_no_states(tmp_path):
    n = 120
    s = pebbles.schedule("two-level", n, budget=3, write_cost=1, read_cost=1)
    refs = []

    def step(i, x):
        if i == 90:
            raise RuntimeError("boom")
        out = (A @ x).view(_State)
        refs.append(weakref.ref(out))
        return out

    folder = tmp_path / "states"
    with pytest.raises(CallbackError, match="at step 90"), DiskStore(folder) as store:
        run(s, step=step, store=store)
    assert not folder.exists()
    gc.collect()
    assert refs and all(r() is None for r in refs)


class _State(np.ndarray):
    """An ndarray that weak references can follow."""


class _FullStore(MemoryStore):
    """A store whose third write fails like a full disk."""

    def put(self, key, array):
        if len(self) >= 2:
            raise DiskFullError("/nowhere", array.nbytes, key)
        super().put(key, array)


def test_a_full_disk_is_a_clear_error():
    s = pebbles.schedule("two-level", 200, budget=3, write_cost=1, read_cost=1)
    with pytest.raises(DiskFullError, match="disk full") as info:
        run(s, store=_FullStore())
    assert info.value.errno == errno.ENOSPC


def test_pytree_states_and_bad_stores_are_refused():
    s = pebbles.schedule("two-level", 50, budget=2, write_cost=1, read_cost=1)
    with pytest.raises(TypeError, match="store="):
        run(s, store=object())
    calls = []
    with pytest.raises(TypeError, match="s0 is a tuple.*NumPy arrays"):
        pebbles.replay(s, None, (S0, S0), lambda i, x: calls.append(i) or (A @ x[0], x[1]),
                       lambda i, x, g: (g, None), lambda x: (W.copy(), W.copy()))
    assert calls == []  # refused before any step runs


class _Tracked(np.ndarray):
    """State buffers of one test: each new one (not a view) is remembered weakly."""

    live: list = []

    def __array_finalize__(self, obj):
        if self.base is None:
            _Tracked.live.append(weakref.ref(self))


class _SlowCountingStore(DiskStore):
    """A disk store whose writes take a while and that counts its own copies."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.own = self.waits = 0
        write = self._w.write

        def slow(key, array):  # the writer lags behind the replay
            threading.Event().wait(0.02)
            write(key, array)

        self._w.write = slow

    def put(self, key, array, into=None):
        self.own += into is None
        super().put(key, array, into=into)

    def reclaim(self, wait=False):
        self.waits += wait
        return super().reclaim(wait)


@pytest.mark.parametrize("inplace", [False, True])
def test_the_store_copies_into_free_state_buffers_and_adds_none(tmp_path, inplace):
    """With step_into, every copy being written sits in a free buffer of the replay's,
    so the state buffers alive never exceed the program's slots besides s_0, even when
    the writes lag behind (the replay then waits for a buffer)."""
    n = 150
    s = pebbles.schedule("two-level", n, budget=3, write_cost=1.5, read_cost=0.5,
                         inplace=inplace)
    cap = pebbles.lower(s).nslots - 1
    _Tracked.live = []
    most = [0]

    def alive():
        most[0] = max(most[0], sum(r() is not None for r in _Tracked.live))

    def step(i, x):
        alive()
        out = _Tracked(x.shape)
        out[...] = A @ x + 0.01 * i
        return out

    def step_into(i, x, out):
        alive()
        out[...] = A @ x + 0.01 * i

    with _SlowCountingStore(tmp_path / "d", queue_size=1) as store:
        r = run(s, step=step, step_into=step_into, store=store)
        assert store.own == 0 and store.waits > 0 and r.writes > 0
    assert 0 < most[0] <= cap and r.peak_buffers <= cap
    ref = run(pebbles.schedule("store-all", n))
    assert np.array_equal(r.grad_s0, ref.grad_s0) and np.array_equal(r.grad_theta,
                                                                    ref.grad_theta)


@pytest.mark.parametrize("make", [MemoryStore, DiskStore])
def test_a_store_the_caller_passed_is_emptied_after_a_failure_and_can_be_reused(make):
    """A failed replay deletes the states it put in the caller's store, so the same store
    serves the next try (before, the retry failed: 'the store already holds 4')."""
    s = pebbles.schedule("two-level", 20, budget=3, disk_budget=5, write_cost=1, read_cost=1)
    ref = run(pebbles.schedule("store-all", 20))

    def failing_backward(i, x, g):
        if i == 17:
            raise RuntimeError("transient failure")
        return A.T @ g, g.copy()

    with make() as store:
        with pytest.raises(CallbackError, match="at step 17"):
            pebbles.replay(s, None, S0, lambda i, x: A @ x + 0.01 * i, failing_backward,
                           lambda x: W.copy(), store=store)
        assert len(store) == 0
        assert np.array_equal(run(s, store=store).grad_s0, ref.grad_s0)


def test_keyboard_interrupt_in_a_callback_keeps_its_type_and_names_the_step():
    def step(i, x):
        if i == 7:
            raise KeyboardInterrupt
        return A @ x

    with pytest.raises(KeyboardInterrupt) as info:
        run(pebbles.schedule("treeverse", 12, budget=3), step=step)
    assert info.value.__notes__ == ["pebbles: stopped in callback 'step' at step 7"]


@pytest.mark.parametrize("make", [MemoryStore, DiskStore])
def test_states_in_fortran_order_go_through_the_store_with_step_into(make):
    """Pooled buffers of Fortran-ordered states are not lent to the store (it copies and
    reads C order); before, the replay failed with 'into has shape (4, 3) ... (4, 3)'."""
    M = np.linspace(0.5, 1.0, 16).reshape(4, 4) / 3.0
    f0 = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    step = lambda i, x: np.asfortranarray(M @ x)  # noqa: E731
    args = (f0, step, lambda i, x, g: (M.T @ g, None), lambda x: np.ones_like(x))
    ref = pebbles.replay(pebbles.schedule("store-all", 30), None, *args)
    s = pebbles.schedule("two-level", 30, budget=3, disk_budget=4, write_cost=1, read_cost=1)
    with make() as store:
        r = pebbles.replay(s, None, *args, store=store,
                           step_into=lambda i, x, out: np.matmul(M, x, out=out))
    assert r.writes > 0 and np.array_equal(r.grad_s0, ref.grad_s0)


@pytest.mark.parametrize("method, options", [("treeverse", {}),
                                             ("two-level", {"write_cost": 1, "read_cost": 1})])
@pytest.mark.parametrize("read_only", [False, True])
def test_states_that_cannot_be_written_into_are_not_given_to_step_into(method, options,
                                                                      read_only):
    """A 0-d state that NumPy returns as a scalar, or a read-only array, is stepped with
    ``step`` rather than handed to ``step_into`` as ``out`` (which raised)."""
    s0 = np.ones(3) if read_only else np.array(1.0)

    def step(i, x):
        out = np.asarray(0.5 * x)
        out.flags.writeable = not read_only
        return out if read_only else 0.5 * x  # 0.5 * (0-d array) is a np.float64

    s = pebbles.schedule(method, 6, budget=2, **options)
    r = pebbles.replay(s, None, s0, step, lambda i, x, g: (0.5 * g, None), np.ones_like,
                       step_into=lambda i, x, out: np.multiply(x, 0.5, out=out))
    assert np.array_equal(r.grad_s0, np.full_like(s0, 0.5 ** 6))


@pytest.mark.parametrize("store, match", [
    (5, "store=5 is an int"), (DiskStore, "is the class DiskStore"), ("/tmp", "is a str")])
def test_a_store_argument_that_is_not_a_store_is_refused_for_every_schedule(store, match):
    for s in (pebbles.schedule("treeverse", 5, budget=2),
              pebbles.schedule("two-level", 5, budget=2, write_cost=1, read_cost=1)):
        with pytest.raises(pebbles.PebblesTypeError, match=match):
            run(s, store=store)


@pytest.mark.parametrize("make", [MemoryStore, DiskStore])
def test_a_closed_store_is_refused_before_any_step(make):
    """A store closed before the replay: refused up front, saying to make a new one,
    instead of 'the store ... is closed' at the first store move after the steps ran."""
    store = make()
    store.close()
    steps = []

    def step(i, x):
        steps.append(i)
        return A @ x

    where = f" on {store.directory}" if make is DiskStore else ""
    with pytest.raises(pebbles.StoreError) as info:
        run(pebbles.schedule("two-level", 20, budget=3, write_cost=1, read_cost=1), step,
            store=store)
    assert str(info.value) == (
        f"store=<{make.__name__}{where}> is closed, and a closed store cannot be used again "
        f"(it freed its states); make a new one for the replay, e.g. with "
        f"pebbles.DiskStore(directory) as store: pebbles.replay(..., store=store)")
    assert steps == []


def test_a_ctrl_c_in_put_after_the_write_was_queued_leaves_nothing_in_the_store(tmp_path):
    """The replay counts a state as its own before put returns: a KeyboardInterrupt that
    lands in put once the write is queued (here: at its last line) is re-raised, and the
    state is deleted with the others, so that the next replay with the store works."""
    class Interrupted(DiskStore):
        puts = 0

        def put(self, key, array, into=None):
            super().put(key, array, into=into)
            Interrupted.puts += 1
            if Interrupted.puts == 3:
                raise KeyboardInterrupt

    s = pebbles.schedule("two-level", 30, budget=3, write_cost=1, read_cost=1)
    with Interrupted(tmp_path) as store:
        with pytest.raises(KeyboardInterrupt):
            run(s, store=store)
        assert len(store) == 0 and os.listdir(store.directory) == []
        assert np.array_equal(run(s, store=store).grad_s0,
                              run(pebbles.schedule("store-all", 30)).grad_s0)
    assert os.listdir(tmp_path) == []


def test_a_program_that_does_not_make_every_backward_step_gives_no_gradient():
    prog = pebbles.lower(pebbles.schedule("treeverse", 5, budget=2), frees=True)
    for ops in (prog.ops[: len(prog.ops) // 2 + 2], prog.ops[:0]):
        cut = pebbles.SlotProgram(ops, prog.n, prog.game, prog.nslots, prog.forward_steps,
                                  prog.backward_steps, prog.peak_states)
        with pytest.raises(pebbles.PebblesValueError, match="backward steps, but n=5"):
            run(cut)


@pytest.mark.parametrize("frees", [False, True])
def test_a_program_cut_at_its_start_or_short_of_slots_is_refused_before_a_step(frees):
    prog = pebbles.lower(pebbles.schedule("treeverse", 8, budget=2), frees=frees)
    calls = []

    def cut(**kw):
        return dataclasses.replace(prog, **kw)

    in_place = prog.ops.copy()
    in_place[0] = [pebbles.OP_STEP, 1, 1, 0, 1]  # reads slot 1 and writes it: read first
    bad_op = prog.ops.copy()
    bad_op[2, 0] = 42
    cases = [(cut(ops=prog.ops[1:]), r"^row 0 of the program, \[0, 1, 2, 6, 1\], reads "
              r"slot 1 before any row writes"),
             (cut(ops=in_place), r"^row 0 of the program, \[0, 1, 1, 0, 1\], reads slot 1"),
             (cut(ops=bad_op), r"^row 2 of the program, \[42, .*has op 42, which is no OP_"),
             (cut(ops=prog.ops[prog.ops[:, 0] != pebbles.OP_SEED]),
              r"^the program has 0 seed row\(s\)"),
             (cut(nslots=2), r"names a slot outside 0\.\.1 \(nslots=2\)")]
    for bad, match in cases:
        with pytest.raises(pebbles.PebblesValueError, match=match):
            pebbles.replay(bad, None, np.ones(2), lambda i, x: calls.append(i) or 0.5 * x,
                           lambda i, x, g: (0.5 * g, None), np.ones_like)
    assert calls == []
    whole = pebbles.replay(prog, None, np.ones(2), lambda i, x: 0.5 * x,
                           lambda i, x, g: (0.5 * g, None), np.ones_like)
    assert np.array_equal(whole.grad_s0, np.full(2, 0.5**8))


def _slow_writes(monkeypatch, seconds, fail_at=None):
    """Slow every write of a DiskStore down; with ``fail_at``, that write fails (ENOSPC)."""
    from pebbles._storage import _Writer

    write, count = _Writer.write, [0]

    def slow(self, key, array):
        count[0] += 1
        threading.Event().wait(seconds)
        if count[0] == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, key, array)

    monkeypatch.setattr(_Writer, "write", slow)


def test_a_disk_store_reused_after_a_failure_lends_the_next_replay_none_of_its_buffers(
        tmp_path, monkeypatch):
    """Buffers lent to the store whose writes were pending at the failure came back to
    the next replay (of another dtype and shape): 'step at step 4 returned ... float64;
    expected ... float32' blamed the callback, or step_into got an ``out`` of the old
    shape."""
    _slow_writes(monkeypatch, 0.02)
    s = pebbles.schedule("two-level", 30, budget=3, write_cost=2, read_cost=1)

    def into(i, x, out):
        if i == 12 and x.dtype == np.float64:
            raise ValueError("boom")
        np.multiply(x, x.dtype.type(0.9), out=out)

    def args(s0):
        return (s0, lambda i, x: x * x.dtype.type(0.9),
                lambda i, x, g: (g * x.dtype.type(0.9), None), np.ones_like)

    with DiskStore(tmp_path / "d") as store:
        with pytest.raises(CallbackError, match="at step 12"):
            pebbles.replay(s, None, *args(np.ones(4)), step_into=into, store=store)
        assert len(store) == 0 and store._w.lent == 0 and store._w.returned == []
        r = pebbles.replay(s, None, *args(np.ones(3, np.float32)), step_into=into,
                           store=store)
    assert r.grad_s0.dtype == np.float32 and r.writes > 0
    assert np.allclose(r.grad_s0, 0.9 ** 30)


class _ReturnsStrangers(MemoryStore):
    """A store that borrows, and hands back a buffer it was never lent with every one."""

    borrows = True

    def reclaim(self, wait=False):
        back = super().reclaim(wait)
        return back + [np.empty(7, np.float32)] * len(back)


def test_the_replay_takes_back_only_the_buffers_it_lent():
    s = pebbles.schedule("two-level", 40, budget=3, write_cost=1, read_cost=1)
    ref = run(pebbles.schedule("store-all", 40))
    into = lambda i, x, out: np.copyto(out, A @ x + 0.01 * i)  # noqa: E731
    r = run(s, step_into=into, store=_ReturnsStrangers())
    assert r.writes > 0 and np.array_equal(r.grad_s0, ref.grad_s0)
    assert r.peak_buffers <= pebbles.lower(s).nslots


def test_a_background_write_failure_met_fetching_a_buffer_names_the_store_and_step(
        tmp_path, monkeypatch):
    """The replay met the writer's DiskFullError in a step, fetching a free buffer (the
    store's reclaim), and it came without a note; the failed store was then asked to
    delete each stored state, raising it again each time (repeated frames)."""
    _slow_writes(monkeypatch, 0.0, fail_at=1)
    s = pebbles.schedule("two-level", 40, budget=3, write_cost=0.1, read_cost=0.1)

    def into(i, x, out):
        threading.Event().wait(0.01)  # the write fails meanwhile
        np.copyto(out, A @ x)

    with DiskStore(tmp_path / "d") as store:
        with pytest.raises(DiskFullError) as info:
            run(s, step_into=into, store=store)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "take_back" in frames and "delete" not in frames, frames
    assert frames.count("_raise_if_failed") + frames.count("reclaim") == 1, frames
    assert len(info.value.__notes__) == 1, info.value.__notes__
    assert re.fullmatch(r"pebbles: the store failed at the store of the state of step "
                        r"\d+ \(written in the background; reported (before step \d+|at "
                        r"the (store|load) of the state of step \d+)\)",
                        info.value.__notes__[0])
    assert not (tmp_path / "d").exists()


class _FailsInTheBackground(MemoryStore):
    """A store that borrows, and whose write of the first state fails in the background:
    the error comes out of ``reclaim``, the next time the replay looks for a buffer."""

    borrows = True

    def reclaim(self, wait=False):
        if len(self):
            err = pebbles.StoreError(errno.EIO, "writing state failed")
            err.key = min(self._data)
            raise err
        return super().reclaim(wait)


def test_a_store_error_met_in_a_step_names_the_failed_store_and_the_step():
    s = pebbles.schedule("two-level", 20, budget=3, write_cost=1, read_cost=1)
    into = lambda i, x, out: np.copyto(out, A @ x)  # noqa: E731
    with pytest.raises(pebbles.StoreError) as info:
        run(s, step_into=into, store=_FailsInTheBackground())
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-4:] == ["fresh", "spare", "take_back", "reclaim"], frames
    assert info.value.__notes__ == [
        "pebbles: the store failed at the store of the state of step 3 (written in the "
        "background; reported before step 3)"]


class _Flaky(MemoryStore):
    """A store of one's own whose ``op`` raises a plain OSError for ``key``."""

    def __init__(self, op: str, key: int) -> None:
        super().__init__()
        self.op, self.key = op, key

    def _fail(self, op: str, key: int) -> None:
        if (op, key) == (self.op, self.key):
            raise OSError(f"disk gone at the {op} of {key}")

    def put(self, key, array, **kw):
        self._fail("store", key)
        return super().put(key, array, **kw)

    def get(self, key, **kw):
        self._fail("load", key)
        return super().get(key, **kw)


@pytest.mark.parametrize("op", ["store", "load"])
def test_an_oserror_of_a_users_store_names_the_operation_and_step(op):
    s = pebbles.schedule("two-level", 40, budget=3, write_cost=0.1, read_cost=0.1)
    key = min(m.a for m in s if m.kind.name == "STORE")
    with pytest.raises(OSError, match="disk gone") as info:
        run(s, store=_Flaky(op, key))
    assert info.value.__notes__ == [f"pebbles: the store failed at the {op} of the state of "
                                    f"step {key}"]
