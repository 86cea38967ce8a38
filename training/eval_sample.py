"""Evaluation samples of time slices, read in one streaming pass, and the metric's confidence interval.

:class:`EvalSample` asks for ``size`` rows or a ``fraction`` of each slice, seeded, optionally
stratified by label (each class keeps its share of the slice, rounded at random: every row
of a slice has the same chance).
Rows are chosen by a seeded 64-bit hash of their key (the ``k`` smallest hashes of a slice or
class): the choice does not depend on storage order or batch size, the same key is chosen for
every model, and a sample at least as large as the slice is the whole slice, so its metric
equals the full evaluation's. :func:`slice_keys` streams ``key``/``ts`` (and ``label``) of a
snapshot once (twice for a stratified or fractional sample: counts first) and keeps at most
about twice the sample per slice in memory.

:func:`margin` gives the half-width of a 95% confidence interval of a metric measured on a
sample: for ``accuracy`` a Wilson score interval (effective sample size from the stratified,
finite-population-corrected variance; the larger side as the half-width, so a sample without an
error is not 0 wide), a (stratified) normal interval with finite-population correction for
``loss``, Hanley & McNeil's standard error for ``roc_auc`` (multi-class: each class's one-vs-rest
AUC with its own positives and negatives, the per-class variances averaged as independent), a
seeded bootstrap for ``f1`` turned into a Wilson score interval (the larger side) like
``accuracy``'s. A sample without an error is not proof of a perfect model: where the estimate
has no spread (F1 or an AUC of exactly 0 or 1) the width is the Wilson score half-width of that
share measured on the rows of the smallest class (``f1``) or on ``min(positives, negatives)``
(each class's AUC), not 0; NaN for ``f1`` from one row. The correction makes it 0 when the
sample is the whole slice.

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
from training.auc import _auc_binary, log_odds

__all__ = ["EvalSample", "SliceKeys", "event_times", "inside", "margin", "predictions", "slice_keys"]

Z95 = 1.959963984540054
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_SEED_MAX = 2**64 - 1


@dataclass(frozen=True)
class EvalSample:
    """A per-slice evaluation sample: exactly one of ``size`` (rows per slice) or ``fraction``.

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


def _scan(snap: Any, slices: Sequence[Any], cols: list[str], batch_size: int) -> Any:
    for b in snap.to_batches(cols, batch_size=batch_size):
        sid = _slice_of(event_times(b.column(1)), slices)
        keep = sid >= 0
        keys = b.column(0).to_numpy()[keep]
        lab = np.asarray(b.column(2).to_numpy(zero_copy_only=False), dtype=np.int64)[keep] if len(cols) > 2 else None
        yield sid[keep], keys, lab


def slice_keys(snap: Any, slices: Sequence[Any], sample: EvalSample | None = None, *, label: str = "label",
               batch_size: int = 1 << 20) -> list[SliceKeys]:
    """The keys to evaluate on each slice of ``snap`` (every key without ``sample``), streamed."""
    n_s = len(slices)
    strat = sample is not None and sample.stratify
    cols = ["key", "ts"] + ([label] if strat else [])
    need_counts = sample is not None and (strat or sample.fraction is not None)
    pop = np.zeros(n_s, np.int64)
    counts: list[dict[int, int]] = [{} for _ in range(n_s)]
    if need_counts:  # first pass: rows per slice (and label)
        for sid, _, lab in _scan(snap, slices, cols, batch_size):
            pop += np.bincount(sid, minlength=n_s)
            if lab is not None:
                _add_counts(counts, sid, lab, n_s)
    # how many rows each slice (and label) keeps
    want: list[dict[int, int]] = []
    for s in range(n_s):
        if sample is None:
            want.append({})
            continue
        total = sample.size if sample.size is not None else int(round(float(sample.fraction or 0) * pop[s]))
        want.append(_allocate(total, counts[s], _offset(sample.seed, s, int(pop[s]))) if strat else {0: total})
    seed = sample.seed if sample is not None else 0
    pools: list[dict[int, _BottomK]] = [{} for _ in range(n_s)]
    seen = np.zeros(n_s, np.int64)
    labels = sorted({v for c in counts for v in c}) if strat else [0]
    lo = int(labels[0]) if labels else 0
    width = int(labels[-1]) - lo + 1 if labels else 1
    for sid, keys, lab in _scan(snap, slices, cols, batch_size):  # second (or only) pass: the sample
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


def _strat_margin(values: np.ndarray, strata: np.ndarray, part: SliceKeys) -> float:
    """Half-width of the 95% interval of a mean, stratified, finite-population corrected.

    A stratum sampled in part with fewer than 2 rows has no variance estimate: the interval is
    then that of a simple random sample of the slice (every row has the same chance, see
    :func:`_allocate`), and NaN when fewer than 2 rows were sampled at all."""
    n_all = part.population
    if values.size == 0 or n_all == 0:
        return math.nan
    groups: dict[Any, int] = dict(part.strata) if part.strata else {None: n_all}
    sizes = {c: int(values.size if c is None else np.sum(strata == c)) for c in groups}
    if any(sizes[c] < min(2, pop) for c, pop in groups.items() if sizes[c] < pop):
        groups, sizes = {None: n_all}, {None: int(values.size)}
    var = 0.0
    for c, pop in groups.items():
        n = sizes[c]
        if n == 0 or pop == 0 or n >= pop:
            continue  # a stratum read whole adds no sampling error
        if n < 2:
            return math.nan
        v = values if c is None else values[strata == c]
        w = pop / n_all
        fpc = max(0.0, 1.0 - n / pop)
        var += w * w * fpc * float(np.var(v, ddof=1)) / n
    return Z95 * math.sqrt(var)


def predictions(logits: np.ndarray) -> np.ndarray:
    """The predicted class of each row of ``logits`` ``[n, classes]``: its argmax, or -1 (no
    class: never correct) for a row with a NaN logit, where ``argmax`` would name the first NaN.

    >>> predictions(np.array([[0.0, 1.0], [np.nan, 0.0]])).tolist()
    [1, -1]
    """
    pred = logits.argmax(axis=1)
    return np.where(np.isnan(logits).any(axis=1), -1, pred) if pred.size else pred


def margin(metric: str, labels: np.ndarray, logits: np.ndarray, part: SliceKeys, *, value: float,
           seed: int = 0, n_boot: int = 200) -> float:
    """Half-width of the 95% confidence interval of ``metric`` (``value``) measured on ``part``'s keys."""
    n = labels.size
    if n == 0 or math.isnan(value):  # no value, no interval (not an exact one)
        return math.nan
    if part.complete:
        return 0.0
    fpc = max(0.0, 1.0 - n / max(part.population, 1))
    if metric == "accuracy":
        half = _strat_margin((predictions(logits) == labels).astype(np.float64), labels, part)
        return _wilson(value, half, n, fpc)
    if metric == "loss":
        z = logits - logits.max(axis=1, keepdims=True)
        per = -(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(n), labels]
        return _strat_margin(per, labels, part)
    if metric == "roc_auc":
        if math.isnan(value):
            return math.nan
        if logits.shape[1] == 2:
            se2 = _auc_variance(value, int((labels == 1).sum()), n, fpc)
        else:  # macro one-vs-rest: the mean of the defined per-class AUCs, taken as independent
            scores = log_odds(logits)
            per = [(a, int((labels == c).sum())) for c in range(logits.shape[1])
                   if not math.isnan(a := _auc_binary(scores[:, c], labels == c))]
            se2 = sum(_auc_variance(a, n1, n, fpc) for a, n1 in per) / len(per) ** 2 if per else math.nan
        return Z95 * math.sqrt(max(se2, 0.0) * fpc) if not math.isnan(se2) else math.nan
    # f1: a seeded bootstrap of the macro F1 over the sample, as a Wilson interval (NaN from
    # one row, as for accuracy: a bootstrap of one row has no spread to measure)
    if n < 2:
        return math.nan
    pred = predictions(logits)
    rng = np.random.default_rng(seed)
    boots = [_f1(labels[i], pred[i]) for i in (rng.integers(0, n, n) for _ in range(n_boot))]
    half = Z95 * float(np.std(boots, ddof=1)) * math.sqrt(fpc)
    return _wilson(value, half, _smallest_class(labels), fpc)


def _smallest_class(labels: np.ndarray) -> int:
    """Rows of the class with the fewest rows in ``labels`` (macro F1 weighs every class alike:
    the class seen least bounds the evidence of a sample without an error)."""
    return int(np.unique(labels, return_counts=True)[1].min())


def _auc_variance(a: float, n1: int, n: int, fpc: float) -> float:
    """Variance of an AUC ``a`` on ``n1`` positives of ``n`` rows: Hanley & McNeil's, and where
    that is 0 (``a`` of 0 or 1: the sample ranks every pair alike) the variance of the Wilson
    score half-width of a share ``a`` measured on ``min(n1, n - n1)`` rows (its larger side), so
    that a perfect ranking of a sample is not taken for a perfect ranking of the slice."""
    se2 = _hanley_mcneil(a, n1, n)
    if math.isnan(se2) or se2 > 0 or fpc <= 0:
        return se2
    half = _wilson(a, 0.0, min(n1, n - n1), fpc)
    return (half / Z95) ** 2 / fpc


def _wilson(p: float, half: float, n: int, fpc: float) -> float:
    """Half-width for a share ``p`` from the Wilson score interval: the larger distance from ``p``
    to its bounds, with the effective sample size of the normal half-width ``half`` (``n / fpc``
    when that is 0: a sample all right or all wrong). A normal interval alone would be 0 wide
    there, and miss the slice's value whenever its few errors were not sampled."""
    if math.isnan(half) or fpc <= 0:
        return half
    var = (half / Z95) ** 2
    m = p * (1 - p) / var if var > 0 else n / fpc
    z2 = Z95 * Z95
    center = (p + z2 / (2 * m)) / (1 + z2 / m)
    rad = Z95 * math.sqrt(p * (1 - p) / m + z2 / (4 * m * m)) / (1 + z2 / m)
    return max(p - (center - rad), center + rad - p)


def _hanley_mcneil(a: float, n1: int, n: int) -> float:
    """Hanley & McNeil's variance of an AUC ``a`` measured on ``n1`` positives of ``n`` rows
    (NaN without a positive or a negative)."""
    n2 = n - n1
    if n1 == 0 or n2 == 0:
        return math.nan
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2)


def _f1(labels: np.ndarray, pred: np.ndarray) -> float:
    """Macro F1 over the classes present in ``labels`` or ``pred`` (as ``evaluation.f1_macro``)."""
    classes = np.union1d(labels, pred[pred >= 0])
    tp = np.array([np.sum((pred == c) & (labels == c)) for c in classes], dtype=np.float64)
    fp = np.array([np.sum((pred == c) & (labels != c)) for c in classes], dtype=np.float64)
    fn = np.array([np.sum((pred != c) & (labels == c)) for c in classes], dtype=np.float64)
    den = 2 * tp + fp + fn
    return float(np.mean(np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)))
