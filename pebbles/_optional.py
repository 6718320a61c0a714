"""Optional packages: import them where needed, or say which extra brings them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


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
        raise ImportError(
            f'{purpose} needs {module}: pip install "pebble-games[{extra}]"') from None
