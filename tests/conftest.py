"""Test-session setup: run the numba.cuda kernels under Numba's CUDA simulator without a GPU.

The GPU executors (:mod:`solvers.gpu`, Liu & Xu sections 4.1 and 4.2) are
``numba.cuda`` kernels. On a machine without a CUDA GPU (CI) they run under
Numba's CUDA simulator, which must be switched on before ``numba`` reads its
configuration, so it happens here, before any test module is imported. The
GPU is detected without importing ``numba.cuda``: cupy installed and at least
one device. A ``NUMBA_ENABLE_CUDASIM`` already set by the user is kept. The
simulator only affects ``numba.cuda``; CPU ``@njit`` code is unchanged.
"""

from __future__ import annotations

import os
import sys


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


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _real_gpu():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    if "numba" in sys.modules and "numba.cuda" not in sys.modules:
        from numba.core import config

        config.reload_config()
