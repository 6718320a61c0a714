"""Ctrl-C at every point of a DiskStore's calls where CPython can raise it.

A ``KeyboardInterrupt`` from a signal handler is raised in the main thread where the
interpreter runs pending signal handlers: right after a call returns, at a backward
jump, at a function's start. :class:`_Interrupt` raises one there, through
``sys.settrace`` with opcode events, at the ``at``-th such point met in the store's
code (and the executor's store moves); each test replays once to list the points, then
once per distinct point with the interrupt there, and checks that the store is left as
the standard of the project wants it: nothing held (no key, no file, no pending write,
no room taken), no lock held, the writer alive, the store usable again. Random SIGALRM
interrupts test the same thing by chance; this is the deterministic form, for the points
that a 12-step replay, ``close`` and ``DiskStore(...)`` reach (each at its first time).
"""

from __future__ import annotations

import dis
import os
import sys
import threading

import numpy as np
import pytest

import pebbles
import pebbles._executor as _executor
import pebbles._storage as _storage
from pebbles import DiskStore

#: The executor's functions that move states to and from the store.
_MOVES = {"replay", "disk", "_disk", "lend", "spare", "take_back", "settle", "load"}
_POINTS: dict = {}


def _points(code) -> set[int]:
    """Offsets in ``code`` where CPython runs signal handlers: the instruction after a
    call (the interrupt lands once the call returned), the target of a backward jump."""
    if code not in _POINTS:
        ins = list(dis.get_instructions(code))
        out = set()
        for a, b in zip(ins, ins[1:], strict=False):
            if a.opname.startswith("CALL") and not a.opname.startswith("CALL_INTRINSIC"):
                out.add(b.offset)
            if "JUMP" in a.opname and isinstance(a.argval, int) and a.argval < a.offset:
                out.add(a.argval)
        _POINTS[code] = out
    return _POINTS[code]


class _Interrupt:
    """A trace function that raises ``KeyboardInterrupt`` at the ``at``-th point (none
    for ``at=0``) and lists the points met (``seen``: code and offset, -1 for a start)."""

    def __init__(self, at: int = 0, point: tuple | None = None) -> None:
        self.at, self.point, self.seen, self.where = at, point, [], None

    def _hit(self, frame, offset: int) -> None:
        self.seen.append((frame.f_code, offset))
        if len(self.seen) == self.at or self.seen[-1] == self.point:
            self.where = f"{frame.f_code.co_name}:{frame.f_lineno}"
            raise KeyboardInterrupt  # the trace is off from here on: one interrupt

    def __call__(self, frame, event, arg):
        code = frame.f_code
        if code.co_filename == _storage.__file__ or (
                code.co_filename == _executor.__file__ and code.co_name in _MOVES):
            self._hit(frame, -1)
            frame.f_trace_opcodes = True
            return self._local
        return None

    def _local(self, frame, event, arg):
        if event == "opcode" and frame.f_lasti in _points(frame.f_code):
            self._hit(frame, frame.f_lasti)
        return self._local

    def run(self, call) -> bool:
        """Call ``call`` under the trace; whether it raised the interrupt."""
        sys.settrace(self)
        try:
            call()
        except KeyboardInterrupt:
            return True
        finally:
            sys.settrace(None)
        return False


def _left(st: DiskStore) -> str:
    """What ``st`` holds or has stuck after a replay (empty: nothing)."""
    w = st._w
    held = {"keys": sorted(map(str, w.files)), "files": sorted(os.listdir(st.directory)),
            "pending": sorted(map(str, w.pending)), "room taken": len(w.own),
            "waiting": len(w.waiting), "lock held": w.lock.locked(),
            "writer stopped": not w.running}
    return ", ".join(f"{k}={v}" for k, v in held.items() if v)


def _in_thread(body, timeout: float = 60.0) -> None:
    """Run ``body`` in a thread of its own: a hang fails the test instead of stopping it."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 -- handed to the test
            raised.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"still running after {timeout} s: a Ctrl-C left a wait forever"
    if raised:
        raise raised[0]


_SCHEDULE = pebbles.schedule("two-level", 12, budget=2, write_cost=1, read_cost=1)


def _replay(st, lend: bool):
    kw = {"step_into": lambda i, x, out: np.multiply(x, 0.5, out=out)} if lend else {}
    return pebbles.replay(_SCHEDULE, None, np.ones(4), lambda i, x: x * 0.5,
                          lambda i, x, g: (g * 0.5, None), np.ones_like, store=st, **kw)


@pytest.mark.parametrize("lend", [False, True], ids=["own copies", "lent buffers"])
def test_a_ctrl_c_anywhere_in_the_store_moves_of_a_replay_leaves_the_store_empty(
        tmp_path, lend):
    """Each point once (its first time in the replay: ~130 replays, < 1 s); the store
    has room for one copy of its own, so that ``put`` also waits for room."""
    def body() -> None:
        expected = _replay(pebbles.MemoryStore(), lend).grad_s0
        with DiskStore(tmp_path, queue_size=1) as st:
            listing = _Interrupt()
            listing.run(lambda: _replay(st, lend))
            points, interrupted = list(dict.fromkeys(listing.seen)), 0
            assert len(points) > 50
            for point in points:  # at its first time: a wait may not come in another run
                ki = _Interrupt(point=point)
                interrupted += ki.run(lambda: _replay(st, lend))
                assert _left(st) == "", f"Ctrl-C at {ki.where}: {_left(st)}"
            assert interrupted > 0.8 * len(points)
            np.testing.assert_array_equal(_replay(st, lend).grad_s0, expected)
        assert list(tmp_path.iterdir()) == []

    _in_thread(body)


def test_a_ctrl_c_anywhere_in_close_frees_every_file_and_stops_the_writer(tmp_path):
    """close() cut short anywhere: once it has begun (the store says closed), the files
    and folders are freed all the same and the writer has stopped; closing again ends
    what an interrupt at its very start left undone."""
    def open_store() -> DiskStore:
        st = DiskStore(tmp_path / "d")
        for k in range(3):
            st.put(k, np.full(1000, float(k)))  # some still pending at close
        return st

    def body() -> None:
        listing = _Interrupt()
        st = open_store()
        listing.run(st.close)
        points, interrupted = list(dict.fromkeys(listing.seen)), 0
        for point in points:  # at its first time: how long the writer takes varies
            st = open_store()
            ki = _Interrupt(point=point)
            interrupted += ki.run(st.close)  # a wait for the writer may not come
            if st.closed:
                assert not (tmp_path / "d").exists() and not st._w.running, ki.where
            st.close()
            assert not (tmp_path / "d").exists() and not st._w.running, ki.where
        assert interrupted > 0.8 * len(points)

    _in_thread(body)


def test_a_ctrl_c_anywhere_in_making_a_store_leaves_no_folder(tmp_path):
    """DiskStore(...) cut short anywhere, missing parent directories included: no folder
    of its own is left (each is listed before it is made)."""
    made: list[DiskStore] = []

    def make() -> None:
        made.append(DiskStore(tmp_path / "x" / "y"))

    def body() -> None:
        listing = _Interrupt()
        listing.run(make)
        made.pop().close()
        points, interrupted = list(dict.fromkeys(listing.seen)), 0
        assert len(points) > 10
        for point in points:
            ki = _Interrupt(point=point)
            interrupted += ki.run(make)
            while made:  # not cut short (the point did not come): an ordinary store
                made.pop().close()
            assert list(tmp_path.iterdir()) == [], f"Ctrl-C at {ki.where}"
        assert interrupted > 0.8 * len(points)

    _in_thread(body)
