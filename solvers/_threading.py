"""Numba's threading layer for the solvers' parallel kernels: Intel TBB when installed.

Why: users run several gradients side by side (one per seismic shot), so the kernels
must not collapse when another process takes a core. Numba's OpenMP layer splits a
``prange`` loop into one fixed block per thread and its threads spin at the closing
barrier: when a competing process takes a core, each kernel waits for the descheduled
thread's whole block. TBB hands out the iterations dynamically (work stealing), so the
running thread takes over the rest. Measured on a 2-core VM with one competing busy
process (``python benchmarks/bench_pml.py --loaded``, PML gradient with Treeverse
S = 20, medians of 4 and of 6 fresh processes in two runs), loaded against quiet
seconds:

=====================  ==================  ==================
grid x steps           TBB                 OpenMP + chooser
=====================  ==================  ==================
150 x 150 x 1000       0.42 / 0.29 (1.46)  0.59 / 0.30 (1.96)
                       0.42 / 0.28 (1.51)  0.59 / 0.28 (2.09)
1000 x 1000 x 100      2.05 / 1.03 (2.00)  2.77 / 1.06 (2.62)
                       1.83 / 1.12 (1.64)  2.71 / 1.03 (2.64)
=====================  ==================  ==================

pip's ``tbb`` wheel (installed by the ``solvers`` extra on Linux x86-64) puts
``libtbb.so.12`` in ``<prefix>/lib``, which a virtual environment does not put on the
loader's path, so Numba would not find it; :func:`load_tbb` loads it from there first.
Numba picks TBB by itself once it can load it (its default order is TBB, OpenMP,
workqueue); ``NUMBA_THREADING_LAYER`` still decides when set.
"""

from __future__ import annotations

import ctypes
import sys
from importlib import metadata
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

__all__ = ["load_tbb", "threading_layer"]

_LIBTBB = "libtbb.so.12"


def load_tbb() -> bool:
    """Load the ``tbb`` wheel's library for Numba, if there is one; True if loaded.

    Only on Linux (elsewhere the library is found, or not, by the system's own
    rules). Has no effect once Numba has started its threads.
    """
    if not sys.platform.startswith("linux"):
        return False
    for path in _tbb_paths():
        if path.is_file():
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                return False
            return True
    return False


def _tbb_paths() -> list[Path]:
    """Where the ``tbb`` wheel may have put its library: the files pip recorded for it
    (any install scheme: a virtual environment, ``--user``, ``/usr/local``), then the
    interpreter's prefixes."""
    try:
        files = metadata.files("tbb") or []
    except metadata.PackageNotFoundError:
        files = []
    recorded = [Path(str(f.locate())) for f in files if f.name == _LIBTBB]
    return recorded + [Path(prefix, "lib", _LIBTBB)
                       for prefix in dict.fromkeys((sys.prefix, sys.base_prefix))]


@njit(cache=True, parallel=True)
def _touch(a):  # pragma: no cover - compiled
    for i in prange(a.shape[0]):
        a[i] = i


def threading_layer() -> str:
    """The threading layer Numba's parallel kernels run on (``"tbb"``, ``"omp"`` or
    ``"workqueue"``), starting Numba's threads if no parallel kernel has run yet."""
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run: run one
        _touch(np.empty(2, dtype=np.int64))
        return numba.threading_layer()


load_tbb()
