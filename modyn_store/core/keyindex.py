"""The key index: point lookups by key that do not read every key of the store.

``Snapshot.take``, ``row_ids`` and ``contains`` for a small set of keys find the rows that hold
those keys with one filtered read (``key IN (...)``) of the ``samples``, ``tombstones`` and
``purged`` tables, instead of reading, sorting and checking the whole key column.

What serves the lookup is a Lance scalar index (BTREE) on ``key`` of each of those tables.
The **writer** builds it, never a reader (a store may be read-only): :func:`update` (run by
``Store.index_keys()`` and at the end of ``Store.compact()``, under the writer lock) creates the index where it is
missing and folds fragments written since into it (Lance's ``optimize_indices``). Lance keeps
the index through compaction, erase and vacuum (their file rewrites remap it; row ids are
stable) and through deletes (deleted rows are masked at read time).

Fragments the index does not cover yet (appends since the last build) are scanned flat by the
same query, so an answer is always exact: only its speed depends on the index. A lookup costs
about one B-tree probe and one random read per requested key plus a flat scan of the unindexed
rows; without any index it is one scan of the ``key`` column with a hash filter (still cheaper
than the sorted key set it replaces).

Example
-------
>>> import pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open("memory://keyindex-doc", create=True)
>>> _ = store.append(pa.table({"ts": [1, 2, 3], "x": [0.5, 1.5, 2.5]}))
>>> report = store.index_keys()
>>> report.tables["samples"].unindexed_rows
0
>>> _ = store.append(pa.table({"ts": [4], "x": [3.5]}))
>>> store.as_of().take([3, 0], ["x"]).column("x").to_pylist()  # the new row is scanned flat
[3.5, 0.5]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modyn_store.core.errors import CorruptionError

if TYPE_CHECKING:
    from modyn_store.core.store import Store

__all__ = ["INDEXED_TABLES", "IndexReport", "Located", "TableIndex", "locate", "lookup", "table_index", "update"]

#: tables whose ``key`` column the index covers
INDEXED_TABLES = ("samples", "tombstones", "purged")
INDEX_NAME = "key_idx"
#: requested keys per Lance query (each query also scans the unindexed fragments once)
CHUNK = 1 << 20


@dataclass(frozen=True)
class TableIndex:
    """The key index of one table after :func:`build`.

    Attributes
    ----------
    indexed_rows, unindexed_rows:
        Rows the index covers and rows of fragments it does not cover (scanned flat).
    bytes:
        Size of the index files.
    """

    indexed_rows: int
    unindexed_rows: int
    bytes: int


@dataclass(frozen=True)
class IndexReport:
    """What :func:`build` did: per table, the index state afterwards, and the seconds it took."""

    tables: dict[str, TableIndex] = field(default_factory=dict)
    seconds: float = 0.0


def _describe(ds: Any) -> Any:
    """Lance's description of the key index of ``ds`` (``None`` if it has none)."""
    return next((d for d in ds.describe_indices() if d.name == INDEX_NAME), None)


def table_index(store: Store, name: str) -> TableIndex | None:
    """The key index state of table ``name`` (``None`` if the table or its index does not exist)."""
    ds = store._tables.open(name)
    found = None if ds is None else _describe(ds)
    if ds is None or found is None:
        return None
    stats = ds.stats.index_stats(INDEX_NAME)
    return TableIndex(int(stats["num_indexed_rows"]), int(stats["num_unindexed_rows"]), int(found.total_size_bytes))


def update(store: Store) -> IndexReport:
    """Create or update the key index of every indexed table: the writer's maintenance, run
    by :func:`modyn_store.core.maintenance.index_keys` under the writer lock.

    A table without the index gets it; one with it gets the fragments written since folded in.
    Logical content and versions are unchanged; readers are unaffected (old index files stay
    until cleanup).
    """
    t0 = time.perf_counter()
    out: dict[str, TableIndex] = {}
    for name in INDEXED_TABLES:
        ds = store._tables.open(name)
        if ds is None or ds.count_rows() == 0:
            continue
        store._tables.guard()
        if _describe(ds) is None:
            ds.create_scalar_index("key", "BTREE", name=INDEX_NAME)
        elif ds.stats.index_stats(INDEX_NAME)["num_unindexed_rows"]:
            ds.optimize.optimize_indices(index_names=[INDEX_NAME])
        got = table_index(store, name)
        if got is not None:
            out[name] = got
    return IndexReport(out, time.perf_counter() - t0)


def lookup(ds: Any, keys: np.ndarray, columns: list[str]) -> pa.Table:
    """Rows of ``ds`` (not deleted by Lance) whose ``key`` is in ``keys``, with ``_rowid``.

    ``columns`` must include ``key``. Uses the key index where it covers the fragments and
    scans the others flat, so the answer is exact either way. Row order is unspecified.
    """
    parts = []
    for start in range(0, keys.size, CHUNK):
        chunk = pa.array(np.ascontiguousarray(keys[start : start + CHUNK], dtype=np.int64))
        parts.append(ds.to_table(columns=columns, filter=pc.field("key").isin(chunk), with_row_id=True))
    if not parts:
        return ds.to_table(columns=columns, limit=0, with_row_id=True)
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class Located:
    """Point-lookup answers for sorted distinct keys ``keys`` as of one version.

    ``row_id[i]`` is the stable row id of ``keys[i]``'s row where ``found[i]`` (a stored row
    inserted at or before the version); ``dead`` marks keys soft-deleted at or before the
    version or erased at any time; ``unavailable`` marks keys live at the version whose rows
    vacuum purged.
    """

    keys: np.ndarray
    row_id: np.ndarray
    found: np.ndarray
    dead: np.ndarray
    unavailable: np.ndarray

    @property
    def live(self) -> np.ndarray:
        """Live at the version (as :meth:`Snapshot.keys` counts it: purged rows included)."""
        return (self.found & ~self.dead) | self.unavailable


def _hits(keys: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Mask over sorted ``keys``: which are in ``found`` (any order, duplicates allowed)."""
    if found.size == 0 or keys.size == 0:
        return np.zeros(keys.size, bool)
    s = np.sort(found)
    pos = np.minimum(np.searchsorted(s, keys), s.size - 1)
    return np.asarray(s[pos] == keys)


def locate(store: Store, ds: Any, keys: np.ndarray, version: int, committed: int) -> Located:
    """Answer liveness and row ids for sorted distinct ``keys`` without reading every key.

    ``ds`` is the samples dataset to read rows from; tombstones, purged rows and erasures
    are looked up by the same keys (erasures committed up to ``committed`` apply).
    """
    rows = lookup(ds, keys, ["key", "_version"])
    k = rows.column("key").to_numpy()
    keep = rows.column("_version").to_numpy() <= version
    k, rid = k[keep], rows.column("_rowid").to_numpy()[keep]
    order = np.argsort(k, kind="stable")
    k, rid = k[order], rid[order]
    if k.size > 1 and (k[1:] == k[:-1]).any():
        dup = np.unique(k[1:][k[1:] == k[:-1]])
        raise CorruptionError(
            f"{store.uri!r}: keys {dup[:5].tolist()} have more than one stored row at version "
            f"{version}; run `modyn-store verify`"
        )
    row_id = np.zeros(keys.size, np.uint64)
    found = np.zeros(keys.size, bool)
    if k.size:
        pos = np.minimum(np.searchsorted(k, keys), k.size - 1)
        found = k[pos] == keys
        row_id[found] = rid[pos[found]]
    erased = _hits(keys, store._erased_keys(committed))
    tomb = store._tables.lookup("tombstones", keys, ["key", "_version"])
    dead = erased.copy()
    if tomb is not None and tomb.num_rows:
        tk = tomb.column("key").to_numpy()[tomb.column("_version").to_numpy() <= version]
        dead |= _hits(keys, tk)
    unavailable = np.zeros(keys.size, bool)
    purged = store._tables.lookup("purged", keys, ["key", "inserted", "deleted", "_version"])
    if purged is not None and purged.num_rows:
        ins, gone = purged.column("inserted").to_numpy(), purged.column("deleted").to_numpy()
        mine = (ins <= version) & (gone > version) & (purged.column("_version").to_numpy() <= committed)
        unavailable = _hits(keys, purged.column("key").to_numpy()[mine]) & ~erased
    return Located(keys, row_id, found, dead, unavailable)
