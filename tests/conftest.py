"""Test-session setup: run the numba.cuda kernels under Numba's CUDA simulator without a GPU.

The GPU executors (:mod:`solvers.gpu`, Liu & Xu sections 4.1 and 4.2) are
``numba.cuda`` kernels. On a machine without a CUDA GPU (CI) they run under
Numba's CUDA simulator, which must be switched on before ``numba`` reads its
configuration, so it happens here, before any test module is imported. The
GPU is detected without importing ``numba.cuda``: cupy installed and at least
one device. A ``NUMBA_ENABLE_CUDASIM`` already set by the user is kept. The
simulator only affects ``numba.cuda``; CPU ``@njit`` code is unchanged.

XLA compiles the test programs with flags that shorten compiling (see below).
This file also registers the ``bench`` marker and puts it on every test in a
``tests/test_bench_*.py`` file: the smoke tests of the scripts in ``benchmarks/``.
They run by default (CI runs them); ``pytest -m "not bench"`` leaves them out.
The ``read_svg`` fixture tells figure tests what a saved SVG shows (ids of drawn
artists, marker counts, texts); ``load_bench`` imports a script of ``benchmarks/``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from xml.etree import ElementTree

import pytest


def _real_gpu() -> bool:
    """True when cupy is importable and sees at least one CUDA device."""
    try:
        import cupy
    except ImportError:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver: cupy raises CUDARuntimeError
        return False


def _jaxlib_minor() -> tuple[int, ...]:
    """(major, minor) of the installed jaxlib, () when there is none."""
    try:
        return tuple(int(p) for p in version("jaxlib").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return ()


#: XLA flags for the test programs: the JAX tests compile about 60 programs of several
#: seconds each and run them briefly. With the LLVM backend's optimisation off, compiling
#: is a fifth shorter; with XLA:CPU's loop emitters instead of its MLIR fusion emitters
#: too, it is about halved again (jaxlib 0.10: a Lorenz gradient 6.4-7.1 s -> 2.9-3.2 s,
#: the two JAX test files 195 s -> 127 s on two workers). Both sides of every comparison
#: are compiled with the same flags. XLA aborts on a flag it does not know, so the
#: emitter flag is given only to the jaxlib versions it was measured on; flags already
#: in XLA_FLAGS win.
TEST_XLA_FLAGS = {"xla_backend_optimization_level": "0"}
if _jaxlib_minor() == (0, 10):
    TEST_XLA_FLAGS["xla_cpu_use_fusion_emitters"] = "false"
for _flag, _value in TEST_XLA_FLAGS.items():
    if _flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{_flag}={_value}".strip()

if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _real_gpu():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    if "numba" in sys.modules and "numba.cuda" not in sys.modules:
        from numba.core import config

        config.reload_config()


def pytest_configure(config) -> None:
    """Register the ``bench`` marker (tests of the scripts in ``benchmarks/``)."""
    config.addinivalue_line(
        "markers", "bench: smoke tests of the benchmark scripts in benchmarks/ (tiny sizes; "
        "CI runs them; deselect with -m 'not bench')")


#: Test files that run the Numba kernels of :mod:`solvers`.
NUMBA_FILES = frozenset({
    "test_bench_lorenz.py", "test_bench_pml.py", "test_gpu.py", "test_lorenz.py",
    "test_lorenz_online.py", "test_pml.py", "test_visualize_solvers.py"})


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test in a ``tests/test_bench_*.py`` file with ``bench``, and put every
    test that runs the solvers' Numba kernels (and every doc block that imports
    ``solvers``) in one ``xdist_group``: one worker runs them all and compiles each
    kernel once while the others run the rest, instead of two workers compiling the
    same kernels at the same time (the first compilation takes minutes)."""
    for item in items:
        if item.path.name.startswith("test_bench_"):
            item.add_marker(pytest.mark.bench)
        code = getattr(item, "callspec", None) and item.callspec.params.get("code")
        if item.path.name in NUMBA_FILES or (isinstance(code, str) and "solvers" in code):
            item.add_marker(pytest.mark.xdist_group("numba"))


@dataclass(frozen=True, slots=True)
class SvgContent:
    """What a figure saved as SVG shows: the ``gid`` (or matplotlib id) of every group with
    how often it occurs, the texts (matplotlib writes each text as a comment next to its
    glyphs), for every id the number of markers (``<use>`` elements) under each of its
    groups, in document order, and the number of raster images (``<image>``; rasterised
    artists lose their gid)."""

    ids: Counter
    texts: list[str]
    markers: dict[str, list[int]]
    images: int


@pytest.fixture()
def read_svg():
    """A function that parses a saved SVG figure into :class:`SvgContent`."""

    def read(path) -> SvgContent:
        text = Path(path).read_text()
        root = ElementTree.fromstring(text)
        named = [el for el in root.iter() if el.get("id")]
        markers: dict[str, list[int]] = {}
        for el in named:
            uses = sum(1 for child in el.iter() if child.tag.endswith("}use"))
            markers.setdefault(el.get("id"), []).append(uses)
        return SvgContent(Counter(el.get("id") for el in named),
                          re.findall(r"<!-- (.*?) -->", text, flags=re.S), markers,
                          sum(1 for el in root.iter() if el.tag.endswith("}image")))

    return read


BENCHMARKS = str(Path(__file__).resolve().parents[1] / "benchmarks")


@pytest.fixture(scope="session")
def load_bench():
    """``load_bench(name)``: the module ``benchmarks/<name>.py``, imported with
    ``benchmarks/`` on ``sys.path`` for the import only (the scripts import ``_common``)."""
    def load(name: str) -> ModuleType:
        sys.path.insert(0, BENCHMARKS)
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(BENCHMARKS)

    return load


@pytest.fixture(scope="module")
def torch_one_thread():
    """Torch on one intra-op thread for a module (``pytestmark = usefixtures(...)``): the
    tests' tensors are tiny, and threads only add synchronisation (10x slower on 2 busy
    cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
