"""Bulk access to stored sample rows by stable row id: the read API of bulk readers.

A :class:`RowReader` is what :meth:`Snapshot.row_reader <modyn_store.core.snapshot.Snapshot.row_reader>`
returns: it locates keys (stable row id and fragment), reads the rows of one fragment through a
row-id mask (only those rows are decoded), or takes rows by row id. It answers for physical rows
and checks no liveness itself: callers check that the keys they ask for are live at the
snapshot's version first (the training loader does), then read exactly those rows.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open("memory://rows-doc", create=True)
>>> _ = store.append(pa.table({"ts": [1, 2, 3], "x": [0.5, 1.5, 2.5]}))
>>> rows = store.as_of(1).row_reader()
>>> rid, frag = rows.locate(np.array([2, 0]))
>>> rows.take(rid, ["key", "x"]).column("x").to_pylist()
[2.5, 0.5]
>>> [b.num_rows for b in rows.scan(int(frag[0]), np.sort(rid), ["key"])]
[2]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from engine._search import first_unsorted, hit_positions
from engine._search import isin_sorted_numpy as _isin_sorted
from modyn_store.core._keyscan import SCAN_BATCH, increasing

__all__ = ["RowReader", "locate_batch", "locate_keys", "take_by_row_id"]


def take_by_row_id(ds: Any, row_ids: np.ndarray, columns: list[str]) -> pa.Table:
    """Rows of a Lance dataset by stable row id, in the order given.

    Uses Lance's take-by-row-id path, which stays fast when deletions are present (unlike
    take by offset); it is the only place that touches that entry point.
    """
    # a list of Python ints: Lance converts it 4x faster than an Arrow array, whose scalars
    # only convert at all where pyarrow gives them __index__ (pyarrow >= 20)
    return ds._take_rows(np.asarray(row_ids, dtype=np.uint64).tolist(), columns=columns)



class RowReader:
    """Rows of a samples table by stable row id (see the module docstring).

    ``dataset`` is a Lance dataset with stable row ids and a unique int64 ``key`` column;
    ``local``: it lies on a local disk or in memory, not on object storage (see :attr:`local`).
    """

    def __init__(self, dataset: Any, *, local: bool = True, reopen: Callable[[], Any] | None = None) -> None:
        self._ds = dataset
        self._local = bool(local)
        self._reopen = reopen
        self._origin = getattr(dataset, "version", None)  # the manifest the rows were located in

    def refresh(self) -> bool:
        """Read from the table's latest manifest from now on (after a concurrent compaction,
        erase or vacuum removed the files of the one this reader started from); stable row ids
        stay valid, fragment ids may not. False when the reader cannot reopen its table or the
        table has no manifest newer than the one the reader was made on (a failed read is then
        not due to such a rewrite)."""
        if self._reopen is None:
            return False
        ds = self._reopen()
        if ds is None or ds.version == self._origin:
            return False
        self._ds = ds
        return True

    @property
    def local(self) -> bool:
        """Whether the rows lie on a local disk or in memory: a take then costs about what its
        rows decode to, while on object storage every take is many small requests."""
        return self._local

    @property
    def schema(self) -> pa.Schema:
        """The user-visible columns (the store's ``_version`` bookkeeping column left out)."""
        return pa.schema([f for f in self._ds.schema if f.name != "_version"])

    def count_rows(self) -> int:
        """Physical rows in the table (every version; from metadata, no scan)."""
        return int(self._ds.count_rows())

    def row_nbytes(self) -> float:
        """Stored bytes per physical row, all columns together (from the data files' sizes in
        the table's metadata, no read; 0.0 where Lance recorded no size): what a read of a row
        costs in memory, about."""
        rows = self.count_rows()
        files = [f for frag in self._ds.get_fragments() for f in frag.metadata.files]
        return sum(f.file_size_bytes or 0 for f in files) / rows if rows else 0.0

    def locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stable row ids (uint64) and fragment ids (int64) of ``keys``, aligned with them.

        One streamed scan of the ``key`` column (memory follows ``keys``, not the table); a key
        with no stored row gets fragment id -1.
        """
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        if keys.size == 0:
            return locate_keys(keys, ())
        return locate_keys(keys, self._ds.to_batches(columns=["key"], with_row_id=True, with_row_address=True,
                                                     batch_size=SCAN_BATCH))

    def scan(
        self, fragment: int, row_ids: np.ndarray, columns: Sequence[str], *, batch_size: int = 1 << 16
    ) -> Iterator[pa.RecordBatch]:
        """The rows ``row_ids`` (sorted, all in ``fragment``) of one fragment, in storage order:
        a scan with a row-id mask, so only those rows are decoded."""
        from lance.dataset import serialize_row_addrs

        frag = self._ds.get_fragment(int(fragment))
        if frag is None:  # compacted away since the rows were located: a vanished file
            raise OSError(f"Not found: fragment {int(fragment)} of the table (rewritten since the rows were located)")
        allow = serialize_row_addrs(np.asarray(row_ids, dtype=np.uint64).tolist())
        scanner = self._ds.scanner(
            columns=list(columns), fragments=[frag], row_addr_allowlist=allow, batch_size=batch_size
        )
        return iter(scanner.to_batches())

    def take(self, row_ids: np.ndarray, columns: Sequence[str]) -> pa.Table:
        """Rows by stable row id, in the order given (fast with deleted rows, unlike take by offset)."""
        return take_by_row_id(self._ds, row_ids, list(columns))


def locate_keys(
    keys: np.ndarray, batches: Iterable[pa.RecordBatch], dead: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stable row ids (uint64) and fragment ids (int64, -1: not found) of the int64 ``keys``,
    aligned with them, from scanned batches of ``key``, ``_rowid`` and ``_rowaddr`` (rows with a
    ``dead`` key skipped; see :func:`locate_batch`)."""
    order = None if increasing(keys) else np.argsort(keys, kind="stable")
    sk = keys if order is None else keys[order]
    rid = np.zeros(keys.size, np.uint64)
    frag = np.full(keys.size, -1, np.int64)
    for batch in batches:
        locate_batch(batch, sk, order, rid, frag, dead)
    return rid, frag


def locate_batch(
    batch: pa.RecordBatch,
    sorted_keys: np.ndarray,
    order: np.ndarray | None,
    rid: np.ndarray,
    frag: np.ndarray,
    dead: np.ndarray | None = None,
) -> None:
    """Fill ``rid``/``frag`` for the wanted keys that one scanned batch (``key``, ``_rowid``,
    ``_rowaddr``) holds, except ``dead`` ones; ``sorted_keys = wanted[order]`` (``order``
    None: ``wanted`` is sorted already).

    Only the wanted keys within the batch's range are searched, in the batch when it is
    sorted (storage order usually is): O(hits log batch). A batch of consecutive keys (an
    append-only store with assigned keys) needs no search: a hit's position is its offset
    from the first key.
    """
    stored = batch.column(batch.schema.get_field_index("key")).to_numpy()
    if not stored.size:
        return
    lo = int(np.searchsorted(sorted_keys, stored.min(), side="left"))
    hi = int(np.searchsorted(sorted_keys, stored.max(), side="right"))
    if hi <= lo:
        return
    wanted = sorted_keys[lo:hi]
    ordered = increasing(stored)
    if ordered and int(stored[-1]) - int(stored[0]) == stored.size - 1:  # consecutive keys
        idx = wanted - stored[0]
    elif ordered or first_unsorted(stored) < 0:
        idx = hit_positions(stored, sorted_keys)
    else:
        idx = np.flatnonzero(_isin_sorted(stored, wanted))
    if idx.size and dead is not None and dead.size:
        idx = idx[~_isin_sorted(stored[idx], dead)]
    if not idx.size:
        return
    hits = stored[idx]
    # the hits are ascending; when they are exactly the wanted keys of the range (every one
    # stored once here), their destinations are that range of ``order``: no search
    if np.array_equal(hits, wanted):
        dest: np.ndarray | slice = slice(lo, hi) if order is None else order[lo:hi]
    else:
        # every wanted position gets its key's hit: a key asked for more than once fills
        # each of its positions (a key stored twice here: its last row, as above)
        by_key = np.argsort(hits, kind="stable")
        at = np.searchsorted(hits[by_key], wanted, side="right") - 1
        ok = at >= 0
        ok[ok] = hits[by_key[at[ok]]] == wanted[ok]
        found = lo + np.flatnonzero(ok)
        dest = found if order is None else order[found]
        idx = idx[by_key[at[ok]]]
    rid[dest] = batch.column(batch.schema.get_field_index("_rowid")).to_numpy()[idx]
    addr = batch.column(batch.schema.get_field_index("_rowaddr")).to_numpy()[idx]
    frag[dest] = (addr >> np.uint64(32)).astype(np.int64)
