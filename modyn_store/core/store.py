"""The versioned store: a folder of Lance tables with a logical version log.

Example
-------
>>> import pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open("memory://store-doc", create=True)
>>> store.append(pa.table({"ts": [10, 20], "x": [1.0, 2.0]}), message="first").version
1
>>> store.delete(keys=[0]).version
2
>>> [r.op for r in store.log()]
['append', 'delete']
>>> store.as_of(1).count(), store.as_of(2).count()
(2, 1)
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import functools
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from engine._search import sorted_unique
from modyn_store.core import _marker, _queries, _tags, _txn, _writes
from modyn_store.core._location import Location, resolve
from modyn_store.core._log import VersionLog
from modyn_store.core._lock import writer_lock
from modyn_store.core._marker import FORMAT_VERSION, MARKER
from modyn_store.core._tables import Tables
from modyn_store.core._catalog_tables import holds_samples, sample_keys
from modyn_store.core._txn import INTERNAL_TABLES, Transaction
from modyn_store.core._written import WrittenTables
from modyn_store.core._validate import check_bool, check_filter, check_float, check_name, check_zoned_times, filter_error
from modyn_store.core.errors import (
    ConflictError,
    InvalidArgumentError,
    UnknownVersionError,
)
from modyn_store.core.keyindex import IndexReport
from modyn_store.core.records import Delta, Diff, ErasureReport, VacuumReport, VersionRecord, version_at_time
from modyn_store.core.snapshot import Snapshot, _isin_sorted

if TYPE_CHECKING:
    from modyn_store.core.caches import CacheIndex
    from modyn_store.core.scores import Scores

__all__ = ["FORMAT_VERSION", "MARKER", "Store", "Transaction"]

# Tables whose rows hold sample content (and so are purged by erase and vacuum); score tables too.
CONTENT_TABLES = ("samples",)
#: the longest a writer may be asked to wait for the writer lock (seconds; about 31 years)
MAX_LOCK_WAIT = 1e9
Missing = Literal["error", "ignore"]
VersionRef = int | str | datetime | None


class Store:
    """An embedded, versioned dataset store in a folder.

    Use :meth:`open` (``create=True`` makes a new store). See the module docstring for an
    example and ``docs/ARCHITECTURE.md`` for the folder layout.
    """

    def __init__(self, location: Location, *, lock_timeout: float, format_version: int = FORMAT_VERSION) -> None:
        self._location = location
        self._tables = Tables(location)
        self._lock = writer_lock(location, lock_timeout)
        # before every table write: still the holder, asked of the storage (an S3 lease can be lost)
        self._tables.guard = functools.partial(self._lock.check, confirm=True)
        self._format = format_version
        self._log = VersionLog(self)
        # a table the log wrote must exist (an object store lists its log at most every 5 s for it)
        self._written = WrittenTables(self._read_records, 0.0 if self._location.is_local else 5.0)
        self._tables.written = self._written
        # each table's Lance version as the last write left it (read before a table is opened)
        self._tables.floors = lambda: _txn.recorded_tables(self)
        self._erased_cache: tuple[int, np.ndarray] | None = None
        self._samples_committed = False  # a committed version wrote the samples (see samples_dataset)
        self._version_buffer = np.empty(0, np.int64)  # the appends' _version column (see _writes)
        self._last_purge_caches = 0

    def _forget_read_state(self) -> None:
        """Drop what this object derived from the store's log (another store now lives here)."""
        self._erased_cache = None
        self._samples_committed = False
        self._written = WrittenTables(self._read_records, 0.0 if self._location.is_local else 5.0)
        self._tables.written = self._written

    # made on first use: a process that never touches scores or caches does not import them
    @functools.cached_property
    def scores(self) -> Scores:
        """Per-sample score tables (see :class:`~modyn_store.core.scores.Scores`)."""
        from modyn_store.core.scores import Scores

        return Scores(self)

    @functools.cached_property
    def caches(self) -> CacheIndex:
        """The index of materialization caches under ``_cache/`` (see :class:`CacheIndex`)."""
        from modyn_store.core.caches import CacheIndex

        return CacheIndex(self)

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        uri: str,
        *,
        create: bool = False,
        storage_options: dict[str, Any] | None = None,
        lock_timeout: float = 30.0,
    ) -> Store:
        """Open the store at ``uri`` (a folder, ``memory://name`` or an object-store URI).

        With ``create=True`` an empty store is made if none exists. Raises
        :class:`~modyn_store.core.errors.NotAStoreError` for a location that holds something else
        and :class:`~modyn_store.core.errors.FormatVersionError` for a newer format. A local store
        whose folder holds a symbolic link among its own entries, the entries of its folders or
        those of the folders in ``scores/`` and ``_meta/`` raises
        :class:`~modyn_store.core.errors.CorruptionError` (writes, erasure and cache eviction
        would write or delete the links' targets outside the store).
        ``lock_timeout``: seconds a write waits for another process's write to finish.
        """
        create = check_bool("create", create)
        lock_timeout = check_float("lock_timeout", lock_timeout, 0, MAX_LOCK_WAIT)
        loc = resolve(uri, storage_options)
        fv = _marker.open_or_create(loc, create=create)
        store = cls(loc, lock_timeout=lock_timeout, format_version=fv)
        store._recover_if_idle()
        _txn.check_head(store)
        return store

    def _recover_if_idle(self) -> None:
        """Finish or roll back an interrupted write now, unless a live writer holds the lock."""
        if not self._location.is_local or _txn.read_intent(self) is None:
            return  # on an object store readers write nothing: the next writer recovers
        idle = self._lock.idle()
        try:
            with idle:
                self._recover()
        except ConflictError:
            pass  # a writer is active; it recovers before its own write
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            # a read-only store: readers ignore the interrupted write (its rows carry a
            # version above the log's last), writers get ReadOnlyStoreError

    @property
    def uri(self) -> str:
        """The URI the store was opened with."""
        return self._location.uri

    @property
    def fs(self) -> Any:
        """The fsspec filesystem for the store's auxiliary files."""
        return self._location.fs

    def path(self, relative: str) -> str:
        """The fsspec path of ``relative`` (e.g. ``"models/abc.pt.zst"``) inside the store."""
        parts = relative.replace("\\", "/").split("/")
        if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InvalidArgumentError("relative", relative, "a relative path without '..' or empty parts")
        return self._location.path(relative)

    def samples_dataset(self) -> Any:
        """The ``lance.LanceDataset`` of the samples table (``None`` before the first append
        commits: see :attr:`schema`).

        Rows carry ``_version``; use :meth:`as_of` for the live set.
        """
        ds = self._tables.open("samples")
        if ds is None or self._samples_committed:
            return ds
        # a table no committed version wrote: a first append under way, or one that failed
        # before its commit and waits for the next writer to remove it
        self._samples_committed = "samples" in self._written.all()
        return ds if self._samples_committed else None

    def __repr__(self) -> str:
        return f"Store({self.uri!r}, version={self.version})"

    # -- the version log -----------------------------------------------------------------
    def _read_records(self) -> list[VersionRecord]:
        return self._log.records()

    def log(self, since: int = 0) -> list[VersionRecord]:
        """Every committed version after version ``since`` (default: all), oldest first.

        The records are the caller's own: their ``details`` are copies, so changing them changes
        nothing the store (or another ``Store`` of this process) reads. A caller that follows
        the store (a poll loop) passes the last version it has seen: only the newer records are
        copied.

        >>> import pyarrow as pa
        >>> store = Store.open("memory://store-log-doc", create=True)
        >>> for t in ([1, 2], [3]): _ = store.append(pa.table({"ts": t}))
        >>> [r.version for r in store.log(since=1)], len(store.log())
        ([2], 2)
        """
        if isinstance(since, bool) or not isinstance(since, (int, np.integer)) or since < 0:
            raise InvalidArgumentError("since", since, "a version number >= 0")
        records = self._read_records()
        return [dataclasses.replace(r, details=copy.deepcopy(r.details)) for r in records if r.version > since]

    @property
    def version(self) -> int:
        """The latest committed version (0 for an empty store).

        The log's table holds one row per version up to its last checkpoint (a row count is
        manifest metadata, no scan), and one record object exists per later version.
        """
        return self._log.latest()

    @property
    def schema(self) -> pa.Schema | None:
        """The user-visible schema of the samples (``None`` before the first append commits;
        the columns of a first append that is under way or failed before its commit are not the
        store's)."""
        ds = self.samples_dataset()
        if ds is None:
            return None
        return pa.schema([f for f in ds.schema if f.name != "_version"])

    def _resolve(self, ref: VersionRef) -> int:
        latest = self.version
        if ref is None:
            return latest
        if isinstance(ref, bool):
            raise InvalidArgumentError("version", ref, "a version number, tag name or datetime")
        if isinstance(ref, (int, np.integer)):
            if not 0 <= int(ref) <= latest:
                raise UnknownVersionError(f"version {int(ref)} does not exist: valid versions are 0..{latest}")
            return int(ref)
        if isinstance(ref, str):
            tags = self.tags()
            if ref not in tags:
                raise UnknownVersionError(f"unknown tag {ref!r}; tags are {sorted(tags)}")
            return tags[ref]
        if isinstance(ref, datetime):
            if ref.tzinfo is None or ref.utcoffset() is None:
                raise InvalidArgumentError(
                    "version",
                    ref,
                    "a timezone-aware datetime (a naive one is ambiguous): e.g. "
                    "datetime.now(timezone.utc), or dt.astimezone() for local time",
                )
            return version_at_time(self._read_records(), ref)
        raise InvalidArgumentError("version", ref, "a version number, tag name, datetime or None")

    def as_of(self, version: VersionRef = None) -> Snapshot:
        """A read-only snapshot as of a version number, tag, wall-clock time or the latest.

        A time-zone-aware ``datetime`` names the latest version that was committed, together
        with every version before it, at or before that time: the commit times are read as
        their running maximum, so a clock that went back between two commits never brings
        in a version whose predecessor was committed after the time. A time after the last
        commit names the latest version; one before the first commit raises
        :class:`UnknownVersionError` (version 0, the empty store, has no commit time)."""
        latest = self.version
        if version is None or isinstance(version, bool) or not isinstance(version, (int, np.integer)):
            target = self._resolve(version) if version is not None else latest
        elif not 0 <= int(version) <= latest:
            raise UnknownVersionError(f"version {int(version)} does not exist: valid versions are 0..{latest}")
        else:
            target = int(version)  # (the log read once for both)
        return Snapshot(self, target, committed=latest)

    def tags(self) -> dict[str, int]:
        """Tag name -> version."""
        return _tags.tags(self)

    def _erased_keys(self, committed: int | None = None, *, kept: bool = True) -> np.ndarray:
        """Sorted keys erased in any committed version (``committed``: the latest, if known;
        ``kept=False``: not from the read cache, see ``Tables.derived_arrays``)."""
        v = self.version if committed is None else committed
        if kept and self._erased_cache is not None and self._erased_cache[0] == v:
            return self._erased_cache[1]
        got = self._tables.derived_arrays(
            "erasures", f"erased/1/at-or-before/{v}", lambda ds: (_erased_in(ds, v),), kept=kept
        )
        keys = got[0] if got is not None else np.empty(0, np.int64)
        self._erased_cache = (v, keys)
        return keys

    # -- writing -------------------------------------------------------------------------
    def read_table(self, name: str, version: VersionRef = None, *, filter: str | None = None) -> pa.Table | None:
        """Rows of a table written at or before ``version`` (``None`` if the table does not exist).

        Rows of erased keys in an extension table keyed by sample (an int64 ``key`` column, see
        :func:`~modyn_store.core._catalog_tables.holds_samples`) are left out from the erase's
        commit on, as the samples' are, also before ``erase`` has removed them from the files."""
        if name not in INTERNAL_TABLES:
            check_name("table", name)
        v = self._resolve(version)
        if filter is None:
            t = self._tables.scan(name, None, f"_version <= {v}")
        else:
            flt = check_filter(filter)
            check_zoned_times(filter, lambda: getattr(self._tables.open(name), "schema", None))
            try:
                t = self._tables.scan(name, None, flt)
            except (ValueError, OSError) as exc:
                raise filter_error(filter, exc, f" on table {name!r}") from exc
            if t is not None:  # the version bound is applied here, never pasted into the user's filter
                t = t.filter(pa.array(t.column("_version").to_numpy() <= v))
        if t is not None and t.num_rows and holds_samples(name, t.schema):
            erased = self._erased_keys()
            if erased.size:
                keys, valid = sample_keys(t.column("key"))  # (a null key names none)
                t = t.filter(pa.array(~(_isin_sorted(keys, erased) & (True if valid is None else valid))))
        return t

    def append(
        self,
        data: Any,
        *,
        key: str | None = None,
        ts: str | None = None,
        label: str | None = None,
        message: str = "",
        tables: Mapping[str, pa.Table] | None = None,
    ) -> VersionRecord:
        """Append rows as one new version.

        Parameters
        ----------
        data:
            A pyarrow Table, RecordBatch or RecordBatchReader (streamed: its keys are not held
            while it is written), a pandas DataFrame or a dict of columns. Payload columns may
            be numbers, fixed-size lists (tensors),
            strings or binary; a dictionary-encoded column (a pandas categorical) is stored
            as its values. A new store refuses a column of type ``null`` (no value in any row)
            or of a nested type holding ``null`` (``list<null>``: lists all empty or of nulls).
            An extension table in ``tables`` not created yet refuses them too.
        key:
            The column holding unique int64 keys; by default a ``key`` column, else keys are
            assigned after the largest key ever used.
        ts:
            The event-time column (default ``ts``); integer, float, date or timestamp.
        label:
            The label column (default ``label`` if present; optional).
        message:
            Free text stored in the version log.
        tables:
            Rows of extension tables (name -> pyarrow Table, as in :meth:`transaction`) written
            in the same version: they commit with the samples or not at all.

        Raises
        ------
        SchemaMismatchError, DuplicateKeyError, InvalidArgumentError
            The store is left unchanged.
        """
        return _writes.append(self, data, key=key, ts=ts, label=label, message=message, tables=tables)

    def delete(
        self,
        keys: Any = None,
        *,
        where: str | None = None,
        missing: Missing = "error",
        message: str = "",
    ) -> VersionRecord:
        """Soft-delete rows: they leave the live set from the new version on.

        Give ``keys`` (at least one) or a ``where`` filter (Lance SQL over the store's
        columns). Unknown or already deleted keys raise
        :class:`~modyn_store.core.errors.UnknownKeyError` unless ``missing="ignore"``, in which
        case the record's ``details["ignored"]`` counts them. A filter that matches no live row,
        or keys that are all ignored, still commit a version: the request is on record, with
        ``deleted == 0``. Before the first append only the columns ``key``, ``ts`` and
        ``_version`` are known, so a ``where`` naming any other column (or one that does not
        parse) raises :class:`~modyn_store.core.errors.InvalidFilterError` and commits nothing.
        """
        return _writes.delete(self, keys, where=where, missing=missing, message=message)

    def erase(
        self,
        keys: Any,
        *,
        reason: str,
        missing: Missing = "error",
        message: str = "",
    ) -> ErasureReport:
        """Erase samples physically (right to erasure): see :func:`modyn_store.core.maintenance.erase`."""
        from modyn_store.core import maintenance

        return maintenance.erase(self, keys, reason=reason, missing=missing, message=message)

    def compact(self) -> None:
        """Merge small files of every table and bring the key index up to date (logical
        content and versions are unchanged)."""
        from modyn_store.core import maintenance

        maintenance.compact(self)

    def index_keys(self) -> IndexReport:
        """Build or update the key index that serves ``take``/``row_ids``/``contains`` of a few
        keys without reading every key: see :mod:`modyn_store.core.keyindex`.

        A writer's maintenance call (takes the writer lock); ``compact`` runs it too. Rows
        appended since are still found (scanned flat), only more slowly.
        """
        from modyn_store.core import maintenance

        return maintenance.index_keys(self)

    def vacuum(self, *, keep_versions: int = 10, dry_run: bool = True) -> VacuumReport:
        """Purge soft-deleted rows no recent version needs: see :func:`modyn_store.core.maintenance.vacuum`."""
        from modyn_store.core import maintenance

        return maintenance.vacuum(self, keep_versions=keep_versions, dry_run=dry_run)

    def tag(self, name: str, version: VersionRef = None, *, message: str = "") -> VersionRecord:
        """Name a version (default: the latest). Tags protect their version's rows from vacuum.

        A tag promises that its version can be read: a version some of whose rows ``vacuum``
        has purged raises :class:`~modyn_store.core.errors.DataUnavailableError` (its ``keys``
        name them) and no tag is written."""
        return _tags.tag(self, name, version, message)

    def untag(self, name: str, *, message: str = "") -> VersionRecord:
        """Remove a tag."""
        return _tags.untag(self, name, message)

    # -- comparing versions --------------------------------------------------------------
    def diff(self, a: VersionRef, b: VersionRef) -> Diff:
        """Keys that entered and left the live set from version ``a`` to ``b``."""
        return _queries.diff(self, a, b)

    def delta(
        self,
        a: VersionRef,
        b: VersionRef,
        columns: list[str] | None = None,
        *,
        on_unavailable: Literal["error", "skip"] = "error",
        labels: bool = True,
    ) -> Delta:
        """Rows inserted and keys deleted or erased in versions ``(a, b]`` (for triggers).

        ``deleted`` leaves out keys erased since (erased at every version, as in ``diff``).
        Rows inserted in the range that ``vacuum`` has since purged cannot be returned: they
        raise :class:`~modyn_store.core.errors.DataUnavailableError` (its ``keys`` name them)
        unless ``on_unavailable="skip"``. ``labels=False`` leaves the ``label`` column out
        (unless ``columns`` names it), for triggers that do not read labels. ``inserted``
        adds a ``version`` column, so a payload column named ``version`` is refused in
        ``columns`` (:class:`InvalidArgumentError`; read it with ``to_table`` or ``take``).
        """
        return _queries.delta(self, a, b, columns, on_unavailable=on_unavailable, labels=labels)

    # -- writing -------------------------------------------------------------------------
    def transaction(self, op: str, message: str = "") -> AbstractContextManager[Transaction]:
        """Write several tables in one atomic store version.

        A write of this handle started inside the block by its thread raises ``NestedWriteError``.

        Example
        -------
        >>> import pyarrow as pa
        >>> from modyn_store import Store
        >>> store = Store.open("memory://txn-doc", create=True)
        >>> with store.transaction("note", message="hello") as txn:
        ...     txn.append("notes", pa.table({"text": ["a"]}))
        >>> store.read_table("notes").column("text").to_pylist()
        ['a']
        """
        return _txn.transaction(self, op, message)

    def _recover(self) -> None:
        _txn.recover(self)

    def _record_tables(self) -> None:
        _txn.record_tables(self)


def _erased_in(ds: Any, version: int) -> np.ndarray:
    """Sorted distinct keys of the erasures table ``ds`` erased at or before ``version``."""
    t = ds.to_table(columns=["key", "_version"])
    keys = t.column("key").to_numpy()
    return sorted_unique(keys[t.column("_version").to_numpy() <= version])
