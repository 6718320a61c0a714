"""Convex integer sequences stored as runs of equal increments.

The optimal costs of the reversible pebble game are convex in the distance
(checked against the dynamic program in the tests), with few distinct
increments (about 700 for n = 10^8, S = 30). Storing them as runs keeps the
optimal schedule's tables small, min-plus convolution of convex sequences is a
merge of their increments by size, and the tables are built run by run, in time
that grows with the runs, not with n. (The standard fact used: the min-plus
convolution of two convex sequences merges their slopes, as the Minkowski sum of
two convex polygons merges their edges. It serves the reversible game's optimum,
:mod:`pebbles._reversible`.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Convex", "RunReader", "add", "merge", "split_of_merge"]


@dataclass(slots=True)
class Convex:
    """``f(1) = first`` and increments ``f(m+1) - f(m)`` as runs ``[step, count]``."""

    first: int
    runs: list[list[int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Largest m on which f is defined (its domain is 1..size)."""
        return 1 + sum(c for _, c in self.runs)

    def append(self, step: int) -> None:
        """Extend the domain by one with increment ``step``."""
        if self.runs and self.runs[-1][0] == step:
            self.runs[-1][1] += 1
        else:
            self.runs.append([step, 1])

    def extend(self, step: int, count: int) -> None:
        """Extend the domain by ``count`` with increment ``step``."""
        if count > 0:
            self.append(step)
            self.runs[-1][1] += count - 1

    def __call__(self, m: int) -> int:
        """Value at ``1 <= m <= size``."""
        value, left = self.first, m - 1
        for step, count in self.runs:
            take = min(count, left)
            value += step * take
            left -= take
            if not left:
                break
        return value

    def increments(self):
        """Iterate over the increments in order (reads runs appended meanwhile)."""
        k = 0
        while k < len(self.runs):
            step, taken = self.runs[k][0], 0
            while taken < self.runs[k][1]:
                yield step
                taken += 1
            k += 1


def split_of_merge(g: Convex, h: Convex, m: int) -> int:
    """Optimal j of ``min_{j + k = m} g(j) + h(k)`` (j, k >= 1) for convex g, h.

    The minimum takes the ``m - 2`` smallest increments of g and h together;
    j - 1 of them come from g.
    """
    left, j = m - 2, 1
    gi = hi = 0
    g_used = h_used = 0
    while left > 0:
        g_ok = gi < len(g.runs)
        h_ok = hi < len(h.runs)
        if not (g_ok or h_ok):
            raise ValueError(f"m={m} exceeds the domain {g.size + h.size} of the merge")
        if g_ok and (not h_ok or g.runs[gi][0] <= h.runs[hi][0]):
            take = min(left, g.runs[gi][1] - g_used)
            j += take
            g_used += take
            if g_used == g.runs[gi][1]:
                gi, g_used = gi + 1, 0
        else:
            take = min(left, h.runs[hi][1] - h_used)
            h_used += take
            if h_used == h.runs[hi][1]:
                hi, h_used = hi + 1, 0
        left -= take
    return j


class RunReader:
    """A cursor over a sequence's increments, run by run: the increment at the cursor,
    how many equal ones follow (runs appended meanwhile count), and a skip."""

    __slots__ = ("f", "k", "used")

    def __init__(self, f: Convex) -> None:
        self.f, self.k, self.used = f, 0, 0

    def step(self) -> int:
        return self.f.runs[self.k][0]

    def left(self) -> int:
        """Equal increments from the cursor on, in the current run (0: none read yet)."""
        return self.f.runs[self.k][1] - self.used if self.k < len(self.f.runs) else 0

    def skip(self, count: int) -> None:
        self.used += count
        if self.used == self.f.runs[self.k][1]:
            self.k, self.used = self.k + 1, 0


def add(f: Convex, g: Convex, size: int) -> Convex:
    """Pointwise ``f + g`` on ``1..size`` (size <= both domains), run by run: O(runs)."""
    out = Convex(f.first + g.first)
    a, b = RunReader(f), RunReader(g)
    left = size - 1
    while left > 0:
        take = min(a.left(), b.left(), left)
        out.extend(a.step() + b.step(), take)
        a.skip(take)
        b.skip(take)
        left -= take
    return out


def merge(first: int, g: Convex, h: Convex, size: int) -> Convex:
    """``f(1) = first``, ``f(m) = min_{j + k = m} g(j) + h(k)`` for 2 <= m <= size."""
    out = Convex(first)
    if size >= 2:
        out.append(g.first + h.first - first)
    runs = sorted(g.runs + h.runs, key=lambda run: run[0])
    left = size - 2
    for step, count in runs:
        if left <= 0:
            break
        take = min(count, left)
        out.extend(step, take)
        left -= take
    return out
