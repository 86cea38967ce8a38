"""Checksums of the key index's sorted runs: a changed entry is an error, never an answer.

The runs (:mod:`~modyn_store.core._keyruns`) are cut into blocks of ``STRIDE`` entries. Each
block has a 64-bit sum over its entries of ``mix(key, row id, position)`` in ``blocks.u64``,
and the pointer ``_meta/keyindex.json`` holds a BLAKE2 digest of ``blocks.u64`` and of
``sparse.i64``. ``mix`` is a bijection of each of its inputs (the others fixed), so any single
changed key or row id changes its block's sum; two entries swapped change it too (positions
are mixed in).

A probe (see :func:`modyn_store.core.keyindex._probe`) checks the blocks it read its answer
from: for a binary search, the two entries around the insertion point decide the answer, so
the blocks holding them are checked (once per process on a local store, on every read of an
object store, where the blocks are fetched anyway). An answer therefore never rests on a
changed entry: it raises :class:`CorruptionError` instead. ``verify`` checks every block.

Example
-------
>>> import numpy as np
>>> k, r = np.arange(5, dtype=np.int64), np.arange(5, dtype=np.uint64)
>>> s = block_sums(k, r, 0, 2)
>>> k[3] = 7
>>> (block_sums(k, r, 0, 2) != s).tolist()
[False, True, False]
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from modyn_store.core.errors import CorruptionError

__all__ = ["BlockCheck", "block_sums", "digest", "mix"]

_C1, _C2, _C3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)
_C4 = np.uint64(0xBF58476D1CE4E5B9)
_S1, _S2 = np.uint64(31), np.uint64(29)
#: blocks checked at once (bounds the memory of a check to about 40 MB)
_CHUNK_BLOCKS = 1 << 12


def mix(keys: np.ndarray, rowids: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """One 64-bit value per entry; a bijection of each argument when the others are fixed."""
    x = np.ascontiguousarray(keys, dtype=np.int64).view(np.uint64) * _C1
    x += np.asarray(rowids, dtype=np.uint64) * _C2
    x += (np.asarray(positions, dtype=np.uint64) + np.uint64(1)) * _C3
    x ^= x >> _S1
    x *= _C4
    x ^= x >> _S2
    return x


def block_sums(keys: np.ndarray, rowids: np.ndarray, start: int, stride: int) -> np.ndarray:
    """Per-block sums of entries ``start, start+1 ...`` (``start`` must begin a block; the
    last block may be partial)."""
    n = int(keys.size)
    if n == 0:
        return np.empty(0, np.uint64)
    m = mix(keys, rowids, np.arange(start, start + n, dtype=np.uint64))
    return np.add.reduceat(m, np.arange(0, n, stride), dtype=np.uint64)


def digest(data: bytes) -> str:
    """The digest the pointer records for a small file of the runs."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class BlockCheck:
    """The block sums of one build, and which blocks this process found intact."""

    def __init__(self, sums: np.ndarray, rows: int, stride: int, where: str) -> None:
        self.sums, self.rows, self.stride, self.where = sums, rows, stride, where
        self.ok = np.zeros(sums.size, bool)
        self._lock = threading.Lock()

    def blocks_around(self, pos: np.ndarray) -> np.ndarray:
        """The blocks of the entries at ``pos - 1`` and ``pos`` (insertion points of a search)."""
        last = self.rows - 1
        both = np.concatenate([np.clip(pos - 1, 0, last), np.clip(pos, 0, last)])
        return np.unique(both // self.stride)

    def check_mapped(self, keys: np.ndarray, rowids: np.ndarray, blocks: np.ndarray) -> None:
        """Check ``blocks`` of the whole runs ``keys``/``rowids`` (mapped files), skipping those
        found intact before."""
        todo = blocks[~self.ok[blocks]]
        s, n = self.stride, self.rows
        for at in range(0, todo.size, _CHUNK_BLOCKS):
            b = todo[at : at + _CHUNK_BLOCKS]
            idx = (b[:, None] * s + np.arange(s)[None, :]).astype(np.int64)
            inside = idx < n
            safe = np.where(inside, idx, 0)
            m = mix(np.asarray(keys[safe]), np.asarray(rowids[safe]), safe.astype(np.uint64))
            m[~inside] = 0
            self._compare(b, m.sum(axis=1, dtype=np.uint64))
        with self._lock:
            self.ok[todo] = True

    def check_read(self, keys: np.ndarray, rowids: np.ndarray, blocks: np.ndarray, read_stride: int) -> None:
        """Check the entries of ``blocks`` of ``read_stride`` entries (sorted, distinct; a
        multiple of this check's stride) read one after another."""
        r = read_stride
        for_block = np.minimum((blocks + 1) * r, self.rows) - blocks * r
        if keys.size != rowids.size or keys.size != int(for_block.sum()):
            raise CorruptionError(f"the key index {self.where} ended early ({keys.size} entries read); {_ADVICE}")
        if not keys.size:
            return
        starts = np.cumsum(for_block) - for_block  # where each read block begins in ``keys``
        pos = np.arange(keys.size) - np.repeat(starts - blocks * r, for_block)  # entry positions
        sub = pos // self.stride  # the checksum block of each entry (runs of equal values)
        edges = np.flatnonzero(np.concatenate(([True], sub[1:] != sub[:-1])))
        got = np.add.reduceat(mix(keys, rowids, pos.astype(np.uint64)), edges, dtype=np.uint64)
        self._compare(sub[edges], got)

    def check_all(self, keys: np.ndarray, rowids: np.ndarray) -> None:
        """Check every block (``verify``)."""
        self.check_mapped(keys, rowids, np.arange(self.sums.size))

    def _compare(self, blocks: np.ndarray, got: np.ndarray) -> None:
        bad = blocks[got != self.sums[blocks]]
        if bad.size:
            first = int(bad[0]) * self.stride
            raise CorruptionError(
                f"the key index {self.where} is damaged: entries {first}..{first + self.stride - 1} of keys.i64/rowids.u64 "
                f"(and {bad.size - 1} more blocks) differ from their checksums; {_ADVICE}"
            )


_ADVICE = (
    "remove _meta/keyindex.json (point reads then scan the key column) and run "
    "`Store.index_keys()` to build it again; `modyn-store verify` reports the rest"
)
