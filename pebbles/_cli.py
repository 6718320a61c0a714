"""The ``pebbles`` command line: print, summarise, compare and plan schedules."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence

from ._baselines import periodic, recompute_all, store_all
from ._bennett import bennett, bennett_gradient
from ._budget import min_pebbles
from ._errors import PebblesError, PebblesValueError
from ._moves import Game, Move, format_move
from ._optimal import min_forward_steps
from ._planner import best_bennett, plan
from ._reversible import reversible_optimal
from ._simulator import SimulationResult, simulate
from ._treeverse import treeverse, treeverse_paper

__all__ = ["METHODS", "add_schedule_arguments", "build_schedule", "main"]

METHODS = (
    "treeverse", "treeverse-paper", "bennett", "bennett-gradient",
    "reversible-optimal", "store-all", "recompute-all", "periodic",
)

EXAMPLES = """\
examples:
  pebbles schedule treeverse -n 20 --pebbles 4            # optimal, paper's game
  pebbles schedule treeverse -n 20 --pebbles 4 --inplace  # optimal, in-place game
  pebbles schedule treeverse-paper -n 20 --delta 3 --format summary
  pebbles schedule bennett -n 16 --k 2 --format summary
  pebbles compare -n 1000 --pebbles 10
  pebbles plan -n 10000 --memory 2GB --state-bytes 32MB --backward-cost 3
  pebbles draw treeverse-paper -n 20 --delta 3 -o fig7a.png
  pebbles tradeoff -n 100 10000 -o tradeoff.png
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2
        self.exit(2, f"pebbles: error: {message} (see 'pebbles --help')\n")


def _need(args: argparse.Namespace, name: str, method: str) -> int:
    value = getattr(args, name)
    if value is None:
        raise PebblesValueError(f"method {method} needs --{name.replace('_', '-')}")
    return value


def build_schedule(args: argparse.Namespace) -> tuple[Iterator[Move], Game, int | None]:
    """Return (moves, game, budget) for the parsed ``schedule`` arguments."""
    n, method = args.n, args.method
    if method == "treeverse":
        s = _need(args, "pebbles", method)
        game = Game.INPLACE if args.inplace else Game.CHECKPOINT
        return treeverse(n, s, inplace=args.inplace), game, s
    if method == "treeverse-paper":
        return treeverse_paper(n, _need(args, "delta", method), args.tau), Game.CHECKPOINT, None
    if method == "bennett":
        return bennett(n, args.k, uncompute=not args.no_uncompute), Game.REVERSIBLE, None
    if method == "bennett-gradient":
        return bennett_gradient(n, args.k), Game.CHECKPOINT, None
    if method == "reversible-optimal":
        s = _need(args, "pebbles", method)
        return reversible_optimal(n, s), Game.REVERSIBLE, s
    if method == "periodic":
        return periodic(n, _need(args, "every", method)), Game.CHECKPOINT, None
    maker: Callable[[int], Iterator[Move]] = store_all if method == "store-all" else recompute_all
    return maker(n), Game.CHECKPOINT, None


def _summary(method: str, args: argparse.Namespace, r: SimulationResult) -> dict:
    out = {
        "method": method, "game": r.game.value, "n": r.n, "pebbles": args.pebbles,
        "forward_steps": r.forward_steps, "backward_steps": r.backward_steps,
        "peak_pebbles": r.peak_pebbles,
    }
    if r.game is Game.REVERSIBLE:
        out["first_reach_n"] = r.first_reach_n
    return out


def _cmd_schedule(args: argparse.Namespace) -> int:
    moves, game, budget = build_schedule(args)
    write = sys.stdout.write
    if args.format == "moves":
        write(f"# {args.method} n={args.n} game={game.value}\n")
        result = simulate(_echo(moves, write), args.n, game, budget)
        write(f"# {json.dumps(_summary(args.method, args, result))}\n")
    elif args.format == "summary":
        result = simulate(moves, args.n, game, budget)
        write(json.dumps(_summary(args.method, args, result)) + "\n")
    else:
        texts: list[str] = []
        result = simulate(_echo(moves, lambda t: texts.append(t[:-1])), args.n, game, budget)
        doc = _summary(args.method, args, result) | {"moves": texts}
        write(json.dumps(doc) + "\n")
    return 0


def _echo(moves: Iterator[Move], write: Callable[[str], object]) -> Iterator[Move]:
    for m in moves:
        write(format_move(m) + "\n")
        yield m


def _compare_rows(n: int, s: int) -> Iterator[tuple[str, Iterator[Move], Game]]:
    yield "treeverse", treeverse(n, s), Game.CHECKPOINT
    if s >= min_pebbles(n, Game.INPLACE):
        yield "treeverse --inplace", treeverse(n, s, inplace=True), Game.INPLACE
    if s >= 2:
        yield f"treeverse-paper --delta {s - 1}", treeverse_paper(n, s - 1), Game.CHECKPOINT
    best = best_bennett(n, s)
    if best is not None:
        k = best[0]
        yield f"bennett --k {k} --no-uncompute", bennett(n, k, uncompute=False), Game.REVERSIBLE
        yield f"bennett-gradient --k {k}", bennett_gradient(n, k), Game.CHECKPOINT
    if s >= min_pebbles(n, Game.REVERSIBLE):
        yield "reversible-optimal", reversible_optimal(n, s), Game.REVERSIBLE
    if s >= n - 1:
        yield "store-all", store_all(n), Game.CHECKPOINT
    yield "recompute-all", recompute_all(n), Game.CHECKPOINT


def _cmd_compare(args: argparse.Namespace) -> int:
    n, s = args.n, args.pebbles
    min_forward_steps(n, s, Game.CHECKPOINT)  # validates the budget
    TT = "T'/T"
    lines = [f"# n={n}, budget={s} pebbles; T'/T = forward steps / n",
             f"{'method':<34} {'game':<11} {'steps':>12} {TT:>8} {'peak':>5}  optimal?"]
    for name, moves, game in _compare_rows(n, s):
        r = simulate(moves, n, game, s)
        best = min_forward_steps(n, r.peak_pebbles, game)
        lines.append(f"{name:<34} {game.value:<11} {r.forward_steps:>12} "
                     f"{r.forward_steps / n:>8.3f} {r.peak_pebbles:>5}  "
                     f"{'yes' if r.forward_steps == best else f'no ({best})'}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """Parse '2GB', '32MiB', '1e6' into bytes (KB/MB/GB decimal, KiB/MiB/GiB binary)."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; write e.g. 2GB, 512MiB or 1000000")
    try:
        return int(float(m.group(1)) * _UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 2GB") from None


def _cmd_plan(args: argparse.Namespace) -> int:
    p = plan(args.n, args.pebbles, memory=args.memory, state_bytes=args.state_bytes,
             backward_cost=args.backward_cost)
    lines = [f"# n={p.n}, budget={p.pebbles} pebbles besides s_0, backward cost "
             f"{p.backward_cost:g}x a forward step; cost in forward-step units",
             f"{'method':<20} {'game':<11} {'pebbles':>7} {'forward':>12} {'cost':>14} "
             f"{'vs primal':>9}"]
    for c in p.candidates:
        lines.append(f"{c.method:<20} {c.game:<11} {c.pebbles:>7} {c.forward_steps:>12} "
                     f"{c.cost:>14.0f} {c.cost / p.n:>9.2f}  {c.options}")
    b = p.best
    lines.append(f"recommended: pebbles schedule {b.method} -n {p.n} {b.options}".rstrip())
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _positive(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def add_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    """Add METHOD and the schedule options shared by ``schedule`` and ``draw``."""
    parser.add_argument("method", choices=METHODS)
    parser.add_argument("-n", type=_positive, required=True, help="number of steps")
    parser.add_argument("--pebbles", type=_positive,
                        help="budget S (treeverse, reversible-optimal)")
    parser.add_argument("--inplace", action="store_true", help="treeverse: in-place game")
    parser.add_argument("--k", type=_positive, default=2, help="bennett: blocks per level (2)")
    parser.add_argument("--delta", type=_positive, help="treeverse-paper: delta")
    parser.add_argument("--tau", type=_positive, help="treeverse-paper: tau (default: least)")
    parser.add_argument("--no-uncompute", action="store_true", help="bennett: stop at cell n")
    parser.add_argument("--every", type=_positive, help="periodic: checkpoint interval")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pebbles", description="Checkpointing schedules and pebble games "
                "(Liu & Xu, Automatic differentiation in physics simulation).",
                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("schedule", help="print or summarise a schedule", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_schedule_arguments(s)
    s.add_argument("--format", choices=("moves", "json", "summary"), default="moves")
    s.set_defaults(run=_cmd_schedule)
    c = sub.add_parser("compare", help="table of all methods at one budget")
    c.add_argument("-n", type=_positive, required=True)
    c.add_argument("--pebbles", type=_positive, required=True)
    c.set_defaults(run=_cmd_compare)
    q = sub.add_parser("plan", help="recommend a schedule for a memory budget")
    q.add_argument("-n", type=_positive, required=True)
    q.add_argument("--pebbles", type=_positive)
    q.add_argument("--memory", type=parse_bytes, help="memory for states, e.g. 2GB")
    q.add_argument("--state-bytes", type=parse_bytes, help="bytes of one state, e.g. 32MB")
    q.add_argument("--backward-cost", type=float, default=1.0,
                   help="backward step cost / forward step cost (1)")
    q.set_defaults(run=_cmd_plan)
    _add_drawing(sub)
    return p


def _add_drawing(sub) -> None:
    """``draw`` and ``tradeoff`` live in :mod:`visualize` (same distribution).

    Imported here, at parse time, because their hooks import no matplotlib;
    the drawing itself loads it only when one of them runs.
    """
    from visualize.cli import add_draw_arguments, add_tradeoff_arguments, run_draw, run_tradeoff

    d = sub.add_parser("draw", help="draw a schedule as a pebble-game diagram (PNG/SVG/PDF)")
    add_draw_arguments(d)
    d.set_defaults(run=lambda args: run_draw(args, build_schedule))
    t = sub.add_parser("tradeoff", help="plot memory against time overhead (Figure 8)")
    add_tradeoff_arguments(t)
    t.set_defaults(run=run_tradeoff)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 on bad input)."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except PebblesError as err:
        sys.stderr.write(f"pebbles: error: {err}\n")
        return 2
    except BrokenPipeError:
        sys.stderr.close()
        return 0
