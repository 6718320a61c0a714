"""PyTorch adapter: time loops and layer chains differentiated along exact checkpointing schedules.

:func:`checkpointed_loop` differentiates ``x_{i+1} = step(i, x_i, *params)`` for
``n`` steps while storing at most ``budget`` states, along any schedule of the
checkpoint game of Liu & Xu, "Automatic differentiation in physics simulation"
(appendix) -- by default the optimal Treeverse (Griewank's binomial
checkpointing), which does the fewest step evaluations any schedule with that
budget can do. :func:`checkpoint_sequential` is a drop-in for
``torch.utils.checkpoint.checkpoint_sequential`` that takes a budget of stored
activations, or a memory limit in bytes for which it profiles the layers once
and uses the least-time persistent schedule of the heterogeneous chain (Beaumont,
Eyraud-Dubois, Herrmann, Joly & Shilova 2019; :func:`pebbles.hetero_optimal`).

Both are one ``torch.autograd.Function``. Its forward runs the steps without a
graph (``torch.no_grad``) and keeps only the states the schedule stores; its
backward replays the rest of the schedule from those states, each backward step
running one step with a graph and calling ``torch.autograd.grad`` once. A step
whose last run before its backward step starts from a stored state is run with
its graph right then ("taping") when that graph saves nothing but the step's
input, output and parameters, so the backward step needs no replay. With a
memory limit the schedule itself may keep graphs that do cost memory (the
``tape`` move; Beaumont et al.'s "F_all" runs, :func:`pebbles.hetero_optimal`):
:func:`profile_layers` measures each step's saved activations, the dynamic
programme decides which steps keep their graph, and those run with their graph
in the forward pass and are never replayed; a kept step whose input is the
previous kept step's output extends that step's graph, and the backward steps of
such a run are one ``torch.autograd.grad`` call. The schedule is lowered once
(:func:`pebbles.lower`) into a program over state slots. The code never names a
device: CPU and CUDA tensors run the same way.

Importing this module needs PyTorch (``pip install "pebble-games[torch]"``);
``import pebbles`` never imports it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import inspect
import math
import sys
import time
import weakref
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ._optional import missing_extra

try:
    import torch
except ImportError:  # pragma: no cover - CI installs torch
    raise missing_extra("torch", "torch", "pebbles.torch") from None

from torch.autograd import forward_ad
from torch.autograd.graph import get_gradient_edge

from . import _chain
from ._chain import (
    _graph,
    hetero_min_memory,
    hetero_optimal,
    levels_fit,
    sequential_segments,
)
from ._errors import (
    PebblesNotImplementedError,
    PebblesTypeError,
    PebblesValueError,
    add_note,
)
from ._executor import _forward_part
from ._lowering import OP_FREE, OP_PAINT, OP_SEED, OP_STEP, OP_TAPE, SlotProgram, _rows, lower
from ._moves import MoveKind
from ._online import OnlineScheduler, while_budget
from ._registry import check_gradient_method, describe, make_schedule
from ._registry import schedule as _schedule
from ._simulator import ChainCosts, simulate
from ._validation import (
    a_kind,
    check_bool,
    check_callable,
    check_choice,
    check_cost,
    check_int,
)

__all__ = ["CUDA_BLOCK_BYTES", "PROFILES_KEPT", "checkpoint_sequential", "checkpointed_loop",
           "checkpointed_while_loop", "profile_layers"]


def _opaque(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run as it is under ``torch.compile``: a graph break at the call, which runs
    eagerly (its steps too), so that the schedule, the ``torch.autograd.Function`` and
    its replays are those of an eager call and the gradients are the same. The wrapper
    is this module's function (doctests find it). Nothing compiles before
    ``torch._dynamo`` is imported, so until then ``fn`` is called directly, and torch's
    lazy ``torch._disable_dynamo`` wrapper (whose first call imports dynamo, about 1.5 s,
    and applies ``torch._dynamo.disable``) is called only after."""
    eager = torch._disable_dynamo(fn) if hasattr(torch, "_disable_dynamo") else None

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if "torch._dynamo" not in sys.modules or eager is None:
            return fn(*args, **kwargs)
        return eager(*args, **kwargs)
    return call


State = Any  # a torch.Tensor or a tuple of tensors
_NOTHING = contextlib.nullcontext()  # reusable: the context of a run without RNG states
_ABSENT = object()  # a key a module's dict does not hold (_differs)


#: The form of a state: None for one tensor, else the sequence type its steps get
#: (``tuple``, ``list``, or the caller's namedtuple class).
Form = type | None


def _as_tuple(name: str, value: object) -> tuple[tuple[torch.Tensor, ...], Form]:
    """(tensors, form) of a state: one tensor, or a tuple (a namedtuple too) or list of
    tensors."""
    if isinstance(value, torch.Tensor):
        return (value,), None
    if isinstance(value, (tuple, list)) and value and all(
            isinstance(t, torch.Tensor) for t in value):
        named = isinstance(value, tuple) and hasattr(type(value), "_make")
        return tuple(value), type(value) if named else list if isinstance(value, list) else tuple
    bad = next((f" (item {k} is {a_kind(t)})" for k, t in enumerate(value)
                if not isinstance(t, torch.Tensor)), "") if isinstance(value, (tuple, list)) else ""
    raise PebblesTypeError(
        f"{name} is {a_kind(value)}{bad}; a state must be a torch.Tensor or a "
        f"non-empty tuple (or list) of tensors")


def _pack(form: Form, xs: tuple[torch.Tensor, ...]) -> State:
    """A state as the caller's functions get it: one tensor, a tuple, a list or a
    namedtuple."""
    if form is None:
        return xs[0]
    return xs if form is tuple else list(xs) if form is list else form._make(xs)


def _spec(xs: tuple[torch.Tensor, ...]) -> list[tuple]:
    """(shape, dtype, device) of each tensor of a loop's state: what every step keeps."""
    return [(tuple(t.shape), t.dtype, t.device) for t in xs]


def _differentiable(t: torch.Tensor) -> bool:
    return t.is_floating_point() or t.is_complex()


class _Rows:
    """The rows of a slot program as lists of ints, made when read: a list of them all
    would hold about 120 bytes a row for the whole pass (a state's worth at n = 1000
    for a state of 256 KiB), memory the schedule does not count."""

    __slots__ = ("ops",)

    def __init__(self, ops: np.ndarray) -> None:
        self.ops = ops

    def __len__(self) -> int:
        return len(self.ops)

    def __getitem__(self, r: int) -> list[int]:
        return self.ops[r].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        return _rows(self.ops)


class _Buffers:
    """Module buffers the steps may update in place (BatchNorm's running statistics),
    left as plain autograd leaves them: as the first run of each step left them. Before
    a step runs again, :meth:`replay` copies them (one copy of the buffers, whatever
    number of replays; the running statistics change without a version count, so every
    buffer is copied); :meth:`settle` puts back those the replays changed, before the
    next first run and when a pass ends, without a new version (a graph that saved one,
    plain autograd's or a first run's, stays valid). A step that replaces a buffer
    (``self.b = ...``) is refused (:meth:`check`): the replays would update the new one.

    ``owners[k]``: the module of step ``k`` (of a loop's one step: ``k = 0``), None for a
    plain function. After a run of step ``k`` (a layer: before it too), :meth:`check`
    looks at its module's buffers only (a chain of ``L`` layers: not ``L`` modules'
    buffers at each layer run);
    a step that replaces the buffer of a module it does not own (a function closing
    over another layer's module) is found before that module's next run or by the
    check of every buffer when the pass ends (:meth:`_Chain.check_buffers`).

    :meth:`record` keeps what the steps read of their modules as the forward pass leaves
    them (every submodule's parameter, buffer and child dicts and training flag) and the
    ``requires_grad`` of those parameters and of ``tensors`` (the call's parameters), for
    :meth:`as_recorded`, which the backward pass runs under."""

    def __init__(self, owners: Iterable[torch.nn.Module | None],
                 tensors: Iterable[torch.Tensor] = ()) -> None:
        owners = tuple(owners)
        walks = {id(m): (m, tuple(m.named_modules())) for m in owners if m is not None}
        # id(owner) -> its (owner, module, key, name, tensor): the buffer
        # ``module._buffers[key]``, called ``name`` in ``owner``
        per = {i: tuple((m, sub, key, f"{prefix}.{key}".lstrip("."), t)
                        for prefix, sub in subs for key, t in sub._buffers.items()
                        if t is not None)
               for i, (m, subs) in walks.items()}
        self.named = tuple(e for entries in per.values() for e in entries)
        self.own = {k: per[id(m)] for k, m in enumerate(owners) if m is not None}
        self.tensors = tuple({id(t): t for *_, t in self.named}.values())
        self.saved: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        # what the steps read of their modules (record, as_recorded)
        self.subs = tuple({id(sub): sub for _, subs in walks.values()
                           for _, sub in subs}.values())
        self.leaves = tuple(tensors)
        self.dicts: tuple[tuple[torch.nn.Module, str, dict, dict], ...] = ()
        self.modes: tuple[tuple[torch.nn.Module, bool], ...] = ()
        self.flags: tuple[tuple[torch.Tensor, bool], ...] = ()

    def record(self) -> None:
        """Record the modules as the forward pass leaves them (changes the model's own
        code makes while it runs included): every submodule's parameter, buffer and
        child dicts (shallow copies), training flag, and the ``requires_grad`` of its
        parameters and of the call's own (``tensors``), for :meth:`as_recorded`."""
        subs = self.subs
        # plain dicts only: a scripted module's are wrappers of its C++ state
        self.dicts = tuple((s, name, d, dict(d)) for s in subs
                           for name in ("_parameters", "_buffers", "_modules")
                           for d in (vars(s).get(name),) if isinstance(d, dict))
        self.modes = tuple((s, s.training) for s in subs)
        leaves = {id(t): t for t in (*(v for s in subs for v in s._parameters.values()),
                                     *self.leaves) if isinstance(t, torch.Tensor) and t.is_leaf}
        self.flags = tuple((t, t.requires_grad) for t in leaves.values())

    def replay(self) -> None:
        if self.saved is None:
            self.saved = [(t, t.clone()) for t in self.tensors]

    def settle(self) -> None:
        saved, self.saved = self.saved, None
        with torch.no_grad():
            for t, copy in saved or ():
                if not torch.equal(t, copy):
                    with torch.autograd._unsafe_preserve_version_counter(t):
                        t.copy_(copy)

    def check(self, who: str, k: int | None = None) -> None:
        """Raise if ``who`` replaced a buffer instead of updating it in place: one of step
        ``k``'s module (``owners[k]``), or with ``k=None`` any tracked buffer."""
        for owner, module, key, name, t in self.named if k is None else self.own.get(k, ()):
            now = module._buffers.get(key)
            if now is not t:
                raise PebblesValueError(
                    f"{who} replaced the buffer {name!r} of {type(owner).__name__} "
                    f"(self.{name} = {'None' if now is None else '...'}); a step must update "
                    f"a module buffer in place, as BatchNorm does (with torch.no_grad(): "
                    f"self.{name}.mul_(0.9)): pebbles.torch puts back the buffers it "
                    f"tracks after its replays, so a replaced one would be updated again "
                    f"by every replay and the gradients would be wrong")

    @contextlib.contextmanager
    def kept(self, who: str) -> Iterator[None]:
        """Runs that must leave the buffers as they were (profiling ``who``)."""
        self.replay()
        try:
            yield
        finally:
            self.settle()
        self.check(who)

    @contextlib.contextmanager
    def as_recorded(self) -> Iterator[None]:
        """The modules as the forward pass ran them, around the backward pass: each
        parameter, buffer and child dict, training flag and ``requires_grad`` that
        differs from the record (``functional_call`` has put its tensors back, a weight
        replaced, a layer appended, ``net.eval()``, ``requires_grad_()``) is set to the
        recorded one, and the current one is put back when the pass ends, also on an
        error, so that the replays repeat the forward pass's operations and the
        gradients are plain autograd's. Nothing differs (the usual case): one identity
        test per entry."""
        # a dict put in place of the module's (Sequential's del and pop), and a dict's
        # contents changed (a layer appended, a weight replaced): both set back
        objs = [(s, name, d, s.__dict__.get(name)) for s, name, d, _ in self.dicts
                if s.__dict__.get(name) is not d]
        swaps = [(d, rec, d.copy()) for _, _, d, rec in self.dicts if _differs(d, rec)]
        modes = [(m, flag) for m, flag in self.modes if m.training != flag]
        flags = [(t, flag) for t, flag in self.flags if t.requires_grad != flag]
        try:
            for s, name, d, _ in objs:
                s.__dict__[name] = d
            for d, rec, _ in swaps:
                d.clear()  # the dict's own methods: an OrderedDict keeps its order
                d.update(rec)
            for m, flag in modes:
                m.training = flag
            for t, flag in flags:
                t.requires_grad_(flag)
            yield
        finally:
            for t, flag in flags:
                t.requires_grad_(not flag)
            for m, flag in modes:
                m.training = not flag
            for d, _, current in swaps:
                d.clear()
                d.update(current)
            for s, name, _, now in objs:
                s.__dict__[name] = now


def _differs(d: dict, recorded: dict) -> bool:
    """Whether the dict ``d`` holds other keys or objects than ``recorded`` (by identity:
    ``==`` of tensors compares elements)."""
    return len(d) != len(recorded) or any(dict.get(d, key, _ABSENT) is not v
                                          for key, v in recorded.items())


class _Chain:
    """One call's step function, parameters, slot program and RNG bookkeeping."""

    def __init__(self, step: Callable[..., Any], params: tuple[torch.Tensor, ...],
                 extra: tuple[torch.Tensor, ...], program: SlotProgram | None, *,
                 spec: list | None, rng: bool, devices: list[int], tape: bool,
                 per_step: bool = False,
                 owners: Iterable[torch.nn.Module | None] = ()) -> None:
        self.step, self.params, self.program = step, params, program
        # updated by first runs only, as plain autograd; the modules as the forward ran them
        self.buffers = _Buffers(owners, params + extra)
        self.grad_params = _unique(params + extra)
        self.frozen = tuple(t for t in extra if not t.requires_grad)  # replays read them too
        # a parameter the caller computed (w + 1, a view) reaches the step as a leaf alias,
        # so that a step's graph ends there: autograd.grad never runs through the caller's
        # graph (which a second backward step would find freed) and the gradient of a
        # parameter it came from is not counted twice (autograd hands it on once, later).
        # Layer chains' params are closed over by the layers: no alias, the search stops
        alias = {id(p): p.detach().requires_grad_() for p in params
                 if p.requires_grad and p.grad_fn is not None}
        self.args = tuple(alias.get(id(p), p) for p in params)  # what the step gets
        self.wrt = tuple(alias.get(id(p), p) for p in self.grad_params)
        self.index = {id(p): k for ps in (self.grad_params, self.wrt) for k, p in enumerate(ps)}
        self.stops = _stops(self.grad_params)  # non-leaf parameters: the search ends there
        # layer chains: the parameters each computed one is made from (autograd.grad asked
        # for both would count the path through the computed one twice)
        self.made_from = _made_from(self.grad_params, self.stops) if per_step else {}
        # per_step (layer chains): each backward step differentiates only the parameters
        # its graph reaches, found anew each time; loops: all of them, the first graph
        # searched for tensors that were not passed
        self.per_step = per_step
        self.param_ptrs: set[int] | None = None  # of the parameters and buffers (taping)
        self.spec = spec  # [(shape, dtype, device)] the state keeps, or None (layer chains)
        self.forms: dict[int, tuple[Form, int]] = {}  # layer chains: cell -> (form, count)
        self.was_tuple: Form = None  # a loop's form of state
        self.rng = rng
        # RNG states (rng=True): one with each stored state, the generator's state where the
        # first sweep stood at that cell; a run from a slot replays with the slot's state,
        # and the generator goes on through the run as it did the first time
        self.slot_rng: dict[int, tuple] = {}
        # while loops whose cond drew numbers before step i: the state step i started from
        self.step_rng: dict[int, tuple] = {}
        self.frontier = 0  # steps below it have run once (first runs: the global generator)
        self.devices, self.tape = devices, tape
        if program is not None:
            self.use(program)
        self.tapes: dict[int, tuple] = {}  # step -> (inputs, outputs) of its taped run
        self.chained: set[int] = set()  # kept steps whose graph goes on from step i-1's
        self.last_kept: tuple = (-1, ())  # the last kept step and the state it returned
        self.owned: set[int] = set()  # parameter sums the backward pass made (in place ok)
        self.input_grad: tuple[bool, ...] = ()  # which parts of s_0 get a gradient
        self.rng0: tuple = ()  # the generators' states when the forward pass began (rng)
        self.amp: tuple = ()  # the forward pass's autocast state, for replays
        self.amp_kinds: list[str] = []  # the device types it was read for
        self.replay_amp = False  # replays must switch autocast (the backward pass's differs)
        self.device = torch.device("cpu")  # the forward pass's default device, for replays
        self.replay_device = False  # replays must switch it (the backward pass's differs)
        self.phase = "forward pass"
        self.hooked: tuple[torch.Tensor, ...] = ()  # parameters with hooks (_hooks_held)

    def use(self, program: SlotProgram) -> None:
        """Run ``program`` (known at the start, or once an online run has stopped)."""
        self.program, self.ops = program, _Rows(program.ops)
        self.seed = int(np.flatnonzero(program.ops[:, 0] == OP_SEED)[0])
        self.tape_rows = _tape_rows(self.ops) if self.tape else set()
        if (program.ops[:, 0] == OP_TAPE).any():  # the schedule keeps graphs itself:
            # tape only the run of s_n for the seed, kept if its graph is free
            self.tape_rows = {r for r in self.tape_rows if self.ops[r + 1][0] == OP_SEED}

    # -- one step ---------------------------------------------------------
    def call(self, i: int, xs: tuple[torch.Tensor, ...],
             guard: bool = True) -> tuple[torch.Tensor, ...]:
        """Step i on ``xs``, its output checked. ``guard``: a pass that stores states and
        replays steps, where a step must not change its input in place nor replace a
        module buffer (a plain pass runs each step once: both are fine there). A run
        without a graph in such a pass returns its outputs without one, also when the
        step makes one itself (:func:`_graph_free`)."""
        if i < self.frontier:
            self.buffers.replay()
            if i in self.step_rng:  # inside the run's fork_rng (_rng_run)
                _set_rng_state(self.step_rng[i], self.devices)
        else:
            self.buffers.settle()
            self.frontier = i + 1
        x = _pack(self.form(i), xs)
        if guard:  # its module's buffers replaced since they were checked: by another
            self.check_buffers(i if self.per_step else 0)  # layer, or a while loop's cond
        before = _versions(xs) if guard else ()
        graph_free = guard and not torch.is_grad_enabled()
        try:
            out = self.step(i, x, *self.args)
        except BaseException as err:  # the same exception (Ctrl-C too), the step named
            add_note(err, f"pebbles.torch: raised by {self.who(i)} in the {self.phase}"
                     + _in_place_hint(err))
            raise
        if guard and _versions(xs) != before:
            self._changed_input(i)
        if guard:  # its own module's buffers only (check_buffers: the others)
            self.buffers.check(self.who(i), i if self.per_step else 0)
        ys = self._check(i, out)
        return _graph_free(ys) if graph_free else ys

    def _changed_input(self, i: int) -> None:
        """Raise for a step that changed its input in place: that input may be a stored
        state (or x0) that later runs start from, so they would start from the wrong
        state, silently."""
        what = "layer" if self.per_step else "step"
        yours = (f" It was run on your {'input' if self.per_step else 'x0'}, which it has "
                 f"changed." if i == 0 and self.phase == "forward pass" else "")
        raise PebblesValueError(
            f"{self.who(i)} changed its input in place (x.add_(...), x[k] = ..., "
            f"nn.ReLU(inplace=True), ...) in the {self.phase}; its input may be a stored "
            f"state that later runs of the {what}s start from, so the result and the "
            f"gradients would be wrong.{yours} Make the {what} return new tensors instead "
            f"(x = x + ..., inplace=False)")

    def who(self, i: int) -> str:
        """Step i as the user wrote it: a loop's step or a chain's layer."""
        return f"layer {i} (functions[{i}])" if self.per_step else f"step {i}"

    def check_buffers(self, k: int | None = None) -> None:
        """Raise if a buffer was replaced where the check after each step, of that step's
        own module's buffers (:meth:`call`), does not see it: by a layer closing over
        another layer's module, or by a while loop's ``cond``. Checked before each layer or
        step runs (its module's buffers: ``k``, 0 for a loop's step) and, for every
        buffer, when a pass ends."""
        what = ("a layer other than the module's own (e.g. a function that closes over "
                "the module)" if self.per_step
                else "code outside the step (a while loop's cond, a closure)")
        self.buffers.check(f"in the {self.phase}, {what}", k)

    def _replaying(self) -> contextlib.AbstractContextManager:
        """The forward pass's autocast state and default device (``with
        torch.device(...)``), around a replay in the backward pass, which may run under
        others (e.g. outside the user's ``torch.autocast`` and ``torch.device``), as
        ``torch.utils.checkpoint``'s recomputation does."""
        if not (self.replay_amp or self.replay_device):
            return _NOTHING
        stack = _autocast(self.amp) if self.replay_amp else contextlib.ExitStack()
        if self.replay_device:
            stack.enter_context(self.device)  # a torch.device is a context manager
        return stack

    def _generator(self, first: int, src: int,
                   dst: int | None = None) -> contextlib.AbstractContextManager:
        """The RNG of a run of steps from ``first`` (all first runs, or all replays) whose
        input is in slot ``src``: first runs use the global generator, replays the slot's
        state inside ``fork_rng``; where the run ends goes with slot ``dst`` (if any).
        Without ``rng``, nothing to do."""
        return self._rng_run(first, src, dst) if self.rng else _NOTHING

    @contextlib.contextmanager
    def _rng_run(self, first: int, src: int, dst: int | None) -> Iterator[None]:
        replay = first < self.frontier
        with torch.random.fork_rng(devices=self.devices) if replay else _NOTHING:
            if replay:
                _set_rng_state(self.slot_rng[src], self.devices)
            yield
            if dst is not None:
                self.slot_rng[dst] = _rng_state(self.devices)

    def form(self, i: int) -> Form:
        """The form of state i (a layer chain's layers may change it)."""
        return self.forms[i][0] if self.per_step else self.was_tuple

    def last_form(self) -> Form:
        """The form of the result, s_n."""
        return self.form(self.program.n if self.program else 0)

    def plain_call(self, i: int, xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Step i of a call without gradients (nothing stored: in place is fine). In
        grad mode an output that requires grad comes from a tensor that was not passed
        (under ``torch.no_grad`` it is one handed back as it is: fine)."""
        ys = self.call(i, xs, guard=False)
        if torch.is_grad_enabled() and any(t.requires_grad for t in ys):
            raise _unpassed(self.who(i), "makes an output that requires grad: it uses a "
                                         "tensor that requires grad but", _NO_GRAD_HINT)
        return ys

    def _check(self, i: int, out: object) -> tuple[torch.Tensor, ...]:
        if isinstance(out, torch.Tensor):
            ys, was_tuple = (out,), None
        elif isinstance(out, (tuple, list)):
            ys, was_tuple = _as_tuple(f"the value {self.who(i)} returned", out)
        else:
            none = " (a function without a return statement returns None)" if out is None else ""
            raise PebblesTypeError(
                f"{self.who(i)} returned {'None' if out is None else a_kind(out)}{none}; "
                f"a {'layer' if self.per_step else 'step'} must return the next state: a "
                f"torch.Tensor or a non-empty tuple (or list) of tensors")
        if self.per_step:
            first = self.forms.setdefault(i + 1, (was_tuple, len(ys)))
            if first != (was_tuple, len(ys)):
                raise PebblesValueError(
                    f"{self.who(i)} returned {_form_words(was_tuple, len(ys))} in the "
                    f"{self.phase}, but {_form_words(*first)} when it first ran; a layer "
                    f"that runs again must return the same form (replays feed it to the next "
                    f"layer)")
            return ys
        if was_tuple != self.was_tuple:
            raise PebblesValueError(
                f"{self.who(i)} returned {_form_words(was_tuple, len(ys))}, but the state "
                f"is {_form_words(self.was_tuple, len(self.spec))}; every step must "
                f"return the state in the same form (a tensor, or a tuple, list or namedtuple "
                f"of the same type and as many tensors) as its input")
        self._check_spec(i, ys)
        return ys

    def _check_spec(self, i: int, ys: tuple[torch.Tensor, ...]) -> None:
        """Raise unless a loop's step returned a state of x0's shapes, dtypes and devices."""
        got = [(tuple(t.shape), t.dtype) for t in ys]
        want = [s[:2] for s in self.spec]
        if got != want:
            cast = ("; under torch.autocast a step that ends in a Linear or a matmul returns "
                    "the autocast dtype: cast the state back in the step (return y.float()) "
                    "or keep its dtype fixed" if [g[1] for g in got] != [w[1] for w in want]
                    else "")
            raise PebblesValueError(
                f"step({i}, x) returned a state with (shape, dtype) {got} but x0 has "
                f"{want}; every step of a loop must return a state of x0's shapes and "
                f"dtypes (as {_form_words(self.was_tuple, len(self.spec))}){cast}")
        got_at, want_at = [str(t.device) for t in ys], [str(s[2]) for s in self.spec]
        if got_at != want_at:
            raise PebblesValueError(
                f"step({i}, x) returned a state on device(s) {got_at} but x0 is on "
                f"{want_at}; every step of a loop must keep the state on x0's devices (the "
                f"stored states and the replays start from them). Move x0 there before the "
                f"loop (x0.to(device)), or move the state back at the end of the step")

    # -- the program ------------------------------------------------------
    def forward(self, xs: tuple[torch.Tensor, ...],
                again: bool = False) -> tuple[list, tuple[torch.Tensor, ...]]:
        """Run the rows before the seed; return the slots and s_n. ``again``: once more
        for a second backward pass, with the RNG and autocast states of the first."""
        slots: list = [None] * self.program.nslots
        slots[0] = xs
        if not again:
            self.begin(xs)
        self.phase = "forward pass" if not again else "backward pass (its forward part again)"
        if self.rng:
            self.slot_rng[0] = self.rng0
        try:
            with self._replaying() if again else _NOTHING:
                for r in range(self.seed):
                    self._row(slots, r)
        except BaseException:
            slots.clear()  # the traceback holds this frame, not the stored states
            raise
        return slots, slots[self.ops[self.seed][1]]

    def drop(self) -> None:
        """Let go of every state and graph the call holds (it failed: the traceback
        keeps the frames, and with them this object, alive as long as the exception)."""
        self.tapes.clear()
        self.last_kept = (-1, ())

    def begin(self, xs: tuple[torch.Tensor, ...]) -> None:
        """Read the autocast state, default device and RNG states the forward pass
        starts with."""
        self.amp_kinds = sorted({"cpu", *(t.device.type for t in (*xs, *self.params,
                                                                  *self.grad_params))})
        self.amp = _autocast_state(self.amp_kinds)
        self.device = torch.get_default_device()
        self.rng0 = _rng_state(self.devices) if self.rng else ()

    def plain(self, xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Without gradients: each step once, nothing stored."""
        for i in range(self.program.n):
            xs = self.plain_call(i, xs)
        return xs

    def _row(self, slots: list, r: int) -> None:
        op, src, dst, first, count = self.ops[r]
        if op == OP_STEP:
            if r in self.tape_rows and _hooks_enabled():
                with self._generator(first, src, dst):
                    slots[dst] = self._taped(first, slots[src])
                return
            if r in self.tape_rows:  # saved-tensors hooks disabled here: no taping
                self.tape_rows = set()
            x = slots[src]
            mid = min(max(first, self.frontier), first + count)  # replays below mid
            for a, b in ((first, mid), (mid, first + count)):
                if a < b:
                    with self._generator(a, src, dst):
                        for i in range(a, b):
                            x = self.call(i, x)
            slots[dst] = x
        elif op == OP_TAPE:
            with self._generator(first, src, dst):
                slots[dst] = self._kept(first, slots[src])
        elif op == OP_FREE:
            slots[src] = None
            self.slot_rng.pop(src, None)
        else:
            raise PebblesValueError(
                f"the schedule has slot operation {op} (a disk copy of a two-level schedule); "
                f"pebbles.torch keeps every state in memory: pass a checkpoint-game schedule")

    def _taped(self, i: int, xs: tuple) -> tuple:
        """Run step i with a graph for its backward step, kept only if every tensor the graph
        saves is its input, its output, a parameter (frozen ones too) or a module buffer
        (no memory beyond the schedule's)."""
        saved: list[int] = []

        def pack(t: torch.Tensor) -> tuple[torch.Tensor, int]:
            if t.numel() * t.element_size() > 64:
                saved.append(t.untyped_storage().data_ptr())
            return t.detach(), t._version  # the alias shares the version counter

        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(
                pack, _unpack_checked(self.who(i), self.buffers)):
            xi = self._leaves(i, xs)
            ys = self.call(i, xi)
        if self.param_ptrs is None:  # the parameters' and buffers' storages, once a call
            self.param_ptrs = {t.untyped_storage().data_ptr() for t in (
                *_replayed(self), *self.buffers.tensors)}
        mine = {t.untyped_storage().data_ptr() for t in (*xi, *ys)}
        if all(ptr in mine or ptr in self.param_ptrs for ptr in saved):
            self.tapes[i] = (xi, ys)
        else:  # the step saves tensors of its own: replay it at its backward step instead
            self.tape_rows = set()
        return _without_graph(ys, xi, xs)

    def _leaves(self, i: int, xs: tuple) -> tuple:
        """Step i's input as graph leaves: those that get a gradient (not the parts of s_0
        whose gradient nobody asked for, so backward step 0 makes none)."""
        want = self.input_grad if i == 0 else (True,) * len(xs)
        return tuple(t.detach().requires_grad_(_differentiable(t) and w)
                     for t, w in zip(xs, want, strict=True))

    def _kept(self, i: int, xs: tuple) -> tuple:
        """Run step i with its graph, kept for backward step i (an OP_TAPE row: the
        schedule counts the graph's memory). When its input is what the kept step i-1
        returned, the graph goes on from that step's outputs, so that consecutive
        backward steps can run as one pass (:meth:`_run_end`)."""
        prev = self.tapes.get(i - 1)
        chain = (prev is not None and self.last_kept[0] == i - 1 and self.last_kept[1] is xs
                 and all(y.requires_grad for y in prev[1] if _differentiable(y)))
        with torch.enable_grad():
            xi = prev[1] if chain else self._leaves(i, xs)
            ys = self.call(i, xi)
        if chain:
            self.chained.add(i)
        else:
            self.chained.discard(i)
        self.tapes[i] = (xi, ys)
        out = _without_graph(ys, xi, xs)
        self.last_kept = (i, out)
        return out

    def backward(self, slots: list, grads: tuple) -> tuple[tuple, list]:
        """Replay the rows after the seed; return dL/ds_0 and dL/dparams."""
        acc: list = [None] * len(self.grad_params)
        self.owned = set()
        self.hooked = tuple(t for t in self.grad_params  # whose hooks to hold (_paint)
                            if t._backward_hooks or t.retains_grad)
        r = self.seed + 1
        while r < len(self.ops):
            op, src, _, i, _ = self.ops[r]
            if op != OP_PAINT:
                with self._replaying():
                    self._row(slots, r)
                r += 1
                continue
            end, low = self._run_end(r)
            for q in range(r + 1, end):  # the run's frees only drop slots: the tapes hold
                if self.ops[q][0] == OP_FREE:
                    self._row(slots, q)
            grads = self._paint(i, low, src, slots[src], grads, acc)
            r = end
        self.last_kept = (-1, ())  # no state outlives the call
        self.slot_rng.clear()
        return grads, acc

    def _run_end(self, r: int) -> tuple[int, int]:
        """The end of the run of backward steps from row ``r`` that is one pass of
        autograd: paints of ``i, i-1, ..., low`` (free rows between them allowed), each
        kept step's graph going on from the next one's. Returns (row after the run, low)."""
        low = self.ops[r][3]
        end = q = r + 1
        while q < len(self.ops) and low in self.chained:
            op, _, _, cell, _ = self.ops[q]
            if op == OP_PAINT and cell == low - 1 and cell in self.tapes:
                low, end = cell, q + 1
            elif op != OP_FREE:
                break
            q += 1
        return end, low

    def _paint(self, i: int, low: int, src: int, xs: tuple, grads: tuple,
               acc: list) -> tuple:
        """Backward steps ``i`` down to ``low`` (kept, chained steps when ``low < i``;
        else step i with a graph, taped or run now from ``xs``, in slot ``src``): one
        torch.autograd.grad."""
        kept = i in self.tapes  # its graph (low..i's, chained) made in the forward pass
        if kept:
            xi, ys = self.tapes.pop(i)
            for k in range(i - 1, low - 1, -1):  # the run's inner states: in the graph only
                xi = self.tapes.pop(k)[0]
            if low <= self.last_kept[0] <= i:  # its output would outlive its slot
                self.last_kept = (-1, ())
        else:
            with self._generator(i, src), torch.enable_grad(), self._replaying():
                xi = self._leaves(i, xs)
                ys = self.call(i, xi)
        pairs = [(y, g) for y, g in zip(ys, grads, strict=True)
                 if g is not None and y.requires_grad]
        del ys  # pairs holds the outputs the VJP needs, and _vjp lets them go early
        ks: Sequence[int] = range(len(self.grad_params))
        if pairs:  # every step: a loop's step may use other tensors at other i
            reached = _graph_params(self.who(i), [y for y, _ in pairs], xi, self.index,
                                    self.stops)
            ks = reached if self.per_step else ks
            self._check_made_from(i, ks)
        inputs = [t for t in xi if t.requires_grad]
        if not pairs or not (inputs or ks):
            return tuple(None for _ in xi)
        with _hooks_held(self.hooked) if self.hooked else _NOTHING, _second_time(
                f"the backward step of {self.who(i)}" if low == i else
                f"the backward steps of {self.who(low)} to {self.who(i)}", kept):
            got = _vjp(pairs, inputs + [self.wrt[k] for k in ks])
        it = iter(got[:len(inputs)])
        out = tuple(next(it) if t.requires_grad else None for t in xi)
        for k, g in zip(ks, got[len(inputs):], strict=True):
            if g is None:
                continue
            if acc[k] is None:
                acc[k] = g
            elif k in self.owned:  # in place: no new tensor a step (same sums as acc + g)
                acc[k].add_(g)
            else:  # the first sum is a new tensor (g may be the incoming gradient)
                acc[k] = acc[k] + g
                self.owned.add(k)
        return out


    def _check_made_from(self, i: int, ks: Sequence[int]) -> None:
        """Refuse one backward step that differentiates a computed parameter and one it is
        made from (a tied weight passed as ``lin.weight.T`` besides ``lin``)."""
        for k in ks:
            both = sorted(set(self.made_from.get(k, ())) & set(ks))
            if both:
                p = self.grad_params[k]
                raise PebblesValueError(
                    f"{self.who(i)}'s backward step reaches a parameter computed from "
                    f"another one it also reaches (shape {tuple(p.shape)}, made from one of "
                    f"shape {tuple(self.grad_params[both[0]].shape)}): autograd would count "
                    f"the gradient through the computed one twice. Compute it inside the "
                    f"layer (lambda x: x @ lin.weight.T) instead of passing it in params")


class _Until(_Chain):
    """A loop that runs while ``cond(i, x_i)`` holds. Its forward pass keeps the states
    that online checkpointing keeps (:class:`pebbles.OnlineScheduler`; Stumm & Walther
    2010, then the greedy or Wang-Moin rule), never knowing n; once it stops after n
    steps, the backward pass runs the rest of ``pebbles.online(n, budget)``, whose
    forward part is the one that ran (the scheduler's prefix property)."""

    def __init__(self, cond: Callable[..., Any], until: tuple[int, str, int | None],
                 *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.cond = cond
        self.budget, self.beyond, self.most = until

    def forward(self, xs: tuple[torch.Tensor, ...],
                again: bool = False) -> tuple[list, tuple[torch.Tensor, ...]]:
        if self.program is not None:  # a second backward pass: the schedule is known
            return super().forward(xs, again)
        self.begin(xs)
        self.phase = "forward pass"
        kept, x, n = self._online(xs)
        if n == 0:  # cond(0, x0) was false: x0 is the result
            return [xs], xs
        self.use(_program(_schedule("online", n, budget=self.budget, beyond=self.beyond), n))
        taped = {self.ops[r][3] for r in self.tape_rows if r < self.seed}
        self.tapes = {k: v for k, v in self.tapes.items() if k in taped}  # as checkpointed_loop
        return self._adopt(kept, x), x

    def plain(self, xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        i = 0
        while self._more(i, xs):
            xs, i = self.plain_call(i, xs), i + 1
        return xs

    def _more(self, i: int, xs: tuple[torch.Tensor, ...]) -> bool:
        """Whether step i runs: below ``max_steps`` and ``cond(i, x_i)`` true."""
        if self.most is not None and i >= self.most:
            return False
        try:
            c = self.cond(i, _pack(self.was_tuple, xs))
        except BaseException as err:
            add_note(err, f"pebbles.torch: raised by cond({i}, x)")
            raise
        return _truth(c, i)

    def _online(self, xs: tuple[torch.Tensor, ...]) -> tuple[dict, tuple, int]:
        """Run while cond holds, keeping what the scheduler says: ``{cell: (state, RNG
        state)}``, s_n and n."""
        kept: dict[int, tuple] = {}
        try:
            return self._run_online(xs, kept)
        except BaseException:
            kept.clear()  # the traceback holds this frame, not the stored states
            raise

    def _run_online(self, xs: tuple[torch.Tensor, ...], kept: dict[int, tuple],
                    ) -> tuple[dict, tuple, int]:
        sched = OnlineScheduler(self.budget, beyond=self.beyond)
        x, i, ended = xs, 0, self.rng0  # ended: the RNG state where the last step ended
        graphs = self.tape  # until the scheduler drops a state, every state is kept
        while self._more(i, x):
            if i:  # s_i is not the last state: the scheduler places it
                for kind, cell, _ in sched.advance():
                    if kind == MoveKind.REMOVE:
                        del kept[cell]
                        graphs = False  # and a graph must not hold a dropped state:
                        self.tapes.pop(cell - 1, None)
                        self.tapes.pop(cell, None)
            kept[i] = (x, self._step_rng(i, ended))
            if graphs:  # taped as in _taped: kept if it saves nothing of its own
                x = self._taped(i, x)
                graphs = self.tape = i in self.tapes
            else:
                x = self.call(i, x)
            ended = _rng_state(self.devices) if self.rng else ()
            i += 1
        return kept, x, i

    def _step_rng(self, i: int, ended: tuple) -> tuple:
        """The RNG state step i starts from, read after ``cond(i, x_i)``: where replays
        of step i start. When cond drew numbers since step i-1 ``ended``, a replay that
        runs on from step i-1 would not draw them, so the state is kept for step i too
        (one per such step)."""
        if not self.rng:
            return ()
        now = _rng_state(self.devices)
        if i == 0:
            self.rng0 = now  # slot 0's, also for a second backward pass
        elif not _same_rng(now, ended):
            self.step_rng[i] = now
        return now

    def _adopt(self, kept: dict[int, tuple], x: tuple) -> list:
        """The slots where the program's forward rows leave its states: the kept
        states, and s_n where the seed reads it."""
        slots: list = [None] * self.program.nslots
        cells = _forward_part(self.program.ops)[1]
        if set(cells.values()) != {*kept, self.program.n}:  # the prefix property
            raise RuntimeError(f"pebbles.torch: the online run kept cells {sorted(kept)}, "
                               f"its schedule holds {sorted(cells.values())} (a bug)")
        for slot, cell in cells.items():
            slots[slot], rng = (x, ()) if cell == self.program.n else kept[cell]
            if self.rng and rng:
                self.slot_rng[slot] = rng
        return slots


def _truth(c: Any, i: int) -> bool:
    """What ``cond(i, x)`` returned, as a bool: a bool or a one-element tensor (NumPy
    bools and one-element arrays too); anything else (None, a list, a string, a tensor
    of several elements) is refused rather than read by its truth."""
    if isinstance(c, (bool, np.bool_)):
        return bool(c)
    if isinstance(c, torch.Tensor) and c.is_meta:
        raise PebblesValueError(
            f"cond({i}, x) returned a tensor on the meta device, which holds no value; "
            f"checkpointed_while_loop runs step {i} only if cond is true, so it must read "
            f"it: run the loop on tensors with data (CPU, CUDA), or, to trace shapes, use "
            f"checkpointed_loop with a known number of steps")
    size = c.numel() if isinstance(c, torch.Tensor) else np.size(c) if isinstance(
        c, np.ndarray) else None
    if size != 1:
        got = (f"a tensor of shape {tuple(c.shape)}" if isinstance(c, torch.Tensor)
               else f"an array of shape {c.shape}" if isinstance(c, np.ndarray)
               else f"{type(c).__name__} {c!r:.40}")
        raise PebblesTypeError(
            f"cond({i}, x) returned {got}; cond must return a bool or a one-element tensor "
            f"(e.g. x.norm() < 1, or i < 100)")
    return bool(c)


@contextlib.contextmanager
def _profiling(who: str) -> Iterator[None]:
    """Name the step or layer that raised while it was profiled (``memory=``,
    ``segments=``: each runs once with a graph and is timed)."""
    try:
        yield
    except BaseException as err:
        add_note(err, f"pebbles.torch: raised by {who} while profiling it (memory= or "
                      f"segments=)" + _in_place_hint(err))
        raise


@contextlib.contextmanager
def _second_time(who: str, kept: bool = False) -> Iterator[None]:
    """Explain autograd's "backward through the graph a second time" in ``who`` (the
    backward step of a step, or of a run of kept steps). ``kept``: it goes through the
    graph that run kept in the forward pass (taped, or a ``memory=`` schedule's), which
    a backward pass through a tensor the run left outside its return value (a list, a
    forward hook) frees first when the loss uses it. Through any graph: every backward
    step that reaches a tensor the caller computed (``w2 = w.exp()`` outside the step)
    runs through the caller's graph, and the first one frees it."""
    try:
        yield
    except RuntimeError as err:
        if "graph a second time" in str(err):
            add_note(err, f"pebbles.torch: in {who}. " + (
                f"{_KEPT_FREED} Or: {_CALLER_FREED}" if kept else
                _CALLER_FREED[0].upper() + _CALLER_FREED[1:]))
        raise


#: The note for a kept graph freed before its backward step (:func:`_second_time`).
_KEPT_FREED = (
    "The graph kept from that run in the forward pass (taping, or a memory= schedule's "
    "kept graphs) was already freed: the loss most likely uses "
    "a tensor that run made and kept outside the state it returned (appended to a list, "
    "captured by a forward hook for an auxiliary loss), and the backward pass went "
    "through that graph from it first. Only the returned state (and the call's output) "
    "is differentiable: a tensor kept elsewhere gets no gradient (from a run without a "
    "graph) or this error. Carry it in the state instead (e.g. return (x, loss + "
    "aux(x)) with the running loss a part of the state), or detach it.")

#: The note for the caller's graph freed by an earlier backward step (:func:`_second_time`).
_CALLER_FREED = (
    "a step (or layer) uses a tensor that was computed before the call from a parameter "
    "(e.g. w2 = w.exp() outside the step): every backward step runs through that part of "
    "your graph, and the first one frees it. Pass the computed tensor itself as a "
    "parameter (checkpointed_loop(step, x0, n, w2); checkpoint_sequential(..., "
    "params=[w2])), or compute it inside the step")


def _graph_free(ys: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The outputs of a run without a graph, detached where they carry one: a step that
    runs its own ``torch.enable_grad()`` (a force taken with ``torch.autograd.grad``)
    returns a state with a ``grad_fn``, and a stored state holding it would keep that
    step's graph, and through its input every earlier step's, alive until the backward
    pass. A tensor without one (handed on unchanged) stays that tensor."""
    if all(t.grad_fn is None for t in ys):
        return ys
    return tuple(t if t.grad_fn is None else t.detach() for t in ys)


def _in_place_hint(err: BaseException) -> str:
    """A hint for torch's error on an in-place change of a leaf: the step's input."""
    if isinstance(err, RuntimeError) and "in-place operation" in str(err):
        return ("; runs with a graph start from a stored state as a leaf, so a step "
                "must not change its input in place (x = x + ..., inplace=False)")
    return ""


def _versions(xs: tuple[torch.Tensor, ...]) -> list[int]:
    """The tensors' version counters (in-place changes; inference tensors have none)."""
    return [-1 if t.is_inference() else t._version for t in xs]


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


def _hooks_enabled() -> bool:
    """Whether saved-tensors hooks can be set here: not inside the caller's
    ``torch.autograd.graph.disable_saved_tensors_hooks`` (taping and profiling use them)."""
    try:
        with torch.autograd.graph.saved_tensors_hooks(_unpack, _unpack):
            return True
    except RuntimeError:
        return False


def _form_words(was_tuple: Form, count: int) -> str:
    if was_tuple is None:
        return "a single tensor"
    if was_tuple in (tuple, list):
        return f"a {was_tuple.__name__} of {count} tensor(s)"
    return f"a namedtuple {was_tuple.__name__} of {count} tensor(s)"


def _unpack_checked(who: str, buffers: _Buffers) -> Callable[[tuple[torch.Tensor, int]],
                                                              torch.Tensor]:
    """Autograd's check of a saved tensor, for the tensors a taped step's graph saves
    through the hooks (which skip it): the call's output is one of them, or a module
    buffer of ``buffers``."""
    def unpack(packed: tuple[torch.Tensor, int]) -> torch.Tensor:
        t, version = packed
        if t._version != version:
            ptr = t.untyped_storage().data_ptr()
            buffer = any(b.untyped_storage().data_ptr() == ptr for b in buffers.tensors)
            raise _modified(
                f"a tensor saved by the graph of {who}", t._version, version,
                "That graph is kept for its backward step (taping), and a tensor it saved "
                "has changed in place since" + (
                    ": a module buffer that a step changes in place after a step's graph "
                    "saved it (plain autograd raises here too), so the gradients would be "
                    "wrong. Compute with a copy of the buffer (x * self.b.clone()), as "
                    "with plain autograd" if buffer else
                    ": the call's output (or a tensor sharing its storage), so the "
                    "gradients would be wrong. Change a copy (y = y.clone()) instead"))
        return t
    return unpack


def _autocast_state(kinds: list[str]) -> tuple:
    """Whether autocast's cache is on, and (device type, enabled, dtype) for each of
    ``kinds`` that autocast knows: what replays must run under to repeat the forward
    pass's operations (``torch.autocast`` casts per device type)."""
    return (torch.is_autocast_cache_enabled(),
            *((k, torch.is_autocast_enabled(k), torch.get_autocast_dtype(k))
              for k in kinds if torch.amp.is_autocast_available(k)))


def _autocast(state: tuple) -> contextlib.ExitStack:
    """Enter the autocast state ``state`` of :func:`_autocast_state`."""
    stack = contextlib.ExitStack()
    cache, *kinds = state
    for kind, enabled, dtype in kinds:
        stack.enter_context(torch.autocast(kind, dtype=dtype, enabled=enabled,
                                           cache_enabled=cache))
    return stack


@contextlib.contextmanager
def _hooks_held(tensors: tuple[torch.Tensor, ...]) -> Iterator[None]:
    """Hold back the tensor hooks of the parameters (``p.register_hook``) while a backward
    step differentiates them: autograd runs them on the gradient the Function returns,
    once, as on the summed gradient in plain autograd (``torch.autograd.grad`` would
    run them on each step's part as well). The hooks live in ``p._backward_hooks``,
    the dict autograd reads at call time; it is emptied and refilled in place. The
    ``.grad`` of a non-leaf parameter that retains it is put back, too (autograd.grad
    would set it to each step's part)."""
    held = [(d, dict(d)) for d in {id(t._backward_hooks): t._backward_hooks
                                   for t in tensors if t._backward_hooks}.values()]
    retained = [(t, t.grad) for t in tensors if t.retains_grad]
    for d, _ in held:
        d.clear()
    try:
        yield
    finally:
        for d, hooks in held:
            d.update(hooks)
        for t, grad in retained:
            t.grad = grad


def _vjp(pairs: list[tuple[torch.Tensor, torch.Tensor]], wrt: list[torch.Tensor]) -> tuple:
    """``sum_k g_k^T (d y_k / d wrt)``, without holding the outputs ``y_k`` meanwhile.

    ``torch.autograd.grad(ys, wrt, gs)`` keeps every ``y_k`` alive until it returns,
    one state more than the backward step needs. The graph is entered through each
    output's gradient edge instead (the node that made ``y_k`` and its output
    number): the caller drops its ``y_k``, so their memory is freed before the
    backward pass unless the graph itself saved them, and the VJP is that of
    ``torch.autograd.grad(ys, wrt, gs)`` bit for bit, with no extra operation.
    """
    edges = [get_gradient_edge(y) for y, _ in pairs]
    gs = [g for _, g in pairs]
    pairs.clear()  # the caller's list: the outputs' last references go with it
    return torch.autograd.grad(edges, wrt, gs, allow_unused=True)


def _without_graph(ys: tuple[torch.Tensor, ...], xi: tuple[torch.Tensor, ...],
                   xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The outputs ``ys`` of a run with a graph from ``xi`` (leaves made from the state
    ``xs``), detached, but a tensor handed on unchanged stays that tensor, as in a run
    without a graph (:func:`_constant` knows it by that): ``xi[k]`` is ``xs[k]`` again, and
    one without a graph (a buffer, a frozen parameter) is itself."""
    given = {id(a): x for a, x in zip(xi, xs, strict=True)}
    return tuple(given[id(y)] if id(y) in given else
                 y if y.grad_fn is None and not y.requires_grad else y.detach() for y in ys)


def _tape_rows(ops: _Rows | list[list[int]]) -> set[int]:
    """Rows ``place i+1`` (one step from a stored s_i) to run with a graph: the last run of
    step i before its backward step, with s_i kept unchanged until then, and s_{i+1} kept
    until no more steps run before the backward step. Its graph then holds nothing the
    schedule does not hold anyway (checked at run time), and backward step i needs no
    replay."""
    last: dict[int, int] = {}
    paint: dict[int, int] = {}
    changes: dict[int, list[int]] = {}
    steps_before = [0]
    for r, (op, src, dst, first, count) in enumerate(ops):
        steps_before.append(steps_before[-1] + (op == OP_STEP))
        if op == OP_STEP:
            for i in range(first, first + count):
                last[i] = r
            changes.setdefault(dst, []).append(r)
        elif op == OP_FREE:
            changes.setdefault(src, []).append(r)
        elif op == OP_PAINT:
            paint[first] = r
    rows = set()
    for i, p in paint.items():
        r = last.get(i, -1)
        if not 0 <= r < p:
            continue
        _, src, dst, _, count = ops[r]
        if count != 1 or src == dst or ops[p][1] != src or _changed(changes, src, r, p):
            continue
        nxt = _next_change(changes, dst, r)
        if nxt < p and (ops[nxt][0] != OP_FREE or steps_before[p] > steps_before[nxt + 1]):
            continue
        rows.add(r)
    return rows


def _next_change(changes: dict[int, list[int]], slot: int, r: int) -> int:
    rows = changes.get(slot, [])
    k = bisect_right(rows, r)
    return rows[k] if k < len(rows) else 1 << 62


def _changed(changes: dict[int, list[int]], slot: int, r: int, p: int) -> bool:
    return _next_change(changes, slot, r) < p


def _graph_params(who: str, ys: list[torch.Tensor], xi: tuple[torch.Tensor, ...],
                  index: dict[int, int], stops: dict) -> list[int]:
    """The parameters (their numbers in ``index``) whose gradients the graph of ``who``
    (a step) makes; raise if it reaches a tensor that needs a gradient but is neither a
    parameter nor the step's input: its gradient would be lost (the forward ran
    without a graph). ``stops``: the non-leaf parameters (:func:`_stops`)."""
    inputs = {id(t) for t in xi}
    found = []
    for key, var in _reached_leaves(ys, stops).items():
        if key in index:
            found.append(index[key])
        elif key not in inputs:
            raise _unpassed(who, f"uses a tensor of shape {tuple(var.shape)} that requires "
                                 f"grad but")
    return sorted(found)


#: How to run a call that wants no gradient when a step makes a graph of its own.
_NO_GRAD_HINT = (
    ". Nothing passed requires grad: if no gradient is wanted (an inference rollout "
    "whose step takes a derivative with torch.autograd.grad from a leaf it makes "
    "itself), run the call under torch.no_grad(); the step's own torch.enable_grad() "
    "still works inside")


def _unpassed(who: str, what: str, hint: str = "") -> PebblesValueError:
    """The error for a tensor that requires grad that ``who`` uses but was not passed;
    ``hint``: a further way out, appended."""
    return PebblesValueError(
        f"{who} {what} was not passed; its gradient would be lost (the steps run without a "
        f"graph). Pass it as a parameter (checkpointed_loop(step, x0, n, *params); "
        f"checkpoint_sequential(..., params=...) or as an nn.Module layer){hint}")


class _Checkpointed(torch.autograd.Function):
    """Forward: the schedule up to s_n without a graph. Backward: the rest of it.

    Inputs: the chain, the number of state tensors, the state tensors, then
    ``chain.grad_params`` (so that autograd hands their gradients on).
    """

    @staticmethod
    def forward(ctx: Any, chain: _Chain, nx: int, *tensors: torch.Tensor) -> Any:
        xs = tuple(t.detach() for t in tensors[:nx])
        try:
            with _uncached():
                slots, out = chain.forward(xs)
            chain.buffers.record()  # the modules as the forward pass leaves them
            chain.check_buffers()
        except BaseException:
            chain.drop()
            raise
        finally:
            chain.buffers.settle()
        if chain.program is None:  # a while loop that ran no step: x0 itself, as plain
            out = tensors[:nx]  # autograd gives (torch then guards it as an input)
        ctx.chain, ctx.slots = chain, slots
        ctx.save_for_backward(*tensors[:nx])  # s_0 (in slot 0 anyway): for a second pass
        ctx.shared = _shared_outputs(out, slots)  # out: the tuple slot n holds, if any
        constant = {id(t) for t in _constant(chain, out, tensors[:nx], xs)}
        if chain.program is not None:  # autograd gives the outputs its grad_fn: new
            # tensors, not one of the user's (a closed-over constant, a parameter's leaf
            # alias, handed on unchanged) nor one the chain holds
            out, constant = _detached(out, constant)
        ctx.versions = _versions(_replayed(chain))  # replays need them as they are
        ctx.mark_non_differentiable(*[t for t in out if id(t) in constant])
        ctx.set_materialize_grads(False)  # an output the loss leaves unused: None, not 0,
        # so that what it alone reaches gets no gradient (None), as in plain autograd
        return out if chain.form(chain.program.n if chain.program else 0) else out[0]

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> Any:
        if torch.is_grad_enabled():  # create_graph=True
            raise PebblesNotImplementedError(
                "create_graph=True (a double backward pass) through pebbles.torch's "
                "checkpointed_loop, checkpointed_while_loop or checkpoint_sequential is not "
                "supported: each backward step differentiates "
                "a replay from a detached stored state, so the gradients would carry no "
                "graph back to the inputs. For higher derivatives, differentiate the plain "
                "loop or chain")
        xs = ctx.saved_tensors  # after a pass without retain_graph=True: torch's error
        _check_shared(ctx.shared)
        ctx.shared = ()  # their aliases hold the storages: the states go as the pass goes
        _check_params(ctx.chain, ctx.versions)
        need = ctx.needs_input_grad[2:]
        if ctx.chain.program is None:  # a while loop that ran no step: x_n is x0
            return (None, None, *[g if need[k] else None for k, g in enumerate(
                (*grads, *(None for _ in ctx.chain.grad_params)))])
        slots, ctx.slots = ctx.slots, None  # the stored states die with this call
        chain = ctx.chain
        chain.replay_amp = _autocast_state(chain.amp_kinds) != chain.amp
        chain.replay_device = torch.get_default_device() != chain.device
        try:
            with _uncached(), chain.buffers.as_recorded():
                if slots is None:  # a second backward pass (retain_graph=True): again
                    slots = chain.forward(tuple(t.detach() for t in xs), again=True)[0]
                chain.phase = "backward pass"
                gx, gp = chain.backward(slots, grads)
                chain.check_buffers()
        except BaseException:
            if slots is not None:
                slots.clear()  # the traceback holds this frame, not the stored states
            chain.drop()
            raise
        finally:
            chain.buffers.settle()
        return (None, None, *[g if need[k] else None for k, g in enumerate((*gx, *gp))])


def _constant(chain: _Chain, out: tuple[torch.Tensor, ...], x0: tuple[torch.Tensor, ...],
              xs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """The outputs to which plain autograd gives no ``requires_grad``, as far as that is known
    without a graph (the forward pass has none): integer parts, and a tensor that does not
    require grad handed on unchanged by the steps (a part of ``x0``, whose alias in ``xs``
    the steps got, a parameter, a buffer), which plain autograd returns as it is. A part
    the steps compute from such tensors only (``t + dt``) cannot be told apart without
    recording every step's graph: it requires grad, and gets no gradient."""
    given = {id(t): t.requires_grad for t in (*x0, *chain.params, *chain.frozen,
                                               *chain.buffers.tensors)}
    given.update({id(a): t.requires_grad for a, t in zip(xs, x0, strict=True)})
    return [t for t in out if not _differentiable(t) or given.get(id(t)) is False]


def _detached(out: tuple[torch.Tensor, ...],
              constant: set[int]) -> tuple[tuple[torch.Tensor, ...], set[int]]:
    """``out`` as new tensors (``detach()``: the same storage and version counter), and the
    ids in ``constant`` (of outputs to mark non-differentiable) moved to them."""
    new = tuple(t.detach() for t in out)
    return new, {id(d) for t, d in zip(out, new, strict=True) if id(t) in constant}


def _shared_outputs(out: tuple[torch.Tensor, ...], slots: list) -> list[tuple]:
    """(k, alias, version) for each output k whose storage a stored state holds too (a
    step passed a tensor on unchanged): the alias (``detach()``) shares its version
    counter, so that a change in place before the backward pass is seen."""
    held = {t.untyped_storage().data_ptr() for slot in slots if slot is not None
            and slot is not out for t in slot if t.numel()}
    return [(k, t.detach(), v)
            for k, (t, v) in enumerate(zip(out, _versions(out), strict=True))
            if t.numel() and t.untyped_storage().data_ptr() in held]


def _modified(what: str, now: int, version: int, why: str) -> RuntimeError:
    """Autograd's error for a saved tensor changed in place, naming ``what`` and why the
    gradients would be wrong, and its fix."""
    return RuntimeError(
        f"one of the variables needed for gradient computation has been modified by an "
        f"inplace operation: {what} of a pebbles.torch call, at version {now}; expected "
        f"version {version} instead. {why}")


def _check_shared(shared: list[tuple]) -> None:
    """Raise, as autograd does for a saved tensor, if an output that stored states share
    was changed in place after the forward pass: those states changed with it."""
    for k, alias, version in shared:
        if alias._version != version:
            raise _modified(
                f"output {k}", alias._version, version,
                "A step returned it unchanged, so the states stored for the backward pass "
                "hold it too and the gradients would be wrong. Change a copy "
                "(y = y.clone()) instead")


def _check_params(chain: _Chain, versions: list[int]) -> None:
    """Raise, as autograd does for a saved tensor, if a parameter was changed in place
    between the forward and the backward pass (``optimizer.step()`` too early): the
    replays would run with the new values, and the gradients would be wrong."""
    for k, (p, version) in enumerate(zip(_replayed(chain), versions, strict=True)):
        if _versions((p,))[0] != version:
            what = (f"params[{k}]" if k < len(chain.params) else
                    f"a parameter of shape {tuple(p.shape)}")
            raise _modified(
                what, p._version, version,
                "The backward pass replays the steps with the parameters, so the gradients "
                "would be wrong. Change the parameters (optimizer.step()) after the "
                "backward pass")


def _replayed(chain: _Chain) -> tuple[torch.Tensor, ...]:
    """The tensors the replays read besides the states: ``params``, the parameters that
    get gradients, and the modules' frozen parameters (``requires_grad=False``)."""
    return chain.params + chain.grad_params + chain.frozen


def _unique(tensors: Iterable[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    seen, out = set(), []
    for t in tensors:
        if id(t) not in seen and t.requires_grad:
            seen.add(id(t))
            out.append(t)
    return tuple(out)


def _rng_state(devices: list[int]) -> tuple:
    return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in devices]


def _set_rng_state(state: tuple, devices: list[int]) -> None:
    torch.set_rng_state(state[0])
    for d, s in zip(devices, state[1], strict=True):
        torch.cuda.set_rng_state(s, d)


def _same_rng(a: tuple, b: tuple) -> bool:
    """Whether two states of :func:`_rng_state` are equal."""
    return all(torch.equal(s, t) for s, t in zip((a[0], *a[1]), (b[0], *b[1]), strict=True))


def _cuda_devices(tensors: Iterable[torch.Tensor]) -> list[int]:
    return sorted({t.device.index if t.device.index is not None else torch.cuda.current_device()
                   for t in tensors if t.is_cuda})


def _run(chain: _Chain, xs: tuple[torch.Tensor, ...], was_tuple: Form) -> State:
    """Apply the checkpointed Function, or a plain loop when no gradient is wanted."""
    chain.was_tuple, chain.forms = was_tuple, {0: (was_tuple, len(xs))}
    chain.input_grad = tuple(t.requires_grad for t in xs)
    if _wants_grad(xs, chain.grad_params):
        _check_transforms((*xs, *chain.grad_params))
        out = _Checkpointed.apply(chain, len(xs), *xs, *chain.grad_params)
        form = chain.last_form()
        return out if form is None else _pack(form, out)
    # grad mode on, nothing passed requires grad: no graph is made unless a step uses a
    # tensor that requires grad and was not passed (then chain.plain raises)
    with torch.no_grad() if not torch.is_grad_enabled() else _NOTHING:
        xs = chain.plain(xs)
    return _pack(chain.last_form(), xs)


def _check_inference(name: str, xs: tuple[torch.Tensor, ...], form: Form) -> None:
    """Refuse an inference tensor (made under ``torch.inference_mode()``) as the input of
    a call that makes a graph outside inference mode: the stored states and the graphs
    would save it, which torch refuses ("Inference tensors cannot be saved for backward")
    for plain autograd too."""
    k = next((k for k, t in enumerate(xs) if t.is_inference()), None)
    if k is None or torch.is_inference_mode_enabled():
        return
    part = f"{name}[{k}]" if form is not None else name
    raise PebblesValueError(
        f"{part} is an inference tensor (made under torch.inference_mode()) and the call "
        f"makes a graph (a parameter or the input requires grad): its stored states and "
        f"graphs would save it, which torch allows only inside inference mode. Pass a "
        f"normal tensor: {part}.clone() outside inference_mode, or make it under "
        f"torch.no_grad() instead; for no gradient, run the call under "
        f"torch.inference_mode() or torch.no_grad()")


def _makes_graph(name: str, xs: tuple[torch.Tensor, ...], form: Form,
                 steps: Sequence[object], params: tuple[torch.Tensor, ...]) -> bool:
    """Whether a call makes a graph (:func:`_wants_grad`); if it does, its input ``xs``
    (called ``name``) and ``params`` checked to be usable in one (:func:`_check_inference`,
    :func:`_refuse_lazy`)."""
    if not _wants_grad(xs, params):
        return False
    _check_inference(name, xs, form)
    _refuse_lazy(steps, params)
    return True


def _wants_grad(xs: tuple[torch.Tensor, ...], grad_params: tuple[torch.Tensor, ...]) -> bool:
    """Whether a call makes a graph: grad mode on, and the input or a parameter passed
    requires grad (else it is a plain pass, each step once)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in (*xs, *grad_params))


@contextlib.contextmanager
def _uncached() -> Iterator[None]:
    """``torch.nn.utils.parametrize``'s caching switched off (and back on after, also on
    an error) while pebbles runs steps: inside ``parametrize.cached()`` the forward pass,
    which runs without a graph, would cache parametrized weights without one and the
    replays would reuse them, so the tensors behind them would get no gradient. Each run
    computes the weight instead, as outside ``cached()``; the caller's cached weights
    are kept for after the call. The counter ``cached()`` adds 1 to is lowered by what it
    held and raised by as much after, never overwritten: a ``cached()`` of another thread
    entered or left meanwhile keeps its count."""
    from torch.nn.utils import parametrize

    held = parametrize._cache_enabled
    parametrize._cache_enabled -= held
    try:
        yield
    finally:
        parametrize._cache_enabled += held


def _check_transforms(tensors: tuple[torch.Tensor, ...]) -> None:
    """Refuse torch.func transforms and forward-mode AD where gradients are wanted: the
    backward pass replays steps and calls ``torch.autograd.grad`` itself, which
    neither composes with."""
    dual = any(forward_ad.unpack_dual(t).tangent is not None for t in tensors)
    if dual or torch._C._are_functorch_transforms_active():
        where = ("on dual tensors (forward-mode AD)" if dual else
                 "inside a torch.func transform (grad, vjp, jacrev, jvp, vmap, ...)")
        raise PebblesNotImplementedError(
            f"pebbles.torch was called {where} with tensors that require grad: its "
            f"backward pass replays steps and calls "
            f"torch.autograd.grad, which torch.func transforms and forward-mode AD do not "
            f"compose with. Use loss.backward() or torch.autograd.grad, or transform the "
            f"plain loop or chain")


def _params(params: Sequence[object], call: str | None = None) -> tuple[torch.Tensor, ...]:
    """``params`` checked to be tensors. ``call``: the loop's call with ``*params``
    written out, for the fix of an iterable or a number passed among them; None:
    ``params=`` of a chain."""
    for k, p in enumerate(params):
        if not isinstance(p, torch.Tensor):
            raise PebblesTypeError(
                f"params[{k}] is {a_kind(p)}; it must be a torch.Tensor{_params_fix(p, call)}")
    return tuple(params)  # type: ignore[arg-type]


def _params_fix(p: object, call: str | None) -> str:
    """How to pass ``p``, found where a parameter tensor should be: a number given where
    ``*params`` go (the budget, positionally), an iterable of tensors not unpacked."""
    if call is not None and isinstance(p, (int, np.integer)) and not isinstance(p, bool):
        return f": budget and the other options are keyword-only (budget={p}, not {p})"
    if isinstance(p, np.ndarray):
        return f"; pass a NumPy array as a tensor: torch.as_tensor(array) (shape {p.shape})"
    if isinstance(p, Iterable) and not isinstance(p, (str, bytes, dict)):
        how = (f"unpack them into the call: {call}" if call is not None else
               "pass one flat iterable of tensors: params=model.parameters() or "
               "params=[*a.parameters(), w]")
        return f"; for an iterable of tensors (model.parameters(), a list), {how}"
    return " (close over other values in the step or layer instead)"


def _owner(obj: object) -> torch.nn.Module | None:
    """``obj`` if it is an nn.Module, the module of a bound method of one, else None."""
    owner = obj if isinstance(obj, torch.nn.Module) else getattr(obj, "__self__", None)
    return owner if isinstance(owner, torch.nn.Module) else None


def _module_params(obj: object) -> tuple[torch.Tensor, ...]:
    """Parameters of ``obj`` if it is an nn.Module (or a bound method of one)."""
    owner = _owner(obj)
    return () if owner is None else tuple(owner.parameters())


def _refuse_lazy(steps: Sequence[object], params: tuple[torch.Tensor, ...]) -> None:
    """Refuse, in a call that makes a graph, uninitialized parameters among ``params``
    (``nn.LazyLinear`` before its first call; the parameters of ``steps``' modules): they
    take their shape from the first input, after the adapter has read them for the
    gradients, devices and taping. One test per parameter; the name is looked up only
    for the error."""
    if not any(torch.nn.parameter.is_lazy(p) for p in params):
        return
    for k, owner in enumerate(map(_owner, steps)):
        name = next((name for name, t in (owner.named_parameters() if owner else ())
                     if torch.nn.parameter.is_lazy(t)), None)
        if name is not None:
            where = f"layer {k} ({type(owner).__name__})" if len(steps) > 1 else \
                f"the step ({type(owner).__name__})"
            raise PebblesValueError(
                f"{where}: parameter {name} is uninitialized (a lazy module such as "
                f"nn.LazyLinear, shaped by its first input); call the module once on an "
                f"example input (model(x), e.g. under torch.no_grad()) before "
                f"checkpointing it with gradients")
    k = next(k for k, p in enumerate(params) if torch.nn.parameter.is_lazy(p))
    raise PebblesValueError(
        f"parameter {k} passed is uninitialized (of a lazy module such as nn.LazyLinear, "
        f"shaped by its first input); call its module once on an example input "
        f"(model(x), e.g. under torch.no_grad()) before passing its parameters")


def _program(moves: Any, n: int) -> SlotProgram:
    if isinstance(moves, SlotProgram):
        return moves
    return lower(moves, n, frees=True) if not hasattr(moves, "lower") else moves.lower(frees=True)


@functools.lru_cache(maxsize=16)
def _hetero_program(fields: tuple[bytes | None, ...], memory: float, levels: int,
                    tape: bool) -> SlotProgram:
    """The lowered heterogeneous optimum, solved once per costs and limit: a training loop
    calls checkpoint_sequential with the same ones every iteration, and the dynamic
    programme's tables (O(n^2 levels)) should not add to every pass's peak memory. The
    costs come as bytes (a copy: the caller may change its arrays afterwards)."""
    costs = _from_fields(fields)
    moves = list(hetero_optimal(costs, memory, levels=levels, tape=tape))
    return lower(moves, costs.n, frees=True)


@functools.lru_cache(maxsize=16)
def _segments_program(fields: tuple[bytes | None, ...], segments: int, levels: int,
                      tape: bool) -> SlotProgram:
    """The lowered least-time schedule with the memory PyTorch's split into ``segments``
    holds, both measured by the simulator under the costs: the heterogeneous optimum at
    that memory, or the split itself where the optimum, its sizes rounded to ``levels``,
    is slower, or its tables pass the size guard."""
    costs = _from_fields(fields)
    split = list(sequential_segments(costs.n, segments, kept=_graph(costs) is not None))
    theirs = simulate(split, costs.n, costs=costs)
    try:
        moves = list(hetero_optimal(costs, theirs.peak_bytes, levels=levels, tape=tape))
    except PebblesValueError:  # the split's memory is too little once rounded
        moves = split
    if simulate(moves, costs.n, costs=costs).time > theirs.time:
        moves = split
    return lower(moves, costs.n, frees=True)


def _fields(costs: ChainCosts, tape: bool) -> tuple[bytes | None, ...]:
    """``costs`` as a cache key (kept graphs only with ``tape``)."""
    return tuple(None if v is None or (k == "graph" and not tape) else v.tobytes()
                 for k, v in ((f.name, getattr(costs, f.name))
                              for f in dataclasses.fields(costs)))


def _from_fields(fields: tuple[bytes | None, ...]) -> ChainCosts:
    return ChainCosts(*(None if b is None else np.frombuffer(b, dtype=np.float64)
                        for b in fields))


def _solve_costs(costs: ChainCosts, memory: float, levels: int, tape: bool) -> SlotProgram:
    """The cached heterogeneous optimum of ``costs`` (kept graphs only with ``tape``)."""
    return _hetero_program(_fields(costs, tape), float(memory), levels, bool(tape))


def _solve_layers(costs: ChainCosts, memory: float, levels: int, tape: bool) -> SlotProgram:
    """:func:`_solve_costs` for ``checkpoint_sequential(memory=...)``, whose errors speak
    of its layers and, past the size guard, of its own ways out (``levels=``,
    ``budget=``, ``segments=``)."""
    try:
        return _solve_costs(costs, memory, levels, tape)
    except PebblesValueError as err:
        fit, n = levels_fit(costs), costs.n
        if levels <= fit or memory < hetero_min_memory(costs):  # not the size guard
            message = str(err).replace(f"chain of n={n} steps", f"chain of n={n} layers")
            raise PebblesValueError(message.replace("some step ", "some layer ")) from None
        fewer = (f"pass levels={fit} or fewer (coarser rounding of the sizes), "
                 if fit >= 1 else f"n={n} layers are too many for memory= at any levels; "
                                  f"pass ")
        raise PebblesValueError(
            f"memory={_chain._fmt(memory)} bytes with n={n} layers at levels={levels}: the "
            f"least-time schedule's tables would pass pebbles' size guard "
            f"({_chain._MAX_ENTRIES:.3g} entries a table, {_chain._MAX_WORK:.3g} operations, "
            f"about 10 s); {fewer}"
            f"budget=K instead (Treeverse, no tables: at most K stored layer outputs), or "
            f"segments=K (PyTorch's split, never slower in the model)") from None


@_opaque
def checkpointed_loop(step: Callable[..., State], x0: State, n: int, *params: torch.Tensor,
                      budget: int | None = None, method: str = "treeverse",
                      preserve_rng_state: bool = False, tape: bool = True,
                      memory: float | None = None, graph_bytes: float | None = None,
                      **options: Any) -> State:
    """``x_n`` of ``x_{i+1} = step(i, x_i, *params)``, differentiable, storing few states.

    Parameters
    ----------
    step : callable
        ``step(i, x, *params)`` returns the next state, of the same shapes and
        dtypes as ``x``. If ``step`` is an ``nn.Module`` (or a method of one),
        its parameters get gradients too.
    x0 : Tensor or tuple of Tensors
        The initial state.
    n : int
        Number of steps (``n = 0`` returns ``x0``).
    *params : Tensor
        Tensors the steps differentiate through (e.g. ``*model.parameters()``);
        they are passed to every call of ``step``.
    budget : int, optional
        Most states stored besides ``x0`` (needed by ``treeverse``).
    method : str
        A schedule of :func:`pebbles.schedule` (checkpoint or in-place game).
    memory : float, optional
        Instead of ``budget`` and ``method``: most bytes held by stored states
        and kept graphs (``x0`` excluded). The least-time schedule of the
        uniform chain whose steps may keep their graph (``tape`` moves,
        :func:`pebbles.hetero_optimal`): a step that keeps its graph is never replayed,
        so with room for one graph per step every step runs once.
    graph_bytes : float, optional
        Bytes a step's kept graph saves besides its input and output (for
        ``memory``); by default measured by one run of step 0 with a graph
        (``profile_layers``' rule; that run is one extra call of ``step``), which
        also sizes a state by the storages it keeps alive (the larger of ``x0``'s
        and step 0's output's: a view counts its base); not with
        ``memory=float("inf")``, which keeps every graph whatever its size. When
        given, step 0 does not run and a state is sized from ``x0``: its storages, or its elements
        where those hold more (an expanded ``x0``, ``ic.expand(64, d)``, holds one
        row; the states the steps make hold them all).
    preserve_rng_state : bool
        Replay each step with the RNG state of its first run (stochastic steps).
    tape : bool
        Run a step with a graph at its last run before its backward step when the
        graph would hold nothing but the step's input, output, parameters and
        buffers (see :func:`checkpoint_sequential`); the first step that saves other
        tensors switches this off for the call.
    **options
        Options of the method.

    Returns
    -------
    Tensor or tuple of Tensors
        ``x_n``; its gradient flows to ``x0`` and every parameter.

    Raises
    ------
    InfeasibleBudgetError
        The budget cannot finish the schedule (the error names the least one).
    PebblesTypeError
        Neither ``budget`` nor ``memory`` is given, and ``method`` needs a budget.
    PebblesValueError
        A step changed the state's shape, dtype, device or form (under
        ``torch.autocast`` a step ending in a Linear or a matmul returns the autocast
        dtype: cast the state back, e.g. ``.float()``, at the end of the step).

    Notes
    -----
    Only the returned state is differentiable. A tensor a step keeps elsewhere
    (appended to a list for a loss over the trajectory, captured by a forward hook)
    gets no gradient: the forward pass runs without a graph, and a run with one
    starts from a detached state. Where the forward pass kept that step's graph
    (taping, ``memory=``), a loss that uses it makes the backward pass raise torch's
    "backward through the graph a second time" instead. Carry such a quantity in the
    state: ``return x, loss + (x ** 2).sum()`` for a running loss. A step that runs
    its own ``torch.enable_grad()`` (a force from ``torch.autograd.grad``) may; its
    outputs are detached in the runs without a graph.

    Examples
    --------
    >>> import torch
    >>> from pebbles.torch import checkpointed_loop
    >>> a = torch.tensor(0.9, requires_grad=True)
    >>> x = checkpointed_loop(lambda i, x, a: a * x, torch.ones(2), 100, a, budget=5)
    >>> x.sum().backward()
    >>> round(a.grad.item(), 6) == round(2 * 100 * 0.9 ** 99, 6)
    True
    """
    n = check_int("n", n, 0)
    check_callable("step", step, "step(i, x, *params)")
    tape, preserve_rng_state = check_bool("tape", tape), check_bool("preserve_rng_state",
                                                                    preserve_rng_state)
    xs, was_tuple = _as_tuple("x0", x0)
    call_params = _params(params, "checkpointed_loop(step, x0, n, *model.parameters(), "
                                  "budget=...)")
    _check_loop_schedule(n, budget, method, memory, graph_bytes, options)
    if n == 0:  # no step: x_0, as the plain loop gives
        return x0
    devices = _cuda_devices((*xs, *call_params, *_owned(step)))  # RNG states to keep
    module_params = _module_params(step)
    grad = _makes_graph("x0", xs, was_tuple, (step,), (*call_params, *module_params))
    if memory is not None and grad:
        program = _uniform_program(step, x0, n, call_params, memory, graph_bytes, tape,
                                   devices)
    elif memory is not None:  # a plain loop: nothing to size
        program = _program(_schedule("store-all", n), n)
    else:
        program = _program(_schedule(method, n, budget=budget, **options), n)
    chain = _Chain(step, call_params, module_params, program, spec=_spec(xs),
                   rng=preserve_rng_state, devices=devices, tape=tape,
                   owners=_owners((step,)))
    return _run(chain, xs, was_tuple)


@_opaque
def checkpointed_while_loop(cond: Callable[..., Any], step: Callable[..., State], x0: State,
                            *params: torch.Tensor, budget: int, max_steps: int | None = None,
                            beyond: str = "greedy", preserve_rng_state: bool = False,
                            tape: bool = True) -> State:
    """``x_n`` of ``while cond(i, x_i): x_{i+1} = step(i, x_i, *params)``, differentiable.

    For loops whose length is known only when they stop (a tolerance, an event, a
    time reached with adaptive steps): the forward pass keeps at most ``budget``
    states besides ``x0``, chosen by online checkpointing without knowing ``n``
    (:class:`pebbles.OnlineScheduler`: Stumm & Walther's r = 2 phase, optimal up to
    ``n = (budget + 1)(budget + 2)/2 - 1`` steps, their r = 3 phase, then ``beyond``;
    docs/online.md). Once it stops after ``n`` steps the backward pass runs the rest
    of ``pebbles.online(n, budget)``, as :func:`checkpointed_loop` does with
    ``method="online"``: the same step calls but for taping, which that one does for
    the last steps (here nobody knew they were the last): at most ``budget`` calls more
    (docs/torch.md).

    Parameters
    ----------
    cond : callable
        ``cond(i, x)``: run step ``i`` on ``x = x_i`` (a bool or a one-element
        tensor), asked for ``i = 0, 1, ...`` without gradients, as
        ``torch.no_grad()`` code. The first ``i`` for which it is false is ``n``
        (0: the result is ``x0``). As with ``jax.lax.while_loop``, the gradient is
        that of the ``n``-step loop that ran. It may draw random numbers: with
        ``preserve_rng_state`` each step is replayed from the generator's state
        after ``cond`` (one state kept for each step before which ``cond`` drew).
    step, x0, *params, preserve_rng_state, tape
        As in :func:`checkpointed_loop`.
    budget : int
        Most states stored besides ``x0`` (>= 2; the state just computed counts).
    max_steps : int, optional
        Stop after ``max_steps`` steps even if ``cond`` is still true.
    beyond : {'greedy', 'wang-moin'}
        Rule past the r = 3 phase (see :class:`pebbles.OnlineScheduler`).

    Returns
    -------
    Tensor or tuple of Tensors
        ``x_n``; its gradient flows to ``x0`` and every parameter.

    Examples
    --------
    >>> import torch
    >>> from pebbles.torch import checkpointed_while_loop
    >>> a = torch.tensor(1.5, requires_grad=True)
    >>> x = checkpointed_while_loop(lambda i, x: x.sum() < 100, lambda i, x, a: a * x,
    ...                             torch.ones(2), a, budget=3)
    >>> x[0].item() == 1.5 ** 10             # n = 10: 1.5**9 < 50 < 1.5**10
    True
    >>> x.sum().backward()
    >>> round(a.grad.item(), 3) == round(2 * 10 * 1.5 ** 9, 3)
    True
    """
    budget = while_budget(budget, "checkpointed_while_loop", ("state", "states"))
    most = None if max_steps is None else check_int("max_steps", max_steps, 0)
    beyond = check_choice("beyond", beyond, ("greedy", "wang-moin"))
    check_callable("cond", cond, "cond(i, x)")
    check_callable("step", step, "step(i, x, *params)")
    tape, preserve_rng_state = check_bool("tape", tape), check_bool("preserve_rng_state",
                                                                    preserve_rng_state)
    xs, was_tuple = _as_tuple("x0", x0)
    call_params = _params(params, "checkpointed_while_loop(cond, step, x0, "
                                  "*model.parameters(), budget=...)")
    module_params = _module_params(step)
    _makes_graph("x0", xs, was_tuple, (step,), (*call_params, *module_params))
    chain = _Until(cond, (budget, beyond, most), step, call_params, module_params,
                   None, spec=_spec(xs), rng=preserve_rng_state,
                   devices=_cuda_devices((*xs, *call_params, *_owned(step))), tape=tape,
                   owners=_owners((step,)))
    return _run(chain, xs, was_tuple)


def _check_loop_schedule(n: int, budget: int | None, method: str, memory: object,
                         graph_bytes: object, options: dict[str, Any]) -> None:
    """Refuse a schedule request checkpointed_loop cannot run, before any step runs (also
    for n = 0): two ways of choosing at once, a method whose moves are no gradient over
    states in memory, bad method options, an unused graph_bytes."""
    theirs = [k for k in ("segments", "use_reentrant", "costs", "levels") if k in options]
    if theirs:
        raise PebblesTypeError(
            f"{theirs[0]}={options[theirs[0]]!r} is an option of checkpoint_sequential (a "
            f"chain of layers), not of checkpointed_loop (one step repeated n times); pass "
            f"budget=STATES or memory=BYTES")
    if memory is not None:
        other = [f"budget={budget!r}"] if budget is not None else []
        other += [f"method={method!r}"] if method != "treeverse" else []
        other += [f"{name}={value!r}" for name, value in options.items()]
        if other:
            raise PebblesValueError(
                f"memory={memory!r} with {', '.join(other)}: memory= picks its own schedule "
                f"(the kept-graph optimum in bytes); pass either memory=BYTES or a budget "
                f"with a method and its options")
        _check_bytes("memory", memory)
        if graph_bytes is not None:
            _check_bytes("graph_bytes", graph_bytes)
        return
    if graph_bytes is not None:
        raise PebblesValueError(
            f"graph_bytes={graph_bytes!r} without memory=: graph_bytes sizes the graphs of "
            f"the memory= optimum; pass memory=BYTES too, or leave graph_bytes out")
    check_gradient_method(method, options, "checkpointed_loop")
    if budget is None and describe(method).takes_budget:
        if method == "treeverse":  # the default: memory= is the other choice
            raise PebblesTypeError(
                "checkpointed_loop needs budget=STATES (stored states besides x0) or "
                "memory=BYTES (bytes of stored states and kept graphs); pass one of them")
        raise PebblesTypeError(
            f"checkpointed_loop with method={method!r} needs budget=STATES (stored states "
            f"besides x0); pass budget=STATES, or leave method out and pass memory=BYTES")
    if n == 0:  # what would be refused for n >= 1: method, options, budget type
        _schedule(method, 1, budget=budget, **options)


def _uniform_program(step: Callable[..., State], x0: State, n: int,
                     params: tuple[torch.Tensor, ...], memory: object, graph_bytes: object,
                     tape: bool, devices: list[int]) -> SlotProgram:
    """The lowered optimum of ``n`` equal steps under ``memory`` bytes, each step's graph
    keeping ``graph_bytes`` more (measured when None and ``memory`` is finite, inside
    ``fork_rng`` of the CUDA ``devices``; no graph is kept with ``tape=False``). A
    state's bytes are those of ``x0`` (:func:`_state_bytes`) or, when step 0 runs to
    measure its graph, the larger of those and its output's storages (a view keeps its base)."""
    memory = _check_bytes("memory", memory)
    size = _state_bytes(_as_tuple("x0", x0)[0])
    if graph_bytes is None and not math.isfinite(memory):
        graph_bytes = 0  # no limit: every graph is kept, whatever its size; no run to measure
    if graph_bytes is None:
        known = (*params, *_owned(step))
        with torch.random.fork_rng(devices=devices), _Buffers(_owners((step,))).kept(
                "step 0"), _uncached(), _profiling("step 0"):
            graph_bytes, _, out = _graph_bytes(lambda x: step(0, x, *params), x0, known)
        size = max(size, out)
    g = _check_bytes("graph_bytes", graph_bytes) if tape else math.inf
    exact = not math.isfinite(g) or g == int(g)
    quantum = math.gcd(size, int(g) if math.isfinite(g) else 0) if exact else 0  # exact levels
    quantum = quantum if math.isfinite(memory) else 0  # no limit: no levels to make exact
    mem = memory // quantum * quantum if quantum else memory
    costs = _loop_costs(n, size, g)
    every = _each_step_once(n, size, g, float(memory))
    if every is not None:
        return every
    least, fit = _check_loop_memory(costs, memory)
    # a long loop: no more levels than the tables allow (each size rounded up more)
    levels = int(min(max(mem // quantum if quantum else 100, 100), 2000, fit))
    return _solve_costs(costs, mem if mem >= least else memory, levels, tape)


def _loop_costs(n: int, size: int, g: float) -> ChainCosts:
    """The model of ``n`` equal steps (forward cost 1, backward cost 2), states of ``size``
    bytes, kept graphs of ``g`` bytes (infinite: none kept)."""
    return ChainCosts(np.ones(n), np.full(n, 2.0), np.full(n + 1, float(size)),
                      graph=np.full(n, g))


@functools.lru_cache(maxsize=16)
def _each_step_once(n: int, size: int, g: float, memory: float) -> SlotProgram | None:
    """The lowered schedule that runs each step once, if it fits in ``memory`` bytes: every
    graph (of ``g`` bytes) kept or, untaped (``g`` infinite), every state (of ``size``
    bytes) stored (``store-all``). Nothing is faster, so no tables are built (a long loop
    under a generous limit). Cached: a training loop makes the same call again."""
    costs = _loop_costs(n, size, g)
    kept = math.isfinite(g)
    moves = list(_chain._sequential_segments(n, 1, True) if kept else
                 _schedule("store-all", n))
    if simulate(moves, n, costs=costs).peak_bytes > memory:
        return None
    return _program(moves, n)


def _check_loop_memory(costs: ChainCosts, memory: float) -> tuple[float, int]:
    """(:func:`hetero_min_memory`, :func:`pebbles._chain.levels_fit`) of a loop's ``costs``;
    raise for a limit below one step's need or a loop too long for the tables at any
    levels, naming the state's bytes and a budget instead."""
    least, fit, n = hetero_min_memory(costs), levels_fit(costs), costs.n
    size, g = int(costs.sizes[0]), float(costs.graph[0])
    shown = int(memory) if math.isfinite(memory) and memory == int(memory) else memory
    if not memory >= least:
        graph = " and, in its backward step, its graph" if math.isfinite(g) else ""
        need = math.ceil(least)
        held = (f"its output ({size} bytes; its input x0 is not counted)" if n == 1 else
                f"its input and output ({size} bytes each)")
        raise PebblesValueError(
            f"memory={shown!r} bytes cannot finish the loop: a step holds {held}{graph} "
            f"at once, {need} bytes; pass memory >= "
            f"{need}, or a budget= of stored states instead")
    if fit < 1:  # past the guard at any levels: fewer levels would not do
        k = min(max(int(memory // size), 2), n) if math.isfinite(memory) and size else 0
        untaped = "" if math.isfinite(g) else " untaped"
        raise PebblesValueError(
            f"memory={shown!r} bytes with n={n}{untaped} steps: the least-time schedule's "
            f"tables would pass pebbles' size guard at any rounding of the memory; pass "
            f"budget=K instead (Treeverse, no tables: at most K stored states of {size} "
            f"bytes{f', e.g. budget={k} for {k * size} bytes' if k else ''})")
    return least, fit


def _check_bytes(name: str, value: object) -> float:
    """``value`` as a float: a number of bytes >= 0 (NumPy numbers too; inf: no limit)."""
    return check_cost(name, value, "a number of bytes; inf: no limit", finite=False)


#: Every block PyTorch's CUDA caching allocator hands out is a multiple of this many bytes.
CUDA_BLOCK_BYTES = 512


def _held(nbytes: int, device: torch.device) -> int:
    """The bytes a tensor of ``nbytes`` holds on ``device``: on a CUDA device rounded up
    to :data:`CUDA_BLOCK_BYTES` (a 4-byte scalar holds 512 there)."""
    if device.type != "cuda":
        return nbytes
    return -(-nbytes // CUDA_BLOCK_BYTES) * CUDA_BLOCK_BYTES


def _nbytes(xs: tuple[torch.Tensor, ...]) -> int:
    return sum(_held(t.numel() * t.element_size(), t.device) for t in xs)


def _storage_bytes(t: torch.Tensor) -> int:
    """The bytes ``t``'s whole storage holds (:func:`_held`): what keeping ``t`` keeps
    alive, its base's bytes for a view (``x[:, :8]`` of a wide ``x``)."""
    return _held(t.untyped_storage().nbytes(), t.device)


def _kept_bytes(xs: tuple[torch.Tensor, ...]) -> int:
    """The bytes that keeping the tensors ``xs`` keeps alive: each storage once
    (:func:`_storage_bytes`; tensors without data, on the meta device, each apart)."""
    held = {t.untyped_storage().data_ptr() or id(t): _storage_bytes(t) for t in xs}
    return sum(held.values())


def _state_bytes(xs: tuple[torch.Tensor, ...]) -> int:
    """The bytes of a loop's state sized from ``x0``: each storage once, the larger of
    its bytes (a view keeps its base) and the bytes of the tensors on it once made
    (an expanded ``x0``, ``ic.expand(64, d)``, holds one row; the steps' states, which
    the schedule stores, hold every element)."""
    full: dict[int, int] = {}
    for t in xs:
        key = t.untyped_storage().data_ptr() or id(t)
        full[key] = full.get(key, 0) + _nbytes((t,))
    held = {t.untyped_storage().data_ptr() or id(t): _storage_bytes(t) for t in xs}
    return sum(max(b, full[key]) for key, b in held.items())


@_opaque
def profile_layers(functions: Sequence[Callable[..., State]], input: State, *,
                   backward_ratio: float = 2.0, params: Iterable[torch.Tensor] = (),
                   repeat: int = 3) -> ChainCosts:
    """Run each layer ``repeat`` times without a graph (its time: the least of those runs;
    the bytes of its output) and once with one (the bytes its graph saves). Bytes of a
    CUDA tensor are rounded up to :data:`CUDA_BLOCK_BYTES`, as the allocator holds them.
    An output's bytes are those of the storages it keeps alive, each once: a view
    (``x[:, :8]``) counts its whole base, which storing it holds.

    One run's time can be off by half on a busy machine, which is enough to change the
    least-time schedule; the least of three is steadier (docs/torch.md).

    ``graph[i]`` counts the storages the autograd graph of layer i saves
    (:func:`torch.autograd.graph.saved_tensors_hooks`), each once, besides the
    layer's input and output (stored by the schedule anyway), its parameters and
    buffers and ``params``: the memory a kept graph adds (see
    :class:`pebbles.ChainCosts`). The RNG state and the layers' buffers (BatchNorm's
    running statistics) are left as they were.
    ``backward[i]`` is ``backward_ratio`` (at least 1) times ``forward[i]``: a
    backward step with the replay of its layer. ``sizes[0]`` is the input's
    bytes. ``grads[i]`` is the bytes of the gradients of the parameters (the
    layer's own and ``params``, where they require grad) that layer i is the last
    to use, found in its graph, whichever layer owns them: backward step i makes
    them and they stay held until the backward pass ends. ``cotangents[i]`` is the
    bytes of the floating-point parts of layer i's input (of the input's, those that
    require grad): the gradient backward step i makes for it.

    Parameters
    ----------
    functions : sequence of callables
        The layers, in order: modules or functions, each taking the previous one's
        output (a tensor or a tuple of tensors).
    input : tensor or tuple of tensors
        A representative input of the first layer (the shapes and dtypes the chain
        will be run with).
    backward_ratio : float, default 2.0
        Time of a backward step over its layer's forward time, at least 1.
    params : iterable of tensors, default ()
        Tensors the layers use besides their own parameters (closed-over weights);
        their gradients are counted in ``grads``.
    repeat : int, default 3
        Timed runs of each layer, from 1 to 1000; the least time is kept.

    Returns
    -------
    ChainCosts
        ``forward``, ``backward``, ``sizes``, ``graph``, ``grads`` and ``cotangents``
        as described above: what :func:`checkpoint_sequential` takes as ``costs``, and
        :func:`pebbles.hetero_time` prices.

    Raises
    ------
    PebblesValueError
        ``functions`` empty, ``repeat`` not from 1 to 1000, or ``backward_ratio`` not a
        finite number >= 1.
    PebblesTypeError
        A layer's output (or ``input``) that is not a tensor or a tuple of tensors,
        ``repeat`` not an integer, or ``backward_ratio`` not a real number (a bool is
        none).

    Examples
    --------
    >>> import torch
    >>> from pebbles.torch import profile_layers
    >>> c = profile_layers([torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)],
    ...                    torch.ones(3, 4))
    >>> c.n, c.sizes.tolist(), c.graph.tolist()  # Tanh saves its output only
    (3, [48.0, 96.0, 96.0, 24.0], [0.0, 0.0, 0.0])
    >>> c.grads.tolist()  # float32 weights and biases: (4 * 8 + 8) * 4, none, (8 * 2 + 2) * 4
    [160.0, 0.0, 72.0]
    >>> c.cotangents.tolist()  # the gradients of the layers' inputs (none for the input)
    [0.0, 96.0, 96.0]
    """
    layers = _layers(functions)
    xs, was_tuple = _as_tuple("input", input)
    repeat, backward_ratio = _check_profile(repeat, backward_ratio)
    fwd, sizes, graph, last, cot = [], [_kept_bytes(xs)], [], {}, []
    params = _param_list(params)
    wrt = _unique(_chain_params(layers, params))  # what the backward steps differentiate
    devices = _layer_devices(xs, params, layers)
    with torch.random.fork_rng(devices=devices), _Buffers(_owners(layers)).kept(
            "a layer"), _uncached():
        x: Any = input
        for i, layer in enumerate(layers):
            known = (*params, *_owned(layer))
            with _profiling(f"layer {i} (functions[{i}])"):
                nbytes, reached, _ = _graph_bytes(layer, x, known)
            graph.append(nbytes)
            cot.append(_nbytes(tuple(t for t in _as_tuple("a layer's input", x)[0]
                                     if _differentiable(t) and (i > 0 or t.requires_grad))))
            last.update({id(p): (i, p) for p in wrt if id(p) in reached})
            with _profiling(f"layer {i} (functions[{i}])"):
                x, seconds = _timed(layer, x, repeat, devices)
            fwd.append(seconds)
            sizes.append(_kept_bytes(_as_tuple("a layer's output", x)[0]))
    f = np.array(fwd, dtype=np.float64)
    grads = np.zeros(len(layers))
    for i, p in last.values():  # a gradient is made by the last layer to use its parameter
        grads[i] += _nbytes((p,))
    return ChainCosts(f, f * backward_ratio, np.array(sizes, dtype=np.float64),
                      graph=np.array(graph, dtype=np.float64), grads=grads,
                      cotangents=np.array(cot, dtype=np.float64))


#: Most timed runs of a layer :func:`profile_layers`'s ``repeat`` may ask for.
_MAX_REPEAT = 1000


def _check_profile(repeat: object, backward_ratio: object) -> tuple[int, float]:
    """:func:`profile_layers`'s ``repeat`` (1 to :data:`_MAX_REPEAT`) and
    ``backward_ratio`` (a real number >= 1, NumPy's too; not a bool)."""
    repeat = check_int("repeat", repeat, 1)
    if repeat > _MAX_REPEAT:
        raise PebblesValueError(
            f"repeat={repeat} is more than {_MAX_REPEAT} timed runs of each layer; pass "
            f"repeat={_MAX_REPEAT} or less (the least of the default 3 is steady)")
    meaning = "a backward step's time over its layer's forward time, at least 1"
    ratio = check_cost("backward_ratio", backward_ratio, meaning)
    if ratio < 1:
        raise PebblesValueError(
            f"backward_ratio={backward_ratio!r} must be a finite number >= 1: a backward step "
            f"includes the replay of its layer; pass e.g. backward_ratio=2.0")
    return repeat, ratio


def _timed(layer: Callable[[Any], Any], x: Any, repeat: int,
           devices: list[int]) -> tuple[Any, float]:
    """``layer(x)`` without a graph, run ``repeat`` times: (the last output, the least
    time)."""
    best = math.inf
    for _ in range(repeat):
        _sync(devices)
        t0 = time.perf_counter()
        with torch.no_grad():
            y = layer(x)
        _sync(devices)
        best = min(best, time.perf_counter() - t0)
    return y, best


def _param_list(params: object) -> tuple[torch.Tensor, ...]:
    """``params=`` of a chain as a tuple of tensors: a list, a tuple or any other iterable
    (``module.parameters()``, read once)."""
    if isinstance(params, torch.Tensor):
        raise PebblesTypeError(
            f"params is a tensor of shape {tuple(params.shape)}, not a list of tensors; pass "
            f"params=[w] (a list or tuple of the tensors the layers use)")
    if isinstance(params, (str, bytes, dict)) or not isinstance(params, Iterable):
        raise PebblesTypeError(
            f"params={params!r:.60} is not a list of tensors; pass a list or tuple of the "
            f"tensors the layers use besides their nn.Module parameters (e.g. params=[w], "
            f"or params=() for none)")
    return _params(tuple(params))


def _chain_params(layers: list, params: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """``params`` and the parameters of the ``nn.Module`` layers (or of the module a
    bound-method layer belongs to): what the chain's backward steps differentiate (those
    that require grad)."""
    return params + tuple(p for f in layers for p in _module_params(f))


def _owned(obj: object) -> tuple[torch.Tensor, ...]:
    """The parameters and buffers of ``obj`` if it is an nn.Module (or a method of one):
    with the state and ``params``, they say which CUDA devices a step or layer uses."""
    return (*_module_params(obj), *_module_buffers(obj))


def _layer_devices(xs: tuple[torch.Tensor, ...], params: tuple[torch.Tensor, ...],
                   layers: list) -> list[int]:
    """The CUDA devices of a layer chain: of its input, ``params`` and the parameters and
    buffers of its ``nn.Module`` layers (RNG states to keep, devices to synchronise)."""
    return _cuda_devices((*xs, *params, *(t for f in layers for t in _owned(f))))


def _module_buffers(obj: object) -> tuple[torch.Tensor, ...]:
    owner = _owner(obj)
    return () if owner is None else tuple(owner.buffers())


def _owners(steps: Iterable[object]) -> tuple[torch.nn.Module | None, ...]:
    """The module of each step or layer that is an ``nn.Module`` or a method of one (None
    for a plain function): whose buffers :class:`_Buffers` keeps."""
    return tuple(map(_owner, steps))


def _graph_bytes(fn: Callable[[Any], Any], x: State, known: tuple[torch.Tensor, ...],
                 ) -> tuple[float, dict[int, torch.Tensor], int]:
    """Bytes of the storages ``fn``'s graph saves, run on ``x`` with a graph, besides those
    of its input, its output, ``known`` and leaves that require grad (parameters); those
    leaves the graph reaches, by id (whose gradients its backward produces); and the
    bytes keeping its output keeps alive (:func:`_kept_bytes`)."""
    if not _hooks_enabled():
        raise PebblesNotImplementedError(
            "saved-tensors hooks are disabled here (torch.autograd.graph."
            "disable_saved_tensors_hooks), and memory= or segments= measure each step's "
            "graph with them; pass graph_bytes= (checkpointed_loop) or costs= "
            "(checkpoint_sequential), pass budget= instead, or call outside that context")
    xs, was_tuple = _as_tuple("a step's input", x)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not (t.is_leaf and t.requires_grad):
            saved[t.untyped_storage().data_ptr()] = _storage_bytes(t)
        return t.detach()

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, _unpack):
        xi = tuple(t.detach().requires_grad_(_differentiable(t)) for t in xs)
        ys, _ = _as_tuple("a step's output", fn(_pack(was_tuple, xi)))
    mine = {t.untyped_storage().data_ptr() for t in (*xi, *ys, *known)}
    nbytes = float(sum(b for ptr, b in saved.items() if ptr not in mine and ptr != 0))
    return nbytes, _reached_leaves(ys, _stops(known)), _kept_bytes(ys)


def _stops(tensors: Iterable[torch.Tensor]) -> dict[tuple[int, int], tuple]:
    """The non-leaf tensors among ``tensors`` (parameters the caller computed, e.g.
    ``w * 2``) by their gradient edge: a graph search stops there, as autograd's
    gradient for them does, instead of going on into the caller's graph. Each value
    holds the edge's node too, so that its Python object (and its id) stays the same."""
    return {(id(node), t.output_nr): (node, t) for t in tensors
            if (node := t.grad_fn) is not None}


def _made_from(params: tuple[torch.Tensor, ...],
               stops: dict[tuple[int, int], tuple]) -> dict[int, list[int]]:
    """For each computed (non-leaf) parameter, the numbers of the other ``params`` its
    graph reaches."""
    out = {}
    for k, p in enumerate(params):
        if p.grad_fn is None:
            continue
        others = {key: v for key, v in stops.items() if v[1] is not p}
        reached = _reached_leaves([p], others)
        js = [j for j, q in enumerate(params) if j != k and id(q) in reached]
        if js:
            out[k] = js
    return out


def _reached_leaves(ys: Iterable[torch.Tensor], stops: dict[tuple[int, int], tuple] | None = None,
                    ) -> dict[int, torch.Tensor]:
    """The tensors, by id, that the graph of ``ys`` reaches: leaves (through their
    gradient accumulators, each node visited once; a ``y`` that is itself a leaf that
    requires grad, e.g. a parameter a layer hands on, too) and the tensors of ``stops``,
    at whose edges the search ends."""
    stops = stops or {}
    ys = list(ys)
    leaves = {id(y): y for y in ys if y.grad_fn is None and y.requires_grad}
    seen: dict[int, object] = {}  # the nodes themselves: an id stays theirs meanwhile
    todo = [(y.grad_fn, y.output_nr) for y in ys if y.grad_fn is not None]
    while todo:
        node, nr = todo.pop()
        stop = stops.get((id(node), nr))
        if stop is not None:
            leaves[id(stop[1])] = stop[1]
            continue
        if id(node) in seen:
            continue
        seen[id(node)] = node  # held: torch < 2.13 frees a node's Python object once
        # unused (and makes a new one at the next access), and its id goes to another
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            leaves[id(variable)] = variable
        todo += [(nxt, k) for nxt, k in node.next_functions if nxt is not None]
    return leaves


def _sync(devices: list[int]) -> None:
    for d in devices:
        torch.cuda.synchronize(d)


def _torch_order(input: object, args: tuple) -> object:
    """The input; refuses torch's positional form ``(functions, segments, input)``."""
    if args or isinstance(input, int):
        raise PebblesTypeError(
            f"checkpoint_sequential(functions, {input!r:.20}, ...) has {1 + len(args)} "
            f"positional arguments after functions; pebbles takes "
            f"checkpoint_sequential(functions, input, budget=... | memory=... | "
            f"segments=...): for torch's checkpoint_sequential(functions, s, input) write "
            f"checkpoint_sequential(functions, input, segments=s)")
    return input


#: torch.utils.checkpoint's keywords whose defaults pebbles.torch's checks stand for.
_TORCH_DEFAULTS = {"determinism_check": "default", "debug": False}


def _check_torch_options(options: dict[str, object]) -> None:
    """Refuse torch.utils.checkpoint keywords checkpoint_sequential does not honour."""
    for key, value in options.items():
        if key in _TORCH_DEFAULTS and value == _TORCH_DEFAULTS[key]:
            continue
        what = ("torch.utils.checkpoint's selective checkpointing; pebbles.torch stores "
                "whole layer outputs" if key == "context_fn" else
                f"torch.utils.checkpoint's, taken at its default "
                f"{_TORCH_DEFAULTS[key]!r} only" if key in _TORCH_DEFAULTS else
                "not an argument of checkpoint_sequential")
        raise PebblesTypeError(f"{key}={value!r:.60}: {what}; leave it out")


def _check_segments(segments: object, n: int) -> int:
    s = check_int("segments", segments, 1)
    if s > n:
        raise PebblesValueError(
            f"segments={s} is more than the n={n} layers; pass segments <= {n}")
    return s


#: How many profiles :func:`checkpoint_sequential` keeps (the most recently used).
PROFILES_KEPT = 16
_PROFILES: collections.OrderedDict[tuple, tuple[tuple, ChainCosts]] = collections.OrderedDict()


def _ref(obj: object) -> Callable[[], object]:
    """A weak reference to ``obj`` where it takes one (a bound method: to its object and
    function), else ``obj`` itself held (a builtin such as ``torch.relu``)."""
    try:
        return weakref.WeakMethod(obj) if inspect.ismethod(obj) else weakref.ref(obj)
    except TypeError:
        return lambda: obj


def _ident(f: object) -> object:
    """Who ``f`` is: its id, or for a bound method (a new object at each attribute
    access) the ids of its object and function."""
    return (id(f.__self__), id(f.__func__)) if inspect.ismethod(f) else id(f)


def _parts(layers: list) -> list:
    """The layers and every module inside them (of a bound method: inside its module):
    replacing any of them, e.g. ``net[1][1] = nn.GELU()``, changes the costs."""
    owners = [o for o in map(_owner, layers) if o is not None]
    return [*layers, *(m for o in owners for m in o.modules())]


def _profile_key(parts: list, xs: tuple[torch.Tensor, ...],
                 params: tuple[torch.Tensor, ...]) -> tuple:
    """What a profile depends on besides the parts' identity (:func:`_parts`): their
    types and training flags (dropout saves a mask only in training), the input's and
    the parameters' shapes, dtypes, devices and ``requires_grad`` (not their identity:
    ``params=`` may be computed anew each call) and the autocast state."""
    def spec(t: torch.Tensor) -> tuple:
        return tuple(t.shape), t.dtype, t.device, t.requires_grad
    kinds = sorted({t.device.type for t in (*xs, *params)})
    return (tuple((_ident(f), type(f), getattr(f, "training", None)) for f in parts),
            tuple(map(spec, xs)), tuple(map(spec, params)), _autocast_state(kinds))


def _profiled(layers: list, input: State, xs: tuple[torch.Tensor, ...],
              params: tuple[torch.Tensor, ...]) -> ChainCosts:
    """:func:`profile_layers` of the layers, measured on the first call and reused while
    the same layer objects, made of the same modules, take inputs of the same shapes
    (:data:`PROFILES_KEPT` kept; the layers are not kept alive by it)."""
    parts = _parts(layers)
    key = _profile_key(parts, xs, _chain_params(layers, params))
    hit = _PROFILES.get(key)
    if hit is not None and all((g := r()) is not None and _ident(g) == _ident(f)
                               for r, f in zip(hit[0], parts, strict=True)):
        _PROFILES.move_to_end(key)
        return hit[1]
    costs = profile_layers(layers, input, params=params)
    _PROFILES[key] = (tuple(map(_ref, parts)), costs)
    while len(_PROFILES) > PROFILES_KEPT:
        _PROFILES.popitem(last=False)
    return costs


def _costs_for(layers: list, input: State, xs: tuple[torch.Tensor, ...],
               params: tuple[torch.Tensor, ...], costs: ChainCosts | None) -> ChainCosts:
    """``costs`` checked against the layers, or measured (:func:`_profiled`)."""
    if costs is None:
        return _profiled(layers, input, xs, params)
    if not isinstance(costs, ChainCosts):
        raise PebblesTypeError(
            f"costs is {a_kind(costs)}; it must be a pebbles.ChainCosts of the "
            f"n={len(layers)} layers; build it with profile_layers(functions, input)")
    if costs.n != len(layers):
        raise PebblesValueError(
            f"costs is for n={costs.n} layers, but functions has n={len(layers)}; "
            f"build it with profile_layers(functions, input)")
    return costs


def _layers(functions: object) -> list:
    try:
        layers = list(functions)  # type: ignore[call-overload]
    except TypeError:
        hint = ("; a torch.compile'd nn.Sequential is one opaque module: compile each layer "
                "instead, or pass its ._orig_mod" if hasattr(functions, "_orig_mod") else
                "; for one layer pass [layer]" if callable(functions) else "")
        raise PebblesTypeError(
            f"functions={functions!r:.60} must be an nn.Sequential or a list of modules or "
            f"callables{hint}") from None
    if not layers:
        raise PebblesValueError(
            "functions is empty; pass an nn.Sequential or a list with at least one layer")
    for k, f in enumerate(layers):
        if not callable(f):
            raise PebblesTypeError(f"functions[{k}]={f!r:.60} is not callable")
    return layers


@_opaque
def checkpoint_sequential(functions: Sequence[Callable[..., State]], input: State,
                          *args: object, budget: int | None = None,
                          memory: float | None = None, segments: int | None = None,
                          costs: ChainCosts | None = None, levels: int = 100,
                          params: Iterable[torch.Tensor] = (),
                          preserve_rng_state: bool = True, tape: bool = True,
                          use_reentrant: bool | None = None, **torch_options: object) -> State:
    """Drop-in for ``torch.utils.checkpoint.checkpoint_sequential`` with a budget or a limit.

    Parameters
    ----------
    functions : nn.Sequential or list of modules / callables
        The layers, applied in order; each takes the previous output (a tensor,
        or a tuple passed as one argument) and returns the next.
    input : Tensor or tuple of Tensors
        Input of the first layer.
    *args
        None: PyTorch's positional order ``(functions, segments, input)`` raises a
        ``PebblesTypeError`` that names the edit (``segments=`` below).
    budget : int, optional
        Most layer outputs stored at once (the input excluded): optimal
        Treeverse, the fewest layer evaluations.
    segments : int, optional
        PyTorch's argument: the least-time schedule within the memory that
        PyTorch's split into ``segments`` holds (``segments - 1`` pieces of
        ``n // segments`` layers recomputed with their graphs, the last piece's
        graphs kept from the forward pass;
        :func:`pebbles.sequential_segments`), both measured by the
        simulator under ``costs`` (profiled by default, as for ``memory``): the
        heterogeneous optimum at that memory, or PyTorch's split itself where
        that is not slower in the model, or where the chain is too long for the
        optimum's tables (:func:`pebbles.hetero_optimal`'s size guard), so never
        slower than PyTorch's split and never more memory, in the model.
    memory : float, optional
        Most bytes held at once by stored layer outputs (the input excluded; a
        walk holds a layer's input and output) and, when ``costs.graph`` is
        known, by kept graphs and by the graph a backward step builds to
        replay its layer, and, when ``costs.grads`` and ``costs.cotangents``
        are known, by the parameter gradients the backward steps have made so
        far (all of them by the end: the limit must hold them) and the
        gradients of the layer outputs in use: the least-time schedule of the
        heterogeneous chain
        whose layers may keep their graph (:func:`pebbles.hetero_optimal`), from
        ``costs`` or, by default, from :func:`profile_layers` (``repeat = 3``
        extra forward passes without a graph and one with a graph; none when the
        call wants no gradient), run on the first call and reused while the same
        layer objects, made of the same modules, get inputs and parameters of the
        same shapes, dtypes and devices, in the same training mode and autocast
        state (the :data:`PROFILES_KEPT` most recent profiles are kept, holding no
        layer alive), so a training loop profiles once.
    costs : ChainCosts, optional
        With ``memory`` or ``segments`` (refused with ``budget``): measured costs
        to reuse instead of profiling (without ``graph``: the
        model in which graphs are never kept and replays are not counted;
        without ``grads`` or ``cotangents``: those gradients are not counted).
    levels : int
        Memory levels of the dynamic programme (``levels`` of
        :func:`pebbles.hetero_optimal`).
    params : iterable of Tensor
        Tensors the layers use besides the parameters of the ``nn.Module``
        layers and of the modules whose bound methods are layers (found
        automatically), e.g. those a plain function closes over: a
        list, a tuple or e.g. ``module.parameters()``.
    preserve_rng_state : bool
        Recompute every layer with the RNG state of its first run, so dropout
        draws the same mask (as ``torch.utils.checkpoint`` does).
    tape : bool
        Taping: when the schedule computes ``s_{i+1}`` from a stored ``s_i`` for
        the last time before backward step ``i`` and keeps both until then,
        run that step with a graph and use it for the backward step instead of
        running the layer once more -- provided every tensor the graph saves is
        the layer's input, its output, a parameter (frozen ones too) or a module
        buffer (``Linear`` + ``ReLU``, or ``BatchNorm`` in eval mode, for
        instance), so that the graph holds no memory the schedule does not
        hold anyway. Checked on each taped run; a layer that saves other
        tensors switches taping off for the rest of the call. With
        ``memory`` and ``costs.graph``, the schedule decides which layers keep
        their graph, costing ``graph[i]`` bytes; ``tape=False`` keeps none.
    use_reentrant : bool, optional
        Accepted for torch's signature (``True``, ``False`` or ``None``; another value
        raises ``PebblesTypeError``) and ignored: there is one implementation,
        which supports ``retain_graph=True`` and ``backward(inputs=...)`` (not
        ``create_graph=True``).
    **torch_options
        torch's ``determinism_check="default"`` and ``debug=False`` are accepted
        (pebbles checks what it replays itself); any other value, ``context_fn``
        (selective checkpointing) or an unknown keyword raises ``PebblesTypeError``.

    Returns
    -------
    Tensor or tuple of Tensors
        The last layer's output.

    Notes
    -----
    Only the layer outputs the chain hands on, and its own output, are
    differentiable. A tensor a layer keeps elsewhere (a forward hook capturing an
    activation for an auxiliary loss, a list) gets no gradient: the forward pass
    runs without a graph, and a run with one starts from a detached input. Where the
    forward pass kept that layer's graph (taping, ``memory=``), a loss that uses it
    makes the backward pass raise torch's "backward through the graph a second time"
    instead. Carry it in the outputs the layers hand on: a layer returns ``(h, aux +
    (h ** 2).sum())``, the layers after it hand ``aux`` on, and the loss takes it
    from the chain's output. (``torch.utils.checkpoint.checkpoint_sequential`` with
    ``use_reentrant=False`` gives a hook's activation its gradient.)

    Examples
    --------
    >>> import torch
    >>> from pebbles.torch import checkpoint_sequential
    >>> net = torch.nn.Sequential(*[torch.nn.Linear(8, 8) for _ in range(10)])
    >>> x = torch.randn(4, 8)
    >>> y = checkpoint_sequential(net, x, budget=3)
    >>> torch.allclose(y, net(x))
    True
    >>> y = checkpoint_sequential(net, x, segments=2)  # in the memory of PyTorch's split
    """
    layers = _layers(functions)
    n = len(layers)
    input = _torch_order(input, args)
    _check_torch_options(torch_options)
    tape, preserve_rng_state = check_bool("tape", tape), check_bool("preserve_rng_state",
                                                                    preserve_rng_state)
    if use_reentrant is not None:  # torch's default None too
        check_bool("use_reentrant", use_reentrant)
    levels = check_int("levels", levels, 1)
    xs, was_tuple = _as_tuple("input", input)
    params = _param_list(params)
    chain_params = _chain_params(layers, params)
    _makes_graph("input", xs, was_tuple, layers, chain_params)
    if sum(v is not None for v in (budget, memory, segments)) != 1:
        raise PebblesValueError(
            f"budget={budget!r}, memory={memory!r}, segments={segments!r}: pass exactly one "
            f"of budget (stored outputs), memory (bytes) and segments (PyTorch's)")
    if budget is not None:
        if costs is not None:
            raise PebblesValueError(
                f"costs={costs!r:.60} with budget={budget!r}: costs price the layers for "
                f"memory= or segments=; budget= counts stored outputs (Treeverse, no costs). "
                f"Pass memory=BYTES or segments=K with costs, or leave costs out")
        moves: Any = make_schedule("treeverse", n, budget, {}, unit="layers")
    else:
        segments = None if segments is None else _check_segments(segments, n)
        memory = None if memory is None else _check_bytes("memory", memory)
        if not _wants_grad(xs, chain_params):  # a plain pass: nothing to profile
            if costs is not None:
                _costs_for(layers, input, xs, params, costs)  # checked as with gradients
            moves = _schedule("store-all", n)
        else:
            costs = _costs_for(layers, input, xs, params, costs)
            moves = (_solve_layers(costs, memory, levels, tape) if segments is None else
                     _segments_program(_fields(costs, tape), segments, levels, bool(tape)))
    chain = _Chain(lambda i, x: layers[i](x), (), chain_params, _program(moves, n), spec=None,
                   rng=preserve_rng_state, tape=tape, per_step=True,
                   devices=_layer_devices(xs, chain_params, layers),
                   owners=_owners(layers))
    return _run(chain, xs, was_tuple)
