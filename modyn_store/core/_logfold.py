"""Values folded over the first records of a version log, kept per process.

A read checks its keys against what the log predicts: sums over every record up to its
version (the appends' and deletes' checksums, the runs the appends recorded). Folding them from
the first record on every read costs a few microseconds a record, milliseconds for a log of
thousands of small versions. Records are immutable and a log hands out the same objects while
it holds them, so a :class:`LogFold` keeps its last few answers by the identity of the first and
last record folded: another read of the same version folds no record, a read of the next
version one (the answer for the version before, extended).

>>> from types import SimpleNamespace as R
>>> count = LogFold(lambda before, records: (before or 0) + len(records))
>>> log = [R(version=v) for v in (1, 2, 3)]
>>> count(log, 2), count(log, 3), count(log[:1] + [R(version=2)], 2)
(2, 3, 2)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["LogFold"]

S = TypeVar("S")


class LogFold(Generic[S]):
    """``fold(before, records)`` over the first ``version`` records of a log, kept for the last
    ``size`` logs read: ``before`` is the value of the records before ``records`` (``None`` for
    none); the fold must not change it (the value is kept and shared)."""

    def __init__(self, fold: Callable[[S | None, Sequence[Any]], S], size: int = 8) -> None:
        self._fold = fold
        self._size = size
        # by the id of the last record folded: (first record, last record, value); holding the
        # last record keeps its id its own
        self._memo: dict[int, tuple[Any, Any, S]] = {}
        self._lock = threading.Lock()

    def __call__(self, records: Sequence[Any], version: int) -> S | None:
        """The value of the first ``version`` records (``None`` for none)."""
        version = min(int(version), len(records))
        if version <= 0:
            return None
        first, last = records[0], records[version - 1]
        hit = self._memo.get(id(last))
        if hit is not None and hit[0] is first and hit[1] is last:
            return hit[2]
        prev = self._memo.get(id(records[version - 2])) if version > 1 else None
        if prev is not None and prev[0] is first and prev[1] is records[version - 2]:
            value = self._fold(prev[2], records[version - 1 : version])
        else:
            value = self._fold(None, records[:version])
        with self._lock:
            if len(self._memo) >= self._size:
                self._memo.pop(next(iter(self._memo)))
            self._memo[id(last)] = (first, last, value)
        return value

    def clear(self) -> None:
        """Forget every kept value."""
        with self._lock:
            self._memo.clear()
