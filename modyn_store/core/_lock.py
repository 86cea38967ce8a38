"""The writer lock: one committing writer at a time, across threads, processes and machines.

A local folder (or ``memory://`` store) is locked with an OS file lock (``filelock``: ``flock``
on POSIX, ``msvcrt`` on Windows). A store on S3 is locked through the object store itself, see
:mod:`modyn_store.core._lease`.
"""

from __future__ import annotations

import os
import time
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import filelock

from modyn_store.core._thread_gate import ThreadGate
from modyn_store.core.errors import ConflictError

try:
    import fcntl
except ImportError:  # not POSIX: filelock's portable lock (msvcrt on Windows)
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from modyn_store.core._location import Location

__all__ = ["StoreLock", "WriterLock", "writer_lock"]


class StoreLock(Protocol):
    """What the store needs of a writer lock (a context manager held for one write)."""

    timeout: float

    def __enter__(self) -> StoreLock: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def idle(self) -> StoreLock:
        """A lock on the same store that gives up at once (for optional recovery work)."""
        ...

    def check(self, confirm: bool = False) -> None:
        """Raise :class:`ConflictError` unless this writer still holds the store (``confirm``:
        asked of the storage itself, where a lock can be lost, before a commit or a rollback)."""
        ...


class WriterLock:
    """An exclusive file lock on ``<store>/_lock``, held for the duration of one write.

    Each lock object holds its own open lock file (on POSIX, an ``flock`` per write on a file
    kept open), and a thread lock in front of it: two threads of one process exclude each other,
    and so do two lock objects of one process or two processes. A write asked by a thread that is
    already inside a write of the store, through any lock object of it, raises
    :class:`~modyn_store.core.errors.NestedWriteError` at once (:class:`ThreadGate`). Waits up to ``timeout`` seconds, then raises
    :class:`~modyn_store.core.errors.ConflictError`. With ``path=None`` (object stores without a
    conditional-write protocol) the lock only serialises the threads of this process.

    Example
    -------
    >>> import tempfile, os
    >>> lock = WriterLock(os.path.join(tempfile.mkdtemp(), "_lock"), timeout=1.0)
    >>> with lock:
    ...     pass
    """

    def __init__(self, path: str | None, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        # keyed by the lock file's real path: every handle of the store shares the key
        # (a forked child re-opens the lock file: a gate another thread held at the fork is freed there)
        self._local = ThreadGate(os.path.realpath(path) if path is not None else None, free_in_child=True)
        self._file: filelock.BaseFileLock | None = None
        # POSIX: the lock file stays open between writes and each write only flocks it (an
        # open, a lock and a close per write cost more than the rest of a small commit)
        self._fd: int | None = None
        self._fd_pid = 0
        self._held = False

    def __enter__(self) -> WriterLock:
        deadline = time.monotonic() + self.timeout
        if not self._local.acquire(self.timeout):
            raise ConflictError(f"another writer in this process held the store for {self.timeout:.1f} s")
        if self.path is None:
            return self
        try:
            if fcntl is not None:
                self._flock(deadline)
                return self
            lock = filelock.FileLock(self.path, thread_local=False)
            try:
                lock.acquire(timeout=max(deadline - time.monotonic(), 0.0), poll_interval=0.005)
            except filelock.Timeout:
                raise self._timed_out() from None
            self._file = lock
        except BaseException:
            self._local.release()
            raise
        return self

    def _timed_out(self) -> ConflictError:
        return ConflictError(
            f"another writer held the store lock {self.path!r} for {self.timeout:.1f} s; "
            "retry, or raise lock_timeout"
        )

    def _flock(self, deadline: float) -> None:
        assert self.path is not None and fcntl is not None
        if self._fd is not None and self._fd_pid != os.getpid():
            # inherited through fork: the parent's open file would share its lock with this process
            self._fd = None
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._fd_pid = os.getpid()
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise self._timed_out() from None
                time.sleep(0.005)
                continue
            try:
                same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._held = True
                return
            # the lock file was removed or replaced since it was opened: a lock on the old
            # file excludes nobody, so lock the file that is there now
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._held:
                self._held = False
                assert self._fd is not None and fcntl is not None
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            if self._file is not None:
                self._file.release()
                self._file = None
        finally:
            self._local.release()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None and self._fd_pid == os.getpid():
            try:
                os.close(fd)
            except OSError:
                pass

    def idle(self) -> WriterLock:
        return WriterLock(self.path, 0.0)

    def check(self, confirm: bool = False) -> None:
        """A local lock cannot be lost while its process lives."""


def writer_lock(location: Location, timeout: float) -> StoreLock:
    """The writer lock that fits ``location``.

    Example
    -------
    >>> from modyn_store.core._location import resolve
    >>> type(writer_lock(resolve("memory://lock-doc"), 1.0)).__name__
    'WriterLock'
    """
    if location.is_local:
        return WriterLock(location.path("_lock"), timeout)
    if location.scheme == "s3":
        from modyn_store.core._lease import LeaseLock

        return LeaseLock(location, timeout)
    return WriterLock(None, timeout)
