"""A missing optional package: one line naming the pip install that brings it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pebbles

ROOT = Path(__file__).resolve().parents[1]


def _without(module: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``python *args`` in the project root as if ``module`` (names separated by
    commas) were not installed."""
    hide = "".join(f"sys.modules[{m!r}] = None\n" for m in module.split(","))
    (tmp_path / "sitecustomize.py").write_text(f"import sys\n{hide}")
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("module, command", [("solvers.lorenz", "gradient"),
                                             ("solvers.pml", "gradient"),
                                             ("solvers.experiments", "--help")])
def test_a_solver_command_line_without_numba_answers_in_one_line(module, command, tmp_path):
    r = _without("numba", tmp_path, "-m", module, command)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (f'python -m {module}: error: the solvers package needs Numba: pip install '
                        f'"pebble-games[solvers]"\n')
    r = _without("numba", tmp_path, "-c", f"import {module}")
    assert r.returncode == 1 and r.stderr.splitlines()[-1] == (
        'ImportError: the solvers package needs Numba: pip install "pebble-games[solvers]"')


@pytest.mark.parametrize("hidden, command, extras, needs", [
    ("numba,matplotlib", "lorenz-fig4", "plot,solvers", "matplotlib and Numba"),
    ("numba", "pml", "solvers", "Numba"),
    ("matplotlib", "lorenz-fig3", "plot", "matplotlib"),
    ("numba,matplotlib", "fig5", "plot", "matplotlib"),
])
def test_visualize_names_every_extra_a_figure_lacks_in_one_line(hidden, command, extras,
                                                                 needs, tmp_path):
    argv = ["-m", "visualize", command, *(["r.json"] if command == "fig5" else []),
            "-o", str(tmp_path / "f.png")]
    r = _without(hidden, tmp_path, *argv)
    assert r.returncode == 2 and r.stderr == (
        f'python -m visualize: error: {command} needs {needs}: pip install '
        f'"pebble-games[{extras}]"\n')


def test_drawing_functions_without_matplotlib_name_the_extra(tmp_path):
    code = ("import pebbles, visualize\nassert visualize.trace_rows  # no drawing: no matplotlib"
            "\ntry:\n    visualize.draw_game(pebbles.treeverse(10, 3), 10)\n"
            "except ImportError as e:\n    print(e)")
    r = _without("matplotlib", tmp_path, "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'drawing needs matplotlib: pip install "pebble-games[plot]"\n'


def test_hetero_brute_force_without_networkx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "networkx", None)
    costs = pebbles.ChainCosts(np.ones(3), np.ones(3), np.ones(4))
    with pytest.raises(ImportError, match=r'^hetero_brute_force needs networkx: pip install '
                                          r'"pebble-games\[search\]"$'):
        pebbles.hetero_brute_force(costs, 3)


@pytest.mark.parametrize("module, extra", [("torch", "torch"), ("jax", "jax")])
def test_an_adapter_without_its_package_is_one_error_without_the_import_traceback(
        module, extra, tmp_path):
    """``import pebbles.torch`` without torch: the ImportError naming the pip install
    alone, not torch's ModuleNotFoundError chained before it."""
    r = _without(module, tmp_path, "-c", f"import pebbles.{module}")
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == (f'ImportError: pebbles.{module} needs {module}: pip '
                                         f'install "pebble-games[{extra}]"')
    assert "ModuleNotFoundError" not in r.stderr and "direct cause" not in r.stderr


@pytest.mark.parametrize("script, package, extra", [
    ("jax_lorenz", "JAX", "jax"), ("jax_while_lorenz", "JAX", "jax"),
    ("torch_mlp", "PyTorch", "torch"), ("torch_neural_ode", "PyTorch", "torch"),
    ("torch_while_lorenz", "PyTorch", "torch")])
def test_an_adapter_example_without_its_package_says_so_in_one_line(script, package, extra,
                                                                     tmp_path):
    r = _without(extra, tmp_path, f"examples/{script}.py", "--help")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (f'error: examples/{script}.py needs {package}: pip install '
                        f'"pebble-games[{extra}]"\n')


def test_the_progress_bar_without_tqdm_warns_once_naming_the_extra(tmp_path):
    code = ("import warnings, numpy as np, pebbles\n"
            "warnings.simplefilter('always')\n"
            "for _ in range(2):\n"
            "    pebbles.replay(pebbles.store_all(3), 3, np.ones(1), lambda i, s: 2 * s,\n"
            "                   lambda i, s, g: (2 * g, None), np.ones_like, progress=True)\n")
    r = _without("tqdm", tmp_path, "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("RuntimeWarning: progress=True needs tqdm: pip install "
                          '"pebble-games[progress]"; running without a progress bar') == 1


def test_the_package_is_marked_typed_and_ships_the_marker():
    """PEP 561: ``pebbles/py.typed`` exists and the wheel's package data names it, so
    type checkers read the public API's hints from an installed copy."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in config["package-data"]["pebbles"]
    assert (Path(pebbles.__file__).parent / "py.typed").is_file()
