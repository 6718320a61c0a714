"""The ``pebbles`` command line, and the plumbing every command line of the project uses.

``pebbles schedule|compare|plan|methods`` live here; ``pebbles draw`` and
``pebbles tradeoff`` are contributed by :mod:`visualize` through the
``pebbles.commands`` entry-point group, so this core module never imports the
layer above it. ``python -m solvers.lorenz``, ``python -m solvers.pml`` and
``python -m visualize`` build on :class:`OneLineParser`, :func:`positive`,
:func:`parse_bytes` and :func:`run_command`: one parser, one error policy.

Error policy: bad input is one line on stderr (``PROG: error: ...``) and exit
status 2; a missing optional package names the ``pip install`` that brings it;
Ctrl-C is one line and exit status 130; running out of memory is one line and
exit status 1. Standard output closed from the start (``>&-``) is one line and
exit status 2, before any work (the results would be lost), unless the command
is given a file to write its results to (``-o``, ``--out``, ``--save``: only a
``wrote ...`` line goes to standard output); a reader that stops
reading (``| head``, a broken pipe) ends the command quietly with status 0, as
it has what it wanted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from importlib import metadata
from pathlib import Path
from typing import Any

from ._background import BackgroundClock
from ._budget import check_budget
from ._errors import IllegalMoveError, PebblesError, PebblesValueError
from ._moves import Game, Move, format_move
from ._optimal import min_forward_steps
from ._optional import missing_extra
from ._planner import Candidate, NoDiskError, plan, two_level_table_work
from ._registry import (
    Schedule,
    _did_you_mean,
    describe,
    fewest_moves,
    methods,
    most_moves,
    predicted_moves,
    predicted_steps,
    schedule,
)
from ._reversible import reversible_tables_fit
from ._simulator import SIMULATE_CHUNK, SimulationResult, simulate

__all__ = ["MAX_INT", "Command", "OneLineParser", "SubcommandParser",
           "add_background_argument", "add_disk_arguments", "add_schedule_arguments",
           "at_least", "budget_flag", "check_path_given", "count", "disk_budget", "guarded",
           "in_flags", "main", "method_choice", "method_flags", "missing_extra",
           "nonnegative_float", "output_error", "parse_bytes", "positive", "positive_float",
           "run_command", "schedule_from_args", "unused_flags", "write_error"]

EXAMPLES = """\
examples:
  pebbles schedule treeverse -n 20 --pebbles 4            # optimal, paper's game
  pebbles schedule treeverse -n 20 --pebbles 4 --inplace  # optimal, in-place game
  pebbles schedule treeverse-paper -n 20 --delta 3 --format summary
  pebbles schedule bennett -n 16 --k 2 --format summary
  pebbles methods
  pebbles compare -n 1000 --pebbles 10
  pebbles plan -n 10000 --memory 2GiB --state-bytes 32MiB --backward-cost 3
  pebbles draw treeverse-paper -n 20 --delta 3 -o fig7a.png
  pebbles tradeoff -n 100 10000 -o tradeoff.png
"""


#: A negative number as argparse should see it: ``-1``, ``-.5``, and also ``-1e-3``,
#: ``-2.5E+4`` (argparse's own pattern takes these for flags: "expected one argument").
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2, and that
    reads negative numbers in e-notation (``--sigma -1e-3``) as values, not flags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class SubcommandParser(OneLineParser):
    """A subcommand's :class:`OneLineParser` (``parser_class`` of ``add_subparsers``): an
    argument it does not know is its own error, named with its prog (``pebbles schedule``)
    and its ``--help``, not the top-level command's (everything after the subcommand's
    name is the subcommand's to parse)."""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        ns, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return ns, extra


def positive(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _integer(text, 1)


def at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: a whole number >= ``minimum`` (``positive`` and ``count`` are
    ``at_least(1)`` and ``at_least(0)``), e.g. ``type=at_least(2)`` for a grid size."""
    def whole(text: str) -> int:
        return _integer(text, minimum)
    return whole


def method_choice(choices: Sequence[str]) -> Callable[[str], str]:
    """argparse type for a method name among ``choices``: a name outside them is refused
    with the registry's suggestion (``trevers``: did you mean 'treeverse'?) and the list.
    Pass ``choices`` to ``add_argument`` as well, for the usage line."""
    names = tuple(choices)

    def method(text: str) -> str:
        if text in names:
            return text
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} ({_did_you_mean(text, names)}choose from "
            f"{', '.join(map(repr, names))})")

    method.__name__ = "method"  # argparse names the type in some messages
    return method


def _integer(text: str, minimum: int | None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= {minimum}")
    if value > MAX_INT:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most 2^62")
    return value


#: The largest whole number the command lines take (``-n``, ``--steps``, budgets): 2^62
#: (moves are encoded as int64).
MAX_INT = 2**62


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _finite_float(text, strict=True)


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _finite_float(text, strict=False)


def _finite_float(text: str, strict: bool) -> float:
    """``text`` as a finite number > 0 (``strict``) or >= 0, else argparse's error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and (value > 0 if strict else value >= 0)):
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a finite number {'>' if strict else '>='} 0")
    return value


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """Parse '2GB', '32MiB', '1e6' into bytes (KB/MB/GB decimal, KiB/MiB/GiB binary).

    A fractional byte count (``1.5``, ``1.0005KB``) is refused, not rounded.

    Examples
    --------
    >>> from pebbles.cli import parse_bytes
    >>> parse_bytes("2GB"), parse_bytes("32MiB"), parse_bytes("1e3"), parse_bytes("1e-3GB")
    (2000000000, 33554432, 1000, 1000000)
    """
    m = re.fullmatch(r"\s*([0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; write e.g. 2GB, 512MiB or 1000000")
    try:  # exact: 1.1KB is 1100 bytes, not 1100.0000000000002
        value = Decimal(m.group(1)) * _UNITS[unit]
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 2GB") from None
    if not value.is_finite() or value < 1 or value > 2**62:
        raise argparse.ArgumentTypeError(f"{text!r} must be a size from 1 byte to 4 EiB")
    if value != value.to_integral_value():
        raise argparse.ArgumentTypeError(
            f"{text!r} is {value.normalize():f} bytes, not a whole number of bytes; write a "
            f"whole number (e.g. {math.ceil(value)})")
    return int(value)


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                run: Callable[[argparse.Namespace], str],
                errors: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError),
                ) -> int:
    """Parse ``argv``, print ``run(args)``; return the exit status.

    An exception in ``errors`` (or an ImportError of an optional package)
    becomes ``PROG: error: MESSAGE`` (one line) on stderr and status 2; Ctrl-C
    is one line and status 130; ``--help`` and parse errors return argparse's
    status; a closed standard output, where the results go, is one line and status 2
    before ``run`` (:func:`_closed_stdout`).
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        sys.stderr.write(f"{parser.prog}: interrupted\n")
        return 130
    if _closed_stdout(parser.prog, args):
        return 2
    return guarded(parser.prog, lambda: print(run(args)) or 0, errors)


#: Destinations of the output-file flags (``-o``/``--output``, ``--out``, ``--save``): a
#: command given one writes its results to that file, not to standard output.
_OUTPUT_DESTS = ("output", "out", "save")


def _closed_stdout(prog: str, args: argparse.Namespace) -> bool:
    """Whether standard output is closed (``>&-``: Python sets ``sys.stdout`` to None)
    while ``args`` send the results there (no output file given); then says so on stderr,
    one line, and the caller returns status 2 before any work."""
    if sys.stdout is not None or any(getattr(args, d, None) for d in _OUTPUT_DESTS):
        return False
    sys.stderr.write(f"{prog}: error: standard output is closed, and the command writes "
                     f"its results there; run it with standard output open (e.g. > FILE, "
                     f"or > /dev/null to drop them)\n")
    return True


def guarded(prog: str, call: Callable[[], int],
            errors: tuple[type[BaseException], ...] = ()) -> int:
    """``call()``'s exit status, with the command lines' policy for what ends it early.

    Ctrl-C is ``PROG: interrupted`` and 130; a reader of standard output that has gone
    (``... | head -1``: ``BrokenPipeError``) a quiet 0; an exception in ``errors``, a
    ``PebblesError`` or an ``ImportError`` (an optional package missing) one line
    ``PROG: error: MESSAGE`` and 2; ``MemoryError`` one line and 1. Every command line of
    the project (``pebbles``, the solvers', ``python -m visualize``, the examples) ends
    through it.

    Parameters
    ----------
    prog : str
        The program's name, which starts each line.
    call : callable
        Runs the command; returns its exit status.
    errors : tuple of exception types, optional
        More exceptions that are the user's to fix (e.g. ``ValueError``, ``OSError``).

    Returns
    -------
    int
        The exit status.
    """
    try:
        return call()
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except (*errors, PebblesError, ImportError) as err:
        line = " ".join(str(err).split()) or type(err).__name__
        sys.stderr.write(f"{prog}: error: {line}\n")
        return 2
    except MemoryError:
        sys.stderr.write(f"{prog}: error: out of memory; ask for a smaller problem\n")
        return 1


def _quiet_stdout() -> None:
    """Point standard output at the null device once its reader has gone (Python's recipe
    for a broken pipe): what is left in its buffer is flushed there at exit, with no
    "Exception ignored" message. A stand-in without a file descriptor is left alone."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


# ---------------------------------------------------------------------------
# schedules by name
# ---------------------------------------------------------------------------
def add_schedule_arguments(parser: argparse.ArgumentParser,
                           choices: Sequence[str] | None = None) -> None:
    """Add METHOD and the schedule options (shared by ``schedule``, ``draw``, the solvers)."""
    choices = methods() if choices is None else tuple(choices)
    parser.add_argument("method", choices=choices, type=method_choice(choices))
    parser.add_argument("-n", type=positive, required=True, help="number of steps")
    parser.add_argument("--pebbles", "--budget", dest="budget", type=budget_flag,
                        help="budget S: states held at once besides s_0, the working state "
                             "included (Revolve's c checkpoints, s_0's among them: S = c)")
    takes = [m for m in methods() if "inplace" in dict(describe(m).options)]
    parser.add_argument("--inplace", action="store_true",
                        help=f"in-place game ({', '.join(takes)})")
    parser.add_argument("--k", type=at_least(2), help="bennett: blocks per level (2)")
    parser.add_argument("--delta", type=positive, help="treeverse-paper: delta")
    parser.add_argument("--tau", type=count, help="treeverse-paper: tau (default: least)")
    parser.add_argument("--no-uncompute", action="store_true", help="bennett: stop at cell n")
    parser.add_argument("--every", type=positive, help="periodic: checkpoint interval")
    parser.add_argument("--beyond", choices=("greedy", "wang-moin"),
                        help="online: the rule past the r = 3 phase, n > beta(S, 3) (greedy)")
    parser.add_argument("--period", type=positive, help="periodic-disk: disk checkpoint interval")
    add_disk_arguments(parser)
    add_background_argument(parser, backward_cost=True)


def add_background_argument(parser: argparse.ArgumentParser, *,
                            backward_cost: bool = False) -> None:
    """Add ``--background-writes`` (two-level: stores written while the steps go on) and,
    with ``backward_cost``, the schedule's ``--backward-cost`` (default None: the
    registry's, 1)."""
    parser.add_argument("--background-writes", action="store_true",
                        help="two-level: stores are written in the background, as the "
                             "executors do; pick the schedule for that (docs/two-level.md)")
    if backward_cost:
        parser.add_argument("--backward-cost", type=nonnegative_float,
                            help="two-level --background-writes: a backward step's cost in "
                                 "forward steps, which the write price is chosen for (1)")


def add_disk_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--disk-slots``, ``--write-cost`` and ``--read-cost`` (a disk as second level)."""
    parser.add_argument("--disk-slots", "--disk-budget", dest="disk_budget", type=_disk_slots,
                        help="two-level: states on disk (a number or 'inf')")
    parser.add_argument("--write-cost", type=nonnegative_float,
                        help="two-level: cost of writing a state to disk, in forward steps")
    parser.add_argument("--read-cost", type=nonnegative_float,
                        help="two-level: cost of reading a state from disk, in forward steps")


def _disk_slots(text: str) -> int | float:
    """``--disk-slots``: a count, or ``inf`` for an unbounded disk (``math.inf``: given,
    unlike ``None``, so that :func:`unused_flags` sees it; the library takes it as None)."""
    return math.inf if text.strip().lower() in ("inf", "unbounded") else count(text)


def disk_budget(args: argparse.Namespace) -> int | None:
    """The disk budget ``--disk-slots`` gives the library: its count, or None (the
    unbounded disk, the option's default) for ``inf`` or no flag."""
    value = getattr(args, "disk_budget", None)
    return None if value == math.inf else value


def count(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _integer(text, 0)


def budget_flag(text: str) -> int:
    """argparse type of ``--pebbles``: a whole number, negative ones too, which the library
    refuses naming the least budget that finishes the run (:func:`in_flags` words it in
    flags), where "must be >= 0" would send the user to 0, refused in turn."""
    return _integer(text, None)


def write_error(path: Path) -> str | None:
    """Why the output file ``path`` cannot be written (the system's words), or None.

    The one reliable test (permissions, read-only file systems, ``/proc``, root,
    who passes permission bits): create the file the path names (through a
    symbolic link, its target) and remove it again, or, if it exists, open it for
    appending. The file system is left as it was: only a file the probe created is
    removed, and a link is never replaced. The command lines check their outputs
    with it before they compute anything.
    """
    try:
        target = path.resolve()  # through a symbolic link, dangling or not
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        try:
            with open(target, "ab"):
                return None
        except OSError as err:
            return err.strerror or type(err).__name__
    except (OSError, RuntimeError) as err:  # RuntimeError: a loop of links (Python < 3.13)
        return getattr(err, "strerror", None) or str(err) or type(err).__name__
    os.close(fd)
    target.unlink(missing_ok=True)
    return None


def output_error(path: str, example: str, *, probe: bool = True) -> str | None:
    """Why ``path`` cannot be the file a command writes when it ends, or None: the one
    check of the command lines' output files (``-o``, ``--save``, ``--out``, ``--json``),
    made before they compute anything.

    Parameters
    ----------
    path : str
        The path as given.
    example : str
        A file name to suggest (``"out.npz"``, ``"figure.png"``).
    probe : bool, optional
        Also try to create the file (:func:`write_error`); False leaves that to the
        caller's own ``open`` and its ``OSError`` (a library function's contract).

    Returns
    -------
    str or None
        A clause to follow the path in the caller's message (``f"{flag} {path!r}
        {reason}"``): an empty path, a trailing separator, a directory, a directory
        that does not exist (or a file on the way), a name the file system refuses, or
        :func:`write_error`'s reason; None when the file can be written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     output_error(f"{d}/out.npz", "out.npz") is None, output_error(d, "out.npz")[:14]
    (True, 'is a directory')
    >>> output_error("/no/such/dir/out.npz", "out.npz").split(";")[0]
    "lies in directory '/no/such/dir', which does not exist"
    """
    if not path.strip():
        return f"is an empty path; name a file, e.g. {example}"
    if path.endswith(("/", os.sep)):  # Path drops the slash: "dir.png/" would be "dir.png"
        return (f"ends with a separator, so it names a directory; name a file (drop the "
                f"trailing {path[-1]!r})")
    out = Path(path)
    try:
        if out.is_dir():
            return f"is a directory; name a file inside it, e.g. {str(out / example)!r}"
    except OSError as err:  # a name too long for the file system, ...
        return f"cannot be written ({err.strerror}); name another file (a shorter name)"
    parent = out.parent
    if not parent.is_dir():
        return _missing_directory(parent)
    reason = write_error(out) if probe else None
    return None if reason is None else (f"cannot be written ({reason}); name a file in a "
                                        f"writable directory")


def _missing_directory(parent: Path) -> str:
    """The reason for a path whose directory ``parent`` is not one: a file on the way is
    named as such, else the directory does not exist."""
    above = parent
    while not above.exists() and above.parent != above:
        above = above.parent
    if above.exists() and not above.is_dir():
        return (f"lies under {str(above)!r}, which is a file, not a directory; name a file "
                f"in an existing directory")
    return (f"lies in directory {str(parent)!r}, which does not exist; create it or name a "
            f"file in an existing directory")


def check_path_given(flag: str, path: str | None, fix: str) -> None:
    """Refuse ``flag ''`` (or blanks only), which would quietly mean the working
    directory: one error naming the flag, the empty path and ``fix`` (what to give, e.g.
    ``"name a directory, e.g. --disk-dir /tmp/states"``). ``None``: the flag not given."""
    if path is not None and not path.strip():
        raise PebblesValueError(f"{flag} {path!r} is an empty path; {fix}")


def schedule_from_args(args: argparse.Namespace, method: str | None = None, *,
                       strict: bool = False, n_flag: str = "-n") -> Schedule:
    """The registry's schedule for parsed schedule arguments (:func:`add_schedule_arguments`).

    ``strict``: refuse schedule flags the method does not take (``--k`` for
    treeverse), instead of leaving them unused (``draw --side-by-side`` shares its
    flags between two methods). ``n_flag``: the command line's flag for ``n``, as the
    error messages name it (``--steps`` for the solvers).
    """
    method = args.method if method is None else method
    entry = describe(method)
    unused = unused_flags(args, method) if strict else []
    if unused:
        takes = method_flags(method, offered=[name for name in _FLAGS  # this parser's
                                              if hasattr(args, _dest(name))])
        raise PebblesValueError(
            f"{' '.join(unused)}: not {'an option' if len(unused) == 1 else 'options'} of "
            f"method {method} (its options: {', '.join(takes) or 'none'}); leave "
            f"{'it' if len(unused) == 1 else 'them'} out or pick a method that takes "
            f"{'it' if len(unused) == 1 else 'them'} (pebbles methods)")
    opts: dict[str, Any] = {}
    for name, _ in entry.options:
        if name == "uncompute":
            value = not getattr(args, "no_uncompute", False)
        else:
            value = getattr(args, name, None)
        if name == "disk_budget":
            value = disk_budget(args)
        if value is not None:
            opts[name] = value
        elif name in entry.required:
            raise PebblesValueError(f"method {method} needs --{name.replace('_', '-')}")
    budget = getattr(args, "budget", None)
    if entry.takes_budget and budget is None:
        raise PebblesValueError(f"method {method} needs --pebbles (the budget)")
    try:
        return schedule(method, args.n, budget=budget, **opts)
    except PebblesError as err:
        raise in_flags(err, n_flag) from None


#: Registry arguments that a command line takes as a flag with a value.
_VALUE_FLAGS = {"n": "-n", "budget": "--pebbles", "k": "--k", "delta": "--delta",
                "tau": "--tau", "every": "--every", "beyond": "--beyond", "period": "--period",
                "disk_budget": "--disk-slots", "write_cost": "--write-cost",
                "read_cost": "--read-cost", "backward_cost": "--backward-cost"}


def in_flags(err: PebblesError, n_flag: str = "-n",
             flags: dict[str, str] | None = None) -> PebblesError:
    """``err`` with the library's ``name=value`` words written as the command line's flags
    (``budget=2`` becomes ``--pebbles 2``, ``budget >= 5`` ``--pebbles >= 5``, ``<=`` alike), for a
    message a command-line user can act on; ``n`` becomes ``n_flag`` (``n=20 steps`` with
    ``n_flag="--steps"`` reads ``--steps 20``: no unit repeats the flag). ``flags``: more
    argument names and their flags for a command that has others (``{"memory":
    "--memory"}``), or other flags for the usual names (``{"period": "--every"}``)."""
    table = {**_VALUE_FLAGS, "n": n_flag, **(flags or {})}
    if err.args and isinstance(err.args[0], str):
        switches = "|".join(map(re.escape, _SWITCHES))  # name=True: the switch, no value
        err.args = (re.sub(rf"(?<![\w.])({switches})=True\b",
                           lambda m: _SWITCHES[m.group(1)], err.args[0]), *err.args[1:])
        names = "|".join(sorted(map(re.escape, table), key=len, reverse=True))
        pattern = re.compile(r"(?<![\w.])(" + names + r")(=| >= | <= )")

        def flag(m: re.Match) -> str:
            if m.group(2) != "=":
                return table[m.group(1)] + m.group(2)
            following = m.string[m.end():m.end() + 1]
            return table[m.group(1)] + (" " if following and not following.isspace()
                                        and following not in ",;)" else "")

        err.args = (_unrepeated(pattern.sub(flag, err.args[0]), table.values()),
                    *err.args[1:])
    return err


#: Single-dash flags and the unit they count (``-n 20 steps`` reads ``-n 20``).
_FLAG_UNITS = {"-n": "steps"}


def _unrepeated(text: str, flags: Iterable[str]) -> str:
    """``text`` with no unit that repeats its flag: ``--steps 20 steps`` reads ``--steps
    20``, ``-n 20 steps`` ``-n 20`` (the library's ``n=20 steps``, worded in flags)."""
    for name in flags:
        unit = _FLAG_UNITS.get(name, name[2:] if name.startswith("--") else None)
        if unit:
            text = re.sub(rf"({re.escape(name)} \S+) {re.escape(unit)}\b", r"\1", text)
    return text


#: Registry options and their flags (:func:`add_schedule_arguments`).
_FLAGS = {"inplace": "--inplace", "k": "--k", "delta": "--delta", "tau": "--tau",
          "uncompute": "--no-uncompute", "every": "--every", "beyond": "--beyond",
          "period": "--period", "disk_budget": "--disk-slots", "write_cost": "--write-cost",
          "read_cost": "--read-cost", "background_writes": "--background-writes",
          "backward_cost": "--backward-cost"}
#: Registry options given as a switch (a flag without a value): ``name=True`` is the flag.
_SWITCHES = {name: _FLAGS[name] for name in ("inplace", "background_writes")}


def _dest(name: str) -> str:
    """The parsed arguments' attribute of the registry option ``name``'s flag."""
    return "no_uncompute" if name == "uncompute" else name


def method_flags(method: str, flags: Mapping[str, str] | None = None, *,
                 offered: Iterable[str] | None = None) -> list[str]:
    """The command-line flags of what the registered ``method`` takes, each once:
    ``--pebbles`` when it takes a budget, then its options' flags in the registry's order
    (for a "not an option of this method" message that lists what it takes).

    Parameters
    ----------
    method : str
        A registered method (:func:`pebbles.methods`).
    flags : mapping of str to str, optional
        A command line's own flags for registry names, over ``pebbles schedule``'s
        (:func:`add_schedule_arguments`), e.g. ``{"period": "--every"}``; two options
        with one flag give it once.
    offered : iterable of str, optional
        The registry options the command line has a flag for (default: every option
        with one); the method's others are left out.

    Examples
    --------
    >>> from pebbles.cli import method_flags
    >>> method_flags("periodic-disk")
    ['--pebbles', '--period', '--inplace']
    >>> method_flags("periodic-disk", {"period": "--every"}, offered=("period",))
    ['--pebbles', '--every']
    >>> method_flags("recompute-all")
    []
    """
    entry = describe(method)
    table = {"budget": "--pebbles", **_FLAGS, **(flags or {})}
    shown = set(table) if offered is None else {"budget", *offered}
    names = ["budget"] * entry.takes_budget + [name for name, _ in entry.options]
    return list(dict.fromkeys(table[name] for name in names
                              if name in table and name in shown))


def unused_flags(args: argparse.Namespace, method: str) -> list[str]:
    """The schedule flags given in ``args`` (not None, not False) that ``method`` does not
    take (``--disk-slots inf`` parses as ``math.inf``: given, like any count)."""
    known = {name for name, _ in describe(method).options}
    given = {name: getattr(args, _dest(name), None) for name in _FLAGS}
    return [_FLAGS[name] for name, value in given.items()
            if value is not None and value is not False and name not in known]


def _summary(s: Schedule, r: SimulationResult, clock: BackgroundClock | None = None) -> dict:
    """The summary line of ``s`` played as ``r``; ``clock``: :func:`_background_clock`'s,
    which timed the same walk (its ``background_time``)."""
    out = {
        "method": s.method, "game": r.game.value, "n": r.n, "budget": s.budget,
        "forward_steps": r.forward_steps, "backward_steps": r.backward_steps,
        "peak_states": r.peak_states,
    }
    if r.game is Game.REVERSIBLE:
        out["first_reach_n"] = r.first_reach_n
    if describe(s.method).uses_disk:
        out |= {"writes": r.writes, "reads": r.reads, "peak_disk": r.peak_disk, "time": r.time}
    if clock is not None:  # "time" charges each write in full
        out["background_time"] = clock.time
    return out


def _background_clock(s: Schedule) -> BackgroundClock | None:
    """For a schedule made for background writes, the clock that times its stream as the
    simulator plays it (backward steps left out, as in "time"), so that the stream is
    made and played once; else None."""
    opts = dict(s.options)
    if not opts.get("background_writes"):
        return None
    return BackgroundClock(write_cost=opts["write_cost"], read_cost=opts["read_cost"],
                           backward_cost=0.0)


def _timed(moves: Iterable[Move], clock: BackgroundClock | None) -> Iterable[Move]:
    """``moves``, timed on ``clock`` as they are taken (as they are without one)."""
    return moves if clock is None else clock.timed(moves)


#: Most moves ``--format json`` lists (one string each, in memory and in the output).
JSON_MAX_MOVES = 10**6
#: Most moves ``--format summary`` plays (minutes as they stream).
SUMMARY_MAX_MOVES = 3 * 10**7
#: Streams of at most this many moves are encoded and checked at once (24 bytes a move,
#: fast); longer ones are checked as they stream, in memory O(n).
ENCODE_MAX_MOVES = 4 * 10**6
#: ``--format summary`` of a stream longer than this says on stderr that it is playing it
#: (checked as it streams, at most about 3e5 moves a second: 10 s or more).
SUMMARY_NOTICE_MOVES = ENCODE_MAX_MOVES


def _cmd_schedule(args: argparse.Namespace) -> int:
    s = schedule_from_args(args, strict=True)
    try:
        _write_schedule(s, args.format, sys.stdout.write)
    except IllegalMoveError as err:
        if err.code != "budget":
            raise
        raise PebblesValueError(  # a stream too long to find its peak before it plays
            f"--pebbles {s.budget} is too few for {_label(s)} -n {s.n}: {err}; pass a "
            f"larger --pebbles (its peak is known only by playing the stream)") from None
    return 0


def _write_schedule(s: Schedule, fmt: str, write: Callable[[str], Any]) -> None:
    """Write ``s`` as ``--format fmt`` (moves, summary or json), checked as it plays (and
    timed in the same walk where it was made for background writes)."""
    clock = _background_clock(s)
    if fmt == "moves":
        write(f"# {s}  (game={s.game.value})\n")
        echo = _Echo(_timed(s, clock), write)
        result = simulate(echo, s.n, s.game, s.budget, **s.simulator_options)
        echo.flush()
        write(f"# {json.dumps(_summary(s, result, clock))}\n")
    elif fmt == "summary":
        with _playing_notice(s):
            result = _summary_result(s, clock)
        write(json.dumps(_summary(s, result, clock)) + "\n")
    else:
        texts: list[str] = []
        moves = _timed(_at_most(s, JSON_MAX_MOVES, "json"), clock)
        echo = _Echo(moves, lambda t: texts.append(t[:-1]), lag=0)
        result = simulate(echo, s.n, s.game, s.budget, **s.simulator_options)
        write(json.dumps(_summary(s, result, clock) | {"moves": texts}) + "\n")


def _playing_notice(s: Schedule) -> contextlib.AbstractContextManager[None]:
    """:func:`_elapsed`'s notice on stderr while ``--format summary`` plays a stream of more
    than :data:`SUMMARY_NOTICE_MOVES` moves (a lower bound, :func:`pebbles.fewest_moves`;
    none past :data:`SUMMARY_MAX_MOVES`, refused before the first move)."""
    fewest = fewest_moves(s)
    if not SUMMARY_NOTICE_MOVES < fewest <= SUMMARY_MAX_MOVES:
        return contextlib.nullcontext()
    least = "" if predicted_moves(s) is not None else "at least "
    return _elapsed(f"# playing {least}{fewest:.3g} moves of {_label(s)} -n {s.n} to check "
                    f"them (10 s or more)")


def _summary_result(s: Schedule, clock: BackgroundClock | None = None) -> SimulationResult:
    """``s`` simulated: encoded at once when its stream is short, else as it streams (with
    a ``clock``, always as it streams, timed on the clock)."""
    most = most_moves(s)
    if clock is None and most is not None and most <= ENCODE_MAX_MOVES:
        return s.simulate()
    moves = _timed(_at_most(s, SUMMARY_MAX_MOVES, "summary"), clock)
    return simulate(moves, s.n, s.game, s.budget, **s.simulator_options)


def _at_most(s: Schedule, limit: int, fmt: str) -> Iterator[Move]:
    """The moves of ``s`` for ``--format fmt``; refused past ``limit`` (before the first
    where a bound shows it)."""
    if fewest_moves(s) > limit:
        raise _too_many(s, limit, fmt)
    for count, m in enumerate(s, 1):
        if count > limit:
            raise _too_many(s, limit, fmt)
        yield m


def _too_many(s: Schedule, limit: int, fmt: str) -> PebblesValueError:
    instead = ("; or --format summary for the counts alone" if fmt == "json" else
               f"; or pebbles compare -n {s.n} --pebbles S for the forward steps from "
               f"formulas" if describe(s.method).fit is not None else "")  # compare's rows
    return PebblesValueError(
        f"--format {fmt} {'lists' if fmt == 'json' else 'plays'} every move, and {s.method} "
        f"-n {s.n} has more than {limit} moves; use --format moves, which streams them "
        f"(its last line is the summary){instead}")


class _Echo:
    """``moves`` for :func:`simulate`, each written only once it has been checked.

    The simulator takes moves a chunk at a time and checks a chunk before it takes
    the next, so a move is written when ``lag`` more have been taken, the rest by
    :meth:`flush` once the simulation has returned: an illegal move stops the output
    before it (``lag=0`` where nothing is shown before the end, as in a JSON list).
    """

    def __init__(self, moves: Iterable[Move], write: Callable[[str], object],
                 lag: int = SIMULATE_CHUNK) -> None:
        self.moves, self.write, self.lag = moves, write, lag
        self.held: deque[str] = deque()

    def __iter__(self) -> Iterator[Move]:
        for m in self.moves:
            self.held.append(format_move(m) + "\n")
            if len(self.held) > self.lag:
                self.write(self.held.popleft())
            yield m

    def flush(self) -> None:
        while self.held:
            self.write(self.held.popleft())


def _label(s: Schedule) -> str:
    """A schedule's flags without ``-n`` and the budget, e.g. ``treeverse --inplace``."""
    return " ".join([s.method, *s.option_flags()])


#: Largest predicted number of forward steps ``pebbles compare`` simulates; above it a
#: row shows the method's closed-form count instead (marked ``formula``).
COMPARE_MAX_STEPS = 10**7


def _compare_schedules(n: int, budget: int, skipped: list[str]) -> list[Schedule]:
    """:func:`pebbles.candidates`, without the reversible optimum where its tables would
    take long to build (:func:`pebbles._reversible.reversible_tables_fit`)."""
    out = []
    for name in methods():
        entry = describe(name)
        for opts in entry.fit(n, budget) if entry.fit is not None else ():
            if name.startswith("reversible") and not reversible_tables_fit(n, budget):
                skipped.append(name)
                continue
            out.append(schedule(name, n, budget=budget, **opts))
    return out


def _compare_row(s: Schedule, budget: int) -> str:
    """One row of ``pebbles compare``: simulated, or from closed forms when it is too long."""
    n, entry = s.n, describe(s.method)
    steps = predicted_steps(s)
    held = entry.need(n, **dict(s.options)) if entry.need is not None else None
    if steps is None and s.game is not Game.REVERSIBLE:
        bound = min_forward_steps(n, budget if held is None else held, s.game)
        if bound > COMPARE_MAX_STEPS:  # even the optimum is too long to simulate
            return (f"{_label(s):<34} {s.game.value:<11} {'>=' + str(bound):>12} "
                    f"{bound / n:>8.3f} {'-':>5}  (not simulated: too long)")
    if steps is not None and steps > COMPARE_MAX_STEPS:
        peak, note = budget if held is None else held, "  (formula, not simulated)"
        shown = f"<={peak}" if held is None else str(peak)
    else:
        r = s.simulate()
        steps, peak, note = r.forward_steps, r.peak_states, ""
        shown = str(peak)
    if s.game is Game.REVERSIBLE and not reversible_tables_fit(n, peak):
        verdict = "? (the reversible optimum's tables are too large here)"
    else:
        best = min_forward_steps(n, peak, s.game)
        verdict = "yes" if steps == best else f"no ({best})"
    return (f"{_label(s):<34} {s.game.value:<11} {steps:>12} {steps / n:>8.3f} "
            f"{shown:>5}  {verdict}{note}")


def _cmd_compare(args: argparse.Namespace) -> int:
    n, budget = args.n, min(args.budget, args.n)  # more than n states: store-all anyway
    try:
        check_budget(n, budget, Game.INPLACE)  # the least budget any method finishes with
    except PebblesError as err:
        raise in_flags(err) from None
    tt = "T'/T"
    capped = f" (--pebbles {args.budget} is more than n: every state fits)" \
        if args.budget > n else ""
    lines = [f"# n={n}, budget={budget} states{capped}; T'/T = forward steps / n",
             f"{'method':<34} {'game':<11} {'steps':>12} {tt:>8} {'peak':>5}  optimal?"]
    skipped: list[str] = []
    for s in _compare_schedules(n, budget, skipped):
        lines.append(_compare_row(s, budget))
    if skipped:
        lines.append(f"# not shown (their exact tables take long to build at this n and "
                     f"budget): {', '.join(skipped)}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _io_costs(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """``--write-cost``/``--read-cost``, or measured on ``--disk-dir`` per ``--step-seconds``."""
    if args.disk_dir is None:
        if args.step_seconds is not None:
            raise PebblesValueError("--step-seconds is the step time the costs measured on "
                                    "--disk-dir are divided by: give --disk-dir DIR too, or "
                                    "drop it and give --write-cost and --read-cost")
        return args.write_cost, args.read_cost
    check_path_given("--disk-dir", args.disk_dir, "name the directory to measure, e.g. "
                     "--disk-dir /tmp, or give --write-cost and --read-cost instead")
    if args.state_bytes is None or args.step_seconds is None:
        raise PebblesValueError("--disk-dir measures the disk for states of --state-bytes "
                                "BYTES against a forward step of --step-seconds SECONDS: give both")
    from ._storage import measure_io

    try:
        io = measure_io(args.disk_dir, args.state_bytes)
    except PebblesValueError as exc:
        if not isinstance(exc.__cause__, (MemoryError, OSError)):
            raise
        raise PebblesValueError(
            f"--state-bytes {args.state_bytes}: the disk probe holds one state of that size in "
            f"memory, and it cannot be allocated here ({exc.__cause__}); give --write-cost "
            f"and --read-cost, or measure a smaller --state-bytes (times grow about "
            f"linearly with the size) and scale") from exc
    wc, rc = io.costs(args.step_seconds)
    return (wc if args.write_cost is None else args.write_cost,
            rc if args.read_cost is None else args.read_cost)


#: Above this n, ``pebbles plan`` with disk costs says on stderr that it is solving, on a
#: terminal with the seconds spent (both games: about 10 s at n = 10^5, 60-80 s at 10^6).
TWO_LEVEL_NOTICE_N = 10**5


#: Above this estimated work (``pebbles._planner.two_level_table_work``, about 3 s) the
#: notice is given at any n: a budget near n makes a small n slow.
TWO_LEVEL_NOTICE_WORK = 10**8


def _two_level_notice(args: argparse.Namespace) -> bool:
    """Whether ``plan`` with a disk says on stderr that it is solving the two-level table:
    where the planner solves one (its own estimate of the table's work,
    :func:`two_level_table_work`, is 0 where it skips the table), above
    :data:`TWO_LEVEL_NOTICE_N` or :data:`TWO_LEVEL_NOTICE_WORK`."""
    try:
        work = two_level_table_work(args.n, args.budget, memory=args.memory,
                                    state_bytes=args.state_bytes)
    except PebblesError:  # the plan refuses these arguments, after its own earlier checks
        return False
    return work > 0 and (args.n > TWO_LEVEL_NOTICE_N or work > TWO_LEVEL_NOTICE_WORK)


@contextlib.contextmanager
def _elapsed(message: str) -> Iterator[None]:
    """Show ``message`` on stderr while the block runs: on a terminal with the seconds
    spent, updated each second; elsewhere (a pipe, a log) once."""
    sys.stderr.write(message + ("" if sys.stderr.isatty() else "\n"))
    sys.stderr.flush()
    if not sys.stderr.isatty():
        yield
        return
    done, t0 = threading.Event(), time.monotonic()

    def tick() -> None:
        while not done.wait(1.0):
            sys.stderr.write(f"\r{message}: {time.monotonic() - t0:.0f} s")
            sys.stderr.flush()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        sys.stderr.write("\n")
        sys.stderr.flush()


#: ``pebbles plan``'s flags for the planner's argument names (:func:`in_flags`).
_PLAN_FLAGS = {"memory": "--memory", "state_bytes": "--state-bytes",
               "backward_cost": "--backward-cost", "directory": "--disk-dir"}


#: How ``pebbles plan`` is given the disk's costs (the fix of a :class:`NoDiskError`).
_DISK_COSTS_FIX = ("give --write-cost and --read-cost too, or --disk-dir DIR with --state-bytes "
                   "and --step-seconds to measure them")


def _cmd_plan(args: argparse.Namespace) -> int:
    try:
        return _plan(args)
    except NoDiskError as err:  # the planner's check, worded in flags
        raise PebblesValueError(f"{_FLAGS[err.argument]} {err.rule}: {_DISK_COSTS_FIX}"
                                ) from None
    except PebblesError as err:
        raise in_flags(err, flags=_PLAN_FLAGS) from None


def _plan(args: argparse.Namespace) -> int:
    if args.budget is not None and args.memory is not None:
        raise PebblesValueError("give either --pebbles S or --memory BYTES with --state-bytes "
                                "BYTES, not both")
    if args.budget is None and args.memory is None:
        raise PebblesValueError("plan needs a budget: --pebbles S, or --memory BYTES with "
                                "--state-bytes BYTES (e.g. --memory 2GiB --state-bytes 32MiB)")
    if args.budget is None and args.state_bytes is None:
        raise PebblesValueError(f"--memory {args.memory} needs --state-bytes BYTES (the bytes "
                                f"of one state) to turn into a budget, e.g. --state-bytes "
                                f"32MiB; or give --pebbles S instead of --memory")
    wc, rc = _io_costs(args)
    disk = wc is not None or rc is not None or args.disk_budget is not None
    if disk and None in (wc, rc):
        raise PebblesValueError(
            "a disk needs --write-cost and --read-cost (a state's write and read time over "
            "a forward step's), or --disk-dir DIR with --state-bytes and --step-seconds to "
            "measure them")
    long = disk and _two_level_notice(args)
    with _elapsed(f"# solving the two-level optimum of n={args.n} for both games (a minute or "
                  f"two at n = 10^6)") if long else contextlib.nullcontext():
        p = plan(args.n, args.budget, memory=args.memory, state_bytes=args.state_bytes,
                 backward_cost=args.backward_cost, disk_budget=args.disk_budget,
                 write_cost=wc, read_cost=rc, background_writes=args.background_writes)
    wide = max(34, *(len(_label(c.schedule)) for c in p.candidates))  # measured costs: long
    lines = [f"# n={p.n}, budget={p.budget} states besides s_0 (the executor holds "
             f"{p.best.states - p.budget} more), backward cost {p.backward_cost:g}x a forward "
             f"step; cost in forward-step units",
             f"{'method':<{wide}} {'game':<11} {'forward':>12} {'cost':>14} {'vs primal':>9}"]
    for c in p.candidates:
        lines.append(f"{_label(c.schedule):<{wide}} {c.game:<11} {c.forward_steps:>12} "
                     f"{_cost_text(c, p.backward_cost):>14} {c.cost / p.n:>9.2f}")
    b = p.best
    if p.memory is not None:
        lines.append(f"# memory held at most: {p.memory} bytes ({b.states} states)")
    if p.skipped:
        # a bare method name is the reversible optimum left out as too slow (Plan.skipped)
        why = [f"{m} (too slow to solve exactly here)" if m in methods() else m
               for m in p.skipped]
        lines.append(f"# not costed: {'; '.join(why)}")
    if b.needs_step_into:
        lines.append("# the in-place game: give pebbles.replay a step_into callback to reuse "
                     "buffers (without one it allocates a new state a step, same peak)")
    lines.append(f"recommended: pebbles schedule {b.schedule}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _cost_text(c: Candidate, backward_cost: float) -> str:
    """``c.cost`` in whole forward steps: exact when it is forward + backward_cost x backward
    steps (the float's last digits are noise from 2^53 on), else 7 digits there."""
    if c.cost == c.forward_steps + backward_cost * c.backward_steps:
        return str(round(c.forward_steps + Fraction(backward_cost) * c.backward_steps))
    return f"{c.cost:.0f}" if c.cost < 2**53 else f"{c.cost:.6e}"


def _cmd_methods(args: argparse.Namespace) -> int:
    lines = []
    for name in methods():
        entry = describe(name)
        opts = ["budget"] * entry.takes_budget + [k for k, _ in entry.options]
        lines.append(f"{name:<20} {', '.join(opts) or '-':<28} {entry.summary}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


# ---------------------------------------------------------------------------
# commands contributed by other packages
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Command:
    """A ``pebbles`` subcommand offered through the ``pebbles.commands`` entry points.

    ``add_arguments(parser)`` must not import heavy packages; ``run(args)``
    may, and an ImportError it raises becomes a one-line error.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _plugins() -> list[Command]:
    """The commands of the ``pebbles.commands`` entry points; one that cannot be loaded is
    left out with a warning on stderr (its package hidden by a file of the same name in
    the working directory, or uninstalled without its entry point)."""
    found = []
    for ep in metadata.entry_points(group="pebbles.commands"):
        try:
            command = ep.load()
        except ImportError as err:
            _plugin_warning(ep, f"cannot be imported ({err})")
            continue
        if isinstance(command, Command):
            found.append(command)
        else:
            _plugin_warning(ep, f"is of type {type(command).__name__}, not a pebbles.cli.Command")
    return found


def _plugin_warning(ep: metadata.EntryPoint, why: str) -> None:
    top = ep.value.partition(":")[0].partition(".")[0]
    sys.stderr.write(
        f"pebbles: warning: command {ep.name!r} ({ep.value}) {why}, so it is left out; a "
        f"file or folder named {top!r} in the working directory or on PYTHONPATH may hide "
        f"the installed package\n")


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="pebbles", description="Checkpointing schedules and pebble games "
                      "(Liu & Xu, Automatic differentiation in physics simulation).",
                      epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    p.add_argument("--version", action="version", version=f"pebbles {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=SubcommandParser)
    s = sub.add_parser("schedule", help="print or summarise a schedule", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_schedule_arguments(s)
    s.add_argument("--format", choices=("moves", "json", "summary"), default="moves",
                   help="moves: streamed, any length (default); json: the summary and up to "
                        f"{JSON_MAX_MOVES} moves; summary: the counts, up to "
                        f"{SUMMARY_MAX_MOVES} moves")
    s.set_defaults(run=_cmd_schedule)
    c = sub.add_parser("compare", help="table of all methods at one budget")
    c.add_argument("-n", type=positive, required=True, help="number of steps")
    c.add_argument("--pebbles", "--budget", dest="budget", type=budget_flag, required=True,
                   help="budget S: states held at once besides s_0, the working state included")
    c.set_defaults(run=_cmd_compare)
    q = sub.add_parser("plan", help="recommend a schedule for a memory budget")
    q.add_argument("-n", type=positive, required=True, help="number of steps")
    q.add_argument("--pebbles", "--budget", dest="budget", type=budget_flag,
                   help="budget S: states held at once besides s_0, the working state included "
                        "(or give --memory and --state-bytes)")
    q.add_argument("--memory", type=parse_bytes,
                   help="memory for states, e.g. 2GiB; GB, MB, KB are decimal (10^9, 10^6, "
                        "10^3 bytes), GiB, MiB, KiB binary (2^30, 2^20, 2^10)")
    q.add_argument("--state-bytes", type=parse_bytes,
                   help="bytes of one state, e.g. 32MiB, units as for --memory (sizes "
                        "--memory and --disk-dir)")
    q.add_argument("--backward-cost", type=nonnegative_float, default=1.0,
                   help="backward step cost / forward step cost (1)")
    add_disk_arguments(q)
    add_background_argument(q)
    q.add_argument("--disk-dir", help="measure the write and read costs on this directory")
    q.add_argument("--step-seconds", type=positive_float,
                   help="seconds of one forward step (with --disk-dir)")
    q.set_defaults(run=_cmd_plan)
    m = sub.add_parser("methods", help="list the schedules and their options")
    m.set_defaults(run=_cmd_methods)
    for command in _plugins():
        d = sub.add_parser(command.name, help=command.help)
        command.add_arguments(d)
        d.set_defaults(run=command.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 on bad input, 130 on Ctrl-C)."""
    try:
        parser = _parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        sys.stderr.write("pebbles: interrupted\n")
        return 130
    if _closed_stdout(f"pebbles {args.command}", args):
        return 2
    return guarded(f"pebbles {args.command}", lambda: args.run(args),
                    (ValueError, TypeError, OSError, OverflowError))
