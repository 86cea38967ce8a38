"""One process at a time per pipeline and store: :func:`pipeline_running`.

Two processes that run the same pipeline (same name) on the same store would both train its
next firing and race to record it under the same id; the one that loses would stop with an
error about a used training id after training for nothing. Instead, a run holds a lock for the
pipeline while it works, and a second run is refused at once (:class:`ConflictError` naming the
pipeline, the store and the process that holds it).

On a local store the lock is an ``flock`` on ``<store>/_pipelines/<name>.lock``: the operating
system releases it when its process ends, however it ends (SIGKILL included), so a restart is
never refused by a dead run (``memory://`` stores, whose files are local, alike). Stores on
object storage (``s3://``) take no pipeline lock: there, two runs of one pipeline are not
refused up front; the second to record a training stops with an :class:`InvalidArgumentError`
on its id (the catalog never holds a training twice).

Example
-------
>>> import tempfile
>>> from modyn_store import Store
>>> store = Store.open(tempfile.mkdtemp(), create=True)
>>> with pipeline_running(store, "live"):
...     with pipeline_running(store, "live"):
...         pass
Traceback (most recent call last):
...
modyn_store.core.errors.ConflictError: pipeline 'live' is already running on this store ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modyn_store.core._namedlock import NamedLock
from modyn_store.core.errors import ConflictError

__all__ = ["LOCK_DIR", "pipeline_running"]

LOCK_DIR = "_pipelines"


def _busy(store: Any, name: str, holder: str) -> ConflictError:
    who = f" (held by {holder})" if holder else ""
    return ConflictError(f"pipeline {name!r} is already running on this store {store.uri!r}{who}: two runs "
                         "of one pipeline would train the same firings; stop the other run first, or use "
                         "another pipeline name")


@contextmanager
def pipeline_running(store: Any, name: str) -> Iterator[None]:
    """Hold the lock of pipeline ``name`` on ``store`` (refused with :class:`ConflictError` when
    another run holds it, in another process or this one; see the module docstring)."""
    lock = NamedLock(store, LOCK_DIR, name, lambda holder: _busy(store, name, holder)).acquire()
    try:
        yield
    finally:
        lock.release()
