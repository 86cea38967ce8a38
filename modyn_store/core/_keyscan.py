"""The live keys of a version, gathered from a key scan batch by batch.

Each batch of scanned keys is handled once, while it is still in the CPU cache: its dead keys
are found by searching them in the (sorted) batch and dropped by position, the rest is copied
into one preallocated output array, and the checksum of what was copied is added to a running
:class:`~modyn_store.core.integrity.Checksum`. Nothing passes over the whole key array after
the scan (no concatenation, no boolean mask over every key, no second checksum pass) unless the
keys did not arrive sorted, in which case they are sorted once at the end.

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

from engine._search import first_unsorted, hit_positions, isin_sorted_numpy
from modyn_store.core.integrity import Checksum

__all__ = ["SCAN_BATCH", "LiveKeys", "SeenKeys", "arrow_mask", "dead_positions"]

#: rows per batch the key scans ask Lance for: small enough that a batch of keys stays in the
#: CPU cache while it is searched, copied and mixed, and that Lance reuses its buffers instead of
#: faulting in fresh pages for every batch (1M-row batches make the same scan 2-3x slower)
SCAN_BATCH = 1 << 16


def dead_positions(keys: np.ndarray, dead: np.ndarray) -> np.ndarray:
    """Ascending positions of ``keys`` (one scanned batch) that occur in the sorted, distinct
    ``dead``: searched in the batch when it is sorted (the common case), else by a mask."""
    if not dead.size or not keys.size:
        return np.empty(0, np.intp)
    if first_unsorted(keys) < 0:
        return hit_positions(keys, dead)
    return np.flatnonzero(isin_sorted_numpy(keys, dead))


def arrow_mask(keep: np.ndarray) -> pa.BooleanArray:
    """``keep`` as an Arrow boolean array, bit-packed by NumPy (10x faster than ``pa.array``)."""
    bits = np.packbits(keep, bitorder="little")
    return pa.BooleanArray.from_buffers(pa.bool_(), keep.size, [None, pa.py_buffer(bits)])


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
        batch_sorted = first_unsorted(keys) < 0
        if not batch_sorted or (self._last is not None and int(keys[0]) < self._last):
            self.ordered = False
        self._last = int(keys[-1])
        if not self._dead.size:
            pos = np.empty(0, np.intp)
        elif batch_sorted:
            pos = hit_positions(keys, self._dead)
        else:
            pos = np.flatnonzero(isin_sorted_numpy(keys, self._dead))
        if pos.size:
            if self._keep.size < m:
                self._keep = np.empty(m, bool)
            keep = self._keep[:m]
            keep.fill(True)
            keep[pos] = False
            keys = keys[keep]  # (boolean indexing: many times faster than np.compress(out=))
        dst = self._room(keys.size)
        np.copyto(dst, keys)
        self.checksum.add(dst)
        self._n += dst.size

    def finish(self, extra: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """The collected keys plus ``extra`` (keys with no stored row), sorted ascending, and
        their checksum (of exactly the keys returned)."""
        if extra is not None and extra.size:
            dst = self._room(extra.size)
            np.copyto(dst, extra)
            self.checksum.add(dst)
            self._n += extra.size
            self.ordered = False
        keys = self._out[: self._n]
        if not self.ordered and first_unsorted(keys) >= 0:
            keys.sort()
        return keys, self.checksum.value


class SeenKeys:
    """The keys a stream has yielded (so that a stream resumed on a fresh manifest skips them),
    copied into chunks of ``chunk`` keys.

    Copies, not views of the scanned batches: a view keeps its batch's Arrow buffer alive, so
    the scanner could never reuse it and every later batch faulted in fresh pages (at 10^7 rows
    that cost more than the scan itself).

    >>> seen = SeenKeys(chunk=2)
    >>> seen.add(np.array([5, 1, 3])); seen.add(np.array([1]))
    >>> seen.sorted_unique().tolist()
    [1, 3, 5]
    """

    def __init__(self, chunk: int = 1 << 20) -> None:
        self._chunk = chunk
        self._chunks: list[np.ndarray] = []
        self._fill = chunk

    def add(self, keys: np.ndarray) -> None:
        i = 0
        while i < keys.size:
            if self._fill == self._chunk:
                self._chunks.append(np.empty(self._chunk, np.int64))
                self._fill = 0
            n = min(self._chunk - self._fill, keys.size - i)
            self._chunks[-1][self._fill : self._fill + n] = keys[i : i + n]
            self._fill += n
            i += n

    def sorted_unique(self) -> np.ndarray:
        if not self._chunks:
            return np.empty(0, np.int64)
        return np.unique(np.concatenate([*self._chunks[:-1], self._chunks[-1][: self._fill]]))
