"""pebbles.torch: gradients against plain autograd, step counts against the simulator,
stored states against the schedule's peak (weak references), RNG, errors."""

from __future__ import annotations

import copy
import functools
import gc
import importlib
import importlib.util
import math
import re
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from taping import taped_steps
from torch.autograd import forward_ad

import pebbles
from pebbles.torch import (
    checkpoint_sequential,
    checkpointed_loop,
    checkpointed_while_loop,
    profile_layers,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
F64 = torch.float64


def lorenz(i, x, p):
    """One explicit Euler step of the Lorenz system (sigma, rho, beta = p)."""
    s, r, b = p.unbind()
    f = torch.stack((s * (x[1] - x[0]), x[0] * (r - x[2]) - x[1], x[0] * x[1] - b * x[2]))
    return x + 0.001 * f


def plain_loop(step, x0, n, *params):
    x = x0
    for i in range(n):
        x = step(i, x, *params)
    return x


def grads_of(fn, tensors):
    for t in tensors:
        t.grad = None
    out = fn()
    loss = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
    loss.backward()
    return [t.grad.clone() for t in tensors]


def rng_states(device):
    """The CPU generator's state and, on CUDA, the current device's."""
    return [torch.get_rng_state(), *([torch.cuda.get_rng_state()] if device == "cuda" else [])]


def assert_close(got, want, tol=1e-12):
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, rtol=tol, atol=tol), (g, w)


class Counted:
    """Wraps a step: calls per step index, with and without grad; weak references to
    every state it returned and the most of them alive when a call starts."""

    def __init__(self, step, n):
        self.step = step
        self.nograd = np.zeros(n, dtype=int)
        self.grad = np.zeros(n, dtype=int)
        self.refs: list = []
        self.most_alive = 0

    def alive(self):
        self.refs = [r for r in self.refs if r() is not None]
        return len(self.refs)

    def __call__(self, i, x, *params):
        self.most_alive = max(self.most_alive, self.alive())
        (self.grad if torch.is_grad_enabled() else self.nograd)[i] += 1
        y = self.step(i, x, *params)
        for t in (y if isinstance(y, tuple) else (y,)):
            self.refs.append(weakref.ref(t))
        return y


def expected_nograd_calls(sched):
    """Step calls of the forward and replayed walks, from the moves: one per step taken
    (pebbles.expand), plus one of step n-1 when the stream never pebbles cell n (s_n is
    computed once more to be returned)."""
    n = sched.n
    calls = np.zeros(n, dtype=int)
    steps = (pebbles.MoveKind.PLACE, pebbles.MoveKind.MOVE, pebbles.MoveKind.TAPE)
    for kind, a, _ in pebbles.expand(sched):  # in the schedule's game: in place, moves
        if kind in steps:
            calls[a - 1] += 1
    if pebbles.lower(sched).forward_steps > sched.simulate().forward_steps:
        calls[n - 1] += 1
    return calls


@pytest.mark.parametrize("device", DEVICES)
def test_lorenz_1e4_steps_matches_plain_autograd(device):
    n, budget = 10_000, 30
    p = torch.tensor([10.0, 28.0, 8 / 3], dtype=F64, device=device, requires_grad=True)
    x0 = torch.tensor([1.0, 0.0, 0.0], dtype=F64, device=device, requires_grad=True)
    want = grads_of(lambda: plain_loop(lorenz, x0, n, p), [x0, p])
    step = Counted(lorenz, n)
    got = grads_of(lambda: checkpointed_loop(step, x0, n, p, budget=budget), [x0, p])
    assert_close(got, want)
    sched = pebbles.schedule("treeverse", n, budget=budget)
    taped = np.zeros(n, dtype=int)
    # Lorenz saves only its input and 8-byte scalars
    taped[list(taped_steps(sched, sched.n, seed_taped=True))] = 1
    assert 0.5 * n < taped.sum() < n
    assert np.array_equal(step.nograd, expected_nograd_calls(sched) - taped)
    assert np.array_equal(step.grad, np.ones(n, dtype=int))  # one graph per backward step


@pytest.mark.parametrize("method,kw", [
    ("treeverse", {"budget": 1}), ("treeverse", {"budget": 2}), ("treeverse", {"budget": 4}),
    ("treeverse", {"budget": 4, "inplace": True}), ("store-all", {}),
    ("recompute-all", {}), ("periodic", {"every": 5}), ("treeverse-paper", {"delta": 3}),
])
def test_step_calls_and_stored_states_follow_the_schedule(method, kw):
    n = 2 if kw.get("budget") == 1 else 23
    w = torch.linspace(0.5, 1.5, 4, dtype=F64, requires_grad=True)

    def step(i, x, w):
        return torch.sin(x * w) + 0.1 * i

    x0 = torch.linspace(-1, 1, 4, dtype=F64, requires_grad=True)
    want = grads_of(lambda: plain_loop(step, x0, n, w), [x0, w])
    counted = Counted(step, n)

    def run():
        out = checkpointed_loop(counted, x0, n, w, method=method, tape=False, **kw)
        counted.refs.append(weakref.ref(out))
        return out.sum()  # SumBackward keeps no reference to out

    got = grads_of(run, [x0, w])
    assert_close(got, want)
    sched = pebbles.schedule(method, n, **kw)
    assert np.array_equal(counted.nograd, expected_nograd_calls(sched))
    assert np.array_equal(counted.grad, np.ones(n, dtype=int))
    if method == "treeverse":  # the optimum, plus the one run that returns s_n
        game = "inplace" if kw.get("inplace") else "checkpoint"
        assert counted.nograd.sum() == pebbles.min_forward_steps(n, kw["budget"], game) + 1
    assert counted.most_alive <= sched.simulate().peak_states
    assert counted.alive() == 0  # every stored state was freed by the backward pass


def relu_step(i, x, w):
    return torch.relu(x @ w)


def relu_loop(n):
    """``w``, ``x0`` and plain autograd's gradients of n relu steps' sum w.r.t. both."""
    w = (torch.eye(5, dtype=F64) + 0.1).requires_grad_()
    x0 = torch.rand(3, 5, dtype=F64, requires_grad=True)
    return w, x0, grads_of(lambda: plain_loop(relu_step, x0, n, w), [x0, w])


@pytest.mark.parametrize("method,kw", [
    ("treeverse", {"budget": 2}), ("treeverse", {"budget": 5}), ("store-all", {}),
    ("recompute-all", {}), ("periodic", {"every": 4}),
])
def test_taped_runs_replace_replays(method, kw):
    """relu(x @ w) saves only its input, w and its output: taping costs no memory."""
    n = 30
    w, x0, want = relu_loop(n)
    counted = Counted(relu_step, n)

    def run():
        out = checkpointed_loop(counted, x0, n, w, method=method, **kw)
        counted.refs.append(weakref.ref(out))
        return out.sum()

    assert_close(grads_of(run, [x0, w]), want)
    sched = pebbles.schedule(method, n, **kw)
    taped = np.zeros(n, dtype=int)
    taped[list(taped_steps(sched, sched.n, seed_taped=True))] = 1
    assert taped.sum() > 0
    assert np.array_equal(counted.nograd, expected_nograd_calls(sched) - taped)
    assert np.array_equal(counted.grad, np.ones(n, dtype=int))
    assert counted.most_alive <= sched.simulate().peak_states
    assert counted.alive() == 0


def test_inside_disable_saved_tensors_hooks_taping_is_off_and_profiling_refused():
    """Plain autograd works inside disable_saved_tensors_hooks: so does a budget= call,
    untaped (every step replayed at its backward step); memory= needs the hooks to measure
    a step's graph and is refused naming the options that need none."""
    n, sched = 30, pebbles.schedule("treeverse", 30, budget=2)
    w, x0, want = relu_loop(n)
    counted, step = Counted(relu_step, n), relu_step
    with torch.autograd.graph.disable_saved_tensors_hooks("no hooks here"):
        got = grads_of(lambda: checkpointed_loop(counted, x0, n, w, budget=2), [x0, w])
        assert_close(got, want)
        assert np.array_equal(counted.nograd, expected_nograd_calls(sched))
        assert np.array_equal(counted.grad, np.ones(n, dtype=int))
        with pytest.raises(pebbles.PebblesNotImplementedError, match="graph_bytes=.*budget="):
            checkpointed_loop(step, x0, n, w, memory=6 * x0.nbytes)
        got = grads_of(lambda: checkpointed_loop(step, x0, n, w, memory=6 * x0.nbytes,
                                                 graph_bytes=0), [x0, w])
        assert_close(got, want)


@pytest.mark.parametrize("device", DEVICES)
def test_tuple_state_with_integer_component(device):
    def step(i, state, k, c):
        x, v, count = state
        return x + 0.01 * v, v - 0.01 * (k * x + c * v * v), count + 1

    k = torch.tensor(2.0, dtype=F64, device=device, requires_grad=True)
    c = torch.tensor(0.3, dtype=F64, device=device, requires_grad=True)
    x0 = torch.tensor([1.0, 0.5], dtype=F64, device=device, requires_grad=True)
    v0 = torch.tensor([0.0, 0.2], dtype=F64, device=device, requires_grad=True)
    s0 = (x0, v0, torch.tensor(0, device=device))

    def ours():
        out = checkpointed_loop(step, s0, 300, k, c, budget=5)
        assert int(out[2]) == 300 and not out[2].requires_grad
        return out[:2]

    want = grads_of(lambda: plain_loop(step, s0, 300, k, c)[:2], [x0, v0, k, c])
    assert_close(grads_of(ours, [x0, v0, k, c]), want)


class Cell(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 6).double()
        self.scale = torch.nn.Parameter(torch.tensor(0.7, dtype=F64))

    def forward(self, i, x):
        return x + 0.1 * self.scale * torch.tanh(self.lin(x))


@pytest.mark.parametrize("device", DEVICES)
def test_module_step_gets_parameter_gradients(device):
    torch.manual_seed(0)
    cell = Cell().to(device)
    x0 = torch.randn(3, 6, dtype=F64, device=device, requires_grad=True)
    tensors = [x0, *cell.parameters()]
    want = grads_of(lambda: plain_loop(cell, x0, 60), tensors)
    assert_close(grads_of(lambda: checkpointed_loop(cell, x0, 60, budget=3), tensors), want)
    # the same parameters passed explicitly to a plain function
    fn = lambda i, x, s, w, b: x + 0.1 * s * torch.tanh(x @ w.T + b)  # noqa: E731
    got = grads_of(lambda: checkpointed_loop(fn, x0, 60, *cell.parameters(), budget=3), tensors)
    assert_close(got, want)


def unequal_chain(n_layers=50, dropout=0.0):
    torch.manual_seed(1)
    widths = [8 + (7 * k) % 23 for k in range(n_layers + 1)]
    layers = []
    for k in range(n_layers):
        layers.append(torch.nn.Sequential(
            torch.nn.Linear(widths[k], widths[k + 1]).double(), torch.nn.Tanh(),
            *([torch.nn.Dropout(dropout)] if dropout else [])))
    return torch.nn.Sequential(*layers), widths


class Watched(torch.nn.Module):
    """A layer that records weak references to its outputs (in the shared ``log``) and the
    most bytes of them alive when it is called."""

    def __init__(self, layer, log):
        super().__init__()
        self.layer, self.log = layer, log

    def forward(self, x):
        log = self.log
        log["refs"] = [r for r in log["refs"] if r() is not None]
        log["most"] = max(log["most"], sum(r().numel() * r().element_size() for r in log["refs"]))
        y = self.layer(x)
        log["refs"].append(weakref.ref(y))
        return y


@pytest.mark.parametrize("device", DEVICES)
def test_50_unequal_layers_budget_and_memory(device):
    net, widths = unequal_chain()
    net.to(device)
    x = torch.randn(5, widths[0], dtype=F64, device=device, requires_grad=True)
    tensors = [x, *net.parameters()]
    want = grads_of(lambda: net(x), tensors)
    assert_close(grads_of(lambda: checkpoint_sequential(net, x, budget=4), tensors), want)
    sizes = np.array([5 * w * 8 for w in widths], dtype=float)
    costs = pebbles.ChainCosts(np.array(widths[1:], float), np.ones(50), sizes)
    memory = 10 * sizes.mean()
    log = {"refs": [], "most": 0}
    watched = [Watched(layer, log) for layer in net]

    def ours():
        out = checkpoint_sequential(watched, x, memory=memory, costs=costs)
        # the output is held by the caller, not the adapter: drop it from the count
        log["refs"] = [r for r in log["refs"] if r() is not out]
        return out

    assert_close(grads_of(ours, tensors), want)
    sched = pebbles._chain.hetero_optimal(costs, memory)
    assert 0 < log["most"] <= pebbles.simulate(sched, 50, costs=costs).peak_bytes <= memory
    # profiling path: measured costs (parameter gradients counted), same gradients
    limit = pebbles._chain.hetero_min_memory(profile_layers(net, x)) + memory
    assert_close(grads_of(lambda: checkpoint_sequential(net, x, memory=limit), tensors), want)


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_masks_survive_recomputation(device):
    net, widths = unequal_chain(12, dropout=0.3)
    net.to(device)
    x = torch.randn(4, widths[0], dtype=F64, device=device, requires_grad=True)
    tensors = [x, *net.parameters()]
    limit = pebbles._chain.hetero_min_memory(profile_layers(net, x)) + 2 * 4 * 30 * 8
    for kw in ({"budget": 2}, {"memory": limit}):
        torch.manual_seed(5)
        want = grads_of(lambda: net(x), tensors)
        after_plain = rng_states(device)
        torch.manual_seed(5)
        assert_close(grads_of(lambda kw=kw: checkpoint_sequential(net, x, **kw), tensors), want)
        assert_equal(rng_states(device), after_plain)


def test_profile_layers_measures_output_bytes():
    net, widths = unequal_chain(6)
    x = torch.randn(3, widths[0], dtype=F64)
    state = torch.get_rng_state()
    costs = profile_layers(net, x)
    assert costs.sizes.tolist() == [3 * w * 8 for w in widths]
    # each layer input's gradient; none for an input that does not require grad
    assert costs.cotangents.tolist() == [0.0, *costs.sizes[1:-1].tolist()]
    assert np.all(costs.forward > 0) and torch.equal(torch.get_rng_state(), state)
    counted = profile_layers([lambda s: (s[0] * 2, s[1] + 1)] * 2,
                             (x.requires_grad_(), torch.zeros(5, dtype=torch.int64)))
    assert counted.cotangents.tolist() == [x.nbytes] * 2  # integer parts get no gradient


def test_tensors_not_passed_are_reported():
    w = torch.tensor(0.5, requires_grad=True)
    with pytest.raises(pebbles.PebblesValueError, match="requires grad but was not passed"):
        checkpointed_loop(lambda i, x: w * x, torch.ones(2, requires_grad=True), 5,
                          budget=2).sum().backward()
    x = torch.ones(2, requires_grad=True)
    out = checkpoint_sequential([lambda x: w * x, torch.nn.Tanh()], x, budget=1, params=[w])
    out.sum().backward()
    assert torch.allclose(w.grad, (1 - torch.tanh(torch.tensor(0.5)) ** 2) * 2)


def test_params_may_be_any_iterable_such_as_module_parameters():
    """A generator (``module.parameters()``) is read once: its tensors get gradients and
    profile_layers counts their gradient bytes, as for a list."""
    lin = torch.nn.Linear(4, 4).double()
    layers = [lambda x: lin(x), torch.tanh]
    x = torch.randn(3, 4, dtype=F64)
    listed = profile_layers(layers, x, params=list(lin.parameters()))
    assert listed.grads.tolist() == [(16 + 4) * 8, 0.0]
    assert profile_layers(layers, x, params=lin.parameters()).grads.tolist() == \
        listed.grads.tolist()
    want = grads_of(lambda: torch.tanh(lin(x)), list(lin.parameters()))
    for kw in ({"budget": 1}, {"memory": 1e6, "costs": listed}):
        got = grads_of(lambda kw=kw: checkpoint_sequential(layers, x, params=lin.parameters(),
                                                           **kw), list(lin.parameters()))
        assert_close(got, want)


def test_layer_backward_steps_differentiate_only_what_their_graph_reaches(monkeypatch):
    """checkpoint_sequential: each torch.autograd.grad call asks for the gradients of the
    layer's input and of the parameters its graph reaches (Linear: weight and bias), not
    of every parameter of the chain; a layer reusing another layer's module gets that
    module's gradient all the same."""
    net, widths = unequal_chain(12)
    assert widths[0] <= widths[-1]
    layers = [*net, lambda h: net[0](h[:, :widths[0]])]  # the first layer's module again
    x = torch.randn(3, widths[0], dtype=F64, requires_grad=True)
    tensors = [x, *net.parameters()]
    want = grads_of(lambda: functools.reduce(lambda h, f: f(h), layers, x), tensors)
    asked = []
    real = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad",
                        lambda out, inputs, *a, **k: asked.append(len(inputs)) or
                        real(out, inputs, *a, **k))
    got = grads_of(lambda: checkpoint_sequential(layers, x, budget=3), tensors)
    monkeypatch.undo()
    assert_close(got, want)
    assert len(asked) == len(layers) and max(asked) == 3  # input, weight, bias


def test_without_grad_runs_each_step_once():
    step = Counted(lambda i, x: 2 * x, 10)
    with torch.no_grad():
        out = checkpointed_loop(step, torch.ones(2, requires_grad=True), 10, budget=2)
    assert out.tolist() == [1024.0, 1024.0] and step.nograd.sum() == 10


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_a_compiled_sequential_is_refused_naming_the_fix():
    """torch.compile(net) is one module, not a list of layers (PyTorch's own
    checkpoint_sequential fails on it too): the error says how to compile the layers."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh())
    with pytest.raises(pebbles.PebblesTypeError, match="compile each layer instead, or pass "
                                                       "its ._orig_mod"):
        checkpoint_sequential(torch.compile(net), torch.ones(2, 3), budget=2)


def test_clear_errors():
    x0 = torch.ones(3, requires_grad=True)
    with pytest.raises(pebbles.InfeasibleBudgetError, match="=2 or more"):
        checkpointed_loop(lambda i, x: x, x0, 10, budget=1)
    with pytest.raises(pebbles.PebblesValueError, match=r"shape, dtype.*\(4,\)"):
        checkpointed_loop(lambda i, x: torch.ones(4), x0, 10, budget=3)
    with pytest.raises(pebbles.PebblesValueError, match="float32"):
        checkpointed_loop(lambda i, x: x.double(), x0, 10, budget=3)
    with pytest.raises(pebbles.PebblesValueError, match="same form"):
        checkpointed_loop(lambda i, x: (x, x), x0, 10, budget=3)
    with pytest.raises(pebbles.PebblesTypeError, match="params"):
        checkpointed_loop(lambda i, x, a: x, x0, 10, 3.0, budget=3)
    with pytest.raises(pebbles.PebblesValueError, match="functions is empty"):
        checkpoint_sequential(torch.nn.Sequential(), x0, budget=2)
    with pytest.raises(pebbles.PebblesTypeError, match=r"for one layer pass \[layer\]"):
        checkpoint_sequential(torch.nn.Linear(3, 3), x0, budget=2)
    net = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(6)])
    with pytest.raises(pebbles.PebblesValueError, match="exactly one of budget"):
        checkpoint_sequential(net, x0, budget=2, memory=100)
    with pytest.raises(pebbles.PebblesValueError, match="exactly one of budget"):
        checkpoint_sequential(net, x0)
    # backward step 0: its replayed output, all parameter gradients, the cotangents of
    # its output and its input
    need = 3 * 4 + 6 * (3 * 3 + 3) * 4 + 2 * 3 * 4
    assert pebbles._chain.hetero_min_memory(profile_layers(net, x0)) == need
    with pytest.raises(pebbles.PebblesValueError, match=f"gradients.*pass memory >= {need}"):
        checkpoint_sequential(net, x0, memory=need - 1)
    with pytest.raises(pebbles.InfeasibleBudgetError):
        checkpoint_sequential(net, x0, budget=1)


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "pebbles.torch")
    with pytest.raises(ImportError, match=r'pip install "pebble-games\[torch\]"'):
        importlib.import_module("pebbles.torch")


def test_core_does_not_import_torch():
    code = "import sys, pebbles; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# -- kept graphs: the schedule runs some steps with their graph and never replays them -------
def kept_loop_schedule(n, state, graph, memory):
    """The moves checkpointed_loop(memory=...) plays: the uniform chain with kept graphs."""
    costs = pebbles.ChainCosts(np.ones(n), np.full(n, 2.0), np.full(n + 1, float(state)),
                               graph=np.full(n, float(graph)))
    return list(pebbles._chain.hetero_optimal(costs, memory)), costs


def tanh_loop():
    """``x + h tanh(x w + b)``, 40 steps of a 3 x 4 state: (n, step, x0, w, b). Its graph
    saves tanh's output, one state more per kept graph."""
    w = (torch.eye(4, dtype=F64) + 0.1).requires_grad_()
    b = torch.linspace(-0.2, 0.2, 4, dtype=F64, requires_grad=True)

    def step(i, x, w, b):
        return x + 0.1 * torch.tanh(x @ w + b)

    return 40, step, torch.linspace(-1, 1, 12, dtype=F64).reshape(3, 4).requires_grad_(), w, b


@pytest.mark.parametrize("states", [3, 5, 9, 30, 90])
def test_kept_graph_loop_calls_and_memory_follow_the_schedule(states):
    """x + h tanh(x w + b) saves tanh's output (one state more per kept graph)."""
    n, step, x0, w, b = tanh_loop()
    size = 12 * 8
    want = grads_of(lambda: plain_loop(step, x0, n, w, b), [x0, w, b])
    counted = Counted(step, n)

    def run():
        out = checkpointed_loop(counted, x0, n, w, b, memory=states * size)
        counted.refs.append(weakref.ref(out))
        return out.sum()

    assert_close(grads_of(run, [x0, w, b]), want)
    moves, costs = kept_loop_schedule(n, size, size, states * size)
    r = pebbles.simulate(moves, n, costs=costs)
    extra = pebbles.lower(moves, n).forward_steps - r.forward_steps  # s_n for the seed
    assert counted.grad[0] == 2 and counted.grad[1:].tolist() == [1] * (n - 1)  # + the probe
    assert counted.nograd.sum() == r.forward_steps - r.taped + extra
    assert counted.nograd.sum() + counted.grad.sum() - 1 == (
        r.forward_steps + r.backward_steps - r.taped + extra)
    assert r.taped > 0 and r.peak_bytes <= states * size
    assert counted.most_alive * size <= r.peak_bytes
    assert counted.alive() == 0
    if states >= 2 * n:  # room for every graph: each step runs once
        assert counted.nograd.sum() == 0


@pytest.mark.parametrize("states", [9, 30, 90])
def test_consecutive_kept_steps_go_back_in_one_autograd_pass(states, monkeypatch):
    """Kept graphs that follow one another form one graph: their backward steps are one
    torch.autograd.grad call, with the gradients of plain autograd."""
    n, step, x0, w, b = tanh_loop()
    want = grads_of(lambda: plain_loop(step, x0, n, w, b), [x0, w, b])
    calls = []
    real = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = grads_of(lambda: checkpointed_loop(step, x0, n, w, b, memory=states * 96).sum(),
                   [x0, w, b])
    monkeypatch.undo()
    assert_close(got, want)
    moves, costs = kept_loop_schedule(n, 96, 96, states * 96)
    prog = pebbles.lower(moves, n)
    ops = prog.ops.tolist()
    tape = {row[3] for row in ops if row[0] == pebbles.OP_TAPE}
    # a backward step joins the previous pass when it follows it (frees between allowed)
    # and both steps were kept, the lower one the last step kept before the upper one
    order = [row[3] for row in ops if row[0] == pebbles.OP_TAPE]
    after = {order[k + 1]: order[k] for k in range(len(order) - 1)}
    passes, last = 0, None
    for row in ops:
        if row[0] == pebbles.OP_PAINT:
            i = row[3]
            joins = last is not None and i == last - 1 and {i, last} <= tape and \
                after.get(last) == i
            passes += not joins
            last = i
        elif row[0] != pebbles.OP_FREE:
            last = None
    assert len(calls) == passes < n
    if states >= 2 * n:  # every step kept: one pass
        assert passes == 1


def noisy_step(i, x, w):
    """A stochastic step: its replays must draw the noise of its first run."""
    return torch.tanh(x * w) + 0.1 * torch.randn_like(x)


@pytest.mark.parametrize("method,kw", [
    ("treeverse", {"budget": 2}), ("treeverse", {"budget": 4, "inplace": True}),
    ("bennett-gradient", {"k": 3}),  # replays steps before it reaches s_n
])
def test_stochastic_loop_keeps_one_rng_state_per_stored_state(method, kw, monkeypatch):
    """preserve_rng_state=True: gradients and the RNG's final state as plain autograd's,
    with the RNG states held going with the stored states (at most one per slot), not
    one per step."""
    n = 23
    w = torch.linspace(0.5, 1.5, 4, dtype=F64, requires_grad=True)
    x0 = torch.linspace(-1, 1, 4, dtype=F64, requires_grad=True)
    torch.manual_seed(7)
    want = grads_of(lambda: plain_loop(noisy_step, x0, n, w), [x0, w])
    after_plain = torch.get_rng_state()
    states = []
    real = torch.get_rng_state
    monkeypatch.setattr(torch, "get_rng_state", lambda: states.append(weakref.ref(
        t := real())) or t)
    alive = []

    def run():
        out = checkpointed_loop(noisy_step, x0, n, w, method=method, preserve_rng_state=True,
                                **kw)
        alive.append(sum(r() is not None for r in states))
        return out

    torch.manual_seed(7)
    got = grads_of(run, [x0, w])
    monkeypatch.undo()
    assert_close(got, want)
    assert torch.equal(torch.get_rng_state(), after_plain)
    slots = pebbles.schedule(method, n, **kw).lower(frees=True).nslots
    assert 1 <= alive[0] <= slots < n
    assert sum(r() is not None for r in states) == 0  # none outlives the backward pass


def test_replay_that_runs_on_past_the_first_sweep_uses_both_generators():
    """A run from a stored state that replays steps and goes on to steps never run (the
    RNG: the stored state's, then the global generator's), through the slot program."""
    from pebbles._moves import forward, paint, place, remove

    n = 4
    moves = [place(1), place(2), remove(2), forward(1, 3), place(4), paint(3), remove(4),
             place(2), paint(2), remove(3), remove(2), paint(1), remove(1), paint(0)]
    prog = pebbles.lower(moves, n, frees=True)
    assert [1, 2] in prog.ops[:, 3:].tolist()  # steps 1 (a replay) and 2 (a first run)
    w = torch.linspace(0.5, 1.5, 4, dtype=F64, requires_grad=True)
    x0 = torch.linspace(-1, 1, 4, dtype=F64, requires_grad=True)
    torch.manual_seed(3)
    want = grads_of(lambda: plain_loop(noisy_step, x0, n, w), [x0, w])
    after_plain = torch.get_rng_state()

    def run():
        chain = pebbles.torch._Chain(noisy_step, (w,), (), prog, spec=[((4,), F64, x0.device)],
                                     rng=True, devices=[], tape=False)
        return pebbles.torch._run(chain, (x0,), None)

    torch.manual_seed(3)
    assert_close(grads_of(run, [x0, w]), want)
    assert torch.equal(torch.get_rng_state(), after_plain)


def test_kept_graph_layers_under_a_memory_limit():
    """Linear + Tanh + Dropout layers keep a graph of their own; the schedule pays for it."""
    net, widths = unequal_chain(20, dropout=0.2)
    x = torch.randn(4, widths[0], dtype=F64, requires_grad=True)
    tensors = [x, *net.parameters()]
    costs = profile_layers(net, x)
    assert np.all(costs.graph > 0)  # Dropout saves its mask
    room = (costs.sizes.sum() + costs.graph.sum()) * 2 + costs.grads.sum()
    for memory in (pebbles._chain.hetero_min_memory(costs) + 5 * 4 * 30 * 8, room):
        torch.manual_seed(3)
        want = grads_of(lambda: net(x), tensors)
        torch.manual_seed(3)
        got = grads_of(lambda m=memory: checkpoint_sequential(net, x, memory=m, costs=costs),
                       tensors)
        assert_close(got, want)
    ops = pebbles.torch._solve_costs(costs, memory, 100, True).ops
    assert (ops[:, 0] == pebbles._lowering.OP_TAPE).sum() == 20  # room for all: all kept


def test_profile_layers_measures_graph_bytes():
    layer = torch.nn.Sequential(torch.nn.Linear(4, 6).double(), torch.nn.Tanh(),
                                torch.nn.Linear(6, 5).double())
    x = torch.randn(3, 4, dtype=F64)
    costs = profile_layers([layer, torch.nn.ReLU()], x)
    assert costs.graph.tolist() == [3 * 6 * 8, 0.0]  # tanh's output; relu saves its output
    assert costs.sizes.tolist() == [3 * 4 * 8, 3 * 5 * 8, 3 * 5 * 8]
    with pytest.raises(pebbles.PebblesValueError, match="backward_ratio=0.5"):
        profile_layers([layer], x, backward_ratio=0.5)
    with pytest.raises(pebbles.PebblesValueError, match="repeat=0"):
        profile_layers([layer], x, repeat=0)
    runs = []
    profile_layers([lambda h: runs.append(1) or h * 2], x, repeat=4)  # timed: the least of 4
    assert len(runs) == 1 + 4  # once with a graph, four times without
    with pytest.raises(pebbles.PebblesValueError, match="memory=.*budget=2"):
        checkpointed_loop(lambda i, x: x, x, 3, memory=10**6, budget=2)
    y = torch.ones(3, dtype=F64, requires_grad=True)  # tape=False: states only, no graph kept
    checkpointed_loop(lambda i, x: torch.tanh(x), y, 6, memory=2 * 24, tape=False).sum().backward()
    assert torch.allclose(y.grad, grads_of(lambda: plain_loop(lambda i, x: torch.tanh(x), y, 6),
                                           [y])[0])
    with pytest.raises(pebbles.PebblesValueError, match="memory=1 bytes cannot finish"):
        checkpointed_loop(lambda i, x: x * 2, x.requires_grad_(), 3, memory=1, graph_bytes=0)


def test_backward_step_lets_the_output_go_before_its_vjp():
    """The VJP of a backward step does not hold the step's output (one state less)."""
    refs, alive = [], []

    class Spy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            alive.append(refs[-1]() is not None)
            return g

    def step(i, x, w):
        y = Spy.apply(x) * w
        refs.append(weakref.ref(y))
        return y

    w = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    x0 = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    checkpointed_loop(step, x0, 12, w, budget=3).sum().backward()
    assert len(alive) == 12 and not any(alive)
    ref = torch.autograd.grad(plain_loop(step, x0, 12, w).sum(), (x0, w))
    assert torch.equal(x0.grad, ref[0]) and torch.equal(w.grad, ref[1])


def test_profile_layers_assigns_each_gradient_to_the_last_layer_using_it():
    """grads[i]: bytes of the gradients backward step i makes first (painting runs from
    the last layer down), found in each layer's graph."""
    first, tied = torch.nn.Linear(4, 4).double(), torch.nn.Linear(4, 4).double()
    frozen = torch.nn.Linear(4, 4).double().requires_grad_(False)
    scale = torch.ones(4, dtype=F64, requires_grad=True)  # closed over by two layers
    layers = [first, lambda x: x * scale, tied, frozen, lambda x: tied(x) * scale, torch.tanh]
    x = torch.randn(2, 4, dtype=F64)
    costs = profile_layers(layers, x, params=[scale])
    linear = (4 * 4 + 4) * 8
    assert costs.grads.tolist() == [linear, 0.0, 0.0, 0.0, linear + 4 * 8, 0.0]
    tensors = [first.weight, tied.weight, tied.bias, scale]
    want = grads_of(lambda: functools.reduce(lambda h, f: f(h), layers, x), tensors)
    limit = pebbles._chain.hetero_min_memory(costs)
    got = grads_of(lambda: checkpoint_sequential(layers, x, memory=limit, costs=costs,
                                                 params=[scale]), tensors)
    assert_close(got, want)


def small_net(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    layers = []
    for w_in, w_out in ((16, 24), (24, 8), (8, 16), (16, 16), (16, 4)):
        layers += [torch.nn.Linear(w_in, w_out), torch.nn.Tanh()]
        if dropout:
            layers.append(torch.nn.Dropout(dropout))
    return torch.nn.Sequential(*layers)


def mixed_step(i, x, w):
    """float32 state; under autocast the matmul runs in bfloat16."""
    return x + 0.1 * torch.tanh(x @ w)


@pytest.mark.parametrize("forward_amp, backward_amp", [(True, False), (True, True),
                                                        (False, True)])
def test_replays_run_under_the_forward_pass_autocast(forward_amp, backward_amp):
    """Replays in the backward pass repeat the forward pass's casts, whatever autocast
    state the backward pass runs under (torch.utils.checkpoint does the same)."""
    net = small_net()
    x = torch.randn(6, 16, requires_grad=True)
    w = torch.randn(8, 8) / 3
    w.requires_grad_(True)
    x0 = torch.randn(3, 8, requires_grad=True)

    def grads(run, tensors, cache=True):
        for t in tensors:
            t.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=forward_amp,
                            cache_enabled=cache):
            out = run()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=backward_amp):
            out.float().sum().backward()
        return [t.grad.clone() for t in tensors]

    chain = [x, *net.parameters()]
    want = grads(lambda: net(x), chain)
    got = grads(lambda: checkpoint_sequential(net, x, budget=2, tape=False), chain)
    assert all(torch.equal(g, w_) for g, w_ in zip(got, want, strict=True))
    # without autocast's cache, plain autograd casts w at each step as the replays do
    # (with it, its one cast of w sums the 30 steps' gradients in bfloat16)
    loop = [x0, w]
    want = grads(lambda: plain_loop(mixed_step, x0, 30, w), loop, cache=False)
    got = grads(lambda: checkpointed_loop(mixed_step, x0, 30, w, budget=3), loop, cache=False)
    assert_close(got, want, tol=1e-5)


def test_retain_graph_allows_a_second_backward_pass():
    """retain_graph=True: a second backward pass stores the states again from s_0 (the
    first pass freed them) and makes the same step calls; without it, torch's error."""
    a = torch.tensor(0.9, dtype=F64, requires_grad=True)
    x0 = torch.linspace(0, 1, 4, dtype=F64, requires_grad=True)
    step = Counted(lambda i, x, a: x + 0.1 * torch.sin(a * x), 40)
    out = checkpointed_loop(step, x0, 40, a, budget=3)
    out.sum().backward(retain_graph=True)
    first = step.nograd + step.grad
    got = [x0.grad.clone(), a.grad.clone()]
    x0.grad = a.grad = None
    out.sum().backward()
    assert np.array_equal(step.nograd + step.grad - first, first)
    assert torch.equal(x0.grad, got[0]) and torch.equal(a.grad, got[1])  # bit for bit
    x0.grad = a.grad = None
    plain_loop(step.step, x0, 40, a).sum().backward()
    assert_close(got, [x0.grad, a.grad])
    out = checkpointed_loop(step, x0, 40, a, budget=3)
    out.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        out.sum().backward()


def test_retain_graph_second_pass_keeps_the_dropout_masks():
    net = small_net(dropout=0.3).double()
    x = torch.randn(4, 16, dtype=F64, requires_grad=True)
    tensors = [x, *net.parameters()]

    def twice(run):
        for t in tensors:
            t.grad = None
        torch.manual_seed(7)
        out = run().sum()
        out.backward(retain_graph=True)
        out.backward()
        return [t.grad.clone() for t in tensors], torch.get_rng_state()

    want, rng_plain = twice(lambda: net(x))
    limit = pebbles._chain.hetero_min_memory(profile_layers(net, x)) + 3 * 4 * 24 * 8
    for kw in ({"budget": 3}, {"memory": limit}):  # the latter keeps graphs (tape rows)
        got, rng_ours = twice(lambda kw=kw: checkpoint_sequential(net, x, **kw))
        assert_close(got, want)
        assert torch.equal(rng_ours, rng_plain)


def test_double_backward_and_changed_inputs_are_refused():
    x = torch.ones(3, dtype=F64, requires_grad=True)
    out = checkpointed_loop(lambda i, x: torch.sin(x), x, 5, budget=2)
    with pytest.raises(pebbles.PebblesNotImplementedError, match="create_graph=True"):
        torch.autograd.grad(out.sum(), x, create_graph=True)
    x0 = torch.ones(3, dtype=F64)
    a = torch.tensor(2.0, dtype=F64, requires_grad=True)
    out = checkpointed_loop(lambda i, x, a: a * x, x0, 5, a, budget=2)
    x0.add_(1.0)  # the stored s_0 changed: the gradient would be wrong
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_an_exception_in_step_names_the_step_and_keeps_its_type():
    def step(i, x):
        if i == 7 and torch.is_grad_enabled():
            raise ZeroDivisionError("boom")
        return torch.sin(x)

    out = checkpointed_loop(step, torch.ones(3, requires_grad=True), 20, budget=3)
    with pytest.raises(ZeroDivisionError, match="boom") as info:
        out.sum().backward()
    assert info.value.__notes__ == ["pebbles.torch: raised by step 7 in the backward pass"]

    class Fails(torch.nn.Module):
        def forward(self, x):
            if torch.is_grad_enabled():
                raise ZeroDivisionError("boom")
            return x

    net = [torch.nn.Linear(3, 3), Fails(), torch.nn.Linear(3, 3)]
    out = checkpoint_sequential(net, torch.ones(2, 3), budget=2, tape=False)
    with pytest.raises(ZeroDivisionError, match="boom") as info:
        out.sum().backward()
    assert info.value.__notes__ == [
        "pebbles.torch: raised by layer 1 (functions[1]) in the backward pass"]


def test_a_layer_returning_a_non_tensor_is_named():
    net = [torch.nn.Linear(3, 3), lambda x: (x, None)]
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"layer 1 \(functions\[1\]\) returned is a tuple \(item 1 is a "
                             r"NoneType\)"):
        checkpoint_sequential(net, torch.ones(2, 3, requires_grad=True), budget=1)


class Runs(torch.nn.Module):
    """A layer counting its runs, by layer (in the shared ``log``)."""

    def __init__(self, layer, k, log):
        super().__init__()
        self.layer, self.k, self.log = layer, k, log

    def forward(self, x):
        self.log[self.k] += 1
        return self.layer(x)


def counted_runs(net, run):
    """Runs of each layer of ``net`` in a forward and backward pass of ``run(layers)``."""
    log = np.zeros(len(net), dtype=int)
    run([Runs(layer, k, log) for k, layer in enumerate(net)]).sum().backward()
    return log


@pytest.mark.parametrize("n, segments", [(9, 5), (12, 1), (12, 2), (12, 5), (12, 12), (30, 4)])
def test_segments_run_no_more_layers_than_torch_in_its_memory(n, segments, monkeypatch):
    """segments=s: the optimum within the memory of PyTorch's split, measured by the
    simulator; with costs counting layer runs, no more runs than PyTorch makes (counted);
    and where the optimum is not taken, PyTorch's split itself, layer for layer."""
    from torch.utils.checkpoint import checkpoint_sequential as torch_sequential

    net, widths = unequal_chain(n)
    x = torch.randn(3, widths[0], dtype=F64, requires_grad=True)
    tensors = [x, *net.parameters()]
    want = grads_of(lambda: net(x), tensors)
    c = profile_layers(net, x)
    runs = pebbles.ChainCosts(np.ones(n), np.full(n, 2.0), c.sizes, graph=c.graph,
                              grads=c.grads, cotangents=c.cotangents)
    got = grads_of(lambda: checkpoint_sequential(net, x, segments=segments, costs=runs,
                                                 use_reentrant=False), tensors)
    assert_close(got, want)
    theirs = counted_runs(net, lambda layers: torch_sequential(layers, segments, x,
                                                               use_reentrant=False))
    ours = counted_runs(net, lambda layers: checkpoint_sequential(
        layers, x, segments=segments, costs=runs))
    assert ours.sum() <= theirs.sum()
    split = pebbles.simulate(pebbles.sequential_segments(n, segments), n, costs=runs)
    log = {"refs": [], "most": 0}
    out = checkpoint_sequential([Watched(layer, log) for layer in net], x,
                                segments=segments, costs=runs)
    out.sum().backward()
    assert 0 < log["most"] <= split.peak_bytes
    # where the optimum cannot be had (the limit too small once rounded to levels),
    # PyTorch's split itself: the same runs of every layer
    def refuse(*args, **kwargs):
        raise pebbles.PebblesValueError("not once sizes are rounded")

    pebbles.torch._segments_program.cache_clear()
    monkeypatch.setattr(pebbles.torch, "hetero_optimal", refuse)
    assert np.array_equal(counted_runs(net, lambda layers: checkpoint_sequential(
        layers, x, segments=segments, costs=runs)), theirs)
    pebbles.torch._segments_program.cache_clear()


def test_torch_positional_order_is_refused_with_the_fix():
    net = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(6)])
    x = torch.ones(2, 3, requires_grad=True)
    with pytest.raises(pebbles.PebblesTypeError, match=r"\(functions, input, segments=s\)"):
        checkpoint_sequential(net, 2, x)
    with pytest.raises(pebbles.PebblesValueError, match="segments <= 6"):
        checkpoint_sequential(net, x, segments=7)
    with pytest.raises(pebbles.PebblesValueError, match="exactly one of budget"):
        checkpoint_sequential(net, x, segments=2, budget=3)


class NormStep(torch.nn.Module):
    """A loop step with a BatchNorm: each run updates the running statistics."""

    def __init__(self):
        super().__init__()
        self.lin, self.norm = torch.nn.Linear(6, 6), torch.nn.BatchNorm1d(6, momentum=0.3)

    def forward(self, i, x):
        return x + 0.1 * torch.tanh(self.norm(self.lin(x)))


def norm_net():
    torch.manual_seed(3)
    layers = []
    for _ in range(10):
        layers += [torch.nn.Linear(6, 6), torch.nn.BatchNorm1d(6, momentum=0.3), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers).double()


def buffers_after(module, run, passes=1):
    """Run, differentiate ``passes`` times; the gradients and the module's buffers."""
    module.zero_grad()
    out = run().sum()
    for k in range(passes):
        out.backward(retain_graph=k + 1 < passes)
    return ([p.grad.clone() for p in module.parameters()],
            [b.clone() for b in module.buffers()])


def assert_equal(got, want):
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


def test_running_statistics_are_updated_once_per_step_as_plain_autograd():
    """Replays do not update BatchNorm's running statistics again (torch.utils.checkpoint's
    recomputation does): the buffers end as plain autograd leaves them, bit for bit,
    also after a second backward pass, profiling and a forward part with replays."""
    x = torch.randn(8, 6, dtype=F64, requires_grad=True)
    net = norm_net()
    start = copy.deepcopy(net.state_dict())
    want = buffers_after(net, lambda: net(x))
    limit = pebbles._chain.hetero_min_memory(profile_layers(net, x)) + 4 * 8 * 6 * 8
    assert_equal(net.buffers(), want[1])  # profile_layers left them as they were
    for kw in ({"budget": 3}, {"memory": limit}, {"segments": 3}):
        for passes in (1, 2):
            net.load_state_dict(start)
            got = buffers_after(net, lambda kw=kw: checkpoint_sequential(net, x, **kw), passes)
            assert_close(got[0], [g * passes for g in want[0]])
            assert_equal(got[1], want[1])
    step = NormStep().double()
    start = copy.deepcopy(step.state_dict())
    x0 = torch.randn(8, 6, dtype=F64)
    want = buffers_after(step, lambda: plain_loop(step, x0, 30))
    assert int(step.norm.num_batches_tracked) == 30
    for kw in ({"budget": 3}, {"method": "bennett-gradient", "k": 2}, {"memory": 6 * x0.nbytes}):
        step.load_state_dict(start)
        got = buffers_after(step, lambda kw=kw: checkpointed_loop(step, x0, 30, **kw))
        assert_close(got[0], want[0])
        assert_equal(got[1], want[1])


class FailingNormStep(NormStep):
    fail = -1

    def forward(self, i, x):
        if i == self.fail:
            raise ZeroDivisionError("boom")
        return super().forward(i, x)


def test_running_statistics_survive_an_exception_in_a_replay():
    step = FailingNormStep().double()
    out = checkpointed_loop(step, torch.randn(8, 6, dtype=F64), 20, budget=3)
    after = [b.clone() for b in step.buffers()]
    step.fail = 4
    with pytest.raises(ZeroDivisionError, match="boom"):
        out.sum().backward()
    assert_equal(list(step.buffers()), after)


def sin_step(i, x, w):
    return x + 0.05 * torch.sin(x * w) + 0.01


def stops_after(n):
    """cond of a loop of n steps, recording what it was asked (index, grad mode)."""
    asked = []

    def cond(i, x):
        asked.append((i, torch.is_grad_enabled()))
        return torch.tensor(i < n)

    return cond, asked


@pytest.mark.parametrize("n,budget", [(1, 2), (2, 2), (7, 3), (9, 3), (20, 3), (60, 4),
                                      (11, 5), (300, 5), (10, 10), (11, 10), (12, 10)])
@pytest.mark.parametrize("tape", [False, True])
def test_while_loop_runs_the_online_schedule_of_the_n_it_reached(n, budget, tape):
    """Online checkpointing, n unknown: the gradients of plain autograd (1e-12) and, bit
    for bit, those of checkpointed_loop over pebbles.online(n, budget), with the same step
    calls step by step (but with taping past n = budget + 1, one more of each of the last
    steps the loop, knowing n, tapes: at most budget), cond asked n + 1 times without grad,
    and no more live states than the schedule's peak. The n cover the r = 2 and r = 3
    phases and the greedy rule past them."""
    w = torch.linspace(0.5, 1.5, 4, dtype=F64, requires_grad=True)
    x0 = torch.linspace(-1, 1, 4, dtype=F64, requires_grad=True)
    want = grads_of(lambda: plain_loop(sin_step, x0, n, w), [x0, w])
    loop, ours = Counted(sin_step, n), Counted(sin_step, n)
    cond, asked = stops_after(n)

    def run(counted, loop):
        out = loop()
        counted.refs.append(weakref.ref(out))
        return out.sum()  # SumBackward keeps no reference to out

    same = grads_of(lambda: run(loop, lambda: checkpointed_loop(
        loop, x0, n, w, method="online", budget=budget, tape=tape)), [x0, w])
    got = grads_of(lambda: run(ours, lambda: checkpointed_while_loop(
        cond, ours, x0, w, budget=budget, tape=tape)), [x0, w])
    assert_close(got, want)
    assert all(torch.equal(g, s) for g, s in zip(got, same, strict=True))
    assert asked == [(i, False) for i in range(n + 1)]
    extra = (ours.nograd + ours.grad) - (loop.nograd + loop.grad)
    assert set(extra[:-budget]) <= {0} and set(extra[-budget:]) <= {0, 1}
    assert extra.sum() <= (budget if tape and n > budget + 1 else 0)
    assert ours.most_alive <= max(1, pebbles.schedule("online", n, budget=budget).simulate(
    ).peak_states)  # n = 1: none stored, s_1 alive when its backward step replays it
    assert ours.alive() == 0


@pytest.mark.parametrize("device", DEVICES)
def test_while_loop_options_and_edge_cases(device):
    w = torch.tensor([0.7, 1.3], dtype=F64, device=device, requires_grad=True)
    x0 = torch.tensor([0.2, -0.4], dtype=F64, device=device, requires_grad=True)
    # max_steps stops a loop whose cond is still true; wang-moin past the r = 3 phase
    want = grads_of(lambda: plain_loop(sin_step, x0, 40, w), [x0, w])
    for beyond in ("greedy", "wang-moin"):
        got = grads_of(lambda b=beyond: checkpointed_while_loop(
            lambda i, x: True, sin_step, x0, w, budget=2, max_steps=40, beyond=b), [x0, w])
        assert_close(got, want)
    # cond false at once: x0 itself, gradient the identity
    x0.grad = w.grad = None
    out = checkpointed_while_loop(lambda i, x: x.sum() > 10, sin_step, x0, w, budget=2)
    assert torch.equal(out, x0)
    out.sum().backward()
    assert torch.equal(x0.grad, torch.ones_like(x0)) and w.grad is None
    # without gradients: a plain loop, each step once
    counted = Counted(sin_step, 50)
    with torch.no_grad():
        out = checkpointed_while_loop(lambda i, x: x[0] < 1.0, counted, x0, w, budget=2)
    n = int(counted.nograd.sum())
    assert 1 < n < 50 and np.array_equal(counted.nograd, np.r_[np.ones(n), np.zeros(50 - n)])
    assert torch.equal(out, plain_loop(sin_step, x0, n, w))
    # a tuple state stopping on its integer counter; a module step's parameters
    field = torch.nn.Linear(2, 2).double().to(device)
    step = lambda i, s, *p: (s[0] + 0.1 * torch.tanh(field(s[0])), s[1] + 1)  # noqa: E731
    state = (x0, torch.tensor(0, device=device))
    want = grads_of(lambda: plain_loop(step, state, 17)[0],
                    [x0, *field.parameters()])
    got = grads_of(lambda: checkpointed_while_loop(
        lambda i, s: s[1] < 17, step, state, *field.parameters(), budget=3)[0],
        [x0, *field.parameters()])
    assert_close(got, want)


def test_while_loop_second_pass_rng_and_buffers():
    """retain_graph=True, preserve_rng_state=True and BatchNorm buffers, as for loops."""
    w = torch.linspace(0.5, 1.5, 4, dtype=F64, requires_grad=True)
    x0 = torch.linspace(-1, 1, 4, dtype=F64, requires_grad=True)
    torch.manual_seed(5)
    want = grads_of(lambda: plain_loop(noisy_step, x0, 25, w), [x0, w])
    rng_plain = torch.get_rng_state()
    x0.grad = w.grad = None
    torch.manual_seed(5)
    out = checkpointed_while_loop(lambda i, x: i < 25, noisy_step, x0, w, budget=3,
                                  preserve_rng_state=True)
    assert torch.equal(torch.get_rng_state(), rng_plain)
    out.sum().backward(retain_graph=True)
    first = [x0.grad.clone(), w.grad.clone()]
    assert_close(first, want)
    x0.grad = w.grad = None
    out.sum().backward()
    assert torch.equal(x0.grad, first[0]) and torch.equal(w.grad, first[1])
    step = NormStep().double()
    start = copy.deepcopy(step.state_dict())
    xb = torch.randn(8, 6, dtype=F64)
    want = buffers_after(step, lambda: plain_loop(step, xb, 30))
    step.load_state_dict(start)
    got = buffers_after(step, lambda: checkpointed_while_loop(lambda i, x: i < 30, step, xb,
                                                              budget=3))
    assert_close(got[0], want[0])
    assert_equal(got[1], want[1])


def test_while_loop_clear_errors():
    x0 = torch.ones(3, requires_grad=True)
    step = lambda i, x: x * 1.1  # noqa: E731
    with pytest.raises(pebbles.InfeasibleBudgetError, match="budget=1 is too small.*2 stored"):
        checkpointed_while_loop(lambda i, x: True, step, x0, budget=1)
    with pytest.raises(pebbles.PebblesTypeError, match="cond=3 is not callable"):
        checkpointed_while_loop(3, step, x0, budget=2)
    with pytest.raises(pebbles.PebblesValueError, match=r"beyond='x'"):
        checkpointed_while_loop(lambda i, x: True, step, x0, budget=2, beyond="x")
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"cond\(0, x\) returned a tensor of shape \(3,\)"):
        checkpointed_while_loop(lambda i, x: x < 2, step, x0, budget=2)
    for bad, got in ((None, "NoneType None"), ([True], r"list \[True\]"), ("yes", "str 'yes'"),
                     (np.array([True, False]), r"an array of shape \(2,\)")):
        with pytest.raises(pebbles.PebblesTypeError, match=rf"cond\(0, x\) returned {got}"):
            checkpointed_while_loop(lambda i, x, bad=bad: bad, step, x0, budget=2)
    out = checkpointed_while_loop(lambda i, x: np.bool_(i < 2), step, x0, budget=2)
    assert torch.allclose(out, x0 * 1.21)
    with pytest.raises(pebbles.PebblesValueError, match=r"step\(0, x\) returned a state"):
        checkpointed_while_loop(lambda i, x: i < 3, lambda i, x: x[:2], x0, budget=2)


def test_while_loop_example_runs(capsys):
    """examples/torch_while_lorenz.py, short: it checks its gradient against plain
    autograd itself (SystemExit otherwise)."""
    run_example("torch_while_lorenz", ["--T", "0.3", "--budget", "4"])
    out = capsys.readouterr().out
    assert "relative difference to plain autograd" in out and "4 stored states" in out


def run_example(name, argv):
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)


def test_neural_ode_example_matches_plain_autograd(capsys):
    run_example("torch_neural_ode", ["--steps", "60", "--budget", "4", "--iters", "1"])
    out = capsys.readouterr().out
    forward = pebbles.schedule("treeverse", 60, budget=4).lower().forward_steps
    match = re.search(rf"60 steps, 4 stored states: {forward} step runs forward \+ 60 backward "
                      r"steps; largest gradient difference to plain autograd (\S+)", out)
    assert match and float(match[1]) <= 1e-6, out
    assert float(re.search(r"memory of 40 states .* difference (\S+)", out)[1]) <= 1e-6, out


def test_mlp_example_recomputes_less_than_torch_and_matches_autograd(capsys):
    run_example("torch_mlp", ["--iters", "1"])
    out = capsys.readouterr().out
    torch_runs = int(re.search(r"10 segments: (\d+) layer runs", out)[1])
    ours = re.search(r"memory limit: (\d+) layer runs; largest gradient difference to plain "
                     r"autograd (\S+)", out)
    assert 100 < int(ours[1]) < torch_runs and float(ours[2]) <= 1e-6, out


def counting_step(i, x, a):
    """A step that counts in place: fine in a plain loop, but it would change the
    stored states (and x0) that the backward pass replays from."""
    u, k = x
    return u + a * torch.sin(u) * k.to(u.dtype), k.add_(1)


def test_a_step_changing_its_input_in_place_is_refused():
    a = torch.tensor(0.9, dtype=F64, requires_grad=True)
    u = torch.randn(3, dtype=F64, requires_grad=True)
    for run in (lambda x0: checkpointed_loop(counting_step, x0, 10, a, budget=3),
                lambda x0: checkpointed_while_loop(lambda i, x: i < 10, counting_step, x0, a,
                                                   budget=3)):
        with pytest.raises(pebbles.PebblesValueError,
                           match=r"step 0 changed its input in place .* forward pass.*It "
                                 r"was run on your x0, which it has changed"):
            run((u * 1, torch.tensor(1)))
    with torch.no_grad():  # nothing stored: a plain loop, as the user wrote it
        assert checkpointed_loop(counting_step, (u, torch.tensor(1)), 10, a,
                                 budget=3)[1].item() == 11
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 3),
                              torch.nn.ReLU(inplace=True), torch.nn.Linear(3, 3))
    with pytest.raises((pebbles.PebblesValueError, RuntimeError), match="in-place|in place"):
        checkpoint_sequential(net, torch.randn(2, 3), budget=2, tape=False)
    with pytest.raises(RuntimeError, match="in-place operation") as info:
        checkpoint_sequential(net, torch.randn(2, 3), budget=2)
    assert "must not change its input in place" in info.value.__notes__[0]


def test_parameters_computed_by_the_caller_get_gradients():
    """A parameter that is not a leaf (w * 2, a slice of a tensor) gets its gradient, and
    through it the caller's leaves; the search for tensors not passed stops there."""
    w = torch.tensor([0.9, 0.5], dtype=F64, requires_grad=True)
    u = torch.randn(3, dtype=F64, requires_grad=True)
    step = lambda i, x, a, b: a * torch.sin(x) + b * x  # noqa: E731
    want = torch.autograd.grad(plain_loop(step, u, 9, *(w * 2).unbind()).sum(), [u, w])
    got = torch.autograd.grad(checkpointed_loop(step, u, 9, *(w * 2).unbind(), budget=2).sum(),
                              [u, w])
    assert_close(got, want)
    m = torch.randn(4, 4, dtype=F64, requires_grad=True)
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    for kw in ({"budget": 2}, {"memory": 1e5}, {"segments": 2}):
        weight = m * 2
        layer = functools.partial(lambda x, w: torch.tanh(x @ w), w=weight)
        want = torch.autograd.grad(layer(layer(layer(layer(layer(x))))).sum(), [x, m],
                                   retain_graph=True)
        out = checkpoint_sequential([layer] * 5, x, params=[weight], **kw)
        assert_close(torch.autograd.grad(out.sum(), [x, m]), want)
    a, b = w.unbind()  # b is used but not passed: still reported
    with pytest.raises(pebbles.PebblesValueError, match="requires grad but was not passed"):
        checkpointed_loop(lambda i, x, a: a * x * b, u, 4, a, budget=2).sum().backward()


def test_parameter_hooks_run_once_on_the_whole_gradient():
    """p.register_hook runs once on the parameter's gradient, as in plain autograd: not
    on each backward step's part and then again on their sum."""
    net = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(6)]).double()
    net[2].weight.register_hook(lambda g: g * 5)
    x = torch.randn(2, 3, dtype=F64, requires_grad=True)
    want = torch.autograd.grad(net(x).sum(), [x, *net.parameters()])
    assert_close(torch.autograd.grad(checkpoint_sequential(net, x, budget=2).sum(),
                                     [x, *net.parameters()]), want)
    w = torch.tensor([0.9, 0.5], dtype=F64, requires_grad=True)
    u = torch.randn(3, dtype=F64, requires_grad=True)
    step = lambda i, x, a: a[0] * torch.sin(x) + a[1] * x  # noqa: E731

    def grads(loop):
        a = w * 2
        a.register_hook(lambda g: g * 3)
        a.retain_grad()
        y = loop(a)
        w.grad = u.grad = None
        y.sum().backward()
        return [w.grad, u.grad, a.grad]

    want = grads(lambda a: plain_loop(step, u, 9, a))
    assert_close(grads(lambda a: checkpointed_loop(step, u, 9, a, budget=2)), want)
    handle = w.register_hook(lambda g: g * 5)
    assert_close(grads(lambda a: checkpointed_loop(step, u, 9, a, budget=2)),
                 [want[0] * 5, *want[1:]])
    handle.remove()  # the hooks are back in place after each pass
    assert_close(grads(lambda a: checkpointed_loop(step, u, 9, a, budget=2)), want)


def test_memory_limits_are_checked_as_numbers_of_bytes():
    u = torch.randn(8, dtype=F64, requires_grad=True)
    a = torch.tensor(0.9, dtype=F64, requires_grad=True)
    step = lambda i, x, a: a * torch.sin(x)  # noqa: E731
    want = torch.autograd.grad(plain_loop(step, u, 10, a).sum(), [u, a])
    for memory, kw in ((math.inf, {}), (np.int64(640), {}), (np.float32(640), {}),
                       (640, {"graph_bytes": np.int64(64)})):
        got = checkpointed_loop(step, u, 10, a, memory=memory, **kw)
        assert_close(torch.autograd.grad(got.sum(), [u, a]), want)
    net = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(4)])
    x = torch.randn(2, 3)
    for bad, error in ((True, pebbles.PebblesTypeError), ("1e5", pebbles.PebblesTypeError),
                       (math.nan, pebbles.PebblesValueError), (-1, pebbles.PebblesValueError)):
        with pytest.raises(error, match=f"memory={bad!r} must be a number.*of bytes"):
            checkpoint_sequential(net, x, memory=bad)
        with pytest.raises(error, match=f"memory={bad!r} must be a number.*of bytes"):
            checkpointed_loop(step, u, 10, a, memory=bad)
    with pytest.raises(pebbles.PebblesValueError, match="graph_bytes=nan must be"):
        checkpointed_loop(step, u, 10, a, memory=640, graph_bytes=math.nan)


# torch's forward-mode decompositions script themselves with torch.jit on first use
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torch_func_transforms_and_forward_mode_are_refused():
    a = torch.tensor(0.9, dtype=F64, requires_grad=True)
    step = lambda i, x, a: a * torch.sin(x)  # noqa: E731
    loop = lambda x: checkpointed_loop(step, x, 9, a, budget=2)  # noqa: E731
    u = torch.randn(3, dtype=F64)
    with pytest.raises(pebbles.PebblesNotImplementedError, match="torch.func transform"):
        torch.func.grad(lambda x: loop(x).sum())(u)
    with pytest.raises(pebbles.PebblesNotImplementedError, match="torch.func transform"):
        torch.func.vmap(loop)(torch.randn(4, 3, dtype=F64))
    with forward_ad.dual_level(), pytest.raises(pebbles.PebblesNotImplementedError,
                                                match="forward-mode AD"):
        loop(forward_ad.make_dual(u, torch.ones_like(u)))
    a.requires_grad_(False)  # no gradient wanted: a plain loop, which they transform
    assert_close([torch.func.vmap(loop)(u[None])[0]], [plain_loop(step, u, 9, a)])


def test_changing_an_output_that_stored_states_share_is_refused():
    """A step that passes a tensor on unchanged puts it in every later state: the
    output and the stored states share it, so an in-place change of the output before
    the backward pass changes them too; autograd's error, as plain autograd gives."""
    a = torch.tensor(0.9, dtype=F64, requires_grad=True)
    u = torch.randn(3, dtype=F64, requires_grad=True)
    p = torch.tensor(0.5, dtype=F64, requires_grad=True)

    def step(i, x, a):
        return x[0] + x[1] * torch.sin(x[0]) * a, x[1] * a if i == 2 else x[1]

    want = torch.autograd.grad(plain_loop(step, (u, p), 10, a)[0].sum(), [u, p, a])
    for loop in (lambda x0: checkpointed_loop(step, x0, 10, a, budget=3),
                 lambda x0: checkpointed_while_loop(lambda i, x: i < 10, step, x0, a,
                                                    budget=3)):
        out = loop((u * 1, p * 1))
        out[1].mul_(2)
        with pytest.raises(RuntimeError, match="output 1 of a pebbles.torch call"):
            out[0].sum().backward()
        out = loop((u * 1, p * 1))
        out[0].mul_(2)  # a tensor of its own: no stored state holds it
        assert_close(torch.autograd.grad(out[0].sum(), [u, p, a]), [2 * g for g in want])


def test_changing_a_parameter_before_the_backward_pass_is_refused():
    """optimizer.step() between the forward and the backward pass: plain autograd raises
    (a saved tensor changed); the replays would run with the new values, so it raises
    here too instead of returning wrong gradients."""
    a = torch.tensor(0.9, dtype=F64, requires_grad=True)
    out = checkpointed_loop(lambda i, x, a: a * torch.sin(x), torch.ones(3, dtype=F64), 9, a,
                            budget=2)
    with torch.no_grad():
        a.add_(0.1)
    with pytest.raises(RuntimeError, match=r"params\[0\] of a pebbles.torch call"):
        out.sum().backward()
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    out = checkpoint_sequential(net, torch.randn(2, 3), budget=2)
    out.sum().backward(retain_graph=True)
    optimizer.step()
    with pytest.raises(RuntimeError, match=r"a parameter of shape \(3, 3\) of a pebbles"):
        out.sum().backward()


def test_changing_the_output_in_place_before_backward_raises():
    """The taped last step's graph saves its output (sigmoid does): changing the output in
    place before the backward pass raises autograd's error, as plain autograd does,
    instead of a wrong gradient."""
    w = (torch.rand(3, dtype=F64) * 0.1).requires_grad_()
    x0 = torch.rand(3, dtype=F64, requires_grad=True)
    step = lambda i, x, w: torch.sigmoid(x + w)  # noqa: E731
    net = [torch.nn.Linear(3, 3).double(), torch.nn.Sigmoid()]
    runs = [lambda tape: checkpointed_loop(step, x0, 6, w, budget=2, tape=tape),
            lambda tape: checkpoint_sequential(net, x0, budget=2, tape=tape),
            lambda tape: checkpointed_while_loop(lambda i, x: i < 6, step, x0, w, budget=10,
                                                 tape=tape)]  # no state dropped: all taped
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        plain_loop(step, x0, 6, w).mul_(2).sum().backward()
    for run in runs:
        y = run(True)
        y.mul_(2)
        with pytest.raises(RuntimeError, match="saved by the graph of (step 5|layer 1)"):
            y.sum().backward()
        want = torch.autograd.grad(run(False).sum(), [x0, w] if run is not runs[1] else [x0])
        y = run(True)
        assert_close(torch.autograd.grad(y.sum(), [x0, w] if run is not runs[1] else [x0]),
                     want)


def test_frozen_parameters_changed_in_place_raise():
    """A module parameter with requires_grad=False is read by the replays too: changing
    it between the passes raises instead of replaying with the new value."""
    x = torch.randn(2, 3, dtype=F64, requires_grad=True)
    net = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(4)]).double()
    net[1].weight.requires_grad_(False)
    y = checkpoint_sequential(net, x, budget=2)
    with torch.no_grad():
        net[1].weight.mul_(1.5)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    class Frozen(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3).double().requires_grad_(False)

        def forward(self, i, h):
            return torch.tanh(self.lin(h))

    step = Frozen()
    y = checkpointed_loop(step, x, 8, budget=2)
    with torch.no_grad():
        step.lin.bias.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.parametrize("make", [lambda w: w + 1, lambda w: w.view(3), lambda w: w[:],
                                  torch.exp, lambda w: w * 2])
def test_a_leaf_and_a_tensor_computed_from_it_both_passed(make):
    """The step gets a computed parameter as a leaf alias: its graph ends there, so the
    leaf's gradient is not counted twice and no backward step runs through the caller's
    graph (which the first would free)."""
    w = torch.tensor([0.1, 0.2, 0.3], dtype=F64, requires_grad=True)
    x0 = torch.ones(3, dtype=F64, requires_grad=True)
    step = lambda i, x, w, w2: x * w2 + w  # noqa: E731
    want = torch.autograd.grad(plain_loop(step, x0, 5, w, make(w)).sum(), [x0, w])
    for tape in (True, False):
        y = checkpointed_loop(step, x0, 5, w, make(w), budget=2, tape=tape)
        assert_close(torch.autograd.grad(y.sum(), [x0, w]), want)


def test_a_step_closing_over_a_tensor_computed_from_a_parameter_is_explained():
    w = torch.tensor([0.1, 0.2, 0.3], dtype=F64, requires_grad=True)
    x0 = torch.ones(3, dtype=F64, requires_grad=True)
    w2 = w.exp()  # exp saves its result: the first backward step frees it
    y = checkpointed_loop(lambda i, x, w: x * w2 + w, x0, 6, w, budget=2)
    with pytest.raises(RuntimeError, match="second time") as err:
        y.sum().backward()
    assert "computed before the call from a parameter" in "".join(err.value.__notes__)


def test_layers_may_change_the_state_form():
    """As in torch.utils.checkpoint.checkpoint_sequential, a layer may turn a tensor into
    a tuple and back, or change the tuple's length."""
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    lin = torch.nn.Linear(4, 4).double()
    split = lambda t: (t[:, :2] * 1, t[:, 2:] * 1)  # noqa: E731
    join = lambda t: torch.cat([torch.tanh(t[0]), t[1]], 1)  # noqa: E731
    three = lambda t: (t[0] * 2, t[1] * 3, t[0] + t[1])  # noqa: E731
    one = lambda t: (t[0] * t[1] + t[2],)  # noqa: E731
    for layers, want_tuple in [([lin, split, join, torch.nn.Tanh()], False),
                               ([lin, split, three, one], True),
                               ([lin, split, three, one, lambda t: t[0].sin()], False)]:
        want = torch.autograd.grad(functools.reduce(lambda h, f: f(h), layers, x)[0].sum()
                                   if want_tuple else
                                   functools.reduce(lambda h, f: f(h), layers, x).sum(),
                                   [x, lin.weight])
        for budget in (2, 3, 5):
            y = checkpoint_sequential(layers, x, budget=budget)
            assert isinstance(y, tuple) == want_tuple
            assert_close(torch.autograd.grad((y[0] if want_tuple else y).sum(),
                                             [x, lin.weight]), want)
    calls = []

    def fickle(t):  # a tuple the first time, a tensor on a replay
        calls.append(1)
        return (t * 2, t) if len(calls) == 1 else t * 2

    y = checkpoint_sequential([lin, fickle, lambda t: t[0] + t[1], torch.tanh], x, budget=2)
    with pytest.raises(pebbles.PebblesValueError, match="returned a single tensor in the "
                       "backward pass, but a tuple of 2 tensor.s. when it first ran"):
        y.sum().backward()


def test_profiling_errors_name_the_layer_and_small_contract_points():
    x = torch.randn(2, 3, dtype=F64, requires_grad=True)

    def bad(h):
        raise ZeroDivisionError("boom")

    net = [torch.nn.Linear(3, 3).double(), bad]
    with pytest.raises(ZeroDivisionError) as err:
        checkpoint_sequential(net, x, memory=1e6)
    assert "raised by layer 1 (functions[1]) while profiling" in "".join(err.value.__notes__)
    with pytest.raises(ZeroDivisionError) as err:
        checkpointed_loop(lambda i, h: bad(h), x, 5, memory=1e6)
    assert "raised by step 0 while profiling" in "".join(err.value.__notes__)
    assert checkpointed_loop(lambda i, h: bad(h), x, 0, budget=2) is x  # no step: x0
    with pytest.raises(pebbles.PebblesValueError, match="backward_ratio=inf"):
        profile_layers(net[:1], x, backward_ratio=math.inf)
    costs = profile_layers(net[:1], x)
    with pytest.raises(pebbles.PebblesValueError, match="costs=.* with budget=2"):
        checkpoint_sequential(net[:1], x, budget=2, costs=costs)


@pytest.mark.parametrize("kind", ["loop", "while", "sequential"])
def test_replays_make_tensors_on_the_forward_pass_default_device(kind):
    """Replays (backward passes, a second one too) run under the ``torch.device(...)``
    context of the forward pass, as torch.utils.checkpoint's recomputation does, so that
    a step making a tensor without a device (torch.randn(x.shape)) makes it where its
    first run did; and under none when the forward pass ran under none."""
    seen = []

    def step(i, x, w):
        seen.append(torch.empty(0).device.type)
        return torch.tanh(w * x)

    w = torch.tensor(0.5, dtype=F64, requires_grad=True)
    x0 = torch.linspace(-1, 1, 3, dtype=F64, requires_grad=True)
    layers = [lambda x, i=i: step(i, x, w) for i in range(8)]
    run = {"loop": lambda: checkpointed_loop(step, x0, 8, w, budget=2, tape=False),
           "while": lambda: checkpointed_while_loop(lambda i, x: i < 8, step, x0, w,
                                                    budget=2, tape=False),
           "sequential": lambda: checkpoint_sequential(
               layers, x0, budget=2, params=[w], tape=False)}[kind]
    want = grads_of(lambda: plain_loop(step, x0, 8, w), [x0, w])
    seen.clear()
    with torch.device("meta"):
        out = run()
    first = len(seen)
    for _ in range(2):  # the second pass runs the forward part again
        x0.grad = w.grad = None
        out.sum().backward(retain_graph=True)
        assert_close([x0.grad, w.grad], want)
    assert len(seen) > 3 * first and set(seen) == {"meta"}
    seen.clear()
    out = run()
    with torch.device("meta"):
        out.sum().backward()
    assert len(seen) > first and set(seen) == {"cpu"}


@pytest.fixture
def fake_cuda(monkeypatch):
    """One CUDA device, faked on the CPU: the tensors in ``marked`` are on it, ``gen``
    stands for its generator (torch.cuda.get_rng_state and set_rng_state read and set
    it) and ``synced`` records torch.cuda.synchronize's calls."""
    fake = type("FakeCuda", (), {})()
    fake.marked, fake.gen, fake.synced = [], torch.Generator().manual_seed(1), []
    monkeypatch.setattr(pebbles.torch, "_cuda_devices", lambda ts: [0] if {
        id(t) for t in ts} & {id(m) for m in fake.marked} else [])
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=0: fake.gen.get_state())
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device=0: fake.gen.set_state(state))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: fake.synced.append(
        device))
    return fake


class Noisy(torch.nn.Module):
    """Linear, tanh and a dropout mask drawn from ``gen`` (a CUDA generator's stand-in);
    called as a layer ``(x)`` or as a loop's step ``(i, x)``."""

    def __init__(self, gen):
        super().__init__()
        torch.manual_seed(2)
        self.lin, self.gen = torch.nn.Linear(4, 4).double(), gen

    def forward(self, *args):
        x = args[-1]
        mask = (torch.rand(x.shape, generator=self.gen, dtype=F64) > 0.3).to(F64)
        return torch.tanh(self.lin(x)) * mask / 0.7


def test_cuda_bytes_are_counted_in_the_allocators_blocks():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    held = pebbles.torch._held
    assert [held(b, cuda) for b in (0, 4, 512, 513)] == [0, 512, 512, 1024]
    assert held(4, cpu) == 4 and held(4, torch.device("meta")) == 4


def test_profile_layers_syncs_and_forks_the_devices_of_the_layers(fake_cuda):
    """The layers' device (here only their parameters are on it, not the input) is
    synchronised around each timed run and its generator left as it was."""
    layer = Noisy(fake_cuda.gen)
    fake_cuda.marked = [layer.lin.weight]
    state = fake_cuda.gen.get_state()
    profile_layers([layer, torch.nn.Tanh()], torch.randn(3, 4, dtype=F64), repeat=2)
    assert torch.equal(fake_cuda.gen.get_state(), state)
    assert fake_cuda.synced == [0] * 8  # 2 layers, 2 runs each, before and after


@pytest.mark.parametrize("kw", [{"budget": 3}, {"memory": 3 * 4 * 8 * 20}, "while"])
def test_a_module_steps_device_generator_is_replayed(fake_cuda, kw):
    """preserve_rng_state=True with a module step whose parameters alone are on the device:
    its generator is saved, restored for replays and forked for profiling, so the
    gradients and the generator's end state are plain autograd's."""
    step = Noisy(fake_cuda.gen)
    fake_cuda.marked = [step.lin.bias]
    x0 = torch.randn(3, 4, dtype=F64, requires_grad=True)
    tensors = [x0, *step.parameters()]
    fake_cuda.gen.manual_seed(7)
    want = grads_of(lambda: plain_loop(step, x0, 12), tensors)
    after = fake_cuda.gen.get_state()
    fake_cuda.gen.manual_seed(7)
    got = grads_of(lambda: checkpointed_while_loop(
        lambda i, x: i < 12, step, x0, budget=3, preserve_rng_state=True) if kw == "while"
        else checkpointed_loop(step, x0, 12, preserve_rng_state=True, **kw), tensors)
    assert_close(got, want)
    assert torch.equal(fake_cuda.gen.get_state(), after)


def test_a_step_moving_the_state_to_another_device_is_refused():
    x0 = torch.ones(3, requires_grad=True)
    move = lambda i, x: x.to("meta")  # noqa: E731
    for run in (lambda: checkpointed_loop(move, x0, 4, budget=2),
                lambda: checkpointed_while_loop(lambda i, x: i < 4, move, x0, budget=2)):
        with pytest.raises(pebbles.PebblesValueError, match=r"step\(0, x\) returned a state "
                           r"on device\(s\) \['meta'\] but x0 is on \['cpu'\].*x0.to"):
            run()


def test_a_loop_under_autocast_is_told_to_cast_the_state_back():
    w = torch.randn(4, 4, requires_grad=True)
    x0 = torch.randn(2, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(pebbles.PebblesValueError, match=r"autocast.*\.float\(\)"):
            checkpointed_loop(lambda i, x, w: x @ w, x0, 4, w, budget=2)
        out = checkpointed_loop(lambda i, x, w: (x @ w).float(), x0, 4, w, budget=2)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tape", [False, True])
def test_while_loop_replays_the_draws_of_a_cond_that_draws_numbers(device, tape):
    """cond may draw from the global generator (here for i = 0, 2, 3, 5, ...): each step is
    replayed with the generator where it stood before the step's first run, after cond,
    so that dropout draws the masks of the plain loop, also in a second backward pass;
    and the generator ends where the plain loop leaves it."""
    def cond(i, x):
        if i % 3 != 1:
            torch.rand((), device=device)
        return i < 12

    def step(i, x, w):
        return x + torch.nn.functional.dropout(torch.tanh(w * x), 0.3)

    w = torch.tensor(0.9, dtype=F64, device=device, requires_grad=True)
    x0 = torch.linspace(-1, 1, 6, dtype=F64, device=device, requires_grad=True)

    def plain():
        x, i = x0, 0
        while cond(i, x):
            x, i = step(i, x, w), i + 1
        return x

    torch.manual_seed(3)
    want = grads_of(plain, [x0, w])
    assert w.grad != 0 and torch.all(x0.grad != 0)  # each step's mask counts
    after = rng_states(device)
    torch.manual_seed(3)
    out = checkpointed_while_loop(cond, step, x0, w, budget=3, preserve_rng_state=True,
                                  tape=tape)
    assert_equal(rng_states(device), after)
    for _ in range(2):
        x0.grad = w.grad = None
        out.sum().backward(retain_graph=True)
        assert_close([x0.grad, w.grad], want)


@pytest.mark.parametrize("kind", [ValueError, KeyboardInterrupt])
def test_an_interrupt_in_a_step_cond_or_profiled_layer_names_it(kind):
    """Ctrl-C (a BaseException) gets the note an Exception gets: the step, cond call or
    profiled layer, and the phase; its type is kept."""
    w = torch.tensor(0.9, dtype=F64, requires_grad=True)
    x0 = torch.ones(2, dtype=F64, requires_grad=True)

    def step(i, x, w):
        if i == 3:
            raise kind("stop")
        return x * w

    def cond(i, x):
        if i == 3:
            raise kind("stop")
        return True

    def layer(x):
        raise kind("stop")

    runs = [(lambda: checkpointed_loop(step, x0, 6, w, budget=2),
             "raised by step 3 in the forward pass"),
            (lambda: checkpointed_while_loop(cond, lambda i, x, w: x * w, x0, w, budget=2),
             "raised by cond(3, x)"),
            (lambda: checkpoint_sequential([torch.nn.Linear(2, 2).double(), layer],
                                           torch.ones(1, 2, dtype=F64), memory=1e6),
             "raised by layer 1 (functions[1]) while profiling it")]
    for run, note in runs:
        with pytest.raises(kind) as info:
            run()
        assert any(note in n for n in getattr(info.value, "__notes__", [])), note


def test_a_while_loop_that_runs_no_step_returns_x0_as_plain_autograd():
    """cond false at i = 0: the result is x0 (as torch guards a returned input), not an
    alias an in-place op could change x0 through."""
    x0 = torch.ones(2, dtype=F64, requires_grad=True)
    y = checkpointed_while_loop(lambda i, x: False, lambda i, x: 2 * x, x0, budget=2)
    with pytest.raises(RuntimeError, match="view|in-?place"):
        y.mul_(3)
    assert torch.equal(x0.detach(), torch.ones(2, dtype=F64))
    y = checkpointed_while_loop(lambda i, x: False, lambda i, x: 2 * x, x0, budget=2)
    (3 * y).sum().backward()
    assert torch.equal(x0.grad, torch.full((2,), 3.0, dtype=F64))


@pytest.mark.parametrize("loop", ["for", "while", "sequential"])
@pytest.mark.parametrize("at", [30, 150])  # a call in the forward pass, one in the backward
def test_a_failed_call_lets_go_of_its_states_while_the_exception_lives(loop, at):
    """The traceback keeps the adapter's frames alive as long as the exception (a
    notebook keeps the last one): they must not keep the stored states and graphs too.
    Only the failing step's input stays, held by the step's own frame."""
    outputs, calls = [], [0]
    w = torch.tensor(0.9, dtype=F64, requires_grad=True)
    x0 = torch.randn(50, dtype=F64, requires_grad=True)

    def step(i, x, w):
        calls[0] += 1
        if calls[0] == at:
            raise ValueError("stop")
        y = torch.tanh(x * w)
        outputs.append(weakref.ref(y))
        return y

    class Layer(torch.nn.Module):
        def forward(self, x):
            return step(0, x, w)

    runs = {"for": lambda: checkpointed_loop(step, x0, 100, w, budget=5),
            "while": lambda: checkpointed_while_loop(lambda i, x: i < 100, step, x0, w,
                                                     budget=5),
            "sequential": lambda: checkpoint_sequential([Layer() for _ in range(100)], x0,
                                                        budget=5, params=[w])}
    with pytest.raises(ValueError, match="stop") as info:
        runs[loop]().sum().backward()
    assert calls[0] == at
    gc.collect()
    assert sum(r() is not None for r in outputs) <= 1
    del info
    gc.collect()
    assert sum(r() is not None for r in outputs) == 0


State = __import__("collections").namedtuple("State", "u t")


def test_a_namedtuple_state_reaches_the_steps_and_comes_back_as_one():
    """A namedtuple x0 (or layer output) is what the steps, cond and the caller get, as in
    the plain loop; gradients as plain autograd."""
    w = torch.tensor(0.9, dtype=F64, requires_grad=True)
    u0 = torch.linspace(-1, 1, 3, dtype=F64, requires_grad=True)

    def step(i, s, w):
        return State(torch.sin(s.u * w) + s.t, s.t + 1)

    def plain():
        s = State(u0, torch.zeros((), dtype=F64))
        for i in range(7):
            s = step(i, s, w)
        return s.u

    want = grads_of(plain, [u0, w])
    runs = [lambda: checkpointed_loop(step, State(u0, torch.zeros((), dtype=F64)), 7, w,
                                      budget=2),
            lambda: checkpointed_while_loop(lambda i, s: bool(s.t < 7), step,
                                            State(u0, torch.zeros((), dtype=F64)), w,
                                            budget=2)]
    for run in runs:
        u0.grad = w.grad = None
        out = run()
        assert type(out) is State and out.t.item() == 7
        out.u.sum().backward()
        assert_close([u0.grad, w.grad], want)
    with torch.no_grad():
        assert type(runs[0]()) is State
    layers = [lambda s: State(torch.tanh(s.u * w), s.t + 1)] * 5
    out = checkpoint_sequential(layers, State(u0, torch.zeros((), dtype=F64)), budget=2,
                                params=[w])
    assert type(out) is State and out.t.item() == 5
    with pytest.raises(pebbles.PebblesValueError,
                       match="returned a tuple of 2 tensor.*but the state is a namedtuple "
                             "State of 2"):
        checkpointed_loop(lambda i, s, w: (s.u * w, s.t), State(u0, u0[0]), 3, w, budget=2)


def test_a_list_state_reaches_the_steps_and_comes_back_as_a_list():
    w = torch.tensor(0.9, dtype=F64, requires_grad=True)
    u0 = torch.linspace(-1, 1, 3, dtype=F64, requires_grad=True)
    seen = set()

    def step(i, s, w):
        seen.add(type(s))
        return [torch.sin(s[0] * w), s[1] + 1]

    def plain():
        s = [u0, torch.zeros((), dtype=F64)]
        for i in range(6):
            s = step(i, s, w)
        return s[0]

    want = grads_of(plain, [u0, w])
    seen.clear()
    for run in (lambda: checkpointed_loop(step, [u0, torch.zeros((), dtype=F64)], 6, w,
                                          budget=2),
                lambda: checkpointed_while_loop(lambda i, s: (seen.add(type(s)), i < 6)[1],
                                                step, [u0, torch.zeros((), dtype=F64)], w,
                                                budget=2)):
        u0.grad = w.grad = None
        out = run()
        assert type(out) is list and out[1].item() == 6
        out[0].sum().backward()
        assert_close([u0.grad, w.grad], want)
    assert seen == {list}
    with pytest.raises(pebbles.PebblesValueError,
                       match="returned a tuple of 2 tensor.*but the state is a list of 2"):
        checkpointed_loop(lambda i, s, w: (s[0] * w, s[1]), [u0, u0[0]], 3, w, budget=2)


def test_a_tensor_not_passed_is_found_at_any_step_and_without_inputs_that_need_grad():
    """Its gradient would be lost: a loop step that uses it at step 0 only, and a call whose
    input and parameters need no gradient (a plain pass in grad mode) both raise; under
    no_grad the plain pass runs."""
    v = torch.tensor(0.5, dtype=F64, requires_grad=True)
    x0 = torch.ones(2, dtype=F64, requires_grad=True)

    def early(i, x):
        return x * v if i == 0 else torch.sin(x)

    with pytest.raises(pebbles.PebblesValueError, match="step 0 uses a tensor of shape"):
        checkpointed_loop(early, x0, 5, budget=2).sum().backward()
    calls = []

    def late(i, x):
        calls.append(i)
        return x * v

    with pytest.raises(pebbles.PebblesValueError,
                       match="step 0 makes an output that requires grad: .* was not passed"):
        checkpointed_loop(late, torch.ones(2, dtype=F64), 5, budget=2)
    assert calls == [0]
    with pytest.raises(pebbles.PebblesValueError, match=r"layer 0 \(functions\[0\]\) makes"):
        checkpoint_sequential([lambda x: x * v] * 4, torch.ones(2, dtype=F64), budget=2)
    with torch.no_grad():
        out = checkpointed_loop(late, torch.ones(2, dtype=F64), 5, budget=2)
    assert not out.requires_grad and torch.equal(out, torch.full((2,), 0.5 ** 5, dtype=F64))


def test_no_grad_steps_may_hand_back_tensors_that_require_grad():
    """Under no_grad an identity layer, or a state member a step leaves as it is, hands
    back a tensor that requires grad: a plain pass, as the plain net's."""
    net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(4, 4).double())
    x = torch.randn(2, 4, dtype=F64, requires_grad=True)
    dt = torch.tensor(0.5, dtype=F64, requires_grad=True)
    with torch.no_grad():
        assert torch.equal(checkpoint_sequential(net, x, budget=1), net(x))
        u, _ = checkpointed_loop(lambda i, s: (s[0] * s[1], s[1]), (x, dt), 3, budget=2)
    assert torch.equal(u, x.detach() * 0.125)
    with torch.inference_mode():
        u, _ = checkpointed_while_loop(lambda i, s: i < 3, lambda i, s: (s[0] * s[1], s[1]),
                                       (x, dt), budget=2)
    assert torch.equal(u, x.detach() * 0.125)
    with pytest.raises(pebbles.PebblesValueError, match="requires grad but"):
        checkpoint_sequential([lambda h: dt * 1.0] * 2, x.detach(), budget=1)


def test_layers_that_are_bound_methods_differentiate_their_modules_parameters():
    class Coder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4).double(), torch.nn.Linear(4, 4).double()

        def enc(self, h):
            return torch.tanh(self.a(h))

        def dec(self, h):
            return self.b(h)

    m, x = Coder(), torch.randn(3, 4, dtype=F64)
    want = grads_of(lambda: m.dec(m.enc(m.enc(x))).sum(), list(m.parameters()))
    for kw in ({"budget": 2}, {"memory": 1e9}):
        got = grads_of(lambda kw=kw: checkpoint_sequential([m.enc, m.enc, m.dec], x,
                                                           **kw).sum(), list(m.parameters()))
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True)), kw


def test_a_call_without_gradients_profiles_nothing():
    """memory= and segments= size a schedule the plain pass never uses: each layer or step
    runs once."""
    calls = [0]

    def layer(x):
        calls[0] += 1
        return torch.tanh(x)

    x = torch.ones(3, dtype=F64)
    for kw in ({"memory": 1e6}, {"segments": 2}):
        calls[0] = 0
        checkpoint_sequential([layer] * 4, x, **kw)
        assert calls[0] == 4, kw
    calls[0] = 0
    with torch.no_grad():
        checkpointed_loop(lambda i, x: layer(x), x.requires_grad_(), 4, memory=1e6)
    assert calls[0] == 4


class _Counted(torch.nn.Module):
    """Tanh that counts its runs (a module: profiles are kept per layer object)."""

    def __init__(self, calls: list[int]) -> None:
        super().__init__()
        self.calls, self.drop = calls, torch.nn.Dropout(0.0)

    def forward(self, x):
        self.calls[0] += 1
        return torch.tanh(self.drop(x))

    def method(self, x):
        self.calls[0] += 1
        return x * 2


def test_memory_profiles_the_layers_once_per_input_shape_and_mode():
    """A training loop calling memory= or segments= each iteration profiles on the first
    call only (4 extra runs a layer: 3 timed, 1 with a graph): again for another batch
    size, another training mode or other layers; the kept profile holds no layer alive."""
    calls, n = [0], 6
    net = torch.nn.Sequential(*[_Counted(calls) for _ in range(n)])
    x, limit = torch.randn(5, 3, dtype=F64, requires_grad=True), 1e9

    def runs(layers, inp, **kw):
        calls[0] = 0
        checkpoint_sequential(layers, inp, **kw).sum().backward()
        return calls[0]

    assert runs(net, x, memory=limit) == 5 * n  # profiled; enough memory: every graph kept
    assert runs(net, x, memory=limit) == n
    assert runs(net, x, segments=2) <= n + n // 2  # the same profile; PyTorch's split at most
    assert runs(net, torch.randn(7, 3, dtype=F64, requires_grad=True), memory=limit) == 5 * n
    net.eval()
    assert runs(net, x, memory=limit) == 5 * n
    assert runs(net, x, memory=limit) == n
    obj = _Counted(calls)  # bound methods: a new object at each access, the same layer
    assert [runs([obj.method] * n, x, memory=limit) for _ in range(2)] == [5 * n, n]
    net[2].drop = torch.nn.Identity()  # a module inside a layer replaced: its costs change
    assert [runs(net, x, memory=limit) for _ in range(2)] == [5 * n, n]
    scale = torch.ones(3, dtype=F64, requires_grad=True)
    layers = [lambda h, m=m: m(h) * scale2[0] for m in net]
    for k in range(3):  # params= computed anew each call: the same profile
        scale2 = [scale * 2.0]
        calls[0] = 0
        checkpoint_sequential(layers, x, memory=limit, params=scale2).sum().backward()
        assert calls[0] == (5 * n if k == 0 else n)
    alive = weakref.ref(net)
    del net
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("method, options, words", [
    ("two-level", {"budget": 2, "disk_budget": 3, "write_cost": 1, "read_cost": 1},
     "keeps states on disk"),
    ("periodic-disk", {"budget": 3, "period": 5}, "keeps states on disk"),
    ("bennett", {}, "plays the reversible game"),
])
def test_methods_that_are_no_gradient_in_memory_are_refused_before_a_step(method, options,
                                                                          words):
    calls = []
    x0 = torch.ones(2, dtype=F64, requires_grad=True)
    with pytest.raises(pebbles.PebblesValueError,
                       match=f"method='{method}' .*{words}.*'bennett-gradient'"):
        checkpointed_loop(lambda i, x: calls.append(i) or x * 2, x0, 30, method=method,
                          **options)
    assert calls == []


@pytest.mark.parametrize("kw, error, match", [
    ({"n": 0, "step": 3}, pebbles.PebblesTypeError, r"^step=3 is not callable"),
    ({"n": 5, "step": 3}, pebbles.PebblesTypeError, r"^step=3 is not callable"),
    ({"n": 0, "budget": -5}, pebbles.PebblesValueError, r"^budget=-5 must be >= 0"),
    ({"n": 0, "method": "bogus"}, pebbles.PebblesValueError, r"^method='bogus' is not"),
    ({"n": 0, "budget": 2, "inplce": True}, pebbles.PebblesTypeError, r"got inplce=True"),
    ({"n": 5, "budget": 2, "graph_bytes": 10}, pebbles.PebblesValueError,
     r"^graph_bytes=10 without memory="),
    ({"n": 5, "memory": 1e6, "method": "recompute-all"}, pebbles.PebblesValueError,
     r"^memory=1000000.0 with method='recompute-all': memory= picks its own schedule"),
    ({"n": 0, "memory": 1e6, "method": "bogus"}, pebbles.PebblesValueError,
     r"^memory=1000000.0 with method='bogus'"),
    ({"n": 0, "memory": 1e6, "graph_bytes": -1}, pebbles.PebblesValueError,
     r"^graph_bytes=-1"),
    ({"n": 5, "memory": 1e6, "graph_bytes": "abc", "tape": False}, pebbles.PebblesTypeError,
     r"^graph_bytes='abc'"),
    ({"n": 5, "budget": 2, "tape": "no"}, pebbles.PebblesTypeError, r"^tape='no' must be"),
    ({"n": 5, "budget": 2, "preserve_rng_state": None}, pebbles.PebblesTypeError,
     r"^preserve_rng_state=None must be True or False"),
])
def test_loop_arguments_are_checked_before_a_step_also_for_n_0(kw, error, match):
    kw = dict(kw)
    n, step = kw.pop("n"), kw.pop("step", lambda i, x: 2 * x)
    with pytest.raises(error, match=match):
        checkpointed_loop(step, torch.ones(2, requires_grad=True), n, **kw)


@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("kw, error, match", [
    ({"budget": 2, "tape": "x"}, pebbles.PebblesTypeError, r"^tape='x' must be True or False"),
    ({"budget": 2, "preserve_rng_state": None}, pebbles.PebblesTypeError,
     r"^preserve_rng_state=None must be True or False"),
    ({"memory": 1e6, "levels": 0}, pebbles.PebblesValueError, r"^levels=0 must be >= 1"),
    ({"memory": 1e6, "costs": 1}, pebbles.PebblesTypeError, r"^costs is an int; it must be"),
    ({"budget": 2, "params": torch.ones(3)}, pebbles.PebblesTypeError,
     r"^params is a tensor of shape \(3,\), not a list of tensors; pass params=\[w\]"),
    ({"budget": 2, "params": None}, pebbles.PebblesTypeError,
     r"^params=None is not a list of tensors; pass a list or tuple of the tensors"),
    ({"budget": 2, "params": [1.0]}, pebbles.PebblesTypeError,
     r"^params\[0\] is a float; it must be a torch.Tensor"),
])
def test_sequential_arguments_are_checked_with_and_without_gradients(grad, kw, error, match):
    layers = [torch.nn.Tanh() for _ in range(3)]
    x = torch.ones(2, dtype=F64, requires_grad=grad)
    with pytest.raises(error, match=match):
        checkpoint_sequential(layers, x, **kw)


def test_costs_for_another_chain_are_named_by_their_length():
    layers = [torch.nn.Tanh() for _ in range(4)]
    x = torch.ones(2, dtype=F64, requires_grad=True)
    costs = pebbles.torch.profile_layers(layers[:3], x)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^costs is for n=3 layers, but functions has n=4"):
        checkpoint_sequential(layers, x, memory=1e6, costs=costs)
    with pytest.raises(pebbles.PebblesTypeError, match=r"^costs is a dict; it must be"):
        checkpoint_sequential(layers, x, memory=1e6, costs={})


def test_torch_checkpoint_keywords_at_their_defaults_are_accepted_others_named():
    layers = [torch.nn.Tanh() for _ in range(3)]
    x = torch.ones(2, dtype=F64, requires_grad=True)
    y = checkpoint_sequential(layers, x, budget=2, use_reentrant=False,
                              determinism_check="default", debug=False)
    assert torch.equal(y, torch.tanh(torch.tanh(torch.tanh(x))))
    for kw, words in (({"context_fn": lambda: None}, "selective checkpointing"),
                      ({"debug": True}, "taken at its default False only"),
                      ({"segmnts": 2}, "not an argument of checkpoint_sequential")):
        with pytest.raises(pebbles.PebblesTypeError, match=f"^{next(iter(kw))}=.*{words}"):
            checkpoint_sequential(layers, x, budget=2, **kw)


def test_what_only_an_unused_output_reaches_gets_no_gradient_as_in_plain_autograd():
    """None, not zeros: an optimiser skips a None gradient (AdamW decays a zero one)."""
    w = torch.tensor(0.7, dtype=F64, requires_grad=True)
    u = torch.ones(2, dtype=F64, requires_grad=True)
    v = torch.zeros(2, dtype=F64, requires_grad=True)
    for kw in ({"budget": 2}, {"budget": 2, "tape": False}, {"memory": 1e6}):
        u.grad = v.grad = w.grad = None
        s = checkpointed_loop(lambda i, s, w: (s[0] * w, s[1] + 1.0), (u, v), 6, w, **kw)
        s[1].sum().backward()
        assert u.grad is None and w.grad is None, kw
        assert torch.equal(v.grad, torch.ones(2, dtype=F64))

    class Split(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(2, 2).double(), torch.nn.Linear(2, 2).double()

        def forward(self, x):
            return self.a(x), self.b(x)

    split = Split()
    y = checkpoint_sequential([split, lambda t: (torch.tanh(t[0]), t[1])],
                              torch.ones(1, 2, dtype=F64), budget=1)
    y[0].sum().backward()
    assert split.b.weight.grad is None and split.a.weight.grad is not None


def test_a_computed_parameter_and_its_source_in_one_backward_step_are_refused():
    """autograd.grad asked for both counts the path through the computed one twice (it
    gave wrong gradients); in separate backward steps both are right."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 4).double()
    tied = lin.weight[:, :]
    layers = [lin, torch.nn.Tanh(), lambda x: x @ tied]
    x = torch.randn(2, 3, dtype=F64)
    want = grads_of(lambda: layers[2](layers[1](layers[0](x))), [lin.weight])
    for budget in (2, 3):
        got = grads_of(lambda b=budget: checkpoint_sequential(layers, x, budget=b,
                                                              params=[tied]), [lin.weight])
        assert_close(got, want)
    for kw in ({"memory": math.inf}, {"segments": 1}):
        y = checkpoint_sequential(layers, x, params=[tied], **kw)
        with pytest.raises(pebbles.PebblesValueError, match="computed from another one"):
            y.sum().backward()


def test_a_loop_memory_below_one_step_names_the_state_bytes_not_a_chain():
    x0 = torch.ones(100, dtype=F64, requires_grad=True)
    for tape, words in ((True, "and, in its backward step, its graph at once"),
                        (False, r"\(800 bytes each\) at once")):
        with pytest.raises(pebbles.PebblesValueError,
                           match=rf"^memory=100 bytes cannot finish the loop: .*{words}, "
                                 r"1600 bytes; pass memory >= 1600, or a budget="):
            checkpointed_loop(lambda i, x: x * 0.9, x0, 10, memory=100, tape=tape)
    with pytest.raises(pebbles.PebblesValueError, match=r"holds its output \(800 bytes; its "
                       r"input x0 is not counted\) and, in its backward step, its graph at "
                       r"once, 800 bytes; pass memory >= 800"):
        checkpointed_loop(lambda i, x: x * 0.9, x0, 1, memory=100)


@pytest.mark.parametrize("option", [{"segments": 2}, {"use_reentrant": False}])
def test_checkpoint_sequentials_options_given_to_a_loop_name_the_right_function(option):
    x0 = torch.ones(3, dtype=F64, requires_grad=True)
    with pytest.raises(pebbles.PebblesTypeError, match=rf"^{next(iter(option))}=.* is an "
                       r"option of checkpoint_sequential .*pass budget=STATES or memory="):
        checkpointed_loop(lambda i, x: x * 0.9, x0, 5, budget=2, **option)


def test_a_while_loop_that_runs_no_step_returns_x0_as_plain_autograd_does():
    """No step: x0 itself; it requires grad only where x0 does (the parameters are not
    reached), so a backward pass through it fails as plain autograd's would."""
    w = torch.randn(3, 3, dtype=F64, requires_grad=True)
    x0 = torch.randn(3, dtype=F64)
    y = checkpointed_while_loop(lambda i, x: i < 0, lambda i, x, w: w @ x, x0, w, budget=2)
    assert torch.equal(y, x0) and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()
    x1 = x0.clone().requires_grad_()
    checkpointed_while_loop(lambda i, x: i < 0, lambda i, x, w: w @ x, x1, w,
                            budget=2).sum().backward()
    assert torch.equal(x1.grad, torch.ones(3, dtype=F64)) and w.grad is None


class Emit(torch.nn.Module):
    """A layer that hands its own parameter on with the activation."""

    def __init__(self):
        super().__init__()
        self.pos = torch.nn.Parameter(torch.randn(4, dtype=F64))

    def forward(self, x):
        return x, self.pos


@pytest.mark.parametrize("kw", [{"budget": 2}, {"budget": 3, "tape": False},
                                {"segments": 2}, {"memory": math.inf}, {"memory": 1e6}])
def test_a_leaf_a_layer_or_step_returns_gets_its_gradient(kw):
    """An output that is itself a leaf requiring grad (a parameter handed on) is reached
    by its backward step: its gradient is plain autograd's, not lost."""
    torch.manual_seed(0)
    use = torch.nn.Linear(4, 4).double()
    nets = [[torch.nn.Linear(4, 4).double(), Emit(), lambda s: torch.tanh(use(s[0]) + s[1])],
            [torch.nn.Linear(4, 4).double(), torch.nn.Tanh(), Emit()]]  # the last returns it
    for net in nets:
        x = torch.randn(2, 4, dtype=F64, requires_grad=True)
        tensors = [x, *(p for m in net if isinstance(m, torch.nn.Module)
                        for p in m.parameters())]
        want = grads_of(lambda net=net, x=x: functools.reduce(lambda h, f: f(h), net, x),
                        tensors)
        got = grads_of(lambda net=net, x=x: checkpoint_sequential(
            net, x, params=use.parameters(), **kw), tensors)
        assert_close(got, want)
    w = torch.linspace(0.5, 1.5, 3, dtype=F64, requires_grad=True)
    step = lambda i, s, w: (torch.sin(s[0] * s[1]) + w, w)  # noqa: E731  # w on, as it is
    s0 = (torch.ones(3, dtype=F64, requires_grad=True), w)
    loop_kw = {"budget": 2} if "budget" in kw else {"memory": 1e6}
    want = grads_of(lambda: plain_loop(step, s0, 6, w)[0], [s0[0], w])
    assert_close(grads_of(lambda: checkpointed_loop(step, s0, 6, w, **loop_kw)[0],
                          [s0[0], w]), want)


def test_a_leaf_a_step_returns_without_passing_it_is_reported():
    v = torch.randn(3, dtype=F64, requires_grad=True)  # not passed
    w = torch.randn(3, dtype=F64, requires_grad=True)
    out = checkpointed_loop(lambda i, s, w: (torch.sin(s[0] * w) + s[1], v),
                            (torch.randn(3, dtype=F64), torch.zeros(3, dtype=F64)), 5, w,
                            budget=2)
    with pytest.raises(pebbles.PebblesValueError, match=r"shape \(3,\) that requires grad "
                                                        r"but was not passed"):
        out[0].sum().backward()


class CountedLayer(torch.nn.Module):
    """A module counting its calls."""

    def __init__(self, module):
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, *args):
        self.calls += 1
        return self.module(args[-1])


def test_frozen_parameters_and_buffers_the_graph_saves_keep_taping():
    """A graph that saves a frozen parameter or a buffer (BatchNorm in eval mode) saves
    nothing of its own: taping stays on, so the step counts are those of trainable
    ones (taping off replays every taped step once more), and the gradients plain
    autograd's."""
    def loop_calls(frozen):
        torch.manual_seed(0)
        step = CountedLayer(torch.nn.Linear(8, 8, bias=False).double())
        step.module.weight.requires_grad_(not frozen)
        x0 = torch.randn(4, 8, dtype=F64, requires_grad=True)
        want = grads_of(lambda: plain_loop(lambda i, x: x + step.module(x), x0, 20), [x0])
        step.calls = 0
        got = grads_of(lambda: checkpointed_loop(lambda i, x, *p: x + step(x), x0, 20,
                                                 *step.parameters(), budget=4), [x0])
        assert_close(got, want)
        return step.calls

    def chain_calls(make, tape=True):
        torch.manual_seed(0)
        layers = [CountedLayer(make(k).double()) for k in range(12)]
        x = torch.randn(8, 16, dtype=F64, requires_grad=True)
        want = grads_of(lambda: functools.reduce(lambda h, f: f(h), layers, x), [x])
        for f in layers:
            f.calls = 0
        got = grads_of(lambda: checkpoint_sequential(layers, x, budget=3, tape=tape), [x])
        assert_close(got, want)
        return sum(f.calls for f in layers)

    assert loop_calls(frozen=True) == loop_calls(frozen=False)
    linear = lambda k: torch.nn.Linear(16, 16)  # noqa: E731
    frozen = lambda k: linear(k).requires_grad_(k >= 6)  # noqa: E731
    normed = lambda k: linear(k) if k % 2 == 0 else torch.nn.BatchNorm1d(16).eval()  # noqa: E731
    assert chain_calls(frozen) == chain_calls(normed) == chain_calls(linear)
    assert chain_calls(linear) < chain_calls(linear, tape=False)


class Rescaling(torch.nn.Module):
    """A step that changes a buffer in place, which its graph saves (``x * scale``)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8).double()
        self.register_buffer("scale", torch.full((8,), 0.5, dtype=F64))

    def forward(self, i, x):
        with torch.no_grad():
            self.scale.mul_(1.01)
        return self.lin(x) * self.scale


def test_a_taped_graph_saving_a_buffer_the_step_changes_in_place_raises():
    """Taped graphs may now save buffers; one that a later step changes in place raises
    autograd's error, as plain autograd does, rather than a wrong gradient."""
    x0 = torch.randn(4, 8, dtype=F64, requires_grad=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        plain_loop(Rescaling(), x0, 20).sum().backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*module buffer"):
        checkpointed_loop(Rescaling(), x0, 20, budget=4).sum().backward()


def failing_at(k, step):
    """``step`` that raises ValueError("boom") at step ``k``."""
    def failing(i, *args):
        if i == k:
            raise ValueError("boom")
        return step(i, *args)
    return failing


def test_a_cached_block_of_another_thread_keeps_its_count():
    """pebbles switched parametrize's caching off by saving and writing back its counter:
    a parametrize.cached() another thread entered meanwhile left it at -1 (truthy), and
    parametrized weights stayed cached for the rest of the process."""
    import threading

    from torch.nn.utils import parametrize

    entered, release = threading.Event(), threading.Event()

    def slow(x):
        entered.set()
        release.wait(5)
        return x * 2

    layers = [torch.nn.Linear(3, 3), slow, torch.nn.Linear(3, 3)]
    x = torch.ones(2, 3, requires_grad=True)
    worker = threading.Thread(
        target=lambda: checkpoint_sequential(layers, x, budget=2).sum().backward())
    worker.start()
    assert entered.wait(5)
    with parametrize.cached():
        release.set()
        worker.join(10)
    assert parametrize._cache_enabled == 0


def test_parametrize_cached_gives_plain_autograds_gradients():
    """Inside parametrize.cached() the forward pass (no graph) cached weights without a
    graph and the replays reused them: their parameters got no gradient, silently. Then
    such calls were refused, even those that use no parametrization. Caching is now off
    while pebbles runs steps, and the gradients are plain autograd's under cached()."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import orthogonal

    torch.manual_seed(0)
    cell = CountedLayer(orthogonal(torch.nn.Linear(4, 4).double()))
    original = cell.module.parametrizations.weight.original
    h0 = torch.randn(2, 4, dtype=F64, requires_grad=True)
    step = lambda i, h, *p: cell(h)  # noqa: E731
    ps = list(cell.parameters())
    with parametrize.cached():
        want = grads_of(lambda: plain_loop(step, h0, 8), [h0, original])
        for run in (lambda: checkpointed_loop(step, h0, 8, *ps, budget=2),
                    lambda: checkpointed_loop(step, h0, 8, *ps, budget=3, tape=False),
                    lambda: checkpointed_loop(step, h0, 8, *ps, memory=1e6),
                    lambda: checkpointed_while_loop(lambda i, h: i < 8, step, h0, *ps,
                                                    budget=2),
                    lambda: checkpoint_sequential([cell] * 8, h0, budget=2),
                    lambda: checkpoint_sequential([cell] * 8, h0, memory=1e6)):
            assert_close(grads_of(run, [h0, original]), want)
            assert parametrize._cache_enabled == 1  # switched back on after the call
        with pytest.raises(ValueError, match="boom"):  # and after a step that raises
            checkpointed_loop(failing_at(5, step), h0, 8, *ps, budget=2)
        assert parametrize._cache_enabled == 1
    b = cell.module.bias
    with parametrize.cached():  # computed once before the call and passed
        w = cell.module.weight
        got = grads_of(lambda: checkpointed_loop(lambda i, h, w, b: torch.tanh(h) @ w.T + b,
                                                 h0, 8, w, b, budget=2), [h0, original])
    want = grads_of(lambda: plain_loop(lambda i, h: torch.tanh(h) @ cell.module.weight.T + b,
                                       h0, 8), [h0, original])
    assert_close(got, want)
    plain = torch.nn.Linear(4, 4).double()  # a loop using no parametrization in cached()
    want = grads_of(lambda: plain_loop(lambda i, h: torch.tanh(plain(h)), h0, 8), [h0])
    with parametrize.cached():
        got = grads_of(lambda: checkpointed_loop(lambda i, h, *p: torch.tanh(plain(h)), h0,
                                                 8, *plain.parameters(), budget=3), [h0])
    assert_close(got, want)


@pytest.mark.parametrize("loop", ["for", "while"])
def test_params_slips_are_told_their_fix(loop):
    """model.parameters() or a list given as one parameter is told to unpack it; a number
    where parameters go (the budget given positionally) that budget is keyword-only."""
    m = torch.nn.Linear(3, 3)
    x0 = torch.randn(3, requires_grad=True)
    call = ((lambda *a: checkpointed_loop(lambda i, x, *p: m(x), x0, 5, *a, budget=3))
            if loop == "for" else
            (lambda *a: checkpointed_while_loop(lambda i, x: i < 5, lambda i, x, *p: m(x), x0,
                                                *a, budget=3)))
    name = "checkpointed_loop(step, x0, n," if loop == "for" else \
        "checkpointed_while_loop(cond, step, x0,"
    for bad, kind in ((m.parameters(), "a generator"), (list(m.parameters()), "a list")):
        with pytest.raises(pebbles.PebblesTypeError,
                           match=rf"^params\[0\] is {kind}; .*unpack them into the call: "
                                 + re.escape(f"{name} *model.parameters()")):
            call(bad)
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"^params\[0\] is an int; .*keyword-only \(budget=10, not 10\)"):
        call(10)
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"^params\[0\] is an? .*; pass a NumPy array as a tensor: "
                             r"torch.as_tensor\(array\) \(shape \(3,\)\)$"):
        call(np.ones(3))
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"^params\[0\] is a generator; .*params=model.parameters\(\)"):
        checkpoint_sequential([m], x0, budget=1, params=[m.parameters()])


class Head(torch.nn.Module):
    """The first 8 features: a view that keeps the whole wide input alive."""

    def forward(self, x):
        return x[:, :8]


def measured_peak(fn):
    """The most bytes the CPU allocator held at once while ``fn`` ran (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    held = most = 0
    for _, nbytes in events:
        held += nbytes
        most = max(most, held)
    return most


def test_view_outputs_are_sized_by_their_storage_and_the_limit_holds():
    """A layer returning a view of a wide output keeps the wide storage alive: its size is
    that storage's bytes, and the measured peak stays within memory= (it was 3.3x the
    limit); stored outputs (a kept step's, one an output shares) are let go in time."""
    torch.manual_seed(0)
    layers = [f for _ in range(10) for f in (torch.nn.Linear(8, 1024), Head())]
    x = torch.randn(32, 8, requires_grad=True)
    costs = profile_layers(layers, x)
    wide = 32 * 1024 * 4
    assert costs.sizes.tolist() == [x.nbytes] + [wide] * 20
    unit = pebbles.ChainCosts(np.ones(20), np.full(20, 2.0), costs.sizes, graph=costs.graph,
                              grads=costs.grads, cotangents=costs.cotangents)

    def run(memory):
        loss = checkpoint_sequential(layers, x, memory=memory, costs=unit).sum()
        loss.backward()

    for factor in (1.0, 1.5, 2.0):
        memory = factor * pebbles.hetero_min_memory(unit)
        assert measured_peak(lambda m=memory: run(m)) <= memory


def test_a_long_loop_under_memory_solves_at_the_levels_its_tables_allow(monkeypatch):
    """memory= on a loop whose tables at the exact levels pass the size guard rounds the
    sizes more coarsely instead (the limit still holds); past the guard at any levels,
    the error names budget= (checkpointed_loop has no levels=)."""
    n = 60
    monkeypatch.setattr(pebbles._chain, "_MAX_WORK", n * n // 2 * 11)  # 10 levels fit
    solved = []
    real = pebbles.torch._solve_costs
    monkeypatch.setattr(pebbles.torch, "_solve_costs",
                        lambda *a: solved.append(a) or real(*a))
    w = torch.tensor(0.99, dtype=F64, requires_grad=True)
    x0 = torch.randn(16, dtype=F64, requires_grad=True)
    step = lambda i, x, w: torch.sin(x) * w  # noqa: E731  # saves x (the input) and w
    memory = 30 * x0.nbytes + 7
    want = grads_of(lambda: plain_loop(step, x0, n, w), [x0, w])
    assert_close(grads_of(lambda: checkpointed_loop(step, x0, n, w, memory=memory),
                          [x0, w]), want)
    (costs, limit, levels, tape), = solved
    assert levels == 10 and limit <= memory
    moves = pebbles.hetero_optimal(costs, limit, levels=levels, tape=tape)
    assert pebbles.simulate(moves, n, costs=costs).peak_bytes <= memory
    monkeypatch.setattr(pebbles._chain, "_MAX_WORK", n * n // 2)  # no level fits
    with pytest.raises(pebbles.PebblesValueError,
                       match=rf"^memory={memory} bytes with n={n} steps: .*size guard at any "
                             r"rounding.*pass budget=K instead .*budget=30 for 3840 bytes"):
        checkpointed_loop(step, x0, n, w, memory=memory)


def test_misleading_messages_name_the_argument_that_fixes_them(monkeypatch):
    x = torch.randn(2, 3, requires_grad=True)
    net = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(4)])
    with pytest.raises(pebbles.InfeasibleBudgetError,
                       match=r"^budget=-1 must be >= 2, the least budget that finishes n=4 "
                             r"layers; pass budget=2 or more"):
        checkpoint_sequential(net, x, budget=-1)
    with pytest.raises(pebbles.InfeasibleBudgetError,
                       match=r"^budget=-3 must be >= 3, .* n=5 steps with method='periodic'; pass "
                             r"budget=3 or more"):
        checkpointed_loop(lambda i, x: x * 2, x, 5, budget=-3, method="periodic", every=2)
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"^step 0 returned None \(a function without a return statement "
                             r"returns None\); a step must return the next state"):
        checkpointed_loop(lambda i, x: None, x, 3, budget=2)
    with pytest.raises(pebbles.PebblesTypeError, match=r"^layer 1 \(functions\[1\]\) returned "
                                                       r"a float; a layer must return"):
        checkpoint_sequential([torch.nn.Tanh(), lambda x: 1.0], x, budget=1)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^memory=10 bytes cannot finish the chain of n=4 layers: some "
                             r"layer holds"):
        checkpoint_sequential(net, x, memory=10)
    monkeypatch.setattr(pebbles._chain, "_MAX_WORK", 4**3 // 6 * 8)  # 7 levels fit
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^memory=1000000 bytes with n=4 layers at levels=100: .*size "
                             r"guard .*pass levels=7 or fewer .*budget=K instead") as err:
        checkpoint_sequential(net, x, memory=1e6)
    assert "pebbles.schedule" not in str(err.value)


def test_loop_memory_sizes_states_by_the_storage_they_keep(monkeypatch):
    """A step returning a view of a wide tensor (lin(x)[:, :8]) keeps the wide storage
    alive with each stored state: memory= sizes the states by it (they were sized by
    x0's elements, and the measured peak was 5x the limit)."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 1024)
    x0 = torch.randn(32, 8, requires_grad=True)
    step = lambda i, x, *p: lin(x)[:, :8]  # noqa: E731
    wide = 32 * 1024 * 4
    solved = []
    real = pebbles.torch._solve_costs
    monkeypatch.setattr(pebbles.torch, "_solve_costs", lambda *a: solved.append(a) or real(*a))
    memory = 4 * x0.nbytes + 4 * wide
    run = lambda: checkpointed_loop(step, x0, 20, *lin.parameters(),  # noqa: E731
                                    memory=memory).sum().backward()
    run()
    assert solved[0][0].sizes.tolist() == [wide] * 21
    assert measured_peak(run) <= 1.5 * memory  # a backward step's temporaries come on top


class Replacing(torch.nn.Module):
    """A step ``(i, x)`` or a layer ``(x)`` that gives its buffer a new tensor
    (self.scale = self.scale * 0.9)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(16, 16).double()
        self.register_buffer("scale", torch.ones(16, dtype=F64))

    def forward(self, *args):
        self.scale = self.scale * 0.9
        return self.lin(args[-1]) * self.scale


def test_a_step_replacing_a_buffer_is_refused():
    """The in-place error advised self.b = self.b * 0.9, which gave wrong gradients (off by
    1.5e-2: every replay updated the new buffer again). A replaced buffer is refused;
    without gradients (each step once) it is fine."""
    x0 = torch.randn(2, 16, dtype=F64, requires_grad=True)
    for kw in ({"budget": 2}, {"budget": 2, "tape": False}, {"budget": 10},
               {"memory": 1e6}):
        with pytest.raises(pebbles.PebblesValueError,
                           match=r"^step 0 replaced the buffer 'scale' of Replacing "
                                 r"\(self.scale = ...\); a step must update a module buffer "
                                 r"in place"):
            checkpointed_loop(Replacing(), x0, 6, **kw)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^layer 0 \(functions\[0\]\) replaced the buffer 'scale'"):
        checkpoint_sequential([Replacing(), torch.nn.Tanh()], x0, budget=2)
    cell, ref = Replacing(), Replacing()
    ref.load_state_dict(cell.state_dict())
    with torch.no_grad():
        got = checkpointed_loop(cell, x0, 6, budget=2)
        want = plain_loop(ref, x0, 6)
    assert torch.equal(got, want) and torch.equal(cell.scale, ref.scale)


class Scaled(torch.nn.Module):
    """A layer that reads its buffer (x * self.scale) and never replaces it itself."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.full((16,), 0.5, dtype=F64))

    def forward(self, x):
        return torch.tanh(x * self.scale)

    def step(self, i, x):  # a loop's step, the module's own method
        return self(x)


@pytest.mark.parametrize("at, kw", [(1, {"budget": 2, "tape": False}),  # first run
                                   (2, {"budget": 2, "tape": False}),  # its replay
                                   (1, {"budget": 5})])  # each layer runs once, taped
def test_a_layer_replacing_another_layers_buffer_is_refused(at, kw):
    """After a layer run only its own module's buffers are checked (every tracked buffer
    after every run was O(layers^2) a pass); a function closing over another layer's
    module and replacing its buffer is refused in the pass it does so (in the backward
    pass when only a replay does), also when that module does not run again."""
    held = Scaled()
    runs = []

    def closure(x):
        runs.append(1)
        if len(runs) == at:
            held.scale = held.scale * 0.9
        return x * 2

    x = torch.randn(2, 16, dtype=F64, requires_grad=True)
    net = [held, closure, torch.nn.Tanh(), torch.nn.Tanh(), torch.nn.Tanh()]
    with pytest.raises(pebbles.PebblesValueError,
                       match=rf"^in the {('forward', 'backward')[at - 1]} pass, a layer other "
                             r"than the module's own \(e\.g\. a function that closes over the "
                             r"module\) replaced the buffer 'scale' of Scaled \(self.scale = "):
        checkpoint_sequential(net, x, **kw).sum().backward()


@pytest.mark.parametrize("at", [3, 1])
def test_a_while_loops_cond_replacing_a_buffer_is_refused_naming_it(at):
    """cond(n, x_n) runs after the last step's check: a buffer it replaced went unseen,
    and the replays ran with the new one (wrong gradients); the check of every buffer
    when the pass ends refuses it. Replaced before a step, it is told apart from the
    step (checked before the step runs too)."""
    cell = Scaled()
    x0 = torch.randn(2, 16, dtype=F64, requires_grad=True)

    def cond(i, x):
        if i == at:
            cell.scale = cell.scale * 0.9
        return i < 3

    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^in the forward pass, code outside the step \(a while loop's "
                             r"cond, a closure\) replaced the buffer 'scale' of Scaled"):
        checkpointed_while_loop(cond, cell.step, x0, budget=2)


def test_each_layer_run_checks_only_its_own_modules_buffers():
    """The check for replaced buffers (``module._buffers.get``, the only ``get`` on them)
    looks at the buffers of the layer that runs, before and after the run, and at every
    buffer once when each pass ends: linear in the layer runs, not runs x layers."""
    class Gets(dict):
        count = 0

        def get(self, *args):
            Gets.count += 1
            return super().get(*args)

    torch.manual_seed(0)
    n = 40
    net = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 4))
                                for _ in range(n)]).double()
    runs = []
    for layer in net:
        layer[0]._buffers = Gets(layer[0]._buffers)  # 3: running mean, variance, count
        layer.register_forward_pre_hook(lambda *_: runs.append(1))
    x = torch.randn(6, 4, dtype=F64, requires_grad=True)
    checkpoint_sequential(net, x, budget=4).sum().backward()
    assert len(runs) > 2 * n
    assert Gets.count == 2 * 3 * len(runs) + 2 * 3 * n  # each run; each pass's end


class Normed(torch.nn.Module):
    """A step with a BatchNorm in training mode (running statistics updated in place)."""

    def __init__(self, c):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(c).double()

    def forward(self, i, x):
        return torch.tanh(self.bn(x)) * 0.5 + x


def test_restoring_buffers_keeps_their_versions():
    """Putting the buffers back after replays bumped their version counters, so a graph
    that saved them (a plain use of the module, or a first call's) raised a false
    "modified by an inplace operation"."""
    torch.manual_seed(0)
    cell = Normed(8)
    ref = copy.deepcopy(cell)
    x0 = torch.randn(6, 8, dtype=F64, requires_grad=True)
    want = grads_of(lambda: plain_loop(ref, plain_loop(ref, ref(0, x0), 10), 10), [x0])
    got = grads_of(lambda: checkpointed_loop(cell, checkpointed_loop(cell, cell(0, x0), 10,
                                                                    budget=2), 10, budget=2),
                   [x0])
    assert_close(got, want)
    for a, b in zip(cell.buffers(), ref.buffers(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("n, budget, tape", [(1, 2, False), (3, 2, True), (3, 2, False),
                                             (5, 6, False)])
def test_a_computed_parameter_handed_on_as_state_is_differentiated(n, budget, tape):
    """A step returning a computed parameter (p = w * 2) unchanged as part of the state:
    the output was the parameter's leaf alias, which autograd then gave the Function's
    grad_fn, so the replays found it no longer a leaf ("was not passed", tape=False)."""
    torch.manual_seed(0)
    w = torch.randn(5, dtype=F64, requires_grad=True)
    x0 = torch.randn(5, dtype=F64, requires_grad=True)
    step = lambda i, s, p: (s[0] * s[1] + p.sin(), p)  # noqa: E731
    s0 = (x0, torch.zeros(5, dtype=F64))
    loss = lambda s: (s[0] ** 2).sum() + (s[1] ** 3).sum()  # noqa: E731
    want = grads_of(lambda: loss(plain_loop(step, s0, n, w * 2)), [x0, w])
    got = grads_of(lambda: loss(checkpointed_loop(step, s0, n, w * 2, budget=budget,
                                                  tape=tape)), [x0, w])
    assert_close(got, want)


def test_a_long_loop_whose_store_all_fits_builds_no_tables(monkeypatch):
    """memory= on a long untaped loop (n = 3000) was refused for the size guard even
    with memory=inf, where storing every state fits: that is the optimum, run without
    tables. A suggested budget is at most n."""
    monkeypatch.setattr(pebbles.torch, "_solve_costs", None)  # no tables may be built
    w = torch.tensor(0.999, dtype=F64, requires_grad=True)
    x0 = torch.randn(4, dtype=F64, requires_grad=True)
    step = lambda i, x, w: x * w  # noqa: E731
    want = grads_of(lambda: plain_loop(step, x0, 3000, w), [x0, w])
    for kw in ({"memory": 1e9, "tape": False}, {"memory": math.inf, "tape": False},
               {"memory": math.inf, "graph_bytes": 0}):
        got = grads_of(lambda kw=kw: checkpointed_loop(step, x0, 3000, w, **kw), [x0, w])
        assert_close(got, want)
    hits = pebbles.torch._each_step_once.cache_info().hits  # a training loop's next call
    grads_of(lambda: checkpointed_loop(step, x0, 3000, w, memory=1e9, tape=False), [x0, w])
    assert pebbles.torch._each_step_once.cache_info().hits == hits + 1
    n = 60
    monkeypatch.setattr(pebbles._chain, "_MAX_WORK", n * n // 2)  # no level fits
    with pytest.raises(pebbles.PebblesValueError, match=r"budget=60 for 1920 bytes\)$"):
        checkpointed_loop(step, x0, n, w, memory=70 * x0.nbytes, graph_bytes=x0.nbytes)


def handing_on(i, s, w):
    """A step that hands its state's v and dt on unchanged and computes t from dt only."""
    x, v, t, dt, k = s
    return torch.sin(x * w) + v * t, v, t + dt, dt, k + 1


class HandOn(torch.nn.Module):
    """A layer returning its buffer and a frozen parameter besides its activation."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4).double()
        self.register_buffer("b", torch.ones(4, dtype=F64))
        self.frozen = torch.nn.Parameter(torch.ones(4, dtype=F64), requires_grad=False)

    def forward(self, x):
        return torch.tanh(self.lin(x)), self.b, self.frozen


@pytest.mark.parametrize("kw", [{"budget": 2}, {"budget": 2, "tape": False}, {"budget": 8},
                                {"memory": 1e6}])
def test_parts_handed_on_unchanged_require_grad_as_in_plain_autograd(kw):
    """A part every step hands on unchanged (a constant dt), a buffer or a frozen parameter
    a layer returns, came back requiring grad; plain autograd returns that tensor itself:
    now so does requires_grad (False, or True where x0's part requires grad). A part the
    steps compute from such tensors only (t + dt) still requires grad, unlike plain
    autograd (knowing it would take a graph of every step), and gets no gradient: the
    gradients are plain autograd's with that part in the loss."""
    w = torch.tensor(0.9, dtype=F64, requires_grad=True)
    x0 = torch.linspace(0.1, 0.4, 3, dtype=F64, requires_grad=True)
    loss = lambda s: (s[0] ** 2).sum() + s[1].sum() + s[2] * 3  # noqa: E731
    for v_grad in (False, True):
        v0 = torch.full((3,), 0.5, dtype=F64, requires_grad=v_grad)
        s0 = (x0, v0, torch.zeros((), dtype=F64), torch.tensor(0.1, dtype=F64), torch.tensor(0))
        wrt = [x0, w, *([v0] if v_grad else [])]
        want = plain_loop(handing_on, s0, 7, w)
        assert [t.requires_grad for t in want] == [True, v_grad, False, False, False]
        while_kw = {"budget": kw.get("budget", 8), "tape": kw.get("tape", True)}
        for run in (functools.partial(checkpointed_loop, handing_on, s0, 7, w, **kw),
                    functools.partial(checkpointed_while_loop, lambda i, s: i < 7,
                                      handing_on, s0, w, **while_kw)):
            got = run()
            assert [t.requires_grad for t in got] == [True, v_grad, True, False, False]
            assert got[1] is not v0 and torch.equal(got[1], v0) and torch.equal(got[3], s0[3])
            assert_close(grads_of(lambda run=run: loss(run()), wrt),
                         grads_of(lambda s0=s0: loss(plain_loop(handing_on, s0, 7, w)), wrt))
    torch.manual_seed(0)
    net = [torch.nn.Linear(4, 4).double(), HandOn(), lambda s: (s[0] * 2, s[1], s[2]),
           lambda s: (torch.sin(s[0]), s[1], s[2])]
    x = torch.randn(2, 4, dtype=F64, requires_grad=True)
    want = functools.reduce(lambda h, f: f(h), net, x)
    got = checkpoint_sequential(net, x, **kw)
    assert [t.requires_grad for t in got] == [t.requires_grad for t in want] == [True, False,
                                                                                 False]


@pytest.mark.parametrize("tape", [True, False])
def test_a_closed_over_tensor_handed_on_stays_the_users(tape):
    """A step or layer handing on a tensor it closes over (a mask) made that tensor an
    output of the autograd Function: autograd gave the user's tensor a grad_fn, and the
    next backward pass (or the next call) was refused for a tensor "that requires grad
    but was not passed"."""
    mask = torch.tensor([1.0, 0.0, 1.0], dtype=F64)
    step = lambda i, s: (torch.sin(s[0]) * mask, mask)  # noqa: E731
    for _ in range(2):  # the second call sees the mask as the first left it
        x0 = torch.linspace(0.1, 0.3, 3, dtype=F64, requires_grad=True)
        s0 = (x0, torch.zeros(3, dtype=F64))
        want = grads_of(lambda s0=s0: plain_loop(step, s0, 4)[0].sum(), [x0])
        for run in (lambda s0=s0: checkpointed_loop(step, s0, 4, budget=2, tape=tape),
                    lambda s0=s0: checkpointed_while_loop(lambda i, s: i < 4, step, s0,
                                                          budget=2, tape=tape)):
            assert_close(grads_of(lambda run=run: run()[0].sum(), [x0]), want)
            assert mask.is_leaf and not mask.requires_grad and mask.grad_fn is None
    t = torch.ones(4, dtype=F64)
    net = [torch.nn.Linear(4, 4).double(), lambda h: (torch.tanh(h), t),
           lambda s: (s[0] * 2, s[1])]
    x = torch.randn(2, 4, dtype=F64, requires_grad=True)
    want = grads_of(lambda: functools.reduce(lambda h, f: f(h), net, x)[0].sum(), [x])
    for _ in range(2):
        out = checkpoint_sequential(net, x, budget=3, tape=tape)
        assert t.is_leaf and not t.requires_grad and torch.equal(out[1], t)
        assert_close(grads_of(lambda: checkpoint_sequential(net, x, budget=3,
                                                            tape=tape)[0].sum(), [x]), want)
