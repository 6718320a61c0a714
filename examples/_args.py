"""Command-line helpers of the scripts in ``examples/``: the output file checked before
anything is computed, ``--dpi``, checked numbers, and the library's refusal of a flag's
value as a usage error (exit status 2, one line) that names the flag.

Every script's ``main`` is wrapped in :func:`guarded`, which ends it as the ``pebbles``
command ends (``pebbles.cli.guarded``): Ctrl-C is one line ``SCRIPT: interrupted`` and
exit status 130; a closed pipe on standard output (``... | head -1``) a quiet exit 0; a
failure of the library one line ``SCRIPT: error: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

try:
    import visualize
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import visualize
from pebbles import PebblesTypeError, PebblesValueError
from pebbles.cli import OneLineParser, missing_extra
from pebbles.cli import guarded as cli_guarded
from visualize.cli import check_output, dpi, matplotlib_required

__all__ = ["add_dpi", "agrees", "flag_errors", "guarded", "lacking", "output", "parser",
           "require", "visualize"]

F = TypeVar("F", bound=Callable[..., Any])


def parser(doc: str) -> argparse.ArgumentParser:
    """The script's argument parser, described by the first paragraph of ``doc``: a
    ``pebbles.cli.OneLineParser``, so a bad flag is one line on stderr and exit status 2."""
    return OneLineParser(description=doc.split("\n\n")[0])


def guarded(main: F) -> F:
    """Wrap a script's ``main(argv)`` in ``pebbles.cli.guarded``, the policy of every
    command line of the project: Ctrl-C -> ``SCRIPT: interrupted``, ``SystemExit(130)``;
    a closed pipe on standard output -> a quiet ``SystemExit(0)``; a ``PebblesError`` ->
    ``SCRIPT: error: ...`` (one line), ``SystemExit(2)``; out of memory -> one line,
    ``SystemExit(1)``. Usage errors stay argparse's ``SystemExit(2)``."""
    prog = Path(main.__globals__.get("__file__") or main.__module__).name

    @functools.wraps(main)
    def run(argv: Any = None) -> None:
        def call() -> int:
            status = main(argv)  # None or 0: done
            if sys.stdout is not None:
                sys.stdout.flush()  # a reader gone by now is found here, not at exit
            return int(status or 0)

        status = cli_guarded(prog, call)
        if status:
            raise SystemExit(status)

    return run  # type: ignore[return-value]


def agrees(what: str, err: float, tol: float = 1e-10) -> None:
    """End the script with an error (exit status 1) when the relative difference ``err``
    between a checkpointed gradient and its reference (``what``) is above ``tol``: the
    scripts check what they print."""
    if not err <= tol:
        raise SystemExit(f"error: {what}: relative difference {err:.1e}, above {tol:g}")


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
def flag_errors(p: argparse.ArgumentParser, flag: str, note: str = "") -> Iterator[None]:
    """Turn the library's refusal of the value given with ``flag`` into ``p.error``, one
    line, ``note`` (how the flag maps to the library's argument) after it."""
    try:
        yield
    except (PebblesValueError, PebblesTypeError) as exc:
        line = " ".join(str(exc).removeprefix("-o ").split())
        p.error(f"argument {flag}: {line}" + (f" ({note})" if note else ""))


def require(script: str, solvers: bool = False) -> None:
    """Exit at once (status 2), naming every extra ``script`` lacks and its ``pip
    install``, where matplotlib (and, with ``solvers``, Numba) is missing: before any
    computing, rather than a traceback after it."""
    try:
        matplotlib_required(script, solvers=solvers)
    except ImportError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def lacking(package: str, extra: str, script: str) -> NoReturn:
    """Exit at once (one line, status 1): ``script`` needs ``package``, which the
    ``extra`` brings (the library's wording, :func:`pebbles.cli.missing_extra`)."""
    sys.exit(f"error: {missing_extra(package, extra, script)}")
