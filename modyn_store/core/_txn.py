"""Transactions, the intent record and recovery: how one store version commits atomically.

A write takes the writer lock, finishes or undoes an interrupted write (:func:`recover`),
records its intent (version and operation) before touching any table, writes rows that carry
its version, and commits by creating the version's record object in the version log
(:mod:`modyn_store.core._log`: an exclusive create, no second table commit). After the commit it writes
``_meta/head.json`` (the latest committed version and each table's Lance version), finishes
physical purges, records the Lance versions these and compaction added, and removes the intent.
The log can only be ahead of the head (a crash between the two); a head ahead of the log means
the log lost committed versions, and no write is allowed on top of that.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from modyn_store.core import _marker
from modyn_store.core._failures import READ_ATTEMPTS
from modyn_store.core._catalog_tables import INTERNAL_TABLES
from modyn_store.core._extension_rows import check_extension
from modyn_store.core._marker import FORMAT_VERSION
from modyn_store.core._plainjson import plain_json, read_json
from modyn_store.core._stream import erased_here
from modyn_store.core._tables import VERSION, with_version
from modyn_store.core._validate import check_name
from modyn_store.core._writable import READ_ONLY as _READ_ONLY
from modyn_store.core._writable import locked
from modyn_store.core._writable import read_only_error as _read_only
from modyn_store.core.errors import CorruptionError, InvalidArgumentError
from modyn_store.core.records import VersionRecord

if TYPE_CHECKING:
    import lance

    from modyn_store.core.store import Store

__all__ = [
    "HEAD", "INTENT", "INTERNAL_TABLES", "Transaction", "check_extension", "check_head", "locked", "record_tables",
    "recorded_tables", "recover", "transaction",
]

INTENT = "_txn/intent.json"
HEAD = "_meta/head.json"


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
        self.key_bounds: tuple[int, int] | None = None  # an append's smallest and largest key
        self.details: dict[str, Any] = {}
        self.touched: set[str] = set()
        #: tables this write creates (recorded in the intent first): undone by removing them
        self.created: set[str] = set()
        #: the last committed version's record (``None`` for an empty store)
        self.previous: VersionRecord | None = None
        #: this version's record, set once it committed
        self.record: VersionRecord | None = None
        #: the finished intent found before this write's own (local stores), put back on rollback
        self.finished: Any = None
        self.highest_fragment = -1  #: the highest samples fragment id before it: those above are its own

    def append(self, table: str, data: pa.Table) -> None:
        """Append ``data`` to the extension table ``table`` (created on first use).

        The store's own tables (samples, tombstones, ...) are written only by the store's
        operations, which check keys and liveness; naming one here is an error."""
        check_extension(self.store, table, data)
        self._write(table, data)

    def _write(self, table: str, data: pa.Table) -> lance.LanceDataset:
        """Append ``data`` to ``table`` at this version; the table as written (a Lance dataset)."""
        self._writing(table)
        return self.store._tables.append(table, with_version(data, self.version))

    def _writing(self, table: str) -> None:
        """Called before this write first writes ``table``. A table that does not exist yet
        is named in the intent before Lance creates it: Lance commits the new table at once,
        so a rollback (or the recovery after a crash) removes it whole, schema included."""
        if table in self.touched:
            return
        self.touched.add(table)
        if self.store._tables.open(table) is None:
            self.created.add(table)
            self.store._tables.guard()  # only the writer holding the store rewrites its intent
            _write_json(self.store, INTENT, {"version": self.version, "op": self.op, "created": sorted(self.created)})


#: small local files are overwritten in place, padded to at least this many bytes (see _put_local)
_WIDTH = 64


def _write_json(store: Store, relative: str, body: dict[str, Any]) -> None:
    """Write the intent or the head: an object store's put (atomic), or on a local disk one
    write over the file in place (see :func:`_put_local`)."""
    path = store._location.path(relative)
    data = json.dumps(body).encode()
    if store._location.is_local:
        _put_local(path, data)
        return
    fs = store.fs
    try:
        fs.pipe_file(path, data)
    except FileNotFoundError:
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(path, data)


def _put_local(path: str, data: bytes) -> None:
    """Overwrite the small file ``path`` with ``data`` by one ``pwrite`` at offset 0.

    The body is padded with blanks (which JSON ignores) to the file's size, so nothing is
    truncated and no new file or rename is involved: a rename or a truncation makes the file
    system flush the file, which costs more than the rest of a small commit. A process killed
    during the write leaves the old or the new body (one small write does not tear); a reader
    racing it may read a mix of both, so readers of these files re-read before they act.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        os.pwrite(fd, data.ljust(max(size, _WIDTH)), 0)
    finally:
        os.close(fd)


def _read_json(store: Store, relative: str) -> Any:
    """The body of a small JSON file, ``None`` if absent; ``ValueError`` if unreadable."""
    raw = store._location.read(relative)
    return None if raw is None else read_json(raw)


#: what :func:`_intent_body` gives for an intent file that is not JSON (torn)
_TORN = object()
#: :func:`recover` reads the intent file itself
_UNREAD = object()


def _intent_body(store: Store) -> Any:
    """The intent file's body (``None`` if absent, :data:`_TORN` if torn)."""
    try:
        return _read_json(store, INTENT)
    except ValueError:
        return _TORN


def _pending(body: Any) -> dict[str, Any] | None:
    """The pending write an intent file's ``body`` names (``{}`` if torn), ``None`` if none."""
    if body is None:
        return None
    if body is _TORN or not isinstance(body, dict):
        return {}
    return None if body.get("done") is True else body


def read_intent(store: Store) -> dict[str, Any] | None:
    """The pending write's intent (``{}`` if torn), or ``None`` if no write is pending.

    The writer marks its intent ``done`` when the write finished (on a local disk: the file
    stays, overwritten in place), or removes it (object stores).
    """
    return _pending(_intent_body(store))


def _finish_intent(store: Store, txn: Transaction) -> None:
    if store._location.is_local:
        _write_json(store, INTENT, {"version": txn.version, "op": txn.op, "done": True})
    else:
        store.fs.rm(store._location.path(INTENT))


def read_head(store: Store) -> int | None:
    """The latest committed version the last writer recorded (``None`` if never recorded)."""
    return _read_head(store)[0]


def _read_head(store: Store) -> tuple[int | None, int | None, dict[str, int]]:
    """``(version, samples, tables)``: the latest committed version, the samples table's Lance
    version and every table's Lance version the last writers recorded (``None`` or absent
    where not recorded; stores written before these fields have none)."""
    try:
        body = _read_json(store, HEAD)
        if body is None:
            return None, None, {}
        samples = body.get("samples")
        tables = {str(k): int(v) for k, v in body.get("tables", {}).items()}
        if samples is not None:
            tables["samples"] = max(tables.get("samples", 0), int(samples))
        return int(body["version"]), None if samples is None else int(samples), tables
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptionError(f"{store.uri!r}: {HEAD} is unreadable ({exc}); run `modyn-store verify`") from exc


def recorded_tables(store: Store) -> dict[str, int]:
    """The Lance version of each table as the last write left it (see :func:`transaction`).

    A table found older than this lost its latest manifests: :meth:`Tables.open` raises rather
    than read the older state (a deleted newest tombstones manifest would bring deleted keys
    back; a samples one would drop a version's rows). A head caught mid-write is read again.
    """
    for attempt in range(READ_ATTEMPTS):
        try:
            return _read_head(store)[2]
        except CorruptionError:
            if attempt + 1 == READ_ATTEMPTS:
                raise
            time.sleep(0.002 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns or raises


def check_head(store: Store, committed: int | None = None) -> tuple[int | None, dict[str, int]]:
    """Raise :class:`CorruptionError` if the version log lost versions it once committed.

    The head is read before the log (``committed`` = the log's last version, read now if not
    given under the writer lock): writers that commit in between only move the log ahead. A
    head that looks ahead of the log, or unreadable, is read again (with the log) before it
    counts: a local head is overwritten in place, and a reader may catch it mid-write.

    Returns the samples table's Lance version the head recorded (``None`` if none) and the
    Lance version it recorded of each table.
    """
    given = committed
    for attempt in range(READ_ATTEMPTS):
        last = attempt + 1 == READ_ATTEMPTS
        try:
            head, samples, tables = _read_head(store)
        except CorruptionError:
            if last:
                raise
            time.sleep(0.002 * (attempt + 1))
            continue
        committed = store.version if given is None else given
        if head is None or head <= committed:
            return samples, tables
        if last:
            raise CorruptionError(
                f"{store.uri!r}: the version log ends at version {committed} but version {head} was "
                "committed: the log lost versions (a deleted or damaged manifest). Nothing is written "
                "on top of it; run `modyn-store verify` and restore the store from a backup"
            )
        time.sleep(0.002 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns or raises


def recover(store: Store, body: Any = _UNREAD) -> None:
    """Roll back rows of an interrupted write, and finish an interrupted erase or vacuum
    (``body``: the intent file's, if the caller read it already)."""
    intent = read_intent(store) if body is _UNREAD else _pending(body)
    if intent is None:
        return
    committed = store.version
    try:
        pending = int(intent["version"])
        op = str(intent.get("op", ""))
    except (ValueError, KeyError, TypeError):
        pending, op = committed + 1, ""
    if pending > committed:
        created = _created(intent)
        for name in store._tables.names():
            if store._tables.uncommitted(name) or (name in created and _only_after(store, name, committed)):
                store._tables.drop(name)  # created by the interrupted write, which never committed
                continue
            ds = store._tables.open(name)
            if ds is not None and "_version" in ds.schema.names:
                ds.delete(f"_version > {committed}")
    elif op in ("erase", "vacuum"):
        from modyn_store.core import maintenance

        maintenance.finish_purge(store, pending, op)
    # the interrupted writer may not have recorded its fragments' versions
    store._tables.save_fragment_versions("samples")
    if pending <= committed:  # committed, but its head (or its purge's record) may be missing
        record_tables(store)
    store.fs.rm(store._location.path(INTENT))


def _created(intent: dict[str, Any]) -> set[str]:
    """The tables an intent says its write created (none if the entry is malformed)."""
    names = intent.get("created")
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str)}


def _only_after(store: Store, name: str, committed: int) -> bool:
    """Whether ``name`` holds no row of a committed version (so the pending write created it;
    a damaged intent naming an older table does not remove committed rows)."""
    ds = store._tables.open(name)
    if ds is None:
        return True
    return VERSION in ds.schema.names and ds.count_rows(f"{VERSION} <= {committed}") == 0


def _check_no_orphans(store: Store, committed: int, recorded: int | None = None) -> int:
    """Samples rows above the last committed version with no intent: the log was rolled back.
    Also a samples table older than the Lance version the head recorded (``recorded``): its
    latest manifests were lost, and a write on top would reuse their numbers.

    Returns the highest fragment id of the samples (-1 if none): fragments above it that the
    transaction finds at its end are its own.
    """
    ds = store._tables.open("samples")
    if recorded is not None and (ds is None or ds.version < recorded):
        found = "no samples table" if ds is None else f"its Lance version {ds.version}"
        raise CorruptionError(
            f"{store.uri!r}: the last write left the samples table at Lance version {recorded}, but it "
            f"now has {found}: its latest manifests were lost. Nothing is written on top of it; run "
            "`modyn-store verify` and restore the store from a backup"
        )
    if ds is None:
        return -1
    ranges = store._tables.fragment_versions("samples", ds)
    highest = max(ranges, default=-1)
    top = max((hi for _, hi in ranges.values()), default=0)
    if top <= committed:
        return highest
    # ranges are bounds (a rolled-back write leaves deleted rows in them): look at the rows
    rows = store._tables.scan("samples", ["_version"], f"_version > {committed}")
    if rows is not None and rows.num_rows:
        top = int(rows.column(0).to_numpy().max())
        raise CorruptionError(
            f"{store.uri!r}: samples hold rows of version {top} but the version log ends at "
            f"{committed} and no write is pending: the log lost versions. Nothing is written on "
            "top of it; run `modyn-store verify`"
        )
    return highest


def commit_clock() -> datetime:
    """The wall-clock time (UTC) a commit records: the one place a commit reads the clock, so a
    clock that goes back (NTP, a moved VM) can be reproduced; see :meth:`Store.as_of`."""
    return datetime.now(timezone.utc)


@contextmanager
def transaction(store: Store, op: str, message: str = "") -> Iterator[Transaction]:
    """See :meth:`modyn_store.core.store.Store.transaction`."""
    check_name("op", op)
    if not isinstance(message, str):
        raise InvalidArgumentError("message", message, "a string")
    with locked(store), store._tables.pinned():
        found = _intent_body(store)
        try:
            recover(store, found)
        except OSError as exc:
            if exc.errno in _READ_ONLY:
                raise _read_only(store, exc) from exc
            raise
        prev = store._read_records()
        store._written.hold(prev)  # (until locked() lets the lock go: no other commit meanwhile)
        last = prev[-1] if prev else None
        committed = last.version if last else 0
        recorded, tables = check_head(store, committed)
        store._tables.pin_floors(tables)
        highest_fragment = _check_no_orphans(store, committed, recorded)
        txn = Transaction(store, committed + 1, op, message)
        txn.previous = last
        txn.highest_fragment = highest_fragment
        # a refused write puts back the finished intent it found (a local store keeps one): files left as they were
        txn.finished = found if store._location.is_local and _pending(found) is None and found is not None else None
        # written before any row, so an interrupted write is always found and undone; a torn
        # intent reads as "the version after the last committed one", which is what it says
        try:
            _write_json(store, INTENT, {"version": txn.version, "op": txn.op})
        except OSError as exc:
            if exc.errno in _READ_ONLY:
                raise _read_only(store, exc) from exc
            raise
        try:
            yield txn
            plain_json("details", txn.details)  # refused before the commit: the log stores it as JSON
        except BaseException:
            _rollback(store, txn)
            raise
        record = VersionRecord(
            version=txn.version,
            time=commit_clock(),
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
        store._lock.check(confirm=True)  # still the holder, asked of the store itself
        store._log.commit(record)  # the commit point: an exclusive create
        store._written.release()  # (from here on, lookups see this version too)
        txn.record = record
        if op == "erase":
            erased_here()  # streams of this process drop the keys from their next batch on
        # the Lance version of every table this write opened (a table's latest, under the lock):
        # a reader or writer that later finds one older knows its newest manifests were lost
        for name, ds in (store._tables._pinned() or {}).items():
            tables[name] = max(tables.get(name, 0), ds.version)
        _write_head(store, txn.version, tables)
        for name in txn.touched:
            store._tables.compact_if_fragmented(name)
        if "samples" in txn.touched:
            store._tables.save_fragment_versions(
                "samples", new_version=txn.version if op == "append" else None, created_after=highest_fragment,
                keys=txn.key_bounds,
            )
        store._log.checkpoint()
        moved = set(txn.touched)
        if op in ("erase", "vacuum"):
            from modyn_store.core import maintenance

            store._last_purge_caches = maintenance.finish_purge(store, txn.version, op)
            moved.update(maintenance.purge_tables(store, op))  # (not others: a damaged one blocks no erase)
        # record the Lance versions the compaction and purge above committed (none: no write)
        _raise_head(store, txn.version, tables, moved)
        _finish_intent(store, txn)


def _write_head(store: Store, version: int, tables: dict[str, int]) -> None:
    """Write the head: the last committed ``version`` and each table's Lance version."""
    head: dict[str, Any] = {"version": version}
    samples = tables.get("samples")
    if samples is not None:
        head["samples"] = samples
    if tables:
        head["tables"] = dict(sorted(tables.items()))
    _write_json(store, HEAD, head)


def _raise_head(store: Store, version: int, tables: dict[str, int], names: Iterable[str], force: bool = False) -> None:
    """Raise the head's record (``tables``, updated in place) to the Lance version each table of
    ``names`` has now, and write it (with ``version``) if one moved or ``force``.

    For Lance commits after the head was written, under the writer lock (compaction, a purge,
    the key index, a killed write's finish): their lost manifests are then damage too, not an
    older answer. A process killed before this write leaves the head behind the tables, which
    reads fine (only a table older than the head is refused); a reader that reads the new head
    opens the tables after it, so finds them at least as new.

    A table that cannot be opened (damaged) keeps the version the head had for it: the head
    only records lower bounds, the damage is raised where that table is read and reported by
    ``verify``, and recovery or ``index_keys`` must not stop every later write on it."""
    for name in sorted(names):
        try:
            ds = store._tables.open(name)
        except CorruptionError:
            continue
        if ds is not None and ds.version > tables.get(name, 0):
            tables[name] = ds.version
            force = True
    if force:
        _write_head(store, version, tables)


def record_tables(store: Store) -> None:
    """:func:`_raise_head` for every table, by maintenance (``compact``, ``index_keys``) or
    recovery, under the writer lock with no write pending; the head's version moves up to the
    log's last where a writer was killed before writing it."""
    committed = store.version
    head = read_head(store)
    _, tables = check_head(store, committed)
    if head is not None or committed:
        _raise_head(store, committed, tables, store._tables.names(), force=head is None or head < committed)


def _rollback(store: Store, txn: Transaction) -> None:
    store._lock.check(confirm=True)  # a writer that lost the store to another deletes nothing
    for name in txn.touched:
        if name in txn.created or store._tables.uncommitted(name):
            store._tables.drop(name)  # created by this write: the store had no such table
            continue
        ds = store._tables.open(name)
        if ds is not None:
            ds.delete(f"_version >= {txn.version}")
            # the refused rows' files go too, not only out of the latest manifest (readers of
            # older manifests read again, as after a compaction)
            store._tables.cleanup(name)
    if isinstance(txn.finished, dict) and txn.finished.get("done") is True:
        _write_json(store, INTENT, txn.finished)
        return
    intent = store._location.path(INTENT)
    if store.fs.exists(intent):
        store.fs.rm(intent)
