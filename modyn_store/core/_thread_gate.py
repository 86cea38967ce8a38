"""The thread lock in front of the writer locks (:mod:`modyn_store.core._lock`, :mod:`modyn_store.core._lease`)."""

from __future__ import annotations

import threading

from modyn_store.core.errors import NestedWriteError

__all__ = ["ThreadGate"]


class ThreadGate:
    """The thread lock in front of a writer lock, knowing which thread holds it.

    A write asked by the thread that already holds the lock (a write inside an open
    ``store.transaction`` block of the same handle) could never get it: it raises
    :class:`NestedWriteError` at once instead of waiting out the timeout. Other threads wait.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None

    def acquire(self, timeout: float) -> bool:
        if self._holder == threading.get_ident():  # only this thread sets its own id
            raise NestedWriteError(
                "a write cannot be nested inside an open transaction (or another write) of the same "
                "store: this thread holds the store's writer lock; write after the block ends"
            )
        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            return False
        self._holder = threading.get_ident()
        return True

    def release(self) -> None:
        self._holder = None
        self._lock.release()
