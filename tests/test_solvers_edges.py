"""Edge cases of the solvers' public API: aliased output arrays, step counts past int64,
Ctrl-C granularity of the sensitivity map, and argument checks."""

import json
import math

import numpy as np
import pytest

import pebbles
from solvers import experiments as ex
from solvers import gpu, pml
from solvers import lorenz as lz
from solvers._checks import MAX_STEPS, periodic_every, whole

SMALL = dict(nx=12, ny=10, steps=6, h=0.11, width=2.0, delay=1.0, n_detectors=4, npml=3)


@pytest.fixture(scope="module")
def wave():
    """A solver on a 20 x 20 grid and its state after 12 in-place steps (a live field)."""
    cfg = pml.PMLConfig(nx=20, ny=20, steps=30, h=0.11, width=6.0, delay=10.0,
                        n_detectors=5)
    sol = pml.PMLSolver(cfg, pml.uniform_model(cfg))
    s = sol.zero_state()
    for i in range(12):
        sol.step_into(i, s, s)
    return sol, s


@pytest.fixture(scope="module")
def small():
    cfg = pml.PMLConfig(**SMALL)
    return cfg, pml.record(cfg), pml.uniform_model(cfg)


# -- PMLSolver.step_into and vjp with aliased arrays ---------------------------------------
def test_step_into_a_view_of_s_steps_in_place(wave):
    sol, s = wave
    ref = sol.step(12, s)
    states = np.stack([s, s])
    sol.step_into(12, states[0], states[0])  # two array objects, one memory
    assert np.array_equal(states[0], ref)
    a = s.copy()
    sol.step_into(12, a, a.view())
    assert np.array_equal(a, ref)


def test_step_into_refuses_a_partly_overlapping_out(wave):
    sol, s = wave
    big = np.zeros((5, *s.shape[1:]))
    big[:4] = s
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^step_into: out shares memory with s .*out=s itself"):
        sol.step_into(12, big[:4], big[1:])


def test_step_into_runs_interleaved_views_out_of_place(wave):
    """Views whose bounds overlap but whose elements do not are no overlap."""
    sol, s = wave
    both = np.zeros((*s.shape[:2], 2 * s.shape[2]))
    both[:, :, ::2] = s
    sol.step_into(12, both[:, :, ::2], both[:, :, 1::2])
    assert np.array_equal(both[:, :, 1::2], sol.step(12, s))
    assert np.array_equal(both[:, :, ::2], s)


@pytest.mark.parametrize("alias", ["g", "s"])
def test_vjp_refuses_out_aliasing_its_inputs(wave, alias):
    sol, s = wave
    rng = np.random.default_rng(0)
    s, g = s.copy(), rng.standard_normal(s.shape)
    before = sol.grad_c.copy()
    out = {"g": g, "s": s}[alias]
    with pytest.raises(pebbles.PebblesValueError,
                       match=rf"^vjp: out shares memory with {alias} "):
        sol.vjp(s, g, out=out)
    with pytest.raises(pebbles.PebblesValueError, match="shares memory"):
        sol.vjp(s, g, out=out[...])
    assert np.array_equal(sol.grad_c, before)  # refused before the kernel ran


def test_vjp_takes_g_equal_to_s_and_a_separate_out(wave):
    sol, s = wave
    keep = sol.grad_c.copy()
    ref = sol.vjp(s, s.copy())
    out = np.empty_like(s)
    assert sol.vjp(s, s, out) is out and np.array_equal(out, ref)
    sol.grad_c[:] = keep


# -- step counts past int64 -----------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda n: lz.primal(n=n),
    lambda n: lz.overflow_step(dt=10.0, n=n),
    lambda n: lz.gradient_forward(n=n),
    lambda n: lz.gradient_adjoint(n=n),
    lambda n: lz.sensitivity_map([10.0], [27.0], n=n),
    lambda n: lz.gradient_until_crossing(5.0, 3, max_steps=n),
    lambda n: lz.memory_estimate("treeverse", n),
    lambda n: ex.lorenz_trajectory(10.0, 27.0, n=n),
    lambda n: ex.adjoint_errors_vs_steps([n], starts=1),
    lambda n: pml.PMLConfig(steps=n),
])
@pytest.mark.parametrize("n", [2**63, 2**64 - 1, 2**64])
def test_steps_past_int64_are_refused(call, n):
    with pytest.raises(pebbles.PebblesValueError, match=rf"{n}.*2\*\*63 - 1"):
        call(n)


def test_the_bound_is_int64s_largest_value():
    assert MAX_STEPS == 2**63 - 1
    assert whole(2**63 - 1, 0, "n", "steps") == 2**63 - 1
    with pytest.raises(pebbles.PebblesValueError, match=r"^n=9223372036854775808 must be "
                       r"an integer in 0\.\.2\*\*63 - 1 .*pass n=9223372036854775807 or less"):
        whole(2**63, 0, "n", "steps")


# -- sensitivity_map: steps in chunks, 1-D axes -----------------------------------------------
def test_sensitivity_map_splits_long_runs_into_chunks_of_steps(monkeypatch):
    sig, rho = np.linspace(1, 20, 3), np.linspace(1, 40, 2)
    ref = {n: lz.sensitivity_map(sig, rho, n=n) for n in (0, 1, 37)}
    calls = []
    kernel = lz._sensitivity_steps

    def counted(*args):
        calls.append(args[-1])
        return kernel(*args)

    monkeypatch.setattr(lz, "_sensitivity_steps", counted)
    monkeypatch.setattr(lz, "CHUNK_POINT_STEPS", 5)
    for n, grid in ref.items():  # bit for bit the unpatched maps
        calls.clear()
        assert lz.sensitivity_map(sig, rho, n=n).tobytes() == grid.tobytes()
        assert (len(calls) > 1 and max(calls) <= 5) if n == 37 else len(calls) == n
    calls.clear()
    lz.sensitivity_map([10.0], [27.0], n=40)
    assert calls == [5] * 8  # one point: 5 steps a call


@pytest.mark.parametrize("axes", [([[5.0, 10.0]], [27.0]), ([5.0], [[27.0], [28.0]]),
                                  (5.0, [27.0])])
def test_sensitivity_map_needs_1d_axes(axes):
    name = "sigmas" if np.ndim(axes[0]) != 1 else "rhos"
    with pytest.raises(pebbles.PebblesValueError, match=rf"^{name}=.* must be 1-D"):
        lz.sensitivity_map(*axes, n=3)


# -- PMLGradient and the loss callbacks --------------------------------------------------------
def test_pml_gradient_forwards_writes_and_reads(small):
    cfg, obs, c = small
    tl = pml.schedule("two-level", cfg.steps, budget=2, write_cost=1.0, read_cost=1.0)
    g = pml.gradient(cfg, c, tl, obs)
    assert g.writes == g.replay.writes >= 1 and g.reads == g.replay.reads >= 1


def test_loss_callbacks_without_observed_say_how_to_give_it(small):
    cfg, _, c = small
    sol = pml.PMLSolver(cfg, c)
    s = sol.zero_state()
    for call in (lambda: sol.loss_grad(s), lambda: sol.running_loss(1, s),
                 lambda: sol.misfit(1, s)):
        with pytest.raises(pebbles.PebblesValueError,
                           match=r"^observed=None: .*pass observed= to PMLSolver"):
            call()


@pytest.mark.parametrize("i, error", [(-1, pebbles.PebblesValueError),
                                      (7, pebbles.PebblesValueError),
                                      (1.0, pebbles.PebblesTypeError),
                                      (True, pebbles.PebblesTypeError)])
def test_running_loss_checks_its_time_index(small, i, error):
    cfg, obs, c = small
    sol = pml.PMLSolver(cfg, c, observed=obs)
    with pytest.raises(error, match=rf"^i={i!r} must be .*a time index in 0\.\.6"):
        sol.running_loss(i, sol.zero_state())


def test_running_loss_reads_rows_0_to_steps(small):
    cfg, obs, c = small
    sol = pml.PMLSolver(cfg, c, observed=obs)
    s = sol.zero_state()
    assert sol.running_loss(cfg.steps, s) == float(obs[-1] @ obs[-1])
    assert sol.running_loss(np.int64(0), s) == float(obs[0] @ obs[0])


# -- non-finite arrays ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["s0", "source", "observed"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_gradient_refuses_non_finite_arrays(small, name, bad):
    cfg, obs, c = small
    tv = pebbles.schedule("treeverse", cfg.steps, budget=3)
    kw = {"s0": np.zeros((4, *cfg.shape)), "source": pml.ricker(cfg), "observed": obs.copy()}
    kw[name][(0,) * kw[name].ndim] = bad
    with pytest.raises(pebbles.PebblesValueError,
                       match=rf"^{name}=.* has a non-finite entry \({name}\[0(, 0)*\]="):
        pml.gradient(cfg, c, tv, kw.pop("observed"), **kw)


def test_record_refuses_a_non_finite_source(small):
    cfg = small[0]
    with pytest.raises(pebbles.PebblesValueError, match=r"^source=.* non-finite entry"):
        pml.record(cfg, source=np.full(cfg.steps, np.nan))


# -- experiments: types --------------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda: ex.sensitivity_grid(2.5, n=3), r"^resolution=2\.5 must be an integer >= 2"),
    (lambda: ex.adjoint_errors_vs_steps([1], starts="a"), r"^starts='a' must be an integer"),
    (lambda: ex.scaled_config("200"), r"^size='200' must be an integer >= 32"),
    (lambda: ex.pml_experiment(None, [1]), r"^cfg=None \(NoneType\) must be a PMLConfig"),
])
def test_experiments_report_wrong_types_as_type_errors(call, match):
    with pytest.raises(pebbles.PebblesTypeError, match=match):
        call()


# -- slots with a lowered program -----------------------------------------------------------------
@pytest.mark.parametrize("program", [lz._program, gpu._program])
def test_a_program_refuses_fewer_slots_than_it_was_lowered_onto(program):
    prog = pebbles.schedule("treeverse", 20, budget=4).lower()
    with pytest.raises(pebbles.PebblesValueError,
                       match=rf"^slots=2 is fewer than this program's nslots={prog.nslots}"):
        program(prog, None, 2)
    with pytest.raises(pebbles.PebblesTypeError, match=r"^slots=2\.5"):
        program(prog, None, 2.5)
    assert program(prog, None, prog.nslots).nslots == prog.nslots


def test_replay_lorenz_checks_slots_of_a_program():
    prog = pebbles.schedule("treeverse", 20, budget=4).lower()
    with pytest.raises(pebbles.PebblesValueError, match="nslots"):
        lz.replay_lorenz(prog, slots=2)
    assert np.array_equal(lz.replay_lorenz(prog, slots=prog.nslots + 3).gradient,
                          lz.replay_lorenz(prog).gradient)


# -- messages -------------------------------------------------------------------------------
def test_check_memory_speaks_the_apis_words(small):
    est = pml.memory_estimate(small[0])
    with pytest.raises(pml.NotEnoughMemoryError) as info:
        pml.check_memory(est, available=1000)
    text = str(info.value)
    assert "is available (available=1000)" in text and "check_memory" in text
    assert "--" not in text and "MemAvailable" not in text


@pytest.mark.parametrize("steps, error", [(math.nan, pebbles.PebblesValueError),
                                          (-1e30, pebbles.PebblesValueError),
                                          (-1, pebbles.PebblesValueError),
                                          ("1e9", pebbles.PebblesTypeError)])
def test_check_run_time_checks_point_steps(steps, error):
    with pytest.raises(error, match=r"^point_steps="):
        lz.check_run_time("x", steps, "fix")


def _grid_file(tmp_path, name, **fields):
    base = {"sigmas": np.linspace(0, 1, 3), "rhos": np.linspace(0, 1, 4),
            "mean_abs_grad": np.ones((3, 4)), "beta": 8 / 3, "steps": 50, "dt": 3e-3}
    path = tmp_path / name
    np.savez(path, **{k: v for k, v in (base | fields).items() if v is not None})
    return path


def test_load_sensitivity_refuses_a_corrupted_npz(tmp_path):
    import zipfile

    path = _grid_file(tmp_path, "g.npz")
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("mean_abs_grad.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"^path='.*g\.npz' is not a Figure 3 grid \(BadZipFile"):
        ex.load_sensitivity(path)


@pytest.mark.parametrize("fields, match", [
    ({"steps": np.array([1, 2])}, r"steps=array\(\[1, 2\]\) must be an integer >= 0"),
    ({"steps": 12.7}, r"steps=np\.float64\(12\.7\) must be an integer"),
    ({"steps": -5}, r"steps=np\.int64\(-5\) must be an integer >= 0"),
    ({"dt": -1.0}, r"dt=np\.float64\(-1\.0\) must be a finite number > 0"),
    ({"beta": np.nan}, r"beta=np\.float64\(nan\) is not finite"),
    ({"rhos": np.linspace(0, 1, 5)}, r"its mean_abs_grad is a float64 array of shape "
                                     r"\(3, 4\); it must be a real array of shape "
                                     r"\(len\(sigmas\), len\(rhos\)\) = \(3, 5\)"),
    ({"sigmas": np.array(["a", "b", "c"])}, r"its sigmas is a <U1 array of shape \(3,\)"),
    ({"rhos": np.ones((2, 2))}, r"its rhos is a float64 array of shape \(2, 2\)"),
    ({"sigmas": None}, r"it has no sigmas"),
])
def test_load_sensitivity_checks_the_fields(tmp_path, fields, match):
    path = _grid_file(tmp_path, "g.npz", **fields)
    with pytest.raises(pebbles.PebblesValueError,
                       match=rf"^path='.*g\.npz' is not a Figure 3 grid: {match}.*"
                             r"; write one with `python -m solvers\.lorenz sensitivity"):
        ex.load_sensitivity(path)
    assert ex.load_sensitivity(_grid_file(tmp_path, "ok.npz")).steps == 50


# -- cfg, estimate and threads are checked at the boundary ---------------------------------
@pytest.mark.parametrize("call", [
    lambda cfg: pml.gradient(cfg, None, None, None),
    lambda cfg: pml.forward(cfg, None),
    lambda cfg: pml.record(cfg),
    lambda cfg: pml.loss(cfg, None, None),
    lambda cfg: pml.PMLSolver(cfg, None),
    lambda cfg: pml.check_stability(cfg, None),
    lambda cfg: pml.uniform_model(cfg),
    lambda cfg: pml.true_model(cfg),
    lambda cfg: pml.detectors(cfg),
    lambda cfg: pml.ricker(cfg),
    lambda cfg: pml.pml_profiles(cfg),
    lambda cfg: pml.memory_estimate(cfg),
])
@pytest.mark.parametrize("cfg", [None, {"nx": 20}])
def test_pml_functions_refuse_a_cfg_that_is_no_config(call, cfg):
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"^cfg=.* must be a solvers\.pml\.PMLConfig.*; pass e\.g\. "
                             r"cfg=solvers\.pml\.PMLConfig\("):
        call(cfg)


def test_check_memory_refuses_an_estimate_that_is_no_estimate():
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"^estimate='x' \(str\) must be a solvers\.pml\.MemoryEstimate.*"
                             r"memory_estimate\(cfg, moves\)"):
        pml.check_memory("x", 10)


def test_thread_chooser_takes_1_to_numbas_thread_count():
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    assert pml.ThreadChooser(most).choices == (most, 1)
    for bad in (0, -1, most + 1, 64 + most):
        with pytest.raises(pebbles.PebblesValueError, match=rf"^threads={bad} must be an "
                                                            rf"integer .*NUMBA_NUM_THREADS"):
            pml.ThreadChooser(bad)
    for bad in ("x", 2.0, True, None):
        with pytest.raises(pebbles.PebblesTypeError, match=r"^threads=.* must be an integer"):
            pml.ThreadChooser(bad)


# -- the command lines: periodic's default interval, the adjoint's overflow advice -------
def test_periodic_every_is_ceil_sqrt_n():
    assert [periodic_every(n) for n in (0, 1, 2, 4, 5, 100, 101, 2000)] == \
        [1, 1, 2, 2, 3, 10, 11, 45]
    assert dict(pml.schedule("periodic", 101).options)["every"] == 11


def test_lorenz_periodic_defaults_every_as_the_pml_command_line(capsys):
    args = ["gradient", "--method", "periodic", "--steps", "50", "--json"]
    assert lz.main(args) == 0
    default = json.loads(capsys.readouterr().out)
    assert lz.main([*args, "--every", str(periodic_every(50))]) == 0
    given = json.loads(capsys.readouterr().out)
    for key in ("gradient", "forward_steps", "peak_states"):
        assert default[key] == given[key]


def test_lorenz_adjoint_overflow_suggests_reloads_first(capsys):
    assert lz.main(["gradient", "--method", "adjoint", "--steps", "2000", "--json"]) == 2
    err = capsys.readouterr().err
    assert "without reloads: pass --every K" in err and "--every 45" in err
    assert err.index("--every") < err.index("fewer --steps")
    assert lz.main(["gradient", "--method", "adjoint", "--steps", "2000", "--every", "45",
                    "--json"]) == 0
    capsys.readouterr()
    assert lz.main(["gradient", "--method", "adjoint", "--steps", "2000", "--every", "1000",
                    "--json"]) == 2
    assert "pass a smaller --every (e.g. --every 250)" in capsys.readouterr().err


# -- argument checks: each argument named, its rule and a fix ------------------------------
@pytest.mark.parametrize("kw, error, match", [
    (dict(extra="abc"), pebbles.PebblesTypeError, r"^extra='abc' must be None or a pair"),
    (dict(extra=()), pebbles.PebblesTypeError, r"^extra=\(\) must be None or a pair"),
    (dict(extra=3), pebbles.PebblesTypeError, r"^extra=3 must be None or a pair"),
    (dict(extra=(1.0, 3)), pebbles.PebblesTypeError, r"^extra\[1\]=3 must be a string"),
    (dict(extra=("1", "a")), pebbles.PebblesTypeError, r"^extra\[0\]='1' must be a real"),
    (dict(extra=(-1.0, "a")), pebbles.PebblesValueError, r"^extra\[0\]=-1\.0 must be .*>= 0"),
    (dict(fix=None), pebbles.PebblesTypeError, r"^fix=None must be a string"),
    (dict(least=3), pebbles.PebblesTypeError, r"^least=3 must be a string"),
    (dict(what=[]), pebbles.PebblesTypeError, r"^what=\[\] must be a string"),
    (dict(point_steps=10**400), pebbles.PebblesValueError, r"^point_steps=1000.* not finite"),
])
def test_check_run_time_checks_each_argument_by_name(kw, error, match):
    args = {"what": "x", "point_steps": 10, "fix": "fix", **kw}
    with pytest.raises(error, match=match):
        lz.check_run_time(args.pop("what"), args.pop("point_steps"), args.pop("fix"), **args)


def test_check_run_time_counts_extra_seconds_and_takes_numpy_numbers():
    lz.check_run_time("x", np.int64(10), "fix", extra=(np.float64(1.0), "drawing"))
    with pytest.raises(pebbles.PebblesValueError, match=r"^x is 10 RK4 steps and drawing"):
        lz.check_run_time("x", 10, "fix", extra=(1e9, "drawing"))


@pytest.mark.parametrize("kw, error, match", [
    (dict(probe=None), pebbles.PebblesTypeError, r"^probe=None must be an integer"),
    (dict(probe=2.5), pebbles.PebblesTypeError, r"^probe=2\.5 must be an integer"),
    (dict(probe=0), pebbles.PebblesValueError, r"^probe=0 must be an integer >= 1"),
    (dict(probe=8, most_probe=4), pebbles.PebblesValueError, r"^most_probe=4 must be .*>= 8"),
    (dict(most_probe="x"), pebbles.PebblesTypeError, r"^most_probe='x' must be an integer"),
    (dict(fault_pages=-1), pebbles.PebblesValueError, r"^fault_pages=-1 must be .*>= 0"),
    (dict(fault_pages=object()), pebbles.PebblesTypeError, r"^fault_pages=<object"),
    (dict(switch=math.nan), pebbles.PebblesValueError, r"^switch=nan is not finite"),
    (dict(switch=0.5), pebbles.PebblesValueError, r"^switch=0\.5 must be a finite number >= 1"),
    (dict(margin="2"), pebbles.PebblesTypeError, r"^margin='2' must be a real number"),
    (dict(margin=-1), pebbles.PebblesValueError, r"^margin=-1 must be a finite number >= 1"),
    (dict(clock=None), pebbles.PebblesTypeError, r"^clock=None must be a function"),
    (dict(faults=3), pebbles.PebblesTypeError, r"^faults=3 must be a function"),
])
def test_thread_chooser_checks_its_settings(kw, error, match):
    with pytest.raises(error, match=match):
        pml.ThreadChooser(1, **kw)


def test_thread_chooser_takes_numpy_settings_and_no_faults_counter():
    chooser = pml.ThreadChooser(1, probe=np.int64(2), most_probe=np.int32(2),
                                switch=np.float32(1.0), margin=1, faults=None, fault_pages=0)
    assert (chooser.probe, chooser.most_probe, chooser.switch, chooser.fault_pages) == \
        (2, 2, 1.0, 0)


def test_record_names_c_true(small):
    cfg = small[0]
    with pytest.raises(pebbles.PebblesTypeError, match=r"^c_true='x' must hold real numbers"):
        pml.record(cfg, c_true="x")
    with pytest.raises(pebbles.PebblesValueError, match=r"^c_true has shape \(3, 3\)"):
        pml.record(cfg, c_true=np.ones((3, 3)))


@pytest.mark.parametrize("args, kw, error, match", [
    (("treeverse", 10), dict(background_writes=None), pebbles.PebblesTypeError,
     r"^background_writes=None must be True or False"),
    (("treeverse", 10), dict(k="x"), pebbles.PebblesTypeError, r"^k='x' must be an integer"),
    (("treeverse", 10), dict(every=2.5), pebbles.PebblesTypeError, r"^every=2\.5 must be an "),
    (("treeverse-paper", 10), dict(delta="3"), pebbles.PebblesTypeError, r"^delta='3' must"),
    (("periodic-disk", 10), dict(period=[]), pebbles.PebblesTypeError, r"^period=\[\] must"),
    (("two-level", 10), dict(disk_budget=True, write_cost=1, read_cost=1),
     pebbles.PebblesTypeError, r"^disk_budget=True"),
    (("two-level", 10), dict(write_cost="1", read_cost=1.0), pebbles.PebblesTypeError,
     r"^write_cost='1' must be a real number or None"),
    (("treeverse", 10), dict(pebbles="3"), pebbles.PebblesTypeError, r"^pebbles='3' must"),
    ((None, 10), {}, pebbles.PebblesTypeError, r"^method=None must be a string"),
    ((3, 10), {}, pebbles.PebblesTypeError, r"^method=3 must be a string"),
    (("periodic", None), {}, pebbles.PebblesTypeError, r"^n=None must be an integer;"),
    (("treeverse", 10), dict(k=3), pebbles.PebblesValueError, r"^k=3 is not an option"),
])
def test_pml_schedule_checks_types_before_options(args, kw, error, match):
    with pytest.raises(error, match=match):
        pml.schedule(*args, **kw)


def test_pml_schedule_takes_numpy_numbers():
    s = pml.schedule("two-level", np.int64(10), budget=np.int32(3),
                     write_cost=np.float32(2.0), read_cost=1, background_writes=np.bool_(True))
    assert (s.method, s.n, s.budget) == ("two-level", 10, 3)


@pytest.mark.parametrize("n, error, match", [
    (None, pebbles.PebblesTypeError, r"^n=None must be an integer"),
    (math.inf, pebbles.PebblesTypeError, r"^n=inf must be an integer"),
    (True, pebbles.PebblesTypeError, r"^n=True must be an integer"),
    (0, pebbles.PebblesValueError, r"^n=0 must be an integer >= 1"),
])
def test_snapshot_steps_checks_n_first(n, error, match):
    with pytest.raises(error, match=match):
        ex.snapshot_steps([1], n)
    assert ex.snapshot_steps([1, 3], np.int64(3)).tolist() == [1, 3]


@pytest.mark.parametrize("path", [None, 3, b"map.npz"])
def test_load_sensitivity_checks_the_path_type(path):
    with pytest.raises(pebbles.PebblesTypeError, match=r"^path=.* must be a str or os\.PathLike"):
        ex.load_sensitivity(path)


def test_pml_schedule_takes_an_unbounded_disk_as_inf():
    s = pml.schedule("two-level", 100, budget=4, disk_budget=math.inf, write_cost=2,
                     read_cost=1)
    assert s == pml.schedule("two-level", 100, budget=4, write_cost=2, read_cost=1)
