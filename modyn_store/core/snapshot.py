"""Read-only views of the store as of one version."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pyarrow as pa

from engine._search import isin_sorted_numpy as _isin_sorted
from engine._search import sorted_unique
from modyn_store.core import _lookup, _tombstoned, integrity, keyindex
from modyn_store.core._count import live_count, log_mismatch, read_again
from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS, vanished
from modyn_store.core._keyscan import SCAN_BATCH, LiveKeys, SeenSet
from modyn_store.core._runclaims import run_claims
from modyn_store.core._stream import check_filter_before_rows, check_filter_on, live_stream
from modyn_store.core._validate import as_keys, check_batch_size, check_filter, check_zoned_times, filter_error
from modyn_store.core.errors import DataUnavailableError, InvalidArgumentError
from modyn_store.core.rows import RowReader, take_by_row_id

if TYPE_CHECKING:
    from modyn_store.core.records import VersionRecord
    from modyn_store.core.store import Store

__all__ = ["Snapshot", "take_by_row_id"]

OnUnavailable = Literal["error", "skip"]
T = TypeVar("T")
#: requests of at most this many keys, or this share of the stored rows, are answered by point
#: lookups (:mod:`~modyn_store.core.keyindex`, ~3-15 us a key); larger ones by the sorted key
#: set (~0.5 us a stored row, whatever the request)
POINT_MIN_KEYS = 64
POINT_SHARE = 1 / 32


class Snapshot:
    """The live set of a store as of ``version``: read-only and stable.

    Rows inserted at or before the version, minus rows soft-deleted at or before it, minus
    rows erased at any time. Rows that ``vacuum`` purged physically are still counted in
    :meth:`keys` but listed by :meth:`unavailable`; reading their data raises
    :class:`~modyn_store.core.errors.DataUnavailableError` unless ``on_unavailable="skip"``.

    Example
    -------
    >>> import pyarrow as pa
    >>> from modyn_store import Store
    >>> store = Store.open("memory://snapshot-doc", create=True)
    >>> _ = store.append(pa.table({"ts": [1, 2, 3], "x": [0.5, 1.5, 2.5]}))
    >>> _ = store.delete(keys=[1])
    >>> store.as_of(1).keys().tolist(), store.as_of(2).keys().tolist()
    ([0, 1, 2], [0, 2])
    """

    def __init__(self, store: Store, version: int, *, committed: int | None = None) -> None:
        self._store = store
        self.version = int(version)
        # the latest committed version when the snapshot was taken: erasures up to it apply
        self._committed = store.version if committed is None else int(committed)
        self._dead_cache: np.ndarray | None = None
        self._unavailable_cache: np.ndarray | None = None
        self._keys_cache: np.ndarray | None = None
        self._tombstoned: np.ndarray = np.empty(0, np.int64)
        # whether the tombstoned, erased and purged keys may come from entries kept on disk
        # (see _kept); a read whose keys disagree with the log reads the tables before it
        # reports damage
        self._kept_ok = True
        self._records_cache: list[VersionRecord] | None = None

    def __repr__(self) -> str:
        return f"Snapshot(store={self._store.uri!r}, version={self.version})"

    def _refresh(self) -> None:
        """Forget cached key sets if an erase or vacuum committed since they were computed.

        A snapshot is stable, except that erasure applies to every version and vacuum may
        make rows unavailable: a snapshot kept across either (in this process or another)
        must not serve the old sets.
        """
        if self._records_cache is None:  # a first look reads the records with the latest version
            records = self._store._read_records()
            latest = records[-1].version if records else 0
            if latest == self._committed:
                self._records_cache = records[:latest] if len(records) == latest else None
                return
        else:
            latest = self._store.version
            if latest == self._committed:
                return
            records = self._store._read_records()
        if any(r.op in ("erase", "vacuum") for r in records[self._committed : latest]):
            self._dead_cache = self._unavailable_cache = self._keys_cache = None
        self._committed = latest
        self._records_cache = records[:latest] if len(records) >= latest else None

    def _records(self) -> list[VersionRecord]:
        """The log's records of versions 1 .. the latest committed one the snapshot knows
        (read once: committed records never change)."""
        if self._records_cache is None:
            records = self._store._read_records()
            if len(records) < self._committed:
                return records  # the log lost versions: let the checks say so, keep nothing
            self._records_cache = records[: self._committed]
        return self._records_cache

    # -- sets ----------------------------------------------------------------------------
    def _dead(self, *, refresh: bool = True) -> np.ndarray:
        """Sorted keys that are not live at this version although inserted: deleted or erased
        (``refresh=False``: as of the erasures known to the snapshot, no look at the log)."""
        if refresh:
            self._refresh()
        if self._dead_cache is None:
            tomb, tomb_sorted = np.empty(0, np.int64), np.empty(0, np.int64)
            # only deletes write tombstones: a version shares the set of the last delete at or before it
            last = _tombstoned.last_delete(self._records(), self.version)
            if last:
                got = self._store._tables.derived_arrays(
                    "tombstones", _tombstoned.read_what(last), lambda ds: self._read_tombstones(ds, last),
                    kept=self._kept_ok,
                )
                if got is not None:
                    tomb, tomb_sorted = (got[0], got[0]) if len(got) == 1 else got
            self._tombstoned = tomb
            erased = self._store._erased_keys(self._committed, kept=self._kept_ok)
            if not erased.size:
                self._dead_cache = tomb_sorted
            elif not tomb_sorted.size:
                self._dead_cache = erased
            else:
                self._dead_cache = sorted_unique(np.concatenate([tomb_sorted, erased]))
        return self._dead_cache

    def _read_tombstones(self, ds: Any, upto: int) -> tuple[np.ndarray, ...]:
        """(keys tombstoned at or before version ``upto``, the same sorted and distinct) of
        ``ds``, or only the second where they are the same (no key tombstoned twice)."""
        # both columns, the bound applied here: cheaper than planning a Lance filter
        t = ds.to_table(columns=["key", "_version"])
        tomb = t.column("key").to_numpy()
        tomb = tomb[t.column("_version").to_numpy() <= upto]
        distinct = sorted_unique(tomb)
        # the checksum is order-free: without repeats the sorted keys stand for both (half the memory)
        return (distinct,) if distinct.size == tomb.size else (tomb, distinct)

    def unavailable(self) -> np.ndarray:
        """Sorted keys live at this version whose rows ``vacuum`` purged."""
        return self._unavailable(refresh=True)

    def _unavailable(self, *, refresh: bool) -> np.ndarray:
        if refresh:
            self._refresh()
        if self._unavailable_cache is None:
            got = self._store._tables.derived_arrays(
                "purged", f"purged/1/live-at/{self.version}/committed/{self._committed}", self._read_purged,
                kept=self._kept_ok,
            )
            keys = got[0] if got is not None else np.empty(0, np.int64)
            erased = self._store._erased_keys(self._committed, kept=self._kept_ok)
            self._unavailable_cache = keys[~_isin_sorted(keys, erased)]
        return self._unavailable_cache

    def _with_unavailable(self, dead: np.ndarray) -> np.ndarray:
        """``dead`` and the keys whose rows a committed vacuum purged (as the snapshot knows them,
        no look at the log): the keys whose stored rows a read leaves out. A vacuum commits before
        it purges, so until its purge finished (another process's vacuum, or one killed before
        the next writer recovered it) those rows are still stored."""
        unavailable = self._unavailable(refresh=False)
        return sorted_unique(np.concatenate([dead, unavailable])) if unavailable.size else dead

    def _read_purged(self, ds: Any) -> tuple[np.ndarray]:
        """Sorted distinct keys of ``ds`` (the purged table) live at this version."""
        t = ds.to_table(columns=["key", "inserted", "deleted", "_version"])
        keep = (
            (t.column("inserted").to_numpy() <= self.version)
            & (t.column("deleted").to_numpy() > self.version)
            & (t.column("_version").to_numpy() <= self._committed)
        )
        return (sorted_unique(t.column("key").to_numpy()[keep]),)

    def _fragments(self, ds: Any) -> tuple[list[Any], list[Any]]:
        """The fragments of ``ds`` written entirely at or before this version, and those that
        straddle it (the rest were written after it)."""
        ranges = self._store._tables.fragment_versions("samples", ds)
        full, partial = [], []
        for frag in ds.get_fragments():
            lo, hi = ranges[frag.fragment_id]
            if hi <= self.version:
                full.append(frag)
            elif lo <= self.version:
                partial.append(frag)
        return full, partial

    def _readers(
        self,
        ds: Any,
        columns: list[str],
        user_filter: str | None = None,
        *,
        batch_size: int | None = None,
        with_row_id: bool = False,
        with_row_address: bool = False,
        plan: tuple[list[Any], list[Any]] | None = None,
    ) -> list[Iterator[pa.RecordBatch]]:
        """Batch streams over the rows inserted at or before this version.

        Fragments written entirely at or before the version are read without a version
        filter (and without reading ``_version``); fragments entirely after it are skipped;
        only fragments that straddle it read ``_version`` and are masked here. The user's
        filter goes to Lance on its own (checked to be one expression), never pasted into
        the version bound.
        """
        flt = check_filter(user_filter) if user_filter is not None else None
        if user_filter is not None:
            check_zoned_times(user_filter, ds.schema)
        full, partial = self._fragments(ds) if plan is None else plan
        if user_filter is not None and not (full or partial):
            check_filter_on(ds, user_filter)  # no rows at this version: no scanner checks it
        readers: list[Iterator[pa.RecordBatch]] = []
        try:
            if full:
                scanner = ds.scanner(
                    columns=columns, filter=flt, fragments=full, batch_size=batch_size, with_row_id=with_row_id,
                    with_row_address=with_row_address,
                )
                readers.append(iter(scanner.to_reader()))
            if partial:
                scanner = ds.scanner(
                    columns=[*columns, "_version"],
                    filter=flt,
                    fragments=partial,
                    batch_size=batch_size,
                    with_row_id=with_row_id,
                    with_row_address=with_row_address,
                )
                readers.append(self._version_masked(scanner.to_reader()))
        except (ValueError, OSError) as exc:
            if user_filter is None or vanished(exc):  # files gone: _retrying's rules apply
                raise
            raise filter_error(user_filter, exc) from exc
        return readers

    def _version_masked(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for batch in reader:
            i = batch.schema.get_field_index("_version")
            keep = batch.column(i).to_numpy() <= self.version
            batch = batch.drop_columns(["_version"])
            yield batch if keep.all() else batch.filter(pa.array(keep))

    def _retrying(self, read: Callable[[Any], T]) -> T:
        """``read(samples dataset)``, retried on a fresh manifest when files it needed vanished.

        Compaction, erase and vacuum delete the files of old manifests at once; a reader that
        started from one reopens the latest and reads again (the logical content of this
        version is the same, minus keys erased meanwhile). A failure that persists is damage.
        """
        for attempt in range(READ_ATTEMPTS):
            ds = self._store._tables.open("samples")
            try:
                return read(ds)
            except READ_ERRORS as exc:
                self._store._tables.retry_after("samples", exc, attempt)
                self._refresh()
        raise AssertionError("unreachable")  # pragma: no cover

    def _collect_live(self, ds: Any) -> tuple[np.ndarray, int]:
        """The live keys of this version read from ``ds`` (sorted, purged ones included) and
        their checksum, in one pass over the scanned batches (see :class:`LiveKeys`)."""
        # the caller refreshed (keys(), _live_keys(), or _retrying before a retry)
        if ds is not None:
            # the scan is set up first: Lance starts reading while the dead keys are found
            plan = self._fragments(ds)
            readers = self._readers(ds, ["key"], batch_size=SCAN_BATCH, plan=plan)
        dead, unavailable = self._dead(refresh=False), self._unavailable(refresh=False)
        if ds is None:
            return LiveKeys(dead, unavailable.size).finish(unavailable)
        upper = sum(f.metadata.physical_rows for part in plan for f in part) + unavailable.size
        # purged rows still stored are counted once, as unavailable, not again as scanned
        live = LiveKeys(self._with_unavailable(dead), upper)
        kept = self._store._tables.kept_dir("samples")
        if kept is not None:
            integrity.load_kept_runs(kept)
        computed = integrity.runs_computed()
        for reader in readers:
            for batch in reader:
                live.add(batch.column(0).to_numpy())
        out = live.finish(unavailable, run_claims(self._records(), self.version))
        if kept is not None and integrity.runs_computed() != computed and live.mixed:
            integrity.keep_runs(kept, live.mixed)
        return out

    def iter_keys(self, batch_size: int = 1 << 20) -> Iterator[np.ndarray]:
        """Live keys with stored rows, in storage order, in arrays of at most ``batch_size``
        keys (bounded memory)."""
        batch_size = check_batch_size(batch_size)
        self._check_unavailable("skip")
        # Lance's smaller batches scan faster than 1M-row ones (their buffers are reused)
        size = min(batch_size, SCAN_BATCH)
        first = self._retrying(lambda ds: None if ds is None else (ds, self._readers(ds, ["key"], batch_size=size)))
        if first is None:
            return iter(())
        return live_stream(self, first[1], ["key"], None, size, keys_only=True, source=first[0])

    def keys(self) -> np.ndarray:
        """All live keys, sorted ascending (int64), including unavailable (purged) ones."""
        self._refresh()
        if self._keys_cache is None:
            for attempt in range(READ_ATTEMPTS):
                began = self._committed
                keys, checksum = self._retrying(self._collect_live)
                records = self._records()
                expected = integrity.expected_live(self._store, self.version, self._committed, records)
                if expected is None or expected == keys.size:
                    # same count: the keys themselves must match the log's checksum
                    want = integrity.expected_checksum(
                        self._store, self.version, self._committed, self._tombstoned, records
                    )
                    if want is None or want == checksum:
                        break
                    expected = -1
                if read_again(self, began, attempt):
                    continue
                if expected == -1:
                    raise log_mismatch(self, "other keys than")
                raise log_mismatch(self, f"{keys.size} live keys, but", expected)
            keys.setflags(write=False)
            self._keys_cache = keys
        return self._keys_cache

    def _live_keys(self) -> np.ndarray:
        """The live keys as read from the files, sorted, unchecked (``verify`` checks them)."""
        self._refresh()
        return self._retrying(self._collect_live)[0]

    def count(self) -> int:
        """The number of live rows (``keys().size``), counted in bounded memory and checked
        against the version log (:func:`~modyn_store.core._count.live_count`)."""
        return live_count(self)

    def count_bound(self) -> int:
        """An upper bound of :meth:`count` from metadata, without a scan: the rows stored in
        fragments holding rows of this version or earlier, plus unavailable (purged) keys."""
        ds = self._store._tables.open("samples")
        if ds is None:
            return int(self.unavailable().size)
        ranges = self._store._tables.fragment_versions("samples", ds)
        stored = sum(f.metadata.physical_rows for f in ds.get_fragments() if ranges[f.fragment_id][0] <= self.version)
        return int(stored) + int(self.unavailable().size)

    def contains(self, keys: Any) -> np.ndarray:
        """A boolean mask: which of ``keys`` are live at this version (purged rows count as live).

        A small request is answered by point lookups (the key index, see
        :mod:`~modyn_store.core.keyindex`) without reading every key; a large one, or one on a
        snapshot whose key set is already in memory, against :meth:`keys`.
        """
        return _lookup.contains(self, as_keys(keys))

    def _point(
        self, ds: Any, want: np.ndarray, columns: tuple[str, ...] = ()
    ) -> tuple[np.ndarray, np.ndarray, keyindex.Located] | None:
        """Point lookups for ``want`` (distinct keys, the inverse map, the answers), or ``None``
        when the request is too large for them to pay."""
        u, inverse = np.unique(want, return_inverse=True)
        if ds is None or u.size > max(POINT_MIN_KEYS, ds.count_rows() * POINT_SHARE):
            return None
        return u, inverse, keyindex.locate(self._store, ds, u, self.version, self._committed, columns)

    @property
    def schema(self) -> pa.Schema | None:
        """The user-visible schema (``key``, ``ts``, optional ``label``, payload columns)."""
        return self._store.schema

    # -- data ----------------------------------------------------------------------------
    def _check_columns(self, columns: list[str] | None) -> list[str]:
        schema = self._store.schema
        names = schema.names if schema is not None else ["key", "ts"]
        if columns is None:
            return list(names)
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise InvalidArgumentError("columns", columns, "a list of column names")
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise InvalidArgumentError("columns", unknown, f"columns of the store: {names}")
        twice = sorted({c for c in columns if columns.count(c) > 1})
        if twice:
            raise InvalidArgumentError("columns", twice, "each column named once")
        return list(columns)

    def _check_unavailable(self, on_unavailable: OnUnavailable, *, seen: SeenSet | None = None,
                           after: int | None = None) -> None:
        """Raise for rows of this version that vacuum purged (other than the keys ``seen``, or up
        to the key ``after``, which a stream already yielded), unless ``on_unavailable="skip"``."""
        if on_unavailable not in ("error", "skip"):
            raise InvalidArgumentError("on_unavailable", on_unavailable, "'error' or 'skip'")
        missing = self.unavailable()
        if seen is not None and missing.size:
            missing = np.delete(missing, seen.positions(missing))
        if after is not None:
            missing = missing[missing > after]
        if missing.size and on_unavailable == "error":
            raise DataUnavailableError(
                f"{missing.size} rows live at version {self.version} were purged by vacuum "
                f"(e.g. keys {missing[:5].tolist()}); pass on_unavailable='skip' to read the rest",
                keys=missing,
            )

    def to_batches(
        self,
        columns: list[str] | None = None,
        filter: str | None = None,
        *,
        batch_size: int = 65536,
        on_unavailable: OnUnavailable = "error",
    ) -> Iterator[pa.RecordBatch]:
        """Stream live rows in storage order, as record batches of at most ``batch_size`` rows.

        ``filter`` is a Lance SQL expression over the store's columns (e.g. ``"label = 1"``);
        it is checked before this returns (before the first append, against the columns
        every store has: ``key``, ``ts`` and ``_version``).
        """
        cols = self._check_columns(columns)
        self._check_unavailable(on_unavailable)
        if filter is not None:
            check_filter(filter)
        batch_size = check_batch_size(batch_size)
        need_key = "key" not in cols
        read = cols + (["key"] if need_key else [])
        # the first readers are made here, so a bad filter raises before this returns
        first = self._retrying(lambda ds: None if ds is None else (ds, self._readers(ds, read, filter, batch_size=batch_size)))
        if first is None:
            if filter is not None:
                check_filter_before_rows(filter)  # no samples table yet: no columns to check it on
            return iter(())
        # again on the files the stream reads: a vacuum may have purged rows since the check above
        self._check_unavailable(on_unavailable)
        ds, readers = first
        return live_stream(self, readers, read, filter, batch_size, drop_key=need_key, on_unavailable=on_unavailable, source=ds)

    def to_table(
        self,
        columns: list[str] | None = None,
        filter: str | None = None,
        *,
        on_unavailable: OnUnavailable = "error",
    ) -> pa.Table:
        """All live rows as one table (see :meth:`to_batches`)."""
        cols = self._check_columns(columns)
        batches = list(self.to_batches(cols, filter, batch_size=1 << 20, on_unavailable=on_unavailable))
        schema = self._store.schema
        if schema is None:
            return pa.table({"key": pa.array([], pa.int64())}).select([c for c in cols if c == "key"])
        return pa.Table.from_batches(batches, schema=pa.schema([schema.field(c) for c in cols]))

    def to_ray(self, columns: list[str] | None = None, filter: str | None = None, **kwargs: Any) -> Any:
        """The live rows as a Ray Dataset, fragments read in parallel: see :func:`modyn_store.core.ray_io.to_ray`."""
        from modyn_store.core.ray_io import to_ray

        return to_ray(self, columns, filter, **kwargs)

    def row_reader(self) -> RowReader:
        """Bulk access to the stored rows by stable row id (:class:`~modyn_store.core.rows.RowReader`):
        locate keys, masked scans of one fragment, take by row id. It does not check liveness:
        check the keys against this snapshot first (e.g. :meth:`contains`).

        Raises :class:`~modyn_store.core.errors.DataUnavailableError` before the first append.
        """
        ds = self._store._tables.open("samples")
        if ds is None:
            raise DataUnavailableError("the store holds no samples yet", keys=np.empty(0, np.int64))
        tables = self._store._tables
        return RowReader(ds, local=self._store._location.is_local, reopen=lambda: tables.open("samples"))

    def row_ids(self, keys: Any) -> np.ndarray:
        """Stable Lance row ids (``_rowid``) of live ``keys``, in the order given.

        A small request is answered by point lookups (see :meth:`contains`); an error (keys
        not live) is decided on the full key set, so damage reads as damage, not unknown keys.
        """
        return _lookup.row_ids(self, keys)

    def locate(self, keys: Any) -> tuple[np.ndarray, np.ndarray]:
        """Stable row ids (uint64) and fragment ids (int64) of ``keys``, aligned with them;
        fragment id -1 for a key that is not live at this version or whose row was purged.

        One streamed scan of the key column of this version's fragments checks liveness and
        locates the rows together (memory follows ``keys``, not the store), for bulk readers
        such as the training loader (:meth:`row_reader`).
        """
        return _lookup.locate(self, keys)

    def take(self, keys: Any, columns: list[str] | None = None) -> pa.Table:
        """Rows of live ``keys`` in the order given (an error names keys that are not live).

        A few keys are read by point lookups (the key index of ``Store.index_keys()``, see
        :mod:`~modyn_store.core.keyindex`), never the whole key column; every row read back
        is checked to hold the key asked for."""
        cols = self._check_columns(columns)
        want = as_keys(keys)
        return self._retrying(lambda ds: _lookup.take(self, ds, want, cols))
