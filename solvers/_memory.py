"""Memory available to a run, for the solvers' checks before they allocate anything."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["available_memory", "release_freed_memory"]


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Give the memory the C allocator holds in freed blocks back to the system (glibc
    ``malloc_trim(0)``); True if it applied. Not glibc: nothing changes, False.

    glibc serves blocks below 32 MiB from its heap once one such block was freed, and
    keeps what is freed there: temporary arrays of a state's size (a timing probe
    before the run, for instance) would otherwise stay in the process's resident
    memory under the run's own states.
    """
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return False
    return bool(trim is not None and trim(0) == 1)
