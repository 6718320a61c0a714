"""Differentiate a Lorenz run whose number of steps is known only when it stops.

``pebbles.jax.checkpointed_while_loop`` is ``jax.lax.while_loop`` with a reverse
pass that stores at most ``budget`` carries: the online checkpointing controller
(every state kept until the budget is full, Stumm & Walther's r = 2 and r = 3
phases, then the greedy rule with exact reversal costs) runs inside the compiled
loop, so ``n`` may depend on the data.

The Lorenz system of Liu & Xu (section 4.1), classical RK4 with ``dt = 3e-3``,
``(sigma, rho, beta) = (10, 27, 8/3)``, run

1. until the time ``t`` (accumulated in the carry) reaches ``T = 30``, and
2. until ``z`` first crosses the level 30;

the loss is the final x-coordinate and the gradient is taken with respect to
``(x0, y0, z0, sigma, rho, beta)``. Each gradient is checked against
``jax.grad`` of a plain ``lax.scan`` with the same number of steps (which stores
them all). The step count is a function of the data, so its own derivative is
not part of the gradient (as for ``lax.while_loop``, the stopping index is held
fixed). With equinox installed, its checkpointed while loop runs the same
problem with the same number of checkpoints: evaluations of the step (counted
with a ``jax.debug.callback``) and run times are printed side by side.

About 4 minutes on 2 shared CPU cores with equinox installed (2.5 min of CPU time).
Usage: python examples/jax_while_lorenz.py [--budget S]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from _args import agrees, guarded, lacking, parser
except ImportError:  # loaded from its path, not run: put examples/ on the path for _args
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _args import agrees, guarded, lacking, parser

try:
    import jax
except ImportError:  # the extra is missing: one line naming it, not a traceback
    lacking("JAX", "jax", "examples/jax_while_lorenz.py")
import jax.numpy as jnp
import numpy as np

try:
    import pebbles
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pebbles
from jax_lorenz import lorenz_step  # the sibling example: this directory is on sys.path

from pebbles.cli import at_least
from pebbles.jax import checkpointed_while_loop

jax.config.update("jax_enable_x64", True)

DT, T_END, Z_LEVEL = 3e-3, 30.0, 30.0
INPUTS = jnp.array([1.0, 0.0, 0.0, 10.0, 27.0, 8.0 / 3.0])


def rk4(theta: Any, u: Any) -> Any:
    """One classical Runge-Kutta step of the Lorenz system (``examples/jax_lorenz.py``'s)."""
    return lorenz_step(theta, u, DT)


def problem(stop: str, theta: Any, step: Callable = rk4) -> tuple[Callable, Callable]:
    """``(cond, body)`` on the carry ``(u, t, i)``: run until t reaches T or z crosses."""
    def body(c: tuple) -> tuple:
        u, t, i = c
        return step(theta, u), t + DT, i + 1

    if stop == "time":
        return (lambda c: c[1] < T_END), body
    return (lambda c: c[0][2] < Z_LEVEL), body


def loss(loop: Callable, stop: str, step: Callable = rk4) -> Callable:
    def f(inputs: Any) -> Any:
        cond, body = problem(stop, inputs[3:], step)
        u, _, _ = loop(cond, body, (inputs[:3], jnp.asarray(0.0), jnp.asarray(0)))
        return u[0]
    return f


def plain_loss(stop: str, n: int) -> Callable:
    def f(inputs: Any) -> Any:
        _, body = problem(stop, inputs[3:])
        c = jax.lax.scan(lambda c, _: (body(c), None), (inputs[:3], 0.0, 0), length=n)[0]
        return c[0][0]
    return f


def steps(stop: str) -> int:
    cond, body = problem(stop, INPUTS[3:])
    return int(jax.lax.while_loop(cond, body, (INPUTS[:3], jnp.asarray(0.0),
                                               jnp.asarray(0)))[2])


def timed(fn: Callable, *args: Any) -> tuple[Any, float]:
    out = jax.block_until_ready(fn(*args))
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return out, best


def evaluations(loop: Callable, stop: str) -> int:
    """Calls of the step's forward computation in one gradient (VJPs included)."""
    calls = [0]

    def counted(theta: Any, u: Any) -> Any:
        jax.debug.callback(lambda _: calls.__setitem__(0, calls[0] + 1), u)
        return rk4(theta, u)

    jax.block_until_ready(jax.jit(jax.grad(loss(loop, stop, counted)))(INPUTS))
    return calls[0]


def loops(budget: int) -> dict[str, Callable]:
    out = {"pebbles": lambda c, b, i: checkpointed_while_loop(c, b, i, budget=budget)}
    try:
        import equinox.internal as eqxi
    except ImportError:
        return out
    out["equinox"] = lambda c, b, i: eqxi.while_loop(c, b, i, kind="checkpointed",
                                                    checkpoints=budget)
    return out


@guarded
def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--budget", type=at_least(2), default=10,
                   help="stored carries, at least 2 (default 10); the runs have about 10^4 "
                        "steps, so a small budget recomputes them many times over and is "
                        "slow (--budget 3 takes minutes)")
    args = p.parse_args(argv)
    for stop in ("time", "z"):
        n = steps(stop)
        ref = jax.jit(jax.grad(plain_loss(stop, n)))(INPUTS)
        online = pebbles.simulate(pebbles.online(n, args.budget), n, "checkpoint",
                                  budget=args.budget).forward_steps
        print(f"until {'t >= 30' if stop == 'time' else 'z >= 30'}: n = {n} steps, "
              f"budget {args.budget}; online stream {online} forward steps, offline optimum "
              f"{pebbles.min_forward_steps(n, args.budget)}")
        for name, loop in loops(args.budget).items():
            grad, seconds = timed(jax.jit(jax.grad(loss(loop, stop))), INPUTS)
            err = float(jnp.max(jnp.abs(grad - ref)) / jnp.max(jnp.abs(ref)))
            print(f"  {name:8s} grad rel. diff vs lax.scan {err:.1e}, step evaluations "
                  f"{evaluations(loop, stop)}, {seconds * 1e3:.1f} ms")
            agrees(f"the {name} gradient vs lax.scan", err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
