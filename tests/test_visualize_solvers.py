"""visualize: the solver figures (Lorenz Figures 3 and 4, PML images, Figure 5) and their CLI.

The data come from :mod:`solvers.experiments` (the experiments) and from benchmark records
(Figure 5); visualize only draws them.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

import pebbles
import visualize
from solvers import experiments as ex
from visualize.__main__ import fig5_records, main


def _gid(fig, gid):
    """Artists (lines, images, collections, patches) with this gid, over all axes."""
    out = []
    for ax in fig.axes:
        for a in (*ax.lines, *ax.images, *ax.collections, *ax.patches):
            if a.get_gid() == gid:
                out.append(a)
    return out


def _saved(fig, path, dpi=60):
    """Save as PNG; the file is an image of the figure's pixel size."""
    visualize.save(fig, path, dpi=dpi)
    w, h = fig.get_size_inches() * dpi
    assert np.allclose(imread(path).shape[:2], (h, w), atol=1)
    return path


@pytest.fixture(scope="module")
def small_map():
    g = ex.sensitivity_grid(12, n=300)
    return g.sigmas, g.rhos, g.mean_abs_grad


def test_figure3_map_curve_points_and_trajectories(tmp_path, small_map):
    from visualize._lorenz_figs import POINTS

    sigmas, rhos, grid = small_map
    assert grid.shape == (12, 12) and np.all(np.isfinite(grid))
    paths = [ex.lorenz_trajectory(s, r, n=300) for s, r in POINTS]
    fig = visualize.draw_lorenz_figure3(sigmas, rhos, grid, n=300, trajectories=paths)
    _saved(fig, tmp_path / "fig3.png")
    (img,) = _gid(fig, "sensitivity")
    assert img.get_array().shape == (12, 12)  # rho across rows, sigma across columns
    assert img.norm.vmin == pytest.approx(grid.min()) and img.norm.vmax == pytest.approx(grid.max())
    assert len(_gid(fig, "marked-point")) == 2
    drawn = _gid(fig, "trajectory")
    assert len(drawn) == 2
    for line, path in zip(drawn, paths, strict=True):
        x, y, z = line.get_data_3d()
        assert np.array_equal(x, path[:, 0]) and np.array_equal(z, path[:, 2])
    assert paths[0].shape == (301, 3) and np.array_equal(
        paths[0][-1], _final_state(POINTS[0], 300))
    (curve,) = _gid(fig, "critical-curve")
    s, r = curve.get_data()
    assert s.min() > 8 / 3 + 1 and r.max() <= 50
    assert np.allclose(r, s * (s + 8 / 3 + 3) / (s - 8 / 3 - 1))
    assert any(ax.name == "3d" for ax in fig.axes)
    map_ax = img.axes
    assert "sigma" in map_ax.get_xlabel() and "rho" in map_ax.get_ylabel()
    assert (map_ax.get_xlim(), map_ax.get_ylim()) == (
        pytest.approx((sigmas[0], sigmas[-1]), abs=sigmas[1] - sigmas[0]),
        pytest.approx((rhos[0], rhos[-1]), abs=rhos[1] - rhos[0]))


def _final_state(point, n):
    from solvers.lorenz import primal

    return primal((1.0, 0.0, 0.0), (*point, 8 / 3), n=n)


def test_figure3_masks_overflow_and_says_so(small_map):
    sigmas, rhos, grid = small_map
    bad = grid.copy()
    bad[3, 4], bad[5, 6] = np.inf, np.nan
    fig = visualize.draw_lorenz_figure3(sigmas, rhos, bad)
    (img,) = _gid(fig, "sensitivity")
    assert img.get_array().mask.sum() == 2
    assert "2 cells overflow" in fig.axes[-1].get_ylabel()
    assert not any(ax.name == "3d" for ax in fig.axes)  # no trajectories given: no panel (b)
    with pytest.raises(pebbles.PebblesValueError, match="grid.shape"):
        visualize.draw_lorenz_figure3(sigmas, rhos[:-1], grid)
    with pytest.raises(pebbles.PebblesValueError, match="one \\(n \\+ 1, 3\\) array per point"):
        visualize.draw_lorenz_figure3(sigmas, rhos, grid, trajectories=[np.zeros((5, 3))])


def test_figure3_from_the_solver_cli_npz(tmp_path, read_svg):
    npz = tmp_path / "map.npz"
    from solvers.lorenz import main as lorenz_main

    assert lorenz_main(["sensitivity", "--resolution", "5", "--steps", "50",
                        "--out", str(npz)]) == 0
    g = ex.load_sensitivity(npz)
    assert g.mean_abs_grad.shape == (5, 5) and g.beta == pytest.approx(8 / 3) and g.steps == 50
    assert np.array_equal(g.mean_abs_grad, ex.sensitivity_grid(5, n=50).mean_abs_grad)
    with pytest.raises(pebbles.PebblesValueError, match="not a Figure 3 grid"):
        ex.load_sensitivity(tmp_path / "missing.npz")
    with pytest.raises(pebbles.PebblesValueError, match="is a directory"):
        g.save(tmp_path)
    out = tmp_path / "f3.svg"
    assert main(["lorenz-fig3", "--npz", str(npz), "--no-trajectories", "-o", str(out)]) == 0
    svg = read_svg(out)
    assert svg.ids["sensitivity"] == svg.ids["critical-curve"] == 1
    assert svg.ids["marked-point"] == 2 and "trajectory" not in svg.ids  # --no-trajectories
    assert any(t.startswith("(a) sensitivity of $x_n$, n = 50,") for t in svg.texts)


def test_figure4_errors_grow_with_steps_and_reload_interval(tmp_path):
    steps, err = ex.adjoint_errors_vs_steps([1, 100, 400, 900], starts=5)
    assert err.shape == (4, 5)
    med = np.median(err, axis=1)
    assert med[0] < 1e-8 < med[1] < 1e-6 < med[2] < 1e-1  # paper: 1e-10, 4e-8 (100), ...
    ks, rerr = ex.adjoint_errors_vs_reload([1, 200, 500], n=3000, starts=3)
    rmed = np.median(rerr, axis=1)
    assert rmed[0] < rmed[1] < rmed[2]
    fig = visualize.draw_lorenz_figure4((steps, err), (ks, rerr), reload_steps=3000)
    _saved(fig, tmp_path / "fig4.png")
    medians = _gid(fig, "median")
    assert len(medians) == 2
    assert np.allclose(medians[1].get_ydata(), rmed)  # panel (b) draws the data given
    overflow = _gid(fig, "overflow")  # n = 900 is past the overflow of every start
    assert len(overflow) == 1 and overflow[0].get_xdata()[0] == 900
    with pytest.raises(pebbles.PebblesValueError, match="starts=0"):
        ex.adjoint_errors_vs_steps([1], starts=0)
    with pytest.raises(pebbles.PebblesValueError, match="steps_data has shapes"):
        visualize.draw_lorenz_figure4((steps, err[:2]), (ks, rerr))


@pytest.fixture(scope="module")
def pml_data():
    cfg = ex.scaled_config(40, steps=300)
    return cfg, ex.pml_experiment(cfg, [60, 150, 250], budget=6)


def test_pml_snapshots_gather_and_gradient(tmp_path, pml_data):
    cfg, d = pml_data
    assert d.snapshots.shape == (3, 42, 42) and d.traces.shape == (301, 200)
    assert np.abs(d.snapshots[-1]).max() > 0 and d.grad_c.shape == (42, 42)
    fig = visualize.draw_pml_snapshots(d.snapshots, d.times, cfg, traces=d.traces)
    _saved(fig, tmp_path / "snap.png")
    assert len(_gid(fig, "snapshot")) == 3 and len(_gid(fig, "pml-edge")) == 3
    (gather,) = _gid(fig, "shot-gather")
    assert gather.get_array().shape == (300, 200)
    fig = visualize.draw_pml_gradient(d.grad_c, cfg, c_true=d.c_true)
    _saved(fig, tmp_path / "grad.png")
    (img,) = _gid(fig, "gradient")
    assert img.norm.vmax > 0 and img.norm.vmin == -img.norm.vmax  # symmetric diverging
    assert img.get_array().shape == (42, 42)
    assert np.array_equal(img.get_array(), d.grad_c.T)  # the gradient given, first index across


def test_pml_gradient_matches_the_solver(pml_data):
    from solvers import pml

    cfg, d = pml_data
    g = pml.gradient(cfg, pml.uniform_model(cfg), pebbles.schedule("store-all", cfg.steps),
                     d.traces)
    assert np.allclose(d.grad_c, g.grad_c, rtol=1e-10, atol=0)
    assert d.loss == pytest.approx(g.loss, rel=1e-12)


def test_pml_errors_name_the_value(pml_data):
    cfg, d = pml_data
    with pytest.raises(pebbles.PebblesValueError, match="times="):
        ex.pml_experiment(cfg, [cfg.steps + 1], budget=None)
    with pytest.raises(pebbles.PebblesValueError, match="size=10"):
        ex.scaled_config(10)
    with pytest.raises(pebbles.PebblesValueError, match="grad_c.shape"):
        visualize.draw_pml_gradient(d.grad_c[1:], cfg)


def test_pml_experiment_checks_the_budget_before_the_forward_run(pml_data, monkeypatch):
    from solvers import pml

    def no_run(*args, **kwargs):
        raise AssertionError("the forward run started before the budget was checked")

    monkeypatch.setattr(pml, "PMLSolver", no_run)
    with pytest.raises(pebbles.InfeasibleBudgetError, match="budget=1 "):
        ex.pml_experiment(pml_data[0], [5], budget=1)


@pytest.mark.parametrize("times, error, match", [
    ("12", pebbles.PebblesTypeError, r"^times='12' must be a sequence of whole step numbers"),
    (5, pebbles.PebblesTypeError, r"^times=5 must be a sequence"),
    ([1.7], pebbles.PebblesTypeError, r"^times holds 1\.7 \(float\)"),
    ([True], pebbles.PebblesTypeError, r"^times holds True \(bool\)"),
    ([], pebbles.PebblesValueError, r"^times=\[\] must be .* in 1\.\.300"),
    ([0, 5], pebbles.PebblesValueError, r"^times=\[0, 5\] must be .* in 1\.\.300"),
])
def test_pml_experiment_times_must_be_whole_steps(pml_data, times, error, match):
    """Strings, bools and floats were read as steps ("12" as [1, 2], 1.7 as 1)."""
    with pytest.raises(error, match=match):
        ex.pml_experiment(pml_data[0], times, budget=None)
    got = ex.pml_experiment(ex.scaled_config(32, steps=5), np.array([2, 5]), budget=None)
    assert got.times.tolist() == [2, 5]


def test_scaled_config_names_an_unknown_field():
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"^bogus=1 is not a PMLConfig field; the fields are nx, ny, .*"):
        ex.scaled_config(40, bogus=1)
    assert ex.scaled_config(40, npml=7).npml == 7


def _records():
    out = []
    for s, sec in ((5, 9.0), (10, 6.0), (20, 5.0), (40, 4.5)):
        for fam in ("treeverse", "treeverse in-place"):
            out.append({"schedule": f"{fam} S={s}", "seconds": sec, "model_seconds": sec * 0.9,
                        "peak_states": s + 1, "peak_mb": (s + 2) * 2.0,
                        "peak_states_mb": (s + 1) * 2.0, "predicted_forward_steps": 1000,
                        "n": 500, "size": 64})
    for k, sec, st in ((2, 60.0, 12), (3, 30.0, 15), (5, 20.0, 25)):
        out.append({"schedule": f"bennett k={k}", "seconds": sec, "model_seconds": sec,
                    "peak_states": st, "peak_mb": st * 2.0, "peak_states_mb": st * 2.0,
                    "predicted_forward_steps": 9000, "n": 500, "size": 64})
    return out


def test_figure5_from_records(tmp_path):
    fig = visualize.draw_figure5(_records())
    _saved(fig, tmp_path / "fig5.png")
    assert len(fig.axes) == 2  # peak states and peak MB
    measured = _gid(fig, "measured")
    assert len(measured) == 6 and len(_gid(fig, "model")) == 6
    bennett = [ln for ln in measured if ln.get_label() == "bennett"]
    assert list(bennett[0].get_xdata()) == [12, 15, 25]
    assert "64 x 64, n = 500" in fig._suptitle.get_text()
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"S=5", "S=40", "k=2", "k=5"} <= texts
    from visualize._fig5 import fig5_families

    fams = fig5_families(_records())
    assert list(fams) == ["treeverse", "treeverse in-place", "bennett"]
    with pytest.raises(pebbles.PebblesValueError, match="sequence of dicts"):
        visualize.draw_figure5(str(tmp_path / "bench.json"))  # visualize reads no files
    assert {ln.get_marker() for ln in _gid(fig, "model")} == {"None"}  # lines, no markers
    one = visualize.draw_figure5([{"schedule": "store-all", "seconds": 2, "peak_states": 100,
                                   "model_seconds": 1.0}])
    assert [ln.get_marker() for ln in _gid(one, "model")] == ["x"]  # one point: a marker


def test_figure5_command_reads_the_benchmark_json(tmp_path, read_svg):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"machine": {}, "fig5": {"records": _records()}}))
    assert fig5_records(path) == _records()
    out = tmp_path / "fig5.svg"
    assert main(["fig5", str(path), "--no-model", "-o", str(out)]) == 0
    svg = read_svg(out)
    assert svg.ids["measured"] == 6 and "model" not in svg.ids  # --no-model


def test_figure5_bad_json_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kernels": {}}))
    with pytest.raises(pebbles.PebblesValueError, match="--fig5 --json"):
        fig5_records(bad)
    assert main(["fig5", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fig5" in err
    bad.write_text(json.dumps({"fig5": {"records": [{"schedule": "treeverse S=1"}]}}))
    assert main(["fig5", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "lacks keys" in capsys.readouterr().err


def test_cli_lorenz_fig4_and_pml(tmp_path, read_svg, capsys):
    out = tmp_path / "f4.svg"
    assert main(["lorenz-fig4", "--max-steps", "50", "--stride", "10", "--starts", "2",
                 "--reload-steps", "500", "-o", str(out)]) == 0
    svg = read_svg(out)
    assert svg.ids["median"] == 2 and "overflow" not in svg.ids  # 50 steps: no overflow
    assert {"number of steps n", "reload interval K (steps)", "median over 2 starts",
            "(b) n = 500, forward state reloaded every K steps"} <= set(svg.texts)
    assert "500" in svg.texts  # panel (b)'s K axis reaches K = 500
    assert main(["lorenz-fig4", "--max-steps", "50", "--stride", "10", "--starts", "2",
                 "--reload-steps", "20", "-o", str(out)]) == 0
    assert "500" not in read_svg(out).texts  # K > n reloads nothing: not drawn
    assert main(["lorenz-fig4", "--max-steps", "1", "-o", str(out)]) == 2
    assert "one point; give --max-steps 2 or more" in capsys.readouterr().err
    out = tmp_path / "pml.svg"
    assert main(["pml", "--size", "40", "--steps", "120", "--times", "40", "100",
                 "-o", str(out)]) == 0
    svg = read_svg(out)
    assert svg.ids["snapshot"] == svg.ids["pml-edge"] == 2  # --times 40 100
    titles = [t for t in svg.texts if t.startswith(("u at step", "shot gather"))]
    assert [t.split(" (")[0] for t in titles] == ["u at step 40", "u at step 100",
                                                  "shot gather"]


def test_cli_errors_exit_2_with_one_line(tmp_path):
    cmd = [sys.executable, "-m", "visualize", "pml", "--size", "8", "-o", str(tmp_path / "a.png")]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "argument --size: '8' must be a whole number >= 32" in r.stderr  # the flag typed
    assert main(["lorenz-fig3"]) == 2  # -o missing


def test_drawing_modules_run_no_experiments():
    """visualize draws: its figure modules import neither the solvers nor numba."""
    code = ("import sys, visualize._lorenz_figs, visualize._pml_figs, visualize._fig5; "
            "assert 'numba' not in sys.modules and 'solvers' not in sys.modules; "
            "assert 'json' not in vars(visualize._fig5)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_visualize_stays_cheap():
    code = ("import sys, visualize; assert 'matplotlib' not in sys.modules; "
            "assert 'numba' not in sys.modules; visualize.draw_figure5; "
            "assert 'numba' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_benchmark_report_draws_figure5(tmp_path, read_svg, monkeypatch):
    """Figure 5 belongs to the benchmark report: report.py reads the JSON, visualize draws."""
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    import report

    (tmp_path / "bench_pml.json").write_text(json.dumps({"fig5": {"records": _records()}}))
    out = tmp_path / "fig5.svg"
    assert report.draw_figure5(tmp_path, out) == f"wrote {out} from 11 records"
    svg = read_svg(out)
    assert svg.ids["measured"] == 6 and svg.ids["model"] == 6
    (tmp_path / "bench_pml.json").write_text(json.dumps({"kernels": {}}))
    assert report.draw_figure5(tmp_path, out).startswith("Figure 5 not drawn")


def test_figure5_reads_records_from_a_generator():
    # the records (a generator) are not consumed by a type check and reported as empty
    fig = visualize.draw_figure5(r for r in _records())
    assert len(_gid(fig, "measured")) == 6


@pytest.mark.parametrize("key, value", [("seconds", 0), ("seconds", -1.0),
                                        ("seconds", float("nan")), ("seconds", "abc"),
                                        ("peak_states", 0), ("model_seconds", float("inf"))])
def test_figure5_refuses_values_a_log_axis_cannot_show(key, value):
    records = _records()
    records[2][key] = value
    with pytest.raises(pebbles.PebblesValueError, match=f"record 2 in records has {key}="):
        visualize.draw_figure5(records)


def test_figure5_without_a_positive_peak_mb_everywhere_has_no_mb_panel():
    records = _records()
    records[0]["peak_mb"] = -3.0  # RSS after minus RSS before, on a tiny run
    assert len(visualize.draw_figure5(records).axes) == 1


def test_cli_lorenz_fig3_refuses_grids_of_hours_nan_files_and_unused_flags(tmp_path, capsys):
    out = str(tmp_path / "f.png")
    nan = tmp_path / "nan.npz"
    np.savez(nan, sigmas=np.arange(3.0), rhos=np.arange(3.0),
             mean_abs_grad=np.full((3, 3), np.nan))
    cases = [
        (["lorenz-fig3", "--resolution", "20000", "--steps", "100000"],
         "--resolution 20000 --steps 100000 is 4e+13 RK4 steps and 2e+05 points of panel (b) "
         "to draw (at most 1e+06 a second): at least"),
        (["lorenz-fig3", "--npz", str(nan)], "mean_abs_grad holds 9 non-finite values"),
        (["lorenz-fig3", "--npz", str(nan), "--resolution", "50", "--steps", "20"],
         "--resolution --steps: not used with --npz"),
        (["pml", "--pebbles", "7"], "--pebbles: not used without --panel gradient"),
        (["lorenz-fig4", "--seed", "-1"], "argument --seed: '-1' must be a whole number >= 0"),
    ]
    for argv, words in cases:
        assert main([*argv, "-o", out]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, (argv, err)
    assert not (tmp_path / "f.png").exists()


def _even_map():
    sigmas, rhos = np.linspace(0, 20, 5), np.linspace(0, 50, 6)
    return sigmas, rhos, np.random.default_rng(0).random((5, 6)) + 0.1


def test_figure3_draws_every_marked_point_and_trajectory():
    # a third point and its trajectory were dropped (two colours, zip strict=False)
    points = ((5, 10), (10, 20), (15, 30))
    paths = [np.full((4, 3), float(i)) for i in range(3)]
    for trajectories in (paths, np.stack(paths)):  # a list, or one (points, m, 3) array
        fig = visualize.draw_lorenz_figure3(*_even_map(), points=points,
                                            trajectories=trajectories)
        assert len(_gid(fig, "marked-point")) == 3
        drawn = _gid(fig, "trajectory")
        assert [line.get_data_3d()[0][0] for line in drawn] == [0.0, 1.0, 2.0]
        colours = {line.get_color() for line in drawn}
        assert len(colours) == 3


@pytest.mark.parametrize("axis, value, match", [
    ("sigmas", np.array([0, 1, 2, 10, 20.0]), "sigmas=.* must be increasing and evenly spaced"),
    ("rhos", np.array([0, 10, 20, 30, 40, 60.0]), "rhos=.* must be increasing and evenly"),
    ("rhos", np.linspace(50, 0, 6), "rhos=.* must be increasing"),
    ("sigmas", np.array([0, 5, np.nan, 15, 20]), "sigmas=.* holds 1 non-finite values"),
    ("sigmas", np.ones((5, 2)), r"sigmas=.* must be a 1-D array"),
])
def test_figure3_refuses_axes_it_would_draw_at_the_wrong_place(axis, value, match):
    sigmas, rhos, grid = _even_map()
    args = {"sigmas": sigmas, "rhos": rhos, axis: value}
    with pytest.raises(pebbles.PebblesValueError, match=match):
        visualize.draw_lorenz_figure3(args["sigmas"], args["rhos"], grid)


def test_figure3_errors_name_real_functions_and_no_array_repr():
    sigmas, rhos, grid = _even_map()
    with pytest.raises(pebbles.PebblesValueError) as err:
        visualize.draw_lorenz_figure3(sigmas, rhos, grid.T)
    assert "lorenz_sensitivity" not in str(err.value)
    assert "solvers.experiments.sensitivity_grid" in str(err.value)
    assert "solvers.lorenz.sensitivity_map" in str(err.value)
    with pytest.raises(pebbles.PebblesValueError) as err:
        visualize.draw_lorenz_figure3(np.linspace(0, 1, 1000) ** 2, rhos,
                                      np.ones((1000, 6)))
    assert len(str(err.value)) < 400 and "..." in str(err.value)  # a few values, not all
    with pytest.raises(pebbles.PebblesTypeError, match="trajectories has type dict"):
        visualize.draw_lorenz_figure3(sigmas, rhos, grid, trajectories={})


def test_figure3_critical_curve_legend_only_when_the_curve_is_in_view():
    sigmas, rhos, grid = _even_map()
    fig = visualize.draw_lorenz_figure3(sigmas, np.linspace(0, 5, 6), grid)  # rho <= 5
    assert not _gid(fig, "critical-curve")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert not any("sigma-" in t for t in labels)
    assert len(_gid(visualize.draw_lorenz_figure3(sigmas, rhos, grid), "critical-curve")) == 1


def test_figure4_overflow_note_names_the_axis_and_all_overflow_draws():
    import warnings

    x, e = np.arange(1, 6), np.full((5, 3), 1e-9)
    eb = e.copy()
    eb[3:] = np.inf
    fig = visualize.draw_lorenz_figure4((x, e), (np.array([1, 20, 50, 100, 300]), eb))
    assert fig.axes[1].texts[0].get_text().strip().endswith("from K = 100")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-positive ylim" warning
        fig = visualize.draw_lorenz_figure4((x, np.full((5, 3), np.inf)), (x, e))
        fig.canvas.draw()
    assert fig.axes[0].texts[0].get_text().strip().endswith("from n = 1")
    lo, hi = fig.axes[0].get_ylim()
    assert 0 < lo < hi and np.isfinite(hi)


@pytest.fixture(scope="module")
def cfg32():
    return ex.scaled_config(32)


def test_pml_checks_traces_and_c_true_against_cfg(cfg32):
    snaps = np.zeros((1, *cfg32.shape))
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"traces.shape=\(7, 3\) must be \(311, 200\) = "
                             r"\(steps \+ 1, n_detectors\)"):
        visualize.draw_pml_snapshots(snaps, [5], cfg32, traces=np.zeros((7, 3)))
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"c_true.shape=\(5, 7\) must be \(34, 34\)"):
        visualize.draw_pml_gradient(np.ones(cfg32.shape), cfg32, c_true=np.ones((5, 7)))
    with pytest.raises(pebbles.PebblesValueError, match="c_true holds 1 values that are not"):
        c = np.ones(cfg32.shape)
        c[2, 3] = -1
        visualize.draw_pml_gradient(np.ones(cfg32.shape), cfg32, c_true=c)


def test_pml_without_snapshots_draws_the_gather_or_says_what_is_missing(cfg32):
    empty = np.empty((0, *cfg32.shape))
    traces = np.random.default_rng(1).standard_normal((cfg32.steps + 1, cfg32.n_detectors))
    fig = visualize.draw_pml_snapshots(empty, [], cfg32, traces=traces)
    assert len(_gid(fig, "shot-gather")) == 1 and not _gid(fig, "snapshot")
    with pytest.raises(pebbles.PebblesValueError, match="at least one snapshot"):
        visualize.draw_pml_snapshots(empty, [], cfg32)


def test_pml_gradient_title_follows_cfg_and_can_be_blank():
    c2 = ex.scaled_config(32, velocity=2000.0)
    fig = visualize.draw_pml_gradient(np.ones(c2.shape), c2)
    assert fig.axes[0].get_title() == "gradient of the misfit w.r.t. c at c = 2000$^2$"
    assert visualize.draw_pml_gradient(np.ones(c2.shape), c2, title="").axes[0].get_title() == ""


def test_pml_axes_are_labelled_in_the_domain_units_their_ticks_show(cfg32):
    """The images span (index -/+ 1/2) h: the labels say domain units, not indices."""
    h = cfg32.spacing
    fig = visualize.draw_pml_gradient(np.ones(cfg32.shape), cfg32,
                                      c_true=np.ones(cfg32.shape))
    fig2 = visualize.draw_pml_snapshots(np.zeros((1, *cfg32.shape)), [5], cfg32)
    for f in (fig, fig2):
        ax = f.axes[0]
        assert ax.get_xlim() == pytest.approx((-0.5 * h, (cfg32.nx + 1.5) * h))
        assert ax.get_xlabel() == f"x (domain units: first index \u00d7 h, h = {h:.3g})"
        assert ax.get_ylabel() == f"depth (domain units: second index \u00d7 h, h = {h:.3g})"
    assert h != 1 and max(fig.axes[0].get_xlim()) > cfg32.nx + 2  # units, not indices


def test_pml_colour_scales_ignore_non_finite_cells_and_count_them(cfg32):
    rng = np.random.default_rng(0)
    snaps = rng.standard_normal((2, *cfg32.shape))
    snaps[0, :5] = np.inf
    snaps[1, 3, 4] = np.nan
    traces = rng.standard_normal((cfg32.steps + 1, cfg32.n_detectors))
    traces[7, :] = np.nan
    grad = rng.standard_normal(cfg32.shape)
    grad[0, 0] = -np.inf
    fig = visualize.draw_pml_snapshots(snaps, [5, 6], cfg32, traces=traces)
    fig2 = visualize.draw_pml_gradient(grad, cfg32)
    for img, data, bad in ((_gid(fig, "snapshot")[0], snaps, 5 * 34 + 1),
                           (_gid(fig, "shot-gather")[0], traces[1:], 200),
                           (_gid(fig2, "gradient")[0], grad, 1)):
        lo, hi = img.get_clim()
        finite = np.abs(data[np.isfinite(data)])
        assert np.isfinite(hi) and lo == -hi and np.percentile(finite, 95) <= hi <= finite.max()
        assert img.get_cmap().get_bad()[:3] == pytest.approx((1, 0, 1))  # magenta
        labels = [ax.get_ylabel() for ax in img.axes.figure.axes]
        assert any(f"magenta: {bad} non-finite cells" in t for t in labels), labels


def test_pml_box_lies_between_damped_and_undamped_cells():
    from solvers.pml import pml_profiles

    for cfg in (ex.scaled_config(40), ex.scaled_config(50, npml=7)):
        z1, z2 = pml_profiles(cfg)
        fig = visualize.draw_pml_snapshots(np.zeros((1, *cfg.shape)), [1], cfg)
        (box,) = _gid(fig, "pml-edge")
        h = cfg.spacing
        for z, lo, width in ((z1, box.get_x(), box.get_width()),
                             (z2, box.get_y(), box.get_height())):
            undamped = np.flatnonzero(z == 0)  # cell i covers (i - 1/2) h .. (i + 1/2) h
            assert z[undamped.min() - 1] > 0 and z[undamped.max() + 1] > 0
            assert lo == pytest.approx((undamped.min() - 0.5) * h)
            assert lo + width == pytest.approx((undamped.max() + 0.5) * h)


def test_figure5_legend_lists_the_model_only_when_drawn():
    recs = [{"schedule": f"treeverse S={k}", "seconds": 1 + 1 / k, "peak_states": k}
            for k in (5, 10)]
    ax = visualize.draw_figure5(recs).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["treeverse"]
    ax = visualize.draw_figure5(_records()).axes[0]
    assert any(t.get_text().startswith("model") for t in ax.get_legend().get_texts())


def test_cli_pml_refuses_times_with_the_gradient_panel(tmp_path, capsys):
    argv = ["pml", "--size", "32", "--steps", "20", "--panel", "gradient", "--pebbles", "3",
            "--times", "5", "-o", str(tmp_path / "g.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--times: not used with --panel gradient" in err
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("argv, words", [
    (["lorenz-fig4", "--max-steps", "1000000", "--starts", "1000"],
     "--max-steps 1000000 --stride 1 --starts 1000 --reload-steps 10000 is 1.5e+15 RK4 steps"),
    (["lorenz-fig4", "--max-steps", str(2**62)], "use a smaller --max-steps"),
    (["pml", "--size", "40000", "--steps", "1"], "--size 40000 --steps 1 needs about"),
    (["pml", "--size", "32", "--steps", "100000000000"],
     "--size 32 --steps 100000000000 needs about 3.22e+05 GB (1 state arrays, the grids, the "
     "recordings of 100000000000 steps and 4 snapshots) but 8 GB is available; use fewer "
     "--steps or fewer --times"),
    (["pml", "--size", "64", "--steps", "100000000000"], "use a smaller --size, fewer --steps "
                                                         "or fewer --times"),
    (["pml", "--size", "40", "--steps", "100", "--times", "50", "200"],
     "--times 200: past the last step 100"),
    (["pml", "--size", "10"], "argument --size: '10' must be a whole number >= 32"),
    (["lorenz-fig3", "--resolution", "1"], "argument --resolution: '1' must be a whole number"),
    (["pml", "--panel", "gradient", "--pebbles", "1", "--size", "32", "--steps", "50"],
     "--pebbles 1 cannot finish the checkpoint game with --steps 50 (a walking pebble holds "
     "two pebbles in the checkpoint game); use --pebbles 2 or more"),
    (["fig5", "nonexist.json"], "the JSON file 'nonexist.json' has no readable"),
    (["lorenz-fig3", "--npz", "nonexist.npz"], "--npz 'nonexist.npz' is not a Figure 3 grid"),
    (["lorenz-fig3", "--npz", __file__], f"--npz {__file__!r} is not an .npz grid"),
])
def test_cli_refuses_runs_too_large_before_computing(tmp_path, monkeypatch, capsys, argv,
                                                     words):
    from solvers import experiments, pml

    monkeypatch.setattr(pml, "available_memory", lambda: 8 * 10**9)
    for name in ("pml_experiment", "adjoint_errors_vs_steps", "sensitivity_grid"):
        monkeypatch.setattr(experiments, name, None)  # never reached
    assert main([*argv, "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"sigma_range": (0, 20, 5)}, pebbles.PebblesValueError,
     r"^sigma_range=\(0, 20, 5\) must be two finite numbers \(low, high\)"),
    ({"sigma_range": (0,)}, pebbles.PebblesValueError, r"^sigma_range=\(0,\) must be two"),
    ({"rho_range": (50, 0)}, pebbles.PebblesValueError, r"^rho_range=.* with low < high"),
    ({"rho_range": (0, np.inf)}, pebbles.PebblesValueError, r"^rho_range=.* non-finite"),
    ({"sigma_range": "ab"}, pebbles.PebblesTypeError, r"^sigma_range='ab' must hold real"),
    ({"sigma_range": (-1e308, 1e308)}, pebbles.PebblesValueError,
     r"^sigma_range=\(-1e\+308, 1e\+308\): high - low overflows to inf"),
])
def test_sensitivity_grid_ranges_are_two_increasing_numbers(kwargs, error, match):
    with pytest.raises(error, match=match):
        ex.sensitivity_grid(3, n=2, **kwargs)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n": -1}, pebbles.PebblesValueError, r"^n=-1 must be an integer >= 0"),
    ({"n": -2}, pebbles.PebblesValueError, r"^n=-2 must be an integer >= 0"),
    ({"n": 2.7}, pebbles.PebblesTypeError, r"^n=2\.7 must be an integer"),
    ({"sigma": "10"}, pebbles.PebblesTypeError, r"^sigma='10' must be a real number"),
    ({"beta": np.nan}, pebbles.PebblesValueError, r"^beta=nan is not finite"),
])
def test_lorenz_trajectory_checks_its_arguments(kwargs, error, match):
    args = {"sigma": 10.0, "rho": 27.0, "n": 2, **kwargs}
    with pytest.raises(error, match=match):
        ex.lorenz_trajectory(**args)


@pytest.mark.parametrize("steps, error, match", [
    ([1.5, 2], pebbles.PebblesTypeError, r"^steps holds 1\.5 \(float\)"),
    ([True, 2], pebbles.PebblesTypeError, r"^steps holds True \(bool\)"),
    ("12", pebbles.PebblesTypeError, r"^steps='12' must be a sequence of whole numbers"),
    ([0, 2], pebbles.PebblesValueError, r"^steps=\[0, 2\] must be .* >= 1"),
    ([], pebbles.PebblesValueError, r"^steps=\[\] must be"),
])
def test_adjoint_error_steps_must_be_whole_numbers(steps, error, match):
    with pytest.raises(error, match=match):
        ex.adjoint_errors_vs_steps(steps, starts=1)
    with pytest.raises(error, match=match.replace("steps", "intervals")):
        ex.adjoint_errors_vs_reload(steps, n=10, starts=1)


def test_load_sensitivity_refuses_files_that_are_no_npz(tmp_path):
    """A .npy made np.load return an array, and the loader raised a bare TypeError."""
    for name, write in (("g.npy", lambda p: np.save(p, np.ones(3))),
                        ("g.json", lambda p: p.write_text("{}"))):
        path = tmp_path / name
        write(path)
        with pytest.raises(pebbles.PebblesValueError,
                           match=r"^path='.*' is not an \.npz grid \(not a NumPy \.npz archive\)"):
            ex.load_sensitivity(path)


class _Drawn(Exception):
    """Raised by a stand-in for the Figure 4 data, carrying the steps of panel (a)."""


def test_cli_lorenz_fig4_panel_a_reaches_max_steps(tmp_path, monkeypatch):
    """--max-steps is "up to n": n = max-steps is drawn even off the stride."""
    def steps_of(steps, **_kw):
        raise _Drawn(list(steps))

    monkeypatch.setattr(ex, "adjoint_errors_vs_steps", steps_of)
    for stride, want in (("50", [1, 51, 101, 151, 200]), ("199", [1, 200]),
                         ("500", [1, 200]), ("1", list(range(1, 201)))):
        with pytest.raises(_Drawn) as drawn:
            main(["lorenz-fig4", "--max-steps", "200", "--stride", stride, "--starts", "3",
                  "--reload-steps", "100", "-o", str(tmp_path / "f4.png")])
        assert drawn.value.args[0] == want


@pytest.mark.parametrize("reload_steps", ["1", "19"])
def test_cli_lorenz_fig4_refuses_a_one_point_panel_b(reload_steps, tmp_path, monkeypatch,
                                                      capsys):
    """Panel (b) draws the reload intervals K <= n: below 20, K = 1 alone."""
    monkeypatch.setattr(ex, "adjoint_errors_vs_steps", None)  # never reached
    argv = ["lorenz-fig4", "--max-steps", "200", "--stride", "50", "--starts", "3",
            "--reload-steps", reload_steps, "-o", str(tmp_path / "f4.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m visualize: error: ")
    assert (f"--reload-steps {reload_steps} leaves panel (b) one point" in err
            and "give --reload-steps 20 or more" in err)
    assert not (tmp_path / "f4.png").exists()


def test_cli_lorenz_fig3_counts_panel_b_in_its_time_and_memory_checks(tmp_path, monkeypatch,
                                                                      capsys):
    """Panel (b) draws two trajectories of n + 1 points: a run of hours or more memory than
    is available is refused before computing, also with the grid read from --npz."""
    out = tmp_path / "f.png"
    r = subprocess.run([sys.executable, "-m", "visualize", "lorenz-fig3", "--resolution", "2",
                        "--steps", "2000000000", "-o", str(out)], capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert ("--resolution 2 --steps 2000000000 is 1.2e+10 RK4 steps and 4e+09 points of "
            "panel (b) to draw (at most 1e+06 a second): at least") in r.stderr
    assert "or --no-trajectories" in r.stderr
    from solvers import lorenz

    for name in ("sensitivity_grid", "lorenz_trajectory"):
        monkeypatch.setattr(ex, name, None)  # never reached
    monkeypatch.setattr(lorenz, "available_memory", lambda: 8 * 10**9)
    npz = tmp_path / "g.npz"
    np.savez(npz, sigmas=np.arange(3.0), rhos=np.arange(3.0), mean_abs_grad=np.ones((3, 3)),
             steps=10**9)
    cases = [(["--resolution", "2", "--steps", "100000000"],
              "--resolution 2 --steps 100000000 needs about 36.8 GB (the grid and 2e+08 points "
              "of panel (b), about 184 bytes each computed and drawn) but 8 GB is available"),
             (["--npz", str(npz)], f"--npz {npz} (--steps 1000000000 in the file) needs about "
                                   f"368 GB (2e+09 points of panel (b), about 184 bytes each "
                                   f"computed and drawn) but 8 GB is available; pass "
                                   f"--no-trajectories")]
    for argv, words in cases:
        assert main(["lorenz-fig3", *argv, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    assert not out.exists()


def test_lorenz_trajectory_is_bit_for_bit_rk4_step():
    """The compiled trajectory is the states of rk4_step applied n times."""
    from solvers import lorenz

    theta = np.array([10.0, 15.0, 8 / 3])
    path = ex.lorenz_trajectory(*theta, n=500, x0=(1.0, 2.0, 3.0), dt=0.01)
    want = np.empty((501, 3))
    want[0] = (1.0, 2.0, 3.0)
    for i in range(500):
        want[i + 1] = lorenz.rk4_step(want[i], theta, 0.01)
    assert path.tobytes() == want.tobytes()


@pytest.mark.parametrize("seed, error, match", [
    (-1, pebbles.PebblesValueError, r"^seed=-1 must be an integer >= 0 \(the random seed"),
    ("a", pebbles.PebblesTypeError, r"^seed='a' must be an integer >= 0"),
    (1.5, pebbles.PebblesTypeError, r"^seed=1\.5 must be an integer"),
])
def test_adjoint_error_seed_is_checked(seed, error, match):
    with pytest.raises(error, match=match):
        ex.adjoint_errors_vs_steps([1, 2], starts=2, seed=seed)
    with pytest.raises(error, match=match):
        ex.adjoint_errors_vs_reload([1, 2], n=5, starts=2, seed=seed)


@pytest.mark.parametrize("path", ["", "\t"])
def test_cli_lorenz_fig3_refuses_an_empty_npz(tmp_path, monkeypatch, capsys, path):
    """``--npz ''`` is given, not absent: refused as the solvers refuse an empty path, not
    read as "no --npz" (the full default grid computed)."""
    monkeypatch.setattr(ex, "sensitivity_grid", None)  # never reached
    assert main(["lorenz-fig3", "--npz", path, "-o", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert err == (f"python -m visualize: error: --npz {path!r} is an empty path; name the "
                   f".npz file of `python -m solvers.lorenz sensitivity --out`, e.g. --npz "
                   f"map.npz, or leave --npz out to compute the grid\n")
    assert main(["lorenz-fig3", "--npz", path, "--steps", "5", "-o",
                 str(tmp_path / "f.png")]) == 2
    assert "--steps: not used with --npz" in capsys.readouterr().err


def test_cli_pml_names_size_where_the_steps_are_scaled_to_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ex, "pml_experiment", None)  # never reached
    size = str(2**62)
    assert main(["pml", "--size", size, "-o", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "steps=" not in err
    assert err.startswith(f"python -m visualize: error: --size {size} (the run's steps "
                          f"scaled to it, no --steps given): --steps ")
    assert err.endswith("; or use a smaller --size\n")


def test_visualize_writes_its_figure_with_standard_output_closed(tmp_path):
    """The figure is the result (-o): a closed stdout loses only the "wrote" line."""
    out = tmp_path / "f4.png"
    argv = [sys.executable, "-m", "visualize", "lorenz-fig4", "--max-steps", "2", "--starts",
            "1", "--reload-steps", "20", "-o", str(out)]
    done = subprocess.run(" ".join(map(shlex.quote, argv)) + " >&-", shell=True,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and done.stderr == "" and out.stat().st_size > 0
