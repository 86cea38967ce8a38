"""Appending and soft-deleting rows: the two writes that change the live set without erasure."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine._search import HashedKeys, first_unsorted, sorted_unique
from modyn_store.core import _ingest, _tombstoned, integrity
from modyn_store.core._failures import READ_ERRORS, vanished
from modyn_store.core._fragments import key_spans
from modyn_store.core._key_rows import stored_keys
from modyn_store.core._runclaims import claim_of
from modyn_store.core._stream import check_filter_before_rows
from modyn_store.core._extension_rows import check_extension
from modyn_store.core._validate import as_keys, check_filter, check_zoned_times, filter_error
from modyn_store.core.errors import DuplicateKeyError, InvalidArgumentError, UnknownKeyError
from modyn_store.core.records import VersionRecord
from modyn_store.core.snapshot import _isin_sorted

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = ["append", "delete"]

_SCAN_BATCH = 1 << 20


def append(
    store: Store,
    data: Any,
    *,
    key: str | None,
    ts: str | None,
    label: str | None,
    message: str,
    tables: Mapping[str, pa.Table] | None = None,
) -> VersionRecord:
    """See :meth:`modyn_store.core.store.Store.append`."""
    if tables is not None and not isinstance(tables, Mapping):
        raise InvalidArgumentError("tables", type(tables).__name__, "a mapping of extension table name -> pyarrow Table")
    extra = dict(tables or {})
    # a new store: refuse a schema it cannot hold before the lock is taken or any file written
    # (a store known to hold samples skips the look)
    if not store._samples_committed and store.schema is None:
        data = _ingest.check_new(data, key=key, ts=ts, label=label)
    with store.transaction("append", message) as txn:
        for name, rows in extra.items():  # under the lock, before any sample is written
            check_extension(store, name, rows)
        max_key = txn.previous.max_key if txn.previous is not None else -1
        prepared = _ingest.prepare(
            data, key=key, ts=ts, label=label, store_schema=store.schema, next_key=max_key + 1,
            stored_values=lambda column: _stored_column(store, column),
        )
        streamed = isinstance(data, pa.RecordBatchReader)
        # a streamed append holds no keys: they are read back from the rows written if needed
        tracker = _ingest.KeyTracker(keep=not streamed)
        schema = prepared.schema.append(pa.field("_version", pa.int64()))
        # the _version column of every batch is a view of one buffer the store keeps between
        # appends (under the writer lock, and Lance has written the batches when an append
        # returns): a fresh 8 MB array per 10^6 rows cost more in page faults than filling it
        version_column = store._version_buffer
        filled = 0
        checksum = 0

        failed: list[BaseException] = []

        def checked() -> Iterator[pa.RecordBatch]:
            try:
                yield from versioned()
            except BaseException as exc:  # Lance reports an error raised here as its own OSError
                failed.append(exc)
                raise

        def versioned() -> Iterator[pa.RecordBatch]:
            nonlocal version_column, filled, checksum
            for batch in prepared.batches:
                keys = batch.column(0).to_numpy()
                tracker.add(keys)
                checksum = (checksum + integrity.key_checksum(keys)) & integrity.MASK
                n = batch.num_rows
                if n > filled:
                    if n > version_column.size:
                        version_column = store._version_buffer = np.empty(max(n, 1 << 16), np.int64)
                        filled = 0
                    version_column[filled:n] = txn.version
                    filled = n
                yield pa.RecordBatch.from_arrays([*batch.columns, pa.array(version_column[:n])], schema=schema)

        if streamed:
            # streamed: rows are written as they come and rolled back if a key clashes
            txn._writing("samples")
            try:
                store._tables.append("samples", checked(), schema=schema)
            except Exception as exc:
                if failed and exc is not failed[0]:
                    raise failed[0] from None  # the input's own error (typed), not Lance's wrapping
                raise
            _check_new_keys(store, tracker, max_key, txn.version, txn.highest_fragment)
        else:
            # in memory: every key is checked before the store is touched
            batches = list(checked())
            _check_new_keys(store, tracker, max_key, txn.version, txn.highest_fragment)
            txn._writing("samples")
            store._tables.append("samples", pa.Table.from_batches(batches, schema=schema))
        for name, rows in extra.items():
            txn._write(name, rows)  # checked above
        txn.inserted = txn.live_delta = tracker.count
        txn.max_key = tracker.highest
        txn.key_bounds = (tracker.lowest, tracker.highest)
        txn.details = {"checksum": f"{checksum:016x}"}
        run = claim_of(tracker.lowest, tracker.highest, tracker.count)
        if run is not None:  # reads take the checksum of these keys from here (see _runclaims)
            txn.details["run"] = run
    assert txn.record is not None
    return txn.record



def _check_new_keys(
    store: Store, tracker: _ingest.KeyTracker, max_key: int, version: int, highest_fragment: int
) -> None:
    if tracker.count == 0:
        raise InvalidArgumentError("data", "0 rows", "at least one row to append")
    if tracker.increasing and tracker.lowest > max_key:
        return  # unique within the append and above every key ever used
    written = None
    if not tracker.keep:
        # a streamed append: its keys are the rows of its version, in the fragments it wrote
        # (those above the highest before it: the others are not read)
        rows = store._tables.scan_kept(
            "samples", ["key"], f"_version = {version}", lambda b: b,
            fragments=lambda ds: [f for f in ds.get_fragments() if f.fragment_id > highest_fragment],
        )
        written = rows.column("key").to_numpy() if rows is not None else np.empty(0, np.int64)
    s = tracker.sorted_unique(written)
    if s[0] <= max_key:
        # keys are unique for all time: stored (deleted too), purged and erased keys are taken
        clash = stored_keys(store, s, version - 1, also=("erasures", "purged"))
        if clash.size:
            raise DuplicateKeyError(
                f"{clash.size} keys already exist in the store (keys are unique for all time, "
                f"deleted and erased keys included), e.g. {clash[:5].tolist()}"
            )



def delete(store: Store, keys: Any, *, where: str | None, missing: str, message: str) -> VersionRecord:
    """See :meth:`modyn_store.core.store.Store.delete`."""
    if (keys is None) == (where is None):
        raise InvalidArgumentError("keys/where", (keys, where), "exactly one of keys= or where=")
    if missing not in ("error", "ignore"):
        raise InvalidArgumentError("missing", missing, "'error' or 'ignore'")
    if where is not None:
        if not isinstance(where, str) or not where.strip():
            raise InvalidArgumentError("where", where, "a non-empty filter expression")
        flt = check_filter(where, name="where")
    else:
        want = sorted_unique(as_keys(keys))
        if not want.size:
            raise InvalidArgumentError("keys", [], "at least one key to delete")
    with store.transaction("delete", message) as txn:
        committed = txn.version - 1
        if where is not None:
            if store._tables.open("samples") is None:
                check_filter_before_rows(where)  # no columns to check it against yet
            found = np.sort(_stored_keys(store, committed, flt, user_filter=where))
            targets = found[~_isin_sorted(found, _dead_keys(store, committed, found))]
            ignored = 0
        else:
            live = _stored_among(store, committed, want)
            live[live] = ~_isin_sorted(want[live], _dead_keys(store, committed, want))
            ignored = int((~live).sum())
            if ignored and missing == "error":
                bad = want[~live]
                raise UnknownKeyError(
                    f"{bad.size} keys are not live (never inserted, deleted or erased), e.g. "
                    f"{bad[:5].tolist()}; pass missing='ignore' to skip them"
                )
            targets = want[live]
        if targets.size:
            before = store._tables.open("tombstones")
            after = txn._write("tombstones", pa.table({"key": pa.array(targets, pa.int64())}))
            if before is not None:
                _tombstoned.carry_over(before, after, targets, txn.version)
        txn.deleted = int(targets.size)
        txn.live_delta = -int(targets.size)
        # the tombstoned keys' checksum: reads check the tombstone table against the log too
        txn.details = {"checksum": f"{integrity.key_checksum(targets):016x}"}
        if ignored:
            txn.details["ignored"] = ignored
    assert txn.record is not None
    if txn.deleted:
        _tombstoned.keep_for_reads(store._tables, txn.record.version)
    return txn.record


def _stored_keys(store: Store, committed: int, flt: str, *, user_filter: str) -> np.ndarray:
    """Keys of the samples rows written at or before ``committed`` that match ``flt``."""
    parts = list(_stored_key_batches(store, committed, flt, user_filter=user_filter))
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def _stored_among(store: Store, committed: int, want: np.ndarray) -> np.ndarray:
    """Mask: which of the ascending, distinct ``want`` have a samples row written at or before
    ``committed``.

    Fragments whose known key bounds (see :mod:`~modyn_store.core._fragments`) hold none of
    ``want`` are not read, nor are those that answer from their bounds alone
    (:func:`_answered_by_bounds`): a one-key delete of a store whose appends wrote dense keys
    reads no key. The rest take one streamed scan of the key column without a filter (Lance's
    range filter cost more than
    the comparisons below), each batch answered against ``want`` as it comes: memory holds one
    batch and the mask, never the key column (a delete of a few keys spread over 10^8 rows
    would otherwise gather and sort 800 MB of keys). A sorted batch (the keys of an append in
    order) costs a binary search of its part of ``want`` in it; a batch in no order goes through
    a table of ``want`` (:class:`~engine._search.HashedKeys`).
    """
    found = np.zeros(want.size, dtype=bool)
    table: HashedKeys | None = None
    skip = _answered_by_bounds(store, committed, want, found)
    for k in _stored_key_batches(store, committed, None, skip=skip):
        if k.size == 0:
            continue
        if first_unsorted(k) < 0:
            first = int(np.searchsorted(want, k[0], side="left"))
            last = int(np.searchsorted(want, k[-1], side="right"))
            if last > first:
                part = want[first:last]
                found[first:last] |= k[np.searchsorted(k, part)] == part  # (part <= k[-1]: in bounds)
            continue
        if table is None:
            table = HashedKeys.for_stream(want, _SCAN_BATCH)
        at = table.hits(k)
        if at.size:
            found[np.searchsorted(want, k[at])] = True
    return found


def _answered_by_bounds(store: Store, committed: int, want: np.ndarray, found: np.ndarray) -> set[int]:
    """The ids of the samples fragments a scan for the ascending ``want`` need not read, their
    answers set in ``found``: fragments whose key bounds hold none of ``want``, and fragments
    written at or before ``committed`` whose bounds they fill (as many physical rows as keys in
    the bounds, no deletion file: keys are distinct, so every key in the bounds is a row)."""
    ds = store._tables.open("samples")
    bounds = store._tables.fragment_key_bounds("samples", ds) if ds is not None else {}
    if ds is None or not bounds:
        return set()
    ids, lo, hi, first, last = key_spans(bounds, want)
    skip = set(ids[first >= last].tolist())
    ranges = store._tables.fragment_versions("samples", ds)
    for i in np.flatnonzero(first < last).tolist():
        fid = int(ids[i])
        if ranges[fid][1] > committed:
            continue
        frag = ds.get_fragment(fid)
        if frag is not None and frag.physical_rows == int(hi[i]) - int(lo[i]) + 1 and frag.metadata.deletion_file is None:
            found[first[i] : last[i]] = True
            skip.add(fid)
    return skip


def _stored_key_batches(
    store: Store, committed: int, flt: str | None, *, user_filter: str | None = None, skip: Collection[int] = ()
) -> Iterator[np.ndarray]:
    """Keys of the samples rows written at or before ``committed`` that match ``flt``, a batch
    at a time (in no particular order), leaving out the fragments whose ids are in ``skip``.

    Reads the key column only: fragments written entirely at or before ``committed`` (all of
    them, once recovery has run) need no version filter; fragments past it are skipped, and
    only a fragment that straddles it reads ``_version``.
    """
    ds = store._tables.open("samples")
    if ds is None:
        return
    if user_filter is not None:
        check_zoned_times(user_filter, ds.schema, name="where")
    ranges = store._tables.fragment_versions("samples", ds)
    plan: list[tuple[list[Any] | None, list[str]]]
    if not skip and all(hi <= committed for _, hi in ranges.values()):
        plan = [(None, ["key"])]  # every fragment in full (the usual case): no fragment list
    else:
        full, partial = [], []
        for frag in ds.get_fragments():
            lo, hi = ranges[frag.fragment_id]
            if frag.fragment_id in skip:
                continue
            if hi <= committed:
                full.append(frag)
            elif lo <= committed:
                partial.append(frag)
        plan = [(frags, columns) for frags, columns in ((full, ["key"]), (partial, ["key", "_version"])) if frags]
    for frags, columns in plan:
        try:
            # large batches, in any order (the keys are sorted after): a filtered scan pays per
            # batch, and Lance's default of 8,192 rows made this read 1.4x slower at 10^6 rows
            reader = ds.scanner(
                columns=columns, filter=flt, fragments=frags, batch_size=_SCAN_BATCH, scan_in_order=False
            ).to_reader()
        except (ValueError, OSError) as exc:
            if user_filter is None:
                raise
            raise filter_error(user_filter, exc) from exc
        try:
            for batch in reader:
                k = batch.column(0).to_numpy()
                if len(columns) == 2:
                    k = k[batch.column(1).to_numpy() <= committed]
                yield k
        except READ_ERRORS as exc:
            if vanished(exc):
                raise store._tables.damage("samples", exc) from exc
            if user_filter is None:
                raise
            raise filter_error(user_filter, exc) from exc


def _dead_keys(store: Store, committed: int, among: np.ndarray) -> np.ndarray:
    """Sorted keys deleted at or before ``committed`` among the ascending, distinct ``among``,
    and every key erased by then (the tombstones as the process keeps them, or scanned keeping
    only ``among``'s: see :mod:`~modyn_store.core._tombstoned`)."""
    if among.size == 0:
        return among
    tomb = _tombstoned.tombstoned(store._tables, among, committed)
    return sorted_unique(np.concatenate([tomb, store._erased_keys(committed)]))


def _stored_column(store: Store, column: str) -> pa.ChunkedArray | None:
    """Every stored row's ``column`` (deleted rows too: a rewrite of the table keeps them), for
    the check of a narrow dictionary column of an earlier release's store (``_ingest``)."""
    t = store._tables.scan("samples", [column])
    return None if t is None else t.column(column)
