"""Example simulations differentiated with :mod:`pebbles` (Liu & Xu,
"Automatic differentiation in physics simulation", section 4).

* :mod:`solvers.lorenz` -- the Lorenz experiment of section 4.1 (RK4, forward
  mode, reverse mode through checkpoint schedules, adjoint-state method).
* :mod:`solvers.pml` -- the PML wave experiment of section 4.2 (Numba forward,
  in-place and adjoint kernels; gradients w.r.t. c, the source and s_0).
* :mod:`solvers.experiments` -- the experiments behind Figures 3 and 4 and the
  PML images (the data :mod:`visualize` draws).
* :mod:`solvers.gpu` -- GPU executors (CuPy memory, numba.cuda kernels): PML
  gradient and batched Lorenz forward/reverse mode; see docs/gpu.md.

Submodules are not imported here, so ``import solvers`` does not load Numba.
"""

import sys
from importlib.util import find_spec

#: The modules whose command line answers ``--help`` (and usage errors) without Numba:
#: they define their parser before they import it (see :func:`_refuse_without_numba`).
_PARSE_WITHOUT_NUMBA = ("solvers.lorenz", "solvers.pml")


def _need() -> str:
    """The line naming the install that brings Numba, in the library's wording (made only
    where Numba is missing: ``import solvers`` does not load ``pebbles.cli``)."""
    from pebbles.cli import missing_extra

    return str(missing_extra("Numba", "solvers", "the solvers package"))


def _refuse_without_numba(_args: object) -> str:
    """The ``run`` of :func:`pebbles.cli.run_command` for ``python -m solvers.lorenz`` or
    ``solvers.pml`` without Numba: the arguments parsed, any command needs Numba (its
    ImportError becomes one line naming the install, status 2)."""
    raise ImportError(_need())


if find_spec("numba") is None:  # checked without importing it
    # python -m solvers.X imports this package first, while sys.argv[0] is "-m": answer as
    # its command line does (one line, status 2), not with a traceback
    _RUN = sys.orig_argv[sys.orig_argv.index("-m") + 1] if sys.argv[:1] == ["-m"] \
        and "-m" in sys.orig_argv[:-1] else None
    if _RUN in _PARSE_WITHOUT_NUMBA:
        pass  # its parser answers --help; a command ends in _refuse_without_numba
    elif _RUN is not None and _RUN.startswith("solvers"):
        sys.stderr.write(f"python -m {_RUN}: error: {_need()}\n")
        raise SystemExit(2)
    else:
        raise ImportError(_need())
