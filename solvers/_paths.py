"""Output paths of the solvers' command lines, checked before a run (not after it)."""

from __future__ import annotations

from pathlib import Path

from pebbles import PebblesValueError
from pebbles.cli import check_path_given, write_error

__all__ = ["check_npz_output"]


def check_npz_output(flag: str, path: str | None) -> None:
    """``flag path``: a writable ``.npz`` file in an existing directory, else one clear
    error naming the flag, the path and the fix (``None``: nothing to write)."""
    if path is None:
        return
    check_path_given(flag, path, f"name a .npz file, e.g. {flag} out.npz")
    out = Path(path)
    if out.is_dir():
        raise PebblesValueError(f"{flag} {path} is a directory; name a file, e.g. "
                                f"{out / 'out.npz'}")
    if out.name == ".npz":  # Path(".npz").suffix is "": a dot file with no name
        raise PebblesValueError(f"{flag} {path} names no file: the file needs a name before "
                                f".npz, e.g. {flag} {out.with_name('out.npz')}")
    if out.suffix != ".npz":
        raise PebblesValueError(f"{flag} {path} must end in .npz (numpy.savez adds it)")
    _check_parent(flag, path, out.parent if str(out.parent) else Path("."))
    reason = write_error(out)
    if reason is not None:
        raise PebblesValueError(f"{flag} {path} cannot be written ({reason}); name a file "
                                f"in a writable directory")


def _check_parent(flag: str, path: str, parent: Path) -> None:
    """Refuse ``flag path`` unless its directory ``parent`` exists as a directory (a file
    on the way is named as one)."""
    if parent.is_dir():
        return
    above = parent
    while not above.exists() and above.parent != above:
        above = above.parent
    if above.exists() and not above.is_dir():
        raise PebblesValueError(f"{flag} {path}: {above} is a file, not a directory; name "
                                f"a file in an existing directory")
    raise PebblesValueError(f"{flag} {path}: directory {parent} does not exist; create it "
                            f"or name a file in an existing directory")
