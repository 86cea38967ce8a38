"""Streaming reads of a selection context's eligible rows, in bounded memory.

The eligible rows of a :class:`~policies.base.SelectionContext` are the snapshot's live rows,
minus ``excluded`` (past the firing's position), restricted to ``candidates`` when set, and
optionally restricted to the rows after one data cutoff and within another (a
:class:`~policies.base.Cutoff`, or a plain version meaning all of its rows).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa

from modyn_store.core.errors import InvalidArgumentError
from policies._columns import check_float_labels, column_to_numpy
from policies._records import Cutoff, SelectionContext

__all__ = ["Bound", "count_rows", "eligible_mask", "iter_rows", "segments", "version_filter"]


def version_filter(since: int | None, until: int | None) -> str | None:
    """A store filter for rows inserted in versions ``(since, until]`` (``None``: open end)."""
    parts = []
    if since is not None:
        parts.append(f"_version > {int(since)}")
    if until is not None:
        parts.append(f"_version <= {int(until)}")
    return " AND ".join(parts) or None


Bound = Cutoff | int | None
_EMPTY = np.empty(0, dtype=np.int64)


def segments(since: Bound, until: Bound) -> list[tuple[str | None, Cutoff | None, Cutoff | None]]:
    """Scans that together cover the rows after ``since`` and within ``until``: ``(filter,
    rows must be past this cutoff, rows must be within this cutoff)``."""
    lo = Cutoff(since) if isinstance(since, int) else since
    hi = Cutoff(until) if isinstance(until, int) else until
    lo_v = None if lo is None else lo.version
    hi_v = None if hi is None else hi.version
    lo_cut = lo is not None and lo.ts is not None
    hi_cut = hi is not None and hi.ts is not None
    if lo_v is not None and hi_v is not None and lo_v >= hi_v:
        if lo_v > hi_v or not lo_cut:
            return []  # ``since`` already covers all of ``until``'s version
        return [(f"_version = {lo_v}", lo if lo_cut else None, hi if hi_cut else None)]
    # in version order (the rest of ``since``'s version, the versions between, then ``until``'s):
    # a sequential consumer (GDumb's greedy memory) sees the rows in the order they arrived
    segs: list[tuple[str | None, Cutoff | None, Cutoff | None]] = []
    if lo_cut:
        assert lo_v is not None
        segs.append((f"_version = {lo_v}", lo, None))
    main = version_filter(lo_v, None if hi_v is None else (hi_v - 1 if hi_cut else hi_v))
    if not (lo_v is not None and hi_v is not None and hi_v - (1 if hi_cut else 0) <= lo_v):
        segs.append((main, None, None))
    if hi_cut:
        assert hi_v is not None
        segs.append((f"_version = {hi_v}", None, hi))
    return segs


def _isin(a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    """Which of ``a`` occur in the sorted ``sorted_b`` (every caller's set is sorted).

    Only the part of ``sorted_b`` within ``[min(a), max(a)]`` takes part: a batch meets the
    few excluded or candidate keys in its range, and the rest of a large set is neither
    checked nor searched again for every batch. NumPy searches (``engine._search``) answer
    it without a kernel to compile inside the first large selection.
    """
    from engine._search import isin_sorted_numpy

    if a.size == 0 or sorted_b.size == 0:
        return np.zeros(a.size, dtype=bool)
    lo = int(np.searchsorted(sorted_b, a.min(), side="left"))
    hi = int(np.searchsorted(sorted_b, a.max(), side="right"))
    if hi <= lo:
        return np.zeros(a.size, dtype=bool)
    return np.asarray(isin_sorted_numpy(np.asarray(a, dtype=np.int64), sorted_b[lo:hi]), dtype=bool)


def eligible_mask(keys: np.ndarray, ts: np.ndarray | None = None, *, after: Cutoff | None = None,
                  within: Cutoff | None = None, excluded: np.ndarray = _EMPTY,
                  candidates: np.ndarray | None = None) -> np.ndarray | None:
    """Which rows of one batch of a :func:`segments` scan are eligible (``None``: all of them):
    past ``after`` and within ``within`` (cutoffs in the scanned version; they need ``ts``), not
    in the sorted ``excluded``, in the sorted ``candidates`` (a context's fields of those names).
    Plain arrays in, so a Ray task applies exactly what :func:`iter_rows` applies."""
    mask = np.ones(keys.size, dtype=bool)
    if after is not None or within is not None:
        if ts is None:
            raise InvalidArgumentError("ts", None, "the event times of the rows, for a cutoff inside a version")
        ver = np.full(keys.size, (after or within).version)  # type: ignore[union-attr]
        if after is not None:
            mask &= ~after.includes(ver, ts, keys)
        if within is not None:
            mask &= within.includes(ver, ts, keys)
    if excluded.size:
        mask &= ~_isin(keys, excluded)
    if candidates is not None:
        mask &= _isin(keys, candidates)
    return None if mask.all() else mask


def iter_rows(ctx: SelectionContext, columns: Sequence[str] = (), *, since: Bound = None,
              until: Bound = None) -> Iterator[dict[str, np.ndarray]]:
    """Eligible rows in batches of ``ctx.batch_size``: ``{"key": int64, column: array, ...}``.

    ``since`` / ``until``: only rows after / within a cutoff (a :class:`Cutoff` or a version).

    Example
    -------
    >>> import numpy as np, pyarrow as pa
    >>> from modyn_store import Store
    >>> from policies.base import SelectionContext
    >>> store = Store.open("memory://stream-doc", create=True)
    >>> snap = store.as_of(store.append(pa.table({"key": [1, 2, 3], "ts": [0, 1, 2]})).version)
    >>> ctx = SelectionContext(snapshot=snap, excluded=np.array([3]))
    >>> [b["key"].tolist() for b in iter_rows(ctx)]
    [[1, 2]]
    >>> [b["key"].tolist() for b in iter_rows(ctx, since=Cutoff(1, ts=1, key=2))]
    [[2]]
    """
    cols = ["key", *[c for c in dict.fromkeys(columns) if c != "key"]]
    for filt, after, within in segments(since, until):
        read = cols if (after is None and within is None) or "ts" in cols else [*cols, "ts"]
        for batch in ctx.snapshot.to_batches(read, filt, batch_size=ctx.batch_size):
            arrays = {c: column_to_numpy(batch.column(c)) for c in read}
            mask = eligible_mask(arrays["key"], arrays.get("ts"), after=after, within=within,
                                 excluded=ctx.excluded, candidates=ctx.candidates)
            if mask is not None:
                arrays = {c: a[mask] for c, a in arrays.items()}
            if ctx.label_column in arrays and arrays[ctx.label_column].dtype.kind == "f":
                labels = batch.column(ctx.label_column)  # float64 with NaN: exact? (eligible rows)
                check_float_labels(labels if mask is None else labels.filter(pa.array(mask)), ctx.label_column)
            if arrays["key"].size:
                yield {c: arrays[c] for c in cols}


def count_rows(ctx: SelectionContext, *, since: Bound = None, until: Bound = None) -> int:
    """The number of eligible rows, counted by streaming the key column (bounded memory)."""
    return sum(int(b["key"].size) for b in iter_rows(ctx, since=since, until=until))
