"""visualize: game diagrams (Figure 7), fingerprints, trade-off plots (Figure 8), CLI hooks."""

from __future__ import annotations

import argparse
import subprocess
import sys
from itertools import pairwise

import numpy as np
import pytest
from matplotlib.image import imread

import pebbles
import visualize
from visualize import cli
from visualize._game import GIDS

STEPS = {pebbles.MoveKind.PLACE, pebbles.MoveKind.MOVE, pebbles.MoveKind.UNPLACE,
         pebbles.MoveKind.TAPE}


def expected_markers(moves, n, game):
    """Count markers from the simulator's trace: rows cut at every step-costing move."""
    flat = list(pebbles.expand(moves, game))
    boards = pebbles.simulate(flat, n, game, trace=True).trace
    cuts = [0] + [j for j, m in enumerate(flat) if m.kind in STEPS] + [len(flat)]
    counts = {"placed": 0, "removed": 0, "kept": 0, "rows": 0}
    for lo, hi in pairwise(cuts):
        counts["rows"] += 1
        start = set(boards[lo - 1].pebbles) if lo else set()
        gained, lost, prev = set(), set(), start
        for b in boards[lo:hi]:
            gained |= set(b.pebbles) - prev
            lost |= prev - set(b.pebbles)
            prev = set(b.pebbles)
        counts["placed"] += len(gained)
        counts["removed"] += len(lost - gained)
        counts["kept"] += len(start & prev - lost)
    return counts


def drawn_markers(fig):
    out = {}
    for ax in fig.axes:
        for coll in ax.collections:
            if coll.get_gid() in GIDS.values():
                kind = next(k for k, g in GIDS.items() if g == coll.get_gid())
                out[kind] = out.get(kind, 0) + len(coll.get_offsets())
    return out


@pytest.mark.parametrize("moves, n, game", [
    (lambda: pebbles.treeverse_paper(20, 3), 20, "checkpoint"),
    (lambda: pebbles.bennett(4, 2), 4, "reversible"),
    (lambda: pebbles.treeverse(12, 3, inplace=True), 12, "inplace"),
])
def test_markers_match_the_trace(moves, n, game):
    fig = visualize.draw_game(moves(), n, game)
    want = expected_markers(moves(), n, game)
    got = drawn_markers(fig)
    assert got == {"placed": want["placed"], "removed": want["removed"],
                   "kept": want["kept"], "input": want["rows"]}


def test_golden_counts_of_figure_7():
    # Figure 7(a): 46 rows (45 steps + the first row); every step places one pebble.
    got = drawn_markers(visualize.draw_game(pebbles.treeverse_paper(20, 3), 20))
    assert got["input"] == 46 and got["placed"] == 45
    # Bennett n=4, k=2 (Algorithm 2 with uncompute): 9 steps = 5 places + 4 unplaces.
    moves = list(pebbles.bennett(4, 2))
    kinds = [m.kind for m in moves]
    assert kinds.count(pebbles.MoveKind.PLACE) == 5 and len(moves) == 9
    got = drawn_markers(visualize.draw_game(moves, 4, "reversible"))
    assert (got["input"], got["placed"], got["removed"]) == (10, 5, 4)


def test_header_shows_method_n_budget_steps_and_peak():
    fig = visualize.draw_game(pebbles.treeverse(20, 4), 20, title="treeverse", budget=4)
    text = fig.axes[0].get_title(loc="left")
    for part in ("treeverse", "n=20", "S=4", "steps=40", "peak=4"):
        assert part in text


def check_saved(fig, path, read_svg, dpi=120):
    """The file holds the figure: a PNG of the figure's pixel size, or an SVG with a group
    for every artist that carries a gid."""
    if path.suffix == ".png":
        w, h = fig.get_size_inches() * dpi
        assert np.allclose(imread(path).shape[:2], (h, w), atol=1)
        return
    svg = read_svg(path)
    gids = {a.get_gid() for ax in fig.axes
            for a in (*ax.collections, *ax.lines, *ax.patches)} - {None}
    assert gids <= set(svg.ids), gids - set(svg.ids)
    assert svg.images == sum(len(ax.images) for ax in fig.axes)  # rasterised, without gid
    assert gids or svg.images


def axes_markers(ax):
    """Marker counts of one axes, by kind."""
    return {k: len(c.get_offsets()) for c in ax.collections for k, g in GIDS.items()
            if c.get_gid() == g}


def test_every_figure_draws_its_content_and_saves(tmp_path, read_svg):
    game = visualize.draw_game(pebbles.bennett(16, 2), 16, "reversible", title="b")
    want = expected_markers(pebbles.bennett(16, 2), 16, "reversible")
    assert drawn_markers(game) == {"placed": want["placed"], "removed": want["removed"],
                                   "kept": want["kept"], "input": want["rows"]}
    assert game.axes[0].get_title(loc="left").startswith("b")
    assert (game.axes[0].get_xlabel(), game.axes[0].get_ylabel()) == (
        "cell i (state $s_i$)", "step (row 0: start)")

    finger = visualize.draw_fingerprint(pebbles.treeverse(300, 6), 300, budget=6)
    traced = visualize.trace_rows(pebbles.treeverse(300, 6), 300)
    (img,) = finger.axes[0].images
    assert img.get_gid() == "fingerprint"
    assert img.get_array().shape == (min(len(traced.rows), 800), 301)
    assert set(np.unique(img.get_array())) == set(np.unique(visualize.fingerprint_array(traced)))
    assert "S=6" in finger.axes[0].get_title(loc="left")

    side = visualize.draw_side_by_side(
        [("paper", pebbles.treeverse_paper(20, 3), "checkpoint"),
         ("optimal", pebbles.treeverse(20, 4), "checkpoint", 4)], 20)
    assert [ax.get_title(loc="left").split()[0] for ax in side.axes] == ["paper", "optimal"]
    assert [axes_markers(ax)["placed"] for ax in side.axes] == [
        pebbles.simulate(pebbles.treeverse_paper(20, 3), 20).forward_steps,
        pebbles.min_forward_steps(20, 4, "checkpoint")]

    trade = visualize.draw_tradeoff((100, 1000))
    assert [ax.get_title() for ax in trade.axes[:2]] == ["n = $10^{2}$", "n = $10^{3}$"]
    for ax, n in zip(trade.axes[:2], (100, 1000), strict=True):
        (line,) = [ln for ln in ax.lines
                   if ln.get_label() == "treeverse (optimal, checkpoint game)"]
        x, s = visualize.tradeoff_curves(n)["treeverse"]
        order = np.argsort(x)  # drawn along increasing T'/T (a staircase)
        assert np.array_equal(line.get_xdata(), x[order])
        assert np.array_equal(line.get_ydata(), s[order])
    assert "Figure 8" in trade.get_suptitle()

    for ext in ("png", "svg"):  # the same figures, saved in both formats
        for name, fig in {"game": game, "finger": finger, "side": side}.items():
            check_saved(fig, visualize.save(fig, tmp_path / f"{name}.{ext}"), read_svg)
    check_saved(trade, visualize.save(trade, tmp_path / "tradeoff.png"), read_svg)
    svg = read_svg(visualize.save(trade, tmp_path / "tradeoff.svg"))
    assert "memory ratio (Figure 8 of the paper)" in svg.texts


def test_fingerprint_image_has_one_row_per_step_and_one_column_per_cell():
    fig = visualize.draw_fingerprint(pebbles.treeverse_paper(20, 3), 20)
    img = np.asarray(fig.axes[0].images[0].get_array())
    assert img.shape == (46, 21)
    traced = visualize.trace_rows(pebbles.treeverse_paper(20, 3), 20)
    assert np.array_equal(img, visualize.fingerprint_array(traced))
    assert (img == visualize.CODES["placed"]).sum() == 45
    assert img[-1, 0] != visualize.CODES["empty"] and img[0, 20] == visualize.CODES["painted"]


def test_fingerprint_bins_long_schedules():
    fig = visualize.draw_fingerprint(pebbles.treeverse(500, 4), 500, max_rows=300)
    assert fig.axes[0].images[0].get_array().shape == (300, 501)


def test_draw_game_refuses_large_boards_and_points_to_the_fingerprint():
    n = visualize.MAX_CELLS + 1
    with pytest.raises(pebbles.PebblesValueError, match="draw_fingerprint"):
        visualize.draw_game(pebbles.treeverse(n, 5), n)


def test_the_simulator_referees_illegal_schedules():
    with pytest.raises(pebbles.IllegalMoveError):
        visualize.draw_game([pebbles.place(2)], 3)


def test_draw_into_given_axes_and_save_needs_an_extension(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6))
    ax1, ax2 = fig.subplots(1, 2)
    assert visualize.draw_game(pebbles.treeverse(10, 3), 10, ax=ax1) is fig
    assert visualize.draw_fingerprint(pebbles.treeverse(10, 3), 10, ax=ax2) is fig
    assert fig.axes[:2] == [ax1, ax2]
    assert axes_markers(ax1)["placed"] == pebbles.min_forward_steps(10, 3, "checkpoint")
    assert [im.get_gid() for im in ax2.images] == ["fingerprint"] and not ax1.images
    assert visualize.save(fig, tmp_path / "two.pdf").read_bytes().startswith(b"%PDF-")
    with pytest.raises(pebbles.PebblesValueError, match="extension"):
        visualize.save(fig, tmp_path / "noext")


def test_tradeoff_curves_use_the_exact_counts():
    c = visualize.tradeoff_curves(100)
    for name, game in (("treeverse", "checkpoint"), ("treeverse-inplace", "inplace"),
                       ("reversible-optimal", "reversible")):
        x, s = c[name]
        assert len(x) > 5
        assert all(xi == pebbles.min_forward_steps(100, int(si), game) / 100
                   for xi, si in zip(x, s, strict=True))
    x, s = c["bennett"]
    assert (pebbles.bennett_steps(100, 2, uncompute=False) / 100,
            pebbles.bennett_pebbles(100, 2, uncompute=False)) in set(zip(x, s, strict=True))
    x, s = c["treeverse-paper"]
    r = pebbles.simulate(pebbles.treeverse_paper(100, 3), 100)
    assert (r.forward_steps / 100, r.peak_pebbles) in set(zip(x, s, strict=True))


def test_treeverse_curve_reaches_store_all():
    # no S cap below n - 1 for moderate n: the curve ends at S = n - 1, T'/T < 1
    x, s = visualize.tradeoff_curves(1000)["treeverse"]
    assert s.max() == 999 and x[np.argmax(s)] == pebbles.min_forward_steps(1000, 999) / 1000
    assert x.min() < 1.0 and np.all(np.diff(s) > 0)


def test_staircases_run_along_increasing_overhead():
    """A curve's S holds from its point to the next larger T'/T; drawn in the curves'
    order (T'/T falling) the steps showed fewer pebbles than needed between points."""
    fig = visualize.draw_tradeoff((100,), paper_max_n=100)
    lines = [ln for ax in fig.axes for ln in ax.get_lines()
             if ln.get_drawstyle() == "steps-post" and len(ln.get_xdata()) > 2]
    assert len(lines) >= 3  # treeverse in both games, online, reversible optimum
    for ln in lines:
        assert np.all(np.diff(np.asarray(ln.get_xdata(), dtype=float)) >= 0), ln.get_label()


def test_paper_approximations_hit_the_closed_forms():
    x, s = visualize.tradeoff_curves(81)["paper-bennett"]
    i = np.argmin(abs(s - 9))  # k = 3, l = 4: S = 4*2 + 1
    assert x[i] == pytest.approx((5 / 3) ** 4, rel=0.05)


def _parser():
    p = argparse.ArgumentParser(prog="pebbles")
    sub = p.add_subparsers(dest="command", required=True)
    cli.add_draw_arguments(sub.add_parser("draw"))
    cli.add_tradeoff_arguments(sub.add_parser("tradeoff"))
    return p


PAPER_20_3 = pebbles.simulate(pebbles.treeverse_paper(20, 3), 20).forward_steps


@pytest.mark.parametrize("extra, placed, images", [
    ([], [40], 0),
    (["--side-by-side", "treeverse-paper", "--delta", "3"], [40, PAPER_20_3], 0),
    (["--fingerprint"], [], 1),
    (["--fingerprint", "--side-by-side", "treeverse-paper", "--delta", "3"], [], 2),
])
def test_cli_draw(tmp_path, capsys, read_svg, extra, placed, images):
    out = tmp_path / "fig.svg"
    args = _parser().parse_args(["draw", "treeverse", "-n", "20", "--pebbles", "4",
                                 "-o", str(out), *extra])
    assert cli.run_draw(args) == 0
    assert "wrote" in capsys.readouterr().out
    svg = read_svg(out)
    # treeverse n=20 S=4: 40 steps, each placing one pebble (min_forward_steps)
    assert pebbles.min_forward_steps(20, 4, "checkpoint") == 40
    assert svg.markers.get(GIDS["placed"], []) == placed  # one marker group per panel
    assert svg.images == images  # the fingerprints, rasterised
    assert sum(1 for t in svg.texts if "n=20" in t) == max(len(placed), images)


def test_cli_draw_side_by_side_with_the_same_method_is_refused(tmp_path):
    # the panels share every flag: the same method twice drew two equal panels
    out = tmp_path / "x.png"
    args = _parser().parse_args(["draw", "treeverse", "-n", "20", "--pebbles", "4",
                                 "--inplace", "--side-by-side", "treeverse", "-o", str(out)])
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"--side-by-side treeverse with method treeverse: .*same schedule"):
        cli.run_draw(args)
    assert not out.exists()


def test_cli_draw_large_board_suggests_fingerprint_flag(tmp_path):
    args = _parser().parse_args(["draw", "treeverse", "-n", "300", "--pebbles", "5",
                                 "-o", str(tmp_path / "x.png")])
    with pytest.raises(pebbles.PebblesValueError, match="--fingerprint"):
        cli.run_draw(args)


def test_cli_tradeoff(tmp_path, read_svg):
    out = tmp_path / "t.svg"
    args = _parser().parse_args(["tradeoff", "-n", "100", "-o", str(out)])
    assert cli.run_tradeoff(args) == 0
    svg = read_svg(out)
    assert svg.ids["axes_1"] == svg.ids["axes_2"] == svg.ids["axes_3"] == 1  # n, ratio, legend
    assert "axes_4" not in svg.ids
    assert {"n = $10^{2}$", "memory ratio (Figure 8 of the paper)",
            "treeverse_paper (Algorithm 3, simulated)"} <= set(svg.texts)


def test_cli_describe():
    args = _parser().parse_args(["draw", "treeverse-paper", "-n", "20", "--delta", "3",
                                 "-o", "x.png"])
    assert cli.describe(args) == "treeverse-paper delta=3"
    for argv, want in ((["online", "-n", "20", "--pebbles", "3", "--inplace", "--beyond",
                         "wang-moin"], "online S=3 beyond=wang-moin inplace"),
                       (["two-level", "-n", "20", "--pebbles", "3", "--disk-slots", "2",
                         "--write-cost", "2", "--read-cost", "1"],
                        "two-level S=3 disk-slots=2 read-cost=1.0 write-cost=2.0"),
                       (["treeverse", "-n", "1", "--pebbles", "0"], "treeverse S=0")):
        args = _parser().parse_args(["draw", *argv, "-o", "x.png"])
        assert cli.describe(args) == want


def test_cli_tradeoff_words_its_errors_in_flags_and_draws_each_n_once(tmp_path, monkeypatch):
    out = tmp_path / "t.png"
    with pytest.raises(pebbles.PebblesValueError, match=r"^-n 1 has no trade-off.*pass -n 2"):
        cli.run_tradeoff(_parser().parse_args(["tradeoff", "-n", "1", "-o", str(out)]))
    from visualize import _tradeoff

    drawn = []
    real = _tradeoff.draw_tradeoff
    monkeypatch.setattr(_tradeoff, "draw_tradeoff",
                        lambda ns, **kw: drawn.append(real(ns, **kw)) or drawn[-1])
    assert cli.run_tradeoff(_parser().parse_args(["tradeoff", "-n", "100", "30", "100", "-o",
                                                  str(out)])) == 0
    assert [a.get_title() for a in drawn[0].axes if a.get_title().startswith("n =")] == \
        ["n = $10^{2}$", "n = 30"]


def test_fingerprint_ticks_are_whole_numbers():
    fig = visualize.draw_fingerprint(pebbles.treeverse(2, 1), 2, budget=1)
    ax = fig.axes[0]
    fig.canvas.draw()
    for ticks in (ax.get_xticks(), ax.get_yticks()):
        shown = [t for t in ticks if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]] or ticks
        assert all(float(t).is_integer() for t in shown)


def test_importing_pebbles_and_the_cli_hooks_does_not_import_matplotlib():
    code = ("import sys, pebbles, visualize, visualize.cli; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_save_checks_dpi_and_format_before_drawing(tmp_path):
    fig = visualize.draw_game(pebbles.treeverse(10, 3), 10)
    # dpi 1..6 would crash FreeType (RuntimeError: invalid ppem value) for a PNG: refused
    with pytest.raises(pebbles.PebblesValueError, match="dpi=1 must be from 10 to 1200"):
        visualize.save(fig, tmp_path / "a.png", dpi=1)
    with pytest.raises(pebbles.PebblesTypeError, match="dpi='x'"):
        visualize.save(fig, tmp_path / "a.png", dpi="x")
    with pytest.raises(pebbles.PebblesValueError, match="'.xyz' is not a format"):
        visualize.save(fig, tmp_path / "a.xyz")
    with pytest.raises(pebbles.PebblesValueError, match="does not exist"):
        visualize.save(fig, tmp_path / "missing" / "a.png")
    with pytest.raises(pebbles.PebblesTypeError, match="not a matplotlib Figure"):
        visualize.save("fig", tmp_path / "a.png")
    assert not list(tmp_path.iterdir())
    assert visualize.save(fig, tmp_path / "a.png", dpi=10).stat().st_size > 0
    with pytest.raises(SystemExit):
        _parser().parse_args(["draw", "treeverse", "-n", "5", "--pebbles", "3", "--dpi", "1",
                              "-o", "x.png"])


@pytest.mark.parametrize("ext", ["png", "pdf", "svg"])
def test_save_failing_midway_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, ext):
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    class Broken(Text):
        def draw(self, renderer):
            raise RuntimeError("boom")

    out = tmp_path / f"fig.{ext}"
    out.write_bytes(b"old")
    fig = Figure()  # no layout engine: the PDF and SVG files are open when drawing fails
    fig.add_artist(Broken(0.5, 0.5, "x"))
    with pytest.raises(RuntimeError, match="boom"):
        visualize.save(fig, out)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize("n, budget, game", [(1, 1, "checkpoint"), (1, 1, "reversible"),
                                             (2, 2, "checkpoint")])
def test_short_diagrams_keep_the_legend_below_the_axes_and_integer_row_ticks(n, budget, game):
    moves = (pebbles.treeverse(n, budget) if game == "checkpoint"
             else pebbles.reversible_optimal(n, budget))
    fig = visualize.draw_game(moves, n, game)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax_box = fig.axes[0].get_window_extent(renderer)
    legend_box = fig.legends[0].get_window_extent(renderer)
    assert legend_box.y1 <= ax_box.y0  # the legend does not overlap the board
    lo, hi = sorted(fig.axes[0].get_ylim())
    ticks = [t for t in fig.axes[0].get_yticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)  # not -0.25, 0.25, ...


def test_side_by_side_gives_each_panel_room_for_its_header():
    fig = visualize.draw_side_by_side([("a", pebbles.treeverse(3, 2), "checkpoint"),
                                       ("b", pebbles.reversible_optimal(3, 2), "reversible")], 3)
    assert [ax.get_title(loc="left").split("\n")[0] for ax in fig.axes] == ["a", "b"]
    left, right = _header_boxes(fig)
    assert left.x1 <= right.x0 and right.x1 <= fig.bbox.x1  # headers do not overlap


def _header_boxes(fig):
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [next(t for t in ax.get_children() if isinstance(t, Text)
                 and t.get_text() == ax.get_title(loc="left")).get_window_extent(renderer)
            for ax in fig.axes]


@pytest.mark.parametrize("n", [12, 30])
def test_two_level_headers_stay_inside_the_figure(n):
    s = pebbles.schedule("two-level", n, budget=2, disk_budget=2, write_cost=1, read_cost=1)
    single = visualize.draw_game(s, n, s.game, title="two-level", budget=2)
    side = visualize.draw_side_by_side([("treeverse", pebbles.treeverse(n, 2), "checkpoint", 2),
                                        ("two-level", s, s.game, 2)], n)
    for fig in (single, side):
        for box in _header_boxes(fig):  # "disk peak=..." stays inside the right edge
            assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1
    assert "disk peak=" in single.axes[0].get_title(loc="left")


def test_side_by_side_checks_panels_and_n():
    moves = pebbles.treeverse(10, 3)
    with pytest.raises(pebbles.PebblesValueError, match="panels is empty"):
        visualize.draw_side_by_side([], 10)
    with pytest.raises(pebbles.PebblesTypeError, match="n=10.0 must be an integer"):
        visualize.draw_side_by_side([("a", moves, "checkpoint")], 10.0)
    fig = visualize.draw_side_by_side([("a", moves, "checkpoint")], np.int64(10))
    assert drawn_markers(fig)["placed"] == pebbles.min_forward_steps(10, 3)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"max_rows": 0}, pebbles.PebblesValueError, "max_rows=0 must be >= 1"),
    ({"max_cols": -3}, pebbles.PebblesValueError, "max_cols=-3 must be >= 1"),
    ({"max_cols": 2.5}, pebbles.PebblesTypeError, "max_cols=2.5 must be an integer"),
    ({"max_rows": True}, pebbles.PebblesTypeError, "max_rows=True must be an integer"),
])
def test_fingerprint_checks_its_bins(kwargs, error, match):
    with pytest.raises(error, match=match):
        visualize.draw_fingerprint(pebbles.treeverse(10, 3), 10, **kwargs)


def test_tradeoff_and_online_overhead_refuse_empty_inputs():
    with pytest.raises(pebbles.PebblesValueError, match=r"ns=\(\) is empty"):
        visualize.draw_tradeoff(())
    with pytest.raises(pebbles.PebblesValueError, match=r"ns=\(\) is empty"):
        visualize.draw_online_overhead(())
    with pytest.raises(pebbles.PebblesValueError, match=r"budgets=\(\) is empty"):
        visualize.draw_online_overhead((10, 100), ())
    fig = visualize.draw_tradeoff(50)  # one n as an int
    assert fig.axes[0].get_title() == "n = 50"
    fig = visualize.draw_online_overhead((10, 100), (1, 5))
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "S = 1, checkpoint game (cannot finish n >= 3)" in labels  # NaN line, said so


@pytest.mark.parametrize("argv, match", [
    (["treeverse", "--pebbles", "4", "--k", "3"], "--k: not taken by method treeverse"),
    (["treeverse", "--pebbles", "4", "--side-by-side", "treeverse-paper", "--delta", "3",
      "--every", "2"], "--every: not taken by method treeverse or treeverse-paper"),
])
def test_cli_draw_refuses_flags_no_drawn_method_takes(tmp_path, argv, match):
    out = tmp_path / "x.png"
    args = _parser().parse_args(["draw", *argv, "-n", "20", "-o", str(out)])
    with pytest.raises(pebbles.PebblesValueError, match=match):
        cli.run_draw(args)
    assert not out.exists()


def test_cli_fingerprint_refuses_traces_too_large_to_hold(tmp_path):
    # store-all n=14000: 2e8 pixels pass, but 14000 rows of up to 14000 pebbles would take
    # many minutes and more than 10 GB: refused before they are traced
    args = _parser().parse_args(["draw", "store-all", "-n", "14000", "--fingerprint",
                                 "-o", str(tmp_path / "x.png")])
    with pytest.raises(pebbles.PebblesValueError, match="traces 13999 rows"):
        cli.run_draw(args)


def test_two_level_diagram_shows_the_disk_copies_and_counts():
    s = pebbles.schedule("two-level", 30, budget=3, disk_budget=4, write_cost=2, read_cost=1)
    r = pebbles.simulate(s, 30, s.game, 3, trace=True)
    fig = visualize.draw_game(s, 30, s.game, budget=3)
    traced = visualize.trace_rows(s, 30, s.game, 3)
    assert traced.rows[-1].on_disk == frozenset(r.trace[-1].disk)
    # one frame per disk copy per row: the disk is in the diagram
    assert drawn_markers(fig)["on_disk"] == sum(len(row.on_disk) for row in traced.rows) > 0
    header = fig.axes[0].get_title(loc="left").replace(",\n", ", ")
    assert f"disk writes={r.writes}, reads={r.reads}, disk peak={r.peak_disk}" in header
    assert "copy on disk" in [t.get_text() for t in fig.legends[0].get_texts()]
    plain = visualize.draw_game(pebbles.treeverse(10, 3), 10)
    assert "on_disk" not in drawn_markers(plain) and "disk" not in plain.axes[0].get_title("left")


def test_cli_fingerprint_refuses_n_squared_pixels_without_simulating(tmp_path, monkeypatch):
    """Every schedule takes at least n - 1 rows: (n - 1)(n + 1) > 2e8 is refused at once
    (online n = 10^5 S = 3 simulated 33 s before)."""
    monkeypatch.setattr(pebbles.Schedule, "simulate",
                        lambda *a, **k: pytest.fail("simulated"))
    args = _parser().parse_args(["draw", "online", "-n", "100000", "--pebbles", "3",
                                 "--fingerprint", "-o", str(tmp_path / "x.png")])
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"has at least 99999 rows x 100001 cells, more than 200000000"):
        cli.run_draw(args)


def test_cli_online_overhead_covers_one_to_the_largest_n(tmp_path, monkeypatch, capsys):
    from visualize import _tradeoff

    seen = []
    monkeypatch.setattr(_tradeoff, "draw_online_overhead",
                        lambda ns, budgets: seen.append(ns) or visualize.draw_tradeoff(10))
    for argv in (["-n", "5"], ["-n", "100", "1000"], ["-n", "1000000"]):
        args = _parser().parse_args(["tradeoff", *argv, "--online-overhead", "3",
                                     "-o", str(tmp_path / "o.png")])
        assert cli.run_tradeoff(args) == 0
    assert seen[0] == (1, 2, 3, 4, 5)
    assert seen[1][:10] == tuple(range(1, 11)) and seen[1][-1] == 1000
    assert seen[2][-1] == cli.MAX_OVERHEAD_N == 10**5  # capped, and said so:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "plots n up to 100000, not 1000000" in err


def test_large_boards_are_refused_before_tracing(monkeypatch):
    """draw_game took 5 s at n = 10^4 and 300 s at 10^5 to refuse; now nothing is traced."""
    import visualize._game as game

    monkeypatch.setattr(game, "traced_within", lambda *a, **k: pytest.fail("traced"))
    s = pebbles.schedule("treeverse", 10**5, budget=20)
    with pytest.raises(pebbles.PebblesValueError, match="at most n=128 cells, got n=100000"):
        visualize.draw_game(s, 10**5)
    with pytest.raises(pebbles.PebblesValueError, match="at most n=128 cells"):
        visualize.draw_side_by_side([("a", s, "checkpoint")], 10**5)
    with pytest.raises(pebbles.PebblesValueError,
                       match="a fingerprint of n=100000 has at least 99999 rows"):
        visualize.draw_fingerprint(s, 10**5)


@pytest.mark.parametrize("ax", ["axes", 3])
def test_an_ax_that_is_not_an_axes_is_named(ax):
    s = pebbles.schedule("treeverse", 10, budget=3)
    for draw in (visualize.draw_game, visualize.draw_fingerprint):
        with pytest.raises(pebbles.PebblesTypeError, match="ax=.* must be a matplotlib Axes"):
            draw(s, 10, ax=ax)


def test_online_overhead_draws_every_budget_in_its_own_colour_and_sorts_n():
    from pebbles import online_r2_range

    fig = visualize.draw_online_overhead((50, 5, 20, 5), tuple(range(1, 23)))
    ax = fig.axes[0]
    lines = [line for line in ax.lines if str(line.get_gid()).startswith("online-")]
    assert len(lines) == 2 * 22  # budgets beyond 20 were dropped
    assert len({tuple(line.get_color()) if not isinstance(line.get_color(), str)
                else line.get_color() for line in lines}) == 22
    for line in lines:
        assert list(line.get_xdata()) == [5, 20, 50]  # sorted, each once: no zig-zag
    dotted = sorted(line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":")
    assert dotted == [online_r2_range(s) for s in range(1, 23)]  # checkpoint game
    assert "(S+1)(S+2)/2 - 1" in " ".join(visualize.draw_online_overhead.__doc__.split())


def _outside(fig):
    """Texts drawn (partly) outside the figure."""
    fig.canvas.draw()
    renderer, box = fig.canvas.get_renderer(), fig.bbox
    texts = [fig._suptitle] if fig._suptitle else []
    for ax in fig.axes:
        texts += [*ax.texts, ax.title]
        if ax.get_legend():
            texts += ax.get_legend().get_texts()
    out = []
    for t in texts:
        b = t.get_window_extent(renderer)
        if t.get_text() and (b.x0 < box.x0 - 1 or b.x1 > box.x1 + 1):
            out.append(t.get_text())
    return out


def test_tradeoff_and_pml_texts_stay_inside_the_figure():
    from solvers.experiments import scaled_config

    assert _outside(visualize.draw_tradeoff((100, 1000))) == []
    cfg = scaled_config(32)
    assert _outside(visualize.draw_pml_snapshots(np.zeros((1, *cfg.shape)), [5], cfg)) == []
    assert _outside(visualize.draw_online_overhead((5, 50), tuple(range(1, 23)))) == []


def test_small_n_tradeoff_panels_show_every_point():
    """At n < 10 the store-all end of a curve, T'/T = (n - 1) / n, lies below 0.9."""
    fig = visualize.draw_tradeoff((2, 5))
    for ax, n in zip(fig.axes[:2], (2, 5), strict=True):
        left, right = ax.get_xlim()
        xs = np.concatenate([x for x, _ in visualize.tradeoff_curves(n).values()])
        assert left < xs.min() and xs.max() < right, (n, left, xs.min())
        assert left <= 0.8 * xs.min()  # the marker there shows whole
    fig.canvas.draw()
    labels = {t.get_text() for t in fig.axes[0].get_yticklabels(which="both") if t.get_text()}
    assert labels and not any("times" in t for t in labels), labels  # "2", not "2 x 10^0"


def test_a_schedule_is_drawn_in_its_own_game_and_budget():
    s = pebbles.schedule("treeverse", 12, budget=3, inplace=True)
    for draw in (visualize.draw_game, visualize.draw_fingerprint):
        header = draw(s, 12).axes[0].get_title(loc="left")
        assert "inplace game, S=3" in header and "peak=3" in header
    header = visualize.draw_game(pebbles.schedule("bennett", 9), 9).axes[0].get_title("left")
    assert "reversible game" in header  # not an IllegalMoveError of the checkpoint game
    with pytest.raises(pebbles.PebblesValueError, match=r"is for n=12, not n=13; pass n=12"):
        visualize.draw_game(s, 13)
    with pytest.raises(pebbles.PebblesValueError, match=r"^game='checkpoint', but the sched"):
        visualize.draw_game(s, 12, "checkpoint")
    assert pebbles.simulate(pebbles.schedule("bennett", 9), 9).game is pebbles.Game.REVERSIBLE


def test_fingerprints_side_by_side_share_one_step_scale(tmp_path):
    args = _parser().parse_args(["draw", "treeverse", "-n", "60", "--pebbles", "6",
                                 "--fingerprint", "--side-by-side", "bennett-gradient",
                                 "-o", str(tmp_path / "fp.png")])
    panels = cli._schedules(args)
    fig = cli._figure(args, panels, cli._traced(panels))
    longest = max(ax.images[0].get_extent()[2] for ax in fig.axes if ax.images)
    assert [ax.get_ylim() for ax in fig.axes if ax.images] == [(longest, -0.5)] * 2


def test_drawing_into_a_subfigure_returns_the_figure_save_writes(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5), layout="constrained")
    left, right = fig.subfigures(1, 2)
    s = pebbles.schedule("treeverse", 8, budget=3)
    assert visualize.draw_game(s, 8, ax=left.add_subplot()) is fig
    assert visualize.draw_fingerprint(s, 8, ax=right.add_subplot()) is fig
    assert imread(visualize.save(fig, tmp_path / "sub.png")).shape[1] == 1200


@pytest.mark.parametrize("other", ["bennett", "store-all", "periodic"])
def test_cli_side_by_side_gives_the_budget_only_to_methods_that_take_one(other, tmp_path):
    out = tmp_path / "sbs.png"
    args = _parser().parse_args(["draw", "treeverse", "-n", "16", "--pebbles", "3",
                                 "--side-by-side", other, *(["--every", "4"] * (
                                     other == "periodic")), "-o", str(out)])
    assert [budget for *_, budget in cli._schedules(args)] == [3, None]
    assert cli.run_draw(args) == 0 and out.exists()


def test_cli_side_by_side_checks_both_panels_against_a_budget_neither_takes(tmp_path):
    args = _parser().parse_args(["draw", "store-all", "-n", "16", "--pebbles", "3",
                                 "--side-by-side", "bennett", "-o", str(tmp_path / "x.png")])
    with pytest.raises(pebbles.PebblesValueError, match="store-all holds 15 states"):
        cli.run_draw(args)


def test_tradeoff_panel_says_online_is_not_simulated_past_paper_max_n():
    fig = visualize.draw_tradeoff((200,), paper_max_n=100)
    notes = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "not-simulated"]
    assert len(notes) == 1 and "treeverse_paper and online" in notes[0]
    assert "n > 100" in notes[0]
    assert "online" in _parser()._subparsers._group_actions[0].choices["tradeoff"] \
        .format_help().split("--paper-max-n PAPER_MAX_N")[-1].split("--dpi")[0]


def test_online_overhead_legend_names_the_true_first_unfinished_n():
    fig = visualize.draw_online_overhead(tuple(range(1, 200, 7)), (0, 1, 3))
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["S = 0, checkpoint game (cannot finish n >= 2)",
                      "S = 0, in-place game (cannot finish n >= 2)",
                      "S = 1, checkpoint game (cannot finish n >= 3)",  # not 8, sampled
                      "S = 1, in-place game", "S = 3, checkpoint game", "S = 3, in-place game"]


@pytest.mark.parametrize("stream", [False, True])
def test_fingerprint_refuses_too_many_pixels_at_once(stream):
    """Refused before the image is made (4.5e6 rows x 3001 cells: minutes and gigabytes)."""
    s = pebbles.schedule("recompute-all", 3000)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"a fingerprint of n=3000 has .*rows x 3001 cells, more than "):
        visualize.draw_fingerprint(iter(s) if stream else s, 3000)


def test_fingerprint_refuses_a_trace_too_large_to_hold():
    s = pebbles.schedule("store-all", 14000)  # 2e8 pixels pass, 2e8 traced pebbles do not
    with pytest.raises(pebbles.PebblesValueError, match="n=14000 traces 13999 rows of up to "
                                                        "13999 pebbles, more than 10000000"):
        visualize.draw_fingerprint((m for m in s), 14000)


def test_online_overhead_refuses_more_work_than_minutes_at_once():
    """Refused before anything is simulated (10**12 steps would never return)."""
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^budgets=\(3,\) with ns up to n=1000000000000: the online "
                             r"streams have at least .* forward steps to simulate"):
        visualize.draw_online_overhead((10, 10**12), (3,))
    with pytest.raises(pebbles.PebblesValueError, match=r"^budgets=\(2,\) with ns up to "
                                                        r"n=100000: "):
        visualize.draw_online_overhead((10, 10**5), (2, 40))  # S = 2 only: about n^2 / 4
    with pytest.raises(pebbles.PebblesValueError, match=r"^budgets=\(2,\) with ns up to"):
        visualize.draw_online_overhead(tuple(range(1, 10**6)), (2,))
    with pytest.raises(pebbles.PebblesTypeError, match=r"ns\[1\]='x' must be an integer"):
        visualize.draw_online_overhead((10, "x"), (3,))


def test_long_titles_are_wrapped_like_the_counts():
    title = ("A very long custom title that goes on and on and on for quite a while to see "
             "whether it gets wrapped or cut")
    header = visualize.draw_game(pebbles.treeverse(4, 2), 4, title=title).axes[0] \
        .get_title(loc="left").split("\n")
    lines = header[:next(k for k, line in enumerate(header) if line.startswith("n=4"))]
    assert len(lines) > 1 and " ".join(lines) == title
    assert max(map(len, lines)) <= max(map(len, header[len(lines):])) + 10
    two = visualize.draw_game(pebbles.treeverse(4, 2), 4, title="first\nsecond")
    assert two.axes[0].get_title(loc="left").split("\n")[:2] == ["first", "second"]


def test_a_diagram_drawn_into_given_axes_has_its_legend():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    visualize.draw_game(pebbles.schedule("bennett", 9), 9, ax=ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "placed this step" and "end cell n" in labels


@pytest.mark.parametrize("call, error, match", [
    (lambda s: visualize.draw_game(s, "5"), pebbles.PebblesTypeError,
     r"^n='5' must be an integer, got str"),
    (lambda s: visualize.draw_fingerprint(s, "5"), pebbles.PebblesTypeError,
     r"^n='5' must be an integer, got str"),
    (lambda s: visualize.draw_game(s, 5, title=3), pebbles.PebblesTypeError,
     r"^title=3 must be a string, got int"),
    (lambda s: visualize.draw_game(s, 5, title=r"$\foo$"), pebbles.PebblesValueError,
     r"^title='\$\\\\foo\$': matplotlib cannot read its \$\.\.\.\$ as mathtext"),
    (lambda s: visualize.draw_side_by_side(None, 5), pebbles.PebblesTypeError,
     r"^panels=None must be a sequence of \(label, moves, game\) tuples"),
    (lambda s: visualize.draw_side_by_side(["abc"], 5), pebbles.PebblesTypeError,
     r"^panels\[0\]='abc' must be a tuple \(label, moves, game\)"),
    (lambda s: visualize.draw_side_by_side([(3, s, "checkpoint")], 5),
     pebbles.PebblesTypeError, r"^panels\[0\]\[0\]=3 must be a string"),
    (lambda s: visualize.save(visualize.draw_game(s, 5), 3), pebbles.PebblesTypeError,
     r"^path=3 must be a str or a path, got int"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call(pebbles.schedule("treeverse", 5, budget=2))


def test_save_names_the_path_asked_for_when_it_cannot_write(tmp_path, monkeypatch):
    import visualize._game as game

    def refuse(file, mode):  # as in a read-only directory (root writes anywhere)
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(game, "open", refuse, raising=False)
    path = tmp_path / "x.png"
    with pytest.raises(PermissionError) as err:
        visualize.save(visualize.draw_game(pebbles.treeverse(5, 2), 5), path)
    assert err.value.filename == str(path) and ".part" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_cli_names_the_title_flag_when_matplotlib_cannot_read_it(tmp_path, capsys):
    from pebbles.cli import main

    out = tmp_path / "x.png"
    assert main(["draw", "treeverse", "-n", "5", "--pebbles", "2", "--title", r"$\foo$",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(r"pebbles draw: error: --title '$\foo$': matplotlib cannot read")
    assert err.count("\n") == 1 and not out.exists()


def test_numbers_without_matplotlib_need_no_matplotlib():
    code = ("import sys; sys.modules['matplotlib'] = None\nimport visualize\n"
            "print(visualize.MAX_CELLS, visualize.MAX_ROWS, "
            "int(visualize.tradeoff_curves(10)['treeverse'][1].max()))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "128 1500 9\n"


# -- the drawing layer's fixes (each test fails without its fix) ---------------------------

def test_pgf_without_its_tex_program_is_refused_before_drawing(tmp_path, monkeypatch):
    """.pgf passed the output check, then crashed after all the computing: 'xelatex' not
    found. check_output and save refuse it with one reason (cli.format_error)."""
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    out = tmp_path / "a.pgf"
    args = _parser().parse_args(["draw", "treeverse", "-n", "6", "--pebbles", "2",
                                 "-o", str(out)])
    monkeypatch.setattr(cli, "_schedules", lambda a: pytest.fail("computed first"))
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^-o '.*a\.pgf': the pgf format needs the TeX program "
                             r"'xelatex' .*on PATH.*install it.*\.pdf or \.svg"):
        cli.run_draw(args)
    fig = visualize.draw_game(pebbles.store_all(3), 3)
    with pytest.raises(pebbles.PebblesValueError, match=r"path=.*a\.pgf.*'xelatex'"):
        visualize.save(fig, out)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(cli.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert cli.check_output(str(out)) == out  # with TeX installed, pgf is written


def test_every_output_help_names_any_matplotlib_format():
    """python -m visualize said '.png, .svg, .pdf, .jpg, .jpeg, .eps or .ps' though it
    writes .tif, .webp, ...: one help text for every -o."""
    from visualize.__main__ import _parser as visualize_parser

    sub = next(a for a in visualize_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    for parser in [*sub.choices.values(), *_parser()._actions[1].choices.values()]:
        assert "(any matplotlib writes" in " ".join(parser.format_help().split())


def test_a_name_too_long_is_an_output_error(tmp_path):
    path = str(tmp_path / ("a" * 300 + ".png"))
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^-o '.*\.png' cannot be written \(File name too long\); name "
                             r"another file"):
        cli.check_output(path)


def test_the_output_through_a_dangling_link_is_written_to_its_target(tmp_path, capsys):
    (tmp_path / "link.png").symlink_to("target.png")
    args = _parser().parse_args(["draw", "treeverse", "-n", "6", "--pebbles", "2",
                                 "-o", str(tmp_path / "link.png")])
    assert cli.run_draw(args) == 0
    assert (tmp_path / "link.png").is_symlink()
    assert imread(tmp_path / "target.png").shape[0] > 0


def test_side_by_side_title_goes_over_both_panels(tmp_path):
    """--title replaced the left panel's label (its method and budget were lost)."""
    args = _parser().parse_args(["draw", "treeverse", "-n", "10", "--pebbles", "3",
                                 "--side-by-side", "online", "--title", "My title",
                                 "-o", str(tmp_path / "x.png")])
    for extra in ([], ["--fingerprint"]):
        args.fingerprint = bool(extra)
        panels = cli._schedules(args)
        fig = cli._figure(args, panels, cli._traced(panels) if extra else None)
        assert fig.get_suptitle() == "My title"
        titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
        assert [t.split("\n")[0] for t in titles] == ["treeverse S=3", "online S=3"]


def test_title_is_checked_before_the_schedules_are_built(tmp_path, monkeypatch):
    args = _parser().parse_args(["draw", "treeverse", "-n", "10", "--pebbles", "3",
                                 "--title", "$x^$", "-o", str(tmp_path / "x.png")])
    monkeypatch.setattr(cli, "_schedules", lambda a: pytest.fail("computed first"))
    with pytest.raises(pebbles.PebblesValueError, match=r"^--title '\$x\^\$': matplotlib"):
        cli.run_draw(args)


def test_fingerprint_shows_disk_copies_and_a_painted_cell_0():
    s = pebbles.schedule("two-level", 20, budget=2, write_cost=1, read_cost=1)
    traced = visualize.trace_rows(s, 20)
    img = visualize.fingerprint_array(traced)
    codes = visualize.CODES
    want = [(r, c) for r, row in enumerate(traced.rows) for c in row.on_disk
            if c not in row.kept | row.placed | row.removed and c > 0]
    assert want and all(img[r, c] == codes["disk"] for r, c in want)
    assert (img == codes["disk"]).sum() == len(want)
    assert img[-1, 0] == codes["painted"] and traced.rows[-1].painted_from == 0
    assert (img[:-1, 0] == codes["kept"]).all()
    fig = visualize.draw_fingerprint(s, 20)
    assert "on disk only" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plain = visualize.draw_fingerprint(pebbles.treeverse(10, 3), 10)
    assert "on disk only" not in [t.get_text() for t in plain.axes[0].get_legend().get_texts()]


def test_loads_have_their_own_marker():
    """A load was drawn as 'placed this step', the glyph of a computed pebble."""
    s = pebbles.schedule("two-level", 20, budget=2, write_cost=1, read_cost=1)
    loads = sum(m.kind is pebbles.MoveKind.LOAD for m in pebbles.expand(s, s.game))
    fig = visualize.draw_game(s, 20)
    got = drawn_markers(fig)
    assert loads > 0 and got["loaded"] == loads
    assert got["placed"] + got["loaded"] == expected_markers(s, 20, s.game)["placed"]
    assert "loaded from disk" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert "loaded" not in drawn_markers(visualize.draw_game(pebbles.treeverse(10, 3), 10))


def test_online_overhead_within_a_decade_has_plain_ticks():
    fig = visualize.draw_online_overhead((1, 2, 3, 4, 5), budgets=(2,))
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    labels = [t.get_text() for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True)
              if lo <= t.get_position()[0] <= hi and t.get_text()]
    assert labels == ["1", "2", "3", "4", "5"]  # not 2x10^0, 3x10^0


def test_cli_draw_too_many_rows_is_worded_in_flags(tmp_path):
    args = _parser().parse_args(["draw", "treeverse", "-n", "120", "--pebbles", "2",
                                 "-o", str(tmp_path / "x.png")])
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^pebbles draw draws at most -n 128 cells and 1500 rows, got "
                             r"-n 120 with at least \d+ rows; use --fingerprint") as err:
        cli.run_draw(args)
    assert "draw_fingerprint" not in str(err.value)
