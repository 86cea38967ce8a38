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

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modyn_store.core.errors import ConflictError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

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
    another run holds it; see the module docstring)."""
    from modyn_store.core._validate import check_name

    check_name("name", name)
    if "://" in store.uri and not store.uri.startswith("memory://") or fcntl is None:
        yield  # an object store: no lock (see the module docstring)
        return
    folder = store.path(LOCK_DIR)
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, f"{name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            raise _busy(store, name, holder) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
