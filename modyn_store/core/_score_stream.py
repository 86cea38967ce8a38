"""Streaming reads and bounded-memory checks of score tables.

Every score write commits its rows sorted by key (``details["sorted"]`` in its log entry), so
the rows of one write version form a sorted run. The latest score per key as of a version is
then a k-way merge of the runs written at or before it: bounded by one batch per run, with the
output sorted by key. Writes made before runs were sorted are merged in memory instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine._search import first_unsorted
from engine._search import isin_sorted_numpy as _isin_sorted
from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS
from modyn_store.core._sql import key_range, sql_int
from modyn_store.core._stream import DeadKeys
from modyn_store.core.errors import CorruptionError

if TYPE_CHECKING:
    from modyn_store.core.snapshot import Snapshot
    from modyn_store.core.store import Store

__all__ = ["OUT_SCHEMA_NAMES", "live_mask", "score_runs", "stream_latest"]

OUT_SCHEMA_NAMES = ["key", "value", "training_id", "version"]
#: below this many live rows the liveness check of a write reads the key set (cached, verified)
CHECK_IN_MEMORY_BELOW = 1 << 23
#: the smallest batch one run reads at a time
_MIN_RUN_BATCH = 4096
#: batches and I/O bytes each run's scanner may hold ahead of the merge
RUN_READAHEAD = 2
RUN_IO_BUFFER = 32 << 20


def score_runs(store: Store, name: str, version: int) -> list[int] | None:
    """The versions at or before ``version`` that wrote score ``name``, oldest first; ``None``
    when one of them did not write its rows sorted by key (they are then merged in memory)."""
    out = []
    for r in store._read_records()[:version]:
        if r.op == "scores" and name in r.details.get("scores", ()):
            if not r.details.get("sorted"):
                return None
            out.append(r.version)
    return out


class _Run:
    """The rows of one score write, read batch by batch in key order."""

    def __init__(self, reader: Iterator[pa.RecordBatch], version: int, what: str) -> None:
        self.reader = reader
        self.version = version
        self.what = what
        self.batch: pa.RecordBatch | None = None
        self.keys = np.empty(0, np.int64)
        self.pos = 0
        self.last: int | None = None

    def fill(self) -> bool:
        """Make sure a batch with unread rows is at hand; ``False`` when the run is done."""
        while self.pos >= self.keys.size:
            batch = next(self.reader, None)
            if batch is None:
                return False
            keys = batch.column(0).to_numpy()
            if keys.size == 0:
                continue
            if first_unsorted(keys) >= 0 or (self.last is not None and keys[0] <= self.last):
                raise CorruptionError(
                    f"{self.what}: the rows of version {self.version} are not sorted by key as its "
                    "log entry records; run `modyn-store verify`"
                )
            self.batch, self.keys, self.pos, self.last = batch, keys, 0, int(keys[-1])
        return True

    def take_upto(self, bound: int) -> tuple[pa.RecordBatch, int]:
        """The unread rows with key <= ``bound`` (this run's part of one merge step)."""
        assert self.batch is not None
        end = int(np.searchsorted(self.keys, bound, side="right"))
        part = self.batch.slice(self.pos, end - self.pos)
        self.pos = end
        return part, self.version


def _readers(
    ds: Any, ranges: dict[int, tuple[int, int]], runs: list[int], after: int | None, batch_size: int
) -> list[tuple[Iterator[pa.RecordBatch], int]]:
    """One key-ordered reader per write version: only fragments whose version range holds it;
    a ``_version`` filter only where a fragment (compacted) holds several versions."""
    frags = ds.get_fragments()
    out = []
    for w in runs:
        mine = [f for f in frags if ranges[f.fragment_id][0] <= w <= ranges[f.fragment_id][1]]
        if not mine:
            continue
        parts = [] if all(ranges[f.fragment_id] == (w, w) for f in mine) else [f"_version = {w}"]
        if after is not None:
            parts.append(f"key > {sql_int(after)}")
        scanner = ds.scanner(
            columns=["key", "value", "training_id"],
            filter=" AND ".join(parts) or None,
            fragments=mine,
            batch_size=batch_size,
            # every run's scanner is open at once, most of them waiting: without these bounds
            # each reads several fragments ahead (4.7 GB for 21 runs over 10^9 rows)
            fragment_readahead=1,
            batch_readahead=RUN_READAHEAD,
            io_buffer_size=RUN_IO_BUFFER,
        )
        out.append((iter(scanner.to_reader()), w))
    return out


def _merge(runs: list[_Run], dead_now: Callable[[], np.ndarray]) -> Iterator[pa.RecordBatch]:
    """The k-way merge: each step takes every run's rows up to the smallest last key of the
    runs' current batches (so at least one batch is used up), keeps the newest row per key and
    drops the keys ``dead_now()`` holds at that step (an erase committed meanwhile included)."""
    active = [r for r in runs if r.fill()]
    while active:
        bound = min(int(r.keys[-1]) for r in active)
        parts = [r.take_upto(bound) for r in active]
        parts = [(b, v) for b, v in parts if b.num_rows]
        active = [r for r in active if r.fill()]
        if len(parts) == 1:
            batch, v = parts[0]
            keys = batch.column(0).to_numpy()
            versions = np.full(keys.size, v, np.int64)
        else:
            batch = pa.Table.from_batches([b for b, _ in parts]).combine_chunks().to_batches()[0]
            keys = batch.column(0).to_numpy()
            versions = np.concatenate([np.full(b.num_rows, v, np.int64) for b, v in parts])
            order = np.lexsort((versions, keys))
            newest = np.ones(order.size, dtype=bool)
            newest[:-1] = keys[order[1:]] != keys[order[:-1]]
            idx = order[newest]
            batch, keys, versions = batch.take(pa.array(idx)), keys[idx], versions[idx]
        dead = dead_now()
        if dead.size:
            keep = ~_isin_sorted(keys, dead)
            if not keep.all():
                batch, versions = batch.filter(pa.array(keep)), versions[keep]
        if batch.num_rows:
            yield pa.RecordBatch.from_arrays(
                [batch.column(0), batch.column(1), batch.column(2), pa.array(versions)], names=OUT_SCHEMA_NAMES
            )


def _coalesce(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``size`` rows (the last one: the rest) from the merge's steps, which
    are smaller (each run reads ``size / runs`` rows at a time: consumers such as a streaming
    top-k pay per batch) or larger (a run reads at least ``_MIN_RUN_BATCH`` rows at a time)."""
    held: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        held.append(batch)
        rows += batch.num_rows
        if rows < size:
            continue
        whole = held[0] if len(held) == 1 else pa.Table.from_batches(held).combine_chunks().to_batches()[0]
        start = 0
        while whole.num_rows - start >= size:  # zero-copy slices
            yield whole.slice(start, size)
            start += size
        held = [whole.slice(start)] if start < whole.num_rows else []
        rows = whole.num_rows - start
    if held:
        yield held[0] if len(held) == 1 else pa.Table.from_batches(held).combine_chunks().to_batches()[0]


def stream_latest(
    store: Store, snap: Snapshot, name: str, runs: list[int], batch_size: int, *, on_unavailable: str = "skip"
) -> Iterator[pa.RecordBatch]:
    """Batches of (key, value, training_id, version): the latest score per live key at the
    snapshot's version, ascending by key. Files that vanish mid-stream (a concurrent
    compaction, erase or vacuum) are read again on a fresh manifest from the last key yielded.
    With ``on_unavailable="error"``, rows a vacuum purged before the files read were opened
    (and not yielded yet) raise :class:`DataUnavailableError` instead of being left out."""
    table = f"scores/{name}"
    run_batch = max(_MIN_RUN_BATCH, batch_size // max(1, len(runs)))
    after: int | None = None
    for attempt in range(READ_ATTEMPTS):
        try:
            ds = store._tables.open(table)
            if on_unavailable == "error":
                # after the open: these files lack what was purged by now
                snap._check_unavailable("error", after=after)
            if ds is None:
                return
            ranges = store._tables.fragment_versions(table, ds)
            readers = _readers(ds, ranges, runs, after, run_batch)
            dead_now = DeadKeys(snap)
            merged = _merge([_Run(r, w, f"score table {name!r}") for r, w in readers], dead_now)
            dead = dead_now()
            for batch in _coalesce(merged, batch_size):
                last = int(batch.column(0)[batch.num_rows - 1].as_py())
                now = dead_now()
                if now is not dead:
                    # an erase committed since the stream began: this batch may hold rows of merge
                    # steps taken before it (one step's rows are sliced into many batches), so
                    # every batch from here on is dropped of the keys dead now
                    batch = batch.filter(pa.array(~_isin_sorted(batch.column(0).to_numpy(), now)))
                if batch.num_rows:
                    yield batch
                after = last
            return
        except READ_ERRORS as exc:
            store._tables.retry_after(table, exc, attempt)


def live_mask(snap: Snapshot, sorted_keys: np.ndarray) -> np.ndarray:
    """Which of the ascending ``sorted_keys`` are live at ``snap``'s version.

    Small stores use the snapshot's (verified, cached) key set. Large ones stream the keys in
    ``[sorted_keys[0], sorted_keys[-1]]`` once, so memory stays one batch plus the answer.
    """
    if sorted_keys.size == 0:
        return np.zeros(0, dtype=bool)
    records = snap._store._read_records()
    live_rows = records[snap.version - 1].live if 0 < snap.version <= len(records) else 0
    if live_rows < CHECK_IN_MEMORY_BELOW:
        return snap.contains(sorted_keys)
    found = np.zeros(sorted_keys.size, dtype=bool)
    lo, hi = int(sorted_keys[0]), int(sorted_keys[-1])
    flt = key_range(lo, hi)
    for batch in snap.to_batches(["key"], flt, batch_size=1 << 20, on_unavailable="skip"):
        b = batch.column(0).to_numpy()
        pos = np.searchsorted(sorted_keys, b)
        np.minimum(pos, sorted_keys.size - 1, out=pos)
        found[pos[sorted_keys[pos] == b]] = True
    found |= _isin_sorted(sorted_keys, snap.unavailable())
    return found
