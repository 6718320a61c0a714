"""Bad input, hangs and memory limits: every case answers with one clear error.

The command-line cases that must answer at once instead of computing for hours
run as subprocesses (``python -m pebbles``), in parallel, each with a timeout.
The refusals run in this process through the same ``main`` functions that
``python -m pebbles`` and ``python -m visualize`` call, each under an alarm
that stops a hang: the exit status and the first line of stderr are checked.
The library cases are direct calls. See docs/errors.md for the policy these
tests hold the code to.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import signal
import subprocess
import sys
import threading
import tracemalloc
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pebbles
from pebbles import (
    CallbackError,
    IllegalMoveError,
    InfeasibleBudgetError,
    NonFiniteError,
    PebblesTypeError,
    PebblesValueError,
)
from pebbles._planner import EXECUTOR_EXTRA_STATES, budget_for

#: Generous: every case answers in well under a second; this only catches a hang.
TIMEOUT = 60

PEB = ["-m", "pebbles"]
VIS = ["-m", "visualize"]


def _cli_cases(tmp: str) -> list[tuple[list[str], int, str]]:
    """(argv after the interpreter, exit status, regex the first stderr line must match)."""
    png = f"{tmp}/out.png"
    draw = [*PEB, "draw", "treeverse", "-n", "20", "--pebbles", "4"]
    return [
        # hangs and blow-ups: an answer (or a refusal) at once
        ([*PEB, "plan", "-n", str(10**7), "--pebbles", "10"], 0, ""),
        ([*PEB, "plan", "-n", str(10**12), "--memory", "2GB", "--state-bytes", "32MB"], 0, ""),
        ([*PEB, "plan", "-n", "10000", "--memory", "2GB", "--state-bytes", "1B"], 0, ""),
        ([*PEB, "plan", "-n", str(10**6), "--pebbles", str(10**6)], 0, ""),
        ([*PEB, "tradeoff", "-n", "100000000000", "-o", png], 2, r"at most n=1000000"),
        ([*PEB, "draw", "store-all", "-n", "20000", "-o", png], 2,
         r"at most 128 cells, got -n 20000; use -n 128 or less, or add --fingerprint"),
        ([*PEB, "draw", "treeverse", "-n", "200", "--pebbles", "4", "-o", png], 2,
         r"got -n 200; "),
        ([*PEB, "draw", "treeverse", "-n", "100000", "--pebbles", "10", "--fingerprint",
          "-o", png], 2, r"pixels before binning"),
        ([*draw, "--dpi", "100000", "-o", png], 2, r"--dpi.*from 10 to 1200"),
        ([*draw, "--dpi", "5", "-o", png], 2, r"--dpi: '5' must be a whole number >= 10 "),
        # tracebacks that became one line
        ([*PEB, "plan", "-n", "100", "--memory", "1e999GB", "--state-bytes", "1MB"], 2,
         r"--memory: '1e999GB' must be a size"),
        ([*PEB, "plan", "-n", "100", "--memory", "1MB", "--state-bytes", "32MB"], 2,
         r"smaller than one state"),
        ([*PEB, "plan", "-n", "100", "--pebbles", "5", "--memory", "2GB"], 2,
         r"either --pebbles .* not both"),
        ([*PEB, "plan", "-n", "100", "--memory", "2GB"], 2, r"--memory 2000000000 needs "
                                                             r"--state-bytes BYTES"),
        ([*PEB, "plan", "-n", "100", "--pebbles", "5", "--background-writes"], 2,
         r"--background-writes .* give --write-cost and --read-cost too"),
        ([*PEB, "plan", "-n", "100", "--pebbles", "5", "--step-seconds", "1"], 2,
         r"--step-seconds .* give --disk-dir DIR too"),
        ([*PEB, "plan", "-n", "100", "--pebbles", "5", "--backward-cost", "inf"], 2,
         r"--backward-cost: 'inf' must be a finite number"),
        ([*PEB, "plan", "-n", "100", "--pebbles", "5", "--backward-cost", "x"], 2,
         r"'x' is not a number"),
        ([*PEB, "compare", "-n", "1000", "--pebbles", "100000"], 0, ""),
        ([*PEB, "compare", "-n", str(10**8), "--pebbles", "40"], 0, ""),
        ([*PEB, "schedule", "treeverse", "-n", str(10**26), "--pebbles", "3"], 2,
         r"must be at most 2\^62"),
        ([*PEB, "schedule", "store-all", "-n", "10", "--pebbles", "3", "--format", "summary"],
         2, r"store-all holds 9 states .* more than --pebbles 3"),
        ([*PEB, "schedule", "treeverse", "-n", "-5", "--pebbles", "3"], 2, r"'-5' must be"),
        ([*PEB, "schedule", "treeverse", "-n", "1e3", "--pebbles", "3"], 2,
         r"'1e3' is not an integer"),
        ([*PEB, "schedule", "periodic", "-n", "20", "--every", "0"], 2, r"'0' must be"),
        ([*PEB, "schedule", "bennett", "-n", "20", "--k", "1"], 2,
         r"--k: '1' must be a whole number >= 2"),
        ([*PEB, "schedule", "treeverse", "-n", "20", "--pebbles", "3", "--format", "xml"], 2,
         r"invalid choice"),
        ([*PEB, "nosuch"], 2, r"invalid choice"),
        ([*PEB], 2, r"required"),
        # output paths, checked before anything is computed
        ([*draw, "-o", f"{tmp}/missing/x.png"], 2, r"does not exist"),
        ([*draw, "-o", f"{tmp}/afile/x.png"], 2,
         r"lies under .*afile', which is a file, not a directory"),
        ([*draw, "-o", f"{tmp}/adir.png"], 2, r"is a directory"),
        ([*draw, "-o", "/sys/pebbles-test.png"], 2, r"cannot be written"),
        ([*draw, "-o", f"{tmp}/x.xyz"], 2, r"cannot tell the format"),
        ([*draw, "-o", f"{tmp}/new.png/"], 2, r"ends with a separator"),
        ([*draw, "-o", tmp], 2, r"is a directory; name a file inside it, e.g. .*figure\.png"),
        ([*PEB, "tradeoff", "-n", "100", "-o", f"{tmp}/missing/x.png"], 2, r"does not exist"),
        ([*PEB, "tradeoff", "-n", "100", "-o", f"{tmp}/adir.png"], 2, r"is a directory"),
        ([*PEB, "tradeoff", "-n", "100", "-o", "/sys/pebbles-test.png"], 2,
         r"cannot be written"),
        ([*VIS, "lorenz-fig3", "-o", f"{tmp}/missing/x.png"], 2, r"does not exist"),
        ([*VIS, "lorenz-fig3", "-o", f"{tmp}/adir.png"], 2, r"is a directory"),
        ([*VIS, "lorenz-fig3", "-o", "/sys/pebbles-test.png"], 2, r"cannot be written"),
        ([*VIS, "lorenz-fig3", "-o", f"{tmp}/x.xyz"], 2, r"cannot tell the format"),
    ]


def _run(argv: list[str]) -> tuple[int, str, str]:
    try:
        res = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                             timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, "", "TIMEOUT"
    return res.returncode, res.stdout, res.stderr


@contextlib.contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    """Raise TimeoutError in the block after ``seconds`` (main thread only; else no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _run_here(argv: list[str]) -> tuple[int, str, str]:
    """``python -m pebbles|visualize argv`` in this process: (status, stdout, stderr)."""
    from pebbles.cli import main as pebbles_main
    from visualize.__main__ import main as visualize_main

    main = {"pebbles": pebbles_main, "visualize": visualize_main}[argv[1]]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _alarm(TIMEOUT):
        code = main(argv[2:])
    return code, out.getvalue(), err.getvalue()


def test_command_lines_answer_with_one_line(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    (tmp_path / "adir.png").mkdir()
    cases = _cli_cases(str(tmp_path))
    at_once = [case for case in cases if case[1] == 0]  # would compute for hours: own process
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(map(id, at_once), pool.map(lambda case: _run(case[0]), at_once),
                        strict=True))
    failures = []
    for case in cases:
        argv, status, pattern = case
        code, _out, err = done[id(case)] if id(case) in done else _run_here(argv)
        first = err.splitlines()[0] if err else ""
        ok = (code == status and "Traceback" not in err
              and (status == 0 or (err.count("\n") == 1 and re.search(pattern, first))))
        if not ok:
            failures.append(f"{' '.join(argv[1:])}: status {code}, stderr {err[-300:]!r}")
    assert not failures, "\n".join(failures)
    assert not list(tmp_path.glob("*.xyz"))  # a refused output leaves no file behind


def test_plan_output_names_skipped_and_step_into():
    code, out, err = _run([*PEB, "plan", "-n", str(10**6), "--memory", "2GB",
                           "--state-bytes", "20KB"])  # 100 000 states
    assert code == 0, err
    assert "not costed" in out.splitlines()[-2]
    assert "reversible-gradient (too slow to solve exactly here)" in out
    code, out, err = _run([*PEB, "plan", "-n", str(10**6), "--memory", "2GB",
                           "--state-bytes", "32MB"])
    assert code == 0, err
    assert "reversible-gradient " in out and "not costed" not in out
    assert "step_into" in out
    assert out.splitlines()[-1].startswith("recommended: pebbles schedule treeverse ")


def test_compare_shows_closed_forms_where_simulation_would_not_end():
    code, out, err = _run([*PEB, "compare", "-n", str(10**8), "--pebbles", "40"])
    assert code == 0, err
    rows = {line.split()[0] + (" inplace" if "--inplace" in line else ""): line
            for line in out.splitlines() if not line.startswith(("#", "method"))}
    steps = pebbles.min_forward_steps(10**8, 40)
    assert f" {steps} " in rows["treeverse"]
    assert rows["treeverse"].endswith("(formula, not simulated)")
    paper = pebbles.predicted_steps(pebbles.schedule("treeverse-paper", 10**8, delta=39))
    assert f" {paper} " in rows["treeverse-paper"]  # counted by its recursion
    assert rows["treeverse-paper"].endswith("(formula, not simulated)")
    assert rows["reversible-optimal"].endswith("(formula, not simulated)")
    assert rows["bennett"].split()[-1] == "yes" or "no (" in rows["bennett"]


# ``python -m pebbles`` with Python's Ctrl-C handler installed first: a job a shell starts in
# the background (``pytest &``) inherits SIGINT ignored, and Python then never raises
# KeyboardInterrupt (a preexec_fn would reset it, but forks a multithreaded process).
CTRL_C = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "runpy.run_module('pebbles', run_name='__main__', alter_sys=True)")


def test_stream_starts_at_once_and_ctrl_c_is_one_line():
    # A schedule of about 2.5e23 moves streams; Ctrl-C stops it with one line and 130.
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C, "schedule", "treeverse", "-n",
                             str(10**12), "--pebbles", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("# treeverse -n 1000000000000")
        assert proc.stdout.readline() == "forward 0 999999999998\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err == "pebbles schedule: interrupted\n"


# ---------------------------------------------------------------------------
# library: moves, schedules, exact optima
# ---------------------------------------------------------------------------
LIBRARY_CASES = [
    (lambda: pebbles.treeverse(10, 3, inplace="no"), PebblesTypeError, r"inplace='no'"),
    (lambda: pebbles.place(-1), PebblesValueError, r"i=-1 must be a cell number"),
    (lambda: pebbles.place("3"), PebblesTypeError, r"i='3' must be a cell number"),
    (lambda: pebbles.place(2.0), PebblesTypeError, r"got float"),
    (lambda: pebbles.forward(3, 3), PebblesValueError, r"walks nowhere"),
    (lambda: pebbles.forward(4, 3), PebblesValueError, r"needs i < j"),
    (lambda: list(pebbles.decode([[42, 1, 0]])), PebblesValueError, r"kind=42"),
    (lambda: list(pebbles.decode(np.zeros((3, 2), dtype=int))), PebblesTypeError,
     r"shape=\(3, 2\)"),
    (lambda: list(pebbles.decode(np.zeros((3, 3)))), PebblesTypeError, r"dtype=float64"),
    (lambda: pebbles.encode([1, 2, 3]), PebblesTypeError, r"move #0 of the stream, 1,"),
    (lambda: pebbles.encode(5), PebblesTypeError, r"not an iterable of moves"),
    (lambda: pebbles.encode("place 1"), PebblesTypeError, r"is a string"),
    (lambda: pebbles.encode(["place 1"]), PebblesTypeError, r"pebbles.parse_move"),
    (lambda: pebbles.parse_move("place -1"), PebblesValueError, r"is not a move"),
    (lambda: pebbles.parse_move("jump 3"), PebblesValueError, r"is not a move"),
    (lambda: pebbles.dp_table(10**9, 10), PebblesValueError, r"min_forward_steps"),
    (lambda: pebbles.brute_force(40, 5), PebblesValueError, r"tiny boards"),
    (lambda: pebbles.min_forward_steps(10, 1), InfeasibleBudgetError, r"budget=2 or more"),
    (lambda: pebbles.min_forward_steps(10, 3, "chess"), PebblesValueError, r"not a game"),
    # names the least budget that finishes, not "pass budget=0 or more" (refused in turn)
    (lambda: pebbles.treeverse(10, -1), InfeasibleBudgetError,
     r"^budget=-1 must be >= 2, the least budget that finishes n=10 steps; pass budget=2 or "
     r"more$"),
    (lambda: pebbles.treeverse(10, -1, inplace=True), InfeasibleBudgetError,
     r"^budget=-1 must be >= 1, .*; pass budget=1 or more$"),
    (lambda: pebbles.treeverse(1, -1), PebblesValueError, r"^budget=-1 must be >= 0; pass "
                                                          r"budget=0 or more$"),
    (lambda: pebbles.treeverse(10, 2.5), PebblesTypeError, r"budget=2.5 must be an integer"),
    (lambda: pebbles.treeverse(True, 3), PebblesTypeError, r"n=True"),
    (lambda: pebbles.treeverse_paper(20, 0), PebblesValueError, r"delta=0"),
    (lambda: pebbles.bennett(16, 1), PebblesValueError, r"k=1"),
    (lambda: pebbles.periodic(10, 0), PebblesValueError, r"every=0"),
    (lambda: pebbles.schedule("store-all", 10, budget=3), InfeasibleBudgetError,
     r"holds 9 states .* pass budget >= 9"),
    (lambda: pebbles.schedule("recompute-all", 10, budget=1), InfeasibleBudgetError,
     r"holds 2 states"),
    (lambda: pebbles.schedule("treeverse", 10), PebblesTypeError, r"needs budget="),
    (lambda: pebbles.schedule("nosuch", 10), PebblesValueError, r"not a schedule"),
    (lambda: pebbles.schedule("treeverse", 10, budget=3, k=2), PebblesTypeError, r"takes"),
    (lambda: pebbles.simulate(pebbles.treeverse(10, 3), 10, budget=2), IllegalMoveError,
     r"budget"),
    (lambda: pebbles.plan(100, 5, backward_cost="x"), PebblesTypeError,
     r"backward_cost='x' must be a number"),
    (lambda: pebbles.plan(100, 5, backward_cost=math.inf), PebblesValueError,
     r"must be a finite number"),
    (lambda: pebbles.plan(100, 5, backward_cost=-1), PebblesValueError, r">= 0"),
    (lambda: pebbles.plan(20, -3), InfeasibleBudgetError,
     r"^budget=-3 must be >= 1, the least budget that finishes n=20 steps; pass budget=1 or more"),
    (lambda: pebbles.plan(100), PebblesValueError, r"needs a budget"),
    (lambda: pebbles.plan(10, 0), InfeasibleBudgetError,
     r"^a budget of 0 states cannot finish n=10 steps .*; pass budget=1 or more"),
    (lambda: pebbles.plan(100, 5, memory=10**9), PebblesValueError, r"not both"),
    (lambda: pebbles.plan(100, memory=10**6, state_bytes=32 * 10**6), PebblesValueError,
     r"smaller than one state"),
    (lambda: pebbles.plan(100, 0), InfeasibleBudgetError, r"cannot finish"),
    (lambda: budget_for(4 * 100, 100), PebblesValueError, r"holds 4 states"),
    (lambda: budget_for(2.5, 1), PebblesTypeError, r"memory=2.5"),
    (lambda: pebbles.plan(10, memory="2GB", state_bytes=1), PebblesTypeError, r"memory='2GB'"),
    (lambda: pebbles.plan(10, 3, backward_cost=True), PebblesTypeError, r"backward_cost=True"),
    (lambda: pebbles.format_move(("x", 1, 2)), PebblesTypeError, r"is not a move"),
    (lambda: pebbles.format_move((99, 1, 2)), PebblesValueError, r"kind must be one of"),
    (lambda: pebbles.parse_move(None), PebblesTypeError, r"must be a string"),
    (lambda: pebbles.min_forward_steps(10, 3, "Checkpoint"), PebblesValueError, r"not a game"),
    (lambda: pebbles.treeverse(10.0, 3), PebblesTypeError, r"n=10.0 must be an integer"),
    (lambda: pebbles.simulate("place 1", 1), PebblesTypeError, r"'place 1' is a string"),
    (lambda: pebbles.online_overhead((10, 20), 5), PebblesTypeError,
     r"budgets=5 must be a sequence of ints"),
    (lambda: pebbles.online_overhead((10, "x")), PebblesTypeError, r"ns\[1\]='x'"),
    (lambda: pebbles.online_overhead((10,), inplace=1), PebblesTypeError, r"inplace=1"),
    (lambda: pebbles.schedule("periodic-disk", 10, budget=1, period=3),
     InfeasibleBudgetError, r"period of 3 steps \(period=3, n=10\).*budget=3 or more"),
    (lambda: pebbles.schedule("treeverse", 10, budget=3).simulate(budget=2),
     IllegalMoveError, r"the budget is 2"),
]


@pytest.mark.parametrize(("call", "error", "pattern"), LIBRARY_CASES)
def test_library_bad_input(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_treeverse_paper_deep_recursion_is_iterative():
    # delta far above n nests one level per checkpoint: no RecursionError
    n = 3000
    r = pebbles.simulate(pebbles.treeverse_paper(n, 10**5), n)
    assert r.backward_steps == n and r.forward_steps == n - 1  # store-all in effect
    assert pebbles.simulate(pebbles.treeverse_paper(20, 3), 20).forward_steps == 45  # Fig. 7a


def test_huge_n_and_budgets_answer_from_closed_forms():
    n = 10**12
    assert pebbles.paper_tau(n, 1) == n - 1
    assert pebbles.min_forward_steps(n, n) == n - 1
    # two pebbles in the checkpoint game: beta(2, r) = 2r + 1 cells, so r = n/2 sweeps
    r = n // 2
    assert pebbles.min_forward_steps(n, 2) == r * n - r * r
    # Griewank's closed form r n - C(S + r, S + 1) in the in-place game
    r = next(r for r in range(1, 10**7) if math.comb(2 + r, 2) >= n)
    assert pebbles.min_forward_steps(n, 2, "inplace") == r * n - math.comb(2 + r, 3)
    assert next(iter(pebbles.treeverse(n, 2))) == pebbles.forward(0, n - 2)
    assert next(iter(pebbles.treeverse(n, n))) == pebbles.forward(0, 1)
    assert next(iter(pebbles.periodic(n, 1))) == pebbles.forward(0, 1)
    assert pebbles.plan(n, n).best.forward_steps == n - 1


@pytest.mark.parametrize("game", ["checkpoint", "inplace"])
def test_closed_form_optimum_matches_dynamic_programming(game):
    table = pebbles.dp_table(150, 9, game)
    for n in range(1, 151):
        for s in range(pebbles.min_pebbles(n, game), 10):
            assert pebbles.min_forward_steps(n, s, game) == table[n, s]


def test_simulate_of_an_encoding_returns_plain_ints():
    r = pebbles.simulate(pebbles.encode(pebbles.treeverse(30, 4)), 30)
    for name in ("n", "forward_steps", "backward_steps", "peak_states", "moves"):
        assert type(getattr(r, name)) is int, name


# ---------------------------------------------------------------------------
# library: the planner against the executor
# ---------------------------------------------------------------------------
def test_budget_for_and_plan_agree():
    assert budget_for(2 * 2**30, 32 * 2**20) == 64 - EXECUTOR_EXTRA_STATES
    p = pebbles.plan(10_000, memory=2 * 2**30, state_bytes=32 * 2**20)
    assert p.budget == budget_for(2 * 2**30, 32 * 2**20)
    assert p.memory <= 2 * 2**30 and p.best.states == p.budget + EXECUTOR_EXTRA_STATES


def test_plan_never_prefers_a_tie_over_treeverse():
    p = pebbles.plan(10_000, 10, backward_cost=1e17)
    assert p.best.method == "treeverse"
    assert p.best.forward_steps == min(c.forward_steps for c in p.candidates)


def test_plan_best_schedule_runs_as_is_and_says_step_into():
    p = pebbles.plan(200, 6)
    best = p.best
    assert isinstance(best.schedule, pebbles.Schedule)
    assert best.needs_step_into == (best.game == "inplace")
    r = _replay(best.schedule, step_into=True)
    assert r.backward_steps == 200
    assert r.forward_steps - r.extra_steps == best.forward_steps


_B = 2**16  # floats per state: 512 KiB, so a state dwarfs every other allocation


def _replay(sched, *, step_into=False, running=False, s0=None):
    kw = {}
    if step_into:
        kw["step_into"] = lambda i, s, out: np.multiply(s, 0.999, out=out)
    if running:
        kw["running_loss_grad"] = lambda i, s: np.full_like(s, 1e-3)
    return pebbles.replay(sched, None, np.ones(_B) if s0 is None else s0,
                          lambda i, s: s * 0.999, lambda i, s, g: (g * 0.999, None),
                          lambda s: np.ones_like(s), **kw)


@pytest.mark.parametrize("step_into", [False, True])
@pytest.mark.parametrize("running", [False, True])
@pytest.mark.parametrize(("n", "memory_states"), [(40, 9), (25, 40)])
def test_plan_memory_bounds_the_executors_measured_peak(n, memory_states, step_into, running):
    """Every state-sized array alive at once (s_0 included), measured with tracemalloc."""
    state_bytes = 8 * _B
    p = pebbles.plan(n, memory=memory_states * state_bytes, state_bytes=state_bytes)
    s0 = np.ones(_B)
    tracemalloc.start()
    try:
        _replay(p.best.schedule, step_into=step_into or p.best.needs_step_into,
                running=running, s0=s0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    held = peak // state_bytes + 1  # + s_0, allocated before tracing started
    assert held <= p.best.states <= memory_states
    if step_into or running:  # the constant is tight: the executor does reach it
        assert held == min(p.budget, n - 1) + EXECUTOR_EXTRA_STATES


# ---------------------------------------------------------------------------
# library: the executor and the user's callbacks
# ---------------------------------------------------------------------------
S0 = np.linspace(1.0, 2.0, 3)
SCHED = pebbles.schedule("treeverse", 12, budget=3)


_FRESH = object()


def _call(step=None, backward=None, loss_grad=None, moves=SCHED, n=None, s0=_FRESH, **kw):
    return pebbles.replay(
        moves, n, S0.copy() if s0 is _FRESH else s0,
        step or (lambda i, s: 2.0 * s),
        backward or (lambda i, s, g: (2.0 * g, None)),
        loss_grad or (lambda s: np.ones_like(s)), **kw)


def _mutating_step(i, s):
    s *= 2.0
    return s


def _mutate_and_copy(i, s):
    s *= 2.0
    return s.copy()


_RING = [np.zeros(3), np.zeros(3)]


def _cached_step(i, s):
    out = _RING[i % 2]  # two buffers reused in turn: s_1 and s_3 would share one
    np.multiply(s, 2.0, out=out)
    return out


def _grad_mutating_backward(i, s, g):
    g *= 2.0
    return g.copy(), None


def _state_mutating_loss_grad(s):
    s[0] = 0.0
    return np.ones_like(s)


EXECUTOR_CASES = [
    (dict(step=_mutating_step), PebblesValueError, r"step at step 0 returned its input"),
    (dict(step=lambda i, s: s[:]), PebblesValueError, r"returned its input \(or a view"),
    (dict(step=_cached_step), PebblesValueError, r"returned a state the executor still holds"),
    (dict(step=_mutate_and_copy), PebblesValueError, r"s0 changed during the replay"),
    (dict(step=_mutate_and_copy, check_states=True), PebblesValueError,
     r"step at step 0 modified its input state"),
    (dict(backward=_grad_mutating_backward, check_states=True), PebblesValueError,
     r"backward at step 11 modified its input state or gradient"),
    (dict(loss_grad=_state_mutating_loss_grad, check_states=True), PebblesValueError,
     r"loss_grad at step 12 modified the state"),
    (dict(step_into=lambda i, s, out: 2.0 * s,
          moves=pebbles.schedule("treeverse", 12, budget=3, inplace=True)),
     PebblesTypeError, r"step_into at step \d+ returned a ndarray; it must write"),
    (dict(backward=lambda i, s, g: (2.0 * g, np.array([np.nan])), check_finite=True),
     NonFiniteError, r"backward at step 11 returned a theta_bar with NaN"),
    (dict(backward=lambda i, s, g: (g * np.nan, None), check_finite=True), NonFiniteError,
     r"backward at step 11 returned NaN"),
    (dict(step=lambda i, s: s * np.inf, check_finite=True), NonFiniteError,
     r"step at step 0 returned NaN or infinity"),
    (dict(loss=lambda s: s), PebblesTypeError, r"loss at step 12 returned ndarray of shape"),
    (dict(loss=lambda s: "x"), PebblesTypeError, r"loss at step 12 returned str 'x'"),
    (dict(loss=lambda s: float("nan"), check_finite=True), NonFiniteError, r"loss at step 12"),
    (dict(backward=lambda i, s, g: (2.0 * g, np.zeros(i + 1))), PebblesTypeError,
     r"backward at step 10 returned theta_bar with shape=\(11,\).*keep one shape"),
    (dict(backward=lambda i, s, g: 2.0 * g), PebblesTypeError, r"must return a tuple"),
    (dict(step=lambda i, s: s[:2] * 2.0), PebblesTypeError, r"step at step 0 returned shape"),
    (dict(step=lambda i, s: None), PebblesTypeError,
     r"step at step 0 returned None; expected shape=\(3,\), dtype=float64 .*step_into="),
    (dict(step=lambda i, s: (s * 2).astype(np.float32)), PebblesTypeError, r"dtype=float32"),
    (dict(step=lambda i, s: 1 / 0), CallbackError, r"callback 'step' raised ZeroDivision"),
    (dict(moves=["place 1"], n=1), PebblesTypeError, r"parse_move"),
    (dict(moves="place 1", n=1), PebblesTypeError, r"moves is a string"),
    (dict(n=13), PebblesValueError, r"this schedule is for n=12, replay got n=13; pass n=None"),
    (dict(moves=list(SCHED), n=13), IllegalMoveError, r"looks like one for n=12 steps"),
    (dict(moves=list(pebbles.bennett(12, 2)), n=12), IllegalMoveError, r"illegal move"),
    (dict(pool_size=-1), PebblesValueError, r"pool_size=-1"),
    (dict(pool_size=2.5), PebblesTypeError, r"pool_size=2.5 .* got float"),
    (dict(s0=None), PebblesTypeError, r"s0=None"),
    (dict(step=5), PebblesTypeError, r"step=5 must be a function"),
    (dict(loss=3.0), PebblesTypeError, r"loss=3.0 must be a function"),
    (dict(backward=lambda i, s, g: (g, None, 1)), PebblesTypeError, r"got a tuple of 3"),
    (dict(n="12"), PebblesTypeError, r"n='12' must be an integer"),
    (dict(moves=pebbles.schedule("bennett", 12)), PebblesValueError, r"cannot be lowered"),
    (dict(moves=np.zeros((4, 3)), n=12), PebblesTypeError, r"not a move encoding"),
]


@pytest.mark.parametrize(("kwargs", "error", "pattern"), EXECUTOR_CASES)
def test_replay_bad_callbacks(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        _call(**kwargs)


def test_step_into_may_return_out_itself():
    sched = pebbles.schedule("treeverse", 12, budget=3, inplace=True)
    r = _call(moves=sched, step_into=lambda i, s, out: np.multiply(s, 2.0, out=out))
    assert np.allclose(r.grad_s0, 2.0**12) and r.inplace_steps > 0


def test_s0_is_never_modified_and_errors_leave_it_alone():
    s0 = S0.copy()
    r = _call(s0=s0)
    assert np.array_equal(s0, S0)
    assert np.allclose(r.grad_s0, 2.0**12)  # d(sum 2^12 s0)/ds0


def test_pytree_states_checked_leaf_by_leaf():
    s0 = {"u": np.ones(2), "v": (np.ones(3), np.ones((2, 2)))}

    def step(i, s):
        return {"u": 2 * s["u"], "v": (3 * s["v"][0], s["v"][1] * 1.0)}

    def backward(i, s, g):
        return {"u": 2 * g["u"], "v": (3 * g["v"][0], g["v"][1] * 1.0)}, None

    def loss_grad(s):
        return {"u": np.ones(2), "v": (np.ones(3), np.ones((2, 2)))}

    r = pebbles.replay(pebbles.schedule("treeverse", 5, budget=2), None, s0, step, backward,
                       loss_grad)
    assert np.allclose(r.grad_s0["u"], 32) and np.allclose(r.grad_s0["v"][0], 243)
    assert np.allclose(r.grad_s0["v"][1], 1)
    with pytest.raises(PebblesTypeError, match=r"expected \{'u'"):
        pebbles.replay(pebbles.schedule("treeverse", 5, budget=2), None, s0,
                       lambda i, s: {"u": s["u"] * 2, "v": (s["v"][0][:2], s["v"][1])},
                       backward, loss_grad)


Pair = __import__("collections").namedtuple("Pair", "q p")


@pytest.mark.parametrize("method", ["treeverse", "store-all"])
def test_namedtuple_states_and_theta_and_mixed_dict_keys(method):
    """Gradients are summed leaf by leaf into the same namedtuple (or dict with keys of
    several types); equal to the hand-derived gradient of the linear map."""
    n, s = 6, pebbles.schedule(method, 6, budget=2 if method == "treeverse" else None)
    r = pebbles.replay(s, None, Pair(np.ones(2), np.zeros(2)),
                       lambda i, x: Pair(0.5 * x.q, x.p + x.q),
                       lambda i, x, g: (Pair(0.5 * g.q + g.p, g.p), Pair(g.q.copy(), x.q)),
                       lambda x: Pair(np.ones(2), np.ones(2)))
    assert type(r.grad_s0) is Pair and type(r.grad_theta) is Pair
    # p_n = p_0 + q_0 (1 + 1/2 + ... + 2^-(n-1)), q_n = 2^-n q_0
    assert np.array_equal(r.grad_s0.q, np.full(2, 0.5**n + 2 - 2 * 0.5**n))
    assert np.array_equal(r.grad_s0.p, np.ones(2))
    assert np.array_equal(r.grad_theta.p, sum(0.5**i * np.ones(2) for i in range(n)))
    d = pebbles.replay(s, None, {1: np.ones(2), "a": np.ones(2)},
                       lambda i, x: {"a": x["a"] * 1.0, 1: 0.5 * x[1]},
                       lambda i, x, g: ({1: 0.5 * g[1], "a": g["a"]}, None),
                       lambda x: {1: np.ones(2), "a": np.ones(2)})
    assert np.array_equal(d.grad_s0[1], np.full(2, 0.5**n))
    assert np.array_equal(d.grad_s0["a"], np.ones(2))


def test_check_finite_passes_integer_and_record_states_and_still_finds_nan():
    rec = np.zeros(2, dtype=[("a", "f8"), ("b", "i4")])
    for s0 in (rec, np.arange(3)):
        r = pebbles.replay(pebbles.schedule("treeverse", 4, budget=2), None, s0,
                           lambda i, x: x.copy(), lambda i, x, g: (g.copy(), None),
                           np.ones_like, check_finite=True)
        assert r.forward_steps > 0
    with pytest.raises(pebbles.NonFiniteError):
        pebbles.replay(pebbles.schedule("treeverse", 4, budget=2), None, np.ones(2),
                       lambda i, x: x * np.nan, lambda i, x, g: (g.copy(), None),
                       np.ones_like, check_finite=True)


def test_progress_without_tqdm_warns_once_naming_the_extra(monkeypatch):
    import pebbles._executor as ex

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    monkeypatch.setattr(ex, "_WARNED", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _call(progress=True)
        _call(progress=True)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and 'pip install "pebble-games[progress]"' in messages[0]


def test_replay_help_uses_public_api_only():
    doc = pebbles.replay.__doc__
    assert "pebbles._" not in doc and "from pebbles." not in doc


# --- input-validation gaps found by fuzzing: each case named argument, rule and fix ---

_CHAIN = pebbles.ChainCosts(np.ones(3), np.ones(3), np.ones(4))
_CLOCK = dict(write_cost=1, read_cost=1)

_GAPS = [
    # mapped_empty: shape and dtype
    (lambda: pebbles.mapped_empty(2.5), PebblesTypeError, r"^shape=2\.5 must be an int >= 0"),
    (lambda: pebbles.mapped_empty(2.0), PebblesTypeError, r"^shape=2\.0 must be an int"),
    (lambda: pebbles.mapped_empty("3"), PebblesTypeError, r"^shape='3'"),
    (lambda: pebbles.mapped_empty(True), PebblesTypeError, r"^shape=True"),
    (lambda: pebbles.mapped_empty(None), PebblesTypeError, r"^shape=None"),
    (lambda: pebbles.mapped_empty((2, 1.5)), PebblesTypeError, r"^shape\[1\]=1\.5"),
    (lambda: pebbles.mapped_empty(-1), PebblesValueError, r"^shape=-1 must be >= 0"),
    (lambda: pebbles.mapped_empty(2**70), PebblesValueError, r"more than an array can hold"),
    (lambda: pebbles.mapped_empty(3, None), PebblesTypeError, r"^dtype=None names no element"),
    (lambda: pebbles.mapped_empty(3, {}), PebblesTypeError, r"^dtype=\{\} names no element"),
    (lambda: pebbles.mapped_empty(3, "x"), PebblesTypeError, r"^dtype='x' is not a NumPy data"),
    # measure_io: bounds
    (lambda: pebbles.measure_io(None, 2**70), PebblesValueError,
     r"^nbytes=\d+: .*cannot be allocated"),
    (lambda: pebbles.measure_io(None, 1, repeat=2**70), PebblesValueError,
     r"^repeat=\d+ is more than 1000 .*pass repeat=1000 or less"),
    # memory_ratio: the dict of tradeoff_curves
    (lambda: pebbles.memory_ratio(None), PebblesTypeError, r"^curves=None .*tradeoff_curves\(n\)"),
    (lambda: pebbles.memory_ratio({}), PebblesValueError, r"^curves lacks .*'treeverse'"),
    (lambda: pebbles.memory_ratio(dict.fromkeys(
        ("treeverse", "bennett", "paper-treeverse", "paper-bennett"), 1)), PebblesTypeError,
     r"^curves\['treeverse'\]=1 must be a pair of arrays"),
    # the moves of every consumer: one check
    (lambda: pebbles.background_time(None, **_CLOCK), PebblesTypeError, r"^moves=None is not a"),
    (lambda: pebbles.background_time(3, **_CLOCK), PebblesTypeError, r"^moves=3 is not a stream"),
    (lambda: pebbles.background_time("x", **_CLOCK), PebblesTypeError, r"^moves='x' is a string"),
    (lambda: pebbles.background_time({}, **_CLOCK), PebblesTypeError, r"^moves=\{\} is a dict"),
    (lambda: pebbles.encode({}), PebblesTypeError, r"^moves=\{\} is a dict"),
    (lambda: pebbles.expand({}), PebblesTypeError, r"^moves=\{\} is a dict"),
    (lambda: pebbles.expand("x"), PebblesTypeError, r"^moves='x' is a string"),
    (lambda: pebbles.simulate({}, 1), PebblesTypeError, r"^moves=\{\} is a dict"),
    (lambda: pebbles.simulate([], 1), pebbles.IllegalMoveError, r"illegal end of stream"),
    # hetero_brute_force: a negative memory refused as hetero_time refuses it
    (lambda: pebbles.hetero_brute_force(_CHAIN, -1.0), PebblesValueError,
     r"^memory=-1 bytes cannot finish"),
    (lambda: pebbles.hetero_brute_force(_CHAIN, -math.inf), PebblesValueError,
     r"^memory=-inf bytes cannot finish"),
    # simulate's flags
    (lambda: pebbles.simulate([], 1, trace=None), PebblesTypeError, r"^trace=None must be True"),
    (lambda: pebbles.simulate([], 1, check_end="yes"), PebblesTypeError, r"^check_end='yes'"),
    (lambda: pebbles.simulate([], 1, check_end=1), PebblesTypeError, r"^check_end=1 must be"),
    # candidates' keep
    (lambda: pebbles.candidates(5, 3, keep="x"), PebblesTypeError, r"^keep='x' is not callable"),
    # messages naming the argument
    (lambda: pebbles.as_encoded(None), PebblesTypeError, r"^encoded=None \(an array"),
    (lambda: pebbles.as_encoded([]), PebblesTypeError, r"^encoded=\[\] \(an array"),
    (lambda: pebbles.decode("x"), PebblesTypeError, r"^encoded='x' \(an array"),  # at the call
    (lambda: pebbles.simulate(np.zeros((2, 2), int), 1), PebblesTypeError, r"^moves=array"),
    (lambda: pebbles.format_move(None), PebblesTypeError, r"^m=None is not a move"),
    (lambda: pebbles.describe("nonsense"), PebblesValueError, r"^name='nonsense'"),
    (lambda: pebbles.describe(3), PebblesTypeError, r"^name=3 must be a method name"),
    (lambda: pebbles.schedule("nonsense", 4), PebblesValueError, r"^method='nonsense'"),
    (lambda: pebbles.plan(100, 3, disk_budget=-1), PebblesValueError, r"^disk_budget=-1"),
    (lambda: pebbles.plan(100, 3, disk_budget="3"), PebblesTypeError, r"^disk_budget='3'"),
    (lambda: pebbles.plan(100, 3, memory="3"), PebblesTypeError, r"^memory='3' must be"),
    (lambda: pebbles.plan(100, 3, memory=True), PebblesTypeError, r"^memory=True must be"),
    (lambda: pebbles.plan(100, 3, memory=math.nan), PebblesTypeError, r"^memory=nan must be"),
]


@pytest.mark.parametrize("call, error, pattern", _GAPS)
def test_fuzzed_gaps_refused_at_the_boundary(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_valid_numpy_scalars_and_defaults_still_pass():
    assert pebbles.mapped_empty(np.int64(3), np.float32).shape == (3,)
    assert pebbles.mapped_empty((np.int64(2), 0)).shape == (2, 0)
    assert pebbles.candidates(5, 3, keep=lambda method, options: True)
    assert pebbles.simulate(pebbles.schedule("store-all", 3), 3, trace=np.True_).trace
    assert pebbles.hetero_brute_force(_CHAIN, 0) is None  # a real search, nothing fits


def test_an_array_given_for_an_integer_names_its_dtype():
    with pytest.raises(pebbles.PebblesTypeError, match=r"^budget=array\(\[3\]\) must be an "
                                                       r"integer, got ndarray of dtype int64;"):
        pebbles.schedule("treeverse", 10, budget=np.array([3], dtype=np.int64))
    with pytest.raises(pebbles.PebblesTypeError, match=r"must be an integer, got float64; "):
        pebbles.schedule("treeverse", 10, budget=np.float64(3))
