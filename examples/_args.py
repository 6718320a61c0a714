"""Command-line helpers of the figure scripts in ``examples/``: the output file checked
before anything is computed, ``--dpi``, and the library's refusal of a flag's value as a
usage error (exit status 2) that names the flag."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

try:
    import visualize
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import visualize
from pebbles import PebblesTypeError, PebblesValueError
from visualize.cli import check_output, dpi, matplotlib_required

__all__ = ["add_dpi", "flag_errors", "output", "require", "visualize"]


def add_dpi(p: argparse.ArgumentParser, default: int = 100) -> None:
    """``--dpi N`` (or ``--dpi=N``): the raster resolution, checked by ``visualize.cli.dpi``."""
    p.add_argument("--dpi", type=dpi, default=default,
                   help=f"raster resolution in dots per inch (default {default})")


def output(p: argparse.ArgumentParser, path: str) -> Path:
    """``path`` checked as an image file to write (``visualize.cli.check_output``: a known
    extension, an existing directory, writable); a refusal is ``p.error`` naming OUTPUT."""
    with flag_errors(p, "OUTPUT"):
        return check_output(path)


@contextlib.contextmanager
def flag_errors(p: argparse.ArgumentParser, flag: str) -> Iterator[None]:
    """Turn the library's refusal of the value given with ``flag`` into ``p.error``."""
    try:
        yield
    except (PebblesValueError, PebblesTypeError) as exc:
        p.error(f"argument {flag}: {str(exc).removeprefix('-o ')}")


def require(script: str, solvers: bool = False) -> None:
    """Exit at once (status 2), naming every extra ``script`` lacks and its ``pip
    install``, where matplotlib (and, with ``solvers``, Numba) is missing: before any
    computing, rather than a traceback after it."""
    try:
        matplotlib_required(script, solvers=solvers)
    except ImportError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
