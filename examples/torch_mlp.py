"""A 100-layer MLP of unequal widths under a memory limit for its stored activations.

``pebbles.torch.checkpoint_sequential(net, x, memory=M)`` profiles each layer
(time, output bytes, graph bytes, parameter gradient bytes), finds the least-time
persistent schedule of the heterogeneous chain (Beaumont et al. 2019, the dynamic
programme of ``pebbles.hetero_optimal``) and runs it, holding at most ``M`` bytes of layer
outputs, kept graphs and the parameter gradients made so far. The limit here is a
fraction of all layer outputs plus every parameter's gradient (they are all held by
the end of the backward pass). The script compares layer evaluations with
``torch.utils.checkpoint.checkpoint_sequential`` at 10 segments, checks the
gradient against plain autograd and runs a few SGD steps.

10 segments keep 10 segment inputs plus, while a segment is reversed, the outputs of
its 10 layers: about 20 % of all layer outputs; the default limit here is 15 %. The
batch makes the layer outputs outweigh the parameter gradients (at a batch of 128 they
do not, and any limit that holds every gradient leaves room for all outputs).

Usage: python examples/torch_mlp.py [--batch 256] [--fraction 0.15] [--iters 3]
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

try:
    from _args import guarded, lacking, parser
except ImportError:  # loaded from its path, not run: put examples/ on the path for _args
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _args import guarded, lacking, parser

try:
    import torch
except ImportError:  # the extra is missing: one line naming it, not a traceback
    lacking("PyTorch", "torch", "examples/torch_mlp.py")
from torch.utils.checkpoint import checkpoint_sequential as torch_sequential

try:
    import pebbles
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pebbles
from pebbles.cli import count, nonnegative_float, positive
from pebbles.torch import checkpoint_sequential, profile_layers


class Counted(torch.nn.Module):
    """Linear + ReLU that counts its runs."""

    def __init__(self, width_in: int, width_out: int) -> None:
        super().__init__()
        linear = torch.nn.Linear(width_in, width_out)
        torch.nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")  # keeps the scale
        self.layer = torch.nn.Sequential(linear, torch.nn.ReLU())
        self.runs = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.runs += 1
        return self.layer(x)


def runs(net: torch.nn.Sequential) -> int:
    total = sum(m.runs for m in net)
    for m in net:
        m.runs = 0
    return total


@guarded
def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--batch", type=positive, default=256, help="batch size (default 256)")
    ap.add_argument("--fraction", type=nonnegative_float, default=0.15,
                    help="memory limit as a fraction of all layer outputs, on top of the "
                         "parameter gradients (default 0.15)")
    ap.add_argument("--iters", type=count, default=3, help="SGD steps (default 3)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # small layers: intra-op threads only add synchronisation
    torch.manual_seed(0)
    widths = [64 + 192 * ((37 * k) % 11) // 10 for k in range(101)]
    net = torch.nn.Sequential(*[Counted(widths[k], widths[k + 1]) for k in range(100)])
    x = torch.randn(args.batch, widths[0])
    costs = profile_layers(net, x)
    runs(net)
    memory = args.fraction * costs.sizes[1:].sum() + costs.grads.sum()
    need = pebbles.hetero_min_memory(costs)
    if memory < need:  # no schedule fits: say so before the runs, naming the flag
        least = (need - costs.grads.sum()) / costs.sizes[1:].sum()
        ap.error(f"argument --fraction: {args.fraction:g} is too small for any schedule of "
                 f"this network (a layer's input, output and graph with the gradients); use "
                 f"--fraction {math.ceil(least * 1000) / 1000:g} or more")
    print(f"layer outputs: {costs.sizes[1:].min() / 2**10:.0f}-{costs.sizes[1:].max() / 2**10:.0f}"
          f" KiB, {costs.sizes[1:].sum() / 2**20:.1f} MiB in all; parameter gradients "
          f"{costs.grads.sum() / 2**20:.1f} MiB; limit {memory / 2**20:.2f} MiB")

    net(x).sum().backward()
    want = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    print(f"plain autograd: {runs(net)} layer runs")
    torch_sequential(net, 10, x, use_reentrant=False).sum().backward()
    net.zero_grad()
    print(f"torch checkpoint_sequential, 10 segments: {runs(net)} layer runs")
    checkpoint_sequential(net, x, memory=memory, costs=costs).sum().backward()
    got = [p.grad for p in net.parameters()]
    diff = max((a - b).abs().max().item() for a, b in zip(got, want, strict=True))
    print(f"pebbles checkpoint_sequential, memory limit: {runs(net)} layer runs; largest "
          f"gradient difference to plain autograd {diff:.1e}")

    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    target = torch.randn(args.batch, widths[-1])
    start = time.perf_counter()
    for it in range(args.iters):
        opt.zero_grad()
        out = checkpoint_sequential(net, x, memory=memory, costs=costs)
        loss = ((out - target) ** 2).mean()
        loss.backward()
        opt.step()
        print(f"iteration {it}: loss {loss.item():.4f}")
    print(f"{args.iters} iterations in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
