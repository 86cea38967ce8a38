"""Transactions, the intent record and recovery: how one store version commits atomically.

A write takes the writer lock, finishes or undoes an interrupted write (:func:`recover`),
records its intent (version and operation) before touching any table, writes rows that carry
its version, and commits by creating the version's record object in the version log
(:mod:`modyn_store.core._log`: an exclusive create, no second table commit). After the commit it writes
``_meta/head.json`` (the latest committed version), finishes physical purges and removes the
intent. The log can only be ahead of the head (a crash between the two); a head ahead of the
log means the log lost committed versions, and no write is allowed on top of that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from modyn_store.core import _marker
from modyn_store.core._marker import FORMAT_VERSION
from modyn_store.core._tables import with_version
from modyn_store.core._validate import check_name
from modyn_store.core._writable import READ_ONLY as _READ_ONLY
from modyn_store.core._writable import locked
from modyn_store.core._writable import read_only_error as _read_only
from modyn_store.core.errors import CorruptionError, InvalidArgumentError
from modyn_store.core.records import VersionRecord

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = ["HEAD", "INTENT", "INTERNAL_TABLES", "Transaction", "check_head", "locked", "recover", "transaction"]

INTENT = "_txn/intent.json"
HEAD = "_meta/head.json"
INTERNAL_TABLES = frozenset({"samples", "tombstones", "erasures", "purged", "versions", "tags"})


class Transaction:
    """One atomic store version under the writer lock.

    Rows appended through a transaction carry its ``version`` and stay invisible until the
    version record commits on a clean exit; an exception (or a crash) rolls them back.
    """

    def __init__(self, store: Store, version: int, op: str, message: str) -> None:
        self.store = store
        self.version = version
        self.op = op
        self.message = message
        self.inserted = 0
        self.deleted = 0
        self.erased = 0
        self.live_delta = 0
        self.max_key: int | None = None
        self.details: dict[str, Any] = {}
        self.touched: set[str] = set()
        #: the last committed version's record (``None`` for an empty store)
        self.previous: VersionRecord | None = None
        #: this version's record, set once it committed
        self.record: VersionRecord | None = None

    def append(self, table: str, data: pa.Table) -> None:
        """Append ``data`` to the extension table ``table`` (created on first use)."""
        if table not in INTERNAL_TABLES:
            check_name("table", table)
        if not isinstance(data, pa.Table):
            raise InvalidArgumentError("data", type(data).__name__, "a pyarrow Table")
        self._write(table, data)

    def _write(self, table: str, data: pa.Table) -> None:
        self.touched.add(table)
        self.store._tables.append(table, with_version(data, self.version))


def _write_json(store: Store, relative: str, body: dict[str, Any], *, atomic: bool = True) -> None:
    """Write a small JSON file; ``atomic`` on a local disk writes a temporary file and renames it.

    An object store's put is atomic already (a rename there is a copy and a delete), and a
    file whose readers tolerate a torn body (the intent) needs no rename either.
    """
    fs = store.fs
    path = store._location.path(relative)
    staged = atomic and store._location.is_local
    target = path + ".tmp" if staged else path
    data = json.dumps(body).encode()
    try:
        fs.pipe_file(target, data)
    except FileNotFoundError:
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(target, data)
    if staged:
        fs.mv(target, path)


def read_head(store: Store) -> int | None:
    """The latest committed version the last writer recorded (``None`` if never recorded)."""
    path = store._location.path(HEAD)
    if not store.fs.exists(path):
        return None
    try:
        with store.fs.open(path, "r") as fh:
            body = json.load(fh)
        return int(body["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(f"{store.uri!r}: {HEAD} is unreadable ({exc}); run `modyn-store verify`") from exc


def check_head(store: Store, committed: int | None = None) -> None:
    """Raise :class:`CorruptionError` if the version log lost versions it once committed.

    The head is read before the log (``committed`` = the log's last version, read now if not
    given under the writer lock): writers that commit in between only move the log ahead.
    """
    head = read_head(store)
    if committed is None:
        committed = store.version
    if head is not None and head > committed:
        raise CorruptionError(
            f"{store.uri!r}: the version log ends at version {committed} but version {head} was "
            "committed: the log lost versions (a deleted or damaged manifest). Nothing is written "
            "on top of it; run `modyn-store verify` and restore the store from a backup"
        )


def recover(store: Store) -> None:
    """Roll back rows of an interrupted write, and finish an interrupted erase or vacuum."""
    fs = store.fs
    path = store._location.path(INTENT)
    if not fs.exists(path):
        return
    committed = store.version
    try:
        with fs.open(path, "r") as fh:
            intent = json.load(fh)
        pending = int(intent["version"])
        op = str(intent.get("op", ""))
    except (ValueError, KeyError, TypeError):
        pending, op = committed + 1, ""
    if pending > committed:
        for name in store._tables.names():
            if store._tables.uncommitted(name):
                store._tables.drop(name)  # created by the interrupted write, never committed
                continue
            ds = store._tables.open(name)
            if ds is not None and "_version" in ds.schema.names:
                ds.delete(f"_version > {committed}")
    elif op in ("erase", "vacuum"):
        from modyn_store.core import maintenance

        maintenance.finish_purge(store, pending, op)
    # the interrupted writer may not have recorded its fragments' versions
    store._tables.save_fragment_versions("samples")
    fs.rm(path)


def _check_no_orphans(store: Store, committed: int) -> None:
    """Samples rows above the last committed version with no intent: the log was rolled back."""
    ds = store._tables.open("samples")
    if ds is None:
        return
    ranges = store._tables.fragment_versions("samples", ds)
    top = max((hi for _, hi in ranges.values()), default=0)
    if top <= committed:
        return
    # ranges are bounds (a rolled-back write leaves deleted rows in them): look at the rows
    rows = store._tables.scan("samples", ["_version"], f"_version > {committed}")
    if rows is not None and rows.num_rows:
        top = int(rows.column(0).to_numpy().max())
        raise CorruptionError(
            f"{store.uri!r}: samples hold rows of version {top} but the version log ends at "
            f"{committed} and no write is pending: the log lost versions. Nothing is written on "
            "top of it; run `modyn-store verify`"
        )


@contextmanager
def transaction(store: Store, op: str, message: str = "") -> Iterator[Transaction]:
    """See :meth:`modyn_store.core.store.Store.transaction`."""
    check_name("op", op)
    if not isinstance(message, str):
        raise InvalidArgumentError("message", message, "a string")
    with locked(store), store._tables.pinned():
        # another process may have written since this one last held the lock
        store._tables.forget_fragment_versions("samples")
        try:
            recover(store)
        except OSError as exc:
            if exc.errno in _READ_ONLY:
                raise _read_only(store, exc) from exc
            raise
        prev = store._read_records()
        last = prev[-1] if prev else None
        committed = last.version if last else 0
        check_head(store, committed)
        _check_no_orphans(store, committed)
        txn = Transaction(store, committed + 1, op, message)
        txn.previous = last
        # written before any row, so an interrupted write is always found and undone; a torn
        # intent reads as "the version after the last committed one", which is what it says
        try:
            _write_json(store, INTENT, {"version": txn.version, "op": txn.op}, atomic=False)
        except OSError as exc:
            if exc.errno in _READ_ONLY:
                raise _read_only(store, exc) from exc
            raise
        try:
            yield txn
        except BaseException:
            _rollback(store, txn)
            raise
        record = VersionRecord(
            version=txn.version,
            time=datetime.now(timezone.utc),
            op=op,
            message=message,
            inserted=txn.inserted,
            deleted=txn.deleted,
            erased=txn.erased,
            live=(last.live if last else 0) + txn.live_delta,
            max_key=max(last.max_key if last else -1, txn.max_key if txn.max_key is not None else -1),
            details=txn.details,
        )
        if store._format < FORMAT_VERSION:
            _marker.upgrade(store._location)  # older releases must not read a log they cannot see
            store._format = FORMAT_VERSION
        store._lock.check()
        store._log.commit(record)  # the commit point: an exclusive create
        txn.record = record
        _write_json(store, HEAD, {"version": txn.version})
        for name in txn.touched:
            store._tables.compact_if_fragmented(name)
        if "samples" in txn.touched:
            store._tables.save_fragment_versions("samples", new_version=txn.version if op == "append" else None)
        store._log.checkpoint()
        if op in ("erase", "vacuum"):
            from modyn_store.core import maintenance

            store._last_purge_caches = maintenance.finish_purge(store, txn.version, op)
        store.fs.rm(store._location.path(INTENT))


def _rollback(store: Store, txn: Transaction) -> None:
    store._lock.check()  # a writer that lost the store to another deletes nothing
    for name in txn.touched:
        if store._tables.uncommitted(name):
            store._tables.drop(name)
            continue
        ds = store._tables.open(name)
        if ds is not None:
            ds.delete(f"_version >= {txn.version}")
    intent = store._location.path(INTENT)
    if store.fs.exists(intent):
        store.fs.rm(intent)
