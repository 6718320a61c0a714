"""The ``pebbles`` command line: formats, summaries from the simulator, error paths."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pebbles
from pebbles import cli
from pebbles.cli import main, parse_bytes


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_moves_format_prints_each_move_and_a_summary(capsys):
    code, out, _ = run(capsys, "schedule", "treeverse", "-n", "20", "--pebbles", "4")
    assert code == 0
    lines = out.splitlines()
    body = [ln for ln in lines if not ln.startswith("#")]
    assert body == [str(m) for m in pebbles.treeverse(20, 4)]
    summary = json.loads(lines[-1][2:])
    assert summary["forward_steps"] == 40 and summary["backward_steps"] == 20


@pytest.mark.parametrize(
    ("argv", "game", "steps"),
    [
        (["treeverse", "-n", "20", "--pebbles", "4", "--inplace"], "inplace", 39),
        (["treeverse-paper", "-n", "20", "--delta", "3"], "checkpoint", 45),
        (["bennett", "-n", "16", "--k", "2"], "reversible", 81),
        (["bennett", "-n", "16", "--no-uncompute"], "reversible", 41),
        (["bennett-gradient", "-n", "16"], "checkpoint", 41),
        (["reversible-optimal", "-n", "16", "--pebbles", "5"], "reversible", 29),
        (["store-all", "-n", "10"], "checkpoint", 9),
        (["recompute-all", "-n", "10"], "checkpoint", 45),
        (["periodic", "-n", "100", "--every", "10"], "checkpoint", 180),
    ],
)
def test_summary_of_every_method(capsys, argv, game, steps):
    code, out, _ = run(capsys, "schedule", *argv, "--format", "summary")
    doc = json.loads(out)
    assert code == 0 and doc["game"] == game and doc["forward_steps"] == steps
    assert ("first_reach_n" in doc) == (game == "reversible")


def test_json_format_holds_summary_and_moves(capsys):
    code, out, _ = run(capsys, "schedule", "bennett", "-n", "4", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["first_reach_n"] == 5 and len(doc["moves"]) == 9
    assert [pebbles.parse_move(t) for t in doc["moves"]] == list(pebbles.bennett(4))


def test_compare_marks_optimal_rows(capsys):
    code, out, _ = run(capsys, "compare", "-n", "100", "--pebbles", "5")
    rows = {ln.split()[0] + (" inplace" if "--inplace" in ln else ""): ln
            for ln in out.splitlines()[2:]}
    assert code == 0
    assert rows["treeverse"].endswith("yes") and rows["treeverse inplace"].endswith("yes")
    assert "no (" in rows["recompute-all"]


def test_plan_says_on_stderr_when_it_solves_a_large_two_level_table(capsys, monkeypatch):
    monkeypatch.setattr(cli, "TWO_LEVEL_NOTICE_N", 100)
    code, out, err = run(capsys, "plan", "-n", "200", "--pebbles", "4", "--write-cost", "2",
                         "--read-cost", "2")
    assert code == 0 and out.splitlines()[-1].startswith("recommended:")
    assert err == ("# solving the two-level optimum of n=200 for both games (a minute or "
                   "two at n = 10^6)\n")  # not a terminal: once, no seconds
    code, out, err = run(capsys, "plan", "-n", "200", "--pebbles", "4")  # no disk: quick
    assert code == 0 and err == ""


def test_plan_recommends_cheapest(capsys):
    code, out, _ = run(capsys, "plan", "-n", "10000", "--memory", "2GB",
                       "--state-bytes", "32MB", "--backward-cost", "3")
    assert code == 0
    # 2GB / 32MB = 62 states; the executor's own 4 (s_0, s_n, two gradients) leave 58
    assert "budget=58 states" in out
    assert out.splitlines()[-1] == (
        "recommended: pebbles schedule treeverse -n 10000 --budget 58 --inplace")



def test_plan_background_writes_without_a_disk_is_refused_in_flags(capsys, monkeypatch):
    """The planner's own check refuses it (one check), and the command line words it in
    its flags and its way of giving the costs."""
    asked = []
    monkeypatch.setattr(cli, "plan", lambda *a, **kw: asked.append(kw) or pebbles.plan(*a, **kw))
    code, _, err = run(capsys, "plan", "-n", "100", "--pebbles", "5", "--background-writes")
    assert code == 2 and len(asked) == 1 and asked[0]["background_writes"] is True
    assert err == ("pebbles plan: error: --background-writes costs the two-level schedules "
                   "with their stores written while the steps go on, and there are none "
                   "without a disk: give --write-cost and --read-cost too, or --disk-dir DIR "
                   "with --state-bytes and --step-seconds to measure them\n")


def test_plan_background_writes_without_a_disk_names_the_argument():
    with pytest.raises(pebbles.PebblesValueError) as info:
        pebbles.plan(100, 5, background_writes=True)
    assert isinstance(info.value, pebbles._planner.NoDiskError)
    assert info.value.argument == "background_writes"
    assert str(info.value) == (
        "background_writes=True " + info.value.rule + ": give write_cost= and read_cost= too "
        "(a state's write and read times in forward steps, e.g. "
        "pebbles.measure_io(dir, state_bytes).costs(step_seconds))")


def test_plan_reads_gib_and_mib_as_binary_like_the_python_example(capsys):
    """README: --memory 2GiB --state-bytes 32MiB is pebbles.plan(memory=2 * 2**30,
    state_bytes=32 * 2**20): budget 60, where 2GB / 32MB give 58."""
    code, out, _ = run(capsys, "plan", "-n", "10000", "--memory", "2GiB",
                       "--state-bytes", "32MiB", "--backward-cost", "3")
    assert code == 0 and "budget=60 states" in out
    assert pebbles.plan(10_000, memory=2 * 2**30, state_bytes=32 * 2**20,
                        backward_cost=3).budget == 60


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["schedule", "treeverse", "-n", "0", "--pebbles", "3"], "'0' must be"),
        (["schedule", "treeverse", "-n", "20", "--pebbles", "1"], "--pebbles 2 or more"),
        (["schedule", "treeverse", "-n", "20"], "needs --pebbles"),
        (["schedule", "bennett", "-n", "8", "--k", "1"], "--k: '1' must be a whole number >= 2"),
        (["schedule", "reversible-optimal", "-n", "16", "--pebbles", "4"], "--pebbles 5"),
        (["schedule", "treeverse-paper", "-n", "20", "--delta", "3", "--tau", "1"], "--tau 3"),
        (["schedule", "periodic", "-n", "20"], "needs --every"),
        (["schedule", "treeverse", "-n", "20", "--pebbles", "3", "--k", "3", "--delta", "2"],
         "--k --delta: not options of method treeverse (its options: --pebbles, --inplace)"),
        (["schedule", "store-all", "-n", "20", "--inplace"],
         "--inplace: not an option of method store-all (its options: none)"),
        (["schedule", "treeverse", "-n", "20", "--pebbles", "3", "--write-cost", "1"],
         "--write-cost: not an option"),
        # a zero is given, not absent (0 == False in Python)
        (["schedule", "treeverse", "-n", "20", "--pebbles", "3", "--tau", "0", "--format",
          "summary"], "--tau: not an option of method treeverse"),
        (["schedule", "treeverse", "-n", "20", "--pebbles", "3", "--disk-slots", "0"],
         "--disk-slots: not an option"),
        (["schedule", "store-all", "-n", "5", "--read-cost", "0.0"], "--read-cost: not an option"),
        (["schedule", "nosuch", "-n", "20"], "invalid choice: 'nosuch' (choose from"),
        (["schedule", "trevers", "-n", "20"],
         "invalid choice: 'trevers' (did you mean 'treeverse'? choose from 'treeverse', "),
        (["schedule", "Treeverse", "-n", "20"], "did you mean 'treeverse'?"),
        (["draw", "treeverse", "-n", "20", "--side-by-side", "bennet", "-o", "x.png"],
         "argument --side-by-side: invalid choice: 'bennet' (did you mean 'bennett'?"),
        (["schedule", "treeverse", "-n", "x"], "not an integer"),
        (["compare", "-n", "20", "--pebbles", "0"], "--pebbles 1 or more"),
        (["plan", "-n", "100"], "needs a budget"),
        (["plan", "-n", "100", "--memory", "2XB", "--state-bytes", "1MB"], "not a size"),
        (["plan", "-n", "100", "--memory", "1MB", "--state-bytes", "1MB"], "holds 1 state of"),
        # the planner's messages name plan's flags, not its arguments
        (["plan", "-n", "1000", "--memory", "1KB", "--state-bytes", "1MB"],
         "--memory 1000 bytes is smaller than one state (--state-bytes 1000000); the executor "
         "needs 5 states at least: give --memory >= 5000000"),
        (["plan", "-n", "1000", "--pebbles", "0"], "cannot finish -n 1000 ("),
        (["plan", "-n", "1000", "--pebbles", "10", "--write-cost", "1"],
         "a disk needs --write-cost and --read-cost"),
        (["plan", "-n", "1000", "--pebbles", "10", "--disk-slots", "3"],
         "or --disk-dir DIR with --state-bytes and --step-seconds"),
        (["plan", "-n", "1000", "--pebbles", "10", "--disk-dir", __file__, "--state-bytes",
          "1MB", "--step-seconds", "1"], f"--disk-dir {__file__!r} is a file"),
        (["plan", "-n", "100", "--memory", "1.5", "--state-bytes", "1"],
         "'1.5' is 1.5 bytes, not a whole number of bytes"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, needle):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_parse_bytes_units():
    assert parse_bytes("2GB") == 2 * 10**9
    assert parse_bytes("32MiB") == 32 * 2**20
    assert parse_bytes("1000") == 1000
    assert parse_bytes("1.1KB") == 1100 and parse_bytes("1.5KiB") == 1536  # exact
    for fractional in ("1.5", "1.0005KB"):  # refused, not cut or rounded
        with pytest.raises(argparse.ArgumentTypeError, match="not a whole number of bytes"):
            parse_bytes(fractional)


def test_method_flags_lists_what_a_method_takes_in_a_command_lines_flags(capsys):
    assert cli.method_flags("treeverse") == ["--pebbles", "--inplace"]
    assert cli.method_flags("bennett") == ["--k", "--no-uncompute"]
    assert cli.method_flags("store-all") == []
    assert cli.method_flags("two-level") == ["--pebbles", "--disk-slots", "--write-cost",
                                             "--read-cost", "--inplace", "--background-writes",
                                             "--backward-cost"]
    # a command line's own names (the PML solver's --every for periodic-disk's period),
    # one flag for two options given once, and only the options it has a flag for
    pml = {"every": "--every", "period": "--every", "inplace": "--inplace"}
    assert cli.method_flags("periodic-disk", {"period": "--every"}) == [
        "--pebbles", "--every", "--inplace"]
    assert cli.method_flags("periodic-disk", pml, offered=pml) == [
        "--pebbles", "--every", "--inplace"]
    assert cli.method_flags("online", pml, offered=pml) == ["--pebbles", "--inplace"]
    assert cli.method_flags("bennett", offered=()) == []
    # the list pebbles schedule names in its refusal
    code, _, err = run(capsys, "schedule", "online", "-n", "20", "--k", "2")
    assert code == 2 and f"(its options: {', '.join(cli.method_flags('online'))})" in err
    assert "--pebbles, --inplace, --beyond" in err


def test_in_flags_takes_a_command_lines_own_flags():
    err = cli.in_flags(pebbles.PebblesValueError("period=0 must be >= 1; pass period=1, "
                                                 "n=5, write_cost= and read_cost= (x)"),
                       flags={"period": "--every"})
    assert str(err) == ("--every 0 must be >= 1; pass --every 1, -n 5, --write-cost and "
                        "--read-cost (x)")


def test_console_entry_point_runs_without_heavy_imports():
    code = ("import sys, pebbles.cli; "
            "print(sorted(m for m in ('numba', 'matplotlib', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    res = subprocess.run([sys.executable, "-m", "pebbles", "--help"], capture_output=True,
                         text=True)
    assert res.returncode == 0 and "examples:" in res.stdout


#: A schedule of every method, each option away from its default somewhere.
PRINTED = [
    ("treeverse", 30, {"budget": 3}),
    ("treeverse", 30, {"budget": 3, "inplace": True}),
    ("treeverse-paper", 20, {"delta": 3, "tau": 4}),
    ("bennett", 16, {"k": 3, "uncompute": False}),
    ("bennett-gradient", 16, {"k": 3}),
    ("reversible-optimal", 16, {"budget": 5}),
    ("reversible-gradient", 16, {"budget": 5}),
    ("store-all", 10, {"budget": 9}),
    ("recompute-all", 10, {}),
    ("online", 40, {"budget": 3, "inplace": True, "beyond": "wang-moin"}),
    ("two-level", 30, {"budget": 3, "disk_budget": 2, "write_cost": 2.5, "read_cost": 1.0,
                       "inplace": True}),
    ("two-level", 30, {"budget": 3, "write_cost": 2, "read_cost": 1,
                       "background_writes": True, "backward_cost": 3}),
    ("periodic-disk", 30, {"budget": 3, "period": 7, "inplace": True}),
    ("periodic", 100, {"every": 10}),
]


def test_printed_cases_cover_every_method_and_option():
    assert {m for m, _, _ in PRINTED} == set(pebbles.methods())
    for name in pebbles.methods():
        changed = {k for m, _, opts in PRINTED if m == name for k in opts}
        options = {k for k, _ in pebbles.describe(name).options}
        assert options <= changed, name


@pytest.mark.parametrize(("method", "n", "opts"), PRINTED)
def test_printed_schedule_runs_as_a_command_with_the_same_moves(capsys, method, n, opts):
    s = pebbles.schedule(method, n, **opts)
    code, out, err = run(capsys, "schedule", *shlex.split(str(s)), "--format", "json")
    assert code == 0, err
    assert json.loads(out)["moves"] == [pebbles.format_move(m) for m in s]


def test_plan_recommendation_runs_as_printed(capsys):
    code, out, _ = run(capsys, "plan", "-n", "200", "--pebbles", "5", "--write-cost", "2",
                       "--read-cost", "2", "--disk-slots", "3")
    command = out.splitlines()[-1].removeprefix("recommended: pebbles ")
    assert code == 0 and "--disk-slots 3" in command
    code, out, err = run(capsys, *shlex.split(command), "--format", "summary")
    best = pebbles.plan(200, 5, write_cost=2, read_cost=2, disk_budget=3).best
    assert code == 0 and json.loads(out)["forward_steps"] == best.forward_steps, err


def test_disk_budget_is_a_synonym_of_disk_slots(capsys):
    argv = ["schedule", "two-level", "-n", "30", "--budget", "3", "--write-cost", "2",
            "--read-cost", "1", "--format", "summary"]
    outs = [run(capsys, *argv, flag, "2")[1] for flag in ("--disk-slots", "--disk-budget")]
    assert outs[0] == outs[1] and json.loads(outs[0])["peak_disk"] <= 2


def test_least_budget_is_the_inplace_games(capsys):
    code, out, _ = run(capsys, "compare", "-n", "10", "--pebbles", "1")
    assert code == 0 and out.splitlines()[2].split()[:4] == ["treeverse", "--inplace",
                                                             "inplace", "45"]
    assert pebbles.plan(10, 1).best.schedule == pebbles.schedule("treeverse", 10, budget=1,
                                                                 inplace=True)
    p = pebbles.plan(10, memory=5 * 1000, state_bytes=1000)  # room for exactly 1 state
    assert p.budget == 1 and p.best.needs_step_into
    with pytest.raises(pebbles.InfeasibleBudgetError,
                       match="pass budget=1 or more \\(a memory for 1 state"):
        pebbles.plan(10, 0)


def test_plan_sizes_states_of_a_budget_and_measures_a_disk_for_it(capsys, tmp_path):
    code, out, _ = run(capsys, "plan", "-n", "100", "--pebbles", "5", "--state-bytes", "1kB")
    assert code == 0 and "# memory held at most: 9000 bytes (9 states)" in out
    assert pebbles.plan(100, 5, state_bytes=1000).memory == 9000
    code, out, err = run(capsys, "plan", "-n", "100", "--pebbles", "5", "--disk-dir",
                         str(tmp_path), "--state-bytes", "64kB", "--step-seconds", "0.01")
    assert code == 0 and "two-level" in out, err


@pytest.mark.parametrize("format_", ["summary", "json"])
def test_huge_streams_are_refused_at_once(capsys, format_):
    for argv in (["treeverse", "-n", str(2**62), "--pebbles", "10"],
                 ["store-all", "-n", str(10**8)], ["bennett", "-n", str(10**6)]):
        code, out, err = run(capsys, "schedule", *argv, "--format", format_)
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert "use --format moves, which streams them" in err


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("beyond", ["greedy", "wang-moin"])
def test_fewest_moves_of_online_holds_and_is_close_in_the_checkpoint_game(inplace, beyond):
    for budget in range(1, 9):
        for n in [*range(1, 80), 997, 3000]:
            try:
                s = pebbles.schedule("online", n, budget=budget, inplace=inplace,
                                     beyond=beyond)
            except pebbles.InfeasibleBudgetError:
                continue
            fewest, moves = pebbles.fewest_moves(s), len(s.encode())
            assert fewest <= moves, (budget, n)
            # as its docstring says: at most S moves short, or two thirds in place
            assert moves <= (fewest * 5 / 3 if inplace else fewest + budget), (budget, n)
            if n == 3000:  # a pebble made, removed and made again, a paint: 5n
                assert fewest > (0.99 if not inplace else 0.59) * moves, (budget, n)


def test_online_streams_past_the_limit_are_refused_at_once(capsys, monkeypatch):
    """A lower bound of 5n moves (checkpoint game: 4966 here) refuses before playing, and
    the error does not send the user to ``pebbles compare``, which has no row for online."""
    monkeypatch.setattr(cli, "SUMMARY_MAX_MOVES", 4000)
    monkeypatch.setattr(cli, "ENCODE_MAX_MOVES", 10)
    code, out, err = run(capsys, "schedule", "online", "-n", "1000", "--pebbles", "10",
                         "--format", "summary")
    assert code == 2 and out == "" and "more than 4000 moves" in err
    assert "pebbles compare" not in err and err.count("\n") == 1
    code, _, err = run(capsys, "schedule", "treeverse", "-n", "2000", "--pebbles", "10",
                       "--format", "summary")  # 5998 moves
    assert code == 2 and "or pebbles compare -n 2000 --pebbles S" in err


def test_json_refuses_a_stream_past_its_limit_as_it_streams(capsys, monkeypatch):
    s = pebbles.schedule("online", 40, budget=3)
    moves = len(list(s))
    monkeypatch.setattr(cli, "JSON_MAX_MOVES", moves - 1)
    code, _, err = run(capsys, "schedule", *shlex.split(str(s)), "--format", "json")
    assert code == 2 and f"more than {moves - 1} moves" in err
    monkeypatch.setattr(cli, "JSON_MAX_MOVES", moves)
    assert run(capsys, "schedule", *shlex.split(str(s)), "--format", "json")[0] == 0


@pytest.mark.parametrize(("method", "n", "opts"), PRINTED)
def test_summary_as_it_streams_equals_the_encoded_one(capsys, monkeypatch, method, n, opts):
    s = pebbles.schedule(method, n, **opts)
    clock = cli._background_clock(s)  # a background schedule's time, from a walk of its own
    if clock is not None:
        list(clock.timed(s))
    encoded = json.dumps(cli._summary(s, s.simulate(), clock)) + "\n"
    monkeypatch.setattr(cli, "ENCODE_MAX_MOVES", 0)
    monkeypatch.setattr(pebbles.Schedule, "encode", None)  # streaming never encodes
    assert run(capsys, "schedule", *shlex.split(str(s)), "--format", "summary")[1] == encoded


def test_plan_costs_print_exactly_for_huge_n(capsys):
    n = 10**12
    _, out, _ = run(capsys, "plan", "-n", str(n), "--pebbles", "5", "--backward-cost", "2.5")
    row = next(ln for ln in out.splitlines() if ln.startswith("recompute-all"))
    assert row.split()[3] == str(n * (n - 1) // 2 + 5 * n // 2)


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"background_writes": "yes"}, pebbles.PebblesTypeError, "background_writes='yes'"),
    ({"write_cost": math.nan, "read_cost": 1}, pebbles.PebblesValueError,
     "write_cost=nan must be a finite number"),
    ({"write_cost": 1, "read_cost": "x"}, pebbles.PebblesTypeError, "read_cost='x'"),
    ({"background_writes": True}, pebbles.PebblesValueError,
     "^background_writes=True .*give write_cost= and read_cost= too"),
])
def test_plan_checks_every_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        pebbles.plan(100, 5, **kwargs)


def test_plan_takes_numpy_costs():
    assert pebbles.plan(100, 5, backward_cost=np.float32(2)) == pebbles.plan(100, 5,
                                                                             backward_cost=2)


def test_help_says_what_the_budget_and_the_byte_units_count(capsys):
    text = " ".join(run(capsys, "plan", "--help")[1].split())
    assert "GB, MB, KB are decimal (10^9, 10^6, 10^3 bytes), GiB, MiB, KiB binary" in text
    assert "besides s_0, the working state included" in text
    text = " ".join(run(capsys, "schedule", "--help")[1].split())
    assert "the working state included (Revolve's c checkpoints, s_0's among them: S = c)" in text
    assert "past the r = 3 phase" in text


def test_the_online_method_is_summarised_for_both_games(capsys):
    code, out, _ = run(capsys, "methods")
    line = next(ln for ln in out.splitlines() if ln.startswith("online"))
    assert code == 0 and "r=3 phase" in line and "both games" in line
    assert "in-place r=3 band" not in line


def test_a_long_plan_shows_the_seconds_spent_on_a_terminal(monkeypatch):
    import io
    import time

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    with cli._elapsed("# solving"):
        time.sleep(2.5)
    text = sys.stderr.getvalue()
    assert text.startswith("# solving") and text.endswith("\n")
    assert re.search(r"\r# solving: [12] s", text), text


def test_version_is_the_package_version(capsys):
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"$', text, re.M).group(1)
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out == f"pebbles {version}\n"
    assert pebbles.__version__ == version


def test_compare_says_when_the_budget_is_more_than_n(capsys):
    code, out, _ = run(capsys, "compare", "-n", "20", "--pebbles", "100")
    assert code == 0 and out.splitlines()[0].startswith(
        "# n=20, budget=20 states (--pebbles 100 is more than n: every state fits)")
    code, out, _ = run(capsys, "compare", "-n", "20", "--pebbles", "5")
    assert out.splitlines()[0].startswith("# n=20, budget=5 states; T'/T")


def test_moves_format_writes_no_move_past_an_illegal_one(capsys):
    """treeverse-paper's peak is known only by playing a long stream: the moves before the
    one over --pebbles are written (none of them here), none after it."""
    code, out, err = run(capsys, "schedule", "treeverse-paper", "-n", "1000000", "--delta", "3",
                         "--pebbles", "2")
    assert code == 2 and out.splitlines() == [
        "# treeverse-paper -n 1000000 --budget 2 --delta 3  (game=checkpoint)"]
    assert ("--pebbles 2 is too few for treeverse-paper --delta 3 -n 1000000: illegal move #1 "
            "(forward 983607 999820): needs 3 pebbles at once but the budget is 2; pass a "
            "larger --pebbles") in err


def test_moves_format_writes_every_checked_move_of_a_long_stream(capsys):
    code, out, _ = run(capsys, "schedule", "treeverse", "-n", "6000", "--pebbles", "3")
    want = [pebbles.format_move(m) for m in pebbles.schedule("treeverse", 6000, budget=3)]
    assert code == 0 and len(want) > 2 * pebbles._simulator.SIMULATE_CHUNK
    assert out.splitlines()[1:-1] == want


def test_plan_solves_no_two_level_table_where_memory_holds_every_state(capsys):
    t0 = time.perf_counter()
    code, out, err = run(capsys, "plan", "-n", "1000", "--pebbles", "999", "--write-cost", "1",
                         "--read-cost", "1")
    assert code == 0 and err == "" and time.perf_counter() - t0 < 20
    assert ("# not costed: two-level (n=1000 with 999 memory states: memory alone runs no step "
            "twice, a disk cannot do better)") in out
    assert out.splitlines()[-1] == "recommended: pebbles schedule treeverse -n 1000 --budget 999"


def test_plan_says_on_stderr_when_a_budget_near_n_makes_the_table_slow(capsys, monkeypatch):
    monkeypatch.setattr(cli, "TWO_LEVEL_NOTICE_WORK", 10**5)
    code, _, err = run(capsys, "plan", "-n", "60", "--pebbles", "40", "--write-cost", "2",
                       "--read-cost", "2")
    assert code == 0 and err.startswith("# solving the two-level optimum of n=60")


@pytest.mark.parametrize("text, value", [("-1e-3", -1e-3), ("-2.5E+4", -2.5e4), ("-1.", -1.0),
                                         ("-.5e2", -50.0), ("-7", -7.0), ("-0.25", -0.25)])
def test_one_line_parser_reads_negative_numbers_in_e_notation_as_values(text, value):
    p = cli.OneLineParser(prog="prog")
    sub = p.add_subparsers(dest="command", required=True, parser_class=cli.OneLineParser)
    sub.add_parser("go").add_argument("--x", type=float, nargs=2)
    assert p.parse_args(["go", "--x", text, text]).x == [value, value]


def test_negative_e_notation_gets_the_values_rule(capsys):
    code, _, err = run(capsys, "schedule", "treeverse", "-n", "-1e3")
    assert code == 2 and "argument -n: '-1e3' is not an integer" in err


def test_moves_format_tells_a_budget_overflow_by_its_code_not_its_words(capsys, monkeypatch):
    monkeypatch.setattr(pebbles._simulator, "rule_text", lambda code, mv, g: "reworded")
    code, _, err = run(capsys, "schedule", "treeverse-paper", "-n", "1000000", "--delta", "3",
                       "--pebbles", "2")
    assert code == 2 and ("--pebbles 2 is too few for treeverse-paper --delta 3 -n 1000000: "
                          "illegal move #1 (forward 983607 999820): reworded; pass a larger "
                          "--pebbles") in err


def test_plan_notice_takes_the_planners_budget_from_memory(capsys, monkeypatch):
    """62 states of memory leave the planner a budget of 58 (not 62, which holds every
    state of n=60): it solves a two-level table, and says so."""
    monkeypatch.setattr(cli, "TWO_LEVEL_NOTICE_WORK", 10**5)
    disk = ("--write-cost", "2", "--read-cost", "2")
    code, out, err = run(capsys, "plan", "-n", "60", "--memory", "62", "--state-bytes", "1",
                         *disk)
    assert code == 0 and "budget=58 states" in out and "two-level (n=60" not in out
    assert err.startswith("# solving the two-level optimum of n=60")
    code, out, err = run(capsys, "plan", "-n", "60", "--pebbles", "59", *disk)
    assert code == 0 and err == "" and "two-level (n=60 with 59 memory states" in out


def test_plan_says_nothing_on_stderr_where_the_table_is_too_large_to_solve(capsys):
    code, out, err = run(capsys, "plan", "-n", "2000", "--pebbles", "1000", "--write-cost", "2",
                         "--read-cost", "2")
    assert code == 0 and err == "" and "its table would take more than 1e+09 operations" in out


@pytest.mark.parametrize("n", [1, 2, 3, 4, 9])
def test_plan_notice_estimate_is_zero_exactly_where_the_planner_skips_the_table(n):
    for s in range(1, n + 2):
        p = pebbles.plan(n, s, write_cost=2, read_cost=2)
        solved = any(c.method == "two-level" for c in p.candidates)
        assert (pebbles._planner.two_level_table_work(n, s) > 0) == solved, (n, s)


def test_summary_of_background_writes_gives_the_background_time(capsys):
    """"time" charges every write in full (the simulator's model); "background_time" is
    the time the schedule was picked for, the writes on the writer."""
    args = ["schedule", "two-level", "-n", "2000", "--pebbles", "4", "--write-cost", "60",
            "--read-cost", "1.2", "--inplace", "--format", "summary"]
    code, out, _ = run(capsys, *args, "--background-writes")
    got = json.loads(out)
    s = pebbles.schedule("two-level", 2000, budget=4, write_cost=60, read_cost=1.2,
                         inplace=True, background_writes=True)
    want = pebbles.background_time(s, write_cost=60, read_cost=1.2, backward_cost=0)
    assert code == 0 and got["background_time"] == want < got["time"]
    code, out, _ = run(capsys, *args)
    assert "background_time" not in json.loads(out)


@pytest.mark.parametrize("format_", ["moves", "summary", "json"])
def test_background_writes_schedule_is_made_and_played_once(capsys, monkeypatch, format_):
    """The simulator's counts and the background time come from one walk of the stream
    (each walk of a two-level schedule makes it again: a dynamic programme and its moves),
    and are those of a walk for each."""
    kw = {"budget": 4, "write_cost": 60, "read_cost": 1.2, "inplace": True,
          "background_writes": True}
    s = pebbles.schedule("two-level", 300, **kw)
    want = cli._summary(s, s.simulate()) | {"background_time": pebbles.background_time(
        s, write_cost=60, read_cost=1.2, backward_cost=0)}
    walks, iterate = [], pebbles.Schedule.__iter__
    monkeypatch.setattr(pebbles.Schedule, "__iter__",
                        lambda self: walks.append(self) or iterate(self))
    code, out, _ = run(capsys, "schedule", *shlex.split(str(s)), "--format", format_)
    last = out.splitlines()[-1]
    got = json.loads(last[2:] if format_ == "moves" else last)
    assert code == 0 and len(walks) == 1
    assert {k: got[k] for k in want} == want


@pytest.mark.parametrize("format_", ["moves", "summary", "json"])
def test_a_budget_overflow_found_while_playing_names_pebbles_in_every_format(capsys, format_):
    """treeverse-paper's peak is known only by playing a long stream: every format says
    which --pebbles is too few and to pass a larger one, not the simulator's words alone."""
    code, _, err = run(capsys, "schedule", "treeverse-paper", "-n", "300000", "--delta", "5",
                       "--pebbles", "3", "--format", format_)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("pebbles schedule: error: --pebbles 3 is too few for "
                          "treeverse-paper --delta 5 -n 300000: illegal move #2")
    assert err.rstrip().endswith("pass a larger --pebbles (its peak is known only by playing "
                                 "the stream)")


@pytest.mark.parametrize("argv", [["methods"], ["schedule", "treeverse", "-n", "5",
                                                "--pebbles", "2"]])
def test_a_closed_standard_output_is_one_line_and_exit_2(capsys, monkeypatch, argv):
    """``pebbles CMD >&-``: Python sets sys.stdout to None; the command says so on stderr
    and does no work, instead of an AttributeError traceback."""
    monkeypatch.setattr(sys, "stdout", None)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"pebbles {argv[0]}: error: standard output is closed")


def test_a_closed_standard_output_from_the_shell():
    """The same, from a real shell: stdout closed at the start of the process."""
    done = subprocess.run(f"{shlex.quote(sys.executable)} -m pebbles methods >&-", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("pebbles methods: error: standard output is closed, and the command "
                           "writes its results there; run it with standard output open (e.g. "
                           "> FILE, or > /dev/null to drop them)\n")


def test_a_reader_that_goes_away_is_a_quiet_exit():
    """``pebbles schedule ... | head -1``: status 0 and nothing on stderr (no traceback, no
    "Exception ignored" when the buffer is flushed at exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "pebbles", "schedule", "treeverse", "-n",
                             "200000", "--pebbles", "5"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("# treeverse -n 200000")
    proc.stdout.close()
    err = proc.stderr.read()
    assert (proc.wait(timeout=120), err) == (0, "")


def test_guarded_sends_standard_output_to_the_null_device_after_a_broken_pipe(capsys):
    """In-process: the policy's one line per ending, and a broken pipe leaves stderr open."""
    def broken() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def interrupted() -> int:
        raise KeyboardInterrupt

    def refused() -> int:
        raise pebbles.PebblesValueError("x=1 must be 2")

    assert cli.guarded("prog", broken) == 0 and capsys.readouterr().err == ""
    assert not sys.stderr.closed
    assert cli.guarded("prog", interrupted) == 130
    assert capsys.readouterr().err == "prog: interrupted\n"
    assert cli.guarded("prog", refused) == 2
    assert capsys.readouterr().err == "prog: error: x=1 must be 2\n"
    assert cli.guarded("prog", lambda: int("x"), (ValueError,)) == 2


@pytest.mark.parametrize("argv", [["draw", "treeverse", "-n", "6", "--pebbles", "3"],
                                  ["tradeoff", "-n", "30"]])
def test_a_drawing_given_its_file_runs_with_standard_output_closed(tmp_path, argv):
    """``pebbles draw|tradeoff -o FILE >&-``: the file is the result; the "wrote" line is
    dropped, the exit status 0 (no AttributeError from writing to a closed stdout)."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "f.png"
    cmd = " ".join(map(shlex.quote, [sys.executable, "-m", "pebbles", *argv, "-o", str(out)]))
    done = subprocess.run(f"{cmd} >&-", shell=True, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
    assert (done.returncode, done.stderr) == (0, "") and out.stat().st_size > 0

@pytest.mark.parametrize("value", ["inf", "unbounded", "3"])
def test_disk_slots_inf_is_refused_like_a_count_where_the_method_takes_no_disk(capsys, value):
    code, _, err = run(capsys, "schedule", "treeverse", "-n", "100", "--pebbles", "5",
                       "--disk-slots", value, "--format", "summary")
    assert code == 2 and "--disk-slots: not an option of method treeverse" in err


def test_disk_slots_inf_is_the_unbounded_disk_of_a_method_that_takes_one(capsys):
    argv = ["schedule", "two-level", "-n", "30", "--pebbles", "3", "--write-cost", "2",
            "--read-cost", "1", "--format", "summary"]
    code, inf, _ = run(capsys, *argv, "--disk-slots", "inf")
    assert code == 0
    assert json.loads(inf) == json.loads(run(capsys, *argv)[1])  # as if not given


def test_plan_takes_disk_slots_inf_as_a_disk_like_a_count(capsys):
    """plan --disk-slots inf asks for a disk, as --disk-slots 3 does: it needs the costs
    (it was dropped unseen), and with them plans like no --disk-slots at all."""
    argv = ["plan", "-n", "100", "--pebbles", "5"]
    code, _, err = run(capsys, *argv, "--disk-slots", "inf")
    assert code == 2 and "a disk needs --write-cost and --read-cost" in err
    costs = ["--write-cost", "2", "--read-cost", "1"]
    code, out, _ = run(capsys, *argv, *costs, "--disk-slots", "inf")
    assert code == 0 and out == run(capsys, *argv, *costs)[1]


@pytest.mark.parametrize("argv", [["schedule", "treeverse", "-n", "10", "--pebbles", "3",
                                   "--bogus"], ["compare", "-n", "1000", "--budget", "10",
                                                "--inplace"]])
def test_an_unknown_flag_is_the_subcommands_error(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and err == (f"pebbles {argv[0]}: error: unrecognized arguments: "
                                 f"{argv[-1]} (see 'pebbles {argv[0]} --help')\n")


def test_plan_widens_its_method_column_for_long_labels(capsys):
    """Measured costs make long labels: the columns stay aligned under the header."""
    code, out, _ = run(capsys, "plan", "-n", "1000", "--pebbles", "5", "--write-cost",
                       "3.5433849989203736", "--read-cost", "0.16758862511778716")
    assert code == 0
    rows = [line for line in out.splitlines() if not line.startswith(("#", "recommended"))]
    starts = {line.index(" inplace ") if " inplace " in line else line.index(" checkpoint ")
              for line in rows[1:]}
    assert len(starts) == 1 and rows[0].index(" game ") == starts.pop()


def test_a_command_writing_a_file_runs_with_standard_output_closed(monkeypatch, tmp_path):
    """A closed stdout is refused where the results go there; a run_command user given
    a file to write them to (``python -m solvers.lorenz ... --out``) runs."""
    from pebbles.cli import OneLineParser, run_command

    parser = OneLineParser(prog="python -m x")
    parser.add_argument("--out")
    out = tmp_path / "r.txt"
    monkeypatch.setattr(sys, "stdout", None)
    assert run_command(parser, ["--out", str(out)],
                       lambda args: Path(args.out).write_text("done") and "") == 0
    assert out.read_text() == "done"


@pytest.mark.parametrize(("argv", "line"), [
    (["schedule", "treeverse", "-n", "20", "--pebbles", "-3"],
     "--pebbles -3 must be >= 2, the least budget that finishes -n 20; pass --pebbles 2 "
     "or more"),
    (["schedule", "treeverse", "-n", "20", "--pebbles", "-3", "--inplace"],
     "--pebbles -3 must be >= 1, the least budget that finishes -n 20; pass --pebbles 1 "
     "or more"),
    (["schedule", "periodic", "-n", "20", "--every", "5", "--budget", "-1"],
     "--pebbles -1 must be >= 7, the least budget that finishes -n 20 with "
     "method='periodic'; pass --pebbles 7 or more"),
    (["schedule", "treeverse", "-n", "1", "--pebbles", "-1"],  # 0 finishes one step
     "--pebbles -1 must be >= 0; pass --pebbles 0 or more"),
    (["compare", "-n", "20", "--pebbles", "-3"],  # the least any method finishes with
     "--pebbles -3 must be >= 1, the least budget that finishes -n 20; pass --pebbles 1 "
     "or more"),
    (["plan", "-n", "20", "--pebbles", "-3"],
     "--pebbles -3 must be >= 1, the least budget that finishes -n 20; pass --pebbles 1 "
     "or more"),
])
def test_a_negative_pebbles_is_told_the_least_budget_in_flags(capsys, argv, line):
    """argparse refused it with "'-3' must be a whole number >= 0", and 0 was then refused."""
    code, _, err = run(capsys, *argv)
    assert code == 2 and err == f"pebbles {argv[0]}: error: {line}\n"


def test_pebbles_is_still_a_whole_number(capsys):
    code, _, err = run(capsys, "schedule", "treeverse", "-n", "20", "--pebbles", "-1.5")
    assert code == 2 and "argument --pebbles/--budget: '-1.5' is not an integer" in err


def test_run_command_refuses_a_closed_standard_output_where_the_results_go(monkeypatch,
                                                                          capsys):
    """``python -m solvers.lorenz gradient --json >&-``: the one check :func:`main` makes,
    before the run, so that no result is computed and lost."""
    from pebbles.cli import OneLineParser, run_command

    parser = OneLineParser(prog="python -m x")
    parser.add_argument("--json", action="store_true")
    ran = []
    monkeypatch.setattr(sys, "stdout", None)
    assert run_command(parser, ["--json"], lambda args: ran.append(1) or "{}") == 2
    err = capsys.readouterr().err
    assert not ran and err == ("python -m x: error: standard output is closed, and the "
                               "command writes its results there; run it with standard "
                               "output open (e.g. > FILE, or > /dev/null to drop them)\n")


@pytest.mark.parametrize("module", [["solvers.lorenz", "gradient", "--steps", "10"],
                                    ["solvers.pml", "loss", "--nx", "20", "--ny", "20",
                                     "--steps", "5"]])
def test_a_solver_refuses_a_closed_standard_output_from_the_shell(module):
    argv = " ".join(map(shlex.quote, [sys.executable, "-m", *module, "--json"]))
    done = subprocess.run(f"{argv} >&-", shell=True, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stderr == (
        f"python -m {module[0]}: error: standard output is closed, and the command writes "
        f"its results there; run it with standard output open (e.g. > FILE, or > /dev/null "
        f"to drop them)\n")


@pytest.mark.parametrize("path", ["", "\t"])
def test_plan_refuses_an_empty_disk_dir(capsys, monkeypatch, path):
    """``--disk-dir ''`` would measure the working directory: refused before the probe,
    as the solvers refuse it."""
    import pebbles._storage as storage

    monkeypatch.setattr(storage, "measure_io", None)  # never reached
    code, out, err = run(capsys, "plan", "-n", "100", "--pebbles", "5", "--disk-dir", path,
                         "--state-bytes", "1KB", "--step-seconds", "0.001")
    assert code == 2 and not out and err == (
        f"pebbles plan: error: --disk-dir {path!r} is an empty path; name the directory to "
        f"measure, e.g. --disk-dir /tmp, or give --write-cost and --read-cost instead\n")


def test_summary_says_on_stderr_that_it_plays_a_long_stream(capsys, monkeypatch):
    """``--format summary`` of many moves (checked as they stream) says so in one line on
    stderr, as ``plan`` does for its long solves; a short one says nothing."""
    argv = ["schedule", "online", "-n", "100", "--pebbles", "5", "--format", "summary"]
    code, out, err = run(capsys, *argv)
    assert code == 0 and err == ""
    monkeypatch.setattr(cli, "SUMMARY_NOTICE_MOVES", 100)
    code, out2, err = run(capsys, *argv)
    assert code == 0 and out2 == out
    assert err == "# playing at least 481 moves of online -n 100 to check them (10 s or more)\n"
    code, _, err = run(capsys, "schedule", "treeverse", "-n", "100", "--pebbles", "5",
                       "--format", "summary")
    assert code == 0 and err.startswith("# playing 298 moves of treeverse -n 100 ")


def test_summary_gives_no_notice_for_a_stream_it_refuses(capsys, monkeypatch):
    for name, value in (("SUMMARY_NOTICE_MOVES", 10), ("ENCODE_MAX_MOVES", 10),
                        ("SUMMARY_MAX_MOVES", 100)):
        monkeypatch.setattr(cli, name, value)
    code, _, err = run(capsys, "schedule", "treeverse", "-n", "100", "--pebbles", "5",
                       "--format", "summary")
    assert code == 2 and err.startswith("pebbles schedule: error: --format summary plays")


def test_plan_gives_no_solving_notice_where_it_skips_the_two_level_table(capsys):
    """n = 2^62 with 10 states: the planner skips the table (too large), so no "solving"
    line; n = 10^5 + 1 with 20 states solves it, and says so."""
    code, out, err = run(capsys, "plan", "-n", str(2**62), "--pebbles", "10",
                         "--write-cost", "2", "--read-cost", "2")
    assert code == 0 and "; two-level (n=" in out and err == ""
    assert cli._two_level_notice(argparse.Namespace(n=10**5 + 1, budget=20, memory=None,
                                                    state_bytes=None))


def test_unrepeated_drops_the_unit_of_a_single_dash_flag():
    assert cli._unrepeated("finishes -n 20 steps; pass", ["-n"]) == "finishes -n 20; pass"
    assert cli._unrepeated("--steps 20 steps", ["--steps"]) == "--steps 20"


def test_write_error_leaves_a_dangling_link_as_it_was(tmp_path):
    """The probe created the link's target and then removed the link."""
    link = tmp_path / "link.png"
    link.symlink_to("target.png")
    assert cli.write_error(link) is None
    assert link.is_symlink() and os.readlink(link) == "target.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png"]
    (tmp_path / "kept.png").write_bytes(b"old")
    assert cli.write_error(tmp_path / "kept.png") is None
    assert (tmp_path / "kept.png").read_bytes() == b"old"
    assert cli.write_error(tmp_path) == "Is a directory"


def test_output_error_is_the_one_output_check(tmp_path):
    """Each reason of the command lines' one output-file check, and probe=False leaving an
    unwritable file to the caller's own open()."""
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir.npz").mkdir()
    reasons = {
        " ": "is an empty path; name a file, e.g. out.npz",
        f"{tmp_path}/x.npz/": "ends with a separator",
        f"{tmp_path}/adir.npz": f"is a directory; name a file inside it, e.g. "
                                f"'{tmp_path}/adir.npz/out.npz'",
        f"{tmp_path}/missing/x.npz": f"lies in directory '{tmp_path}/missing', which does "
                                     f"not exist",
        f"{tmp_path}/afile/a/x.npz": f"lies under '{tmp_path}/afile', which is a file",
        f"{tmp_path}/{'a' * 300}.npz": "cannot be written (File name too long)",
    }
    for path, words in reasons.items():
        reason = cli.output_error(path, "out.npz")
        assert reason is not None and reason.startswith(words), (path, reason)
    assert cli.output_error(f"{tmp_path}/new.npz", "out.npz") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.npz", "afile"]  # probe gone
    if os.geteuid() != 0:  # root writes through permission bits
        (tmp_path / "ro").mkdir(mode=0o500)
        assert cli.output_error(f"{tmp_path}/ro/x.npz", "out.npz").startswith(
            "cannot be written (Permission denied)")
        assert cli.output_error(f"{tmp_path}/ro/x.npz", "out.npz", probe=False) is None
    assert cli.output_error("/proc/x.npz", "out.npz").startswith("cannot be written (")
    assert cli.output_error("/proc/x.npz", "out.npz", probe=False) is None


def test_a_command_that_cannot_be_loaded_is_left_out_with_a_warning(capsys, monkeypatch):
    """A visualize.py in the working directory hid the draw command without a word."""
    from importlib import metadata

    eps = [metadata.EntryPoint("hidden", "no_such_module_zz.cli:X", "pebbles.commands"),
           metadata.EntryPoint("odd", "pebbles.cli:MAX_INT", "pebbles.commands")]
    monkeypatch.setattr(cli.metadata, "entry_points", lambda group: eps)
    assert cli._plugins() == []
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("pebbles: warning: command 'hidden' (no_such_module_zz.cli:X) "
                             "cannot be imported (No module named 'no_such_module_zz')")
    assert err[0].endswith("a file or folder named 'no_such_module_zz' in the working "
                           "directory or on PYTHONPATH may hide the installed package")
    assert err[1].startswith("pebbles: warning: command 'odd' (pebbles.cli:MAX_INT) is of type "
                             "int, not a pebbles.cli.Command")


@pytest.mark.parametrize("command", ["pebbles", "pml"])
def test_backward_cost_without_background_writes_names_the_switch(command, capsys):
    """The registry's ``background_writes=True`` reads as the switch ``--background-writes``
    (no value) in both command lines that take ``--backward-cost``."""
    flags = ["--method", "two-level", "--pebbles", "4", "--write-cost", "2", "--read-cost",
             "1", "--backward-cost", "2.5"]
    if command == "pebbles":
        code, _, err = run(capsys, "schedule", "two-level", "-n", "40", *flags[2:])
    else:
        from solvers import pml

        code = pml.main(["gradient", "--nx", "8", "--ny", "8", "--steps", "40", *flags])
        err = capsys.readouterr().err
    assert code == 2
    assert err.rstrip().endswith("--backward-cost 2.5 changes only the schedule of "
                                 "--background-writes (every schedule runs the same n "
                                 "backward steps); leave it out or pass --background-writes")
