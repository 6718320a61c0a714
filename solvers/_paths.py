"""Output paths of the solvers' command lines, checked before a run (not after it)."""

from __future__ import annotations

from pathlib import Path

from pebbles import PebblesValueError

__all__ = ["check_npz_output", "write_error"]


def check_npz_output(flag: str, path: str | None) -> None:
    """``flag path``: a writable ``.npz`` file in an existing directory, else one clear
    error naming the flag, the path and the fix (``None``: nothing to write)."""
    if path is None:
        return
    out = Path(path)
    if out.is_dir():
        raise PebblesValueError(f"{flag} {path} is a directory; name a file, e.g. "
                                f"{out / 'out.npz'}")
    if out.suffix != ".npz":
        raise PebblesValueError(f"{flag} {path} must end in .npz (numpy.savez adds it)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise PebblesValueError(f"{flag} {path}: directory {parent} does not exist")
    reason = write_error(out)
    if reason is not None:
        raise PebblesValueError(f"{flag} {path} cannot be written ({reason}); name a file "
                                f"in a writable directory")


def write_error(out: Path) -> str | None:
    """Why ``out`` cannot be written (the OS's words), or None when it can.

    The one reliable test (permissions, read-only file systems, ``/proc``, root
    bypassing permission bits): open it for appending, then remove it again if
    it did not exist. ``visualize.cli.check_output`` does the same for ``-o``
    (a copy: ``pebbles draw`` must not import :mod:`solvers`, which needs Numba).
    """
    existed = out.exists()
    try:
        with open(out, "ab"):
            pass
    except OSError as err:
        return err.strerror or type(err).__name__
    if not existed:
        out.unlink(missing_ok=True)
    return None
