"""pebbles.torch at the edges of its contract: steps that make a graph of their own,
tensors a step keeps outside its state, an expanded x0 under memory=, a rollout that
wants no gradient."""

from __future__ import annotations

import weakref

import pytest
import torch

import pebbles
from pebbles.torch import checkpoint_sequential, checkpointed_loop, checkpointed_while_loop

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def energy_step(net, inputs_with_graph):
    """A Hamiltonian step run under its own enable_grad as a whole (its force comes from
    torch.autograd.grad); records whether a run without a graph got a state carrying
    one."""
    def step(i, s, *params):
        q, p = s
        if not torch.is_grad_enabled():
            inputs_with_graph.append(q.grad_fn is not None or p.grad_fn is not None)
        with torch.enable_grad():
            qq = q if q.requires_grad else q.detach().requires_grad_()
            force, = torch.autograd.grad(net(qq).sum(), qq, create_graph=True)
            p = p - 0.05 * force
            return qq + 0.05 * p, p
    return step


def nodes_from(tensors):
    """The autograd nodes the tensors' graphs reach."""
    seen, todo = set(), [t.grad_fn for t in tensors if t.grad_fn is not None]
    while todo:
        node = todo.pop()
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            todo += [nxt for nxt, _ in node.next_functions]
    return len(seen)


@pytest.mark.parametrize("kw", [dict(budget=2), dict(budget=3, tape=False),
                                dict(memory=1e9), dict(memory=2000, graph_bytes=0),
                                "while"])
def test_a_step_with_its_own_graph_stores_states_without_one(kw):
    """A step under its own enable_grad returns a state with a grad_fn even in a run
    without a graph; stored as it is, each state would keep its step's graph and,
    through its input, every earlier step's alive until the backward pass (n = 100,
    budget 5, states of 2 MiB: 400-650 MiB more held). The runs without a graph (forward
    pass, online forward pass, replays) hand on and store it detached; the gradients
    stay plain autograd's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 1)).double()
    params = list(net.parameters())
    q0 = torch.randn(4, 3, dtype=F64, requires_grad=True)
    p0 = torch.randn(4, 3, dtype=F64, requires_grad=True)
    wrt, n = (q0, p0, *params), 12
    seen: list[bool] = []
    step = energy_step(net, seen)
    s = (q0, p0)
    for i in range(n):
        s = step(i, s, *params)
    want = torch.autograd.grad(sum(t.pow(2).sum() for t in s), wrt, allow_unused=True)
    seen.clear()
    if kw == "while":
        out = checkpointed_while_loop(lambda i, s: i < n, step, (q0, p0), *params, budget=3)
    else:
        out = checkpointed_loop(step, (q0, p0), n, *params, **kw)
    stored = [t for slot in out[0].grad_fn.slots if slot is not None for t in slot]
    assert nodes_from(stored) == 0
    got = torch.autograd.grad(sum(t.pow(2).sum() for t in out), wrt, allow_unused=True)
    assert not any(seen) and (seen or kw == dict(memory=1e9))  # 1e9: every graph kept
    assert got[-1] is want[-1] is None  # the force does not depend on the last bias
    torch.testing.assert_close(got[:-1], want[:-1], rtol=1e-12, atol=1e-12)


def test_a_chain_layer_with_its_own_graph_stores_outputs_without_one():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 8).double()

    def layer(h):
        with torch.enable_grad():
            return torch.tanh(lin(h))

    x = torch.randn(2, 8, dtype=F64, requires_grad=True)
    want = torch.autograd.grad(layer(layer(layer(layer(x)))).sum(), (x, *lin.parameters()))
    y = checkpoint_sequential([layer] * 4, x, budget=2, params=list(lin.parameters()))
    stored = [t for slot in y.grad_fn.slots if slot is not None for t in slot]
    assert nodes_from(stored) == 0
    got = torch.autograd.grad(y.sum(), (x, *lin.parameters()))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_an_expanded_x0_is_sized_by_its_elements_under_graph_bytes():
    """memory= with graph_bytes= sizes a state by x0's elements where they exceed its
    storage: an expanded x0 holds one row, every later state all 64 (sized by storage,
    the schedule would store all 40 states under a limit of 6)."""
    torch.manual_seed(0)
    d, batch, n = 32, 64, 40
    w = (0.1 * torch.randn(d, d, dtype=F64)).requires_grad_()
    live: set = set()
    peak = [0]

    def step(i, x, w):
        y = x + torch.tanh(x @ w)
        ref = weakref.ref(y, live.discard)
        live.add(ref)
        peak[0] = max(peak[0], len(live))
        return y

    state = batch * d * 8
    ic = torch.randn(1, d, dtype=F64, requires_grad=True)
    y = checkpointed_loop(step, ic.expand(batch, d), n, w, memory=6 * state,
                          graph_bytes=state)
    y.sum().backward()
    assert peak[0] <= 6
    want = torch.autograd.grad(
        plain_loop(step, ic.expand(batch, d), n, w).sum(), (ic, w))
    torch.testing.assert_close((ic.grad, w.grad), want, rtol=1e-12, atol=1e-12)


def plain_loop(step, x, n, *params):
    for i in range(n):
        x = step(i, x, *params)
    return x


def trajectory_step(traj):
    def step(i, x, w):
        y = x + 0.1 * torch.tanh(x @ w)
        traj.append(y)
        return y
    return step


def test_a_kept_graph_freed_through_a_tensor_kept_outside_the_state_is_explained():
    """A loss over the states a step appended to a list ran backward through the graphs
    memory=inf kept, and the backward step then failed; its note blamed a parameter
    computed before the call."""
    w = (0.3 * torch.randn(4, 4, dtype=F64)).requires_grad_()
    x0 = torch.randn(3, 4, dtype=F64, requires_grad=True)
    traj: list = []
    y = checkpointed_loop(trajectory_step(traj), x0, 6, w, memory=float("inf"))
    loss = y.sum() + sum(t.sum() for t in traj)
    with pytest.raises(RuntimeError, match="second time") as err:
        loss.backward()
    note = "".join(err.value.__notes__)
    assert "backward steps of step 0 to step 5" in note
    assert "kept outside the state it returned" in note and "Carry it in the state" in note


@pytest.mark.parametrize("kw", [dict(budget=6), dict(memory=float("inf"))])
def test_a_kept_layer_graph_freed_through_a_forward_hook_is_explained(kw):
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh())
                                for _ in range(6)]).double()
    feats: list = []
    net[3].register_forward_hook(lambda m, i, o: feats.append(o))
    x = torch.randn(4, 8, dtype=F64, requires_grad=True)
    y = checkpoint_sequential(net, x, **kw)
    with pytest.raises(RuntimeError, match="second time") as err:
        (y.sum() + feats[-1].sum()).backward()  # the forward pass's (memory=: profiled)
    note = "".join(err.value.__notes__)
    assert "captured by a forward hook" in note and "was already freed" in note


def test_a_replayed_step_freeing_the_callers_graph_is_not_blamed_on_a_kept_graph():
    w = torch.tensor([0.1, 0.2, 0.3], dtype=F64, requires_grad=True)
    x0 = torch.ones(3, dtype=F64, requires_grad=True)
    w2 = w.exp()
    y = checkpointed_loop(lambda i, x, w: x * w2 + w, x0, 6, w, budget=2, tape=False)
    with pytest.raises(RuntimeError, match="second time") as err:
        y.sum().backward()
    note = "".join(err.value.__notes__)
    assert "A step (or layer) uses a tensor that was computed before the call" in note
    assert "kept outside" not in note


def test_a_rollout_without_gradients_is_told_to_use_no_grad():
    """Frozen parameters, x0 without grad, grad mode on: a step taking its force from a
    leaf it makes (create_graph=True) returns a state that requires grad. Refused as a
    tensor not passed; the message names torch.no_grad(), under which the rollout is the
    plain loop's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 1)).double().requires_grad_(False)

    def step(i, s):
        q, p = s
        with torch.enable_grad():
            qq = q.detach().requires_grad_()
            force, = torch.autograd.grad(net(qq).sum(), qq, create_graph=True)
        p = p - 0.05 * force
        return q + 0.05 * p, p

    s0 = (torch.randn(4, 3, dtype=F64), torch.randn(4, 3, dtype=F64))
    with pytest.raises(pebbles.PebblesValueError, match=r"run the call under torch\.no_grad"):
        checkpointed_loop(step, s0, 10, budget=3)
    with torch.no_grad():
        got = checkpointed_loop(step, s0, 10, budget=3)
        want = plain_loop(step, s0, 10)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


# -- the modules as the forward pass ran them -------------------------------------------

def blocks(n=6, drop=0.0):
    """A chain of small float64 blocks (Linear, Dropout, Tanh), the same for a seed."""
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch.nn.Sequential(
        torch.nn.Linear(4, 4), torch.nn.Dropout(drop), torch.nn.Tanh()) for _ in range(n)]
    ).double()


class Block(torch.nn.Module):
    """A loop's step as a module: ``step(i, x)``."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4).double()

    def forward(self, i, x):
        return torch.tanh(self.lin(x))


class Wrapped(torch.nn.Module):
    """A module whose forward is a pebbles call over ``inner`` (a chain, or a loop's step),
    or with ``plain`` the plain chain or loop."""

    def __init__(self, inner, loop, plain=False):
        super().__init__()
        self.inner, self.loop, self.plain = inner, loop, plain

    def forward(self, x):
        if self.plain:
            return plain_loop(self.inner, x, 6) if self.loop else self.inner(x)
        if self.loop:
            return checkpointed_loop(self.inner, x, 6, budget=2)
        return checkpoint_sequential(self.inner, x, budget=2)


def assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g is None) == (w is None)
        if g is not None:
            torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("frozen", [True, False])
def test_functional_call_replays_with_the_tensors_it_passed(loop, frozen):
    """The backward pass runs after functional_call has put the module's own tensors
    back; the replays use the tensors the forward pass used, which get their gradients,
    and the module keeps its own tensors."""
    from torch.func import functional_call
    inner = Block() if loop else blocks()
    inner.requires_grad_(not frozen)
    net = Wrapped(inner, loop)
    own = dict(net.named_parameters())
    given = {k: (v.detach() * 1.5).requires_grad_() for k, v in net.named_parameters()}
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    wrt = (x, *given.values())
    got = torch.autograd.grad(functional_call(net, given, (x,)).pow(2).sum(), wrt)
    plain = Wrapped(inner, loop, plain=True)
    want = torch.autograd.grad(functional_call(plain, given, (x,)).pow(2).sum(), wrt)
    assert_same(got, want)
    assert all(v is own[k] for k, v in net.named_parameters())


def test_a_replaced_parameter_leaves_the_replays_on_the_forward_pass_one():
    """A weight replaced between the passes (an EMA or frozen copy swapped in): the
    replays use the one the forward pass used, as plain autograd's saved tensors do,
    and the module keeps the new one."""
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    net, ref = blocks().eval(), blocks().eval()
    y = checkpoint_sequential(net, x, budget=2)
    wrt = (x, *net.parameters())
    new = torch.nn.Parameter(net[2][0].weight.detach() * 2, requires_grad=False)
    net[2][0].weight = new
    got = torch.autograd.grad(y.pow(2).sum(), wrt)
    want = torch.autograd.grad(ref(x).pow(2).sum(), (x, *ref.parameters()))
    assert_same(got, want)
    assert net[2][0].weight is new


def test_eval_between_the_passes_leaves_the_replays_in_training_mode():
    """net.train() at the forward pass, net.eval() before the backward pass: the replays
    draw the forward pass's dropout masks, as plain autograd's graph holds them, and
    every module is left in eval mode, also when a replay raises."""
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    net, ref = blocks(drop=0.3), blocks(drop=0.3)
    torch.manual_seed(1)
    y = checkpoint_sequential(net, x, budget=2)
    net.eval()
    got = torch.autograd.grad(y.pow(2).sum(), (x, *net.parameters()))
    torch.manual_seed(1)
    want = torch.autograd.grad(ref(x).pow(2).sum(), (x, *ref.parameters()))
    assert_same(got, want)
    assert not any(m.training for m in net.modules())

    def boom(module, args):  # in a replay (with a graph; tape=False: none before)
        if torch.is_grad_enabled():
            raise RuntimeError(f"boom, training={module.training}")
    net.train()
    y = checkpoint_sequential(net, x, budget=2, tape=False)
    net[0][0].register_forward_pre_hook(boom)
    net.eval()
    with pytest.raises(RuntimeError, match="boom, training=True"):
        torch.autograd.grad(y.sum(), x)
    assert not any(m.training for m in net.modules())


def test_requires_grad_switched_on_between_the_passes_keeps_the_forward_pass_one():
    """A frozen layer unfrozen between the passes gets no gradient (its forward pass
    recorded none), as with plain autograd, and stays unfrozen."""
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    net, ref = blocks(), blocks()
    net[1].requires_grad_(False)
    ref[1].requires_grad_(False)
    y = checkpoint_sequential(net, x, budget=2)
    net[1].requires_grad_(True)
    y.pow(2).sum().backward()
    ref(x).pow(2).sum().backward()
    assert net[1][0].weight.requires_grad and net[1][0].weight.grad is None
    assert_same([p.grad for p in net.parameters()], [p.grad for p in ref.parameters()])


@pytest.mark.parametrize("call", ["chain", "loop", "while"])
def test_torch_compile_runs_the_call_as_a_graph_break(call):
    """torch.compile of a function calling pebbles.torch runs the call eagerly: the
    gradients are plain autograd's."""
    net = blocks(4)
    w = torch.randn(4, 4, dtype=F64, requires_grad=True)
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)

    def step(i, s, w):
        return torch.tanh(s @ w)

    def run(x):
        if call == "chain":
            return checkpoint_sequential(net, x, budget=2)
        if call == "loop":
            return checkpointed_loop(step, x, 5, w, budget=2)
        return checkpointed_while_loop(lambda i, s: i < 5, step, x, w, budget=2)
    plain = net if call == "chain" else lambda x: plain_loop(step, x, 5, w)
    wrt = (x, w, *net.parameters())
    compiled = torch.compile(lambda x: run(x).pow(2).sum(), backend="eager")
    got = torch.autograd.grad(compiled(x), wrt, allow_unused=True)
    want = torch.autograd.grad(plain(x).pow(2).sum(), wrt, allow_unused=True)
    assert_same(got, want)


@pytest.mark.parametrize("kw", [dict(budget=2), dict(memory=1e6)])
def test_an_inference_tensor_input_is_refused_by_name(kw):
    """An input made under torch.inference_mode, used outside it in a call that makes a
    graph (its graphs would save it): an error naming the input and the fix."""
    with torch.inference_mode():
        x = torch.randn(3, 4, dtype=F64)
    with pytest.raises(pebbles.PebblesValueError, match=r"input is an inference tensor.*"
                                                          r"input\.clone\(\)"):
        checkpoint_sequential(blocks(3), x, **kw)
    with pytest.raises(pebbles.PebblesValueError, match=r"x0\[1\] is an inference tensor"):
        checkpointed_loop(Block(), (x.clone(), x), 3, **kw)


def test_a_cond_on_meta_tensors_is_refused():
    """cond's value decides whether a step runs: a meta tensor holds none."""
    x = torch.randn(3, 4, dtype=F64, device="meta")
    w = torch.randn(4, 4, dtype=F64, device="meta", requires_grad=True)
    with pytest.raises(pebbles.PebblesValueError, match="meta device"):
        checkpointed_while_loop(lambda i, s: s.sum() < 1, lambda i, s, w: s @ w, x, w,
                                budget=2)


def test_a_lazy_module_is_refused_until_initialized():
    """nn.LazyLinear has no weight before its first call: a call that makes a graph is
    refused by name with the fix; a plain pass initializes it, after which the chain's
    gradients are plain autograd's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.LazyLinear(4), torch.nn.Tanh())
                                for _ in range(4)]).double()
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    with pytest.raises(pebbles.PebblesValueError, match=r"layer 0 \(Sequential\): parameter "
                                                          r"0\.weight is uninitialized.*call "
                                                          r"the module once"):
        checkpoint_sequential(net, x, budget=2)
    with pytest.raises(pebbles.PebblesValueError, match=r"the step \(Sequential\)"):
        checkpointed_loop(net[1], x, 3, budget=2)
    with torch.no_grad():  # no graph: a plain pass, which initializes the modules
        assert torch.equal(checkpoint_sequential(net, x, budget=2), net(x))
    wrt = (x, *net.parameters())
    got = torch.autograd.grad(checkpoint_sequential(net, x, budget=2).pow(2).sum(), wrt)
    assert_same(got, torch.autograd.grad(net(x).pow(2).sum(), wrt))


def test_a_lazy_parameter_passed_by_hand_is_refused():
    """A lazy module's parameter passed in params= (no layer owns it): refused by its
    place among the parameters passed."""
    lazy = torch.nn.LazyLinear(4).double()
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    with pytest.raises(pebbles.PebblesValueError, match=r"parameter 0 passed is uninitialized"):
        checkpoint_sequential([torch.tanh] * 3, x, budget=2, params=[lazy.weight])


@pytest.mark.parametrize("kw", [dict(budget=3, tape=False), dict(budget=5)])
def test_a_forward_hook_changing_a_later_layer_stands_in_the_replays(kw):
    """A hook on layer 1 calls eval() on layer 4 while the forward pass runs: the record
    is taken when the pass ends, so the replays of layer 4 run in eval mode, as the
    forward pass did (plain autograd's gradients)."""
    def run(call):
        net = blocks(drop=0.3)

        def later_in_eval(module, args, out):
            net[4].eval()
        net[1].register_forward_hook(later_in_eval)
        torch.manual_seed(1)
        x = torch.randn(3, 4, dtype=F64, requires_grad=True)
        return torch.autograd.grad(call(net, x).pow(2).sum(), (x, *net.parameters()))

    assert_same(run(lambda net, x: checkpoint_sequential(net, x, **kw)),
                run(lambda net, x: net(x)))


def test_layers_appended_or_deleted_between_the_passes_leave_the_replays_alone():
    """nn.Sequential.append or del after the forward pass: the replays run the layers
    the forward pass ran; the changed Sequential is back in place afterwards."""
    class Body(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh()).double()

        def forward(self, i, s):
            return self.body(s)

    def run(checkpointed, change):
        torch.manual_seed(0)
        step = Body()
        x = torch.randn(3, 4, dtype=F64, requires_grad=True)
        y = checkpointed_loop(step, x, 5, budget=2) if checkpointed else \
            plain_loop(step, x, 5)
        size = change(step.body)
        got = torch.autograd.grad(y.pow(2).sum(), (x, *step.parameters()))
        assert len(step.body) == size
        return got

    def append(body):
        body.append(torch.nn.Tanh())
        return 3

    def delete(body):  # Sequential.__delitem__ puts a new (ordered) dict in place
        del body[1]
        return 1

    def delete_then_append(body):  # an OrderedDict's contents changed, then set back
        del body[1]
        body.append(torch.nn.Sigmoid())
        body.append(torch.nn.Tanh())
        return 3

    for change in (append, delete, delete_then_append):
        assert_same(run(True, change), run(False, change))


def test_an_ordered_dict_of_layers_changed_between_the_passes_keeps_its_order():
    """Sequential.pop before the call leaves an OrderedDict of layers; a layer appended
    between the passes: the replays run the forward pass's layers in order."""
    class Body(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(),
                                            torch.nn.Sigmoid(), torch.nn.Tanh()).double()
            self.body.pop(2)

        def forward(self, i, s):
            return self.body(s)

    def run(checkpointed):
        torch.manual_seed(0)
        step = Body()
        x = torch.randn(3, 4, dtype=F64, requires_grad=True)
        y = checkpointed_loop(step, x, 5, budget=2) if checkpointed else \
            plain_loop(step, x, 5)
        step.body.append(torch.nn.Softsign())
        got = torch.autograd.grad(y.pow(2).sum(), (x, *step.parameters()))
        assert [type(m).__name__ for m in step.body] == ["Linear", "Tanh", "Tanh", "Softsign"]
        return got

    assert_same(run(True), run(False))


@pytest.mark.parametrize("loop", ["for", "while"])
def test_a_lazy_parameter_passed_to_a_loop_is_refused(loop):
    lazy = torch.nn.LazyLinear(4).double()
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)

    def step(i, s, w):
        return torch.tanh(s @ w)

    with pytest.raises(pebbles.PebblesValueError, match=r"parameter 0 passed is uninitialized"):
        if loop == "for":
            checkpointed_loop(step, x, 3, lazy.weight, budget=2)
        else:
            checkpointed_while_loop(lambda i, s: i < 3, step, x, lazy.weight, budget=2)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_scripted_layers_and_steps_get_plain_autograds_gradients():
    """torch.jit.script modules keep their parameters in wrappers of C++ state, not
    dicts: the module record leaves those alone; gradients equal plain autograd's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.jit.script(torch.nn.Sequential(
        torch.nn.Linear(4, 4), torch.nn.Tanh()).double()) for _ in range(4)])
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    wrt = (x, *net.parameters())
    got = torch.autograd.grad(checkpoint_sequential(net, x, budget=2).pow(2).sum(), wrt)
    assert_same(got, torch.autograd.grad(net(x).pow(2).sum(), wrt))

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = net[0]

        def forward(self, i, s):
            return self.body(s)

    step = Step()
    wrt = (x, *step.parameters())
    got = torch.autograd.grad(checkpointed_loop(step, x, 5, budget=2).pow(2).sum(), wrt)
    assert_same(got, torch.autograd.grad(plain_loop(step, x, 5).pow(2).sum(), wrt))


def test_memory_inf_runs_each_step_once_without_a_profiling_run():
    """memory=inf keeps every graph whatever its size: step 0 is not run a second time to
    measure its graph, so each step runs exactly once, and the gradients are autograd's."""
    calls: list[tuple[int, bool]] = []

    def step(i, x, w):
        calls.append((i, torch.is_grad_enabled()))
        return torch.tanh(x @ w)

    w = (0.3 * torch.randn(4, 4, dtype=F64)).requires_grad_()
    x0 = torch.randn(3, 4, dtype=F64, requires_grad=True)
    y = checkpointed_loop(step, x0, 7, w, memory=float("inf"))
    got = torch.autograd.grad(y.sum(), (x0, w))
    assert calls == [(i, True) for i in range(7)]
    x = x0
    for _ in range(7):
        x = torch.tanh(x @ w)
    want = torch.autograd.grad(x.sum(), (x0, w))
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
