"""The scripts of ``examples/`` behave as the ``pebbles`` command does (``examples/_args.py``,
``guarded``): a bad number is exit status 2 and one line naming the flag; Ctrl-C is one
line ``SCRIPT: interrupted``, status 130 and no output file; a reader of standard output
that goes away (``| head -1``) is a quiet exit 0, every file still written.

The scripts run in-process through their ``main(argv)`` where that is cheap; the JAX ones
(importing them switches on JAX's x64 mode) and a real closed pipe run in a subprocess.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def example(monkeypatch, tmp_path):
    """``example(name)``: the module ``examples/<name>.py``, run in ``tmp_path``; the
    example modules it imported leave ``sys.modules`` afterwards, and torch's thread count
    and JAX's x64 flag, which the scripts set, are put back."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    jax = sys.modules.get("jax")
    x64 = bool(jax.config.jax_enable_x64) if jax is not None else None
    yield importlib.import_module
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(EXAMPLES)):
            del sys.modules[name]
    if threads is not None:
        torch.set_num_threads(threads)
    if "jax" in sys.modules:
        default = os.environ.get("JAX_ENABLE_X64", "").lower() in {"1", "true", "yes", "on"}
        sys.modules["jax"].config.update("jax_enable_x64", default if x64 is None else x64)


def exits(main, argv, capsys, code: int) -> str:
    """``main(argv)`` must exit with ``code``, stderr one line and no traceback; that line."""
    with pytest.raises(SystemExit) as info:
        try:
            main(argv)
        except KeyboardInterrupt:
            pytest.fail("KeyboardInterrupt escaped main: a traceback when run")
    assert info.value.code == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and err.endswith("\n"), err
    return err


def script(name: str, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *argv],
                          capture_output=True, text=True, timeout=120, env=env, **kwargs)


# ---------------------------------------------------------------------------
# bad numbers: exit 2, one line naming the flag and the rule
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "argv", "words"), [
    ("torch_mlp", ["--fraction", "-1"], "argument --fraction: '-1' must be a finite number >= 0"),
    ("torch_mlp", ["--fraction", "nan"], "argument --fraction: 'nan' must be a finite number"),
    ("torch_mlp", ["--batch", "0"], "argument --batch: '0' must be a whole number >= 1"),
    ("torch_mlp", ["--iters", "-1"], "argument --iters: '-1' must be a whole number >= 0"),
    ("torch_while_lorenz", ["--T", "-1"], "argument --T: '-1' must be a finite number > 0"),
    ("torch_while_lorenz", ["--T", "nan"], "argument --T: 'nan' must be a finite number > 0"),
    ("torch_while_lorenz", ["--T", "0"], "argument --T: '0' must be a finite number > 0"),
    ("torch_while_lorenz", ["--budget", "0"], "argument --budget: '0' must be a whole number >= 2"),
    ("torch_while_lorenz", ["--budget", "1"], "argument --budget: '1' must be a whole number >= 2"),
    ("torch_neural_ode", ["--steps", "0"], "argument --steps: '0' must be a whole number >= 1"),
    ("torch_neural_ode", ["--budget", "1"], "argument --budget: '1' must be a whole number >= 2"),
    ("torch_neural_ode", ["--iters", "-1"], "argument --iters: '-1' must be a whole number >= 0"),
    ("torch_neural_ode", ["--kept", "0"], "argument --kept: '0' must be a whole number >= 1"),
])
def test_torch_examples_refuse_bad_numbers(example, capsys, name, argv, words) -> None:
    pytest.importorskip("torch")
    err = exits(example(name).main, argv, capsys, 2)
    assert f": error: {words}" in err, err  # the prog is the script's name when run


@pytest.mark.parametrize("size", ["0", "1", "31"])
def test_pml_figures_size_has_one_minimum(example, capsys, size) -> None:
    """--size below 32 is refused by its type, one rule for every value (it read "a whole
    number >= 1" for 0 and the library's "an integer >= 32" for 1)."""
    pytest.importorskip("numba")
    err = exits(example("pml_figures").main, ["--size", size], capsys, 2)
    assert f": error: argument --size: '{size}' must be a whole number >= 32" in err, err


def test_mlp_names_the_least_fraction(example, capsys) -> None:
    """A limit below what any schedule needs is refused before the runs, naming --fraction
    and the least fraction that works (the library's error spoke of memory= in bytes)."""
    pytest.importorskip("torch")
    mod = example("torch_mlp")
    err = exits(mod.main, ["--batch", "1", "--fraction", "0", "--iters", "0"], capsys, 2)
    assert "argument --fraction: 0 is too small" in err and "use --fraction 0." in err, err
    least = err.split("use --fraction ")[1].split()[0]
    mod.main(["--batch", "1", "--fraction", least, "--iters", "0"])
    assert "memory limit:" in capsys.readouterr().out


def test_neural_ode_too_small_a_memory_names_kept(example, capsys) -> None:
    pytest.importorskip("torch")
    argv = ["--steps", "5", "--budget", "2", "--kept", "1", "--iters", "0"]
    err = exits(example("torch_neural_ode").main, argv, capsys, 2)
    assert "argument --kept: memory=512 bytes cannot finish the loop" in err
    assert "--kept N is a memory of N states of 512 bytes" in err


def test_jax_while_lorenz_refuses_budget_one(tmp_path) -> None:
    pytest.importorskip("jax")
    res = script("jax_while_lorenz", "--budget", "1", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "argument --budget: '1' must be a whole number >= 2" in res.stderr


# ---------------------------------------------------------------------------
# Ctrl-C: one line, status 130, no output file
# ---------------------------------------------------------------------------
def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_tradeoff_interrupted(example, monkeypatch, capsys, tmp_path) -> None:
    mod = example("tradeoff")
    monkeypatch.setattr(mod.visualize, "draw_tradeoff", interrupt)
    assert exits(mod.main, ["tt.png", "--quick"], capsys, 130) == "tradeoff.py: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_lorenz_figure3_interrupted(example, monkeypatch, capsys, tmp_path) -> None:
    pytest.importorskip("numba")
    mod = example("lorenz_figure3")
    monkeypatch.setattr(mod.experiments, "sensitivity_grid", interrupt)
    err = exits(mod.main, ["f3.png", "--resolution", "3"], capsys, 130)
    assert err == "lorenz_figure3.py: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_jax_lorenz_interrupted(example, monkeypatch, capsys) -> None:
    pytest.importorskip("jax")
    mod = example("jax_lorenz")
    monkeypatch.setattr(mod, "lorenz_demo", interrupt)
    assert exits(mod.main, ["--quick"], capsys, 130) == "jax_lorenz.py: interrupted\n"


def test_jax_lorenz_checks_the_gradients_it_prints(example, monkeypatch, capsys) -> None:
    """The script said the gradients were checked and only printed the differences."""
    pytest.importorskip("jax")
    mod = example("jax_lorenz")
    monkeypatch.setattr(mod, "relative", lambda a, b: 1e-3)
    with pytest.raises(SystemExit) as info:
        mod.main(["--quick"])
    assert info.value.code == ("error: the Lorenz gradient vs jax.grad(lax.scan): relative "
                               "difference 1.0e-03, above 1e-10")
    res = script("jax_lorenz", "--quick")
    assert res.returncode == 0 and "vs jax.grad(lax.scan): relative difference" in res.stdout


def test_torch_neural_ode_interrupted(example, monkeypatch, capsys) -> None:
    pytest.importorskip("torch")
    mod = example("torch_neural_ode")
    monkeypatch.setattr(mod, "checkpointed_loop", interrupt)
    assert exits(mod.main, ["--steps", "5"], capsys, 130) == "torch_neural_ode.py: interrupted\n"


# ---------------------------------------------------------------------------
# standard output closed by its reader: quiet exit 0, the run goes on
# ---------------------------------------------------------------------------
class ClosedPipe:
    """Standard output whose reader has gone."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_figure7_writes_every_file_when_nobody_reads(example, monkeypatch, capsys,
                                                     tmp_path) -> None:
    mod = example("draw_figure7")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert mod.main(["d8"]) is None
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in (tmp_path / "d8").iterdir()) == [
        "figure7.png", "figure7a.png", "figure7b.png"]


def test_torch_neural_ode_quiet_when_nobody_reads(example, monkeypatch, capsys) -> None:
    pytest.importorskip("torch")
    mod = example("torch_neural_ode")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    mod.main(["--steps", "5", "--budget", "2", "--iters", "2"])
    assert capsys.readouterr().err == ""


def test_figure7_piped_into_head(tmp_path) -> None:
    """A real pipe closed after the first line (``| head -1``): status 0, nothing on
    stderr, all three files."""
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "draw_figure7.py"), "d8"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().startswith("wrote ")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and err == "", err
    assert sorted(p.name for p in (tmp_path / "d8").iterdir()) == [
        "figure7.png", "figure7a.png", "figure7b.png"]
