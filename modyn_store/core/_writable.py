"""The writer lock, and the error a write gets when the store's folder cannot be written."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from modyn_store.core.errors import ReadOnlyStoreError

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = ["READ_ONLY", "locked", "read_only_error"]

#: the errors an OS gives for a folder that cannot be written (permissions, read-only mounts)
READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def read_only_error(store: Store, exc: OSError) -> ReadOnlyStoreError:
    """The typed error for a write refused by the file system."""
    return ReadOnlyStoreError(
        f"{store.uri!r} cannot be written ({exc.strerror or exc}): the folder is read-only "
        "(mount or permissions); reads work, writes need write access"
    )


@contextmanager
def locked(store: Store) -> Iterator[None]:
    """Hold the writer lock; a store whose folder cannot be written raises ReadOnlyStoreError."""
    try:
        store._lock.__enter__()
    except OSError as exc:
        if exc.errno in READ_ONLY:
            raise read_only_error(store, exc) from exc
        raise
    try:
        yield
    finally:
        store._written.release()  # (a transaction holds the log it read under the lock)
        store._lock.__exit__(None, None, None)
