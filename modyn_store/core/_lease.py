"""Writers on several machines coordinate through the object store itself.

Two conditional writes, both enforced by S3 (and by moto's local server):

1. **The writer lease**: ``<store>/_lock.json`` is created with ``If-None-Match: *``, so one
   writer holds it. The holder renews it every ``lease/4`` seconds with ``If-Match`` on the
   ETag it last wrote. A waiter that sees the same ETag for ``lease`` seconds of its own clock
   (the holder died: SIGKILL, lost machine) takes the lease over with ``If-Match`` on that
   ETag, so of several waiters exactly one succeeds, and then rolls back the dead writer's
   rows like a local recovery. No clocks are compared across machines.
2. **The commit**: a version commits when its record object ``<store>/_log/<version>.json`` is
   created with ``If-None-Match: *`` (see :mod:`modyn_store.core._log`). Two writers can never
   both commit version N: the second gets :class:`~modyn_store.core.errors.ConflictError`. A
   writer that dies before its record leaves only rows above the log, which the next writer
   rolls back.

A writer checks its lease before every table write and refuses to go on (``ConflictError``)
once it is older than half the lease, so a writer that was paused past its lease (and whose
rows the next writer rolled back) stops instead of writing on. Readers take no lock at all.
The lease length defaults to 10 s (``MODYN_STORE_LEASE_SECONDS`` overrides it).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

from modyn_store.core._location import _endpoint_of
from modyn_store.core._thread_gate import ThreadGate
from modyn_store.core.errors import ConflictError

if TYPE_CHECKING:
    from modyn_store.core._location import Location

__all__ = ["LeaseLock", "lease_seconds"]

LOCK_OBJECT = "_lock.json"


def lease_seconds() -> float:
    """The lease length in seconds (``MODYN_STORE_LEASE_SECONDS``, default 10)."""
    raw = os.environ.get("MODYN_STORE_LEASE_SECONDS", "10")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        from modyn_store.core.errors import InvalidArgumentError

        raise InvalidArgumentError("MODYN_STORE_LEASE_SECONDS", raw, "a positive number of seconds")
    return value


def _precondition_failed(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is S3's 412 Precondition Failed."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            err = response.get("Error", {})
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if err.get("Code") == "PreconditionFailed" or status == 412:
                return True
        seen = seen.__cause__ or seen.__context__
    return False


class LeaseLock:
    """The writer lock of a store on S3: a renewed lease object.

    Example (against a real or local S3 endpoint)::

        lock = LeaseLock(resolve("s3://bucket/store", opts), timeout=30.0)
        with lock:
            lock.check()          # still the holder?
    """

    def __init__(self, location: Location, timeout: float, *, lease: float | None = None) -> None:
        self.location = location
        self.timeout = timeout
        self.lease = lease_seconds() if lease is None else float(lease)
        self.path = location.path(LOCK_OBJECT)
        # keyed by the lease object and the endpoint that serves it: every handle of the store
        # shares the key, a store at the same path of another endpoint (another server) does not
        self._local = ThreadGate(f"{self.path} at {_endpoint_of(location.storage_options)}")
        self._owner = ""
        self._etag: str | None = None
        self._renewed = 0.0
        self._lost = False
        self._error: Exception | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = threading.Lock()
        # held across a renewal (its PUT and the new ETag noted) and across confirm()'s HEAD, so
        # a renewal in flight is never taken for another writer's lease
        self._renewal = threading.Lock()

    # -- the lease -----------------------------------------------------------------------
    def _body(self) -> bytes:
        return json.dumps(
            {"owner": self._owner, "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        ).encode()

    def _put(self, fs: Any, path: str, body: bytes, *, create: bool = False, etag: str | None = None) -> str | None:
        """Conditional put; the new ETag, or ``None`` when the condition failed."""
        try:
            if create:
                out = fs.pipe_file(path, body, mode="create")
            else:
                out = fs.pipe_file(path, body, IfMatch=etag)
        except FileExistsError:
            return None
        except FileNotFoundError:
            if create:
                raise
            return None  # If-Match on an object that is gone: someone removed the lease
        except OSError as exc:
            if _precondition_failed(exc):
                return None
            raise
        return str(out["ETag"]) if isinstance(out, dict) and "ETag" in out else _etag_of(fs, path)

    def __enter__(self) -> LeaseLock:
        deadline = time.monotonic() + self.timeout
        if not self._local.acquire(self.timeout):
            raise ConflictError(f"another writer in this process held the store for {self.timeout:.1f} s")
        try:
            self._acquire(deadline)
        except BaseException:
            self._local.release()
            raise
        return self

    def _acquire(self, deadline: float) -> None:
        fs = self.location.fs
        self._owner = uuid.uuid4().hex
        seen: tuple[str, float] | None = None  # (etag, first seen, monotonic)
        delay = 0.02
        while True:
            etag = self._put(fs, self.path, self._body(), create=True)
            if etag is None:
                current = _etag_of(fs, self.path)
                now = time.monotonic()
                if current is not None:
                    if seen is None or seen[0] != current:
                        seen = (current, now)
                    elif now - seen[1] >= self.lease:
                        # unchanged for a whole lease: its holder is gone; exactly one taker wins
                        etag = self._put(fs, self.path, self._body(), etag=current)
            if etag is not None:
                with self._state:
                    self._etag = etag
                    self._renewed = time.monotonic()
                    self._lost = False
                self._stop.clear()
                self._thread = threading.Thread(target=self._heartbeat, name="modyn-store-lease", daemon=True)
                self._thread.start()
                return
            if time.monotonic() >= deadline:
                raise ConflictError(
                    f"another writer held the store lease {self.path!r} for {self.timeout:.1f} s; "
                    "retry, or raise lock_timeout"
                )
            time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * 2, 0.5)

    def _heartbeat(self) -> None:
        fs = self.location.fs
        while not self._stop.wait(self.lease / 4):
            with self._renewal:
                with self._state:
                    etag = self._etag
                try:
                    new = self._put(fs, self.path, self._body(), etag=etag)
                except Exception as exc:  # noqa: BLE001 - kept: the lease ages and check() raises it
                    with self._state:
                        self._error = exc
                    continue
                with self._state:
                    self._error = None
                    if new is None:
                        self._lost = True
                        return
                    self._etag = new
                    self._renewed = time.monotonic()

    def check(self, confirm: bool = False) -> None:
        """Raise :class:`ConflictError` unless this writer still holds the lease: renewed within
        half a lease, and (``confirm``: one HEAD request, at the commit point and before a
        rollback deletes rows) the lease object is still the one this writer last wrote. A lease
        object removed or replaced by another writer, which the next renewal would find only a
        quarter lease later, stops the write there."""
        with self._state:
            lost, error = self._lost, self._error
            age = time.monotonic() - self._renewed
        if lost or age > self.lease / 2:
            raise ConflictError(
                f"this writer lost the store lease {self.path!r} (last renewed {age:.1f} s ago, "
                f"lease {self.lease:.1f} s); another writer may have taken over: retry the write"
            ) from error
        if confirm:
            with self._renewal:
                with self._state:
                    mine = self._etag
                try:
                    current = _etag_of(self.location.fs, self.path)
                except OSError as exc:  # the store cannot tell: no write goes on without knowing
                    raise ConflictError(f"this writer could not confirm it still holds the store lease "
                                        f"{self.path!r} ({type(exc).__name__}: {exc}); retry the write") from exc
                if current != mine:
                    with self._state:
                        self._lost = True
            if current != mine:
                raise ConflictError(
                    f"this writer lost the store lease {self.path!r}: the lease object was "
                    f"{'removed' if current is None else 'replaced by another writer'}; retry the write"
                )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
                self._thread = None
            with self._state:
                mine, lost = self._etag, self._lost
                self._etag = None
            if mine is not None and not lost:
                fs = self.location.fs
                if _etag_of(fs, self.path) == mine:
                    fs.rm(self.path)
        finally:
            self._local.release()

    def idle(self) -> LeaseLock:
        return LeaseLock(self.location, 0.0, lease=self.lease)


def _etag_of(fs: Any, path: str) -> str | None:
    """The object's current ETag (a HEAD request: the store's fs keeps no listing cache)."""
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None
    tag = info.get("ETag") or info.get("etag")
    return str(tag) if tag is not None else None
