"""Differentiate an adaptive-step Lorenz run in PyTorch whose length is known only at the end.

``pebbles.torch.checkpointed_while_loop(cond, step, x0, *params, budget=S)`` runs
``while cond(i, x): x = step(i, x, *params)`` keeping at most ``S`` states, chosen
by online checkpointing (every state kept until the budget is full, Stumm &
Walther's r = 2 and r = 3 phases, then the greedy rule), and its backward pass
runs the rest of ``pebbles.online(n, S)`` for the ``n`` the loop reached.

The Lorenz system of Liu & Xu (section 4.1), ``(sigma, rho, beta) = (10, 27,
8/3)``, integrated by Heun's method with an embedded Euler error estimate: each
step takes ``dt`` from the state, and the next ``dt`` follows the error, so the
number of steps to reach ``T`` depends on the data. The state is ``(u, t, dt)``;
the loss is the final x-coordinate; the gradient with respect to ``u0`` and
``(sigma, rho, beta)`` is checked against plain autograd through the same loop
(which keeps the graph of every step), and the step calls are counted.

About 30 s on 2 cores. Usage: python examples/torch_while_lorenz.py [--T 5] [--budget 20]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

try:
    from _args import agrees, guarded, lacking, parser
except ImportError:  # loaded from its path, not run: put examples/ on the path for _args
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _args import agrees, guarded, lacking, parser

try:
    import torch
except ImportError:  # the extra is missing: one line naming it, not a traceback
    lacking("PyTorch", "torch", "examples/torch_while_lorenz.py")

try:
    import pebbles
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pebbles
from pebbles.cli import at_least, positive_float
from pebbles.torch import checkpointed_while_loop

TOL = 1e-3


def lorenz(u: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    s, r, b = theta.unbind()
    return torch.stack((s * (u[1] - u[0]), u[0] * (r - u[2]) - u[1], u[0] * u[1] - b * u[2]))


def heun(i: int, state: tuple, theta: torch.Tensor) -> tuple:
    """One Heun step of size dt; the next dt from the Euler-Heun difference."""
    u, t, dt = state
    k1 = lorenz(u, theta)
    k2 = lorenz(u + dt * k1, theta)
    err = (0.5 * dt * (k2 - k1)).norm()
    grow = torch.clamp(0.9 * torch.sqrt(TOL / (err + 1e-30)), 0.3, 2.0)
    return u + 0.5 * dt * (k1 + k2), t + dt, dt * grow


@guarded
def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--T", type=positive_float, default=5.0, help="end time, > 0 (default 5)")
    ap.add_argument("--budget", type=at_least(2), default=20,
                    help="stored states, at least 2 (default 20)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors: intra-op threads only add synchronisation
    f64 = torch.float64
    theta = torch.tensor([10.0, 27.0, 8.0 / 3.0], dtype=f64, requires_grad=True)
    u0 = torch.tensor([1.0, 0.0, 0.0], dtype=f64, requires_grad=True)
    state0 = (u0, torch.tensor(0.0, dtype=f64), torch.tensor(1e-3, dtype=f64))
    calls = [0]

    def step(i: int, state: tuple, theta: torch.Tensor) -> tuple:
        calls[0] += 1
        return heun(i, state, theta)

    def cond(i: int, state: tuple) -> bool:
        return bool(state[1] < args.T)

    t0 = time.perf_counter()
    u = checkpointed_while_loop(cond, step, state0, theta, budget=args.budget)[0]
    g_u0, g_theta = torch.autograd.grad(u[0], (u0, theta))
    ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    state, n = state0, 0
    while cond(n, state):  # plain autograd: the graph of every step
        state, n = heun(n, state, theta), n + 1
    w_u0, w_theta = torch.autograd.grad(state[0][0], (u0, theta))
    plain = time.perf_counter() - t0

    err = max((g_u0 - w_u0).abs().max().item() / w_u0.abs().max().item(),
              (g_theta - w_theta).abs().max().item() / w_theta.abs().max().item())
    online = pebbles.schedule("online", n, budget=args.budget).simulate().forward_steps
    best = pebbles.min_forward_steps(n, args.budget)
    print(f"n = {n} adaptive steps to T = {args.T}, {args.budget} stored states")
    print(f"dx(T)/du0 = {g_u0.tolist()}")
    print(f"dx(T)/d(sigma, rho, beta) = {g_theta.tolist()}")
    print(f"relative difference to plain autograd: {err:.1e}")
    print(f"forward steps of the online schedule: {online} (offline optimum, n known in "
          f"advance: {best}); step calls, backward steps and taping included: {calls[0]}")
    print(f"time: {ours:.2f} s (plain autograd, all {n} graphs kept: {plain:.2f} s)")
    agrees("the gradient vs plain autograd", err)


if __name__ == "__main__":
    main()
