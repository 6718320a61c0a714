"""Render the paper's Figure 7 next to the optimal schedules with the same pebbles.

(a) Treeverse as Algorithm 3 (``treeverse_paper``, n = 20, delta = 3: 45 steps,
4 pebbles; the paper's "46 steps" counts the first row) beside the optimal
treeverse of the checkpoint game with S = 4 (40 steps).
(b) Bennett's Algorithm 2 (n = 16, k = 2: 81 steps, cell 16 reached after 41,
5 pebbles) beside the optimal schedule of the reversible game with S = 5
(cell 16 after 29 steps).

Usage: python examples/draw_figure7.py [OUTPUT_DIR]   (default: current directory)
Writes figure7a.png, figure7b.png and figure7.png (all four panels at 72 dpi, as
copied to docs/img/figure7.png; there Bennett stops at cell 16, 41 steps).
"""

from __future__ import annotations

from pathlib import Path

from _args import guarded, parser, require, visualize

import pebbles


def figure_a():
    """Figure 7(a) and the optimal checkpoint-game schedule with its peak pebbles."""
    return visualize.draw_side_by_side([
        ("(a) treeverse_paper, delta=3 (Algorithm 3)", pebbles.treeverse_paper(20, 3),
         "checkpoint"),
        ("(a') treeverse, optimal, S=4", pebbles.treeverse(20, 4), "checkpoint", 4),
    ], 20)


def figure_b():
    """Figure 7(b) and the optimal reversible-game schedule with its peak pebbles."""
    return visualize.draw_side_by_side([
        ("(b) bennett, k=2 (Algorithm 2)", pebbles.bennett(16, 2), "reversible"),
        ("(b') reversible_optimal, S=5", pebbles.reversible_optimal(16, 5), "reversible", 5),
    ], 16)


@guarded
def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("output_dir", nargs="?", default=".", metavar="OUTPUT_DIR",
                   help="folder for figure7a.png, figure7b.png and figure7.png, made if "
                        "missing (default: the current directory)")
    args = p.parse_args(argv)
    require("examples/draw_figure7.py")
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        p.error(f"argument OUTPUT_DIR: {str(out)!r} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    written = [visualize.save(fig, out / name)
               for name, fig in (("figure7a.png", figure_a()), ("figure7b.png", figure_b()))]
    fig = visualize.draw_side_by_side([
        ("(a) treeverse_paper, delta=3", pebbles.treeverse_paper(20, 3), "checkpoint"),
        ("(a') treeverse, S=4", pebbles.treeverse(20, 4), "checkpoint", 4),
        ("(b) bennett, k=2, no final uncompute", pebbles.bennett(16, 2, uncompute=False),
         "reversible"),
        ("(b') reversible_optimal, S=5", pebbles.reversible_optimal(16, 5), "reversible", 5),
    ], (20, 20, 16, 16))
    written.append(visualize.save(fig, out / "figure7.png", dpi=72))
    for path in written:  # after the writing: a reader gone (| head -1) loses no file
        print("wrote", path)


if __name__ == "__main__":
    main()
