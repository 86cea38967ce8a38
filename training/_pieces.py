"""Positions of a train set handed out piece by piece: cut into batches, or with a head
skipped, without concatenating the pieces.

>>> import numpy as np
>>> [b.tolist() for b in rebatched([np.arange(3), np.arange(3, 5)], 2, drop_last=False)]
[[0, 1], [2, 3], [4]]
>>> [p.tolist() for p in skipped([np.arange(3), np.arange(3, 5)], 4)]
[[4]]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

__all__ = ["rebatched", "skipped"]


def rebatched(pieces: Iterable[np.ndarray], size: int, drop_last: bool) -> Iterator[np.ndarray]:
    """Consecutive runs of ``size`` elements of the pieces' concatenation (the last one shorter,
    or dropped with ``drop_last``), without concatenating them all."""
    held = np.empty(0, np.int64)
    for piece in pieces:
        run = np.concatenate([held, piece]) if held.size else piece
        full = run.size - run.size % size
        for lo in range(0, full, size):
            yield run[lo : lo + size]
        held = run[full:]
    if held.size and not drop_last:
        yield held


def skipped(pieces: Iterable[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """The pieces' concatenation without its first ``count`` elements, piece by piece."""
    for piece in pieces:
        if count >= piece.size:
            count -= piece.size
            continue
        yield piece[count:]
        count = 0
