"""A lock per name in a folder of a local store, held by one process at a time.

Used where two processes must not do one thing at once on one store: a pipeline's run
(``app.pipeline.running``) and a training that saves its progress (``training._training_lock``).
The lock is an ``flock`` on ``<store>/<folder>/<name>.lock``, which the operating system
releases when its process ends, however it ends (SIGKILL included), so a dead holder never
refuses a restart; a second holder, in another process or this one, is refused at once with the
error ``busy(holder)`` builds (``holder``: "process <pid> on <host>", as the holder wrote it).
A holder may remove the file when it releases the lock; a process that locked the file just
removed sees that it no longer is the one at the path and locks the one there now. Stores on
object storage take no lock (:func:`lockable`): callers say what stands in for it there.

Example
-------
>>> import tempfile
>>> from modyn_store import Store
>>> from modyn_store.core.errors import ConflictError
>>> store = Store.open(tempfile.mkdtemp(), create=True)
>>> busy = lambda holder: ConflictError(f"busy ({holder.split()[0]})")
>>> first = NamedLock(store, "_jobs", "nightly", busy).acquire()
>>> NamedLock(store, "_jobs", "nightly", busy).acquire()
Traceback (most recent call last):
...
modyn_store.core.errors.ConflictError: busy (process)
>>> first.release(remove=True)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from modyn_store.core._validate import check_name

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["NamedLock", "lockable"]


def lockable(store: Any) -> bool:
    """Whether ``store`` takes named locks: a local folder or a ``memory://`` store, on a
    system with ``flock``."""
    uri = str(store.uri)
    return fcntl is not None and ("://" not in uri or uri.startswith("memory://"))


def _same_file(fd: int, path: str) -> bool:
    """Whether the open file ``fd`` is still the one at ``path`` (not removed or replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


class NamedLock:
    """The lock ``name`` in ``folder`` of ``store`` (see the module docstring); ``busy(holder)``
    is the error :meth:`acquire` raises while another holder has it. On a store that is not
    :func:`lockable`, acquiring and releasing do nothing."""

    def __init__(self, store: Any, folder: str, name: str, busy: Callable[[str], Exception], *,
                 argument: str = "name") -> None:
        self.store = store
        self.name = check_name(argument, name)
        self._folder = folder
        self._busy = busy
        self._fd: int | None = None
        self._path = ""

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> NamedLock:
        """Take the lock at once, or raise ``busy(holder)``; nothing when held already or on a
        store that is not :func:`lockable`."""
        if self._fd is not None or not lockable(self.store):
            return self
        folder = self.store.path(self._folder)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{self.name}.lock")
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _same_file(fd, path):
                    break
                os.close(fd)  # a holder removed the file when it was done: lock the one there now
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                os.close(fd)
                raise self._busy(holder) from None
            except BaseException:
                os.close(fd)
                raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except BaseException:  # (a full disk): not held, so given back
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        self._fd, self._path = fd, path
        return self

    def release(self, remove: bool = False) -> None:
        """Give the lock back (nothing when it is not held); ``remove``: remove its file first,
        while still holding it."""
        fd, self._fd = self._fd, None
        if fd is None or fcntl is None:
            return
        try:
            if remove:
                try:
                    os.unlink(self._path)  # under the lock: a waiter that opened it locks it again
                except FileNotFoundError:
                    pass
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
