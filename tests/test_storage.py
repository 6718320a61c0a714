"""The storage protocol of two-level checkpointing: memory and disk stores, the background
writer, cleanup after success, failure and KeyboardInterrupt, a full disk."""

from __future__ import annotations

import copy
import errno
import gc
import os
import pathlib
import pickle
import re
import threading
import weakref

import numpy as np
import pytest

import pebbles
from pebbles._storage import (
    DiskFullError,
    DiskStore,
    IOCost,
    MemoryStore,
    StoreError,
    _Writer,
    measure_io,
)
from pebbles._twolevel import two_level


def _files(directory) -> list[str]:
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


@pytest.mark.parametrize("make", [MemoryStore, DiskStore])
def test_put_get_delete_round_trip_copies(make):
    with make() as st:
        a = np.arange(12.0).reshape(3, 4)
        st.put(7, a)
        a[:] = -1  # the store kept a copy: the caller may reuse its buffer at once
        got = st.get(7)
        np.testing.assert_array_equal(got, np.arange(12.0).reshape(3, 4))
        got[:] = 5  # and get returns a new array
        np.testing.assert_array_equal(st.get(7), np.arange(12.0).reshape(3, 4))
        st.put("s-8", np.ones(2, dtype=np.float32))
        assert st.get("s-8").dtype == np.float32
        st.put("list", [1.0, 2.0])  # array-likes are kept as arrays, by both stores
        np.testing.assert_array_equal(st.get("list"), [1.0, 2.0])
        st.delete(7)
        with pytest.raises(StoreError, match="holds no 7"):
            st.get(7)
        with pytest.raises(StoreError, match="already holds"):
            st.put("s-8", np.ones(2))


def test_disk_store_writes_one_npy_per_state_and_removes_its_temp_dir():
    with DiskStore() as st:
        for k in range(5):
            st.put(k, np.full(100, float(k)))
        for k in range(5):
            assert st.get(k)[0] == k
        folder = st.directory
        assert _files(folder) == [f"state-{k}.npy" for k in range(5)]
        assert st.bytes_written == 5 * 800
    assert not os.path.exists(folder)


@pytest.mark.parametrize("how", [pickle.dumps, copy.copy, copy.deepcopy])
def test_a_disk_store_is_not_pickled_or_copied(tmp_path, how):
    with pebbles.DiskStore(tmp_path) as st:
        st.put(1, np.ones(2))
        with pytest.raises(pebbles.PebblesTypeError, match=r"a DiskStore cannot be pickled "
                           r"or copied .*make a new pebbles.DiskStore"):
            how(st)
        assert st.get(1).tolist() == [1.0, 1.0]


def test_user_directory_keeps_other_files_and_keep_true_keeps_ours(tmp_path):
    (tmp_path / "mine.txt").write_text("not the store's")
    with DiskStore(tmp_path) as st:
        st.put(1, np.zeros(3))
        st.get(1)
    assert _files(tmp_path) == ["mine.txt"]
    with DiskStore(tmp_path / "kept", keep=True) as st:
        st.put(2, np.arange(3.0))
    assert st.parent == str(tmp_path / "kept")
    assert os.path.dirname(st.directory) == st.parent
    assert _files(tmp_path / "kept") == [os.path.basename(st.directory)]
    np.testing.assert_array_equal(np.load(os.path.join(st.directory, "state-2.npy")), [0, 1, 2])


def test_stores_sharing_a_directory_keep_their_files_apart(tmp_path):
    """Each store writes into a new folder of its own: two stores (two runs) on one
    directory never overwrite or delete each other's files, nor the user's."""
    (tmp_path / "state-5.npy").write_text("the user's own file")
    a, b = DiskStore(tmp_path), DiskStore(tmp_path)
    with a:
        with b:
            a.put(5, np.ones(3))
            b.put(5, np.full(3, 7.0))
            assert a.get(5).tolist() == [1.0] * 3 and b.get(5).tolist() == [7.0] * 3
            assert a.directory != b.directory
        np.testing.assert_array_equal(a.get(5), np.ones(3))  # b's close left a's file
    assert _files(tmp_path) == ["state-5.npy"]
    assert (tmp_path / "state-5.npy").read_text() == "the user's own file"


def test_a_nested_missing_directory_is_removed_to_the_first_existing_one(tmp_path):
    with DiskStore(tmp_path / "a" / "b" / "c") as st:
        st.put(1, np.zeros(3))
    assert _files(tmp_path) == []
    (tmp_path / "a").mkdir()
    with DiskStore(tmp_path / "a" / "b" / "c") as st:
        st.put(1, np.zeros(3))
    assert _files(tmp_path) == ["a"] and _files(tmp_path / "a") == []


def test_a_directory_made_by_one_store_stays_while_another_uses_it(tmp_path):
    a = DiskStore(tmp_path / "shared")
    with DiskStore(tmp_path / "shared") as b:
        b.put(1, np.ones(2))
        a.close()  # made "shared", but b's folder is in it
        assert b.get(1).tolist() == [1.0, 1.0]
    assert _files(tmp_path / "shared") == []


@pytest.mark.parametrize("where", ["file", "file/under/it"])
def test_a_file_in_the_way_of_the_directory_is_a_store_error(tmp_path, where):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match=r"directory=.*file.* is a file.*pass the path of a"):
        DiskStore(tmp_path / where)
    assert _files(tmp_path) == ["file"]


def test_a_folder_that_cannot_be_made_leaves_no_directory(tmp_path, monkeypatch):
    import pebbles._storage as storage

    real_mkdir = os.mkdir

    def denied(path, *args, **kwargs):  # the store's own folder only: its parents are made
        if os.path.basename(path).startswith(storage.FOLDER_PREFIX):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(storage.os, "mkdir", denied)
    with pytest.raises(StoreError, match="not writable.*pass a directory you can write to"):
        DiskStore(tmp_path / "a" / "b")
    assert _files(tmp_path) == []


def test_a_missing_directory_under_a_read_only_one_names_the_read_only_one(
        tmp_path, monkeypatch):
    """DiskStore('ro/a/b') where 'ro' may not be written: the error names 'ro', the
    directory that is not writable, not 'ro/a/b', which does not exist."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.parent == ro:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    with pytest.raises(StoreError) as info:
        DiskStore(ro / "a" / "b")
    assert str(info.value) == (
        f"directory={str(ro / 'a' / 'b')!r} does not exist and cannot be made: its ancestor "
        f"{str(ro)!r} is not writable (permission denied), and the store makes the missing "
        f"directories in it: pass a directory you can write to, or make "
        f"{str(ro / 'a' / 'b')!r} first")
    assert _files(ro) == []


@pytest.mark.parametrize("kwargs, error, match", [
    ({"directory": 3}, pebbles.PebblesTypeError, "directory=3 must be a path"),
    ({"directory": b"states"}, pebbles.PebblesTypeError, "directory=b'states' must be a path"),
    ({"queue_size": "2"}, pebbles.PebblesTypeError, "queue_size='2' must be an integer"),
    ({"queue_size": 1.5}, pebbles.PebblesTypeError, "queue_size=1.5 must be an integer"),
    ({"queue_size": 0}, pebbles.PebblesValueError, "queue_size=0 must be >= 1"),
])
def test_bad_disk_store_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        DiskStore(**kwargs)


def test_a_state_file_deleted_behind_the_store_is_a_store_error():
    with DiskStore() as st:
        st.put(4, np.ones(3))
        st.get(4)
        os.unlink(st.path(4))
        with pytest.raises(StoreError, match="deleted by something other than the store"):
            st.get(4)
        st.put(5, np.ones(3))
        st.get(5)  # written
        os.unlink(st.path(5))
        os.mkdir(st.path(5))  # a folder in the file's place
        with pytest.raises(StoreError, match=rf"^get\(5\): its file {re.escape(st.path(5))} "
                                             rf"cannot be read \(Is a directory\); something "
                                             rf"other than the store changed it"):
            st.get(5)
        os.rmdir(st.path(5))


def test_get_waits_for_a_pending_write(monkeypatch):
    gate = threading.Event()
    st = DiskStore()
    real = st._w.write

    def slow(key, array):
        gate.wait(5)
        real(key, array)

    monkeypatch.setattr(st._w, "write", slow)
    try:
        assert not st.writing and not MemoryStore().writing
        st.put(3, np.arange(1000.0))
        assert 3 in st._w.pending and st.writing  # the writer waits on the gate
        threading.Timer(0.05, gate.set).start()
        np.testing.assert_array_equal(st.get(3), np.arange(1000.0))
        assert not st.writing
    finally:
        gate.set()
        st.close()


class _Full:
    """A file that accepts ``budget`` bytes, then raises ENOSPC like a full disk."""

    def __init__(self, name, budget):
        self.fh, self.left = open(name, "wb"), budget

    def write(self, data):
        data = memoryview(data).cast("B")
        if len(data) > self.left:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.left -= len(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_full_disk_raises_a_clear_error_and_frees_everything(tmp_path, monkeypatch):
    written = {"bytes": 0}
    import pebbles._storage as storage

    real_open = open

    def fake_open(name, mode="r", *a, **k):
        if "w" in mode and str(name).endswith(".npy"):
            budget = 2500 - written["bytes"]
            written["bytes"] += 1000
            return _Full(name, max(budget, 0))
        return real_open(name, mode, *a, **k)

    monkeypatch.setattr(storage, "open", fake_open, raising=False)
    folder = tmp_path / "states"
    st = DiskStore(folder)
    with pytest.raises(DiskFullError) as info:
        with st:
            for k in range(10):
                st.put(k, np.zeros(100))  # 800 bytes + 128 header each
            st.get(9)
    err = info.value
    assert err.errno == errno.ENOSPC and isinstance(err, OSError)
    assert str(folder) in str(err) and "800 bytes" in str(err)
    assert err.directory == str(folder) and err.needed == 800
    assert not folder.exists()  # the store made it, so it removed it


@pytest.mark.parametrize("error", [
    OSError("5000 requested and 3056 written"),  # NumPy's tofile, cut short: no errno
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
])
def test_a_write_cut_short_by_the_disk_is_a_disk_full_error(tmp_path, monkeypatch, error):
    """The disk filling up partway through a state's data is a full disk too; the
    partial file, the store's folder and the directory it made go."""
    def partial(fh, array, allow_pickle=True):
        fh.write(b"\x93NUMPY" + bytes(100))
        raise error

    monkeypatch.setattr(np, "save", partial)
    folder = tmp_path / "states"
    st = DiskStore(folder)
    with pytest.raises(DiskFullError, match="Free at least 800 bytes") as info:
        with st:
            st.put(1, np.zeros(100))
            st.get(1)
    assert info.value.errno == errno.ENOSPC and info.value.directory == str(folder)
    assert info.value.__cause__ is error and not folder.exists()


def test_a_failed_write_frees_the_files_and_folders_of_a_store_that_keeps(tmp_path,
                                                                          monkeypatch):
    def full(fh, array, allow_pickle=True):
        raise OSError(errno.ENOSPC, "No space left on device")

    st = DiskStore(tmp_path / "kept", keep=True)
    st.put(1, np.zeros(4))
    st.get(1)
    monkeypatch.setattr(np, "save", full)
    st.put(2, np.zeros(4))
    with pytest.raises(DiskFullError):
        st.get(2)
    st.close()
    assert _files(tmp_path) == []


def test_measure_io_reports_a_full_disk_and_leaves_no_file(tmp_path, monkeypatch):
    import pebbles._storage as storage

    def partial(name, data):
        with open(name, "wb") as fh:
            fh.write(bytes(10))
        raise OSError(f"{data.nbytes} requested and 10 written")

    monkeypatch.setattr(storage, "_timed_write", partial)
    with pytest.raises(DiskFullError, match="1024 bytes of data") as info:
        measure_io(tmp_path, 1024, repeat=4)
    assert _files(tmp_path) == []
    assert "slot" not in str(info.value)  # a probe has none: it says the room it needs
    assert str(info.value).endswith(
        "The probe writes 4 to 1048576 states of nbytes=1024 there back to back (deleted "
        "afterwards): free at least 4096 bytes there (up to 1073741824), pass a directory "
        "on a larger disk, or time a smaller state (a smaller nbytes) and scale the times")


@pytest.mark.parametrize("kwargs, error", [
    ({"nbytes": "1MB"}, pebbles.PebblesTypeError), ({"nbytes": 1.5}, pebbles.PebblesTypeError),
    ({"nbytes": 8, "repeat": "2"}, pebbles.PebblesTypeError),
    ({"nbytes": 8, "repeat": 0}, pebbles.PebblesValueError)])
def test_measure_io_refuses_bad_sizes_and_repeats(tmp_path, kwargs, error):
    with pytest.raises(error, match="nbytes=|repeat="):
        measure_io(tmp_path, **kwargs)
    assert _files(tmp_path) == []


def test_writer_error_other_than_enospc_is_reported_and_cleaned(tmp_path, monkeypatch):
    st = DiskStore(tmp_path)

    def boom(key, array):
        raise PermissionError(errno.EACCES, "read-only")

    monkeypatch.setattr(st._w, "write", boom)
    st.put(1, np.zeros(4))
    with pytest.raises(StoreError, match="writing state 1"):
        st.get(1)
    st.close()  # already reported: closing does not raise it again
    assert _files(tmp_path) == []


def _run_schedule(store, n, fail_at=None, interrupt_at=None):
    """Replay a two-level schedule with trivial states through ``store``."""
    state = {0: np.zeros(4)}
    for index, (kind, a, b) in enumerate(two_level(
            n, 3, None, write_cost=0.5, read_cost=0.5)):
        if index == fail_at:
            raise RuntimeError("callback failed mid-run")
        if index == interrupt_at:
            raise KeyboardInterrupt
        if kind == pebbles.MoveKind.STORE:
            store.put(a, state[a])
        elif kind == pebbles.MoveKind.LOAD:
            state[a] = store.get(a)
        elif kind == pebbles.MoveKind.DISCARD:
            store.delete(a)
        elif kind in (pebbles.MoveKind.PLACE, pebbles.MoveKind.MOVE):
            state[a] = state.get(a - 1, np.zeros(4)) + 1
        elif kind == pebbles.MoveKind.FORWARD:
            state[b] = state[a] + (b - a)
    return len(store)


def test_a_schedule_through_the_disk_store_leaves_no_file(tmp_path):
    with DiskStore(tmp_path) as st:
        assert _run_schedule(st, 60) == 0  # every stored state was discarded
        assert st.bytes_written > 0 and st.bytes_read > 0
    assert _files(tmp_path) == []


def test_callback_raising_mid_run_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError, match="mid-run"):
        with DiskStore(tmp_path) as st:
            _run_schedule(st, 60, fail_at=40)
    assert len(st) == 0 and _files(tmp_path) == []


def test_keyboard_interrupt_leaves_no_file(tmp_path):
    folder = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with DiskStore(folder) as st:
            _run_schedule(st, 60, interrupt_at=30)
    assert not folder.exists()


@pytest.mark.parametrize("make", [DiskStore, MemoryStore])
def test_closed_store_refuses_work_and_close_is_idempotent(make):
    st = make()
    st.put(1, np.zeros(1))
    assert not st.closed
    st.close()
    st.close()
    assert st.closed and not pebbles.Store().closed
    for call in (lambda: st.put(2, np.zeros(1)), lambda: st.get(1), lambda: st.delete(1)):
        with pytest.raises(StoreError, match="closed.*; make a new"):
            call()


@pytest.mark.parametrize("key", [True, 1.5, "a/b", ""])
def test_bad_keys_are_refused(key):
    with pytest.raises((pebbles.PebblesTypeError, pebbles.PebblesValueError), match="key"):
        MemoryStore().put(key, np.zeros(1))


@pytest.mark.parametrize("nbytes, times, want, writes", [
    # a cache of two states, then the disk: from the first slow write on
    (1 << 10, [0.016, 0.016, 0.064, 0.087, 0.089, 0.087, 0.088, 0.086], 0.087, 7),
    # as slow as a disk from the start: no cache, the later half of `repeat` writes
    (1 << 10, [0.05, 0.04, 0.05, 0.06, 0.05, 0.05, 0.07, 0.05], 0.05, 8),
    # a cache larger than `repeat` states (writes at 10 GB/s): the probe goes on
    (1 << 20, [1e-4] * 12 + [0.01, 0.011, 0.01, 0.012, 0.013], 0.011, 17),
])
def test_measure_io_takes_the_sustained_write_time_past_the_disk_cache(
        tmp_path, monkeypatch, nbytes, times, want, writes):
    """The first writes of a burst can land in a write cache: the probe times what comes
    after it."""
    import pebbles._storage as storage

    it, done = iter(times), []
    real = storage._timed_write
    monkeypatch.setattr(storage, "_timed_write",
                        lambda name, data: done.append(real(name, data)) or next(it))
    io = measure_io(tmp_path, nbytes)  # 8 states at least by default
    assert io.write_seconds == pytest.approx(want) and len(done) == writes
    assert _files(tmp_path) == []


def test_measure_io_times_a_round_trip_and_converts_to_step_units(tmp_path):
    io = measure_io(tmp_path, 1 << 16, repeat=2)
    assert isinstance(io, IOCost) and io.nbytes == 1 << 16
    assert io.write_seconds > 0 and io.read_seconds > 0
    w, r = io.costs(io.write_seconds / 2)
    assert w == pytest.approx(2.0) and r == pytest.approx(2 * io.read_seconds / io.write_seconds)
    assert _files(tmp_path) == []
    with pytest.raises(pebbles.PebblesValueError, match="step_seconds"):
        io.costs(0.0)
    with pytest.raises(pebbles.PebblesValueError, match="nbytes"):
        measure_io(tmp_path, 0)


@pytest.mark.parametrize("make", [MemoryStore, DiskStore])
def test_get_into_a_buffer_checks_shape_and_dtype(make):
    with make() as st:
        st.put(1, np.arange(6.0).reshape(2, 3))
        buf = np.zeros((2, 3))
        assert st.get(1, out=buf) is buf
        np.testing.assert_array_equal(buf, np.arange(6.0).reshape(2, 3))
        with pytest.raises(pebbles.PebblesValueError, match="shape"):
            st.get(1, out=np.zeros(6))


@pytest.mark.parametrize("make", [MemoryStore, DiskStore])
def test_an_int_key_and_its_digits_as_a_str_are_two_states(make):
    with make() as st:
        st.put(5, np.zeros(3))
        st.put("5", np.ones(3))
        st.put(-5, np.full(3, 2.0))
        st.put("-5", np.full(3, 3.0))
        assert len(st) == 4
        assert st.get(5).tolist() == [0.0] * 3 and st.get("5").tolist() == [1.0] * 3
        assert st.get(-5).tolist() == [2.0] * 3 and st.get("-5").tolist() == [3.0] * 3
        st.delete("5")
        assert st.get(5).tolist() == [0.0] * 3  # the int key's state is untouched
        with pytest.raises(StoreError, match="holds no '5'"):
            st.get("5")


def test_keys_that_differ_in_case_only_have_files_that_differ_in_case_folded_form_too():
    """'a' and 'A' are two keys: on a file system that ignores case (macOS, Windows)
    state-a.npy and state-A.npy would be one file, so each upper-case letter is marked."""
    keys = ["a", "A", "aB", "Ab", "AB", "ab", "x_Y.z-9", "X_y.Z-9", "s5", "S5", 5, "5"]
    with DiskStore() as st:
        names = [os.path.basename(st.path(k)) for k in keys]
        assert names[:3] == ["state-a.npy", "state-^A.npy", "state-a^B.npy"]
        assert names[-2:] == ["state-5.npy", "state-str+5.npy"]  # no letters: as they were
        assert len({n.casefold() for n in names}) == len(keys), names
        for k in keys:
            st.put(k, np.array([keys.index(k)]))
        assert [int(st.get(k)[0]) for k in keys] == list(range(len(keys)))
        assert _files(st.directory) == sorted(names)


def test_a_str_key_of_digits_has_a_file_of_its_own():
    with DiskStore() as st:
        names = {k: os.path.basename(st.path(k)) for k in (5, "5", "-5", "05", "str-5", "s5")}
        assert names[5] == "state-5.npy" and names["5"] == "state-str+5.npy"
        assert names["05"] == "state-str+05.npy" and names["s5"] == "state-s5.npy"
        assert len(set(names.values())) == len(names)
        for k in names:
            st.put(k, np.array([len(str(k))]))
        assert [st.get(k).tolist() for k in names] == [[len(str(k))] for k in names]
        assert _files(st.directory) == sorted(names.values())  # written: get waits


def _read_only():
    a = np.zeros(3)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("make", [MemoryStore, DiskStore])
@pytest.mark.parametrize("out, error, match", [
    ([0.0, 0.0, 0.0], pebbles.PebblesTypeError, r"out=\[0.0, 0.0, 0.0\] is a list; it must "
                                                 r"be a NumPy array"),
    ((1, 2, 3), pebbles.PebblesTypeError, "is a tuple; it must be a NumPy array"),
    (_read_only(), pebbles.PebblesValueError, "out is a read-only array.*must be writeable"),
])
def test_get_refuses_an_out_that_is_no_writeable_array(make, out, error, match):
    with make() as st:
        st.put(1, np.ones(3))
        with pytest.raises(error, match=match):
            st.get(1, out=out)
        assert st.get(1).tolist() == [1.0] * 3  # the state is still there


def test_disk_store_get_names_a_non_contiguous_out_first():
    with DiskStore() as st:
        st.put(1, np.ones(3))
        out = np.zeros(6)[::2]  # the stored shape and dtype, but strided
        with pytest.raises(pebbles.PebblesValueError, match=r"^out is not C-contiguous"):
            st.get(1, out=out)
        assert out.tolist() == [0.0] * 3
    with MemoryStore() as ms:  # a copy in memory fills any layout
        ms.put(1, np.ones(3))
        assert ms.get(1, out=out) is out and out.tolist() == [1.0] * 3


def test_a_directory_with_a_nul_character_is_a_store_error(tmp_path):
    given = f"{tmp_path}/a\0b"
    with pytest.raises(StoreError, match=r"directory='.*a\\x00b' holds a NUL character"):
        DiskStore(given)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("step_seconds, error", [
    ("0.1", pebbles.PebblesTypeError), (None, pebbles.PebblesTypeError),
    (True, pebbles.PebblesTypeError), (0.0, pebbles.PebblesValueError),
    (-1.0, pebbles.PebblesValueError), (float("inf"), pebbles.PebblesValueError),
    (float("nan"), pebbles.PebblesValueError),
])
def test_io_costs_refuse_a_step_time_that_is_no_finite_positive_number(step_seconds, error):
    io = IOCost("/tmp", 8, write_seconds=2.0, read_seconds=1.0)
    with pytest.raises(error, match=rf"step_seconds={step_seconds!r}"):
        io.costs(step_seconds)
    assert io.costs(np.float32(0.5)) == (4.0, 2.0)


def _step(i, x):
    return np.sin(x) * 1.1 + 0.01 * i


def _vjp(i, x, g):  # d(step_i)/dx^T g
    return np.cos(x) * 1.1 * g


def _replay(prog, s0, store, fail_at_step=None):
    """A slot executor for lowered two-level programs: the calls the generic executor
    makes for OP_STORE / OP_LOAD / OP_DISCARD."""
    slots = [None] * prog.nslots
    slots[0], grad = s0, None
    for op, src, dst, first, count in prog.ops.tolist():
        if op == pebbles.OP_STEP:
            x = slots[src]
            for i in range(first, first + count):
                if i == fail_at_step:
                    raise RuntimeError(f"step {i} failed")
                x = _step(i, x)
            slots[dst] = x
        elif op == pebbles.OP_SEED:
            grad = 2 * slots[src]  # loss = |s_n|^2
        elif op == pebbles.OP_PAINT:
            grad = _vjp(first, slots[src], grad)
        elif op == pebbles.OP_STORE:
            store.put(first, slots[src])
        elif op == pebbles.OP_LOAD:
            slots[dst] = store.get(first)
        elif op == pebbles.OP_DISCARD:
            store.delete(first)
    return grad


def _reference_gradient(n, s0):
    states = [s0]
    for i in range(n):
        states.append(_step(i, states[-1]))
    grad = 2 * states[n]
    for i in range(n - 1, -1, -1):
        grad = _vjp(i, states[i], grad)
    return grad


def test_gradient_through_a_disk_store_equals_memory_only_bit_for_bit(tmp_path):
    n = 120
    s0 = np.random.default_rng(1).standard_normal(50)
    prog = pebbles.lower(list(two_level(n, 3, None, write_cost=1.0, read_cost=1.0)), n)
    assert prog.writes > 0 and prog.reads > 0
    with DiskStore(tmp_path) as st:
        on_disk = _replay(prog, s0, st)
        assert len(st) == 0
    with MemoryStore() as st:
        in_memory = _replay(prog, s0, st)
    treeverse = _replay(pebbles.lower(list(pebbles.treeverse(n, 3)), n), s0, MemoryStore())
    want = _reference_gradient(n, s0)
    assert np.array_equal(on_disk, want) and np.array_equal(in_memory, want)
    assert np.array_equal(treeverse, want)
    assert _files(tmp_path) == []


def test_step_failing_mid_replay_leaves_no_file(tmp_path):
    prog = pebbles.lower(list(two_level(120, 3, None, write_cost=1.0, read_cost=1.0)), 120)
    with pytest.raises(RuntimeError, match="step 90"):
        with DiskStore(tmp_path / "d") as st:
            _replay(prog, np.ones(8), st, fail_at_step=90)
    assert st.bytes_written > 0 and not (tmp_path / "d").exists()


@pytest.mark.parametrize("array", [np.asfortranarray(np.arange(12.0).reshape(3, 4)),
                                   np.array(2.5), np.zeros((0, 3)),
                                   np.arange(5, dtype=np.int32), np.arange(8.0)[::2]])
def test_disk_store_round_trips_any_layout_into_new_arrays_and_buffers(array):
    with DiskStore() as st:
        st.put(1, array)
        got, buf = st.get(1), np.empty(array.shape, array.dtype)
        assert st.get(1, out=buf) is buf and got.dtype == array.dtype
        np.testing.assert_array_equal(got, array)
        np.testing.assert_array_equal(buf, array)


def test_a_truncated_state_file_is_reported(tmp_path):
    with DiskStore(tmp_path / "d") as st:
        st.put(3, np.arange(1000.0))
        st.get(3)  # waits for the write
        with open(st.path(3), "r+b") as fh:
            fh.truncate(500)
        with pytest.raises(StoreError, match="truncated"):
            st.get(3, out=np.empty(1000))


@pytest.mark.parametrize("damage", [b"", b"\x93NUMPY\x01\x00v\x00{'descr'", b"x" * 900,
                                    b"\x93NUMPY\x01\x00\x10\x00{{{{((((((((((\n"])
def test_a_state_file_with_a_damaged_header_is_a_store_error_naming_it(tmp_path, damage):
    """Empty, cut inside the header, overwritten, or a header that is no dict: a
    StoreError naming the file, not NumPy's bare ValueError (or tokenize's error)."""
    with DiskStore(tmp_path / "d") as st:
        st.put(3, np.arange(100.0))
        st.get(3)  # waits for the write
        with open(st.path(3), "wb") as fh:
            fh.write(damage)
        with pytest.raises(StoreError, match=r"state-3\.npy has no valid \.npy header.*"
                                             r"damaged"):
            st.get(3)
    assert _files(tmp_path) == []


def test_a_relative_directory_stays_where_it_was_after_a_chdir(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    st = DiskStore("states")
    assert st.parent == str(tmp_path / "a" / "states")
    assert os.path.isabs(st.directory)
    monkeypatch.chdir(tmp_path / "b")
    st.put(1, np.ones(3))
    assert st.get(1).tolist() == [1.0, 1.0, 1.0]
    assert os.path.dirname(st.path(1)) == st.directory
    st.close()
    assert _files(tmp_path / "a") == [] and _files(tmp_path / "b") == []


def test_a_writer_error_names_the_key_whose_write_failed(tmp_path, monkeypatch):
    def full(self, key, array):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_Writer, "write", full)
    with DiskStore(tmp_path / "d") as st:
        st.put(7, np.zeros(3))
        with pytest.raises(DiskFullError) as info:
            st.get(7)
    assert info.value.key == 7 and StoreError("x").key is None


def test_queue_size_bounds_the_copies_held_for_writing(monkeypatch):
    """With queue_size=1, put copies only after the previous write finished."""
    written: list = []
    real = _Writer.write

    def slow(self, key, array):
        threading.Event().wait(0.05)
        written.append(key)
        real(self, key, array)

    monkeypatch.setattr(_Writer, "write", slow)
    with DiskStore(queue_size=1) as st:
        for k in range(3):
            st.put(k, np.full(4, float(k)))
            assert written == list(range(k)), "put waited for every earlier write"
        assert [st.get(k)[0] for k in range(3)] == [0.0, 1.0, 2.0]


def test_lent_buffers_come_back_after_their_write_and_take_no_room(monkeypatch):
    """put(..., into=buf) copies into the caller's buffer, adds no copy of the store's
    own (queue_size does not hold it back) and reclaim() returns buf once written."""
    gate = threading.Event()
    real = _Writer.write

    def held(self, key, array):
        gate.wait(5)
        real(self, key, array)

    monkeypatch.setattr(_Writer, "write", held)
    bufs = [np.empty(4), np.empty(4)]
    with DiskStore(queue_size=1) as st:
        assert st.borrows and not MemoryStore.borrows
        for k, b in enumerate(bufs):
            st.put(k, np.full(4, float(k)), into=b)  # neither waits for the held write
            assert b[0] == float(k)
        assert st.reclaim() == [] and st.writing
        gate.set()
        back = st.reclaim(wait=True)
        while len(back) < 2:
            back += st.reclaim(wait=True)
        assert {id(b) for b in back} == {id(b) for b in bufs}
        assert [st.get(k)[0] for k in range(2)] == [0.0, 1.0]
        assert st.reclaim(wait=True) == []  # nothing lent: no wait


def test_a_lent_buffer_that_does_not_fit_is_refused():
    with DiskStore() as st:
        for bad in (np.empty(3), np.empty(4, np.float32), np.empty(8)[::2], [0.0] * 4):
            with pytest.raises(ValueError, match="into has"):
                st.put(1, np.zeros(4), into=bad)
        a = np.zeros(4)
        with pytest.raises(ValueError, match="not the state itself"):
            st.put(1, a, into=a)
        assert len(st) == 0


def test_memory_store_hands_a_lent_buffer_back_unused():
    buf = np.empty(2)
    with MemoryStore() as st:
        st.put(1, np.ones(2), into=buf)
        assert st.reclaim() == [buf]
        assert st.reclaim() == [] and st.get(1).tolist() == [1.0, 1.0]


def test_reclaim_raises_the_writer_error_instead_of_waiting(tmp_path, monkeypatch):
    def broken(self, key, array):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(_Writer, "write", broken)
    st = DiskStore(tmp_path / "d")
    st.put(1, np.zeros(3), into=np.empty(3))
    with pytest.raises(StoreError, match="I/O error"):
        for _ in range(500):  # the error may come after the first reclaim
            st.reclaim(wait=True)
            threading.Event().wait(0.01)
    st.close()
    assert not (tmp_path / "d").exists()


def test_a_disk_store_nobody_holds_is_collected_and_frees_its_files(tmp_path):
    """The writer thread holds the store's files and queue, not the store: a store that
    was never closed is collected like one closed, and its thread ends."""
    st = DiskStore(tmp_path / "d")
    st.put(1, np.ones(3))
    folder, ref, thread = st.directory, weakref.ref(st), st._thread
    del st
    gc.collect()
    assert ref() is None and not os.path.exists(folder)
    thread.join(5)
    assert not thread.is_alive() and not (tmp_path / "d").exists()


def test_a_disk_store_refuses_object_arrays_at_put_and_round_trips_other_dtypes():
    with DiskStore() as st:
        with pytest.raises(pebbles.PebblesTypeError, match="dtype object.*MemoryStore"):
            st.put(1, np.array([object()]))
        assert len(st) == 0
        for k, dt in enumerate(["datetime64[s]", "timedelta64[ms]", "U3",
                                [("a", "f8"), ("b", "i4")]]):
            a = np.zeros(3, dtype=dt)
            st.put(k, a)
            assert st.get(k).dtype == a.dtype and (st.get(k) == a).all()


@pytest.mark.parametrize("keep", ["False", 1, None])
def test_keep_must_be_a_bool(keep):
    with pytest.raises(pebbles.PebblesTypeError, match=f"keep={keep!r} must be True or False"):
        DiskStore(keep=keep)


def test_measure_io_names_a_state_too_large_to_hold(monkeypatch, capsys):
    def no_memory(*args, **kwargs):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(pebbles._storage, "mapped_empty", no_memory)
    with pytest.raises(pebbles.PebblesValueError, match=r"nbytes=\d+: the probe holds one "
                                                        r"state of that size in memory"):
        measure_io(None, 10**11)
    from pebbles.cli import main

    assert main(["plan", "-n", "100", "--pebbles", "5", "--disk-dir", "/tmp", "--state-bytes",
                 "100GB", "--step-seconds", "0.01"]) == 2
    assert "--state-bytes 100000000000: the disk probe holds" in capsys.readouterr().err


def _in_thread(call, timeout: float = 10.0) -> BaseException | None:
    """Run ``call`` in a thread joined with ``timeout``: the exception it raised (None
    if none); a call still running after ``timeout`` fails the test instead of hanging."""
    raised: list[BaseException | None] = [None]

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 -- handed to the test
            raised[0] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{call} still blocked after {timeout} s"
    return raised[0]


@pytest.mark.parametrize("make", [MemoryStore, DiskStore])
def test_a_key_whose_file_name_is_too_long_is_refused(make, tmp_path):
    """A file name may have 255 bytes: ``state-<key>.npy`` takes keys of up to 245
    characters, ``state-str+<key>.npy`` (a str of digits) up to 241; a longer key is
    refused at the call, naming the limit, instead of failing the background write."""
    with make(*([tmp_path] if make is DiskStore else [])) as st:
        for key in ("k" * 245, "1" * 241, 10 ** 244):
            st.put(key, np.ones(2))
            assert st.get(key).tolist() == [1.0, 1.0]
        for key, most in (("k" * 300, 245), ("1" * 242, 241), (10 ** 245, 245),
                          (-10 ** 5000, 245)):
            with pytest.raises(pebbles.PebblesValueError, match=f"at most {most} char"):
                st.put(key, np.ones(2))
        st.put("K" * 122 + "k", np.ones(2))  # 122 marks: 245 bytes between state- and .npy
        with pytest.raises(pebbles.PebblesValueError, match="at most 245 characters, an "
                                                            "upper-case letter counting two"):
            st.put("K" * 123, np.ones(2))
        assert st.get(10 ** 244).tolist() == [1.0, 1.0]  # the store goes on


def test_a_failed_write_frees_the_files_that_can_be_freed(tmp_path, monkeypatch):
    """A write that fails while another file of the store cannot be deleted: the writer
    frees the rest and lives on to report the error; nothing waits forever."""
    st = DiskStore(tmp_path)
    st.put(0, np.ones(2))
    st.put(1, np.ones(2))
    st.get(1)  # both written
    real_unlink, real_write = os.unlink, st._w.write

    def unlink(name):
        if name.endswith("state-0.npy"):
            raise PermissionError(errno.EACCES, "Permission denied", name)
        real_unlink(name)

    def write(key, array):
        if key == 2:
            raise OSError(errno.EIO, "Input/output error")
        real_write(key, array)

    monkeypatch.setattr("pebbles._storage.os.unlink", unlink)
    monkeypatch.setattr(st._w, "write", write)
    st.put(2, np.ones(2))
    st.put(3, np.ones(2))
    err = _in_thread(lambda: st.get(3))
    assert isinstance(err, StoreError) and err.key == 2 and "Input/output" in str(err)
    assert st._thread.is_alive() and _files(st.directory) == ["state-0.npy"]
    monkeypatch.undo()
    st.close()
    assert list(tmp_path.iterdir()) == []


def test_get_and_put_do_not_hang_when_the_writer_thread_is_gone(tmp_path, monkeypatch):
    """A writer thread that ended without reporting an error (here: told to stop while a
    write was queued behind it) never leaves a get, delete or put waiting forever."""
    st = DiskStore(tmp_path, queue_size=1)
    go, real_write = threading.Event(), st._w.write

    def write(key, array):
        go.wait(10)
        real_write(key, array)

    monkeypatch.setattr(st._w, "write", write)
    st.put(0, np.ones(2))
    st._w.queue.put(None)  # the writer stops after state 0, before state 1
    st.put(1, np.ones(2), into=np.empty(2))
    go.set()
    for call in (lambda: st.get(1), lambda: st.delete(1),
                 lambda: st.put(2, np.ones(2)), lambda: st.reclaim(wait=True)):
        err = _in_thread(call)
        assert err is None or "stopped without reporting" in str(err), err
    err = _in_thread(lambda: st.reclaim(wait=True))  # the lent buffer never comes back
    assert err is not None and "stopped without reporting" in str(err), err
    assert not st._thread.is_alive()
    st.close()
    assert list(tmp_path.iterdir()) == []
