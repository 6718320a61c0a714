"""visualize: arguments checked at the boundary, the same rule for the API and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

import pebbles
import visualize
from visualize import cli
from visualize._overhead import MAX_OVERHEAD_N


def test_tape_moves_are_diagram_rows():
    """Every step the simulator counts, tape included, is one row after row 0."""
    moves = list(pebbles.sequential_segments(9, 3, kept=True))
    assert any(m.kind is pebbles.MoveKind.TAPE for m in moves)
    fig = visualize.draw_game(moves, 9)
    rows = fig.axes[0].collections[-1].get_offsets().shape[0]  # one input marker a row
    assert rows - 1 == pebbles.simulate(moves, 9).forward_steps


def test_fingerprint_of_a_tape_stream_is_refused_past_the_trace_limit():
    with pytest.raises(pebbles.PebblesValueError, match="more than 10000000 pebbles"):
        visualize.draw_fingerprint(pebbles.sequential_segments(8000, 1, kept=True), 8000)


@pytest.mark.parametrize("projection", ["polar", "3d"])
@pytest.mark.parametrize("draw", [visualize.draw_game, visualize.draw_fingerprint])
def test_a_polar_or_3d_axes_is_refused_before_drawing(draw, projection):
    ax = Figure().add_subplot(projection=projection)
    with pytest.raises(pebbles.PebblesValueError,
                       match=rf"^ax=.* has projection '{projection}'.*without projection="):
        draw(pebbles.schedule("treeverse", 10, budget=3), 10, ax=ax)
    assert not ax.collections and not ax.images


RECORDS = [{"schedule": "treeverse S=10", "seconds": 2.0, "peak_states": 12},
           {"schedule": "bennett k=3", "seconds": 3.0, "peak_states": 30}]


@pytest.mark.parametrize("title, error, match", [
    ("$\\frac$", pebbles.PebblesValueError, r"^title='\$\\\\frac\$': matplotlib cannot read"),
    (5, pebbles.PebblesTypeError, r"^title=5 must be a string"),
])
def test_figure5_checks_its_title(title, error, match):
    with pytest.raises(error, match=match):
        visualize.draw_figure5(RECORDS, title=title)


def test_figure5_blank_title_draws_none():
    assert visualize.draw_figure5(RECORDS, title="")._suptitle.get_text() == ""
    assert "Figure 5" in visualize.draw_figure5(RECORDS)._suptitle.get_text()


def test_game_blank_title_leaves_the_counts_only():
    moves = pebbles.schedule("treeverse", 5, budget=2)
    head = visualize.draw_game(moves, 5, title="").axes[0].get_title(loc="left")
    assert head.startswith("n=5,")
    assert visualize.draw_game(moves, 5).axes[0].get_title(loc="left").startswith("schedule\n")


def test_cli_fig5_names_the_title_flag(tmp_path, capsys):
    import json

    from visualize.__main__ import main

    path = tmp_path / "f5.json"
    path.write_text(json.dumps({"fig5": {"records": RECORDS}}))
    assert main(["fig5", str(path), "--title", "$\\frac$", "-o", str(tmp_path / "f.png")]) == 2
    assert "--title '$\\frac$': matplotlib cannot read" in capsys.readouterr().err


S = np.linspace(0, 20, 5)
R = np.linspace(0, 40, 6)
G = np.full((5, 6), 0.5)
X = np.arange(1, 6)
E = np.full((5, 3), 1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"beta": "8/3"}, pebbles.PebblesTypeError, r"^beta='8/3' must be a number"),
    ({"grid": "abc"}, pebbles.PebblesTypeError, r"^grid \(of type str\) is not an array"),
    ({"trajectories": [np.zeros((0, 3))] * 2}, pebbles.PebblesValueError,
     r"shapes \[\(0, 3\), \(0, 3\)\].*at least one row"),
    ({"n": "many"}, pebbles.PebblesTypeError, r"^n='many' must be an integer"),
])
def test_lorenz_figure3_checks_its_arguments(kwargs, error, match):
    args = {"sigmas": S, "rhos": R, "grid": G, **kwargs}
    with pytest.raises(error, match=match):
        visualize.draw_lorenz_figure3(**args)


@pytest.mark.parametrize("steps_data, error, match", [
    ((X, np.zeros((5, 0))), pebbles.PebblesValueError, r"shapes \(5,\) and \(5, 0\)"),
    (None, pebbles.PebblesTypeError, r"^steps_data=None \(NoneType\) must be a pair"),
    ((np.array(list("abcde")), E), pebbles.PebblesTypeError, r"^steps_data\[0\] \(x\) has"),
    ((X, E, "junk"), pebbles.PebblesValueError, r"^steps_data has 3 items"),
])
def test_lorenz_figure4_checks_its_data(steps_data, error, match):
    with pytest.raises(error, match=match):
        visualize.draw_lorenz_figure4(steps_data, (X, E))


@pytest.fixture(scope="module")
def cfg():
    from solvers import experiments as ex

    return ex.scaled_config(40)


@pytest.mark.parametrize("case, error, match", [
    ("times_str", pebbles.PebblesTypeError, r"^times holds 'a' \(str\)"),
    ("times_int", pebbles.PebblesTypeError, r"^times=10 must be a sequence"),
    ("cfg_none", pebbles.PebblesTypeError, r"^cfg=None \(NoneType\) must be a solvers"),
    ("snapshots_str", pebbles.PebblesTypeError, r"^snapshots \(of type str\) is not"),
    ("times_outside", pebbles.PebblesValueError, r"^times=\[-10, 1000000000\] must be .* in 1"),
])
def test_pml_snapshots_check_their_arguments(cfg, case, error, match):
    snaps = np.zeros((2, *cfg.shape))
    args = {"times_str": (snaps, ["a", "b"], cfg), "times_int": (snaps[:1], 10, cfg),
            "cfg_none": (snaps, [10, 20], None), "snapshots_str": ("ab", [10, 20], cfg),
            "times_outside": (snaps, [-10, 10**9], cfg)}[case]
    with pytest.raises(error, match=match):
        visualize.draw_pml_snapshots(*args)


def test_pml_gradient_checks_cfg_and_title(cfg):
    with pytest.raises(pebbles.PebblesTypeError, match=r"^cfg=None"):
        visualize.draw_pml_gradient(np.ones(cfg.shape), None)
    with pytest.raises(pebbles.PebblesValueError, match=r"^title='\$\\\\frac\$'"):
        visualize.draw_pml_gradient(np.ones(cfg.shape), cfg, title="$\\frac$")
    with pytest.raises(pebbles.PebblesTypeError, match=r"^title=5 must be a string"):
        visualize.draw_pml_gradient(np.ones(cfg.shape), cfg, title=5)


def test_tradeoff_draws_a_repeated_n_once_in_order():
    fig = visualize.draw_tradeoff((100, 10, 100), paper_max_n=10)
    titles = [a.get_title() for a in fig.axes if a.get_title().startswith("n =")]
    assert titles == ["n = $10^{2}$", "n = $10^{1}$"]


def test_output_formats_are_the_ones_save_writes(tmp_path):
    assert {"tif", "webp", "png", "svg", "pdf"} <= set(cli.formats())
    assert cli.check_output(str(tmp_path / "x.tif")).suffix == ".tif"
    fig = visualize.draw_game(pebbles.schedule("treeverse", 5, budget=2), 5)
    assert visualize.save(fig, tmp_path / "y.tif").is_file()


def test_online_overhead_takes_a_bare_int_and_budget_zero():
    fig = visualize.draw_online_overhead(10, 0)
    assert [line.get_gid() for line in fig.axes[0].lines if line.get_gid()] == \
        ["online-0-checkpoint", "online-0-in-place"]
    args = cli.argparse.ArgumentParser()
    cli.add_tradeoff_arguments(args)
    assert args.parse_args(["-o", "x.png", "--online-overhead", "0"]).online_overhead == [0]


def test_online_overhead_refuses_an_n_past_its_limit_and_counts_each_stream():
    with pytest.raises(pebbles.PebblesValueError,
                       match=rf"^ns up to n=1000000: .* at most {MAX_OVERHEAD_N}"):
        visualize.draw_online_overhead((10**6,), (1000,))
    with pytest.raises(pebbles.PebblesValueError, match=r"^budgets=\(500, 1000\) with ns"):
        visualize.draw_online_overhead(tuple(range(1000, 10**5, 100)), (500, 1000))


@pytest.mark.parametrize("draw", [visualize.draw_game, visualize.draw_fingerprint])
def test_a_method_name_as_moves_points_to_pebbles_schedule(draw):
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"^moves='treeverse' is a str, not moves; .*"
                             r"pebbles\.schedule\('treeverse', 20, budget=\.\.\.\)"):
        draw("treeverse", 20)


@pytest.mark.parametrize("draw", [visualize.draw_game, visualize.trace_rows,
                                  visualize.draw_fingerprint])
def test_a_walk_past_the_board_is_an_illegal_move_not_a_billion_rows(draw):
    """The stream is checked by the simulator before any walk is expanded (expanding
    forward 0 10**9 first took minutes and gigabytes, then named a made-up move)."""
    with pytest.raises(pebbles.IllegalMoveError, match=r"^illegal move #1 \(forward 0 "
                                                       r"1000000000\): forward i j needs 0"):
        draw([pebbles.place(1), pebbles.forward(0, 10**9)], 5)


@pytest.mark.parametrize("draw", [
    lambda moves, n: visualize.draw_game(moves, n, "reversible"),
    lambda moves, n: visualize.draw_side_by_side([("a", moves, "reversible")], n)])
def test_an_endless_stream_is_refused_once_its_rows_pass_the_limit(draw):
    def endless():
        while True:
            yield pebbles.Move(pebbles.MoveKind.PLACE, 1, -1)
            yield pebbles.Move(pebbles.MoveKind.UNPLACE, 1, -1)

    with pytest.raises(pebbles.PebblesValueError, match=r"^draw_game draws at most n=128 "
                       r"cells and 1500 rows, got n=1 with at least 1501 rows"):
        draw(endless(), 1)


def test_elements_that_are_no_moves_are_named_by_the_simulator():
    with pytest.raises(pebbles.PebblesTypeError, match=r"^move #0 of the stream, \{'a': 1\}, "
                                                       r"is not a Move"):
        visualize.trace_rows([{"a": 1}], 3)
    with pytest.raises(pebbles.PebblesTypeError, match=r"^moves=5 is not a stream of moves"):
        visualize.draw_fingerprint(5, 3)


def test_saving_to_a_directory_says_it_is_one(tmp_path):
    fig = visualize.draw_game(pebbles.schedule("treeverse", 3, budget=2), 3)
    with pytest.raises(pebbles.PebblesValueError, match=r"is a directory; name a file inside "
                                                       r"it, e\.g\. .*figure\.png"):
        visualize.save(fig, tmp_path)


def test_saving_inside_a_file_says_the_parent_is_a_file(tmp_path):
    fig = visualize.draw_game(pebbles.schedule("treeverse", 4, budget=2), 4)
    (tmp_path / "a.png").write_text("")
    with pytest.raises(pebbles.PebblesValueError, match=r"lies under '.*a\.png', which is a file"):
        visualize.save(fig, tmp_path / "a.png" / "x.png")


@pytest.mark.parametrize("traced", [None, pebbles.schedule("treeverse", 5, budget=2), "x"])
def test_fingerprint_array_wants_trace_rows(traced):
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"^traced=.* must be the rows of a schedule; pass "
                             r"traced=visualize\.trace_rows\(moves, n\)"):
        visualize.fingerprint_array(traced)


@pytest.mark.parametrize("model", [None, 1, "no"])
def test_figure5_model_must_be_a_bool(model):
    with pytest.raises(pebbles.PebblesTypeError, match=r"^model=.* must be True or False"):
        visualize.draw_figure5(RECORDS, model=model)
    assert len(visualize.draw_figure5(RECORDS, model=np.bool_(False)).axes) == 1


@pytest.mark.parametrize("records, match", [(None, "got NoneType"), (3, "got int"),
                                            ([RECORDS[0], 3], "record 1 is a int")])
def test_figure5_records_of_the_wrong_type_are_a_type_error(records, match):
    with pytest.raises(pebbles.PebblesTypeError, match=rf"^records must be .*{match}"):
        visualize.draw_figure5(records)
