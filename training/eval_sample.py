"""Evaluation samples of time slices, read in one streaming pass, and the metric's confidence interval.

:class:`EvalSample` asks for ``size`` rows or a ``fraction`` of each slice, seeded, optionally
stratified by label (each class keeps its share of the slice, rounded at random: every row
of a slice has the same chance).
Rows are chosen by a seeded 64-bit hash of their key (the ``k`` smallest hashes of a slice or
class): the choice does not depend on storage order or batch size, the same key is chosen for
every model, and a sample at least as large as the slice is the whole slice, so its metric
equals the full evaluation's. :func:`slice_keys` streams ``key``/``ts`` and the label of a
snapshot once (twice for a stratified or fractional sample: counts first) and keeps at most
about twice the sample per slice in memory; a null label on a row of a slice is refused, whether
or not the sample would draw that row.

:func:`margin` (in :mod:`training._eval_margin`) gives the half-width of a 95% confidence
interval of a metric measured on a sample: for ``accuracy`` a Wilson score interval (effective
sample size from the stratified, finite-population-corrected variance; the larger side as the
half-width, so a sample without an error is not 0 wide), a (stratified) normal interval with
finite-population correction for ``loss`` (none for an infinite loss), Hanley & McNeil's
standard error for ``roc_auc`` (multi-class: each class's one-vs-rest AUC with its own positives
and negatives, the per-class variances averaged as independent), a seeded bootstrap for ``f1``
turned into a Wilson score interval (the larger side) like ``accuracy``'s. A sample without an
error is not proof of a perfect model: where the estimate has no spread (F1 or an AUC of
exactly 0 or 1) the width is the Wilson score half-width of that share measured on the rows of
the smallest class (``f1``) or on ``min(positives, negatives)`` (each class's AUC), not 0; NaN
for ``f1`` from one row. The correction makes it 0 when the sample is the whole slice.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store
>>> from training.eval_sample import EvalSample, slice_keys
>>> from training.evaluation import time_slices
>>> store = Store.open("memory://eval-sample-doc", create=True)
>>> _ = store.append(pa.table({"ts": np.arange(1000), "label": np.arange(1000) % 3}))
>>> slices = time_slices(store, n=2)
>>> [p.keys.size for p in slice_keys(store.as_of(), slices, EvalSample(size=100))]
[100, 100]
>>> [p.keys.size for p in slice_keys(store.as_of(), slices, EvalSample(size=10**6))]
[500, 500]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modyn_store.core.errors import InvalidArgumentError
from training._eval_margin import Z95, margin, predictions
from training._eval_margin import _wilson as _wilson  # (read by tests of the interval)

__all__ = ["Z95", "EvalSample", "SliceKeys", "event_times", "inside", "margin", "predictions", "slice_keys"]

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_SEED_MAX = 2**64 - 1


@dataclass(frozen=True)
class EvalSample:
    """A per-slice evaluation sample: exactly one of ``size`` (rows per slice) or ``fraction``.

    ``fraction`` keeps ``fraction x rows`` of each slice, rounded, and at least one row of every
    non-empty slice (so that every slice with rows has a metric and an interval).

    ``stratify`` keeps each label's share of the slice; ``seed`` picks the rows.
    """

    size: int | None = None
    fraction: float | None = None
    stratify: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.size is None) == (self.fraction is None):
            raise InvalidArgumentError("size/fraction", (self.size, self.fraction), "exactly one of size= or fraction=")
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise InvalidArgumentError("size", self.size, "an integer >= 1 (rows per slice)")
        if self.fraction is not None and (isinstance(self.fraction, bool) or not (
                isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1)):
            raise InvalidArgumentError("fraction", self.fraction, "a share in (0, 1]")
        if not isinstance(self.stratify, bool):
            raise InvalidArgumentError("stratify", self.stratify, "True or False")
        # the row hash mixes the seed as a 64-bit integer (a larger one fails there, untyped)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= _SEED_MAX:
            raise InvalidArgumentError("seed", self.seed, f"an integer in 0 .. {_SEED_MAX}")


@dataclass(frozen=True)
class SliceKeys:
    """The keys to evaluate on one slice, the slice's live rows (``population``) and, for a
    stratified sample, the rows per label in the slice (``strata``: label -> rows)."""

    keys: np.ndarray = field(repr=False)
    population: int
    strata: dict[int, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """The keys are the whole slice."""
        return int(self.keys.size) == self.population


def _hash(keys: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of ``key + seed * golden``: a seeded, order-free uniform draw per key."""
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def event_times(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Event times as numbers: int64 for integer and temporal columns (dates as microseconds,
    the others in their own unit), float64 for the rest.

    >>> event_times(pa.array([1_700_000_000_000_000_001], pa.timestamp("ns"))).tolist()
    [1700000000000000001]
    """
    if pa.types.is_temporal(col.type):
        col = pc.cast(col, pa.timestamp("us")) if pa.types.is_date(col.type) else col
        col = col.cast(pa.int64())
    a = np.asarray(col.to_numpy(zero_copy_only=False))
    if a.dtype.kind == "i" or (a.dtype.kind == "u" and a.dtype.itemsize < 8):
        return a.astype(np.int64, copy=False)
    return a.astype(np.float64, copy=False)


_I64 = (-(2**63), 2**63 - 1)
_BEYOND = 2**64  # an infinite edge, as an integer beyond every int64


def _integer_edge(v: Any, up: bool) -> int:
    """The least integer >= ``v`` (``up``) or the greatest <= ``v``, exactly."""
    if isinstance(v, (int, np.integer)):
        return int(v)
    if math.isinf(v):
        return _BEYOND if v > 0 else -_BEYOND
    return math.ceil(float(v)) if up else math.floor(float(v))


def inside(ts: np.ndarray, sl: Any) -> np.ndarray:
    """Rows of ``ts`` in slice ``sl`` (``start <= ts < end``, ``<= end`` when closed). Integer
    times are compared with the edges exactly: each edge becomes the integer bound it implies,
    instead of rounding times of nanoseconds to float64 (256 ns apart at present-day times).

    >>> from training.evaluation import Slice
    >>> t = np.array([2**60, 2**60 + 1])
    >>> inside(t, Slice("a", 2**60 + 1, float("inf"))).tolist()
    [False, True]
    """
    if ts.dtype.kind == "f":
        return (ts >= sl.start) & ((ts <= sl.end) if sl.closed else (ts < sl.end))
    lo = _integer_edge(sl.start, up=True)  # ts >= start  <=>  ts >= ceil(start)
    # ts <= end  <=>  ts <= floor(end);  ts < end  <=>  ts <= ceil(end) - 1
    hi = _integer_edge(sl.end, up=False) if sl.closed else _integer_edge(sl.end, up=True) - 1
    lo, hi = max(lo, _I64[0]), min(hi, _I64[1])
    if lo > hi:
        return np.zeros(ts.size, bool)
    return (ts >= lo) & (ts <= hi)


def _slice_of(ts: np.ndarray, slices: Sequence[Any]) -> np.ndarray:
    """Slice number of each row (-1: in no slice); the first slice that holds a row wins."""
    out = np.full(ts.size, -1, np.int64)
    for s, sl in enumerate(slices):
        out[inside(ts, sl) & (out < 0)] = s
    return out


class _BottomK:
    """The ``k`` keys with the smallest hashes seen so far (``k=None``: every key)."""

    #: keys held beyond ``2 k`` before the pool is cut back to ``k``
    SLACK = 65536

    def __init__(self, k: int | None) -> None:
        self.k = k
        self.h: list[np.ndarray] = []
        self.keys: list[np.ndarray] = []
        self.n = 0
        #: once ``k`` keys are kept, the largest kept hash: a key hashed above it cannot enter
        self.cut: np.uint64 | None = None

    def add(self, h: np.ndarray, keys: np.ndarray) -> None:
        self.h.append(h)
        self.keys.append(keys)
        self.n += keys.size
        if self.k is not None and self.n > 2 * self.k + self.SLACK:
            self._trim()

    def _trim(self) -> None:
        h, keys = np.concatenate(self.h), np.concatenate(self.keys)
        if self.k is not None and h.size > self.k:
            part = np.argpartition(h, self.k - 1)[: self.k]
            h, keys = h[part], keys[part]
        if self.k is not None and self.k > 0 and h.size == self.k:
            self.cut = h.max()
        self.h, self.keys, self.n = [h], [keys], h.size

    def smallest(self, k: int | None) -> np.ndarray:
        if not self.keys:
            return np.empty(0, np.int64)
        h, keys = np.concatenate(self.h), np.concatenate(self.keys)
        if k is not None and h.size > k:
            keys = keys[np.argsort(h, kind="stable")[:k]]
        return np.sort(keys)


#: label ranges up to this many values are counted and filtered through dense tables
_DENSE = 1 << 16


def _add_counts(counts: list[dict[int, int]], sid: np.ndarray, lab: np.ndarray, n_s: int) -> None:
    """Add one batch's rows per (slice, label) to ``counts``."""
    if not lab.size:
        return
    lo, hi = int(lab.min()), int(lab.max())
    if hi - lo < _DENSE:
        width = hi - lo + 1
        tab = np.bincount(sid * width + (lab - lo), minlength=n_s * width).reshape(n_s, width)
        for s, j in zip(*(a.tolist() for a in np.nonzero(tab))):
            counts[s][lo + j] = counts[s].get(lo + j, 0) + int(tab[s, j])
        return
    for s in np.unique(sid).tolist():
        vals, cnt = np.unique(lab[sid == s], return_counts=True)
        for v, c in zip(vals.tolist(), cnt.tolist()):
            counts[s][v] = counts[s].get(v, 0) + c


def _under_cut(pools: list[dict[int, _BottomK]], sid: np.ndarray, strata: np.ndarray, h: np.ndarray,
               lo: int, width: int) -> np.ndarray | None:
    """Rows whose hash is at most their (slice, stratum) pool's cut (``None``: no pool is full)."""
    tab = np.full(len(pools) * width, _MASK, np.uint64)
    full = False
    for s, by_label in enumerate(pools):
        for c, pool in by_label.items():
            if pool.cut is not None and lo <= c < lo + width:
                tab[s * width + (c - lo)] = pool.cut
                full = True
    if not full:
        return None
    inside = (strata >= lo) & (strata < lo + width)
    cut = tab[np.where(inside, sid * width + (strata - lo), 0)]
    return np.asarray((h <= cut) | ~inside)


def _offset(seed: int, s: int, n: int) -> int:
    """A seeded draw from ``0 .. n-1`` for slice ``s`` (the random start of :func:`_allocate`)."""
    return int(_hash(np.array([s], np.uint64), seed)[0]) % max(n, 1)


def _allocate(total: int, counts: dict[int, int], offset: int) -> dict[int, int]:
    """``total`` split over strata in proportion to ``counts``, rounded at random (systematic
    rounding from ``offset`` in ``0 .. n-1``, ``n`` the rows): each stratum gets the floor or the
    ceiling of its share, the shares add up to ``total``, and over a uniform ``offset`` a stratum's
    expected rows are exactly its share, so every row is chosen with the same probability
    ``total / n``: the sample's mean is unbiased (a fixed rounding, ties to the lowest label,
    would leave the same strata out of every sample)."""
    n = sum(counts.values())
    if total >= n:
        return dict(counts)
    out: dict[int, int] = {}
    cum, prev = 0, offset // n
    for c in sorted(counts):
        cum += counts[c]
        nxt = (total * cum + offset) // n
        out[c] = nxt - prev
        prev = nxt
    return out


def _fraction_rows(fraction: float, rows: int) -> int:
    """Rows a ``fraction`` sample keeps of a slice of ``rows``: ``fraction x rows`` rounded, and
    at least one of a non-empty slice (a small slice would round to none and have no metric).

    >>> _fraction_rows(0.1, 3), _fraction_rows(0.1, 0), _fraction_rows(0.5, 7)
    (1, 0, 4)
    """
    return max(1, int(round(fraction * rows))) if rows > 0 else 0


def _refuse_null_labels(label: str, lab: pa.Array, keys: np.ndarray, sid: np.ndarray, slices: Sequence[Any]) -> None:
    """Refuse a batch whose label column is null on a row of a slice (checked through Arrow's
    ``null_count``: a batch without nulls costs nothing more). Such a row has no metric: a sample
    that missed it would measure another population than the slice, and one that drew it would
    fail while reading."""
    if not lab.null_count:
        return
    null = np.asarray(lab.is_null().to_numpy(zero_copy_only=False)) & (sid >= 0)
    if not null.any():
        return  # nulls only outside the slices evaluated
    first = int(sid[null][0])
    rows = null & (sid == first)
    raise InvalidArgumentError(
        "label", f"{label!r} null on {int(rows.sum())} rows of slice {slices[first].name!r} "
                 f"(keys {keys[rows][:5].tolist()})",
        "a label on every row of the slices evaluated (unlabelled rows have no metric: drop or delete them, "
        "e.g. append --drop-unlabeled, or evaluate slices without them)")


def _scan(snap: Any, slices: Sequence[Any], cols: list[str], batch_size: int, strat: bool) -> Any:
    """``(slice number, key, label or None)`` of the rows in a slice, batch by batch; ``cols``:
    key, ts and (if the store has it) the label column, whose nulls in a slice are refused."""
    for b in snap.to_batches(cols, batch_size=batch_size):
        sid = _slice_of(event_times(b.column(1)), slices)
        all_keys = b.column(0).to_numpy()
        if len(cols) > 2:
            _refuse_null_labels(cols[2], b.column(2), all_keys, sid, slices)
        keep = sid >= 0
        keys = all_keys[keep]
        lab = None
        if strat:  # nulls only outside the slices here: filled so that the column stays integer
            col = b.column(2)
            col = pc.fill_null(col, pa.scalar(0).cast(col.type)) if col.null_count else col
            lab = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)[keep]
        yield sid[keep], keys, lab


def slice_keys(snap: Any, slices: Sequence[Any], sample: EvalSample | None = None, *, label: str = "label",
               batch_size: int = 1 << 20) -> list[SliceKeys]:
    """The keys to evaluate on each slice of ``snap`` (every key without ``sample``), streamed.

    A null in the ``label`` column on a row of a slice is refused (``InvalidArgumentError``
    naming the slice), whether or not a sample would draw that row: the metric of a slice is
    over all its rows."""
    n_s = len(slices)
    strat = sample is not None and sample.stratify
    schema = getattr(snap, "schema", None)
    # (a column declared without nulls is not read for them)
    nullable = (schema is not None and label in schema.names and label not in ("key", "ts")
                and schema.field(label).nullable)
    cols = ["key", "ts"] + ([label] if nullable or strat else [])
    need_counts = sample is not None and (strat or sample.fraction is not None)
    pop = np.zeros(n_s, np.int64)
    counts: list[dict[int, int]] = [{} for _ in range(n_s)]
    if need_counts:  # first pass: rows per slice (and label)
        for sid, _, lab in _scan(snap, slices, cols, batch_size, strat):
            pop += np.bincount(sid, minlength=n_s)
            if lab is not None:
                _add_counts(counts, sid, lab, n_s)
    # how many rows each slice (and label) keeps
    want: list[dict[int, int]] = []
    for s in range(n_s):
        if sample is None:
            want.append({})
            continue
        total = sample.size if sample.size is not None else _fraction_rows(float(sample.fraction or 0), int(pop[s]))
        want.append(_allocate(total, counts[s], _offset(sample.seed, s, int(pop[s]))) if strat else {0: total})
    seed = sample.seed if sample is not None else 0
    pools: list[dict[int, _BottomK]] = [{} for _ in range(n_s)]
    seen = np.zeros(n_s, np.int64)
    labels = sorted({v for c in counts for v in c}) if strat else [0]
    lo = int(labels[0]) if labels else 0
    width = int(labels[-1]) - lo + 1 if labels else 1
    # the label's nulls are checked by the first pass of two: the second reads it only to stratify
    cols = cols if strat or not need_counts else ["key", "ts"]
    for sid, keys, lab in _scan(snap, slices, cols, batch_size, strat):  # second (or only) pass: the sample
        if keys.size == 0:
            continue
        seen += np.bincount(sid, minlength=n_s)
        h = _hash(keys, seed) if sample is not None else keys.astype(np.uint64)
        strata = lab if strat and lab is not None else np.zeros(keys.size, np.int64)
        if sample is not None and width <= _DENSE:
            # rows hashed above their full pool's cut cannot enter it: drop them before sorting
            ok = _under_cut(pools, sid, strata, h, lo, width)
            if ok is not None:
                sid, keys, h, strata = sid[ok], keys[ok], h[ok], strata[ok]
                if not keys.size:
                    continue
        order = np.lexsort((strata, sid))
        sid, keys, h, strata = sid[order], keys[order], h[order], strata[order]
        cuts = np.flatnonzero((np.diff(sid) != 0) | (np.diff(strata) != 0)) + 1
        # (a, b): one (slice, stratum) run of the sorted batch; ``lo`` stays the lowest label
        for a, b in zip(np.r_[0, cuts].tolist(), np.r_[cuts, sid.size].tolist()):
            s, c = int(sid[a]), int(strata[a])
            k = None if sample is None else want[s].get(c, 0)
            pool = pools[s].setdefault(c, _BottomK(k))
            pool.add(h[a:b], keys[a:b])
    out = []
    for s in range(n_s):
        parts = [p.smallest(p.k) for p in pools[s].values()]
        keys = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        out.append(SliceKeys(keys, int(seen[s]), dict(counts[s]) if strat else {}))
    return out
