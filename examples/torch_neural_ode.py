"""Train a small neural ODE through 1000 time steps while storing 10 states.

``x_{i+1} = x_i + h f_theta(x_i)`` with an MLP vector field ``f_theta``; the loss
compares ``x_n`` with a target. ``pebbles.torch.checkpointed_loop`` differentiates
the loop along the optimal Treeverse schedule (Griewank's binomial
checkpointing) for a budget of 10 stored states instead of keeping the graph
of all 1000 steps; the script checks one gradient against plain autograd, then
runs a few Adam steps. It also differentiates the loop under a memory limit in
bytes (``memory=``), where steps may keep their graph (the rotor-style optimum:
a step that keeps its graph is never replayed), and counts the step runs.

Usage: python examples/torch_neural_ode.py [--steps 1000] [--budget 10] [--kept 40]
       [--iters 10]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

try:
    from _args import flag_errors, guarded, lacking, parser
except ImportError:  # loaded from its path, not run: put examples/ on the path for _args
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _args import flag_errors, guarded, lacking, parser

try:
    import torch
except ImportError:  # the extra is missing: one line naming it, not a traceback
    lacking("PyTorch", "torch", "examples/torch_neural_ode.py")

try:
    import pebbles
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pebbles
from pebbles.cli import at_least, count, positive
from pebbles.torch import checkpointed_loop


@guarded
def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--steps", type=positive, default=1000, help="time steps (default 1000)")
    ap.add_argument("--budget", type=at_least(2), default=10,
                    help="stored states, at least 2 (default 10)")
    ap.add_argument("--kept", type=positive, default=40,
                    help="memory limit in states (stored states and kept graphs; default 40)")
    ap.add_argument("--iters", type=count, default=10, help="Adam steps (default 10)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors: intra-op threads only add synchronisation
    torch.manual_seed(0)
    field = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
    h = 1.0 / args.steps
    x0 = torch.randn(64, 2)
    target = x0 @ torch.tensor([[0.0, 1.0], [-1.0, 0.0]])  # a quarter turn

    params = tuple(field.parameters())

    runs = [0]

    def step(i: int, x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        runs[0] += 1
        return x + h * field(x)  # params are field's own tensors: passing them is enough

    def loss_of(xn: torch.Tensor) -> torch.Tensor:
        return ((xn - target) ** 2).mean()

    # one gradient both ways: plain autograd keeps the graph of every step
    loss_of(checkpointed_loop(step, x0, args.steps, *params, budget=args.budget)).backward()
    ours = [p.grad.clone() for p in field.parameters()]
    field.zero_grad()
    x = x0
    for i in range(args.steps):
        x = step(i, x)
    loss_of(x).backward()
    pairs = zip(ours, field.parameters(), strict=True)
    diff = max((a - p.grad).abs().max().item() for a, p in pairs)
    plain = [p.grad.clone() for p in field.parameters()]
    field.zero_grad()
    state = x0.numel() * x0.element_size()
    runs[0] = 0
    with flag_errors(ap, "--kept", f"--kept N is a memory of N states of {state} bytes"):
        xn = checkpointed_loop(step, x0, args.steps, *params, memory=args.kept * state)
        loss_of(xn).backward()  # refused before anything is printed: a --kept too small
    pairs = zip(plain, field.parameters(), strict=True)
    kept_diff = max((a - p.grad).abs().max().item() for a, p in pairs)
    program = pebbles.schedule("treeverse", args.steps, budget=args.budget).lower()
    print(f"{args.steps} steps, {args.budget} stored states: {program.forward_steps} step runs "
          f"forward + {args.steps} backward steps; largest gradient difference to plain "
          f"autograd {diff:.2e}")
    print(f"memory of {args.kept} states (stored states and kept graphs): {runs[0] - 1} step "
          f"runs in all (the graph's size measured by one more); difference {kept_diff:.2e}")

    opt = torch.optim.Adam(field.parameters(), lr=0.02)
    start = time.perf_counter()
    for it in range(args.iters):
        opt.zero_grad()
        loss = loss_of(checkpointed_loop(step, x0, args.steps, *params, budget=args.budget))
        loss.backward()
        opt.step()
        if it % 3 == 0 or it == args.iters - 1:
            print(f"iteration {it:3d}: loss {loss.item():.5f}")
    print(f"{args.iters} iterations in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()  # guarded: a bad option the library refuses (e.g. --kept too small) is one line
