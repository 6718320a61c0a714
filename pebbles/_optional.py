"""Optional packages: import them where needed, or say which extra brings them."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

__all__ = ["missing_extra", "require"]


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise ImportError naming the ``pip install`` that brings it.

    Examples
    --------
    >>> from pebbles._optional import require
    >>> require("no_such_module_here", "search", "brute_force")
    Traceback (most recent call last):
    ...
    ImportError: brute_force needs no_such_module_here: pip install "pebble-games[search]"
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(module, extra, purpose) from None


def missing_extra(packages: str | Sequence[str], extras: str | Sequence[str],
                  purpose: str) -> ImportError:
    """The ImportError that says ``purpose`` needs ``packages`` and which ``pip install``
    of the extras brings them: the one wording of every missing optional package.

    Examples
    --------
    >>> from pebbles.cli import missing_extra
    >>> print(missing_extra(["matplotlib", "Numba"], ["plot", "solvers"], "lorenz-fig3"))
    lorenz-fig3 needs matplotlib and Numba: pip install "pebble-games[plot,solvers]"
    """
    names = [packages] if isinstance(packages, str) else list(packages)
    wanted = [extras] if isinstance(extras, str) else list(extras)
    return ImportError(f'{purpose} needs {" and ".join(names)}: pip install '
                       f'"pebble-games[{",".join(wanted)}]"')
