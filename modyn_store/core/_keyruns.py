"""Writing the key index's sorted runs in bounded memory.

The runs are every stored key with its stable row id, sorted by key (ties in scan order), in
three little-endian files: ``keys.i64``, ``rowids.u64`` and ``sparse.i64`` (every
``stride``-th key); the caller may also collect a checksum per block of ``stride`` entries
(see :mod:`~modyn_store.core._runcheck`). :func:`write_sorted` takes the scan as a stream of ``(keys, row ids)``
batches:

* batches that arrive in key order (a store whose keys grow with its appends) are written
  through as they come: memory is one batch;
* otherwise the written prefix becomes the first spill run, the rest is sorted in runs of
  ``run_rows`` rows, each written to a spill file, and the runs are merged block by block into
  the final files: memory is one run while sorting, then one block per run.

Reads and writes go through the store's file system (local disk or object store).

Example
-------
>>> import fsspec, numpy as np
>>> fs = fsspec.filesystem("memory")
>>> batches = [(np.array([5, 1]), np.array([0, 1], np.uint64)), (np.array([3]), np.array([2], np.uint64))]
>>> write_sorted(fs, "/runs-doc", iter(batches), stride=2, run_rows=2)
3
>>> np.frombuffer(fs.cat_file("/runs-doc/keys.i64"), "<i8").tolist()
[1, 3, 5]
>>> np.frombuffer(fs.cat_file("/runs-doc/rowids.u64"), "<u8").tolist()
[1, 2, 0]
>>> np.frombuffer(fs.cat_file("/runs-doc/sparse.i64"), "<i8").tolist()
[1, 5]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from modyn_store.core._runcheck import block_sums
from modyn_store.core.errors import CorruptionError

__all__ = ["RUN_ROWS", "write_sorted"]

#: rows sorted in memory at once when the scan is not in key order (16 bytes a row)
RUN_ROWS = 1 << 23
#: rows a spill run contributes to one merge step, at least
_MIN_BLOCK = 1 << 14
_I8, _U8 = np.dtype("<i8"), np.dtype("<u8")


def _raw(a: np.ndarray, dtype: np.dtype) -> memoryview:
    """The bytes of ``a`` as ``dtype`` (no copy when it already is)."""
    return np.ascontiguousarray(a, dtype=dtype).data.cast("B")


class _Writer:
    """Appends sorted blocks to ``keys``/``rowids`` (and ``sparse`` when ``stride`` is set;
    the blocks' checksums into ``sums`` when it is given)."""

    def __init__(self, fs: Any, folder: str, kname: str, rname: str, stride: int | None,
                 sums: list[np.ndarray] | None = None, check_stride: int | None = None) -> None:
        self.paths = (f"{folder}/{kname}", f"{folder}/{rname}")
        self._k = fs.open(self.paths[0], "wb")
        self._r = fs.open(self.paths[1], "wb")
        self._s = fs.open(f"{folder}/sparse.i64", "wb") if stride else None
        self._b = sums if stride else None
        self._carry = np.zeros(1, _U8)  # the sum so far of the block being filled
        self.stride = stride or 0
        self.check = check_stride or self.stride  # entries per checksum block
        self.rows = 0
        self.last: int | None = None

    def write(self, keys: np.ndarray, rowids: np.ndarray) -> None:
        if not keys.size:
            return
        self._k.write(_raw(keys, _I8))
        self._r.write(_raw(rowids, _U8))
        if self._s is not None:
            self._s.write(_raw(keys[(-self.rows) % self.stride::self.stride], _I8))
        if self._b is not None:
            self._sums(keys, rowids)
        self.rows += int(keys.size)
        self.last = int(keys[-1])

    def _sums(self, keys: np.ndarray, rowids: np.ndarray) -> None:
        """Write the checksums of the blocks this write completes; keep the partial one's."""
        assert self._b is not None
        off = self.rows % self.check
        head = min(int(keys.size), (self.check - off) % self.check)
        sums = np.concatenate([
            block_sums(keys[:head], rowids[:head], self.rows, head) if head else np.empty(0, _U8),
            block_sums(keys[head:], rowids[head:], self.rows + head, self.check),
        ])
        if off:
            sums[:1] += self._carry
        if (self.rows + int(keys.size)) % self.check:
            self._carry = sums[-1:].copy()
            sums = sums[:-1]
        else:
            self._carry = np.zeros(1, _U8)
        self._b.append(sums)

    def close(self) -> None:
        if self._b is not None and self.rows % self.check:
            self._b.append(self._carry)
        for fh in (self._k, self._r, self._s):
            if fh is not None:
                fh.close()


class _RunReader:
    """Sequential blocks of one spill run."""

    def __init__(self, fs: Any, paths: tuple[str, str], rows: int, block: int) -> None:
        self._k = fs.open(paths[0], "rb")
        self._r = fs.open(paths[1], "rb")
        self.left, self.block = rows, block
        self.keys = np.empty(0, _I8)
        self.rowids = np.empty(0, _U8)

    def fill(self) -> None:
        if self.keys.size or not self.left:
            return
        m = min(self.block, self.left)
        kb, rb = self._k.read(8 * m), self._r.read(8 * m)
        if len(kb) != 8 * m or len(rb) != 8 * m:
            raise CorruptionError(f"a key index spill run ended early ({len(kb)} of {8 * m} bytes)")
        self.keys, self.rowids = np.frombuffer(kb, _I8), np.frombuffer(rb, _U8)
        self.left -= m

    def take_upto(self, bound: int) -> tuple[np.ndarray, np.ndarray]:
        j = int(np.searchsorted(self.keys, bound, side="right"))
        out = self.keys[:j], self.rowids[:j]
        self.keys, self.rowids = self.keys[j:], self.rowids[j:]
        return out

    def close(self) -> None:
        self._k.close()
        self._r.close()


def _in_order(keys: np.ndarray, last: int | None) -> bool:
    if not keys.size:
        return True
    if last is not None and int(keys[0]) < last:
        return False
    return bool((keys[1:] >= keys[:-1]).all())


def write_sorted(fs: Any, folder: str, batches: Iterator[tuple[np.ndarray, np.ndarray]], *, stride: int,
                 run_rows: int | None = None, sums: list[np.ndarray] | None = None,
                 check_stride: int | None = None) -> int:
    """Write the sorted runs of the ``(keys, row ids)`` stream into ``folder``; returns the rows.

    Equal keys keep their order in the stream (as a stable sort of the whole stream would).
    ``run_rows`` defaults to :data:`RUN_ROWS`. ``sums``, if given, receives the checksums of
    the final files' blocks of ``check_stride`` entries (default ``stride``; arrays to
    concatenate, see :func:`~modyn_store.core._runcheck.block_sums`).
    """
    run_rows = RUN_ROWS if run_rows is None else int(run_rows)
    first_sums: list[np.ndarray] | None = None if sums is None else []
    out = _Writer(fs, folder, "keys.i64", "rowids.u64", stride, first_sums, check_stride)
    batches = iter(batches)
    pending: tuple[np.ndarray, np.ndarray] | None = None
    try:
        for keys, rowids in batches:
            if not _in_order(keys, out.last):
                pending = (keys, rowids)
                break
            out.write(keys, rowids)
    finally:
        out.close()
    if pending is None:
        if sums is not None and first_sums is not None:
            sums.extend(first_sums)
        return out.rows
    # not in key order: the prefix written so far is the first spill run
    runs: list[tuple[tuple[str, str], int]] = []
    if out.rows:
        first = (f"{folder}/spill-0.keys", f"{folder}/spill-0.rowids")
        fs.mv(out.paths[0], first[0])
        fs.mv(out.paths[1], first[1])
        runs.append((first, out.rows))
    fs.rm(f"{folder}/sparse.i64")
    buf_k: list[np.ndarray] = [pending[0]]
    buf_r: list[np.ndarray] = [pending[1]]
    held = int(pending[0].size)

    def spill() -> None:
        nonlocal held
        if not held:
            return
        k, r = np.concatenate(buf_k), np.concatenate(buf_r)
        buf_k.clear()
        buf_r.clear()
        held = 0
        order = np.argsort(k, kind="stable")
        w = _Writer(fs, folder, f"spill-{len(runs)}.keys", f"spill-{len(runs)}.rowids", None)
        try:
            w.write(k[order], r[order])
        finally:
            w.close()
        runs.append((w.paths, w.rows))

    for keys, rowids in batches:
        buf_k.append(keys)
        buf_r.append(rowids)
        held += int(keys.size)
        if held >= run_rows:
            spill()
    spill()
    rows = _merge(fs, folder, runs, stride, block=max(_MIN_BLOCK, run_rows // max(len(runs), 1)), sums=sums,
                  check_stride=check_stride)
    for paths, _ in runs:
        for p in paths:
            fs.rm(p)
    return rows


def _merge(fs: Any, folder: str, runs: list[tuple[tuple[str, str], int]], stride: int, *, block: int,
           sums: list[np.ndarray] | None = None, check_stride: int | None = None) -> int:
    """Merge sorted spill runs (in stream order) into the final files, one block per run in memory."""
    readers = [_RunReader(fs, paths, rows, block) for paths, rows in runs]
    out = _Writer(fs, folder, "keys.i64", "rowids.u64", stride, sums, check_stride)
    try:
        while True:
            for rd in readers:
                rd.fill()
            active = [rd for rd in readers if rd.keys.size]
            if not active:
                break
            # every key up to the smallest block end is in memory: emit them, runs in stream order
            bound = min(int(rd.keys[-1]) for rd in active)
            parts = [rd.take_upto(bound) for rd in active]
            k = np.concatenate([p[0] for p in parts])
            r = np.concatenate([p[1] for p in parts])
            order = np.argsort(k, kind="stable")
            out.write(k[order], r[order])
    finally:
        out.close()
        for rd in readers:
            rd.close()
    return out.rows
