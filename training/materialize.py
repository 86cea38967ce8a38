"""Decode the selected rows of a store snapshot once, into contiguous columns in storage order.

Reads go through the store's public row API (:meth:`Snapshot.row_reader
<modyn_store.core.snapshot.Snapshot.row_reader>`, a :class:`~modyn_store.core.rows.RowReader`).
Two read paths, chosen by where the table lies and, on object storage, by selectivity (the
share of the table's rows that are selected):

- **scan with mask**: each fragment holding selected rows is scanned (one after the other by
  default, Lance decoding each scan in parallel; ``threads`` fragments at once when given) with
  a row-id mask, so only selected rows are decoded (``RowReader.scan``); the first
  :data:`SCAN_HEAD` rows are taken by row id meanwhile, in a thread of their own;
- **take by row id**: the selected stable row ids are sorted, split into chunks (of
  :data:`TAKE_FIRST` rows, doubling up to :data:`TAKE_CHUNK`) and read by row id in parallel
  threads (twice as many as CPUs by default, at most :data:`TAKE_THREADS`), in storage order
  (``RowReader.take``).

Every read asks for at most :data:`READ_BYTES` of stored rows (by the table's bytes per row),
so reads of wide rows (images, long texts) hold few rows each.

On a local disk (or in memory) takes are the default at any share; on object storage, takes
below :data:`TAKE_BELOW` of the rows and the masked scan above (see :func:`choose_strategy`).

One scan of the ``key`` column locates the keys first (``RowReader.locate``, or the caller's
``Snapshot.locate``, which also checks liveness): :func:`plan` lays the output rows out in
storage order (fragment, then row id) before any read, so every read is copied sequentially
at a known offset, threads never write the same rows, and every returned batch is checked to
hold exactly the keys of the rows it is written to.

Fixed columns are written into caller-provided buffers (e.g. memory-mapped files of a cache
entry); variable-length columns are returned as :class:`~training.columns.VarColumn`.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store
>>> from training.materialize import materialize
>>> store = Store.open("memory://materialize-doc", create=True)
>>> _ = store.append(pa.table({"ts": np.arange(10), "x": np.arange(10) * 1.5}))
>>> out = materialize(store.as_of(1).row_reader(), np.array([7, 2]), ["x"], strategy="scan")
>>> out.keys.tolist(), out.fixed["x"].tolist()
([2, 7], [3.0, 10.5])
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa

from engine._search import first_unsorted, sorted_unique
from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS, vanished
from modyn_store.core._keyscan import increasing
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.rows import RowReader
from training.columns import ColumnSpec, VarColumn, spec_of, to_fixed, to_var
from training.errors import ErasedKeysError

__all__ = ["KeyLookup", "Layout", "Materialized", "choose_strategy", "materialize", "plan", "specs_for"]

Strategy = Literal["auto", "scan", "take"]
Allocator = Callable[[ColumnSpec, int], np.ndarray]

#: On object storage, below this share of selected rows take-by-row-id is used; above it the
#: masked scan, whose few large requests beat a take's many small ones (takes of 25% of the rows
#: were 2.2x slower than the masked scan on a local S3 endpoint, at 5% 1.2x slower). On a local
#: disk takes are used at any share: Lance's masked scan decodes about as much as a full scan
#: whatever the share, and takes in parallel were up to 2.4x faster, 0.82-0.98x at the ends (2%
#: of 272-byte rows, all of 32-byte rows) (benchmarks/read_paths.py, docs/PERFORMANCE.md).
TAKE_BELOW = 0.1

#: A masked scan reads its first rows (the first block of a cold first epoch) by take, in a
#: thread of its own: the scan yields its first rows only after decoding far ahead, a take of
#: this many rows within milliseconds.
SCAN_HEAD = 16384

#: Rows of the first take, then of each next one (doubling) up to :data:`TAKE_CHUNK`: the first
#: rows of a cold first epoch land after one small take, and later takes are large enough that
#: the fixed cost of a take stays small.
TAKE_FIRST = 8192
TAKE_CHUNK = 16384

#: Stored bytes one read (a take, a batch of a masked scan, the head take) asks for at most:
#: reads of wide rows (images, long texts) are cut to fewer rows than the counts above, so that
#: what the reading threads hold at once follows their number, not the row size.
READ_BYTES = 64 << 20

#: The most takes in flight by default (twice the CPUs up to this): with :data:`READ_BYTES`,
#: at most 1 GiB of stored rows read at once.
TAKE_THREADS = 16


class KeyLookup:
    """Maps keys to their position in a key array (``-1`` for keys not in it).

    A dense table over ``[min, max]`` is used when the key range is at most ``8 * n + 2**20``;
    otherwise a sorted search.
    """

    def __init__(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        self.size = int(keys.size)
        self._lut: np.ndarray | None = None
        if keys.size == 0:
            self._lo = 0
            self._order = np.empty(0, np.int64)
            self._sorted = keys
            return
        lo, hi = int(keys.min()), int(keys.max())
        self._lo = lo
        if hi - lo + 1 <= 8 * keys.size + (1 << 20):
            # int32 positions where they fit: half the table to fill and to fault in (2x faster)
            dtype = np.int32 if keys.size < 2**31 else np.int64
            lut = np.full(hi - lo + 1, -1, dtype=dtype)
            lut[keys - lo] = np.arange(keys.size, dtype=dtype)
            self._lut = lut
        else:
            self._order = np.argsort(keys, kind="stable")
            self._sorted = keys[self._order]

    def __call__(self, k: np.ndarray) -> np.ndarray:
        if self.size == 0:
            return np.full(k.size, -1, np.int64)
        if self._lut is not None:
            rel = k - self._lo
            inside = (rel >= 0) & (rel < self._lut.size)
            if inside.all():
                return self._lut[rel].astype(np.int64, copy=False)
            out = np.full(k.size, -1, np.int64)
            out[inside] = self._lut[rel[inside]]
            return out
        pos = np.searchsorted(self._sorted, k)
        pos[pos == self._sorted.size] = 0
        hit = self._sorted[pos] == k
        return np.where(hit, self._order[pos], -1)


@dataclass
class Materialized:
    """Decoded rows in storage order: ``keys[i]`` is the key of row ``i`` of every column."""

    keys: np.ndarray
    specs: dict[str, ColumnSpec]
    fixed: dict[str, np.ndarray] = field(default_factory=dict)
    var: dict[str, VarColumn] = field(default_factory=dict)
    strategy: str = ""

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.fixed.values()) + sum(v.nbytes for v in self.var.values()))


def specs_for(schema: pa.Schema, columns: Sequence[str]) -> dict[str, ColumnSpec]:
    """Column specs of ``columns`` in ``schema`` (unknown names raise ``InvalidArgumentError``)."""
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise InvalidArgumentError("columns", columns, "a list of column names")
    if len(set(columns)) != len(columns):
        raise InvalidArgumentError("columns", list(columns), "distinct column names")
    unknown = [c for c in columns if c not in schema.names or c == "_version"]
    if unknown:
        names = [n for n in schema.names if n != "_version"]
        raise InvalidArgumentError("columns", unknown, f"columns of the samples table: {names}")
    return {c: spec_of(schema.field(c)) for c in columns}


def choose_strategy(n_selected: int, n_rows: int, strategy: Strategy = "auto", *, local: bool = False) -> str:
    """``"take"`` for a ``local`` table (see :attr:`RowReader.local
    <modyn_store.core.rows.RowReader.local>`) or when fewer than :data:`TAKE_BELOW` of the rows
    are selected, else ``"scan"``; ``strategy`` other than ``"auto"`` is returned as it is."""
    if strategy not in ("auto", "scan", "take"):
        raise InvalidArgumentError("strategy", strategy, "'auto', 'scan' or 'take'")
    if strategy != "auto":
        return strategy
    return "take" if local or n_rows == 0 or n_selected < TAKE_BELOW * n_rows else "scan"


class _Sink:
    """Writes decoded batches at known row offsets: sequential copies, no scatter.

    The output layout (``layout.keys``: the key of every output row) is decided before any read,
    so every batch is checked to hold exactly the keys of the rows it is written to.
    """

    def __init__(self, layout: Layout, specs: dict[str, ColumnSpec], fixed: dict[str, np.ndarray], what: str) -> None:
        self.layout = layout
        self.specs = specs
        self.fixed = fixed
        self.what = what
        self.var_pieces: dict[str, list[tuple[int, pa.Array]]] = {n: [] for n, s in specs.items() if s.kind != "fixed"}
        self._lock = threading.Lock()

    def add(self, start: int, stop: int, batch: pa.RecordBatch | pa.Table) -> int:
        """Write ``batch`` at rows ``start:start + len(batch)`` (at most ``stop``); returns the rows written."""
        n = batch.num_rows
        if n == 0:
            return 0
        k = batch.column("key").to_numpy()
        want = self.layout.keys[start : min(start + n, stop)]
        if not np.array_equal(k, want):
            if not np.isin(k, self.layout.keys).all():
                # the read returned rows that were not asked for: refuse to go on
                raise InvalidArgumentError(
                    "dataset", "rows outside the selection", "a read of exactly the selected rows"
                )
            # rows of the selection are missing from the read (deleted meanwhile): name those
            # skipped up to the last row that arrived
            window = self.layout.keys[start:stop]
            last = int(np.flatnonzero(window == k[-1])[0]) if (window == k[-1]).any() else window.size - 1
            raise ErasedKeysError(self.what, np.setdiff1d(window[: last + 1], k))
        for name, spec in self.specs.items():
            col = batch.column(name)
            if spec.kind == "fixed":
                self.fixed[name][start : start + n] = to_fixed(col, spec)
            else:
                if isinstance(col, pa.ChunkedArray):
                    col = col.combine_chunks()
                with self._lock:
                    self.var_pieces[name].append((start, col))
        return n

    def finish_var(self) -> dict[str, VarColumn]:
        out: dict[str, VarColumn] = {}
        for name, pieces in self.var_pieces.items():
            spec = self.specs[name]
            if not pieces:
                out[name] = VarColumn(np.zeros(self.layout.keys.size + 1, np.int64), np.empty(0, np.uint8))
                continue
            arrs = [p[1].cast(pa.large_binary()) for p in sorted(pieces, key=lambda p: p[0])]
            out[name] = to_var(pa.concat_arrays(arrs) if len(arrs) > 1 else arrs[0], spec)
        return out


@dataclass
class Layout:
    """Where the selected rows are stored and where each goes in the output, before any read.

    Output rows are in storage order (fragment, then stable row id): ``keys[i]``, ``rid[i]`` and
    ``frag[i]`` describe output row ``i``. Each ``jobs`` range of output rows is read by one task
    (a masked scan of one fragment, or a take of one chunk) and written sequentially. With
    ``head``, the first job is a take (the first :data:`SCAN_HEAD` rows of a masked scan), read
    in a thread of its own.
    """

    keys: np.ndarray
    rid: np.ndarray
    frag: np.ndarray
    strategy: str
    jobs: list[tuple[int, int]]
    head: bool = False
    #: rows a read asks for at most (:data:`READ_BYTES` of stored rows)
    rows_per_read: int = SCAN_HEAD


def plan(
    rows: RowReader,
    keys: np.ndarray,
    *,
    strategy: Strategy = "auto",
    threads: int | None = None,
    what: str = "train set",
    located: tuple[np.ndarray, np.ndarray] | None = None,
) -> Layout:
    """Locate ``keys`` (unique int64) with one scan of the ``key`` column and lay out the output.

    ``located``: ``(row ids, fragment ids)`` aligned with ``keys`` when the caller has them
    already (e.g. from :meth:`Snapshot.locate <modyn_store.core.snapshot.Snapshot.locate>`,
    which checks liveness in the same scan). Raises :class:`~training.errors.ErasedKeysError`
    for keys without a stored row (fragment id -1).
    """
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    if not increasing(keys) and sorted_unique(keys).size != keys.size:
        raise InvalidArgumentError("keys", "duplicates", "unique keys")
    chosen = choose_strategy(int(keys.size), int(rows.count_rows()), strategy, local=rows.local)
    if keys.size == 0:
        empty = np.empty(0, np.int64)
        return Layout(keys, np.empty(0, np.uint64), empty, chosen, [])
    cap = max(1, int(READ_BYTES // max(rows.row_nbytes(), 1.0)))
    rid, frag = rows.locate(keys) if located is None else located
    if rid.shape != keys.shape or frag.shape != keys.shape:
        raise InvalidArgumentError("located", (rid.shape, frag.shape), f"arrays aligned with keys, shape {keys.shape}")
    if (frag < 0).any():
        raise ErasedKeysError(what, keys[frag < 0])
    out_keys = keys
    if not _storage_ordered(rid, frag):
        order = np.lexsort((rid, frag))
        rid, frag, out_keys = rid[order], frag[order], keys[order]
    if chosen == "scan":
        cuts = np.flatnonzero(np.diff(frag)) + 1
        starts = [0, *cuts.tolist()]
        stops = [*cuts.tolist(), int(rid.size)]
        jobs = list(zip(starts, stops))
        head = min(SCAN_HEAD, cap)  # also the rows of a scan's batch
        if stops[0] <= head:
            return Layout(out_keys, rid, frag, chosen, jobs, rows_per_read=head)
        # the first rows by take, the rest of the fragment by scan
        jobs = [(0, head), (head, stops[0]), *jobs[1:]]
        return Layout(out_keys, rid, frag, chosen, jobs, head=True, rows_per_read=head)
    _default_threads(threads, 1)  # checked here, used by the read
    # takes in storage order (rows land in the order a cold first epoch asks for them),
    # growing from TAKE_FIRST to TAKE_CHUNK rows (at most ``cap``)
    jobs = []
    lo, size = 0, min(TAKE_FIRST, cap)
    while lo < rid.size:
        jobs.append((lo, min(lo + size, int(rid.size))))
        lo, size = jobs[-1][1], min(size * 2, TAKE_CHUNK, cap)
    return Layout(out_keys, rid, frag, chosen, jobs, rows_per_read=min(TAKE_CHUNK, cap))


def _storage_ordered(rid: np.ndarray, frag: np.ndarray) -> bool:
    """Whether rows ``(frag, rid)`` are in storage order already (sorting them would be a no-op):
    the common case, keys located in key order in an append-only store."""
    return increasing(rid) and first_unsorted(frag) < 0


def _default_threads(threads: int | None, jobs: int) -> int:
    if threads is None:
        # takes wait on reads as well as decode: twice the CPUs kept them 10-15% faster; at
        # most TAKE_THREADS, so that the reads in flight hold at most that many READ_BYTES
        threads = min(2 * (os.cpu_count() or 1), TAKE_THREADS)
    if not isinstance(threads, int) or threads < 1:
        raise InvalidArgumentError("threads", threads, "an integer >= 1 or None")
    return max(1, min(threads, jobs))


def materialize(
    rows: RowReader,
    keys: np.ndarray,
    columns: Sequence[str],
    *,
    strategy: Strategy = "auto",
    threads: int | None = None,
    allocate: Allocator | None = None,
    batch_size: int = 1 << 14,
    what: str = "train set",
    layout: Layout | None = None,
    progress: Callable[[int, int], None] | None = None,
    head_rows: int = 0,
) -> Materialized:
    """Read the rows of ``keys`` through a snapshot's row reader, in storage order.

    Parameters
    ----------
    rows:
        ``snapshot.row_reader()`` of the snapshot whose live ``keys`` are read (liveness is the
        caller's check; keys without a stored row raise).
    keys:
        Unique int64 keys to read; the output holds them in storage order (``Materialized.keys``).
    columns:
        Columns to decode (``key`` may be one of them).
    strategy:
        ``"auto"`` (by where the table lies and selectivity, see :func:`choose_strategy`),
        ``"scan"`` or ``"take"``.
    threads:
        Parallel readers (default: 1 for masked scans, which Lance decodes on its own thread
        pool; twice the number of CPUs for takes, at most :data:`TAKE_THREADS`).
    allocate:
        ``allocate(spec, rows)`` returns the output buffer of a fixed column (default ``np.empty``).
    what:
        Names the caller in errors.
    layout:
        The :func:`plan` of ``keys`` when the caller made it already (saves the key scan).
    progress:
        ``progress(job, row)``: rows ``layout.jobs[job][0]:row`` of every fixed column are written
        (called from the reading threads, in increasing ``row`` per job).
    head_rows:
        The jobs that hold output rows ``0:head_rows`` are read first, alone; the others start
        when they have ended (a loader's first batch waits for the head only, so the rest of
        the read does not share the cores with it).

    Raises
    ------
    ErasedKeysError
        Some keys have no row in the dataset; no other rows are substituted.
    """
    specs = specs_for(rows.schema, columns)
    if layout is None:
        layout = plan(rows, keys, strategy=strategy, threads=threads, what=what)
    alloc = allocate or (lambda spec, n: np.empty((n, *spec.shape), dtype=np.dtype(spec.dtype)))
    size = int(layout.keys.size)
    fixed = {n: alloc(s, size) for n, s in specs.items() if s.kind == "fixed"}
    sink = _Sink(layout, specs, fixed, what)
    read = ["key"] + [c for c in columns if c != "key"]
    rid, frag = layout.rid, layout.frag

    def run(j: int) -> None:
        lo, hi = layout.jobs[j]
        at = lo
        for attempt in range(READ_ATTEMPTS):
            try:
                if attempt == 0 and layout.strategy == "scan" and not (j == 0 and layout.head):
                    for batch in rows.scan(int(frag[lo]), rid[lo:hi], read,
                                           batch_size=min(batch_size, layout.rows_per_read)):
                        at += sink.add(at, hi, batch)
                        if progress is not None:
                            progress(j, at)
                elif at < hi:
                    # the rest of the job by stable row id: ids survive compaction, fragments do not
                    at += sink.add(at, hi, rows.take(rid[at:hi], read))
                    if progress is not None:
                        progress(j, at)
                break
            except READ_ERRORS as exc:
                # a concurrent compaction, erase or vacuum removed a file this read started from:
                # read the rest again from the latest manifest (the sink checks every row's key)
                if not vanished(exc) or attempt + 1 == READ_ATTEMPTS or not rows.refresh():
                    raise
        if at != hi:
            raise ErasedKeysError(what, layout.keys[at:hi])

    if layout.jobs:
        # masked scans: one fragment after the other unless asked (Lance decodes each scan on
        # its own thread pool; parallel scans competed for the cores and delayed the first rows)
        n = _default_threads(1 if threads is None and layout.strategy == "scan" else threads, len(layout.jobs))
        first = 1 if layout.head else 0
        # the jobs that start within the head, read before the others (a scan's head take aside)
        ahead = first + sum(1 for lo, _ in layout.jobs[first:] if lo < head_rows)
        with ThreadPoolExecutor(first) if first else nullcontext() as head, ThreadPoolExecutor(n) as pool:
            got = head.submit(run, 0) if head is not None else None
            list(pool.map(run, range(first, ahead)))
            list(pool.map(run, range(ahead, len(layout.jobs))))
            if got is not None:
                got.result()
    var = sink.finish_var()
    return Materialized(keys=layout.keys, specs=specs, fixed=fixed, var=var, strategy=layout.strategy)
