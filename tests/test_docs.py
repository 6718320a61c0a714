"""Every ```python block of README.md and docs/*.md runs, and the results its comments
state hold.

Each block runs on its own, in a fresh namespace, with ``tmp_path`` as the working
directory. A top-level line that ends in a
*result comment*, ``# 60``, ``# (3,): ...``, ``# True: ...`` (a Python literal, then the
end of the comment or a colon), is checked as the block runs: an expression line's
value, or the name an assignment binds, must equal the literal. A block that uses
``solvers.gpu`` or CuPy is skipped only where no CUDA GPU is present, as in
tests/test_gpu.py. Test ids are ``<file>-block<k>``, k counting the file's python
blocks from 1.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import io
import os
import re
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
RESULT = re.compile(r"#\s*(\(.*?\)|True|False|None|[-+]?\d[\d_]*(?:\.\d+)?(?:e[-+]?\d+)?)"
                    r"\s*(?::|$)")
NEEDS_GPU = re.compile(r"\bcupy\b|solvers\.gpu\b|from solvers import .*\bgpu\b")
NO_GPU = "no CUDA GPU (cupy not installed or no device)"


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """The ```python blocks of ``path``: (line of the block's first code line, code)."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = [(path, k, line, code) for path in DOCS
          for k, (line, code) in enumerate(python_blocks(path), 1)]


def result_comments(code: str) -> dict[int, object]:
    """Line (1-based, in ``code``) -> the value its trailing result comment states."""
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        m = RESULT.match(tok.string) if tok.type == tokenize.COMMENT else None
        if m:
            found[tok.start[0]] = ast.literal_eval(m.group(1).replace("_", ""))
    return found


def _check_call(index: int, value: ast.expr) -> ast.stmt:
    call = ast.Call(ast.Name("__doc_check__", ast.Load()), [ast.Constant(index), value], [])
    return ast.Expr(call)


def instrument(code: str, expected: dict[int, object]) -> tuple[ast.Module, list[int]]:
    """``code`` with a ``__doc_check__(k, value)`` call for each checked top-level line;
    also the lines checked, in order (index k)."""
    tree, body, lines = ast.parse(code), [], []
    for stmt in tree.body:
        line = stmt.end_lineno
        name = (stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) else None)
        if line in expected and isinstance(stmt, ast.Expr):
            body.append(ast.copy_location(_check_call(len(lines), stmt.value), stmt))
            lines.append(line)
        elif line in expected and name is not None:
            body += [stmt, ast.copy_location(
                _check_call(len(lines), ast.Name(name.id, ast.Load())), stmt)]
            lines.append(line)
        else:
            body.append(stmt)
    tree.body = body
    return ast.fix_missing_locations(tree), lines


def _cuda_gpu() -> bool:
    """True when cupy sees a CUDA device (``solvers.gpu.gpu_available``, as tests/test_gpu.py
    decides); without cupy installed, False at once, before Numba is imported."""
    if importlib.util.find_spec("cupy") is None:
        return False
    from solvers import gpu

    return gpu.gpu_available()


def _jax_x64() -> bool | None:
    jax = sys.modules.get("jax")
    return None if jax is None else bool(jax.config.jax_enable_x64)


@pytest.fixture()
def doc_env(tmp_path, monkeypatch):
    """Run in ``tmp_path`` with one torch thread (the examples' tensors are tiny: on a busy
    2-core machine more threads only wait for each other); put back torch's thread count
    and JAX's x64 flag that a block may switch on."""
    monkeypatch.chdir(tmp_path)
    x64 = _jax_x64()
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    yield
    if threads is not None:
        torch.set_num_threads(threads)
    if "jax" in sys.modules:
        default = os.environ.get("JAX_ENABLE_X64", "").lower() in {"1", "true", "yes", "on"}
        sys.modules["jax"].config.update("jax_enable_x64", default if x64 is None else x64)


@pytest.mark.parametrize(("path", "line", "code"),
                         [(p, line, code) for p, _, line, code in BLOCKS],
                         ids=[f"{p.name}-block{k}" for p, k, _, _ in BLOCKS])
def test_doc_block_runs_and_its_comments_hold(path, line, code, request):
    if NEEDS_GPU.search(code) and not _cuda_gpu():
        pytest.skip(f"{path.name}:{line}: needs a GPU: {NO_GPU}")
    if "torch" in code:
        import torch  # noqa: F401 -- loaded before doc_env, which sets its threads
    request.getfixturevalue("doc_env")
    expected = result_comments(code)
    tree, lines = instrument(code, expected)
    ast.increment_lineno(tree, line - 1)
    seen = []

    def check(k: int, value: object) -> None:
        where = f"{path.name}:{line + lines[k] - 1}"
        assert value == expected[lines[k]], f"{where}: got {value!r}, the doc says " \
                                             f"{expected[lines[k]]!r}"
        seen.append(k)

    exec(compile(tree, str(path), "exec"), {"__name__": "__doc__", "__doc_check__": check})  # noqa: S102
    assert seen == list(range(len(lines))), f"{path.name}: result lines not reached"
    assert sorted(lines) == sorted(expected), f"{path.name}: a result comment is not on a " \
                                              f"top-level expression or assignment"


def test_every_doc_with_code_is_collected():
    names = {p.name for p, *_ in BLOCKS}
    assert {"README.md", "errors.md", "gpu.md", "jax.md", "online.md", "torch.md"} <= names
    assert len(BLOCKS) >= 9


def test_result_comments_are_parsed_and_checked():
    code = ("a = 2 * 3  # 6\nb = 5  # 5 apples, not a result\n"
            "a + 1  # 7: a result\n(a, 1)  # (6, 1)\n")
    expected = result_comments(code)
    assert expected == {1: 6, 3: 7, 4: (6, 1)}
    tree, lines = instrument(code, expected)
    got = []
    exec(compile(tree, "t", "exec"), {"__doc_check__": lambda k, v: got.append((lines[k], v))})  # noqa: S102
    assert got == [(1, 6), (3, 7), (4, (6, 1))]


def _api_index() -> dict[str, set[str]]:
    """The names docs/api.md lists, by module (``- `pebbles.NAME`: ...`` lines)."""
    found: dict[str, set[str]] = {}
    for m in re.finditer(r"^- `(pebbles(?:\.jax|\.torch|\.cli)?)\.(\w+)`: \S",
                         (ROOT / "docs" / "api.md").read_text(), re.M):
        found.setdefault(m.group(1), set()).add(m.group(2))
    return found


@pytest.mark.parametrize("module", ["pebbles", "pebbles.jax", "pebbles.torch", "pebbles.cli"])
def test_api_index_names_every_public_name_and_nothing_else(module):
    """docs/api.md lists exactly ``__all__`` of the core, of each adapter and of the
    command-line helpers."""
    if module in ("pebbles.jax", "pebbles.torch"):
        pytest.importorskip(module.split(".")[1])
    names = set(importlib.import_module(module).__all__)
    listed = _api_index().get(module, set())
    assert not names - listed, f"public names missing from docs/api.md: {names - listed}"
    assert not listed - names, f"docs/api.md lists names {module} does not export: " \
                               f"{listed - names}"
