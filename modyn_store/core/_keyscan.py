"""The live keys of a version, gathered from a key scan batch by batch.

Each batch of scanned keys is handled once, while it is still in the CPU cache: its dead keys
are found by searching them in the (sorted) batch and dropped by position, the rest is copied
into one preallocated output array, and the checksum of what was copied is added to a running
:class:`~modyn_store.core.integrity.Checksum`. Nothing passes over the whole key array after
the scan (no concatenation, no boolean mask over every key, no second checksum pass) unless the
keys did not arrive sorted, in which case they are sorted once at the end and the dead keys of
unsorted batches are dropped then (searched in the sorted keys: searching each key of an
unsorted batch in the dead set cost ~50 ns a key, 5x the rest of such a read at 10^6 keys).

A batch that is strictly increasing and spans exactly its length (auto-assigned or time-ordered
keys) holds exactly the keys ``first .. last``: its dead keys are at their offsets from the
first (no search), and its checksum is :func:`~modyn_store.core.integrity.run_checksum` of the
two ends (kept by the process), or the checksum an append recorded for the run the batches
cover (:mod:`~modyn_store.core._runclaims`, in :meth:`LiveKeys.finish`), minus that of the dead
keys dropped, so the six passes of the mix run over the dead keys instead of the batch. The one
pass that establishes the run reads every key, so a changed key still changes the answer or
the checksum.

Example
-------
>>> import numpy as np
>>> from modyn_store.core.integrity import key_checksum
>>> live = LiveKeys(dead=np.array([2, 5]), upper=6)
>>> live.add(np.array([1, 2, 3])); live.add(np.array([4, 5, 6]))
>>> keys, checksum = live.finish()
>>> keys.tolist(), checksum == key_checksum(np.array([1, 3, 4, 6]))
([1, 3, 4, 6], True)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine._search import (
    PROBE, HashedKeys, first_unsorted, hit_positions, isin_sorted_numpy, sorted_unique, unsorted_hits,
)
from modyn_store.core._runclaims import RunClaims, runs_checksum
from modyn_store.core.integrity import Checksum

__all__ = ["SCAN_BATCH", "LiveKeys", "SeenKeys", "SeenSet", "arrow_mask", "dead_positions", "filter_batch", "increasing"]

#: rows per batch the key scans ask Lance for: small enough that a batch of keys stays in the
#: CPU cache while it is searched, copied and mixed, and that Lance reuses its buffers instead of
#: faulting in fresh pages for every batch (1M-row batches make the same scan 2-3x slower)
SCAN_BATCH = 1 << 16
#: the most keys a stream records one by one (read out of key order) to resume from: 128 MB
SEEN_CAP = 1 << 24


def increasing(keys: np.ndarray) -> bool:
    """Whether ``keys`` is strictly increasing (sorted and distinct): one comparison pass (none
    past the first few keys of a batch in no order)."""
    if keys.size > PROBE and bool((keys[1 : PROBE + 1] <= keys[:PROBE]).any()):
        return False
    return keys.size < 2 or not bool((keys[1:] <= keys[:-1]).any())


def dead_positions(
    keys: np.ndarray, dead: np.ndarray, *, ordered: bool | None = None, hashed: HashedKeys | None = None
) -> np.ndarray:
    """Ascending positions of ``keys`` (one scanned batch) that occur in the sorted, distinct
    ``dead``: searched in the batch when it is sorted (the common case), else each key is
    looked up, in ``hashed`` if it holds this ``dead`` (a stream builds it once, not once a
    batch). ``ordered``: whether ``keys`` is known to be sorted (``None``: look)."""
    if not dead.size or not keys.size:
        return np.empty(0, np.intp)
    if ordered if ordered is not None else first_unsorted(keys) < 0:
        return hit_positions(keys, dead)
    if hashed is not None and hashed.keys is dead:
        return hashed.hits(keys)
    return unsorted_hits(keys, dead)


def arrow_mask(keep: np.ndarray) -> pa.BooleanArray:
    """``keep`` as an Arrow boolean array, bit-packed by NumPy (10x faster than ``pa.array``)."""
    bits = np.packbits(keep, bitorder="little")
    return pa.BooleanArray.from_buffers(pa.bool_(), keep.size, [None, pa.py_buffer(bits)])


def filter_batch(batch: pa.RecordBatch, keep: np.ndarray) -> pa.RecordBatch:
    """The rows of ``batch`` where ``keep`` is true, filtered column by column (Arrow's
    ``RecordBatch.filter`` costs about twice as much CPU for the same result)."""
    mask = arrow_mask(keep)
    return pa.RecordBatch.from_arrays([c.filter(mask) for c in batch.columns], schema=batch.schema)


def _span(dead: np.ndarray, first: int, last: int) -> tuple[int, int]:
    """The slice of the sorted ``dead`` keys that lie in ``[first, last]``."""
    return int(np.searchsorted(dead, first, side="left")), int(np.searchsorted(dead, last, side="right"))


def _strict_hits(keys: np.ndarray, dead: np.ndarray, first: int, last: int) -> np.ndarray:
    """Ascending positions of the strictly increasing ``keys`` (from ``first`` to ``last``)
    that occur in the sorted, distinct ``dead``: one search per dead key in range."""
    lo, hi = _span(dead, first, last)
    b = dead[lo:hi]
    if not b.size:
        return np.empty(0, np.intp)
    at = np.searchsorted(keys, b)  # (b lies within [first, last]: every position is in keys)
    return at[keys[at] == b]  # type: ignore[no-any-return]


class LiveKeys:
    """Collects the keys of ``add``-ed batches minus the sorted, distinct ``dead`` keys.

    ``upper`` bounds the number of keys added (the physical rows of the fragments scanned); the
    output is allocated once at that size (pages never written are never touched) and grows
    only if the bound was wrong.
    """

    def __init__(self, dead: np.ndarray, upper: int) -> None:
        self._dead = dead
        self._out = np.empty(max(int(upper), 0), np.int64)
        self._n = 0
        self._keep = np.empty(0, bool)
        self._last: int | None = None
        self.ordered = True
        self.checksum = Checksum()
        self._gone: list[tuple[int, int]] = []  # ranges of ``dead`` dropped from runs
        self._deferred = False  # unsorted batches were added with their dead keys
        self.runs: list[tuple[int, int]] = []  # (first, length) of each batch taken as a run
        #: the pieces of the runs whose checksum :meth:`finish` took from ``run_checksum``
        self.mixed: list[tuple[int, int]] = []

    def _room(self, m: int) -> np.ndarray:
        if self._n + m > self._out.size:
            grown = np.empty(max(2 * self._out.size, self._n + m), np.int64)
            grown[: self._n] = self._out[: self._n]
            self._out = grown
        return self._out[self._n : self._n + m]

    def add(self, keys: np.ndarray) -> None:
        """Add one batch of scanned keys (int64, any order)."""
        m = keys.size
        if m == 0:
            return
        scanned, first, last = keys, int(keys[0]), int(keys[-1])
        strict = increasing(keys)
        batch_sorted = strict or first_unsorted(keys) < 0
        if not batch_sorted or (self._last is not None and first < self._last):
            self.ordered = False
        self._last = last
        # strictly increasing and spanning exactly its length: the batch is the run of keys
        # first .. last (auto-assigned or time-ordered keys), whose checksum is a function of
        # the two ends and whose dead keys sit at their offsets from the first
        run = strict and last - first == m - 1
        if not self._dead.size:
            pos = np.empty(0, np.intp)
        elif run:
            lo, hi = _span(self._dead, first, last)
            pos = self._dead[lo:hi] - first
            if hi > lo:
                self._dropped(lo, hi)
        elif strict:
            pos = _strict_hits(keys, self._dead, first, last)
        elif batch_sorted:
            pos = hit_positions(keys, self._dead)
        else:
            # searching every key of an unsorted batch in the dead set costs ~50 ns a key: its
            # dead keys are dropped after the one sort in finish(), by searching the dead keys
            self._deferred = True
            pos = np.empty(0, np.intp)
        if pos.size:
            if self._keep.size < m:
                self._keep = np.empty(m, bool)
            keep = self._keep[:m]
            keep.fill(True)
            keep[pos] = False
            keys = keys[keep]  # (boolean indexing: many times faster than np.compress(out=))
        dst = self._room(keys.size)
        np.copyto(dst, keys)
        if run:
            self.runs.append((first, m))  # (its checksum is added in finish())
        else:
            self.checksum.add(dst)
        self._n += dst.size

    def _dropped(self, lo: int, hi: int) -> None:
        """Record that the dead keys ``dead[lo:hi]`` were dropped from a run whose whole
        checksum was added: their checksum is taken out in :meth:`finish`, adjacent ranges
        (consecutive batches) merged so that it takes a few passes, not one per batch."""
        if self._gone and self._gone[-1][1] == lo:
            self._gone[-1] = (self._gone[-1][0], hi)
        else:
            self._gone.append((lo, hi))

    def finish(self, extra: np.ndarray | None = None, claims: RunClaims | None = None) -> tuple[np.ndarray, int]:
        """The collected keys plus ``extra`` (keys with no stored row), sorted ascending, and
        their checksum (of exactly the keys returned). The runs' checksum is taken from
        ``claims`` (the appends' records) where the runs cover one (see
        :mod:`~modyn_store.core._runclaims`); :attr:`mixed` then lists the pieces it was not."""
        total, self.mixed = runs_checksum(self.runs, claims)
        self.checksum.add_value(total)
        for lo, hi in self._gone:
            self.checksum.remove(self._dead[lo:hi])
        self._gone = []
        if self._deferred:
            self._deferred = False
            keys = self._out[: self._n]
            keys.sort()
            self.ordered = True
            pos = hit_positions(keys, self._dead)
            if pos.size:
                self.checksum.remove(keys[pos])
                keep = np.ones(keys.size, bool)
                keep[pos] = False
                self._out = keys[keep]  # (not copied back into the larger array: one pass less)
                self._n = self._out.size
        if extra is not None and extra.size:
            self._out = np.concatenate([self._out[: self._n], np.asarray(extra, dtype=np.int64)])
            self.checksum.add(self._out[self._n :])
            self._n = self._out.size
            self.ordered = False
        keys = self._out[: self._n]
        if not self.ordered and first_unsorted(keys) >= 0:
            keys.sort()
        return keys, self.checksum.value


class SeenKeys:
    """The keys a stream has read, so that a stream resumed on a fresh manifest skips them.

    Memory stays bounded where it can: a sorted batch whose keys form few runs of consecutive
    integers (auto-assigned or time-ordered keys; a stream records every key it read, dead ones
    included, so deletions do not split the runs) is kept as intervals, merged with the
    previous interval when they touch; other batches are copied key by key, up to ``cap``
    keys. Past that the set is marked :attr:`overflowed` and a stream that then loses its
    files raises instead of resuming.

    >>> seen = SeenKeys(cap=4)
    >>> seen.add(np.arange(0, 1000)); seen.add(np.arange(1000, 5000)); seen.add(np.array([9000, 7000]))
    >>> done = seen.frozen()
    >>> done.positions(np.array([4999, 5000, 7000, 12])).tolist(), seen.intervals, seen.overflowed
    ([0, 2, 3], 1, False)
    """

    def __init__(self, cap: int | None = None) -> None:
        self._cap = SEEN_CAP if cap is None else cap
        self._starts: list[np.ndarray] = []
        self._ends: list[np.ndarray] = []
        self._last_end: int | None = None
        self._explicit: list[np.ndarray] = []
        self._explicit_n = 0
        self.overflowed = False

    @property
    def intervals(self) -> int:
        """The number of intervals held (after merging touching ones)."""
        return sum(a.size for a in self._starts)

    def add(self, keys: np.ndarray, *, ordered: bool | None = None, own_buffer: bool = False) -> None:
        """Record the keys of one batch (copied: no view keeps the batch's buffer alive).

        ``ordered``: whether ``keys`` is known to be strictly increasing (``None``: look).
        A strictly increasing batch that spans exactly its size is one run of consecutive
        keys, recorded without a pass over it. ``own_buffer``: ``keys`` is a read-only view of a
        buffer that holds little else (an Arrow key column's own values, at most about twice the
        keys' bytes), so keeping the view keeps about what a copy would, and the copy is skipped."""
        if keys.size == 0:
            return
        if ordered is None:
            ordered = increasing(keys)
        if ordered and int(keys[-1]) - int(keys[0]) == keys.size - 1:
            lo, hi = int(keys[0]), int(keys[-1])
            if self._last_end is not None and lo == self._last_end + 1:
                self._ends[-1][-1] = hi  # touches the previous interval: extend it
            else:
                self._starts.append(np.array([lo], np.int64))
                self._ends.append(np.array([hi], np.int64))
            self._last_end = hi
            return
        if ordered:
            breaks = np.flatnonzero(keys[1:] - keys[:-1] != 1)
            if breaks.size + 1 <= max(1, keys.size // 4):
                starts = np.concatenate([keys[:1], keys[breaks + 1]]).astype(np.int64)
                ends = np.concatenate([keys[breaks], keys[-1:]]).astype(np.int64)
                if self._last_end is not None and int(starts[0]) == self._last_end + 1:
                    self._ends[-1][-1] = ends[0]  # touches the previous interval: extend it
                    starts, ends = starts[1:], ends[1:]
                if starts.size:
                    self._starts.append(starts)
                    self._ends.append(ends)
                self._last_end = int(keys[-1])
                return
        self._last_end = None
        if self.overflowed:
            return
        if self._explicit_n + keys.size > self._cap:
            self.overflowed = True
            self._explicit, self._explicit_n = [], 0
            return
        view = own_buffer and not keys.flags.writeable and keys.dtype == np.int64
        self._explicit.append(keys if view else np.array(keys, dtype=np.int64, copy=True))
        self._explicit_n += keys.size

    def frozen(self) -> SeenSet:
        """The keys recorded so far, ready for membership tests."""
        if self._starts:
            starts, ends = np.concatenate(self._starts), np.concatenate(self._ends)
            order = np.argsort(starts, kind="stable")
            # a resumed stream records keys again, so intervals may overlap: with the running
            # maximum of the ends, a key >= starts[i] is in the union iff it is <= ends[i]
            starts, ends = starts[order], np.maximum.accumulate(ends[order])
        else:
            starts = ends = np.empty(0, np.int64)
        explicit = sorted_unique(np.concatenate(self._explicit)) if self._explicit else np.empty(0, np.int64)
        return SeenSet(starts, ends, explicit)


class SeenSet:
    """Disjoint key intervals plus single keys (see :class:`SeenKeys`)."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray, keys: np.ndarray) -> None:
        self.starts, self.ends, self.keys = starts, ends, keys

    def positions(self, batch: np.ndarray) -> np.ndarray:
        """Ascending positions of ``batch`` whose keys are in the set."""
        hit = np.zeros(batch.size, dtype=bool)
        if self.starts.size and batch.size:
            idx = np.searchsorted(self.starts, batch, side="right") - 1
            ok = idx >= 0
            hit[ok] = batch[ok] <= self.ends[idx[ok]]
        if self.keys.size and batch.size:
            hit |= isin_sorted_numpy(batch, self.keys)
        return np.flatnonzero(hit)

