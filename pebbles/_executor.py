"""A generic executor: replay a checkpoint-game schedule to compute a gradient.

Reverse-mode differentiation of a long simulation ``s_{i+1} = step(i, s_i)``,
``L = loss(s_n)`` (Liu & Xu, "Automatic differentiation in physics
simulation", section 2 and appendix: the checkpoint pebble game; section 3,
Algorithm 3, Treeverse) needs the states in reverse order. A schedule (a
stream of :class:`~pebbles._moves.Move`) says which states to keep, when to
recompute them and when to take each backward step; :func:`replay` carries it
out with the user's callbacks. A state is an array (numpy, or anything with
``shape`` and ``dtype``) or a tuple, list or dict of arrays; every value a
callback returns is checked against ``s0`` leaf by leaf.

The schedule is first checked and lowered to a slot program
(:func:`pebbles.lower`, the simulator's own rules); the executor then runs the
program's operations. Move semantics (cells ``0..n``, cell ``i`` holds ``s_i``):

* ``place i`` -- ``s_i = step(i-1, s_{i-1})`` into a new state on cell i.
* ``remove i`` -- drop the state on cell i.
* ``move i`` -- in-place step: the state on cell i-1 becomes ``s_i``
  (``step_into(i-1, s, s)`` when given, else ``step``).
* ``forward a b`` -- from ``s_a`` (which stays) a working state walks to
  ``s_b`` (``b - a`` step calls, in place after the first when
  ``step_into`` is given) and stays on cell b.
* ``paint i`` -- backward step i: ``gbar_i, theta_bar_i = backward(i, s_i,
  gbar_{i+1})``. Paints come in the order ``n-1, ..., 0``.

Buffer pool: with ``step_into``, a state the schedule frees (``remove``, or
``s_n`` after the loss) goes to a pool, and the next step that needs a new
state writes into a pooled buffer with ``step_into(i, s, out)`` instead of
allocating one (``step``). A buffer is created only when the pool is empty, so
the buffers in existence (live plus pooled) never exceed the peak number of
live states: with the default unbounded pool the executor allocates exactly
that many. ``ReplayResult`` reports the peak of live states, the peak of live
plus pooled buffers and the number of allocations.

The games never pebble cell n (it starts painted). At the first paint the
executor therefore computes ``s_n`` itself (one extra step call, unless a
schedule did leave a state on cell n), evaluates the loss and ``dL/ds_n``.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _states as T
from ._errors import PebblesError, PebblesTypeError, PebblesValueError, add_note, rebuilt
from ._lowering import (
    OP_DISCARD,
    OP_FREE,
    OP_LOAD,
    OP_PAINT,
    OP_SEED,
    OP_STEP,
    OP_STORE,
    OP_TAPE,
    READS,
    WRITES,
    SlotProgram,
    _rows,
    lower,
)
from ._optional import missing_extra
from ._storage import DiskStore, MemoryStore, StoreError, mapped_empty
from ._validation import a_kind, check_bool, check_int

__all__ = ["CallbackError", "NonFiniteError", "ReplayResult", "replay"]


class CallbackError(PebblesError, RuntimeError):
    """A user callback raised; the message names the callback and the step.

    Attributes
    ----------
    callback : str
        Name of the callback (``'step'``, ``'backward'``, ...).
    step : int
        The step index the callback was called with.
    """

    def __init__(self, message: str, callback: str, step: int) -> None:
        super().__init__(message)
        self.callback = callback
        self.step = step

    def __reduce__(self) -> tuple[object, ...]:
        return rebuilt(self, self.args[0], self.callback, self.step)


class NonFiniteError(PebblesValueError):
    """A callback returned NaN or infinity (only with ``check_finite=True``).

    Attributes
    ----------
    callback : str or None
        Name of the callback (``'step'``, ``'backward'``, ...), as in :class:`CallbackError`.
    step : int or None
        The step index the callback was called with.
    """

    def __init__(self, message: str, callback: str | None = None,
                 step: int | None = None) -> None:
        super().__init__(message)
        self.callback = callback
        self.step = step

    def __reduce__(self) -> tuple[object, ...]:
        return rebuilt(self, self.args[0], self.callback, self.step)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What :func:`replay` computed and measured.

    Attributes
    ----------
    loss : float or None
        ``loss(s_n)`` plus the running loss; ``None`` if neither was given.
    grad_s0 : state
        ``dL/ds_0``.
    grad_theta : object or None
        Sum of the ``theta_bar_i`` returned by ``backward`` (``None`` if all
        were ``None``).
    forward_steps : int
        Step calls made (``step`` and ``step_into``), the extra one included:
        the program's ``forward_steps``, so the simulator's ``forward_steps``
        plus ``extra_steps`` (treeverse at n = 20, S = 4: 41 against 40).
    extra_steps : int
        Step calls made to produce ``s_n`` at the first paint: 1 when the
        schedule never places ``s_n`` (:func:`pebbles.lower` adds that step),
        0 when it does (``bennett-gradient``, ``reversible-gradient``).
    backward_steps : int
        Calls of ``backward`` (paints).
    peak_states : int
        The most states held at once besides ``s_0``: stored states plus the
        working state(s), a step's input and output counted while it runs.
        Comparable with the simulator's ``peak_states``: usually one more
        when ``extra_steps`` is 1 (the scratch ``s_n`` is held with the
        stored states; treeverse at n = 20, S = 4: 5 against 4), none when
        the schedule places ``s_n`` itself, plus one for a step that cannot
        overwrite its input (``move`` or a walk without ``step_into``: its
        input and output are both held while it runs).
    seconds : float
        Wall-clock time of the replay.
    peak_buffers : int
        The most state-sized buffers held at once besides ``s_0``: live states,
        free buffers kept in the pool, and free buffers lent to a store that
        ``borrows`` for the copies it is writing (never more than the program's
        slots besides ``s_0``, plus one when a step that cannot overwrite its
        input, a ``move`` or a walk without ``step_into``, finds every slot in
        use; a store's own copies, made when no buffer was free, are not
        counted).
    allocations : int
        Steps that returned a new state (``step``); the others wrote into a
        pooled or working buffer (``step_into``).
    inplace_steps : int
        Steps that overwrote their input (``step_into(i, s, s)``).
    writes, reads : int
        States written to and read from the store (two-level schedules).
    """

    loss: float | None
    grad_s0: Any
    grad_theta: Any
    forward_steps: int
    extra_steps: int
    backward_steps: int
    peak_states: int
    seconds: float
    peak_buffers: int = 0
    allocations: int = 0
    inplace_steps: int = 0
    writes: int = 0
    reads: int = 0


class _Replay:
    """Mutable state of one replay; every state it holds is reachable from here."""

    def __init__(self, n: int, nslots: int, s0: Any, cb: dict[str, Any], check_finite: bool,
                 pool_size: int | None, check_states: bool) -> None:
        self.n = n
        self.slots: list[Any] = [None] * nslots
        self.slots[0] = s0
        self.sig = T.signature(s0)
        self.cb = cb
        self.check_finite = check_finite
        self.check_states = check_states
        self.sums: dict[int, int] = {}  # slot -> digest of its state (debug mode)
        self.kept_sums: dict[int, int] = {}  # id -> digest of a state held by keep()
        self.gbar: Any = None
        self.theta: Any = None
        self.theta_sig: Any = None
        self.loss: float | None = None
        self.live = self.steps = self.extra = self.paints = self.peak = 0
        self.pool: list[Any] = []
        self.pool_size = (nslots if pool_size is None else pool_size) \
            if cb["step_into"] is not None else 0
        self.peak_buffers = self.allocations = self.inplace_steps = 0
        self.writes = self.reads = 0
        self.store: Any = None
        self.cap = nslots - 1  # state buffers the program needs besides s_0
        self.lends = False  # lend free buffers to the store for its copies
        self.reads_into = False  # the store's get takes out=: loads reuse free buffers
        self.put_copies = self.get_copies = True  # the store's put keeps a copy; get returns one
        self.lending: dict[int, Any] = {}  # id -> buffer lent and not yet taken back
        self.held_states = T.Holdings()
        self.held_states.add(s0)
        self.retired: set[int] = set()
        self.stored: set[int] = set()  # cells this replay has put in the store
        self.offers = True  # step_into and check_states to name in errors (replay's)
        self.at: tuple[str, int] | None = None  # the callback last called, and its step

    def release(self) -> None:
        """Drop every reference to a state or a gradient."""
        self.slots.clear()
        self.pool.clear()
        self.lending.clear()
        self.held_states = T.Holdings()
        self.gbar = self.theta = None

    @property
    def lent(self) -> int:
        """Buffers lent to the store and not yet taken back."""
        return len(self.lending)

    # -- bookkeeping -------------------------------------------------------
    def held(self, transient: int) -> None:
        live = self.live + transient
        self.peak = max(self.peak, live)
        self.peak_buffers = max(self.peak_buffers, live + len(self.pool) + self.lent)

    def spare(self, transient: int, where: str) -> Any:
        """A free buffer for a new state (counted in ``transient``), or None: allocate one.

        A buffer lent to the store comes back once written; the replay waits for
        one rather than allocate beyond the program's buffers. ``where`` names the
        operation in the note of a store error met meanwhile (a failed background write).
        """
        if self.lent:
            wait = not self.pool and self.live + transient + self.lent > self.cap
            try:
                self.take_back(wait)
            except BaseException as err:
                _note_stop(err, where)
                raise
        return self.pool.pop() if self.pool else None

    def take_back(self, wait: bool) -> None:
        """Return the buffers the store has written from to the pool.

        Only the buffers this replay lent: one a store hands back late from an
        earlier replay (of another shape or dtype, maybe) is dropped.
        """
        for buf in self.store.reclaim(wait):
            if self.lending.pop(id(buf), None) is buf and len(self.pool) < self.pool_size:
                self.pool.append(buf)

    def settle(self) -> None:
        """At the end of the replay: drop the lent buffers the store hands back, so that
        the store holds none of them and a later replay with it gets none."""
        if self.lends:
            self.store.reclaim()
        self.lending.clear()

    def lend(self, s: np.ndarray, cell: int) -> np.ndarray | None:
        """A free buffer for the store's copy of ``s`` (the state of step ``cell``) within
        the program's buffers, or None (the store copies into memory of its own)."""
        if not self.lends:
            return None
        buf = self.spare(1, f"at the store of the state of step {cell}")  # one more buffer
        if buf is not None and not buf.flags.c_contiguous:  # the store writes C order
            self.pool.append(buf)
            return None
        if buf is None:
            if self.live + self.lent >= self.cap:
                return None
            buf = mapped_empty(s.shape, s.dtype)
        self.lending[id(buf)] = buf
        self.held(0)
        return buf

    def free(self, s: Any) -> None:
        """The schedule no longer needs state ``s``: keep its buffer for reuse.

        Not when a gradient held by the executor shares its memory (e.g. a
        ``loss_grad`` that returns its argument): reusing it would overwrite it;
        nor when it cannot be written into (a NumPy scalar, a read-only array).
        """
        if len(self.pool) < self.pool_size and _writeable(s) and not (
                T.aliases(s, self.gbar) or (self.theta is not None and T.aliases(s, self.theta))):
            self.pool.append(s)

    def check(self, what: str, i: int, value: Any) -> Any:
        sig = T.signature(value)
        if sig != self.sig and value is None:  # s0 is never None: refused at the call
            fix = {"step": ": return the new value (a step that writes into a buffer it is "
                           "given is passed as step_into=)",
                   "the store's get": ": get(key) must return the array put under key"}
            raise PebblesTypeError(
                f"{what} at step {i} returned None; expected {T.describe(self.sig)} (those "
                f"of s0){fix.get(what, '')}")
        if sig != self.sig:
            raise PebblesTypeError(
                f"{what} at step {i} returned {T.describe(sig)}; expected "
                f"{T.describe(self.sig)} (those of s0){T.python_number_hint(sig, self.sig)}")
        if self.check_finite and not T.all_finite(value):
            raise NonFiniteError(f"{what} at step {i} returned NaN or infinity", what, i)
        return value

    def call(self, what: str, i: int, *args: Any) -> Any:
        self.at = (what, i)  # where a Ctrl-C met in the executor's own code stopped it
        try:
            return self.cb[what](i, *args)
        except Exception as err:
            # The callback's frames would keep its arguments (states) alive.
            traceback.clear_frames(err.__traceback__)
            del args
            raise CallbackError(
                f"callback {what!r} raised {type(err).__name__} at step {i}: {err}",
                what, i,
            ) from err
        except BaseException as err:  # KeyboardInterrupt, SystemExit: kept, step noted
            add_note(err, f"pebbles: stopped in callback {what!r} at step {i}")
            raise

    def read(self, slot: int, what: str, i: int) -> Any:
        """The state in ``slot``; in debug mode, check nothing has changed it."""
        s = self.slots[slot]
        if self.check_states and slot in self.sums and T.digest(s) != self.sums[slot]:
            raise _stored_changed(f"before {what} at step {i}")
        return s

    # -- steps ---------------------------------------------------------------
    def fresh(self, i: int, s: Any, transient: int) -> Any:
        """``s_{i+1}`` in a new or pooled buffer; ``s`` is left as it was."""
        before = T.digest(s) if self.check_states else None
        self.steps += 1
        out = self.spare(transient, f"before step {i}")
        if out is not None:
            self.held(transient)
            self.into(i, s, out)
        else:
            self.held(transient)
            self.allocations += 1
            out = self.check("step", i, self.call("step", i, s))
            if T.aliases(out, s):
                raise PebblesValueError(
                    f"step at step {i} returned its input (or a view of it): step(i, s) must "
                    f"return a new state and leave s unchanged (s0 itself may have been "
                    f"changed); write s = s * a rather than s *= a"
                    + (", or pass step_into=f(i, s, out) for steps that write in place"
                       if self.offers else ""))
            if self.held_states.clash(out):
                raise PebblesValueError(
                    f"step at step {i} returned a state the executor still holds (s0 or a "
                    f"stored state, or a view of one): step(i, s) must return a new array "
                    f"every call, not a buffer it reuses; "
                    + ("pass step_into=f(i, s, out) to write into buffers the executor gives "
                       "you" if self.offers else "return a copy (s.copy())"))
        if before is not None and T.digest(s) != before:
            raise PebblesValueError(f"step at step {i} modified its input state; it must "
                                    f"leave s unchanged (return a new state)")
        return self.check("step", i, out)

    def into(self, i: int, s: Any, out: Any) -> None:
        ret = self.call("step_into", i, s, out)
        if ret is not None and not _same_leaves(ret, out):  # returning out itself is fine
            raise PebblesTypeError(
                f"step_into at step {i} returned a {type(ret).__name__}; it must write "
                f"s_{{i+1}} into out and return None")

    def inplace(self, i: int, s: Any, transient: int) -> Any:
        """Overwrite ``s`` with ``s_{i+1}`` (a new state without ``step_into``, or when
        ``s`` cannot be written into: a NumPy scalar or a read-only array from ``step``)."""
        if self.cb["step_into"] is None or not _writeable(s):
            out = self.fresh(i, s, transient + 1)
            if out is not s:
                self.free(s)
            return out
        self.held(transient)
        self.steps += 1
        self.inplace_steps += 1
        self.into(i, s, s)
        return self.check("step_into", i, s)

    def walk(self, src: int, dst: int, first: int, count: int) -> None:
        """``OP_STEP``: steps ``first..first+count-1`` from slot ``src`` into slot ``dst``."""
        if src == dst:  # in place: the state leaves its slot while it steps
            w = self.read(src, "step", first)
            self.slots[src] = None
            self.held_states.discard(w)
            self.live -= 1
            self.sums.pop(src, None)
        else:
            w = self.fresh(first, self.read(src, "step", first), 1)
            first, count = first + 1, count - 1
        for i in range(first, first + count):
            w = self.inplace(i, w, 1)
        self.slots[dst] = w
        self.retired.discard(dst)
        self.held_states.add(w)
        self.live += 1
        if self.check_states:
            self.sums[dst] = T.digest(w)

    def drop(self, slot: int) -> None:
        """``OP_FREE``: the state in ``slot`` is no longer needed."""
        if slot in self.retired:
            self.retired.discard(slot)
            return
        s = self.slots[slot]
        self.slots[slot] = None
        self.held_states.discard(s)
        self.sums.pop(slot, None)
        self.live -= 1
        self.free(s)

    # -- states outside the program: a forward phase run before it ----------
    def keep(self, s: Any) -> Any:
        """Hold state ``s`` (made by :meth:`fresh`) before it has a slot."""
        self.held_states.add(s)
        self.live += 1
        self.held(0)
        if self.check_states:  # checked when it takes its slot (resume)
            self.kept_sums[id(s)] = T.digest(s)
        return s

    def forget(self, s: Any) -> None:
        """Stop holding state ``s`` (held through :meth:`keep`)."""
        self.kept_sums.pop(id(s), None)
        self.held_states.discard(s)
        self.live -= 1
        self.free(s)

    def resume(self, prog: SlotProgram, kept: dict[int, Any]) -> None:
        """Run ``prog`` from its seed on, its forward part having run already.

        ``kept[cell]`` holds every state that part leaves (``s_0`` and the others
        held through :meth:`keep`); each moves to the slot the program expects it
        in, leaving ``kept`` empty, so the program's frees release them.
        """
        seed, cells = _forward_part(prog.ops)
        if sorted(cells.values()) != sorted(kept):
            raise PebblesError(f"the forward phase kept cells {sorted(kept)}, but the program "
                               f"holds cells {sorted(cells.values())} at its seed (a bug)")
        self.n = prog.n
        self.slots = [None] * prog.nslots
        for slot, cell in cells.items():
            self.slots[slot] = s = kept.pop(cell)
            if self.check_states and slot:
                self.sums[slot] = T.digest(s)
                if self.kept_sums.pop(id(s), self.sums[slot]) != self.sums[slot]:
                    raise _stored_changed(f"as the reverse sweep began, in the state of step "
                                          f"{cell}, kept since that step")
        self.run(prog.ops[seed:], None)

    # -- backward ------------------------------------------------------------
    def seed(self, slot: int, extra: int) -> None:
        """Evaluate the loss and ``dL/ds_n`` at ``s_n`` in ``slot``."""
        n, sn = self.n, self.read(slot, "loss_grad", self.n)
        self.extra += extra
        self.gbar = self.check("loss_grad", n, self.reader("loss_grad", n, sn))
        if self.cb["loss"] is not None:
            self.loss = self.scalar("loss", n, self.reader("loss", n, sn))
        g = self.running(n, sn)
        if g is not None:
            if extra:  # the scratch s_n is needed no more: free it before the sum
                del sn
                self.retire(slot)
            self.gbar = T.add(self.gbar, g)

    def retire(self, slot: int) -> None:
        """Drop the state in ``slot`` now, without pooling it; its ``OP_FREE`` is skipped."""
        self.held_states.discard(self.slots[slot])
        self.slots[slot] = None
        self.sums.pop(slot, None)
        self.live -= 1
        self.retired.add(slot)

    def reader(self, what: str, i: int, s: Any) -> Any:
        """Call a callback that only reads state ``s``; in debug mode check that it did."""
        before = T.digest(s) if self.check_states else None
        out = self.call(what, i, s)
        if before is not None and T.digest(s) != before:
            raise PebblesValueError(f"{what} at step {i} modified the state it was given; it "
                                    f"must only read it (return new arrays)")
        return out

    def scalar(self, what: str, i: int, value: Any) -> float:
        if np.ndim(value) != 0 or isinstance(value, (str, bytes)):
            raise PebblesTypeError(
                f"{what} at step {i} returned {type(value).__name__} "
                f"{'of shape ' + str(np.shape(value)) if np.ndim(value) else repr(value)}; "
                f"it must return a real number (a scalar)")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise PebblesTypeError(f"{what} at step {i} returned {value!r}; it must return "
                                   f"a real number") from None
        if self.check_finite and not np.isfinite(out):
            raise NonFiniteError(f"{what} at step {i} returned {out}", what, i)
        return out

    def truth(self, what: str, i: int, s: Any) -> bool:
        """Call a callback that answers yes or no about state ``s`` (``done``)."""
        value = self.reader(what, i, s)
        if value is None or np.ndim(value) != 0 or isinstance(value, (str, bytes)):
            shape = f" of shape {np.shape(value)}" if np.ndim(value) else ""
            raise PebblesTypeError(
                f"{what} at step {i} returned {type(value).__name__}{shape}; it must return "
                f"a bool (one value: e.g. s[0] > 30, not s > 30)")
        kind = np.asarray(value).dtype.kind
        if kind == "c" or (kind == "f" and bool(np.isnan(value))):  # Python reads both as true
            raise PebblesValueError(
                f"{what} at step {i} returned {value!r}; it must return a bool, and a NaN or a "
                f"complex number is neither yes nor no (test for it, e.g. np.isnan(x) or x > 0)")
        try:
            return bool(value)
        except (TypeError, ValueError) as err:
            raise PebblesTypeError(f"{what} at step {i} returned {value!r}; it must return "
                                   f"a bool (one value: e.g. s[0] > 30)") from err

    def running(self, i: int, s: Any) -> Any:
        """Add the running loss at ``s_i``; return its gradient (or None) for the caller to add."""
        cb = self.cb
        if cb["running_loss"] is not None:
            value = self.scalar("running_loss", i, self.reader("running_loss", i, s))
            self.loss = value if self.loss is None else self.loss + value
        if cb["running_loss_grad"] is None:
            return None
        return self.check("running_loss_grad", i, self.reader("running_loss_grad", i, s))

    def paint(self, slot: int, i: int) -> None:
        s = self.read(slot, "backward", i)
        before = (T.digest(s), T.digest(self.gbar)) if self.check_states else None
        out = self.call("backward", i, s, self.gbar)
        if not isinstance(out, tuple) or len(out) != 2:
            got = (f"a tuple of {len(out)}" if isinstance(out, tuple)
                   else f"a {type(out).__name__}")
            raise PebblesTypeError(
                f"backward at step {i} must return a tuple (gbar_i, theta_bar_i), got {got}; "
                f"return (gbar_i, None) when there are no parameters")
        if before is not None and before != (T.digest(s), T.digest(self.gbar)):
            raise PebblesValueError(f"backward at step {i} modified its input state or "
                                    f"gradient; it must return new arrays")
        self.gbar = self.check("backward", i, out[0])
        self.accumulate(i, out[1])
        self.paints += 1
        if i >= 1:
            g = self.running(i, s)
            if g is not None:
                self.gbar = T.add(self.gbar, g)

    def accumulate(self, i: int, tb: Any) -> None:
        if tb is None:
            return
        sig = T.signature(tb)
        if self.theta_sig is None:
            self.theta_sig = sig
        elif sig != self.theta_sig:
            raise PebblesTypeError(
                f"backward at step {i} returned theta_bar with {T.describe(sig)}, but earlier "
                f"steps returned {T.describe(self.theta_sig)}; it must keep one shape")
        if self.check_finite and not T.all_finite(tb):
            raise NonFiniteError(f"backward at step {i} returned a theta_bar with NaN or "
                                 f"infinity", "backward", i)
        self.theta = T.copied(tb) if self.theta is None else T.add(self.theta, tb)

    def disk(self, op: int, src: int, dst: int, cell: int) -> None:
        """``OP_STORE`` / ``OP_LOAD`` / ``OP_DISCARD`` through ``self.store``."""
        try:
            self._disk(op, src, dst, cell)
        except BaseException as err:
            _note_stop(err, f"at the {_DISK_OPS[op]} of the state of step {cell}")
            raise

    def _disk(self, op: int, src: int, dst: int, cell: int) -> None:
        if op == OP_STORE:
            s = self.read(src, "store", cell)
            if isinstance(s, np.generic):  # a 0-d state that NumPy returned as a scalar
                s = np.asarray(s)
            if not isinstance(s, np.ndarray):
                raise PebblesTypeError(
                    f"a two-level schedule stores states on disk as NumPy arrays; the state of "
                    f"step {cell} is {a_kind(s)}: pack it into one array")
            buf = self.lend(s, cell)
            self.stored.add(cell)  # before put: a Ctrl-C inside it leaves the cell to forget
            try:
                if buf is None:
                    self.store.put(cell, s if self.put_copies else np.array(s, copy=True))
                else:
                    self.store.put(cell, s, into=buf)
            except Exception:
                self.stored.discard(cell)  # refused: nothing of this replay's to delete
                raise
            self.writes += 1
        elif op == OP_LOAD:
            self.slots[dst] = self.check("the store's get", cell, self.load(cell))
            self.live += 1
            self.held(0)
            self.reads += 1
            if self.check_states:
                self.sums[dst] = T.digest(self.slots[dst])
        else:
            self.store.delete(cell)
            self.stored.discard(cell)

    def discard_left(self) -> None:
        """Delete from the store the states a schedule leaves there at its end (a legal
        stream may end with disk pebbles), so that the store can serve another replay."""
        for cell in sorted(self.stored):
            self.disk(OP_DISCARD, 0, 0, cell)

    def load(self, cell: int) -> Any:
        """The state of step ``cell`` from the store: read into a free buffer where the
        store's ``get`` takes ``out=``, else ``get(cell)``, a new array (the protocol),
        copied unless the store is known to return a new one (:func:`_copying`)."""
        out = self.spare(1, f"at the load of the state of step {cell}") \
            if self.reads_into else None
        if out is not None and not out.flags.c_contiguous:  # the store reads C order
            self.pool.append(out)
            out = None
        got = self.store.get(cell) if out is None else self.store.get(cell, out=out)
        if got is not out and not self.get_copies and isinstance(got, np.ndarray):
            got = np.array(got, copy=True)  # the store may keep it: a walk would overwrite it
        return got

    def run(self, ops: np.ndarray, bar: Any) -> None:
        for op, src, dst, first, count in _rows(ops):
            if op == OP_STEP or op == OP_TAPE:  # no graph is kept: the paint recomputes
                self.walk(src, dst, first, count)
            elif op == OP_PAINT:
                self.paint(src, first)
            elif op == OP_FREE:
                self.drop(src)
            elif op == OP_SEED:
                self.seed(src, count)
            else:
                self.disk(op, src, dst, first)
            if bar is not None:
                bar.update(1)


_DISK_OPS = {OP_STORE: "store", OP_LOAD: "load", OP_DISCARD: "discard"}


def _writeable(s: Any) -> bool:
    """Whether every leaf of state ``s`` is a NumPy array that can be written into."""
    if type(s) is np.ndarray:
        return s.flags.writeable
    return all(isinstance(x, np.ndarray) and x.flags.writeable for x in T.leaves(s))


def _note_stop(err: BaseException, where: str) -> None:
    """Note on ``err``, met in a store operation or while waiting on the store, where the
    replay stopped (``where``: e.g. ``at the load of the state of step 3``): a store error
    (an ``OSError``) as :func:`_note_store_error` does, a ``KeyboardInterrupt`` or
    ``SystemExit`` as a callback's (once); the executor's own errors name the step."""
    if isinstance(err, OSError):  # a StoreError, or a store's own OSError
        _note_store_error(err, where)
    elif not isinstance(err, Exception) and not any(
            note.startswith("pebbles: stopped") for note in getattr(err, "__notes__", ())):
        add_note(err, f"pebbles: stopped {where}")


def _note_interrupt(r: _Replay, err: BaseException) -> None:
    """Note on a ``KeyboardInterrupt`` or ``SystemExit`` that ends replay ``r`` the step it
    stopped at, when no callback or store call met it (which note theirs): it landed in
    the executor's own code, after the callback last called (:attr:`_Replay.at`)."""
    if isinstance(err, Exception):  # the executor's own errors name the step
        return
    if r.at is None:
        _note_stop(err, "before the first step")
    else:
        what, i = r.at
        _note_stop(err, f"at step {i} (in the executor, after callback {what!r} returned)")


def _note_store_error(err: BaseException, where: str) -> None:
    """Note on store error ``err`` the operation that met it, ``where`` (e.g. ``at the load
    of the state of step 3``), and the state whose background write failed when the
    error names one (its ``key``). Once: a failed store raises its error at every call."""
    if any(note.startswith("pebbles: the store failed")
           for note in getattr(err, "__notes__", ())):
        return
    key = getattr(err, "key", None)
    if isinstance(key, int):
        add_note(err, f"pebbles: the store failed at the store of the state of step {key} "
                       f"(written in the background; reported {where})")
    else:
        add_note(err, f"pebbles: the store failed {where}")


def _forget_stored(r: _Replay, exc: BaseException) -> None:
    """Delete what a failed replay put in the caller's store, and drop the buffers lent to
    it, so that it can be used again. A store that failed itself (it raises ``exc``, or one
    error again and again) has freed everything already and is not asked again; a
    ``DiskStore`` whose background write failed is then made usable again (its error
    cleared: the next replay meets it no more). ``exc``, the replay's error, keeps its
    traceback."""
    tb, met = exc.__traceback__, [exc]
    try:
        for cell in sorted(r.stored):
            try:
                r.store.delete(cell)  # waits for its pending write: its buffer comes back
            except Exception as err:  # noqa: BLE001 -- the replay's own error is reported
                if any(err is e for e in met):
                    break
                met.append(err)
        else:
            try:
                r.settle()
            except Exception as err:  # noqa: BLE001 -- as above
                met.append(err)
    finally:
        r.stored.clear()
        r.lending.clear()
        if isinstance(r.store, DiskStore):
            r.store._recover(met)
        exc.__traceback__ = tb  # a store error raised again here added frames to it


def _same_leaves(a: Any, b: Any) -> bool:
    la, lb = T.leaves(a), T.leaves(b)
    return len(la) == len(lb) and all(x is y for x, y in zip(la, lb, strict=True))


_WARNED: set[str] = set()


def _progress_bar(total: int | None, progress: bool) -> Any:
    """A tqdm bar of ``total`` operations (None: unknown) if ``progress``, else None."""
    if not progress:
        return None
    try:
        from tqdm import tqdm  # optional dependency, imported only when asked for
    except ImportError:
        if "tqdm" not in _WARNED:
            _WARNED.add("tqdm")
            warnings.warn(f"{missing_extra('tqdm', 'progress', 'progress=True')}; running "
                          "without a progress bar", RuntimeWarning, stacklevel=3)
        return None
    return tqdm(total=total, unit="op")


def _program(moves: Any, n: int | None) -> SlotProgram:
    if n is not None:
        n = check_int("n", n, 1)
    if isinstance(moves, SlotProgram):
        if n is not None and n != moves.n:
            raise PebblesValueError(f"this program is for n={moves.n}, replay got n={n}; "
                                    f"pass n=None (the program's own) or n={moves.n}")
        return _with_frees(moves.check())
    from ._registry import Schedule

    if isinstance(moves, Schedule):
        if n is not None and n != moves.n:
            raise PebblesValueError(f"this schedule is for n={moves.n}, replay got n={n}; "
                                    f"pass n=None (the schedule's own) or n={moves.n}")
        return lower(moves, frees=True)
    if isinstance(moves, str):
        raise PebblesTypeError("moves is a string; pass a schedule (pebbles.schedule(...)), "
                               "an iterable of moves or an encoded array")
    if n is None:
        raise PebblesTypeError("replay(moves, n=None, ...) needs n=NUMBER_OF_STEPS for a plain "
                               "move stream; pass n, or a pebbles.schedule(...) value or a "
                               "SlotProgram, which carry their own")
    return lower(moves, n, frees=True)




def _with_frees(prog: SlotProgram) -> SlotProgram:
    """``prog`` with an ``OP_FREE`` after the last use of each state.

    A program lowered without frees leaves a state in its slot until the slot
    is written again; an executor that allocates states would hold every
    state it ever made. A state's last use is its last read before its slot
    is written again (or its write, if nothing reads it); a program that
    already frees states is returned as it is.
    """
    ops = prog.ops
    if len(ops) == 0 or (ops[:, 0] == OP_FREE).any():
        return prog
    last: dict[int, int] = {}  # slot -> row that last used its state
    cell: dict[int, int] = {}  # slot -> cell of its state
    after: list[tuple[int, int, int]] = []  # (row, slot, cell) of each free
    for k, (op, src, dst, first, count) in enumerate(_rows(ops)):
        if op in READS:
            last[src] = k
        if op in WRITES:
            if dst in last and (op == OP_LOAD or src != dst):  # in place: no free
                after.append((last[dst], dst, cell[dst]))
            last[dst], cell[dst] = k, _cell(op, first, count)
    after += [(k, slot, cell[slot]) for slot, k in last.items() if slot != 0]
    if not after:
        return prog
    rows = np.array([[OP_FREE, slot, 0, c, 0] for _, slot, c in after], dtype=ops.dtype)
    ops = np.insert(ops, [k + 1 for k, _, _ in after], rows, axis=0)
    return dataclasses.replace(prog, ops=ops)


def _stored_changed(where: str) -> PebblesValueError:
    """The error of :class:`_Replay`'s debug mode for a stored state found changed."""
    return PebblesValueError(
        f"a stored state changed while it was stored (found {where}): a callback "
        f"modified a state it was only given to read (or one it kept a reference to); "
        f"return new arrays from step/backward (s = s * a, not s *= a)")


def _cell(op: int, first: int, count: int) -> int:
    """The cell of the state a row of ``WRITES`` writes."""
    return first if op == OP_LOAD else first + count


def _forward_part(ops: np.ndarray) -> tuple[int, dict[int, int]]:
    """The row of the seed in ``ops``, and ``{slot: cell}`` of the states held there."""
    cells = {0: 0}
    for k, (op, src, dst, first, count) in enumerate(_rows(ops)):
        if op == OP_SEED:
            return k, cells
        if op in WRITES:
            cells[dst] = _cell(op, first, count)
        elif op == OP_FREE:
            cells.pop(src, None)
    raise PebblesValueError("the program has no seed (OP_SEED row)")


def _callbacks(step: Callable[[int, Any], Any], backward: Callable[..., Any],
               loss_grad: Callable[[Any], Any], **optional: Any) -> dict[str, Any]:
    """The callbacks as :class:`_Replay` calls them, ``f(i, ...)``; ``optional``:
    ``loss``, ``step_into``, ``running_loss``, ``running_loss_grad``, ``done``."""
    loss = optional.pop("loss", None)
    return {
        "step": step, "backward": backward, "loss_grad": lambda i, s: loss_grad(s),
        "loss": None if loss is None else (lambda i, s: loss(s)),
        "step_into": None, "running_loss": None, "running_loss_grad": None, **optional,
    }


def _guard(r: _Replay, s0: Any, body: Callable[[], None]) -> None:
    """Run ``body``, which calls the callbacks through ``r``.

    If it raises, every state ``r`` holds is dropped (and the traceback's frames
    cleared of theirs) before the error propagates, a ``KeyboardInterrupt`` noted with
    the step where it stopped the replay (:func:`_note_interrupt`); afterwards ``s0`` is
    checked to be unchanged (its NumPy array leaves: two checksums, always on; a NumPy
    scalar or Python number leaf cannot be written into, nor another array type's be
    checksummed cheaply).
    """
    arrays = T.numpy_arrays(s0)
    s0_sum = T.digest(arrays) if arrays else None
    try:
        body()
        changed = s0_sum is not None and T.digest(arrays) != s0_sum
    except BaseException as exc:
        r.release()
        _note_interrupt(r, exc)
        traceback.clear_frames(exc.__traceback__)
        raise
    if changed:
        r.release()
        raise PebblesValueError(
            "s0 changed during the replay, so the gradient is wrong: a callback wrote into a "
            "state it was only given to read (s *= a in step or backward); return new arrays "
            "(s = s * a)" + ("; or pass step_into for in-place steps; check_states=True names "
                             "the callback and step" if r.offers else ""))


def replay(
    moves: Any,
    n: int | None,
    s0: Any,
    step: Callable[[int, Any], Any],
    backward: Callable[[int, Any, Any], tuple[Any, Any]],
    loss_grad: Callable[[Any], Any],
    *,
    loss: Callable[[Any], float] | None = None,
    step_into: Callable[[int, Any, Any], None] | None = None,
    running_loss: Callable[[int, Any], float] | None = None,
    running_loss_grad: Callable[[int, Any], Any] | None = None,
    check_finite: bool = False,
    check_states: bool = False,
    progress: bool = False,
    pool_size: int | None = None,
    store: Any = None,
) -> ReplayResult:
    """Replay a checkpoint-game schedule and return the gradient of the loss.

    Parameters
    ----------
    moves : Schedule, iterable of Move, encoded (m, 3) array, or SlotProgram
        A checkpoint-game or in-place-game schedule for ``n`` steps; it is
        checked and lowered with :func:`pebbles.lower` before any callback runs.
        A SlotProgram lowered without ``frees`` runs with each state dropped
        after its last use, so it holds no more states than the schedule.
    n : int or None
        Number of steps (``None``: the schedule's own, for a Schedule or a
        SlotProgram).
    s0 : state
        The initial state: an array, or a tuple, list or dict of arrays (a
        pytree: nested freely; every leaf is checked for shape and dtype). It
        is never modified: a callback that writes into it is reported (NumPy
        leaves are checksummed before and after the replay). Leaves are
        arrays: for one number pass ``np.asarray(x)`` (a 0-d array) or
        ``np.float64(x)``, not a Python float, and return NumPy values from
        the callbacks (``np.ones_like(s)``, not ``1.0``): every value a
        callback returns must have ``s0``'s dtype, and a Python float's type
        is not float64. Arrays of Python objects (``dtype=object``) are refused.
    step : callable ``step(i, s_i) -> s_{i+1}``
        One forward step; must return a new state (same structure, shapes and
        dtypes as ``s0``) and leave its argument unchanged. Returning the
        argument itself (``s *= a; return s``), or any state the executor
        still holds (a reused buffer), is refused with an error.
    backward : callable ``backward(i, s_i, gbar_{i+1}) -> (gbar_i, theta_bar_i)``
        The vector-Jacobian product of step ``i``; ``theta_bar_i`` may be
        ``None`` when there are no parameters. It must not modify its inputs.
    loss_grad : callable ``loss_grad(s_n) -> dL/ds_n``
        Gradient of the final loss.
    loss : callable ``loss(s_n) -> float``, optional
        Value of the final loss (reported in the result).
    step_into : callable ``step_into(i, s, out) -> None``, optional
        Writes ``s_{i+1}`` into ``out`` and returns None (or ``out`` itself,
        as ``np.multiply(s, a, out=out)`` does); a step_into that returns a new
        value instead is refused with an error. It is called with
        ``out is s`` (an in-place step), so it must allow the aliasing, and
        with ``out`` a pooled buffer of a freed state.
    running_loss, running_loss_grad : callable ``(i, s_i)``, optional
        A running loss ``sum_{i=1..n} l_i(s_i)`` and its gradients, added to
        the loss and to ``gbar_i``.
    check_finite : bool
        Raise :class:`NonFiniteError` if a callback returns NaN or infinity
        (states, gradients, ``theta_bar`` and losses) in a float or complex array
        (arrays of other dtypes, such as records, are not looked into).
    check_states : bool
        Debug mode: checksum every stored state and every callback's inputs,
        and name the callback and step that changed one (slower).
    progress : bool
        Show a tqdm progress bar (``pip install "pebble-games[progress]"``;
        without tqdm a warning says so once).
    pool_size : int or None
        Most freed buffers kept for reuse (only with ``step_into``; ``None``:
        no limit beyond the program's slots); 0 turns the pool off.
    store : Store, optional
        Where a two-level schedule's ``store``/``load`` moves put and get states
        (e.g. ``pebbles.DiskStore(directory)``, used as a context manager so
        its files are removed however the replay ends); default a
        ``pebbles.MemoryStore`` made and closed by the replay. However the
        replay ends, the store is left holding none of its states or buffers:
        it can serve another replay (of any shape and dtype); a ``DiskStore``
        whose background write failed (``DiskFullError``) in the replay too,
        its error cleared and its folder made anew (one that failed outside a
        replay is refused, before any step). A store serves one replay at a
        time (a second, in another thread or from a callback, is refused before
        any step). Any object with
        ``put(key, array)``, ``get(key)`` and ``delete(key)`` will do; loads are
        read into free state buffers only when its ``get`` takes ``out=``.
        ``put`` must keep a copy of its own (the executor reuses the array's
        buffer) and ``get`` return a new array, one the store does not keep
        (the executor steps in place on it). For a store whose ``put`` or
        ``get`` is not ``MemoryStore``'s or ``DiskStore``'s, the executor puts
        a copy (unless it lends the store a buffer to copy into: ``borrows``)
        and copies what ``get`` returns (not an ``out`` it filled), so
        a store that keeps the very arrays it is given (a dict) gives the right
        gradient too, at one more copy per store and load.

    Returns
    -------
    ReplayResult

    Raises
    ------
    CallbackError
        A callback raised; the message names the step, the original error is
        its ``__cause__``. Every state the executor held has been dropped.
    PebblesTypeError
        A callback returned a value of the wrong structure, shape or dtype
        (a Python float where ``s0`` is a NumPy array, or the reverse, is
        named as such).
    NonFiniteError
        With ``check_finite``, a callback returned NaN or infinity.
    IllegalMoveError
        The schedule breaks a rule (checked before any callback runs).
    PebblesValueError
        ``store`` serves another replay now (checked before any callback runs).

    Notes
    -----
    :func:`pebbles.replay_until` takes its first arguments in another order
    (``step, backward, loss_grad, s0, done, budget``); pass them by keyword,
    as here, to keep the two apart.

    Examples
    --------
    ``s_{i+1} = 2 s_i + theta``, ``L = sum(s_n)``, three steps:

    >>> import numpy as np, pebbles
    >>> r = pebbles.replay(pebbles.schedule("treeverse", 3, budget=2), n=None, s0=np.ones(2),
    ...                    step=lambda i, s: 2.0 * s + 1.0,
    ...                    backward=lambda i, s, g: (2.0 * g, g.copy()),
    ...                    loss_grad=lambda s: np.ones_like(s), loss=lambda s: s.sum())
    >>> r.loss, r.grad_s0, r.grad_theta
    (30.0, array([8., 8.]), array([7., 7.]))
    >>> r.forward_steps, r.extra_steps, r.backward_steps, r.peak_states
    (3, 1, 3, 3)
    """
    _check_pool(pool_size)
    _check_store(store)
    check_finite, check_states, progress = (
        check_bool(k, v) for k, v in (("check_finite", check_finite),
                                      ("check_states", check_states), ("progress", progress)))
    _check_callbacks(s0, step=step, backward=backward, loss_grad=loss_grad, loss=loss,
                     step_into=step_into, running_loss=running_loss,
                     running_loss_grad=running_loss_grad)
    prog = _program(moves, n)
    if prog.writes and isinstance(s0, np.generic):
        s0 = np.asarray(s0)  # one number: a 0-d array, as the store keeps it
    if prog.writes and not isinstance(s0, np.ndarray):
        raise PebblesTypeError(
            f"s0 is {a_kind(s0)}; a two-level schedule stores states on disk as "
            f"NumPy arrays: pack the state into one array (its steps must return arrays; "
            f"one number: s0=np.asarray(x))")
    callbacks = _callbacks(step, backward, loss_grad, loss=loss, step_into=step_into,
                           running_loss=running_loss, running_loss_grad=running_loss_grad)
    r = _Replay(prog.n, prog.nslots, s0, callbacks, check_finite, pool_size, check_states)
    own_store = store is None and prog.writes > 0
    _attach(r, MemoryStore() if own_store else store)
    t0 = time.perf_counter()
    _run_replay(r, prog, s0, store, own_store, progress)
    result = ReplayResult(
        loss=r.loss, grad_s0=r.gbar, grad_theta=r.theta, forward_steps=r.steps,
        extra_steps=r.extra, backward_steps=r.paints, peak_states=r.peak,
        seconds=time.perf_counter() - t0, peak_buffers=r.peak_buffers,
        allocations=r.allocations, inplace_steps=r.inplace_steps, writes=r.writes,
        reads=r.reads,
    )
    r.release()
    return result


def _attach(r: _Replay, store: Any) -> None:
    """Give replay ``r`` its ``store`` and how to use it: lend it free buffers, read into
    them, copy what goes in and out (a store of the caller's own)."""
    r.store = store
    r.lends = bool(getattr(store, "borrows", False)) and r.pool_size > 0
    r.reads_into = store is not None and r.pool_size > 0 and _takes_out(store)
    r.put_copies, r.get_copies = (_copying(store, name) for name in ("put", "get"))


def _run_replay(r: _Replay, prog: SlotProgram, s0: Any, store: Any, own_store: bool,
                progress: bool) -> None:
    """Run ``prog`` on ``r``; however it ends, the caller's ``store`` is released and left
    holding none of the replay's states, and a store of the replay's own is closed."""
    bar = None
    try:
        _claim(store, r)  # in the try: released by the finally, however the replay ends
        bar = _progress_bar(len(prog.ops), progress)
        _guard(r, s0, lambda: r.run(prog.ops, bar))
        _check_complete(r, prog)
        r.discard_left()
        r.settle()
    except BaseException as exc:
        _note_interrupt(r, exc)  # one met after the program's last row
        if not own_store and (store is None or _serves(store, r)):
            try:
                _forget_stored(r, exc)  # not a store another replay is using (refused)
            except BaseException as late:  # a Ctrl-C while freeing it: where it stopped
                _note_interrupt(r, late)
                raise
        raise
    finally:
        _release(store, r)  # first: a Ctrl-C later in this block leaves no claim behind
        if bar is not None:
            bar.close()
        if own_store:
            r.store.close()


def _check_callbacks(s0: Any, fn: str = "replay", **callbacks: Any) -> None:
    """Refuse a missing ``s0``, one holding Python objects (``dtype=object``), or a callback
    that is not a function (``fn``: for help)."""
    if s0 is None:
        raise PebblesTypeError("s0=None: pass the initial state (an array, or a tuple, list "
                               "or dict of arrays)")
    dtype = T.object_dtype(s0)
    if dtype is not None:
        raise PebblesTypeError(
            f"s0 holds an array of dtype {dtype} (Python objects); states are arrays of "
            f"numbers, which the executor checksums to catch a callback that changes one: "
            f"pass s0 as a numeric array, e.g. s0=np.asarray(s0, dtype=np.float64)")
    for name, f in callbacks.items():
        required = name in ("step", "backward", "loss_grad", "done")
        if (f is not None or required) and not callable(f):
            raise PebblesTypeError(f"{name}={f!r:.40} must be a function; see help(pebbles."
                                   f"{fn}) for its signature")


#: The caller's stores serving a replay now, by id: the replay each serves.
_SERVING: dict[int, _Replay] = {}
_SERVING_LOCK = threading.Lock()


def _claim(store: object, r: _Replay) -> None:
    """Mark the caller's ``store`` (None: none) as serving replay ``r`` until it ends;
    refuse one that serves another replay now (another thread's, or one a callback
    started), whose states and buffers the two would mix."""
    if store is None:
        return
    with _SERVING_LOCK:
        if id(store) in _SERVING:
            where = getattr(store, "directory", None)
            what = type(store).__name__ + (f" on {where}" if isinstance(where, str) else "")
            raise PebblesValueError(
                f"store=<{what}> is serving another replay now (in another thread, or one a "
                f"callback started); a store serves one replay at a time: give each replay "
                f"its own, e.g. with pebbles.DiskStore(directory) as store: ...")
        _SERVING[id(store)] = r


def _release(store: object, r: _Replay) -> None:
    """End :func:`_claim`'s mark of ``store`` for replay ``r`` (none of another's)."""
    with _SERVING_LOCK:
        if store is not None and _serves(store, r):
            del _SERVING[id(store)]


def _serves(store: object, r: _Replay) -> bool:
    """Whether ``store`` is marked (:func:`_claim`) as serving replay ``r``."""
    return _SERVING.get(id(store)) is r


def _check_store(store: object) -> None:
    """Refuse a ``store`` that is not a store object (a class, a number, a path), one
    that is closed (its ``closed`` is True), or a ``DiskStore`` whose background write
    failed outside a replay (one a replay met was made usable again), before any step
    runs."""
    if store is None:
        return
    if isinstance(store, type) or not all(
            callable(getattr(store, name, None)) for name in ("put", "get", "delete")):
        what = f"the class {store.__name__}" if isinstance(store, type) else a_kind(store)
        raise PebblesTypeError(
            f"store={store!r:.60} is {what}; it must be a store object with put, get and "
            f"delete, e.g. store=pebbles.DiskStore(directory) (an instance, used in a with "
            f"block) or store=pebbles.MemoryStore()")
    where = getattr(store, "directory", None)
    what = type(store).__name__ + (f" on {where}" if isinstance(where, str) else "")
    failure = store._failure if isinstance(store, DiskStore) else None
    if failure is not None and not store.closed and failure is store._met:
        store._recover([failure])  # a replay met it and was stopped making it usable
        failure = store._failure
    if failure is not None and not store.closed:
        raise StoreError(
            f"store=<{what}> failed before this replay ({type(failure).__name__}: "
            f"{failure}) and freed its files, and a failed store cannot serve a replay (only "
            f"one a replay met is made usable again); close it and make a new one, e.g. with "
            f"pebbles.DiskStore(directory) as store: pebbles.replay(..., store=store)")
    if getattr(store, "closed", False) is True:
        raise StoreError(
            f"store=<{what}> is closed, and a closed store cannot be used again (it freed its "
            f"states); make a new one for the replay, e.g. with pebbles.DiskStore(directory) "
            f"as store: pebbles.replay(..., store=store)")


#: The store methods known to keep a copy of the array they are given (put) and to
#: return a new array (get): the executor copies for a store whose methods are others.
_COPYING = frozenset({MemoryStore.put, MemoryStore.get, DiskStore.put, DiskStore.get})


def _copying(store: object, name: str) -> bool:
    """Whether ``store``'s method ``name`` (``put`` or ``get``) is a built-in store's, which
    copies: a store of one's own may keep the array put (a dict), which the executor
    then overwrites in a pooled buffer, or hand out one it keeps, which a walk overwrites."""
    return getattr(type(store), name, None) in _COPYING


def _takes_out(store: object) -> bool:
    """Whether ``store.get`` takes ``out=`` (a parameter so named, or ``**kwargs``): the
    protocol's ``get(key)`` need not; a store without it gets no buffers to read into."""
    try:
        params = inspect.signature(store.get).parameters.values()  # type: ignore[attr-defined]
    except (TypeError, ValueError):  # no signature to read (some builtins): offer none
        return False
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return any((p.name == "out" and p.kind in named) or p.kind is p.VAR_KEYWORD
               for p in params)


def _check_complete(r: _Replay, prog: SlotProgram) -> None:
    """Refuse to report a gradient of a program that did not make every backward step (a
    SlotProgram built or edited by hand; :func:`pebbles.lower` makes complete ones)."""
    if r.paints != prog.n:
        r.release()
        raise PebblesValueError(
            f"the program made {r.paints} backward steps, but n={prog.n} needs {prog.n}: it "
            f"is not a complete schedule, so there is no gradient; pass the schedule, or a "
            f"SlotProgram from pebbles.lower unchanged")


def _check_pool(pool_size: object) -> None:
    if pool_size is None:
        return
    if isinstance(pool_size, bool) or not isinstance(pool_size, (int, np.integer)):
        raise PebblesTypeError(f"pool_size={pool_size!r} must be None (no limit) or an "
                               f"integer >= 0 (0 turns buffer reuse off), got "
                               f"{type(pool_size).__name__}")
    if pool_size < 0:
        raise PebblesValueError(f"pool_size={pool_size!r} must be None (no limit) or an "
                                f"integer >= 0 (0 turns buffer reuse off)")



