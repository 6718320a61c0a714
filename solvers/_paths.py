"""Output paths of the solvers' command lines, checked before a run (not after it)."""

from __future__ import annotations

from pathlib import Path

from pebbles import PebblesValueError
from pebbles.cli import output_error

__all__ = ["check_npz_output"]


def check_npz_output(flag: str, path: str | None) -> None:
    """``flag path``: a writable ``.npz`` file in an existing directory, else one clear
    error naming the flag, the path and the fix (``None``: nothing to write)."""
    if path is None:
        return
    reason = output_error(path, "out.npz")
    if reason is not None:
        raise PebblesValueError(f"{flag} {path!r} {reason}")
    out = Path(path)
    if out.name == ".npz":  # Path(".npz").suffix is "": a dot file with no name
        raise PebblesValueError(f"{flag} {path!r} names no file: the file needs a name "
                                f"before .npz, e.g. {flag} {out.with_name('out.npz')}")
    if out.suffix != ".npz":
        raise PebblesValueError(f"{flag} {path!r} must end in .npz (numpy.savez adds it)")
