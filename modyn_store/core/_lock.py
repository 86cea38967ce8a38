"""The writer lock: one committing writer at a time, across threads and processes."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from types import TracebackType

from modyn_store.core.errors import ConflictError

__all__ = ["WriterLock"]


class WriterLock:
    """An exclusive ``flock`` on ``<store>/_lock``, held for the duration of one write.

    Each acquisition opens its own file description, so two threads of one process exclude
    each other as two processes do. Waits up to ``timeout`` seconds, then raises
    :class:`~modyn_store.core.errors.ConflictError`. For object stores (no shared file system) the
    lock only serialises the threads of this process; several writer processes on one
    object-store prefix must coordinate outside the store.
    """

    def __init__(self, path: str | None, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._local = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        deadline = time.monotonic() + self.timeout
        if not self._local.acquire(timeout=max(self.timeout, 0.0)):
            raise ConflictError(f"another writer in this process held the store for {self.timeout:.1f} s")
        if self.path is None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    self._local.release()
                    raise ConflictError(
                        f"another writer held the store lock {self.path!r} for {self.timeout:.1f} s; "
                        "retry, or raise lock_timeout"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._local.release()
