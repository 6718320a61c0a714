"""PyTorch: ``checkpoint_sequential(net, x, segments=s)`` against PyTorch's, one edit apart.

PyTorch's ``torch.utils.checkpoint.checkpoint_sequential(net, s, x,
use_reentrant=False)`` and ``pebbles.torch.checkpoint_sequential(net, x,
segments=s)`` on the 100-layer MLP of unequal widths of ``bench_torch.py``, for each
segment count, side by side in one run: the peak resident bytes of a forward and
backward pass (measured as ``bench_torch.py`` measures them: ``VmHWM`` after
``/proc/self/clear_refs``, glibc returning every tensor of 32 KiB or more at once; each
row's peak the least of two measurements), layer runs (counted by wrapping each layer;
"recomputed" is the count minus n) and time (best of ``--repeat`` passes, then every
row again in interleaved rounds, 3 with ``--quick`` and 9 in the full run, the order
rotated each round; the comparison is on the best of those rounds).

``segments=s`` runs the least-time schedule within the memory PyTorch's split holds in
the model (stored outputs, kept graphs, parameter gradients, cotangents; both
schedules measured by the simulator under the profiled layer costs), or PyTorch's split
itself where that is not slower in the model. The layers are profiled once here and
the costs passed (``costs=``), as a training loop would; without them every call
profiles (two extra forward passes). The model's bytes are an estimate of the measured
peak, not a bound of it: in the committed full run (results/bench_torch_segments.json)
PyTorch's measured peak is within 2 % of the model at every segment count and ours from
12 % below to 3 % above it (at 4 segments the model says 40.2 MiB, the measured peaks are
39.4 and 37.4 MiB), so the measured peaks show how far the model's memory is also the
machine's.

Usage: python benchmarks/bench_torch_segments.py [--quick] [--repeat 3] [--json OUT]
"""

from __future__ import annotations

import functools
import time

from _common import rerun_with_env

if __name__ == "__main__":
    from bench_torch import THRESHOLD

    rerun_with_env("MALLOC_MMAP_THRESHOLD_", THRESHOLD)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import machine_markdown, publish  # noqa: E402
from bench_torch import header, measure, mlp, parse, side_by_side  # noqa: E402
from torch.utils.checkpoint import checkpoint_sequential as torch_sequential  # noqa: E402

import pebbles  # noqa: E402
from pebbles.torch import checkpoint_sequential, profile_layers  # noqa: E402


def level(s: int, net: torch.nn.Sequential, x: torch.Tensor, costs: pebbles.ChainCosts,
          run: functools.partial) -> dict:
    """PyTorch's and pebbles' rows at ``s`` segments, with the split's model bytes."""
    split = pebbles.simulate(pebbles.sequential_segments(costs.n, s), costs.n, costs=costs)
    return {
        "torch": run("torch checkpoint_sequential", lambda: torch_sequential(
            net, s, x, use_reentrant=False), segments=s),
        "pebbles_segments": run("pebbles segments=", lambda: checkpoint_sequential(
            net, x, segments=s, costs=costs), segments=s),
        "model_mib": split.peak_bytes / 2**20,
    }


def rows(levels: list[dict]) -> list[dict]:
    """One record per segment count: both rows' peak MiB, recomputed runs and the
    interleaved milliseconds, and the comparisons."""
    out = []
    for m in levels:
        t, p, side = m["torch"], m["pebbles_segments"], m["side_by_side_ms"]
        out.append({
            "segments": t["segments"], "model MiB": m["model_mib"],
            "torch peak MiB": t["peak_bytes"] / 2**20,
            "pebbles peak MiB": p["peak_bytes"] / 2**20,
            "torch recomputed": t["recomputed"], "pebbles recomputed": p["recomputed"],
            "torch ms": side["torch"], "pebbles ms": side["pebbles_segments"],
            "peak no more": p["peak_bytes"] <= t["peak_bytes"],
            "recomputed no more": p["recomputed"] <= t["recomputed"],
            "less time": side["pebbles_segments"] < side["torch"]})
    return out


def markdown(result: dict) -> str:
    cols = list(result["rows"][0])
    lines = [machine_markdown(result["machine"]), "", "| " + " | ".join(cols) + " |",
             "|" + "---|" * len(cols)]
    for r in result["rows"]:
        lines.append("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v)
                                       for v in r.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse(__doc__, argv)
    start = time.perf_counter()
    n = 100
    net, counters, x = mlp(n, args.batch)
    run = functools.partial(measure, params=list(net.parameters()), counters=counters, n=n,
                            repeat=args.repeat)
    costs = profile_layers(net, x)
    levels = [level(s, net, x, costs, run) for s in args.segments]
    side_by_side(levels, args.rounds)
    result = {**header(), "n": n, "batch": args.batch, "rows": rows(levels)}
    result["seconds"] = time.perf_counter() - start
    publish(args.json, result, markdown(result))
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
