"""Memory available to a run, and the memory a lowered schedule takes, for the solvers'
checks before they allocate anything."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import pebbles

__all__ = ["LOWERING_BYTES_PER_CELL", "LOWERING_BYTES_PER_MOVE", "available_memory",
           "program_bytes", "release_freed_memory", "schedule_moves"]


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


#: Bytes a move costs while :func:`pebbles.lower` lowers a stream: its encoded row (three
#: int64), the copies of that row's fields the rule loop plays (three int64) and its row
#: of the program (five int64, a row of ``SlotProgram.ops``; the program keeps the whole
#: row buffer). The stream's short-lived temporaries add up to 15% at the peak
#: (tracemalloc, treeverse to bennett-gradient at n = 1e4).
LOWERING_BYTES_PER_MOVE = (3 + 3 + 5) * 8
#: Bytes a cell costs while lowering: the cell-to-slot map and the free-slot list (int64).
LOWERING_BYTES_PER_CELL = 2 * 8


def program_bytes(moves: int, n: int) -> int:
    """Bytes the lowering of a stream of ``moves`` moves for ``n`` steps holds at its peak
    (:data:`LOWERING_BYTES_PER_MOVE` a move, :data:`LOWERING_BYTES_PER_CELL` a cell).

    Examples
    --------
    >>> from solvers._memory import program_bytes
    >>> program_bytes(3, 1)
    280
    """
    return LOWERING_BYTES_PER_MOVE * moves + LOWERING_BYTES_PER_CELL * n


def schedule_moves(s: pebbles.Schedule) -> int:
    """Moves of the stream of ``s``, found without playing it: at most
    :func:`pebbles.most_moves` (exact for a method with a formula for its moves, such as
    the gradient methods the solvers run), else the larger of ``3 n`` (the walk, paint
    and remove of each cell) and :func:`pebbles.fewest_moves` (online: about ``5 n``,
    within 1% in the checkpoint game). Two-level streams, whose length has no formula,
    and treeverse-paper's where its steps take too long to count, make more (two-level
    about ``3 n`` to ``6 n``): the estimate is then low.

    Examples
    --------
    >>> import pebbles
    >>> from solvers._memory import schedule_moves
    >>> schedule_moves(pebbles.schedule("bennett-gradient", 100, k=2)) == len(
    ...     pebbles.schedule("bennett-gradient", 100, k=2).encode())
    True
    >>> s = pebbles.schedule("online", 1000, budget=10)
    >>> schedule_moves(s), len(s.encode())
    (4966, 4976)
    """
    most = pebbles.most_moves(s)
    return max(3 * s.n, pebbles.fewest_moves(s)) if most is None else most
