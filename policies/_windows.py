"""A buffer of the most recent rows, bounded by a row count or an event-time span.

Event-time spans are exact for integer event times (int64 nanoseconds for datetimes): a span
edge is compared as an integer, never through float64, whose spacing is 256 ns for present-day
nanosecond times. A span ``s`` (a float, possibly not integral) holds the rows with
``newest - ts < s``; for integer times that is ``newest - ts < ceil(s)``, the same real-number
comparison (e.g. ``s = 1.5`` keeps the rows 0 and 1 before the newest). Float event times are
compared as float64.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from modyn_store.core._validate import parse_duration
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["RowBuffer", "check_span_unit", "reached_span", "window_span", "within_span"]


def _integer_times(ts: np.ndarray, anchor: int | float) -> bool:
    """Whether ``ts`` and ``anchor`` are integers (compared exactly)."""
    return ts.dtype.kind in "iu" and isinstance(anchor, int)


def _above(ts: np.ndarray, lo: int) -> np.ndarray:
    """Mask of ``ts > lo`` for integer ``ts``, exact for any Python int ``lo`` (one beyond the
    range of ``ts``'s type holds every row or none, without overflow)."""
    info = np.iinfo(ts.dtype)
    if lo < info.min:
        return np.ones(ts.shape, dtype=bool)
    if lo >= info.max:
        return np.zeros(ts.shape, dtype=bool)
    return ts > ts.dtype.type(lo)


def within_span(ts: np.ndarray, newest: int | float, span: float) -> np.ndarray:
    """Mask of ``ts > newest - span``: the event times less than ``span`` before ``newest``.

    Exact for integer ``ts`` and an integer ``newest`` (no overflow near the int64 limits);
    otherwise in float64. An infinite ``span`` holds every row.
    """
    ts = np.asarray(ts)
    if math.isinf(span):
        return np.ones(ts.shape, dtype=bool)
    if not _integer_times(ts, newest):
        return ts.astype(np.float64) > float(newest) - span
    return _above(ts, int(newest) - math.ceil(span))  # ts > newest - span <=> ts > newest - ceil(span)


def reached_span(ts: np.ndarray, start: int | float, span: float) -> np.ndarray:
    """Mask of ``ts >= start + span``: the event times at least ``span`` after ``start``.

    Exact for integer ``ts`` and an integer ``start`` (no overflow near the int64 limits);
    otherwise in float64. No row reaches an infinite ``span``.
    """
    ts = np.asarray(ts)
    if math.isinf(span):
        return np.zeros(ts.shape, dtype=bool)
    if not _integer_times(ts, start):
        return ts.astype(np.float64) >= float(start) + span
    return _above(ts, int(start) + math.ceil(span) - 1)  # ts - start >= span <=> ts > start + ceil(span) - 1


def _max_time(ts: np.ndarray) -> int | float:
    """The largest event time: a Python int for integer times (exact), else a float."""
    return int(np.max(ts)) if ts.dtype.kind in "iu" else float(np.max(ts))


class RowBuffer:
    """The most recent rows of some columns: the last ``size`` rows, or (with ``span``) the rows
    whose event time is within ``span`` of the newest one (``newest - ts < span``, exact for
    integer event times; see the module docstring).

    Example
    -------
    >>> import numpy as np
    >>> b = RowBuffer(size=3)
    >>> b.append({"x": np.arange(5.0)}, np.arange(5))
    >>> b.window()[0]["x"].tolist()
    [2.0, 3.0, 4.0]
    """

    def __init__(self, size: int | None = None, span: float | None = None) -> None:
        self.size = size
        self.span = span
        self._chunks: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
        self._rows = 0
        self._newest: int | float = -math.inf  # a Python int once integer times arrive

    def __len__(self) -> int:
        return self._rows

    def clear(self) -> None:
        self._chunks = []
        self._rows = 0

    def __copy__(self) -> RowBuffer:
        """A buffer of the same rows that the original's appends do not change (chunks are never
        changed in place: the list of chunks is copied, no rows)."""
        out = RowBuffer.__new__(RowBuffer)
        out.__dict__.update(self.__dict__)
        out._chunks = list(self._chunks)
        return out

    def append(self, cols: Mapping[str, np.ndarray], ts: np.ndarray, keys: np.ndarray | None = None) -> None:
        """Add rows (their ``keys``, when given, for :meth:`keyed_window` and :meth:`remove`;
        -1 otherwise)."""
        if ts.size == 0:
            return
        ts = np.asarray(ts)
        keys = np.full(ts.size, -1, np.int64) if keys is None else np.asarray(keys, np.int64)
        self._chunks.append(({k: np.asarray(v) for k, v in cols.items()}, ts, keys))
        self._rows += int(ts.size)
        self._newest = max(self._newest, _max_time(ts))  # int and float compare exactly
        limit = self.size if self.size is not None else 0
        if (self.size is not None and self._rows > 2 * limit) or (
            self.span is not None and len(self._chunks) > 64
        ):
            self._chunks = [self.keyed_window()]
            self._rows = int(self._chunks[0][1].size)

    def window(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The current window: ``({column: rows}, ts)``."""
        cols, ts, _ = self.keyed_window()
        return cols, ts

    def keyed_window(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """The current window with its rows' keys: ``({column: rows}, ts, keys)``."""
        if not self._chunks:
            return {}, np.empty(0), np.empty(0, np.int64)
        names = list(self._chunks[0][0])
        cols = {k: np.concatenate([c[0][k] for c in self._chunks]) for k in names}
        ts = np.concatenate([c[1] for c in self._chunks])
        keys = np.concatenate([c[2] for c in self._chunks])
        if self.size is not None:
            keep = slice(max(0, ts.size - self.size), None)
            return {k: v[keep] for k, v in cols.items()}, ts[keep], keys[keep]
        assert self.span is not None
        mask = within_span(ts, self._newest, self.span)
        return {k: v[mask] for k, v in cols.items()}, ts[mask], keys[mask]

    def window_keys(self) -> np.ndarray:
        """The keys of the current window's rows (:meth:`keyed_window` without the columns)."""
        if not self._chunks:
            return np.empty(0, np.int64)
        keys = np.concatenate([c[2] for c in self._chunks])
        if self.size is not None:
            return keys[max(0, keys.size - self.size):]
        assert self.span is not None
        return keys[within_span(np.concatenate([c[1] for c in self._chunks]), self._newest, self.span)]

    def remove(self, keys: np.ndarray) -> None:
        """Take the rows of ``keys`` out of the window. The buffer keeps the window only (rows
        before it, kept until the next compaction, never move into it): the window is then the
        same whether the buffer held such rows or not, as after :meth:`restore`."""
        cols, ts, have = self.keyed_window()
        keep = ~np.isin(have, keys)
        self._chunks = [({k: v[keep] for k, v in cols.items()}, ts[keep], have[keep])] if keep.any() else []
        self._rows = int(keep.sum())

    def restore(self, cols: Mapping[str, np.ndarray], ts: np.ndarray, keys: np.ndarray,
                newest: int | float) -> None:
        """Hold these rows (a window :meth:`keyed_window` returned, less rows since removed) and
        the newest event time seen (:attr:`newest`), as the buffer they came from did."""
        self.clear()
        self._newest = newest
        if ts.size:
            self._chunks = [({k: np.asarray(v) for k, v in cols.items()}, np.asarray(ts),
                             np.asarray(keys, np.int64))]
            self._rows = int(ts.size)

    @property
    def newest(self) -> int | float:
        """The newest event time appended so far (``-inf`` before the first row): a span window
        holds the rows within ``span`` of it."""
        return self._newest


def rows_by_key(read_keys: np.ndarray, keys: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Where the rows of ``keys`` are among ``read_keys`` (the keys a
    :data:`~policies.base.RowSource` read back, in any order): their indices, in the order of
    ``keys``, and which of ``keys`` were read (the others are gone).

    >>> idx, hit = rows_by_key(np.array([7, 3, 5]), [5, 4, 7])
    >>> idx.tolist(), hit.tolist()
    ([2, 0], [True, False, True])
    """
    want = np.asarray(keys, np.int64)
    have = np.asarray(read_keys, np.int64)
    if have.size == 0 or want.size == 0:
        return np.empty(0, np.intp), np.zeros(want.size, bool)
    order = np.argsort(have, kind="stable")
    at = order[np.minimum(np.searchsorted(have, want, sorter=order), have.size - 1)]
    hit = have[at] == want
    return at[hit], hit


@contextlib.contextmanager
def restored_on_error(obj: Any, *names: str) -> Iterator[None]:
    """The attributes ``names`` of ``obj`` put back as they were when the block raises, so that a
    trigger that refuses a delta (or whose model fails) can be fed the next one as if it had never
    seen it. Each is copied shallowly (lists, deques, a :class:`RowBuffer`'s chunk list: no rows).

    >>> class T: pass
    >>> t = T(); t.seen, t.pending = 3, [1]
    >>> try:
    ...     with restored_on_error(t, "seen", "pending"):
    ...         t.seen += 1; t.pending.append(2); raise ValueError
    ... except ValueError:
    ...     pass
    >>> t.seen, t.pending
    (3, [1])
    """
    saved = [(n, copy.copy(getattr(obj, n))) for n in names]
    try:
        yield
    except BaseException:
        for n, v in saved:
            setattr(obj, n, v)
        raise


@contextlib.contextmanager
def parts_restored_on_error(parts: Sequence[Any]) -> Iterator[None]:
    """The triggers ``parts`` (and their own parts, ``_parts()``) put back as they were when the
    block raises, in place: a composite (or a drift trigger with a warm-up part) whose later part
    fails while firing leaves the parts that fired before it as they were, so the same delta may
    be fed again. Attributes that are triggers or arrays are kept as they are (a part is restored
    in place, and a trigger replaces its arrays, never writes into them); the others are copied
    shallowly, as in :func:`restored_on_error` (lists and dicts, a :class:`RowBuffer`'s chunk
    list: no rows). Attributes set in the block are removed.

    >>> class T:
    ...     def _parts(self): return []
    ...     def fire(self): pass
    >>> a, inner = T(), T()
    >>> a.seen, a.pending, a.part = 1, [1], inner
    >>> try:
    ...     with parts_restored_on_error([a]):
    ...         a.seen, a.fed = 2, 1; a.pending.append(2); a.part = T(); raise ValueError
    ... except ValueError:
    ...     pass
    >>> a.seen, a.pending, a.part is inner, hasattr(a, "fed")
    (1, [1], True, False)
    """
    todo, saved = list(parts), []
    while todo:
        t = todo.pop()
        saved.append((t, {n: _as_it_was(v) for n, v in vars(t).items()}))
        todo.extend(t._parts())
    try:
        yield
    except BaseException:
        for t, attrs in saved:
            vars(t).clear()
            vars(t).update(attrs)
        raise


def _as_it_was(value: Any) -> Any:
    """What :func:`parts_restored_on_error` keeps of an attribute's value."""
    if isinstance(value, np.ndarray) or (hasattr(value, "_parts") and hasattr(value, "fire")):
        return value
    return copy.copy(value)


def check_span_unit(window_time: str | float, ts_is_datetime: bool) -> None:
    """A duration string spans datetime event times, a number numeric ones (in their unit): a
    ``"1h"`` read as 3.6e12 units of an integer column, or ``3600`` as nanoseconds of a datetime
    one, would give windows that never fill or never hold ``min_samples``."""
    if ts_is_datetime and not isinstance(window_time, str):
        raise InvalidArgumentError("window_time", window_time, "a duration string like '1d' (the ts column "
                                                               "holds datetimes)")
    if not ts_is_datetime and isinstance(window_time, str):
        raise InvalidArgumentError("window_time", window_time, "a number in the unit of the numeric ts column")


def window_span(window_time: str | float) -> float:
    """The span of ``window_time``: a duration string in whole nanoseconds, a number as given."""
    span = parse_duration("window_time", window_time)
    if isinstance(window_time, str):
        if not np.isfinite(span) or round(span) < 1:
            raise InvalidArgumentError(
                "window_time", window_time,
                "a finite duration of at least 1ns (event times are whole nanoseconds)")
        span = float(round(span))
    return span
