"""Command-line plumbing shared by ``python -m solvers.lorenz``, ``python -m solvers.pml``
and ``python -m visualize``: bad input is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["OneLineParser", "run_command"]


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                run: Callable[[argparse.Namespace], str],
                errors: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError),
                ) -> int:
    """Parse ``argv``, print ``run(args)``; return the exit status.

    An exception in ``errors`` becomes ``PROG: error: MESSAGE`` (one line) on
    stderr and status 2; ``--help`` and parse errors return argparse's status.
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        text = run(args)
    except errors as err:
        line = " ".join(str(err).split())
        print(f"{parser.prog}: error: {line}", file=sys.stderr)
        return 2
    print(text)
    return 0
