"""Rows of a table that hold one of many keys, found in one streamed scan.

A ``key IN (...)`` predicate costs Lance a scan per few thousand keys, and gathering a key range
then searching it holds every key of the range (800 MB for a range over 10^8 rows). Here each
scanned batch's keys are looked up in one table of the keys asked for
(:class:`~engine._search.HashedKeys`, built once) and only the rows found are kept: memory holds
one batch and the hits, whatever the size of the table or the spread of the keys.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open("memory://key-rows-doc", create=True)
>>> _ = store.append(pa.table({"ts": [5, 6, 7, 8]}))  # keys 0 .. 3
>>> found_keys(store._tables, np.array([1, 3, 9]), ("samples", "tombstones"), store.version).tolist()
[1, 3]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from engine._search import HashedKeys, first_unsorted, sorted_unique
from modyn_store.core import keyindex
from modyn_store.core._catalog_tables import sample_keys
from modyn_store.core._keyscan import SCAN_BATCH, dead_positions
from modyn_store.core._sql import key_range

if TYPE_CHECKING:
    from modyn_store.core._tables import Tables
    from modyn_store.core.store import Store

__all__ = ["found_keys", "rows_naming", "stored_keys"]


def rows_naming(tables: Tables, name: str, keys: np.ndarray, columns: list[str],
                filter: str | None = None, *, settled: int | None = None) -> pa.Table | None:
    """The rows of table ``name`` (``columns``, ``key`` among them; ``filter``: a predicate on
    the others) whose ``key`` is one of the int64 ``keys`` (any order); a null key names none;
    ``None`` where there is no such table. Of the samples, the fragments whose recorded key
    bounds hold none of the keys are not read (:meth:`Tables.fragments_holding`), and where
    ``filter`` only keeps rows written at or before version ``settled`` (and keys among those
    asked), the fragments recorded to hold no later row are read without it: only their keys.

    A batch whose keys ascend (the usual layout: keys assigned in order, or merged) is searched
    for the few asked keys inside its key range (:func:`~modyn_store.core._keyscan.dead_positions`,
    as a key scan drops dead keys), not hashed key by key."""
    table: HashedKeys | None = None  # built at the first batch: none where the table is missing or empty
    wanted = sorted_unique(keys)

    def keep(batch: pa.RecordBatch) -> pa.RecordBatch:
        nonlocal table
        values, valid = sample_keys(batch.column("key"))
        searched = bool(values.size) and first_unsorted(values) < 0 and _few_in_range(values, wanted)
        if not searched and table is None:
            table = HashedKeys.for_stream(wanted, SCAN_BATCH)
        at = dead_positions(values, wanted, ordered=searched, hashed=table)
        return batch.take(pa.array(at if valid is None else at[valid[at]]))

    exempt = None if settled is None or name != "samples" else lambda ds: tables.fragments_settled(name, ds, settled)
    return tables.scan_kept(name, columns, filter, keep,
                            fragments=lambda ds: tables.fragments_holding(name, ds, wanted), exempt=exempt)


#: a sorted batch is searched for the asked keys in its range (two binary searches of each in
#: the batch, ~100 ns a key) where they are at most this fraction of its keys; more are hashed
#: (a few ns a key of the batch)
SEARCH_FRACTION = 1 / 64


def _few_in_range(values: np.ndarray, wanted: np.ndarray) -> bool:
    """Whether the ascending ``wanted`` has at most ``SEARCH_FRACTION`` of ``values``' count
    inside ``[values[0], values[-1]]`` (``values`` ascending)."""
    inside = np.searchsorted(wanted, values[-1], side="right") - np.searchsorted(wanted, values[0], side="left")
    return bool(inside <= values.size * SEARCH_FRACTION)


def found_keys(tables: Tables, candidates: np.ndarray, names: tuple[str, ...], committed: int) -> np.ndarray:
    """Sorted keys among the ascending, distinct ``candidates`` that rows of the tables
    ``names`` written at or before version ``committed`` hold (a scan of each table's key range
    of ``candidates``, keeping only the hits; the samples fragments recorded to hold no row
    after ``committed`` are read without the filter, see :func:`rows_naming`)."""
    if candidates.size == 0:
        return candidates
    flt = f"{key_range(int(candidates[0]), int(candidates[-1]))} AND _version <= {committed}"
    hits = [np.empty(0, np.int64)]
    for name in names:
        t = rows_naming(tables, name, candidates, ["key"], flt, settled=committed)
        if t is not None and t.num_rows:
            hits.append(t.column("key").to_numpy())
    return sorted_unique(np.concatenate(hits))


def stored_keys(store: Store, keys: np.ndarray, committed: int, also: tuple[str, ...] = ()) -> np.ndarray:
    """The sorted distinct ``keys`` (ascending, distinct) that samples rows written at or before
    ``committed`` hold, deleted ones included, and those rows of the tables ``also`` hold.

    Where the key index is built, its sorted runs are probed (a binary search per key, the rows
    found read back by row id) and only the fragments written since its build are scanned: keys
    spread over the whole key range would otherwise read every fragment. Without it, the
    fragments whose key bounds may hold one of the keys are scanned (:func:`found_keys`)."""
    pointer = keyindex.read_pointer(store) if keys.size else None
    ds = store._tables.open("samples") if pointer is not None else None
    if ds is None:
        return found_keys(store._tables, keys, ("samples", *also), committed)
    rows = keyindex.sample_rows(store, ds, keys, pointer=pointer)
    held = rows.column("key").to_numpy()[rows.column("_version").to_numpy() <= committed]
    return sorted_unique(np.concatenate([held, found_keys(store._tables, keys, also, committed)]))
