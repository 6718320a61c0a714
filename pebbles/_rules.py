"""The rules of the pebble games, as one loop over encoded moves (the simulator's core).

Liu & Xu, "Automatic differentiation in physics simulation", appendix: the
reversible and the checkpoint pebble game; plus this library's in-place game
(Revolve's setting) and the two-level game (memory plus disk; Stumm & Walther
2009, Aupy, Herrmann, Hovland & Robert 2016). :func:`play` is the only code in
the library that decides whether a move is legal. :mod:`pebbles._simulator`
runs it over a stream, :mod:`pebbles._lowering` runs it with slot assignment
switched on.

:func:`play` is written in the subset of Python that Numba compiles: flat
integer and float arrays (or lists and bytearrays, which index the same way in
plain Python), no objects. Run as Python it costs about a microsecond a move;
compiled (when Numba is installed) a few nanoseconds. Both run this source.

Board: ``occ[i]`` is 1 when a memory pebble is on cell i (``occ[0]`` is always
1), ``dsk[i]`` when a disk pebble is; ``occ[n + 1 + i]`` is 1 while the graph of
step i, run by ``tape i+1``, is kept (``occ`` has ``2 n + 2`` entries).
Counters live in ``st`` (indices ``ST_*``).
A move that breaks a rule stops the loop with ``st[ST_CODE]`` set to one of the
``E_*`` codes; :func:`pebbles._simulator.rule_text` turns the code into words and
:data:`RULE_NAMES` into the name :attr:`pebbles.IllegalMoveError.code` carries.
"""

from __future__ import annotations

import numpy as np

__all__ = ["play"]

# game codes
G_CHECKPOINT, G_INPLACE, G_REVERSIBLE = 0, 1, 2
# move kinds (pebbles.MoveKind)
K_PLACE, K_REMOVE, K_PAINT, K_MOVE, K_UNPLACE, K_FORWARD = 0, 1, 2, 3, 4, 5
K_STORE, K_LOAD, K_DISCARD = 6, 7, 8
K_TAPE = 9  # place a, keeping the graph of step a-1 until paint a-1
# slot-program operations (pebbles.OP_*)
OP_STEP, OP_SEED, OP_PAINT, OP_STORE, OP_LOAD, OP_DISCARD, OP_FREE = 0, 1, 2, 3, 4, 5, 6
OP_TAPE = 7  # OP_STEP of one step whose graph is kept for its OP_PAINT
# counters: st[...]
(ST_PAINTED, ST_COUNT, ST_STEPS, ST_PAINTS, ST_PEAK, ST_REACH, ST_DCOUNT, ST_DPEAK,
 ST_WRITES, ST_READS, ST_NFREE, ST_NOPS, ST_SEEDED, ST_INDEX, ST_CODE, ST_REACHED,
 ST_SLOTPEAK, ST_LSTEPS, ST_LPAINTS, ST_TAPED) = range(20)
ST_SIZE = 20
# floats: ft[...]
FT_TIME, FT_BYTES, FT_PEAKBYTES = 0, 1, 2
# rule codes
(E_OK, E_GAME, E_FWD_RANGE, E_FWD_START, E_FWD_OVER, E_CELL, E_PAINT_ORDER, E_PAINT_NONE,
 E_REMOVE_NONE, E_UNPLACE_NONE, E_UNPLACE_PREV, E_OCCUPIED, E_NEED_PREV, E_MOVE_ONE,
 E_BUDGET, E_STORE_NONE, E_STORE_DUP, E_LOAD_NONE, E_LOAD_DUP, E_DISCARD_NONE,
 E_DISK_BUDGET, E_SLOTS, E_GRAPH_HELD, E_GRAPH_NEVER) = range(24)


def _rule_names() -> tuple[str, ...]:
    """Each ``E_*`` code's constant name in lower case, less ``E_``, indexed by the code."""
    names = {code: name[2:].lower() for name, code in globals().items() if name.startswith("E_")}
    return tuple(names[code] for code in range(len(names)))  # a KeyError if two codes clash


#: The stable name of each rule code, ``RULE_NAMES[E_BUDGET] == "budget"``
#: (:attr:`pebbles.IllegalMoveError.code`); derived from the codes above, never listed twice.
RULE_NAMES = _rule_names()
#: :attr:`pebbles.IllegalMoveError.code` of a stream that ends without meeting its game's
#: end condition.
END_CODE = "end"

# moves allowed per game, as bit masks over the kinds
_ALLOWED = (
    (1 << K_PLACE) | (1 << K_REMOVE) | (1 << K_PAINT) | (1 << K_FORWARD)
    | (1 << K_STORE) | (1 << K_LOAD) | (1 << K_DISCARD) | (1 << K_TAPE),
    (1 << K_PLACE) | (1 << K_REMOVE) | (1 << K_PAINT) | (1 << K_FORWARD) | (1 << K_MOVE)
    | (1 << K_STORE) | (1 << K_LOAD) | (1 << K_DISCARD) | (1 << K_TAPE),
    (1 << K_PLACE) | (1 << K_UNPLACE),
)


def play(kinds, aa, bb, m, n, game, budget, dbudget, occ, dsk, st, ft,
         fcost, bcost, size, lower, slot, free, ops):  # noqa: C901 -- a compiled kernel
    """Play moves ``0..m-1`` (rows ``kinds[k], aa[k], bb[k]``) on the board.

    ``budget``/``dbudget`` < 0 mean unbounded. ``fcost``/``bcost``/``size``
    are per-step forward and backward costs and per-cell state sizes (empty:
    1, 0 and 1); ``size[n + 1 + i]``, when present, is the memory the kept
    graph of step i holds besides s_i and s_{i+1} (``tape i+1`` adds it, the
    paint it serves frees it; a paint that replays step i holds
    ``size[i+1] + size[n+1+i]`` for the moment; ``-1``: the graph is never kept
    and its replay not counted; ``-2`` or absent: 0 and not counted);
    ``size[2n + 1 + i]``, when present, is what ``paint i`` adds for good (the
    step's parameter gradients) and ``size[3n + 1 + i]`` the cotangent of s_i that it
    makes, which the next paint holds and frees. With ``lower`` set,
    every memory pebble gets a slot (``slot[cell]``, free slots on the stack
    ``free``) and the slot program is appended to ``ops`` (five ints a row).
    Stops at the first broken rule,
    with ``st[ST_INDEX]`` its position and ``st[ST_CODE]`` its code.
    """
    allowed = _ALLOWED[game]
    unit = len(size) == 0  # every state has size 1: bytes are pebbles
    for k in range(m):
        kind = kinds[k]
        a = aa[k]
        b = bb[k]
        st[ST_INDEX] = k
        if kind < 0 or kind > K_TAPE or not (allowed >> kind) & 1:
            st[ST_CODE] = E_GAME
            return
        extra = 0  # transient pebbles held beyond the board while the move runs
        gained = -1  # the cell that gains a memory pebble, if any
        xbytes = 0.0
        if kind != K_FORWARD and (a < (0 if kind == K_PAINT else 1) or a > n):
            st[ST_CODE] = E_CELL
            return
        if kind == K_FORWARD:
            if a < 0 or b <= a or b > n:
                st[ST_CODE] = E_FWD_RANGE
                return
            if occ[a] == 0:
                st[ST_CODE] = E_FWD_START
                return
            if _first_set(occ, a + 1, b) >= 0:
                st[ST_CODE] = E_FWD_OVER
                return
            walk = float(b - a)
            if len(fcost) > 0 or len(size) > 0:
                walk = 0.0
                for c in range(a + 1, b + 1):
                    walk += 1.0 if len(fcost) == 0 else fcost[c - 1]
                    if len(size) > 0:
                        if game == G_INPLACE or c == a + 1:
                            xbytes = max(xbytes, size[c] - size[b])
                        else:
                            xbytes = max(xbytes, size[c - 1] + size[c] - size[b])
            if game != G_INPLACE and b - a > 1:
                extra = 1
            occ[b] = 1
            gained = b
            st[ST_COUNT] += 1
            st[ST_STEPS] += b - a
            ft[FT_TIME] += walk
            if not unit:
                ft[FT_BYTES] += size[b]
            if len(size) == 0:
                xbytes = float(extra)
            if lower:
                d = _alloc(st, free)
                if d < 0:
                    return
                _op(ops, st, OP_STEP, slot[a], d, a, b - a)
                slot[b] = d
                st[ST_LSTEPS] += b - a
        elif kind == K_PAINT:
            if a != st[ST_PAINTED] - 1:
                st[ST_CODE] = E_PAINT_ORDER
                return
            if occ[a] == 0:
                st[ST_CODE] = E_PAINT_NONE
                return
            if lower and st[ST_SEEDED] == 0:
                st[ST_SEEDED] = 1
                if occ[n] != 0:
                    _op(ops, st, OP_SEED, slot[n], 0, n, 0)
                else:
                    if st[ST_NFREE] == 0:
                        st[ST_CODE] = E_SLOTS
                        return
                    tmp = free[st[ST_NFREE] - 1]
                    _op(ops, st, OP_STEP, slot[n - 1], tmp, n - 1, 1)
                    _op(ops, st, OP_SEED, tmp, 0, n, 1)
                    st[ST_LSTEPS] += 1
                    _slot_peak(st, free, 1)
                    if lower == 2:
                        _op(ops, st, OP_FREE, tmp, 0, n, 0)
            st[ST_PAINTED] = a
            st[ST_PAINTS] += 1
            ft[FT_TIME] += 0.0 if len(bcost) == 0 else bcost[a]
            if occ[n + 1 + a] != 0:  # served by the kept graph: no replay of step a
                occ[n + 1 + a] = 0
                st[ST_TAPED] += 1
                if len(bcost) > 0:
                    ft[FT_TIME] -= fcost[a]
                if len(size) > n + 1:  # freed as the paint ends: held while it runs
                    ft[FT_BYTES] -= max(size[n + 1 + a], 0.0)
                    xbytes = max(size[n + 1 + a], 0.0)
            elif len(size) > n + 1 and size[n + 1 + a] >= 0:  # replay with a graph
                xbytes = size[a + 1] + size[n + 1 + a]
            if len(size) > 2 * n + 1:  # parameter gradients made, then the cotangents
                ft[FT_BYTES] += size[2 * n + 1 + a] + size[3 * n + 1 + a]
                if a + 1 < n:  # s_{a+1}'s cotangent: held during the paint, then freed
                    ft[FT_BYTES] -= size[3 * n + 2 + a]
                    xbytes += size[3 * n + 2 + a]
            if lower:
                _op(ops, st, OP_PAINT, slot[a], 0, a, 0)
                st[ST_LPAINTS] += 1
        elif kind == K_REMOVE:
            if occ[a] == 0:
                st[ST_CODE] = E_REMOVE_NONE
                return
            if occ[n + 1 + a] != 0 or occ[n + a] != 0:
                st[ST_CODE] = E_GRAPH_HELD
                return
            occ[a] = 0
            st[ST_COUNT] -= 1
            if not unit:
                ft[FT_BYTES] -= size[a]
            if lower:
                free[st[ST_NFREE]] = slot[a]
                st[ST_NFREE] += 1
                if lower == 2:
                    _op(ops, st, OP_FREE, slot[a], 0, a, 0)
                slot[a] = -1
        elif kind == K_UNPLACE:
            if occ[a] == 0:
                st[ST_CODE] = E_UNPLACE_NONE
                return
            if occ[a - 1] == 0:
                st[ST_CODE] = E_UNPLACE_PREV
                return
            occ[a] = 0
            st[ST_COUNT] -= 1
            st[ST_STEPS] += 1
            ft[FT_TIME] += 1.0 if len(fcost) == 0 else fcost[a - 1]
            if not unit:
                ft[FT_BYTES] -= size[a]
        elif kind == K_PLACE or kind == K_MOVE or kind == K_TAPE:
            if occ[a] != 0:
                st[ST_CODE] = E_OCCUPIED
                return
            if occ[a - 1] == 0:
                st[ST_CODE] = E_NEED_PREV
                return
            if kind == K_MOVE and a == 1:
                st[ST_CODE] = E_MOVE_ONE
                return
            if kind == K_MOVE and (occ[n + a] != 0 or occ[n + a - 1] != 0):
                st[ST_CODE] = E_GRAPH_HELD
                return
            occ[a] = 1
            gained = a
            st[ST_STEPS] += 1
            ft[FT_TIME] += 1.0 if len(fcost) == 0 else fcost[a - 1]
            if not unit:
                ft[FT_BYTES] += size[a]
            if kind == K_MOVE:
                occ[a - 1] = 0
                if not unit:
                    ft[FT_BYTES] -= size[a - 1]
                if len(size) > 0:
                    xbytes = max(0.0, size[a - 1] - size[a]) + 0.0
                if lower:
                    d = slot[a - 1]
                    _op(ops, st, OP_STEP, d, d, a - 1, 1)
                    slot[a] = d
                    slot[a - 1] = -1
                    st[ST_LSTEPS] += 1
            else:
                st[ST_COUNT] += 1
                if kind == K_TAPE:
                    if len(size) > n + 1 and size[n + a] == -1.0:
                        st[ST_CODE] = E_GRAPH_NEVER
                        return
                    occ[n + a] = 1
                    if len(size) > n + 1:
                        ft[FT_BYTES] += max(size[n + a], 0.0)
                if lower:
                    d = _alloc(st, free)
                    if d < 0:
                        return
                    _op(ops, st, OP_TAPE if kind == K_TAPE else OP_STEP, slot[a - 1], d,
                        a - 1, 1)
                    slot[a] = d
                    st[ST_LSTEPS] += 1
        elif kind == K_STORE:
            if occ[a] == 0:
                st[ST_CODE] = E_STORE_NONE
                return
            if dsk[a] != 0:
                st[ST_CODE] = E_STORE_DUP
                return
            dsk[a] = 1
            st[ST_DCOUNT] += 1
            st[ST_WRITES] += 1
            if dbudget >= 0 and st[ST_DCOUNT] > dbudget:
                st[ST_REACHED] = st[ST_DCOUNT]
                st[ST_CODE] = E_DISK_BUDGET
                return
            st[ST_DPEAK] = max(st[ST_DPEAK], st[ST_DCOUNT])
            if lower:
                _op(ops, st, OP_STORE, slot[a], 0, a, 0)
        elif kind == K_LOAD:
            if dsk[a] == 0:
                st[ST_CODE] = E_LOAD_NONE
                return
            if occ[a] != 0:
                st[ST_CODE] = E_LOAD_DUP
                return
            occ[a] = 1
            gained = a
            st[ST_COUNT] += 1
            st[ST_READS] += 1
            if not unit:
                ft[FT_BYTES] += size[a]
            if lower:
                d = _alloc(st, free)
                if d < 0:
                    return
                _op(ops, st, OP_LOAD, 0, d, a, 0)
                slot[a] = d
        else:  # K_DISCARD
            if dsk[a] == 0:
                st[ST_CODE] = E_DISCARD_NONE
                return
            dsk[a] = 0
            st[ST_DCOUNT] -= 1
            if lower:
                _op(ops, st, OP_DISCARD, 0, 0, a, 0)
        if gained == n and st[ST_REACH] < 0:  # the steps taken when cell n is first held
            st[ST_REACH] = st[ST_STEPS]
        reached = st[ST_COUNT] + extra
        if budget >= 0 and reached > budget:
            st[ST_REACHED] = reached
            st[ST_CODE] = E_BUDGET
            return
        if reached > st[ST_PEAK]:
            st[ST_PEAK] = reached
        if not unit and ft[FT_BYTES] + xbytes > ft[FT_PEAKBYTES]:
            ft[FT_PEAKBYTES] = ft[FT_BYTES] + xbytes
        if lower:
            _slot_peak(st, free, 0)
    st[ST_INDEX] = m


def _first_set(occ, lo, hi):
    """The first cell in ``lo..hi`` holding a pebble, or -1.

    ``occ`` is the compiled loop's board, a NumPy ``uint8`` array. A walk of more
    than 40 cells (``recompute-all``'s check up to n) is checked one cell at a time up
    to an index that is a multiple of 8, then 32 and 8 cells at a time (a ``uint64``
    view), then the last cells one at a time; a shorter one cell by cell. Plain
    Python boards (bytearrays, the sparse board) use a faster twin:
    :func:`pebbles._simulator._first_set`.
    """
    c = lo
    end = hi + 1
    if end - c > 40:  # a long walk: one cell at a time to a word, then by words
        while c % 8 != 0:
            if occ[c] != 0:
                return c
            c += 1
        words = (end - c) // 8
        w = occ[c:c + 8 * words].view(np.uint64)
        k = 0
        while k + 4 <= words and (w[k] | w[k + 1] | w[k + 2] | w[k + 3]) == 0:
            k += 4
        while k < words and w[k] == 0:
            k += 1
        c += 8 * k  # the first word holding a pebble, or the cells after the last word
    while c < end:
        if occ[c] != 0:
            return c
        c += 1
    return -1


def _alloc(st, free):
    """Take a free slot (last freed first); -1 and ``E_SLOTS`` when none is left."""
    if st[ST_NFREE] == 0:
        st[ST_CODE] = E_SLOTS
        return -1
    st[ST_NFREE] -= 1
    return free[st[ST_NFREE]]


def _op(ops, st, op, src, dst, first, count):
    """Append one slot-program row."""
    j = 5 * st[ST_NOPS]
    ops[j] = op
    ops[j + 1] = src
    ops[j + 2] = dst
    ops[j + 3] = first
    ops[j + 4] = count
    st[ST_NOPS] += 1


def _slot_peak(st, free, more):
    """Track the slots in use (besides slot 0): the capacity minus the free ones."""
    used = len(free) - st[ST_NFREE] + more
    if used > st[ST_SLOTPEAK]:
        st[ST_SLOTPEAK] = used
