"""The best ``k`` rows of a stream of ranked chunk candidates, merged lazily.

Streaming top-k and the streaming samplers rank each chunk's rows, keep those at or above the
floor of the rows kept so far, and must merge them with the kept rows. A merge re-selects every
kept row, so merging after every chunk costs O(k) per chunk (most of the time when ``k`` is near
the chunk size). :class:`LazyBest` lets candidates wait until they outnumber the kept rows; the
floor from the kept rows stays a valid (looser) bound meanwhile.

Example
-------
>>> import numpy as np
>>> best = LazyBest(2)
>>> best.push(np.array([5, 9]), np.array([0, 1]), np.array([0.5, 0.9]))
>>> best.push(np.array([7]), np.array([2]), np.array([0.7]))
>>> best.merge(); best.key.tolist(), best.val.tolist()
([1, 2], [0.9, 0.7])
"""

from __future__ import annotations

import numpy as np

from engine._ranked import floor_of, merge_best

__all__ = ["LazyBest"]

_EMPTY_I64 = np.empty(0, dtype=np.int64)


class LazyBest:
    """The best ``k`` (rank desc, key asc) rows pushed so far, each with an optional value."""

    #: fewer pending candidates are never worth a merge
    MERGE_MIN = 1 << 16

    def __init__(self, k: int) -> None:
        self.k = k
        self.rank = _EMPTY_I64
        self.key = _EMPTY_I64
        self.val: np.ndarray | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._n_pending = 0

    def floor(self) -> np.ndarray | None:
        """The floor for the next chunk (see :func:`engine._ranked.floor_of`)."""
        return floor_of(self.rank, self.k)

    def push(self, rank: np.ndarray, key: np.ndarray, val: np.ndarray | None = None) -> None:
        """Add one chunk's candidates; merged once they outnumber the kept rows."""
        self._pending.append((rank, key, val))
        self._n_pending += int(rank.shape[0])
        if self._n_pending > max(self.rank.shape[0], self.k, self.MERGE_MIN):
            self.merge()

    def merge(self) -> None:
        """Fold the pending candidates into the kept rows."""
        if not self._pending:
            return
        ranks = np.concatenate([self.rank, *(p[0] for p in self._pending)])
        keys = np.concatenate([self.key, *(p[1] for p in self._pending)])
        vals = None
        first = self._pending[0][2]
        if first is not None:
            old = self.val.astype(first.dtype, copy=False) if self.val is not None else np.empty(0, first.dtype)
            vals = np.concatenate([old, *(p[2] for p in self._pending if p[2] is not None)])
        self._pending, self._n_pending = [], 0
        keep = merge_best(ranks, keys, self.k)
        self.rank, self.key = ranks[keep], keys[keep]
        self.val = None if vals is None else vals[keep]
