"""A generic executor: replay a checkpoint-game schedule to compute a gradient.

Reverse-mode differentiation of a long simulation ``s_{i+1} = step(i, s_i)``,
``L = loss(s_n)`` (Liu & Xu, "Automatic differentiation in physics
simulation", section 2 and appendix: the checkpoint pebble game; section 3,
Algorithm 3, Treeverse) needs the states in reverse order. A schedule (a
stream of :class:`~pebbles._moves.Move`) says which states to keep, when to
recompute them and when to take each backward step; :func:`replay` carries it
out with the user's callbacks. It knows nothing of the state's type beyond
``shape`` and ``dtype`` (numpy arrays, or anything alike).

Move semantics (cells ``0..n``, cell ``i`` holds ``s_i``):

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

import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import IllegalMoveError, PebblesError, PebblesTypeError, PebblesValueError
from ._moves import Move, MoveKind, decode

__all__ = ["CallbackError", "NonFiniteError", "ReplayResult", "replay"]

_PLACE, _REMOVE, _PAINT = MoveKind.PLACE, MoveKind.REMOVE, MoveKind.PAINT
_MOVE, _FORWARD = MoveKind.MOVE, MoveKind.FORWARD


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


class NonFiniteError(PebblesValueError):
    """A callback returned NaN or infinity (only with ``check_finite=True``)."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What :func:`replay` computed and measured.

    Attributes
    ----------
    loss : float or None
        ``loss(s_n)`` plus the running loss; ``None`` if neither was given.
    grad_s0 : array
        ``dL/ds_0``.
    grad_theta : object or None
        Sum of the ``theta_bar_i`` returned by ``backward`` (``None`` if all
        were ``None``).
    forward_steps : int
        Step calls made (``step`` and ``step_into``), the extra one included.
    extra_steps : int
        Step calls made to produce ``s_n`` at the first paint (0 or 1).
    backward_steps : int
        Calls of ``backward`` (paints).
    peak_states : int
        The most states held at once besides ``s_0``: stored states plus the
        working state(s), a step's input and output counted while it runs.
        Comparable with the simulator's ``peak_pebbles`` (plus one for the
        extra step, plus one for ``move`` without ``step_into``).
    seconds : float
        Wall-clock time of the replay.
    peak_buffers : int
        The most state-sized buffers held at once besides ``s_0``: live states
        plus free buffers kept in the pool (never more than ``peak_states``).
    allocations : int
        Steps that returned a new state (``step``); the others wrote into a
        pooled or working buffer (``step_into``).
    inplace_steps : int
        Steps that overwrote their input (``step_into(i, s, s)``).
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


def _aliases(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are one object or numpy arrays that may share memory."""
    if a is b:
        return True
    return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.may_share_memory(a, b)


class _Replay:
    """Mutable state of one replay; every state it holds is reachable from here."""

    def __init__(self, n: int, s0: Any, cb: dict[str, Any], check_finite: bool,
                 pool_size: int | None) -> None:
        self.n = n
        self.s0 = s0
        self.shape = np.shape(s0)
        self.dtype = getattr(s0, "dtype", None)
        self.cb = cb
        self.check_finite = check_finite
        self.store: dict[int, Any] = {}
        self.gbar: Any = None
        self.theta: Any = None
        self.loss: float | None = None
        self.painted_from = n
        self.steps = 0
        self.extra = 0
        self.paints = 0
        self.peak = 0
        self.pool: list[Any] = []
        self.pool_size = (n + 1 if pool_size is None else pool_size) \
            if cb["step_into"] is not None else 0
        self.peak_buffers = 0
        self.allocations = 0
        self.inplace_steps = 0

    def release(self) -> None:
        """Drop every reference to a state or a gradient."""
        self.store.clear()
        self.pool.clear()
        self.s0 = self.gbar = self.theta = None

    # -- bookkeeping -------------------------------------------------------
    def held(self, transient: int) -> None:
        live = len(self.store) + transient
        self.peak = max(self.peak, live)
        self.peak_buffers = max(self.peak_buffers, live + len(self.pool))

    def free(self, s: Any) -> None:
        """The schedule no longer needs state ``s``: keep its buffer for reuse.

        Not when a gradient held by the executor shares its memory (e.g. a
        ``loss_grad`` that returns its argument): reusing it would overwrite it.
        """
        if len(self.pool) < self.pool_size and not (
                _aliases(s, self.gbar) or _aliases(s, self.theta)):
            self.pool.append(s)

    def get(self, i: int, index: int, m: Move) -> Any:
        if i == 0:
            return self.s0
        if i not in self.store:
            raise IllegalMoveError(index, m, f"cell {i} holds no state")
        return self.store[i]

    def check(self, what: str, i: int, value: Any) -> Any:
        if np.shape(value) != self.shape or getattr(value, "dtype", None) != self.dtype:
            raise PebblesTypeError(
                f"{what} at step {i} returned shape={np.shape(value)}, "
                f"dtype={getattr(value, 'dtype', None)}; expected shape={self.shape}, "
                f"dtype={self.dtype} (those of s0)"
            )
        if self.check_finite and not np.all(np.isfinite(value)):
            raise NonFiniteError(f"{what} at step {i} returned NaN or infinity")
        return value

    def call(self, what: str, i: int, *args: Any) -> Any:
        try:
            return self.cb[what](i, *args)
        except Exception as err:
            # The callback's frames would keep its arguments (states) alive.
            traceback.clear_frames(err.__traceback__)
            del args
            raise CallbackError(
                f"callback {what!r} raised {type(err).__name__} at step {i}: {err}",
                what,
                i,
            ) from err

    # -- steps ---------------------------------------------------------------
    def step(self, i: int, s: Any, transient: int) -> Any:
        """Return ``s_{i+1}`` in a new or pooled buffer; ``transient`` states besides the store."""
        if self.pool:
            out = self.pool.pop()
            self.held(transient)
            self.steps += 1
            self.call("step_into", i, s, out)
            return self.check("step_into", i, out)
        self.held(transient)
        self.steps += 1
        self.allocations += 1
        return self.check("step", i, self.call("step", i, s))

    def step_inplace(self, i: int, s: Any, transient: int) -> Any:
        """Overwrite ``s`` with ``s_{i+1}`` (falls back to :meth:`step`)."""
        if self.cb["step_into"] is None:
            return self.step(i, s, transient + 1)
        self.held(transient)
        self.steps += 1
        self.inplace_steps += 1
        self.call("step_into", i, s, s)
        return self.check("step_into", i, s)

    def cell_free(self, b: int, index: int, m: Move) -> None:
        if not 1 <= b <= self.n:
            raise IllegalMoveError(index, m, f"cell must be in 1..{self.n}, got {b}")
        if b in self.store:
            raise IllegalMoveError(index, m, f"cell {b} already holds a state")

    def place(self, i: int, index: int, m: Move) -> None:
        self.cell_free(i, index, m)
        s = self.get(i - 1, index, m)
        self.store[i] = self.step(i - 1, s, 1)

    def move(self, i: int, index: int, m: Move) -> None:
        self.cell_free(i, index, m)
        if i - 1 < 1:
            raise IllegalMoveError(index, m, "cell 0 cannot be moved")
        s = self.get(i - 1, index, m)
        del self.store[i - 1]
        out = self.step_inplace(i - 1, s, 1)
        if out is not s:
            self.free(s)
        self.store[i] = out

    def forward(self, a: int, b: int, index: int, m: Move) -> None:
        self.cell_free(b, index, m)
        if not 0 <= a < b:
            raise IllegalMoveError(index, m, f"forward needs 0 <= a < b, got {a}, {b}")
        w = self.get(a, index, m)
        if self.cb["step_into"] is not None:
            w = self.step(a, w, 1)  # into a pooled buffer when there is one
            for i in range(a + 1, b):
                w = self.step_inplace(i, w, 1)
        else:
            for i in range(a, b):
                w = self.step(i, w, 1 if i == a else 2)
        self.store[b] = w

    def remove(self, i: int, index: int, m: Move) -> None:
        if i == 0 or i not in self.store:
            raise IllegalMoveError(index, m, f"cell {i} holds no removable state")
        self.free(self.store.pop(i))

    # -- backward ------------------------------------------------------------
    def start(self, index: int, m: Move) -> None:
        """Produce ``s_n``, the loss and ``dL/ds_n`` (before the first paint)."""
        n = self.n
        if n in self.store:
            sn = self.store[n]
        else:
            sn = self.step(n - 1, self.get(n - 1, index, m), 1)
            self.extra += 1
        cb = self.cb
        self.gbar = self.check("loss_grad", n, self.call("loss_grad", n, sn))
        if cb["loss"] is not None:
            self.loss = float(self.call("loss", n, sn))
        self.running(n, sn)
        if n not in self.store:
            self.free(sn)

    def running(self, i: int, s: Any) -> None:
        cb = self.cb
        if cb["running_loss"] is not None:
            value = float(self.call("running_loss", i, s))
            self.loss = value if self.loss is None else self.loss + value
        if cb["running_loss_grad"] is not None:
            g = self.check("running_loss_grad", i, self.call("running_loss_grad", i, s))
            self.gbar = self.gbar + g

    def paint(self, i: int, index: int, m: Move) -> None:
        if i != self.painted_from - 1:
            raise IllegalMoveError(
                index, m, f"paints go n-1, ..., 0; expected paint {self.painted_from - 1}"
            )
        if self.gbar is None:
            self.start(index, m)
        s = self.get(i, index, m)
        out = self.call("backward", i, s, self.gbar)
        if not isinstance(out, tuple) or len(out) != 2:
            raise PebblesTypeError(
                f"backward at step {i} must return a tuple (gbar_i, theta_bar_i), "
                f"got {type(out).__name__}"
            )
        self.gbar = self.check("backward", i, out[0])
        if out[1] is not None:
            self.theta = out[1] if self.theta is None else self.theta + out[1]
        self.paints += 1
        self.painted_from = i
        if i >= 1:
            self.running(i, s)

    def run(self, moves: Iterable[Move], bar: Any) -> None:
        for index, m in enumerate(moves):
            kind, a, b = m
            if kind == _FORWARD:
                self.forward(a, b, index, m)
            elif kind == _PAINT:
                self.paint(a, index, m)
            elif kind == _REMOVE:
                self.remove(a, index, m)
            elif kind == _PLACE:
                self.place(a, index, m)
            elif kind == _MOVE:
                self.move(a, index, m)
            else:
                raise IllegalMoveError(index, m, "not a checkpoint-game move")
            if bar is not None:
                bar.update(1)
        if self.painted_from != 0:
            raise IllegalMoveError(
                -1, None, f"the schedule left cells 0..{self.painted_from - 1} unpainted"
            )


def _progress_bar(moves: Any, progress: bool) -> Any:
    if not progress:
        return None
    try:
        from tqdm import tqdm  # optional dependency, imported only when asked for
    except ImportError:
        return None
    total = len(moves) if hasattr(moves, "__len__") else None
    return tqdm(total=total, unit="move")


def replay(
    moves: Iterable[Move] | np.ndarray,
    n: int,
    s0: Any,
    step: Callable[[int, Any], Any],
    backward: Callable[[int, Any, Any], tuple[Any, Any]],
    loss_grad: Callable[[Any], Any],
    *,
    loss: Callable[[Any], float] | None = None,
    step_into: Callable[[int, Any, Any], None] | None = None,
    running_loss: Callable[[int, Any], float] | None = None,
    running_loss_grad: Callable[[int, Any], Any] | None = None,
    copy: Callable[[Any], Any] | None = None,
    check_finite: bool = False,
    progress: bool = False,
    pool_size: int | None = None,
) -> ReplayResult:
    """Replay a checkpoint-game schedule and return the gradient of the loss.

    Parameters
    ----------
    moves : iterable of Move, or int64 array from :func:`~pebbles._moves.encode`
        A checkpoint-game or in-place-game schedule for ``n`` steps
        (``place``, ``remove``, ``paint``, ``move``, ``forward``).
    n : int
        Number of steps.
    s0 : array
        The initial state; it is never modified.
    step : callable ``step(i, s_i) -> s_{i+1}``
        One forward step; must return a new state (same shape and dtype as
        ``s0``) and leave its argument unchanged.
    backward : callable ``backward(i, s_i, gbar_{i+1}) -> (gbar_i, theta_bar_i)``
        The vector-Jacobian product of step ``i``; ``theta_bar_i`` may be
        ``None`` when there are no parameters. It must not modify its inputs.
    loss_grad : callable ``loss_grad(s_n) -> dL/ds_n``
        Gradient of the final loss.
    loss : callable ``loss(s_n) -> float``, optional
        Value of the final loss (reported in the result).
    step_into : callable ``step_into(i, s, out) -> None``, optional
        Writes ``s_{i+1}`` into ``out``; it is called with ``out is s``
        (an in-place step), so it must allow the aliasing, and with ``out`` a
        pooled buffer of a freed state. Used by ``move``, by ``forward``
        (whose working state then steps in place after its first step) and,
        with a pool, by every step that needs a new state.
    running_loss, running_loss_grad : callable ``(i, s_i)``, optional
        A running loss ``sum_{i=1..n} l_i(s_i)`` and its gradients, added to
        the loss and to ``gbar_i``.
    copy : callable ``copy(s) -> s'``, optional
        Deprecated and never called (passing it warns): a walk's first step
        now writes into a new or pooled buffer instead of a copy.
    check_finite : bool
        Raise :class:`NonFiniteError` if a callback returns NaN or infinity.
    progress : bool
        Show a tqdm progress bar (if tqdm is installed).
    pool_size : int or None
        Most freed buffers kept for reuse (only with ``step_into``; ``None``:
        no limit, the pool never outgrows the peak of live states); 0 turns
        the pool off, so every new state comes from ``step`` (use it when
        ``step`` returns arrays you keep elsewhere).

    Returns
    -------
    ReplayResult

    Raises
    ------
    CallbackError
        A callback raised; the message names the step, the original error is
        its ``__cause__``. Every state the executor held has been dropped.
    PebblesTypeError
        A callback returned a value of the wrong shape or dtype.
    NonFiniteError
        With ``check_finite``, a callback returned NaN or infinity.
    IllegalMoveError
        The schedule breaks a rule (e.g. uses a state it does not hold).

    Examples
    --------
    ``s_{i+1} = 2 s_i + theta``, ``L = sum(s_n)``, three steps:

    >>> import numpy as np
    >>> from pebbles._executor import replay
    >>> from pebbles._treeverse import treeverse
    >>> r = replay(treeverse(3, 2), 3, np.ones(2),
    ...            step=lambda i, s: 2.0 * s + 1.0,
    ...            backward=lambda i, s, g: (2.0 * g, g.copy()),
    ...            loss_grad=lambda s: np.ones_like(s), loss=lambda s: s.sum())
    >>> r.loss, r.grad_s0, r.grad_theta
    (30.0, array([8., 8.]), array([7., 7.]))
    >>> r.forward_steps, r.extra_steps, r.backward_steps, r.peak_states
    (3, 1, 3, 3)
    """
    if pool_size is not None and (isinstance(pool_size, bool)
                                  or not isinstance(pool_size, (int, np.integer))
                                  or pool_size < 0):
        raise PebblesValueError(f"pool_size={pool_size!r} must be None (no limit) or an "
                                f"integer >= 0 (0 turns buffer reuse off)")
    if copy is not None:
        warnings.warn("replay(copy=...) is no longer called (states are stepped into new or "
                      "pooled buffers) and will be removed; drop the argument",
                      DeprecationWarning, stacklevel=2)
    if isinstance(moves, np.ndarray):
        moves = list(decode(moves))
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise PebblesValueError(f"n={n!r} must be an integer >= 1")
    callbacks = {
        "step": step, "backward": backward, "loss_grad": lambda i, s: loss_grad(s),
        "loss": None if loss is None else (lambda i, s: loss(s)),
        "step_into": step_into, "running_loss": running_loss,
        "running_loss_grad": running_loss_grad,
    }
    r = _Replay(int(n), s0, callbacks, check_finite,
                None if pool_size is None else int(pool_size))
    bar = _progress_bar(moves, progress)
    t0 = time.perf_counter()
    try:
        r.run(moves, bar)
    except BaseException as exc:
        r.release()
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    result = ReplayResult(
        loss=r.loss, grad_s0=r.gbar, grad_theta=r.theta, forward_steps=r.steps,
        extra_steps=r.extra, backward_steps=r.paints, peak_states=r.peak, seconds=seconds,
        peak_buffers=r.peak_buffers, allocations=r.allocations, inplace_steps=r.inplace_steps,
    )
    r.release()
    return result
