"""The ``pebbles`` command line: formats, summaries from the simulator, error paths."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pebbles
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


def test_plan_recommends_cheapest(capsys):
    code, out, _ = run(capsys, "plan", "-n", "10000", "--memory", "2GB",
                       "--state-bytes", "32MB", "--backward-cost", "3")
    assert code == 0
    # 2GB / 32MB = 62 states; the executor's own 4 (s_0, s_n, two gradients) leave 58
    assert "budget=58 states" in out
    assert out.splitlines()[-1] == (
        "recommended: pebbles schedule treeverse -n 10000 --budget 58 --inplace")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["schedule", "treeverse", "-n", "0", "--pebbles", "3"], "'0' must be"),
        (["schedule", "treeverse", "-n", "20", "--pebbles", "1"], "budget=2 or more"),
        (["schedule", "treeverse", "-n", "20"], "needs --pebbles"),
        (["schedule", "bennett", "-n", "8", "--k", "1"], "k=1"),
        (["schedule", "reversible-optimal", "-n", "16", "--pebbles", "4"], "budget=5"),
        (["schedule", "treeverse-paper", "-n", "20", "--delta", "3", "--tau", "1"], "tau=3"),
        (["schedule", "periodic", "-n", "20"], "needs --every"),
        (["schedule", "nosuch", "-n", "20"], "invalid choice"),
        (["schedule", "treeverse", "-n", "x"], "not an integer"),
        (["compare", "-n", "20", "--pebbles", "1"], "budget=2"),
        (["plan", "-n", "100"], "needs a budget"),
        (["plan", "-n", "100", "--memory", "2XB", "--state-bytes", "1MB"], "not a size"),
        (["plan", "-n", "100", "--memory", "1MB", "--state-bytes", "1MB"], "holds 1 states"),
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


def test_console_entry_point_runs_without_heavy_imports():
    code = ("import sys, pebbles.cli; "
            "print(sorted(m for m in ('numba', 'matplotlib', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    res = subprocess.run([sys.executable, "-m", "pebbles", "--help"], capture_output=True,
                         text=True)
    assert res.returncode == 0 and "examples:" in res.stdout
