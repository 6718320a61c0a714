"""Optional packages: import them where needed, or say which extra brings them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["missing", "require"]


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
        raise missing(module, extra, purpose) from None


def missing(module: str, extra: str, purpose: str) -> ImportError:
    """The ImportError that says ``purpose`` needs ``module`` and which extra brings it."""
    return ImportError(f'{purpose} needs {module}: pip install "pebble-games[{extra}]"')
