"""Erasure, vacuum and compaction: the operations that change files, not just versions."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine._search import sorted_unique
from modyn_store.core import integrity, keyindex
from modyn_store.core._catalog_tables import holds_samples, may_hold_samples
from modyn_store.core._key_rows import rows_naming, stored_keys
from modyn_store.core._marker import refuse_table_links
from modyn_store.core._sql import key_range
from modyn_store.core._writable import locked
from modyn_store.core._validate import as_keys, check_int
from modyn_store.core.errors import InvalidArgumentError, UnknownKeyError
from modyn_store.core.records import ErasureReport, VacuumReport
from modyn_store.core.snapshot import _isin_sorted

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = ["compact", "erase", "finish_purge", "index_keys", "keyed_extensions", "vacuum"]



def _content_tables(store: Store) -> list[str]:
    """Tables whose rows carry sample content: samples and every score table."""
    return [n for n in store._tables.names() if n == "samples" or n.startswith("scores/")]


def keyed_extensions(store: Store) -> list[str]:
    """Extension tables whose rows belong to one sample each: those with an int64 ``key``
    column, except the lineage tables (:data:`LINEAGE_TABLES`, e.g. ``selections``).

    ``erase`` removes an erased key's rows from them like from the samples. A ``key`` column of
    another type (int32, string ...) is not read as the store's keys: such a table is left as
    it is. The store's own tables (:data:`INTERNAL_TABLES`) and score tables are not extensions.
    """
    found = []
    for name in store._tables.names():
        if not may_hold_samples(name):
            continue  # (not opened)
        ds = store._tables.open(name)
        if ds is not None and holds_samples(name, ds.schema):
            found.append(name)
    return found


def purge_tables(store: Store, op: str) -> list[str]:
    """The tables the purge of a committed ``op`` (erase or vacuum) may rewrite."""
    return _content_tables(store) + (keyed_extensions(store) if op == "erase" else [])


def _purge(store: Store, keys: np.ndarray, *, extensions: bool = False) -> int:
    """Remove ``keys``' rows from every content table (with ``extensions``: and from every
    :func:`keyed_extensions` table) and every cache, then drop old files."""
    keys = sorted_unique(keys)
    for name in _content_tables(store):
        store._tables.delete_keys(name, keys)
        store._tables.rewrite(name)
    if extensions and keys.size:
        for name in keyed_extensions(store):
            _purge_extension(store, name, keys)
    return _drop_caches(store, keys)


def _purge_extension(store: Store, name: str, keys: np.ndarray) -> None:
    """Remove ``keys``' rows from the extension table ``name`` and rewrite its files.

    A table that holds none of the keys gets no new Lance version: its files are rewritten only
    if a fragment still has deleted rows, and old versions' files are deleted in any case (an
    interrupted purge may have deleted the rows, or rewritten the files, and stopped there)."""
    ds = store._tables.open(name)
    if ds is None:
        return
    found = rows_naming(store._tables, name, keys, ["key"])
    hit = found is not None and found.num_rows > 0
    if hit:
        store._tables.delete_keys(name, keys)
        ds = store._tables.open(name)
    if hit or (ds is not None and any(f.metadata.deletion_file is not None for f in ds.get_fragments())):
        store._tables.rewrite(name)
    else:
        store._tables.cleanup(name)


def _drop_caches(store: Store, keys: np.ndarray) -> int:
    """Remove every cache folder that may hold one of ``keys`` (see :class:`CacheIndex`)."""
    return store.caches.drop_holding(keys)


def finish_purge(store: Store, version: int, op: str) -> int:
    """Physically apply the committed erase or vacuum ``version`` (idempotent)."""
    if op == "erase":
        t = store._tables.scan("erasures", ["key"], f"_version = {version}")
    else:
        t = store._tables.scan("purged", ["key"], f"_version = {version}")
    keys = t.column("key").to_numpy() if t is not None else np.empty(0, np.int64)
    return _purge(store, keys, extensions=op == "erase")


def _trainings_using(store: Store, keys: np.ndarray) -> tuple[str, ...]:
    if "selections" not in store._tables.names() or keys.size == 0:
        return ()
    t = rows_naming(store._tables, "selections", keys, ["key", "training_id"], f"_version <= {store.version}")
    return () if t is None else tuple(sorted(set(t.column("training_id").to_pylist())))


def _descendants(store: Store, named: tuple[str, ...]) -> tuple[str, ...]:
    """Recorded trainings fine-tuned from one in ``named`` (directly or through others), not in
    ``named`` themselves: they start from a checkpoint that learned from the erased rows."""
    ds = store._tables.open("trainings") if named else None  # (None: no such table)
    if ds is None or not {"training_id", "parent_id"} <= set(ds.schema.names):
        return ()
    t = store._tables.scan("trainings", ["training_id", "parent_id"], f"_version <= {store.version}")
    children: dict[str, list[str]] = {}
    if t is not None:
        for tid, parent in zip(t.column("training_id").to_pylist(), t.column("parent_id").to_pylist()):
            if parent is not None:
                children.setdefault(parent, []).append(tid)
    seen, todo, found = set(named), list(named), []
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                found.append(child)
                todo.append(child)
    return tuple(sorted(found))


def erase(
    store: Store,
    keys: Any,
    *,
    reason: str,
    missing: str = "error",
    message: str = "",
) -> ErasureReport:
    """Erase samples (GDPR Art. 17): their rows' bytes leave every file of every per-sample
    table and every cache.

    When it returns, no file under the store folder holds the erased keys' rows of the
    samples, of any score table, or of any extension table with an int64 ``key`` column
    (:func:`keyed_extensions`): those rows are deleted from every version and the files that
    held them are rewritten, old files deleted. Every registered cache folder holding an
    erased key, and every unregistered one, is removed. Not purged, as they name keys without
    content: the audit and bookkeeping tables (``erasures``, ``tombstones``, ``purged``,
    ``versions``, ``tags``), the lineage table ``selections`` (training id, key, weight,
    position), the key index and Lance indexes on ``key``. An extension table whose ``key``
    column is not int64 is not read as holding store keys and keeps its rows; so does every
    extension column other than ``key`` that names keys. Tables without such a column are not
    per-sample and are not changed: a class value that only erased samples had stays in the
    ``label_map``. Rows naming an erased key, written later to an extension table with an int64
    ``key`` column (other than ``selections``), are refused with :class:`UnknownKeyError`.

    The erasure is logged in ``erasures`` (key, version, time, reason) without content. From
    the new version on no version returns the keys. The report lists the past trainings whose
    train sets held an erased key (``trainings``) and those fine-tuned from one of them,
    directly or through others (``descendants``: their checkpoints descend from the erased rows),
    among all the trainings recorded by then (also those fine-tuned, after an earlier erasure,
    from a training it named).

    A key whose rows only an extension table with an int64 ``key`` column holds (never a
    sample's) is stored too: its rows are erased and the key is taken for all time.
    Keys never stored or already erased raise :class:`UnknownKeyError` (nothing is erased)
    unless ``missing="ignore"`` skips them. When every key is skipped nothing is written: no
    version is committed and the report has ``version=None`` and no keys.

    Example
    -------
    >>> import pyarrow as pa
    >>> from modyn_store import Store
    >>> store = Store.open("memory://erase-doc", create=True)
    >>> _ = store.append(pa.table({"ts": [1, 2], "text": ["keep", "secret"]}))
    >>> store.erase([1], reason="user request").keys.tolist()
    [1]
    >>> store.as_of(1).keys().tolist()
    [0]
    """
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidArgumentError("reason", reason, "a non-empty string (kept in the erasure audit log)")
    if missing not in ("error", "ignore"):
        raise InvalidArgumentError("missing", missing, "'error' or 'ignore'")
    want = sorted_unique(as_keys(keys))
    if want.size == 0:
        raise InvalidArgumentError("keys", [], "at least one key to erase")
    refuse_table_links(store._location, store._tables.names())  # before anything is written
    try:
        return _erase(store, want, reason, missing, message)
    except _NothingToDo:
        # every key was skipped (missing="ignore"): the transaction was rolled back, no version
        return ErasureReport(None, np.empty(0, np.int64), reason)


class _NothingToDo(Exception):
    """Raised inside an erase or vacuum transaction to roll it back, committing no version,
    when under the writer lock nothing is left to erase or purge."""


def _erase(store: Store, want: np.ndarray, reason: str, missing: str, message: str) -> ErasureReport:
    """Erase the sorted distinct keys ``want`` (checked by :func:`erase`) in one new version."""
    with store.transaction("erase", message) as txn:
        already = store._erased_keys()
        present = _stored_keys(store, want)
        known = present & ~_isin_sorted(want, already)
        if not known.all() and missing == "error":
            bad = want[~known]
            raise UnknownKeyError(
                f"{bad.size} keys were never stored or are already erased, e.g. {bad[:5].tolist()}; "
                "pass missing='ignore' to skip them"
            )
        targets = want[known]
        if targets.size == 0:
            raise _NothingToDo
        live_before = store.as_of(txn.version - 1).contains(targets)
        trainings = _trainings_using(store, targets)
        txn.details = {
            "reason": reason,
            "trainings": list(trainings),
            "descendants": list(_descendants(store, trainings)),
            # what the erased rows were, for the log's live counts and checksums (see integrity)
            "spans": _erase_spans(store, targets, txn.version - 1),
        }
        now = datetime.now(timezone.utc)
        txn._write(
            "erasures",
            pa.table(
                {
                    "key": pa.array(targets, pa.int64()),
                    "time": pa.array([now] * targets.size, pa.timestamp("us", tz="UTC")),
                    "reason": pa.array([reason] * targets.size, pa.string()),
                }
            ),
        )
        txn.erased = int(targets.size)
        # an erased key is taken for all time: keys assigned later start above it (a key that
        # only an extension table held may lie above every stored key)
        txn.max_key = int(targets[-1])
        txn.live_delta = -int(live_before.sum())
        version = txn.version
    caches = store._last_purge_caches
    return ErasureReport(version, targets, reason, tuple(txn.details["trainings"]), caches,
                         tuple(txn.details["descendants"]))


def _erase_spans(store: Store, keys: np.ndarray, before: int) -> list[list[int]]:
    """``[inserted, deleted (-1: never), count, checksum]`` groups of the sorted ``keys`` as of
    version ``before`` (the erase's version minus one)."""
    if keys.size == 0:
        return []
    flt = f"{key_range(int(keys[0]), int(keys[-1]))} AND _version <= {before}"
    ins = np.full(keys.size, -1, np.int64)
    dele = np.full(keys.size, -1, np.int64)
    for name, col, out in (("samples", "_version", ins), ("purged", "inserted", ins), ("tombstones", "_version", dele)):
        # only the rows holding one of ``keys`` are kept from the scan (never the key range)
        t = rows_naming(store._tables, name, keys, ["key", col], flt)
        if t is not None and t.num_rows:
            out[np.searchsorted(keys, t.column("key").to_numpy())] = t.column(col).to_numpy()
    spans = []
    pairs = np.stack([ins, dele], axis=1)
    for pair in np.unique(pairs, axis=0):
        sel = (ins == pair[0]) & (dele == pair[1])
        spans.append([int(pair[0]), int(pair[1]), int(sel.sum()), integrity.key_checksum(keys[sel])])
    return spans


def _stored_keys(store: Store, keys: np.ndarray) -> np.ndarray:
    """Mask: which sorted ``keys`` have a stored row (any committed version, deleted or not),
    of the samples or of a :func:`keyed_extensions` table."""
    found = _isin_sorted(keys, stored_keys(store, keys, store.version, also=("purged",)))
    if not found.all():
        # an extension table's rows for a key the samples never held are that key's data too:
        # refusing the key would leave them on disk with no way to erase them
        found[~found] = _isin_sorted(keys[~found], _extension_keys(store, keys[~found]))
    return found


def _extension_keys(store: Store, keys: np.ndarray) -> np.ndarray:
    """Sorted ``keys`` that rows of a :func:`keyed_extensions` table name (its rows, as
    ``erase`` deletes them: by key alone, whatever other columns the table has)."""
    hits = [np.empty(0, np.int64)]
    for name in keyed_extensions(store):
        t = rows_naming(store._tables, name, keys, ["key"])
        if t is not None and t.num_rows:
            hits.append(t.column("key").to_numpy())
    return sorted_unique(np.concatenate(hits))


def vacuum(store: Store, *, keep_versions: int = 10, dry_run: bool = True) -> VacuumReport:
    """Physically purge soft-deleted rows that none of the last ``keep_versions`` versions needs.

    A row deleted at version D is needed by versions before D. It is purged when D is at most
    ``latest - keep_versions + 1`` and no tagged version needs it. Old versions that needed it
    still list its key, report it in :meth:`Snapshot.unavailable` and refuse to return its
    data silently. Dry run by default: the report says what would be purged, and which
    recorded trainings' train sets hold a purged row (``reproduce`` refuses those afterwards;
    a tag on a training's data version keeps its rows). With nothing to purge (also when
    another writer's vacuum purged the rows between the look and the writer lock) no version
    is committed: the report has ``version=None`` and no keys.

    Example
    -------
    >>> import pyarrow as pa
    >>> from modyn_store import Store
    >>> store = Store.open("memory://vacuum-doc", create=True)
    >>> _ = store.append(pa.table({"ts": [1, 2]}))
    >>> _ = store.delete(keys=[0])
    >>> store.vacuum(keep_versions=1).keys.tolist()
    [0]
    """
    keep_versions = check_int("keep_versions", keep_versions, 1)
    if not isinstance(dry_run, bool):
        raise InvalidArgumentError("dry_run", dry_run, "True or False")
    latest = store.version
    cutoff = latest - keep_versions + 1
    candidates = _purgeable(store, cutoff)
    if dry_run or candidates.num_rows == 0:
        keys = candidates.column("key").to_numpy()
        return VacuumReport(True if dry_run else False, keys, None, keep_versions, _trainings_using(store, keys))
    refuse_table_links(store._location, store._tables.names())  # before anything is written
    try:
        with store.transaction("vacuum", f"keep_versions={keep_versions}") as txn:
            candidates = _purgeable(store, store.version - keep_versions + 1)
            if candidates.num_rows == 0:
                raise _NothingToDo  # another writer's vacuum or erase purged them meanwhile
            keys = candidates.column("key").to_numpy()
            trainings = _trainings_using(store, keys)
            txn._write("purged", candidates)
            txn.details = {"purged": int(candidates.num_rows), "keep_versions": keep_versions}
            version = txn.version
    except _NothingToDo:
        return VacuumReport(False, np.empty(0, np.int64), None, keep_versions)
    return VacuumReport(False, keys, version, keep_versions, trainings)


def _purgeable(store: Store, cutoff: int) -> pa.Table:
    """(key, inserted, deleted) of stored rows soft-deleted at a version <= ``cutoff``."""
    empty = pa.table({"key": pa.array([], pa.int64()), "inserted": pa.array([], pa.int64()), "deleted": pa.array([], pa.int64())})
    tomb = store._tables.scan("tombstones", ["key", "_version"], f"_version <= {min(cutoff, store.version)}")
    if tomb is None or tomb.num_rows == 0:
        return empty
    tk = tomb.column("key").to_numpy()
    tv = tomb.column("_version").to_numpy()
    order = np.argsort(tk)
    tk, tv = tk[order], tv[order]

    # batch by batch: only the tombstoned rows are kept, never every stored key
    rows = rows_naming(store._tables, "samples", tk, ["key", "_version"], f"_version <= {store.version}")
    if rows is None:
        return empty
    sk = rows.column("key").to_numpy()
    sv = rows.column("_version").to_numpy()
    dv = tv[np.searchsorted(tk, sk)]
    tagged = np.array(sorted(store.tags().values()), dtype=np.int64)
    if tagged.size:
        # a tagged version T needs the row if inserted <= T < deleted
        lo = np.searchsorted(tagged, sv, side="left")
        needed = (lo < tagged.size) & (tagged[np.minimum(lo, tagged.size - 1)] < dv)
        sk, sv, dv = sk[~needed], sv[~needed], dv[~needed]
    order = np.argsort(sk)
    return pa.table({"key": pa.array(sk[order]), "inserted": pa.array(sv[order]), "deleted": pa.array(dv[order])})


def compact(store: Store) -> None:
    """Merge small files of every table, drop files no longer referenced, and build or update
    the key index (:func:`modyn_store.core.keyindex.update`)."""
    with locked(store):  # a read-only folder raises ReadOnlyStoreError
        refuse_table_links(store._location, store._tables.names())  # before anything is written
        store._recover()
        for name in store._tables.names():
            store._tables.compact(name)
            store._tables.cleanup(name)
        keyindex.update(store)
        store._record_tables()  # the new Lance versions: their loss is damage, not an older answer


def index_keys(store: Store) -> keyindex.IndexReport:
    """Build or update the key index under the writer lock (see :mod:`modyn_store.core.keyindex`).

    Example
    -------
    >>> import pyarrow as pa
    >>> from modyn_store import Store
    >>> store = Store.open("memory://index-doc", create=True)
    >>> _ = store.append(pa.table({"ts": [1, 2, 3]}))
    >>> store.index_keys().tables["samples"].indexed_rows
    3
    """
    with locked(store):  # a read-only folder raises ReadOnlyStoreError
        store._recover()
        report = keyindex.update(store)
        store._record_tables()  # (see compact)
        return report
