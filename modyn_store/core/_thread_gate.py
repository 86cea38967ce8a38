"""The thread lock in front of the writer locks (:mod:`modyn_store.core._lock`, :mod:`modyn_store.core._lease`).

Each gate also notes, in a table shared by the whole process, which threads are inside a write
of its store (holding its writer lock or waiting for it), keyed by the store's lock file or
object: a write asked by such a thread through any handle of that store (a second
``Store.open`` of the same folder inside an open ``transaction`` block) could never get the lock,
and raises :class:`NestedWriteError` at once instead of waiting out ``lock_timeout``.
"""

from __future__ import annotations

import os
import threading
import weakref

from modyn_store.core.errors import NestedWriteError

__all__ = ["ThreadGate"]

_NESTED = ("a write cannot be nested inside an open transaction (or another write) of the same store: this "
           "thread holds the store's writer lock{how}; write after the block ends")

#: lock key -> the (process id, thread id) of each thread inside a write of that store
_WRITING: dict[str, set[tuple[int, int]]] = {}
_WRITING_LOCK = threading.Lock()


#: every gate of the process, for a forked child to free those held by threads it does not have
_GATES: weakref.WeakSet[ThreadGate] = weakref.WeakSet()


def _forget_after_fork() -> None:
    """A forked child starts outside every write, with a fresh table lock (another thread of the
    parent may have held it at the fork). A gate held by another thread of the parent is free in
    the child: that thread does not exist there, so nothing would ever release it (a write of
    the child through that handle would wait out ``lock_timeout`` and fail). A gate held by the
    forking thread stays held: the child goes on inside that write and leaves it. Only gates
    whose lock re-opens its file in a child are freed (``free_in_child``: the child's own open
    file then waits for the parent's OS lock); a lease lock's gate stays held in the child."""
    global _WRITING_LOCK
    _WRITING_LOCK = threading.Lock()
    _WRITING.clear()
    me = threading.get_ident()
    for gate in list(_GATES):
        if gate._free_in_child and gate._holder is not None and gate._holder != me:
            gate._lock = threading.Lock()
            gate._holder = None
            gate._entry = None


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_after_fork)


def _me() -> tuple[int, int]:
    # with the process id: a child forked inside a write starts with its parent's thread id
    return os.getpid(), threading.get_ident()


class ThreadGate:
    """The thread lock in front of a writer lock, knowing which threads are inside a write.

    A write asked by a thread that is already inside a write of the same store (a write inside
    an open ``store.transaction`` block, of this handle or of another handle of the store,
    ``key`` naming the store's lock) could never get the lock: it raises
    :class:`NestedWriteError` at once instead of waiting out the timeout. Other threads wait.

    Example
    -------
    >>> a, b = ThreadGate("/tmp/store/_lock"), ThreadGate("/tmp/store/_lock")
    >>> a.acquire(1.0)
    True
    >>> try:
    ...     b.acquire(1.0)
    ... except NestedWriteError:
    ...     print("nested")
    nested
    >>> a.release()
    """

    def __init__(self, key: str | None = None, *, free_in_child: bool = False) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None
        self._key = key
        self._entry: tuple[int, int] | None = None
        self._free_in_child = free_in_child
        _GATES.add(self)

    def acquire(self, timeout: float) -> bool:
        if self._holder == threading.get_ident():  # only this thread sets its own id
            raise NestedWriteError(_NESTED.format(how=""))
        me = _me()
        if self._key is not None:
            with _WRITING_LOCK:
                if me in _WRITING.get(self._key, ()):
                    raise NestedWriteError(_NESTED.format(how=" through another handle of the store"))
        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            return False
        self._holder = threading.get_ident()
        if self._key is not None:
            self._entry = me
            with _WRITING_LOCK:
                _WRITING.setdefault(self._key, set()).add(me)
        return True

    def release(self) -> None:
        if self._key is not None and self._entry is not None:
            with _WRITING_LOCK:
                writing = _WRITING.get(self._key)
                if writing is not None:
                    writing.discard(self._entry)
                    if not writing:
                        del _WRITING[self._key]
            self._entry = None
        self._holder = None
        self._lock.release()
