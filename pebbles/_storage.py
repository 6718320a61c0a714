"""Storage for the disk level of two-level checkpointing: a memory store and a disk store.

The second storage level of multistage checkpointing (Stumm & Walther, "MultiStage
approaches for optimal offline checkpointing", SIAM J. Sci. Comput. 2009; Aupy,
Herrmann, Hovland & Robert 2016): the schedules are :mod:`pebbles._twolevel`'s, this
module only keeps the states they send to disk.

The executors of two-level schedules (:mod:`pebbles._twolevel`: ``store i``,
``load i``, ``discard i``) talk to a :class:`Store`: ``put(key, array)`` keeps a
copy of the state, ``get(key)`` returns it, ``delete(key)`` frees it, ``close()``
frees everything. :class:`MemoryStore` keeps copies in a dict (for tests and
for states that fit). :class:`DiskStore` writes one ``.npy`` file per state into
a folder of its own, made inside the directory it is given (the system's
temporary directory by default), from a background thread, so that the writes
overlap with the computation; a bounded queue limits the copies waiting to be
written, and ``get`` waits for a pending write of its key. Stores sharing a
directory never see each other's files, and no other file there is touched.
Whatever happens -- success, an exception, ``KeyboardInterrupt`` -- closing
the store (it is a context manager) deletes every file it wrote and every
folder it made, unless ``keep=True``; a ``KeyboardInterrupt`` within a call of
the store leaves it whole (:class:`_Writer` says how). A full disk (``ENOSPC``, or a write cut
short) in the writer thread is raised in the caller's thread as
:class:`DiskFullError`, naming the directory and the bytes needed, after every
file and folder of the store has been freed.

:func:`measure_io` times a write and a read of a given size in a directory,
for the ``write_cost`` / ``read_cost`` of the two-level schedules.
"""

from __future__ import annotations

import errno
import math
import mmap
import numbers
import os
import queue
import re
import secrets
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar

import numpy as np
from numpy.typing import DTypeLike

from ._errors import PebblesError, PebblesTypeError, PebblesValueError, rebuilt
from ._validation import a_kind, check_bool, check_cost, check_int

__all__ = ["CACHE_SPEED", "MAP_BYTES", "PROBE_BYTES", "DiskFullError", "DiskStore", "IOCost",
           "MemoryStore", "Store", "StoreError", "mapped_empty", "measure_io"]

Key = int | str
_KEY = re.compile(r"[A-Za-z0-9_.-]+")
#: A str key that reads as an int key: its file name is kept apart from the int's.
_INT_TEXT = re.compile(r"-?[0-9]+")
#: An upper-case letter of a str key: its file name marks it (:func:`_file_name`).
_UPPER = re.compile(r"[A-Z]")
#: NumPy's message for a write the disk cut short (``tofile``; it carries no ``errno``).
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
#: Error numbers of a full disk: no space left, or the user's quota used up.
_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
#: Name prefix of the folder a :class:`DiskStore` makes for its files.
FOLDER_PREFIX = "pebbles-store-"


class StoreError(PebblesError, OSError):
    """A store could not keep, return or free a state.

    Attributes
    ----------
    key : int, str or None
        The key of the state whose background write failed (a :class:`DiskStore`'s
        writer error, raised at whichever later call of the store met it); ``None``
        for an error of the call itself.
    """

    key: Key | None = None


class DiskFullError(StoreError):
    """The disk of a :class:`DiskStore` is full; every file and folder of the store has
    been freed.

    Attributes
    ----------
    directory : str
        The directory the store was given (its ``parent``), on the disk that is full.
    needed : int
        Bytes of data of the state whose write failed (its file adds a small header).
    """

    def __init__(self, directory: str, needed: int, key: Key, *, fix: str | None = None
                 ) -> None:
        self._fix = fix
        fix = fix or (f"Free at least {needed} bytes there per disk slot, pass a directory "
                      f"on a larger disk, or use fewer disk slots")
        super().__init__(
            errno.ENOSPC,
            f"disk full: writing state {key!r} ({needed} bytes of data) to {directory} "
            f"failed; the store freed all its files. {fix}")
        self.directory, self.needed, self.key = directory, needed, key

    def __reduce__(self) -> tuple[object, ...]:
        return rebuilt(self, self.directory, self.needed, self.key, fix=self._fix)


#: Arrays of at least this many bytes get their own memory map in :func:`mapped_empty`.
MAP_BYTES = 1 << 20


def mapped_empty(shape: int | tuple[int, ...], dtype: DTypeLike = np.float64
                 ) -> np.ndarray:
    """An uninitialised C-ordered array in a private anonymous memory map of its own.

    For state-sized buffers: their pages go back to the system the moment the
    array is freed, so they neither stay resident as freed heap memory nor
    leave holes in the C allocator's heap that make a later run's states land
    above it (glibc serves blocks up to 32 MiB from its heap once one such
    block was freed: one timing probe before a run then raised the run's peak
    resident memory by a state). Like NumPy's large arrays, the map asks for
    transparent huge pages (unless ``NUMPY_MADVISE_HUGEPAGE=0``). Arrays under
    :data:`MAP_BYTES`, and every array where the platform has no anonymous
    maps, come from ``np.empty``.

    Parameters
    ----------
    shape : int or tuple of int
        Shape of the array.
    dtype : data-type, default numpy.float64
        Element type (an object dtype always comes from ``np.empty``).

    Returns
    -------
    numpy.ndarray
        A writeable, uninitialised, C-contiguous array.

    Raises
    ------
    PebblesTypeError
        If ``shape`` is not an int or a tuple of ints, or ``dtype`` is not a NumPy data
        type (``None`` included).
    PebblesValueError
        If a length is negative, or the array would hold more bytes than
        ``sys.maxsize``.
    MemoryError, OSError
        If the memory cannot be allocated.

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import mapped_empty
    >>> a = mapped_empty((4, 512, 512))
    >>> a[...] = 1.0
    >>> a.shape, a.dtype, a.flags.c_contiguous, a.flags.writeable, float(a.sum())
    ((4, 512, 512), dtype('float64'), True, True, 1048576.0)
    """
    dtype = _check_dtype(dtype)
    shape = _check_shape(shape)
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes > sys.maxsize:
        raise PebblesValueError(
            f"shape={shape} of dtype={dtype} asks for {nbytes} bytes, more than an array "
            f"can hold ({sys.maxsize}); pass a smaller shape")
    if nbytes < MAP_BYTES or dtype.hasobject or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(shape, dtype)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if _HUGE is not None:
        buf.madvise(_HUGE)  # as NumPy does for its large arrays: faster kernels
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)


def _check_shape(shape: object) -> tuple[int, ...]:
    """``shape`` of :func:`mapped_empty` as a tuple of ints ``>= 0``, each checked."""
    if isinstance(shape, (tuple, list)):
        return tuple(check_int(f"shape[{k}]", v, 0) for k, v in enumerate(shape))
    if isinstance(shape, bool) or not isinstance(shape, numbers.Integral):
        raise PebblesTypeError(f"shape={shape!r:.60} must be an int >= 0 or a tuple of "
                               f"them; pass e.g. shape=(4, 512)")
    return (check_int("shape", shape, 0),)


def _check_dtype(dtype: object) -> np.dtype:
    """``dtype`` of :func:`mapped_empty` as a NumPy dtype (``None`` and an empty record
    refused: neither names an element type)."""
    try:
        out = None if dtype is None else np.dtype(dtype)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        raise PebblesTypeError(f"dtype={dtype!r:.60} is not a NumPy data type ({exc}); "
                               f"pass e.g. dtype=numpy.float64") from exc
    if out is None or (out.names is not None and not out.names):
        raise PebblesTypeError(f"dtype={dtype!r:.60} names no element type; pass e.g. "
                               f"dtype=numpy.float64 (the default)")
    return out


#: ``madvise`` flag of transparent huge pages, unless NumPy's own setting turns them off.
_HUGE = (getattr(mmap, "MADV_HUGEPAGE", None)
         if os.environ.get("NUMPY_MADVISE_HUGEPAGE", "1") != "0" else None)


#: Longest file name, in bytes, that the file systems take (``NAME_MAX``): a key whose
#: :class:`DiskStore` file name would be longer is refused (:func:`_check_key`).
NAME_MAX = 255
#: Keys that fit any file name of :data:`NAME_MAX` (``state-str+<key>.npy``: 14 more
#: bytes; a mark before each upper-case letter): ints of at most ``_SHORT`` digits, strs
#: of at most ``_SHORT_STR`` characters.
_SHORT = NAME_MAX - 14
_SHORT_STR = _SHORT // 2
_SHORT_INT = 10**_SHORT


def _check_key(key: object) -> Key:
    """``key`` as an int or a str, after checking its type, characters and length."""
    if isinstance(key, bool) or not isinstance(key, (int, np.integer, str)):
        raise PebblesTypeError(f"key={key!r} must be an int or a str, got {type(key).__name__}")
    if isinstance(key, str) and not _KEY.fullmatch(key):
        raise PebblesValueError(
            f"key={key!r:.80} must be letters, digits, '_', '-' or '.'; pass e.g. key='s12'")
    key = key if isinstance(key, str) else int(key)
    if len(key) > _SHORT_STR if isinstance(key, str) else not -_SHORT_INT < key < _SHORT_INT:
        _check_key_length(key)  # only a long key needs the file name's exact length
    return key


def _check_key_length(key: Key) -> None:
    """Refuse a key whose file (``state-<key>.npy``, ``state-str+<key>.npy``, a ``^``
    before each upper-case letter) would have a name longer than :data:`NAME_MAX` bytes,
    which no file system takes."""
    if isinstance(key, str):
        length, marks = len(key), len(_UPPER.findall(key))
        prefix = "state-str+" if _INT_TEXT.fullmatch(key) else "state-"
    else:  # str() of a huge int may be refused: count its digits
        length = (int(abs(key).bit_length() * math.log10(2)) + 1
                  if abs(key).bit_length() > 4 * NAME_MAX else len(str(key)))
        marks, prefix = 0, "state-"
    most = NAME_MAX - len(prefix) - len(".npy")
    if length + marks <= most:
        return
    shown = (repr(key) if length <= 40 else f"an int of {length} digits"
             if isinstance(key, int) else f"{key[:20]!r}... ({length} characters)")
    upper = (", an upper-case letter counting two (its file name marks each with '^', so "
             "that 'a' and 'A' have two files where the file system ignores case)"
             if marks else "")
    raise PebblesValueError(
        f"key={shown} is too long: a key may have at most {most} characters{upper}, as "
        f"its DiskStore file {prefix}<key>.npy must fit the file system's {NAME_MAX}-byte "
        f"limit on file names; pass a shorter key, e.g. key='s12'")


_StoreT = TypeVar("_StoreT", bound="Store")  # __enter__ returns the store itself


class Store:
    """The storage protocol: ``put``, ``get``, ``delete``, ``close``; a context manager.

    Subclasses implement the four methods; ``with store:`` closes it on exit,
    whatever the exit. Keys are ints (the executors use the cell number: a
    NumPy integer is taken as an int) or strs of letters, digits, ``_``,
    ``-`` and ``.``; any other key is refused with an error (``DiskStore``
    names its files ``state-<key>.npy``, ``state-str+<key>.npy`` for a str key
    of digits such as ``"5"``, which is not the int key ``5``, with a ``^``
    before each upper-case letter, so that ``"a"`` and ``"A"`` have two files
    where the file system ignores case; a file name has at most 255 bytes, so a
    key has at most 245 characters, 241 for a str of digits, an upper-case
    letter counting two). A store that
    writes in the background may also take buffers from its caller to hold the
    copies being written (``borrows``, ``put(..., into=buffer)``,
    :meth:`reclaim`), so that an executor with free state buffers adds no memory
    for them. ``get(key)`` returns a new array; a store whose ``get`` also takes
    ``out=`` (a buffer to fill) lets the executors reuse their buffers for loads.
    """

    #: Whether ``put`` accepts ``into=``: a free buffer of the caller's that the
    #: store copies the state into and hands back through :meth:`reclaim`.
    borrows: bool = False

    def put(self, key: Key, array: np.ndarray, into: np.ndarray | None = None) -> None:
        """Keep a copy of ``array`` under ``key`` (the caller may reuse ``array`` at once).

        ``into`` (only where ``borrows``): a free C-contiguous buffer of the same
        shape and dtype, lent for the copy; the caller must not touch it until
        :meth:`reclaim` returns it.
        """
        raise NotImplementedError

    def reclaim(self, wait: bool = False) -> list[np.ndarray]:
        """The buffers lent through ``put(..., into=)`` that the store is done with.

        With ``wait``, first wait until at least one comes back, when any is
        still in use. A store that never borrows returns ``[]``.
        """
        return []

    def get(self, key: Key, out: np.ndarray | None = None) -> np.ndarray:
        """Return the array kept under ``key``: a new array, or ``out`` filled with it.

        ``out`` is optional in the protocol: the executors pass it only to a store
        whose ``get`` takes it, and never pass ``out=None``.
        """
        raise NotImplementedError

    def delete(self, key: Key) -> None:
        """Free the copy kept under ``key``."""
        raise NotImplementedError

    def close(self) -> None:
        """Free everything; safe to call more than once."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: a closed store refuses ``put``, ``get`` and
        ``delete`` (``replay`` refuses it up front; a store of your own without this
        property is taken as open)."""
        return False

    @property
    def writing(self) -> bool:
        """Whether a copy is being written in the background now (a store that writes
        in the caller's thread: never). Compute that runs meanwhile shares the machine
        with the writer: a solver may pick its thread count from this."""
        return False

    def __enter__(self: _StoreT) -> _StoreT:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class MemoryStore(Store):
    """A store that keeps copies in memory.

    Examples
    --------
    >>> import numpy as np
    >>> from pebbles import MemoryStore
    >>> with MemoryStore() as st:
    ...     st.put(3, np.arange(4.0))
    ...     st.get(3).tolist(), len(st)
    ([0.0, 1.0, 2.0, 3.0], 1)
    """

    def __init__(self) -> None:
        self._data: dict[Key, np.ndarray] = {}
        self._unused: list[np.ndarray] = []  # buffers lent to put: handed back unused
        self.bytes_written = self.bytes_read = 0
        self._closed = False

    def _open(self, key: Key, call: str) -> Key:
        """``key`` checked, on a store that is not closed."""
        if self._closed:
            raise StoreError(f"{call}({key!r}): the memory store is closed; make a new "
                             f"MemoryStore()")
        return _check_key(key)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, key: Key, array: np.ndarray, into: np.ndarray | None = None) -> None:
        key = self._open(key, "put")
        if key in self._data:
            raise StoreError(f"put({key!r}): the store already holds {key!r}; delete it first")
        self._data[key] = np.array(array, copy=True)
        self.bytes_written += self._data[key].nbytes
        if into is not None:
            self._unused.append(into)

    def reclaim(self, wait: bool = False) -> list[np.ndarray]:
        out, self._unused = self._unused, []
        return out

    def get(self, key: Key, out: np.ndarray | None = None) -> np.ndarray:
        key = self._open(key, "get")
        if key not in self._data:
            raise StoreError(f"get({key!r}): the store holds no {key!r}")
        out = _into(self._data[key], out)
        self.bytes_read += out.nbytes
        return out

    def delete(self, key: Key) -> None:
        if self._data.pop(self._open(key, "delete"), None) is None:
            raise StoreError(f"delete({key!r}): the store holds no {key!r}")

    def close(self) -> None:
        self._closed = True
        self._data.clear()
        self._unused.clear()


class DiskStore(Store):
    """One ``.npy`` file a state, in a folder of its own, written by a background thread.

    Keys are ints or strs of letters, digits, ``_``, ``-`` and ``.`` (the file
    of key ``k`` is ``state-<k>.npy``; of a str key that reads as an int, such as
    ``"5"``, ``state-str+5.npy``, apart from the int key ``5``; a ``^`` marks each
    upper-case letter, ``"aB"``: ``state-a^B.npy``, so that keys that differ in
    case only have two files on a file system that ignores case, as on macOS and
    Windows); a float, tuple or other key is refused.

    A ``KeyboardInterrupt`` anywhere in a call of the store leaves it whole: the
    call's write is either queued (the store holds the key, as after the call) or
    undone, no lock is left held, and the writer thread goes on (or, in
    ``close``, stops, and the files are freed all the same).

    Parameters
    ----------
    directory : str or os.PathLike, optional
        The directory to make the store's folder in (created, with its missing
        parents, if missing). The store writes only into that new folder
        (:attr:`directory`), so stores sharing a directory never touch each
        other's files, nor any other file there. A relative path is taken
        from the working directory when the store is made: a later
        ``os.chdir`` changes nothing (:attr:`parent` is absolute). Default: the
        system's temporary directory.
    keep : bool
        Leave the files, the store's folder and the directories it created in
        place at close (the files are ``state-<key>.npy`` in
        :attr:`directory`, a folder only its owner may read, mode 0700 as
        ``tempfile.mkdtemp`` makes one); a failed write frees them all the same.
        A store that is never closed is closed when it is collected, or at the
        latest when the interpreter exits.
    queue_size : int
        Most copies of its own the store holds at once for writing, the one
        being written included: ``put`` waits for a write to finish before it
        copies beyond that, and copies into the buffer of a finished write of
        the same shape and dtype when it was waiting for that write (a burst of
        writes allocates it once; an idle store holds no copy), so the store
        adds at most ``queue_size`` states (of one shape) to the process's
        memory. Copies into buffers lent with ``put(..., into=buffer)`` add no
        memory and do not count: the executors lend their free state buffers
        (:meth:`reclaim` hands each back once it is written).

    Attributes
    ----------
    directory : str
        The store's own folder, which holds its files: a new folder named
        ``pebbles-store-*`` inside ``parent``, made by the store alone (made anew, under
        another name, when a replay that met a failed background write of the store
        ends: the failure freed the folder, and the store serves the next replay).
    parent : str
        The directory given, as an absolute path (or the system's temporary directory).

    Raises
    ------
    PebblesTypeError
        ``directory`` is not a path, ``keep`` not a bool, or ``queue_size`` not an
        integer; ``put`` of an object array.
    PebblesValueError
        ``queue_size`` is below 1.
    StoreError
        The store's folder cannot be made there (a file in the way, no permission,
        a NUL character in the path);
        ``get`` of a file damaged or deleted by something other than the store.

    Examples
    --------
    >>> import numpy as np, os
    >>> from pebbles import DiskStore
    >>> with DiskStore() as st:
    ...     st.put(5, np.ones(3))
    ...     a = st.get(5)
    ...     folder = st.directory
    >>> a.tolist(), os.path.exists(folder)
    ([1.0, 1.0, 1.0], False)
    """

    borrows = True

    def __init__(self, directory: str | os.PathLike | None = None, keep: bool = False, *,
                 queue_size: int = 2) -> None:
        queue_size = check_int("queue_size", queue_size, 1)
        keep = check_bool("keep", keep)
        parent = _check_directory(directory)
        made: list[str] = []  # filled as the folders are made: a Ctrl-C anywhere loses none
        try:
            _make_folder(parent, directory, made)
            self._w = w = _Writer(parent, made, keep, queue_size)
        except BaseException:
            _remove_folders(made)
            raise
        self.parent, self.directory = parent, w.directory
        self.bytes_written = self.bytes_read = 0
        self._closed = self._reported = False
        self._met: BaseException | None = None  # the failure a replay met (_recover)
        # The thread and the finalizer hold the writer's state, never the store: a store
        # nobody references any more is collected, and its files freed, like one closed.
        try:
            self._thread = threading.Thread(target=w.run, name="pebbles-disk-store",
                                             daemon=True)
            self._thread.start()
            self._finalizer = weakref.finalize(self, w.finish, self._thread)
        except BaseException:  # no thread, or a Ctrl-C: nothing of the store is left
            w.stopping = True
            w.queue.put(None)  # a writer that started ends
            _remove_folders(w.made)
            raise

    def __reduce__(self) -> tuple[object, ...]:
        """Refused: the store's folder, files and writer thread belong to this process
        (pickle and :mod:`copy` would share or lose them)."""
        raise PebblesTypeError(
            f"a DiskStore cannot be pickled or copied (its files in {self.directory!r} and "
            f"its writer thread belong to this store); make a new pebbles.DiskStore(...) "
            f"where one is needed, e.g. after unpickling an OnlineScheduler")

    @property
    def keep(self) -> bool:
        """Whether :meth:`close` leaves the files (may be changed until then)."""
        return self._w.keep

    @keep.setter
    def keep(self, value: bool) -> None:
        self._w.keep = check_bool("keep", value)

    def __len__(self) -> int:
        return len(self._w.files)

    @property
    def writing(self) -> bool:
        return bool(self._w.pending)

    def path(self, key: Key) -> str:
        """The file that holds ``key``."""
        return self._w.path(_check_key(key))

    def put(self, key: Key, array: np.ndarray, into: np.ndarray | None = None) -> None:
        key, w = _check_key(key), self._w
        self._raise_if_failed()
        if key in w.files:
            raise StoreError(f"put({key!r}): the store already holds {key!r}; delete it first")
        array = np.asarray(array)  # a list or a scalar too, as MemoryStore takes them
        if array.dtype.hasobject:
            raise PebblesTypeError(
                f"put({key!r}) got an array of dtype {array.dtype}: a DiskStore writes arrays "
                f"of numbers (.npy files without pickles); pack the state into a numeric "
                f"array, or use pebbles.MemoryStore()")
        item = _Write(key, w.path(key), lent=into is not None)
        try:
            if into is None:
                self._take_room(item)
                item.array = self._copy(array)
            else:
                item.array = _lent_copy(array, into)
            with w.lock:
                w.pending[key] = item
                w.files[key] = item.name
            w.queue.put(item)
        except BaseException:  # a Ctrl-C can land anywhere: finish or undo what was begun
            self._settle(item)
            raise
        self.bytes_written += array.nbytes

    def _settle(self, item: _Write) -> None:
        """Leave the store whole after a ``put`` that stopped part way (an error, or a
        ``KeyboardInterrupt`` at any point): a write it registered is queued, maybe a second
        time (the writer takes each write once), and is then the store's like any other;
        one it did not register gives back its room and leaves no name in the store."""
        w = self._w
        with w.lock:
            registered = w.pending.get(item.key) is item
            if registered:
                w.files[item.key] = item.name
            elif not item.done:
                w.own.discard(item)
                if w.files.get(item.key) is item.name:
                    del w.files[item.key]
        if registered:
            w.queue.put(item)

    def reclaim(self, wait: bool = False) -> list[np.ndarray]:
        w = self._w
        while True:
            with w.lock:
                out, w.returned = w.returned, []
                busy = w.lent > 0
            if out or not wait or not busy or w.error is not None or not w.running:
                break
            w.bell.acquire(timeout=CALLER_POLL)
        if w.error is not None:
            self._reported = True
            raise w.error
        if wait and not out and busy and not self._closed and not w.running:
            self._raise_if_failed()  # the writer died: the lent buffers never come back
        return out

    def _take_room(self, item: _Write) -> None:
        """Wait until the store may hold one more copy of its own, and count ``item``'s."""
        w = self._w
        try:
            while True:
                with w.lock:
                    if len(w.own) < w.queue_size:
                        w.own.add(item)
                        return
                    w.waiting.add(item)  # the writer keeps a finished buffer for it
                self._raise_if_failed()  # the writer stopped: do not wait for it
                w.bell.acquire(timeout=CALLER_POLL)
        finally:
            with w.lock:
                w.waiting.discard(item)

    def _copy(self, array: np.ndarray) -> np.ndarray:
        """A C-ordered copy of ``array``, in the buffer of a finished write when one fits
        (no new memory to map and fault in at every write)."""
        w = self._w
        with w.lock:
            fits = [k for k, b in enumerate(w.spares)
                    if b.shape == array.shape and b.dtype == array.dtype]
            spare = w.spares.pop(fits[0]) if fits else None
        if spare is None:
            spare = mapped_empty(array.shape, array.dtype)
        np.copyto(spare, array)  # outside the lock: the writer needs it meanwhile
        return spare

    def get(self, key: Key, out: np.ndarray | None = None) -> np.ndarray:
        key, w = _check_key(key), self._w
        _check_buffer(out, contiguous=True)
        self._wait(key)
        name = w.files.get(key)
        if name is None:
            raise StoreError(f"get({key!r}): the store holds no {key!r}")
        try:
            out = _read_npy(name, out)
        except FileNotFoundError as exc:
            raise StoreError(
                f"get({key!r}): its file {name} was deleted by something other than the "
                f"store; leave the store's folder {self.directory} to the store until it is "
                f"closed") from exc
        except StoreError:
            raise
        except OSError as exc:  # a folder in the file's place, a file made unreadable
            raise StoreError(
                f"get({key!r}): its file {name} cannot be read ({exc.strerror or exc}); "
                f"something other than the store changed it: leave the store's folder "
                f"{self.directory} to the store until it is closed") from exc
        self.bytes_read += out.nbytes
        return out

    def delete(self, key: Key) -> None:
        key, w = _check_key(key), self._w
        self._wait(key)
        name = w.files.get(key)
        if name is None:
            raise StoreError(f"delete({key!r}): the store holds no {key!r}")
        _unlink(name)  # first: cut short, the key stays listed and close frees its file
        with w.lock:
            if w.files.get(key) is name:
                del w.files[key]

    def close(self) -> None:
        """Stop the writer, delete every file (unless ``keep``); raise a writer error."""
        if self._closed:
            return
        try:
            self._finalizer()
        finally:
            if not self._w.finished:  # a Ctrl-C landed before finish() began
                self._finalizer.detach()
                self._w.finish(self._thread)
            self._closed = True
        if self._w.error is not None and not self._reported:
            self._reported = True
            raise self._w.error

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def _failure(self) -> BaseException | None:
        """The writer's error, once a background write failed (the store freed its files
        and raises it at every call), until :meth:`_recover` clears it."""
        return self._w.error

    def _recover(self, met: list[BaseException]) -> bool:
        """Make a store whose background write failed usable again, once the replay that
        met its error (one of ``met``) has ended: wait for the writes queued before the
        failure (skipped), free what is left, make the store's folder anew (under a new
        name: :attr:`directory` changes) and clear the error. Whether it did: not for an
        error no one met, a writer that stopped, a file that resists deletion or a folder
        that cannot be made again (the store stays failed: close it, make a new one). A
        Ctrl-C in it leaves the failure met: the next replay recovers the store first."""
        w = self._w
        if w.error is None or not any(err is w.error for err in met) or self._closed:
            return False
        self._met = w.error
        while w.pending and w.running:
            w.bell.acquire(timeout=CALLER_POLL)
        w.free_all()
        if w.pending or w.files or not w.running:
            return False
        made: list[str] = []
        try:
            _make_folder(self.parent, self.parent, made)
            with w.lock:
                w.made, w.directory, w.error = made, made[-1], None
                w.spares.clear()
                w.returned.clear()
        except StoreError:
            return False
        except BaseException:  # a Ctrl-C: the store stays failed, without the new folder
            if w.error is not None:
                _remove_folders(made)
            raise
        self.directory, self._reported = w.directory, False
        return True

    def _wait(self, key: Key) -> None:
        """Wait for the pending write of ``key``, if any, looking every
        :data:`CALLER_POLL` seconds whether the writer failed or died meanwhile."""
        w = self._w
        while key in w.pending:
            self._raise_if_failed()  # a writer that stopped never finishes the write
            w.bell.acquire(timeout=CALLER_POLL)
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        """Raise the writer's error, or a :class:`StoreError` if the store is closed or
        its writer thread died without reporting one (its queued writes are lost)."""
        if self._w.error is not None:
            self._reported = True
            raise self._w.error
        if self._closed:
            raise StoreError(f"the store on {self.directory} is closed, and a closed store "
                             f"cannot be used again (its files are freed); make a new "
                             f"DiskStore")
        if not self._w.running:
            raise StoreError(
                f"the writer thread of the store on {self.directory} stopped without "
                f"reporting an error, so the states queued for writing are lost; close the "
                f"store (it frees its files) and make a new one")


#: Seconds the writer thread of a :class:`DiskStore` waits on its queue before it looks
#: again whether the store is closing (:meth:`_Writer.run`).
WRITER_POLL = 0.25
#: Seconds a call of a :class:`DiskStore` waits for the writer (a write, room, a lent
#: buffer) before it looks again whether the writer failed or died; a finished write
#: wakes one waiting call at once.
CALLER_POLL = 0.05


class _Write:
    """A state queued for the writer thread: its ``key``, file ``name`` and copy
    ``array`` (in a buffer the caller ``lent``, or the store's own); ``taken`` once the
    writer has it, ``done`` once it is written (or skipped: the store failed, or the key
    was freed meanwhile)."""

    __slots__ = ("array", "done", "key", "lent", "name", "taken")

    def __init__(self, key: Key, name: str, lent: bool) -> None:
        self.key, self.name, self.lent = key, name, lent
        self.array: np.ndarray | None = None
        self.taken = self.done = False


class _Writer:
    """What a :class:`DiskStore` shares with its writer thread and its finalizer: the
    files, the queue and the locks (never the store itself).

    A Ctrl-C's ``KeyboardInterrupt`` is raised in the caller's thread wherever the
    interpreter runs signal handlers (after any call returns, in loops, as a function
    starts), in the Python code of ``threading`` and ``queue`` too, whose ``Condition``,
    ``Event``, ``Semaphore``, ``Queue`` and ``Thread.join`` it can cut in half (a lock
    left held, a wake-up lost, a count off by one, a running thread taken for ended).
    So the caller's side uses only what C does at once: a plain lock held in ``with``
    blocks, a ``SimpleQueue``, :attr:`running` (the writer's own flag), and
    :attr:`bell`, a second plain lock that the writer releases after each write and a
    waiting call acquires with a timeout. Every change a call makes to what is shared
    names its :class:`_Write` (``pending``, ``files``, ``own``, ``waiting``), so that
    ``put``'s cleanup (:meth:`DiskStore._settle`) can tell what was done and finish or
    undo it (one Ctrl-C raises one ``KeyboardInterrupt``: the cleanup it runs, and
    ``close``'s, are not cut short themselves).
    """

    def __init__(self, parent: str, made: list[str], keep: bool, queue_size: int) -> None:
        self.parent, self.made, self.directory = parent, made, made[-1]  # made: outermost first
        self.keep, self.queue_size = keep, queue_size
        self.files: dict[Key, str] = {}      # key -> file written or being written
        self.pending: dict[Key, _Write] = {}  # key -> its write, until the writer is done
        self.lock = threading.Lock()
        self.bell = threading.Lock()  # released by the writer at every finished write
        self.bell.acquire()
        self.error: BaseException | None = None
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.own: set[_Write] = set()  # writes of copies of the store's own (room taken)
        self.waiting: set[_Write] = set()  # puts waiting for room
        self.spares: list[np.ndarray] = []  # buffers of finished writes, for reuse
        self.returned: list[np.ndarray] = []  # lent buffers written, not yet reclaimed
        self.stopping = False  # finish() has begun: the writer ends once the queue is empty
        # Whether the writer thread runs: its own flag, as Thread.is_alive() and join() that
        # a Ctrl-C cuts short mark a running thread as stopped (CPython's bpo-45274 fix).
        self.running = True
        self.finished = False  # finish() has freed what it frees

    @property
    def lent(self) -> int:
        """Lent buffers queued or being written."""
        return sum(item.lent for item in list(self.pending.values()))

    def path(self, key: Key) -> str:
        return os.path.join(self.directory, _file_name(key))

    def run(self) -> None:
        """The writer thread: write each queued state, until ``None``, or until
        :meth:`finish` has begun and nothing is queued (it looks every
        :data:`WRITER_POLL` seconds)."""
        try:
            while True:
                try:
                    item = self.queue.get(timeout=WRITER_POLL)
                except queue.Empty:
                    if self.stopping:
                        return
                    continue
                if item is None:
                    return
                if not item.taken:  # a put cut short queues its write a second time
                    item.taken = True
                    self.take(item)
                item = None
        finally:
            self.running = False
            self.ring()

    def take(self, item: _Write) -> None:
        """Write ``item`` (unless the store failed, or its key was freed meanwhile), hand
        its buffer back, and ring :attr:`bell`."""
        try:
            if self.error is None and self.files.get(item.key) is item.name:
                self.write(item.key, item.array)
                if self.files.get(item.key) is not item.name:  # freed while it was written
                    _unlink(item.name, quiet=True)
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller's thread
            self.fail(item.key, item.array.nbytes, exc)
        finally:
            with self.lock:
                if self.pending.get(item.key) is item:
                    del self.pending[item.key]
                self.own.discard(item)
                if item.lent:
                    self.returned.append(item.array)  # back to its owner
                elif self.waiting and len(self.spares) < self.queue_size:
                    self.spares.append(item.array)  # a put waits: it copies into this
                item.array, item.done = None, True
            self.ring()

    def ring(self) -> None:
        """Wake a call waiting on :attr:`bell` (a write finished, or the writer ended)."""
        try:
            self.bell.release()
        except RuntimeError:  # rung already, and not heard yet
            pass

    def write(self, key: Key, array: np.ndarray) -> None:
        with open(self.path(key), "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    def fail(self, key: Key, nbytes: int, exc: BaseException) -> None:
        if _disk_full(exc):
            err: BaseException = DiskFullError(self.parent, nbytes, key)
        else:
            err = StoreError(f"writing state {key!r} ({nbytes} bytes) to {self.directory} "
                             f"failed: {exc!r}; the store freed all its files")
        err.__cause__ = exc
        err.key = key
        self.error = err
        self.free_all()

    def free_all(self) -> None:
        """Delete every file of the store, then every folder it made that is empty.

        A file that cannot be deleted does not stop the others (the writer thread calls
        this and must live on to report its error); it stays listed, and the store's
        close tries it again.
        """
        with self.lock:
            items = list(self.files.items())
        for key, name in items:  # each unlisted once gone: a Ctrl-C here loses none
            if _unlink(name, quiet=True):
                with self.lock:
                    if self.files.get(key) is name:
                        del self.files[key]
        _remove_folders(self.made)

    def finish(self, thread: threading.Thread) -> None:
        """Stop the writer ``thread`` and delete the files (unless ``keep``): the store's
        ``close()``, its collection or the interpreter's exit, whichever comes first.
        A ``KeyboardInterrupt`` that cuts the wait for the writer short waits again (it
        may still be writing a file), then frees the files all the same."""
        other = thread is not threading.current_thread()
        try:
            self.stopping = True
            self.queue.put(None)
            self.wait_stopped(other)
        finally:
            try:
                self.wait_stopped(other)
            finally:
                with self.lock:
                    self.spares.clear()
                    self.returned.clear()
                if not self.keep:
                    self.free_all()
                self.finished = True
        if other:
            thread.join()  # ending: the writer has left run()

    def wait_stopped(self, other: bool) -> None:
        """Wait until the writer has left :meth:`run` (``other``: it is another thread)."""
        while other and self.running:
            self.bell.acquire(timeout=CALLER_POLL)


def _file_name(key: Key) -> str:
    """``state-<key>.npy``; ``state-str+<key>.npy`` for a str key that reads as an int
    (``"5"``), so that it never names the int key's file (``+`` is in no key); with a
    ``^`` before each upper-case letter (``"aB"``: ``state-a^B.npy``), so that keys that
    differ in case only (``"a"``, ``"A"``) never name one file on a file system that
    ignores case (macOS, Windows; ``^`` is in no key either)."""
    if isinstance(key, str):
        if _INT_TEXT.fullmatch(key):
            return f"state-str+{key}.npy"
        return f"state-{_UPPER.sub(_mark, key)}.npy"
    return f"state-{key}.npy"


def _mark(letter: re.Match[str]) -> str:
    return "^" + letter[0]


def _check_directory(directory: object) -> str:
    """The directory a :class:`DiskStore` makes its folder in, as a string."""
    if directory is None:
        return tempfile.gettempdir()
    if not isinstance(directory, (str, os.PathLike)) or \
            not isinstance(os.fspath(directory), str):
        raise PebblesTypeError(
            f"directory={directory!r} must be a path (a str or os.PathLike), got "
            f"{type(directory).__name__}; pass e.g. directory='/scratch/states', or None "
            f"for the system's temporary directory")
    if "\0" in os.fspath(directory):
        raise StoreError(
            f"directory={os.fspath(directory)!r} holds a NUL character ('\\0'), which no "
            f"path may contain: pass the directory's path without it")
    return os.path.abspath(directory)  # a later os.chdir must not move the store


def _make_folder(parent: str, given: object, made: list[str]) -> None:
    """Make ``parent`` (and its missing parents) and a new folder of the store's in it.

    Lists the folders in ``made``, outermost first, the store's last, each before it is
    made (so that a Ctrl-C loses none); on failure, removes those already made and
    raises :class:`StoreError`.
    """
    at = parent  # the directory being written into
    try:
        for path in reversed(_missing(Path(parent))):
            at = str(path.parent)
            made.append(str(path))
            try:
                path.mkdir()
            except FileExistsError:  # made meanwhile by someone else: not ours
                made.pop()
        at = parent
        while True:  # a new folder of a random name (as tempfile.mkdtemp's), listed first
            made.append(os.path.join(parent, FOLDER_PREFIX + secrets.token_hex(6)))
            try:
                os.mkdir(made[-1], 0o700)
                break
            except FileExistsError:
                made.pop()
    except BaseException as exc:  # an OSError, or a Ctrl-C
        _remove_folders(made)
        if isinstance(exc, OSError):
            raise _folder_error(parent, given, exc, at) from exc
        raise


def _missing(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist, innermost first."""
    out = []
    while not os.path.lexists(path) and path.parent != path:
        out.append(path)
        path = path.parent
    return out


def _folder_error(parent: str, given: object, exc: OSError, at: str) -> StoreError:
    """The error for a store folder that could not be made in ``parent``, met writing into
    the directory ``at`` (``parent``, or the ancestor where its missing part begins)."""
    what = f"directory={str(given)!r}" if given is not None else f"the temporary directory " \
        f"{parent!r}"
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        rule = ("is a file or lies under one; it must be a directory (missing ones are "
                "created)", "pass the path of a directory, or remove the file in the way")
    elif isinstance(exc, PermissionError) and at != parent:
        rule = (f"does not exist and cannot be made: its ancestor {at!r} is not writable "
                f"(permission denied), and the store makes the missing directories in it",
                f"pass a directory you can write to, or make {parent!r} first")
    elif isinstance(exc, PermissionError):
        rule = ("is not writable (permission denied); the store makes a folder for its files "
                "there", "pass a directory you can write to")
    else:
        rule = (f"cannot hold the store's folder ({exc.strerror or exc})",
                "pass a writable directory on a disk with room")
    return StoreError(f"{what} {rule[0]}: {rule[1]}")


def _remove_folders(made: list[str]) -> None:
    """Remove the folders in ``made`` (outermost first) innermost first, while empty."""
    for folder in reversed(made):
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            continue
        except OSError:  # not empty: another store's or the user's files are in it
            return


def _disk_full(exc: BaseException) -> bool:
    """Whether the write error ``exc`` means a full disk: ``ENOSPC``, an exceeded quota,
    or a write the disk cut short (NumPy's ``tofile``: "N requested and M written",
    without ``errno``)."""
    if not isinstance(exc, OSError):
        return False
    return exc.errno in _FULL or (exc.errno is None and bool(_SHORT_WRITE.search(str(exc))))


def _lent_copy(array: np.ndarray, into: np.ndarray) -> np.ndarray:
    """``array`` copied into the lent buffer ``into``, which must fit it exactly."""
    if not isinstance(into, np.ndarray) or into.shape != array.shape or \
            into.dtype != array.dtype or not into.flags.c_contiguous or \
            not into.flags.writeable or np.may_share_memory(into, array):
        what = (f"shape {into.shape} and dtype {into.dtype}" if isinstance(into, np.ndarray)
                else f"a {type(into).__name__}")
        raise PebblesValueError(
            f"into has {what} but the state has {array.shape} and {array.dtype}; lend a "
            f"free, writeable, C-contiguous buffer like the state (not the state itself)")
    np.copyto(into, array)
    return into


def _into(data: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``data`` copied into ``out`` (same shape and dtype), or into a new array."""
    if out is None:
        return np.array(data, copy=True)
    _check_out(out, data.shape, data.dtype, contiguous=False)
    np.copyto(out, data)
    return out


def _check_buffer(out: object, contiguous: bool) -> None:
    """Refuse an ``out`` of ``get`` that is not a writeable NumPy array (C-contiguous
    where ``contiguous``: a file is read straight into it), before any file is opened."""
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise PebblesTypeError(
            f"out={out!r:.60} is {a_kind(out)}; it must be a NumPy array like the "
            f"stored state (same shape and dtype), or None for a new one: pass e.g. "
            f"out=np.empty_like(state)")
    if not out.flags.writeable:
        raise PebblesValueError(
            "out is a read-only array; get fills it with the stored state, so it must be "
            "writeable: pass a writeable buffer, e.g. out=np.empty_like(state), or None")
    if contiguous and not out.flags.c_contiguous:
        raise PebblesValueError(
            f"out is not C-contiguous (strides {out.strides}); a DiskStore reads the file "
            f"straight into it, so it must be one C-ordered block: pass e.g. "
            f"out=np.empty_like(state, order='C'), or None")


def _check_out(out: np.ndarray, shape: tuple[int, ...], dtype: np.dtype,
               contiguous: bool) -> None:
    """Refuse an ``out`` of ``get`` that cannot take the stored ``shape`` and ``dtype``."""
    _check_buffer(out, contiguous)
    if out.shape != shape or out.dtype != dtype:
        raise PebblesValueError(
            f"out has shape {out.shape} and dtype {out.dtype} but the stored state has "
            f"{shape} and {dtype}; pass a buffer like the state that was stored")


def _read_npy(name: str, out: np.ndarray | None) -> np.ndarray:
    """The array in ``.npy`` file ``name``, read straight into ``out`` (or a new array).

    One copy from the file into the buffer (``readinto``): no memory map, whose
    file pages would count in the process's resident memory while it is open.
    """
    with open(name, "rb") as fh:
        shape, fortran, dtype = _npy_header(name, fh)
        if dtype.hasobject or fortran:
            raise StoreError(f"{name} holds a Fortran-ordered or object array; the store "
                             f"writes C-ordered arrays of numbers only")
        if out is None:
            out = mapped_empty(shape, dtype)
        else:
            _check_out(out, shape, dtype, contiguous=True)
        if out.nbytes and fh.readinto(out.reshape(-1).view(np.uint8)) != out.nbytes:
            raise StoreError(f"{name} is shorter than its header says ({out.nbytes} bytes of "
                             f"data); the file was truncated")
    return out


def _npy_header(name: str, fh: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from the header of ``.npy`` file ``name`` (open as
    ``fh``); a damaged header (empty, cut short, overwritten) is a :class:`StoreError`."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        return header(fh)
    except OSError:
        raise  # the file cannot be read (get names a deleted one)
    except Exception as exc:  # ValueError, EOFError, tokenize's TokenError, ...
        raise StoreError(f"{name} has no valid .npy header ({exc}); the file was damaged "
                         f"or changed by something other than the store, which alone "
                         f"writes its folder until it is closed") from exc


def _unlink(name: str, quiet: bool = False) -> bool:
    """Delete file ``name``; whether it is gone. One already gone is no error, nor, where
    ``quiet``, any ``OSError`` (freeing all of a store's files, one that resists must not
    stop the others)."""
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
    except OSError:
        if not quiet:
            raise
        return False
    return True


@dataclass(frozen=True, slots=True)
class IOCost:
    """Measured write and read times of one state of ``nbytes`` bytes in ``directory``."""

    directory: str
    nbytes: int
    write_seconds: float
    read_seconds: float

    def costs(self, step_seconds: float) -> tuple[float, float]:
        """``(write_cost, read_cost)`` in units of a forward step of ``step_seconds``
        (a finite number of seconds > 0)."""
        step_seconds = _check_step_seconds(step_seconds)
        return self.write_seconds / step_seconds, self.read_seconds / step_seconds


def _check_step_seconds(value: object) -> float:
    """``value`` as a float, after checking it is a finite number of seconds > 0."""
    v = check_cost("step_seconds", value, "the seconds one forward step takes")
    if v == 0:
        raise PebblesValueError(
            f"step_seconds={value!r} must be > 0 (the costs are the I/O times over it); "
            f"time one forward step and pass its seconds, e.g. step_seconds=0.1")
    return v


#: Most bytes :func:`measure_io` writes in all (its states go back to back up to this).
PROBE_BYTES = 1 << 30
#: Most states :func:`measure_io`'s ``repeat`` may ask for (one write with fsync each).
_MAX_REPEAT = 1000
#: Bytes a second above which :func:`measure_io` takes a write for one into a cache.
CACHE_SPEED = 1 << 30


def measure_io(directory: str | os.PathLike | None, nbytes: int, *, repeat: int = 8) -> IOCost:
    """Time writing (with fsync) and reading back states of ``nbytes`` bytes in ``directory``.

    States are written back to back as separate files, each flushed to the disk
    and timed, then read back. The write time is the sustained rate a run's
    stores see, past the disk's write cache: the first writes of a burst can
    land in a cache (on a 2-core VM the first 64 MB went at 16 ms per 32 MB
    state and every later state at 87 ms; after a minute without disk writes,
    more than 256 MB went in fast). So the probe writes ``repeat`` states and goes on,
    up to :data:`PROBE_BYTES` in all, while the writes go faster than
    :data:`CACHE_SPEED`. Once a write takes more than twice the fastest, the
    cache is full: it writes ``repeat // 2`` more and takes the median from
    that write on; otherwise the median of the later half. The read time is
    the mean; reads may be served by the page cache, as in a run right after
    its writes. The files go into a folder of their own in ``directory`` (as
    :class:`DiskStore`'s) and are deleted afterwards, with the folder, whatever
    happens; one buffer of ``nbytes`` is used. A full disk raises
    :class:`DiskFullError`.

    Parameters
    ----------
    directory : str or os.PathLike or None
        Where to make the probe's folder (as :class:`DiskStore`'s ``directory``: a
        relative path is taken from the working directory; a missing directory is
        created, with its missing parents, and removed again with the probe's
        folder); ``None``: the
        system's temporary directory.
    nbytes : int
        Bytes of one state; ``>= 1``.
    repeat : int, default 8
        States written before the probe may stop; from 1 to 1000
        (each write is flushed to the disk: about 1 ms for a state of up to 1 MB on
        an SSD, tens of ms on a spinning disk).

    Returns
    -------
    IOCost
        The directory, ``nbytes`` and the write and read seconds of one state.

    Raises
    ------
    PebblesTypeError
        If ``nbytes`` or ``repeat`` is not an integer.
    PebblesValueError
        If ``nbytes < 1``, ``repeat`` is not from 1 to 1000, or one
        state of ``nbytes`` cannot be allocated.
    DiskFullError
        If the disk fills while the probe writes.

    Examples
    --------
    >>> from pebbles import measure_io
    >>> io = measure_io(None, 1 << 16, repeat=2)
    >>> io.nbytes, io.write_seconds > 0, io.read_seconds > 0
    (65536, True, True)
    """
    nbytes = check_int("nbytes", nbytes, 1)
    repeat = _check_repeat(repeat)
    most = max(1, PROBE_BYTES // nbytes)
    try:
        data = mapped_empty(nbytes, np.uint8)
    except (MemoryError, OSError, PebblesValueError) as exc:  # ENOMEM, or > sys.maxsize
        raise PebblesValueError(
            f"nbytes={nbytes}: the probe holds one state of that size in memory, and it "
            f"cannot be allocated here ({exc}); measure a smaller state on the same disk "
            f"(write and read times grow about linearly with the size) and scale, or give "
            f"the costs yourself") from exc
    rng = np.random.default_rng(0)
    for at in range(0, nbytes, MAP_BYTES):  # no temporary of the state's size
        data[at:at + MAP_BYTES] = rng.integers(0, 255, min(MAP_BYTES, nbytes - at),
                                               dtype=np.uint8)
    with DiskStore(directory) as st:
        names: list[str] = []
        try:
            writes = _probe_writes(st, data, repeat, most, names)
            t1 = time.perf_counter()
            for name in names:
                _read_npy(name, data)  # into the same buffer: one state of memory
            t2 = time.perf_counter()
        except OSError as exc:
            if _disk_full(exc):
                raise DiskFullError(st.parent, nbytes, f"io-probe-{len(names) - 1}",
                                    fix=_probe_room(nbytes, repeat, most)) from exc
            raise
        finally:
            for name in names:
                _unlink(name, quiet=True)
    return IOCost(st.parent, nbytes, writes, (t2 - t1) / len(names))


def _check_repeat(repeat: object) -> int:
    """``repeat`` of :func:`measure_io`, an int from 1 to 1000."""
    repeat = check_int("repeat", repeat, 1)
    if repeat > _MAX_REPEAT:
        raise PebblesValueError(
            f"repeat={repeat} is more than {_MAX_REPEAT} states, each written and flushed "
            f"to the disk; pass repeat={_MAX_REPEAT} or less (the default 8 is enough for "
            f"a steady median)")
    return repeat


def _probe_room(nbytes: int, repeat: int, most: int) -> str:
    """The fix of a :func:`measure_io` that filled the disk: the room its probe needs."""
    least = min(repeat, most)
    return (f"The probe writes {least} to {most} states of nbytes={nbytes} there back to "
            f"back (deleted afterwards): free at least {least * nbytes} bytes there (up to "
            f"{most * nbytes}), pass a directory on a larger disk, or time a smaller state "
            f"(a smaller nbytes) and scale the times")


def _probe_writes(st: DiskStore, data: np.ndarray, repeat: int, most: int,
                  names: list[str]) -> float:
    """The sustained seconds a write (:func:`measure_io`); ``names`` gets the files."""
    times: list[float] = []
    slow = None  # index of the first write past the cache
    while len(times) < most:
        names.append(st.path(f"io-probe-{len(times)}"))
        times.append(_timed_write(names[-1], data))
        if slow is None and len(times) > 1 and times[-1] > 2 * min(times[:-1]):
            slow = len(times) - 1
        if slow is not None:
            if len(times) - slow > repeat // 2:
                return float(np.median(times[slow:]))
        elif len(times) >= repeat and data.nbytes / times[-1] < CACHE_SPEED:
            break  # as slow as a disk: no cache is filling
    return float(np.median(times[len(times) // 2:]))


def _timed_write(name: str, data: np.ndarray) -> float:
    """Seconds to write ``data`` to ``name`` as ``.npy`` and flush it to the disk."""
    t0 = time.perf_counter()
    with open(name, "wb") as fh:
        np.save(fh, data, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    return time.perf_counter() - t0
