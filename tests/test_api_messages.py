"""Messages and defaults of public calls given too little or mismatched input."""

import re

import numpy as np
import pytest

import pebbles
from pebbles import ChainCosts, PebblesTypeError, PebblesValueError


def test_min_pebbles_defaults_to_the_checkpoint_game():
    """``min_pebbles(n)`` is the checkpoint game's, as ``min_forward_steps``' default."""
    assert pebbles.min_pebbles(100) == pebbles.min_pebbles(100, "checkpoint") == 2
    assert pebbles.min_pebbles(2) == 1


def test_plan_with_memory_but_no_state_bytes_asks_for_state_bytes():
    """The message names the memory given and what it lacks, not a missing budget."""
    with pytest.raises(PebblesValueError,
                       match=r"^memory=1000000000 needs state_bytes=BYTES \(the bytes of one "
                             r"state\) to turn into a budget; pass state_bytes") as e:
        pebbles.plan(100, memory=10**9)
    assert "needs a budget" not in str(e.value)
    with pytest.raises(PebblesTypeError, match=r"^memory='x' must be an integer"):
        pebbles.plan(100, memory="x")
    with pytest.raises(PebblesValueError, match=r"^plan\(\) needs a budget"):
        pebbles.plan(100)


@pytest.mark.parametrize("call, held", [
    (lambda: pebbles.plan(100, memory=10, state_bytes=8), "holds 1 state of"),
    (lambda: pebbles.budget_for(10, 8), "holds 1 state of"),
    (lambda: pebbles.budget_for(17, 8), "holds 2 states of"),
])
def test_budget_for_counts_states_in_singular_and_plural(call, held):
    with pytest.raises(PebblesValueError, match=f"^memory=[0-9]+ bytes {held} state_bytes=8;"):
        call()


@pytest.mark.parametrize("arrays, kw, got", [
    (([1, 1, 1], [2, 2], [1, 1, 1, 1]), {}, "forward 3, backward 2, sizes 4"),
    (([1, 1], [2, 2], [1, 1]), {}, "forward 2, backward 2, sizes 2"),
    (([1, 1], [2, 2], [1, 1, 1]), {"grads": [0.0]}, "forward 2, backward 2, sizes 3, grads 1"),
])
def test_chain_costs_length_error_names_the_arrays_given(arrays, kw, got):
    n = len(arrays[0])
    with pytest.raises(PebblesValueError, match=re.escape(
            f"(n = len(forward) = {n} steps), got {got}; pass sizes of length {n + 1} and "
            f"the others of length {n}")) as e:
        ChainCosts(*(np.asarray(a, float) for a in arrays), **kw)
    assert "None" not in str(e.value)


def _disk_program() -> pebbles.SlotProgram:
    return pebbles.lower([pebbles.place(1), pebbles.store(1), pebbles.remove(1),
                          pebbles.load(1), pebbles.paint(1), pebbles.remove(1),
                          pebbles.paint(0)], 2, frees=True)


def test_in_memory_refusal_names_in_memory_and_the_replay_with_a_store():
    """The refusal speaks for ``in_memory()``, and its advice runs: ``pebbles.replay``
    with a store."""
    with pytest.raises(PebblesValueError) as e:
        _disk_program().in_memory()
    text = str(e.value)
    assert text.startswith("in_memory() keeps only programs that hold every state in memory; "
                           "this one stores states on disk (two-level)")
    assert "pebbles.replay(program, n, s0, ..., store=pebbles.DiskStore(directory))" in text
    assert "executor" not in text
    with pebbles.MemoryStore() as store:
        r = pebbles.replay(_disk_program(), None, np.ones(2), lambda i, s: 2 * s,
                           lambda i, s, g: (2 * g, None), np.ones_like, store=store)
    assert np.array_equal(r.grad_s0, np.full(2, 4.0))


def test_in_memory_refusal_names_the_executor_that_asks():
    with pytest.raises(PebblesValueError, match=r"^checkpointed_scan runs schedules held in "
                                                r"memory; this one stores states on disk .*"
                                                r"store=pebbles\.DiskStore"):
        _disk_program().in_memory("checkpointed_scan runs")


@pytest.mark.parametrize("n", [20, 0])
def test_checkpointed_loop_without_budget_or_memory_lists_both(n):
    """With neither, the message offers budget= and memory=, as checkpoint_sequential's."""
    torch = pytest.importorskip("torch")
    from pebbles.torch import checkpointed_loop

    a = torch.tensor(0.9, requires_grad=True)
    with pytest.raises(PebblesTypeError, match=re.escape(
            "checkpointed_loop needs budget=STATES (stored states besides x0) or "
            "memory=BYTES (bytes of stored states and kept graphs); pass one of them")):
        checkpointed_loop(lambda i, x, a: a * x, torch.ones(2), n, a)


def test_checkpointed_loop_method_without_budget_names_the_method():
    torch = pytest.importorskip("torch")
    from pebbles.torch import checkpointed_loop

    with pytest.raises(PebblesTypeError, match=re.escape(
            "checkpointed_loop with method='online' needs budget=STATES (stored states "
            "besides x0); pass budget=STATES, or leave method out and pass memory=BYTES")):
        checkpointed_loop(lambda i, x: 2 * x, torch.ones(2), 20, method="online")
    x = checkpointed_loop(lambda i, x: 2 * x, torch.ones(2), 3, method="store-all")
    assert torch.equal(x, torch.full((2,), 8.0))  # a method without a budget runs


def test_a_budget_too_small_is_told_the_reason_of_its_board():
    with pytest.raises(pebbles.InfeasibleBudgetError, match=r"needs its state on the board\); "
                       r"use budget=1 or more"):
        pebbles.schedule("online", 2, budget=0)
    with pytest.raises(pebbles.InfeasibleBudgetError, match=r"a walking pebble holds two "
                       r"pebbles in the checkpoint game\); use budget=2 or more"):
        pebbles.schedule("online", 3, budget=1)


def test_jax_length_and_xs_named():
    pj = pytest.importorskip("pebbles.jax", exc_type=ImportError)
    jnp = pytest.importorskip("jax.numpy")

    def f(c, x):
        return c + x, c

    with pytest.raises(pebbles.PebblesValueError, match=r"^length=\d+ names a cell outside"):
        pj.checkpointed_scan(f, 0.0, length=2**70, budget=2)
    with pytest.raises(pebbles.PebblesValueError, match=r"^length=\d+ names a cell outside"):
        pj.scan_program(2**70, budget=2)
    for xs in ("x", 3, object()):
        with pytest.raises(pebbles.PebblesTypeError, match=r"^xs=.* which is not an array"):
            pj.checkpointed_scan(f, 0.0, xs, budget=2)
    assert pj.checkpointed_scan(f, 0.0, jnp.arange(3.0), budget=2)[0] == 3.0


def test_torch_profile_layers_ratio_repeat_and_use_reentrant():
    torch = pytest.importorskip("torch")
    from pebbles.torch import checkpoint_sequential, profile_layers

    layers, x = [torch.nn.Linear(4, 4), torch.nn.Tanh()], torch.ones(2, 4)
    costs = profile_layers(layers, x, backward_ratio=np.int64(2), repeat=1)
    assert np.allclose(costs.backward, 2 * costs.forward)
    for bad in (True, None, "2"):
        with pytest.raises(pebbles.PebblesTypeError, match=r"^backward_ratio="):
            profile_layers(layers, x, backward_ratio=bad, repeat=1)
    with pytest.raises(pebbles.PebblesValueError, match=r"^repeat=\d+ is more than 1000"):
        profile_layers(layers, x, repeat=2**70)
    net = torch.nn.Sequential(*layers)
    for bad in ("x", 3, {}):
        with pytest.raises(pebbles.PebblesTypeError, match=r"^use_reentrant="):
            checkpoint_sequential(net, x, budget=1, use_reentrant=bad)
    for ok in (None, True, False):
        checkpoint_sequential(net, x, budget=1, use_reentrant=ok)


@pytest.mark.parametrize("call", [
    lambda v: pebbles.dp_table(5, 2, game=v), lambda v: pebbles.min_pebbles(5, v),
    lambda v: pebbles.online(5, 2, beyond=v),
])
def test_a_choice_of_the_wrong_type_is_a_type_error_and_an_unknown_name_a_value_error(call):
    for value in (3, None, object()):
        with pytest.raises(PebblesTypeError, match=r"^(game|beyond)="):
            call(value)
    with pytest.raises(PebblesValueError, match=r"^(game|beyond)='x'"):
        call("x")
