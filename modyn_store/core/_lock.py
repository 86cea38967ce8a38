"""The writer lock: one committing writer at a time, across threads, processes and machines.

A local folder (or ``memory://`` store) is locked with an OS file lock (``filelock``: ``flock``
on POSIX, ``msvcrt`` on Windows). A store on S3 is locked through the object store itself, see
:mod:`modyn_store.core._lease`.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import filelock

from modyn_store.core.errors import ConflictError

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

    def check(self) -> None:
        """Raise :class:`ConflictError` unless this writer still holds the store."""
        ...


class WriterLock:
    """An exclusive file lock on ``<store>/_lock``, held for the duration of one write.

    Each acquisition takes its own OS lock, so two threads of one process exclude each other as
    two processes do. Waits up to ``timeout`` seconds, then raises
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
        self._local = threading.Lock()
        self._file: filelock.BaseFileLock | None = None

    def __enter__(self) -> WriterLock:
        deadline = time.monotonic() + self.timeout
        if not self._local.acquire(timeout=max(self.timeout, 0.0)):
            raise ConflictError(f"another writer in this process held the store for {self.timeout:.1f} s")
        if self.path is None:
            return self
        lock = filelock.FileLock(self.path, thread_local=False)
        try:
            lock.acquire(timeout=max(deadline - time.monotonic(), 0.0), poll_interval=0.005)
        except filelock.Timeout:
            self._local.release()
            raise ConflictError(
                f"another writer held the store lock {self.path!r} for {self.timeout:.1f} s; "
                "retry, or raise lock_timeout"
            ) from None
        except BaseException:
            self._local.release()
            raise
        self._file = lock
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.release()
            self._file = None
        self._local.release()

    def idle(self) -> WriterLock:
        return WriterLock(self.path, 0.0)

    def check(self) -> None:
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
